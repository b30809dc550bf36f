//! Per-vgroup write-ahead log: every write applied to a vnode appends one entry with the next version of its
//! vgroup, as in TDengine: the sync no-op a one-replica vnode writes when it starts (version 0), insert
//! requests, create/alter/drop/delete, and TMQ's own writes (a subscribe or rebalance, a committed offset).
//! These versions are TMQ offsets: the position after a message is the version after the last entry its
//! scan read (see `tmq::message` and docs/standin.md).
//!
//! The SQL executor appends; TMQ reads. Entries carry everything a subscriber needs without consulting the
//! catalog again (schemas and tags as they were at write time), because the catalog may have moved on by the
//! time a consumer reads (altered columns, dropped tables).

use std::sync::Arc;

use super::types::{Field, Value};

/// One entry of a vgroup's log.
#[derive(Debug, Clone)]
pub struct WalEntry {
    /// The vgroup-local version: strictly increasing; a fresh vgroup's first entry (its sync no-op) is 0.
    pub version: i64,
    /// Wall-clock time of the write in ms since the epoch (for WAL retention).
    pub written_at_ms: i64,
    pub op: WalOp,
}

#[derive(Debug, Clone)]
pub enum WalOp {
    /// The part of one insert request that landed in this vgroup.
    Insert(Insert),
    /// A schema or delete event, published to `WITH META` topics.
    Meta(MetaEvent),
    /// A write no topic ever delivers; it only takes a version.
    Internal(InternalOp),
}

/// The vnode writes that carry no data for subscribers (TDengine message types in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalOp {
    /// The sync no-op a one-replica vnode appends when it starts (`TDMT_SYNC_NOOP`), version 0.
    SyncNoop,
    /// A consumer took or left the vgroup in a subscribe or rebalance (`TDMT_VND_TMQ_SUBSCRIBE`).
    TmqSubscribe,
    /// A consumer group committed an offset of the vgroup (`TDMT_VND_TMQ_COMMIT_OFFSET`).
    TmqCommitOffset,
}

/// Rows of one insert request in one vgroup, one [`TableRows`] per table, with the child tables the request
/// auto-created there (`INSERT INTO t USING st TAGS …`). TDengine logs an auto-create in the same entry as
/// its rows (one version), and TMQ hands such an entry to `WITH META` topics as one meta+data message.
#[derive(Debug, Clone, Default)]
pub struct Insert {
    /// `create` events (`tableType` `child`) of the tables this request auto-created in this vgroup.
    pub created: Vec<MetaEvent>,
    pub tables: Vec<TableRows>,
}

impl From<Vec<TableRows>> for Insert {
    fn from(tables: Vec<TableRows>) -> Self {
        Insert {
            created: Vec::new(),
            tables,
        }
    }
}

/// Rows written to one table by one request, with the table's schema and tags at write time.
#[derive(Debug, Clone)]
pub struct TableRows {
    pub db: String,
    pub table: String,
    /// The super table of a child table; `None` for a normal table.
    pub stable: Option<String>,
    /// Columns at write time; the first is the timestamp.
    pub columns: Arc<Vec<Field>>,
    /// Tag definitions and values at write time (empty for a normal table).
    pub tags: Arc<Vec<(Field, Value)>>,
    /// One `Vec<Value>` per row, in `columns` order, as written (sorted by ts, later duplicates replacing
    /// earlier ones within the request, as TDengine does).
    pub rows: Vec<Vec<Value>>,
}

/// A meta event. `json` is the TMQ meta JSON of §5 of the protocol reference
/// (`{"type":"create","tableType":"super",…}`); `stable`/`table` feed the bridge's topic variables.
#[derive(Debug, Clone)]
pub struct MetaEvent {
    pub db: String,
    pub stable: Option<String>,
    pub table: Option<String>,
    pub kind: MetaKind,
    pub json: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    Create,
    Alter,
    Drop,
    Delete,
}

/// The log of one vgroup. Readers wait for new entries with [`Wal::subscribe`].
#[derive(Debug)]
pub struct Wal {
    entries: std::collections::VecDeque<Arc<WalEntry>>,
    next_version: i64,
    /// Bumped to the last version on every append; TMQ polls wait on it.
    appended: tokio::sync::watch::Sender<i64>,
    /// The version after the newest trimmed entry that was not [`WalOp::Internal`] (0: none trimmed).
    data_trimmed_to: i64,
}

impl Default for Wal {
    fn default() -> Self {
        Self::new()
    }
}

impl Wal {
    /// A fresh vgroup's log, holding the sync no-op (version 0) written at `now_ms`.
    pub fn new_at(now_ms: i64) -> Self {
        let mut wal = Self {
            entries: Default::default(),
            next_version: 0,
            appended: tokio::sync::watch::channel(0).0,
            data_trimmed_to: 0,
        };
        wal.append(now_ms, WalOp::Internal(InternalOp::SyncNoop));
        wal
    }

    /// [`Wal::new_at`] at time 0 (tests).
    pub fn new() -> Self {
        Self::new_at(0)
    }

    /// Appends `op` and returns its version.
    pub fn append(&mut self, written_at_ms: i64, op: WalOp) -> i64 {
        let version = self.next_version;
        self.next_version += 1;
        self.entries.push_back(Arc::new(WalEntry {
            version,
            written_at_ms,
            op,
        }));
        self.appended.send_replace(version);
        version
    }

    /// The version of the oldest entry still in the log (`last_version() + 1` when empty).
    pub fn first_version(&self) -> i64 {
        self.entries.front().map_or(self.next_version, |e| e.version)
    }

    /// The version of the newest entry (0, the sync no-op, when nothing else was written).
    pub fn last_version(&self) -> i64 {
        self.next_version - 1
    }

    /// Entries with `version >= from`, oldest first.
    pub fn read_from(&self, from: i64) -> impl Iterator<Item = &Arc<WalEntry>> {
        let skip = (from - self.first_version()).max(0) as usize;
        self.entries.iter().skip(skip)
    }

    /// Drops entries written before `cutoff_ms` (WAL retention). Dropped rows stay in the table store and
    /// are readable by TMQ only with `experimental.snapshot.enable`.
    pub fn trim_before(&mut self, cutoff_ms: i64) {
        while self.entries.front().is_some_and(|e| e.written_at_ms < cutoff_ms) {
            if let Some(e) = self.entries.pop_front() {
                if !matches!(e.op, WalOp::Internal(_)) {
                    self.data_trimmed_to = e.version + 1;
                }
            }
        }
    }

    /// Positions below this lost data or meta to retention (only TMQ's own writes were trimmed above it).
    pub fn data_trimmed_to(&self) -> i64 {
        self.data_trimmed_to
    }

    /// A receiver that changes whenever an entry is appended.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.appended.subscribe()
    }
}
