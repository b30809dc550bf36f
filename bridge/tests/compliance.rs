//! The compliance suite: the bridge's end-to-end checks (every QoS × MQTT version, a broker restart
//! mid-stream) run from one generic body against the embedded rumqttd and a real Mosquitto. Requires
//! `mosquitto` (ci/setup.sh installs it).

mod common;

use std::time::Duration;

use common::{
    ack_proxy::AckProxy,
    brokers::{against_both_brokers, listener_for_dsn, TestBroker},
    Running, StandIn, Subscriber,
};

const T: Duration = Duration::from_secs(30);

/// QoS 0/1/2 × every version the broker speaks: every row arrives, in order per table, and is committed.
async fn every_qos_and_version_delivers_every_row(broker: TestBroker) {
    let td = StandIn::with_meters(2, "t").await;
    td.insert(2, 0..200);
    for (version, sub_version) in broker.versions() {
        for qos in 0..=2u8 {
            let tag = format!("q{qos}v{}", version.replace('.', ""));
            let addr = broker.addr_for_dsn(version);
            let mut sub = Subscriber::start(addr, sub_version, &format!("{tag}/#"), 2).await;
            let run = Running::start(
                &td.earliest_dsn("t", &tag),
                &format!("mqtt://{addr}?version={version}&qos={qos}&client_id={tag}&topic={tag}/{{table}}"),
            );
            let got = sub.collect(200, T).await;
            common::assert_every_row_in_table_order(&got, &tag, 2, 200);
            run.stop_clean(&mut sub, &tag, 2, 200).await;
        }
    }
}

/// The broker stops mid-stream and comes back on the same port: at QoS 1 the bridge loses nothing (rows the
/// broker itself acknowledged and dropped when it stopped are its loss).
async fn broker_restart_mid_stream_loses_nothing(mut broker: TestBroker, version: &str) {
    let td = StandIn::with_meters(1, "t").await;
    let sub_version = listener_for_dsn(version);
    let addr = broker.addr(sub_version);
    let mut sub = Subscriber::start(addr, sub_version, "r/#", 1).await;
    // The bridge reaches the broker through a proxy that records what the broker acknowledged.
    let proxy = AckProxy::start(addr).await;
    let run = Running::start(
        &td.earliest_dsn("t", "restart"),
        &format!(
            "mqtt://{}?version={version}&qos=1&client_id=restart&topic=r/{{table}}",
            proxy.addr
        ),
    );
    td.insert(2, 0..500);
    let mut got = sub.collect(500, T).await;
    // The next rows are in flight when the broker dies: they reach its socket and are never read.
    proxy.blackhole(true);
    td.insert(2, 500..1000);
    // (Some: MQTT 5 limits the window to the broker's receive maximum, 20 for Mosquitto.)
    common::wait_for("rows in flight", T, || proxy.swallowed() >= 10).await;
    broker.stop().await;
    td.insert(2, 1000..1500);
    let stats = run.stats.clone();
    // The subscriber must be subscribed again before the bridge re-sends: wait until the bridge's backoff
    // has grown far beyond the subscriber's reconnect pace.
    common::wait_for("bridge retries", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 5
    })
    .await;
    let may_lose = common::broker_may_have_lost(&mut sub, &mut got, &proxy);
    proxy.blackhole(false);
    broker.start_again().await;
    sub.wait_subscribed(T).await;
    common::collect_all_after_outage(&mut sub, &mut got, 1500, &may_lose, &run.stats, &proxy).await;
    let s = run.stop().await;
    assert!(s.mqtt_connects >= 2, "{s:?}");
    assert_eq!(s.unacked_at_exit, 0, "{s:?}");
}

against_both_brokers!(every_qos_and_version_delivers_every_row
    => rumqttd_every_qos_and_version_delivers_every_row, mosquitto_every_qos_and_version_delivers_every_row);

against_both_brokers!(broker_restart_mid_stream_loses_nothing, versions ["5.0"] ["3.1", "3.1.1", "5.0"]
    => rumqttd_broker_restart_mid_stream_loses_nothing, mosquitto_broker_restart_mid_stream_loses_nothing);
