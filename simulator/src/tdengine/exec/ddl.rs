//! Databases and tables: `CREATE`/`DROP`/`ALTER DATABASE`, `CREATE STABLE`, `CREATE TABLE` (normal, and
//! child tables `USING` a super table, which `INSERT` can also create), `DROP TABLE`/`DROP STABLE`. Every
//! table change appends its meta event to the WAL of the vgroups it touches.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::values::convert;
use super::{db_of, meta_json};
use crate::tdengine::catalog::now_ms;
use crate::tdengine::catalog::{Catalog, Stable, Table};
use crate::tdengine::error::{code, TdError, TdResult};
use crate::tdengine::sql::ast::{CreateChild, CreateDatabase, Using};
use crate::tdengine::store::QueryResult;
use crate::tdengine::topic::TopicKind;
use crate::tdengine::types::{ColumnType, Field, Value};
use crate::tdengine::wal::{MetaEvent, MetaKind, WalOp};

/// TDengine's default `WAL_RETENTION_PERIOD`, in seconds.
const DEFAULT_WAL_RETENTION_S: i64 = 3600;
/// TDengine's default `VGROUPS`.
const DEFAULT_VGROUPS: u32 = 2;

pub(super) fn create_database(cat: &mut Catalog, c: CreateDatabase) -> TdResult<QueryResult> {
    if cat.dbs.contains_key(&c.name) {
        return if c.if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::new(code::DB_ALREADY_EXIST, "Database already exists"))
        };
    }
    if c.name == "information_schema" || c.name == "performance_schema" {
        return Err(TdError::new(
            code::INVALID_IDENTIFIER_NAME,
            "Invalid identifier name",
        ));
    }
    cat.add_database(
        c.name,
        c.precision.unwrap_or_default(),
        c.vgroups.unwrap_or(DEFAULT_VGROUPS) as i32,
        c.wal_retention_period.unwrap_or(DEFAULT_WAL_RETENTION_S),
    );
    Ok(QueryResult::affected(0))
}

pub(super) fn drop_database(cat: &mut Catalog, if_exists: bool, name: &str) -> TdResult<QueryResult> {
    if !cat.dbs.contains_key(name) {
        return if if_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::db_not_exist(name))
        };
    }
    if cat.topics.values().any(|t| t.def.db == name) {
        return Err(topic_must_be_dropped());
    }
    cat.remove_database(name);
    Ok(QueryResult::affected(0))
}

/// `ALTER DATABASE`: only `WAL_RETENTION_PERIOD` changes anything.
pub(super) fn alter_database(
    cat: &mut Catalog,
    name: &str,
    wal_retention_period: Option<i64>,
) -> TdResult<QueryResult> {
    let d = cat.db_mut(name)?;
    if let Some(p) = wal_retention_period {
        d.wal_retention_period_s = p;
    }
    Ok(QueryResult::affected(0))
}

fn topic_must_be_dropped() -> TdError {
    TdError::new(code::TOPIC_MUST_BE_DROPPED, "Topic must be dropped first")
}

pub(super) fn table_exists(name: &str) -> TdError {
    TdError::new(code::TABLE_ALREADY_EXIST, format!("Table already exists: {name}"))
}

/// The rules of a new schema: a timestamp first, unique names (`tbname` is taken), JSON only as the one tag.
fn check_schema(columns: &[Field], tags: &[Field]) -> TdResult<()> {
    if columns.first().map(|c| c.ty) != Some(ColumnType::Timestamp) {
        return Err(TdError::new(
            code::INVALID_FIRST_COLUMN,
            "First column must be timestamp",
        ));
    }
    let mut seen = HashSet::new();
    for f in columns.iter().chain(tags) {
        if !seen.insert(f.name.as_str()) || f.name == "tbname" {
            return Err(TdError::new(
                code::DUPLICATED_COLUMN,
                format!("Duplicated column names: {}", f.name),
            ));
        }
    }
    if columns.iter().any(|c| c.ty == ColumnType::Json) {
        return Err(json_column());
    }
    if tags.iter().any(|t| t.ty == ColumnType::Json) && tags.len() > 1 {
        return Err(TdError::new(
            code::ONLY_ONE_JSON_TAG,
            "Only one tag if there is a json tag",
        ));
    }
    Ok(())
}

pub(super) fn json_column() -> TdError {
    TdError::new(
        code::WRONG_VALUE_TYPE,
        "Invalid data type: JSON is only allowed as a tag",
    )
}

pub(super) fn create_stable(
    cat: &mut Catalog,
    db: &str,
    name: &str,
    if_not_exists: bool,
    columns: Vec<Field>,
    tags: Vec<Field>,
) -> TdResult<QueryResult> {
    check_schema(&columns, &tags)?;
    let d = cat.db_mut(db)?;
    if d.stables.contains_key(name) {
        return if if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::new(
                code::STB_ALREADY_EXIST,
                format!("STable already exists: {name}"),
            ))
        };
    }
    if d.tables.contains_key(name) {
        return Err(table_exists(name));
    }
    let json = meta_json::create_super(name, &columns, &tags);
    d.stables.insert(
        name.to_string(),
        Stable {
            columns: Arc::new(columns),
            tags: Arc::new(tags),
            created_ms: now_ms(),
        },
    );
    let vgroups = d.vgroups.clone();
    meta_json::append(cat, &vgroups, db, Some(name), None, MetaKind::Create, json);
    Ok(QueryResult::affected(0))
}

pub(super) fn create_normal(
    cat: &mut Catalog,
    db: &str,
    name: &str,
    if_not_exists: bool,
    columns: Vec<Field>,
) -> TdResult<QueryResult> {
    check_schema(&columns, &[])?;
    let d = cat.db_mut(db)?;
    if d.tables.contains_key(name) || d.stables.contains_key(name) {
        return if if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(table_exists(name))
        };
    }
    let vgroup = d.vgroup_for(name);
    let json = meta_json::create_normal(name, &columns);
    d.tables.insert(
        name.to_string(),
        Table {
            vgroup,
            stable: None,
            columns: Arc::new(columns),
            tags: Arc::new(Vec::new()),
            rows: BTreeMap::new(),
            created_ms: now_ms(),
        },
    );
    meta_json::append(cat, &[vgroup], db, None, Some(name), MetaKind::Create, json);
    Ok(QueryResult::affected(0))
}

/// `CREATE TABLE c1 USING st TAGS (…) [c2 USING …]`: each child is created (and logged) in turn.
pub(super) fn create_children(
    cat: &mut Catalog,
    children: Vec<CreateChild>,
    current: &Option<String>,
) -> TdResult<QueryResult> {
    for c in children {
        let db = db_of(&c.name, current)?.to_string();
        let now = cat.db(&db)?.precision.now();
        if cat.db(&db)?.tables.contains_key(&c.name.name) {
            if c.if_not_exists {
                continue;
            }
            return Err(table_exists(&c.name.name));
        }
        let pending = PendingChild::prepare(cat, &db, &c.name.name, &c.using, now)?;
        pending.apply(cat);
    }
    Ok(QueryResult::affected(0))
}

/// A child table checked and ready to be created (validation happens before any write of a statement).
pub(super) struct PendingChild {
    pub db: String,
    pub name: String,
    pub stable: String,
    pub vgroup: i32,
    pub columns: Arc<Vec<Field>>,
    pub tags: Arc<Vec<(Field, Value)>>,
}

impl PendingChild {
    /// Checks child table `db.name` `USING` a super table, converting its tag values.
    pub fn prepare(cat: &Catalog, db: &str, name: &str, using: &Using, now: i64) -> TdResult<PendingChild> {
        let st_db = using.stable.db.as_deref().unwrap_or(db);
        if st_db != db {
            return Err(TdError::new(
                code::CORRESPONDING_STABLE_ERR,
                "Corresponding super table not in this db",
            ));
        }
        let d = cat.db(db)?;
        let st = d
            .stables
            .get(&using.stable.name)
            .ok_or_else(|| TdError::table_not_exist(&using.stable.name))?;
        let tags_not_matched = || TdError::new(code::TAGS_NOT_MATCHED, "Tags number not matched");
        let mut values = vec![Value::Null; st.tags.len()];
        match &using.tag_names {
            Some(names) => {
                if names.len() != using.tags.len() {
                    return Err(tags_not_matched());
                }
                for (n, lit) in names.iter().zip(&using.tags) {
                    let i = st.tags.iter().position(|t| &t.name == n).ok_or_else(|| {
                        TdError::new(code::INVALID_TAG_NAME, format!("Invalid tag name: {n}"))
                    })?;
                    values[i] = convert(lit, &st.tags[i], d.precision, now)?;
                }
            }
            None => {
                if using.tags.len() != st.tags.len() {
                    return Err(tags_not_matched());
                }
                for (i, lit) in using.tags.iter().enumerate() {
                    values[i] = convert(lit, &st.tags[i], d.precision, now)?;
                }
            }
        }
        Ok(PendingChild {
            db: db.to_string(),
            name: name.to_string(),
            stable: using.stable.name.clone(),
            vgroup: d.vgroup_for(name),
            columns: st.columns.clone(),
            tags: Arc::new(st.tags.iter().cloned().zip(values).collect()),
        })
    }

    /// Creates the table (`CREATE TABLE … USING`): its create event is an entry of its own.
    fn apply(self, cat: &mut Catalog) {
        let vgroup = self.vgroup;
        let event = self.install(cat);
        cat.append(vgroup, WalOp::Meta(event));
    }

    /// Adds the table to the catalog and returns its create event, for the caller to log.
    pub fn install(self, cat: &mut Catalog) -> MetaEvent {
        let json = meta_json::create_child(&self.name, &self.stable, &self.tags);
        let d = cat.dbs.get_mut(&self.db).expect("validated");
        d.tables.insert(
            self.name.clone(),
            Table {
                vgroup: self.vgroup,
                stable: Some(self.stable.clone()),
                columns: self.columns,
                tags: self.tags,
                rows: BTreeMap::new(),
                created_ms: now_ms(),
            },
        );
        MetaEvent {
            db: self.db,
            stable: Some(self.stable),
            table: Some(self.name),
            kind: MetaKind::Create,
            json,
        }
    }
}

/// `DROP TABLE`/`DROP STABLE` of one name; `stable_kw` is whether the statement said `STABLE`.
pub(super) fn drop_table(
    cat: &mut Catalog,
    stable_kw: bool,
    if_exists: bool,
    db: &str,
    name: &str,
) -> TdResult<()> {
    if cat.db(db)?.stables.contains_key(name) {
        return drop_stable(cat, db, name);
    }
    let missing = |e: TdError| if if_exists { Ok(()) } else { Err(e) };
    if stable_kw {
        return missing(TdError::stable_not_exist(name));
    }
    let Some(t) = cat.db_mut(db)?.tables.remove(name) else {
        return missing(TdError::table_not_exist(name));
    };
    let json = meta_json::drop_table(name);
    meta_json::append(
        cat,
        &[t.vgroup],
        db,
        t.stable.as_deref(),
        Some(name),
        MetaKind::Drop,
        json,
    );
    Ok(())
}

/// Drops a super table with its child tables, unless a topic reads it.
fn drop_stable(cat: &mut Catalog, db: &str, name: &str) -> TdResult<()> {
    let read_by_topic = cat.topics.values().any(|t| {
        t.def.db == db
            && matches!(&t.def.kind, TopicKind::Stable { name: n, .. } | TopicKind::Query { table: n, is_stable: true, .. } if n == name)
    });
    if read_by_topic {
        return Err(topic_must_be_dropped());
    }
    let d = cat.db_mut(db)?;
    d.stables.remove(name);
    d.tables.retain(|_, t| t.stable.as_deref() != Some(name));
    let vgroups = d.vgroups.clone();
    let json = meta_json::drop_super(name);
    meta_json::append(cat, &vgroups, db, Some(name), None, MetaKind::Drop, json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tdengine::error::code;
    use crate::tdengine::store::Store;
    use crate::tdengine::wal::WalOp;

    #[test]
    fn schema_rules_and_existing_names_are_refused_with_tdengine_codes() {
        let store = Store::default();
        let code_of = |sql: &str| store.execute(sql, &mut None).unwrap_err().code;
        store.execute("create database d vgroups 2", &mut None).unwrap();
        assert_eq!(code_of("create database d"), code::DB_ALREADY_EXIST);
        assert_eq!(
            code_of("create database information_schema"),
            code::INVALID_IDENTIFIER_NAME
        );
        assert_eq!(
            code_of("create table d.t (v int, ts timestamp)"),
            code::INVALID_FIRST_COLUMN
        );
        assert_eq!(
            code_of("create table d.t (ts timestamp, v int, v int)"),
            code::DUPLICATED_COLUMN
        );
        assert_eq!(
            code_of("create stable d.s (ts timestamp, g int) tags (g int)"),
            code::DUPLICATED_COLUMN
        );
        assert_eq!(
            code_of("create stable d.s (ts timestamp, j json) tags (g int)"),
            code::WRONG_VALUE_TYPE
        );
        assert_eq!(
            code_of("create stable d.s (ts timestamp, v int) tags (j json, g int)"),
            code::ONLY_ONE_JSON_TAG
        );
        store
            .execute("create stable d.s (ts timestamp, v int) tags (g int)", &mut None)
            .unwrap();
        assert_eq!(
            code_of("create stable d.s (ts timestamp, v int) tags (g int)"),
            code::STB_ALREADY_EXIST
        );
        assert_eq!(
            code_of("create table d.s (ts timestamp, v int)"),
            code::TABLE_ALREADY_EXIST
        );
        assert_eq!(
            code_of("create table d.c using d.s tags (1, 2)"),
            code::TAGS_NOT_MATCHED
        );
        assert_eq!(
            code_of("create table d.c using d.s (h) tags (1)"),
            code::INVALID_TAG_NAME
        );
        store
            .execute(
                "create database e vgroups 1; create table d.c using d.s tags (1)",
                &mut None,
            )
            .unwrap();
        assert_eq!(
            code_of("create table d.c using d.s tags (1)"),
            code::TABLE_ALREADY_EXIST
        );
        assert_eq!(
            code_of("create table e.c using d.s tags (1)"),
            code::CORRESPONDING_STABLE_ERR
        );
        store
            .execute("create table if not exists d.c using d.s tags (1)", &mut None)
            .unwrap();
    }

    #[test]
    fn dropping_a_stable_drops_its_children_and_logs_in_every_vgroup() {
        let store = Store::default();
        let run = |sql: &str| store.execute(sql, &mut None);
        run("create database d vgroups 2; create stable d.s (ts timestamp, v int) tags (g int)").unwrap();
        run("create table d.c1 using d.s tags (1) d.c2 using d.s tags (2)").unwrap();
        run("create topic t as stable d.s").unwrap();
        assert_eq!(
            run("drop stable d.s").unwrap_err().code,
            code::TOPIC_MUST_BE_DROPPED
        );
        assert_eq!(
            run("drop database d").unwrap_err().code,
            code::TOPIC_MUST_BE_DROPPED
        );
        run("drop topic t").unwrap();
        let before: Vec<i64> = (2..=3)
            .map(|vg| store.wal(vg).unwrap().lock().last_version())
            .collect();
        run("drop table d.s").unwrap();
        assert!(store.tables("d").unwrap().is_empty());
        for (vg, before) in (2..=3).zip(before) {
            let wal = store.wal(vg).unwrap();
            let wal = wal.lock();
            assert_eq!(wal.last_version(), before + 1, "vgroup {vg}");
            let last = wal.read_from(0).last().unwrap();
            let WalOp::Meta(m) = &last.op else {
                panic!("{:?}", last.op)
            };
            assert_eq!(m.json["type"], "drop");
            assert_eq!(m.json["tableType"], "super");
        }
        assert_eq!(run("drop stable d.s").unwrap_err().code, code::STB_NOT_EXIST);
        run("drop stable if exists d.s; drop table if exists d.nope").unwrap();
        assert_eq!(run("drop table d.nope").unwrap_err().code, code::TABLE_NOT_EXIST);
        run("drop database d").unwrap();
        assert!(store.wal(2).is_none(), "the vgroups go with the database");
    }
}
