//! Checks a database against a [`WriteLog`]: reads every child table back through the `taos` client
//! and lists the differences from the rows that must exist.

use std::collections::BTreeMap;

use taos::{AsyncFetchable, AsyncQueryable, Taos};

use super::reading::Reading;
use super::write_log::WriteLog;

/// Rows per table and timestamp, as [`WriteLog::expected_rows`] returns them.
pub type TableRows = BTreeMap<String, BTreeMap<i64, Reading>>;

/// Reads every table of `db` (`SHOW db.TABLES`, then `SELECT * FROM db.t` per table) into the
/// write log's shape. Columns beyond `ts, current, voltage, phase[, power]` are ignored.
pub async fn select_rows(taos: &Taos, db: &str) -> Result<TableRows, taos::Error> {
    let mut tables = Vec::new();
    let mut rs = taos.query(format!("SHOW {db}.TABLES")).await?;
    for row in rs.to_records().await? {
        if let Some(taos::Value::VarChar(name) | taos::Value::NChar(name)) = row.first() {
            tables.push(name.clone());
        }
    }
    let mut out = TableRows::new();
    for table in tables {
        let mut rs = taos.query(format!("SELECT * FROM {db}.{table}")).await?;
        let has_power = rs.fields().len() > 4;
        let mut rows = BTreeMap::new();
        for row in rs.to_records().await? {
            let ts = match row.first() {
                Some(taos::Value::Timestamp(ts)) => ts.as_raw_i64(),
                other => {
                    return Err(taos::Error::from_string(format!(
                        "{table}: first column is not a timestamp: {other:?}"
                    )))
                }
            };
            let float = |i: usize| match row.get(i) {
                Some(taos::Value::Float(v)) => Some(*v),
                _ => None,
            };
            let voltage = match row.get(2) {
                Some(taos::Value::Int(v)) => Some(*v),
                _ => None,
            };
            rows.insert(
                ts,
                Reading {
                    current: float(1),
                    voltage,
                    phase: float(3),
                    power: has_power.then(|| float(4)),
                },
            );
        }
        out.insert(table, rows);
    }
    Ok(out)
}

/// Human-readable differences between what must exist and what was read (empty = equal).
pub fn diff(expected: &TableRows, actual: &TableRows) -> Vec<String> {
    let mut out = Vec::new();
    for (table, rows) in expected {
        let Some(got) = actual.get(table) else {
            out.push(format!("table {table} missing ({} rows expected)", rows.len()));
            continue;
        };
        for (ts, reading) in rows {
            match got.get(ts) {
                None => out.push(format!("{table} ts {ts}: missing, expected {reading:?}")),
                Some(r) if r != reading => {
                    out.push(format!("{table} ts {ts}: expected {reading:?}, got {r:?}"))
                }
                Some(_) => {}
            }
        }
        for ts in got.keys().filter(|ts| !rows.contains_key(ts)) {
            out.push(format!("{table} ts {ts}: unexpected row {:?}", got[ts]));
        }
    }
    for table in actual.keys().filter(|t| !expected.contains_key(*t)) {
        out.push(format!("unexpected table {table}"));
    }
    out
}

/// Reads `write log.db()` back and diffs it against the write log.
pub async fn check(taos: &Taos, write_log: &WriteLog) -> Result<Vec<String>, taos::Error> {
    let actual = select_rows(taos, write_log.db()).await?;
    Ok(diff(&write_log.expected_rows(), &actual))
}
