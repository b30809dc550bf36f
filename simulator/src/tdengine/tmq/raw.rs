//! The `fetch_raw_data` / `fetch_raw` replies: a whole TMQ data message in one binary frame, as taosAdapter
//! builds it from TDengine's `tmq_get_raw`. From 3.3.2.0 on the newer client generation (taos-ws on GitHub
//! main, the Python `taos-ws-py`) fetches data messages this way instead of `fetch` + `fetch_block` per block.
//!
//! The payload is TDengine's own serialization of the poll response the client library received, so it is
//! an internal format that the clients parse by position. What is written here, and where it comes from
//! (TDengine 3.3.x sources; taosAdapter `controller/ws/tmq/tmq.go` and `driver/common/parser/raw.go`):
//!
//! - `tmq_get_raw` (client `clientRawBlockWrite.c`): `encodeMqDataRsp` writes `i8 MQ_DATA_RSP_VERSION` (100),
//!   `i32 offsetLen` (the encoded size of the two offsets, so readers can skip them), then
//!   `tEncodeMqDataRsp` (data, `raw_type` `RES_TYPE__TMQ` = 2) or `tEncodeSTaosxRsp` (meta+data,
//!   `RES_TYPE__TMQ_METADATA` = 4).
//! - `tEncodeMqDataRsp` (`tmsg.c`): `reqOffset`, `rspOffset` (`tEncodeSTqOffsetVal`: `i8 (TQ_OFFSET_VERSION
//!   << 4) | TMQ_OFFSET__LOG` then `i64 version`), `i32 blockNum`, `i8 withTbName`, `i8 withSchema`, per block
//!   `tEncodeBinary(blockData)` (u32 LEB128 length + bytes), `tEncodeSSchemaWrapper` (zigzag varints `nCols`,
//!   `version`; per column `i8 type`, `i8 flags`, varint `bytes`, varint `colId`, `tEncodeCStr` name) and,
//!   with table names, `tEncodeCStr(tbName)`; then `i64 sleepTime`. `tEncodeSTaosxRsp` ends with
//!   `i32 createTableNum` and the create-table requests instead of `sleepTime`.
//! - `blockData` (vnode `tqAddBlockDataToRsp`): `SRetrieveTableRspForTmq` packed — `i64 version` 1,
//!   `i64 numOfRows` big-endian, `i8 compressed` 0, `i8 precision` — then the `blockEncode` block. The client
//!   library turns each block to host order on receipt (`changeByteEndian`: version 1 → 2, column lengths
//!   little-endian) before taosAdapter copies it, and `blockEncode` ends the block with the `blankFill` byte,
//!   counted in its length.
//! - The client library always reports `withSchema` 1: a query topic's responses come without schemas and
//!   it adds the topic's schema per block (`tmqBuildRspFromWrapperInner`).
//! - Integers are little-endian (`tEncodeI32`/`tEncodeI64` copy host order).
//!
//! Not reproduced: the create-table requests of a meta+data message (`createTableNum` is 0 here; both client
//! generations stop reading after the blocks), and the raw form of meta messages (`fetch_raw` of a
//! create/alter/drop/delete, TDengine's `SVCreateStbReq` and friends), which is refused with an error.

use crate::tdengine::error::{code, TdError};
use crate::tdengine::types::Precision;

use super::message::{Block, Body, TopicKind};

/// `MQ_DATA_RSP_VERSION`: the first byte of a raw data response.
const MQ_DATA_RSP_VERSION: u8 = 100;
/// `(TQ_OFFSET_VERSION << 4) | TMQ_OFFSET__LOG`.
const OFFSET_LOG: u8 = (1 << 4) | 1;
/// `RES_TYPE__TMQ`: the `raw_type` of a data message.
pub const RAW_TYPE_DATA: u16 = 2;
/// `RES_TYPE__TMQ_METADATA`: the `raw_type` of a meta+data message.
pub const RAW_TYPE_METADATA: u16 = 4;
/// taosAdapter's action number of a `fetch_raw_data` reply (`TMQFetchRawNewMessage`).
const ACTION_FETCH_RAW_DATA: u64 = 8;
/// taosAdapter's message type of a `fetch_raw` reply (`TMQRawMessage`).
const FETCH_RAW_MESSAGE: u64 = 3;
/// `COL_SMA_ON`: the flag every column of a table carries in its schema.
const COL_SMA_ON: u8 = 1;
/// Size of `SRetrieveTableRspForTmq` before the block.
const RETRIEVE_HEADER_LEN: usize = 18;

/// What the raw form of a message needs besides its blocks.
#[derive(Debug, Clone, Copy)]
pub struct RawContext {
    pub precision: Precision,
    pub with_table_name: bool,
    /// Where the poll that produced the message started (`reqOffset`).
    pub req_offset: i64,
    /// Where the consumer continues after it (`rspOffset`).
    pub rsp_offset: i64,
    /// Column flags in the block schemas: a table's columns carry `COL_SMA_ON`, a query topic's output
    /// columns none.
    pub column_flags: u8,
}

impl RawContext {
    pub fn column_flags(kind: &TopicKind) -> u8 {
        match kind {
            TopicKind::Query { .. } => 0,
            TopicKind::Stable { .. } | TopicKind::Database => COL_SMA_ON,
        }
    }
}

/// The `tmq_get_raw` payload of a message and its `raw_type`, or an error for a meta message.
pub fn encode(body: &Body, ctx: &RawContext) -> Result<(u16, Vec<u8>), TdError> {
    let (raw_type, blocks) = match body {
        Body::Data(blocks) => (RAW_TYPE_DATA, blocks),
        Body::MetaData { blocks, .. } => (RAW_TYPE_METADATA, blocks),
        Body::Meta(_) => {
            return Err(TdError::new(
                code::ADAPTER,
                "raw form of meta messages is not supported by this server; use fetch_json_meta",
            ))
        }
    };
    let mut out = Vec::with_capacity(64 + blocks.iter().map(|b| 64 + b.len() * 16).sum::<usize>());
    out.push(MQ_DATA_RSP_VERSION);
    let offset_len: i32 = 2 * (1 + 8);
    out.extend_from_slice(&offset_len.to_le_bytes());
    for version in [ctx.req_offset, ctx.rsp_offset] {
        out.push(OFFSET_LOG);
        out.extend_from_slice(&version.to_le_bytes());
    }
    out.extend_from_slice(&(blocks.len() as i32).to_le_bytes());
    if !blocks.is_empty() {
        out.push(ctx.with_table_name as u8);
        out.push(1); // withSchema: always, see the module docs
        for block in blocks {
            put_block(&mut out, block, ctx);
        }
    }
    match raw_type {
        RAW_TYPE_METADATA => out.extend_from_slice(&0i32.to_le_bytes()), // createTableNum
        _ => out.extend_from_slice(&0i64.to_le_bytes()),                 // sleepTime
    }
    Ok((raw_type, out))
}

fn put_block(out: &mut Vec<u8>, block: &Block, ctx: &RawContext) {
    let mut encoded = block.encode();
    // As the client library hands it out: version 2 (host order), and the trailing blankFill byte.
    let len = encoded.len() + 1;
    encoded[0..4].copy_from_slice(&2i32.to_le_bytes());
    encoded[4..8].copy_from_slice(&(len as i32).to_le_bytes());
    encoded.push(0);
    put_u32v(out, (RETRIEVE_HEADER_LEN + len) as u32);
    out.extend_from_slice(&1i64.to_le_bytes());
    out.extend_from_slice(&(block.len() as i64).to_be_bytes());
    out.push(0); // compressed
    out.push(ctx.precision as u8);
    out.extend_from_slice(&encoded);
    put_i32v(out, block.fields.len() as i32);
    put_i32v(out, 0); // schema version
    for (i, f) in block.fields.iter().enumerate() {
        out.push(f.ty as u8);
        out.push(ctx.column_flags);
        put_i32v(out, f.block_bytes() as i32);
        put_i32v(out, i as i32 + 1);
        put_cstr(out, &f.name);
    }
    if ctx.with_table_name {
        put_cstr(out, &block.table);
    }
}

/// `tEncodeU32v`: LEB128.
fn put_u32v(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `tEncodeI32v`: zigzag, then LEB128.
fn put_i32v(out: &mut Vec<u8>, v: i32) {
    put_u32v(out, ((v << 1) ^ (v >> 31)) as u32);
}

/// `tEncodeCStr`: the string with its NUL, length-prefixed.
fn put_cstr(out: &mut Vec<u8>, s: &str) {
    put_u32v(out, s.len() as u32 + 1);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The `fetch_raw_data` reply: `[u64 u64::MAX][u64 action 8][u16 version 1][u64 timing][u64 req_id][u32 code]
/// [u32 message length][message][u64 message_id]`, then on success `[u16 raw_type][u32 raw length][raw]`.
pub fn fetch_raw_data_frame(timing: u64, req_id: u64, message_id: u64, raw_type: u16, raw: &[u8]) -> Vec<u8> {
    let mut out = frame_head(timing, req_id, 0, "", message_id, 6 + raw.len());
    out.extend_from_slice(&raw_type.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(raw);
    out
}

/// A failed `fetch_raw_data`, in binary as taosAdapter sends it (the clients wait for a binary reply).
pub fn fetch_raw_data_error(timing: u64, req_id: u64, message_id: u64, error: &TdError) -> Vec<u8> {
    frame_head(timing, req_id, error.code & 0xFFFF, &error.message, message_id, 0)
}

fn frame_head(timing: u64, req_id: u64, code: u32, message: &str, message_id: u64, rest: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(50 + message.len() + rest);
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&ACTION_FETCH_RAW_DATA.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&timing.to_le_bytes());
    out.extend_from_slice(&req_id.to_le_bytes());
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&message_id.to_le_bytes());
    out
}

/// The `fetch_raw` reply (older raw API, also used by taosX): `[u64 timing][u64 req_id][u64 message_id]
/// [u64 3][u32 raw length][u16 raw_type][raw]`. Errors go back as JSON.
pub fn fetch_raw_frame(timing: u64, req_id: u64, message_id: u64, raw_type: u16, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(38 + raw.len());
    out.extend_from_slice(&timing.to_le_bytes());
    out.extend_from_slice(&req_id.to_le_bytes());
    out.extend_from_slice(&message_id.to_le_bytes());
    out.extend_from_slice(&FETCH_RAW_MESSAGE.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&raw_type.to_le_bytes());
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_taosdata_s() {
        let mut v = Vec::new();
        put_u32v(&mut v, 197);
        assert_eq!(v, [0xC5, 0x01]);
        v.clear();
        put_i32v(&mut v, 130);
        assert_eq!(v, [0x84, 0x02]);
        v.clear();
        put_i32v(&mut v, -1);
        assert_eq!(v, [0x01]);
        v.clear();
        put_cstr(&mut v, "ts");
        assert_eq!(v, [3, b't', b's', 0]);
    }

    #[test]
    fn error_frame_has_taosadapter_s_layout() {
        let f = fetch_raw_data_error(7, 9, 3, &TdError::new(0x80000118, "bad"));
        assert_eq!(f.len(), 42 + 3 + 8);
        assert_eq!(&f[0..8], &u64::MAX.to_le_bytes());
        assert_eq!(&f[8..16], &8u64.to_le_bytes());
        assert_eq!(&f[26..34], &9u64.to_le_bytes());
        assert_eq!(&f[34..38], &0x0118u32.to_le_bytes());
        assert_eq!(&f[42..45], b"bad");
        assert_eq!(&f[45..53], &3u64.to_le_bytes());
    }
}
