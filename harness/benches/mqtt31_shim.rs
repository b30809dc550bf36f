//! What the MQTT 3.1 shim costs: acknowledged publishes per second to a real Mosquitto, rumqttc speaking
//! 3.1.1 directly versus 3.1 through `Mqtt31Shim`, at QoS 1 (window 100) and QoS 2 (window 20, TCP_NODELAY).
//!
//! Run: `cargo bench -p harness --bench mqtt31_shim` (needs `mosquitto`; prints medians of 3 runs).
//! `-- --test`, or `cargo test --benches` (no `--bench`): a smoke round of 1000 publishes, one run each.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use simulator::mosquitto::Mosquitto;
use tmq2mqtt::mqtt31::{Mqtt31Shim, Upstream};

const MESSAGES: usize = 50_000;
const PAYLOAD: usize = 216;

async fn publish_all(mut options: MqttOptions, qos: QoS, window: u16, nodelay: bool, messages: usize) -> f64 {
    options.set_inflight(window);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(nodelay);
    eventloop.set_network_options(network);
    let start = Instant::now();
    tokio::spawn(async move {
        let payload = vec![b'x'; PAYLOAD];
        for _ in 0..messages {
            client
                .publish("bench", qos, false, payload.clone())
                .await
                .unwrap();
        }
    });
    let mut acked = 0;
    while acked < messages {
        match eventloop.poll().await.expect("publisher") {
            Event::Incoming(Packet::PubAck(_)) | Event::Incoming(Packet::PubComp(_)) => acked += 1,
            _ => {}
        }
    }
    messages as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: a smoke round, as with `--test`.
    let quick = std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let (messages, runs) = if quick { (1000, 1) } else { (MESSAGES, 3) };
    let broker = Mosquitto::builder().tcp_nodelay(true).start().expect("mosquitto");
    println!("{messages} publishes of {PAYLOAD} bytes to Mosquitto, acknowledged msg/s (median of {runs})");
    for (qos, window, nodelay) in [(QoS::AtLeastOnce, 100, false), (QoS::ExactlyOnce, 20, true)] {
        let mut direct = Vec::new();
        let mut shimmed = Vec::new();
        for run in 0..runs {
            let options = MqttOptions::new(format!("direct-{run}"), broker.host(), broker.port());
            direct.push(publish_all(options, qos, window, nodelay, messages).await);
            let shim =
                Mqtt31Shim::start(Upstream::tcp(broker.host(), broker.port()).nodelay(nodelay)).unwrap();
            let options = shim.mqtt_options(format!("shim-{run}")).unwrap();
            shimmed.push(publish_all(options, qos, window, nodelay, messages).await);
        }
        let (d, s) = (median(direct), median(shimmed));
        println!(
            "{qos:?} window {window}: 3.1.1 direct {d:>8.0}   3.1 via shim {s:>8.0}   ({:+.1} %)",
            (s / d - 1.0) * 100.0
        );
    }
}
