//! A scenario in a world the harness did not start (`tdengine = { dsn = … }`, `broker = { url = … }`):
//! the path the Docker tests take against real TDengine and Mosquitto (`tests/docker.rs`), run here
//! against a stand-in and a Mosquitto (the system binary) started by the test. Requires `mosquitto`.

mod support;

use std::time::Duration;

use simulator::mosquitto::Mosquitto;
use simulator::tdengine::{TdConfig, TdServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_qos1_v5_passes_in_an_external_world() {
    let td = TdServer::start(TdConfig::default()).await.expect("stand-in");
    let broker = Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)");
    let s = support::scenario("qos1-v5");
    let result = support::run_in_external_world(
        s,
        &format!("ws://root:taosdata@{}", td.addr()),
        &format!("mqtt://{}", broker.addr()),
        Duration::from_secs(60),
    )
    .await;
    support::assert_passed(&result);
    td.shutdown().await;
}
