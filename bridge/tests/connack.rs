//! CONNACK refusals against a real Mosquitto: the bridge stops at once with one line naming the code and
//! its likely cause, per MQTT version. Requires `mosquitto` (ci/setup.sh installs it).

mod common;

use std::time::Duration;

use common::StandIn;
use simulator::mosquitto::Mosquitto;
use tmq2mqtt::{Bridge, BridgeConfig};

const T: Duration = Duration::from_secs(30);

/// A wrong password: Mosquitto answers CONNACK 5 (3.1, 3.1.1) or 0x87 (5.0); the bridge stops at once
/// with one line naming the code and the likely cause, and without echoing the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_refusals_are_one_clear_line_per_version() {
    let td = StandIn::with_meters(1, "t").await;
    let broker = Mosquitto::builder().passwords([("u", "right")]).start().unwrap();
    for (version, want) in [
        ("3.1", "CONNACK return code 5, not authorized"),
        ("3.1.1", "CONNACK return code 5, not authorized"),
        ("5.0", "CONNACK reason code 0x87, not authorized"),
    ] {
        let config = BridgeConfig::from_dsns(
            &td.earliest_dsn("t", "refused"),
            &format!(
                "mqtt://u:s3cret@{}?version={version}&qos=1&client_id=refused&topic=x",
                broker.addr()
            ),
        )
        .unwrap();
        let err = tokio::time::timeout(T, Bridge::new(config).run(std::future::pending()))
            .await
            .expect("a refusal is fatal, not retried")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(want), "{version}: {err}");
        assert!(!err.contains('\n') && !err.contains("s3cret"), "{version}: {err}");
    }
}
