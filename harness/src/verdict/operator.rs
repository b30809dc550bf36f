//! What operators rely on beyond the rows (`[expect.dead_letters]`, `[expect.wal_gap]`,
//! `[expect.properties]`): dead letters on their topic, each accounting for the row it stands for; the
//! `wal_gap` events on `<status_topic>/events` and the rows the gap took; the MQTT 5 properties of every
//! row. Pure like the rest of the verdict: the judge reads what the subscribers and bridges reported.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::payload::{self, Payload};
use super::BridgeOutcome;
use crate::recorder::Delivered;
use crate::scenario::{Expect, MqttVersion, SubscriberDef};

/// The side output's failures, and what it accounts for among the missing rows.
#[derive(Debug, Default)]
pub struct SideOutput {
    pub failures: Vec<String>,
    pub accounts: Accounts,
}

/// Missing rows the scenario expects to be missing: dead-lettered ones (by row key, or by table for a
/// dead letter that carries only the row's size) and, up to `[expect.wal_gap].rows`, never-published
/// ones the gap took. Cloned per subscriber.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    by_key: HashMap<String, u64>,
    by_table: HashMap<String, u64>,
    gap_rows: Option<u64>,
    gap_used: u64,
}

impl Accounts {
    /// Whether a dead letter stands for the missing row with `key` in `table` (used up if so).
    pub fn dead_letter(&mut self, key: &str, table: &str) -> bool {
        for (map, k) in [(&mut self.by_key, key), (&mut self.by_table, table)] {
            if let Some(n) = map.get_mut(k).filter(|n| **n > 0) {
                *n -= 1;
                return true;
            }
        }
        false
    }

    /// Whether a never-published missing row is one the WAL gap took (up to the expected count).
    pub fn wal_gap(&mut self) -> bool {
        let take = self.gap_used < self.gap_rows.unwrap_or(0);
        self.gap_used += u64::from(take);
        take
    }

    /// After a subscriber's rows: the gap must have taken exactly the expected rows.
    pub fn unmet(&self, who: &str) -> Option<String> {
        let want = self.gap_rows?;
        (self.gap_used != want).then(|| {
            format!(
                "{who}: {} row(s) missing as lost to the WAL gap, the scenario expects {want}",
                self.gap_used
            )
        })
    }
}

/// Judges the side output of a run; `judged` are the row subscribers.
pub fn judge(
    e: &Expect,
    judged: &[&SubscriberDef],
    delivered: &[Delivered],
    bridges: &[BridgeOutcome],
) -> SideOutput {
    let mut out = SideOutput::default();
    let counted: Vec<_> = bridges.iter().filter_map(|b| b.counters.as_ref()).collect();
    if let Some(dl) = &e.dead_letters {
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for d in delivered.iter().filter(|d| d.subscriber == dl.subscriber) {
            match parse_dead_letter(&d.payload) {
                Ok(letter) => {
                    *got.entry(letter.reason).or_default() += letter.rows;
                    match letter.stands_for {
                        StandsFor::Row(key) => *out.accounts.by_key.entry(key).or_default() += 1,
                        StandsFor::Table(t) => *out.accounts.by_table.entry(t).or_default() += 1,
                        StandsFor::Nothing => {}
                    }
                }
                Err(why) => out.failures.push(format!(
                    "{}: malformed dead letter on {:?}: {why}",
                    dl.subscriber, d.topic
                )),
            }
        }
        if got != dl.reasons {
            out.failures.push(format!(
                "{}: dead letters by reason {got:?}, the scenario expects {:?}",
                dl.subscriber, dl.reasons
            ));
        }
        if !counted.is_empty() {
            let mut counters: BTreeMap<String, u64> = BTreeMap::new();
            for c in &counted {
                for (r, n) in &c.dead_lettered {
                    *counters.entry(r.clone()).or_default() += n;
                }
            }
            if counters != dl.reasons {
                out.failures.push(format!(
                    "bridges counted dead letters {counters:?} (tmq2mqtt_dead_lettered_total), the scenario expects {:?}",
                    dl.reasons
                ));
            }
        }
    }
    if let Some(gap) = &e.wal_gap {
        out.accounts.gap_rows = Some(gap.rows);
        let mut versions = 0;
        for d in delivered.iter().filter(|d| d.subscriber == gap.subscriber) {
            match wal_gap_versions(&d.payload) {
                Ok(Some(n)) => versions += n,
                Ok(None) => {}
                Err(why) => out.failures.push(format!(
                    "{}: malformed event on {:?}: {why}",
                    gap.subscriber, d.topic
                )),
            }
            if d.retain {
                out.failures
                    .push(format!("{}: event on {:?} is retained", gap.subscriber, d.topic));
            }
        }
        if versions != gap.versions {
            out.failures.push(format!(
                "{}: wal_gap events report {versions} lost version(s), the scenario expects {}",
                gap.subscriber, gap.versions
            ));
        }
        let counter: u64 = counted.iter().map(|c| c.wal_gap_versions).sum();
        if !counted.is_empty() && counter != gap.versions {
            out.failures.push(format!(
                "bridges counted {counter} lost version(s) (tmq2mqtt_wal_gap_versions_total), the scenario expects {}",
                gap.versions
            ));
        }
    }
    if let Some(p) = &e.properties {
        for sub in judged.iter().filter(|s| s.version == MqttVersion::V5) {
            let mut bad = Vec::new();
            let mut rows = 0;
            for d in delivered.iter().filter(|d| d.subscriber == sub.name) {
                let Ok(Payload::Row { data, offset }) = payload::parse(&d.payload) else {
                    continue;
                };
                rows += 1;
                let props = d.v5.clone().unwrap_or_default();
                let prop = |k: &str| {
                    props
                        .user_properties
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                };
                if p.user_properties {
                    let want = [
                        ("database", Some(offset.database.clone())),
                        ("topic", Some(offset.topic.clone())),
                        ("vgroup_id", Some(offset.vgroup_id.to_string())),
                        ("offset", Some(offset.offset.to_string())),
                        (
                            "table",
                            data.get("tbname").and_then(Value::as_str).map(String::from),
                        ),
                    ];
                    for (k, v) in want {
                        let ok = match (&v, prop(k)) {
                            (_, None) => false,
                            (Some(v), Some(got)) => v == got,
                            (None, Some(got)) => !got.is_empty(),
                        };
                        if !ok {
                            bad.push(format!(
                                "user property {k:?} is {:?}, payload says {v:?}",
                                prop(k)
                            ));
                        }
                    }
                }
                if let Some(max) = p.message_expiry {
                    match props.message_expiry {
                        Some(left) if (1..=max).contains(&left) => {}
                        other => bad.push(format!("message expiry {other:?}, want 1..={max} s")),
                    }
                }
            }
            if !bad.is_empty() {
                out.failures.push(format!(
                    "{}: {} property mismatch(es) over {rows} row(s), first: {}",
                    sub.name,
                    bad.len(),
                    bad[0]
                ));
            }
            if rows == 0 {
                out.failures
                    .push(format!("{}: no rows to judge the MQTT 5 properties on", sub.name));
            }
        }
    }
    out
}

/// What a dead letter stands for among the expected rows.
#[derive(Debug, PartialEq)]
enum StandsFor {
    /// The row with this key (the dead letter carries its data).
    Row(String),
    /// A row of this table (the dead letter carries only its size).
    Table(String),
    /// A meta event or a batch: no single row.
    Nothing,
}

#[derive(Debug, PartialEq)]
struct DeadLetter {
    reason: String,
    rows: u64,
    stands_for: StandsFor,
}

/// `{"reason","topic","table", "data"|"meta"|"rows"|"bytes", "offset"}`, checked strictly.
fn parse_dead_letter(bytes: &[u8]) -> Result<DeadLetter, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut top) = v else {
        return Err("not a JSON object".into());
    };
    let reason = match top.remove("reason") {
        Some(Value::String(r)) => r,
        _ => return Err("no \"reason\" string".into()),
    };
    let mut text_or_null = |k: &str| match top.remove(k) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) => Ok(None),
        _ => Err(format!("\"{k}\" is neither a string nor null")),
    };
    let _topic = text_or_null("topic")?;
    let table = text_or_null("table")?;
    top.remove("offset")
        .ok_or("no \"offset\" object")
        .and_then(|o| payload::parse_offset(o).map_err(|_| "bad \"offset\" object"))?;
    let (rows, stands_for) = if let Some(data) = top.remove("data") {
        let Value::Object(data) = data else {
            return Err("\"data\" is not an object".into());
        };
        (1, StandsFor::Row(payload::row_key(&data)))
    } else if let Some(Value::Array(rows)) = top.remove("rows") {
        (rows.len() as u64, StandsFor::Nothing)
    } else if top.remove("meta").is_some() {
        (1, StandsFor::Nothing)
    } else if let Some(Value::Number(_)) = top.remove("bytes") {
        (1, table.map_or(StandsFor::Nothing, StandsFor::Table))
    } else {
        return Err("none of \"data\", \"rows\", \"meta\", \"bytes\"".into());
    };
    if let Some(extra) = top.keys().next() {
        return Err(format!("unexpected top-level key {extra:?}"));
    }
    Ok(DeadLetter {
        reason,
        rows,
        stands_for,
    })
}

/// The lost versions of a `wal_gap` event (`None` for other events).
fn wal_gap_versions(bytes: &[u8]) -> Result<Option<u64>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if v.get("event").and_then(Value::as_str) != Some("wal_gap") {
        return Ok(None);
    }
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_i64)
            .ok_or(format!("no \"{k}\" number"))
    };
    let (first, last, versions) = (n("first")?, n("last")?, n("versions")?);
    if v.get("topic").and_then(Value::as_str).is_none() || n("vgroup_id").is_err() {
        return Err("no \"topic\" or \"vgroup_id\"".into());
    }
    if last - first + 1 != versions || versions < 1 {
        return Err(format!("versions {versions} is not {first}..={last}"));
    }
    Ok(Some(versions as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_stand_for_their_row_or_its_table() {
        let off = r#""offset":{"database":"db","topic":"t","vgroupId":2,"offset":5}"#;
        let with_data = format!(
            r#"{{"reason":"invalid_topic","topic":"m/a+b","table":"a+b","data":{{"ts":1,"v":2}},{off}}}"#
        );
        let l = parse_dead_letter(with_data.as_bytes()).unwrap();
        assert_eq!(l.reason, "invalid_topic");
        assert!(matches!(l.stands_for, StandsFor::Row(_)));
        let sized = format!(r#"{{"reason":"too_large","topic":"m/big","table":"big","bytes":9000,{off}}}"#);
        let l = parse_dead_letter(sized.as_bytes()).unwrap();
        assert_eq!(l.stands_for, StandsFor::Table("big".into()));
        let extra = format!(r#"{{"reason":"too_large","topic":null,"table":null,"bytes":1,"x":1,{off}}}"#);
        assert!(parse_dead_letter(extra.as_bytes()).is_err());
        assert!(parse_dead_letter(br#"{"reason":"too_large","bytes":1}"#).is_err());
        let mut a = Accounts::default();
        a.by_table.insert("big".into(), 1);
        assert!(a.dead_letter("k", "big"));
        assert!(!a.dead_letter("k", "big"), "used up");
    }

    #[test]
    fn a_wal_gap_event_counts_its_versions() {
        let ev = br#"{"event":"wal_gap","topic":"t","vgroup_id":2,"first":4,"last":5,"versions":2}"#;
        assert_eq!(wal_gap_versions(ev), Ok(Some(2)));
        assert_eq!(wal_gap_versions(br#"{"event":"other"}"#), Ok(None));
        let wrong = br#"{"event":"wal_gap","topic":"t","vgroup_id":2,"first":4,"last":5,"versions":3}"#;
        assert!(wal_gap_versions(wrong).is_err());
        let mut a = Accounts {
            gap_rows: Some(1),
            ..Accounts::default()
        };
        assert!(a.wal_gap());
        assert!(!a.wal_gap());
        assert_eq!(a.unmet("s"), None);
    }
}
