//! The pipeline: encoded TMQ messages in, MQTT publishes out, offsets to commit behind the broker's acks.
//!
//! One loop owns the [`Ledger`] (what to commit) and the [`Lifecycle`] (when to stop, what status to
//! announce) and reacts to the source's messages, the sink's MQTT events, the shutdown request and the
//! lifecycle's deadline — so every state change happens in one place, in order. Polling pauses while
//! `window` rows are unacknowledged (backpressure). Each wake-up is handled by a named method; the
//! `select!` only says what woke the loop.

use std::{future::Future, pin::Pin, sync::atomic::Ordering::Relaxed, time::Duration};

use tokio::{sync::mpsc, time::Sleep};

use super::{
    encode_stage::{fits, Kind, Publish},
    BridgeConfig, BridgeError, Skip, Staged, Stats,
};
use crate::{
    dsn::CommitMode,
    ledger::{self, CommitPoint, Ledger},
    lifecycle::{self, Exit, Lifecycle},
    sink::{Origin, Sink, SinkEvent},
    source::{SourceEvent, WalGap},
};

/// Sink events handled per wake-up of the run loop at most (acks arrive in bursts).
const EVENT_BURST: usize = 256;

/// The MQTT half of the bridge: consumes source events, publishes, and sends the offsets to commit to
/// `commit_tx` (closed on return). Returns how many publishes were still unacknowledged at the end.
///
/// [`Bridge::run`](super::Bridge::run) feeds it from the TMQ source through
/// [`encode_stage`](super::encode_stage), on its own thread; tests can feed it [`SourceEvent`]s through
/// `encode_stage` directly.
pub async fn pipeline(
    config: &BridgeConfig,
    stats: &Stats,
    source_rx: mpsc::Receiver<Staged>,
    commit_tx: mpsc::UnboundedSender<CommitPoint>,
    shutdown: impl Future<Output = ()>,
) -> Result<usize, BridgeError> {
    let mut pipeline = Pipeline {
        config,
        stats,
        sink: Sink::start(&config.target)?,
        ledger: Ledger::new(),
        lifecycle: Lifecycle::new(config.target.status.is_some(), config.shutdown_timeout),
        session: 0,
        source_rx,
        commit_tx,
        deadline: Box::pin(tokio::time::sleep(Duration::MAX)),
    };
    let result = pipeline.run(shutdown).await;
    let Pipeline {
        sink,
        ledger,
        commit_tx,
        ..
    } = pipeline;
    drop(commit_tx);
    sink.shutdown(Duration::from_secs(2)).await;
    result.map(|()| ledger.unacked())
}

/// What woke the run loop.
enum Wake {
    Shutdown,
    Deadline,
    Source(Option<Staged>),
    /// Sink events were read into the burst buffer; `false`: the sink is closed.
    Sink(bool),
}

struct Pipeline<'a> {
    config: &'a BridgeConfig,
    stats: &'a Stats,
    sink: Sink,
    ledger: Ledger<Publish>,
    lifecycle: Lifecycle,
    /// The sink's current session: publishes are handed to it only.
    session: u64,
    source_rx: mpsc::Receiver<Staged>,
    commit_tx: mpsc::UnboundedSender<CommitPoint>,
    /// The lifecycle's deadline (armed by its actions).
    deadline: Pin<Box<Sleep>>,
}

impl Pipeline<'_> {
    async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), BridgeError> {
        tokio::pin!(shutdown);
        let mut events = Vec::with_capacity(EVENT_BURST);
        loop {
            let handed = self.hand_off();
            self.stats.in_flight.store(self.ledger.unacked() as u64, Relaxed);
            handed?;
            let progress = (self.ledger.unacked(), self.ledger.control_unacked());
            if let Some(action) = self.lifecycle.on_progress(progress.0, progress.1) {
                self.apply(Some(action));
                if self.lifecycle.is_done() {
                    return Ok(());
                }
                // The `offline` status was queued: hand it over before waiting.
                continue;
            }
            let polling = self.lifecycle.polling();
            let room = self.ledger.unacked() < self.config.target.window;
            let wake = tokio::select! {
                _ = &mut shutdown, if polling => Wake::Shutdown,
                _ = &mut self.deadline, if self.lifecycle.deadline_armed() => Wake::Deadline,
                ev = self.source_rx.recv(), if polling && room => Wake::Source(ev),
                open = self.sink.next_events(&mut events, EVENT_BURST) => Wake::Sink(open),
            };
            match wake {
                Wake::Shutdown => {
                    let action = self.lifecycle.on_shutdown();
                    self.apply(action);
                }
                Wake::Deadline => {
                    let action = self.lifecycle.on_deadline();
                    self.apply(action);
                }
                Wake::Source(ev) => self.on_source(ev)?,
                Wake::Sink(open) => {
                    let closed = (!open).then_some(None);
                    for ev in events.drain(..).map(Some).chain(closed) {
                        self.on_sink(ev)?;
                        if self.lifecycle.is_done() {
                            break;
                        }
                    }
                }
            }
            if self.lifecycle.is_done() {
                return Ok(());
            }
        }
    }

    /// Hands queued publishes to the client while its queue has room and the session is open.
    fn hand_off(&mut self) -> Result<(), BridgeError> {
        if !self.ledger.has_to_send() || self.ledger.handed_len() >= self.sink.capacity() {
            return Ok(());
        }
        let Some(handoff) = self.sink.handoff(self.session) else {
            return Ok(());
        };
        while self.ledger.handed_len() < self.sink.capacity() {
            let Some(p) = self.ledger.peek_to_send() else {
                break;
            };
            let kind = p.kind;
            let handed = match kind {
                Kind::Row => handoff.publish(&p.topic, &p.payload, p.origin.as_deref()),
                Kind::Status => handoff.publish_status(&p.topic, &p.payload),
                Kind::Event => handoff.publish_event(&p.topic, &p.payload),
            };
            if handed.is_err() {
                return Err(BridgeError::SinkStopped);
            }
            self.ledger.mark_handed();
            if kind == Kind::Row {
                self.stats.published.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    /// Carries out what the lifecycle asked for, if anything.
    fn apply(&mut self, action: Option<lifecycle::Action>) {
        use lifecycle::Action;
        let Some(action) = action else { return };
        let unacked = self.ledger.unacked();
        match action {
            Action::PublishOnline => self.push_status(true),
            Action::StopPolling { deadline_in } => {
                tracing::info!(unacked, "shutting down: polling stopped, waiting for acks");
                self.source_rx.close();
                self.arm_deadline(deadline_in);
            }
            Action::GiveUpUnacked => {
                tracing::warn!(unacked, "shutdown deadline passed with publishes unacknowledged");
            }
            Action::PublishOffline { deadline_in } => {
                self.push_status(false);
                self.arm_deadline(deadline_in);
            }
            Action::Exit(Exit::Drained) => {}
            Action::Exit(Exit::OfflineAcked) => tracing::info!("published the offline status"),
            Action::Exit(Exit::OfflineUnacked) => tracing::warn!(
                "the broker did not acknowledge the offline status within {:?}",
                lifecycle::STATUS_ACK_TIMEOUT
            ),
            Action::Exit(Exit::WillStandsIn) => {
                // The connection dropped without DISCONNECT: the broker publishes the Will.
                tracing::info!(
                    "connection lost while publishing the offline status; the Last Will stands in"
                );
            }
        }
    }

    /// Queues a status publish (the lifecycle asks for one only with a status topic); it goes through the
    /// ledger as a control publish, so the packet-id correlation of rows stays exact.
    fn push_status(&mut self, online: bool) {
        if let Some(status) = &self.config.target.status {
            let payload = if online { &status.online } else { &status.offline };
            self.ledger.push_control(Publish::status(&status.topic, payload));
        }
    }

    fn arm_deadline(&mut self, after: Duration) {
        self.deadline.as_mut().reset(tokio::time::Instant::now() + after);
    }

    /// Sends the ledger's commits on (after the broker's acks; `commit=before_ack` sent them already).
    fn commit(&self, actions: Vec<ledger::Action>) {
        if self.config.target.commit == CommitMode::AfterAck {
            for ledger::Action::Commit(point) in actions {
                let _ = self.commit_tx.send(point);
            }
        }
    }

    /// A source event (`None`: the source ended).
    fn on_source(&mut self, ev: Option<Staged>) -> Result<(), BridgeError> {
        let stats = self.stats;
        match ev {
            Some(SourceEvent::Message(msg)) => {
                if self.config.target.commit == CommitMode::BeforeAck {
                    let _ = self.commit_tx.send(CommitPoint {
                        topic: msg.topic.clone(),
                        vgroup_id: msg.vgroup_id,
                        offset: msg.position,
                    });
                }
                let actions = self
                    .ledger
                    .on_message(&msg.topic, msg.vgroup_id, msg.position, msg.publishes);
                self.commit(actions);
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
            Some(SourceEvent::Rewound { .. }) => {
                stats.tmq_rewinds.fetch_add(1, Relaxed);
            }
            Some(SourceEvent::WalGap(gap)) => self.on_wal_gap(&gap),
            Some(SourceEvent::Fatal(e)) => return Err(BridgeError::Tdengine(e)),
            None => return Err(BridgeError::Tdengine("the TMQ source ended".into())),
        }
        Ok(())
    }

    /// A sink event (`None`: the sink closed).
    fn on_sink(&mut self, ev: Option<SinkEvent>) -> Result<(), BridgeError> {
        match ev {
            Some(SinkEvent::Connected {
                session,
                session_present,
            }) => self.on_connected(session, session_present),
            Some(SinkEvent::Outgoing(pkid)) if pkid != 0 && crate::test_knobs::ack_on_write() => {
                self.settle(|l| l.on_outgoing(pkid));
                self.settle(|l| l.on_ack(pkid))
            }
            Some(SinkEvent::Outgoing(pkid)) => self.settle(|l| l.on_outgoing(pkid)),
            Some(SinkEvent::Acked(pkid)) => self.settle(|l| l.on_ack(pkid)),
            Some(SinkEvent::Received(pkid)) => self.settle(|l| l.on_received(pkid)),
            Some(SinkEvent::Completed(pkid)) => self.settle(|l| l.on_complete(pkid)),
            Some(SinkEvent::Rejected { pkid, reason }) => self.on_rejected(pkid, &reason),
            Some(SinkEvent::Disconnected { error, .. }) => {
                // The client dropped what it had not sent yet (see `sink`): the ledger hands it again.
                self.ledger.on_disconnected();
                self.stats.set_error(format!("MQTT: {error}"));
                self.stats.mqtt_failures.fetch_add(1, Relaxed);
                self.stats.mqtt_connected.store(false, Relaxed);
                let action = self.lifecycle.on_disconnected();
                self.apply(action);
            }
            Some(SinkEvent::Refused(code)) => return Err(BridgeError::MqttRefused(code)),
            Some(SinkEvent::Untrusted(error)) => {
                self.stats.set_error(format!("MQTT: {error}"));
                return Err(BridgeError::MqttUntrusted(error));
            }
            Some(SinkEvent::Stopped) | None => return Err(BridgeError::SinkStopped),
        }
        Ok(())
    }

    /// A CONNACK: a fresh session re-sends what the lost one did not acknowledge; the status, if any, is
    /// queued ahead of every row, so it is the first new publish of each connection.
    fn on_connected(&mut self, session: u64, session_present: bool) {
        self.session = session;
        self.stats.mqtt_connects.fetch_add(1, Relaxed);
        self.stats.mqtt_connected.store(true, Relaxed);
        if !session_present {
            let n = self.ledger.on_session_lost();
            if n > 0 {
                tracing::info!(n, "re-sending publishes the lost session did not acknowledge");
            }
            self.stats.resent.fetch_add(n as u64, Relaxed);
        }
        let action = self.lifecycle.on_connected();
        self.apply(action);
    }

    /// An outgoing report or ack: counts the newly acknowledged rows, then commits what they complete.
    fn settle(&mut self, event: impl FnOnce(&mut Ledger<Publish>) -> Vec<ledger::Action>) {
        let before = self.ledger.counters().acked;
        let actions = event(&mut self.ledger);
        // Count before committing: whoever sees the commit must see the ack counted.
        let acked = self.ledger.counters().acked - before;
        self.stats.acked.fetch_add(acked, Relaxed);
        self.commit(actions);
    }

    /// The group resumed a vgroup behind its WAL's begin (the source warned already): counted and,
    /// with `status_topic`, announced on `<status_topic>/events`.
    fn on_wal_gap(&mut self, gap: &WalGap) {
        self.stats.wal_gap(gap);
        if let Some(status) = &self.config.target.status {
            let topic = format!("{}/events", status.topic);
            let event = gap.event_json();
            if fits(self.config.target.max_packet_size, &topic, event.as_bytes(), None) {
                self.ledger
                    .push_event(Publish::control(Kind::Event, &topic, &event));
            }
        }
    }

    /// MQTT 5: the broker rejected a publish. With `dead_letter_topic` its dead letter takes its place
    /// in the ledger (the message commits once that is acknowledged); otherwise it will not be delivered
    /// (its row counts as skipped).
    fn on_rejected(&mut self, pkid: u16, reason: &str) {
        if self.ledger.is_control(pkid) {
            tracing::warn!(pkid, %reason, "broker rejected the status publish (check the ACL of `status_topic`)");
            let actions = self.ledger.on_ack(pkid);
            self.commit(actions);
            return;
        }
        let max = self.config.target.max_packet_size;
        let mut lettered = false;
        let actions = self.ledger.on_rejected(pkid, |p| {
            let route = p.dead_letter.as_ref()?;
            let extra = p.origin.as_deref().map_or(0, Origin::wire_len);
            let reason = Skip::BrokerRejected.as_str();
            let letter = route.letter(reason, Some(&p.topic), &p.payload, max, extra)?;
            lettered = true;
            Some(Publish::row(route.topic.clone(), letter, &p.origin, &None))
        });
        if lettered {
            tracing::warn!(pkid, %reason, "broker rejected a publish; sending its dead letter");
            self.stats.dead_letter(Skip::BrokerRejected, 1);
        } else {
            tracing::warn!(pkid, %reason, "broker rejected a publish; it will not be delivered");
            self.stats.skip(Skip::BrokerRejected, 1);
        }
        self.commit(actions);
    }
}
