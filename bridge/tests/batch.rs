//! `format=batch` end to end: stand-in → tmq2mqtt → rumqttd → subscriber; one payload per TMQ message and
//! topic, carrying every row and the message's offset.

mod common;

use std::{collections::BTreeSet, sync::atomic::Ordering::Relaxed, time::Duration};

use common::{StandIn, Subscriber};
use simulator::broker::{BrokerConfig, EmbeddedBroker, MqttVersion};
use tmq2mqtt::{Bridge, BridgeConfig};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_format_carries_every_row_with_its_offset_and_commits() {
    let td = StandIn::with_meters(2, "t").await;
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    // Two writes of 4 tables × 25 rows each: every TMQ message holds several blocks.
    for w in 0..2u32 {
        let mut s = String::from("insert into");
        for t in 0..4u32 {
            s.push_str(&format!(" db.d{t} using db.meters tags ({t}) values"));
            for k in 0..25u32 {
                let id = w * 100 + t * 25 + k;
                s.push_str(&format!(" ({}, {id})", 1_700_000_000_000i64 + id as i64));
            }
        }
        td.sql(&s);
    }
    let mqtt = broker.v5_addr().unwrap();
    let mut sub = Subscriber::start(mqtt, MqttVersion::V5, "batch/#", 1).await;
    let from = format!(
        "tmq+ws://root:taosdata@{}/t?group.id=b&auto.offset.reset=earliest",
        td.addr()
    );
    let to = format!("mqtt://{mqtt}?version=5.0&qos=1&client_id=b&topic=batch/{{vgroup_id}}&format=batch");
    let bridge = Bridge::new(BridgeConfig::from_dsns(&from, &to).unwrap());
    let stats = bridge.stats();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bridge.run(async {
        let _ = rx.await;
    }));

    let mut ids = BTreeSet::new();
    let mut payloads = 0;
    while ids.len() < 200 {
        let got = sub.collect(1, T).await;
        let m = &got[0];
        payloads += 1;
        let v: serde_json::Value = serde_json::from_str(&m.payload).expect("JSON");
        assert!(m.payload.starts_with(r#"{"rows":[{"#), "{}", m.payload);
        assert_eq!(
            v.as_object().unwrap().len(),
            2,
            "rows and offset only: {}",
            m.payload
        );
        let vg = v["offset"]["vgroupId"].as_i64().unwrap();
        assert_eq!(m.topic, format!("batch/{vg}"));
        assert_eq!(v["offset"]["database"], "db");
        assert_eq!(v["offset"]["topic"], "t");
        assert!(v["offset"]["offset"].as_i64().is_some());
        let rows = v["rows"].as_array().unwrap();
        assert!(rows.len() > 1, "a batch carries several rows: {}", m.payload);
        for r in rows {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 4, "{r}");
            let id = r["f1"].as_u64().unwrap() as u32;
            assert_eq!(r["ts"].as_i64().unwrap(), 1_700_000_000_000 + id as i64);
            assert!(ids.insert(id), "row {id} twice");
        }
    }
    assert_eq!(ids, (0..200).collect::<BTreeSet<u32>>());
    assert!(payloads < 200, "{payloads} payloads for 200 rows");
    common::wait_for("both vgroups committed", T, || {
        stats.snapshot().committed.len() == 2
    })
    .await;
    let _ = stop.send(());
    let s = tokio::time::timeout(T, task).await.unwrap().unwrap().unwrap();
    assert_eq!(s.rows, 200);
    assert_eq!(s.acked, payloads, "one publish per batch: {s:?}");
    assert_eq!(stats.published.load(Relaxed), payloads);
    sub.assert_nothing_more("no batch twice").await;
}
