//! MQTT 5 publish properties of rows and meta events: the payload format, the content type, the Message
//! Expiry Interval (`message_expiry=`) and, with `user_properties=true`, the row's origin as user
//! properties, so a consumer can de-duplicate and route without parsing the payload.
//!
//! [`Origin::wire_len`] says what the user properties add to a PUBLISH, so the encode stage's
//! packet-size check (a PUBLISH over `max_packet_size` fails the connection, forever) counts them.

use std::sync::Arc;

use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// Where a row or meta event came from: one TMQ message (and, for rows, one table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub database: Arc<str>,
    pub topic: Arc<str>,
    pub vgroup_id: i32,
    /// The TMQ message's offset, as in the payload's `"offset"` object.
    pub offset: i64,
    /// The table of a row; `None` for meta events.
    pub table: Option<Arc<str>>,
}

impl Origin {
    /// The user properties, in this order: `database`, `topic`, `vgroup_id`, `offset`, then `table`.
    pub fn user_properties(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("database".to_string(), self.database.to_string()),
            ("topic".to_string(), self.topic.to_string()),
            ("vgroup_id".to_string(), self.vgroup_id.to_string()),
            ("offset".to_string(), self.offset.to_string()),
        ];
        if let Some(table) = &self.table {
            v.push(("table".to_string(), table.to_string()));
        }
        v
    }

    /// Bytes the user properties add to a PUBLISH: per property an identifier byte and two
    /// length-prefixed strings.
    pub fn wire_len(&self) -> usize {
        self.user_properties()
            .iter()
            .map(|(k, v)| 1 + 2 + k.len() + 2 + v.len())
            .sum()
    }
}

/// The properties every row, meta or dead-letter publish carries under MQTT 5.
pub(super) fn row_properties(
    origin: Option<&Origin>,
    user_properties: bool,
    message_expiry: Option<u32>,
) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        message_expiry_interval: message_expiry,
        user_properties: match origin {
            Some(o) if user_properties => o.user_properties(),
            _ => Vec::new(),
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_name_the_origin_and_their_length_is_what_goes_on_the_wire() {
        let row = Origin {
            database: "power".into(),
            topic: "topic_meters".into(),
            vgroup_id: 3,
            offset: 1234,
            table: Some("d0".into()),
        };
        let props = row_properties(Some(&row), true, Some(60));
        assert_eq!(
            props.user_properties,
            [
                ("database".into(), "power".into()),
                ("topic".into(), "topic_meters".into()),
                ("vgroup_id".into(), "3".into()),
                ("offset".into(), "1234".into()),
                ("table".into(), "d0".into()),
            ]
        );
        assert_eq!(props.message_expiry_interval, Some(60));
        // Compare with what rumqttc writes: the same publish with and without the user properties.
        let size = |p: PublishProperties| {
            let mut publish = rumqttc::v5::mqttbytes::v5::Publish::new(
                "t",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                "{}",
                Some(p),
            );
            publish.pkid = 1;
            let mut buf = bytes::BytesMut::new();
            publish.write(&mut buf).unwrap();
            buf.len()
        };
        let with = size(row_properties(Some(&row), true, Some(60)));
        let without = size(row_properties(Some(&row), false, Some(60)));
        assert_eq!(with - without, row.wire_len());
        let meta = Origin { table: None, ..row };
        assert_eq!(meta.user_properties().len(), 4);
        assert!(row_properties(Some(&meta), false, None)
            .user_properties
            .is_empty());
        assert!(row_properties(None, true, None).user_properties.is_empty());
    }
}
