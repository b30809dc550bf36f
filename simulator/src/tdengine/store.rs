//! The stand-in's in-memory state: databases with their vgroups and WALs, super tables, tables and rows,
//! and topics. One [`Store`] is shared (as `Arc<Store>`) by every connection; SQL runs through
//! [`Store::execute`], TMQ reads through the lookup methods below.
//!
//! Locking: the catalog sits behind one `RwLock`, held only for the duration of one statement. Each
//! vgroup's [`Wal`] has its own mutex so TMQ can read logs without touching the catalog. Lock order is
//! catalog → WAL: never take the catalog lock while holding a WAL lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::{code, TdError, TdResult};
use super::topic::TopicDef;
use super::types::{Field, Precision, Value};
use super::wal::{TableRows, Wal, WalOp};

/// The result of one statement: a result set (`fields` non-empty) or an update count.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub fields: Vec<Field>,
    pub precision: Precision,
    pub rows: Vec<Vec<Value>>,
    pub affected_rows: usize,
}

impl QueryResult {
    pub fn affected(n: usize) -> Self {
        Self {
            affected_rows: n,
            ..Default::default()
        }
    }

    pub fn rows(fields: Vec<Field>, rows: Vec<Vec<Value>>) -> Self {
        Self {
            fields,
            rows,
            ..Default::default()
        }
    }

    /// No result set: `is_update` on the wire.
    pub fn is_update(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Rows for `SHOW CONSUMERS` / `SHOW SUBSCRIPTIONS`, provided by the TMQ side (see
/// [`Store::set_tmq_info`]); without a provider both show empty results with TDengine's columns.
pub trait TmqInfo: Send + Sync {
    fn show_consumers(&self) -> QueryResult;
    fn show_subscriptions(&self) -> QueryResult;
}

/// A database as TMQ needs it.
#[derive(Debug, Clone)]
pub struct DbInfo {
    pub name: String,
    pub precision: Precision,
    /// Vgroup ids, ascending.
    pub vgroups: Vec<i32>,
    /// `WAL_RETENTION_PERIOD` in seconds (TDengine's default 3600; the stand-in accepts only >= 0).
    pub wal_retention_period_s: i64,
}

/// A table's current schema and tags.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub db: String,
    pub name: String,
    pub stable: Option<String>,
    pub vgroup: i32,
    pub columns: Arc<Vec<Field>>,
    pub tags: Arc<Vec<(Field, Value)>>,
}

/// A super table's current schema.
#[derive(Debug, Clone)]
pub struct StableInfo {
    pub db: String,
    pub name: String,
    pub columns: Arc<Vec<Field>>,
    pub tags: Arc<Vec<Field>>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub(crate) dbs: BTreeMap<String, Database>,
    pub(crate) vgroups: BTreeMap<i32, Vgroup>,
    pub(crate) next_vgroup_id: i32,
    pub(crate) topics: BTreeMap<String, TopicEntry>,
}

#[derive(Debug)]
pub(crate) struct TopicEntry {
    pub def: TopicDef,
    pub subscribers: usize,
}

#[derive(Debug)]
pub(crate) struct Vgroup {
    pub db: String,
    pub wal: Arc<Mutex<Wal>>,
}

#[derive(Debug)]
pub(crate) struct Database {
    pub name: String,
    pub precision: Precision,
    pub vgroups: Vec<i32>,
    pub wal_retention_period_s: i64,
    pub created_ms: i64,
    pub stables: BTreeMap<String, Stable>,
    pub tables: HashMap<String, Table>,
}

#[derive(Debug)]
pub(crate) struct Stable {
    pub columns: Arc<Vec<Field>>,
    pub tags: Arc<Vec<Field>>,
    pub created_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub vgroup: i32,
    pub stable: Option<String>,
    pub columns: Arc<Vec<Field>>,
    pub tags: Arc<Vec<(Field, Value)>>,
    /// Rows by timestamp; each row holds every column, the timestamp first.
    pub rows: BTreeMap<i64, Vec<Value>>,
    pub created_ms: i64,
}

impl Database {
    /// The vgroup a table lives in: a stable hash (FNV-1a) of its name over the database's vgroups.
    pub fn vgroup_for(&self, table: &str) -> i32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in table.bytes() {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
        self.vgroups[h as usize % self.vgroups.len()]
    }

    pub fn info(&self) -> DbInfo {
        DbInfo {
            name: self.name.clone(),
            precision: self.precision,
            vgroups: self.vgroups.clone(),
            wal_retention_period_s: self.wal_retention_period_s,
        }
    }
}

impl Table {
    pub fn info(&self, db: &str, name: &str) -> TableInfo {
        TableInfo {
            db: db.to_string(),
            name: name.to_string(),
            stable: self.stable.clone(),
            vgroup: self.vgroup,
            columns: self.columns.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl Catalog {
    pub(crate) fn db(&self, name: &str) -> TdResult<&Database> {
        self.dbs.get(name).ok_or_else(|| TdError::db_not_exist(name))
    }

    pub(crate) fn db_mut(&mut self, name: &str) -> TdResult<&mut Database> {
        self.dbs.get_mut(name).ok_or_else(|| TdError::db_not_exist(name))
    }

    /// Appends `op` to vgroup `vgroup`'s WAL and returns its version.
    pub(crate) fn append(&self, vgroup: i32, op: WalOp) -> i64 {
        self.append_at(vgroup, op, now_ms())
    }

    /// [`Catalog::append`] at wall-clock time `now_ms`. Entries older than the database's
    /// `WAL_RETENTION_PERIOD` are dropped here too, as TDengine trims its WAL whether or not anyone reads
    /// it (TMQ reads trim as well, see the TMQ backend); retention 0 is left to the reads, which keep
    /// nothing.
    fn append_at(&self, vgroup: i32, op: WalOp, now_ms: i64) -> i64 {
        let vg = self
            .vgroups
            .get(&vgroup)
            .expect("every database vgroup is registered");
        let retention_s = self.dbs.get(&vg.db).map_or(0, |d| d.wal_retention_period_s);
        let mut wal = vg.wal.lock();
        if retention_s > 0 {
            wal.trim_before(now_ms - retention_s * 1000);
        }
        wal.append(now_ms, op)
    }
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    Precision::Millisecond.now()
}

/// The shared state of one stand-in.
pub struct Store {
    pub(crate) catalog: RwLock<Catalog>,
    tmq_info: RwLock<Option<Arc<dyn TmqInfo>>>,
    server_version: RwLock<String>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            catalog: RwLock::new(Catalog {
                next_vgroup_id: 2,
                ..Default::default()
            }),
            tmq_info: RwLock::new(None),
            server_version: RwLock::new(crate::tdengine::server::DEFAULT_SERVER_VERSION.into()),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Runs `sql` (one or more statements separated by `;`) for a session whose current database is
    /// `current_db` (`USE db` changes it). Returns the last statement's result; stops at the first error.
    pub fn execute(&self, sql: &str, current_db: &mut Option<String>) -> TdResult<QueryResult> {
        let stmts = super::sql::parse(sql)?;
        let mut last = QueryResult::default();
        for stmt in stmts {
            last = super::exec::execute(self, stmt, current_db)?;
        }
        Ok(last)
    }

    /// Installs the provider of `SHOW CONSUMERS` / `SHOW SUBSCRIPTIONS`.
    pub fn set_tmq_info(&self, info: Arc<dyn TmqInfo>) {
        *self.tmq_info.write() = Some(info);
    }

    /// What `SELECT SERVER_VERSION()` returns (the server sets it to its configured version).
    pub fn set_server_version(&self, version: &str) {
        *self.server_version.write() = version.to_string();
    }

    pub fn server_version(&self) -> String {
        self.server_version.read().clone()
    }

    pub(crate) fn tmq_info(&self) -> Option<Arc<dyn TmqInfo>> {
        self.tmq_info.read().clone()
    }

    pub fn database(&self, db: &str) -> TdResult<DbInfo> {
        Ok(self.catalog.read().db(db)?.info())
    }

    /// The WAL of vgroup `vgroup_id`, if that vgroup exists.
    pub fn wal(&self, vgroup_id: i32) -> Option<Arc<Mutex<Wal>>> {
        self.catalog.read().vgroups.get(&vgroup_id).map(|v| v.wal.clone())
    }

    /// The database a vgroup belongs to.
    pub fn vgroup_db(&self, vgroup_id: i32) -> Option<String> {
        self.catalog.read().vgroups.get(&vgroup_id).map(|v| v.db.clone())
    }

    pub fn table(&self, db: &str, table: &str) -> TdResult<TableInfo> {
        let cat = self.catalog.read();
        let d = cat.db(db)?;
        d.tables
            .get(table)
            .map(|t| t.info(db, table))
            .ok_or_else(|| TdError::table_not_exist(table))
    }

    pub fn stable(&self, db: &str, stable: &str) -> TdResult<StableInfo> {
        let cat = self.catalog.read();
        let d = cat.db(db)?;
        d.stables
            .get(stable)
            .map(|s| StableInfo {
                db: db.to_string(),
                name: stable.to_string(),
                columns: s.columns.clone(),
                tags: s.tags.clone(),
            })
            .ok_or_else(|| TdError::stable_not_exist(stable))
    }

    /// Every table of `db` (child and normal), sorted by name.
    pub fn tables(&self, db: &str) -> TdResult<Vec<TableInfo>> {
        let cat = self.catalog.read();
        let d = cat.db(db)?;
        let mut out: Vec<_> = d.tables.iter().map(|(n, t)| t.info(db, n)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The rows stored now in the tables of `db` (only those in `vgroup` when given), one [`TableRows`]
    /// per non-empty table, sorted by table name — what `experimental.snapshot.enable` reads.
    pub fn snapshot(&self, db: &str, vgroup: Option<i32>) -> TdResult<Vec<TableRows>> {
        let cat = self.catalog.read();
        let d = cat.db(db)?;
        let mut names: Vec<&String> = d
            .tables
            .iter()
            .filter(|(_, t)| vgroup.is_none_or(|v| t.vgroup == v) && !t.rows.is_empty())
            .map(|(n, _)| n)
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let t = &d.tables[n];
                TableRows {
                    db: db.to_string(),
                    table: n.clone(),
                    stable: t.stable.clone(),
                    columns: t.columns.clone(),
                    tags: t.tags.clone(),
                    rows: t.rows.values().cloned().collect(),
                }
            })
            .collect())
    }

    pub fn topic(&self, name: &str) -> TdResult<TopicDef> {
        self.catalog
            .read()
            .topics
            .get(name)
            .map(|t| t.def.clone())
            .ok_or_else(|| topic_not_exist(name))
    }

    pub fn topics(&self) -> Vec<TopicDef> {
        self.catalog
            .read()
            .topics
            .values()
            .map(|t| t.def.clone())
            .collect()
    }

    /// Registers one more subscriber of `name` (DROP TOPIC then fails with 0x03EB) and returns the topic.
    pub fn acquire_topic(&self, name: &str) -> TdResult<TopicDef> {
        let mut cat = self.catalog.write();
        let t = cat.topics.get_mut(name).ok_or_else(|| topic_not_exist(name))?;
        t.subscribers += 1;
        Ok(t.def.clone())
    }

    /// Undoes one [`Store::acquire_topic`].
    pub fn release_topic(&self, name: &str) {
        if let Some(t) = self.catalog.write().topics.get_mut(name) {
            t.subscribers = t.subscribers.saturating_sub(1);
        }
    }
}

pub(crate) fn topic_not_exist(name: &str) -> TdError {
    TdError::new(code::TOPIC_NOT_EXIST, format!("Topic not exist: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::wal::Insert;

    #[test]
    fn appending_trims_entries_older_than_the_retention_without_any_reader() {
        let store = Store::new();
        store
            .execute("create database d vgroups 1 wal_retention_period 10", &mut None)
            .unwrap();
        let vg = store.database("d").unwrap().vgroups[0];
        let catalog = store.catalog.read();
        let op = || WalOp::Insert(Insert::from(Vec::new()));
        let t0 = 1_000_000;
        catalog.append_at(vg, op(), t0);
        catalog.append_at(vg, op(), t0 + 5_000);
        let wal = store.wal(vg).unwrap();
        assert_eq!(wal.lock().read_from(0).count(), 2, "both within 10 s");
        // 10.5 s after the first: it falls out, the second stays.
        let v3 = catalog.append_at(vg, op(), t0 + 10_500);
        let versions: Vec<i64> = wal.lock().read_from(0).map(|e| e.version).collect();
        assert_eq!(versions, [v3 - 1, v3]);
        assert_eq!(wal.lock().last_version(), v3, "versions keep counting");
    }
}
