//! An MQTT broker embedded in the test process: rumqttd 0.20 with a working router configuration,
//! one MQTT 3.1.1 ("v4") and one MQTT 5.0 ("v5") listener on loopback ports, optional
//! username/password, and a stop/restart that a fault injector can use.
//!
//! How it is built, and why:
//! - rumqttd's `Broker::start` blocks forever and has no shutdown API, so we do not use it. Each
//!   listener runs rumqttd's public `Server` on **its own thread with its own tokio runtime**; stopping
//!   drops that runtime, which cancels the accept loop and every connection task (clients see their
//!   socket closed). `restart` starts a **fresh router** on the same ports: like a broker restart
//!   without persistence, every session, subscription, retained message and queued message is lost.
//! - `Server::start` binds its address itself and does not report the bound port, so a port-0 request
//!   is resolved by binding 127.0.0.1:0, reading the port and releasing it before rumqttd binds it
//!   (a small race, retried with a new port if rumqttd's bind fails).
//! - The router of a stopped incarnation cannot be stopped (its thread holds its own sender and blocks
//!   on its channel forever): each restart leaves one parked thread and that router's in-memory log
//!   until the process exits.
//!
//! rumqttd's deviations that tests must know (see `mqtt-crates-notes.md`):
//! - it delivers at the **subscription's** QoS, not min(publish QoS, granted QoS): a QoS 1 publish
//!   reaches a QoS 2 subscriber at QoS 2;
//! - MQTT 3.1 (`MQIsdp`) is not spoken, and each listener speaks exactly one protocol version;
//! - a 5.0 PUBLISH that carries properties, routed to a 3.1.1 subscriber, panics that subscriber's
//!   connection task (`unreachable!` in rumqttd's v4 writer): the subscriber is disconnected and the
//!   message lost. Subscribe with the publisher's protocol version;
//! - wrong credentials drop the connection **before any CONNACK** (no return code 4/5); this module
//!   counts those rejections ([`EmbeddedBroker::auth_failures`]) so a test can still see them;
//! - keep-alive 0 is rejected; outgoing inflight is fixed at 100; sessions live in memory only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// MQTT protocol version of a listener or a client: the one type the simulator and the harness share.
/// Spelled as an `mqtt://` DSN's `version` parameter (`3.1.1`, `5.0`) in text and in scenario files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (rumqttd calls it v4).
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.0.
    #[serde(rename = "5.0")]
    V5,
}

impl MqttVersion {
    /// The value of the `version` parameter of an `mqtt://` DSN (as taosx spells it).
    pub fn dsn_value(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5.0",
        }
    }
}

impl std::str::FromStr for MqttVersion {
    type Err = String;

    /// `3.1.1` or `4`, `5.0` or `5`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "3.1.1" | "4" => Ok(MqttVersion::V311),
            "5.0" | "5" => Ok(MqttVersion::V5),
            other => Err(format!(
                "`{other}` is not 3.1.1 or 5.0 (MQTT 3.1 is not supported by rumqttd)"
            )),
        }
    }
}

/// Username and password every client must present.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What to start. `Default` gives both listeners on free loopback ports and no authentication.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// MQTT 3.1.1 listener (port 0 = a free port); `None` = no v4 listener.
    pub v4_listen: Option<SocketAddr>,
    /// MQTT 5.0 listener (port 0 = a free port); `None` = no v5 listener.
    pub v5_listen: Option<SocketAddr>,
    pub credentials: Option<Credentials>,
    /// Largest accepted PUBLISH payload; bigger packets close the connection.
    pub max_payload_size: usize,
    /// Incoming inflight window per connection.
    pub max_inflight_count: usize,
    /// How long `start`/`restart` wait for a listener to accept an MQTT connection.
    pub ready_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        BrokerConfig {
            v4_listen: Some(loopback),
            v5_listen: Some(loopback),
            credentials: None,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            ready_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker configuration has no listener (give a v4 or a v5 address)")]
    NoListener,
    #[error("cannot reserve a port on {addr}: {source}")]
    Reserve {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{version:?} listener on {addr} failed: {reason}")]
    Listener {
        version: MqttVersion,
        addr: SocketAddr,
        reason: String,
    },
    #[error("{version:?} listener on {addr} did not accept an MQTT connection within {timeout:?}: {last}")]
    NotReady {
        version: MqttVersion,
        addr: SocketAddr,
        timeout: Duration,
        last: String,
    },
    #[error("cannot start a listener thread: {0}")]
    Thread(std::io::Error),
}

/// A running (or stopped) rumqttd. Dropping it stops the listeners.
pub struct EmbeddedBroker {
    config: BrokerConfig,
    v4_addr: Option<SocketAddr>,
    v5_addr: Option<SocketAddr>,
    listeners: Vec<ListenerHandle>,
    auth_failures: Arc<AtomicU64>,
    incarnation: u64,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("v4_addr", &self.v4_addr)
            .field("v5_addr", &self.v5_addr)
            .field("running", &self.is_running())
            .field("incarnation", &self.incarnation)
            .finish()
    }
}

/// How long a restart keeps trying to bind the previous incarnation's port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

impl EmbeddedBroker {
    /// Starts the router and the listeners, and returns once every listener completed an MQTT
    /// handshake (or fails after `config.ready_timeout`).
    pub async fn start(config: BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
        if config.v4_listen.is_none() && config.v5_listen.is_none() {
            return Err(BrokerError::NoListener);
        }
        let mut broker = EmbeddedBroker {
            config,
            v4_addr: None,
            v5_addr: None,
            listeners: Vec::new(),
            auth_failures: Arc::new(AtomicU64::new(0)),
            incarnation: 0,
        };
        broker.launch(true).await?;
        Ok(broker)
    }

    /// Address of the MQTT 3.1.1 listener.
    pub fn v4_addr(&self) -> Option<SocketAddr> {
        self.v4_addr
    }

    /// Address of the MQTT 5.0 listener.
    pub fn v5_addr(&self) -> Option<SocketAddr> {
        self.v5_addr
    }

    /// Address of the listener for `version`.
    pub fn addr(&self, version: MqttVersion) -> Option<SocketAddr> {
        match version {
            MqttVersion::V311 => self.v4_addr,
            MqttVersion::V5 => self.v5_addr,
        }
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.config.credentials.as_ref()
    }

    /// `mqtt://[user:password@]host:port?version=…` for the listener of `version`: the base of a
    /// `tmq2mqtt run -t` DSN (append `&topic=…&qos=…&client_id=…`). Contains the password: log
    /// [`EmbeddedBroker::redacted_url`] instead.
    pub fn url(&self, version: MqttVersion) -> Option<String> {
        self.url_with(version, false)
    }

    /// Like [`EmbeddedBroker::url`] with the password replaced by `***`.
    pub fn redacted_url(&self, version: MqttVersion) -> Option<String> {
        self.url_with(version, true)
    }

    fn url_with(&self, version: MqttVersion, redact: bool) -> Option<String> {
        let addr = self.addr(version)?;
        let auth = match &self.config.credentials {
            Some(c) => {
                let password = if redact {
                    "***".to_string()
                } else {
                    url_escape(&c.password)
                };
                format!("{}:{password}@", url_escape(&c.username))
            }
            None => String::new(),
        };
        Some(format!("mqtt://{auth}{addr}?version={}", version.dsn_value()))
    }

    /// How many connections were refused for bad or missing credentials (rumqttd drops them
    /// silently, before CONNACK).
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    /// Whether the listeners run (false after [`EmbeddedBroker::stop`]).
    pub fn is_running(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// How many times the broker was (re)started; 1 after `start`.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Closes the listeners and every client connection, and waits until the ports are released.
    /// Sessions are gone for good: a later [`EmbeddedBroker::restart`] starts with an empty router.
    pub async fn stop(&mut self) {
        let listeners = std::mem::take(&mut self.listeners);
        for listener in &listeners {
            listener.signal_stop();
        }
        for listener in listeners {
            listener.join().await;
        }
        tracing::info!(incarnation = self.incarnation, "embedded broker stopped");
    }

    /// Stops (if running) and starts again on the same ports with a fresh router — a broker restart
    /// without persistence. Returns once the listeners accept connections again.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop().await;
        self.launch(false).await
    }

    /// Starts a router and the listeners. On the first start, ports asked as 0 are chosen here;
    /// on a restart the ports of the first start are reused.
    async fn launch(&mut self, first: bool) -> Result<(), BrokerError> {
        let router_tx = Router::new(0, router_config()).spawn();
        self.incarnation += 1;
        let wanted = [
            (MqttVersion::V311, self.config.v4_listen, self.v4_addr),
            (MqttVersion::V5, self.config.v5_listen, self.v5_addr),
        ];
        for (version, listen, previous) in wanted {
            let Some(listen) = listen else { continue };
            // A port the OS picked may be taken by someone else between reservation and rumqttd's
            // bind: pick another one a few times. A fixed or previously used port gets one try
            // (`stop` returns only after the old listener socket is closed, and tokio binds with
            // SO_REUSEADDR, so a restart finds its port free).
            // On a restart the kernel may still hold the old port for a moment (a connection of the
            // previous incarnation being torn down): retry the same port until a deadline.
            let attempts = if first && listen.port() == 0 { 5 } else { 1 };
            let rebind_deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
            let mut last_error = None;
            let mut attempt = 0;
            while attempt < attempts {
                attempt += 1;
                let addr = match previous {
                    Some(addr) => addr,
                    None if listen.port() == 0 => reserve_port(listen)?,
                    None => listen,
                };
                let settings = self.server_settings(version, addr);
                let name = format!("mqtt-{}", settings.name);
                let server = match version {
                    MqttVersion::V311 => AnyServer::V4(Server::new(settings, router_tx.clone(), V4)),
                    MqttVersion::V5 => AnyServer::V5(Server::new(settings, router_tx.clone(), V5)),
                };
                let handle = ListenerHandle::spawn(server, name)?;
                match self.ready(version, addr, &handle).await {
                    // The probe stays connected until the listener stops (its task then ends).
                    Ok(_probe) => {
                        match version {
                            MqttVersion::V311 => self.v4_addr = Some(addr),
                            MqttVersion::V5 => self.v5_addr = Some(addr),
                        }
                        self.listeners.push(handle);
                        last_error = None;
                        break;
                    }
                    Err(error) => {
                        handle.signal_stop();
                        handle.join().await;
                        let in_use = matches!(&error, BrokerError::Listener { reason, .. }
                            if reason.contains("Address already in use"));
                        if in_use && previous.is_some() && tokio::time::Instant::now() < rebind_deadline {
                            attempt -= 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        last_error = Some(error);
                    }
                }
            }
            if let Some(error) = last_error {
                self.stop().await;
                return Err(error);
            }
        }
        tracing::info!(
            v4 = ?self.v4_addr,
            v5 = ?self.v5_addr,
            incarnation = self.incarnation,
            "embedded broker ready"
        );
        Ok(())
    }

    fn server_settings(&self, version: MqttVersion, addr: SocketAddr) -> ServerSettings {
        let mut connections = ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: self.config.max_payload_size,
            max_inflight_count: self.config.max_inflight_count,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        if let Some(credentials) = self.config.credentials.clone() {
            let failures = self.auth_failures.clone();
            // An auth handler rather than rumqttd's `auth` map, so that rejections can be counted.
            connections.set_auth_handler(move |client_id, username, password| {
                let ok = username == credentials.username && password == credentials.password;
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%client_id, %username, "embedded broker refused bad credentials");
                }
                std::future::ready(ok)
            });
        }
        ServerSettings {
            name: format!("{version:?}-{}", addr.port()),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        }
    }

    /// Polls until an MQTT handshake with the listener succeeds, the listener fails, or the deadline.
    async fn ready(
        &self,
        version: MqttVersion,
        addr: SocketAddr,
        handle: &ListenerHandle,
    ) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
        let timeout = self.config.ready_timeout;
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        loop {
            if let Some(reason) = handle.failure() {
                return Err(BrokerError::Listener {
                    version,
                    addr,
                    reason,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BrokerError::NotReady {
                    version,
                    addr,
                    timeout,
                    last,
                });
            }
            let attempt = left.min(Duration::from_secs(2));
            match hold_probe(version, addr, self.config.credentials.as_ref(), attempt).await {
                // Another broker may have taken the reserved port between reservation and our bind, and
                // answered the probe: our own listener must not have failed by the time the probe succeeds.
                Ok(probe) => match handle.failure() {
                    Some(reason) => {
                        probe.abort();
                        return Err(BrokerError::Listener {
                            version,
                            addr,
                            reason,
                        });
                    }
                    None => return Ok(probe),
                },
                Err(error) => last = error,
            }
            // Not a synchronisation sleep: the pause between connection attempts of a poll loop.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.signal_stop();
        }
    }
}

/// The router values of rumqttd's sample `rumqttd.toml` (`RouterConfig::default()` is all zeros and
/// never answers a CONNECT).
fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 10010,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

/// Binds `addr` (port 0) to learn a free port, then releases it for rumqttd.
fn reserve_port(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| BrokerError::Reserve { addr, source })?;
    listener
        .local_addr()
        .map_err(|source| BrokerError::Reserve { addr, source })
}

/// rumqttd's server for one protocol version (the router channel's type is not nameable outside
/// rumqttd, so servers are built where the router sender is at hand and moved to their thread).
enum AnyServer {
    V4(Server<V4>),
    V5(Server<V5>),
}

/// One listener thread: rumqttd's `Server` on a current-thread runtime owned by that thread.
struct ListenerHandle {
    stop: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
    /// Filled by the thread when `Server::start` returned (it only returns on error).
    failed: Arc<parking_lot::Mutex<Option<String>>>,
    /// Resolves once the thread dropped its runtime (sockets closed).
    done: oneshot::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl ListenerHandle {
    fn spawn(server: AnyServer, name: String) -> Result<ListenerHandle, BrokerError> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let failed = Arc::new(parking_lot::Mutex::new(None));
        let failed_in_thread = failed.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        *failed_in_thread.lock() = Some(format!("cannot build a runtime: {error}"));
                        let _ = done_tx.send(());
                        return;
                    }
                };
                runtime.block_on(async {
                    let result = match server {
                        AnyServer::V4(mut server) => tokio::select! {
                            r = server.start(LinkType::Remote) => Some(r),
                            _ = stop_rx => None,
                        },
                        AnyServer::V5(mut server) => tokio::select! {
                            r = server.start(LinkType::Remote) => Some(r),
                            _ = stop_rx => None,
                        },
                    };
                    if let Some(result) = result {
                        let reason = match result {
                            Ok(()) => "server stopped".to_string(),
                            Err(error) => error.to_string(),
                        };
                        *failed_in_thread.lock() = Some(reason);
                    }
                });
                // Dropping the runtime cancels the accept loop and all connection tasks, closing
                // their sockets.
                drop(runtime);
                let _ = done_tx.send(());
            })
            .map_err(BrokerError::Thread)?;
        Ok(ListenerHandle {
            stop: parking_lot::Mutex::new(Some(stop_tx)),
            failed,
            done: done_rx,
            thread: Some(thread),
        })
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    fn signal_stop(&self) {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
    }

    async fn join(mut self) {
        let _ = (&mut self.done).await;
        if let Some(thread) = self.thread.take() {
            // The thread has signalled `done`; it ends right after.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// One MQTT CONNECT/CONNACK exchange with rumqttc; `Err` carries why it failed.
pub async fn handshake(
    version: MqttVersion,
    addr: SocketAddr,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<(), String> {
    connect_probe(version, addr, credentials, timeout, false)
        .await
        .map(|_| ())
}

/// Connects like [`handshake`] and keeps the connection open in a task until the broker closes it.
/// The readiness probe stays connected: rumqttd reuses connection ids, and a probe that disconnects
/// right away is cleaned up by the router late enough to tear down the next client that got its id
/// ("no-connection id 0 is already gone", then a fresh subscriber's connection aborted).
async fn hold_probe(
    version: MqttVersion,
    addr: SocketAddr,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<tokio::task::JoinHandle<()>, String> {
    connect_probe(version, addr, credentials, timeout, true)
        .await
        .map(|h| h.expect("hold returns the task"))
}

async fn connect_probe(
    version: MqttVersion,
    addr: SocketAddr,
    credentials: Option<&Credentials>,
    timeout: Duration,
    hold: bool,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let client_id = format!(
        "simulator-probe-{}-{}-{}",
        std::process::id(),
        version.dsn_value(),
        addr.port()
    );
    let mut probe = Probe::connect(version, addr, client_id, credentials);
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            if let Some(connack) = probe.next_connack().await? {
                return connack;
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no CONNACK within {timeout:?}")));
    outcome?;
    if hold {
        return Ok(Some(tokio::spawn(async move { while probe.poll_ok().await {} })));
    }
    probe.disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), probe.poll_ok()).await;
    Ok(None)
}

/// The probe's 3.1.1 or 5.0 client.
#[allow(clippy::large_enum_variant)] // short-lived, one at a time
enum Probe {
    V4(rumqttc::AsyncClient, rumqttc::EventLoop),
    V5(rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop),
}

impl Probe {
    fn connect(
        version: MqttVersion,
        addr: SocketAddr,
        client_id: String,
        credentials: Option<&Credentials>,
    ) -> Probe {
        let (host, port) = (addr.ip().to_string(), addr.port());
        match version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(client_id, host, port);
                if let Some(c) = credentials {
                    o.set_credentials(c.username.clone(), c.password.clone());
                }
                let (client, el) = rumqttc::AsyncClient::new(o, 1);
                Probe::V4(client, el)
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(client_id, host, port);
                if let Some(c) = credentials {
                    o.set_credentials(c.username.clone(), c.password.clone());
                }
                let (client, el) = rumqttc::v5::AsyncClient::new(o, 1);
                Probe::V5(client, el)
            }
        }
    }

    /// The next event: `Ok(Some(accepted or refused))` for a CONNACK, `Ok(None)` for anything else.
    async fn next_connack(&mut self) -> Result<Option<Result<(), String>>, String> {
        match self {
            Probe::V4(_, el) => match el.poll().await.map_err(|e| e.to_string())? {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) => Ok(Some(
                    (ack.code == rumqttc::ConnectReturnCode::Success)
                        .then_some(())
                        .ok_or_else(|| format!("CONNACK {:?}", ack.code)),
                )),
                _ => Ok(None),
            },
            Probe::V5(_, el) => {
                use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
                match el.poll().await.map_err(|e| e.to_string())? {
                    rumqttc::v5::Event::Incoming(Packet::ConnAck(ack)) => Ok(Some(
                        (ack.code == ConnectReturnCode::Success)
                            .then_some(())
                            .ok_or_else(|| format!("CONNACK {:?}", ack.code)),
                    )),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Polls once; `false` once the connection failed.
    async fn poll_ok(&mut self) -> bool {
        match self {
            Probe::V4(_, el) => el.poll().await.is_ok(),
            Probe::V5(_, el) => el.poll().await.is_ok(),
        }
    }

    fn disconnect(&self) {
        match self {
            Probe::V4(c, _) => {
                let _ = c.try_disconnect();
            }
            Probe::V5(c, _) => {
                let _ = c.try_disconnect();
            }
        }
    }
}

/// Percent-encodes the characters that would break the authority part of a URL.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_versions_read_and_write_as_dsn_values() {
        for (text, v) in [
            ("3.1.1", MqttVersion::V311),
            ("4", MqttVersion::V311),
            ("5", MqttVersion::V5),
        ] {
            assert_eq!(text.parse::<MqttVersion>(), Ok(v));
        }
        assert!("3.1"
            .parse::<MqttVersion>()
            .unwrap_err()
            .contains("not supported"));
        assert_eq!(serde_json::to_string(&MqttVersion::V5).unwrap(), "\"5.0\"");
        let v: MqttVersion = serde_json::from_str("\"3.1.1\"").unwrap();
        assert_eq!((v, v.dsn_value()), (MqttVersion::default(), "3.1.1"));
    }

    #[test]
    fn url_escapes_credentials() {
        assert_eq!(url_escape("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(url_escape("plain-1.2_~"), "plain-1.2_~");
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn router_config_is_not_the_zero_default() {
        let c = router_config();
        assert!(c.max_connections > 0 && c.max_segment_size >= 1024);
    }
}
