//! MQTT payloads, byte-compatible with taosx.
//!
//! Data: one payload per row,
//! `{"data":{<column>:<value>,… in the topic's column order},"offset":{"database":…,"topic":…,"vgroupId":…,"offset":…}}`.
//! Meta: `{"meta":<TMQ meta JSON>,"offset":{…}}`.
//! Batch (`format=batch`): `{"rows":[{<column>:<value>,…},…],"offset":{…}}`, every row of a TMQ message
//! (and topic) in one payload.
//!
//! Values are written straight from the taos `RawBlock` column views into one reusable buffer, each
//! payload split off as `Bytes` without copying. Type mapping:
//! - BOOL → `true`/`false`; integer types → JSON integers; FLOAT/DOUBLE → JSON numbers (shortest round-trip
//!   form; NaN/±inf → `null`, JSON has no such numbers);
//! - TIMESTAMP → the raw integer in the database precision (ms, µs or ns), as taosx;
//! - VARCHAR/BINARY, NCHAR → strings;
//! - JSON (tag) → embedded as a JSON value when it parses, otherwise as a string;
//! - VARBINARY, GEOMETRY (WKB), BLOB → lowercase hex strings of the raw bytes (what taosAdapter's REST API
//!   returns; JSON has no bytes type and hex is unambiguous);
//! - DECIMAL → the exact decimal as a string (JSON numbers would round it);
//! - NULL → `null`.

use bytes::{BufMut, Bytes, BytesMut};
use taos::{BorrowedValue, RawBlock};

/// The `,"offset":{…}}` tail shared by every payload of one TMQ message.
#[derive(Debug, Clone)]
pub struct OffsetSuffix(Vec<u8>);

impl OffsetSuffix {
    pub fn new(database: &str, topic: &str, vgroup_id: i32, offset: i64) -> Self {
        let mut v = Vec::with_capacity(64 + database.len() + topic.len());
        v.extend_from_slice(b"},\"offset\":{\"database\":");
        write_str(&mut v, database);
        v.extend_from_slice(b",\"topic\":");
        write_str(&mut v, topic);
        v.extend_from_slice(format!(",\"vgroupId\":{vgroup_id},\"offset\":{offset}}}}}").as_bytes());
        OffsetSuffix(v)
    }
}

/// Writes `s` as a JSON string literal.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    serde_json::to_writer(out, s).expect("writing JSON to memory");
}

/// The buffer payloads are split from. `BytesMut` allocates its next buffer at the capacity it was created
/// with, so this sets how many payloads share one allocation (and one reference count): created empty, every
/// payload was an allocation of its own plus the count's, both made on the encode stage's thread and freed on
/// the MQTT thread.
const CHUNK: usize = 64 * 1024;

/// Encodes payloads into one growing buffer; each payload is split off without copying.
#[derive(Debug)]
pub struct Encoder {
    buf: BytesMut,
    scratch: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(CHUNK),
            scratch: Vec::new(),
        }
    }

    /// Encodes every row of `block`, calling `emit(row, payload)` for each.
    pub fn encode_block(
        &mut self,
        block: &RawBlock,
        suffix: &OffsetSuffix,
        mut emit: impl FnMut(usize, Bytes),
    ) {
        let keys = column_keys(block);
        for row in 0..block.nrows() {
            self.buf.reserve(256);
            self.buf.put_slice(b"{\"data\":{");
            self.write_fields(block, &keys, row);
            self.buf.put_slice(&suffix.0);
            emit(row, self.buf.split().freeze());
        }
    }

    /// Encodes every row of `blocks` into one batch payload:
    /// `{"rows":[{<column>:<value>,…},…],"offset":{…}}` (rows in block order, columns in the topic's order).
    pub fn encode_batch<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a RawBlock>,
        suffix: &OffsetSuffix,
    ) -> Bytes {
        self.buf.put_slice(b"{\"rows\":[");
        let mut first = true;
        for block in blocks {
            let keys = column_keys(block);
            self.buf.reserve(block.nrows() * 128);
            for row in 0..block.nrows() {
                if !first {
                    self.buf.put_u8(b',');
                }
                first = false;
                self.buf.put_u8(b'{');
                self.write_fields(block, &keys, row);
                self.buf.put_u8(b'}');
            }
        }
        self.buf.put_u8(b']');
        // The suffix opens with the `}` closing "data"; a batch closes its array instead.
        self.buf.put_slice(&suffix.0[1..]);
        self.buf.split().freeze()
    }

    /// Writes `"name":value,…` of one row (no braces).
    fn write_fields(&mut self, block: &RawBlock, keys: &[Vec<u8>], row: usize) {
        let ncols = block.ncols().min(keys.len());
        for (col, key) in keys.iter().enumerate().take(ncols) {
            self.buf.put_slice(key);
            match block.get_ref(row, col) {
                Some(v) => self.write_value(&v),
                None => self.buf.put_slice(b"null"),
            }
        }
    }

    /// Encodes one meta payload: `{"meta":<meta>,"offset":{…}}`.
    pub fn encode_meta(&mut self, meta: &serde_json::Value, suffix: &OffsetSuffix) -> Bytes {
        self.buf.put_slice(b"{\"meta\":");
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, meta).expect("writing JSON to memory");
        self.buf.put_slice(&self.scratch);
        // The suffix opens with the `}` closing "data"; meta has no inner object to close.
        self.buf.put_slice(&suffix.0[1..]);
        self.buf.split().freeze()
    }

    fn write_value(&mut self, v: &BorrowedValue<'_>) {
        use std::io::Write as _;
        let buf = &mut self.buf;
        match v {
            BorrowedValue::Null(_) => buf.put_slice(b"null"),
            BorrowedValue::Bool(b) => buf.put_slice(if *b { b"true" } else { b"false" }),
            BorrowedValue::TinyInt(x) => int(buf, *x as i64),
            BorrowedValue::SmallInt(x) => int(buf, *x as i64),
            BorrowedValue::Int(x) => int(buf, *x as i64),
            BorrowedValue::BigInt(x) => int(buf, *x),
            BorrowedValue::UTinyInt(x) => uint(buf, *x as u64),
            BorrowedValue::USmallInt(x) => uint(buf, *x as u64),
            BorrowedValue::UInt(x) => uint(buf, *x as u64),
            BorrowedValue::UBigInt(x) => uint(buf, *x),
            BorrowedValue::Float(x) => {
                if x.is_finite() {
                    serde_json::to_writer(buf.writer(), x).expect("writing JSON to memory")
                } else {
                    buf.put_slice(b"null")
                }
            }
            BorrowedValue::Double(x) => {
                if x.is_finite() {
                    serde_json::to_writer(buf.writer(), x).expect("writing JSON to memory")
                } else {
                    buf.put_slice(b"null")
                }
            }
            BorrowedValue::Timestamp(ts) => int(buf, ts.as_raw_i64()),
            BorrowedValue::VarChar(s) => {
                serde_json::to_writer(buf.writer(), s).expect("writing JSON to memory")
            }
            BorrowedValue::NChar(s) => {
                serde_json::to_writer(buf.writer(), s.as_ref()).expect("writing JSON to memory")
            }
            BorrowedValue::Json(bytes) => {
                if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
                    buf.put_slice(bytes);
                } else {
                    let text = String::from_utf8_lossy(bytes);
                    serde_json::to_writer(buf.writer(), text.as_ref()).expect("writing JSON to memory")
                }
            }
            BorrowedValue::VarBinary(bytes) | BorrowedValue::Geometry(bytes) => hex(buf, bytes),
            BorrowedValue::Blob(bytes) | BorrowedValue::MediumBlob(bytes) => hex(buf, bytes),
            BorrowedValue::Decimal(d) => {
                let s = format!("{d}");
                let _ = buf.writer().write_all(b"\"");
                buf.put_slice(s.as_bytes());
                buf.put_slice(b"\"");
            }
        }
    }
}

/// Column keys (`"name":`, with the separating comma from the second on) are the same for every row of
/// a block: escaped once per block.
fn column_keys(block: &RawBlock) -> Vec<Vec<u8>> {
    block
        .field_names()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut k = Vec::with_capacity(name.len() + 4);
            if i > 0 {
                k.push(b',');
            }
            write_str(&mut k, name);
            k.push(b':');
            k
        })
        .collect()
}

fn int(buf: &mut BytesMut, x: i64) {
    let mut b = itoa_buf();
    buf.put_slice(fmt_i64(&mut b, x));
}

fn uint(buf: &mut BytesMut, x: u64) {
    let mut b = itoa_buf();
    buf.put_slice(fmt_u64(&mut b, x));
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Formats an integer without allocating.
fn fmt_u64(b: &mut [u8; 20], mut x: u64) -> &[u8] {
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    &b[i..]
}

fn fmt_i64(b: &mut [u8; 20], x: i64) -> &[u8] {
    if x >= 0 {
        return fmt_u64(b, x as u64);
    }
    // |i64::MIN| has 19 digits, so digits + sign fit in 20 bytes.
    let digits = fmt_u64(b, x.unsigned_abs()).len();
    let start = b.len() - digits - 1;
    b[start] = b'-';
    &b[start..]
}

fn hex(buf: &mut BytesMut, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.reserve(bytes.len() * 2 + 2);
    buf.put_u8(b'"');
    for b in bytes {
        buf.put_u8(HEX[(b >> 4) as usize]);
        buf.put_u8(HEX[(b & 0xf) as usize]);
    }
    buf.put_u8(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use taos::{ColumnView, Precision};

    fn block(views: Vec<ColumnView>, names: &[&str]) -> RawBlock {
        let mut b = RawBlock::from_views(&views, Precision::Millisecond);
        b.with_field_names(names);
        b
    }

    fn encode_all(b: &RawBlock, suffix: &OffsetSuffix) -> Vec<String> {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode_block(b, suffix, |_, p| out.push(String::from_utf8(p.to_vec()).unwrap()));
        out
    }

    #[test]
    fn payloads_of_a_block_share_one_allocation() {
        let n = 100;
        let b = block(
            vec![
                ColumnView::from_millis_timestamp((0..n).collect::<Vec<i64>>()),
                ColumnView::from_ints((0..n as i32).collect::<Vec<i32>>()),
            ],
            &["ts", "v"],
        );
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode_block(&b, &OffsetSuffix::new("db", "t", 2, 5), |_, p| out.push(p));
        assert_eq!(out.len(), n as usize);
        for pair in out.windows(2) {
            // Split off one after the other from the same buffer: each payload starts where the last ended.
            assert_eq!(pair[0].as_ptr().wrapping_add(pair[0].len()), pair[1].as_ptr());
        }
    }

    #[test]
    fn seed_message_is_byte_identical() {
        let b = block(
            vec![
                ColumnView::from_millis_timestamp(vec![1756957064991]),
                ColumnView::from_varchar::<&str, _, _, _>(vec!["tb"]),
                ColumnView::from_ints(vec![1]),
                ColumnView::from_ints(vec![1]),
            ],
            &["ts", "tbname", "f1", "t1"],
        );
        let out = encode_all(&b, &OffsetSuffix::new("db", "topic_meters", 2, 8));
        assert_eq!(
            out,
            vec![
                r#"{"data":{"ts":1756957064991,"tbname":"tb","f1":1,"t1":1},"offset":{"database":"db","topic":"topic_meters","vgroupId":2,"offset":8}}"#
            ]
        );
    }

    #[test]
    fn every_type_and_null() {
        let b = block(
            vec![
                ColumnView::from_bools(vec![Some(true), None]),
                ColumnView::from_tiny_ints(vec![Some(-8i8), None]),
                ColumnView::from_small_ints(vec![Some(-16i16), None]),
                ColumnView::from_ints(vec![Some(-32i32), None]),
                ColumnView::from_big_ints(vec![Some(i64::MIN), None]),
                ColumnView::from_unsigned_tiny_ints(vec![Some(8u8), None]),
                ColumnView::from_unsigned_small_ints(vec![Some(16u16), None]),
                ColumnView::from_unsigned_ints(vec![Some(32u32), None]),
                ColumnView::from_unsigned_big_ints(vec![Some(u64::MAX), None]),
                ColumnView::from_floats(vec![Some(10.3f32), None]),
                ColumnView::from_doubles(vec![Some(0.1f64), None]),
                ColumnView::from_varchar::<&str, _, _, _>(vec![Some("a\"b\n"), None]),
                ColumnView::from_nchar::<&str, _, _, _>(vec![Some("北京"), None]),
                ColumnView::from_json::<&str, _, _, _>(vec![Some(r#"{"k":1}"#), None]),
                ColumnView::from_bytes::<Vec<u8>, _, _, _>(vec![Some(vec![0x01u8, 0xab]), None]),
                ColumnView::from_micros_timestamp(vec![Some(1_700_000_000_000_001i64), None]),
            ],
            &[
                "b", "ti", "si", "i", "bi", "uti", "usi", "ui", "ubi", "f", "d", "s", "n", "j", "vb", "ts",
            ],
        );
        let out = encode_all(&b, &OffsetSuffix::new("db", "t", 3, 9));
        assert_eq!(
            out[0],
            r#"{"data":{"b":true,"ti":-8,"si":-16,"i":-32,"bi":-9223372036854775808,"uti":8,"usi":16,"ui":32,"ubi":18446744073709551615,"f":10.3,"d":0.1,"s":"a\"b\n","n":"北京","j":{"k":1},"vb":"01ab","ts":1700000000000001},"offset":{"database":"db","topic":"t","vgroupId":3,"offset":9}}"#
        );
        assert_eq!(
            out[1],
            r#"{"data":{"b":null,"ti":null,"si":null,"i":null,"bi":null,"uti":null,"usi":null,"ui":null,"ubi":null,"f":null,"d":null,"s":null,"n":null,"j":null,"vb":null,"ts":null},"offset":{"database":"db","topic":"t","vgroupId":3,"offset":9}}"#
        );
        for p in &out {
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            assert!(v["data"].is_object());
        }
    }

    #[test]
    fn batch_payload_shape() {
        let a = block(
            vec![
                ColumnView::from_millis_timestamp(vec![1, 2]),
                ColumnView::from_varchar::<&str, _, _, _>(vec!["d0", "d0"]),
            ],
            &["ts", "tbname"],
        );
        let b = block(
            vec![
                ColumnView::from_millis_timestamp(vec![3]),
                ColumnView::from_varchar::<&str, _, _, _>(vec!["d1"]),
            ],
            &["ts", "tbname"],
        );
        let mut enc = Encoder::new();
        let p = enc.encode_batch([&a, &b], &OffsetSuffix::new("db", "t", 2, 7));
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"rows":[{"ts":1,"tbname":"d0"},{"ts":2,"tbname":"d0"},{"ts":3,"tbname":"d1"}],"offset":{"database":"db","topic":"t","vgroupId":2,"offset":7}}"#
        );
        // The encoder is reusable: row payloads after a batch are unaffected.
        let rows = encode_all(&b, &OffsetSuffix::new("db", "t", 2, 7));
        assert_eq!(
            rows[0],
            r#"{"data":{"ts":3,"tbname":"d1"},"offset":{"database":"db","topic":"t","vgroupId":2,"offset":7}}"#
        );
        let empty = enc.encode_batch(std::iter::empty(), &OffsetSuffix::new("db", "t", 2, 7));
        let v: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["rows"], serde_json::json!([]));
    }

    #[test]
    fn meta_payload_shape() {
        let meta = serde_json::json!({"type":"drop","tableNameList":["d0"]});
        let p = Encoder::new().encode_meta(&meta, &OffsetSuffix::new("db", "t", 2, 5));
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"meta":{"type":"drop","tableNameList":["d0"]},"offset":{"database":"db","topic":"t","vgroupId":2,"offset":5}}"#
        );
    }

    #[test]
    fn integer_formatting_edges() {
        for x in [0i64, 1, -1, 9, 10, -10, i64::MAX, i64::MIN] {
            let mut b = itoa_buf();
            assert_eq!(std::str::from_utf8(fmt_i64(&mut b, x)).unwrap(), x.to_string());
        }
    }
}
