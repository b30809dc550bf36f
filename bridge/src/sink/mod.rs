//! The MQTT side: a rumqttc client (MQTT 3.1.1 or 5.0, or 3.1 through [`Mqtt31Shim`]; TLS for
//! `mqtts://`) whose event loop runs in its own task.
//!
//! The task is never cancelled mid-`poll` (rumqttc's state and socket writes are not cancel-safe); it
//! reports what happened as [`SinkEvent`]s over a channel, in order. Reconnects use exponential backoff
//! with jitter, 100 ms doubling to a 10 s cap, and never give up (a refused CONNACK is fatal).
//!
//! A TLS handshake in which this client rejects the broker's certificate (unknown issuer, expired, wrong
//! name) is fatal like a refused CONNACK: retrying cannot fix it. With a status topic, the CONNECT carries a
//! retained QoS 1 Last Will (`offline`); the status publishes themselves are the run loop's (see `run`).
//!
//! Events rumqttc had buffered when a connection failed (a PUBLISH reported just before its flush failed,
//! acks read in the same batch as the error) are reported before the `Disconnected` event, so none of
//! them surfaces in the next session where it would be taken for one of that session's packets.
//!
//! Publishes pass a *gate*: closed from the moment a connection fails until the run loop has seen the
//! `Connected` event of the next session. So every publish handed to rumqttc belongs to a known session,
//! and when a session is lost without `session_present` the ledger can re-send exactly what rumqttc
//! dropped (0.25 clears its queue on a clean-session reconnect and never sets DUP).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use crate::dsn::{MqttVersion, TargetDsn};
use crate::mqtt31::{Mqtt31Error, Mqtt31Shim, Upstream};

mod props;
mod resends;
pub use props::Origin;
use resends::Resends;

/// The shim's bound on TCP connect + TLS handshake to the broker.
const SHIM_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// rumqttc's bound on connect + CONNECT/CONNACK; through the shim it must exceed the shim's own bound,
/// so a broker that cannot be reached is reported with the shim's cause, not as a bare timeout.
const CONNECTION_TIMEOUT_SECS: u64 = 10;

/// What the MQTT event loop reports, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkEvent {
    /// CONNACK accepted; publishes of this `session` may now be handed to the client.
    Connected { session: u64, session_present: bool },
    /// A publish left with this packet id (0 for QoS 0).
    Outgoing(u16),
    /// PUBACK (QoS 1) for this packet id.
    Acked(u16),
    /// PUBREC (QoS 2) for this packet id: the broker has the message; PUBREL follows.
    Received(u16),
    /// PUBCOMP (QoS 2) for this packet id (MQTT 5: whatever its reason code — "packet identifier not found"
    /// answers a PUBREL the broker had completed already).
    Completed(u16),
    /// MQTT 5: the broker answered with a failure reason code; the publish will not be delivered.
    Rejected { pkid: u16, reason: String },
    /// The connection failed; the next attempt follows after `retry_in`.
    Disconnected { error: String, retry_in: Duration },
    /// The broker refused the connection (bad credentials, client id, …): no point retrying.
    Refused(String),
    /// This client rejected the broker's TLS certificate (unknown issuer, expired, wrong host name):
    /// no point retrying either.
    Untrusted(String),
    /// The event loop ended (after DISCONNECT, or when the client was dropped).
    Stopped,
}

/// Why a publish could not be handed to the client.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the MQTT event loop has stopped")]
    Stopped,
    #[error("MQTT TLS settings: {0}")]
    Tls(#[from] crate::tls::TlsConfigError),
    #[error("MQTT 3.1: {0}")]
    Mqtt31(#[from] Mqtt31Error),
}

#[derive(Debug, Default)]
struct Gate {
    open: bool,
    session: u64,
}

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

#[allow(clippy::large_enum_variant)] // one per process; boxing buys nothing
enum AnyLoop {
    V4(rumqttc::EventLoop),
    V5(rumqttc::v5::EventLoop),
}

/// Common view of the two event loops' events.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    ConnAck { session_present: bool },
    Outgoing(u16),
    Acked(u16),
    Received(u16),
    Completed(u16),
    Rejected(u16, String),
    SentDisconnect,
    Other,
}

impl Polled {
    /// The event of a publish flow (outgoing, acked, rejected); `None` for connection events and others.
    fn into_packet_event(self) -> Option<SinkEvent> {
        match self {
            Polled::Outgoing(pkid) => Some(SinkEvent::Outgoing(pkid)),
            Polled::Acked(pkid) => Some(SinkEvent::Acked(pkid)),
            Polled::Received(pkid) => Some(SinkEvent::Received(pkid)),
            Polled::Completed(pkid) => Some(SinkEvent::Completed(pkid)),
            Polled::Rejected(pkid, reason) => Some(SinkEvent::Rejected { pkid, reason }),
            Polled::ConnAck { .. } | Polled::SentDisconnect | Polled::Other => None,
        }
    }
}

enum PollError {
    Refused(String),
    Untrusted(String),
    Done,
    Retry(String),
}

fn map_v4(event: rumqttc::Event) -> Polled {
    use rumqttc::{Event, Outgoing as O, Packet as P};
    match event {
        Event::Incoming(P::ConnAck(c)) => Polled::ConnAck {
            session_present: c.session_present,
        },
        Event::Incoming(P::PubAck(p)) => Polled::Acked(p.pkid),
        Event::Incoming(P::PubRec(p)) => Polled::Received(p.pkid),
        Event::Incoming(P::PubComp(p)) => Polled::Completed(p.pkid),
        Event::Outgoing(O::Publish(pkid)) => Polled::Outgoing(pkid),
        Event::Outgoing(O::Disconnect) => Polled::SentDisconnect,
        _ => Polled::Other,
    }
}

fn map_v5(event: rumqttc::v5::Event) -> Polled {
    use rumqttc::v5::{
        mqttbytes::v5::{Packet as P, PubAckReason, PubRecReason},
        Event,
    };
    use rumqttc::Outgoing as O;
    match event {
        Event::Incoming(P::ConnAck(c)) => Polled::ConnAck {
            session_present: c.session_present,
        },
        Event::Incoming(P::PubAck(p)) => match p.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Polled::Acked(p.pkid),
            r => Polled::Rejected(p.pkid, format!("PUBACK {r:?}")),
        },
        Event::Incoming(P::PubRec(p)) => match p.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Polled::Received(p.pkid),
            r => Polled::Rejected(p.pkid, format!("PUBREC {r:?}")),
        },
        Event::Incoming(P::PubComp(p)) => Polled::Completed(p.pkid),
        Event::Outgoing(O::Publish(pkid)) => Polled::Outgoing(pkid),
        Event::Outgoing(O::Disconnect) => Polled::SentDisconnect,
        _ => Polled::Other,
    }
}

/// A TLS error of rumqttc in which this client rejected the broker's certificate.
fn rejects_certificate(e: &rumqttc::TlsError) -> bool {
    matches!(e, rumqttc::TlsError::Io(io) if crate::tls::is_certificate_rejection(io))
}

impl AnyLoop {
    async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            AnyLoop::V4(el) => {
                use rumqttc::ConnectionError as E;
                match el.poll().await {
                    Ok(event) => Ok(map_v4(event)),
                    Err(E::ConnectionRefused(code)) => Err(PollError::Refused(describe_refusal_v4(code))),
                    Err(E::RequestsDone) => Err(PollError::Done),
                    Err(E::Tls(tls)) if rejects_certificate(&tls) => {
                        Err(PollError::Untrusted(describe_v4(&E::Tls(tls))))
                    }
                    Err(e) => Err(PollError::Retry(describe_v4(&e))),
                }
            }
            AnyLoop::V5(el) => {
                use rumqttc::v5::ConnectionError as E;
                match el.poll().await {
                    Ok(event) => Ok(map_v5(event)),
                    Err(E::ConnectionRefused(code)) => Err(PollError::Refused(describe_refusal_v5(code))),
                    Err(E::RequestsDone) => Err(PollError::Done),
                    Err(E::Tls(tls)) if rejects_certificate(&tls) => {
                        Err(PollError::Untrusted(one_line(&E::Tls(tls).to_string())))
                    }
                    Err(e) => Err(PollError::Retry(one_line(&e.to_string()))),
                }
            }
        }
    }

    /// Events rumqttc buffered before its connection failed; they belong to that connection.
    fn take_stale_events(&mut self) -> Vec<Polled> {
        match self {
            AnyLoop::V4(el) => el.state.events.drain(..).map(map_v4).collect(),
            AnyLoop::V5(el) => el.state.events.drain(..).map(map_v5).collect(),
        }
    }

    /// Leaves only the re-sends of the lost connection's flows in rumqttc's pending queue (which a
    /// clean-session reconnect clears), in the order they first went out (see [`requeue`]): nothing handed
    /// before the gate closed leaks into the next session. Returns the ids of the flows re-sent.
    fn clean(&mut self, sent: Sent) -> Vec<u16> {
        match self {
            // A collided PUBLISH never went out; while `collision` is set rumqttc reads no new request,
            // on the next connection too (where the old flow may never be answered).
            AnyLoop::V4(el) => {
                el.state.collision = None;
                el.clean();
                requeue(&mut el.pending, sent)
            }
            AnyLoop::V5(el) => {
                el.state.collision = None;
                el.clean();
                requeue(&mut el.pending, sent)
            }
        }
    }
}

/// After rumqttc's `clean()`: the re-sends are put in the order they first went out, and the publishes that
/// never went out — a collided one (cleared by the caller) and those `clean()` took from the channel — are
/// dropped: the ledger hands them again after the next CONNACK (`Ledger::on_disconnected`). Left in the
/// queue they would go out
/// ahead of flow control (rumqttc sends its queue even while a packet id collides, out of order) and, for
/// QoS 2, collide with the re-sends. Returns the packet ids of the flows re-sent (PUBLISH or PUBREL).
fn requeue<R: Queued>(pending: &mut VecDeque<R>, sent: Sent) -> Vec<u16> {
    pending.retain(|r| !r.unsent_publish());
    resend_in_order(pending, sent, R::resend);
    pending
        .iter()
        .filter_map(|r| match r.resend() {
            Resend::Publish(pkid) | Resend::Release(pkid) => Some(pkid),
            Resend::Other => None,
        })
        .collect()
}

/// A request in rumqttc's pending queue (v4 or v5), as [`requeue`] sees it.
trait Queued {
    fn resend(&self) -> Resend;
    /// A PUBLISH that never went out (no packet id yet, or QoS 0).
    fn unsent_publish(&self) -> bool;
}

/// The v4 and v5 requests differ in type only.
macro_rules! queued {
    ($request:ty) => {
        impl Queued for $request {
            fn resend(&self) -> Resend {
                match self {
                    Self::PubRel(p) => Resend::Release(p.pkid),
                    Self::Publish(p) if p.pkid != 0 => Resend::Publish(p.pkid),
                    _ => Resend::Other,
                }
            }
            fn unsent_publish(&self) -> bool {
                matches!(self, Self::Publish(p) if p.pkid == 0)
            }
        }
    };
}
queued!(rumqttc::Request);
queued!(rumqttc::v5::Request);

/// The packet ids the client has sent PUBLISHes with: the highest (rumqttc wraps to 1 after its inflight
/// limit) and the newest. rumqttc hands packet ids out in turn, so the oldest flow still open is the first
/// one after the newest id, round the circle.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sent {
    max: u16,
    newest: Option<u16>,
}

impl Sent {
    /// A PUBLISH left with `pkid` (0: QoS 0, no id).
    fn saw(&mut self, pkid: u16) {
        if pkid != 0 {
            self.max = self.max.max(pkid);
            self.newest = Some(pkid);
        }
    }

    /// How many ids after the oldest possible flow `pkid` was sent: older flows are smaller.
    fn age(&self, pkid: u16) -> i32 {
        let max = i32::from(self.max.max(1));
        let oldest = self.newest.map_or(1, |n| i32::from(n) % max + 1);
        (i32::from(pkid) - oldest).rem_euclid(max)
    }
}

/// Reorders a resumed session's re-sends so that QoS 2 messages keep their order. rumqttc 0.25's `clean()`
/// queues the unacknowledged PUBLISHes before the PUBRELs of messages the broker already PUBREC'd, both by
/// packet id rather than in sending order (it rotates the PUBLISHes at the last PUBACK, which QoS 2 never
/// moves). A broker that hands a QoS 2 message to subscribers when it gets the PUBREL (Mosquitto) then
/// delivers newer rows before older ones. Older flows go first: the PUBRELs, then the PUBLISHes, each oldest
/// first (by [`Sent::age`]: with the whole window open there is no gap among the ids to tell where the run
/// starts), then everything else in its order.
fn resend_in_order<R>(pending: &mut VecDeque<R>, sent: Sent, kind: impl Fn(&R) -> Resend) {
    let mut rels = Vec::new();
    let mut pubs = Vec::new();
    let mut rest = Vec::new();
    for r in pending.drain(..) {
        match kind(&r) {
            Resend::Release(p) => rels.push((sent.age(p), r)),
            Resend::Publish(p) => pubs.push((sent.age(p), r)),
            Resend::Other => rest.push(r),
        }
    }
    rels.sort_by_key(|(a, _)| *a);
    pubs.sort_by_key(|(a, _)| *a);
    pending.extend(rels.into_iter().map(|(_, r)| r));
    pending.extend(pubs.into_iter().map(|(_, r)| r));
    pending.extend(rest);
}

/// What a queued request is to [`resend_in_order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A PUBREL of this packet id.
    Release(u16),
    /// A PUBLISH that already has this packet id (a re-send).
    Publish(u16),
    Other,
}

fn describe_v4(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Io(io))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            "connection closed by the broker".into()
        }
        e => one_line(&e.to_string()),
    }
}

/// Error texts from TLS and I/O layers may span lines; a log line and an exit message must not. rumqttc's
/// "TLS: I/O: invalid peer certificate: …" is said the way the MQTT 3.1 shim says it.
fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.strip_prefix("TLS: I/O: ") {
        Some(rest) => format!("TLS handshake with the MQTT broker failed: {rest}"),
        None => text,
    }
}

/// What the 3.1/3.1.1 return codes and the 5.0 reason codes share, said one way.
const ID_REJECTED: &str = "identifier rejected: the broker does not accept this `client_id`";
const SERVER_UNAVAILABLE: &str = "server unavailable: the broker cannot accept connections now";
const BAD_LOGIN: &str = "bad user name or password";
const NOT_AUTHORIZED: &str = "not authorized: check the user name and password (and the broker's ACL)";

/// A 3.1/3.1.1 CONNACK return code as the operator should read it.
pub fn describe_refusal_v4(code: rumqttc::ConnectReturnCode) -> String {
    use rumqttc::ConnectReturnCode as C;
    let (n, what) = match code {
        C::Success => (0, "accepted (not a refusal)"),
        C::RefusedProtocolVersion => (1, "unacceptable protocol version: the broker does not speak this MQTT version (try another `version=`)"),
        C::BadClientId => (2, ID_REJECTED),
        C::ServiceUnavailable => (3, SERVER_UNAVAILABLE),
        C::BadUserNamePassword => (4, BAD_LOGIN),
        C::NotAuthorized => (5, NOT_AUTHORIZED),
    };
    format!("CONNACK return code {n}, {what}")
}

/// An MQTT 5 CONNACK reason code as the operator should read it.
pub fn describe_refusal_v5(code: rumqttc::v5::mqttbytes::v5::ConnectReturnCode) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    let (n, what): (u8, &str) = match code {
        C::Success => (0x00, "accepted (not a refusal)"),
        // rumqttc's v5 decoder maps the 3.1.1 codes 1–3 (a broker answering in 3.1.1) to these.
        C::RefusedProtocolVersion => (
            0x01,
            "unacceptable protocol version: the broker does not speak MQTT 5 (try `version=3.1.1`)",
        ),
        C::BadClientId => (0x02, ID_REJECTED),
        C::ServiceUnavailable => (0x03, SERVER_UNAVAILABLE),
        C::UnspecifiedError => (0x80, "unspecified error"),
        C::MalformedPacket => (0x81, "malformed packet"),
        C::ProtocolError => (0x82, "protocol error"),
        C::ImplementationSpecificError => (0x83, "implementation specific error"),
        C::UnsupportedProtocolVersion => (0x84, "unsupported protocol version (try another `version=`)"),
        C::ClientIdentifierNotValid => (0x85, ID_REJECTED),
        C::BadUserNamePassword => (0x86, BAD_LOGIN),
        C::NotAuthorized => (0x87, NOT_AUTHORIZED),
        C::ServerUnavailable => (0x88, SERVER_UNAVAILABLE),
        C::ServerBusy => (0x89, "server busy"),
        C::Banned => (0x8A, "banned"),
        C::BadAuthenticationMethod => (0x8C, "bad authentication method"),
        C::TopicNameInvalid => (0x90, "topic name invalid"),
        C::PacketTooLarge => (0x95, "packet too large"),
        C::QuotaExceeded => (0x97, "quota exceeded"),
        C::PayloadFormatInvalid => (0x99, "payload format invalid"),
        C::RetainNotSupported => (
            0x9A,
            "retain not supported (drop `retain=true`; `status_topic` needs retain too)",
        ),
        C::QoSNotSupported => (0x9B, "QoS not supported (try a lower `qos=`)"),
        C::UseAnotherServer => (0x9C, "use another server"),
        C::ServerMoved => (0x9D, "server moved"),
        C::ConnectionRateExceeded => (0x9F, "connection rate exceeded"),
    };
    format!("CONNACK reason code {n:#04x}, {what}")
}

/// A connection closed during the handshake is how rumqttd (and some others) refuse credentials or a
/// client id: say so instead of only "connection closed".
fn explain_connect_failure(error: String) -> String {
    let lower = error.to_ascii_lowercase();
    if ["closed", "eof", "reset", "aborted"]
        .iter()
        .any(|w| lower.contains(w))
    {
        format!("connection closed before CONNACK (the broker may have refused the credentials or client id): {error}")
    } else {
        error
    }
}

/// Exponential backoff with jitter: 100 ms doubling to 10 s, each delay drawn from [d/2, d].
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1u32 << attempt.min(7));
    let cap = base.min(Duration::from_secs(10));
    let ms = cap.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

/// The MQTT client plus the handle on its event-loop task.
pub struct Sink {
    client: Client,
    gate: Arc<Mutex<Gate>>,
    events: mpsc::UnboundedReceiver<SinkEvent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    qos: u8,
    retain: bool,
    /// MQTT 5: `user_properties=true`.
    user_properties: bool,
    /// MQTT 5: `message_expiry=` in seconds.
    message_expiry: Option<u32>,
    capacity: usize,
    /// Kept alive as long as the client (3.1 only).
    _shim: Option<Arc<Mqtt31Shim>>,
}

impl Sink {
    /// Creates the client and starts its event loop (connecting in the background). Fails only on
    /// unusable TLS settings or when the MQTT 3.1 shim cannot open its local socket.
    pub fn start(target: &TargetDsn) -> Result<Sink, SinkError> {
        // Room for the whole window plus control packets; the run loop never hands more than `capacity`.
        let capacity = (target.inflight as usize).max(100);
        let tls = target.tls.as_ref().map(crate::tls::client_config).transpose()?;
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(target.tcp_nodelay);
        net.set_connection_timeout(CONNECTION_TIMEOUT_SECS);
        let direct = || match &tls {
            Some(config) => {
                rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(config.clone()))
            }
            None => rumqttc::Transport::tcp(),
        };
        let mut shim = None;
        let (client, eventloop) = match target.version {
            MqttVersion::V31 | MqttVersion::V311 => {
                let mut o = if target.version == MqttVersion::V31 {
                    let upstream = match &tls {
                        Some(config) => Upstream::tls(&target.host, target.port, config.clone()),
                        None => Upstream::tcp(&target.host, target.port),
                    };
                    let s = Mqtt31Shim::start(
                        upstream
                            .nodelay(target.tcp_nodelay)
                            .connect_timeout(SHIM_UPSTREAM_TIMEOUT),
                    )?;
                    let o = s.mqtt_options(&target.client_id)?;
                    shim = Some(Arc::new(s));
                    o
                } else {
                    let mut o = rumqttc::MqttOptions::new(&target.client_id, &target.host, target.port);
                    o.set_transport(direct());
                    o
                };
                o.set_keep_alive(target.keep_alive)
                    .set_clean_session(target.clean_session)
                    .set_inflight(target.inflight)
                    .set_max_packet_size(target.max_packet_size, target.max_packet_size);
                if let Some(status) = &target.status {
                    o.set_last_will(rumqttc::LastWill::new(
                        &status.topic,
                        status.offline.as_bytes(),
                        rumqttc::QoS::AtLeastOnce,
                        true,
                    ));
                }
                if let Some(user) = &target.user {
                    o.set_credentials(user, target.password.clone().unwrap_or_default());
                }
                let (c, mut el) = rumqttc::AsyncClient::new(o, capacity + 16);
                el.set_network_options(net);
                (Client::V4(c), AnyLoop::V4(el))
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(&target.client_id, &target.host, target.port);
                o.set_keep_alive(target.keep_alive)
                    .set_clean_start(target.clean_session)
                    .set_max_packet_size(Some(target.max_packet_size as u32))
                    .set_outgoing_inflight_upper_limit(target.inflight)
                    .set_transport(direct())
                    .set_network_options(net);
                if let Some(status) = &target.status {
                    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        &status.topic,
                        status.offline.as_bytes(),
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        None,
                    ));
                }
                if let Some(user) = &target.user {
                    o.set_credentials(user, target.password.clone().unwrap_or_default());
                }
                let (c, el) = rumqttc::v5::AsyncClient::new(o, capacity + 16);
                (Client::V5(c), AnyLoop::V5(el))
            }
        };
        let gate = Arc::new(Mutex::new(Gate::default()));
        let (tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        // 3.1 has no session-present flag: for a persistent session the shim reports it present
        // (`mqtt31::mark_session_present`), so rumqttc re-sends its own flows and the ledger does not.
        let task = tokio::spawn(drive(eventloop, gate.clone(), tx, stop_rx, shim.clone()));
        Ok(Sink {
            client,
            gate,
            events,
            stop,
            task,
            qos: target.qos,
            retain: target.retain,
            user_properties: target.user_properties,
            message_expiry: target.message_expiry,
            capacity,
            _shim: shim,
        })
    }

    /// How many publishes may wait in the client's request queue at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The gate, if `session` is the current open session: publishes may be handed to the client
    /// through the returned [`Handoff`] until it is dropped (the event loop cannot close the gate
    /// meanwhile). `None`: the gate is closed (connection lost or not yet acknowledged by the run loop);
    /// keep the publishes queued.
    pub fn handoff(&self, session: u64) -> Option<Handoff<'_>> {
        let gate = self.gate.lock().expect("gate lock");
        (gate.open && gate.session == session).then_some(Handoff {
            sink: self,
            _gate: gate,
        })
    }

    /// The next event of the event loop; `None` once it has stopped and everything was read.
    pub async fn next_event(&mut self) -> Option<SinkEvent> {
        self.events.recv().await
    }

    /// Waits for the next event, then takes whatever else is already waiting (up to `max` in all) into
    /// `out`, in order: one wake-up of the run loop per burst of acks instead of one per ack. `false`
    /// once the event loop has stopped and everything was read.
    pub async fn next_events(&mut self, out: &mut Vec<SinkEvent>, max: usize) -> bool {
        let Some(first) = self.events.recv().await else {
            return false;
        };
        out.push(first);
        while out.len() < max {
            match self.events.try_recv() {
                Ok(ev) => out.push(ev),
                Err(_) => break,
            }
        }
        true
    }

    /// Sends DISCONNECT (when connected) and waits up to `timeout` for the event loop to end.
    pub async fn shutdown(mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        let _ = match &self.client {
            Client::V4(c) => c.try_disconnect().map_err(|_| ()),
            Client::V5(c) => c.try_disconnect().map_err(|_| ()),
        };
        let wait = async {
            while let Some(ev) = self.events.recv().await {
                if ev == SinkEvent::Stopped {
                    break;
                }
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            tracing::warn!("MQTT event loop did not stop within {timeout:?}; aborting it");
        }
        self.task.abort();
    }
}

/// Publishes handed to the client under one look at the gate (see [`Sink::handoff`]).
pub struct Handoff<'a> {
    sink: &'a Sink,
    _gate: std::sync::MutexGuard<'a, Gate>,
}

impl Handoff<'_> {
    /// Hands a row's (meta event's, dead letter's) publish to the client: the target's QoS and retain
    /// flag; under MQTT 5 a JSON payload with the target's expiry and, with `user_properties=true`, the
    /// `origin` as user properties.
    pub fn publish(&self, topic: &str, payload: &Bytes, origin: Option<&Origin>) -> Result<(), SinkError> {
        let s = self.sink;
        self.send(topic, payload, s.qos, s.retain, || {
            props::row_properties(origin, s.user_properties, s.message_expiry)
        })
    }

    /// Hands the bridge's status to the client: QoS 1 and retained, whatever the rows use.
    pub fn publish_status(&self, topic: &str, payload: &Bytes) -> Result<(), SinkError> {
        self.send(topic, payload, 1, true, || {
            rumqttc::v5::mqttbytes::v5::PublishProperties {
                payload_format_indicator: Some(1),
                ..Default::default()
            }
        })
    }

    /// Hands an event of the bridge (`<status_topic>/events`) to the client: QoS 1, not retained.
    pub fn publish_event(&self, topic: &str, payload: &Bytes) -> Result<(), SinkError> {
        self.send(topic, payload, 1, false, || {
            props::row_properties(None, false, None)
        })
    }

    fn send(
        &self,
        topic: &str,
        payload: &Bytes,
        qos: u8,
        retain: bool,
        v5_properties: impl FnOnce() -> rumqttc::v5::mqttbytes::v5::PublishProperties,
    ) -> Result<(), SinkError> {
        let qos = match qos {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        };
        let handed = match &self.sink.client {
            // `publish_bytes` shares the payload (`try_publish` copies it, and the topic twice). The request
            // queue has room by construction (the run loop hands at most `capacity`), so the send completes
            // on its first poll; a full queue would leave it pending, and it is then dropped unsent.
            Client::V4(c) => c
                .publish_bytes(topic, qos, retain, payload.clone())
                .now_or_never()
                .is_some_and(|r| r.is_ok()),
            Client::V5(c) => {
                use rumqttc::v5::mqttbytes::QoS as Q5;
                let qos = match qos {
                    rumqttc::QoS::AtMostOnce => Q5::AtMostOnce,
                    rumqttc::QoS::AtLeastOnce => Q5::AtLeastOnce,
                    rumqttc::QoS::ExactlyOnce => Q5::ExactlyOnce,
                };
                c.try_publish_with_properties(topic, qos, retain, payload.clone(), v5_properties())
                    .is_ok()
            }
        };
        // A refusal means the loop is gone (the queue has room, and topics are checked when rendered).
        if handed {
            Ok(())
        } else {
            Err(SinkError::Stopped)
        }
    }
}

async fn drive(
    mut el: AnyLoop,
    gate: Arc<Mutex<Gate>>,
    tx: mpsc::UnboundedSender<SinkEvent>,
    mut stop: watch::Receiver<bool>,
    shim: Option<Arc<Mqtt31Shim>>,
) {
    let mut attempt = 0u32;
    let mut session = 0u64;
    let mut connected = false;
    let mut sent = Sent::default();
    let mut resends = Resends::default();
    loop {
        // rumqttc's poll runs to its end, but for a held session whose re-sent flows stopped ending: then the
        // connection is dropped below (its state goes with it) and the flows are sent again on a new one.
        let polled = match resends.give_up_at() {
            Some(at) => tokio::select! {
                biased;
                polled = el.poll() => polled,
                _ = tokio::time::sleep_until(at.into()) => Err(PollError::Retry(format!(
                    "no answer to the re-sent flows for {:?}; reconnecting to send them again",
                    resends::PATIENCE
                ))),
            },
            None => el.poll().await,
        };
        match polled {
            Ok(Polled::ConnAck { session_present }) => {
                connected = true;
                attempt = 0;
                session += 1;
                tracing::info!(session, session_present, "connected to MQTT broker");
                match resends.connected(session_present, std::time::Instant::now()) {
                    Some(present) => open_session(&gate, &tx, session, present),
                    None => {
                        tracing::info!(n = resends.open(), "waiting for the re-sent flows to complete")
                    }
                }
            }
            Ok(Polled::SentDisconnect) => break,
            Ok(polled) => {
                let opens = match polled {
                    Polled::Outgoing(pkid) => {
                        sent.saw(pkid);
                        None
                    }
                    Polled::Acked(p) | Polled::Completed(p) | Polled::Rejected(p, _) => {
                        resends.ended(p, std::time::Instant::now())
                    }
                    _ => None,
                };
                // The event first: it belongs to the session's re-sends.
                if let Some(ev) = polled.into_packet_event() {
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
                if let Some(present) = opens {
                    open_session(&gate, &tx, session, present);
                }
            }
            Err(PollError::Done) => break,
            Err(err) => {
                // Taken first: a PUBLISH among them counts for the order of the re-sends.
                let stale = el.take_stale_events();
                for p in &stale {
                    if let Polled::Outgoing(pkid) = p {
                        sent.saw(*pkid);
                    }
                }
                {
                    let mut g = gate.lock().expect("gate lock");
                    g.open = false;
                    resends.lost(el.clean(sent));
                }
                for ev in stale.into_iter().filter_map(Polled::into_packet_event) {
                    let _ = tx.send(ev);
                }
                // Through the shim rumqttc sees only a closed socket; the shim knows why.
                let cause = shim.as_ref().and_then(|s| s.take_error());
                let err = match (err, cause) {
                    (PollError::Retry(_), Some(Mqtt31Error::Tls { source, addr }))
                        if crate::tls::is_certificate_rejection(&source) =>
                    {
                        let cause = Mqtt31Error::Tls { source, addr };
                        PollError::Untrusted(one_line(&cause.to_string()))
                    }
                    (PollError::Retry(_), Some(cause)) => PollError::Retry(one_line(&cause.to_string())),
                    (PollError::Retry(error), None) if !connected => {
                        PollError::Retry(explain_connect_failure(error))
                    }
                    (err, _) => err,
                };
                match err {
                    PollError::Refused(code) => {
                        let _ = tx.send(SinkEvent::Refused(code));
                        break;
                    }
                    PollError::Untrusted(error) => {
                        tracing::error!(%error, "the MQTT broker's TLS certificate is not trusted; not retrying");
                        let _ = tx.send(SinkEvent::Untrusted(error));
                        break;
                    }
                    PollError::Retry(error) => {
                        connected = false;
                        let retry_in = backoff(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(%error, ?retry_in, "MQTT connection failed");
                        let _ = tx.send(SinkEvent::Disconnected { error, retry_in });
                        if *stop.borrow() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(retry_in) => {}
                            _ = stop.changed() => break,
                        }
                    }
                    PollError::Done => unreachable!("handled above"),
                }
            }
        }
    }
    let _ = tx.send(SinkEvent::Stopped);
}

/// Opens the gate for `session`, then reports it. The run loop still publishes only after it has seen the
/// event (it passes the session it knows, and the gate wants this one); reporting first let it try before
/// the gate opened, give up, and wait for an event that never came, with its queue unsent.
fn open_session(
    gate: &Mutex<Gate>,
    tx: &mpsc::UnboundedSender<SinkEvent>,
    session: u64,
    session_present: bool,
) {
    {
        let mut g = gate.lock().expect("gate lock");
        g.open = true;
        g.session = session;
    }
    let _ = tx.send(SinkEvent::Connected {
        session,
        session_present,
    });
}

#[cfg(test)]
mod tests;
