//! Test support: the simulator's embedded broker, the `tmq2mqtt` binary for process-mode bridges, and a
//! scenario run in an external world (a TDengine and a broker the harness did not start).

#![allow(dead_code)]

use std::time::Duration;

use simulator::broker::{BrokerConfig, EmbeddedBroker};

/// The simulator's embedded rumqttd (a 3.1.1 and a 5.0 listener on free loopback ports).
pub async fn start_broker() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("embedded broker")
}

/// Builds the `tmq2mqtt` binary (once per test process) for runs that start the bridge as a child process;
/// `TMQ2MQTT_BIN` names a prebuilt one instead.
pub fn ensure_bridge_binary() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("TMQ2MQTT_BIN").is_some() && harness::runner::bridges::bridge_binary().is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "tmq2mqtt", "--bin", "tmq2mqtt"])
            .status()
            .expect("cargo build tmq2mqtt");
        assert!(status.success(), "building tmq2mqtt failed");
    });
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
