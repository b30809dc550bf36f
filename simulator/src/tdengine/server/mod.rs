//! The stand-in's WebSocket server: accepts TCP connections (optionally TLS, see [`tls`]), routes by
//! request path (`/ws`, `/rest/ws` → SQL [`session`]; `/rest/tmq` → [`crate::tdengine::tmq::serve_connection`];
//! anything else → 404), and stops gracefully on [`TdServer::shutdown`] or drop.

mod ack;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::error::refusal;
use super::faults::Faults;
use super::store::Store;
pub use super::store::DEFAULT_SERVER_VERSION;
use super::tmq::{StoreBackend, Tmq, TmqConfig};
pub use ack::AckStream;
use session::{Reply, SqlSession};
pub use tls::{ServerStream, TdTls};

/// Default [`TdConfig::max_message_size`]: 64 MiB, far above any request the official client sends
/// (SQL text and binary query frames) and far below what would hurt the test machine.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Initial size of a connection's WebSocket read buffer (tungstenite's default is 128 KiB, zero-filled
/// before every read).
const READ_BUFFER_SIZE: usize = 4096;

/// How a stand-in presents itself.
#[derive(Debug, Clone)]
pub struct TdConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The version reported to clients; ≥ 3.3.0.8 switches the 0.12.3 client to binary SQL.
    pub server_version: String,
    pub user: String,
    pub password: String,
    /// TMQ settings (row cap per message, session timeout, …).
    pub tmq: TmqConfig,
    /// Largest WebSocket message (and frame) a client may send; a bigger one closes the connection
    /// with 1009 (message too big) before it is buffered.
    pub max_message_size: usize,
    /// How long a client may take to finish the TLS handshake and the HTTP upgrade; half-open sockets
    /// are dropped after it.
    pub handshake_timeout: Duration,
    /// Serve `wss://` (TLS with this certificate) instead of `ws://`.
    pub tls: Option<TdTls>,
}

impl Default for TdConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server_version: DEFAULT_SERVER_VERSION.into(),
            user: "root".into(),
            password: "taosdata".into(),
            tmq: TmqConfig::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

impl TdConfig {
    /// A config reporting `version` (e.g. `"3.3.1.0"` for the binary SQL path).
    pub fn with_version(version: &str) -> Self {
        Self {
            server_version: version.into(),
            ..Self::default()
        }
    }

    fn version_parts(&self) -> Option<Vec<u64>> {
        self.server_version.split('.').map(|p| p.parse().ok()).collect()
    }

    /// Rejects versions the official client cannot parse (every dot part must be a number).
    pub fn validate(&self) -> Result<(), String> {
        match self.version_parts() {
            Some(p) if !p.is_empty() => Ok(()),
            _ => Err(format!(
                "server version {:?}: every dot-separated part must be a number (e.g. 3.3.0.0)",
                self.server_version
            )),
        }
    }

    /// Whether the reported version makes clients use binary query/fetch (≥ 3.3.0.8).
    pub fn supports_binary_sql(&self) -> bool {
        self.version_parts().is_some_and(|p| p >= vec![3, 3, 0, 8])
    }
}

/// What every connection handler gets.
#[derive(Clone)]
pub struct ServerCtx {
    pub store: Arc<Store>,
    /// Set when the listener speaks TLS.
    pub tls: Option<tls::Acceptor>,
    pub config: Arc<TdConfig>,
    /// Becomes `true` when the server stops; handlers close their socket.
    pub shutdown: watch::Receiver<bool>,
    /// Bumped by [`TdServer::drop_connections`]: handlers close their socket, storage stays (an adapter
    /// restart as clients see it).
    pub kick: watch::Receiver<u64>,
    /// TMQ state: consumer groups, committed offsets.
    pub tmq: Arc<Tmq>,
    /// Fault hooks (stall replies, fail calls).
    pub faults: Arc<Faults>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running stand-in. Dropping it stops the server (without waiting); [`TdServer::shutdown`] waits.
pub struct TdServer {
    addr: SocketAddr,
    store: Arc<Store>,
    config: Arc<TdConfig>,
    shutdown: watch::Sender<bool>,
    faults: Arc<Faults>,
    tmq: Arc<Tmq>,
    task: Option<JoinHandle<()>>,
}

impl TdServer {
    /// Binds `config.listen` and serves a fresh store.
    pub async fn start(config: TdConfig) -> Result<Self, ServerError> {
        Self::start_with_store(config, Store::new()).await
    }

    /// Binds `config.listen` and serves `store` (e.g. to keep storage across a simulated restart).
    pub async fn start_with_store(config: TdConfig, store: Arc<Store>) -> Result<Self, ServerError> {
        config.validate().map_err(ServerError::Config)?;
        let tls = config
            .tls
            .as_ref()
            .map(tls::Acceptor::new)
            .transpose()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        store.set_server_version(&config.server_version);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let faults = Arc::new(Faults::default());
        let backend = StoreBackend::new(
            store.clone(),
            &config.user,
            &config.password,
            &config.server_version,
        );
        let tmq = Tmq::new(Arc::new(backend), config.tmq.clone(), faults.clone());
        store.set_tmq_info(super::tmq::store_backend::info_provider(&tmq));
        let config = Arc::new(config);
        let ctx = ServerCtx {
            store: store.clone(),
            tls,
            config: config.clone(),
            shutdown: shutdown_rx,
            kick: faults.dropped(),
            tmq: tmq.clone(),
            faults: faults.clone(),
        };
        let task = tokio::spawn(accept_loop(listener, ctx));
        tracing::info!(%addr, version = %config.server_version, tls = config.tls.is_some(), "TDengine stand-in listening");
        Ok(Self {
            addr,
            store,
            config,
            shutdown,
            faults,
            tmq,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://user:password@host:port` (`wss://` with TLS) for `TaosBuilder::from_dsn`.
    pub fn dsn(&self) -> String {
        format!(
            "{}://{}:{}@{}",
            self.scheme(),
            self.config.user,
            self.config.password,
            self.addr
        )
    }

    /// `wss` when the listener speaks TLS, else `ws`.
    pub fn scheme(&self) -> &'static str {
        if self.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &TdConfig {
        &self.config
    }

    /// Closes every open WebSocket connection (SQL and TMQ) while keeping storage, topics, committed
    /// offsets and the listener (an adapter restart as clients see it).
    pub fn drop_connections(&self) {
        self.faults.drop_connections();
    }

    /// Closes the TMQ connection that sends the next reply, right after that reply.
    pub fn close_after_next_reply(&self) {
        self.faults.close_after_next_reply();
    }

    /// See [`Faults::bounce_after_next_message`].
    pub fn bounce_after_next_message(&self) {
        self.faults.bounce_after_next_message();
    }

    /// Holds back every reply (SQL and TMQ) until `duration` from now has passed.
    pub fn stall_replies(&self, duration: std::time::Duration) {
        self.faults.stall_replies(duration);
    }

    /// Makes the next `n` TMQ calls (except `fetch_block`, which must be answered in binary) fail with
    /// TDengine error `code`.
    pub fn fail_next(&self, n: u32, code: i32) {
        self.faults.fail_next(n, code);
    }

    /// The TMQ state (consumer groups, committed offsets).
    pub fn tmq(&self) -> &Arc<Tmq> {
        &self.tmq
    }

    /// Stops accepting, closes every connection, and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TdServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(listener: TcpListener, ctx: ServerCtx) {
    let mut shutdown = ctx.shutdown.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(handle_connection(stream, peer, ctx.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Handlers watch the same signal; wait for them to close their sockets.
    while conns.join_next().await.is_some() {}
    tracing::info!("TDengine stand-in stopped");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Sql,
    Tmq,
}

fn route(path: &str) -> Option<Route> {
    match path.split('?').next().unwrap_or("").trim_end_matches('/') {
        "/ws" | "/rest/ws" => Some(Route::Sql),
        "/rest/tmq" => Some(Route::Tmq),
        _ => None,
    }
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn handle_connection(stream: TcpStream, peer: SocketAddr, ctx: ServerCtx) {
    let mut chosen = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match route(req.uri().path()) {
            Some(r) => {
                chosen = Some(r);
                Ok(resp)
            }
            None => {
                let mut e = ErrorResponse::new(Some(format!("no endpoint {}", req.uri().path())));
                *e.status_mut() = StatusCode::NOT_FOUND;
                Err(e)
            }
        }
    };
    // tungstenite zero-fills its read buffer's spare capacity before every read: keep it small (requests
    // are small; a bigger frame grows the buffer to its size).
    let limits = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_message_size(Some(ctx.config.max_message_size))
        .max_frame_size(Some(ctx.config.max_message_size));
    // The TLS handshake and the upgrade share one deadline: a client stalling in either is dropped.
    let handshake = async {
        let stream = match &ctx.tls {
            None => ServerStream::Plain(AckStream::new(stream)),
            Some(acceptor) => acceptor
                .accept(AckStream::new(stream))
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?,
        };
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(limits))
            .await
            .map_err(|e| format!("websocket handshake failed: {e}"))
    };
    // Shutdown must not wait for a client that never finishes its upgrade.
    let mut shutdown = ctx.shutdown.clone();
    let mut ws = tokio::select! {
        _ = shutdown.wait_for(|s| *s) => return,
        res = tokio::time::timeout(ctx.config.handshake_timeout, handshake) => match res {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "handshake timed out");
                return;
            }
        },
    };
    if let ServerStream::Plain(s) = ws.get_mut() {
        s.track_frames();
    }
    match chosen {
        Some(Route::Sql) => serve_sql(ws, peer, ctx).await,
        Some(Route::Tmq) => super::tmq::serve_connection(ws, ctx.tmq, ctx.shutdown).await,
        None => {}
    }
}

async fn serve_sql(mut ws: WsStream, peer: SocketAddr, ctx: ServerCtx) {
    let mut session = SqlSession::new(ctx.store.clone(), ctx.config.clone());
    let mut shutdown = ctx.shutdown.clone();
    let mut kick = ctx.kick.clone();
    kick.mark_unchanged();
    loop {
        let msg = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = kick.changed() => break,
            msg = ws.next() => msg,
        };
        let reply = match msg {
            Some(Ok(Message::Text(t))) => session.on_text(&t),
            Some(Ok(Message::Binary(b))) => session.on_binary(&b),
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; push it out now.
                if ws.flush().await.is_err() {
                    return;
                }
                None
            }
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(_)) => None,
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "sql connection error");
                if let Some(frame) = refusal(&e) {
                    let _ = ws.send(Message::Close(Some(frame))).await;
                }
                return;
            }
        };
        ctx.faults.stall().await;
        let sent = match reply {
            Some(Reply::Text(t)) => ws.send(Message::text(t)).await,
            Some(Reply::Binary(b)) => ws.send(Message::binary(b)).await,
            None => Ok(()),
        };
        if let Err(e) = sent {
            tracing::debug!(%peer, error = %e, "sql connection send failed");
            return;
        }
    }
    let _ = ws.close(None).await;
}

/// A server-side WebSocket over an [`AckStream`], TLS or not: what connection handlers (SQL and TMQ) get.
pub type WsStream = WebSocketStream<ServerStream>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_versions() {
        assert_eq!(route("/ws"), Some(Route::Sql));
        assert_eq!(route("/rest/ws?x=1"), Some(Route::Sql));
        assert_eq!(route("/rest/tmq"), Some(Route::Tmq));
        assert_eq!(route("/nope"), None);
        assert!(!TdConfig::with_version("3.3.0.0").supports_binary_sql());
        assert!(TdConfig::with_version("3.3.0.8").supports_binary_sql());
        assert!(TdConfig::with_version("3.3.1.0").supports_binary_sql());
        assert!(TdConfig::with_version("3.3.0.0-community").validate().is_err());
    }
}
