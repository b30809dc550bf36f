//! End-to-end throughput of the bridge: TDengine stand-in → tmq2mqtt (in-process) → embedded rumqttd,
//! for QoS 0/1/2: the rate at which rows are polled, published and acknowledged to the bridge (from the
//! bridge's start, so including subscribe). Run: `cargo bench -p harness --bench e2e_throughput`
//! (`ROWS=…` multiple of 1000, `TABLES=…` dividing 1000, `TLS=1`: `tmq+wss://` to a TLS stand-in through
//! the bridge's tunnel, `tmq2mqtt::wss`; `VERSION=3.1|3.1.1|5.0`; `BROKER=mosquitto`: a real Mosquitto
//! instead, needed for 3.1). `-- --test`, or `cargo test --benches` (no `--bench`): a smoke round of 1000 rows.
//!
//! It lives in the harness because it needs the test world (the stand-in, the brokers); the bridge's
//! own benches measure its pure hot paths only.

use std::{
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use simulator::{
    broker::{BrokerConfig, EmbeddedBroker},
    tdengine::{TdConfig, TdServer},
};
use tmq2mqtt::{Bridge, BridgeConfig};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: a smoke round, as with `--test`.
    let quick = std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let rows: u32 = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1000 } else { 100_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tls = std::env::var_os("TLS").is_some_and(|v| !v.is_empty());
        let pki = simulator::tls::TestPki::new("bench CA").unwrap();
        let ca_dir = tempfile::tempdir().unwrap();
        let ca_path = ca_dir.path().join("ca.pem");
        std::fs::write(&ca_path, pki.ca_pem()).unwrap();
        let td = TdServer::start(TdConfig {
            tls: tls.then(|| {
                let c = pki.server_cert().unwrap();
                simulator::tdengine::server::TdTls { cert_pem: c.cert_pem, key_pem: c.key_pem }
            }),
            ..TdConfig::default()
        })
        .await
        .unwrap();
        let store = td.store().clone();
        let sql = |s: &str| {
            store.execute(s, &mut None).unwrap_or_else(|e| panic!("{s}: {e}"));
        };
        sql("create database power vgroups 4");
        sql(&simulator::meters::create_stable_sql("power"));
        sql("create topic topic_meters as select ts, current, voltage, phase, tbname, groupid, location from power.meters");
        let tables: u32 = std::env::var("TABLES").ok().and_then(|r| r.parse().ok()).unwrap_or(8);
        let per_batch = 1000u32;
        let mut id = 0u32;
        while id < rows {
            let mut s = String::from("insert into");
            for t in 0..tables {
                s.push_str(&format!(" power.d{t} using power.meters tags ({}, 'California.SanFrancisco') values", t % 10));
                for k in 0..per_batch / tables {
                    let n = id + k * tables + t;
                    s.push_str(&format!(" ({}, {:.2}, {}, {:.2})", 1_700_000_000_000i64 + n as i64, 10.0 + (n % 100) as f32 / 10.0, 220 + n % 10, 0.3));
                }
            }
            sql(&s);
            id += per_batch;
        }
        // VERSION=3.1 | 3.1.1 | 5.0 (default; 3.1 goes through the bridge's MQTT 3.1 shim and needs
        // BROKER=mosquitto: rumqttd has no 3.1).
        let version = std::env::var("VERSION").unwrap_or_else(|_| "5.0".into());
        let mosquitto = std::env::var("BROKER").is_ok_and(|b| b == "mosquitto");
        let (_broker, _mosquitto, addr, broker_name) = if mosquitto {
            let m = simulator::mosquitto::Mosquitto::builder()
                .max_queued_messages(1_000_000)
                .start()
                .expect("mosquitto (apt-get install mosquitto)");
            let addr = m.addr();
            (None, Some(m), addr, "Mosquitto")
        } else {
            let b = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
            let addr = if version == "5.0" { b.v5_addr() } else { b.v4_addr() }.unwrap();
            (Some(b), None, addr, "rumqttd in-process")
        };
        println!("{rows} rows, {tables} tables, 4 vgroups, MQTT {version}, {broker_name}{}", if tls { ", tmq+wss" } else { "" });
        println!("| QoS | acked rows/s | time |");
        println!("|---|---|---|");
        for qos in [0u8, 1, 2] {
            let from = if tls {
                format!("tmq+wss://root:taosdata@localhost:{}/topic_meters?group.id=bench{qos}&auto.offset.reset=earliest&ca=@{}", td.addr().port(), ca_path.display())
            } else {
                format!("tmq+ws://root:taosdata@{}/topic_meters?group.id=bench{qos}&auto.offset.reset=earliest", td.addr())
            };
            let to = format!("mqtt://{addr}?version={version}&qos={qos}&client_id=bench{qos}&topic=bench/{{table}}");
            let bridge = Bridge::new(BridgeConfig::from_dsns(&from, &to).unwrap());
            let stats = bridge.stats();
            let (stop, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(bridge.run(async { let _ = rx.await; }));
            let start = Instant::now();
            while stats.acked.load(Relaxed) < rows as u64 {
                assert!(start.elapsed() < Duration::from_secs(600), "stalled at {:?}", stats.snapshot());
                tokio::time::sleep(Duration::from_millis(10)).await;
                if std::env::var_os("TRACE").is_some_and(|v| !v.is_empty()) {
                    eprintln!("{:?} messages {} rows {} acked {}", start.elapsed(), stats.messages.load(Relaxed), stats.rows.load(Relaxed), stats.acked.load(Relaxed));
                }
            }
            let dt = start.elapsed();
            let _ = stop.send(());
            let summary = task.await.unwrap().unwrap();
            assert_eq!(summary.acked, rows as u64);
            println!("| {qos} | {:.0} | {:.2} s |", rows as f64 / dt.as_secs_f64(), dt.as_secs_f64());
        }
    });
}
