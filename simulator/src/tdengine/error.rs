//! TDengine errors as the stand-in reports them: the code taosAdapter puts on the wire (the low 16 bits of
//! TDengine's `0x8000xxxx`) and a message in TDengine's wording.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Error as WsError;

/// Error codes the stand-in uses (§6 of the protocol reference; TDengine's `taoserror.h`).
pub mod code {
    pub const INVALID_PARA: u32 = 0x0118;
    pub const AUTH_FAILURE: u32 = 0x0357;
    pub const STB_ALREADY_EXIST: u32 = 0x0360;
    pub const STB_NOT_EXIST: u32 = 0x0362;
    pub const TAG_ALREADY_EXIST: u32 = 0x0369;
    pub const TAG_NOT_EXIST: u32 = 0x036A;
    pub const COLUMN_ALREADY_EXIST: u32 = 0x036B;
    pub const COLUMN_NOT_EXIST: u32 = 0x036C;
    pub const DB_ALREADY_EXIST: u32 = 0x0381;
    pub const DB_NOT_EXIST: u32 = 0x0388;
    pub const TOPIC_ALREADY_EXIST: u32 = 0x03E0;
    pub const TOPIC_NOT_EXIST: u32 = 0x03E1;
    pub const CONSUMER_NOT_EXIST: u32 = 0x03E6;
    pub const TOPIC_SUBSCRIBED: u32 = 0x03EB;
    pub const TOPIC_MUST_BE_DROPPED: u32 = 0x03ED;
    pub const TABLE_NOT_EXIST_TDB: u32 = 0x0603;
    pub const TABLE_ALREADY_EXIST: u32 = 0x0604;
    pub const SYNTAX_ERROR: u32 = 0x2600;
    pub const INVALID_COLUMN: u32 = 0x2602;
    pub const TABLE_NOT_EXIST: u32 = 0x2603;
    pub const WRONG_VALUE_TYPE: u32 = 0x2605;
    pub const NOT_SINGLE_GROUP: u32 = 0x260C;
    pub const TAGS_NOT_MATCHED: u32 = 0x260D;
    pub const INVALID_TAG_NAME: u32 = 0x260E;
    pub const VALUE_TOO_LONG: u32 = 0x2610;
    pub const DB_NOT_SPECIFIED: u32 = 0x2616;
    pub const INVALID_IDENTIFIER_NAME: u32 = 0x2617;
    pub const CORRESPONDING_STABLE_ERR: u32 = 0x2618;
    pub const INVALID_DB_OPTION: u32 = 0x2619;
    pub const ONLY_ONE_JSON_TAG: u32 = 0x2633;
    pub const INCORRECT_TIMESTAMP_VAL: u32 = 0x2635;
    pub const INVALID_TOPIC_QUERY: u32 = 0x2639;
    pub const DUPLICATED_COLUMN: u32 = 0x263C;
    pub const INVALID_COLUMNS_NUM: u32 = 0x263F;
    pub const INVALID_FIRST_COLUMN: u32 = 0x2641;
    pub const INVALID_VAR_COLUMN_LEN: u32 = 0x2642;
    pub const INVALID_FUNCTION: u32 = 0x2800;
    pub const ADAPTER: u32 = 0xFFFF;
}

/// An error with TDengine's code, as sent in a reply's `code`/`message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code:#06X}] {message}")]
pub struct TdError {
    pub code: u32,
    pub message: String,
}

impl TdError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A syntax error in TDengine's words: `syntax error near "<rest of statement>"` plus our reason, and
    /// the byte position so a reader can find it.
    pub fn syntax(sql: &str, pos: usize, reason: &str) -> Self {
        let pos = pos.min(sql.len());
        let start = (0..=pos).rev().find(|&i| sql.is_char_boundary(i)).unwrap_or(0);
        let near: String = sql[start..].chars().take(32).collect();
        Self::new(
            code::SYNTAX_ERROR,
            format!("syntax error near \"{near}\" at position {pos} ({reason})"),
        )
    }

    pub fn auth() -> Self {
        Self::new(code::AUTH_FAILURE, "Authentication failure")
    }
    pub fn db_not_exist(db: &str) -> Self {
        Self::new(code::DB_NOT_EXIST, format!("Database not exist: {db}"))
    }
    pub fn table_not_exist(table: &str) -> Self {
        Self::new(code::TABLE_NOT_EXIST, format!("Table does not exist: {table}"))
    }
    pub fn stable_not_exist(table: &str) -> Self {
        Self::new(code::STB_NOT_EXIST, format!("STable not exist: {table}"))
    }
    pub fn topic_not_exist(topic: &str) -> Self {
        Self::new(code::TOPIC_NOT_EXIST, format!("Topic not exist: {topic}"))
    }
    pub fn db_not_specified() -> Self {
        Self::new(code::DB_NOT_SPECIFIED, "Database not specified")
    }
    pub fn invalid_column(name: &str) -> Self {
        Self::new(code::INVALID_COLUMN, format!("Invalid column name: {name}"))
    }
}

pub type TdResult<T> = Result<T, TdError>;

/// The close frame that answers a client's bad frame (too big → 1009, protocol violation → 1002), or
/// `None` when the connection itself failed and nothing can be sent.
pub(crate) fn refusal(e: &WsError) -> Option<CloseFrame> {
    let (code, reason) = match e {
        WsError::Capacity(c) => (CloseCode::Size, c.to_string()),
        WsError::Protocol(p) => (CloseCode::Protocol, p.to_string()),
        WsError::Utf8 => (CloseCode::Invalid, "text frame is not UTF-8".to_string()),
        _ => return None,
    };
    // A close reason must fit a control frame (125 bytes, 2 of them the code).
    let mut reason = reason;
    while reason.len() > 123 {
        reason.pop();
    }
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_frames_get_a_close_code_and_a_short_reason() {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        });
        assert_eq!(refusal(&too_big).unwrap().code, CloseCode::Size);
        let e =
            WsError::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::UnmaskedFrameFromClient);
        let frame = refusal(&e).unwrap();
        assert_eq!(frame.code, CloseCode::Protocol);
        assert!(frame.reason.len() <= 123);
        assert!(refusal(&WsError::ConnectionClosed).is_none());
    }
}
