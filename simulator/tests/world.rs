//! `world`: the stand-in, the broker and the fleet in one process. A bridge pointed at the DSNs
//! the world hands out (the in-process tmq2mqtt library) delivers every fleet row to an MQTT
//! subscriber — once through the library API, once through the `simulator world` binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use simulator::broker::BrokerConfig;
use simulator::meters::{FleetConfig, Reading, StopAfter};
use simulator::tdengine::TdConfig;
use simulator::world::{World, WorldConfig};
use tmq2mqtt::{Bridge, BridgeConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

const DEADLINE: Duration = Duration::from_secs(60);
use simulator::tdengine::fixture::BASE_TS;

/// A QoS 1 MQTT 5.0 subscriber (the bridge publishes with MQTT 5.0 properties, which rumqttd 0.20
/// cannot forward to 3.1.1 clients); returns once the subscription is acknowledged.
async fn subscribe(addr: SocketAddr, filter: &str) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut options = MqttOptions::new("world-test-sub", addr.ip().to_string(), addr.port());
    options.set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (subacked_tx, subacked_rx) = oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subacked = Some(subacked_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(s) = subacked.take() {
                        let _ = s.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    if tx.send((topic, p.payload.to_vec())).is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
    });
    timeout(DEADLINE, subacked_rx).await.expect("SUBACK").unwrap();
    rx
}

/// Collects messages until every expected `(table, ts)` arrived; returns the last value of each.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    expected: &BTreeMap<String, BTreeMap<i64, Reading>>,
) -> BTreeMap<(String, i64), (String, serde_json::Value)> {
    let want: usize = expected.values().map(|r| r.len()).sum();
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while got.len() < want {
        let (topic, payload) = timeout(deadline.saturating_duration_since(Instant::now()), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {want} rows arrived", got.len()))
            .expect("subscriber alive");
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let data = &json["data"];
        let table = data["tbname"].as_str().unwrap().to_string();
        let ts = data["ts"].as_i64().unwrap();
        got.insert((table, ts), (topic, data.clone()));
    }
    got
}

fn assert_rows_match(
    expected: &BTreeMap<String, BTreeMap<i64, Reading>>,
    got: &BTreeMap<(String, i64), (String, serde_json::Value)>,
    db: &str,
) {
    let f32_of = |v: &serde_json::Value| v.as_f64().map(|x| x as f32);
    for (table, rows) in expected {
        for (ts, reading) in rows {
            let (topic, data) = got
                .get(&(table.clone(), *ts))
                .unwrap_or_else(|| panic!("{table}@{ts} not delivered"));
            assert_eq!(topic, &format!("meters/{db}/{table}"));
            assert_eq!(f32_of(&data["current"]), reading.current, "{table}@{ts}");
            assert_eq!(data["voltage"].as_i64().map(|v| v as i32), reading.voltage);
            assert_eq!(f32_of(&data["phase"]), reading.phase, "{table}@{ts}");
        }
    }
    assert_eq!(
        got.len(),
        expected.values().map(|r| r.len()).sum::<usize>(),
        "no row that the fleet did not write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_rows_reach_a_subscriber_through_the_bridge() {
    let mut world = World::start(WorldConfig {
        tdengine: TdConfig::default(),
        broker: BrokerConfig::default(),
        fleet: Some(FleetConfig {
            meters: 5,
            stop: StopAfter::Rows(200),
            batch: 20,
            start_ms: BASE_TS,
            ..FleetConfig::default()
        }),
        ..WorldConfig::default()
    })
    .await
    .unwrap();
    assert!(world
        .bridge_command()
        .starts_with("tmq2mqtt run -f \"tmq+ws://root:taosdata@"));
    assert_eq!(world.subscribe_filter(), "meters/#");

    let v5 = world.broker().v5_addr().unwrap();
    let mut rx = subscribe(v5, &world.subscribe_filter()).await;
    let config = BridgeConfig::from_dsns(&world.tmq_dsn(), &world.mqtt_dsn()).unwrap();
    let (stop_bridge, stopped) = oneshot::channel::<()>();
    let bridge = tokio::spawn(Bridge::new(config).run(async move {
        let _ = stopped.await;
    }));

    let report = timeout(DEADLINE, world.wait_fleet())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.rows_written, 200, "{report}");
    let expected = world.write_log().unwrap().lock().expected_rows();
    let got = collect(&mut rx, &expected).await;
    assert_rows_match(&expected, &got, "power");

    let _ = stop_bridge.send(());
    let summary = timeout(DEADLINE, bridge).await.unwrap().unwrap().unwrap();
    assert!(summary.acked >= 200, "{summary:?}");
    assert!(
        world.stop().await.unwrap().is_none(),
        "fleet report was already taken"
    );
}

/// Reads `key: value` lines of `simulator world` until `ready`.
fn read_banner(stdout: &mut impl BufRead) -> BTreeMap<String, String> {
    let mut lines = BTreeMap::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "world exited before ready: {lines:?}"
        );
        let line = line.trim_end();
        if line.starts_with("ready") {
            return lines;
        }
        if let Some((k, v)) = line.split_once(": ") {
            lines.insert(k.to_string(), v.to_string());
        }
    }
}

/// The `-f` and `-t` DSNs of the printed `tmq2mqtt run -f "…" -t "…"` command.
fn bridge_dsns(command: &str) -> (String, String) {
    let parts: Vec<&str> = command.split('"').collect();
    assert_eq!(parts[0], "tmq2mqtt run -f ", "{command}");
    assert_eq!(parts[2], " -t ", "{command}");
    (parts[1].to_string(), parts[3].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_command_starts_serves_and_stops() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args([
            "world",
            "--tdengine-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--mqtt-listen-v5",
            "127.0.0.1:0",
            "--meters",
            "3",
            "--rows",
            "60",
            "--rate",
            "1000",
            "--start-ms",
            &BASE_TS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let banner = tokio::task::spawn_blocking(move || {
        let banner = read_banner(&mut stdout);
        (banner, stdout)
    });
    let (banner, mut stdout) = timeout(DEADLINE, banner).await.unwrap().unwrap();
    assert!(
        !banner["tdengine"].contains("taosdata"),
        "password printed: {banner:?}"
    );
    let (from, to) = bridge_dsns(&banner["bridge"]);
    let v5: SocketAddr = banner["mqtt-v5"]
        .trim_start_matches("mqtt://")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let mut rx = subscribe(v5, &banner["subscribe"]).await;
    let config = BridgeConfig::from_dsns(&from, &to).unwrap();
    let (stop_bridge, stopped) = oneshot::channel::<()>();
    let bridge = tokio::spawn(Bridge::new(config).run(async move {
        let _ = stopped.await;
    }));

    // The world's fleet is deterministic: the same script run locally tells which rows to expect.
    let mut write_log = simulator::meters::WriteLog::new("power");
    let script = FleetConfig {
        meters: 3,
        create: true,
        start_ms: BASE_TS,
        ..FleetConfig::default()
    };
    for step in simulator::meters::Plan::new(&script, Some(60)) {
        write_log.record(&step, Ok(()), false).unwrap();
    }
    let expected = write_log.expected_rows();
    let got = collect(&mut rx, &expected).await;
    assert_rows_match(&expected, &got, "power");

    let _ = stop_bridge.send(());
    timeout(DEADLINE, bridge).await.unwrap().unwrap().unwrap();

    // SIGTERM stops the world gracefully.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(stdout.get_mut(), &mut rest);
        let status = child.wait().unwrap();
        (rest, status)
    });
    let (rest, status) = timeout(DEADLINE, rest).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    assert!(rest.contains("fleet done: wrote 60 rows"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_command_never_shows_a_chosen_password() {
    let world = World::start(WorldConfig {
        tdengine: TdConfig {
            password: "td-secret".into(),
            ..TdConfig::default()
        },
        broker: BrokerConfig {
            credentials: Some(simulator::broker::Credentials {
                username: "bridge".into(),
                password: "mq-secret".into(),
            }),
            ..BrokerConfig::default()
        },
        fleet: None,
        ..WorldConfig::default()
    })
    .await
    .unwrap();
    let command = world.bridge_command();
    assert!(!command.contains("secret"), "{command}");
    assert!(command.contains("root:${TDENGINE_PASSWORD}@"), "{command}");
    assert!(
        command.contains("bridge:${SIMULATOR_MQTT_PASSWORD}@"),
        "{command}"
    );
    // The unredacted DSNs work as given.
    assert!(world.tmq_dsn().contains("root:td-secret@"));
    assert!(world.mqtt_dsn().contains("bridge:mq-secret@"));
    BridgeConfig::from_dsns(&world.tmq_dsn(), &world.mqtt_dsn()).unwrap();
    world.stop().await.unwrap();
}
