//! Latency insert → subscriber at a steady rate: rows are written into the stand-in every 10 ms, an
//! in-process bridge (QoS 1, `latest`) publishes them, a rumqttc subscriber stamps their arrival.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde::Serialize;
use tmq2mqtt::{Bridge, BridgeConfig};

use super::{
    world::{insert_sql, BenchWorld, LIVE_TS},
    BenchError,
};

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub rate: u64,
    pub sent: u64,
    pub received: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (percentile, ms) at every 5th percentile, p99 and the maximum, for the report's latency curve.
    pub percentiles: Vec<(f64, f64)>,
}

const TICK: Duration = Duration::from_millis(10);

pub async fn measure(w: &BenchWorld, rate: u64, duration: Duration) -> Result<Latency, BenchError> {
    let broker = w.broker.v4_addr().expect("v4 listener");
    // Arrival time per row timestamp (the row's identity).
    let arrived: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut o = MqttOptions::new("bench-lat-sub", broker.ip().to_string(), broker.port());
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut el) = AsyncClient::new(o, 100);
    sub.subscribe("bench/lat/#", QoS::AtLeastOnce)
        .await
        .map_err(|e| BenchError::Setup(format!("subscriber: {e}")))?;
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<()>();
    let sink = arrived.clone();
    let sub_task = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let now = Instant::now();
                    if let Some(ts) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["data"]["ts"].as_i64())
                    {
                        sink.lock().insert(ts, now);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| BenchError::Stalled("latency subscriber: no SUBACK".into()))?
        .map_err(|_| BenchError::Setup("latency subscriber stopped".into()))?;

    let from = w.tmq_dsn("bench-latency", "latest");
    let to = w.mqtt_dsn(1, "bench-latency", "bench/lat/{table}", "");
    let config = BridgeConfig::from_dsns(&from, &to).map_err(|e| BenchError::Setup(e.to_string()))?;
    let bridge = Bridge::new(config);
    let stats = bridge.stats();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bridge.run(async {
        let _ = rx.await;
    }));

    // Warm-up: write a row now and then until one arrives, so the bridge is subscribed and connected.
    let warm_until = Instant::now() + Duration::from_secs(20);
    let mut warm_id = 0u64;
    while arrived.lock().is_empty() {
        if Instant::now() > warm_until || task.is_finished() {
            let _ = stop.send(());
            sub_task.abort();
            return Err(BenchError::Stalled(format!(
                "latency warm-up: {:?}",
                stats.snapshot()
            )));
        }
        w.sql(&insert_sql(LIVE_TS - 1_000_000, warm_id, 1))?;
        warm_id += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let per_tick = (rate * TICK.as_millis() as u64 / 1000).max(1);
    let ticks = (duration.as_millis() / TICK.as_millis()) as u64;
    let mut sent_at: Vec<Instant> = Vec::with_capacity((ticks * per_tick) as usize);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for tick in 0..ticks {
        interval.tick().await;
        let t = Instant::now();
        w.sql(&insert_sql(LIVE_TS, tick * per_tick, per_tick))?;
        sent_at.extend(std::iter::repeat_n(t, per_tick as usize));
    }
    let sent = sent_at.len() as u64;
    let received_all =
        |m: &HashMap<i64, Instant>| m.keys().filter(|ts| **ts >= LIVE_TS).count() as u64 >= sent;
    let give_up = Instant::now() + Duration::from_secs(10);
    while !received_all(&arrived.lock()) && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    sub_task.abort();

    let arrived = arrived.lock();
    let mut lat: Vec<f64> = (0..sent)
        .filter_map(|id| {
            let at = arrived.get(&(LIVE_TS + id as i64))?;
            Some(at.saturating_duration_since(sent_at[id as usize]).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1]
    };
    Ok(Latency {
        rate: per_tick * 1000 / TICK.as_millis() as u64,
        sent,
        received: lat.len() as u64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        percentiles: if lat.is_empty() {
            Vec::new()
        } else {
            (1..=19)
                .map(|i| i as f64 * 5.0)
                .chain([99.0, 100.0])
                .map(|p| (p, pct(p / 100.0)))
                .collect::<Vec<_>>()
        },
    })
}
