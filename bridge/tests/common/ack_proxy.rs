//! A TCP proxy between the bridge and the broker that records what the broker acknowledged: the payload of
//! every QoS 1 PUBLISH answered with PUBACK and every QoS 2 PUBLISH answered with PUBREC (the moment the
//! broker takes responsibility), matched by packet id on the same connection. Bytes pass unchanged. A
//! client that closes ends the connection. A broker that closes has what it sent and then the close passed
//! on, and the client's side stays open (what it sends is dropped) until the client closes too: so the client
//! reads every acknowledgement the broker sent, and a duplicate of an acknowledged row is the bridge's
//! doing — not a PUBACK lost because the client's write drew a reset before it read that PUBACK.
//!
//! The suites judge what a stopped broker may have lost from this — what the broker itself said — never
//! from the bridge's own `acked` counter, which a bridge that over-counts would inflate. Likewise the
//! duplicates an outage may cause: only a PUBLISH the broker received and never acknowledged
//! ([`AckProxy::unacked`]) may be re-sent and reach a subscriber twice.
//!
//! [`AckProxy::blackhole`] makes it swallow whole packets on their way to the broker, as if the broker died
//! with them unread in its socket: the rows in flight at an outage, made certain instead of left to timing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct AckProxy {
    pub addr: SocketAddr,
    acked: Arc<Mutex<Vec<String>>>,
    conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>,
    hole: Arc<Hole>,
    task: tokio::task::JoinHandle<()>,
}

/// Whether packets to the broker are swallowed, and how many PUBLISHes were.
#[derive(Default)]
struct Hole {
    on: AtomicBool,
    swallowed: AtomicU64,
}

impl Drop for AckProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AckProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> AckProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let hole = Arc::new(Hole::default());
        let (acks, all, h) = (acked.clone(), conns.clone(), hole.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acks, h) = (acks.clone(), h.clone());
                let conn = Arc::new(Mutex::new(Conn::default()));
                all.lock().unwrap().push(conn.clone());
                tokio::spawn(async move {
                    // Broker down: the client sees its connection close, as without the proxy.
                    if let Ok(broker) = TcpStream::connect(upstream).await {
                        relay(client, broker, conn, acks, h).await;
                    }
                });
            }
        });
        AckProxy {
            addr,
            acked,
            conns,
            hole,
            task,
        }
    }

    /// From now on (`true`) every packet on its way to the broker is swallowed whole, until `false`.
    pub fn blackhole(&self, on: bool) {
        self.hole.on.store(on, Ordering::SeqCst);
    }

    /// How many PUBLISH packets were swallowed.
    pub fn swallowed(&self) -> u64 {
        self.hole.swallowed.load(Ordering::SeqCst)
    }

    /// The payloads the broker acknowledged so far, in acknowledgement order (a payload re-sent and
    /// acknowledged again appears again).
    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }

    /// The payloads of QoS 1/2 PUBLISHes forwarded to the broker that it has not acknowledged on their
    /// connection (still open, or never: the connection ended first) — what was in flight at an outage.
    pub fn unacked(&self) -> Vec<String> {
        let conns = self.conns.lock().unwrap();
        conns
            .iter()
            .flat_map(|c| c.lock().unwrap().open.values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

/// The state of one connection, shared by its two directions.
#[derive(Default)]
struct Conn {
    /// MQTT protocol level from CONNECT (5 = MQTT 5, whose PUBLISH carries properties).
    level: u8,
    /// Open QoS 1/2 publishes by packet id.
    open: HashMap<u16, String>,
}

async fn relay(
    client: TcpStream,
    broker: TcpStream,
    conn: Arc<Mutex<Conn>>,
    acked: Arc<Mutex<Vec<String>>>,
    hole: Arc<Hole>,
) {
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (br, bw) = broker.into_split();
    let up = {
        let conn = conn.clone();
        pump(cr, bw, move |frame| {
            if hole.on.load(Ordering::SeqCst) {
                if frame[0] >> 4 == 3 {
                    hole.swallowed.fetch_add(1, Ordering::SeqCst);
                }
                return false;
            }
            to_broker(&mut conn.lock().unwrap(), frame);
            true
        })
    };
    let down = pump(br, cw, move |frame| {
        to_client(&mut conn.lock().unwrap(), frame, &acked);
        true
    });
    tokio::pin!(up);
    tokio::select! {
        _ = &mut up => {}
        // Bounded: a client that never closes is the test's failure to report, not a hang.
        _ = down => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), up).await;
        }
    }
}

/// Copies whole MQTT packets from `from` to `to`, calling `seen` on each before forwarding it (`false`:
/// swallow it), until `from` ends; once `to` fails, what is read is dropped unseen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut seen: impl FnMut(&[u8]) -> bool,
) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut open = true;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some(len) = frame_len(&buf[at..]) {
            // Once `to` failed nothing reaches the other side, so nothing is recorded as if it had.
            if open && seen(&buf[at..at + len]) {
                out.extend_from_slice(&buf[at..at + len]);
            }
            at += len;
        }
        buf.drain(..at);
        if open && to.write_all(&out).await.is_err() {
            open = false;
        }
        out.clear();
    }
    let _ = to.shutdown().await;
}

/// (remaining length, bytes it took) of the varint at `b`, if complete.
fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in b.iter().take(4).enumerate() {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The length of the complete packet at the start of `buf`, if it is all there.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let (rem, n) = varint(buf.get(1..)?)?;
    let total = 1 + n + rem;
    (buf.len() >= total).then_some(total)
}

/// The packet's body (after the fixed header).
pub fn body(frame: &[u8]) -> &[u8] {
    let (_, n) = varint(&frame[1..]).expect("complete frame");
    &frame[1 + n..]
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn to_broker(conn: &mut Conn, frame: &[u8]) {
    let b = body(frame);
    match frame[0] >> 4 {
        // CONNECT: protocol name (length-prefixed), then the level.
        1 => {
            if let Some(name_len) = u16_at(b, 0) {
                conn.level = b.get(2 + name_len as usize).copied().unwrap_or(0);
            }
        }
        // PUBLISH: topic, packet id (QoS > 0), MQTT 5 properties, payload.
        3 => {
            let qos = (frame[0] >> 1) & 3;
            let Some(topic_len) = u16_at(b, 0) else { return };
            let mut at = 2 + topic_len as usize;
            if qos == 0 {
                return;
            }
            let Some(pkid) = u16_at(b, at) else { return };
            at += 2;
            if conn.level == 5 {
                let Some((props, n)) = b.get(at..).and_then(varint) else {
                    return;
                };
                at += n + props;
            }
            let payload = String::from_utf8_lossy(b.get(at..).unwrap_or_default()).into_owned();
            conn.open.insert(pkid, payload);
        }
        _ => {}
    }
}

fn to_client(conn: &mut Conn, frame: &[u8], acked: &Mutex<Vec<String>>) {
    // PUBACK (4) answers QoS 1, PUBREC (5) QoS 2; MQTT 5 reason codes >= 0x80 refuse the message.
    let kind = frame[0] >> 4;
    if kind != 4 && kind != 5 {
        return;
    }
    let b = body(frame);
    let Some(pkid) = u16_at(b, 0) else { return };
    let refused = b.get(2).is_some_and(|code| *code >= 0x80);
    if let Some(payload) = conn.open.remove(&pkid) {
        if !refused {
            acked.lock().unwrap().push(payload);
        }
    }
}
