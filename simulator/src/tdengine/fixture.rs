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

#[cfg(test)]
mod tests {
    use super::*;

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
