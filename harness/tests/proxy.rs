//! The fault proxy over real sockets: rumqttc → proxy → rumqttd, with a recording subscriber on the broker.

mod support;

use std::time::Duration;

use harness::proxy::{Proxy, ProxyFault};
use harness::recorder::{wait_quiescent, Activity, Ending, Recorder};
use harness::scenario::{MqttVersion, SubscriberDef};
use harness::wire::{Direction, Fate, Kind, WireRecord};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn subscriber(name: &str, filter: &str, version: MqttVersion) -> SubscriberDef {
    SubscriberDef {
        name: name.into(),
        filter: filter.into(),
        qos: 1,
        version,
        clean_session: true,
        withhold_acks: false,
    }
}

/// Publishes `n` QoS 1 messages through `proxy` with a v4 client and drives its event loop (reconnecting after
/// cuts) until `done(pubacks, connacks)` holds, then on until nothing has happened for a quiet second, so an
/// acknowledgement beyond the expected ones is counted too. `Err(pubacks)` when `done` never held within 10 s.
async fn publish_through(
    proxy: &Proxy,
    topic: &str,
    n: usize,
    done: impl Fn(usize, usize) -> bool,
) -> Result<usize, usize> {
    let mut opts = MqttOptions::new("pub", "127.0.0.1", proxy.addr().port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(opts, 100);
    for i in 0..n {
        client
            .publish(topic, QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    let (mut got, mut connected) = (0, 0);
    let step = |ev: &Result<Event, rumqttc::ConnectionError>, got: &mut usize, connected: &mut usize| match ev
    {
        Ok(Event::Incoming(Packet::PubAck(_))) => *got += 1,
        Ok(Event::Incoming(Packet::ConnAck(_))) => *connected += 1,
        _ => {}
    };
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        while !done(got, connected) {
            let ev = el.poll().await;
            step(&ev, &mut got, &mut connected);
            if ev.is_err() {
                // Reconnect pacing, not synchronisation.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await
    .is_ok();
    if !reached {
        return Err(got);
    }
    while let Ok(ev) = tokio::time::timeout(Duration::from_secs(1), el.poll()).await {
        step(&ev, &mut got, &mut connected);
    }
    Ok(got)
}

fn kinds(records: &[WireRecord], conn: u32) -> Vec<(Direction, Kind)> {
    records
        .iter()
        .filter(|r| r.conn == conn)
        .map(|r| (r.dir, r.kind))
        .collect()
}

#[tokio::test]
async fn records_every_packet_both_ways_and_forwards_unchanged() {
    let broker = support::start_broker().await;
    let v4 = broker.addr(MqttVersion::V311).expect("3.1.1 listener");
    let activity = Activity::default();
    let sub = Recorder::start(
        v4,
        &subscriber("s", "p/#", MqttVersion::V311),
        "s1",
        None,
        activity.clone(),
    )
    .await
    .unwrap();
    let proxy = Proxy::start(v4).await.unwrap();
    assert_eq!(
        publish_through(&proxy, "p/1", 5, |acks, _| acks >= 5).await,
        Ok(5)
    );
    let ending = wait_quiescent(
        &activity,
        || sub.count() >= 5,
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(ending, Ending::Quiescent);
    let got: Vec<String> = sub
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);

    let records = proxy.records();
    let k = kinds(&records, 1);
    assert_eq!(k[0], (Direction::ToBroker, Kind::Opened));
    assert_eq!(k[1], (Direction::ToBroker, Kind::Connect));
    assert_eq!(k[2], (Direction::ToClient, Kind::ConnAck));
    let publishes: Vec<&WireRecord> = records.iter().filter(|r| r.kind == Kind::Publish).collect();
    assert_eq!(publishes.len(), 5);
    for p in &publishes {
        assert_eq!(
            (p.qos, p.dup, p.retain, p.topic.as_deref()),
            (1, false, false, Some("p/1"))
        );
        assert!(records
            .iter()
            .any(|r| r.kind == Kind::PubAck && r.pkid == p.pkid && r.dir == Direction::ToClient));
    }
    assert_eq!(
        records.iter().find(|r| r.kind == Kind::ConnAck).unwrap().code,
        Some(0)
    );
    assert_eq!(proxy.published(), 5);
}

#[tokio::test]
async fn cut_after_publish_closes_before_the_ack_and_the_client_reconnects() {
    let broker = support::start_broker().await;
    let v4 = broker.addr(MqttVersion::V311).expect("3.1.1 listener");
    let proxy = Proxy::start(v4).await.unwrap();
    proxy.arm_at_publish(3, ProxyFault::CutAfterPublish);
    // rumqttc (clean session) drops its unacked publishes on reconnect: only the first two are acked.
    // The first two acks may or may not reach the client before the cut; the third is never sent.
    let acked = publish_through(&proxy, "c/1", 3, |_, connacks| connacks >= 2).await;
    let acked = acked.expect("reconnected within 10 s");
    assert!(acked < 3, "the third PUBLISH must not be acked, got {acked} acks");
    let records = proxy.records();
    let forwarded = records
        .iter()
        .filter(|r| r.kind == Kind::PubAck && r.dir == Direction::ToClient && r.fate == Fate::Forwarded)
        .count();
    assert_eq!(
        acked, forwarded,
        "every ack the proxy forwarded reached the client, no other"
    );
    let conn1: Vec<&WireRecord> = records.iter().filter(|r| r.conn == 1).collect();
    let third = conn1
        .iter()
        .filter(|r| r.kind == Kind::Publish)
        .nth(2)
        .expect("third publish");
    assert_eq!(third.fate, Fate::Forwarded);
    assert!(
        !conn1
            .iter()
            .any(|r| r.kind == Kind::PubAck && r.pkid == third.pkid),
        "no PUBACK for the cut publish on the cut connection"
    );
    let closed = conn1.iter().find(|r| r.kind == Kind::Closed).expect("closed");
    assert_eq!(closed.note.as_deref(), Some("cut by fault"));
    assert!(
        records.iter().any(|r| r.conn == 2 && r.kind == Kind::Connect),
        "reconnected"
    );
    assert_eq!(proxy.fired().len(), 1);
}

#[tokio::test]
async fn dropped_acks_never_reach_the_client() {
    let broker = support::start_broker().await;
    let v4 = broker.addr(MqttVersion::V311).expect("3.1.1 listener");
    let proxy = Proxy::start(v4).await.unwrap();
    proxy.fire(ProxyFault::DropAcks(2));
    let acked = publish_through(&proxy, "d/1", 4, |acks, _| acks >= 2).await;
    assert_eq!(
        acked,
        Ok(2),
        "the two dropped acknowledgements never reach the client"
    );
    let records = proxy.records();
    let dropped: Vec<&WireRecord> = records.iter().filter(|r| r.fate == Fate::Dropped).collect();
    assert_eq!(dropped.len(), 2);
    assert!(dropped
        .iter()
        .all(|r| r.kind == Kind::PubAck && r.dir == Direction::ToClient));
}

#[tokio::test]
async fn frames_mqtt5_and_cuts_on_demand() {
    let broker = support::start_broker().await;
    let v5 = broker.addr(MqttVersion::V5).expect("5.0 listener");
    let activity = Activity::default();
    let sub = Recorder::start(
        v5,
        &subscriber("s5", "five/+", MqttVersion::V5),
        "s5",
        None,
        activity.clone(),
    )
    .await
    .unwrap();
    let proxy = Proxy::start(v5).await.unwrap();
    use rumqttc::v5::{mqttbytes::QoS as Q5, AsyncClient as C5, Event as E5, MqttOptions as O5};
    let (client, mut el) = C5::new(O5::new("p5", "127.0.0.1", proxy.addr().port()), 10);
    client
        .publish("five/a", Q5::ExactlyOnce, false, "x")
        .await
        .unwrap();
    let drive = async {
        loop {
            if let Ok(E5::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubComp(_))) = el.poll().await {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drive)
        .await
        .expect("PUBCOMP");
    let ending = wait_quiescent(
        &activity,
        || sub.count() == 1,
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(ending, Ending::Quiescent);
    let flow: Vec<Kind> = proxy
        .records()
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                Kind::Publish | Kind::PubRec | Kind::PubRel | Kind::PubComp
            )
        })
        .map(|r| r.kind)
        .collect();
    assert_eq!(flow, [Kind::Publish, Kind::PubRec, Kind::PubRel, Kind::PubComp]);
    // rumqttd delivers at the subscription's QoS (1 here), whatever the publish QoS was.
    assert_eq!(sub.messages()[0].qos, 1);

    proxy.fire(ProxyFault::Cut);
    let closed = async {
        loop {
            if proxy.records().iter().any(|r| r.kind == Kind::Closed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("cut closes the connection");
    drop(el);
}
