//! Dead letters (`dead_letter_topic=`): a row or meta event the bridge cannot publish — its topic lacks a
//! variable, is no valid topic name, the PUBLISH would exceed `max_packet_size`, or an MQTT 5 broker
//! rejected it — is published to the dead-letter topic instead of only being counted, so nothing vanishes
//! without a trace an operator can subscribe to.
//!
//! The dead letter is built from the payload the row would have had (taosx's
//! `{"data":{…},"offset":{…}}`, a meta's `{"meta":…}` or a batch's `{"rows":[…]}`, always ending with the
//! `"offset"` object):
//! `{"reason":"too_large","topic":<would-be topic or null>,"table":<table or null>,"data":{…},"offset":{…}}`,
//! or, when that does not fit the packet limit, without the content and with its size instead:
//! `{"reason":…,"topic":…,"table":…,"bytes":N,"offset":{…}}`.

use bytes::{BufMut, Bytes, BytesMut};

/// The key that opens a payload's trailing offset object. Inside JSON strings a `"` is escaped, so the
/// last occurrence is the real key.
const OFFSET_KEY: &[u8] = b",\"offset\":{";

/// Builds the dead letter of `payload`: with the payload's content when the dead letter takes at most
/// `room` bytes, else with its size only. `None` when even that does not fit (or `payload` has no
/// trailing offset object, which the encoder never produces).
pub fn encode(
    reason: &str,
    topic: Option<&str>,
    table: Option<&str>,
    payload: &[u8],
    room: usize,
) -> Option<Bytes> {
    let offset_at = payload.windows(OFFSET_KEY.len()).rposition(|w| w == OFFSET_KEY)?;
    let mut head = Vec::with_capacity(64 + topic.map_or(0, str::len) + table.map_or(0, str::len));
    head.extend_from_slice(b"{\"reason\":");
    json_str(&mut head, Some(reason));
    head.extend_from_slice(b",\"topic\":");
    json_str(&mut head, topic);
    head.extend_from_slice(b",\"table\":");
    json_str(&mut head, table);
    head.push(b',');
    // The payload without its opening brace: `"data":{…},"offset":{…}}`.
    let whole = payload.get(1..).filter(|_| payload.first() == Some(&b'{'))?;
    let mut out = BytesMut::new();
    if head.len() + whole.len() <= room {
        out.reserve(head.len() + whole.len());
        out.put_slice(&head);
        out.put_slice(whole);
    } else {
        let bytes = format!("\"bytes\":{}", payload.len());
        let offset = &payload[offset_at..];
        if head.len() + bytes.len() + offset.len() > room {
            return None;
        }
        out.put_slice(&head);
        out.put_slice(bytes.as_bytes());
        out.put_slice(offset);
    }
    Some(out.freeze())
}

fn json_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => serde_json::to_writer(out, s).expect("writing JSON to memory"),
        None => out.extend_from_slice(b"null"),
    }
}

/// Where a row or meta event goes when it cannot be published: the dead-letter topic rendered for its
/// message, and its table. Carried by each publish (shared per block) so that a broker's rejection can
/// still be turned into a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub topic: std::sync::Arc<str>,
    pub table: Option<std::sync::Arc<str>>,
}

impl Route {
    /// The dead letter of `payload` (`reason`, the topic it would have had), sized for a PUBLISH of at
    /// most `max_packet_size` bytes whose properties take `extra` bytes beyond the fixed allowance.
    pub fn letter(
        &self,
        reason: &str,
        would_be: Option<&str>,
        payload: &[u8],
        max_packet_size: usize,
        extra: usize,
    ) -> Option<Bytes> {
        let room = max_packet_size.checked_sub(PUBLISH_OVERHEAD + self.topic.len() + extra)?;
        encode(reason, would_be, self.table.as_deref(), payload, room)
    }
}

/// A PUBLISH's bytes besides topic and payload: fixed header ≤ 5, topic length 2, packet id 2, and MQTT 5
/// properties (format indicator, content type, expiry) with room to spare; user properties come on top.
pub const PUBLISH_OVERHEAD: usize = 5 + 2 + 2 + 32;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const ROW: &str = r#"{"data":{"ts":1,"tbname":"a+b","f1":7},"offset":{"database":"db","topic":"t","vgroupId":2,"offset":5}}"#;

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn a_dead_letter_carries_the_row_when_it_fits_else_its_size() {
        let d = encode("invalid_topic", Some("m/a+b"), Some("a+b"), ROW.as_bytes(), 1000).unwrap();
        assert_eq!(
            parse(&d),
            json!({"reason":"invalid_topic","topic":"m/a+b","table":"a+b",
                   "data":{"ts":1,"tbname":"a+b","f1":7},
                   "offset":{"database":"db","topic":"t","vgroupId":2,"offset":5}})
        );
        let d = encode("too_large", Some("m/x"), None, ROW.as_bytes(), 130).unwrap();
        assert!(d.len() <= 130);
        assert_eq!(
            parse(&d),
            json!({"reason":"too_large","topic":"m/x","table":null,"bytes":ROW.len(),
                   "offset":{"database":"db","topic":"t","vgroupId":2,"offset":5}})
        );
        assert_eq!(encode("too_large", None, None, ROW.as_bytes(), 60), None);
        // Missing variable: no topic; a meta payload keeps its "meta" key.
        let meta = r#"{"meta":{"type":"drop","note":",\"offset\":{"},"offset":{"database":"db","topic":"t","vgroupId":1,"offset":9}}"#;
        let d = encode("missing_variable", None, None, meta.as_bytes(), 1000).unwrap();
        let v = parse(&d);
        assert_eq!(v["topic"], Value::Null);
        assert_eq!(v["meta"]["type"], "drop");
        let d = encode("too_large", None, None, meta.as_bytes(), 130).unwrap();
        assert_eq!(
            parse(&d)["offset"]["offset"],
            9,
            "the real offset object, not the one in a string"
        );
        assert_eq!(encode("too_large", None, None, b"not json", 1000), None);
    }
}
