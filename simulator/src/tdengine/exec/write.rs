//! `INSERT` and `DELETE`. An insert is checked in full before anything is stored (a bad value anywhere
//! leaves the store untouched), then logged as one WAL entry per vgroup, with the child tables it
//! auto-created in the same entry as their rows (as TDengine logs them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::ddl::PendingChild;
use super::values::convert;
use super::{db_of, meta_json};
use crate::tdengine::catalog::Catalog;
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::eval::Env;
use crate::tdengine::sql::ast::{Expr, InsertTable, Lit};
use crate::tdengine::store::QueryResult;
use crate::tdengine::types::{Field, Precision, Value};
use crate::tdengine::wal::{Insert, MetaKind, TableRows, WalOp};

pub(super) fn insert(
    cat: &mut Catalog,
    tables: Vec<InsertTable>,
    current: &Option<String>,
) -> TdResult<QueryResult> {
    let mut batch = Batch::default();
    for t in &tables {
        batch.add(cat, t, current)?;
    }
    let affected = batch.affected;
    batch.apply(cat);
    Ok(QueryResult::affected(affected))
}

/// The table an insert writes to, as it is or will be once auto-created.
struct Target {
    columns: Arc<Vec<Field>>,
    tags: Arc<Vec<(Field, Value)>>,
    stable: Option<String>,
    vgroup: i32,
}

impl Target {
    fn of_pending(p: &PendingChild) -> Target {
        Target {
            columns: p.columns.clone(),
            tags: p.tags.clone(),
            stable: Some(p.stable.clone()),
            vgroup: p.vgroup,
        }
    }
}

/// An insert statement checked and converted, not yet applied.
#[derive(Default)]
struct Batch {
    /// Child tables to create first (`INSERT INTO t USING st TAGS …`).
    creates: Vec<PendingChild>,
    /// (db, table) → index into `tables`: a table named twice gets one entry.
    index: HashMap<(String, String), usize>,
    tables: Vec<TableRows>,
    /// The vgroup of each of `tables`.
    vgroups: Vec<i32>,
    affected: usize,
}

impl Batch {
    /// Checks and converts the rows of one table of the statement.
    fn add(&mut self, cat: &Catalog, t: &InsertTable, current: &Option<String>) -> TdResult<()> {
        let db = db_of(&t.name, current)?;
        let precision = cat.db(db)?.precision;
        let now = precision.now();
        let target = self.target(cat, db, t, now)?;
        let mapping = column_mapping(&target.columns, t.columns.as_deref())?;
        let rows = t
            .rows
            .iter()
            .map(|lits| convert_row(lits, &mapping, &target.columns, precision, now))
            .collect::<TdResult<Vec<_>>>()?;
        self.affected += rows.len();
        let key = (db.to_string(), t.name.name.clone());
        let idx = *self.index.entry(key).or_insert_with(|| {
            self.tables.push(TableRows {
                db: db.to_string(),
                table: t.name.name.clone(),
                stable: target.stable,
                columns: target.columns,
                tags: target.tags,
                rows: Vec::new(),
            });
            self.vgroups.push(target.vgroup);
            self.tables.len() - 1
        });
        self.tables[idx].rows.extend(rows);
        Ok(())
    }

    /// The table `t` names: an existing one, one this statement creates, or a new child `USING` a stable.
    fn target(&mut self, cat: &Catalog, db: &str, t: &InsertTable, now: i64) -> TdResult<Target> {
        let d = cat.db(db)?;
        let name = &t.name.name;
        if let Some(tb) = d.tables.get(name) {
            return Ok(Target {
                columns: tb.columns.clone(),
                tags: tb.tags.clone(),
                stable: tb.stable.clone(),
                vgroup: tb.vgroup,
            });
        }
        if let Some(p) = self.creates.iter().find(|p| p.db == db && &p.name == name) {
            return Ok(Target::of_pending(p));
        }
        if let Some(using) = &t.using {
            let p = PendingChild::prepare(cat, db, name, using, now)?;
            let target = Target::of_pending(&p);
            self.creates.push(p);
            return Ok(target);
        }
        if d.stables.contains_key(name) {
            return Err(TdError::new(
                code::CORRESPONDING_STABLE_ERR,
                format!("insert into super table {name} needs tbname"),
            ));
        }
        Err(TdError::table_not_exist(name))
    }

    /// Creates the pending tables, stores the rows and logs one entry per vgroup.
    fn apply(self, cat: &mut Catalog) {
        let mut per_vgroup: BTreeMap<i32, Insert> = BTreeMap::new();
        for p in self.creates {
            let vgroup = p.vgroup;
            let event = p.install(cat);
            per_vgroup.entry(vgroup).or_default().created.push(event);
        }
        for (mut b, vg) in self.tables.into_iter().zip(self.vgroups) {
            sort_dedup(&mut b.rows);
            let d = cat.dbs.get_mut(&b.db).expect("validated");
            let t = d.tables.get_mut(&b.table).expect("validated or created");
            for r in &b.rows {
                let ts = r[0].as_timestamp().expect("ts column");
                t.rows.insert(ts, r.clone());
            }
            per_vgroup.entry(vg).or_default().tables.push(b);
        }
        for (vg, insert) in per_vgroup {
            cat.append(vg, WalOp::Insert(insert));
        }
    }
}

fn primary_ts_null() -> TdError {
    TdError::new(
        code::INCORRECT_TIMESTAMP_VAL,
        "Primary timestamp column should not be null",
    )
}

/// Which column each value of a row goes to: the named columns (which must include the timestamp), or all.
fn column_mapping(columns: &[Field], names: Option<&[String]>) -> TdResult<Vec<usize>> {
    let Some(names) = names else {
        return Ok((0..columns.len()).collect());
    };
    let mut m = Vec::with_capacity(names.len());
    for n in names {
        let i = columns
            .iter()
            .position(|c| &c.name == n)
            .ok_or_else(|| TdError::invalid_column(n))?;
        if m.contains(&i) {
            return Err(TdError::new(
                code::DUPLICATED_COLUMN,
                format!("Duplicated column names: {n}"),
            ));
        }
        m.push(i);
    }
    if !m.contains(&0) {
        return Err(primary_ts_null());
    }
    Ok(m)
}

/// One `VALUES (…)` as a full row (unnamed columns NULL).
fn convert_row(
    lits: &[Lit],
    mapping: &[usize],
    columns: &[Field],
    precision: Precision,
    now: i64,
) -> TdResult<Vec<Value>> {
    if lits.len() != mapping.len() {
        return Err(TdError::new(
            code::INVALID_COLUMNS_NUM,
            format!(
                "Illegal number of columns: {} values for {} columns",
                lits.len(),
                mapping.len()
            ),
        ));
    }
    let mut row = vec![Value::Null; columns.len()];
    for (lit, &i) in lits.iter().zip(mapping) {
        row[i] = convert(lit, &columns[i], precision, now)?;
    }
    if row[0].is_null() {
        return Err(primary_ts_null());
    }
    Ok(row)
}

/// Sorts rows by timestamp; of rows with equal timestamps the last written wins (TDengine's update).
fn sort_dedup(rows: &mut Vec<Vec<Value>>) {
    let ts = |r: &Vec<Value>| r[0].as_timestamp().unwrap_or(i64::MIN);
    if rows.windows(2).all(|w| ts(&w[0]) < ts(&w[1])) {
        return;
    }
    let mut keyed: Vec<(i64, usize, Vec<Value>)> =
        rows.drain(..).enumerate().map(|(i, r)| (ts(&r), i, r)).collect();
    keyed.sort_by_key(|(t, i, _)| (*t, *i));
    let mut out: Vec<Vec<Value>> = Vec::with_capacity(keyed.len());
    let mut last_ts = None;
    for (t, _, r) in keyed {
        if last_ts == Some(t) {
            *out.last_mut().expect("same ts seen") = r;
        } else {
            out.push(r);
            last_ts = Some(t);
        }
    }
    *rows = out;
}

/// `DELETE FROM` a table or super table: removes the rows the filter matches (all without one) and logs
/// the removed time range.
pub(super) fn delete(
    cat: &mut Catalog,
    db: &str,
    name: &str,
    filter: Option<&Expr>,
) -> TdResult<QueryResult> {
    let d = cat.db_mut(db)?;
    let precision = d.precision;
    let now = precision.now();
    let is_stable = d.stables.contains_key(name);
    let targets: Vec<String> = if is_stable {
        d.children_of(name).map(|(n, _)| n.clone()).collect()
    } else if d.tables.contains_key(name) {
        vec![name.to_string()]
    } else {
        return Err(TdError::table_not_exist(name));
    };
    let ts_name = if let Some(s) = d.stables.get(name) {
        s.columns[0].name.clone()
    } else {
        d.tables[name].columns[0].name.clone()
    };
    let (lo, hi) = filter.map_or((i64::MIN, i64::MAX), |f| f.ts_bounds(&ts_name, precision, now));
    let mut deleted = 0;
    let mut vgroups = BTreeSet::new();
    for tn in &targets {
        let t = d.tables.get_mut(tn).expect("listed");
        vgroups.insert(t.vgroup);
        let before = t.rows.len();
        let (cols, tags) = (t.columns.clone(), t.tags.clone());
        t.rows.retain(|_, row| {
            let env = Env {
                table: tn,
                tags: &tags,
                columns: &cols,
                row: Some(row),
                precision,
                now,
            };
            filter.is_some_and(|f| f.eval(&env) != Some(true))
        });
        deleted += before - t.rows.len();
    }
    if is_stable {
        vgroups = d.vgroups.iter().copied().collect();
    }
    let json = meta_json::delete(name, &ts_name, lo, hi);
    let vgroups: Vec<i32> = vgroups.into_iter().collect();
    let (stable, table) = match d.tables.get(name) {
        Some(t) => (t.stable.clone(), Some(name)),
        None => (Some(name.to_string()), None),
    };
    meta_json::append(
        cat,
        &vgroups,
        db,
        stable.as_deref(),
        table,
        MetaKind::Delete,
        json,
    );
    Ok(QueryResult::affected(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::store::Store;

    fn run(store: &Store, sql: &str) -> TdResult<QueryResult> {
        store.execute(sql, &mut None)
    }

    #[test]
    fn an_auto_created_child_is_logged_with_its_rows_in_one_entry() {
        let store = Store::default();
        run(&store, "create database db vgroups 1").unwrap();
        run(
            &store,
            "create table db.meters (ts timestamp, f1 int) tags(t1 int)",
        )
        .unwrap();
        run(
            &store,
            "create topic topic_meters as select ts, tbname, f1, t1 from db.meters",
        )
        .unwrap();
        let r = run(&store, "insert into db.tb using db.meters tags(1) values(now, 1)").unwrap();
        assert_eq!(r.affected_rows, 1);
        assert_eq!(store.database("db").unwrap().vgroups, vec![2]);
        let wal = store.wal(2).unwrap();
        let wal = wal.lock();
        // After the sync no-op (version 0): create stable (1), the insert with its auto-created child (2);
        // the topic writes nothing.
        let versions: Vec<i64> = wal.read_from(0).map(|e| e.version).collect();
        assert_eq!(versions, [0, 1, 2]);
        let ops: Vec<_> = wal.read_from(1).map(|e| e.op.clone()).collect();
        assert_eq!(
            ops.len(),
            2,
            "create stable, then the insert with its auto-created child table: {ops:?}"
        );
        let WalOp::Insert(insert) = &ops[1] else {
            panic!("{:?}", ops[1])
        };
        let topic = store.topic("topic_meters").unwrap();
        let p = topic.project(&insert.tables[0]).unwrap();
        let names: Vec<_> = p.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ts", "tbname", "f1", "t1"]);
        assert_eq!(p.rows[0][1], Value::VarChar("tb".into()));
        assert_eq!(p.rows[0][2], Value::Int(1));
        assert_eq!(p.rows[0][3], Value::Int(1));
        let m = &insert.created[0];
        assert_eq!(m.json["tableType"], "child");
        assert_eq!(m.json["using"], "meters");
    }

    #[test]
    fn later_duplicates_win_and_delete_removes_the_filtered_range() {
        let store = Store::default();
        run(&store, "create database d2 vgroups 4 precision 'us'").unwrap();
        run(
            &store,
            "create stable d2.st (ts timestamp, v tinyint, s varchar(3), n nchar(2)) tags (g int)",
        )
        .unwrap();
        run(&store, "insert into d2.c1 using d2.st tags(1) values(1, 1, 'a', '北京') (1, 2, 'b', 'x') (0, 3, null, null)").unwrap();
        let r = run(&store, "select * from d2.st order by ts").unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0][1], Value::TinyInt(3));
        assert_eq!(r.rows[1][1], Value::TinyInt(2), "later duplicate wins");
        let r = run(&store, "delete from d2.c1 where ts <= 0").unwrap();
        assert_eq!(r.affected_rows, 1);
        assert_eq!(store.snapshot("d2", None).unwrap()[0].rows.len(), 1);
    }

    #[test]
    fn named_columns_must_exist_once_and_include_the_timestamp() {
        let store = Store::default();
        run(
            &store,
            "create database d vgroups 1; create table d.t (ts timestamp, a int, b int)",
        )
        .unwrap();
        let code_of = |sql: &str| run(&store, sql).unwrap_err().code;
        assert_eq!(
            code_of("insert into d.t (ts, x) values (1, 1)"),
            code::INVALID_COLUMN
        );
        assert_eq!(
            code_of("insert into d.t (ts, a, a) values (1, 1, 1)"),
            code::DUPLICATED_COLUMN
        );
        assert_eq!(
            code_of("insert into d.t (a) values (1)"),
            code::INCORRECT_TIMESTAMP_VAL
        );
        assert_eq!(
            code_of("insert into d.t values (null, 1, 1)"),
            code::INCORRECT_TIMESTAMP_VAL
        );
        run(&store, "insert into d.t (b, ts) values (5, 1)").unwrap();
        let r = run(&store, "select * from d.t").unwrap();
        assert_eq!(
            r.rows,
            vec![vec![Value::Timestamp(1), Value::Null, Value::Int(5)]]
        );
    }

    #[test]
    fn a_bad_value_anywhere_in_an_insert_stores_nothing() {
        let store = Store::default();
        let run = |sql: &str| store.execute(sql, &mut None);
        run("create database d2 vgroups 4 precision 'us'").unwrap();
        run("create stable d2.st (ts timestamp, v tinyint, s varchar(3), n nchar(2)) tags (g int)").unwrap();
        let e = run("insert into d2.c1 using d2.st tags(1) values(1, 128, 'a', 'b')").unwrap_err();
        assert_eq!(e.code, code::SYNTAX_ERROR, "{e}");
        assert!(e.message.contains("overflow"), "{e}");
        let code_of = |sql: &str| run(sql).unwrap_err().code;
        assert_eq!(
            code_of("insert into d2.c1 using d2.st tags(1) values(1, 1, 'abcd', 'b')"),
            code::VALUE_TOO_LONG
        );
        assert_eq!(
            code_of("insert into d2.c1 using d2.st tags(1) values(1, 1, 'a', '北京人')"),
            code::VALUE_TOO_LONG
        );
        assert_eq!(
            code_of("insert into d2.c1 using d2.st tags(1) values(1, 1, 'a')"),
            code::INVALID_COLUMNS_NUM
        );
        assert_eq!(
            code_of("insert into d2.nope values(1, 1, 'a', 'b')"),
            code::TABLE_NOT_EXIST
        );
        assert!(
            store.tables("d2").unwrap().is_empty(),
            "failed inserts create nothing"
        );
    }
}
