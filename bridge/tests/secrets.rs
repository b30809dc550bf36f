//! No password from either DSN reaches what the binary prints: logs at `trace` in text and JSON, errors,
//! `/metrics` and `check`'s report — through a connect, a refused password on each side and reconnects.
//!
//! Each password has an alphanumeric core that every printed form of it keeps (percent-encoding and the
//! `Debug`/JSON escapes only touch its `"`, `\` and `!`), so looking for the core finds any form. The
//! official `taos` client logs its connect request, password included, at `trace`: the test also checks
//! that the mask is there, so it fails if the client stopped logging it (and the test proved nothing).

mod common;
use common::StandIn;

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use simulator::{
    broker::{BrokerConfig, Credentials, EmbeddedBroker, MqttVersion},
    tdengine::{TdConfig, TdServer},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const T: Duration = Duration::from_secs(30);

/// (password, its core). The source passwords hold `"` and `\` (escaped by JSON and `Debug`), the
/// target ones `!` (percent-encoded in the DSN).
const TD: (&str, &str) = (r#"Td"Xq7Zk\pw"#, "Xq7Zk");
const TD_WRONG: (&str, &str) = (r#"Wr"Jv9Nb\pw"#, "Jv9Nb");
const MQ: (&str, &str) = ("Mq!Wm4Rp!pw", "Wm4Rp");
const MQ_WRONG: (&str, &str) = ("Wr!Hc2Ls!pw", "Hc2Ls");

fn signal(name: &str, pid: u32) {
    Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill");
}

fn enc(password: &str) -> String {
    percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC).to_string()
}

struct World {
    td: StandIn,
    broker: EmbeddedBroker,
}

impl World {
    async fn start() -> World {
        let server = TdServer::start(TdConfig {
            password: TD.0.into(),
            ..TdConfig::default()
        })
        .await
        .expect("stand-in");
        let td = StandIn { server };
        td.create_meters(2, "t");
        let broker = EmbeddedBroker::start(BrokerConfig {
            credentials: Some(Credentials {
                username: "mq".into(),
                password: MQ.0.into(),
            }),
            ..BrokerConfig::default()
        })
        .await
        .expect("broker");
        World { td, broker }
    }

    fn from(&self, password: &str) -> String {
        format!(
            "tmq+ws://root:{}@{}/t?group.id=g&auto.offset.reset=earliest",
            enc(password),
            self.td.addr()
        )
    }

    fn to(&self, password: &str) -> String {
        format!(
            "mqtt://mq:{}@{}?version=3.1.1&qos=1&client_id=secrets&topic=m/{{table}}",
            enc(password),
            self.broker.addr(MqttVersion::V311).unwrap()
        )
    }
}

/// A child `tmq2mqtt` whose stdout and stderr are captured line by line (killed on drop).
struct Bin {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
}

impl Drop for Bin {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Bin {
    fn spawn(args: &[&str]) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
            .args(args)
            .env("RUST_LOG", "trace")
            .env_remove("TMQ2MQTT_FROM")
            .env_remove("TMQ2MQTT_TO")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tmq2mqtt");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let (lines, tx) = (lines.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Bin {
            child: Some(child),
            lines,
            rx,
        }
    }

    /// Waits for the exit (at most `T`) and returns the code and everything printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let Ok(status) = exited.recv_timeout(T) else {
            signal("KILL", pid);
            panic!("tmq2mqtt did not exit within {T:?}");
        };
        let status = status.expect("wait");
        // The reader threads end at EOF: wait for them through the channel closing.
        while self.rx.recv_timeout(T).is_ok() {}
        (status.code(), self.lines.lock().unwrap().join("\n"))
    }

    fn terminate(&self) {
        signal("TERM", self.child.as_ref().expect("running").id());
    }

    /// The `/metrics` address the bridge logged (JSON log lines).
    fn metrics_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .rx
                .recv_timeout(left)
                .expect("the bridge logged where it serves /metrics");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "serving /metrics and /healthz" {
                return v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        }
    }
}

async fn metrics(addr: SocketAddr) -> Option<String> {
    let mut conn = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.ok()?;
    Some(reply)
}

fn acked(page: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix("tmq2mqtt_acknowledged_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Scrapes `/metrics` until at least `n` rows were acknowledged; returns the last page.
async fn wait_acked(addr: SocketAddr, n: u64) -> String {
    let deadline = Instant::now() + T;
    loop {
        let page = metrics(addr).await.unwrap_or_default();
        if acked(&page) >= n {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} rows acknowledged within {T:?}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_no_password(what: &str, printed: &str) {
    for (password, core) in [TD, TD_WRONG, MQ, MQ_WRONG] {
        if let Some(at) = printed.find(core) {
            let line = printed[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = printed[at..].find('\n').map_or(printed.len(), |i| at + i);
            panic!(
                "{what}: a form of the password {password:?} was printed:\n{}",
                &printed[line..end]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_is_printed_at_trace_through_connects_refusals_and_reconnects() {
    let mut w = World::start().await;

    // A refused TDengine password: fatal, exit 1.
    let from_wrong = w.from(TD_WRONG.0);
    let to = w.to(MQ.0);
    let (code, printed) = Bin::spawn(&["run", "-f", &from_wrong, "-t", &to]).finish();
    assert_eq!(
        code,
        Some(1),
        "a refused TDengine password ends the run:\n{printed}"
    );
    assert_no_password("run with a wrong TDengine password", &printed);
    assert!(
        printed.contains("***"),
        "the client's connect request is no longer logged at trace:\n{printed}"
    );

    // A refused MQTT password: `check` reports it and exits 1 (rumqttd drops the connection unanswered).
    let from = w.from(TD.0);
    let to_wrong = w.to(MQ_WRONG.0);
    let (code, printed) = Bin::spawn(&["check", "-f", &from, "-t", &to_wrong, "--timeout", "3s"]).finish();
    assert_eq!(
        code,
        Some(1),
        "check with a wrong MQTT password fails:\n{printed}"
    );
    assert_no_password("check with a wrong MQTT password", &printed);

    // `check` with both passwords right, text logs.
    let (code, printed) = Bin::spawn(&["check", "-f", &from, "-t", &to]).finish();
    assert_eq!(code, Some(0), "check passes:\n{printed}");
    assert_no_password("check", &printed);

    // A run in JSON logs: connect, a TDengine reconnect, an MQTT reconnect, graceful stop.
    let bin = Bin::spawn(&[
        "run",
        "-f",
        &from,
        "-t",
        &to,
        "--log-format",
        "json",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = bin.metrics_addr();
    w.td.insert(4, 0..20);
    wait_acked(addr, 20).await;
    w.td.drop_connections();
    w.td.insert(4, 20..40);
    wait_acked(addr, 40).await;
    w.broker.restart().await.expect("broker restart");
    w.td.insert(4, 40..60);
    let page = wait_acked(addr, 60).await;
    assert_no_password("/metrics", &page);
    bin.terminate();
    let (code, printed) = bin.finish();
    assert_eq!(code, Some(0), "graceful stop:\n{printed}");
    assert_no_password("run with JSON logs", &printed);
    assert!(
        printed.contains("***"),
        "the client's connect request is no longer logged at trace"
    );
    // The TMQ subscribe request carries the password: once at the start, again after the reconnect.
    let subscribes = printed
        .lines()
        .filter(|l| l.contains("subscribe") && l.contains("password") && l.contains("***"))
        .count();
    assert!(
        subscribes >= 2,
        "expected the masked subscribe request at least twice (connect + reconnect), saw {subscribes}"
    );
}
