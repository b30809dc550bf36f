//! `tmq+wss://` end to end: the stand-in's TLS listener (certificate from a test CA) → the bridge (its
//! TLS tunnel verifying against `ca=`, the official client inside) → embedded rumqttd → a subscriber.
//! An untrusted certificate (wrong CA, no CA so only the system roots, expired, a self-signed CA
//! certificate as the server's own) ends the binary at once with one line naming the problem and a
//! non-zero exit, never printing the password. An unreachable TDengine is retried with the tunnel's
//! reason; a dropped TLS connection resubscribes.

mod common;
use common::{distinct_f1, f1_of, Running, Subscriber};

use std::time::Duration;

use simulator::{
    broker::{BrokerConfig, EmbeddedBroker, MqttVersion},
    tdengine::{server::TdTls, TdConfig, TdServer},
    tls::{CertAndKey, TestPki},
};
use taos::{AsyncQueryable, AsyncTBuilder};
use tmq2mqtt::wss::Tunnel;

const T: Duration = Duration::from_secs(30);

async fn tls_stand_in(cert: CertAndKey) -> TdServer {
    TdServer::start(TdConfig {
        tls: Some(TdTls {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }),
        ..TdConfig::default()
    })
    .await
    .expect("TLS stand-in")
}

/// Writes `pem` to a file in `dir` and returns `@path` for a DSN's `ca=`.
fn ca_file(dir: &tempfile::TempDir, name: &str, pem: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, pem).unwrap();
    format!("@{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_over_tmq_wss_with_a_private_ca_delivers_the_seed_message() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let td = tls_stand_in(pki.server_cert().unwrap()).await;
    let port = td.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, "ca.pem", &pki.ca_pem());
    // The seed's SQL through the official client, over the same verified TLS tunnel the bridge uses.
    let tunnel = Tunnel::start("localhost", port, Some(&pki.ca_pem()))
        .await
        .unwrap();
    let taos = taos::TaosBuilder::from_dsn(format!("ws://root:taosdata@{}", tunnel.addr()))
        .unwrap()
        .build()
        .await
        .unwrap();
    for sql in [
        "create database db vgroups 1",
        "create table db.meters (ts timestamp, f1 int) tags(t1 int)",
        "create topic topic_meters as select ts, tbname, f1, t1 from db.meters",
        "insert into db.tb using db.meters tags(1) values(now, 1)",
    ] {
        tokio::time::timeout(T, taos.exec(sql))
            .await
            .expect("in time")
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let mqtt = broker.v5_addr().unwrap();
    let mut sub = Subscriber::start(mqtt, MqttVersion::V5, "test/topic_meters", 1).await;
    let run = Running::start(
        &format!(
            "tmq+wss://root:taosdata@localhost:{port}/topic_meters?group.id=taosx-pub-test\
             &auto.offset.reset=earliest&ca={ca}"
        ),
        &format!(
            "mqtt://127.0.0.1:{}?topic=test/topic_meters&qos=1&version=5.0&client_id=taosx-pub-meters",
            mqtt.port()
        ),
    );
    let got = sub.collect(1, T).await;
    let v: serde_json::Value = serde_json::from_str(&got[0].payload).unwrap();
    let ts = v["data"]["ts"].as_i64().expect("ts");
    let offset = v["offset"]["offset"].as_i64().expect("offset");
    assert_eq!(
        got[0].payload,
        format!(
            r#"{{"data":{{"ts":{ts},"tbname":"tb","f1":1,"t1":1}},"offset":{{"database":"db","topic":"topic_meters","vgroupId":2,"offset":{offset}}}}}"#
        )
    );
    run.wait_committed("the seed row committed", |c| {
        c.get(&("topic_meters".into(), 2)) == Some(&(offset + 1))
    })
    .await;
    // More rows while the stream is live, then exactly those rows and no others.
    for i in 2..=50 {
        taos.exec(format!(
            "insert into db.tb values({}, {i})",
            1_700_000_000_000i64 + i
        ))
        .await
        .unwrap();
    }
    let more = sub.collect(49, T).await;
    let mut f1: Vec<u32> = more.iter().map(f1_of).collect();
    f1.sort();
    assert_eq!(f1, (2..=50).collect::<Vec<u32>>());
    let s = run.stop().await;
    assert_eq!((s.rows, s.acked, s.unacked_at_exit), (50, 50, 0), "{s:?}");
}

/// Runs `tmq2mqtt run` to its exit (bounded by the deadline): (exit code, stderr).
async fn run_bin(from: &str, to: &str) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(["run", "-f", from, "-t", to])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tmq2mqtt");
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .expect("exits promptly instead of retrying forever")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_tdengine_certificate_is_one_fatal_line() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let other = TestPki::new("some other CA").unwrap();
    let good = tls_stand_in(pki.server_cert().unwrap()).await;
    let expired = tls_stand_in(pki.expired_server_cert().unwrap()).await;
    let openssl_style = TestPki::self_signed_ca_as_server().unwrap();
    let self_signed_ca = tls_stand_in(openssl_style.clone()).await;
    good.store()
        .execute("create database db vgroups 1", &mut None)
        .unwrap();
    good.store()
        .execute(
            "create stable db.m (ts timestamp, f1 int) tags (t1 int)",
            &mut None,
        )
        .unwrap();
    good.store()
        .execute("create topic t as select ts, f1 from db.m", &mut None)
        .unwrap();
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let to = format!(
        "mqtt://{}?version=3.1.1&qos=1&client_id=wss-bad&topic=x",
        broker.v4_addr().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = ca_file(&dir, "wrong.pem", &other.ca_pem());
    let right_ca = ca_file(&dir, "right.pem", &pki.ca_pem());
    let itself = ca_file(&dir, "itself.pem", &openssl_style.cert_pem);
    let dsn = |port: u16, ca: &str| format!("tmq+wss://root:s3cret@127.0.0.1:{port}/t?group.id=g{ca}");
    for (from, want) in [
        (
            dsn(good.addr().port(), &format!("&ca={wrong_ca}")),
            ["not trusted", "UnknownIssuer", "`ca` from the source DSN"],
        ),
        (
            dsn(good.addr().port(), ""),
            ["not trusted", "UnknownIssuer", "system's root certificates"],
        ),
        (
            dsn(expired.addr().port(), &format!("&ca={right_ca}")),
            ["not trusted", "Expired", "`ca` from the source DSN"],
        ),
        (
            dsn(self_signed_ca.addr().port(), &format!("&ca={itself}")),
            ["not trusted", "CaUsedAsEndEntity", "CA:FALSE"],
        ),
    ] {
        let (code, stderr) = run_bin(&from, &to).await;
        eprintln!("{}", stderr.trim());
        assert_eq!(code, Some(1), "{from}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        for w in want {
            assert!(stderr.contains(w), "{stderr} should contain {w}");
        }
        assert!(!stderr.contains("s3cret"), "password shown: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_on_a_plain_source_and_client_certificates_are_refused_at_parse_time() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, "ca.pem", &pki.ca_pem());
    let to = "mqtt://127.0.0.1:1883?version=3.1.1&client_id=c&topic=x";
    for (from, want) in [
        (
            format!("tmq+ws://h:6041/t?group.id=g&ca={ca}"),
            "only for TLS: use a tmq+wss:// DSN",
        ),
        (
            format!("tmq+wss://h:6041/t?group.id=g&cert={ca}"),
            "client certificates are not supported towards TDengine",
        ),
        (
            "tmq+wss://h:6041/t?group.id=g&ca=@/nonexistent/ca.pem".to_string(),
            "cannot read PEM file",
        ),
    ] {
        let err = tmq2mqtt::BridgeConfig::from_dsns(&from, to)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_goes_through_the_tunnel_and_names_an_untrusted_certificate() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let other = TestPki::new("some other CA").unwrap();
    let td = tls_stand_in(pki.server_cert().unwrap()).await;
    for sql in [
        "create database db vgroups 2",
        "create stable db.m (ts timestamp, f1 int) tags (t1 int)",
        "create topic t as select ts, f1 from db.m",
    ] {
        td.store().execute(sql, &mut None).unwrap();
    }
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let to = format!(
        "mqtt://{}?version=3.1.1&qos=1&client_id=wss-check&topic=x",
        broker.v4_addr().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = td.addr().port();
    for (ca, ok, want) in [
        (pki.ca_pem(), true, "TDengine: subscribed to t"),
        (other.ca_pem(), false, "UnknownIssuer"),
    ] {
        let ca = ca_file(&dir, if ok { "right.pem" } else { "wrong.pem" }, &ca);
        let from = format!("tmq+wss://root:taosdata@localhost:{port}/t?group.id=g&ca={ca}");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
            .args(["check", "-f", &from, "-t", &to])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // `check` must not wait for the client's 29 s ping to notice anything.
        let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
            .await
            .expect("check ends")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.success(), ok, "{stdout}");
        assert!(stdout.contains(want), "{stdout}");
        assert!(!stdout.contains("taosdata"), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_keeps_working_after_its_tunnel_is_dropped() {
    use taos::AsAsyncConsumer;
    let pki = TestPki::new("TDengine test CA").unwrap();
    let td = tls_stand_in(pki.server_cert().unwrap()).await;
    for sql in [
        "create database db vgroups 1",
        "create stable db.m (ts timestamp, f1 int) tags (t1 int)",
        "create topic t as select ts, f1 from db.m",
        "insert into db.d0 using db.m tags (1) values (1700000000000, 7)",
    ] {
        td.store().execute(sql, &mut None).unwrap();
    }
    let tunnel = Tunnel::start("localhost", td.addr().port(), Some(&pki.ca_pem()))
        .await
        .unwrap();
    let dsn = format!(
        "ws://root:taosdata@{}?group.id=g&auto.offset.reset=earliest",
        tunnel.addr()
    );
    let mut consumer = taos::TmqBuilder::from_dsn(dsn).unwrap().build().await.unwrap();
    consumer.subscribe(["t"]).await.unwrap();
    drop(tunnel);
    // Bounded well below the client's 29 s ping, which would otherwise be what notices a cut.
    let polled = tokio::time::timeout(
        Duration::from_secs(10),
        consumer.recv_timeout(taos::Timeout::Duration(Duration::from_secs(5))),
    )
    .await
    .expect("the relayed connection still answers")
    .unwrap();
    assert!(polled.is_some(), "the row is polled through the old relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_tdengine_is_retried_with_the_tunnels_reason() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, "ca.pem", &pki.ca_pem());
    // A port held bound but never listening: every connect is refused, and nobody else can take it.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let mqtt = broker.v4_addr().unwrap();
    let run = Running::start(
        &format!("tmq+wss://root:taosdata@127.0.0.1:{port}/t?group.id=g&ca={ca}"),
        &format!("mqtt://{mqtt}?version=3.1.1&qos=1&client_id=unreachable&topic=x"),
    );
    let stats = run.stats.clone();
    common::wait_for("two failed attempts", T, || {
        stats.tmq_failures.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;
    let error = stats.last_error().expect("an error is reported");
    assert!(
        error.starts_with(&format!("TDengine: cannot connect to 127.0.0.1:{port}: ")),
        "{error}"
    );
    assert!(!error.contains("taosdata"), "{error}");
    assert!(!run.task.is_finished(), "retried, not fatal");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tls_connection_resubscribes_through_the_tunnel() {
    let pki = TestPki::new("TDengine test CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, "ca.pem", &pki.ca_pem());
    let td = tls_stand_in(pki.server_cert().unwrap()).await;
    let sql = |s: &str| td.store().execute(s, &mut None).unwrap();
    sql("create database db vgroups 2");
    sql("create stable db.m (ts timestamp, f1 int) tags (t1 int)");
    sql("create topic t as select ts, f1 from db.m");
    let insert = |ids: std::ops::Range<i64>| {
        for id in ids {
            sql(&format!(
                "insert into db.d{} using db.m tags (1) values ({}, {id})",
                id % 4,
                1_700_000_000_000 + id
            ));
        }
    };
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let mqtt = broker.v4_addr().unwrap();
    let mut sub = Subscriber::start(mqtt, MqttVersion::V311, "drop/#", 1).await;
    let run = Running::start(
        &format!(
            "tmq+wss://root:taosdata@localhost:{}/t?group.id=g&auto.offset.reset=earliest&ca={ca}",
            td.addr().port()
        ),
        &format!("mqtt://{mqtt}?version=3.1.1&qos=1&client_id=drop&topic=drop/x"),
    );
    insert(0..50);
    let mut got = sub.collect(50, T).await;
    // Quiet before the drop: every delivered row's message committed (TDengine answered), so a resubscribe
    // that resumes from the committed offsets sends none of rows 0..50 again; one that re-reads from
    // `earliest` sends all of them. Rows written after the drop may come twice: the bridge's consumers
    // (one per vgroup) rejoin one at a time, and a vgroup the first one read moves to the second, which
    // reads it again from the commit.
    run.wait_committed("the delivered rows committed", |c| {
        common::uncommitted(&got, "t", c) == 0
    })
    .await;
    let before = got.len();
    td.drop_connections();
    insert(50..100);
    common::collect_all(&mut sub, &mut got, 100, Some(&run.stats)).await;
    // Late copies count too.
    got.extend(sub.settle(common::QUIET, T).await);
    assert_eq!(distinct_f1(&got), (0..100).collect());
    let s = run.stop().await;
    assert!(s.tmq_subscribes >= 2 && s.tmq_failures >= 1, "{s:?}");
    let again: Vec<(u32, (i32, i64))> = got[before..]
        .iter()
        .map(|m| (common::f1_of(m), common::message_of(m)))
        .filter(|(f1, _)| *f1 < 50)
        .collect();
    assert!(
        again.is_empty(),
        "rows committed before the TLS connection dropped came again, (f1, (vgroup, offset)): {again:?}: the \
         resubscribe did not resume from the committed offset"
    );
}
