//! The `tmq2mqtt` binary: exit codes, one-line errors without passwords, help, version, `check`.

mod common;
use common::{distinct_f1, wait_status, Running, StandIn, Subscriber};

use std::{
    collections::BTreeSet,
    process::{Command, Output},
    time::Duration,
};

use simulator::{
    broker::{BrokerConfig, EmbeddedBroker, MqttVersion},
    mosquitto::Mosquitto,
};

const T: Duration = Duration::from_secs(30);

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(args)
        .env_remove("TMQ2MQTT_FROM")
        .env_remove("TMQ2MQTT_TO")
        .output()
        .expect("run tmq2mqtt")
}

const GOOD_FROM: &str = "tmq+ws://root:s3cret@127.0.0.1:6041/t?group.id=g";
const GOOD_TO: &str = "mqtt://u:hunter2@127.0.0.1:1883?version=5.0&client_id=c&topic=t";

#[test]
fn bad_input_exits_2_with_one_line_naming_the_parameter_and_no_password() {
    let cases = [
        (
            GOOD_FROM.replace("group.id=g", "group.id=g&colour=red"),
            GOOD_TO.to_string(),
            "unknown parameter `colour`",
        ),
        (
            "tmq+ws://root:s3cret@h/t".to_string(),
            GOOD_TO.to_string(),
            "missing required parameter `group.id`",
        ),
        (
            GOOD_FROM.to_string(),
            GOOD_TO
                .replace("5.0", "3.1")
                .replace("client_id=", "client_id=a-client-id-longer-than-23-bytes-"),
            "MQTT 3.1 client ids are 1 to 23 bytes long",
        ),
        (
            GOOD_FROM.to_string(),
            GOOD_TO.replace("topic=t", "topic=a/{nope}"),
            "unknown variable `{nope}`",
        ),
        (
            GOOD_FROM.to_string(),
            GOOD_TO.replace("mqtt://", "amqp://"),
            "unsupported scheme `amqp`",
        ),
        (
            GOOD_FROM.to_string(),
            GOOD_TO.replace("version=5.0", "version=5.0&qos=9"),
            "parameter `qos`: bad value `9`",
        ),
    ];
    for (from, to, want) in cases {
        for cmd in ["run", "check"] {
            let out = bin(&[cmd, "-f", &from, "-t", &to]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {from} {to}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains(want), "{stderr} should contain {want}");
            assert!(
                !stderr.contains("s3cret") && !stderr.contains("hunter2"),
                "{stderr}"
            );
        }
    }
}

#[test]
fn env_vars_work_and_missing_dsns_exit_2() {
    let out = bin(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--from") && stderr.contains("--to"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(["run"])
        .env("TMQ2MQTT_FROM", "tmq+ws://root:s3cret@h/t")
        .env("TMQ2MQTT_TO", GOOD_TO)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source DSN (-f/--from): missing required parameter `group.id`"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"));
}

#[test]
fn a_bad_worker_thread_count_is_one_line_from_the_flag_or_the_environment() {
    for (env, args) in [
        (None, vec!["--worker-threads", "0", "run"]),
        (Some("lots"), vec!["run"]),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"));
        cmd.args(&args).args(["-f", GOOD_FROM, "-t", GOOD_TO]);
        match env {
            Some(v) => cmd.env("TOKIO_WORKER_THREADS", v),
            None => cmd.env_remove("TOKIO_WORKER_THREADS"),
        };
        let out = cmd.output().expect("run tmq2mqtt");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("--worker-threads"), "{stderr}");
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("hunter2"),
            "{stderr}"
        );
    }
}

#[test]
fn help_has_worked_examples_and_version_prints() {
    let out = bin(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("tmq2mqtt run"),
        "{help}"
    );
    let out = bin(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--from") && help.contains("TMQ2MQTT_FROM") && help.contains("group.id="),
        "{help}"
    );
    let out = bin(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tmq2mqtt {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connects_to_both_ends_and_reports() {
    let td = StandIn::with_meters(2, "t").await;
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let from = format!("tmq+ws://root:taosdata@{}/t?group.id=chk", td.addr());
    let to = format!(
        "mqtt://{}?version=3.1.1&client_id=chk&topic=x",
        broker.v4_addr().unwrap()
    );
    let out = tokio::task::spawn_blocking(move || bin(&["check", "-f", &from, "-t", &to]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TDengine: subscribed to t"), "{stdout}");
    assert!(stdout.contains("MQTT: connected to"), "{stdout}");
    assert!(!stdout.contains("taosdata"), "password redacted: {stdout}");

    // An unknown topic is a clear failure (exit 1), not a hang.
    let from = format!("tmq+ws://root:taosdata@{}/nope?group.id=chk", td.addr());
    let to = format!(
        "mqtt://{}?version=3.1.1&client_id=chk&topic=x",
        broker.v4_addr().unwrap()
    );
    let out = tokio::task::spawn_blocking(move || bin(&["check", "-f", &from, "-t", &to, "--timeout", "5s"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("TDengine:") && !stdout.contains("subscribed"),
        "{stdout}"
    );
}

/// `tmq2mqtt check` beside a running bridge with the same DSNs: the check is its own MQTT client (a
/// broker drops the older of two connections with one client id), so the bridge keeps its connection and
/// its status, and goes on delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_beside_a_running_bridge_leaves_its_connection_and_status_alone() {
    let td = StandIn::with_meters(1, "t").await;
    let broker = Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)");
    let addr = broker.addr();
    td.insert(2, 0..10);
    let status = "bridges/plant/status";
    let mut live = Subscriber::start(addr, MqttVersion::V311, status, 1).await;
    let mut data = Subscriber::start(addr, MqttVersion::V311, "plant/#", 1).await;
    let from = td.earliest_dsn("t", "plant");
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
        live.settle(common::QUIET, T)
            .await
            .iter()
            .all(|m| m.payload != "offline"),
        "the check must never announce the bridge offline"
    );
    run.stop().await;
}
