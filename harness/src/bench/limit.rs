//! The limit: a bare rumqttc publisher sending the bridge's payloads to the same broker at the same QoS,
//! with the best settings per QoS (inflight 1000 for QoS 1, 100 for QoS 2, TCP_NODELAY for QoS 2 — the
//! bridge's defaults, measured in `../shared/reference/mqtt-crates-notes.md`).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, NetworkOptions, Outgoing, QoS};

use super::BenchError;

fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Publishes `count` messages (cycling through `payloads` and `topics` topics `limit/q{qos}/d{i % topics}`:
/// 8 for the 8-table backlog, one per table for a fleet shape) and returns acknowledged messages per second:
/// written to the socket (QoS 0), PUBACK (QoS 1), PUBCOMP (QoS 2).
pub async fn publish_rate(
    broker: SocketAddr,
    qos: u8,
    payloads: &[Bytes],
    topics: u64,
    count: u64,
    deadline: Duration,
) -> Result<f64, BenchError> {
    let mut o = MqttOptions::new(
        format!("bench-limit-q{qos}"),
        broker.ip().to_string(),
        broker.port(),
    );
    o.set_inflight(if qos == 1 { 1000 } else { 100 })
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(qos == 2);
    el.set_network_options(net);

    let topics: Vec<String> = (0..topics.clamp(1, count.max(1)))
        .map(|t| format!("limit/q{qos}/d{t}"))
        .collect();
    let payloads = payloads.to_vec();
    let mut started = None;
    let mut publisher = None;
    let mut acked = 0u64;
    let give_up = Instant::now() + deadline;
    while acked < count {
        let ev = tokio::time::timeout_at(give_up.into(), el.poll())
            .await
            .map_err(|_| BenchError::Stalled(format!("limit QoS {qos}: {acked}/{count} acked")))?
            .map_err(|e| BenchError::Setup(format!("limit QoS {qos}: {e}")))?;
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) if publisher.is_none() => {
                started = Some(Instant::now());
                let (client, topics, payloads) = (client.clone(), topics.clone(), payloads.clone());
                publisher = Some(tokio::spawn(async move {
                    for i in 0..count {
                        let p = payloads[i as usize % payloads.len()].clone();
                        let t = &topics[i as usize % topics.len()];
                        if client.publish_bytes(t, qos_of(qos), false, p).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            Event::Outgoing(Outgoing::Publish(_)) if qos == 0 => acked += 1,
            Event::Incoming(Incoming::PubAck(_)) if qos == 1 => acked += 1,
            Event::Incoming(Incoming::PubComp(_)) if qos == 2 => acked += 1,
            _ => {}
        }
    }
    let dt = started.map(|s| s.elapsed()).unwrap_or_default();
    if let Some(p) = publisher {
        p.abort();
    }
    let _ = client.try_disconnect();
    // Let the DISCONNECT out; the broker would otherwise keep the session until keep-alive.
    let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
    Ok(count as f64 / dt.as_secs_f64().max(1e-9))
}
