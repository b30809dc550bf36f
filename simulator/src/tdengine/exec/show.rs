//! `SHOW DATABASES | STABLES | TABLES | VGROUPS | TOPICS` and `DESCRIBE`, with the column names and types
//! TDengine answers with (clients and taosx read them by name). `SHOW CONSUMERS`/`SUBSCRIPTIONS` come from
//! the TMQ side; their columns are defined here so both agree.

use super::db_of;
use crate::tdengine::catalog::{Catalog, Database};
use crate::tdengine::error::{TdError, TdResult};
use crate::tdengine::sql::ast::{QualName, ShowWhat};
use crate::tdengine::store::QueryResult;
use crate::tdengine::types::{ColumnType, Field, Precision, Value};

pub(super) fn varchar(name: &str, len: u32) -> Field {
    Field::new(name, ColumnType::VarChar, len)
}

pub(super) fn ts_field(name: &str) -> Field {
    Field::fixed(name, ColumnType::Timestamp)
}

fn text(x: &str) -> Value {
    Value::VarChar(x.to_string())
}

/// `SHOW CONSUMERS` columns, as TDengine names them.
pub fn consumer_fields() -> Vec<Field> {
    vec![
        varchar("consumer_id", 32),
        varchar("consumer_group", 192),
        varchar("client_id", 192),
        varchar("status", 20),
        varchar("topics", 204),
        ts_field("up_time"),
        ts_field("subscribe_time"),
        ts_field("rebalance_time"),
    ]
}

/// `SHOW SUBSCRIPTIONS` columns, as TDengine names them.
pub fn subscription_fields() -> Vec<Field> {
    vec![
        varchar("topic_name", 204),
        varchar("consumer_group", 193),
        Field::fixed("vgroup_id", ColumnType::Int),
        Field::fixed("consumer_id", ColumnType::BigInt),
        varchar("offset", 64),
        Field::fixed("rows", ColumnType::BigInt),
    ]
}

pub(super) fn show(cat: &Catalog, what: &ShowWhat, current: &Option<String>) -> TdResult<QueryResult> {
    let db = |o: &Option<String>| -> TdResult<(String, &Database)> {
        let name = o
            .clone()
            .or_else(|| current.clone())
            .ok_or_else(TdError::db_not_specified)?;
        let d = cat.db(&name)?;
        Ok((name, d))
    };
    Ok(match what {
        ShowWhat::Databases => databases(cat),
        ShowWhat::Stables(o) => {
            let (name, d) = db(o)?;
            stables(&name, d)
        }
        ShowWhat::Tables(o) => {
            let (name, d) = db(o)?;
            tables(&name, d)
        }
        ShowWhat::Vgroups(o) => {
            let (name, d) = db(o)?;
            vgroups(&name, d)
        }
        ShowWhat::Topics => topics(cat),
        ShowWhat::Consumers | ShowWhat::Subscriptions => unreachable!("dispatched in execute"),
    })
}

/// The two system databases, then every user database.
fn databases(cat: &Catalog) -> QueryResult {
    let fields = vec![
        varchar("name", 64),
        ts_field("create_time"),
        Field::fixed("vgroups", ColumnType::SmallInt),
        Field::fixed("ntables", ColumnType::BigInt),
        Field::fixed("replica", ColumnType::TinyInt),
        varchar("precision", 2),
        Field::fixed("wal_retention_period", ColumnType::Int),
    ];
    let system = |name| {
        vec![
            text(name),
            Value::Null,
            Value::Null,
            Value::BigInt(0),
            Value::Null,
            text("ms"),
            Value::Null,
        ]
    };
    let mut rows = vec![system("information_schema"), system("performance_schema")];
    for d in cat.dbs.values() {
        rows.push(vec![
            text(&d.name),
            Value::Timestamp(d.created_ms),
            Value::SmallInt(d.vgroups.len() as i16),
            Value::BigInt(d.tables.len() as i64),
            Value::TinyInt(1),
            text(d.precision.as_str()),
            Value::Int(d.wal_retention_period_s as i32),
        ]);
    }
    QueryResult::rows(fields, rows)
}

fn stables(db: &str, d: &Database) -> QueryResult {
    let fields = vec![
        varchar("stable_name", 192),
        varchar("db_name", 64),
        ts_field("create_time"),
        Field::fixed("columns", ColumnType::Int),
        Field::fixed("tags", ColumnType::Int),
    ];
    let rows = d
        .stables
        .iter()
        .map(|(n, st)| {
            vec![
                text(n),
                text(db),
                Value::Timestamp(st.created_ms),
                Value::Int(st.columns.len() as i32),
                Value::Int(st.tags.len() as i32),
            ]
        })
        .collect();
    QueryResult::rows(fields, rows)
}

/// Child and normal tables, sorted by name.
fn tables(db: &str, d: &Database) -> QueryResult {
    let fields = vec![
        varchar("table_name", 192),
        varchar("db_name", 64),
        ts_field("create_time"),
        Field::fixed("columns", ColumnType::Int),
        varchar("stable_name", 192),
        Field::fixed("vgroup_id", ColumnType::Int),
        varchar("type", 21),
    ];
    let mut names: Vec<_> = d.tables.keys().collect();
    names.sort();
    let rows = names
        .into_iter()
        .map(|n| {
            let t = &d.tables[n];
            vec![
                text(n),
                text(db),
                Value::Timestamp(t.created_ms),
                Value::Int(t.columns.len() as i32),
                t.stable.as_deref().map_or(Value::Null, text),
                Value::Int(t.vgroup),
                text(if t.stable.is_some() {
                    "CHILD_TABLE"
                } else {
                    "NORMAL_TABLE"
                }),
            ]
        })
        .collect();
    QueryResult::rows(fields, rows)
}

fn vgroups(db: &str, d: &Database) -> QueryResult {
    let fields = vec![
        Field::fixed("vgroup_id", ColumnType::Int),
        varchar("db_name", 32),
        Field::fixed("tables", ColumnType::Int),
    ];
    let rows = d
        .vgroups
        .iter()
        .map(|vg| {
            vec![
                Value::Int(*vg),
                text(db),
                Value::Int(d.tables.values().filter(|t| t.vgroup == *vg).count() as i32),
            ]
        })
        .collect();
    QueryResult::rows(fields, rows)
}

fn topics(cat: &Catalog) -> QueryResult {
    let fields = vec![
        varchar("topic_name", 192),
        varchar("db_name", 64),
        ts_field("create_time"),
        varchar("sql", 1024),
    ];
    let rows = cat
        .topics
        .values()
        .map(|t| {
            vec![
                text(&t.def.name),
                text(&t.def.db),
                Value::Timestamp(t.def.created_ms),
                text(&t.def.sql),
            ]
        })
        .collect();
    QueryResult::rows(fields, rows)
}

/// `DESCRIBE t`: columns, then tags (noted `TAG`).
pub(super) fn describe(cat: &Catalog, name: &QualName, current: &Option<String>) -> TdResult<QueryResult> {
    let d = cat.db(db_of(name, current)?)?;
    let (columns, tags): (Vec<Field>, Vec<Field>) = if let Some(s) = d.stables.get(&name.name) {
        (s.columns.to_vec(), s.tags.to_vec())
    } else if let Some(t) = d.tables.get(&name.name) {
        (t.columns.to_vec(), t.tag_fields())
    } else {
        return Err(TdError::table_not_exist(&name.name));
    };
    let fields = vec![
        varchar("field", 64),
        varchar("type", 32),
        Field::fixed("length", ColumnType::Int),
        varchar("note", 16),
    ];
    let row = |f: &Field, note: &str| {
        vec![
            text(&f.name),
            text(f.ty.sql_name()),
            Value::Int(f.length as i32),
            text(note),
        ]
    };
    let rows = columns
        .iter()
        .map(|f| row(f, ""))
        .chain(tags.iter().map(|f| row(f, "TAG")))
        .collect();
    Ok(QueryResult {
        fields,
        precision: Precision::Millisecond,
        rows,
        affected_rows: 0,
    })
}

#[cfg(test)]
mod tests {
    use crate::tdengine::error::code;
    use crate::tdengine::store::Store;
    use crate::tdengine::types::Value;

    fn column<'a>(r: &'a crate::tdengine::QueryResult, name: &str) -> Vec<&'a Value> {
        let i = r.fields.iter().position(|f| f.name == name).unwrap();
        r.rows.iter().map(|row| &row[i]).collect()
    }

    #[test]
    fn show_lists_what_exists_under_tdengine_column_names() {
        let store = Store::default();
        let mut db = None;
        let mut run = |sql: &str| store.execute(sql, &mut db);
        run("create database d vgroups 2 wal_retention_period 60; use d").unwrap();
        run("create stable s (ts timestamp, v int) tags (g int); create table c2 using s tags (2)").unwrap();
        run("create table c1 using s tags (1); create table n (ts timestamp, v int)").unwrap();
        run("create topic t as database d").unwrap();
        let r = run("show databases").unwrap();
        let names = column(&r, "name");
        assert_eq!(names.len(), 3);
        assert_eq!(names[2], &Value::VarChar("d".into()));
        assert_eq!(column(&r, "ntables")[2], &Value::BigInt(3));
        assert_eq!(column(&r, "wal_retention_period")[2], &Value::Int(60));
        let r = run("show stables").unwrap();
        assert_eq!(column(&r, "tags"), [&Value::Int(1)]);
        let r = run("show d.tables").unwrap();
        let names: Vec<_> = column(&r, "table_name").into_iter().cloned().collect();
        assert_eq!(names, ["c1", "c2", "n"].map(|n| Value::VarChar(n.into())));
        assert_eq!(column(&r, "type")[2], &Value::VarChar("NORMAL_TABLE".into()));
        let r = run("show vgroups").unwrap();
        let tables: i32 = column(&r, "tables")
            .into_iter()
            .map(|v| match v {
                Value::Int(n) => *n,
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(tables, 3);
        let r = run("show topics").unwrap();
        assert_eq!(column(&r, "topic_name"), [&Value::VarChar("t".into())]);
        let r = run("describe s").unwrap();
        let notes: Vec<_> = column(&r, "note").into_iter().cloned().collect();
        assert_eq!(notes, ["", "", "TAG"].map(|n| Value::VarChar(n.into())));
        assert_eq!(
            store.execute("show tables", &mut None).unwrap_err().code,
            code::DB_NOT_SPECIFIED
        );
        assert_eq!(
            store.execute("show nope.tables", &mut None).unwrap_err().code,
            code::DB_NOT_EXIST
        );
    }

    #[test]
    fn consumers_and_subscriptions_without_tmq_are_empty_with_their_columns() {
        let store = Store::default();
        let r = store.execute("show consumers", &mut None).unwrap();
        assert!(r.rows.is_empty());
        assert_eq!(r.fields, super::consumer_fields());
        let r = store.execute("show subscriptions", &mut None).unwrap();
        assert_eq!(r.fields, super::subscription_fields());
    }
}
