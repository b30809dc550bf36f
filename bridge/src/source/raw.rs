//! A whole TMQ data message in one request (`fetch.raw=true`): the official client's `as_raw_data()`
//! (taosAdapter's `fetch_raw`, TDengine's `tmq_get_raw`) instead of two round trips per block.
//!
//! Why: a smart-meter fleet puts one block per table into a message, and the client's per-block `fetch` +
//! `fetch_block` round trips decide throughput there (docs/performance.md, "Fleet shape"). The raw form
//! carries every block of the message at once.
//!
//! What this module reads is only the envelope TDengine wraps around the blocks (`encodeMqDataRsp` /
//! `tEncodeMqDataRsp`, documented from TDengine's sources in the stand-in's `tmq/raw.rs`): `i8` version,
//! `i32` length of the two offsets (skipped), `i32` block count, `i8` with-table-name, `i8` with-schema, then
//! per block its bytes (LEB128 length; an 18-byte `SRetrieveTableRspForTmq` header — `i64` version, `i64` rows
//! big-endian, `i8` compressed, `i8` precision — before the block), its schema (zigzag varints: columns,
//! version; per column `i8` type, `i8` flags, varint bytes, varint id, name) and its table name. Each block
//! itself is parsed by the official `taos-query` (`RawBlock::parse_from_raw_block`), exactly as the blocks
//! `fetch_block` returns. Anything this reader does not expect (another version, a compressed block, lengths
//! that disagree) is a [`RawError`]: the caller then fetches the message block by block instead.

use bytes::Bytes;
use taos::{Precision, RawBlock};

/// `MQ_DATA_RSP_VERSION`, the first byte of a data message's raw form.
const MQ_DATA_RSP_VERSION: u8 = 100;
/// `RES_TYPE__TMQ` (data) and `RES_TYPE__TMQ_METADATA` (meta + data): the raw types with blocks.
const RAW_TYPE_DATA: u16 = 2;
const RAW_TYPE_METADATA: u16 = 4;
/// `SRetrieveTableRspForTmq` before each block.
const RETRIEVE_HEADER_LEN: usize = 18;
/// A block's own header (version, length, rows, columns, flag, group id).
const BLOCK_HEADER_LEN: usize = 28;

/// Why a raw message could not be read (the message is then fetched block by block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("raw message ends early: {0}")]
    Truncated(&'static str),
    #[error("raw type {0} carries no data blocks")]
    RawType(u16),
    #[error("raw message version {0}, expected {MQ_DATA_RSP_VERSION}")]
    Version(u8),
    #[error("block {0} is compressed")]
    Compressed(usize),
    #[error("block {block}: precision {precision}")]
    Precision { block: usize, precision: u8 },
    #[error("block {0}: its length disagrees with the message's")]
    BlockLength(usize),
    #[error("block {0}: a message without schemas")]
    NoSchema(usize),
}

/// One raw data message, checked: its blocks are parsed one at a time when iterated ([`RawMessage::blocks`]),
/// so a message waiting in a queue costs its bytes (~100 per one-row block), not a parsed block each (~1.5 KiB
/// of column views, names and table name).
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// TDengine's bytes, from the block count on.
    blocks_from: Bytes,
    rows: usize,
}

impl RawMessage {
    /// Checks what `as_raw_data()` returned (`u32` length, `u16` raw type, then TDengine's bytes): every
    /// length, header and schema, without building a block.
    pub fn parse(raw: &Bytes) -> Result<Self, RawError> {
        let mut r = Reader { bytes: raw, at: 0 };
        let len = r.u32("raw length")? as usize;
        let raw_type = r.u16("raw type")?;
        if raw_type != RAW_TYPE_DATA && raw_type != RAW_TYPE_METADATA {
            return Err(RawError::RawType(raw_type));
        }
        if r.left() < len {
            return Err(RawError::Truncated("payload"));
        }
        let payload = raw.slice(r.at..r.at + len);
        let mut r = Reader {
            bytes: &payload,
            at: 0,
        };
        let version = r.u8("version")?;
        if version != MQ_DATA_RSP_VERSION {
            return Err(RawError::Version(version));
        }
        let offsets = r.u32("offsets length")? as usize;
        r.skip(offsets, "offsets")?;
        let mut message = RawMessage {
            blocks_from: payload.slice(r.at..),
            rows: 0,
        };
        let mut walk = message.walk()?;
        let mut rows = 0;
        while let Some(block) = walk.next_block(false)? {
            rows += block.rows;
        }
        message.rows = rows;
        Ok(message)
    }

    /// Rows in all blocks.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The blocks, each parsed by `taos-query` as it is reached.
    pub fn blocks(&self) -> impl Iterator<Item = RawBlock> + '_ {
        let mut walk = self.walk().ok();
        std::iter::from_fn(move || match walk.as_mut()?.next_block(true) {
            Ok(Some(block)) => block.parsed,
            Ok(None) => None,
            // `parse` walked the same bytes the same way without an error.
            Err(e) => {
                tracing::error!(error = %e, "a checked raw message failed on a second reading");
                None
            }
        })
    }

    fn walk(&self) -> Result<Walk<'_>, RawError> {
        let mut r = Reader {
            bytes: &self.blocks_from,
            at: 0,
        };
        let left = r.u32("block count")? as usize;
        let (with_table_name, with_schema) = match left {
            0 => (false, true),
            _ => (r.u8("with table name")? != 0, r.u8("with schema")? != 0),
        };
        Ok(Walk {
            r,
            left,
            index: 0,
            with_table_name,
            with_schema,
        })
    }
}

/// A block reached by [`Walk`]: its rows, and the block itself when built.
struct Walked {
    rows: usize,
    parsed: Option<RawBlock>,
}

/// One pass over the blocks of a message.
struct Walk<'a> {
    r: Reader<'a>,
    left: usize,
    index: usize,
    with_table_name: bool,
    with_schema: bool,
}

impl Walk<'_> {
    fn next_block(&mut self, build: bool) -> Result<Option<Walked>, RawError> {
        if self.left == 0 {
            return Ok(None);
        }
        let (i, r) = (self.index, &mut self.r);
        let data = r.binary("block")?;
        if data.len() < RETRIEVE_HEADER_LEN + BLOCK_HEADER_LEN {
            return Err(RawError::BlockLength(i));
        }
        if data[16] != 0 {
            return Err(RawError::Compressed(i));
        }
        let precision = match data[17] {
            0 => Precision::Millisecond,
            1 => Precision::Microsecond,
            2 => Precision::Nanosecond,
            p => {
                return Err(RawError::Precision {
                    block: i,
                    precision: p,
                })
            }
        };
        let block = data.slice(RETRIEVE_HEADER_LEN..);
        let word = |at: usize| u32::from_le_bytes(block[at..at + 4].try_into().expect("4 bytes")) as usize;
        let (stated, rows, ncols) = (word(4), word(8), word(12));
        if stated != block.len() {
            return Err(RawError::BlockLength(i));
        }
        if !self.with_schema {
            return Err(RawError::NoSchema(i));
        }
        let columns = r.i32v("columns")?;
        r.i32v("schema version")?;
        if usize::try_from(columns) != Ok(ncols) {
            return Err(RawError::BlockLength(i));
        }
        // Checking only skips the names: no allocation per column of every block.
        let mut names = Vec::with_capacity(if build { ncols } else { 0 });
        for _ in 0..columns {
            r.u8("column type")?;
            r.u8("column flags")?;
            r.i32v("column bytes")?;
            r.i32v("column id")?;
            let name = r.binary("column name")?;
            if build {
                names.push(cstr(&name));
            }
        }
        let table = match self.with_table_name {
            true => Some(r.binary("table name")?),
            false => None,
        };
        self.left -= 1;
        self.index += 1;
        let parsed = build.then(|| {
            let mut b = RawBlock::parse_from_raw_block(block, precision);
            b.with_field_names(names);
            if let Some(t) = table {
                b.with_table_name(cstr(&t));
            }
            b
        });
        Ok(Some(Walked { rows, parsed }))
    }
}

/// Little-endian and TDengine-varint reads over a byte slice, each naming what ended early.
struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], RawError> {
        if self.left() < n {
            return Err(RawError::Truncated(what));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), RawError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, RawError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, RawError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, RawError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    /// `tDecodeU32v`: LEB128, at most 5 bytes.
    fn u32v(&mut self, what: &'static str) -> Result<u32, RawError> {
        let mut v = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.u8(what)?;
            v |= u32::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RawError::Truncated(what))
    }

    /// `tDecodeI32v`: zigzag over LEB128.
    fn i32v(&mut self, what: &'static str) -> Result<i32, RawError> {
        let v = self.u32v(what)?;
        Ok((v >> 1) as i32 ^ -((v & 1) as i32))
    }

    /// `tDecodeBinary`: a LEB128 length, then the bytes (shared, not copied).
    fn binary(&mut self, what: &'static str) -> Result<Bytes, RawError> {
        let n = self.u32v(what)? as usize;
        let start = self.at;
        self.skip(n, what)?;
        Ok(self.bytes.slice(start..start + n))
    }
}

/// `tDecodeCStr`'s text: a binary whose last byte is the NUL.
fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(payload: &[u8], raw_type: u16) -> Bytes {
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&raw_type.to_le_bytes());
        out.extend_from_slice(payload);
        Bytes::from(out)
    }

    #[test]
    fn a_message_without_blocks_is_empty() {
        let mut p = vec![MQ_DATA_RSP_VERSION];
        p.extend_from_slice(&18u32.to_le_bytes());
        p.extend_from_slice(&[0; 18]);
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&0i64.to_le_bytes());
        let m = RawMessage::parse(&raw(&p, RAW_TYPE_DATA)).unwrap();
        assert_eq!((m.rows(), m.blocks().count()), (0, 0));
    }

    #[test]
    fn what_it_does_not_expect_is_an_error_not_a_panic() {
        assert_eq!(RawMessage::parse(&raw(&[], 3)).unwrap_err(), RawError::RawType(3));
        assert_eq!(
            RawMessage::parse(&raw(&[99], RAW_TYPE_DATA)).unwrap_err(),
            RawError::Version(99)
        );
        let mut p = vec![MQ_DATA_RSP_VERSION];
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&1000u32.to_le_bytes()); // 1000 blocks announced
        p.extend_from_slice(&[1, 1, 0x85]); // a block length that never ends
        assert!(matches!(
            RawMessage::parse(&raw(&p, RAW_TYPE_DATA)).unwrap_err(),
            RawError::Truncated(_)
        ));
        assert_eq!(
            RawMessage::parse(&Bytes::from_static(&[9, 0, 0, 0, 2, 0, 1])).unwrap_err(),
            RawError::Truncated("payload")
        );
        for cut in 0..6 {
            assert!(RawMessage::parse(&Bytes::copy_from_slice(&[0u8; 6][..cut])).is_err());
        }
    }

    #[test]
    fn varints_are_tdengine_s() {
        let b = Bytes::from_static(&[0xC5, 0x01, 0x84, 0x02, 0x01, 3, b't', b's', 0]);
        let mut r = Reader { bytes: &b, at: 0 };
        assert_eq!(r.u32v("a").unwrap(), 197);
        assert_eq!(r.i32v("b").unwrap(), 130);
        assert_eq!(r.i32v("c").unwrap(), -1);
        assert_eq!(cstr(&r.binary("d").unwrap()), "ts");
        assert!(r.u8("e").is_err());
    }
}
