//! What TMQ needs from the rest of the stand-in (catalog, vgroup logs, table store, block encoder), as a
//! trait so the subscription side stays independent of how the store is locked and laid out.

use std::sync::Arc;

use tokio::sync::watch;

use crate::tdengine::types::Precision;
use crate::tdengine::wal::{InternalOp, TableRows, WalEntry};

use super::group::{Bounds, VgroupId};
use super::message::TopicSpec;

pub trait TmqBackend: Send + Sync + 'static {
    /// The version string the server reports (`version` action, subscribe reply).
    fn server_version(&self) -> String;
    fn authenticate(&self, user: &str, password: &str) -> bool;
    /// A topic by name, `None` when it does not exist.
    fn topic(&self, name: &str) -> Option<TopicSpec>;
    /// Like [`TmqBackend::topic`], and counts one more subscriber (`DROP TOPIC` refuses while any).
    fn acquire_topic(&self, name: &str) -> Option<TopicSpec>;
    /// Undoes one [`TmqBackend::acquire_topic`].
    fn release_topic(&self, name: &str);
    /// The vgroups of a database, `None` when it does not exist.
    fn vgroups(&self, db: &str) -> Option<Vec<VgroupId>>;
    fn precision(&self, db: &str) -> Precision;
    /// The vgroup's log bounds, after applying the database's WAL retention.
    fn wal_bounds(&self, db: &str, vgroup: VgroupId) -> Bounds;
    /// The version below which retention trimmed data or meta (not only TMQ's own writes).
    fn data_trimmed_to(&self, db: &str, vgroup: VgroupId) -> i64;
    /// Up to `max` entries with `version >= from`, oldest first (cloned out of any lock).
    fn read_wal(&self, db: &str, vgroup: VgroupId, from: i64, max: usize) -> Vec<Arc<WalEntry>>;
    /// A receiver that changes whenever the vgroup's log grows.
    fn watch_wal(&self, db: &str, vgroup: VgroupId) -> Option<watch::Receiver<i64>>;
    /// The vgroup's table store (current schemas and tags, every row) and the log version it reflects.
    fn snapshot(&self, db: &str, vgroup: VgroupId) -> (Vec<TableRows>, i64);
    /// Appends a write TMQ caused (subscribe, committed offset) to the vgroup's log, where it takes a
    /// version as in TDengine.
    fn append_internal(&self, db: &str, vgroup: VgroupId, op: InternalOp);
}
