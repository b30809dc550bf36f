//! The stand-in's shared state: one [`Store`] (as `Arc<Store>`) per stand-in, shared by every connection.
//! It holds the [`Catalog`] behind a lock and answers the lookups TMQ needs; SQL runs through
//! [`Store::execute`], which the executor ([`exec`](super::exec)) defines on top of the store, so the store
//! itself never depends on the executor.
//!
//! Locking: the catalog sits behind one `RwLock`, held only for the duration of one statement. Each
//! vgroup's [`Wal`] has its own mutex so TMQ can read logs without touching the catalog. Lock order is
//! catalog → WAL: never take the catalog lock while holding a WAL lock.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use super::catalog::now_ms;
use super::catalog::{Catalog, DbInfo, StableInfo, TableInfo};
use super::error::{TdError, TdResult};
use super::topic::TopicDef;
use super::types::{Field, Precision, Value};
use super::wal::{TableRows, Wal};

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

/// The version the stand-in reports unless told otherwise: a current release, so clients take the code
/// paths they take against today's TDengine (the newer generation fetches TMQ data with `fetch_raw_data`
/// from 3.3.2.0 on; `taos` 0.12.3 uses binary SQL from 3.3.0.8 on). `3.3.0.0` keeps every client on the
/// JSON and `fetch_block` paths.
pub const DEFAULT_SERVER_VERSION: &str = "3.3.6.0";

/// The shared state of one stand-in.
pub struct Store {
    pub(crate) catalog: RwLock<Catalog>,
    tmq_info: RwLock<Option<Arc<dyn TmqInfo>>>,
    server_version: RwLock<String>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            catalog: RwLock::new(Catalog::default()),
            tmq_info: RwLock::new(None),
            server_version: RwLock::new(DEFAULT_SERVER_VERSION.into()),
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
            .map(|s| s.info(db, stable))
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
            .ok_or_else(|| TdError::topic_not_exist(name))
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
        let t = cat
            .topics
            .get_mut(name)
            .ok_or_else(|| TdError::topic_not_exist(name))?;
        t.subscribers += 1;
        Ok(t.def.clone())
    }

    /// How many subscribers hold `name` (what DROP TOPIC checks); 0 for a topic that does not exist.
    pub fn topic_subscribers(&self, name: &str) -> usize {
        self.catalog.read().topics.get(name).map_or(0, |t| t.subscribers)
    }

    /// Undoes one [`Store::acquire_topic`].
    pub fn release_topic(&self, name: &str) {
        if let Some(t) = self.catalog.write().topics.get_mut(name) {
            t.subscribers = t.subscribers.saturating_sub(1);
        }
    }
}
