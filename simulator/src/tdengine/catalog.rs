//! What the stand-in knows: databases with their vgroups and WALs, super tables, tables with their rows,
//! and topics. The catalog is plain data plus the few operations that keep it consistent (vgroup
//! allocation, table placement, WAL appends); the [`Store`](super::store::Store) puts it behind a lock and
//! the SQL executor ([`exec`](super::exec)) changes it. It depends on neither, so both can use it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::{TdError, TdResult};
use super::topic::TopicDef;
use super::types::{Field, Precision, Value};
use super::wal::{Wal, WalOp};

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

/// Every database, vgroup and topic of one stand-in.
#[derive(Debug)]
pub struct Catalog {
    pub(crate) dbs: BTreeMap<String, Database>,
    pub(crate) vgroups: BTreeMap<i32, Vgroup>,
    pub(crate) next_vgroup_id: i32,
    pub(crate) topics: BTreeMap<String, TopicEntry>,
}

impl Default for Catalog {
    /// TDengine numbers the vgroups of a fresh cluster from 2 (vgroup 1 belongs to the system databases).
    fn default() -> Self {
        Self {
            dbs: BTreeMap::new(),
            vgroups: BTreeMap::new(),
            next_vgroup_id: 2,
            topics: BTreeMap::new(),
        }
    }
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

    /// The child tables of super table `stable`, by name (unordered).
    pub fn children_of<'a>(&'a self, stable: &'a str) -> impl Iterator<Item = (&'a String, &'a Table)> + 'a {
        self.tables
            .iter()
            .filter(move |(_, t)| t.stable.as_deref() == Some(stable))
    }
}

impl Stable {
    pub fn info(&self, db: &str, name: &str) -> StableInfo {
        StableInfo {
            db: db.to_string(),
            name: name.to_string(),
            columns: self.columns.clone(),
            tags: self.tags.clone(),
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

    /// The tag definitions without their values.
    pub fn tag_fields(&self) -> Vec<Field> {
        self.tags.iter().map(|(f, _)| f.clone()).collect()
    }
}

impl Catalog {
    pub(crate) fn db(&self, name: &str) -> TdResult<&Database> {
        self.dbs.get(name).ok_or_else(|| TdError::db_not_exist(name))
    }

    pub(crate) fn db_mut(&mut self, name: &str) -> TdResult<&mut Database> {
        self.dbs.get_mut(name).ok_or_else(|| TdError::db_not_exist(name))
    }

    /// Adds database `name` with `vgroups` fresh vgroups (ids continue the cluster's numbering), each with
    /// an empty WAL. The caller has checked that the name is free.
    pub(crate) fn add_database(
        &mut self,
        name: String,
        precision: Precision,
        vgroups: i32,
        wal_retention_period_s: i64,
    ) {
        let ids: Vec<i32> = (self.next_vgroup_id..self.next_vgroup_id + vgroups).collect();
        self.next_vgroup_id += vgroups;
        for &vg in &ids {
            self.vgroups.insert(
                vg,
                Vgroup {
                    db: name.clone(),
                    wal: Arc::new(Mutex::new(Wal::new_at(now_ms()))),
                },
            );
        }
        self.dbs.insert(
            name.clone(),
            Database {
                name,
                precision,
                vgroups: ids,
                wal_retention_period_s,
                created_ms: now_ms(),
                stables: BTreeMap::new(),
                tables: HashMap::new(),
            },
        );
    }

    /// Removes database `name` and its vgroups; `false` if there is none.
    pub(crate) fn remove_database(&mut self, name: &str) -> bool {
        let Some(db) = self.dbs.remove(name) else {
            return false;
        };
        for vg in db.vgroups {
            self.vgroups.remove(&vg);
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdengine::wal::Insert;

    #[test]
    fn appending_trims_entries_older_than_the_retention_without_any_reader() {
        let mut catalog = Catalog::default();
        catalog.add_database("d".into(), Precision::Millisecond, 1, 10);
        let vg = catalog.db("d").unwrap().vgroups[0];
        let op = || WalOp::Insert(Insert::from(Vec::new()));
        // After the vgroup's sync no-op (version 0, written now).
        let t0 = now_ms() + 1_000;
        catalog.append_at(vg, op(), t0);
        catalog.append_at(vg, op(), t0 + 5_000);
        let wal = catalog.vgroups[&vg].wal.clone();
        assert_eq!(wal.lock().read_from(1).count(), 2, "both within 10 s");
        // 10.5 s after the first: it and the no-op fall out, the second stays.
        let v3 = catalog.append_at(vg, op(), t0 + 10_500);
        let versions: Vec<i64> = wal.lock().read_from(0).map(|e| e.version).collect();
        assert_eq!(versions, [v3 - 1, v3]);
        assert_eq!(wal.lock().last_version(), v3, "versions keep counting");
    }

    #[test]
    fn databases_take_the_next_vgroup_ids_and_dropping_one_removes_its_vgroups() {
        let mut catalog = Catalog::default();
        catalog.add_database("a".into(), Precision::Millisecond, 2, 3600);
        catalog.add_database("b".into(), Precision::Microsecond, 3, 3600);
        assert_eq!(catalog.db("a").unwrap().vgroups, [2, 3]);
        assert_eq!(catalog.db("b").unwrap().vgroups, [4, 5, 6]);
        assert!(catalog.remove_database("a"));
        assert!(!catalog.remove_database("a"));
        assert_eq!(catalog.vgroups.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
        assert_eq!(
            catalog.db("a").unwrap_err().code,
            crate::tdengine::error::code::DB_NOT_EXIST
        );
    }
}
