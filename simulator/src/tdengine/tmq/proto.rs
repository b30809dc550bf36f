//! The JSON requests and replies of taosAdapter's `/rest/tmq` endpoint (§3 of the protocol reference), and
//! the binary `fetch_block` frame. Parsing is lenient where clients differ (string or boolean options,
//! unknown fields) and strict where a wrong value would silently change behaviour.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

use crate::tdengine::error::TdError;

/// One request, parsed from `{"action": …, "args": {…}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Version,
    Subscribe(Box<SubscribeArgs>),
    Poll(PollArgs),
    Fetch(MessageArgs),
    FetchBlock(MessageArgs),
    FetchJsonMeta(MessageArgs),
    FetchRaw(MessageArgs),
    FetchRawData(MessageArgs),
    Commit(MessageArgs),
    CommitOffset(OffsetArgs),
    Seek(OffsetArgs),
    Committed(TopicVgroupsArgs),
    Position(TopicVgroupsArgs),
    Assignment(TopicArgs),
    Unsubscribe,
}

/// A request's envelope: the action name and req_id are known even when the arguments do not parse, so the
/// error reply can still be routed.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub action: String,
    pub req_id: u64,
    pub request: Result<Request, String>,
}

#[derive(Deserialize)]
struct Raw {
    action: String,
    #[serde(default)]
    args: Json,
}

/// Parses a text frame. `Err` only when it is not even an action envelope.
pub fn parse(text: &str) -> Result<Envelope, String> {
    let raw: Raw =
        serde_json::from_str(text).map_err(|e| escape_controls(format!("invalid request: {e}")))?;
    let req_id = raw.args.get("req_id").and_then(Json::as_u64).unwrap_or(0);
    fn args<T: for<'de> Deserialize<'de>>(v: Json) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| escape_controls(format!("invalid args: {e}")))
    }
    let a = raw.args;
    let request = match raw.action.as_str() {
        "version" => Ok(Request::Version),
        "subscribe" => args(a).map(Request::Subscribe),
        "poll" => args(a).map(Request::Poll),
        "fetch" => args(a).map(Request::Fetch),
        "fetch_block" => args(a).map(Request::FetchBlock),
        "fetch_json_meta" => args(a).map(Request::FetchJsonMeta),
        "fetch_raw" => args(a).map(Request::FetchRaw),
        "fetch_raw_data" => args(a).map(Request::FetchRawData),
        "commit" => args(a).map(Request::Commit),
        "commit_offset" => args(a).map(Request::CommitOffset),
        "seek" => args(a).map(Request::Seek),
        "committed" => args(a).map(Request::Committed),
        "position" => args(a).map(Request::Position),
        "assignment" => args(a).map(Request::Assignment),
        "unsubscribe" => Ok(Request::Unsubscribe),
        other => Err(escape_controls(format!("unknown action: {other}"))),
    };
    Ok(Envelope {
        action: raw.action,
        req_id,
        request,
    })
}

/// Escapes control characters a client's input brought into an error message (it stays one line).
fn escape_controls(message: String) -> String {
    if !message.contains(char::is_control) {
        return message;
    }
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Accepts a string, a boolean, a number or null as an optional string (clients differ).
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Json>::deserialize(d)? {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SubscribeArgs {
    #[serde(default, deserialize_with = "lenient")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub db: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub client_id: Option<String>,
    /// `offset_rest` (sic) from the Rust client; taosAdapter also takes `offset_reset`.
    #[serde(default, deserialize_with = "lenient", alias = "offset_reset")]
    pub offset_rest: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub snapshot_enable: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub with_table_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub auto_commit: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub auto_commit_interval_ms: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub offset_seek: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    /// Newer clients: extra consumer configuration (`session.timeout.ms`, …).
    #[serde(default)]
    pub config: Option<std::collections::HashMap<String, Json>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PollArgs {
    #[serde(default)]
    pub blocking_time: i64,
    /// Newer clients: the id of the last message they received; a different cached message is re-sent.
    #[serde(default)]
    pub message_id: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MessageArgs {
    #[serde(default)]
    pub message_id: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OffsetArgs {
    pub topic: String,
    pub vgroup_id: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TopicVgroup {
    pub topic: String,
    pub vgroup_id: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TopicVgroupsArgs {
    pub topic_vgroup_ids: Vec<TopicVgroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TopicArgs {
    pub topic: String,
}

/// Parses a boolean option as taosAdapter does ("true"/"false", any case); `None` → `default`.
pub fn parse_bool(name: &str, v: Option<&str>, default: bool) -> Result<bool, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(s) => Err(format!("{name}: expected true or false, got {s:?}")),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Replies

/// The fields every reply carries.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    pub code: i32,
    pub message: &'a str,
    pub action: &'a str,
    pub req_id: u64,
    pub timing: u64,
}

#[derive(Serialize)]
struct WithBody<'a, T: Serialize> {
    #[serde(flatten)]
    header: Header<'a>,
    #[serde(flatten)]
    body: T,
}

/// A success reply: the header with `code` 0 plus `body`'s fields.
pub fn ok<T: Serialize>(action: &str, req_id: u64, timing: u64, body: T) -> String {
    serde_json::to_string(&WithBody {
        header: Header {
            code: 0,
            message: "",
            action,
            req_id,
            timing,
        },
        body,
    })
    .expect("replies serialize")
}

#[derive(Serialize)]
pub struct Empty {}

/// An error reply. It carries, per action, the fields the 0.12.3 client requires even on errors (its reply
/// types have required fields; a missing one would kill its reader task).
pub fn error(action: &str, req_id: u64, message_id: Option<u64>, e: &TdError) -> String {
    let mut v = serde_json::json!({
        "code": e.code & 0xFFFF,
        "message": e.message,
        "action": action,
        "req_id": req_id,
        "timing": 0,
    });
    let m = v.as_object_mut().expect("object");
    if let Some(id) = message_id {
        m.insert("message_id".into(), id.into());
    }
    match action {
        "committed" => {
            m.insert("committed".into(), Json::Array(vec![]));
        }
        "position" => {
            m.insert("position".into(), Json::Array(vec![]));
        }
        "fetch_json_meta" => {
            m.insert("data".into(), Json::Null);
        }
        "assignment" => {
            m.insert("assignment".into(), Json::Array(vec![]));
        }
        "version" => {
            m.insert("version".into(), "".into());
        }
        _ => {}
    }
    v.to_string()
}

#[derive(Debug, Serialize)]
pub struct VersionReply<'a> {
    pub version: &'a str,
}

#[derive(Debug, Default, Serialize)]
pub struct PollReply<'a> {
    pub have_message: bool,
    pub topic: &'a str,
    pub database: &'a str,
    pub vgroup_id: i32,
    pub message_type: u8,
    pub message_id: u64,
    pub offset: i64,
}

#[derive(Debug, Serialize)]
pub struct FetchReply<'a> {
    pub message_id: u64,
    pub completed: bool,
    pub table_name: Option<&'a str>,
    pub rows: usize,
    pub fields_count: usize,
    pub fields_names: Option<Vec<&'a str>>,
    pub fields_types: Option<Vec<u8>>,
    pub fields_lengths: Option<Vec<u32>>,
    pub precision: u8,
}

#[derive(Debug, Serialize)]
pub struct MetaReply<'a> {
    pub message_id: u64,
    pub data: &'a Json,
}

#[derive(Debug, Serialize)]
pub struct MessageIdReply {
    pub message_id: u64,
}

#[derive(Debug, Serialize)]
pub struct CommittedReply {
    pub committed: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub struct PositionReply {
    pub position: Vec<i64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AssignmentItem {
    pub vgroup_id: i32,
    pub offset: i64,
    pub begin: i64,
    pub end: i64,
}

#[derive(Debug, Serialize)]
pub struct AssignmentReply {
    pub assignment: Vec<AssignmentItem>,
}

#[derive(Debug, Serialize)]
pub struct CommitOffsetReply<'a> {
    pub topic: &'a str,
    pub vgroup_id: i32,
    pub offset: i64,
}

/// The binary reply to `fetch_block`: `[u64 timing][u64 req_id][u64 message_id][raw block]`, routed by req_id.
pub fn fetch_block_frame(timing: u64, req_id: u64, message_id: u64, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + block.len());
    out.extend_from_slice(&timing.to_le_bytes());
    out.extend_from_slice(&req_id.to_le_bytes());
    out.extend_from_slice(&message_id.to_le_bytes());
    out.extend_from_slice(block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_0_12_3_subscribe() {
        let text = r#"{"action":"subscribe","args":{"req_id":1,"user":"root","password":"taosdata","db":"",
            "group_id":"g","client_id":null,"offset_rest":"earliest","snapshot_enable":"false",
            "with_table_name":"true","auto_commit":"false","auto_commit_interval_ms":null,"offset_seek":null,
            "topics":["t"]}}"#;
        let env = parse(text).unwrap();
        assert_eq!(env.req_id, 1);
        let Ok(Request::Subscribe(s)) = env.request else {
            panic!("{:?}", env.request)
        };
        assert_eq!(s.group_id.as_deref(), Some("g"));
        assert_eq!(s.offset_rest.as_deref(), Some("earliest"));
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.client_id, None);
    }

    #[test]
    fn parses_newer_clients_and_reports_bad_args_with_their_req_id() {
        let env =
            parse(r#"{"action":"poll","args":{"req_id":7,"blocking_time":500,"message_id":3}}"#).unwrap();
        assert_eq!(
            env.request,
            Ok(Request::Poll(PollArgs {
                blocking_time: 500,
                message_id: Some(3)
            }))
        );
        let env = parse(r#"{"action":"subscribe","args":{"req_id":2,"offset_reset":"latest","auto_commit":false,"topics":["a"]}}"#).unwrap();
        let Ok(Request::Subscribe(s)) = env.request else {
            panic!()
        };
        assert_eq!(s.offset_rest.as_deref(), Some("latest"));
        assert_eq!(s.auto_commit.as_deref(), Some("false"));
        let env = parse(r#"{"action":"seek","args":{"req_id":9,"topic":"t"}}"#).unwrap();
        assert_eq!(env.req_id, 9);
        assert!(env.request.unwrap_err().contains("vgroup_id"));
        let env = parse(r#"{"action":"dance","args":{"req_id":4}}"#).unwrap();
        assert_eq!(env.request, Err("unknown action: dance".into()));
        // Found by the `tmq_request` fuzz target: client input must not break the message's line.
        let env = parse(r#"["da\nnce"]"#).unwrap();
        assert_eq!(env.request, Err("unknown action: da\\nnce".into()));
        assert!(parse("not json").is_err());
    }

    #[test]
    fn replies_carry_the_header_and_required_fields() {
        let s = ok(
            "commit_offset",
            5,
            1,
            CommitOffsetReply {
                topic: "t",
                vgroup_id: 2,
                offset: 9,
            },
        );
        let v: Json = serde_json::from_str(&s).unwrap();
        assert_eq!(v["code"], 0);
        assert_eq!(v["message"], "");
        assert_eq!(v["req_id"], 5);
        assert_eq!(v["offset"], 9);
        let e: Json = serde_json::from_str(&error("committed", 3, None, &TdError::new(0x2603, "x"))).unwrap();
        assert_eq!(e["committed"], serde_json::json!([]));
        assert_eq!(e["code"], 0x2603);
        let e: Json =
            serde_json::from_str(&error("fetch", 3, Some(8), &TdError::new(0x10003E1, "x"))).unwrap();
        assert_eq!(e["code"], 0x03E1);
        assert_eq!(e["message_id"], 8);
        assert_eq!(parse_bool("b", Some("TRUE"), false), Ok(true));
        assert!(parse_bool("b", Some("yes"), false).is_err());
        let frame = fetch_block_frame(1, 2, 3, &[9, 9]);
        assert_eq!(frame.len(), 26);
        assert_eq!(&frame[8..16], &2u64.to_le_bytes());
    }
}
