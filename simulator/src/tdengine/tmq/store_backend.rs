//! [`TmqBackend`] over the stand-in's [`Store`]: topic definitions turned into [`TopicSpec`]s, vgroup logs
//! read (and trimmed to the database's `WAL_RETENTION_PERIOD`) under their own mutex, blocks encoded with
//! the SQL side's encoder. Also renders `SHOW CONSUMERS` / `SHOW SUBSCRIPTIONS` for the store.

use std::sync::Arc;

use tokio::sync::watch;

use crate::tdengine::exec::{consumer_fields, subscription_fields};
use crate::tdengine::store::{now_ms, QueryResult, Store, TmqInfo};
use crate::tdengine::topic::{TopicDef, TopicKind as DefKind};
use crate::tdengine::types::{Precision, Value};
use crate::tdengine::wal::{InternalOp, TableRows, Wal, WalEntry, WalOp};

use super::backend::TmqBackend;
use super::group::{Bounds, VgroupId, UNSET_OFFSET};
use super::message::{Projection, Source, TopicKind, TopicSpec};
use super::server::Tmq;

/// The store as TMQ sees it, with the credentials `subscribe` checks and the version it reports.
pub struct StoreBackend {
    store: Arc<Store>,
    user: String,
    password: String,
    version: String,
}

impl StoreBackend {
    pub fn new(store: Arc<Store>, user: &str, password: &str, version: &str) -> Self {
        Self {
            store,
            user: user.into(),
            password: password.into(),
            version: version.into(),
        }
    }

    /// The vgroup's log, trimmed to the database's retention first.
    fn wal(&self, db: &str, vgroup: VgroupId) -> Option<Arc<parking_lot::Mutex<Wal>>> {
        let wal = self.store.wal(vgroup)?;
        if let Ok(info) = self.store.database(db) {
            // Retention 0 keeps nothing once written, which lets tests exercise retention without waiting.
            let cutoff = match info.wal_retention_period_s {
                0 => i64::MAX,
                s => now_ms() - s * 1000,
            };
            wal.lock().trim_before(cutoff);
        }
        Some(wal)
    }
}

/// A topic definition as TMQ serves it.
pub fn spec_of(def: TopicDef) -> TopicSpec {
    let kind = match &def.kind {
        DefKind::Query {
            projection,
            fields,
            table,
            ..
        } => TopicKind::Query {
            from: table.clone(),
            columns: projection
                .iter()
                .zip(fields)
                .map(|(name, field)| Projection {
                    field: field.clone(),
                    source: if name.eq_ignore_ascii_case("tbname") {
                        Source::Tbname
                    } else {
                        Source::Column(name.clone())
                    },
                })
                .collect(),
        },
        DefKind::Stable { name, .. } => TopicKind::Stable { stable: name.clone() },
        DefKind::Database => TopicKind::Database,
    };
    let name = def.name.clone();
    let db = def.db.clone();
    let with_meta = def.with_meta;
    let def = Arc::new(def);
    TopicSpec {
        name,
        db,
        kind,
        with_meta,
        filter: Some(Arc::new(move |rows: &TableRows| def.covers(rows))),
    }
}

impl TmqBackend for StoreBackend {
    fn server_version(&self) -> String {
        self.version.clone()
    }

    fn authenticate(&self, user: &str, password: &str) -> bool {
        user == self.user && password == self.password
    }

    fn topic(&self, name: &str) -> Option<TopicSpec> {
        self.store.topic(name).ok().map(spec_of)
    }

    fn acquire_topic(&self, name: &str) -> Option<TopicSpec> {
        self.store.acquire_topic(name).ok().map(spec_of)
    }

    fn release_topic(&self, name: &str) {
        self.store.release_topic(name)
    }

    fn vgroups(&self, db: &str) -> Option<Vec<VgroupId>> {
        self.store.database(db).ok().map(|d| d.vgroups)
    }

    fn precision(&self, db: &str) -> Precision {
        self.store.database(db).map(|d| d.precision).unwrap_or_default()
    }

    fn wal_bounds(&self, db: &str, vgroup: VgroupId) -> Bounds {
        match self.wal(db, vgroup) {
            Some(wal) => {
                let w = wal.lock();
                Bounds {
                    first: w.first_version(),
                    last: w.last_version(),
                }
            }
            None => Bounds { first: 1, last: 0 },
        }
    }

    fn data_trimmed_to(&self, db: &str, vgroup: VgroupId) -> i64 {
        self.wal(db, vgroup).map_or(0, |w| w.lock().data_trimmed_to())
    }

    fn read_wal(&self, db: &str, vgroup: VgroupId, from: i64, max: usize) -> Vec<Arc<WalEntry>> {
        match self.wal(db, vgroup) {
            Some(wal) => wal.lock().read_from(from).take(max).cloned().collect(),
            None => Vec::new(),
        }
    }

    fn watch_wal(&self, _db: &str, vgroup: VgroupId) -> Option<watch::Receiver<i64>> {
        self.store.wal(vgroup).map(|w| w.lock().subscribe())
    }

    fn snapshot(&self, db: &str, vgroup: VgroupId) -> (Vec<TableRows>, i64) {
        // The version is read first: a write racing the snapshot may then appear in both the snapshot and
        // the log after it (a duplicate, never a loss).
        let version = self.store.wal(vgroup).map_or(0, |w| w.lock().last_version());
        let tables = self.store.snapshot(db, Some(vgroup)).unwrap_or_default();
        (tables, version)
    }

    fn append_internal(&self, db: &str, vgroup: VgroupId, op: InternalOp) {
        if let Some(wal) = self.wal(db, vgroup) {
            wal.lock().append(now_ms(), WalOp::Internal(op));
        }
    }
}

/// What to install with [`Store::set_tmq_info`]: a weak handle, so the store (which the TMQ backend holds)
/// does not keep the TMQ state, and with it its ticker task, alive after the server is gone.
pub fn info_provider(tmq: &Arc<Tmq>) -> Arc<dyn TmqInfo> {
    Arc::new(WeakInfo(Arc::downgrade(tmq)))
}

struct WeakInfo(std::sync::Weak<Tmq>);

impl TmqInfo for WeakInfo {
    fn show_consumers(&self) -> QueryResult {
        match self.0.upgrade() {
            Some(t) => t.show_consumers(),
            None => QueryResult::rows(consumer_fields(), vec![]),
        }
    }

    fn show_subscriptions(&self) -> QueryResult {
        match self.0.upgrade() {
            Some(t) => t.show_subscriptions(),
            None => QueryResult::rows(subscription_fields(), vec![]),
        }
    }
}

/// `SHOW CONSUMERS` / `SHOW SUBSCRIPTIONS` for the store, from the coordinator.
impl TmqInfo for Tmq {
    fn show_consumers(&self) -> QueryResult {
        let s = |x: &str| Value::VarChar(x.to_string());
        let rows = self
            .consumers()
            .into_iter()
            .map(|c| {
                let joined = Value::Timestamp(self.wall_ms(c.joined_ms));
                vec![
                    s(&format!("0x{:x}", c.id)),
                    s(&c.group),
                    c.client_id.as_deref().map_or(Value::Null, s),
                    s("ready"),
                    s(&c.topics.join(",")),
                    joined.clone(),
                    joined.clone(),
                    joined,
                ]
            })
            .collect();
        QueryResult::rows(consumer_fields(), rows)
    }

    fn show_subscriptions(&self) -> QueryResult {
        let rows = self
            .subscriptions()
            .into_iter()
            .map(|r| {
                vec![
                    Value::VarChar(r.topic),
                    Value::VarChar(r.group),
                    Value::Int(r.vgroup),
                    r.consumer.map_or(Value::Null, |c| Value::BigInt(c as i64)),
                    if r.committed == UNSET_OFFSET {
                        Value::Null
                    } else {
                        Value::VarChar(format!("log:{}", r.committed))
                    },
                    Value::BigInt(0),
                ]
            })
            .collect();
        QueryResult::rows(subscription_fields(), rows)
    }
}
