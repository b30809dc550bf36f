//! The TMQ side: the official `taos` consumer, polled in its own task, plus offset commits.
//!
//! Polling: taos-ws 0.12.3 polls with `blocking_time: 0` and sleeps 500 ms after every empty poll, so
//! `recv_timeout(Never)` would add up to half a second to every row of a trickle. The task instead
//! calls `recv_timeout(poll.interval.ms)`: a timeout cuts the sleep short and the next call polls at
//! once. The hazard: a timeout can also drop a poll whose reply is still under way, after the server
//! has moved that vgroup past a message the bridge never saw. So after every timeout, before polling
//! again, [`PositionGuard`] compares each assigned vgroup's server position (TDengine answers one
//! connection's requests in order, so it reflects any dropped poll) with the position the bridge
//! expects, and seeks back where the server is ahead. With `experimental.snapshot.enable` the task
//! keeps `recv_timeout(Never)`: a snapshot read does not move the position, so the check could not
//! see a message taken there. Each message is read completely (all blocks, or
//! its meta JSON) before the next poll, because the server frees it at the next poll.
//!
//! 0.12.3's `Offset` carries no WAL offset, and `commit(offset)` commits everything consumed so far. So
//! right after each poll the task asks `position(topic, vgroup)` — where a restart must resume once this
//! message is delivered — and commits go through `commit_offset(topic, vgroup, position)`. The message's
//! own offset (shown in payloads) is `position - 1`, the WAL version of its last entry.
//!
//! TDengine gone: the task rebuilds the consumer with backoff; the group resumes from the committed offset.
//!
//! `tmq+wss://`: the client connects through a [`crate::wss::Tunnel`] that does the TLS (see there why);
//! a certificate that does not verify ends the source with one line naming the problem, never retried.
//!
//! Lag: [`WalEnds`] keeps each vgroup's WAL end (last version + 1) for the `tmq2mqtt_lag` metric without
//! extra requests: it takes the `end` of the `assignment` the position check already asks for (after
//! every poll that came back empty, i.e. every `poll.interval.ms` while caught up) and, while messages
//! flow, the position after each message (the end is at least that). While the bridge does not poll
//! (the window is full, or a snapshot read waits) the end stays as of the last poll. Real TDengine's
//! client answers `assignment` from what the vnode sent with its last poll reply, so polling more often
//! than the bridge already does would not make it fresher.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use taos::{
    AsAsyncConsumer, AsyncTBuilder, IsAsyncData, IsAsyncMeta, IsOffset, MessageSet, RawBlock, Timeout,
};
use tokio::sync::{mpsc, watch, RwLock};

use crate::{
    dsn::{OffsetReset, SourceDsn},
    sink::backoff,
    wss::{Tunnel, TunnelError, TunnelFailure},
};

/// One TMQ message, read completely.
#[derive(Debug)]
pub struct TmqMessage {
    pub topic: Arc<str>,
    pub database: Arc<str>,
    pub vgroup_id: i32,
    /// The message's own offset: the WAL version of its last entry.
    pub offset: i64,
    /// Where the vgroup resumes after this message: the offset to commit once it is delivered.
    pub position: i64,
    /// Whether the message carried meta (create/alter/drop/delete).
    pub has_meta: bool,
    /// The meta JSON, read only when the source DSN asks for meta (`with.meta`).
    pub meta: Option<serde_json::Value>,
    /// The data blocks (one per child table) for data messages.
    pub blocks: Vec<RawBlock>,
}

/// What the source task reports. `M` is the message as it travels: a [`TmqMessage`] from the source, an
/// encoded one after `run::encode_stage`.
#[derive(Debug)]
pub enum SourceEvent<M = TmqMessage> {
    /// Subscribed (again); `reconnect` is false the first time.
    Subscribed {
        reconnect: bool,
    },
    Message(M),
    /// The connection to TDengine failed; the task retries after `retry_in`.
    Lost {
        error: String,
        retry_in: Duration,
    },
    /// An error retrying cannot fix (authentication failure, unknown topic).
    Fatal(String),
    /// A poll cut short by the poll interval had moved the server past `to` (up to `from`): the source
    /// sought back to `to`, so nothing is skipped.
    Rewound {
        topic: Arc<str>,
        vgroup_id: i32,
        from: i64,
        to: i64,
    },
    /// The group resumed a vgroup behind the begin of its WAL: these versions were trimmed unread.
    WalGap(crate::wal_gap::WalGap),
}

impl<M> SourceEvent<M> {
    /// The same event with its message (if it is one) turned into `f(message)`.
    pub fn map_message<N>(self, f: impl FnOnce(M) -> N) -> SourceEvent<N> {
        match self {
            SourceEvent::Message(m) => SourceEvent::Message(f(m)),
            SourceEvent::Subscribed { reconnect } => SourceEvent::Subscribed { reconnect },
            SourceEvent::Lost { error, retry_in } => SourceEvent::Lost { error, retry_in },
            SourceEvent::Fatal(e) => SourceEvent::Fatal(e),
            SourceEvent::Rewound {
                topic,
                vgroup_id,
                from,
                to,
            } => SourceEvent::Rewound {
                topic,
                vgroup_id,
                from,
                to,
            },
            SourceEvent::WalGap(gap) => SourceEvent::WalGap(gap),
        }
    }
}

/// The consumer in use, shared with the committer. Polls and commits take it shared; only a seek
/// (`offset_seek` takes `&mut`) takes it exclusively.
pub type SharedConsumer = Arc<RwLock<taos::Consumer>>;

/// The consumer currently in use, shared with the committer.
pub type CurrentConsumer = watch::Receiver<Option<SharedConsumer>>;

/// Builds consumers for a source DSN: directly for `tmq+ws://`, through a TLS [`Tunnel`] for
/// `tmq+wss://` (kept for the connector's lifetime).
pub struct Connector {
    dsn: SourceDsn,
    tunnel: Option<Tunnel>,
}

/// Why no consumer could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Taos(#[from] taos::Error),
    /// The TLS connection beneath the client failed (the client's own error only says "closed").
    #[error("{0}")]
    Tls(TunnelFailure),
    #[error("{0}")]
    Tunnel(#[from] TunnelError),
}

impl ConnectError {
    /// Whether retrying cannot fix it: authentication failure, unknown topic, bad parameters, an
    /// untrusted certificate.
    pub fn is_fatal(&self) -> bool {
        match self {
            ConnectError::Taos(e) => is_fatal(e),
            ConnectError::Tls(f) => f.is_fatal(),
            ConnectError::Tunnel(_) => true,
        }
    }
}

impl Connector {
    /// Opens the TLS tunnel for a `tmq+wss://` DSN.
    pub async fn new(dsn: &SourceDsn) -> Result<Self, ConnectError> {
        let tunnel = match dsn.tls {
            true => Some(Tunnel::start(&dsn.host, dsn.port, dsn.ca.as_deref()).await?),
            false => None,
        };
        Ok(Self {
            dsn: dsn.clone(),
            tunnel,
        })
    }

    /// Builds a consumer and subscribes it.
    pub async fn connect(&self) -> Result<taos::Consumer, ConnectError> {
        let via = self.tunnel.as_ref().map(Tunnel::addr);
        let result = async {
            let builder = taos::TmqBuilder::from_dsn(self.dsn.to_taos_dsn_via(via))?;
            let mut consumer = builder.build().await?;
            consumer.subscribe(self.dsn.topics.iter().cloned()).await?;
            Ok::<_, taos::Error>(consumer)
        }
        .await;
        // Any failure: if the tunnel saw why, that is the error worth reporting.
        let failure = self.tunnel.as_ref().and_then(Tunnel::take_failure);
        match (result, failure) {
            (Ok(c), _) => Ok(c),
            (Err(_), Some(f)) => Err(ConnectError::Tls(f)),
            (Err(e), None) => Err(ConnectError::Taos(e)),
        }
    }
}

/// Whether a TDengine error is one that retrying will not fix.
pub fn is_fatal(err: &taos::Error) -> bool {
    let code = err.code();
    // Authentication failure, topic not exist, invalid parameter, DSN error.
    code == 0x0357 || code == 0x03E1 || code == 0x0118 || code == 0xE000
}

/// Spawns the polling task. Messages go into a bounded channel (the run loop's backpressure); the
/// WAL ends it learns go to `ends`.
pub fn spawn(
    dsn: SourceDsn,
    capacity: usize,
    ends: Arc<WalEnds>,
) -> (
    mpsc::Receiver<SourceEvent>,
    CurrentConsumer,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let (cur_tx, cur_rx) = watch::channel(None);
    let task = tokio::spawn(poll_loop(dsn, tx, cur_tx, ends));
    (rx, cur_rx, task)
}

async fn poll_loop(
    dsn: SourceDsn,
    tx: mpsc::Sender<SourceEvent>,
    current: watch::Sender<Option<SharedConsumer>>,
    ends: Arc<WalEnds>,
) {
    let connector = match Connector::new(&dsn).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(SourceEvent::Fatal(format!("TDengine: {e}"))).await;
            return;
        }
    };
    let mut attempt = 0u32;
    let mut reconnect = false;
    loop {
        let consumer = match connector.connect().await {
            Ok(c) => Arc::new(RwLock::new(c)),
            Err(e) => {
                // An untrusted certificate is fatal even on a reconnect: it will not verify later.
                let tls_fatal = matches!(&e, ConnectError::Tls(f) if f.is_fatal());
                if e.is_fatal() && (!reconnect || tls_fatal) {
                    let _ = tx.send(SourceEvent::Fatal(format!("TDengine: {e}"))).await;
                    return;
                }
                let retry_in = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, ?retry_in, "cannot subscribe to TDengine");
                if tx
                    .send(SourceEvent::Lost {
                        error: e.to_string(),
                        retry_in,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        attempt = 0;
        tracing::info!(topics = ?dsn.topics, reconnect, "subscribed to TDengine");
        current.send_replace(Some(consumer.clone()));
        if tx.send(SourceEvent::Subscribed { reconnect }).await.is_err() {
            return;
        }
        reconnect = true;
        let mut guard = PositionGuard::default();
        // Where each vgroup resumes, before the first poll moves it: a gap to the WAL's begin shows here.
        match guard.check(&consumer, &dsn, &ends).await {
            Ok(events) => {
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "no positions before the first poll"),
        }
        loop {
            let polled = poll_once(&consumer, &dsn, &mut guard, &ends).await;
            let outcome = match polled {
                Ok(Polled::Message(msg)) => {
                    guard.on_message(&msg.topic, msg.vgroup_id, msg.position);
                    ends.saw_position(&msg.topic, msg.vgroup_id, msg.position);
                    tx.send(SourceEvent::Message(msg)).await.map_err(|_| None)
                }
                Ok(Polled::Idle(rewinds)) => {
                    let mut sent = Ok(());
                    for r in rewinds {
                        sent = sent.and(tx.send(r).await.map_err(|_| None));
                    }
                    sent
                }
                Err(e) => Err(Some(e)),
            };
            match outcome {
                Ok(()) => {}
                Err(None) => return,
                Err(Some(e)) => {
                    let retry_in = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %e, ?retry_in, "TDengine connection lost");
                    current.send_replace(None);
                    if tx
                        .send(SourceEvent::Lost {
                            error: e.to_string(),
                            retry_in,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(retry_in).await;
                    break;
                }
            }
        }
    }
}

/// What one poll gave.
enum Polled {
    Message(TmqMessage),
    /// The poll interval passed; positions were checked, with these seeks back.
    Idle(Vec<SourceEvent>),
}

/// Polls for at most the poll interval; on a message reads it completely, on a timeout checks the
/// positions (see the module doc).
async fn poll_once(
    consumer: &SharedConsumer,
    dsn: &SourceDsn,
    guard: &mut PositionGuard,
    ends: &WalEnds,
) -> Result<Polled, taos::Error> {
    let polled = {
        let c = consumer.read().await;
        // A snapshot read does not move the position (TDengine keeps it below the WAL while it
        // hands out stored rows), so a message a cut-short poll took there could not be detected.
        let wait = if dsn.snapshot_enable {
            Timeout::Never
        } else {
            Timeout::Duration(dsn.poll_interval)
        };
        match c.recv_timeout(wait).await? {
            Some(m) => Some(read_message(&c, m, dsn.with_meta).await?),
            None => None,
        }
    };
    match polled {
        Some(msg) => Ok(Polled::Message(msg)),
        None => Ok(Polled::Idle(guard.check(consumer, dsn, ends).await?)),
    }
}

/// Reads a polled message completely.
async fn read_message(
    consumer: &taos::Consumer,
    (offset, set): (
        <taos::Consumer as AsAsyncConsumer>::Offset,
        MessageSet<<taos::Consumer as AsAsyncConsumer>::Meta, <taos::Consumer as AsAsyncConsumer>::Data>,
    ),
    with_meta: bool,
) -> Result<TmqMessage, taos::Error> {
    let topic: Arc<str> = offset.topic().into();
    let database: Arc<str> = offset.database().into();
    let vgroup_id = offset.vgroup_id();
    let position = consumer.position(&topic, vgroup_id).await?;
    let mut meta = None;
    let mut blocks = Vec::new();
    let (m, d) = match set {
        MessageSet::Meta(m) => (Some(m), None),
        MessageSet::Data(d) => (None, Some(d)),
        MessageSet::MetaData(m, d) => (Some(m), Some(d)),
    };
    let has_meta = m.is_some();
    if let (Some(m), true) = (m, with_meta) {
        let json = m.as_json_meta().await?;
        meta = Some(serde_json::to_value(&json).map_err(taos::Error::from_any)?);
    }
    if let Some(d) = d {
        while let Some(block) = d.fetch_raw_block().await? {
            blocks.push(block);
        }
    }
    Ok(TmqMessage {
        topic,
        database,
        vgroup_id,
        offset: position - 1,
        position,
        has_meta,
        meta,
        blocks,
    })
}

/// Where each vgroup should be on the server: the position after the last message the bridge received
/// from it, or, for a vgroup not yet seen (or one the server moved back, e.g. reassigned in a
/// rebalance), the group's committed offset (else the start `auto.offset.reset` gives). One per
/// consumer: a new consumer resumes from the committed offsets.
#[derive(Debug, Default)]
pub struct PositionGuard {
    expected: HashMap<(Arc<str>, i32), i64>,
}

/// What one assigned vgroup needs after a poll may have been cut short.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// The server is past what the bridge received: seek back here.
    SeekTo(i64),
    /// No trustworthy expectation: compare with the floor (committed, or where the group starts).
    AskFloor,
}

impl PositionGuard {
    /// Records the position after a received message.
    pub fn on_message(&mut self, topic: &Arc<str>, vgroup_id: i32, position: i64) {
        self.expected.insert((topic.clone(), vgroup_id), position);
    }

    /// Judges one vgroup whose server position is `current`.
    pub fn verdict(&self, topic: &str, vgroup_id: i32, current: i64) -> Verdict {
        match self.expected.get(&(Arc::<str>::from(topic), vgroup_id)) {
            Some(&e) if current == e => Verdict::Fine,
            Some(&e) if current > e => Verdict::SeekTo(e),
            // Never seen, or the server went back (a rebalance resumed it from the commit):
            // what the bridge saw says nothing about where a dropped poll started.
            _ => Verdict::AskFloor,
        }
    }

    /// The seek (if any) for a vgroup judged against its floor (`None`: nothing to compare with);
    /// remembers the outcome. A negative `current` is TDengine's "not positioned yet".
    pub fn settle_with_floor(
        &mut self,
        topic: &Arc<str>,
        vgroup_id: i32,
        current: i64,
        floor: Option<i64>,
    ) -> Option<i64> {
        let key = (topic.clone(), vgroup_id);
        let Some(floor) = floor else {
            self.expected.remove(&key);
            return None;
        };
        if current < 0 {
            self.expected.insert(key, floor);
            return None;
        }
        self.expected.insert(key, current.min(floor));
        (current > floor).then_some(floor)
    }

    /// Forgets vgroups of `topic` no longer assigned to this consumer.
    fn retain_assigned(&mut self, topic: &str, assigned: &[i32]) {
        self.expected
            .retain(|(t, vg), _| &**t != topic || assigned.contains(vg));
    }

    fn known(&self, topic: &str) -> Vec<i32> {
        self.expected
            .keys()
            .filter(|(t, _)| &**t == topic)
            .map(|(_, vg)| *vg)
            .collect()
    }

    /// Checks every assigned vgroup and seeks back where the server is ahead. Must run with no poll
    /// in flight (after `recv_timeout` returned).
    async fn check(
        &mut self,
        consumer: &SharedConsumer,
        dsn: &SourceDsn,
        ends: &WalEnds,
    ) -> Result<Vec<SourceEvent>, taos::Error> {
        let mut seeks = Vec::new();
        let mut gaps = Vec::new();
        {
            let c = consumer.read().await;
            for topic in &dsn.topics {
                let topic: Arc<str> = topic.as_str().into();
                // (vgroup, position, WAL begin..end). 0.12.3 turns a failed `assignment` into an empty
                // list; then ask `position` for the vgroups we know, whose errors do surface.
                let mut assigned: Vec<(i32, i64, Option<WalRange>)> = c
                    .topic_assignment(&topic)
                    .await
                    .into_iter()
                    .map(|a| (a.vgroup_id(), a.current_offset(), Some((a.begin(), a.end()))))
                    .collect();
                if assigned.is_empty() {
                    for vg in self.known(&topic) {
                        assigned.push((vg, c.position(&topic, vg).await?, None));
                    }
                }
                let ids: Vec<i32> = assigned.iter().map(|a| a.0).collect();
                self.retain_assigned(&topic, &ids);
                for (vg, current, wal) in assigned {
                    if let Some((_, end)) = wal {
                        ends.set_end(&topic, vg, end);
                    }
                    let to = match self.verdict(&topic, vg, current) {
                        Verdict::Fine => None,
                        Verdict::SeekTo(to) => Some(to),
                        Verdict::AskFloor => {
                            let committed = c.committed(&topic, vg).await?;
                            let mut floor = floor(committed, dsn.offset_reset, current, wal);
                            if let Some(gap) = wal_gap(&topic, vg, &mut floor, wal) {
                                gaps.push(gap);
                            }
                            if let Some(f) = floor {
                                ends.set_resume(&topic, vg, f);
                            }
                            self.settle_with_floor(&topic, vg, current, floor)
                        }
                    };
                    if let Some(to) = to {
                        seeks.push((topic.clone(), vg, current, to));
                    }
                }
            }
        }
        let mut events: Vec<SourceEvent> = gaps.into_iter().map(SourceEvent::WalGap).collect();
        if !seeks.is_empty() {
            let mut c = consumer.write().await;
            for (topic, vg, from, to) in seeks {
                c.offset_seek(&topic, vg, to).await?;
                self.expected.insert((topic.clone(), vg), to);
                tracing::debug!(%topic, vg, from, to, "a poll cut short had moved the server; sought back");
                events.push(SourceEvent::Rewound {
                    topic,
                    vgroup_id: vg,
                    from,
                    to,
                });
            }
        }
        Ok(events)
    }
}

/// A vgroup's WAL as `assignment` reports it: first version, last + 1.
type WalRange = (i64, i64);

/// A resume point (`floor`) behind the WAL's begin: the gap, warned about here, with the floor moved to
/// the begin, where TDengine continues (seeking below it would go nowhere).
fn wal_gap(
    topic: &Arc<str>,
    vgroup_id: i32,
    floor: &mut Option<i64>,
    wal: Option<WalRange>,
) -> Option<crate::wal_gap::WalGap> {
    let (begin, _) = wal?;
    let gap = crate::wal_gap::WalGap::between(topic, vgroup_id, (*floor)?, begin)?;
    tracing::warn!(
        %topic,
        vgroup = vgroup_id,
        first = gap.first,
        last = gap.last,
        versions = gap.versions(),
        "WAL versions {}..={} of vgroup {vgroup_id} (topic {topic}) were trimmed (WAL_RETENTION_PERIOD) \
         before this group read them: their rows are lost",
        gap.first,
        gap.last,
    );
    *floor = Some(begin);
    Some(gap)
}

/// Where a vgroup without a trustworthy expectation must be at least: the group's commit, else the
/// start `auto.offset.reset` gives (the WAL's begin, or its end when not positioned yet under
/// `latest`), else the server's own position. `None` when nothing is known (negative = unset).
pub fn floor(committed: i64, reset: Option<OffsetReset>, current: i64, wal: Option<WalRange>) -> Option<i64> {
    if committed >= 0 {
        return Some(committed);
    }
    match (reset.unwrap_or(OffsetReset::Latest), wal) {
        (OffsetReset::Earliest, Some((begin, _))) => Some(begin),
        (OffsetReset::Latest, Some((_, end))) if current < 0 => Some(end),
        _ => (current >= 0).then_some(current),
    }
}

/// Per (topic, vgroup): the WAL end (last version + 1) as last seen, and where the group resumes when
/// the bridge has committed nothing there yet. Shared with the metrics (see the module doc).
#[derive(Debug, Default)]
pub struct WalEnds(Mutex<BTreeMap<(String, i32), VgroupWal>>);

#[derive(Debug, Default, Clone, Copy)]
struct VgroupWal {
    end: Option<i64>,
    resume: Option<i64>,
}

impl WalEnds {
    fn with(&self, topic: &str, vgroup_id: i32, f: impl FnOnce(&mut VgroupWal)) {
        let mut map = self.0.lock().expect("wal ends lock");
        f(map.entry((topic.to_string(), vgroup_id)).or_default());
    }

    /// The end `assignment` reported: authoritative, so it replaces (a database dropped and created
    /// again starts over).
    pub fn set_end(&self, topic: &str, vgroup_id: i32, end: i64) {
        self.with(topic, vgroup_id, |v| v.end = Some(end));
    }

    /// A message ended at `position`: the end is at least there.
    pub fn saw_position(&self, topic: &str, vgroup_id: i32, position: i64) {
        self.with(topic, vgroup_id, |v| {
            v.end = Some(v.end.map_or(position, |e| e.max(position)))
        });
    }

    /// Where the group resumes in this vgroup (its commit, else where `auto.offset.reset` starts).
    pub fn set_resume(&self, topic: &str, vgroup_id: i32, offset: i64) {
        self.with(topic, vgroup_id, |v| v.resume = Some(offset));
    }

    /// WAL versions after the committed offset, per (topic, vgroup): `end - committed`, where
    /// `committed` is this run's commit (else where the group resumes). Vgroups with no end or no
    /// commit known yet have no lag.
    pub fn lag(&self, committed: &BTreeMap<(String, i32), i64>) -> BTreeMap<(String, i32), i64> {
        let map = self.0.lock().expect("wal ends lock");
        map.iter()
            .filter_map(|(key, v)| {
                let base = committed.get(key).copied().or(v.resume)?;
                Some((key.clone(), (v.end? - base).max(0)))
            })
            .collect()
    }
}

/// Commits offsets through whichever consumer is current; coalesces to the newest per vgroup and keeps
/// what failed for the next round.
pub struct Committer {
    consumer: CurrentConsumer,
    pending: std::collections::BTreeMap<(Arc<str>, i32), i64>,
}

impl Committer {
    pub fn new(consumer: CurrentConsumer) -> Self {
        Committer {
            consumer,
            pending: Default::default(),
        }
    }

    pub fn add(&mut self, topic: Arc<str>, vgroup_id: i32, offset: i64) {
        let e = self.pending.entry((topic, vgroup_id)).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every pending commit; returns the ones that went through.
    pub async fn flush(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let Some(consumer) = self.consumer.borrow().clone() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            let result = consumer.read().await.commit_offset(&topic, vg, offset).await;
            match result {
                Ok(()) => done.push((topic, vg, offset)),
                Err(e) => {
                    tracing::warn!(error = %e, %topic, vg, offset, "commit failed; will retry");
                    self.pending.insert((topic, vg), offset);
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSET: i64 = -2147467247;

    #[test]
    fn lag_is_the_end_minus_the_commit_else_the_resume_point() {
        let ends = WalEnds::default();
        let mut committed = BTreeMap::new();
        assert!(ends.lag(&committed).is_empty());
        ends.saw_position("t", 2, 7);
        assert!(
            ends.lag(&committed).is_empty(),
            "no commit and no resume point: unknown"
        );
        ends.set_resume("t", 2, 3);
        assert_eq!(ends.lag(&committed), BTreeMap::from([(("t".into(), 2), 4)]));
        committed.insert(("t".to_string(), 2), 6);
        assert_eq!(
            ends.lag(&committed)[&("t".into(), 2)],
            1,
            "this run's commit wins"
        );
        // Positions only raise the end; assignment replaces it.
        ends.saw_position("t", 2, 5);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 1);
        ends.set_end("t", 2, 10);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 4);
        ends.set_end("t", 2, 4);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 0, "never negative");
        committed.insert(("t".to_string(), 9), 1);
        assert_eq!(
            ends.lag(&committed).len(),
            1,
            "a commit without an end has no lag"
        );
    }

    #[test]
    fn a_server_ahead_of_the_last_message_is_sought_back_to_it() {
        let mut g = PositionGuard::default();
        let t: Arc<str> = "t".into();
        g.on_message(&t, 2, 10);
        assert_eq!(g.verdict("t", 2, 10), Verdict::Fine);
        assert_eq!(g.verdict("t", 2, 15), Verdict::SeekTo(10));
        // Never seen, or moved back by the server (rebalance): ask the floor.
        assert_eq!(g.verdict("t", 3, 4), Verdict::AskFloor);
        assert_eq!(g.verdict("t", 2, 7), Verdict::AskFloor);
    }

    #[test]
    fn the_floor_is_the_commit_then_the_reset_start() {
        use OffsetReset::{Earliest, Latest};
        assert_eq!(floor(5, Some(Earliest), 9, Some((0, 20))), Some(5));
        assert_eq!(floor(UNSET, Some(Earliest), 9, Some((3, 20))), Some(3));
        assert_eq!(floor(UNSET, Some(Latest), UNSET, Some((3, 20))), Some(20));
        assert_eq!(
            floor(UNSET, None, UNSET, Some((3, 20))),
            Some(20),
            "latest is the default"
        );
        assert_eq!(floor(UNSET, Some(Latest), 9, Some((3, 20))), Some(9));
        assert_eq!(floor(UNSET, Some(Earliest), UNSET, None), None);
    }

    #[test]
    fn settling_seeks_only_when_the_server_is_past_the_floor() {
        let mut g = PositionGuard::default();
        let t: Arc<str> = "t".into();
        assert_eq!(g.settle_with_floor(&t, 2, 8, Some(5)), Some(5));
        assert_eq!(g.verdict("t", 2, 5), Verdict::Fine);
        assert_eq!(g.settle_with_floor(&t, 3, 5, Some(5)), None);
        assert_eq!(g.verdict("t", 3, 6), Verdict::SeekTo(5));
        // Not positioned yet: expect the floor, so a first poll cut short is caught.
        assert_eq!(g.settle_with_floor(&t, 4, UNSET, Some(20)), None);
        assert_eq!(g.verdict("t", 4, 21), Verdict::SeekTo(20));
        // Nothing to compare with: forget.
        assert_eq!(g.settle_with_floor(&t, 4, 30, None), None);
        assert_eq!(g.verdict("t", 4, 30), Verdict::AskFloor);
        g.retain_assigned("t", &[2]);
        assert_eq!(g.known("t"), vec![2]);
    }
}
