//! Opt-in: the bridge against the real `tdengine/tdengine` and `eclipse-mosquitto` images, started with
//! testcontainers (`cargo test -p harness --features docker-tests --test docker -- --test-threads=1`):
//! the seed example, the bridge's end-to-end cases (QoS 0/1/2 × MQTT 3.1.1/5.0, commit-after-ack seen
//! by a second consumer of the group, a Mosquitto container restart mid-stream), and the harness
//! scenario `qos1-v5` with both containers as its external world.
//!
//! Without Docker these tests fail with a message saying so: they are never skipped, so a run without
//! Docker can never be mistaken for a pass. Image tags can be overridden with `TDENGINE_IMAGE_TAG` and
//! `MOSQUITTO_IMAGE_TAG`.
#![cfg(feature = "docker-tests")]

// The bridge's own end-to-end helpers (subscriber, in-process bridge, delivery assertions).
#[path = "../../bridge/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{collect_all, distinct_f1, Running, Subscriber};
use harness::runner::sql::Sql;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use simulator::broker::MqttVersion;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tmq2mqtt::{Bridge, BridgeConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// Pulling and starting images can be slow; everything else is bounded by this too.
const STARTUP: Duration = Duration::from_secs(180);
const DELIVERY: Duration = Duration::from_secs(60);

fn tag(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

const NEEDS_DOCKER: &str = "docker-tests need a running Docker daemon that can pull the images \
     (set DOCKER_HOST or start dockerd; without Docker leave the `docker-tests` feature off)";

/// Starts a container or fails the test with a message that names the cause.
async fn start(
    image: testcontainers::ContainerRequest<GenericImage>,
    what: &str,
) -> ContainerAsync<GenericImage> {
    match timeout(STARTUP, image.start()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{NEEDS_DOCKER}; starting {what}: {e}"),
        Err(_) => panic!("{what} did not start within {STARTUP:?}"),
    }
}

/// Retry pacing while a server starts, not synchronisation.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Real TDengine (taosd + taosAdapter) and an SQL connection to it.
struct RealTdengine {
    _container: ContainerAsync<GenericImage>,
    port: u16,
    sql: Sql,
}

impl RealTdengine {
    async fn start() -> RealTdengine {
        let image = GenericImage::new("tdengine/tdengine", &tag("TDENGINE_IMAGE_TAG", "3.3.6.0"))
            .with_exposed_port(6041.tcp())
            .with_wait_for(WaitFor::Nothing)
            .with_startup_timeout(STARTUP);
        let container = start(image, "tdengine/tdengine").await;
        let port = container
            .get_host_port_ipv4(6041)
            .await
            .expect("TDengine's mapped port 6041");
        // The container starts taosd first and taosAdapter after it; the dnode needs a moment more
        // before it serves queries. Ready: a connection that answers `select server_status()`.
        let dsn = format!("ws://root:taosdata@127.0.0.1:{port}");
        let ready = async {
            loop {
                if let Ok(sql) = Sql::connect(&dsn).await {
                    if sql.rows("select server_status()").await.is_ok() {
                        return sql;
                    }
                }
                pause().await;
            }
        };
        let sql = timeout(STARTUP, ready)
            .await
            .expect("TDengine (taosAdapter on 6041) answered queries in time");
        RealTdengine {
            _container: container,
            port,
            sql,
        }
    }

    fn dsn(&self) -> String {
        format!("ws://root:taosdata@127.0.0.1:{}", self.port)
    }

    /// The bridge's source DSN for topic `t` in consumer group `group`, from the earliest offset.
    fn from(&self, group: &str) -> String {
        format!(
            "tmq+ws://root:taosdata@127.0.0.1:{}/t?group.id={group}&auto.offset.reset=earliest",
            self.port
        )
    }

    async fn exec(&self, sql: &str) {
        self.sql.exec(sql).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// DDL, retried until it succeeds: a fresh server may still be bringing up its vnodes (a new
    /// database's vgroups take a moment to elect leaders). "Already exists" after a retry means an
    /// earlier attempt took effect although its answer was an error.
    async fn ddl(&self, sql: &str) {
        let mut last = None;
        let retried = timeout(STARTUP, async {
            loop {
                match self.sql.exec(sql).await {
                    Ok(()) => return,
                    Err(e) if last.is_some() && e.to_string().contains("already exist") => return,
                    Err(e) => last = Some(e.to_string()),
                }
                pause().await;
            }
        })
        .await;
        assert!(retried.is_ok(), "{sql} kept failing: {last:?}");
    }

    /// Waits until database `name` exists and no transaction on it is pending (creating a database
    /// returns before its vgroups serve; taosAdapter's own tests wait the same way).
    async fn wait_database(&self, name: &str) {
        let pending = format!("select * from performance_schema.perf_trans where db = '{name}'");
        let exists = format!("select * from information_schema.ins_databases where name = '{name}'");
        let mut last = String::new();
        let ready = timeout(STARTUP, async {
            loop {
                match (self.sql.rows(&pending).await, self.sql.rows(&exists).await) {
                    (Ok(p), Ok(e)) if p.is_empty() && !e.is_empty() => return,
                    (p, e) => last = format!("pending: {p:?}; exists: {e:?}"),
                }
                pause().await;
            }
        })
        .await;
        assert!(ready.is_ok(), "database {name} not ready: {last}");
    }

    /// `db` over `vgroups`, super table `meters (ts, f1 int) tags (t1 int)`, query topic `t`.
    async fn meters(&self, vgroups: u32) {
        self.ddl(&format!("create database if not exists db vgroups {vgroups}"))
            .await;
        self.wait_database("db").await;
        self.ddl("create stable if not exists db.meters (ts timestamp, f1 int) tags (t1 int)")
            .await;
        self.ddl("create topic if not exists t as select ts, tbname, f1, t1 from db.meters")
            .await;
    }

    /// Rows `ids` over `tables` child tables: table d{id % tables}, ts = BASE_TS + id, f1 = id (the
    /// same rows the stand-in suites write).
    async fn insert(&self, tables: u32, ids: std::ops::Range<u32>) {
        self.exec(&simulator::tdengine::fixture::insert_sql(tables, ids))
            .await;
    }

    /// How many vgroups of `db` hold child tables (TDengine places tables by a hash of their name).
    async fn vgroups_with_tables(&self) -> usize {
        let rows = self
            .sql
            .rows("select vgroup_id from information_schema.ins_tables where db_name = 'db'")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rows.iter()
            .filter_map(|r| r.get("vgroup_id").and_then(|v| v.as_i64()))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Mosquitto 2 with an anonymous listener on 1883 (its default configuration only listens on
/// localhost), mapped to a fixed host port so that the container can be stopped and started again
/// under the same address.
struct RealMosquitto {
    container: ContainerAsync<GenericImage>,
    addr: SocketAddr,
}

impl RealMosquitto {
    async fn start() -> RealMosquitto {
        let mut last = String::new();
        // A port found free may be taken before Docker binds it: then try another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let image = GenericImage::new("eclipse-mosquitto", &tag("MOSQUITTO_IMAGE_TAG", "2"))
                .with_wait_for(WaitFor::message_on_either_std("running"))
                .with_mapped_port(port, 1883.tcp())
                .with_cmd([
                    "sh",
                    "-c",
                    "printf 'listener 1883\\nallow_anonymous true\\npersistence false\\n\
                     max_queued_messages 1000000\\n' > /tmp/m.conf && exec mosquitto -c /tmp/m.conf",
                ])
                .with_startup_timeout(STARTUP);
            match timeout(STARTUP, image.start()).await {
                Ok(Ok(container)) => {
                    let m = RealMosquitto {
                        container,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    };
                    m.wait_ready().await;
                    return m;
                }
                Ok(Err(e)) if is_port_taken(&e.to_string()) => last = e.to_string(),
                Ok(Err(e)) => panic!("{NEEDS_DOCKER}; starting eclipse-mosquitto: {e}"),
                Err(_) => panic!("eclipse-mosquitto did not start within {STARTUP:?}"),
            }
        }
        panic!("no free host port for eclipse-mosquitto after 5 tries: {last}");
    }

    /// Ready: an MQTT CONNECT through the mapped port is answered (Docker's port proxy accepts TCP
    /// before the broker inside listens).
    async fn wait_ready(&self) {
        let ready = async {
            while simulator::broker::handshake(MqttVersion::V5, self.addr, None, Duration::from_secs(5))
                .await
                .is_err()
            {
                pause().await;
            }
        };
        timeout(STARTUP, ready)
            .await
            .expect("Mosquitto answered CONNECT in time");
    }

    /// Stops the container: the broker and its sessions are gone (no persistence).
    async fn stop(&self) {
        timeout(STARTUP, self.container.stop())
            .await
            .expect("Mosquitto stopped in time")
            .expect("docker stop");
    }

    /// Starts the stopped container again on the same host port.
    async fn start_again(&self) {
        timeout(STARTUP, self.container.start())
            .await
            .expect("Mosquitto started in time")
            .expect("docker start");
        self.wait_ready().await;
    }

    /// A target DSN for this broker.
    fn to(&self, version: MqttVersion, params: &str) -> String {
        format!("mqtt://{}?version={}&{params}", self.addr, version.dsn_value())
    }
}

fn is_port_taken(error: &str) -> bool {
    error.contains("port is already allocated") || error.contains("address already in use")
}

/// Subscribes with MQTT 5 at QoS 1 and forwards every payload; returns once the SUBACK arrived.
async fn subscriber(port: u16, filter: &str) -> mpsc::UnboundedReceiver<(String, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed, ready) = oneshot::channel();
    let mut opts = MqttOptions::new("docker-test-sub", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(opts, 1000);
    let filter = filter.to_string();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let _ = tx.send((topic, String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    timeout(DELIVERY, ready)
        .await
        .expect("subscribed in time")
        .expect("subscriber task alive");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_against_real_tdengine_and_mosquitto() {
    let (td, mq) = tokio::join!(RealTdengine::start(), RealMosquitto::start());
    // The seed's SQL as written (retrying the first statements until the new vgroup serves).
    td.ddl("create database db vgroups 1").await;
    td.wait_database("db").await;
    td.ddl("create table db.meters (ts timestamp, f1 int) tags(t1 int)")
        .await;
    for sql in [
        "create topic topic_meters as select ts, tbname, f1, t1 from db.meters",
        "insert into db.tb using db.meters tags(1) values(now, 1)",
    ] {
        td.exec(sql).await;
    }
    let mut rx = subscriber(mq.addr.port(), "test/topic_meters").await;
    // The seed's `taosx run` DSNs with the mapped ports.
    let config = BridgeConfig::from_dsns(
        &format!("tmq+ws://root:taosdata@127.0.0.1:{}/topic_meters?group.id=taosx-pub-test&auto.offset.reset=earliest", td.port),
        &format!("mqtt://{}?topic=test/topic_meters&qos=1&version=5.0&client_id=taosx-pub-meters", mq.addr),
    )
    .expect("the seed DSNs parse");
    let bridge = Bridge::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(bridge.run(async {
        let _ = stopped.await;
    }));

    let (topic, payload) = timeout(DELIVERY, rx.recv())
        .await
        .expect("the seed row arrived")
        .expect("subscriber alive");
    assert_eq!(topic, "test/topic_meters");
    let v: serde_json::Value = serde_json::from_str(&payload).expect("JSON payload");
    let ts = v["data"]["ts"].as_i64().expect("ts in ms");
    let vgroup = v["offset"]["vgroupId"].as_i64().expect("vgroupId");
    let offset = v["offset"]["offset"].as_i64().expect("offset");
    assert_eq!(
        payload,
        format!(
            r#"{{"data":{{"ts":{ts},"tbname":"tb","f1":1,"t1":1}},"offset":{{"database":"db","topic":"topic_meters","vgroupId":{vgroup},"offset":{offset}}}}}"#
        ),
        "the seed's message shape"
    );

    // More rows while the bridge runs: every one arrives.
    let mut sql = String::from("insert into db.tb values");
    for i in 2..=200 {
        sql.push_str(&format!(" (now + {i}a, {i})"));
    }
    td.exec(&sql).await;
    let mut seen = BTreeSet::from([1i64]);
    let all = async {
        while seen.len() < 200 {
            let (_, p) = rx.recv().await.expect("subscriber alive");
            let v: serde_json::Value = serde_json::from_str(&p).expect("JSON payload");
            seen.insert(v["data"]["f1"].as_i64().expect("f1"));
        }
    };
    timeout(DELIVERY, all).await.expect("all 200 rows arrived");

    let _ = stop.send(());
    let summary = timeout(DELIVERY, run)
        .await
        .expect("bridge stopped")
        .expect("bridge task")
        .expect("clean run");
    assert_eq!((summary.rows, summary.unacked_at_exit), (200, 0), "{summary:?}");
    assert!(
        summary.committed.keys().any(|(t, _)| t == "topic_meters"),
        "offsets committed to real TDengine: {summary:?}"
    );
}

/// `bridge/tests/e2e.rs`'s QoS × version case on real TDengine and Mosquitto: every row exactly once,
/// in per-table order, and every vgroup with data committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos_over_mqtt_311_and_5_delivers_every_row_exactly_once() {
    let (td, mq) = tokio::join!(RealTdengine::start(), RealMosquitto::start());
    td.meters(2).await;
    td.insert(4, 0..200).await;
    let vgroups = td.vgroups_with_tables().await;
    for version in [MqttVersion::V311, MqttVersion::V5] {
        for qos in 0..=2u8 {
            let tag = format!("q{qos}v{}", version.dsn_value().replace('.', ""));
            let mut sub = Subscriber::start(mq.addr, version, &format!("{tag}/#"), 2).await;
            let run = Running::start(
                &td.from(&tag),
                &mq.to(
                    version,
                    &format!("qos={qos}&client_id={tag}&topic={tag}/{{table}}"),
                ),
            );
            let got = sub.collect(200, DELIVERY).await;
            common::assert_every_row_in_table_order(&got, &tag, 4, 200);
            run.wait_committed("every vgroup with rows committed", |c| c.len() == vgroups)
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

/// Commit-after-ack on real TDengine: rows polled while the broker is gone are not committed, so a
/// second consumer of the group resumes exactly at them — and not before, since what was acknowledged
/// was committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_of_the_group_resumes_after_the_acknowledged_rows_only() {
    let (td, mq) = tokio::join!(RealTdengine::start(), RealMosquitto::start());
    td.meters(1).await;
    let mut sub = Subscriber::start(mq.addr, MqttVersion::V5, "c/#", 1).await;
    let mut config = BridgeConfig::from_dsns(
        &td.from("cab"),
        &mq.to(MqttVersion::V5, "qos=1&client_id=cab&topic=c/{table}"),
    )
    .expect("DSNs");
    config.shutdown_timeout = Duration::from_secs(1);
    let run = Running::start_config(config);
    td.insert(2, 0..100).await;
    let mut got = Vec::new();
    collect_all(&mut sub, &mut got, 100, Some(&run.stats)).await;
    let stats = run.stats.clone();
    common::wait_for("every delivered row acknowledged", DELIVERY, || {
        stats.acked.load(Relaxed) == 100 && stats.in_flight.load(Relaxed) == 0
    })
    .await;

    // Nothing can be acknowledged now: what is polled stays uncommitted.
    mq.stop().await;
    common::wait_for("the bridge saw the broker go", DELIVERY, || {
        !stats.mqtt_connected.load(Relaxed)
    })
    .await;
    td.insert(2, 100..150).await;
    common::wait_for("the new rows polled", DELIVERY, || {
        stats.rows.load(Relaxed) == 150
    })
    .await;
    let s = run.stop().await;
    assert_eq!((s.acked, s.unacked_at_exit), (100, 50), "{s:?}");
    assert_eq!(s.committed.len(), 1, "{s:?}");

    mq.start_again().await;
    let mut sub = Subscriber::start(mq.addr, MqttVersion::V5, "c2/#", 1).await;
    let second = Running::start(
        &td.from("cab"),
        &mq.to(MqttVersion::V5, "qos=1&client_id=cab2&topic=c2/{table}"),
    );
    // Real TDengine hands the vgroup over once the first consumer's leave is processed (a rebalance).
    let got = sub
        .collect_until(DELIVERY, |g| distinct_f1(g).is_superset(&(100..150).collect()))
        .await;
    let seen = distinct_f1(&got);
    assert_eq!(
        seen,
        (100..150).collect::<BTreeSet<u32>>(),
        "the group resumed elsewhere than its commit"
    );
    second.stop().await;
}

/// `bridge/tests/e2e.rs`'s broker restart on real TDengine, restarting the Mosquitto container: at
/// QoS 1 nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_container_restart_mid_stream_loses_nothing() {
    let (td, mq) = tokio::join!(RealTdengine::start(), RealMosquitto::start());
    td.meters(1).await;
    let mut sub = Subscriber::start(mq.addr, MqttVersion::V5, "r/#", 1).await;
    let run = Running::start(
        &td.from("restart"),
        &mq.to(MqttVersion::V5, "qos=1&client_id=restart&topic=r/{table}"),
    );
    td.insert(2, 0..500).await;
    let mut got = sub.collect(500, DELIVERY).await;
    td.insert(2, 500..1000).await;
    mq.stop().await;
    td.insert(2, 1000..1500).await;
    let stats = run.stats.clone();
    // The subscriber must be subscribed again before the bridge re-sends: wait until the bridge's
    // backoff has grown far beyond the subscriber's reconnect pace.
    common::wait_for("bridge retries", DELIVERY, || {
        stats.mqtt_failures.load(Relaxed) >= 5
    })
    .await;
    let may_lose = common::broker_may_have_lost(&mut sub, &mut got, &run.stats);
    mq.start_again().await;
    sub.wait_subscribed(DELIVERY).await;
    common::collect_all_after_outage(&mut sub, &mut got, 1500, may_lose, &run.stats).await;
    let s = run.stop().await;
    assert!(s.mqtt_connects >= 2, "{s:?}");
    assert_eq!(s.unacked_at_exit, 0, "{s:?}");
}

/// The harness scenario `qos1-v5` (a seeded meter fleet, MQTT 5 at QoS 1, no faults) with both
/// containers as its external world: the verdict passes as it does on the stand-in
/// (`tests/external_world.rs` runs the same against a stand-in and Mosquitto the harness did not start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_qos1_v5_against_real_tdengine_and_mosquitto() {
    let (td, mq) = tokio::join!(RealTdengine::start(), RealMosquitto::start());
    // Real TDengine brings a new database's vgroups up slower than the stand-in: create the scenario's
    // database here with retries, so the runner's `create database if not exists` finds it serving.
    let s = support::scenario("qos1-v5");
    td.ddl(&format!(
        "create database if not exists {} vgroups {}",
        s.data.db, s.data.vgroups
    ))
    .await;
    td.wait_database(&s.data.db).await;
    let result = support::run_in_external_world(s, &td.dsn(), &format!("mqtt://{}", mq.addr), STARTUP).await;
    support::assert_passed(&result);
}
