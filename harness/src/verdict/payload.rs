//! The taosx payload shape, checked strictly: `{"data":{…},"offset":{"database","topic","vgroupId","offset"}}`
//! for rows and `{"meta":{…},"offset":{…}}` for meta events. Also the canonical row key the verdict matches
//! delivered messages on (floats compared at FLOAT precision, as TDengine stores them).

use serde_json::{Map, Value};

/// The `offset` object of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadOffset {
    pub database: String,
    pub topic: String,
    pub vgroup_id: i32,
    pub offset: i64,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Row {
        data: Map<String, Value>,
        offset: PayloadOffset,
    },
    Meta {
        meta: Value,
        offset: PayloadOffset,
    },
}

/// Decodes and checks one payload; the error says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut top) = v else {
        return Err("not a JSON object".into());
    };
    let offset = top
        .remove("offset")
        .ok_or("no \"offset\" object")
        .and_then(|o| parse_offset(o).map_err(|_| "bad \"offset\" object"))
        .map_err(|e| e.to_string())?;
    let payload = if let Some(data) = top.remove("data") {
        match data {
            Value::Object(data) => Payload::Row { data, offset },
            _ => return Err("\"data\" is not an object".into()),
        }
    } else if let Some(meta) = top.remove("meta") {
        Payload::Meta { meta, offset }
    } else {
        return Err("neither \"data\" nor \"meta\"".into());
    };
    if let Some(extra) = top.keys().next() {
        return Err(format!("unexpected top-level key {extra:?}"));
    }
    Ok(payload)
}

pub(crate) fn parse_offset(v: Value) -> Result<PayloadOffset, ()> {
    let Value::Object(o) = v else { return Err(()) };
    if o.len() != 4 {
        return Err(());
    }
    Ok(PayloadOffset {
        database: o.get("database").and_then(Value::as_str).ok_or(())?.into(),
        topic: o.get("topic").and_then(Value::as_str).ok_or(())?.into(),
        vgroup_id: o
            .get("vgroupId")
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(())?,
        offset: o.get("offset").and_then(Value::as_i64).ok_or(())?,
    })
}

/// A canonical text of a row's data: keys in their order, floats at f32 precision.
pub fn row_key(data: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        canonical_value(v, &mut out);
    }
    out
}

fn canonical_value(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            out.push_str(&format!("{}", f as f32));
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"data":{"ts":1756957064991,"tbname":"tb","f1":1,"t1":1},"offset":{"database":"db","topic":"topic_meters","vgroupId":2,"offset":8}}"#;

    #[test]
    fn the_seed_message_parses() {
        let Payload::Row { data, offset } = parse(SEED.as_bytes()).unwrap() else {
            panic!("row expected")
        };
        assert_eq!(data.keys().collect::<Vec<_>>(), ["ts", "tbname", "f1", "t1"]);
        assert_eq!(
            offset,
            PayloadOffset {
                database: "db".into(),
                topic: "topic_meters".into(),
                vgroup_id: 2,
                offset: 8
            }
        );
        assert_eq!(row_key(&data), "ts=1756957064991,tbname=\"tb\",f1=1,t1=1");
    }

    #[test]
    fn malformed_payloads_are_named() {
        for (text, why) in [
            ("nope", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"data":{}}"#, "no \"offset\""),
            (
                r#"{"data":{},"offset":{"database":"d","topic":"t","vgroupId":2}}"#,
                "bad \"offset\"",
            ),
            (
                r#"{"data":1,"offset":{"database":"d","topic":"t","vgroupId":2,"offset":1}}"#,
                "not an object",
            ),
            (
                r#"{"rows":[],"offset":{"database":"d","topic":"t","vgroupId":2,"offset":1}}"#,
                "neither",
            ),
            (
                r#"{"data":{},"x":1,"offset":{"database":"d","topic":"t","vgroupId":2,"offset":1}}"#,
                "unexpected top-level key",
            ),
        ] {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn meta_payloads_parse() {
        let text =
            r#"{"meta":{"type":"create"},"offset":{"database":"d","topic":"t","vgroupId":2,"offset":1}}"#;
        assert!(matches!(parse(text.as_bytes()), Ok(Payload::Meta { .. })));
    }

    #[test]
    fn floats_compare_at_float_precision() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"current":10.3}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(&format!(r#"{{"current":{}}}"#, 10.3f32 as f64)).unwrap();
        assert_eq!(row_key(&a), row_key(&b));
        let c: Map<String, Value> = serde_json::from_str(r#"{"current":10.4}"#).unwrap();
        assert_ne!(row_key(&a), row_key(&c));
    }
}
