//! Opt-in: the seed example end to end against the real `tdengine/tdengine` and `eclipse-mosquitto`
//! images, started with testcontainers (`cargo test -p harness --features docker-tests --test docker`).
//!
//! Without Docker these tests fail with a message saying so: they are never skipped, so a run without
//! Docker can never be mistaken for a pass. Image tags can be overridden with `TDENGINE_IMAGE_TAG` and
//! `MOSQUITTO_IMAGE_TAG`.
#![cfg(feature = "docker-tests")]

use std::collections::BTreeSet;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use taos::{AsyncQueryable, AsyncTBuilder};
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

/// Starts a container or fails the test with a message that names the cause.
async fn start(
    image: testcontainers::ContainerRequest<GenericImage>,
    what: &str,
) -> ContainerAsync<GenericImage> {
    match timeout(STARTUP, image.start()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "docker-tests need a running Docker daemon that can pull {what} \
             (set DOCKER_HOST or start dockerd; without Docker leave the `docker-tests` feature off): {e}"
        ),
        Err(_) => panic!("{what} did not start within {STARTUP:?}"),
    }
}

/// Real TDengine (taosd + taosAdapter); returns the container and the adapter's host port.
async fn tdengine() -> (ContainerAsync<GenericImage>, u16) {
    let image = GenericImage::new("tdengine/tdengine", &tag("TDENGINE_IMAGE_TAG", "3.3.6.0"))
        .with_exposed_port(6041.tcp())
        .with_wait_for(WaitFor::Nothing)
        .with_startup_timeout(STARTUP);
    let c = start(image, "tdengine/tdengine").await;
    let port = c
        .get_host_port_ipv4(6041)
        .await
        .expect("TDengine's mapped port 6041");
    (c, port)
}

/// Mosquitto 2 with an anonymous listener on 1883 (its default config only listens on localhost).
async fn mosquitto() -> (ContainerAsync<GenericImage>, u16) {
    let image = GenericImage::new("eclipse-mosquitto", &tag("MOSQUITTO_IMAGE_TAG", "2"))
        .with_exposed_port(1883.tcp())
        .with_wait_for(WaitFor::message_on_either_std("running"))
        .with_cmd([
            "sh",
            "-c",
            "printf 'listener 1883\\nallow_anonymous true\\nmax_queued_messages 1000000\\n' \
             > /tmp/m.conf && exec mosquitto -c /tmp/m.conf",
        ])
        .with_startup_timeout(STARTUP);
    let c = start(image, "eclipse-mosquitto").await;
    let port = c
        .get_host_port_ipv4(1883)
        .await
        .expect("Mosquitto's mapped port 1883");
    (c, port)
}

/// Connects the official client, retrying until taosAdapter accepts (the container starts taosd first).
async fn taos_client(port: u16) -> taos::Taos {
    let dsn = format!("ws://root:taosdata@127.0.0.1:{port}");
    let connect = async {
        loop {
            match taos::TaosBuilder::from_dsn(&dsn).unwrap().build().await {
                Ok(t) if t.server_version().await.is_ok() => return t,
                // Retry pacing while the server starts, not synchronisation.
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    };
    timeout(STARTUP, connect)
        .await
        .expect("taosAdapter accepted a connection in time")
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
    let ((_td, td_port), (_mq, mq_port)) = tokio::join!(tdengine(), mosquitto());
    let taos = taos_client(td_port).await;
    // The seed's SQL as written.
    for sql in [
        "create database db vgroups 1",
        "create table db.meters (ts timestamp, f1 int) tags(t1 int)",
        "create topic topic_meters as select ts, tbname, f1, t1 from db.meters",
        "insert into db.tb using db.meters tags(1) values(now, 1)",
    ] {
        taos.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let mut rx = subscriber(mq_port, "test/topic_meters").await;
    // The seed's `taosx run` DSNs with the mapped ports.
    let config = BridgeConfig::from_dsns(
        &format!("tmq+ws://root:taosdata@127.0.0.1:{td_port}/topic_meters?group.id=taosx-pub-test&auto.offset.reset=earliest"),
        &format!("mqtt://127.0.0.1:{mq_port}?topic=test/topic_meters&qos=1&version=5.0&client_id=taosx-pub-meters"),
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
    taos.exec(&sql).await.expect("insert 199 rows");
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
