//! The MQTT-aware fault proxy: a TCP proxy between a bridge and the broker that frames every packet in both
//! directions, records it (type, DUP/QoS/RETAIN, packet id, topic, time) and lets the [`FaultEngine`] decide
//! whether to forward, hold, drop it or cut the connection. Bytes are forwarded exactly as received.

pub mod faults;
pub mod frame;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Decision, FaultEngine, Fired, ProxyFault};
use frame::{Framer, Protocol};

use crate::wire::{ClosedBy, Direction, Fate, Kind, WireRecord};

struct Shared {
    start: Instant,
    /// `start` as µs since the Unix epoch (read at the same moment).
    start_unix_us: u64,
    engine: Mutex<FaultEngine>,
    records: Mutex<Vec<WireRecord>>,
    upstream: Mutex<SocketAddr>,
    conns: AtomicU32,
    /// Bumped to cut every live connection.
    cut_all: watch::Sender<u64>,
}

impl Shared {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn record(&self, r: WireRecord) {
        self.records.lock().expect("records lock").push(r);
    }
}

/// A running proxy on a free loopback port. Stops when dropped or shut down.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards each accepted connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut_all, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            start: Instant::now(),
            start_unix_us: crate::recorder::now_us(),
            engine: Mutex::new(FaultEngine::new()),
            records: Mutex::new(Vec::new()),
            upstream: Mutex::new(upstream),
            conns: AtomicU32::new(0),
            cut_all,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(Proxy {
            addr,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// Where the bridge should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points new connections at another broker address (after a broker restart on a new port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().expect("upstream lock") = upstream;
    }

    /// Fires `fault` when the `n`th PUBLISH towards the broker arrives.
    pub fn arm_at_publish(&self, n: u64, fault: ProxyFault) {
        self.shared
            .engine
            .lock()
            .expect("engine lock")
            .arm_at_publish(n, fault);
    }

    /// Fires `fault` now (a `Cut` closes every live connection).
    pub fn fire(&self, fault: ProxyFault) {
        let cut = self
            .shared
            .engine
            .lock()
            .expect("engine lock")
            .fire(self.shared.now(), fault);
        if cut {
            self.shared.cut_all.send_modify(|g| *g += 1);
        }
    }

    /// PUBLISH packets seen towards the broker so far.
    pub fn published(&self) -> u64 {
        self.shared.engine.lock().expect("engine lock").published()
    }

    /// Every record so far, in the order handled.
    pub fn records(&self) -> Vec<WireRecord> {
        self.shared.records.lock().expect("records lock").clone()
    }

    /// Whether acks it holds back (`delay-acks`) or a throttle may still be holding traffic back.
    pub fn busy(&self) -> bool {
        let now = self.shared.now();
        self.shared.engine.lock().expect("engine lock").busy(now)
    }

    /// When the proxy started, µs since the Unix epoch: wire record and fired-fault times count from here.
    pub fn started_us(&self) -> u64 {
        self.shared.start_unix_us
    }

    /// Faults that fired, with when their effect started and ended (since the proxy started).
    pub fn fired(&self) -> Vec<Fired> {
        self.shared.engine.lock().expect("engine lock").fired().to_vec()
    }

    /// Stops accepting and cuts every live connection.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.shared.cut_all.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if *shutdown.borrow() {
                        return;
                    }
                    serve(client, shared).await;
                });
            }
        }
    }
}

/// Per-connection state both directions share.
struct Conn {
    id: u32,
    protocol: Mutex<Protocol>,
    cut: watch::Sender<bool>,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let id = shared.conns.fetch_add(1, Ordering::Relaxed) + 1;
    shared.record(WireRecord::event(
        id,
        shared.now().as_micros() as u64,
        Kind::Opened,
    ));
    let upstream = *shared.upstream.lock().expect("upstream lock");
    let broker = match TcpStream::connect(upstream).await {
        Ok(b) => b,
        Err(e) => {
            let mut r = WireRecord::event(id, shared.now().as_micros() as u64, Kind::Closed);
            r.note = Some(format!("broker {upstream} unreachable: {e}"));
            r.closed_by = Some(ClosedBy::Broker);
            shared.record(r);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (cut, _) = watch::channel(false);
    let conn = Arc::new(Conn {
        id,
        protocol: Mutex::new(Protocol::V311),
        cut,
    });
    let (client_rd, client_wr) = client.into_split();
    let (broker_rd, broker_wr) = broker.into_split();
    let up = tokio::spawn(pump(
        client_rd,
        broker_wr,
        Direction::ToBroker,
        shared.clone(),
        conn.clone(),
    ));
    let down = tokio::spawn(pump(
        broker_rd,
        client_wr,
        Direction::ToClient,
        shared.clone(),
        conn.clone(),
    ));
    let (a, b) = tokio::join!(up, down);
    let (closed_by, reason) = [a.ok().flatten(), b.ok().flatten()]
        .into_iter()
        .flatten()
        .next()
        .map_or((None, "closed".to_string()), |(by, why)| (Some(by), why));
    let mut r = WireRecord::event(id, shared.now().as_micros() as u64, Kind::Closed);
    r.note = Some(reason);
    r.closed_by = closed_by;
    shared.record(r);
}

/// Copies one direction packet by packet until either side closes or a cut; returns who ended the
/// connection and why when this direction is the one that decided.
async fn pump(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    dir: Direction,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) -> Option<(ClosedBy, String)> {
    // This direction reads from `sender` and writes to `receiver`.
    let (sender, receiver) = match dir {
        Direction::ToBroker => (ClosedBy::Bridge, ClosedBy::Broker),
        Direction::ToClient => (ClosedBy::Broker, ClosedBy::Bridge),
    };
    let mut cut_rx = conn.cut.subscribe();
    let mut cut_all = shared.cut_all.subscribe();
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let stop = |conn: &Conn| {
        let _ = conn.cut.send(true);
    };
    loop {
        let n = tokio::select! {
            _ = cut_signal(&mut cut_rx) => return None,
            _ = cut_all.changed() => { stop(&conn); return Some((ClosedBy::Fault, "cut by fault".into())); }
            read = rd.read(&mut buf) => match read {
                Ok(0) => { stop(&conn); return Some((sender, format!("{dir:?} side closed"))); }
                Ok(n) => n,
                Err(e) => { stop(&conn); return Some((sender, format!("{dir:?} read error: {e}"))); }
            },
        };
        framer.push(&buf[..n]);
        loop {
            let frame = match framer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    stop(&conn);
                    return Some((sender, format!("{dir:?}: {e}")));
                }
            };
            match handle_frame(&frame, dir, &shared, &conn, &mut wr, &mut cut_rx).await {
                Ok(true) => {}
                Ok(false) => {
                    stop(&conn);
                    return Some((ClosedBy::Fault, "cut by fault".into()));
                }
                Err(e) => {
                    stop(&conn);
                    return Some((receiver, format!("{dir:?} write error: {e}")));
                }
            }
        }
    }
}

/// Records and acts on one packet; `Ok(false)` means the connection must be cut now.
async fn handle_frame(
    frame: &Bytes,
    dir: Direction,
    shared: &Shared,
    conn: &Conn,
    wr: &mut OwnedWriteHalf,
    cut_rx: &mut watch::Receiver<bool>,
) -> std::io::Result<bool> {
    if dir == Direction::ToBroker {
        if let Some(p) = frame::connect_protocol(frame) {
            *conn.protocol.lock().expect("protocol lock") = p;
        }
    }
    let protocol = *conn.protocol.lock().expect("protocol lock");
    let d = frame::describe(frame, protocol);
    let kind = d.kind.unwrap_or(Kind::Reserved);
    let now = shared.now();
    let decision = shared
        .engine
        .lock()
        .expect("engine lock")
        .on_packet(now, dir, kind, frame.len());
    let fate = match decision {
        Decision::Drop | Decision::Cut => Fate::Dropped,
        Decision::Delay(_) => Fate::Delayed,
        Decision::Forward | Decision::ForwardThenCut => Fate::Forwarded,
    };
    shared.record(WireRecord {
        conn: conn.id,
        at_us: now.as_micros() as u64,
        dir,
        kind,
        dup: d.dup,
        qos: d.qos,
        retain: d.retain,
        pkid: d.pkid,
        topic: d.topic,
        payload: d.payload,
        code: d.code,
        fate,
        note: d.undecoded,
        closed_by: None,
    });
    match decision {
        Decision::Forward => wr.write_all(frame).await.map(|_| true),
        Decision::Drop => Ok(true),
        Decision::Delay(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => wr.write_all(frame).await.map(|_| true),
                _ = cut_signal(cut_rx) => Ok(false),
            }
        }
        Decision::ForwardThenCut => {
            wr.write_all(frame).await?;
            wr.flush().await?;
            Ok(false)
        }
        Decision::Cut => Ok(false),
    }
}

/// Resolves once this connection is being cut (or its cut sender is gone).
async fn cut_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}
