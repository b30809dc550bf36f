//! The pipeline: TMQ messages in, MQTT publishes out, offsets committed behind the broker's acks.
//!
//! One loop owns the [`Ledger`] and reacts to two event streams — the source task's messages and the
//! sink task's MQTT events — so every state change happens in one place, in order. Polling pauses while
//! `window` rows are unacknowledged (backpressure). Commits go to a separate task that coalesces them.
//!
//! Shutdown (the future passed to [`Bridge::run`] resolves): stop polling, keep serving acks until
//! nothing is unacknowledged or `shutdown_timeout` passes, commit, publish the retained `offline` status
//! (with `status_topic`) and wait up to [`STATUS_ACK_TIMEOUT`] for its ack, send DISCONNECT, close the
//! consumer.
//!
//! Status (`status_topic`): the retained `online` is queued ahead of every row on each `Connected` event
//! — after every CONNACK, fresh or resumed session — so it is the first new publish of each connection.
//! It goes through the [`Ledger`] as a control publish, so the packet-id correlation of rows stays exact.
//! The Last Will (`offline`, retained, QoS 1) is in the CONNECT (see `sink`). A connection lost during
//! shutdown already made the broker publish the Will, so the explicit `offline` is then not waited for.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use taos::RawBlock;
use tokio::sync::mpsc;

use crate::{
    dead_letter::{Route, PUBLISH_OVERHEAD},
    dsn::{CommitMode, PayloadFormat, SourceDsn, TargetDsn},
    encode::{Encoder, OffsetSuffix},
    ledger::{Action, Ledger},
    sink::{Origin, Sink, SinkEvent},
    source::{self, Committer, SourceEvent, TmqMessage},
    template::{RenderError, Vars},
};

/// Everything the bridge needs to run.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub source: SourceDsn,
    pub target: TargetDsn,
    /// How long shutdown waits for outstanding acknowledgements.
    pub shutdown_timeout: Duration,
}

impl BridgeConfig {
    /// Parses both DSNs (errors are the one-line messages for the user).
    pub fn from_dsns(from: &str, to: &str) -> Result<Self, crate::dsn::DsnError> {
        Ok(BridgeConfig {
            source: SourceDsn::parse(from)?,
            target: TargetDsn::parse(to)?,
            shutdown_timeout: Duration::from_secs(10),
        })
    }
}

/// Why the bridge stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("MQTT broker refused the connection: {0}")]
    MqttRefused(String),
    #[error("{0} (not retried: give the broker's CA in `ca=`, or fix its certificate)")]
    MqttUntrusted(String),
    #[error("{0}")]
    Tdengine(String),
    #[error("the MQTT event loop stopped unexpectedly")]
    SinkStopped,
    #[error("{0}")]
    Sink(#[from] crate::sink::SinkError),
    #[error("cannot start the MQTT thread: {0}")]
    Thread(std::io::Error),
}

/// Reasons a row or meta event was not published (each counted).
pub mod skip {
    /// The topic template uses a variable the message does not have (taosx's rule).
    pub const MISSING_VARIABLE: &str = "missing_variable";
    /// A meta event arrived but the source DSN did not ask for meta (`with.meta`).
    pub const META_DISABLED: &str = "meta_disabled";
    /// A delete or drop event filtered out by `with.meta.delete` / `with.meta.drop`.
    pub const META_FILTERED: &str = "meta_filtered";
    /// MQTT 5: the broker answered with a failure reason code.
    pub const BROKER_REJECTED: &str = "broker_rejected";
    /// The PUBLISH would exceed `max_packet_size` (the client would fail the connection on it, forever).
    pub const TOO_LARGE: &str = "too_large";
    /// The rendered topic is no valid topic name (a table name with `+`, `#` or NUL).
    pub const INVALID_TOPIC: &str = "invalid_topic";
}

/// Live counters, readable while the bridge runs ([`Bridge::stats`]).
#[derive(Debug, Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub rows: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub resent: AtomicU64,
    pub mqtt_connects: AtomicU64,
    /// Failed MQTT connection attempts (each followed by a backoff).
    pub mqtt_failures: AtomicU64,
    pub tmq_subscribes: AtomicU64,
    /// TDengine connection losses / failed subscribes (each followed by a backoff).
    pub tmq_failures: AtomicU64,
    /// Connected to the broker now (between a CONNACK and the next disconnect).
    pub mqtt_connected: AtomicBool,
    /// Subscribed to TDengine now (between a subscribe and the next connection loss).
    pub tmq_connected: AtomicBool,
    /// Rows (and meta events) queued or published but not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Polls cut short by `poll.interval.ms` that had moved the server, sought back.
    pub tmq_rewinds: AtomicU64,
    /// Each vgroup's WAL end as the source last saw it (`tmq2mqtt_lag`).
    pub wal_ends: Arc<source::WalEnds>,
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    wal_gap_versions: Mutex<BTreeMap<(String, i32), u64>>,
    committed: Mutex<BTreeMap<(String, i32), i64>>,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn skip(&self, reason: &'static str, n: u64) {
        if n > 0 {
            *self
                .skipped
                .lock()
                .expect("stats lock")
                .entry(reason)
                .or_default() += n;
        }
    }

    fn dead_letter(&self, reason: &'static str, n: u64) {
        *self
            .dead_lettered
            .lock()
            .expect("stats lock")
            .entry(reason)
            .or_default() += n;
    }

    fn wal_gap(&self, gap: &crate::wal_gap::WalGap) {
        *self
            .wal_gap_versions
            .lock()
            .expect("stats lock")
            .entry((gap.topic.to_string(), gap.vgroup_id))
            .or_default() += gap.versions();
    }

    /// The last connection error (MQTT or TDengine), for reports; `None` while all went well.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("stats lock").clone()
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().expect("stats lock") = Some(e);
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> RunSummary {
        RunSummary {
            messages: self.messages.load(Relaxed),
            rows: self.rows.load(Relaxed),
            published: self.published.load(Relaxed),
            acked: self.acked.load(Relaxed),
            resent: self.resent.load(Relaxed),
            mqtt_connects: self.mqtt_connects.load(Relaxed),
            mqtt_failures: self.mqtt_failures.load(Relaxed),
            tmq_subscribes: self.tmq_subscribes.load(Relaxed),
            tmq_failures: self.tmq_failures.load(Relaxed),
            tmq_rewinds: self.tmq_rewinds.load(Relaxed),
            skipped: self
                .skipped
                .lock()
                .expect("stats lock")
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            dead_lettered: self
                .dead_lettered
                .lock()
                .expect("stats lock")
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            wal_gap_versions: self.wal_gap_versions.lock().expect("stats lock").clone(),
            committed: self.committed.lock().expect("stats lock").clone(),
            unacked_at_exit: 0,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// TMQ messages received.
    pub messages: u64,
    /// Data rows received.
    pub rows: u64,
    /// Publishes handed to the MQTT client (re-sends included).
    pub published: u64,
    /// Publishes acknowledged (QoS 0: written).
    pub acked: u64,
    /// Publishes re-sent after a session was lost.
    pub resent: u64,
    /// MQTT connections established (1 + reconnects).
    pub mqtt_connects: u64,
    /// Failed MQTT connection attempts.
    pub mqtt_failures: u64,
    /// TMQ subscriptions made (1 + reconnects).
    pub tmq_subscribes: u64,
    /// TDengine connection losses / failed subscribes.
    pub tmq_failures: u64,
    /// Polls cut short by `poll.interval.ms` that had moved the server past a message; the source
    /// sought back, so nothing was skipped.
    pub tmq_rewinds: u64,
    /// Rows/meta events not published, by reason (see [`skip`]).
    pub skipped: BTreeMap<String, u64>,
    /// Rows/meta events published to the dead-letter topic instead, by reason (see [`skip`]).
    pub dead_lettered: BTreeMap<String, u64>,
    /// WAL versions trimmed before the group read them, per (topic, vgroup) (see [`crate::wal_gap`]).
    pub wal_gap_versions: BTreeMap<(String, i32), u64>,
    /// Offsets committed to TDengine, per (topic, vgroup): the position a restart resumes from.
    pub committed: BTreeMap<(String, i32), i64>,
    /// Publishes still unacknowledged when the run ended (shutdown deadline passed).
    pub unacked_at_exit: usize,
}

/// The bridge, ready to run.
pub struct Bridge {
    config: BridgeConfig,
    stats: Arc<Stats>,
}

#[derive(Debug, Clone)]
struct Publish {
    topic: Arc<str>,
    payload: Bytes,
    kind: Kind,
    /// Where the row or meta event came from (MQTT 5 user properties; only with `user_properties=true`).
    origin: Option<Arc<Origin>>,
    /// With `dead_letter_topic`: where it goes if the broker rejects it (`None` for dead letters).
    dead_letter: Option<Arc<Route>>,
}

/// What a publish is, which decides how it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A row, meta event or dead letter: the target's QoS and retain flag.
    Row,
    /// The bridge's status: QoS 1, retained.
    Status,
    /// An event of the bridge on `<status_topic>/events`: QoS 1, not retained.
    Event,
}

/// A TMQ message turned into its publishes by the encode stage.
#[derive(Debug)]
pub struct EncodedMessage {
    topic: Arc<str>,
    vgroup_id: i32,
    /// The offset to commit once every publish is acknowledged.
    position: i64,
    publishes: Vec<Publish>,
}

/// What the run loop reads: the source's events, each message already encoded.
pub type Staged = SourceEvent<EncodedMessage>;

/// Encoded messages waiting for the run loop: with the source's own queue this keeps the MQTT thread fed
/// while bounding memory (the window stops polling, not encoding).
const STAGED_CAPACITY: usize = 2;

/// The encode stage: a task that turns the source's messages into publishes (JSON payloads, topics, skips
/// counted), so that work runs beside the MQTT thread instead of on it.
pub fn encode_stage(
    config: Arc<BridgeConfig>,
    stats: Arc<Stats>,
    mut source_rx: mpsc::Receiver<SourceEvent>,
) -> mpsc::Receiver<Staged> {
    let (tx, rx) = mpsc::channel(STAGED_CAPACITY);
    tokio::spawn(async move {
        let mut encoder = Encoder::new();
        while let Some(ev) = source_rx.recv().await {
            let staged = ev.map_message(|msg| encode_message(&config, &stats, &mut encoder, msg));
            if tx.send(staged).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Sink events handled per wake-up of the run loop at most (acks arrive in bursts).
const EVENT_BURST: usize = 256;

/// How long graceful shutdown waits for the broker to acknowledge the `offline` status.
pub const STATUS_ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl Publish {
    fn status(topic: &str, payload: &str) -> Publish {
        Publish::control(Kind::Status, topic, payload)
    }

    fn control(kind: Kind, topic: &str, payload: &str) -> Publish {
        Publish {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            kind,
            origin: None,
            dead_letter: None,
        }
    }

    fn row(
        topic: Arc<str>,
        payload: Bytes,
        origin: &Option<Arc<Origin>>,
        route: &Option<Arc<Route>>,
    ) -> Publish {
        Publish {
            topic,
            payload,
            kind: Kind::Row,
            origin: origin.clone(),
            dead_letter: route.clone(),
        }
    }
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Self {
        Bridge {
            config,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` resolves (then shuts down gracefully) or a fatal error.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RunSummary, BridgeError> {
        let Bridge { config, stats } = self;
        tracing::info!(from = %config.source, to = %config.target, "starting bridge");
        let (source_rx, consumer, source_task) =
            source::spawn(config.source.clone(), 4, stats.wal_ends.clone());
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let commit_task = tokio::spawn(commit_loop(commit_rx, Committer::new(consumer), stats.clone()));
        let config = Arc::new(config);
        let staged = encode_stage(config.clone(), stats.clone(), source_rx);
        let result = on_mqtt_thread(config, stats.clone(), staged, commit_tx, shutdown).await;
        source_task.abort();
        // The commit task ends once it has tried to send everything it was given.
        if tokio::time::timeout(Duration::from_secs(5), commit_task)
            .await
            .is_err()
        {
            tracing::warn!("committing offsets did not finish within 5s");
        }
        let mut summary = stats.snapshot();
        let unacked = result?;
        summary.unacked_at_exit = unacked;
        tracing::info!(?summary, "bridge stopped");
        Ok(summary)
    }
}

/// Runs [`pipeline`] on a thread of its own (a single-threaded runtime that also drives the MQTT client)
/// until `shutdown` resolves (graceful stop) or this future is dropped (the pipeline is dropped at once,
/// as when the process dies).
///
/// Every row passes the run loop and rumqttc's event loop one by one (a request, a write, an event each):
/// together they are the bridge's serial stage. On one thread they hand over without cross-thread
/// wake-ups, and the source, the encode stage and the commits run beside them on the caller's runtime.
/// Measured with `harness bench --qos 0` (ratio to the bare publisher in the same run): on the shared
/// runtime the two tasks kept ~1.45 of 2 cores busy and waited on each other.
async fn on_mqtt_thread(
    config: Arc<BridgeConfig>,
    stats: Arc<Stats>,
    staged: mpsc::Receiver<Staged>,
    commit_tx: mpsc::UnboundedSender<(Arc<str>, i32, i64)>,
    shutdown: impl Future<Output = ()>,
) -> Result<usize, BridgeError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BridgeError::Thread)?;
    std::thread::Builder::new()
        .name("tmq2mqtt-mqtt".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let (graceful_tx, graceful_rx) = tokio::sync::oneshot::channel::<()>();
                let run = pipeline(&config, &stats, staged, commit_tx, async {
                    let _ = graceful_rx.await;
                });
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => Some(r),
                    stop = stop_rx => match stop {
                        Ok(()) => {
                            let _ = graceful_tx.send(());
                            Some(run.await)
                        }
                        // The caller is gone: drop the pipeline without a goodbye.
                        Err(_) => None,
                    },
                }
            });
            if let Some(result) = result {
                let _ = done_tx.send(result);
            }
        })
        .map_err(BridgeError::Thread)?;
    tokio::pin!(shutdown, done_rx);
    tokio::select! {
        r = &mut done_rx => r.unwrap_or(Err(BridgeError::SinkStopped)),
        _ = &mut shutdown => {
            let _ = stop_tx.send(());
            done_rx.await.unwrap_or(Err(BridgeError::SinkStopped))
        }
    }
}

/// The MQTT half of the bridge: consumes source events, publishes, and sends the offsets to commit to
/// `commit_tx` (closed on return). Returns how many publishes were still unacknowledged at the end.
///
/// [`Bridge::run`] feeds it from the TMQ source through [`encode_stage`], on its own thread; tests can feed
/// it [`SourceEvent`]s through [`encode_stage`] directly.
pub async fn pipeline(
    config: &BridgeConfig,
    stats: &Stats,
    mut source_rx: mpsc::Receiver<Staged>,
    commit_tx: mpsc::UnboundedSender<(Arc<str>, i32, i64)>,
    shutdown: impl Future<Output = ()>,
) -> Result<usize, BridgeError> {
    let target = &config.target;
    let mut sink = Sink::start(target)?;
    let mut ledger: Ledger<Publish> = Ledger::new();
    let mut session = 0u64;
    let mut connected = false;
    let mut stopping = false;
    // Shutdown: rows are drained (all acked or the deadline passed), then the `offline` status is sent.
    let mut drained = false;
    let mut offline_sent = false;
    let shutdown_deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(shutdown_deadline, shutdown);
    let mut result = Ok(());

    let commit = |actions: Vec<Action>| {
        if target.commit == CommitMode::AfterAck {
            for Action::Commit {
                topic,
                vgroup_id,
                offset,
            } in actions
            {
                let _ = commit_tx.send((topic, vgroup_id, offset));
            }
        }
    };

    let mut events = Vec::with_capacity(EVENT_BURST);
    'run: loop {
        // Hand queued publishes to the client while its queue has room and the session is open.
        if ledger.has_to_send() && ledger.handed_len() < sink.capacity() {
            if let Some(handoff) = sink.handoff(session) {
                while ledger.handed_len() < sink.capacity() {
                    let Some(p) = ledger.peek_to_send() else { break };
                    let kind = p.kind;
                    let handed = match kind {
                        Kind::Row => handoff.publish(&p.topic, &p.payload, p.origin.as_deref()),
                        Kind::Status => handoff.publish_status(&p.topic, &p.payload),
                        Kind::Event => handoff.publish_event(&p.topic, &p.payload),
                    };
                    if handed.is_err() {
                        result = Err(BridgeError::SinkStopped);
                        break;
                    }
                    ledger.mark_handed();
                    if kind == Kind::Row {
                        stats.published.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        stats.in_flight.store(ledger.unacked() as u64, Relaxed);
        if result.is_err() {
            break;
        }
        if stopping && !offline_sent && (drained || ledger.unacked() == 0) {
            match &target.status {
                // Not connected: the broker published the Will when the connection was lost.
                Some(status) if connected => {
                    ledger.push_control(Publish::status(&status.topic, &status.offline));
                    offline_sent = true;
                    shutdown_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + STATUS_ACK_TIMEOUT);
                    continue;
                }
                _ => break,
            }
        }
        if offline_sent && ledger.control_unacked() == 0 {
            tracing::info!("published the offline status");
            break;
        }
        let room = ledger.unacked() < target.window;
        tokio::select! {
            _ = &mut shutdown, if !stopping => {
                tracing::info!(unacked = ledger.unacked(), "shutting down: polling stopped, waiting for acks");
                stopping = true;
                source_rx.close();
                shutdown_deadline.as_mut().reset(tokio::time::Instant::now() + config.shutdown_timeout);
            }
            _ = &mut shutdown_deadline, if stopping && (!drained || offline_sent) => {
                if offline_sent {
                    tracing::warn!("the broker did not acknowledge the offline status within {STATUS_ACK_TIMEOUT:?}");
                    break;
                }
                tracing::warn!(unacked = ledger.unacked(), "shutdown deadline passed with publishes unacknowledged");
                drained = true;
            }
            ev = source_rx.recv(), if !stopping && room => match ev {
                Some(SourceEvent::Message(msg)) => {
                    if target.commit == CommitMode::BeforeAck {
                        let _ = commit_tx.send((msg.topic.clone(), msg.vgroup_id, msg.position));
                    }
                    commit(ledger.on_message(&msg.topic, msg.vgroup_id, msg.position, msg.publishes));
                }
                Some(SourceEvent::Subscribed { .. }) => {
                    stats.tmq_subscribes.fetch_add(1, Relaxed);
                    stats.tmq_connected.store(true, Relaxed);
                }
                Some(SourceEvent::Lost { error, retry_in }) => {
                    stats.set_error(format!("TDengine: {error}"));
                    stats.tmq_failures.fetch_add(1, Relaxed);
                    stats.tmq_connected.store(false, Relaxed);
                    tracing::warn!(%error, ?retry_in, "TDengine connection lost; will resubscribe");
                }
                Some(SourceEvent::Rewound { .. }) => { stats.tmq_rewinds.fetch_add(1, Relaxed); }
                Some(SourceEvent::WalGap(gap)) => {
                    stats.wal_gap(&gap);
                    if let Some(status) = &target.status {
                        let topic = format!("{}/events", status.topic);
                        let event = gap.event_json();
                        if fits(target.max_packet_size, &topic, event.as_bytes(), None) {
                            ledger.push_event(Publish::control(Kind::Event, &topic, &event));
                        }
                    }
                }
                Some(SourceEvent::Fatal(e)) => { result = Err(BridgeError::Tdengine(e)); break; }
                None => { result = Err(BridgeError::Tdengine("the TMQ source ended".into())); break; }
            },
            open = sink.next_events(&mut events, EVENT_BURST) => for ev in events.drain(..).map(Some).chain((!open).then_some(None)) { match ev {
                Some(SinkEvent::Connected { session: s, session_present }) => {
                    session = s;
                    connected = true;
                    stats.mqtt_connects.fetch_add(1, Relaxed);
                    stats.mqtt_connected.store(true, Relaxed);
                    if !session_present {
                        let n = ledger.on_session_lost();
                        if n > 0 {
                            tracing::info!(n, "re-sending publishes the lost session did not acknowledge");
                        }
                        stats.resent.fetch_add(n as u64, Relaxed);
                    }
                    // Ahead of every row: the status is the first new publish of each connection.
                    if let Some(status) = &target.status {
                        if !offline_sent {
                            ledger.push_control(Publish::status(&status.topic, &status.online));
                        }
                    }
                }
                Some(SinkEvent::Outgoing(pkid)) => {
                    let before = ledger.counters().acked;
                    let actions = ledger.on_outgoing(pkid);
                    // Count before committing: whoever sees the commit must see the ack counted.
                    stats.acked.fetch_add(ledger.counters().acked - before, Relaxed);
                    commit(actions);
                }
                Some(SinkEvent::Acked(pkid)) => {
                    let before = ledger.counters().acked;
                    let actions = ledger.on_ack(pkid);
                    // Count before committing: whoever sees the commit must see the ack counted.
                    stats.acked.fetch_add(ledger.counters().acked - before, Relaxed);
                    commit(actions);
                }
                Some(SinkEvent::Rejected { pkid, reason }) => {
                    if ledger.is_control(pkid) {
                        tracing::warn!(pkid, %reason, "broker rejected the status publish (check the ACL of `status_topic`)");
                        commit(ledger.on_ack(pkid));
                        continue;
                    }
                    // With `dead_letter_topic` the rejected row's dead letter takes its place in the ledger.
                    let mut lettered = false;
                    let actions = ledger.on_rejected(pkid, |p| {
                        let route = p.dead_letter.as_ref()?;
                        let extra = p.origin.as_deref().map_or(0, Origin::wire_len);
                        let letter = route.letter(skip::BROKER_REJECTED, Some(&p.topic), &p.payload, target.max_packet_size, extra)?;
                        lettered = true;
                        Some(Publish::row(route.topic.clone(), letter, &p.origin, &None))
                    });
                    if lettered {
                        tracing::warn!(pkid, %reason, "broker rejected a publish; sending its dead letter");
                        stats.dead_letter(skip::BROKER_REJECTED, 1);
                    } else {
                        tracing::warn!(pkid, %reason, "broker rejected a publish; it will not be delivered");
                        stats.skip(skip::BROKER_REJECTED, 1);
                    }
                    commit(actions);
                }
                Some(SinkEvent::Disconnected { error, .. }) => {
                    stats.set_error(format!("MQTT: {error}"));
                    stats.mqtt_failures.fetch_add(1, Relaxed);
                    stats.mqtt_connected.store(false, Relaxed);
                    connected = false;
                    if offline_sent {
                        // The connection dropped without DISCONNECT: the broker publishes the Will.
                        tracing::info!("connection lost while publishing the offline status; the Last Will stands in");
                        break 'run;
                    }
                }
                Some(SinkEvent::Refused(code)) => { result = Err(BridgeError::MqttRefused(code)); break 'run; }
                Some(SinkEvent::Untrusted(error)) => {
                    stats.set_error(format!("MQTT: {error}"));
                    result = Err(BridgeError::MqttUntrusted(error));
                    break 'run;
                }
                Some(SinkEvent::Stopped) | None => { result = Err(BridgeError::SinkStopped); break 'run; }
            }},
        }
    }
    drop(commit_tx);
    sink.shutdown(Duration::from_secs(2)).await;
    result.map(|_| ledger.unacked())
}

/// Runs a bridge until `shutdown` resolves. Shorthand for `Bridge::new(config).run(shutdown)`.
pub async fn run(
    config: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, BridgeError> {
    Bridge::new(config).run(shutdown).await
}

/// Turns one TMQ message into its publishes (skips counted; with `dead_letter_topic` what cannot be
/// published becomes a dead letter instead).
fn encode_message(
    config: &BridgeConfig,
    stats: &Stats,
    encoder: &mut Encoder,
    msg: TmqMessage,
) -> EncodedMessage {
    stats.messages.fetch_add(1, Relaxed);
    let target = &config.target;
    let suffix = OffsetSuffix::new(&msg.database, &msg.topic, msg.vgroup_id, msg.offset);
    let base = Vars {
        database: &msg.database,
        tmq_topic: &msg.topic,
        vgroup_id: msg.vgroup_id,
        stable: None,
        table: None,
    };
    let mut out = Outbox {
        target,
        stats,
        pubs: Vec::new(),
    };
    // MQTT 5 `user_properties=true`: the origin of the message's meta events, and of each block's rows.
    let origin = |table: Option<&str>| {
        target.user_properties.then(|| {
            Arc::new(Origin {
                database: msg.database.clone(),
                topic: msg.topic.clone(),
                vgroup_id: msg.vgroup_id,
                offset: msg.offset,
                table: table.map(Arc::from),
            })
        })
    };
    // `dead_letter_topic`: rendered once per message (it uses only variables every message has).
    let dead_letter_topic: Option<Arc<str>> =
        target
            .dead_letter_topic
            .as_ref()
            .and_then(|t| match t.render(&base) {
                Ok(topic) => Some(topic.into()),
                Err(e) => {
                    tracing::warn!(%e, "no dead-letter topic for this message");
                    None
                }
            });
    let route = |table: Option<&str>| {
        dead_letter_topic.as_ref().map(|topic| {
            Arc::new(Route {
                topic: topic.clone(),
                table: table.map(Arc::from),
            })
        })
    };
    let meta_origin = origin(None);

    if msg.has_meta && msg.meta.is_none() {
        stats.skip(skip::META_DISABLED, 1);
    }
    if let Some(meta) = &msg.meta {
        // A batch of metas (`{"tmq_meta_version":…,"metas":[…]}`) is published one unit at a time, so
        // filters and topic variables apply to each.
        let units: Vec<&serde_json::Value> = match meta.get("metas").and_then(|m| m.as_array()) {
            Some(list) => list.iter().collect(),
            None => vec![meta],
        };
        for unit in units {
            let kind = unit.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if (kind == "delete" && !config.source.with_meta_delete)
                || (kind == "drop" && !config.source.with_meta_drop)
            {
                stats.skip(skip::META_FILTERED, 1);
                continue;
            }
            let (stable, table) = meta_vars(unit);
            let vars = Vars {
                stable: stable.as_deref(),
                table: table.as_deref(),
                ..base
            };
            let route = route(table.as_deref());
            match target.meta_topic.render(&vars) {
                Ok(topic) => {
                    let payload = encoder.encode_meta(unit, &suffix);
                    if fits(target.max_packet_size, &topic, &payload, meta_origin.as_deref()) {
                        out.pubs
                            .push(Publish::row(topic.into(), payload, &meta_origin, &route));
                    } else {
                        tracing::warn!(%topic, bytes = payload.len(), "meta event exceeds max_packet_size");
                        out.unpublishable(skip::TOO_LARGE, Some(&topic), &payload, &meta_origin, &route, 1);
                    }
                }
                Err(e) => {
                    let (reason, would_be) = unrendered(&e);
                    log_unrendered(&e, 1, msg.offset);
                    if route.is_some() {
                        let payload = encoder.encode_meta(unit, &suffix);
                        out.unpublishable(reason, would_be, &payload, &meta_origin, &route, 1);
                    } else {
                        stats.skip(reason, 1);
                    }
                }
            }
        }
    }
    // format=batch: the blocks going to one topic, in order of first appearance, become one payload.
    let mut batches: Vec<(Arc<str>, Vec<&RawBlock>)> = Vec::new();
    for block in &msg.blocks {
        let rows = block.nrows() as u64;
        stats.rows.fetch_add(rows, Relaxed);
        let vars = Vars {
            table: block.table_name(),
            ..base
        };
        match target.topic.render(&vars) {
            Ok(topic) if target.format == PayloadFormat::Batch => {
                match batches.iter_mut().find(|(t, _)| **t == *topic) {
                    Some((_, blocks)) => blocks.push(block),
                    None => batches.push((topic.into(), vec![block])),
                }
            }
            Ok(topic) => {
                let topic: Arc<str> = topic.into();
                let origin = origin(block.table_name());
                let route = route(block.table_name());
                encoder.encode_block(block, &suffix, |row, payload| {
                    if fits(target.max_packet_size, &topic, &payload, origin.as_deref()) {
                        out.pubs
                            .push(Publish::row(topic.clone(), payload, &origin, &route));
                    } else {
                        tracing::warn!(%topic, row, bytes = payload.len(), "row exceeds max_packet_size");
                        out.unpublishable(skip::TOO_LARGE, Some(&topic), &payload, &origin, &route, 1);
                    }
                });
            }
            Err(e) => {
                let (reason, would_be) = unrendered(&e);
                log_unrendered(&e, rows, msg.offset);
                let route = route(block.table_name());
                if route.is_none() {
                    stats.skip(reason, rows);
                } else if target.format == PayloadFormat::Batch {
                    let payload = encoder.encode_batch([block], &suffix);
                    out.unpublishable(reason, would_be, &payload, &meta_origin, &route, rows);
                } else {
                    let origin = origin(block.table_name());
                    encoder.encode_block(block, &suffix, |_, payload| {
                        out.unpublishable(reason, would_be, &payload, &origin, &route, 1);
                    });
                }
            }
        }
    }
    for (topic, blocks) in batches {
        let rows: u64 = blocks.iter().map(|b| b.nrows() as u64).sum();
        let table = match blocks.as_slice() {
            [one] => one.table_name(),
            _ => None,
        };
        let route = route(table);
        let payload = encoder.encode_batch(blocks, &suffix);
        if fits(target.max_packet_size, &topic, &payload, meta_origin.as_deref()) {
            out.pubs.push(Publish::row(topic, payload, &meta_origin, &route));
        } else {
            tracing::warn!(%topic, rows, bytes = payload.len(), "batch exceeds max_packet_size");
            out.unpublishable(
                skip::TOO_LARGE,
                Some(&topic),
                &payload,
                &meta_origin,
                &route,
                rows,
            );
        }
    }
    EncodedMessage {
        topic: msg.topic,
        vgroup_id: msg.vgroup_id,
        position: msg.position,
        publishes: out.pubs,
    }
}

/// The skip reason of a topic that could not be rendered, and the would-be topic (an invalid one).
fn unrendered(e: &RenderError) -> (&'static str, Option<&str>) {
    match e {
        RenderError::Invalid { topic, .. } => (skip::INVALID_TOPIC, Some(topic.as_str())),
        RenderError::Missing(_) => (skip::MISSING_VARIABLE, None),
    }
}

/// A missing variable is taosx's rule, at debug (a `{stable}` template would log every row); an invalid
/// topic is a surprise, at warn.
fn log_unrendered(e: &RenderError, rows: u64, offset: i64) {
    match e {
        RenderError::Missing(_) => tracing::debug!(%e, rows, offset, "no topic"),
        RenderError::Invalid { .. } => tracing::warn!(%e, rows, offset, "no valid topic"),
    }
}

/// The publishes of one message as the encode stage collects them.
struct Outbox<'a> {
    target: &'a TargetDsn,
    stats: &'a Stats,
    pubs: Vec<Publish>,
}

impl Outbox<'_> {
    /// `payload` (of `rows` rows, or one meta event) cannot be published for `reason`: its dead letter
    /// goes out instead (with a `route`), else it is counted as skipped.
    fn unpublishable(
        &mut self,
        reason: &'static str,
        would_be: Option<&str>,
        payload: &[u8],
        origin: &Option<Arc<Origin>>,
        route: &Option<Arc<Route>>,
        rows: u64,
    ) {
        let extra = origin.as_deref().map_or(0, Origin::wire_len);
        let letter = route.as_ref().and_then(|r| {
            let letter = r.letter(reason, would_be, payload, self.target.max_packet_size, extra)?;
            Some(Publish::row(r.topic.clone(), letter, origin, &None))
        });
        match letter {
            Some(p) => {
                self.pubs.push(p);
                self.stats.dead_letter(reason, rows);
            }
            None => {
                if route.is_some() {
                    tracing::warn!(
                        reason,
                        "the dead letter does not fit max_packet_size either; skipped"
                    );
                }
                self.stats.skip(reason, rows);
            }
        }
    }
}

/// Whether a PUBLISH of `payload` to `topic` stays within `max` bytes (fixed header ≤ 5, topic length
/// prefix 2, packet id 2, MQTT 5 properties: content type, format indicator and expiry with room to
/// spare, plus the user properties of `origin`).
fn fits(max: usize, topic: &str, payload: &[u8], origin: Option<&Origin>) -> bool {
    PUBLISH_OVERHEAD + topic.len() + origin.map_or(0, Origin::wire_len) + payload.len() <= max
}

/// `{stable}` and `{table}` of a meta event, as taosx defines them: stable for create super/child and
/// drop super; table for create child/normal, alter, and drop of a single child/normal table.
fn meta_vars(unit: &serde_json::Value) -> (Option<String>, Option<String>) {
    let s = |k: &str| unit.get(k).and_then(|v| v.as_str()).map(String::from);
    let kind = unit.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let table_type = unit.get("tableType").and_then(|t| t.as_str()).unwrap_or("");
    match (kind, table_type) {
        ("create", "super") => (s("tableName"), None),
        ("create", "child") => (s("using"), s("tableName")),
        ("create", _) => (None, s("tableName")),
        ("alter", _) => (None, s("tableName")),
        ("drop", "super") => (s("tableName"), None),
        ("drop", _) => {
            let list = unit.get("tableNameList").and_then(|l| l.as_array());
            let single = list
                .filter(|l| l.len() == 1)
                .and_then(|l| l[0].as_str())
                .map(String::from);
            (None, single.or_else(|| s("tableName")))
        }
        _ => (None, None),
    }
}

async fn commit_loop(
    mut rx: mpsc::UnboundedReceiver<(Arc<str>, i32, i64)>,
    mut committer: Committer,
    stats: Arc<Stats>,
) {
    let mut closed = false;
    while !closed {
        tokio::select! {
            c = rx.recv() => match c {
                Some((t, vg, off)) => committer.add(t, vg, off),
                None => closed = true,
            },
            // Retry failed commits (e.g. while TDengine reconnects) now and then.
            _ = tokio::time::sleep(Duration::from_millis(500)), if !committer.is_empty() => {}
        }
        while let Ok((t, vg, off)) = rx.try_recv() {
            committer.add(t, vg, off);
        }
        for (topic, vg, offset) in committer.flush().await {
            tracing::debug!(%topic, vg, offset, "committed");
            stats
                .committed
                .lock()
                .expect("stats lock")
                .insert((topic.to_string(), vg), offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::meta_vars;
    use serde_json::json;

    #[test]
    fn meta_variables_follow_taosx() {
        let o = |a: Option<&str>, b: Option<&str>| (a.map(String::from), b.map(String::from));
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"super","tableName":"st"})),
            o(Some("st"), None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"child","tableName":"d0","using":"st"})),
            o(Some("st"), Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"normal","tableName":"n"})),
            o(None, Some("n"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"alter","tableType":"child","tableName":"d0"})),
            o(None, Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableType":"super","tableName":"st"})),
            o(Some("st"), None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableNameList":["d0"]})),
            o(None, Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableNameList":["d0","d1"]})),
            o(None, None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"delete","sql":"delete from d0"})),
            o(None, None)
        );
    }
}
