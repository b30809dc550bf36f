//! Test helpers: an MQTT subscriber that reconnects and resubscribes, waiting with deadlines, an in-process
//! bridge, and the delivery assertions the end-to-end suites share (rows carry their id in `f1`).
#![allow(dead_code)]

pub mod ack_proxy;
pub mod brokers;

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use simulator::broker::MqttVersion;
use tokio::sync::mpsc;

/// One message as a subscriber received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    /// The broker delivered it as a retained message (sent on subscribing, not live).
    pub retain: bool,
    pub content_type: Option<String>,
    pub payload_format: Option<u8>,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5 Message Expiry Interval as the broker forwarded it (what is left of it).
    pub message_expiry: Option<u32>,
}

#[derive(Debug)]
pub enum SubEvent {
    /// SUBACK received (after every (re)connect).
    Subscribed,
    Message(Received),
}

/// A subscriber on `filter`; it reconnects and resubscribes on its own (clean session).
///
/// Keep-alive is 5 s (rumqttc's minimum) on purpose: under CPU load rumqttd 0.20 was seen to hold back the tail of a
/// subscriber's messages (after acknowledging every PUBLISH of the bridge) until the subscriber's next
/// packet — with a 30 s keep-alive they arrived ~30 s late. A short keep-alive bounds that stall.
pub struct Subscriber {
    pub rx: mpsc::UnboundedReceiver<SubEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    pub async fn start(addr: SocketAddr, version: MqttVersion, filter: &str, qos: u8) -> Subscriber {
        let mut sub = Self::spawn(addr, version, filter, qos);
        sub.wait_subscribed(Duration::from_secs(10)).await;
        sub
    }

    /// Like [`Subscriber::start`] without waiting for the SUBACK, so nothing that arrives is dropped
    /// (retained messages follow the SUBACK closely).
    pub fn spawn(addr: SocketAddr, version: MqttVersion, filter: &str, qos: u8) -> Subscriber {
        Self::spawn_over(addr, version, filter, qos, None)
    }

    /// [`Subscriber::start`] over `transport` (e.g. `rumqttc::Transport::tls(ca, client, None)`).
    pub async fn start_over(
        addr: SocketAddr,
        version: MqttVersion,
        filter: &str,
        qos: u8,
        transport: rumqttc::Transport,
    ) -> Subscriber {
        let mut sub = Self::spawn_over(addr, version, filter, qos, Some(transport));
        sub.wait_subscribed(Duration::from_secs(10)).await;
        sub
    }

    fn spawn_over(
        addr: SocketAddr,
        version: MqttVersion,
        filter: &str,
        qos: u8,
        transport: Option<rumqttc::Transport>,
    ) -> Subscriber {
        let (tx, rx) = mpsc::unbounded_channel();
        let filter = filter.to_string();
        let id = format!("sub-{}", rand_id());
        let task = match version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
                o.set_max_packet_size(1 << 20, 1 << 20)
                    .set_keep_alive(Duration::from_secs(5));
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
                let q = match qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                tokio::spawn(async move {
                    loop {
                        match el.poll().await {
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                                let _ = client.try_subscribe(filter.clone(), q);
                            }
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                                let _ = tx.send(SubEvent::Subscribed);
                            }
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                                let _ = tx.send(SubEvent::Message(Received {
                                    topic: p.topic.clone(),
                                    payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                    qos: p.qos as u8,
                                    retain: p.retain,
                                    content_type: None,
                                    payload_format: None,
                                    user_properties: Vec::new(),
                                    message_expiry: None,
                                }));
                            }
                            Ok(_) => {}
                            // Reconnect pacing, not synchronisation.
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                })
            }
            MqttVersion::V5 => {
                use rumqttc::v5::{mqttbytes::v5::Packet, mqttbytes::QoS, AsyncClient, Event, MqttOptions};
                let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
                o.set_max_packet_size(Some(1 << 20))
                    .set_keep_alive(Duration::from_secs(5));
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut el) = AsyncClient::new(o, 1000);
                let q = match qos {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => QoS::ExactlyOnce,
                };
                tokio::spawn(async move {
                    loop {
                        match el.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                let _ = client.try_subscribe(filter.clone(), q);
                            }
                            Ok(Event::Incoming(Packet::SubAck(_))) => {
                                let _ = tx.send(SubEvent::Subscribed);
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) => {
                                let props = p.properties.clone().unwrap_or_default();
                                let _ = tx.send(SubEvent::Message(Received {
                                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                    payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                    qos: p.qos as u8,
                                    retain: p.retain,
                                    content_type: props.content_type,
                                    payload_format: props.payload_format_indicator,
                                    user_properties: props.user_properties,
                                    message_expiry: props.message_expiry_interval,
                                }));
                            }
                            Ok(_) => {}
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                })
            }
        };
        Subscriber { rx, task }
    }

    /// Waits for the next SUBACK, dropping messages that arrive meanwhile.
    pub async fn wait_subscribed(&mut self, within: Duration) {
        tokio::time::timeout(within, async {
            loop {
                match self.rx.recv().await {
                    Some(SubEvent::Subscribed) => return,
                    Some(SubEvent::Message(_)) => {}
                    None => panic!("subscriber ended"),
                }
            }
        })
        .await
        .expect("subscriber got no SUBACK in time")
    }

    /// Collects messages until `done(&received)` holds, or panics at the deadline naming what it had.
    pub async fn collect_until(
        &mut self,
        within: Duration,
        done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        self.try_collect_until(within, done)
            .await
            .unwrap_or_else(|got| panic!("deadline passed with {} messages received", got.len()))
    }

    /// Like `collect_until`, but hands back what arrived when the deadline passes.
    pub async fn try_collect_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Result<Vec<Received>, Vec<Received>> {
        let mut got = Vec::new();
        let res = tokio::time::timeout(within, async {
            while !done(&got) {
                match self.rx.recv().await {
                    Some(SubEvent::Message(m)) => got.push(m),
                    Some(SubEvent::Subscribed) => {}
                    None => return false,
                }
            }
            true
        })
        .await;
        match res {
            Ok(true) => Ok(got),
            Ok(false) | Err(_) => Err(got),
        }
    }

    /// A subscriber whose messages are `messages`, already arrived (for tests of these helpers).
    pub fn with_arrived(messages: Vec<Received>) -> Subscriber {
        let (tx, rx) = mpsc::unbounded_channel();
        for m in messages {
            tx.send(SubEvent::Message(m)).expect("receiver alive");
        }
        // Keeps the channel open, as a live subscriber's task does.
        let task = tokio::spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        Subscriber { rx, task }
    }

    /// Collects `n` messages.
    pub async fn collect(&mut self, n: usize, within: Duration) -> Vec<Received> {
        self.collect_until(within, |g| g.len() >= n).await
    }

    /// Everything that arrives until nothing has come for `quiet` (each message restarts the wait), so a
    /// "nothing more" check also sees late arrivals; panics if messages keep coming past `within`.
    pub async fn settle(&mut self, quiet: Duration, within: Duration) -> Vec<Received> {
        let mut got = Vec::new();
        let settled = tokio::time::timeout(within, async {
            loop {
                match tokio::time::timeout(quiet, self.rx.recv()).await {
                    Ok(Some(SubEvent::Message(m))) => got.push(m),
                    Ok(Some(SubEvent::Subscribed)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await;
        assert!(settled.is_ok(), "messages still arriving after {within:?}");
        got
    }

    /// [`Subscriber::settle`] with the suites' quiet period: asserts nothing more arrived.
    pub async fn assert_nothing_more(&mut self, what: &str) {
        let late = self.settle(QUIET, RUNNING_WITHIN).await;
        assert!(
            late.is_empty(),
            "{what}: {} more message(s) arrived, first {:?}",
            late.len(),
            late.first().map(|m| (&m.topic, &m.payload))
        );
    }

    /// Takes whatever already arrived, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut got = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            if let SubEvent::Message(m) = ev {
                got.push(m);
            }
        }
        got
    }
}

/// The first message a fresh subscriber to `topic` gets: what the broker retained there.
pub async fn retained(addr: SocketAddr, version: MqttVersion, topic: &str) -> Received {
    let mut sub = Subscriber::spawn(addr, version, topic, 1);
    let got = sub.collect(1, RUNNING_WITHIN).await;
    got.into_iter().next().unwrap()
}

/// Waits until `sub` receives `payload` (live or retained), e.g. the bridge's status; returns it.
pub async fn wait_status(sub: &mut Subscriber, payload: &str) -> Received {
    let got = sub
        .collect_until(RUNNING_WITHIN, |g| g.iter().any(|m| m.payload == payload))
        .await;
    got.into_iter().find(|m| m.payload == payload).unwrap()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::process::id() as u64 * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// Polls `cond` until it holds or the deadline passes (then panics with `what`).
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long an in-process bridge may take to stop, and the default wait of [`Running`]'s helpers.
const RUNNING_WITHIN: Duration = Duration::from_secs(30);

/// How long a subscriber must hear nothing before a test concludes nothing more is coming: well above
/// rumqttd's and Mosquitto's forwarding delay on a loaded machine.
pub const QUIET: Duration = Duration::from_millis(1500);

/// A bridge running in-process; `stop` shuts it down gracefully.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub stats: std::sync::Arc<tmq2mqtt::Stats>,
    pub task: tokio::task::JoinHandle<Result<tmq2mqtt::RunSummary, tmq2mqtt::BridgeError>>,
}

impl Running {
    pub fn start(from: &str, to: &str) -> Running {
        Self::start_config(tmq2mqtt::BridgeConfig::from_dsns(from, to).expect("DSNs"))
    }

    pub fn start_config(config: tmq2mqtt::BridgeConfig) -> Running {
        let bridge = tmq2mqtt::Bridge::new(config);
        let stats = bridge.stats();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bridge.run(async {
            let _ = rx.await;
        }));
        Running {
            stop: Some(stop),
            stats,
            task,
        }
    }

    pub async fn stop(mut self) -> tmq2mqtt::RunSummary {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(RUNNING_WITHIN, self.task)
            .await
            .expect("bridge stops")
            .unwrap()
            .expect("clean run")
    }

    /// Waits until the bridge's committed offsets satisfy `done`.
    pub async fn wait_committed(
        &self,
        what: &str,
        done: impl Fn(&std::collections::BTreeMap<(String, i32), i64>) -> bool,
    ) {
        let stats = self.stats.clone();
        wait_for(what, RUNNING_WITHIN, || done(&stats.snapshot().committed)).await;
    }

    /// Waits until `vgroups` vgroups committed, stops the bridge and checks the run was clean: `rows` rows
    /// read and acknowledged, none left unacknowledged, and nothing more (no duplicate) at `sub`.
    pub async fn stop_clean(self, sub: &mut Subscriber, tag: &str, vgroups: usize, rows: u64) {
        self.wait_committed(&format!("{tag}: {vgroups} vgroups committed"), |c| {
            c.len() == vgroups
        })
        .await;
        let s = self.stop().await;
        assert_eq!(
            (s.rows, s.acked, s.unacked_at_exit),
            (rows, rows, 0),
            "{tag}: {s:?}"
        );
        sub.assert_nothing_more(&format!("{tag}: no duplicates without faults"))
            .await;
    }

    /// Waits until the bridge's last recorded error contains `needle`; returns that error.
    pub async fn wait_error(&self, needle: &str) -> String {
        let stats = self.stats.clone();
        wait_for(&format!("an error containing `{needle}`"), RUNNING_WITHIN, || {
            stats.last_error().is_some_and(|e| e.contains(needle))
        })
        .await;
        self.stats.last_error().unwrap()
    }
}

/// The row id the suites write into column `f1`.
pub fn f1_of(m: &Received) -> u32 {
    simulator::tdengine::fixture::f1_of(m.payload.as_bytes()).expect("a payload with f1")
}

pub fn distinct_f1(got: &[Received]) -> BTreeSet<u32> {
    got.iter().map(f1_of).collect()
}

/// The (vgroup, offset) of the TMQ message a row came in, from its payload's `offset`.
pub fn message_of(m: &Received) -> (i32, i64) {
    let v: serde_json::Value = serde_json::from_str(&m.payload).expect("a JSON payload");
    let o = &v["offset"];
    let vg = o["vgroupId"].as_i64().expect("offset.vgroupId") as i32;
    (vg, o["offset"].as_i64().expect("offset.offset"))
}

/// How many of `got` (rows of TMQ topic `topic`) came in messages that `committed` (the bridge's commits:
/// the next offset to read per vgroup) does not cover: what a resubscribe may send again.
pub fn uncommitted(
    got: &[Received],
    topic: &str,
    committed: &std::collections::BTreeMap<(String, i32), i64>,
) -> usize {
    got.iter()
        .filter(|m| {
            let (vg, offset) = message_of(m);
            committed
                .get(&(topic.to_string(), vg))
                .is_none_or(|next| offset >= *next)
        })
        .count()
}

/// Received copies beyond the first of each row (by `f1`).
pub fn duplicates(got: &[Received]) -> usize {
    got.len() - distinct_f1(got).len()
}

/// The distinct rows (`f1`) of what came before plus a collection under way, kept up to date one message
/// at a time: a `done` check of [`Subscriber::try_collect_until`] runs after every message, and one that
/// re-parsed everything received each time was quadratic — under CPU load it fell behind a burst of a
/// thousand messages (with replays) and the deadline passed with rows delivered but still queued.
pub struct SeenRows {
    seen: BTreeSet<u32>,
    looked: usize,
}

impl SeenRows {
    /// Starts from the rows of `before`.
    pub fn after(before: &[Received]) -> Self {
        SeenRows {
            seen: distinct_f1(before),
            looked: 0,
        }
    }

    /// Adds the messages of `collected` not looked at yet (it only grows); returns how many distinct rows
    /// were seen in all.
    pub fn update(&mut self, collected: &[Received]) -> usize {
        self.seen.extend(collected[self.looked..].iter().map(f1_of));
        self.looked = collected.len();
        self.seen.len()
    }
}

/// Rows `0..total` were written over `tables` child tables (`d{id % tables}`) and published to
/// `{prefix}/{table}`: every row arrived, and each table's rows once each in the order they were written.
pub fn assert_every_row_in_table_order(got: &[Received], prefix: &str, tables: u32, total: u32) {
    let msgs = got.iter().map(|m| (m.topic.as_str(), m.payload.as_bytes()));
    if let Err(e) = simulator::tdengine::fixture::check_every_row_in_table_order(msgs, prefix, tables, total)
    {
        panic!("{e}");
    }
}

/// Collects until every row `0..total` was seen (counting what `got` already has); names the missing
/// rows (and the bridge's counters) at the deadline.
pub async fn collect_all(
    sub: &mut Subscriber,
    got: &mut Vec<Received>,
    total: u32,
    stats: Option<&tmq2mqtt::Stats>,
) {
    let mut seen = SeenRows::after(got);
    let more = sub
        .try_collect_until(RUNNING_WITHIN, |g| seen.update(g) == total as usize)
        .await;
    let failed = more.is_err();
    got.extend(more.unwrap_or_else(|g| g));
    if failed {
        let seen = distinct_f1(got);
        let missing: Vec<u32> = (0..total).filter(|i| !seen.contains(i)).collect();
        panic!(
            "{} rows missing: {missing:?}; bridge: {:?}",
            missing.len(),
            stats.map(|s| s.snapshot())
        );
    }
}

/// The rows (by `f1`) a broker stopped mid-stream may have lost on its own: those it acknowledged on the wire
/// (PUBACK/PUBREC seen by `proxy`, the bridge's only way to it) that `sub` has not received. An acknowledged
/// row is the broker's responsibility; everything else is the bridge's to deliver. Call once both the bridge
/// and `sub` have seen the outage (their sockets read to the end); moves what `sub` buffered into `got`.
pub fn broker_may_have_lost(
    sub: &mut Subscriber,
    got: &mut Vec<Received>,
    proxy: &ack_proxy::AckProxy,
) -> BTreeSet<u32> {
    got.extend(sub.drain());
    let seen = distinct_f1(got);
    acked_f1(proxy)
        .into_iter()
        .filter(|f1| !seen.contains(f1))
        .collect()
}

/// [`collect_all`] after a broker outage: every row `0..total` must arrive except rows in `may_lose` (see
/// [`broker_may_have_lost`]); it stops early only once the bridge has received all rows and has none in
/// flight (when to stop looking, never what is judged). A failure says which missing rows `proxy` saw the
/// broker acknowledge after the outage.
pub async fn collect_all_after_outage(
    sub: &mut Subscriber,
    got: &mut Vec<Received>,
    total: u32,
    may_lose: &BTreeSet<u32>,
    stats: &tmq2mqtt::Stats,
    proxy: &ack_proxy::AckProxy,
) {
    let mut seen = distinct_f1(got);
    let mut read = 0;
    let enough = |g: &[Received]| {
        seen.extend(g[read..].iter().map(f1_of));
        read = g.len();
        let s = stats.snapshot();
        seen.len() == total as usize
            || ((0..total).all(|i| seen.contains(&i) || may_lose.contains(&i))
                && s.rows >= total as u64
                && stats.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0)
    };
    let more = sub.try_collect_until(RUNNING_WITHIN, enough).await;
    got.extend(more.unwrap_or_else(|g| g));
    let seen = distinct_f1(got);
    let missing: Vec<u32> = (0..total).filter(|i| !seen.contains(i)).collect();
    let bridges: Vec<u32> = missing
        .iter()
        .copied()
        .filter(|i| !may_lose.contains(i))
        .collect();
    if !bridges.is_empty() {
        let acked_later = acked_f1(proxy);
        let acked: Vec<u32> = bridges
            .iter()
            .copied()
            .filter(|i| acked_later.contains(i))
            .collect();
        panic!(
            "{} rows missing that the broker had not acknowledged on the wire at the outage: {bridges:?} \
             (acknowledged by it since: {acked:?}; all missing: {missing:?}); bridge: {:?}",
            bridges.len(),
            stats.snapshot()
        );
    }
    if !missing.is_empty() {
        eprintln!(
            "the stopped broker lost {} row(s) it had acknowledged on the wire: {missing:?}",
            missing.len()
        );
    }
}

/// Judges the duplicates after a broker outage from the wire: a copy beyond the first of a payload in `got`
/// needs a PUBLISH of it that `proxy` forwarded to the broker and never saw acknowledged (in flight at the
/// outage) — only such a PUBLISH may be re-sent, and a broker without persistence delivers what it received
/// once. A bridge that re-sent what the broker had acknowledged fails, whatever its own counters say. Call
/// after the subscriber settled (late copies count).
pub fn assert_duplicates_were_in_flight(got: &[Received], proxy: &ack_proxy::AckProxy) {
    let mut copies: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for m in got {
        *copies.entry(m.payload.as_str()).or_default() += 1;
    }
    let mut in_flight: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for p in proxy.unacked() {
        *in_flight.entry(p).or_default() += 1;
    }
    let beyond: Vec<(&str, usize, usize)> = copies
        .iter()
        .filter_map(|(p, n)| {
            let allowed = in_flight.get(*p).copied().unwrap_or(0);
            (n - 1 > allowed).then_some((*p, *n, allowed))
        })
        .collect();
    let dups: usize = copies.values().map(|n| n - 1).sum();
    assert!(
        beyond.is_empty(),
        "{dups} duplicate(s); {} row(s) arrived more often than the wire allows (payload, copies, PUBLISHes \
         of it in flight unacknowledged), first {:?}; {} in flight in all",
        beyond.len(),
        beyond.first(),
        in_flight.values().sum::<usize>()
    );
}

/// The rows (by `f1`) `proxy` saw the broker acknowledge.
pub fn acked_f1(proxy: &ack_proxy::AckProxy) -> BTreeSet<u32> {
    proxy
        .acked()
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter_map(|v| v["data"]["f1"].as_u64())
        .map(|f1| f1 as u32)
        .collect()
}

/// The stand-in on a free port with the suites' schema: database `db`, super table
/// `meters (ts, f1 int) tags (t1 int)`, rows identified by `f1`.
pub struct StandIn {
    pub server: simulator::tdengine::TdServer,
}

impl std::ops::Deref for StandIn {
    type Target = simulator::tdengine::TdServer;

    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl StandIn {
    /// An empty stand-in (tracing to the test output, filtered by `RUST_LOG`, default `warn`).
    pub async fn start() -> StandIn {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let server = simulator::tdengine::TdServer::start(simulator::tdengine::TdConfig::default())
            .await
            .expect("stand-in");
        StandIn { server }
    }

    /// A stand-in with `db` over `vgroups`, `db.meters` and the query topic `topic`
    /// (`select ts, tbname, f1, t1 from db.meters`).
    pub async fn with_meters(vgroups: u32, topic: &str) -> StandIn {
        let s = Self::start().await;
        s.create_meters(vgroups, topic);
        s
    }

    /// `create database db vgroups N`, stable `meters`, query topic `topic`.
    pub fn create_meters(&self, vgroups: u32, topic: &str) {
        self.sql(&format!("create database db vgroups {vgroups}"));
        self.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
        self.sql(&format!(
            "create topic {topic} as select ts, tbname, f1, t1 from db.meters"
        ));
    }

    pub fn sql(&self, sql: &str) {
        self.server
            .store()
            .execute(sql, &mut None)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts rows `ids` over `tables` child tables in one statement: table d{id % tables} (tag t1 = its
    /// number), ts = `fixture::BASE_TS` + id, f1 = id.
    pub fn insert(&self, tables: u32, ids: std::ops::Range<u32>) {
        self.sql(&simulator::tdengine::fixture::insert_sql(tables, ids));
    }

    /// The source DSN of `topic` for consumer group `group`, from the earliest offset.
    pub fn earliest_dsn(&self, topic: &str, group: &str) -> String {
        self.from(topic, &format!("group.id={group}&auto.offset.reset=earliest"))
    }

    /// The source DSN of `topic` with `params`.
    pub fn from(&self, topic: &str, params: &str) -> String {
        format!(
            "tmq+ws://root:taosdata@127.0.0.1:{}/{topic}?{params}",
            self.server.addr().port()
        )
    }
}
