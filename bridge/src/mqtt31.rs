//! Genuine MQTT 3.1 (protocol name `MQIsdp`, level 3) for a rumqttc client, which speaks only 3.1.1 and 5.0.
//!
//! MQTT 3.1 and 3.1.1 share every packet after CONNECT (3.1's CONNACK simply has no session-present flag,
//! which rumqttc then reads as 0, and its return codes 0–5 are the same). So rather than a second client,
//! a [`Mqtt31Shim`] sits between rumqttc and the broker: rumqttc connects to it over a private Unix socket
//! (`Transport::Unix`, since rumqttc 0.25 has no custom-stream hook), the shim opens a fresh TCP (or TLS)
//! connection to the broker for each of rumqttc's connections, rewrites the one CONNECT packet
//! ([`rewrite_connect`], sans-IO) and then copies bytes both ways. rumqttc's event loop, acks, inflight
//! window and reconnects stay exactly as for 3.1.1. When rumqttc's connection drops the shim closes the
//! broker's at once, so the broker sees a vanished client (and sends its Last Will) exactly then; when the
//! broker closes, rumqttc still reads everything the broker sent before its end of stream.
//!
//! The Unix socket lives in a fresh directory only this user can enter, so no other local user can ride
//! the bridge's connection (which a loopback TCP port would allow).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::tokio_rustls::rustls::pki_types::ServerName;
use rumqttc::tokio_rustls::rustls::ClientConfig;
use rumqttc::tokio_rustls::TlsConnector;
use rumqttc::{MqttOptions, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// MQTT 3.1 limits client identifiers to 23 bytes (3.1.1 lifted it).
pub const MAX_CLIENT_ID_LEN: usize = 23;

/// The largest CONNECT the shim buffers: room for a Will topic, Will message, user name and password of
/// 64 KiB each (MQTT's string limit) beside the 23-byte client id.
pub const MAX_CONNECT_LEN: usize = 5 * 64 * 1024;

/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long rumqttc may take to send its CONNECT after connecting to the shim.
const CONNECT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a 3.1 connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Mqtt31Error {
    /// The client id does not fit MQTT 3.1.
    #[error("MQTT 3.1 client ids are 1 to {MAX_CLIENT_ID_LEN} bytes long, `{id}` has {len}")]
    ClientId { id: String, len: usize },
    /// The client's first packet is not a CONNECT.
    #[error("expected CONNECT as the first packet, got packet type byte {0:#04x}")]
    NotConnect(u8),
    /// The client's CONNECT is not MQTT 3.1.1 (only 3.1.1 is rewritten).
    #[error("expected an MQTT 3.1.1 CONNECT to rewrite, got protocol {name:?} level {level}")]
    NotMqtt311 { name: String, level: u8 },
    /// The CONNECT is truncated or its lengths disagree.
    #[error("malformed CONNECT: {0}")]
    Malformed(&'static str),
    /// The CONNECT exceeds [`MAX_CONNECT_LEN`].
    #[error("CONNECT of {0} bytes exceeds the {MAX_CONNECT_LEN}-byte limit")]
    TooLarge(usize),
    /// The shim's Unix socket could not be created.
    #[error("cannot open the local MQTT 3.1 socket: {0}")]
    Local(#[source] io::Error),
    /// The broker could not be reached.
    #[error("cannot connect to the MQTT broker at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The broker did not answer the TCP or TLS handshake in time.
    #[error("connecting to the MQTT broker at {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The broker's host is not a valid TLS server name.
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    /// The TLS handshake with the broker failed (certificate not trusted, expired, wrong name…).
    #[error("TLS handshake with the MQTT broker at {addr} failed: {source}")]
    Tls {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The client closed or stalled before sending a complete CONNECT.
    #[error("the MQTT client sent no complete CONNECT: {0}")]
    ClientHangup(&'static str),
}

/// Checks a client id against MQTT 3.1's 1–23 byte rule (call it when parsing the configuration).
pub fn validate_client_id(id: &str) -> Result<(), Mqtt31Error> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
        return Err(Mqtt31Error::ClientId {
            id: id.to_string(),
            len: id.len(),
        });
    }
    Ok(())
}

/// Rewrites the MQTT 3.1.1 CONNECT at the start of `buf` into MQTT 3.1: protocol name `MQTT` → `MQIsdp`,
/// level 4 → 3, remaining length + 2; flags, keep-alive and payload are untouched.
///
/// Returns `Ok(None)` while `buf` holds only part of the CONNECT, otherwise the rewritten packet and how
/// many bytes of `buf` it replaced (bytes after them belong to later packets).
pub fn rewrite_connect(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Mqtt31Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != 0x10 {
        return Err(Mqtt31Error::NotConnect(first));
    }
    let Some((remaining, len_bytes)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + len_bytes + remaining;
    if total > MAX_CONNECT_LEN {
        return Err(Mqtt31Error::TooLarge(total));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + len_bytes..total];
    // Variable header: protocol name (u16 length + bytes), level, flags, keep-alive (u16); then the client id.
    if body.len() < 2 {
        return Err(Mqtt31Error::Malformed("no protocol name"));
    }
    let name_len = u16::from_be_bytes([body[0], body[1]]) as usize;
    let Some(name) = body.get(2..2 + name_len) else {
        return Err(Mqtt31Error::Malformed("protocol name longer than the packet"));
    };
    let Some(&level) = body.get(2 + name_len) else {
        return Err(Mqtt31Error::Malformed("no protocol level"));
    };
    if name != b"MQTT" || level != 4 {
        return Err(Mqtt31Error::NotMqtt311 {
            name: String::from_utf8_lossy(name).into_owned(),
            level,
        });
    }
    let rest = &body[7..]; // flags onwards
    let Some(id_len) = rest.get(3..5).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
        return Err(Mqtt31Error::Malformed("no client id"));
    };
    let Some(id) = rest.get(5..5 + id_len) else {
        return Err(Mqtt31Error::Malformed("client id longer than the packet"));
    };
    validate_client_id(&String::from_utf8_lossy(id))?;

    let mut out = Vec::with_capacity(total + 3);
    out.push(0x10);
    encode_remaining_length(remaining + 2, &mut out);
    out.extend_from_slice(&[0, 6]);
    out.extend_from_slice(b"MQIsdp");
    out.push(3);
    out.extend_from_slice(rest);
    Ok(Some((out, total)))
}

/// Whether a CONNECT (as [`rewrite_connect`] wrote it) asks for a persistent session (clean session 0).
pub fn asks_persistent_session(connect31: &[u8]) -> bool {
    let Ok(Some((_, len_bytes))) = decode_remaining_length(connect31.get(1..).unwrap_or_default()) else {
        return false;
    };
    // Fixed header, protocol name (2 + 6), level (1), then the connect flags.
    connect31
        .get(1 + len_bytes + 9)
        .is_some_and(|flags| flags & 0x02 == 0)
}

/// A 3.1 CONNACK has no session-present flag: rumqttc reads 0 and then drops the PUBLISHes and PUBRELs it holds
/// for re-sending, while a broker that keeps persistent sessions (Mosquitto) still holds the other half of
/// those flows. So for a persistent session an accepting CONNACK is passed on with the flag set: rumqttc re-sends
/// its flows with their packet ids, as it does for a 3.1.1 session the broker kept. (A broker that lost the
/// session takes them as new publishes; a PUBREL it does not know is answered with PUBCOMP.)
pub fn mark_session_present(connack: &mut [u8; 4]) {
    if connack[..2] == [0x20, 0x02] && connack[3] == 0 {
        connack[2] |= 0x01;
    }
}

/// Decodes MQTT's variable-length "remaining length": `Ok(None)` if more bytes are needed.
fn decode_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, Mqtt31Error> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(Mqtt31Error::Malformed("remaining length longer than 4 bytes"));
    }
    Ok(None)
}

fn encode_remaining_length(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

/// Where the shim connects: the real broker, over TCP or TLS.
#[derive(Clone)]
pub struct Upstream {
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    nodelay: bool,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr())
            .field("tls", &self.tls.is_some())
            .field("nodelay", &self.nodelay)
            .finish()
    }
}

impl Upstream {
    /// Plain TCP to `host:port`.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: None,
            nodelay: false,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// TLS to `host:port`, verifying the broker's certificate against `config` (the name checked is `host`).
    pub fn tls(host: impl Into<String>, port: u16, config: Arc<ClientConfig>) -> Self {
        Self {
            tls: Some(config),
            ..Self::tcp(host, port)
        }
    }

    /// Sets TCP_NODELAY on the broker connection (the Unix hop has no Nagle delay).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Bounds the TCP connect plus TLS handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port) // an IPv6 literal
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, Mqtt31Error> {
        let addr = self.addr();
        let connect = async {
            let tcp = TcpStream::connect(&addr)
                .await
                .map_err(|source| Mqtt31Error::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            tcp.set_nodelay(self.nodelay)
                .map_err(|source| Mqtt31Error::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let Some(config) = &self.tls else {
                return Ok(Box::new(tcp) as Box<dyn Stream>);
            };
            let name = ServerName::try_from(self.host.clone())
                .map_err(|_| Mqtt31Error::ServerName(self.host.clone()))?;
            let tls = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| Mqtt31Error::Tls {
                    addr: addr.clone(),
                    source,
                })?;
            Ok(Box::new(tls) as Box<dyn Stream>)
        };
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| Mqtt31Error::Timeout {
                addr: addr.clone(),
                timeout: self.connect_timeout,
            })?
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A running MQTT 3.1 shim: hand [`Mqtt31Shim::mqtt_options`] to rumqttc and it speaks 3.1 to the broker.
///
/// Dropping the shim stops accepting new connections; a connection already open lives on until rumqttc or
/// the broker closes it, so a DISCONNECT written just before the drop still reaches the broker.
pub struct Mqtt31Shim {
    socket: PathBuf,
    upstream: String,
    last_error: Arc<Mutex<Option<Mqtt31Error>>>,
    accept: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Mqtt31Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt31Shim")
            .field("socket", &self.socket)
            .field("upstream", &self.upstream)
            .finish()
    }
}

impl Mqtt31Shim {
    /// Opens the private Unix socket and starts accepting rumqttc's connections (must run inside tokio).
    pub fn start(upstream: Upstream) -> Result<Self, Mqtt31Error> {
        // tempfile creates the directory with mode 0700.
        let dir = tempfile::Builder::new()
            .prefix("tmq2mqtt-mqtt31-")
            .tempdir()
            .map_err(Mqtt31Error::Local)?;
        let socket = dir.path().join("broker.sock");
        let listener = UnixListener::bind(&socket).map_err(Mqtt31Error::Local)?;
        let last_error = Arc::new(Mutex::new(None));
        let shared = last_error.clone();
        let addr = upstream.addr();
        let accept = tokio::spawn(async move {
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT 3.1 shim: accept failed");
                        record(&shared, Mqtt31Error::Local(e));
                        // Such errors (out of file descriptors) persist for a while: back off, don't spin.
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let (upstream, shared) = (upstream.clone(), shared.clone());
                // Detached on purpose: it ends when either side closes (see the type's docs).
                tokio::spawn(async move {
                    let mut client = client;
                    if let Err(e) = relay(&mut client, &upstream).await {
                        tracing::warn!(error = %e, "MQTT 3.1 shim: connection to the broker failed");
                        // Recorded before rumqttc sees its side close, so the sink finds the cause.
                        record(&shared, e);
                    }
                });
            }
        });
        Ok(Self {
            socket,
            upstream: addr,
            last_error,
            accept,
            _dir: dir,
        })
    }

    /// rumqttc options that connect through this shim. Set everything except transport and address on them
    /// (credentials, keep-alive, clean session, will, inflight, packet sizes); the client id is checked here.
    pub fn mqtt_options(&self, client_id: impl Into<String>) -> Result<MqttOptions, Mqtt31Error> {
        let client_id = client_id.into();
        validate_client_id(&client_id)?;
        let mut options = MqttOptions::new(client_id, self.socket.to_string_lossy(), 0);
        options.set_transport(Transport::Unix);
        Ok(options)
    }

    /// The Unix socket rumqttc connects to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The most recent failure to reach the broker or rewrite a CONNECT, if any since the last call.
    /// rumqttc only sees its side closed, so the sink logs this as the cause of a failed connection.
    pub fn take_error(&self) -> Option<Mqtt31Error> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Mqtt31Shim {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn record(slot: &Mutex<Option<Mqtt31Error>>, error: Mqtt31Error) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
}

/// One rumqttc connection: read and rewrite its CONNECT, connect to the broker, then copy both ways until
/// either side closes.
async fn relay(client: &mut UnixStream, upstream: &Upstream) -> Result<(), Mqtt31Error> {
    let mut buf = Vec::with_capacity(256);
    let (connect, consumed) = tokio::time::timeout(CONNECT_READ_TIMEOUT, async {
        loop {
            if let Some(done) = rewrite_connect(&buf)? {
                return Ok(done);
            }
            let mut chunk = [0u8; 1024];
            match client.read(&mut chunk).await {
                Ok(0) => return Err(Mqtt31Error::ClientHangup("closed")),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(Mqtt31Error::ClientHangup("read failed")),
            }
        }
    })
    .await
    .map_err(|_| Mqtt31Error::ClientHangup("timed out"))??;

    let mut broker = upstream.connect().await?;
    let io_err = |source| Mqtt31Error::Connect {
        addr: upstream.addr(),
        source,
    };
    broker.write_all(&connect).await.map_err(io_err)?;
    broker.write_all(&buf[consumed..]).await.map_err(io_err)?;
    broker.flush().await.map_err(io_err)?;
    if asks_persistent_session(&connect) {
        let mut connack = [0u8; 4];
        if broker.read_exact(&mut connack).await.is_err() {
            return Ok(()); // closed before CONNACK: rumqttc sees its connection close
        }
        mark_session_present(&mut connack);
        if client.write_all(&connack).await.is_err() {
            return Ok(());
        }
    }

    let (mut client_rx, mut client_tx) = client.split();
    let (mut broker_rx, mut broker_tx) = tokio::io::split(broker);
    // rumqttc → broker until rumqttc closes; once the broker stops taking bytes they are read and dropped.
    let up = async {
        let mut chunk = [0u8; 8192];
        let mut broker_open = true;
        while let Ok(n @ 1..) = client_rx.read(&mut chunk).await {
            if broker_open {
                let sent = async {
                    broker_tx.write_all(&chunk[..n]).await?;
                    broker_tx.flush().await
                };
                broker_open = sent.await.is_ok();
            }
        }
        let _ = broker_tx.shutdown().await;
    };
    tokio::pin!(up);
    tokio::select! {
        // rumqttc closed: the close is passed on, and the connection ends.
        _ = &mut up => {}
        // The broker closed: what it sent and then the close are passed on, and rumqttc gets to read them
        // (see [`CLIENT_CLOSE_GRACE`]).
        _ = async {
            let _ = tokio::io::copy(&mut broker_rx, &mut client_tx).await;
            let _ = client_tx.shutdown().await;
        } => {
            let _ = tokio::time::timeout(CLIENT_CLOSE_GRACE, up).await;
        }
    }
    Ok(())
}

/// How long the shim keeps reading from a client whose broker has closed, waiting for it to close too.
/// Closing its socket at once would fail rumqttc's next write with a broken pipe before it reads the
/// PUBACKs the broker sent last, and the bridge would re-send rows the broker had acknowledged; rumqttc
/// closes as soon as it reads the end of the stream.
const CLIENT_CLOSE_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::Connect;
    use rumqttc::{LastWill, QoS};

    /// rumqttc's own CONNECT bytes for these options.
    fn connect_bytes(client_id: &str, will_payload: usize) -> Vec<u8> {
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 30;
        if will_payload > 0 {
            connect.last_will = Some(LastWill::new(
                "status",
                vec![b'x'; will_payload],
                QoS::AtLeastOnce,
                true,
            ));
        }
        connect.set_login("bridge", "pw");
        let mut buf = bytes::BytesMut::new();
        connect.write(&mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn rewrites_protocol_name_level_and_length() {
        let original = connect_bytes("meter-1", 0);
        let (rewritten, consumed) = rewrite_connect(&original).unwrap().unwrap();
        assert_eq!(consumed, original.len());
        assert_eq!(
            &rewritten[..11],
            &[0x10, original[1] + 2, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3]
        );
        // Everything after the protocol level is byte-for-byte the same.
        assert_eq!(&rewritten[11..], &original[9..]);
    }

    #[test]
    fn remaining_length_may_grow_by_a_byte() {
        // Find a will size whose CONNECT has a 1-byte remaining length of 126 or 127.
        let original = (0..200)
            .map(|n| connect_bytes("m", n))
            .find(|b| b[1] >= 126 && b[1] < 128)
            .unwrap();
        let (rewritten, _) = rewrite_connect(&original).unwrap().unwrap();
        let (len, len_bytes) = decode_remaining_length(&rewritten[1..]).unwrap().unwrap();
        assert_eq!(len_bytes, 2);
        assert_eq!(len, original[1] as usize + 2);
        assert_eq!(rewritten.len(), 1 + 2 + len);
    }

    #[test]
    fn waits_for_the_whole_packet_and_keeps_what_follows() {
        let original = connect_bytes("meter-1", 300);
        for cut in 0..original.len() {
            assert!(
                rewrite_connect(&original[..cut]).unwrap().is_none(),
                "prefix of {cut} bytes"
            );
        }
        let mut stream = original.clone();
        stream.extend_from_slice(&[0xc0, 0x00]); // a PINGREQ behind it
        let (_, consumed) = rewrite_connect(&stream).unwrap().unwrap();
        assert_eq!(&stream[consumed..], &[0xc0, 0x00]);
    }

    #[test]
    fn refuses_what_it_must_not_rewrite() {
        assert!(matches!(
            rewrite_connect(&[0x30, 0]),
            Err(Mqtt31Error::NotConnect(0x30))
        ));
        let mut v31 = connect_bytes("m", 0);
        v31[8] = 3; // level 3 with name MQTT
        assert!(matches!(
            rewrite_connect(&v31),
            Err(Mqtt31Error::NotMqtt311 { level: 3, .. })
        ));
        let long = connect_bytes("a-client-id-of-24-bytes!", 0);
        let err = rewrite_connect(&long).unwrap_err().to_string();
        assert_eq!(
            err,
            "MQTT 3.1 client ids are 1 to 23 bytes long, `a-client-id-of-24-bytes!` has 24"
        );
        assert!(matches!(
            rewrite_connect(&[0x10, 0xff, 0xff, 0xff, 0xff]),
            Err(Mqtt31Error::Malformed(_))
        ));
        assert!(matches!(
            rewrite_connect(&[0x10, 0xff, 0xff, 0x7f]),
            Err(Mqtt31Error::TooLarge(_))
        ));
        assert!(matches!(
            rewrite_connect(&[0x10, 2, 0, 9]),
            Err(Mqtt31Error::Malformed(_))
        ));
    }

    #[test]
    fn a_persistent_session_is_reported_present_to_rumqttc() {
        let connect31 = |clean: bool| {
            let mut c = Connect::new("b0");
            c.clean_session = clean;
            let mut buf = bytes::BytesMut::new();
            c.write(&mut buf).unwrap();
            rewrite_connect(&buf).unwrap().unwrap().0
        };
        assert!(!asks_persistent_session(&connect31(true)));
        assert!(asks_persistent_session(&connect31(false)));
        let mut accepted = [0x20, 0x02, 0x00, 0x00];
        mark_session_present(&mut accepted);
        assert_eq!(accepted, [0x20, 0x02, 0x01, 0x00]);
        // A refusal stays as it is (3.1.1 forbids the flag with a non-zero code).
        let mut refused = [0x20, 0x02, 0x00, 0x05];
        mark_session_present(&mut refused);
        assert_eq!(refused, [0x20, 0x02, 0x00, 0x05]);
    }

    #[test]
    fn upstream_addresses() {
        assert_eq!(Upstream::tcp("broker", 1883).addr(), "broker:1883");
        assert_eq!(Upstream::tcp("::1", 8883).addr(), "[::1]:8883");
    }

    #[test]
    fn client_id_rule() {
        assert!(validate_client_id("12345678901234567890123").is_ok());
        assert!(validate_client_id("123456789012345678901234").is_err());
        assert!(validate_client_id("").is_err());
    }

    #[test]
    fn remaining_length_round_trips() {
        for value in [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455] {
            let mut out = Vec::new();
            encode_remaining_length(value, &mut out);
            assert_eq!(decode_remaining_length(&out).unwrap(), Some((value, out.len())));
        }
    }
}
