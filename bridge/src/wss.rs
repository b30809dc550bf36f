//! TLS towards TDengine for `tmq+wss://` sources.
//!
//! The official client cannot be given a CA: taos-ws 0.12.3 opens its SQL and TMQ connections through
//! ws-tool 0.11, whose rustls 0.20 configuration trusts only the Mozilla roots compiled into
//! webpki-roots 0.22 (late 2022) plus an always-empty list of extra CA files. A TDengine behind a
//! private CA (or a CA newer than that bundle) would be unreachable. So for `tmq+wss://` the bridge
//! makes the TLS connection itself, with the same rustls configuration as `mqtts://` targets
//! ([`crate::tls::client_config`]: `ca` from the DSN, else the system's roots; the server name is
//! always verified), and points the client at a plain `ws://` [`Tunnel`] on 127.0.0.1 that relays each
//! connection through its own verified TLS session.
//!
//! The loopback endpoint carries no secret of its own: the client still authenticates inside the
//! WebSocket, and a local process connecting to it reaches nothing it could not reach directly (which
//! is one reason client certificates, an identity the tunnel would lend out, are refused on the source
//! DSN; the other is that taosAdapter's TLS never asks for one).
//! Why a TLS session failed is kept for the source ([`Tunnel::take_failure`]): the client itself only
//! sees its loopback connection closed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rumqttc::tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig};
use rumqttc::tokio_rustls::TlsConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Why a connection through the tunnel failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelFailure {
    /// The server's certificate did not verify: retrying cannot help.
    #[error("TLS: the certificate of {server} is not trusted ({detail}); trusted: {trusted}")]
    Untrusted {
        server: String,
        detail: String,
        trusted: &'static str,
    },
    /// The TLS handshake failed for another reason (protocol, alert, connection cut).
    #[error("TLS handshake with {server} failed: {detail}")]
    Handshake { server: String, detail: String },
    /// TDengine could not be reached.
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
}

impl TunnelFailure {
    /// Whether retrying cannot fix it: an untrusted certificate stays untrusted.
    pub fn is_fatal(&self) -> bool {
        matches!(self, TunnelFailure::Untrusted { .. })
    }
}

/// Where the tunnel leads and how it verifies.
#[derive(Clone)]
struct Upstream {
    host: String,
    port: u16,
    name: ServerName<'static>,
    connector: TlsConnector,
    trusted: &'static str,
    failure: Arc<Mutex<Option<TunnelFailure>>>,
}

impl Upstream {
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn fail(&self, failure: TunnelFailure) {
        tracing::debug!(error = %failure, "TLS tunnel connection failed");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
    }
}

/// A plain-`ws://` loopback endpoint relaying each connection to TDengine over verified TLS. Dropping
/// it stops accepting; connections already relayed live on until their client or the server closes.
pub struct Tunnel {
    addr: SocketAddr,
    failure: Arc<Mutex<Option<TunnelFailure>>>,
    task: JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The tunnel's rustls configuration is unusable, or its loopback port cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("TLS towards TDengine: {0}")]
    Config(#[from] crate::tls::TlsConfigError),
    #[error("TLS towards TDengine: `{0}` is not a valid server name")]
    Name(String),
    #[error("cannot open the local TLS tunnel: {0}")]
    Bind(std::io::Error),
}

impl Tunnel {
    /// Binds 127.0.0.1 on a free port; connections there are relayed to `host:port` over TLS verified
    /// with `config` (trusting `ca` when given, else the system roots).
    pub async fn start(host: &str, port: u16, ca: Option<&str>) -> Result<Tunnel, TunnelError> {
        let config: Arc<ClientConfig> = crate::tls::client_config(&crate::dsn::TlsOptions {
            ca: ca.map(String::from),
            cert: None,
            cert_key: None,
        })?;
        let name = ServerName::try_from(host.to_string()).map_err(|_| TunnelError::Name(host.into()))?;
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(TunnelError::Bind)?;
        let addr = listener.local_addr().map_err(TunnelError::Bind)?;
        let failure = Arc::new(Mutex::new(None));
        let upstream = Upstream {
            host: host.to_string(),
            port,
            name,
            connector: TlsConnector::from(config),
            trusted: if ca.is_some() {
                "`ca` from the source DSN"
            } else {
                "the system's root certificates (set `ca` to trust a private CA)"
            },
            failure: failure.clone(),
        };
        let task = tokio::spawn(accept_loop(listener, upstream));
        Ok(Tunnel { addr, failure, task })
    }

    /// The loopback address the client connects to with `ws://`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why the latest relayed connection failed, if one did since the last call.
    pub fn take_failure(&self) -> Option<TunnelFailure> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

async fn accept_loop(listener: TcpListener, upstream: Upstream) {
    loop {
        match listener.accept().await {
            // Detached: a relayed connection belongs to its client (a consumer may outlive the
            // tunnel that made it) and ends when either side closes.
            Ok((local, _)) => drop(tokio::spawn(relay(local, upstream.clone()))),
            Err(e) => tracing::warn!(error = %e, "TLS tunnel: accept failed"),
        }
    }
}

/// Connects and verifies, then copies both ways until either side closes. On failure the reason is
/// recorded before the local socket is dropped, so the source finds it when the client reports.
async fn relay(local: TcpStream, upstream: Upstream) {
    let server = upstream.server();
    let tcp = match TcpStream::connect((upstream.host.as_str(), upstream.port)).await {
        Ok(tcp) => tcp,
        Err(e) => {
            return upstream.fail(TunnelFailure::Connect {
                server,
                detail: e.to_string(),
            })
        }
    };
    // Each chunk is flushed as its own TLS record; Nagle would only delay it.
    let _ = tcp.set_nodelay(true);
    let _ = local.set_nodelay(true);
    let tls = match upstream.connector.connect(upstream.name.clone(), tcp).await {
        Ok(tls) => tls,
        Err(e) => return upstream.fail(classify(&e, server, upstream.trusted)),
    };
    let (local_read, local_write) = local.into_split();
    let (tls_read, tls_write) = tokio::io::split(tls);
    tokio::select! {
        _ = client_to_server(local_read, tls_write) => {}
        _ = copy(tls_read, local_write) => {}
    }
}

/// Client → TDengine. The official client writes each WebSocket frame as header + payload without
/// TCP_NODELAY; acknowledging every read at once keeps Nagle from holding the payload back for a
/// delayed ACK (~40 ms per request; see the stand-in's `AckStream`).
async fn client_to_server(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        ack_now(from.as_ref());
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}

async fn copy(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
    }
}

fn ack_now(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// A failed handshake as the user should read it: certificate problems by name.
fn classify(e: &std::io::Error, server: String, trusted: &'static str) -> TunnelFailure {
    if let Some(cert) = crate::tls::certificate_error(e) {
        return TunnelFailure::Untrusted {
            server,
            detail: crate::tls::describe_certificate_error(cert),
            trusted,
        };
    }
    let detail = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    TunnelFailure::Handshake { server, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_untrusted_and_fatal_others_are_not() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let f = classify(
            &io(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            "h:6041".into(),
            "`ca` from the source DSN",
        );
        assert!(f.is_fatal());
        assert_eq!(
            f.to_string(),
            "TLS: the certificate of h:6041 is not trusted (UnknownIssuer: not signed by a trusted CA); \
             trusted: `ca` from the source DSN"
        );
        let f = classify(
            &io(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure,
            )),
            "h:6041".into(),
            "x",
        );
        assert!(!f.is_fatal(), "{f}");
        let f = classify(
            &std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            "h:6041".into(),
            "x",
        );
        assert!(
            f.to_string().starts_with("TLS handshake with h:6041 failed"),
            "{f}"
        );
    }
}
