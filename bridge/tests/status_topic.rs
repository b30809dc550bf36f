//! The bridge's status topic (`status_topic=`), against the embedded rumqttd and a real Mosquitto: retained
//! `online` while running, retained `offline` after a graceful shutdown, the Last Will when the bridge is
//! killed or its connection drops, `online` again after a broker restart. Requires `mosquitto`
//! (ci/setup.sh installs it).

mod common;

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use common::{
    brokers::{against_both_brokers, listener_for_dsn, TestBroker},
    distinct_f1, retained, wait_status, Running, StandIn, Subscriber,
};
use simulator::broker::MqttVersion;

const T: Duration = Duration::from_secs(30);

/// Subscribes to a bridge's status topic, `bridges/{tag}/status`, and to its rows under `{tag}/#`;
/// returns the status topic and the two subscribers (status, rows).
async fn subscribe_status_and_rows(
    addr: SocketAddr,
    version: MqttVersion,
    tag: &str,
) -> (String, Subscriber, Subscriber) {
    let status_topic = format!("bridges/{tag}/status");
    let live = Subscriber::start(addr, version, &status_topic, 1).await;
    let rows = Subscriber::start(addr, version, &format!("{tag}/#"), 1).await;
    (status_topic, live, rows)
}

/// Retained `online` once connected (a late subscriber gets it), retained `offline` after a graceful
/// shutdown; the rows flow exactly once beside the status messages, at every QoS.
async fn status_online_while_running_offline_after_graceful_shutdown(broker: TestBroker) {
    let td = StandIn::with_meters(2, "t").await;
    td.insert(2, 0..100);
    // Every QoS of the rows: the status (always QoS 1) shares the client and its packet ids with them.
    for (version, sub_version) in broker.versions() {
        for qos in 0..=2u8 {
            let tag = format!("st{qos}v{}", version.replace('.', ""));
            let addr = broker.addr_for_dsn(version);
            let (status_topic, mut live, mut data) = subscribe_status_and_rows(addr, sub_version, &tag).await;
            let run = Running::start(
            &td.earliest_dsn("t", &tag),
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
            data.assert_nothing_more(&format!("{tag}: no row twice")).await;
        }
    }
}

/// SIGKILL of the bridge process: the broker sees the socket close and publishes the retained Last Will.
async fn status_last_will_says_offline_when_the_bridge_is_killed(broker: TestBroker) {
    let td = StandIn::with_meters(1, "t").await;
    td.insert(2, 0..20);
    for (version, sub_version) in broker.versions() {
        let tag = format!("kill{}", version.replace('.', ""));
        let addr = broker.addr_for_dsn(version);
        let (status_topic, mut live, mut data) = subscribe_status_and_rows(addr, sub_version, &tag).await;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
            .args([
                "run",
                "-f",
                &td.earliest_dsn("t", &tag),
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
    let td = StandIn::with_meters(1, "t").await;
    let sub_version = listener_for_dsn(version);
    let addr = broker.addr(sub_version);
    let tag = format!("rs{}", version.replace('.', ""));
    let (status_topic, mut live, mut data) = subscribe_status_and_rows(addr, sub_version, &tag).await;
    let run = Running::start(
        &td.earliest_dsn("t", &tag),
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
            let td = StandIn::with_meters(1, "t").await;
            let tag = format!("cut{}{}", version.replace('.', ""), if clean { "c" } else { "p" });
            let addr = broker.addr_for_dsn(version);
            let relay = Relay::start(addr).await;
            let (status_topic, mut live, mut data) = subscribe_status_and_rows(addr, sub_version, &tag).await;
            let run = Running::start(
                &td.earliest_dsn("t", &tag),
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
            data.assert_nothing_more(&format!("{tag}: no row twice")).await;
            wait_status(&mut live, "offline").await;
        }
    }
}

/// `Bridge::run` keeps its MQTT side on a thread of its own; dropping the run future (an aborted task) must
/// still end it, at once, like a killed process: the connection closes and the broker's Will says `offline`.
/// A pipeline outliving its future would keep the status `online` (and keep publishing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_ends_the_mqtt_side_and_the_status_turns_offline() {
    let broker = TestBroker::rumqttd().await;
    let td = StandIn::with_meters(1, "t").await;
    td.insert(2, 0..20);
    let addr = broker.addr(listener_for_dsn("3.1.1"));
    let tag = "dropped";
    let (status_topic, mut live, mut data) = subscribe_status_and_rows(addr, MqttVersion::V311, tag).await;
    let run = Running::start(
        &td.earliest_dsn("t", tag),
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

against_both_brokers!(status_online_while_running_offline_after_graceful_shutdown
    => rumqttd_status_online_while_running_offline_after_graceful_shutdown,
       mosquitto_status_online_while_running_offline_after_graceful_shutdown);

against_both_brokers!(status_last_will_says_offline_when_the_bridge_is_killed
    => rumqttd_status_last_will_says_offline_when_the_bridge_is_killed,
       mosquitto_status_last_will_says_offline_when_the_bridge_is_killed);

against_both_brokers!(status_online_is_republished_after_a_broker_restart, versions ["3.1.1", "5.0"] ["3.1", "3.1.1", "5.0"]
    => rumqttd_status_online_is_republished_after_a_broker_restart,
       mosquitto_status_online_is_republished_after_a_broker_restart);

against_both_brokers!(status_online_follows_the_will_after_a_connection_drop
    => rumqttd_status_online_follows_the_will_after_a_connection_drop,
       mosquitto_status_online_follows_the_will_after_a_connection_drop);
