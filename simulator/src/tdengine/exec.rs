//! Runs parsed statements against the [`Store`]: DDL and writes under the catalog's write lock (each
//! write appending to its vgroups' WALs with the meta JSON TMQ serves), reads under the read lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::json;

use super::error::{code, TdError, TdResult};
use super::eval::{literal_ts, parse_timestamp, Env};
use super::sql::ast::*;
use super::store::{
    now_ms, topic_not_exist, Catalog, Database, QueryResult, Stable, Store, Table, TopicEntry, Vgroup,
};
use super::topic::{tbname_field, TopicDef, TopicKind};
use super::types::{ColumnType, Field, Precision, Value};
use super::wal::{Insert, MetaEvent, MetaKind, TableRows, Wal, WalOp};

const DEFAULT_WAL_RETENTION_S: i64 = 3600;

pub(crate) fn execute(store: &Store, stmt: Statement, current: &mut Option<String>) -> TdResult<QueryResult> {
    match stmt {
        Statement::Use(db) => {
            store.catalog.read().db(&db)?;
            *current = Some(db);
            Ok(QueryResult::affected(0))
        }
        Statement::Select(sel) if sel.from.is_none() => select_functions(store, &sel, current),
        Statement::Select(sel) => select(&store.catalog.read(), &sel, current),
        Statement::Show(ShowWhat::Consumers) => Ok(match store.tmq_info() {
            Some(i) => i.show_consumers(),
            None => QueryResult::rows(consumer_fields(), vec![]),
        }),
        Statement::Show(ShowWhat::Subscriptions) => Ok(match store.tmq_info() {
            Some(i) => i.show_subscriptions(),
            None => QueryResult::rows(subscription_fields(), vec![]),
        }),
        Statement::Show(what) => show(&store.catalog.read(), &what, current),
        Statement::Describe(name) => describe(&store.catalog.read(), &name, current),
        stmt => write(&mut store.catalog.write(), stmt, current),
    }
}

fn db_of<'a>(q: &'a QualName, current: &'a Option<String>) -> TdResult<&'a str> {
    q.db.as_deref()
        .or(current.as_deref())
        .ok_or_else(TdError::db_not_specified)
}

fn write(cat: &mut Catalog, stmt: Statement, current: &Option<String>) -> TdResult<QueryResult> {
    match stmt {
        Statement::CreateDatabase(c) => create_database(cat, c),
        Statement::DropDatabase { if_exists, name } => {
            if !cat.dbs.contains_key(&name) {
                return if if_exists {
                    Ok(QueryResult::affected(0))
                } else {
                    Err(TdError::db_not_exist(&name))
                };
            }
            if cat.topics.values().any(|t| t.def.db == name) {
                return Err(TdError::new(0x03ED, "Topic must be dropped first"));
            }
            let db = cat.dbs.remove(&name).expect("checked");
            for vg in db.vgroups {
                cat.vgroups.remove(&vg);
            }
            Ok(QueryResult::affected(0))
        }
        Statement::AlterDatabase {
            name,
            wal_retention_period,
        } => {
            let d = cat.db_mut(&name)?;
            if let Some(p) = wal_retention_period {
                d.wal_retention_period_s = p;
            }
            Ok(QueryResult::affected(0))
        }
        Statement::CreateStable {
            if_not_exists,
            name,
            columns,
            tags,
        } => create_stable(
            cat,
            db_of(&name, current)?,
            &name.name,
            if_not_exists,
            columns,
            tags,
        ),
        Statement::CreateTable {
            if_not_exists,
            name,
            columns,
        } => create_normal(cat, db_of(&name, current)?, &name.name, if_not_exists, columns),
        Statement::CreateChildren(children) => {
            for c in children {
                let db = db_of(&c.name, current)?.to_string();
                let now = cat.db(&db)?.precision.now();
                if cat.db(&db)?.tables.contains_key(&c.name.name) {
                    if c.if_not_exists {
                        continue;
                    }
                    return Err(table_exists(&c.name.name));
                }
                let pending = prepare_child(cat, &db, &c.name.name, &c.using, now, "")?;
                pending.apply(cat);
            }
            Ok(QueryResult::affected(0))
        }
        Statement::Insert(tables) => insert(cat, tables, current),
        Statement::Alter { stable, name, action } => {
            alter(cat, stable, db_of(&name, current)?, &name.name, action)
        }
        Statement::Drop {
            stable,
            if_exists,
            names,
        } => {
            for n in &names {
                drop_table(cat, stable, if_exists, db_of(n, current)?, &n.name)?;
            }
            Ok(QueryResult::affected(0))
        }
        Statement::Delete { table, filter } => {
            delete(cat, db_of(&table, current)?, &table.name, filter.as_ref())
        }
        Statement::CreateTopic {
            if_not_exists,
            name,
            with_meta,
            source,
            sql,
        } => create_topic(cat, if_not_exists, name, with_meta, source, sql, current),
        Statement::DropTopic { if_exists, name } => {
            match cat.topics.get(&name) {
                None if if_exists => {}
                None => return Err(topic_not_exist(&name)),
                Some(t) if t.subscribers > 0 => {
                    return Err(TdError::new(
                        code::TOPIC_SUBSCRIBED,
                        format!("Topic subscribed cannot be dropped: {name}"),
                    ))
                }
                Some(_) => {
                    cat.topics.remove(&name);
                }
            }
            Ok(QueryResult::affected(0))
        }
        Statement::Use(_) | Statement::Select(_) | Statement::Show(_) | Statement::Describe(_) => {
            unreachable!("read statements are dispatched in execute")
        }
    }
}

fn create_database(cat: &mut Catalog, c: CreateDatabase) -> TdResult<QueryResult> {
    if cat.dbs.contains_key(&c.name) {
        return if c.if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::new(code::DB_ALREADY_EXIST, "Database already exists"))
        };
    }
    if c.name == "information_schema" || c.name == "performance_schema" {
        return Err(TdError::new(0x2617, "Invalid identifier name"));
    }
    let n = c.vgroups.unwrap_or(2) as i32;
    let vgroups: Vec<i32> = (cat.next_vgroup_id..cat.next_vgroup_id + n).collect();
    cat.next_vgroup_id += n;
    for &vg in &vgroups {
        cat.vgroups.insert(
            vg,
            Vgroup {
                db: c.name.clone(),
                wal: Arc::new(parking_lot::Mutex::new(Wal::new())),
            },
        );
    }
    cat.dbs.insert(
        c.name.clone(),
        Database {
            name: c.name,
            precision: c.precision.unwrap_or_default(),
            vgroups,
            wal_retention_period_s: c.wal_retention_period.unwrap_or(DEFAULT_WAL_RETENTION_S),
            created_ms: now_ms(),
            stables: BTreeMap::new(),
            tables: HashMap::new(),
        },
    );
    Ok(QueryResult::affected(0))
}

fn table_exists(name: &str) -> TdError {
    TdError::new(code::TABLE_ALREADY_EXIST, format!("Table already exists: {name}"))
}

fn check_schema(columns: &[Field], tags: &[Field]) -> TdResult<()> {
    if columns.first().map(|c| c.ty) != Some(ColumnType::Timestamp) {
        return Err(TdError::new(
            code::INVALID_FIRST_COLUMN,
            "First column must be timestamp",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for f in columns.iter().chain(tags) {
        if !seen.insert(f.name.as_str()) || f.name == "tbname" {
            return Err(TdError::new(
                code::DUPLICATED_COLUMN,
                format!("Duplicated column names: {}", f.name),
            ));
        }
    }
    if columns.iter().any(|c| c.ty == ColumnType::Json) {
        return Err(TdError::new(
            0x2605,
            "Invalid data type: JSON is only allowed as a tag",
        ));
    }
    if tags.iter().any(|t| t.ty == ColumnType::Json) && tags.len() > 1 {
        return Err(TdError::new(0x2633, "Only one tag if there is a json tag"));
    }
    Ok(())
}

fn meta(
    cat: &Catalog,
    vgroups: &[i32],
    db: &str,
    stable: Option<&str>,
    table: Option<&str>,
    kind: MetaKind,
    json: serde_json::Value,
) {
    for &vg in vgroups {
        cat.append(
            vg,
            WalOp::Meta(MetaEvent {
                db: db.to_string(),
                stable: stable.map(str::to_string),
                table: table.map(str::to_string),
                kind,
                json: json.clone(),
            }),
        );
    }
}

fn fields_json(fields: &[Field]) -> serde_json::Value {
    fields.iter().map(Field::meta_json).collect()
}

fn create_stable(
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
    let json = json!({"type": "create", "tableType": "super", "tableName": name,
        "columns": fields_json(&columns), "tags": fields_json(&tags)});
    d.stables.insert(
        name.to_string(),
        Stable {
            columns: Arc::new(columns),
            tags: Arc::new(tags),
            created_ms: now_ms(),
        },
    );
    let vgroups = d.vgroups.clone();
    meta(cat, &vgroups, db, Some(name), None, MetaKind::Create, json);
    Ok(QueryResult::affected(0))
}

fn create_normal(
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
    let json = json!({"type": "create", "tableType": "normal", "tableName": name,
        "columns": fields_json(&columns), "tags": []});
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
    meta(cat, &[vgroup], db, None, Some(name), MetaKind::Create, json);
    Ok(QueryResult::affected(0))
}

/// A child table checked and ready to be created (validation happens before any write of a statement).
struct PendingChild {
    db: String,
    name: String,
    stable: String,
    vgroup: i32,
    columns: Arc<Vec<Field>>,
    tags: Arc<Vec<(Field, Value)>>,
}

impl PendingChild {
    /// Creates the table (`CREATE TABLE … USING`): its create event is an entry of its own.
    fn apply(self, cat: &mut Catalog) {
        let vgroup = self.vgroup;
        let event = self.install(cat);
        cat.append(vgroup, WalOp::Meta(event));
    }

    /// Adds the table to the catalog and returns its create event, for the caller to log.
    fn install(self, cat: &mut Catalog) -> MetaEvent {
        let tags_json: Vec<_> = self
            .tags
            .iter()
            .map(|(f, v)| json!({"name": f.name, "type": f.ty as u8, "value": tag_json(v)}))
            .collect();
        let json = json!({"type": "create", "tableType": "child", "tableName": self.name,
            "using": self.stable, "tagNum": self.tags.len(), "tags": tags_json, "createList": []});
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

/// A tag value as TMQ meta JSON writes it: text quoted inside the string, numbers as numbers.
fn tag_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::VarChar(s) | Value::NChar(s) => json!(format!("\"{s}\"")),
        Value::Json(s) => json!(s),
        Value::VarBinary(_) | Value::Geometry(_) => {
            json!(format!("\"{}\"", v.to_json().as_str().unwrap_or("")))
        }
        _ => v.to_json(),
    }
}

fn prepare_child(
    cat: &Catalog,
    db: &str,
    name: &str,
    using: &Using,
    now: i64,
    sql: &str,
) -> TdResult<PendingChild> {
    let st_db = using.stable.db.as_deref().unwrap_or(db);
    if st_db != db {
        return Err(TdError::new(0x2618, "Corresponding super table not in this db"));
    }
    let d = cat.db(db)?;
    let st = d
        .stables
        .get(&using.stable.name)
        .ok_or_else(|| TdError::table_not_exist(&using.stable.name))?;
    let mut values = vec![Value::Null; st.tags.len()];
    match &using.tag_names {
        Some(names) => {
            if names.len() != using.tags.len() {
                return Err(TdError::new(code::TAGS_NOT_MATCHED, "Tags number not matched"));
            }
            for (n, lit) in names.iter().zip(&using.tags) {
                let i =
                    st.tags.iter().position(|t| &t.name == n).ok_or_else(|| {
                        TdError::new(code::INVALID_TAG_NAME, format!("Invalid tag name: {n}"))
                    })?;
                values[i] = convert(lit, &st.tags[i], d.precision, now, sql)?;
            }
        }
        None => {
            if using.tags.len() != st.tags.len() {
                return Err(TdError::new(code::TAGS_NOT_MATCHED, "Tags number not matched"));
            }
            for (i, lit) in using.tags.iter().enumerate() {
                values[i] = convert(lit, &st.tags[i], d.precision, now, sql)?;
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

fn insert(cat: &mut Catalog, tables: Vec<InsertTable>, current: &Option<String>) -> TdResult<QueryResult> {
    // Phase 1: resolve and convert everything, so a bad value anywhere leaves the store untouched.
    let mut creates: Vec<PendingChild> = Vec::new();
    // (db, table) → index into `batches`
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut batches: Vec<TableRows> = Vec::new();
    let mut vgroup_of: Vec<i32> = Vec::new();
    let mut affected = 0;
    for t in &tables {
        let db = db_of(&t.name, current)?;
        let d = cat.db(db)?;
        let precision = d.precision;
        let now = precision.now();
        let key = (db.to_string(), t.name.name.clone());
        let (columns, tags, stable, vgroup) = if let Some(tb) = d.tables.get(&t.name.name) {
            (tb.columns.clone(), tb.tags.clone(), tb.stable.clone(), tb.vgroup)
        } else if let Some(p) = creates.iter().find(|p| p.db == db && p.name == t.name.name) {
            (
                p.columns.clone(),
                p.tags.clone(),
                Some(p.stable.clone()),
                p.vgroup,
            )
        } else if let Some(using) = &t.using {
            let p = prepare_child(cat, db, &t.name.name, using, now, "")?;
            let r = (
                p.columns.clone(),
                p.tags.clone(),
                Some(p.stable.clone()),
                p.vgroup,
            );
            creates.push(p);
            r
        } else if d.stables.contains_key(&t.name.name) {
            return Err(TdError::new(
                0x2618,
                format!("insert into super table {} needs tbname", t.name.name),
            ));
        } else {
            return Err(TdError::table_not_exist(&t.name.name));
        };
        let mapping: Vec<usize> = match &t.columns {
            Some(names) => {
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
                    return Err(TdError::new(
                        0x2635,
                        "Primary timestamp column should not be null",
                    ));
                }
                m
            }
            None => (0..columns.len()).collect(),
        };
        let mut rows = Vec::with_capacity(t.rows.len());
        for lits in &t.rows {
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
            for (lit, &i) in lits.iter().zip(&mapping) {
                row[i] = convert(lit, &columns[i], precision, now, "")?;
            }
            if row[0].is_null() {
                return Err(TdError::new(
                    0x2635,
                    "Primary timestamp column should not be null",
                ));
            }
            rows.push(row);
        }
        affected += rows.len();
        let idx = *index.entry(key).or_insert_with(|| {
            batches.push(TableRows {
                db: db.to_string(),
                table: t.name.name.clone(),
                stable,
                columns,
                tags,
                rows: Vec::new(),
            });
            vgroup_of.push(vgroup);
            batches.len() - 1
        });
        batches[idx].rows.extend(rows);
    }
    // Phase 2: apply. Auto-created tables are logged with their rows, in the same entry.
    let mut per_vgroup: BTreeMap<i32, Insert> = BTreeMap::new();
    for p in creates {
        let vgroup = p.vgroup;
        let event = p.install(cat);
        per_vgroup.entry(vgroup).or_default().created.push(event);
    }
    for (mut b, vg) in batches.into_iter().zip(vgroup_of) {
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
    Ok(QueryResult::affected(affected))
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

fn overflow(lit: &Lit, sql: &str, ty: ColumnType) -> TdError {
    let what = ty.sql_name().to_ascii_lowercase();
    if sql.is_empty() {
        TdError::new(
            code::SYNTAX_ERROR,
            format!("syntax error near position {} ({what} data overflow)", lit.pos),
        )
    } else {
        TdError::syntax(sql, lit.pos, &format!("{what} data overflow"))
    }
}

fn wrong_type(lit: &Lit, f: &Field) -> TdError {
    TdError::new(
        code::WRONG_VALUE_TYPE,
        format!(
            "Invalid value type at position {} for {} {}",
            lit.pos,
            f.name,
            f.ty.sql_name()
        ),
    )
}

/// Converts a literal to a value of `f`'s type, with TDengine's range and length checks.
pub(crate) fn convert(lit: &Lit, f: &Field, precision: Precision, now: i64, sql: &str) -> TdResult<Value> {
    use ColumnType as T;
    let int = |lo: i128, hi: i128| -> TdResult<i128> {
        let v = match &lit.value {
            Literal::Int(i) => *i,
            Literal::Bool(b) => *b as i128,
            Literal::Float(x) if x.is_finite() => x.trunc() as i128,
            Literal::Str(s) => match s.trim().parse::<i128>() {
                Ok(v) => v,
                Err(_) => s.trim().parse::<f64>().map_err(|_| wrong_type(lit, f))?.trunc() as i128,
            },
            _ => return Err(wrong_type(lit, f)),
        };
        if v < lo || v > hi {
            return Err(overflow(lit, sql, f.ty));
        }
        Ok(v)
    };
    let float = || -> TdResult<f64> {
        match &lit.value {
            Literal::Int(i) => Ok(*i as f64),
            Literal::Float(x) => Ok(*x),
            Literal::Bool(b) => Ok(*b as u8 as f64),
            Literal::Str(s) => s.trim().parse::<f64>().map_err(|_| wrong_type(lit, f)),
            _ => Err(wrong_type(lit, f)),
        }
    };
    let text = || -> TdResult<String> {
        match &lit.value {
            Literal::Str(s) => Ok(s.clone()),
            Literal::Int(i) => Ok(i.to_string()),
            Literal::Float(x) => Ok(x.to_string()),
            Literal::Bool(b) => Ok(b.to_string()),
            _ => Err(wrong_type(lit, f)),
        }
    };
    let too_long = || {
        TdError::new(
            code::VALUE_TOO_LONG,
            format!("Value too long for column/tag: {}", f.name),
        )
    };
    if lit.value == Literal::Null {
        return Ok(Value::Null);
    }
    Ok(match f.ty {
        T::Bool => match &lit.value {
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Bool(*i != 0),
            Literal::Float(x) => Value::Bool(*x != 0.0),
            Literal::Str(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Literal::Str(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong_type(lit, f)),
        },
        T::TinyInt => Value::TinyInt(int(i8::MIN as i128, i8::MAX as i128)? as i8),
        T::SmallInt => Value::SmallInt(int(i16::MIN as i128, i16::MAX as i128)? as i16),
        T::Int => Value::Int(int(i32::MIN as i128, i32::MAX as i128)? as i32),
        T::BigInt => Value::BigInt(int(i64::MIN as i128, i64::MAX as i128)? as i64),
        T::UTinyInt => Value::UTinyInt(int(0, u8::MAX as i128)? as u8),
        T::USmallInt => Value::USmallInt(int(0, u16::MAX as i128)? as u16),
        T::UInt => Value::UInt(int(0, u32::MAX as i128)? as u32),
        T::UBigInt => Value::UBigInt(int(0, u64::MAX as i128)? as u64),
        T::Float => {
            let x = float()?;
            if x.is_finite() && x.abs() > f32::MAX as f64 {
                return Err(overflow(lit, sql, f.ty));
            }
            Value::Float(x as f32)
        }
        T::Double => Value::Double(float()?),
        T::Timestamp => {
            let v = match &lit.value {
                Literal::Str(s) => parse_timestamp(s, precision),
                Literal::Float(_) | Literal::Bool(_) => None,
                l => literal_ts(l, precision, now),
            };
            Value::Timestamp(v.ok_or_else(|| {
                TdError::new(
                    0x2635,
                    format!("Incorrect TIMESTAMP value at position {}", lit.pos),
                )
            })?)
        }
        T::VarChar => {
            let s = text()?;
            if s.len() > f.length as usize {
                return Err(too_long());
            }
            Value::VarChar(s)
        }
        T::NChar => {
            let s = text()?;
            if s.chars().count() > f.length as usize {
                return Err(too_long());
            }
            Value::NChar(s)
        }
        T::Json => {
            let s = text()?;
            let parsed: serde_json::Value = serde_json::from_str(&s)
                .map_err(|_| TdError::new(0x2605, format!("Invalid JSON value for tag {}", f.name)))?;
            if !(parsed.is_object() || parsed.is_null()) {
                return Err(TdError::new(
                    0x2605,
                    format!("Invalid JSON value for tag {}: not an object", f.name),
                ));
            }
            Value::Json(s)
        }
        T::VarBinary => {
            let s = text()?;
            let bytes = match s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
                Some(hex) => decode_hex(hex).ok_or_else(|| wrong_type(lit, f))?,
                None => s.into_bytes(),
            };
            if bytes.len() > f.length as usize {
                return Err(too_long());
            }
            Value::VarBinary(bytes)
        }
        T::Geometry => {
            let wkb = super::wkt::to_wkb(&text()?)
                .ok_or_else(|| TdError::new(0x2605, format!("Invalid geometry value for {}", f.name)))?;
            if wkb.len() > f.length as usize {
                return Err(too_long());
            }
            Value::Geometry(wkb)
        }
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn alter(
    cat: &mut Catalog,
    stable_kw: bool,
    db: &str,
    name: &str,
    action: AlterAction,
) -> TdResult<QueryResult> {
    let precision = cat.db(db)?.precision;
    let d = cat.db_mut(db)?;
    let is_stable = d.stables.contains_key(name);
    if stable_kw && !is_stable {
        return Err(TdError::stable_not_exist(name));
    }
    if !is_stable && !d.tables.contains_key(name) {
        return Err(TdError::table_not_exist(name));
    }
    let (table_type, stable_name) = if is_stable {
        ("super", Some(name.to_string()))
    } else {
        let t = &d.tables[name];
        (
            if t.stable.is_some() { "child" } else { "normal" },
            t.stable.clone(),
        )
    };
    let (columns, tags): (Vec<Field>, Vec<Field>) = if is_stable {
        let s = &d.stables[name];
        (s.columns.to_vec(), s.tags.to_vec())
    } else {
        let t = &d.tables[name];
        (
            t.columns.to_vec(),
            t.tags.iter().map(|(f, _)| f.clone()).collect(),
        )
    };
    let exists = |n: &str| columns.iter().chain(&tags).any(|f| f.name == n);
    let mut alter_json = json!({"type": "alter", "tableType": table_type, "tableName": name});
    // Which tables this touches, and how.
    let children: Vec<String> = if is_stable {
        d.tables
            .iter()
            .filter(|(_, t)| t.stable.as_deref() == Some(name))
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        vec![name.to_string()]
    };
    match action {
        AlterAction::AddColumn(f) | AlterAction::AddTag(f) if exists(&f.name) => {
            return Err(TdError::new(
                code::COLUMN_ALREADY_EXIST,
                format!("Column already exists: {}", f.name),
            ));
        }
        AlterAction::AddColumn(f) => {
            if table_type == "child" {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: cannot add a column to a child table",
                ));
            }
            if f.ty == ColumnType::Json {
                return Err(TdError::new(
                    0x2605,
                    "Invalid data type: JSON is only allowed as a tag",
                ));
            }
            set_alter(&mut alter_json, 5, &f);
            let mut cols = columns.clone();
            cols.push(f);
            let cols = Arc::new(cols);
            if let Some(s) = d.stables.get_mut(name) {
                s.columns = cols.clone();
            }
            for c in &children {
                let t = d.tables.get_mut(c).expect("listed");
                t.columns = cols.clone();
                for r in t.rows.values_mut() {
                    r.push(Value::Null);
                }
            }
        }
        AlterAction::DropColumn(n) => {
            let i = columns
                .iter()
                .position(|f| f.name == n)
                .ok_or_else(|| TdError::new(code::COLUMN_NOT_EXIST, format!("Column does not exist: {n}")))?;
            if i == 0 {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: the timestamp column cannot be dropped",
                ));
            }
            if table_type == "child" {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: cannot drop a column of a child table",
                ));
            }
            set_alter(&mut alter_json, 6, &columns[i]);
            let mut cols = columns.clone();
            cols.remove(i);
            let cols = Arc::new(cols);
            if let Some(s) = d.stables.get_mut(name) {
                s.columns = cols.clone();
            }
            for c in &children {
                let t = d.tables.get_mut(c).expect("listed");
                t.columns = cols.clone();
                for r in t.rows.values_mut() {
                    r.remove(i);
                }
            }
        }
        AlterAction::AddTag(f) => {
            if !is_stable {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: tags can only be added to a super table",
                ));
            }
            set_alter(&mut alter_json, 1, &f);
            let mut t2 = tags.clone();
            t2.push(f.clone());
            d.stables.get_mut(name).expect("is stable").tags = Arc::new(t2);
            for c in &children {
                let t = d.tables.get_mut(c).expect("listed");
                let mut v = t.tags.to_vec();
                v.push((f.clone(), Value::Null));
                t.tags = Arc::new(v);
            }
        }
        AlterAction::DropTag(n) => {
            if !is_stable {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: tags can only be dropped from a super table",
                ));
            }
            let i = tags
                .iter()
                .position(|f| f.name == n)
                .ok_or_else(|| TdError::new(code::TAG_NOT_EXIST, format!("Tag does not exist: {n}")))?;
            if tags.len() == 1 {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: a super table needs at least one tag",
                ));
            }
            set_alter(&mut alter_json, 2, &tags[i]);
            let mut t2 = tags.clone();
            t2.remove(i);
            d.stables.get_mut(name).expect("is stable").tags = Arc::new(t2);
            for c in &children {
                let t = d.tables.get_mut(c).expect("listed");
                let mut v = t.tags.to_vec();
                v.remove(i);
                t.tags = Arc::new(v);
            }
        }
        AlterAction::SetTag { name: tag, value } => {
            if table_type != "child" {
                return Err(TdError::new(
                    0x2600,
                    "syntax error: SET TAG applies to a child table",
                ));
            }
            let i = tags
                .iter()
                .position(|f| f.name == tag)
                .ok_or_else(|| TdError::new(code::INVALID_TAG_NAME, format!("Invalid tag name: {tag}")))?;
            let v = convert(&value, &tags[i], precision, precision.now(), "")?;
            set_alter(&mut alter_json, 4, &tags[i]);
            alter_json["colValue"] = match &v {
                Value::Null => json!("NULL"),
                Value::VarChar(s) | Value::NChar(s) | Value::Json(s) => json!(s),
                other => json!(other.to_json().to_string()),
            };
            alter_json["colValueNull"] = json!(v.is_null());
            let t = d.tables.get_mut(name).expect("exists");
            let mut tv = t.tags.to_vec();
            tv[i].1 = v;
            t.tags = Arc::new(tv);
        }
    }
    let vgroups: Vec<i32> = if is_stable {
        d.vgroups.clone()
    } else {
        vec![d.tables[name].vgroup]
    };
    let table = (!is_stable).then_some(name);
    meta(
        cat,
        &vgroups,
        db,
        stable_name.as_deref(),
        table,
        MetaKind::Alter,
        alter_json,
    );
    Ok(QueryResult::affected(0))
}

fn set_alter(j: &mut serde_json::Value, alter_type: u8, f: &Field) {
    j["alterType"] = json!(alter_type);
    j["colName"] = json!(f.name);
    j["colType"] = json!(f.ty as u8);
    j["colLength"] = json!(f.length);
}

fn drop_table(cat: &mut Catalog, stable_kw: bool, if_exists: bool, db: &str, name: &str) -> TdResult<()> {
    let d = cat.db_mut(db)?;
    if d.stables.contains_key(name) {
        if cat.topics.values().any(|t| {
            t.def.db == db
                && matches!(&t.def.kind, TopicKind::Stable { name: n, .. } | TopicKind::Query { table: n, is_stable: true, .. } if n == name)
        }) {
            return Err(TdError::new(0x03ED, "Topic must be dropped first"));
        }
        let d = cat.db_mut(db)?;
        d.stables.remove(name);
        d.tables.retain(|_, t| t.stable.as_deref() != Some(name));
        let vgroups = d.vgroups.clone();
        let json = json!({"type": "drop", "tableType": "super", "tableName": name});
        meta(cat, &vgroups, db, Some(name), None, MetaKind::Drop, json);
        return Ok(());
    }
    if stable_kw {
        return if if_exists {
            Ok(())
        } else {
            Err(TdError::stable_not_exist(name))
        };
    }
    let Some(t) = d.tables.remove(name) else {
        return if if_exists {
            Ok(())
        } else {
            Err(TdError::table_not_exist(name))
        };
    };
    let json = json!({"type": "drop", "tableNameList": [name]});
    meta(
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

fn delete(cat: &mut Catalog, db: &str, name: &str, filter: Option<&Expr>) -> TdResult<QueryResult> {
    let d = cat.db_mut(db)?;
    let precision = d.precision;
    let now = precision.now();
    let targets: Vec<String> = if d.stables.contains_key(name) {
        d.tables
            .iter()
            .filter(|(_, t)| t.stable.as_deref() == Some(name))
            .map(|(n, _)| n.clone())
            .collect()
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
    let mut vgroups = std::collections::BTreeSet::new();
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
    if d.stables.contains_key(name) {
        vgroups = d.vgroups.iter().copied().collect();
    }
    let json = json!({"type": "delete", "sql": format!("delete from `{name}` where `{ts_name}` >= {lo} and `{ts_name}` <= {hi}")});
    let vgroups: Vec<i32> = vgroups.into_iter().collect();
    let (stable, table) = match d.tables.get(name) {
        Some(t) => (t.stable.clone(), Some(name)),
        None => (Some(name.to_string()), None),
    };
    meta(
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

fn create_topic(
    cat: &mut Catalog,
    if_not_exists: bool,
    name: String,
    with_meta: bool,
    source: TopicSource,
    sql: String,
    current: &Option<String>,
) -> TdResult<QueryResult> {
    if cat.topics.contains_key(&name) {
        return if if_not_exists {
            Ok(QueryResult::affected(0))
        } else {
            Err(TdError::new(
                code::TOPIC_ALREADY_EXIST,
                format!("Topic already exists: {name}"),
            ))
        };
    }
    let (db, kind) = match source {
        TopicSource::Database(db) => {
            cat.db(&db)?;
            (db, TopicKind::Database)
        }
        TopicSource::Stable { name: st, filter } => {
            let db = db_of(&st, current)?.to_string();
            if !cat.db(&db)?.stables.contains_key(&st.name) {
                return Err(TdError::stable_not_exist(&st.name));
            }
            (
                db,
                TopicKind::Stable {
                    name: st.name,
                    filter,
                },
            )
        }
        TopicSource::Query { items, from, filter } => {
            let db = db_of(&from, current)?.to_string();
            let d = cat.db(&db)?;
            let (columns, tags, is_stable): (Vec<Field>, Vec<Field>, bool) =
                if let Some(s) = d.stables.get(&from.name) {
                    (s.columns.to_vec(), s.tags.to_vec(), true)
                } else if let Some(t) = d.tables.get(&from.name) {
                    if t.stable.is_some() {
                        return Err(TdError::new(
                            code::INVALID_TOPIC_QUERY,
                            "Invalid topic query: select from a super table or a normal table",
                        ));
                    }
                    (t.columns.to_vec(), vec![], false)
                } else {
                    return Err(TdError::table_not_exist(&from.name));
                };
            let mut projection = Vec::new();
            let mut fields = Vec::new();
            for item in items {
                match item {
                    SelectItem::Star => {
                        for c in &columns {
                            projection.push(c.name.clone());
                            fields.push(c.clone());
                        }
                    }
                    SelectItem::Count(_) | SelectItem::Func(_) => {
                        return Err(TdError::new(
                            code::INVALID_TOPIC_QUERY,
                            "Invalid topic query: aggregates are not allowed",
                        ))
                    }
                    SelectItem::Column { name: col, alias } => {
                        let mut f = if col.eq_ignore_ascii_case("tbname") {
                            tbname_field()
                        } else {
                            columns
                                .iter()
                                .chain(&tags)
                                .find(|f| f.name == col)
                                .cloned()
                                .ok_or_else(|| TdError::invalid_column(&col))?
                        };
                        if let Some(a) = alias {
                            f.name = a;
                        }
                        projection.push(col);
                        fields.push(f);
                    }
                }
            }
            (
                db,
                TopicKind::Query {
                    projection,
                    fields,
                    table: from.name,
                    is_stable,
                    filter,
                },
            )
        }
    };
    cat.topics.insert(
        name.clone(),
        TopicEntry {
            def: TopicDef {
                name,
                db,
                kind,
                with_meta,
                sql,
                created_ms: now_ms(),
            },
            subscribers: 0,
        },
    );
    Ok(QueryResult::affected(0))
}

// ---- reads -------------------------------------------------------------------------------------------

/// A select's source: columns, tag fields, and the tables read (name, table).
type SelectSource<'a> = (Arc<Vec<Field>>, Vec<Field>, Vec<(&'a String, &'a Table)>);

enum Out {
    Col(usize),
    Tag(usize),
    Tbname,
}

/// `SELECT SERVER_VERSION(), DATABASE(), NOW(), …` without a table.
fn select_functions(store: &Store, sel: &Select, current: &Option<String>) -> TdResult<QueryResult> {
    let mut fields = Vec::new();
    let mut row = Vec::new();
    for item in &sel.items {
        let SelectItem::Func(f) = item else {
            unreachable!("parser only omits FROM for functions")
        };
        let label = format!("{f}()");
        let (field, value) = match f.as_str() {
            "server_version" | "client_version" => {
                let v = store.server_version();
                (vc(&label, 64), Value::VarChar(v))
            }
            "database" => (
                vc(&label, 64),
                current.clone().map_or(Value::Null, Value::VarChar),
            ),
            "server_status" => (Field::fixed(label, ColumnType::Int), Value::Int(1)),
            "now" | "today" => {
                let ms = now_ms();
                let v = if f == "today" {
                    ms - ms.rem_euclid(86_400_000)
                } else {
                    ms
                };
                (ts_field(&label), Value::Timestamp(v))
            }
            _ => return Err(TdError::new(0x2800, format!("Invalid function name: {f}"))),
        };
        fields.push(field);
        row.push(value);
    }
    Ok(QueryResult::rows(fields, vec![row]))
}

fn select(cat: &Catalog, sel: &Select, current: &Option<String>) -> TdResult<QueryResult> {
    let from = sel.from.as_ref().expect("dispatched on from");
    let db = db_of(from, current)?;
    let d = cat.db(db)?;
    let precision = d.precision;
    let now = precision.now();
    let name = &from.name;
    let (columns, tag_fields, tables): SelectSource = if let Some(s) = d.stables.get(name) {
        let mut ts: Vec<_> = d
            .tables
            .iter()
            .filter(|(_, t)| t.stable.as_deref() == Some(name))
            .collect();
        ts.sort_by(|a, b| a.0.cmp(b.0));
        (s.columns.clone(), s.tags.to_vec(), ts)
    } else if let Some((n, t)) = d.tables.get_key_value(name) {
        (
            t.columns.clone(),
            t.tags.iter().map(|(f, _)| f.clone()).collect(),
            vec![(n, t)],
        )
    } else {
        return Err(TdError::table_not_exist(name));
    };
    let is_stable = d.stables.contains_key(name);
    let mut outs = Vec::new();
    let mut fields = Vec::new();
    let mut count: Option<Option<usize>> = None;
    for item in &sel.items {
        match item {
            SelectItem::Star => {
                for (i, c) in columns.iter().enumerate() {
                    outs.push(Out::Col(i));
                    fields.push(c.clone());
                }
                if is_stable {
                    for (i, t) in tag_fields.iter().enumerate() {
                        outs.push(Out::Tag(i));
                        fields.push(t.clone());
                    }
                }
            }
            SelectItem::Func(f) => {
                return Err(TdError::new(0x2800, format!("Invalid function name: {f}")));
            }
            SelectItem::Count(col) => {
                if sel.items.len() != 1 {
                    return Err(TdError::new(0x260C, "Not a single-group group function"));
                }
                count = Some(match col {
                    None => None,
                    Some(c) => Some(
                        columns
                            .iter()
                            .position(|f| &f.name == c)
                            .ok_or_else(|| TdError::invalid_column(c))?,
                    ),
                });
            }
            SelectItem::Column { name: col, alias } => {
                let (o, mut f) = if col.eq_ignore_ascii_case("tbname") {
                    (Out::Tbname, tbname_field())
                } else if let Some(i) = columns.iter().position(|f| &f.name == col) {
                    (Out::Col(i), columns[i].clone())
                } else if let Some(i) = tag_fields.iter().position(|f| &f.name == col) {
                    (Out::Tag(i), tag_fields[i].clone())
                } else {
                    return Err(TdError::invalid_column(col));
                };
                if let Some(a) = alias {
                    f.name = a.clone();
                }
                outs.push(o);
                fields.push(f);
            }
        }
    }
    // ORDER BY keys: a column, a tag, tbname, or an output column's name (alias).
    let order: Vec<(Option<Out>, Option<usize>, bool)> = sel
        .order_by
        .iter()
        .map(|(col, desc)| {
            let key = if col.eq_ignore_ascii_case("tbname") {
                (Some(Out::Tbname), None)
            } else if let Some(i) = columns.iter().position(|f| &f.name == col) {
                (Some(Out::Col(i)), None)
            } else if let Some(i) = tag_fields.iter().position(|f| &f.name == col) {
                (Some(Out::Tag(i)), None)
            } else if let Some(i) = fields.iter().position(|f| &f.name == col) {
                (None, Some(i))
            } else {
                return Err(TdError::invalid_column(col));
            };
            Ok((key.0, key.1, *desc))
        })
        .collect::<TdResult<_>>()?;
    let ts_name = &columns[0].name;
    let (lo, hi) = sel
        .filter
        .as_ref()
        .map_or((i64::MIN, i64::MAX), |f| f.ts_bounds(ts_name, precision, now));
    let mut counted = 0usize;
    let mut rows: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    if lo <= hi {
        for (tn, t) in &tables {
            let tag_vals = &t.tags;
            for (ts, row) in t.rows.range(lo..=hi) {
                if let Some(f) = &sel.filter {
                    let env = Env {
                        table: tn,
                        tags: tag_vals,
                        columns: &t.columns,
                        row: Some(row),
                        precision,
                        now,
                    };
                    if f.eval(&env) != Some(true) {
                        continue;
                    }
                }
                if let Some(c) = count {
                    if c.is_none_or(|i| !row[i].is_null()) {
                        counted += 1;
                    }
                    continue;
                }
                let value = |o: &Out| match o {
                    Out::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
                    Out::Tag(i) => tag_vals.get(*i).map_or(Value::Null, |(_, v)| v.clone()),
                    Out::Tbname => Value::VarChar(tn.to_string()),
                };
                let out: Vec<Value> = outs.iter().map(value).collect();
                let keys = order
                    .iter()
                    .map(|(o, i, _)| match (o, i) {
                        (Some(o), _) => value(o),
                        (None, Some(i)) => out[*i].clone(),
                        (None, None) => Value::Timestamp(*ts),
                    })
                    .collect();
                rows.push((keys, out));
            }
        }
    }
    if let Some(c) = count {
        let label = match c {
            None => "count(*)".to_string(),
            Some(i) => format!("count({})", columns[i].name),
        };
        return Ok(QueryResult {
            fields: vec![Field::fixed(label, ColumnType::BigInt)],
            precision,
            rows: vec![vec![Value::BigInt(counted as i64)]],
            affected_rows: 0,
        });
    }
    if !order.is_empty() {
        rows.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .zip(&order)
                .map(|((x, y), (_, _, desc))| {
                    let o = order_values(x, y);
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let offset = sel.offset.unwrap_or(0) as usize;
    let limit = sel.limit.map_or(usize::MAX, |l| l as usize);
    let rows = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, r)| r)
        .collect();
    Ok(QueryResult {
        fields,
        precision,
        rows,
        affected_rows: 0,
    })
}

/// The order of two values of one ORDER BY key: NULL first (TDengine's default for ASC), numbers by
/// value, text and bytes lexicographically.
fn order_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn num(v: &Value) -> Option<f64> {
        Some(match v {
            Value::Bool(x) => *x as u8 as f64,
            Value::TinyInt(x) => *x as f64,
            Value::SmallInt(x) => *x as f64,
            Value::Int(x) => *x as f64,
            Value::Float(x) => *x as f64,
            Value::Double(x) => *x,
            Value::UTinyInt(x) => *x as f64,
            Value::USmallInt(x) => *x as f64,
            Value::UInt(x) => *x as f64,
            _ => return None,
        })
    }
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Timestamp(x), Value::Timestamp(y)) | (Value::BigInt(x), Value::BigInt(y)) => x.cmp(y),
        (Value::UBigInt(x), Value::UBigInt(y)) => x.cmp(y),
        (
            Value::VarChar(x) | Value::NChar(x) | Value::Json(x),
            Value::VarChar(y) | Value::NChar(y) | Value::Json(y),
        ) => x.cmp(y),
        (Value::VarBinary(x) | Value::Geometry(x), Value::VarBinary(y) | Value::Geometry(y)) => x.cmp(y),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

fn vc(name: &str, len: u32) -> Field {
    Field::new(name, ColumnType::VarChar, len)
}

fn ts_field(name: &str) -> Field {
    Field::fixed(name, ColumnType::Timestamp)
}

/// `SHOW CONSUMERS` columns, as TDengine names them.
pub fn consumer_fields() -> Vec<Field> {
    vec![
        vc("consumer_id", 32),
        vc("consumer_group", 192),
        vc("client_id", 192),
        vc("status", 20),
        vc("topics", 204),
        ts_field("up_time"),
        ts_field("subscribe_time"),
        ts_field("rebalance_time"),
    ]
}

/// `SHOW SUBSCRIPTIONS` columns, as TDengine names them.
pub fn subscription_fields() -> Vec<Field> {
    vec![
        vc("topic_name", 204),
        vc("consumer_group", 193),
        Field::fixed("vgroup_id", ColumnType::Int),
        Field::fixed("consumer_id", ColumnType::BigInt),
        vc("offset", 64),
        Field::fixed("rows", ColumnType::BigInt),
    ]
}

fn show(cat: &Catalog, what: &ShowWhat, current: &Option<String>) -> TdResult<QueryResult> {
    let db_name = |o: &Option<String>| -> TdResult<String> {
        o.clone()
            .or_else(|| current.clone())
            .ok_or_else(TdError::db_not_specified)
    };
    let s = |x: &str| Value::VarChar(x.to_string());
    Ok(match what {
        ShowWhat::Databases => {
            let fields = vec![
                vc("name", 64),
                ts_field("create_time"),
                Field::fixed("vgroups", ColumnType::SmallInt),
                Field::fixed("ntables", ColumnType::BigInt),
                Field::fixed("replica", ColumnType::TinyInt),
                vc("precision", 2),
                Field::fixed("wal_retention_period", ColumnType::Int),
            ];
            let mut rows = vec![
                vec![
                    s("information_schema"),
                    Value::Null,
                    Value::Null,
                    Value::BigInt(0),
                    Value::Null,
                    s("ms"),
                    Value::Null,
                ],
                vec![
                    s("performance_schema"),
                    Value::Null,
                    Value::Null,
                    Value::BigInt(0),
                    Value::Null,
                    s("ms"),
                    Value::Null,
                ],
            ];
            for d in cat.dbs.values() {
                rows.push(vec![
                    s(&d.name),
                    Value::Timestamp(d.created_ms),
                    Value::SmallInt(d.vgroups.len() as i16),
                    Value::BigInt(d.tables.len() as i64),
                    Value::TinyInt(1),
                    s(d.precision.as_str()),
                    Value::Int(d.wal_retention_period_s as i32),
                ]);
            }
            QueryResult::rows(fields, rows)
        }
        ShowWhat::Stables(db) => {
            let db = db_name(db)?;
            let d = cat.db(&db)?;
            let fields = vec![
                vc("stable_name", 192),
                vc("db_name", 64),
                ts_field("create_time"),
                Field::fixed("columns", ColumnType::Int),
                Field::fixed("tags", ColumnType::Int),
            ];
            let rows = d
                .stables
                .iter()
                .map(|(n, st)| {
                    vec![
                        s(n),
                        s(&db),
                        Value::Timestamp(st.created_ms),
                        Value::Int(st.columns.len() as i32),
                        Value::Int(st.tags.len() as i32),
                    ]
                })
                .collect();
            QueryResult::rows(fields, rows)
        }
        ShowWhat::Tables(db) => {
            let db = db_name(db)?;
            let d = cat.db(&db)?;
            let fields = vec![
                vc("table_name", 192),
                vc("db_name", 64),
                ts_field("create_time"),
                Field::fixed("columns", ColumnType::Int),
                vc("stable_name", 192),
                Field::fixed("vgroup_id", ColumnType::Int),
                vc("type", 21),
            ];
            let mut names: Vec<_> = d.tables.keys().collect();
            names.sort();
            let rows = names
                .into_iter()
                .map(|n| {
                    let t = &d.tables[n];
                    vec![
                        s(n),
                        s(&db),
                        Value::Timestamp(t.created_ms),
                        Value::Int(t.columns.len() as i32),
                        t.stable.as_deref().map_or(Value::Null, s),
                        Value::Int(t.vgroup),
                        s(if t.stable.is_some() {
                            "CHILD_TABLE"
                        } else {
                            "NORMAL_TABLE"
                        }),
                    ]
                })
                .collect();
            QueryResult::rows(fields, rows)
        }
        ShowWhat::Vgroups(db) => {
            let db = db_name(db)?;
            let d = cat.db(&db)?;
            let fields = vec![
                Field::fixed("vgroup_id", ColumnType::Int),
                vc("db_name", 32),
                Field::fixed("tables", ColumnType::Int),
            ];
            let rows = d
                .vgroups
                .iter()
                .map(|vg| {
                    vec![
                        Value::Int(*vg),
                        s(&db),
                        Value::Int(d.tables.values().filter(|t| t.vgroup == *vg).count() as i32),
                    ]
                })
                .collect();
            QueryResult::rows(fields, rows)
        }
        ShowWhat::Topics => {
            let fields = vec![
                vc("topic_name", 192),
                vc("db_name", 64),
                ts_field("create_time"),
                vc("sql", 1024),
            ];
            let rows = cat
                .topics
                .values()
                .map(|t| {
                    vec![
                        s(&t.def.name),
                        s(&t.def.db),
                        Value::Timestamp(t.def.created_ms),
                        s(&t.def.sql),
                    ]
                })
                .collect();
            QueryResult::rows(fields, rows)
        }
        ShowWhat::Consumers | ShowWhat::Subscriptions => unreachable!("dispatched in execute"),
    })
}

fn describe(cat: &Catalog, name: &QualName, current: &Option<String>) -> TdResult<QueryResult> {
    let db = db_of(name, current)?;
    let d = cat.db(db)?;
    let (columns, tags): (Vec<Field>, Vec<Field>) = if let Some(s) = d.stables.get(&name.name) {
        (s.columns.to_vec(), s.tags.to_vec())
    } else if let Some(t) = d.tables.get(&name.name) {
        (
            t.columns.to_vec(),
            t.tags.iter().map(|(f, _)| f.clone()).collect(),
        )
    } else {
        return Err(TdError::table_not_exist(&name.name));
    };
    let fields = vec![
        vc("field", 64),
        vc("type", 32),
        Field::fixed("length", ColumnType::Int),
        vc("note", 16),
    ];
    let row = |f: &Field, note: &str| {
        vec![
            Value::VarChar(f.name.clone()),
            Value::VarChar(f.ty.sql_name().to_string()),
            Value::Int(f.length as i32),
            Value::VarChar(note.to_string()),
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
    use super::*;
    use crate::tdengine::wal::WalOp;

    fn run(store: &Store, sql: &str) -> TdResult<QueryResult> {
        store.execute(sql, &mut None)
    }

    #[test]
    fn seed_sql_writes_wal_of_vgroup_2() {
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
        let ops: Vec<_> = wal.read_from(0).map(|e| e.op.clone()).collect();
        assert_eq!(
            ops.len(),
            2,
            "create stable, then the insert with its auto-created child table"
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
    fn topics_and_errors() {
        let store = Store::default();
        run(&store, "create database d2 vgroups 4 precision 'us'").unwrap();
        assert_eq!(store.database("d2").unwrap().vgroups, vec![2, 3, 4, 5]);
        run(
            &store,
            "create stable d2.st (ts timestamp, v tinyint, s varchar(3), n nchar(2)) tags (g int)",
        )
        .unwrap();
        run(&store, "create topic t1 with meta as database d2").unwrap();
        assert_eq!(
            run(&store, "create topic t1 as database d2").unwrap_err().code,
            0x03E0
        );
        assert_eq!(run(&store, "drop topic nope").unwrap_err().code, 0x03E1);
        store.acquire_topic("t1").unwrap();
        assert_eq!(run(&store, "drop topic t1").unwrap_err().code, 0x03EB);
        store.release_topic("t1");
        run(&store, "drop topic t1").unwrap();
        // stable DDL lands in every vgroup
        for vg in 2..=5 {
            assert_eq!(store.wal(vg).unwrap().lock().last_version(), 1);
        }
        let e = run(
            &store,
            "insert into d2.c1 using d2.st tags(1) values(1, 128, 'a', 'b')",
        )
        .unwrap_err();
        assert_eq!(e.code, 0x2600, "{e}");
        assert!(e.message.contains("overflow"), "{e}");
        assert_eq!(
            run(
                &store,
                "insert into d2.c1 using d2.st tags(1) values(1, 1, 'abcd', 'b')"
            )
            .unwrap_err()
            .code,
            0x2610
        );
        assert_eq!(
            run(
                &store,
                "insert into d2.c1 using d2.st tags(1) values(1, 1, 'a', '北京人')"
            )
            .unwrap_err()
            .code,
            0x2610
        );
        assert_eq!(
            run(&store, "insert into d2.c1 using d2.st tags(1) values(1, 1, 'a')")
                .unwrap_err()
                .code,
            0x263F
        );
        assert_eq!(
            run(&store, "insert into d2.nope values(1, 1, 'a', 'b')")
                .unwrap_err()
                .code,
            0x2603
        );
        assert!(
            store.tables("d2").unwrap().is_empty(),
            "failed inserts create nothing"
        );
        run(&store, "insert into d2.c1 using d2.st tags(1) values(1, 1, 'a', '北京') (1, 2, 'b', 'x') (0, 3, null, null)").unwrap();
        let r = run(&store, "select * from d2.st order by ts").unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0][1], Value::TinyInt(3));
        assert_eq!(r.rows[1][1], Value::TinyInt(2), "later duplicate wins");
        assert_eq!(r.rows[1][4], Value::Int(1), "tag column of select *");
        let r = run(&store, "select count(*) from d2.st where g = 1 and ts > 0").unwrap();
        assert_eq!(r.rows, vec![vec![Value::BigInt(1)]]);
        run(&store, "alter database d2 wal_retention_period 5 keep 3650").unwrap();
        assert_eq!(store.database("d2").unwrap().wal_retention_period_s, 5);
        assert_eq!(
            run(&store, "alter database nope wal_retention_period 5")
                .unwrap_err()
                .code,
            0x0388
        );
        let r = run(&store, "delete from d2.c1 where ts <= 0").unwrap();
        assert_eq!(r.affected_rows, 1);
        assert_eq!(store.snapshot("d2", None).unwrap()[0].rows.len(), 1);
    }
}

#[cfg(test)]
mod fuzz {
    //! Whatever a client sends, the parser and executor answer with a result or a TDengine error.
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "create",
        "database",
        "db",
        "stable",
        "table",
        "st",
        "t1",
        "using",
        "tags",
        "(",
        ")",
        ",",
        ";",
        "insert",
        "into",
        "values",
        "select",
        "*",
        "from",
        "where",
        "ts",
        "v",
        ">",
        "=",
        "<=",
        "and",
        "or",
        "now",
        "+",
        "-",
        "1s",
        "1",
        "-1",
        "1.5",
        "'x'",
        "'北京'",
        "null",
        "timestamp",
        "int",
        "nchar",
        "varchar(4)",
        "drop",
        "alter",
        "add",
        "column",
        "tag",
        "set",
        "delete",
        "show",
        "tables",
        "topic",
        "as",
        "with",
        "meta",
        "describe",
        "count(*)",
        "order",
        "by",
        "desc",
        "limit",
        "if",
        "not",
        "exists",
        "`q`",
        ".",
        "tbname",
        "use",
        "vgroups",
        "precision",
        "'us'",
        "9223372036854775808",
        "in",
        "is",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let store = Store::default();
            let _ = store.execute(&s, &mut None);
        }

        #[test]
        fn token_soup_never_panics(words in prop::collection::vec(prop::sample::select(WORDS), 0..30)) {
            let store = Store::default();
            let mut db = None;
            store
                .execute(
                    "create database db vgroups 3; use db; \
                     create stable st (ts timestamp, v int, s nchar(2)) tags (g int); \
                     create table t1 using st tags (1); insert into t1 values (1, 1, 'a')",
                    &mut db,
                )
                .unwrap();
            let _ = store.execute(&words.join(" "), &mut db);
            // The store stays usable (the soup may have dropped anything, so only ask what must exist).
            let dbs = store.execute("show databases", &mut db).unwrap();
            prop_assert!(dbs.rows.len() >= 2);
        }
    }
}
