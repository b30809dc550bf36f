//! Rows of the small test schema `db.meters (ts timestamp, f1 int) tags (t1 int)` that the test suites of
//! every crate (stand-in, bridge, real TDengine in Docker) write the same way, so their expectations match.

use std::ops::Range;

/// Timestamp of row id 0; row `id` has `ts = BASE_TS + id`.
pub const BASE_TS: i64 = 1_700_000_000_000;

/// One INSERT of rows `ids` over `tables` child tables: row `id` goes to `db.d{id % tables}` (tag `t1` = that
/// number, created on first use) with `ts = BASE_TS + id` and `f1 = id`.
pub fn insert_sql(tables: u32, ids: Range<u32>) -> String {
    let mut sql = String::from("insert into");
    for t in 0..tables {
        let mine: Vec<u32> = ids.clone().filter(|id| id % tables == t).collect();
        if mine.is_empty() {
            continue;
        }
        sql.push_str(&format!(" db.d{t} using db.meters tags ({t}) values"));
        for id in mine {
            sql.push_str(&format!(" ({}, {id})", BASE_TS + id as i64));
        }
    }
    sql
}

/// The row id (`f1`) a payload of the fixture's topic carries (`{"data":{…,"f1":ID,…},…}`), if any.
pub fn f1_of(payload: &[u8]) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v["data"]["f1"].as_u64().and_then(|id| u32::try_from(id).ok())
}

/// Rows `0..total` written by [`insert_sql`] over `tables` child tables and published to `{prefix}/{table}`,
/// given as (topic, payload) in arrival order: every row arrived, and each table's rows exactly once in the
/// order they were written. The error names what is wrong. (The one check the bridge suites and the Docker
/// suite share.)
pub fn check_every_row_in_table_order<'a>(
    got: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    prefix: &str,
    tables: u32,
    total: u32,
) -> Result<(), String> {
    let mut per_table: Vec<Vec<u32>> = vec![Vec::new(); tables as usize];
    let mut seen = std::collections::BTreeSet::new();
    for (topic, payload) in got {
        let id = f1_of(payload).ok_or_else(|| format!("{prefix}: a payload without f1 on {topic:?}"))?;
        seen.insert(id);
        let table = topic
            .strip_prefix(prefix)
            .and_then(|t| t.strip_prefix("/d"))
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|t| *t < tables)
            .ok_or_else(|| format!("{prefix}: row {id} on unexpected topic {topic:?}"))?;
        per_table[table as usize].push(id);
    }
    let missing: Vec<u32> = (0..total).filter(|id| !seen.contains(id)).collect();
    if !missing.is_empty() {
        return Err(format!("{prefix}: {} row(s) missing: {missing:?}", missing.len()));
    }
    for (t, ids) in per_table.iter().enumerate() {
        let want: Vec<u32> = (0..total).filter(|id| id % tables == t as u32).collect();
        if *ids != want {
            return Err(format!(
                "{prefix} table d{t}: rows {ids:?}, written (once each, in this order) {want:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_order_check_finds_gaps_duplicates_and_reordering() {
        let p = |id: u32| format!(r#"{{"data":{{"f1":{id}}}}}"#);
        let run = |ids: &[u32]| {
            let msgs: Vec<(String, String)> =
                ids.iter().map(|&id| (format!("x/d{}", id % 2), p(id))).collect();
            check_every_row_in_table_order(msgs.iter().map(|(t, m)| (t.as_str(), m.as_bytes())), "x", 2, 4)
        };
        assert_eq!(run(&[0, 1, 2, 3]), Ok(()));
        assert!(run(&[0, 1, 2]).unwrap_err().contains("missing: [3]"));
        assert!(run(&[0, 1, 2, 3, 2]).unwrap_err().contains("table d0"));
        assert!(run(&[2, 1, 0, 3]).unwrap_err().contains("table d0"));
    }

    #[test]
    fn rows_go_to_their_table_in_id_order() {
        let ts = |id: i64| BASE_TS + id;
        assert_eq!(
            insert_sql(2, 3..6),
            format!(
                "insert into db.d0 using db.meters tags (0) values ({}, 4) \
                 db.d1 using db.meters tags (1) values ({}, 3) ({}, 5)",
                ts(4),
                ts(3),
                ts(5)
            )
        );
    }
}
