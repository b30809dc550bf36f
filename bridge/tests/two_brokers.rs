//! One compliance suite, two brokers: the bridge's end-to-end checks (every QoS × MQTT version, a broker
//! restart mid-stream) run from one generic body against the embedded rumqttd and a real Mosquitto. Then
//! what only Mosquitto can show: genuine MQTT 3.1 on the wire, TLS (good CA, wrong CA, expired certificate,
//! client certificates) and CONNACK refusals. Requires `mosquitto` (ci/setup.sh installs it).

mod common;
use common::Running;

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use common::{distinct_f1, Received, StandIn, Subscriber};
use simulator::{
    broker::{BrokerConfig, EmbeddedBroker, MqttVersion},
    mosquitto::{Mosquitto, TlsListener},
    tls::TestPki,
};
use tmq2mqtt::{Bridge, BridgeConfig};

const T: Duration = Duration::from_secs(30);

/// The broker under test.
enum TestBroker {
    Rumqttd(EmbeddedBroker),
    Mosquitto(Mosquitto),
}

impl TestBroker {
    async fn rumqttd() -> TestBroker {
        TestBroker::Rumqttd(
            EmbeddedBroker::start(BrokerConfig::default())
                .await
                .expect("rumqttd"),
        )
    }

    fn mosquitto() -> TestBroker {
        TestBroker::Mosquitto(Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)"))
    }

    /// DSN `version=` values this broker accepts, with the subscriber version to read them with.
    fn versions(&self) -> Vec<(&'static str, MqttVersion)> {
        let mut v = vec![("3.1.1", MqttVersion::V311), ("5.0", MqttVersion::V5)];
        if matches!(self, TestBroker::Mosquitto(_)) {
            v.insert(0, ("3.1", MqttVersion::V311)); // rumqttd does not speak 3.1
        }
        v
    }

    /// Where a client of `version` connects (rumqttd has one listener per version).
    fn addr(&self, version: MqttVersion) -> SocketAddr {
        match self {
            TestBroker::Rumqttd(b) => b.addr(version).unwrap(),
            TestBroker::Mosquitto(b) => b.addr(),
        }
    }

    async fn stop(&mut self) {
        match self {
            TestBroker::Rumqttd(b) => b.stop().await,
            TestBroker::Mosquitto(b) => b.stop().unwrap(),
        }
    }

    async fn start_again(&mut self) {
        match self {
            TestBroker::Rumqttd(b) => b.restart().await.unwrap(),
            TestBroker::Mosquitto(b) => b.restart().unwrap(),
        }
    }
}

/// The stand-in with `db.meters` over `vgroups` and the query topic `t`; rows go to two tables.
async fn stand_in(vgroups: u32) -> StandIn {
    StandIn::with_meters(vgroups, "t").await
}

/// The source DSN of topic `t` for consumer group `group`, from the earliest offset.
fn from(td: &StandIn, group: &str) -> String {
    td.from("t", &format!("group.id={group}&auto.offset.reset=earliest"))
}

// ---- the generic suite ----------------------------------------------------------------------------------

/// QoS 0/1/2 × every version the broker speaks: every row arrives, in order per table, and is committed.
async fn every_qos_and_version_delivers_every_row(broker: TestBroker) {
    let td = stand_in(2).await;
    td.insert(2, 0..200);
    for (version, sub_version) in broker.versions() {
        for qos in 0..=2u8 {
            let tag = format!("q{qos}v{}", version.replace('.', ""));
            let addr = broker.addr(sub_version_for_dsn(version));
            let mut sub = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 2).await;
            let run = Running::start(
                &from(&td, &tag),
                &format!("mqtt://{addr}?version={version}&qos={qos}&client_id={tag}&topic={tag}/{{table}}"),
            );
            let got = sub.collect(200, T).await;
            common::assert_every_row_in_table_order(&got, &tag, 2, 200);
            let stats = run.stats.clone();
            common::wait_for("both vgroups committed", T, || {
                stats.snapshot().committed.len() == 2
            })
            .await;
            let s = run.stop().await;
            assert_eq!(
                (s.rows, s.acked, s.unacked_at_exit),
                (200, 200, 0),
                "{tag}: {s:?}"
            );
            assert!(sub.drain().is_empty(), "{tag}: no duplicates without faults");
        }
    }
}

/// The listener a DSN version connects to (3.1 shares the 3.1.1 listener).
fn sub_version_for_dsn(version: &str) -> MqttVersion {
    if version == "5.0" {
        MqttVersion::V5
    } else {
        MqttVersion::V311
    }
}

/// The broker stops mid-stream and comes back on the same port: at QoS 1 the bridge loses nothing (rows the
/// broker itself acknowledged and dropped when it stopped are its loss).
async fn broker_restart_mid_stream_loses_nothing(mut broker: TestBroker, version: &str) {
    let td = stand_in(1).await;
    let sub_version = sub_version_for_dsn(version);
    let addr = broker.addr(sub_version);
    let mut sub = Subscriber::start(addr, sub_version, "r/#", 1).await;
    let run = Running::start(
        &from(&td, "restart"),
        &format!("mqtt://{addr}?version={version}&qos=1&client_id=restart&topic=r/{{table}}"),
    );
    td.insert(2, 0..500);
    let mut got = sub.collect(500, T).await;
    td.insert(2, 500..1000);
    broker.stop().await;
    td.insert(2, 1000..1500);
    let stats = run.stats.clone();
    // The subscriber must be subscribed again before the bridge re-sends: wait until the bridge's backoff
    // has grown far beyond the subscriber's reconnect pace.
    common::wait_for("bridge retries", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 5
    })
    .await;
    let may_lose = common::broker_may_have_lost(&mut sub, &mut got, &run.stats);
    broker.start_again().await;
    sub.wait_subscribed(T).await;
    common::collect_all_after_outage(&mut sub, &mut got, 1500, may_lose, &run.stats).await;
    let s = run.stop().await;
    assert!(s.mqtt_connects >= 2, "{s:?}");
    assert_eq!(s.unacked_at_exit, 0, "{s:?}");
}

// ---- status topic (`status_topic=`) ------------------------------------------------------------------------

/// The first message a fresh subscriber to `topic` gets: what the broker retained there.
async fn retained(addr: SocketAddr, version: MqttVersion, topic: &str) -> Received {
    let mut sub = Subscriber::spawn(addr, version, topic, 1);
    let got = sub.collect(1, T).await;
    got.into_iter().next().unwrap()
}

/// Waits until `sub` receives `payload` (live or retained).
async fn wait_status(sub: &mut Subscriber, payload: &str) -> Received {
    let got = sub
        .collect_until(T, |g| g.iter().any(|m| m.payload == payload))
        .await;
    got.into_iter().find(|m| m.payload == payload).unwrap()
}

/// Retained `online` once connected (a late subscriber gets it), retained `offline` after a graceful
/// shutdown; the rows flow exactly once beside the status messages, at every QoS.
async fn status_online_while_running_offline_after_graceful_shutdown(broker: TestBroker) {
    let td = stand_in(2).await;
    td.insert(2, 0..100);
    // Every QoS of the rows: the status (always QoS 1) shares the client and its packet ids with them.
    for (version, sub_version) in broker.versions() {
        for qos in 0..=2u8 {
            let tag = format!("st{qos}v{}", version.replace('.', ""));
            let addr = broker.addr(sub_version_for_dsn(version));
            let status_topic = format!("bridges/{tag}/status");
            let mut data = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 1).await;
            let mut live = Subscriber::start(addr, sub_version, &status_topic, 1).await;
            let run = Running::start(
            &from(&td, &tag),
            &format!(
                "mqtt://{addr}?version={version}&qos={qos}&client_id={tag}&topic={tag}/{{table}}&status_topic={status_topic}"
            ),
        );
            let got = data.collect(100, T).await;
            assert_eq!(distinct_f1(&got), (0..100).collect::<BTreeSet<u32>>(), "{tag}");
            assert_eq!(got.len(), 100, "{tag}: no duplicates");
            assert!(
                got.iter().all(|m| m.topic.starts_with(&format!("{tag}/d"))),
                "{tag}"
            );
            let online = wait_status(&mut live, "online").await;
            assert_eq!(
                (online.qos, online.retain),
                (1, false),
                "{tag}: live to a subscriber already there"
            );
            // `online` went out before the first row, and every row is acknowledged: the broker holds it.
            let stats = run.stats.clone();
            common::wait_for("100 rows acknowledged", T, || stats.snapshot().acked == 100).await;
            let late = retained(addr, sub_version, &status_topic).await;
            assert_eq!((late.payload.as_str(), late.retain), ("online", true), "{tag}");

            let s = run.stop().await;
            assert_eq!(
                (s.rows, s.published, s.acked, s.unacked_at_exit),
                (100, 100, 100, 0),
                "{tag}: {s:?}"
            );
            assert!(!wait_status(&mut live, "offline").await.retain, "{tag}: live");
            let after = retained(addr, sub_version, &status_topic).await;
            assert_eq!((after.payload.as_str(), after.retain), ("offline", true), "{tag}");
            assert!(data.drain().is_empty(), "{tag}: no row twice");
        }
    }
}

/// SIGKILL of the bridge process: the broker sees the socket close and publishes the retained Last Will.
async fn status_last_will_says_offline_when_the_bridge_is_killed(broker: TestBroker) {
    let td = stand_in(1).await;
    td.insert(2, 0..20);
    for (version, sub_version) in broker.versions() {
        let tag = format!("kill{}", version.replace('.', ""));
        let addr = broker.addr(sub_version_for_dsn(version));
        let status_topic = format!("bridges/{tag}/status");
        let mut live = Subscriber::start(addr, sub_version, &status_topic, 1).await;
        let mut data = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 1).await;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
            .args([
                "run",
                "-f",
                &from(&td, &tag),
                "-t",
                &format!(
                    "mqtt://{addr}?version={version}&qos=1&client_id={tag}&topic={tag}/x&status_topic={status_topic}"
                ),
            ])
            .env_remove("TMQ2MQTT_FROM")
            .env_remove("TMQ2MQTT_TO")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_status(&mut live, "online").await;
        assert_eq!(distinct_f1(&data.collect(20, T).await).len(), 20, "{tag}");
        child.kill().await.unwrap(); // SIGKILL: no DISCONNECT, no explicit offline
        let will = wait_status(&mut live, "offline").await;
        assert_eq!(will.qos, 1, "{tag}");
        let after = retained(addr, sub_version, &status_topic).await;
        assert_eq!(
            (after.payload.as_str(), after.retain),
            ("offline", true),
            "{tag}: the Will is retained"
        );
    }
}

/// A broker restart loses every retained message: the bridge republishes `online` on reconnecting, and
/// rows published after the restart arrive exactly once.
async fn status_online_is_republished_after_a_broker_restart(mut broker: TestBroker, version: &str) {
    let td = stand_in(1).await;
    let sub_version = sub_version_for_dsn(version);
    let addr = broker.addr(sub_version);
    let tag = format!("rs{}", version.replace('.', ""));
    let status_topic = format!("bridges/{tag}/status");
    let mut live = Subscriber::start(addr, sub_version, &status_topic, 1).await;
    let mut data = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 1).await;
    let run = Running::start(
        &from(&td, &tag),
        &format!(
            "mqtt://{addr}?version={version}&qos=1&client_id={tag}&topic={tag}/x&status_topic={status_topic}"
        ),
    );
    wait_status(&mut live, "online").await;
    td.insert(2, 0..100);
    let mut got = data.collect(100, T).await;
    let stats = run.stats.clone();
    common::wait_for("100 rows acknowledged", T, || stats.snapshot().acked == 100).await;

    broker.stop().await;
    common::wait_for("the bridge notices", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    broker.start_again().await;
    live.wait_subscribed(T).await;
    data.wait_subscribed(T).await;
    // Nothing is retained after the restart, so this `online` is the bridge's new one.
    wait_status(&mut live, "online").await;
    let again = retained(addr, sub_version, &status_topic).await;
    assert_eq!((again.payload.as_str(), again.retain), ("online", true), "{tag}");
    assert!(run.stats.snapshot().mqtt_connects >= 2);

    td.insert(2, 100..200);
    got.extend(data.collect_until(T, |g| distinct_f1(g).len() == 100).await);
    assert_eq!(got.len(), 200, "{tag}: every row exactly once");
    assert_eq!(distinct_f1(&got), (0..200).collect::<BTreeSet<u32>>(), "{tag}");
    let s = run.stop().await;
    assert_eq!((s.acked, s.unacked_at_exit), (200, 0), "{tag}: {s:?}");
    wait_status(&mut live, "offline").await;
}

/// A TCP relay between the bridge and the broker whose connections can be cut (both sockets closed, so
/// the broker sees the bridge vanish), while it keeps accepting new ones.
struct Relay {
    addr: SocketAddr,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut broker) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                shared.lock().unwrap().push(conn);
            }
        });
        Relay { addr, conns, accept }
    }

    /// Closes every connection relayed so far.
    fn cut(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The pitfall: a bridge's connection drops while the broker stays up. The broker publishes the Will
/// (`offline`, retained); the bridge reconnects — resuming its session (`clean_session=false`) or not — and
/// must say `online` again, or monitoring shows a working bridge as offline for good.
async fn status_online_follows_the_will_after_a_connection_drop(broker: TestBroker) {
    for (version, sub_version) in broker.versions() {
        for clean in [false, true] {
            // A fresh stand-in each time: the bridge reads its topic from the start.
            let td = stand_in(1).await;
            let tag = format!("cut{}{}", version.replace('.', ""), if clean { "c" } else { "p" });
            let addr = broker.addr(sub_version_for_dsn(version));
            let relay = Relay::start(addr).await;
            let status_topic = format!("bridges/{tag}/status");
            let mut live = Subscriber::start(addr, sub_version, &status_topic, 1).await;
            let mut data = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 1).await;
            let run = Running::start(
                &from(&td, &tag),
                &format!(
                    "mqtt://{}?version={version}&qos=1&client_id={tag}&topic={tag}/x&clean_session={clean}&status_topic={status_topic}",
                    relay.addr
                ),
            );
            wait_status(&mut live, "online").await;
            td.insert(2, 0..50);
            let mut got = data.collect(50, T).await;
            let stats = run.stats.clone();
            common::wait_for("50 rows acknowledged", T, || stats.snapshot().acked == 50).await;

            relay.cut();
            wait_status(&mut live, "offline").await; // the broker's Will
            wait_status(&mut live, "online").await; // the bridge, reconnected
            assert!(run.stats.snapshot().mqtt_connects >= 2, "{tag}");
            let now = retained(addr, sub_version, &status_topic).await;
            assert_eq!((now.payload.as_str(), now.retain), ("online", true), "{tag}");

            td.insert(2, 50..100);
            got.extend(data.collect(50, T).await);
            assert_eq!(distinct_f1(&got), (0..100).collect::<BTreeSet<u32>>(), "{tag}");
            let s = run.stop().await;
            assert_eq!((s.acked, s.unacked_at_exit), (100, 0), "{tag}: {s:?}");
            assert!(data.drain().is_empty(), "{tag}: no row twice");
            wait_status(&mut live, "offline").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_status_online_follows_the_will_after_a_connection_drop() {
    status_online_follows_the_will_after_a_connection_drop(TestBroker::rumqttd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_status_online_follows_the_will_after_a_connection_drop() {
    status_online_follows_the_will_after_a_connection_drop(TestBroker::mosquitto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_status_online_while_running_offline_after_graceful_shutdown() {
    status_online_while_running_offline_after_graceful_shutdown(TestBroker::rumqttd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_status_online_while_running_offline_after_graceful_shutdown() {
    status_online_while_running_offline_after_graceful_shutdown(TestBroker::mosquitto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_status_last_will_says_offline_when_the_bridge_is_killed() {
    status_last_will_says_offline_when_the_bridge_is_killed(TestBroker::rumqttd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_status_last_will_says_offline_when_the_bridge_is_killed() {
    status_last_will_says_offline_when_the_bridge_is_killed(TestBroker::mosquitto()).await;
}

/// `Bridge::run` keeps its MQTT side on a thread of its own; dropping the run future (an aborted task) must
/// still end it, at once, like a killed process: the connection closes and the broker's Will says `offline`.
/// A pipeline outliving its future would keep the status `online` (and keep publishing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_ends_the_mqtt_side_and_the_status_turns_offline() {
    let broker = TestBroker::rumqttd().await;
    let td = stand_in(1).await;
    td.insert(2, 0..20);
    let addr = broker.addr(sub_version_for_dsn("3.1.1"));
    let tag = "dropped";
    let status_topic = format!("bridges/{tag}/status");
    let mut live = Subscriber::start(addr, MqttVersion::V311, &status_topic, 1).await;
    let mut data = Subscriber::start(addr, MqttVersion::V311, &format!("{tag}/#"), 1).await;
    let run = Running::start(
        &from(&td, tag),
        &format!(
            "mqtt://{addr}?version=3.1.1&qos=1&client_id={tag}&topic={tag}/x&status_topic={status_topic}"
        ),
    );
    wait_status(&mut live, "online").await;
    assert_eq!(distinct_f1(&data.collect(20, T).await).len(), 20);
    run.task.abort();
    let offline = wait_status(&mut live, "offline").await;
    assert_eq!(offline.qos, 1);
    td.insert(2, 20..30);
    // Were the pipeline still running, these rows would arrive within a few poll intervals (10 ms).
    let late = data
        .try_collect_until(Duration::from_millis(500), |g| !g.is_empty())
        .await;
    assert!(
        matches!(&late, Err(got) if got.is_empty()),
        "nothing is published once the run future is gone: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_status_online_is_republished_after_a_broker_restart() {
    for version in ["3.1.1", "5.0"] {
        status_online_is_republished_after_a_broker_restart(TestBroker::rumqttd().await, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_status_online_is_republished_after_a_broker_restart() {
    for version in ["3.1", "3.1.1", "5.0"] {
        status_online_is_republished_after_a_broker_restart(TestBroker::mosquitto(), version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_every_qos_and_version_delivers_every_row() {
    every_qos_and_version_delivers_every_row(TestBroker::rumqttd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_every_qos_and_version_delivers_every_row() {
    every_qos_and_version_delivers_every_row(TestBroker::mosquitto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_broker_restart_mid_stream_loses_nothing() {
    broker_restart_mid_stream_loses_nothing(TestBroker::rumqttd().await, "5.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_broker_restart_mid_stream_loses_nothing() {
    for version in ["3.1", "3.1.1", "5.0"] {
        broker_restart_mid_stream_loses_nothing(TestBroker::mosquitto(), version).await;
    }
}

// ---- Mosquitto only ---------------------------------------------------------------------------------------

/// Mosquitto logs each client's protocol as it read it from the wire: `p1` is MQTT 3.1 (`MQIsdp`/3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_1_speaks_mqisdp_level_3_on_the_wire() {
    let td = stand_in(1).await;
    td.insert(2, 0..10);
    let broker = Mosquitto::builder().verbose_log(true).start().unwrap();
    let mut sub = Subscriber::start(broker.addr(), MqttVersion::V311, "w/#", 1).await;
    let run = Running::start(
        &from(&td, "wire"),
        &format!(
            "mqtt://{}?version=3.1&qos=2&client_id=wire31&topic=w/{{table}}",
            broker.addr()
        ),
    );
    let got = sub.collect(10, T).await;
    assert_eq!(distinct_f1(&got), (0..10).collect());
    run.stop().await;
    let log = broker.log();
    assert!(
        log.contains("as wire31 (p1,"),
        "Mosquitto saw no MQTT 3.1 client:\n{log}"
    );
}

#[test]
fn version_3_1_client_id_longer_than_23_bytes_is_refused_at_parse() {
    let err =
        tmq2mqtt::dsn::TargetDsn::parse("mqtt://h?version=3.1&client_id=a-client-id-of-24-bytes!&topic=x")
            .unwrap_err()
            .to_string();
    assert!(err.contains("1 to 23 bytes"), "{err}");
    assert!(tmq2mqtt::dsn::TargetDsn::parse(
        "mqtt://h?version=3.1.1&client_id=a-client-id-of-24-bytes!&topic=x"
    )
    .is_ok());
}

/// A wrong password: Mosquitto answers CONNACK 5 (3.1, 3.1.1) or 0x87 (5.0); the bridge stops at once
/// with one line naming the code and the likely cause, and without echoing the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_refusals_are_one_clear_line_per_version() {
    let td = stand_in(1).await;
    let broker = Mosquitto::builder().passwords([("u", "right")]).start().unwrap();
    for (version, want) in [
        ("3.1", "CONNACK return code 5, not authorized"),
        ("3.1.1", "CONNACK return code 5, not authorized"),
        ("5.0", "CONNACK reason code 0x87, not authorized"),
    ] {
        let config = BridgeConfig::from_dsns(
            &from(&td, "refused"),
            &format!(
                "mqtt://u:s3cret@{}?version={version}&qos=1&client_id=refused&topic=x",
                broker.addr()
            ),
        )
        .unwrap();
        let err = tokio::time::timeout(T, Bridge::new(config).run(std::future::pending()))
            .await
            .expect("a refusal is fatal, not retried")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(want), "{version}: {err}");
        assert!(!err.contains('\n') && !err.contains("s3cret"), "{version}: {err}");
    }
}

/// A TLS broker plus a directory for PEM files.
struct TlsWorld {
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl TlsWorld {
    fn new() -> TlsWorld {
        TlsWorld {
            pki: TestPki::new("bridge test CA").unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn broker(&self, expired: bool, require_client_cert: bool) -> Mosquitto {
        let server = if expired {
            self.pki.expired_server_cert().unwrap()
        } else {
            self.pki.server_cert().unwrap()
        };
        Mosquitto::builder()
            .tls(TlsListener {
                ca_pem: self.pki.ca_pem(),
                server,
                require_client_cert,
            })
            .start()
            .unwrap()
    }

    /// Writes `pem` to a file and returns the DSN value `@path`.
    fn file(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        format!("@{}", path.display())
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_the_right_ca_delivers_over_every_version() {
    let td = stand_in(1).await;
    td.insert(2, 0..20);
    let w = TlsWorld::new();
    let broker = w.broker(false, false);
    // The CA inline (percent-encoded) once, from a file otherwise.
    let inline = enc(&w.pki.ca_pem());
    let from_file = w.file("ca.pem", &w.pki.ca_pem());
    for (version, ca) in [("3.1", &from_file), ("3.1.1", &inline), ("5.0", &from_file)] {
        let tag = format!("tls{}", version.replace('.', ""));
        let run = Running::start(
            &from(&td, &tag),
            &format!(
                "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id={tag}&topic={tag}/x&ca={ca}",
                broker.port()
            ),
        );
        let stats = run.stats.clone();
        common::wait_for(&format!("{tag}: 20 rows acknowledged over TLS"), T, || {
            stats.snapshot().acked == 20
        })
        .await;
        run.stop().await;
    }
}

/// A broker certificate the bridge cannot trust — signed by another CA, expired, or for another host name —
/// is fatal like a refused CONNACK: the run ends at once (no retry) with one line naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_wrong_ca_an_expired_or_misnamed_certificate_is_fatal_with_one_clear_line() {
    let td = stand_in(1).await;
    let w = TlsWorld::new();
    let stranger = TestPki::new("stranger CA").unwrap();
    let good = w.broker(false, false);
    let expired = w.broker(true, false);
    let misnamed = Mosquitto::builder()
        .tls(TlsListener {
            ca_pem: w.pki.ca_pem(),
            server: w.pki.server_cert_for(&["broker.invalid"]).unwrap(),
            require_client_cert: false,
        })
        .start()
        .unwrap();
    let cases = [
        (&good, stranger.ca_pem(), "UnknownIssuer"),
        (&expired, w.pki.ca_pem(), "certificate expired"),
        (&misnamed, w.pki.ca_pem(), "not valid for name"),
    ];
    for (i, (broker, ca, want)) in cases.into_iter().enumerate() {
        for version in ["3.1", "3.1.1", "5.0"] {
            let ca = w.file(&format!("ca{i}.pem"), &ca);
            let config = BridgeConfig::from_dsns(
                &from(&td, "badtls"),
                &format!(
                    "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id=badtls&topic=x&ca={ca}",
                    broker.port()
                ),
            )
            .unwrap();
            let bridge = Bridge::new(config);
            let stats = bridge.stats();
            let err = tokio::time::timeout(T, bridge.run(std::future::pending()))
                .await
                .expect("an untrusted certificate is fatal, not retried")
                .expect_err("must fail")
                .to_string();
            assert!(err.contains(want), "{version}: {err}");
            assert!(
                err.contains("TLS handshake with the MQTT broker") && err.contains("not retried"),
                "{version}: {err}"
            );
            assert!(!err.contains('\n'), "{version}: one line: {err}");
            let s = stats.snapshot();
            assert_eq!(
                (s.mqtt_connects, s.mqtt_failures),
                (0, 0),
                "{version}: one attempt, no retry"
            );
        }
    }
}

/// The binary: exit code 1, promptly, with the certificate problem on its `error:` line.
/// `tmq2mqtt check` beside a running bridge with the same DSNs: the check is its own MQTT client (a
/// broker drops the older of two connections with one client id), so the bridge keeps its connection and
/// its status, and goes on delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_beside_a_running_bridge_leaves_its_connection_and_status_alone() {
    let td = stand_in(1).await;
    let broker = Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)");
    let addr = broker.addr();
    td.insert(2, 0..10);
    let status = "bridges/plant/status";
    let mut live = Subscriber::start(addr, MqttVersion::V311, status, 1).await;
    let mut data = Subscriber::start(addr, MqttVersion::V311, "plant/#", 1).await;
    let from = from(&td, "plant");
    let to = format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=plant&clean_session=false&topic=plant/{{table}}&status_topic={status}"
    );
    let run = Running::start(&from, &to);
    assert_eq!(data.collect(10, T).await.len(), 10);
    wait_status(&mut live, "online").await;
    run.wait_committed("the first 10 rows committed", |c| c.values().sum::<i64>() > 0)
        .await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(["check", "-f", &from, "-t", &to])
        .env_remove("TMQ2MQTT_FROM")
        .env_remove("TMQ2MQTT_TO")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(T, out).await.expect("check ends").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("as `plant-check`"), "{stdout}");

    // Rows written after the check arrive through the same, never interrupted, connection.
    td.insert(2, 10..20);
    let got = data.collect(10, T).await;
    assert_eq!(distinct_f1(&got), (10..20).collect::<BTreeSet<u32>>());
    let s = run.stats.snapshot();
    assert_eq!((s.mqtt_connects, s.mqtt_failures), (1, 0), "{s:?}");
    assert!(
        live.drain().iter().all(|m| m.payload != "offline"),
        "the check must never announce the bridge offline"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_when_the_broker_certificate_is_untrusted() {
    let td = stand_in(1).await;
    let w = TlsWorld::new();
    let stranger = TestPki::new("stranger CA").unwrap();
    let broker = w.broker(false, false);
    let ca = w.file("stranger.pem", &stranger.ca_pem());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args([
            "run",
            "-f",
            &from(&td, "badtls"),
            "-t",
            &format!(
                "mqtts://127.0.0.1:{}?version=3.1.1&qos=1&client_id=badtls&topic=x&ca={ca}",
                broker.port()
            ),
        ])
        .env_remove("TMQ2MQTT_FROM")
        .env_remove("TMQ2MQTT_TO")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .expect("the binary exits on its own")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains("invalid peer certificate: UnknownIssuer"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_client_certificate_is_presented_when_the_broker_requires_one() {
    let td = stand_in(1).await;
    td.insert(2, 0..5);
    let w = TlsWorld::new();
    let broker = w.broker(false, true);
    let client = w.pki.client_cert("bridge").unwrap();
    let ca = w.file("ca.pem", &w.pki.ca_pem());
    let cert = w.file("client.pem", &client.cert_pem);
    let key = w.file("client.key", &client.key_pem);
    for version in ["3.1", "3.1.1", "5.0"] {
        let tag = format!("cc{}", version.replace('.', ""));
        let run = Running::start(
            &from(&td, &tag),
            &format!(
                "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id={tag}&topic=x&ca={ca}&cert={cert}&cert_key={key}",
                broker.port()
            ),
        );
        let stats = run.stats.clone();
        common::wait_for(&format!("{tag}: rows acknowledged"), T, || {
            stats.snapshot().acked == 5
        })
        .await;
        run.stop().await;
    }
    // Without a certificate the broker ends the handshake.
    let run = Running::start(
        &from(&td, "nocert"),
        &format!(
            "mqtts://127.0.0.1:{}?version=3.1.1&qos=1&client_id=nocert&topic=x&ca={ca}",
            broker.port()
        ),
    );
    let stats = run.stats.clone();
    common::wait_for("failed attempts", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(run.stats.snapshot().mqtt_connects, 0);
    run.stop().await;
}

#[test]
fn tls_settings_are_validated_at_parse() {
    use tmq2mqtt::dsn::TargetDsn;
    let base = "version=3.1.1&client_id=c&topic=x";
    for (dsn, want) in [
        (format!("mqtt://h?{base}&ca=@/nonexistent.pem"), "only for TLS"),
        (
            format!("mqtts://h?{base}&ca=@/nonexistent.pem"),
            "cannot read PEM file",
        ),
        (format!("mqtts://h?{base}&ca=not-pem"), "expected PEM text"),
        (
            format!(
                "mqtts://h?{base}&ca={}",
                enc("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            ),
            "bad PEM in `ca`: a certificate in it is not valid X.509 DER (BadEncoding)",
        ),
    ] {
        let err = TargetDsn::parse(&dsn).unwrap_err().to_string();
        assert!(err.contains(want), "{dsn}: {err}");
    }
    let pki = TestPki::new("parse CA").unwrap();
    let client = pki.client_cert("c").unwrap();
    let err = TargetDsn::parse(&format!("mqtts://h?{base}&cert={}", enc(&client.cert_pem)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("both `cert` and `cert_key`"), "{err}");
    let t = TargetDsn::parse(&format!("mqtts://h?{base}&ca={}", enc(&pki.ca_pem()))).unwrap();
    assert_eq!(t.port, 8883);
    assert!(t.to_string().starts_with("mqtts://"), "{t}");
}
