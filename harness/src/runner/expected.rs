//! Which rows a topic must carry: from the meter fleet's write log (every write, in write order, replaced rows
//! included — TMQ carries each write) projected on the topic's columns, or, for scenarios written in literal
//! SQL, from querying the topic's own SELECT.

use std::collections::HashMap;

use serde_json::{Map, Value};
use simulator::meters::{Entry, Outcome, Tags, WriteLogEntry};

use crate::verdict::ExpectedRow;

/// The shape of a `CREATE TOPIC` statement, as far as expectations need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicShape {
    pub name: String,
    pub db: String,
    pub kind: ShapeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeKind {
    /// `AS SELECT cols FROM db.table [WHERE …]`: the select list as written, and the rest after FROM.
    Query { columns: Vec<String>, from: String },
    /// `AS STABLE db.st`.
    Stable { stable: String },
    /// `AS DATABASE db`.
    Database,
}

/// Reads `CREATE TOPIC [IF NOT EXISTS] name [WITH META] AS …`.
pub fn parse_topic(sql: &str) -> Option<TopicShape> {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = sql.split_whitespace().collect();
    let lwords: Vec<&str> = lower.split_whitespace().collect();
    let mut i = lwords.iter().position(|w| *w == "topic")? + 1;
    if lwords.get(i) == Some(&"if") {
        i += 3;
    }
    let name = words.get(i)?.trim_matches('`').to_string();
    let as_pos = lwords.iter().skip(i).position(|w| *w == "as")? + i;
    match *lwords.get(as_pos + 1)? {
        "select" => {
            let sel = lower.find("select")? + "select".len();
            let from = lower.find(" from ")?;
            let columns = sql[sel..from]
                .split(',')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            let rest = sql[from + " from ".len()..].trim().to_string();
            let table = rest.split_whitespace().next()?.to_string();
            let db = table
                .split_once('.')
                .map(|(d, _)| d.trim_matches('`').to_string())?;
            Some(TopicShape {
                name,
                db,
                kind: ShapeKind::Query { columns, from: rest },
            })
        }
        "stable" => {
            let full = words.get(as_pos + 2)?.trim_end_matches(';');
            let (db, st) = full.split_once('.')?;
            Some(TopicShape {
                name,
                db: db.trim_matches('`').into(),
                kind: ShapeKind::Stable {
                    stable: st.trim_matches('`').into(),
                },
            })
        }
        "database" => Some(TopicShape {
            name,
            db: words
                .get(as_pos + 2)?
                .trim_end_matches(';')
                .trim_matches('`')
                .into(),
            kind: ShapeKind::Database,
        }),
        _ => None,
    }
}

const METER_COLUMNS: [&str; 4] = ["ts", "current", "voltage", "phase"];

fn f32_json(v: Option<f32>) -> Value {
    v.and_then(|x| serde_json::Number::from_f64(x as f64))
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Expected rows of `topic` from the fleet's write log entries; `written_at` stamps rows by entry seq.
pub fn from_write_log(
    topic: &TopicShape,
    entries: &[WriteLogEntry],
    written_at: &HashMap<u64, u64>,
) -> Vec<ExpectedRow> {
    let mut tags: HashMap<&str, &Tags> = HashMap::new();
    let mut out = Vec::new();
    for e in entries {
        match &e.what {
            Entry::CreateTable { table, tags: t } => {
                tags.insert(table.as_str(), t);
            }
            Entry::Row { row, .. } if e.outcome == Outcome::Ok => {
                let r = &row.reading;
                let value_of = |col: &str| -> Option<Value> {
                    Some(match col {
                        "ts" => Value::from(row.ts),
                        "tbname" => Value::from(row.table.clone()),
                        "current" => f32_json(r.current),
                        "voltage" => r.voltage.map(Value::from).unwrap_or(Value::Null),
                        "phase" => f32_json(r.phase),
                        "power" => f32_json(r.power.flatten()),
                        "groupid" => tags
                            .get(row.table.as_str())
                            .map(|t| Value::from(t.groupid))
                            .unwrap_or(Value::Null),
                        "location" => tags
                            .get(row.table.as_str())
                            .map(|t| Value::from(t.location.clone()))
                            .unwrap_or(Value::Null),
                        _ => return None,
                    })
                };
                let columns: Vec<String> = match &topic.kind {
                    ShapeKind::Query { columns, .. } => columns
                        .iter()
                        .flat_map(|c| {
                            if c == "*" {
                                METER_COLUMNS.iter().map(|s| s.to_string()).collect()
                            } else {
                                vec![c.to_ascii_lowercase()]
                            }
                        })
                        .collect(),
                    ShapeKind::Stable { .. } | ShapeKind::Database => {
                        let mut c: Vec<String> = METER_COLUMNS.iter().map(|s| s.to_string()).collect();
                        if r.power.is_some() {
                            c.push("power".into());
                        }
                        c
                    }
                };
                let mut data = Map::new();
                for c in columns {
                    data.insert(c.clone(), value_of(&c).unwrap_or(Value::Null));
                }
                out.push(ExpectedRow {
                    seq: e.seq,
                    order: e.step,
                    database: topic.db.clone(),
                    tmq_topic: topic.name.clone(),
                    table: row.table.clone(),
                    vgroup_id: None,
                    ts: row.ts,
                    data,
                    written_at_us: written_at.get(&e.seq).copied(),
                });
            }
            _ => {}
        }
    }
    as_stored(out)
}

/// What TDengine makes of one INSERT: a table's rows sorted by timestamp, and of rows with the same
/// timestamp only the last written (`order` holds the step on entry and the storage position on return).
fn as_stored(rows: Vec<ExpectedRow>) -> Vec<ExpectedRow> {
    let mut by_write: Vec<(u64, usize, ExpectedRow)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r.order, i, r))
        .collect();
    // Step, then table, then timestamp; among equal timestamps the later write last.
    by_write.sort_by(|a, b| (a.0, &a.2.table, a.2.ts, a.1).cmp(&(b.0, &b.2.table, b.2.ts, b.1)));
    let mut out: Vec<ExpectedRow> = Vec::with_capacity(by_write.len());
    for (step, _, row) in by_write {
        if let Some(prev) = out.last_mut() {
            if prev.order == step && prev.table == row.table && prev.ts == row.ts {
                *prev = row;
                continue;
            }
        }
        out.push(row);
    }
    for (i, r) in out.iter_mut().enumerate() {
        r.order = i as u64 + 1;
    }
    out
}

/// The query that lists a topic's rows with their table name last (`None` for database topics).
pub fn select_for(topic: &TopicShape) -> Option<String> {
    match &topic.kind {
        ShapeKind::Query { columns, from } => {
            Some(format!("select {}, tbname from {from}", columns.join(", ")))
        }
        ShapeKind::Stable { stable } => Some(format!("select *, tbname from {}.{stable}", topic.db)),
        ShapeKind::Database => None,
    }
}

/// Expected rows from the topic's query result (rows carry `tbname` as their last column).
pub fn from_select(topic: &TopicShape, rows: Vec<Map<String, Value>>) -> Vec<ExpectedRow> {
    let selects_tbname = matches!(&topic.kind, ShapeKind::Query { columns, .. }
        if columns.iter().any(|c| c.eq_ignore_ascii_case("tbname")));
    let mut out: Vec<ExpectedRow> = rows
        .into_iter()
        .map(|mut data| {
            let table = data
                .get("tbname")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !selects_tbname {
                data.shift_remove("tbname");
            }
            let ts = data.get("ts").and_then(Value::as_i64).unwrap_or(0);
            ExpectedRow {
                seq: 0,
                order: 0,
                database: topic.db.clone(),
                tmq_topic: topic.name.clone(),
                table,
                vgroup_id: None,
                ts,
                data,
                written_at_us: None,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.table.as_str(), a.ts).cmp(&(b.table.as_str(), b.ts)));
    for (i, r) in out.iter_mut().enumerate() {
        r.seq = i as u64 + 1;
        r.order = r.seq;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_topic_kinds() {
        let t = parse_topic("create topic topic_meters as select ts, tbname, f1, t1 from db.meters").unwrap();
        assert_eq!((t.name.as_str(), t.db.as_str()), ("topic_meters", "db"));
        assert_eq!(
            t.kind,
            ShapeKind::Query {
                columns: vec!["ts".into(), "tbname".into(), "f1".into(), "t1".into()],
                from: "db.meters".into()
            }
        );
        assert_eq!(
            select_for(&t).unwrap(),
            "select ts, tbname, f1, t1, tbname from db.meters"
        );
        let t = parse_topic("CREATE TOPIC IF NOT EXISTS s WITH META AS STABLE power.meters").unwrap();
        assert_eq!(
            t.kind,
            ShapeKind::Stable {
                stable: "meters".into()
            }
        );
        assert_eq!(t.name, "s");
        let t = parse_topic("create topic d with meta as database power").unwrap();
        assert_eq!((t.db.as_str(), &t.kind), ("power", &ShapeKind::Database));
        assert!(parse_topic("create table x (ts timestamp)").is_none());
    }

    fn row(order: u64, seq: u64, table: &str, ts: i64) -> ExpectedRow {
        ExpectedRow {
            seq,
            order,
            database: "power".into(),
            tmq_topic: "t".into(),
            table: table.into(),
            vgroup_id: None,
            ts,
            data: Map::new(),
            written_at_us: None,
        }
    }

    #[test]
    fn one_insert_is_stored_sorted_by_timestamp_with_the_last_duplicate_winning() {
        // Step 1 writes d0@20, d0@10 (late), d0@20 again (update); step 2 writes d0@5.
        let stored = as_stored(vec![
            row(1, 1, "d0", 20),
            row(1, 2, "d0", 10),
            row(1, 3, "d0", 20),
            row(2, 4, "d0", 5),
        ]);
        let got: Vec<(u64, i64, u64)> = stored.iter().map(|r| (r.seq, r.ts, r.order)).collect();
        assert_eq!(got, [(2, 10, 1), (3, 20, 2), (4, 5, 3)]);
    }

    #[test]
    fn select_rows_keep_tbname_only_when_selected() {
        let t = parse_topic("create topic q as select ts, current from power.meters").unwrap();
        let row: Map<String, Value> =
            serde_json::from_str(r#"{"ts":5,"current":1.5,"tbname":"d1"}"#).unwrap();
        let rows = from_select(&t, vec![row]);
        assert_eq!(rows[0].table, "d1");
        assert_eq!(rows[0].data.keys().collect::<Vec<_>>(), ["ts", "current"]);
    }
}
