//! One SQL connection on `/ws` or `/rest/ws`, sans-IO: frames in, frames out. Handles `version`, `conn`,
//! `query`, `fetch`, `fetch_block`, `free_result` (never answered) and, when the reported version is
//! ≥ 3.3.0.8, binary query (action 6) and binary fetch (action 7). Unknown or malformed requests get an
//! error reply; nothing a client sends ends the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value as Json};

use super::TdConfig;
use crate::tdengine::block::BlockBuilder;
use crate::tdengine::error::{code, TdError};
use crate::tdengine::store::{QueryResult, Store};

/// Rows per raw block of a result set (TDengine's default fetch block size).
pub const ROWS_PER_BLOCK: usize = 4096;

const BINARY_QUERY: u64 = 6;
const BINARY_FETCH: u64 = 7;

/// A frame to send back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Text(String),
    Binary(Vec<u8>),
}

/// An open result set: rows not fetched yet, and the block prepared by the last JSON `fetch`.
struct ResultSet {
    result: QueryResult,
    cursor: usize,
    pending_block: Option<Vec<u8>>,
}

impl ResultSet {
    /// Encodes the next block, or `None` when every row was fetched.
    fn next_block(&mut self) -> Option<(Vec<u8>, usize, Vec<u32>)> {
        if self.cursor >= self.result.rows.len() {
            return None;
        }
        let end = (self.cursor + ROWS_PER_BLOCK).min(self.result.rows.len());
        let mut b = BlockBuilder::with_capacity(&self.result.fields, end - self.cursor);
        for r in &self.result.rows[self.cursor..end] {
            b.push_row(r);
        }
        let rows = end - self.cursor;
        self.cursor = end;
        let block = b.finish();
        let lengths = column_lengths(&block, self.result.fields.len());
        Some((block, rows, lengths))
    }
}

/// The per-column data lengths a block's header lists (what JSON `fetch` reports as `lengths`).
fn column_lengths(block: &[u8], cols: usize) -> Vec<u32> {
    let start = crate::tdengine::block::HEADER_LEN + cols * 5;
    (0..cols)
        .map(|i| {
            let o = start + i * 4;
            u32::from_le_bytes(block[o..o + 4].try_into().expect("4 bytes"))
        })
        .collect()
}

pub struct SqlSession {
    store: Arc<Store>,
    config: Arc<TdConfig>,
    binary: bool,
    connected: bool,
    db: Option<String>,
    results: HashMap<u64, ResultSet>,
    next_id: u64,
}

impl SqlSession {
    pub fn new(store: Arc<Store>, config: Arc<TdConfig>) -> Self {
        let binary = config.supports_binary_sql();
        Self {
            store,
            config,
            binary,
            connected: false,
            db: None,
            results: HashMap::new(),
            next_id: 1,
        }
    }

    /// Handles a text frame (a JSON request).
    pub fn on_text(&mut self, text: &str) -> Option<Reply> {
        let started = Instant::now();
        let req: Json = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Some(error_reply(
                    "",
                    0,
                    &TdError::new(code::ADAPTER, format!("invalid request: {e}")),
                    started,
                ))
            }
        };
        let action = req.get("action").and_then(Json::as_str).unwrap_or("").to_string();
        let args = req.get("args").cloned().unwrap_or(Json::Null);
        let req_id = args.get("req_id").and_then(Json::as_u64).unwrap_or(0);
        let id = args.get("id").and_then(Json::as_u64).unwrap_or(0);
        match action.as_str() {
            "version" => Some(ok_reply(
                "version",
                req_id,
                started,
                json!({"version": self.config.server_version}),
            )),
            "conn" => Some(self.conn(&args, req_id, started)),
            "query" => {
                let sql = args.get("sql").and_then(Json::as_str).unwrap_or("");
                Some(self.query(sql, "query", req_id, started))
            }
            "fetch" => Some(self.fetch_json(req_id, id, started)),
            "fetch_block" => Some(self.fetch_block(req_id, id, started)),
            // The 0.12.3 client's reader cannot parse a reply to free_result: never answer it.
            "free_result" => {
                self.results.remove(&id);
                None
            }
            _ => Some(error_reply(
                &action,
                req_id,
                &TdError::new(code::ADAPTER, format!("unknown action: {action}")),
                started,
            )),
        }
    }

    /// Handles a binary frame: `[u64 req_id][u64 resource id][u64 action][u16 version]` + payload.
    pub fn on_binary(&mut self, bytes: &[u8]) -> Option<Reply> {
        let started = Instant::now();
        if bytes.len() < 26 {
            return Some(error_reply(
                "",
                0,
                &TdError::new(code::ADAPTER, "binary request too short"),
                started,
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let (req_id, resource, action) = (u64_at(0), u64_at(8), u64_at(16));
        let payload = &bytes[26..];
        match action {
            BINARY_QUERY if self.binary => {
                let sql = payload
                    .get(..4)
                    .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
                    .and_then(|len| payload.get(4..4 + len))
                    .map(String::from_utf8_lossy);
                match sql {
                    Some(sql) => Some(self.query(&sql, "binary_query", req_id, started)),
                    None => Some(error_reply(
                        "binary_query",
                        req_id,
                        &TdError::new(code::ADAPTER, "binary query: bad sql length"),
                        started,
                    )),
                }
            }
            BINARY_FETCH if self.binary => Some(self.fetch_binary(req_id, resource, started)),
            _ => Some(error_reply(
                "",
                req_id,
                &TdError::new(code::ADAPTER, format!("unsupported binary action {action}")),
                started,
            )),
        }
    }

    fn conn(&mut self, args: &Json, req_id: u64, started: Instant) -> Reply {
        let user = args.get("user").and_then(Json::as_str).unwrap_or("");
        let password = args.get("password").and_then(Json::as_str).unwrap_or("");
        if user != self.config.user || password != self.config.password {
            return error_reply("conn", req_id, &TdError::auth(), started);
        }
        let db = args.get("db").and_then(Json::as_str).unwrap_or("");
        if !db.is_empty() {
            if let Err(e) = self.store.database(db) {
                return error_reply("conn", req_id, &e, started);
            }
            self.db = Some(db.to_string());
        }
        self.connected = true;
        ok_reply(
            "conn",
            req_id,
            started,
            json!({"version": self.config.server_version}),
        )
    }

    fn query(&mut self, sql: &str, action: &str, req_id: u64, started: Instant) -> Reply {
        if !self.connected {
            return error_reply(
                action,
                req_id,
                &TdError::new(code::ADAPTER, "server not connected"),
                started,
            );
        }
        let result = match self.store.execute(sql, &mut self.db) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(code = e.code, error = %e.message, "query failed");
                return error_reply(action, req_id, &e, started);
            }
        };
        if result.is_update() {
            return ok_reply(
                action,
                req_id,
                started,
                json!({"id": 0, "is_update": true, "affected_rows": result.affected_rows, "fields_count": 0,
                       "fields_names": null, "fields_types": null, "fields_lengths": null, "precision": 0}),
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        let f = &result.fields;
        let extra = json!({
            "id": id,
            "is_update": false,
            "affected_rows": 0,
            "fields_count": f.len(),
            "fields_names": f.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "fields_types": f.iter().map(|f| f.ty as u8).collect::<Vec<_>>(),
            "fields_lengths": f.iter().map(|f| f.length).collect::<Vec<_>>(),
            "precision": result.precision as u8,
        });
        self.results.insert(
            id,
            ResultSet {
                result,
                cursor: 0,
                pending_block: None,
            },
        );
        ok_reply(action, req_id, started, extra)
    }

    fn fetch_json(&mut self, req_id: u64, id: u64, started: Instant) -> Reply {
        // Id 0 is the "result" of a statement without a result set: it is empty, as taosAdapter's.
        if id == 0 {
            return ok_reply(
                "fetch",
                req_id,
                started,
                json!({"id": 0, "completed": true, "lengths": null, "rows": 0}),
            );
        }
        let Some(rs) = self.results.get_mut(&id) else {
            return error_reply("fetch", req_id, &result_not_found(id), started);
        };
        match rs.next_block() {
            Some((block, rows, lengths)) => {
                rs.pending_block = Some(block);
                ok_reply(
                    "fetch",
                    req_id,
                    started,
                    json!({"id": id, "completed": false, "lengths": lengths, "rows": rows}),
                )
            }
            None => {
                self.results.remove(&id);
                ok_reply(
                    "fetch",
                    req_id,
                    started,
                    json!({"id": id, "completed": true, "lengths": null, "rows": 0}),
                )
            }
        }
    }

    fn fetch_block(&mut self, req_id: u64, id: u64, started: Instant) -> Reply {
        let Some(block) = self.results.get_mut(&id).and_then(|rs| rs.pending_block.take()) else {
            return error_reply("fetch_block", req_id, &result_not_found(id), started);
        };
        let mut out = Vec::with_capacity(16 + block.len());
        out.extend_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&block);
        Reply::Binary(out)
    }

    fn fetch_binary(&mut self, req_id: u64, id: u64, started: Instant) -> Reply {
        let (code, msg, block) = match self.results.get_mut(&id) {
            None if id == 0 => (0, String::new(), None),
            None => {
                let e = result_not_found(id);
                (e.code, e.message, None)
            }
            Some(rs) => match rs.next_block() {
                Some((block, _, _)) => (0, String::new(), Some(block)),
                None => {
                    self.results.remove(&id);
                    (0, String::new(), None)
                }
            },
        };
        let mut out = Vec::with_capacity(64 + block.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(&u64::MAX.to_le_bytes());
        out.extend_from_slice(&BINARY_FETCH.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
        out.extend_from_slice(&req_id.to_le_bytes());
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        out.extend_from_slice(msg.as_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        match block {
            Some(b) => {
                out.push(0);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(&b);
            }
            None => out.push(1),
        }
        Reply::Binary(out)
    }
}

fn result_not_found(id: u64) -> TdError {
    TdError::new(code::ADAPTER, format!("result set {id} not found"))
}

fn timing(started: Instant) -> u64 {
    started.elapsed().as_nanos() as u64
}

/// `{"code":0,"message":"","action","req_id","timing", …extra}`.
pub fn ok_reply(action: &str, req_id: u64, started: Instant, extra: Json) -> Reply {
    let mut v =
        json!({"code": 0, "message": "", "action": action, "req_id": req_id, "timing": timing(started)});
    if let (Some(m), Json::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    Reply::Text(v.to_string())
}

/// An error reply: `code` is TDengine's code (low 16 bits), `message` its text.
pub fn error_reply(action: &str, req_id: u64, e: &TdError, started: Instant) -> Reply {
    Reply::Text(
        json!({"code": e.code & 0xFFFF, "message": e.message, "action": action, "req_id": req_id,
               "timing": timing(started)})
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(version: &str) -> SqlSession {
        let config = TdConfig {
            server_version: version.into(),
            ..TdConfig::default()
        };
        SqlSession::new(Store::new(), Arc::new(config))
    }

    fn text(r: Option<Reply>) -> Json {
        match r {
            Some(Reply::Text(t)) => serde_json::from_str(&t).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn auth_query_fetch_and_unknown_action() {
        let mut s = session("3.3.0.0");
        let r = text(
            s.on_text(r#"{"action":"conn","args":{"req_id":1,"user":"root","password":"bad","db":""}}"#),
        );
        assert_eq!(r["code"], 0x0357);
        let r = text(
            s.on_text(r#"{"action":"conn","args":{"req_id":2,"user":"root","password":"taosdata","db":""}}"#),
        );
        assert_eq!(r["code"], 0);
        let r = text(s.on_text(r#"{"action":"query","args":{"req_id":3,"sql":"show databases"}}"#));
        assert_eq!(r["fields_count"], 7);
        let id = r["id"].as_u64().unwrap();
        let r = text(s.on_text(&format!(
            r#"{{"action":"fetch","args":{{"req_id":4,"id":{id}}}}}"#
        )));
        assert_eq!(r["completed"], false);
        assert_eq!(r["rows"], 2);
        let Some(Reply::Binary(b)) = s.on_text(&format!(
            r#"{{"action":"fetch_block","args":{{"req_id":5,"id":{id}}}}}"#
        )) else {
            panic!()
        };
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), id);
        let r = text(s.on_text(&format!(
            r#"{{"action":"fetch","args":{{"req_id":6,"id":{id}}}}}"#
        )));
        assert_eq!(r["completed"], true);
        assert!(s
            .on_text(&format!(
                r#"{{"action":"free_result","args":{{"req_id":7,"id":{id}}}}}"#
            ))
            .is_none());
        let r = text(s.on_text(r#"{"action":"frobnicate","args":{"req_id":8}}"#));
        assert_eq!(r["code"], 0xFFFF);
        assert_eq!(r["req_id"], 8);
        let r = text(s.on_text("not json"));
        assert_eq!(r["code"], 0xFFFF);
    }

    #[test]
    fn binary_actions_follow_the_version() {
        let mut req = Vec::new();
        req.extend_from_slice(&9u64.to_le_bytes());
        req.extend_from_slice(&0u64.to_le_bytes());
        req.extend_from_slice(&6u64.to_le_bytes());
        req.extend_from_slice(&1u16.to_le_bytes());
        let sql = b"show databases";
        req.extend_from_slice(&(sql.len() as u32).to_le_bytes());
        req.extend_from_slice(sql);
        let conn = r#"{"action":"conn","args":{"req_id":1,"user":"root","password":"taosdata","db":""}}"#;
        let mut old = session("3.3.0.0");
        old.on_text(conn);
        assert_eq!(text(old.on_binary(&req))["code"], 0xFFFF);
        let mut new = session("3.3.1.0");
        new.on_text(conn);
        let r = text(new.on_binary(&req));
        assert_eq!(r["action"], "binary_query");
        assert_eq!(r["req_id"], 9);
        assert!(
            new.on_binary(&[1, 2, 3]).is_some(),
            "short frames get an error, not a panic"
        );
    }
}
