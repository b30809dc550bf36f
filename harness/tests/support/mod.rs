//! Test support: an embedded rumqttd on a free loopback port (until the simulator's broker is merged, the
//! harness's own tests start one the same way: sample router limits, metrics and console off), and a
//! scenario run in an external world (a TDengine and a broker the harness did not start).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Starts rumqttd with one v4 and one v5 listener; returns (v4, v5) once both accept connections.
pub fn start_broker() -> (SocketAddr, SocketAddr) {
    let v4 = free_port();
    let v5 = free_port();
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "{v4}"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
[v5.1]
name = "v5-1"
listen = "{v5}"
next_connection_delay_ms = 0
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).expect("broker config");
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    for addr in [v4, v5] {
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "broker did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    (v4, v5)
}

pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// `scenarios/{name}.toml`, loaded.
pub fn scenario(name: &str) -> harness::scenario::Scenario {
    let path = scenario_path(name);
    harness::scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scenario_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

/// Runs scenario `s` against a TDengine at `tdengine_dsn` and a broker at `broker_url` that the harness
/// did not start (the world `tdengine = { dsn = … }`, `broker = { url = … }`), with a deadline of at
/// least `min_deadline`.
pub async fn run_in_external_world(
    mut s: harness::scenario::Scenario,
    tdengine_dsn: &str,
    broker_url: &str,
    min_deadline: Duration,
) -> harness::runner::RunResult {
    use harness::scenario::{BrokerKind, TdengineKind};
    s.world.tdengine = TdengineKind::External {
        dsn: tdengine_dsn.to_string(),
    };
    s.world.broker = BrokerKind::External {
        url: broker_url.to_string(),
    };
    s.deadline = s.deadline.max(min_deadline);
    let file = scenario_path(&s.name).display().to_string();
    harness::runner::run(&s, &file, &Default::default()).await
}

/// Fails with the whole outcome (verdict, failures, replay command) unless the run passed.
pub fn assert_passed(result: &harness::runner::RunResult) {
    assert!(
        result.outcome.passed(),
        "{}",
        serde_json::to_string_pretty(&result.outcome).unwrap_or_default()
    );
    assert!(!result.delivered.is_empty(), "nothing delivered");
}
