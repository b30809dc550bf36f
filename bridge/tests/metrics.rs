//! Operability of the binary: `tmq2mqtt run --metrics-addr` serves Prometheus `/metrics` and `/healthz`
//! (stand-in → bridge → embedded rumqttd), and `--log-format json` writes JSON lines on stderr.

mod common;
use common::StandIn;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use simulator::broker::{BrokerConfig, EmbeddedBroker, MqttVersion};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const T: Duration = Duration::from_secs(30);
const ROWS: u64 = 50;

/// The bridge process, killed when the test ends (also on a failed assertion).
struct Bin(Child);

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the stand-in (database `db`, topic `t`) and the broker; returns the bridge's DSNs.
async fn world(group: &str) -> (StandIn, EmbeddedBroker, String, String) {
    let td = StandIn::with_meters(2, "t").await;
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let from = td.from("t", &format!("group.id={group}&auto.offset.reset=earliest"));
    let to = format!(
        "mqtt://{}?version=3.1.1&qos=1&client_id={group}&topic=m/{{table}}",
        broker.addr(MqttVersion::V311).unwrap()
    );
    (td, broker, from, to)
}

/// One GET; `None` while the server is not (or no longer) answering.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of an unlabelled sample `name` in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// The value of sample `name` whose labels include every `(key, value)` of `labels`.
fn labelled(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().find_map(|l| {
        let (head, value) = l.strip_prefix(name)?.strip_prefix('{')?.rsplit_once("} ")?;
        let pairs = head.split(',');
        labels
            .iter()
            .all(|(k, v)| pairs.clone().any(|p| p == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Polls `path` until `done(status, body)` holds; panics with the last answer at the deadline.
async fn poll(addr: SocketAddr, path: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let last = get(addr, path).await;
        if let Some((status, body)) = &last {
            if done(*status, body) {
                return body.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out polling {path}; last answer: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_acknowledged_rows_and_healthz_follows_the_broker() {
    let (td, mut broker, from, to) = world("metrics").await;
    let (_bin, addr) = bridge(&from, &to);

    poll(addr, "/healthz", |status, _| status == 200).await;
    let mut sql = String::from("insert into");
    for t in 0..2 {
        sql.push_str(&format!(" db.d{t} using db.meters tags ({t}) values"));
        for i in (0..ROWS).filter(|i| i % 2 == t) {
            sql.push_str(&format!(" ({}, {i})", 1_700_000_000_000 + i));
        }
    }
    td.store().execute(&sql, &mut None).expect("insert");

    let page = poll(addr, "/metrics", |_, body| {
        sample(body, "tmq2mqtt_acknowledged_total") == Some(ROWS as f64)
    })
    .await;
    assert_eq!(
        sample(&page, "tmq2mqtt_rows_received_total"),
        Some(ROWS as f64),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tmq2mqtt_published_total"),
        Some(ROWS as f64),
        "{page}"
    );
    for line in [
        "tmq2mqtt_connected{side=\"mqtt\"} 1",
        "tmq2mqtt_connected{side=\"tmq\"} 1",
        "tmq2mqtt_reconnects_total{side=\"mqtt\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "no `{line}` in\n{page}");
    }
    // Every row acknowledged: the commit frontier reaches each vgroup's offsets.
    let page = poll(addr, "/metrics", |_, body| {
        body.lines()
            .filter(|l| l.starts_with("tmq2mqtt_committed_offset{"))
            .count()
            == 2
            && sample(body, "tmq2mqtt_in_flight") == Some(0.0)
    })
    .await;
    assert!(page.contains("topic=\"t\""), "{page}");
    assert_eq!(get(addr, "/nope").await.map(|r| r.0), Some(404));

    broker.stop().await;
    let body = poll(addr, "/healthz", |status, _| status == 503).await;
    assert!(body.contains("mqtt connected: false"), "{body}");
    let page = poll(addr, "/metrics", |_, body| {
        body.lines().any(|l| l == "tmq2mqtt_connected{side=\"mqtt\"} 0")
    })
    .await;
    assert!(
        page.contains("tmq2mqtt_connection_failures_total{side=\"mqtt\"}"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_json_lines_on_stderr() {
    let (_td, _broker, from, to) = world("jsonlog").await;
    let (_bin, rx) = spawn_logging_json(&from, &to);
    // The first info line is the metrics listener's, written at startup.
    let line = rx.recv_timeout(T).expect("a log line on stderr");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(v["timestamp"].is_string(), "{line}");
    assert!(v["fields"]["message"].is_string(), "{line}");
}

/// Starts the bridge binary with JSON logs at `info` and `/metrics` on a port the OS picks; returns its
/// stderr lines, drained for the whole run so the bridge never blocks on a full pipe.
fn spawn_logging_json(from: &str, to: &str) -> (Bin, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(["run", "-f", from, "-t", to, "--metrics-addr", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tmq2mqtt");
    let stderr = child.stderr.take().unwrap();
    let bin = Bin(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (bin, rx)
}

/// Starts the bridge binary serving `/metrics` and returns the address it logged (nothing has to stay free
/// between picking a port and binding it).
fn bridge(from: &str, to: &str) -> (Bin, SocketAddr) {
    let (bin, rx) = spawn_logging_json(from, to);
    let deadline = std::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the bridge logged where it serves /metrics");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "serving /metrics and /healthz" {
            let addr = v["fields"]["addr"].as_str().expect("addr field");
            return (bin, addr.parse().expect("a socket address"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_the_wal_versions_not_yet_committed_per_vgroup() {
    let (td, mut broker, from, to) = world("lag").await;
    let store = td.store();
    // One table in each of the two vgroups.
    let mut tables: Vec<(String, i32)> = Vec::new();
    for t in 0..16 {
        let sql = format!("create table db.d{t} using db.meters tags ({t})");
        store.execute(&sql, &mut None).expect(&sql);
        let vg = store.table("db", &format!("d{t}")).unwrap().vgroup;
        if tables.iter().all(|(_, v)| *v != vg) {
            tables.push((format!("d{t}"), vg));
        }
    }
    assert_eq!(tables.len(), 2, "no table in one of the vgroups: {tables:?}");
    let mut ts = 1_700_000_000_000i64;
    let mut insert = |table: &str| {
        ts += 1;
        let sql = format!("insert into db.{table} values ({ts}, 1)");
        store.execute(&sql, &mut None).expect(&sql);
    };
    // A row in each table after its creation: the last WAL entry of each vgroup is delivered.
    for (table, _) in &tables {
        insert(table);
    }
    let (_bin, addr) = bridge(&from, &to);
    let lag_of = |page: &str, vg: i32| {
        labelled(
            page,
            "tmq2mqtt_lag",
            &[("topic", "t"), ("vgroup", &vg.to_string())],
        )
    };
    let committed_of = |page: &str, vg: i32| {
        labelled(
            page,
            "tmq2mqtt_committed_offset",
            &[("topic", "t"), ("vgroup", &vg.to_string())],
        )
    };
    // Idle, everything acknowledged: the lag is what the WAL holds after the commit — the commit's own
    // TMQ_COMMIT_OFFSET entry (a commit takes a WAL version, as in TDengine), no data.
    let end_of = |vg: i32| (store.wal(vg).unwrap().lock().last_version() + 1) as f64;
    let settled = |body: &str, acked: f64| {
        sample(body, "tmq2mqtt_acknowledged_total") == Some(acked)
            && tables.iter().all(|(_, vg)| {
                matches!((lag_of(body, *vg), committed_of(body, *vg)),
                    (Some(lag), Some(c)) if lag == end_of(*vg) - c && lag <= 2.0)
            })
    };
    let page = poll(addr, "/metrics", |_, body| settled(body, 2.0)).await;
    let committed: Vec<f64> = tables
        .iter()
        .map(|(_, vg)| committed_of(&page, *vg).expect(&page))
        .collect();

    // Nothing can be acknowledged, so nothing is committed: every write is lag.
    broker.stop().await;
    poll(addr, "/healthz", |status, _| status == 503).await;
    let pending = [3usize, 5];
    for ((table, _), n) in tables.iter().zip(pending) {
        for _ in 0..n {
            insert(table);
        }
    }
    let page = poll(addr, "/metrics", |_, body| {
        tables
            .iter()
            .zip(pending)
            .all(|((_, vg), n)| lag_of(body, *vg).is_some_and(|l| l >= n as f64))
            && sample(body, "tmq2mqtt_rows_received_total") == Some(10.0)
    })
    .await;
    for ((_, vg), before) in tables.iter().zip(&committed) {
        assert_eq!(
            committed_of(&page, *vg),
            Some(*before),
            "committed without a broker\n{page}"
        );
        // The lag is the stand-in's own WAL end (last version + 1) minus the commit.
        let end = store.wal(*vg).unwrap().lock().last_version() + 1;
        assert_eq!(lag_of(&page, *vg), Some((end as f64) - before), "{page}");
    }

    broker.restart().await.expect("broker restart");
    let page = poll(addr, "/metrics", |_, body| settled(body, 10.0)).await;
    for ((_, vg), before) in tables.iter().zip(&committed) {
        let after = committed_of(&page, *vg).expect(&page);
        assert!(
            after > *before,
            "vgroup {vg}: commit did not move ({before} -> {after})\n{page}"
        );
    }
}
