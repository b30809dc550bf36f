//! The embedded broker: QoS 0/1/2 round trips on MQTT 3.1.1 and 5.0 with rumqttc clients,
//! authentication, and stop/restart on the same ports.

use std::net::SocketAddr;
use std::time::Duration;

use simulator::broker::{handshake, BrokerConfig, Credentials, EmbeddedBroker, MqttVersion};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);
const MESSAGES: usize = 50;

/// Defines `round_trip` in a module that imports one rumqttc flavour (v4 or v5): the two APIs are alike
/// but distinct types, so one body serves both through the module's imports.
macro_rules! round_trip {
    ($tag:literal) => {
        /// Polls until the broker acknowledged a SUBSCRIBE.
        pub async fn wait_suback(event_loop: &mut EventLoop) {
            timeout(DEADLINE, async {
                loop {
                    if let Event::Incoming(Packet::SubAck(_)) = event_loop.poll().await.unwrap() {
                        break;
                    }
                }
            })
            .await
            .expect("SUBACK");
        }

        /// Subscribes at `qos`, publishes MESSAGES messages at `qos`, and returns what the subscriber
        /// got and how many acknowledgements (PUBACK or PUBCOMP) the publisher saw.
        pub async fn round_trip(
            addr: SocketAddr,
            qos: u8,
            creds: Option<&Credentials>,
        ) -> (Vec<(Vec<u8>, u8)>, usize) {
            let qos = match qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            let topic = format!("t/{}/{qos:?}", $tag);
            let options = |id: &str| {
                let mut o = MqttOptions::new(format!("{id}-{}", $tag), addr.ip().to_string(), addr.port());
                if let Some(c) = creds {
                    o.set_credentials(c.username.clone(), c.password.clone());
                }
                o
            };
            let (sub, mut sub_loop) = AsyncClient::new(options("sub"), 100);
            sub.subscribe(&topic, qos).await.unwrap();
            // Wait for SUBACK before publishing, so no message predates the subscription.
            wait_suback(&mut sub_loop).await;

            let (publisher, mut pub_loop) = AsyncClient::new(options("pub"), 100);
            let pub_task = tokio::spawn(async move {
                for i in 0..MESSAGES {
                    publisher
                        .publish(&topic, qos, false, format!("m{i}").into_bytes())
                        .await
                        .unwrap();
                }
                let mut acks = 0;
                loop {
                    match timeout(Duration::from_millis(500), pub_loop.poll()).await {
                        Ok(Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_)))) => acks += 1,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => panic!("publisher: {e}"),
                        // Quiet for 500 ms after the last publish left: nothing more will come.
                        Err(_) if qos == QoS::AtMostOnce || acks == MESSAGES => return acks,
                        Err(_) => {}
                    }
                }
            });

            let mut got = Vec::new();
            timeout(DEADLINE, async {
                while got.len() < MESSAGES {
                    if let Event::Incoming(Packet::Publish(p)) = sub_loop.poll().await.unwrap() {
                        got.push((p.payload.to_vec(), p.qos as u8));
                    }
                }
            })
            .await
            .expect("all messages delivered");
            let acks = timeout(DEADLINE, pub_task).await.unwrap().unwrap();
            (got, acks)
        }
    };
}

mod v4 {
    use super::*;
    use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
    round_trip!("v4");
}

mod v5 {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
    round_trip!("v5");
}

fn expected(qos: u8) -> Vec<(Vec<u8>, u8)> {
    (0..MESSAGES)
        .map(|i| (format!("m{i}").into_bytes(), qos))
        .collect()
}

#[tokio::test]
async fn qos_0_1_2_round_trip_on_v4_and_v5() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let v4 = broker.v4_addr().unwrap();
    let v5 = broker.v5_addr().unwrap();
    assert_ne!(v4.port(), 0);
    assert_ne!(v4, v5);
    for qos in 0..=2u8 {
        let (got, acks) = v4::round_trip(v4, qos, None).await;
        assert_eq!(got, expected(qos), "v4 QoS {qos}");
        assert_eq!(acks, if qos == 0 { 0 } else { MESSAGES }, "v4 QoS {qos} acks");
        let (got, acks) = v5::round_trip(v5, qos, None).await;
        assert_eq!(got, expected(qos), "v5 QoS {qos}");
        assert_eq!(acks, if qos == 0 { 0 } else { MESSAGES }, "v5 QoS {qos} acks");
    }
    assert_eq!(
        broker.url(MqttVersion::V5).unwrap(),
        format!("mqtt://{v5}?version=5.0")
    );
}

#[tokio::test]
async fn wrong_password_is_rejected_and_right_one_accepted() {
    let creds = Credentials {
        username: "meter".into(),
        password: "s3cret:@".into(),
    };
    let broker = EmbeddedBroker::start(BrokerConfig {
        credentials: Some(creds.clone()),
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let failures_after_start = broker.auth_failures();
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let addr = broker.addr(version).unwrap();
        let wrong = Credentials {
            username: "meter".into(),
            password: "wrong".into(),
        };
        let refused = handshake(version, addr, Some(&wrong), Duration::from_secs(5)).await;
        assert!(refused.is_err(), "{version:?}: wrong password accepted");
        let anonymous = handshake(version, addr, None, Duration::from_secs(5)).await;
        assert!(anonymous.is_err(), "{version:?}: anonymous client accepted");
        handshake(version, addr, Some(&creds), Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{version:?}: right password refused: {e}"));
    }
    // Two refusals per listener, counted even though rumqttd sends no CONNACK for them.
    assert_eq!(broker.auth_failures() - failures_after_start, 2);
    let (got, _) = v4::round_trip(broker.v4_addr().unwrap(), 1, Some(&creds)).await;
    assert_eq!(got, expected(1));
    assert_eq!(
        broker.url(MqttVersion::V311).unwrap(),
        format!(
            "mqtt://meter:s3cret%3A%40@{}?version=3.1.1",
            broker.v4_addr().unwrap()
        )
    );
    assert_eq!(
        broker.redacted_url(MqttVersion::V311).unwrap(),
        format!("mqtt://meter:***@{}?version=3.1.1", broker.v4_addr().unwrap())
    );
}

#[tokio::test]
async fn restart_keeps_ports_and_loses_sessions() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let v4 = broker.v4_addr().unwrap();

    // A persistent session with a subscription.
    let mut options = MqttOptions::new("persistent", v4.ip().to_string(), v4.port());
    options.set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(options.clone(), 10);
    client.subscribe("keep/me", QoS::AtLeastOnce).await.unwrap();
    v4::wait_suback(&mut eventloop).await;

    broker.stop().await;
    assert!(!broker.is_running());
    // The connection is closed by the stop, and nobody listens any more.
    let closed = timeout(DEADLINE, async {
        loop {
            if eventloop.poll().await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "client connection survived the stop");
    assert!(
        tokio::net::TcpStream::connect(v4).await.is_err(),
        "port still accepts after stop"
    );

    broker.restart().await.unwrap();
    assert_eq!(broker.v4_addr(), Some(v4));
    assert_eq!(broker.incarnation(), 2);

    // Reconnecting with clean_session=false finds no session: the restart lost it.
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let session_present = timeout(DEADLINE, async {
        loop {
            if let Ok(Event::Incoming(Packet::ConnAck(ack))) = eventloop.poll().await {
                break ack.session_present;
            }
        }
    })
    .await
    .expect("CONNACK after restart");
    assert!(!session_present);
    let (got, _) = v4::round_trip(v4, 2, None).await;
    assert_eq!(got, expected(2));
}

#[tokio::test]
async fn occupied_fixed_port_fails_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = EmbeddedBroker::start(BrokerConfig {
        v4_listen: Some(addr),
        v5_listen: None,
        ready_timeout: Duration::from_secs(3),
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

/// rumqttd 0.20 deviation, kept visible: a 5.0 publish with properties cannot reach a 3.1.1
/// subscriber (its connection task panics and the client is disconnected).
#[tokio::test]
async fn v5_publish_with_properties_disconnects_a_v4_subscriber() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let v4 = broker.v4_addr().unwrap();
    let v5 = broker.v5_addr().unwrap();
    let (sub, mut sub_loop) =
        AsyncClient::new(MqttOptions::new("v4-sub", v4.ip().to_string(), v4.port()), 10);
    sub.subscribe("x/#", QoS::AtLeastOnce).await.unwrap();
    v4::wait_suback(&mut sub_loop).await;

    let (publisher, mut pub_loop) = rumqttc::v5::AsyncClient::new(
        rumqttc::v5::MqttOptions::new("v5-pub", v5.ip().to_string(), v5.port()),
        10,
    );
    let props = PublishProperties {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    publisher
        .publish_with_properties(
            "x/1",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "{}",
            props,
        )
        .await
        .unwrap();
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });

    let outcome = timeout(DEADLINE, async {
        loop {
            match sub_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => return "delivered",
                Ok(_) => {}
                Err(_) => return "disconnected",
            }
        }
    })
    .await
    .expect("an outcome");
    assert_eq!(outcome, "disconnected");
}

/// rumqttd 0.20 deviation, kept visible: delivery happens at the subscription's QoS, not at
/// min(publish QoS, granted QoS) — a QoS 1 publish reaches a QoS 2 subscriber at QoS 2.
#[tokio::test]
async fn delivery_qos_is_the_subscription_qos() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let v4 = broker.v4_addr().unwrap();
    let (sub, mut sub_loop) =
        AsyncClient::new(MqttOptions::new("qos2-sub", v4.ip().to_string(), v4.port()), 10);
    sub.subscribe("q/#", QoS::ExactlyOnce).await.unwrap();
    v4::wait_suback(&mut sub_loop).await;
    let (publisher, mut pub_loop) =
        AsyncClient::new(MqttOptions::new("qos1-pub", v4.ip().to_string(), v4.port()), 10);
    publisher
        .publish("q/1", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let delivered = timeout(DEADLINE, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = sub_loop.poll().await.unwrap() {
                break p.qos;
            }
        }
    })
    .await
    .expect("delivered");
    assert_eq!(
        delivered,
        QoS::ExactlyOnce,
        "spec says QoS 1 (min of publish and granted)"
    );
}
