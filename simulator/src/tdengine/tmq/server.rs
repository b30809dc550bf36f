//! The TMQ side of one stand-in server: configuration, the consumer-group coordinator behind a lock, the
//! periodic task that expires silent consumers and runs auto-commits, and the views `SHOW CONSUMERS`,
//! `SHOW SUBSCRIPTIONS` and `DROP TOPIC` use.
//!
//! Lock order: the coordinator lock is never held while calling the backend (the topics' vgroups and log
//! bounds it needs are read first, see [`LogSnapshot`]), so the SQL side may call [`Tmq::subscribers`] under
//! its own locks.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::tdengine::faults::Faults;

use super::backend::TmqBackend;
use super::group::{
    Bounds, ConsumerId, ConsumerInfo, ConsumerOptions, Coordinator, GroupError, LogBounds, Position,
    VgroupId, DEFAULT_SESSION_TIMEOUT_MS,
};
use super::message::{TopicSpec, DEFAULT_MAX_ROWS};

#[derive(Debug, Clone)]
pub struct TmqConfig {
    /// Row cap per message (a single write larger than this still travels whole).
    pub max_rows_per_message: usize,
    /// Upper bound on a poll's `blocking_time`.
    pub max_blocking: Duration,
    /// Consumers silent for longer than this leave their group (TDengine: 12 s).
    pub session_timeout: Duration,
    /// The server pings every TMQ connection this often; the pongs are the heartbeats.
    pub ping_interval: Duration,
    /// How often expiry and auto-commit run.
    pub tick_interval: Duration,
}

impl Default for TmqConfig {
    fn default() -> Self {
        Self {
            max_rows_per_message: DEFAULT_MAX_ROWS,
            max_blocking: Duration::from_secs(5),
            session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS as u64),
            ping_interval: Duration::from_secs(3),
            tick_interval: Duration::from_millis(250),
        }
    }
}

/// A row of `SHOW SUBSCRIPTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub topic: String,
    pub group: String,
    pub vgroup: VgroupId,
    pub consumer: Option<u64>,
    /// The committed offset, or [`super::group::UNSET_OFFSET`].
    pub committed: i64,
}

/// Shared TMQ state of a server.
pub struct Tmq {
    pub(crate) backend: Arc<dyn TmqBackend>,
    pub(crate) config: TmqConfig,
    pub(crate) faults: Arc<Faults>,
    pub(crate) coordinator: Mutex<Coordinator>,
    started: Instant,
    started_wall_ms: i64,
    ticking: std::sync::Once,
    pub(crate) fetches: FetchCounts,
    /// Each subscription's scan state per vgroup, by (group, topic, vgroup).
    pub(crate) cursors: Mutex<HashMap<(String, String, VgroupId), super::cut::Cursor>>,
    /// Every message handed out, once [`Tmq::record_served`] was called (the harness judges payload offsets
    /// against it; off by default, so a long benchmark does not grow it).
    served: Mutex<Option<Vec<ServedMessage>>>,
}

/// One TMQ message the server handed to a consumer: where it came from, its offset (the version of the last
/// log entry it covers) and the rows it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedMessage {
    pub group: String,
    pub topic: String,
    pub db: String,
    pub vgroup: VgroupId,
    pub offset: i64,
    /// (table, timestamp as stored) of every row, in message order; empty for a meta event.
    pub rows: Vec<(String, i64)>,
}

/// How many data fetches of each kind the server answered: which path a client generation takes (`fetch` +
/// `fetch_block` per block, or `fetch_raw_data` per message) is visible to tests and benchmarks.
#[derive(Debug, Default)]
pub struct FetchCounts {
    pub fetch: std::sync::atomic::AtomicU64,
    pub fetch_block: std::sync::atomic::AtomicU64,
    pub fetch_raw_data: std::sync::atomic::AtomicU64,
    pub fetch_raw: std::sync::atomic::AtomicU64,
}

impl FetchCounts {
    pub(crate) fn count(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// (`fetch`, `fetch_block`, `fetch_raw_data`, `fetch_raw`) answered so far.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.fetch.load(Relaxed),
            self.fetch_block.load(Relaxed),
            self.fetch_raw_data.load(Relaxed),
            self.fetch_raw.load(Relaxed),
        )
    }
}

impl Tmq {
    /// The data fetches answered so far, by kind.
    pub fn fetch_counts(&self) -> &FetchCounts {
        &self.fetches
    }
}

impl std::fmt::Debug for Tmq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tmq").field("config", &self.config).finish()
    }
}

/// The topics' vgroups and log bounds the coordinator needs, read from the backend before taking its lock.
pub(crate) struct LogSnapshot {
    vgroups: HashMap<String, Option<Vec<VgroupId>>>,
    bounds: HashMap<(String, VgroupId), Bounds>,
}

impl LogBounds for LogSnapshot {
    fn vgroups(&self, topic: &str) -> Option<Vec<VgroupId>> {
        self.vgroups.get(topic).cloned().flatten()
    }
    fn bounds(&self, topic: &str, vgroup: VgroupId) -> Bounds {
        self.bounds
            .get(&(topic.to_string(), vgroup))
            .copied()
            .unwrap_or(Bounds { first: 1, last: 0 })
    }
}

impl Tmq {
    pub fn new(backend: Arc<dyn TmqBackend>, config: TmqConfig, faults: Arc<Faults>) -> Arc<Self> {
        let timeout = config.session_timeout.as_millis() as i64;
        Arc::new(Self {
            backend,
            config,
            faults,
            coordinator: Mutex::new(Coordinator::new(timeout)),
            started: Instant::now(),
            started_wall_ms: crate::tdengine::store::now_ms(),
            ticking: std::sync::Once::new(),
            fetches: FetchCounts::default(),
            cursors: Mutex::new(HashMap::new()),
            served: Mutex::new(None),
        })
    }

    /// Starts recording every message handed out (see [`Tmq::served`]).
    pub fn record_served(&self) {
        self.served.lock().get_or_insert_with(Vec::new);
    }

    /// The messages handed out since [`Tmq::record_served`], in order (empty when not recording).
    pub fn served(&self) -> Vec<ServedMessage> {
        self.served.lock().clone().unwrap_or_default()
    }

    /// Records a message handed out, when recording.
    pub(crate) fn note_served(&self, group: &str, message: &super::message::Message) {
        let mut served = self.served.lock();
        let Some(log) = served.as_mut() else { return };
        log.push(ServedMessage {
            group: group.to_string(),
            topic: message.topic.clone(),
            db: message.db.clone(),
            vgroup: message.vgroup,
            offset: message.offset,
            rows: message
                .body
                .blocks()
                .iter()
                .flat_map(|b| b.timestamps().map(move |ts| (b.table.clone(), ts)))
                .collect(),
        });
    }

    pub fn config(&self) -> &TmqConfig {
        &self.config
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Wall-clock ms since the epoch of a coordinator time.
    pub(crate) fn wall_ms(&self, coordinator_ms: i64) -> i64 {
        self.started_wall_ms + coordinator_ms
    }

    /// Joins `group` with `topics`, counting the consumer as a subscriber of each topic. Unknown topic:
    /// 0x03E1.
    pub(crate) fn join(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<(ConsumerId, HashMap<String, TopicSpec>), GroupError> {
        let mut specs = HashMap::new();
        for topic in topics {
            match self.backend.acquire_topic(topic) {
                Some(spec) => {
                    specs.insert(topic.clone(), spec);
                }
                None => {
                    specs.keys().for_each(|t| self.backend.release_topic(t));
                    return Err(GroupError::UnknownTopic(topic.clone()));
                }
            }
        }
        // A rebalance touches every topic of the group, not only the joiner's.
        let mut known = self.all_topics();
        known.extend(topics.iter().cloned());
        let logs = self.log_snapshot(&known);
        let now = self.now_ms();
        let joined = self.coordinator.lock().join(group, topics, options, &logs, now);
        self.flush_writes();
        match joined {
            Ok(id) => Ok((id, specs)),
            Err(e) => {
                specs.keys().for_each(|t| self.backend.release_topic(t));
                Err(e)
            }
        }
    }

    /// Leaves the group (close, unsubscribe); a consumer that already expired is left alone.
    pub(crate) fn leave(&self, id: ConsumerId, topics: &[String]) {
        let mut known = self.all_topics();
        known.extend(topics.iter().cloned());
        let logs = self.log_snapshot(&known);
        let left = self.coordinator.lock().leave(id, &logs);
        self.flush_writes();
        if left.is_ok() {
            topics.iter().for_each(|t| self.backend.release_topic(t));
        }
    }

    /// Commits the positions of every vgroup assigned to `id` (`commit` of the current message); the commit
    /// takes a version in each vgroup's log.
    pub(crate) fn commit_positions(&self, id: ConsumerId) -> Result<(), GroupError> {
        let committed = self.coordinator.lock().commit_positions(id);
        self.flush_writes();
        committed
    }

    /// Commits `offset` for `topic` in `vgroup` (`commit_offset`), a vgroup assigned to `id`, within `bounds`
    /// (its log's, read before the coordinator lock).
    pub(crate) fn commit_offset(
        &self,
        id: ConsumerId,
        topic: &str,
        vgroup: VgroupId,
        offset: i64,
        bounds: Bounds,
    ) -> Result<(), GroupError> {
        let committed = self
            .coordinator
            .lock()
            .commit_offset(id, topic, vgroup, offset, bounds);
        self.flush_writes();
        committed
    }

    /// Moves `vgroup` away from `id` and back (the fault [`crate::tdengine::faults::Faults::bounce_after_next_message`]).
    pub(crate) fn bounce(&self, id: ConsumerId, topic: &str, vgroup: VgroupId) {
        let logs = self.log_snapshot(&[topic.to_string()]);
        self.coordinator.lock().bounce(id, topic, vgroup, &logs);
        self.flush_writes();
    }

    /// Appends the vnode writes the coordinator caused (subscribes, commits) to their vgroups' logs; the
    /// coordinator lock is released before the backend is called.
    pub(crate) fn flush_writes(&self) {
        let writes = self.coordinator.lock().take_writes();
        for w in writes {
            if let Some(spec) = self.backend.topic(&w.topic) {
                self.backend.append_internal(&spec.db, w.vgroup, w.op);
            }
        }
    }

    /// Reads topics' vgroups and log bounds from the backend.
    pub(crate) fn log_snapshot(&self, topics: &[String]) -> LogSnapshot {
        let mut logs = LogSnapshot {
            vgroups: HashMap::new(),
            bounds: HashMap::new(),
        };
        for topic in topics {
            let spec = self.backend.topic(topic);
            let vgs = spec.as_ref().and_then(|s| self.backend.vgroups(&s.db));
            if let (Some(spec), Some(vgs)) = (&spec, &vgs) {
                for vg in vgs {
                    logs.bounds
                        .insert((topic.clone(), *vg), self.backend.wal_bounds(&spec.db, *vg));
                }
            }
            logs.vgroups.insert(topic.clone(), vgs);
        }
        logs
    }

    /// Every topic some live consumer subscribes to.
    fn all_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .coordinator
            .lock()
            .consumers()
            .into_iter()
            .flat_map(|c| c.topics)
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Starts the expiry/auto-commit task once; it ends when the last `Arc<Tmq>` is gone.
    pub(crate) fn ensure_ticking(self: &Arc<Self>) {
        self.ticking.call_once(|| {
            let weak: Weak<Tmq> = Arc::downgrade(self);
            let every = self.config.tick_interval;
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    let Some(tmq) = weak.upgrade() else { break };
                    tmq.tick();
                }
            });
        });
    }

    /// One round of expiry and auto-commit.
    pub fn tick(&self) {
        let logs = self.log_snapshot(&self.all_topics());
        let now = self.now_ms();
        let expired = self.coordinator.lock().tick(now, &logs);
        self.flush_writes();
        for (id, topics) in expired {
            tracing::info!(consumer = id, "consumer missed its heartbeats; left its group");
            topics.iter().for_each(|t| self.backend.release_topic(t));
        }
    }

    /// How many live consumers subscribe to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.coordinator.lock().subscribers(topic)
    }

    /// Every group's committed offsets as (group, topic, vgroup, position).
    pub fn committed_offsets(&self) -> Vec<(String, String, VgroupId, i64)> {
        self.coordinator.lock().committed_offsets()
    }

    /// Forgets a dropped topic's committed offsets.
    pub fn topic_dropped(&self, topic: &str) {
        self.coordinator.lock().forget_topic(topic);
    }

    /// `SHOW CONSUMERS`.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        self.coordinator.lock().consumers()
    }

    /// `SHOW SUBSCRIPTIONS`: one row per (topic, group, vgroup) with a live consumer or a committed offset.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let c = self.coordinator.lock();
        let mut rows: Vec<SubscriptionInfo> = Vec::new();
        for info in c.consumers() {
            for (topic, vg, _) in &info.assigned {
                rows.push(SubscriptionInfo {
                    topic: topic.clone(),
                    group: info.group.clone(),
                    vgroup: *vg,
                    consumer: Some(info.id),
                    committed: c.committed(&info.group, topic, *vg),
                });
            }
        }
        for (group, topic, vg, off) in c.committed_offsets() {
            if !rows
                .iter()
                .any(|r| r.group == group && r.topic == topic && r.vgroup == vg)
            {
                rows.push(SubscriptionInfo {
                    topic,
                    group,
                    vgroup: vg,
                    consumer: None,
                    committed: off,
                });
            }
        }
        rows.sort_by(|a, b| (&a.topic, &a.group, a.vgroup).cmp(&(&b.topic, &b.group, b.vgroup)));
        rows
    }
}

/// A position as the wire shows it.
pub(crate) fn wire_position(p: Position) -> i64 {
    match p {
        Position::At(v) => v,
        Position::NoCommitted => super::group::UNSET_OFFSET,
    }
}
