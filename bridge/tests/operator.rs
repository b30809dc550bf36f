//! What operators ask peers for, end to end over real sockets (stand-in → tmq2mqtt → rumqttd and
//! Mosquitto → rumqttc subscribers): MQTT 5 user properties and message expiry on every row.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{f1_of, Received, Running, StandIn, Subscriber};
use simulator::broker::{BrokerConfig, EmbeddedBroker, MqttVersion};
use simulator::mosquitto::Mosquitto;

const T: Duration = Duration::from_secs(30);

/// The user property `name` of `m` (panics naming the message when it is not there exactly once).
fn prop<'a>(m: &'a Received, name: &str) -> &'a str {
    let found: Vec<&str> = m
        .user_properties
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "user property {name} in {m:?}");
    found[0]
}

/// Every row carries its origin as user properties (matching its payload) and the Message Expiry
/// Interval, as a v5 subscriber of `broker` receives them.
async fn rows_carry_user_properties_and_expiry(broker: SocketAddr, name: &str) {
    let td = StandIn::with_meters(2, "t").await;
    td.insert(3, 0..30);
    let mut sub = Subscriber::start(broker, MqttVersion::V5, &format!("{name}/#"), 1).await;
    let run = Running::start(
        &td.from("t", &format!("group.id={name}&auto.offset.reset=earliest")),
        &format!(
            "mqtt://{broker}?version=5.0&qos=1&client_id={name}&topic={name}/{{table}}\
             &user_properties=true&message_expiry=1h"
        ),
    );
    let got = sub.collect(30, T).await;
    common::assert_every_row_in_table_order(&got, name, 3, 30);
    for m in &got {
        let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
        let names: Vec<&str> = m.user_properties.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["database", "topic", "vgroup_id", "offset", "table"],
            "{m:?}"
        );
        assert_eq!(prop(m, "database"), v["offset"]["database"].as_str().unwrap());
        assert_eq!(prop(m, "database"), "db");
        assert_eq!(prop(m, "topic"), "t");
        assert_eq!(prop(m, "vgroup_id"), v["offset"]["vgroupId"].to_string());
        assert_eq!(prop(m, "offset"), v["offset"]["offset"].to_string());
        assert_eq!(prop(m, "table"), v["data"]["tbname"].as_str().unwrap());
        assert_eq!(m.topic, format!("{name}/{}", prop(m, "table")));
        // The broker forwards what is left of the interval: at most the hour, and not expired.
        let left = m.message_expiry.unwrap_or_else(|| panic!("no expiry: {m:?}"));
        assert!(left > 3600 - 60 && left <= 3600, "{left}: {m:?}");
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
    }
    run.wait_committed("both vgroups committed", |c| c.len() == 2)
        .await;
    let s = run.stop().await;
    assert_eq!((s.rows, s.acked, s.unacked_at_exit), (30, 30, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_user_properties_and_expiry_reach_a_v5_subscriber_through_rumqttd() {
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    rows_carry_user_properties_and_expiry(broker.v5_addr().unwrap(), "props-rumqttd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_user_properties_and_expiry_reach_a_v5_subscriber_through_mosquitto() {
    let broker = Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)");
    rows_carry_user_properties_and_expiry(broker.addr(), "props-mosquitto").await;
}

/// A stand-in whose topic `dl` carries a text column (for an oversized row): `db.m2` with tables `ok0`,
/// `ok1` (and whatever the test adds).
fn text_topic(td: &StandIn) {
    td.sql("create database db vgroups 1");
    td.sql("create stable db.m2 (ts timestamp, f1 int, note varchar(8000)) tags (t1 int)");
    td.sql("create topic dl as select ts, tbname, f1, note from db.m2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_cannot_be_published_go_to_the_dead_letter_topic_and_the_rest_flows() {
    let td = StandIn::start().await;
    text_topic(&td);
    let big = "x".repeat(3000);
    td.sql("insert into db.ok0 using db.m2 tags (0) values (1700000000000, 1, 'a') (1700000000001, 2, 'b')");
    td.sql(&format!(
        "insert into db.ok1 using db.m2 tags (1) values (1700000000002, 3, 'c') (1700000000003, 4, '{big}')"
    ));
    td.sql("insert into db.`bad+name` using db.m2 tags (2) values (1700000000004, 5, 'd')");
    td.sql("insert into db.ok0 values (1700000000005, 6, 'e')");
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let addr = broker.v4_addr().unwrap();
    let mut rows = Subscriber::start(addr, MqttVersion::V311, "rows/#", 1).await;
    let mut dead = Subscriber::start(addr, MqttVersion::V311, "dead/#", 1).await;
    let run = Running::start(
        &td.from("dl", "group.id=dl&auto.offset.reset=earliest"),
        &format!(
            "mqtt://{addr}?version=3.1.1&qos=1&client_id=dl&topic=rows/{{table}}&max_packet_size=2048\
             &dead_letter_topic=dead/{{database}}/{{tmq_topic}}"
        ),
    );
    let got = rows.collect(4, T).await;
    let mut sorted: Vec<u32> = got.iter().map(f1_of).collect();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 6], "every publishable row: {got:?}");
    let mut letters = dead.collect(2, T).await;
    letters.sort_by_key(|m| m.payload.len());
    for m in &letters {
        assert_eq!(m.topic, "dead/db/dl");
        assert_eq!(m.qos, 1, "the target's QoS");
    }
    let v: Vec<serde_json::Value> = letters
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    // The oversized row: its size instead of its data, and where it came from.
    assert_eq!(v[0]["reason"], "too_large");
    assert_eq!(v[0]["topic"], "rows/ok1");
    assert_eq!(v[0]["table"], "ok1");
    assert!(v[0].get("data").is_none(), "{}", letters[0].payload);
    assert!(v[0]["bytes"].as_u64().unwrap() > 3000, "{}", letters[0].payload);
    assert_eq!(v[0]["offset"]["database"], "db");
    assert_eq!(v[0]["offset"]["topic"], "dl");
    // The row whose table name makes no valid topic: the whole row.
    assert_eq!(v[1]["reason"], "invalid_topic");
    assert_eq!(v[1]["topic"], "rows/bad+name");
    assert_eq!(v[1]["table"], "bad+name");
    assert_eq!(v[1]["data"]["f1"], 5);
    assert_eq!(v[1]["data"]["tbname"], "bad+name");
    // The dead letters count as their rows' delivery: the vgroup commits its end.
    let end = v
        .iter()
        .map(|l| l["offset"]["offset"].as_i64().unwrap())
        .chain(got.iter().map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.payload).unwrap()["offset"]["offset"]
                .as_i64()
                .unwrap()
        }))
        .max()
        .unwrap();
    run.wait_committed("the vgroup's end committed", |c| {
        c.values().any(|&o| o == end + 1)
    })
    .await;
    let s = run.stop().await;
    assert_eq!(s.rows, 6, "{s:?}");
    assert_eq!(s.acked, 6, "4 rows and 2 dead letters: {s:?}");
    assert_eq!(
        s.dead_lettered,
        [("invalid_topic".to_string(), 1), ("too_large".to_string(), 1)].into(),
        "{s:?}"
    );
    assert!(s.skipped.is_empty(), "nothing skipped: {s:?}");
    rows.assert_nothing_more("rows").await;
    dead.assert_nothing_more("dead letters").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_topic_unpublishable_rows_are_only_counted() {
    let td = StandIn::start().await;
    text_topic(&td);
    td.sql("insert into db.`bad+name` using db.m2 tags (2) values (1700000000004, 5, 'd')");
    td.sql("insert into db.ok0 using db.m2 tags (0) values (1700000000005, 6, 'e')");
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let addr = broker.v4_addr().unwrap();
    let mut all = Subscriber::start(addr, MqttVersion::V311, "#", 1).await;
    let run = Running::start(
        &td.from("dl", "group.id=dl&auto.offset.reset=earliest"),
        &format!("mqtt://{addr}?version=3.1.1&qos=1&client_id=dl&topic=rows/{{table}}"),
    );
    let got = all.collect(1, T).await;
    assert_eq!(got[0].topic, "rows/ok0");
    run.wait_committed("committed", |c| !c.is_empty()).await;
    let s = run.stop().await;
    assert_eq!(s.skipped.get("invalid_topic"), Some(&1), "{s:?}");
    assert!(s.dead_lettered.is_empty(), "{s:?}");
    all.assert_nothing_more("nothing but the good row").await;
}

/// The topic template lacks a variable for every row (`{stable}`, as taosx): each row is dead-lettered
/// with no topic, and its user properties still say where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_missing_a_topic_variable_are_dead_lettered_with_a_null_topic() {
    let td = StandIn::start().await;
    text_topic(&td);
    td.sql("insert into db.ok0 using db.m2 tags (0) values (1700000000000, 1, 'a') (1700000000001, 2, 'b')");
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let addr = broker.v5_addr().unwrap();
    let mut all = Subscriber::start(addr, MqttVersion::V5, "#", 1).await;
    let run = Running::start(
        &td.from("dl", "group.id=dl&auto.offset.reset=earliest"),
        &format!(
            "mqtt://{addr}?version=5.0&qos=1&client_id=dl&topic=rows/{{stable}}/{{table}}\
             &dead_letter_topic=dead/{{vgroup_id}}&user_properties=true"
        ),
    );
    let got = all.collect(2, T).await;
    for m in &got {
        let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(m.topic, format!("dead/{}", v["offset"]["vgroupId"]));
        assert_eq!(v["reason"], "missing_variable");
        assert_eq!(v["topic"], serde_json::Value::Null);
        assert_eq!(v["table"], "ok0");
        assert_eq!(prop(m, "table"), "ok0");
        assert_eq!(prop(m, "offset"), v["offset"]["offset"].to_string());
    }
    run.wait_committed("committed", |c| !c.is_empty()).await;
    let s = run.stop().await;
    assert_eq!(s.dead_lettered.get("missing_variable"), Some(&2), "{s:?}");
    assert!(s.skipped.is_empty(), "{s:?}");
}

/// A group resuming behind the WAL's begin (its committed versions were trimmed by
/// `wal_retention_period`): one warning, the gap counted, and an event on `<status_topic>/events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resuming_behind_wal_retention_reports_the_gap() {
    let td = StandIn::start().await;
    td.sql("create database db vgroups 1 wal_retention_period 1");
    td.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
    td.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    td.insert(1, 0..3);
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let addr = broker.v4_addr().unwrap();
    let to = format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=gap&topic=rows/{{table}}&status_topic=bridges/gap"
    );
    let from = td.from("t", "group.id=gap&auto.offset.reset=earliest");
    let mut rows = Subscriber::start(addr, MqttVersion::V311, "rows/#", 1).await;
    let run = Running::start(&from, &to);
    rows.collect(3, T).await;
    run.wait_committed("the first rows committed", |c| !c.is_empty())
        .await;
    let first = run.stop().await;
    assert!(first.wal_gap_versions.is_empty(), "{first:?}");
    let ((topic, vg), committed) = first.committed.into_iter().next().unwrap();
    // Two writes while the bridge is away, trimmed once the retention passed and a third write appends.
    td.insert(1, 3..5);
    td.insert(1, 5..7);
    // Waiting out the retention period (1 s) is the precondition here, not synchronisation.
    std::thread::sleep(Duration::from_millis(1300));
    td.insert(1, 7..8);
    let mut events = Subscriber::start(addr, MqttVersion::V311, "bridges/gap/events", 1).await;
    let run = Running::start(&from, &to);
    let ev = events.collect(1, T).await;
    let v: serde_json::Value = serde_json::from_str(&ev[0].payload).unwrap();
    // The trimmed range holds the two writes and the group's own entries (its commits and subscribes take
    // WAL versions too, as in TDengine), so it starts at the commit and spans at least the two writes.
    let (first, last) = (v["first"].as_i64().unwrap(), v["last"].as_i64().unwrap());
    assert_eq!(
        (&v["event"], &v["topic"], &v["vgroup_id"], first),
        (
            &serde_json::json!("wal_gap"),
            &serde_json::json!(topic),
            &serde_json::json!(vg),
            committed
        ),
        "{v}"
    );
    assert!(last > committed, "the two trimmed writes: {v}");
    assert_eq!(v["versions"].as_i64(), Some(last - first + 1), "{v}");
    assert!(!ev[0].retain);
    // What was kept still flows.
    let got = rows.collect(1, T).await;
    assert_eq!(common::f1_of(&got[0]), 7);
    let s = run.stop().await;
    assert_eq!(
        s.wal_gap_versions,
        [((topic.clone(), vg), (last - first + 1) as u64)].into(),
        "{s:?}"
    );
}
