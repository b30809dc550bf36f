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
//! see a message taken there. Likewise after a message that may have stopped inside a multi-table log
//! entry (at `min.poll.rows`, see [`commit_point`]): the rest of the entry comes at the same position, so
//! until it arrived the next poll waits for its reply ([`PositionGuard::rest_may_follow`]); without
//! that, a poll cut short while the server assembled a long rest dropped it unseen. Each message is read
//! completely (all blocks, or its meta JSON) before the next poll, because the server frees it at the
//! next poll.
//!
//! 0.12.3's `Offset` carries no WAL offset, and `commit(offset)` commits everything consumed so far. So
//! right after each poll the task asks `position(topic, vgroup)` — where a restart must resume once this
//! message is delivered — and commits go through `commit_offset(topic, vgroup, position)`. The message's
//! own offset (shown in payloads) is `position - 1`, the WAL version of its last entry. A rebalance between
//! the poll and that question can answer with the group's commit instead; a position that did not move
//! forward is taken as that and the message dropped (its rows come again), see [`PositionGuard::went_back`];
//! not with snapshots, whose reads leave the position where the snapshot started.
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

mod answered;
mod commit;
mod consumers;
mod position;
pub mod raw;
mod wait;
mod wal_ends;
mod wal_gap;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use answered::{answered, answered_plain, answered_poll};
pub use commit::Committer;
pub use consumers::Consumers;
pub use position::{floor, PositionGuard, Verdict};
pub use wait::PollWait;
pub use wal_ends::WalEnds;
pub use wal_gap::WalGap;

use taos::{
    AsAsyncConsumer, AsyncTBuilder, IsAsyncData, IsAsyncMeta, IsOffset, MessageSet, RawBlock, Timeout,
};
use tokio::sync::{mpsc, oneshot, watch, RwLock};

use crate::{
    dsn::SourceDsn,
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
    /// Where the server's position is after this message (what the position guard compares).
    pub position: i64,
    /// The offset to commit once the message is delivered: `position`, or `position - 1` when the
    /// message may have stopped inside a multi-table insert (see [`commit_point`]).
    pub commit_at: i64,
    /// Whether the message carried meta (create/alter/drop/delete).
    pub has_meta: bool,
    /// The meta JSON, read only when the source DSN asks for meta (`with.meta`).
    pub meta: Option<serde_json::Value>,
    /// The data blocks (one per child table per insert, up to TDengine 3.3) for data messages.
    pub blocks: Blocks,
}

/// A data message's blocks: fetched one by one (`fetch.raw=false`), or the message's raw form, each block
/// parsed when it is reached ([`raw::RawMessage`]).
#[derive(Debug)]
pub enum Blocks {
    Fetched(Vec<RawBlock>),
    Raw(raw::RawMessage),
}

impl Default for Blocks {
    fn default() -> Self {
        Blocks::Fetched(Vec::new())
    }
}

impl From<Vec<RawBlock>> for Blocks {
    fn from(blocks: Vec<RawBlock>) -> Self {
        Blocks::Fetched(blocks)
    }
}

impl Blocks {
    /// Rows in all blocks.
    pub fn rows(&self) -> usize {
        match self {
            Blocks::Fetched(b) => b.iter().map(|b| b.nrows()).sum(),
            Blocks::Raw(m) => m.rows(),
        }
    }

    /// The blocks in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = BlockRef<'_>> + '_> {
        match self {
            Blocks::Fetched(b) => Box::new(b.iter().map(BlockRef::Fetched)),
            Blocks::Raw(m) => Box::new(m.blocks().map(BlockRef::Parsed)),
        }
    }
}

/// A block of [`Blocks`]: borrowed when fetched, parsed just now when raw.
// Held one at a time while encoding (a message's worth only with `format=batch`): boxing would cost an
// allocation per block for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BlockRef<'a> {
    Fetched(&'a RawBlock),
    Parsed(RawBlock),
}

impl std::ops::Deref for BlockRef<'_> {
    type Target = RawBlock;
    fn deref(&self) -> &RawBlock {
        match self {
            BlockRef::Fetched(b) => b,
            BlockRef::Parsed(b) => b,
        }
    }
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
    WalGap(WalGap),
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

/// The consumers currently in use, shared with the committer.
pub type CurrentConsumer = Arc<Consumers>;

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

/// The most consumers the automatic default runs: on 2 cores four overlap the round trips enough
/// (docs/performance.md, "Fleet shape"); more only add connections.
pub const AUTO_MAX_CONSUMERS: usize = 4;

/// How many TMQ consumers the bridge runs when its first consumer was assigned `vgroups` vgroups and
/// `consumers=` is not given: one per assigned vgroup, at most [`AUTO_MAX_CONSUMERS`], at least one.
pub fn default_consumers(vgroups: usize) -> usize {
    vgroups.clamp(1, AUTO_MAX_CONSUMERS)
}

/// Whether a TDengine error is one that retrying will not fix.
pub fn is_fatal(err: &taos::Error) -> bool {
    let code = err.code();
    // Authentication failure, topic not exist, invalid parameter, DSN error.
    code == 0x0357 || code == 0x03E1 || code == 0x0118 || code == 0xE000
}

/// Spawns the polling tasks: `consumers=` of them, or (automatic) one, then as many more as
/// [`default_consumers`] gives for the vgroups the first was assigned. Each is a consumer of the
/// bridge's group, so the group splits the vgroups between them and their round trips overlap.
/// Messages of all go into one bounded channel (the run loop's backpressure); a vgroup is polled by one
/// consumer at a time, so its messages keep their order. The WAL ends they learn go to `ends`.
/// Aborting the returned task aborts every polling task.
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
    let consumers = Arc::new(Consumers::default());
    let task = tokio::spawn(supervise(dsn, tx, consumers.clone(), ends));
    (rx, consumers, task)
}

async fn supervise(
    dsn: SourceDsn,
    tx: mpsc::Sender<SourceEvent>,
    consumers: Arc<Consumers>,
    ends: Arc<WalEnds>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let (go_tx, go) = watch::channel(false);
    let mut joined = Vec::new();
    let mut spawn_loop = |tasks: &mut tokio::task::JoinSet<()>, index, assigned| {
        let (dsn, tx, consumers, ends) = (dsn.clone(), tx.clone(), consumers.clone(), ends.clone());
        let (joined_tx, joined_rx) = oneshot::channel();
        joined.push(joined_rx);
        let start = Start {
            assigned,
            joined: Some(joined_tx),
            go: go.clone(),
        };
        tasks.spawn(poll_loop(index, dsn, tx, consumers, ends, start));
    };
    match dsn.consumers {
        Some(n) => {
            for i in 0..n {
                spawn_loop(&mut tasks, i, None);
            }
        }
        None => {
            let (assigned_tx, assigned_rx) = oneshot::channel();
            spawn_loop(&mut tasks, 0, Some(assigned_tx));
            if let Ok(vgroups) = assigned_rx.await {
                let n = default_consumers(vgroups);
                tracing::info!(vgroups, consumers = n, "TMQ consumers in this bridge");
                for i in 1..n {
                    spawn_loop(&mut tasks, i, None);
                }
            }
        }
    }
    // A task that cannot connect yet drops its sender or is waited out: it joins later, as on a reconnect.
    let all_joined = futures_util::future::join_all(joined);
    let _ = tokio::time::timeout(JOIN_WAIT, all_joined).await;
    let _ = go_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// How long the polling tasks wait for each other to join the group before they poll.
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// How a polling task starts. Every consumer of the bridge joins the group before any of them polls, so
/// the group's split is settled first: a vgroup that moved to a consumer joining later would be read again
/// from the commit (duplicates at every start).
struct Start {
    /// The first task of the automatic default: how many vgroups its first subscription was assigned.
    assigned: Option<oneshot::Sender<usize>>,
    /// Reports the task's first subscription.
    joined: Option<oneshot::Sender<()>>,
    /// True once every task joined (or was waited out).
    go: watch::Receiver<bool>,
}

/// One consumer's loop (task `index`).
async fn poll_loop(
    index: usize,
    dsn: SourceDsn,
    tx: mpsc::Sender<SourceEvent>,
    current: Arc<Consumers>,
    ends: Arc<WalEnds>,
    mut start: Start,
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
                if !lost(&tx, e.to_string(), &mut attempt, "cannot subscribe to TDengine").await {
                    return;
                }
                continue;
            }
        };
        attempt = 0;
        tracing::info!(topics = ?dsn.topics, reconnect, consumer = index, "subscribed to TDengine");
        if let Some(assigned) = start.assigned.take() {
            let c = consumer.read().await;
            let mut vgroups = 0;
            for topic in &dsn.topics {
                // Unanswered, the automatic count falls back to one consumer; the poll finds the loss.
                vgroups += answered_plain("assignment", c.topic_assignment(topic))
                    .await
                    .map_or(0, |a| a.len());
            }
            let _ = assigned.send(vgroups);
        }
        if let Some(joined) = start.joined.take() {
            let _ = joined.send(());
        }
        // Only the first subscription waits; later ones find it true. A closed channel: the source ends.
        if start.go.wait_for(|go| *go).await.is_err() {
            return;
        }
        current.set(index, Some(consumer.clone()));
        if tx.send(SourceEvent::Subscribed { reconnect }).await.is_err() {
            return;
        }
        reconnect = true;
        let mut guard = PositionGuard::default();
        let mut wait = PollWait::new(dsn.poll_interval);
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
            let polled = poll_once(&consumer, &dsn, &mut guard, &mut wait, &ends).await;
            let outcome = match polled {
                // A snapshot read leaves the position where the snapshot started: not a sign of a reset.
                Ok(Polled::Message(msg, _))
                    if !dsn.snapshot_enable && guard.went_back(&msg.topic, msg.vgroup_id, msg.position) =>
                {
                    tracing::debug!(
                        topic = %msg.topic,
                        vgroup = msg.vgroup_id,
                        position = msg.position,
                        "the vgroup went back (a rebalance) between the poll and `position`: message dropped, \
                         its rows come again from there"
                    );
                    guard.on_reset(&msg.topic, msg.vgroup_id, msg.position);
                    Ok(())
                }
                Ok(Polled::Message(msg, slow)) => {
                    guard.on_message(&msg.topic, msg.vgroup_id, msg.position, msg.commit_at);
                    guard.on_poll_time(&msg.topic, msg.vgroup_id, slow);
                    current.saw(index, &msg.topic, msg.vgroup_id);
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
                    current.set(index, None);
                    if !lost(&tx, e.to_string(), &mut attempt, "TDengine connection lost").await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Reports a lost (or never made) TDengine connection and waits out the backoff before the next attempt;
/// `false` when the bridge no longer listens.
async fn lost(tx: &mpsc::Sender<SourceEvent>, error: String, attempt: &mut u32, what: &str) -> bool {
    let retry_in = backoff(*attempt);
    *attempt = attempt.saturating_add(1);
    tracing::warn!(%error, ?retry_in, "{what}");
    if tx.send(SourceEvent::Lost { error, retry_in }).await.is_err() {
        return false;
    }
    tokio::time::sleep(retry_in).await;
    true
}

/// What one poll gave.
enum Polled {
    /// A message, and whether its poll took long enough that the server may have cut it on its time budget.
    Message(TmqMessage, bool),
    /// The poll interval passed; positions were checked, with these seeks back.
    Idle(Vec<SourceEvent>),
}

/// Polls for at most what [`PollWait`] allows; on a message reads it completely, on a timeout checks
/// the positions (see the module doc).
async fn poll_once(
    consumer: &SharedConsumer,
    dsn: &SourceDsn,
    guard: &mut PositionGuard,
    wait: &mut PollWait,
    ends: &WalEnds,
) -> Result<Polled, taos::Error> {
    let polled = {
        let c = consumer.read().await;
        // A snapshot read does not move the position (TDengine keeps it below the WAL while it
        // hands out stored rows), and neither does the rest of a log entry after a message that stopped
        // inside it: a message a cut-short poll took there could not be detected.
        let timeout = if dsn.snapshot_enable || guard.rest_may_follow() {
            Timeout::Never
        } else {
            Timeout::Duration(wait.next())
        };
        let started = Instant::now();
        // A poll that may wait for data (`Never`) is not bounded: quiet is not an error.
        let polled = match timeout {
            Timeout::Duration(wait) => answered_poll(wait, c.recv_timeout(timeout)).await?,
            _ => c.recv_timeout(timeout).await?,
        };
        match polled {
            Some(m) => {
                let took = started.elapsed();
                wait.on_message(took);
                Some((read_message(&c, m, dsn).await?, took >= SERVER_BUDGET))
            }
            None => None,
        }
    };
    match polled {
        Some((msg, slow)) => Ok(Polled::Message(msg, slow)),
        None => {
            let rewinds = guard.check(consumer, dsn, ends).await?;
            match rewinds.is_empty() {
                true => wait.on_idle(),
                false => wait.on_rewind(),
            }
            Ok(Polled::Idle(rewinds))
        }
    }
}

/// TDengine's default `fetch.max.wait.ms`: a response also closes after the block during which the server spent
/// this long assembling it, possibly inside a log entry. A poll that came back sooner was not cut that way.
const SERVER_BUDGET: Duration = Duration::from_millis(1000);

/// TDengine's default `min.poll.rows`: a response closes after the block that reaches it.
const MIN_POLL_ROWS: usize = 4096;

/// The offset to commit after a message of `rows` rows that left the server at `position`. Up to 3.3.x a
/// query topic's response closes after the block that reaches `min.poll.rows` even inside a log entry,
/// and the position is then that entry's version + 1 while the entry's other tables are still to come;
/// a consumer that resumes from a committed `position` after a restart would skip them. So a message
/// that reached the limit commits `position - 1`: a restart re-reads that one entry (duplicates, never a
/// loss). A message below the limit read on to the end of the log and commits its position.
pub fn commit_point(position: i64, rows: usize) -> i64 {
    if rows >= MIN_POLL_ROWS {
        position - 1
    } else {
        position
    }
}

/// Reads a polled message completely.
async fn read_message(
    consumer: &taos::Consumer,
    (offset, set): (
        <taos::Consumer as AsAsyncConsumer>::Offset,
        MessageSet<<taos::Consumer as AsAsyncConsumer>::Meta, <taos::Consumer as AsAsyncConsumer>::Data>,
    ),
    dsn: &SourceDsn,
) -> Result<TmqMessage, taos::Error> {
    let topic: Arc<str> = offset.topic().into();
    let database: Arc<str> = offset.database().into();
    let vgroup_id = offset.vgroup_id();
    let position = answered("position", consumer.position(&topic, vgroup_id)).await?;
    let mut meta = None;
    let (m, d) = match set {
        MessageSet::Meta(m) => (Some(m), None),
        MessageSet::Data(d) => (None, Some(d)),
        MessageSet::MetaData(m, d) => (Some(m), Some(d)),
    };
    let has_meta = m.is_some();
    if let (Some(m), true) = (m, dsn.with_meta) {
        let json = answered("meta", m.as_json_meta()).await?;
        meta = Some(serde_json::to_value(&json).map_err(taos::Error::from_any)?);
    }
    let blocks = match d {
        Some(d) => read_blocks(&d, dsn.fetch_raw, &topic, vgroup_id).await?,
        None => Blocks::default(),
    };
    let rows = blocks.rows();
    Ok(TmqMessage {
        topic,
        database,
        vgroup_id,
        offset: position - 1 + i64::from(crate::test_knobs::offset_plus_one()),
        position,
        commit_at: commit_point(position, rows),
        has_meta,
        meta,
        blocks,
    })
}

/// A data message's blocks: whole with one request (`fetch.raw`), else, or when its raw form is not one the
/// bridge reads, block by block (the server keeps the message until the next poll).
async fn read_blocks(
    d: &<taos::Consumer as AsAsyncConsumer>::Data,
    whole: bool,
    topic: &str,
    vgroup_id: i32,
) -> Result<Blocks, taos::Error> {
    if whole {
        let raw = answered("fetch_raw", d.as_raw_data()).await?;
        match raw::RawMessage::parse(&raw.as_bytes()) {
            Ok(message) => return Ok(Blocks::Raw(message)),
            Err(e) => {
                tracing::warn!(error = %e, topic, vgroup_id, "raw message not read; fetching its blocks")
            }
        }
    }
    let mut fetched = Vec::new();
    while let Some(block) = answered("fetch", d.fetch_raw_block()).await? {
        fetched.push(block);
    }
    Ok(Blocks::Fetched(fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_consumers_follow_the_assigned_vgroups_up_to_the_cap() {
        assert_eq!(default_consumers(0), 1, "nothing assigned yet: one");
        assert_eq!(default_consumers(1), 1);
        assert_eq!(default_consumers(3), 3);
        assert_eq!(default_consumers(100), AUTO_MAX_CONSUMERS);
    }
}
