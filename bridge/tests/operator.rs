//! What operators ask peers for, end to end over real sockets (stand-in → tmq2mqtt → rumqttd and
//! Mosquitto → rumqttc subscribers): MQTT 5 user properties and message expiry on every row.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{Received, Running, StandIn, Subscriber};
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
        assert_eq!(names, ["database", "topic", "vgroup_id", "offset", "table"], "{m:?}");
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
