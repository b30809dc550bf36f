//! MQTT 3.1 through the shim, checked on the wire and against a real Mosquitto: the CONNECT bytes say
//! `MQIsdp` level 3, Mosquitto logs the client as protocol 3.1 (`p1`), QoS 0/1/2 publishes arrive, CONNACK
//! refusals and TLS failures surface; and the bridge with `version=3.1` end to end. Requires `mosquitto`
//! (ci/setup.sh installs it).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS};
use simulator::mosquitto::{Mosquitto, TlsListener};
use simulator::tls::TestPki;
use tmq2mqtt::mqtt31::{Mqtt31Error, Mqtt31Shim, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);
const PER_QOS: usize = 100;

/// A TCP tee: forwards to `target` and records what each client sent.
struct Tee {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Tee {
    async fn start(target: SocketAddr) -> Tee {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut broker = TcpStream::connect(target).await.unwrap();
                let index = {
                    let mut all = record.lock().unwrap();
                    all.push(Vec::new());
                    all.len() - 1
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let (mut client_rx, mut client_tx) = client.split();
                    let (mut broker_rx, mut broker_tx) = broker.split();
                    let upstream = async {
                        let mut chunk = [0u8; 4096];
                        while let Ok(n @ 1..) = client_rx.read(&mut chunk).await {
                            record.lock().unwrap()[index].extend_from_slice(&chunk[..n]);
                            if broker_tx.write_all(&chunk[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = broker_tx.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut broker_rx, &mut client_tx).await;
                        let _ = client_tx.shutdown().await;
                    };
                    tokio::join!(upstream, downstream);
                });
            }
        });
        Tee { addr, sent }
    }

    fn first_bytes(&self, connection: usize) -> Vec<u8> {
        self.sent.lock().unwrap()[connection].clone()
    }
}

/// A 3.1.1 subscriber straight to the broker, forwarding publishes; returns after its SUBACK.
async fn subscriber(broker: &Mosquitto, topic: &str) -> mpsc::UnboundedReceiver<rumqttc::Publish> {
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("observer", broker.host(), broker.port()), 10);
    client.subscribe(topic, QoS::ExactlyOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready_tx = Some(ready_tx);
        loop {
            match eventloop.poll().await.expect("subscriber") {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let Ok(()) = tx.send(p) else { return };
                }
                _ => {}
            }
        }
    });
    timeout(DEADLINE, ready_rx).await.unwrap().unwrap();
    rx
}

/// Waits until the broker's log contains `needle`.
async fn log_shows(broker: &Mosquitto, needle: &str) {
    let found = timeout(DEADLINE, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if broker.log().contains(needle) {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "Mosquitto's log never showed {needle:?}:\n{}",
        broker.log()
    );
}

#[tokio::test]
async fn speaks_mqtt_3_1_on_the_wire_and_delivers_every_qos() {
    let broker = Mosquitto::builder().verbose_log(true).start().unwrap();
    let tee = Tee::start(broker.addr()).await;
    let mut received = subscriber(&broker, "t31/#").await;

    let shim = Mqtt31Shim::start(Upstream::tcp("127.0.0.1", tee.addr.port()).nodelay(true)).unwrap();
    let mut options = shim.mqtt_options("bridge31").unwrap();
    options.set_keep_alive(Duration::from_secs(5));
    options.set_inflight(20); // Mosquitto's incoming QoS 2 window
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let publisher = client.clone();
    tokio::spawn(async move {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for i in 0..PER_QOS {
                publisher
                    .publish(format!("t31/{}", qos as u8), qos, false, format!("{i}"))
                    .await
                    .unwrap();
            }
        }
    });

    let (mut connacks, mut sent, mut pubacks, mut pubcomps) = (0, 0, 0, 0);
    timeout(DEADLINE, async {
        while sent < 3 * PER_QOS || pubacks < PER_QOS || pubcomps < PER_QOS {
            match eventloop.poll().await.expect("3.1 publisher") {
                Event::Incoming(Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, ConnectReturnCode::Success);
                    assert!(!ack.session_present, "3.1 CONNACK has no session-present flag");
                    connacks += 1;
                }
                Event::Outgoing(Outgoing::Publish(_)) => sent += 1,
                Event::Incoming(Packet::PubAck(_)) => pubacks += 1,
                Event::Incoming(Packet::PubComp(_)) => pubcomps += 1,
                _ => {}
            }
        }
    })
    .await
    .expect("every publish acknowledged in time");
    assert_eq!((connacks, pubacks, pubcomps), (1, PER_QOS, PER_QOS));

    // On the wire: CONNECT, remaining length, protocol name "MQIsdp", level 3.
    let wire = tee.first_bytes(0);
    assert_eq!(wire[0], 0x10, "first packet is CONNECT");
    assert_eq!(
        &wire[2..11],
        &[0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3],
        "{:02x?}",
        &wire[..wire.len().min(16)]
    );
    // Mosquitto's own view: protocol p1 = MQTT 3.1 (3.1.1 would be p4).
    log_shows(&broker, "as bridge31 (p1,").await;

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..PER_QOS {
            let p = timeout(DEADLINE, received.recv())
                .await
                .expect("message in time")
                .unwrap();
            assert_eq!(p.topic, format!("t31/{}", qos as u8));
            assert_eq!(p.payload, format!("{i}").as_bytes());
            assert_eq!(p.qos, qos);
        }
    }

    // A graceful DISCONNECT passes through the shim before the connection closes.
    client.disconnect().await.unwrap();
    timeout(DEADLINE, async {
        while !matches!(
            eventloop.poll().await,
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
        ) {}
    })
    .await
    .unwrap();
    log_shows(&broker, "Received DISCONNECT from bridge31").await;
    assert!(shim.take_error().is_none());
}

async fn connect_once(options: MqttOptions) -> Result<Event, ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    timeout(DEADLINE, eventloop.poll())
        .await
        .expect("connect outcome in time")
}

#[tokio::test]
async fn connack_refusals_pass_through_unchanged() {
    let broker = Mosquitto::builder()
        .passwords([("bridge", "s3cret")])
        .start()
        .unwrap();
    let shim = Mqtt31Shim::start(Upstream::tcp(broker.host(), broker.port())).unwrap();

    let mut good = shim.mqtt_options("good").unwrap();
    good.set_credentials("bridge", "s3cret");
    assert!(matches!(
        connect_once(good).await,
        Ok(Event::Incoming(Packet::ConnAck(_)))
    ));

    let mut bad = shim.mqtt_options("bad").unwrap();
    bad.set_credentials("bridge", "wrong");
    match connect_once(bad).await {
        Err(ConnectionError::ConnectionRefused(code)) => assert_eq!(code, ConnectReturnCode::NotAuthorized),
        other => panic!("expected CONNACK refusal 5, got {other:?}"),
    }
    assert!(
        shim.take_error().is_none(),
        "a refusal is the broker's answer, not a shim failure"
    );

    let err = shim.mqtt_options("a-client-id-of-24-bytes!").unwrap_err();
    assert!(matches!(err, Mqtt31Error::ClientId { len: 24, .. }), "{err}");
}

#[tokio::test]
async fn unreachable_broker_is_reported_with_its_cause() {
    let port = simulator::net::free_port().unwrap().port();
    let shim = Mqtt31Shim::start(Upstream::tcp("127.0.0.1", port)).unwrap();
    assert!(connect_once(shim.mqtt_options("lonely").unwrap()).await.is_err());
    let err = shim.take_error().expect("the shim knows why").to_string();
    assert!(
        err.starts_with(&format!("cannot connect to the MQTT broker at 127.0.0.1:{port}")),
        "{err}"
    );
}

fn trusting(ca_pem: &str) -> Arc<rumqttc::tokio_rustls::rustls::ClientConfig> {
    simulator::tls::client_config(ca_pem, None).unwrap()
}

#[tokio::test]
async fn tls_to_the_broker_verifies_its_certificate() {
    let pki = TestPki::new("bench CA").unwrap();
    let tls = TlsListener {
        ca_pem: pki.ca_pem(),
        server: pki.server_cert().unwrap(),
        require_client_cert: false,
    };
    let broker = Mosquitto::builder().tls(tls).verbose_log(true).start().unwrap();

    let shim = Mqtt31Shim::start(Upstream::tls("127.0.0.1", broker.port(), trusting(&pki.ca_pem()))).unwrap();
    let event = connect_once(shim.mqtt_options("tls31").unwrap()).await;
    assert!(
        matches!(event, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "{event:?}"
    );
    log_shows(&broker, "as tls31 (p1,").await;

    let stranger = TestPki::new("stranger CA").unwrap();
    let shim = Mqtt31Shim::start(Upstream::tls(
        "127.0.0.1",
        broker.port(),
        trusting(&stranger.ca_pem()),
    ))
    .unwrap();
    assert!(connect_once(shim.mqtt_options("tls31-bad").unwrap())
        .await
        .is_err());
    let err = shim.take_error().expect("the shim knows why").to_string();
    assert!(
        err.contains("TLS handshake") && err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test]
async fn reconnects_through_the_shim_after_a_broker_restart() {
    let mut broker = Mosquitto::builder().verbose_log(true).start().unwrap();
    let shim = Mqtt31Shim::start(Upstream::tcp(broker.host(), broker.port())).unwrap();
    let mut options = shim.mqtt_options("survivor").unwrap();
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let first = timeout(DEADLINE, eventloop.poll()).await.unwrap();
    assert!(
        matches!(first, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "{first:?}"
    );

    broker.restart().unwrap();
    // The broker's close reaches rumqttc through the shim as an error, not as a hang.
    timeout(DEADLINE, async { while eventloop.poll().await.is_ok() {} })
        .await
        .expect("disconnect noticed");
    let again = timeout(DEADLINE, eventloop.poll()).await.unwrap();
    assert!(
        matches!(again, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "{again:?}"
    );

    client
        .publish("after/restart", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    timeout(DEADLINE, async {
        while !matches!(
            eventloop.poll().await.expect("connected"),
            Event::Incoming(Packet::PubAck(_))
        ) {}
    })
    .await
    .expect("PUBACK after the reconnect");
    log_shows(&broker, "as survivor (p1,").await;
}

#[tokio::test]
async fn a_vanished_client_triggers_its_last_will() {
    let broker = Mosquitto::start().unwrap();
    let mut status = subscriber(&broker, "status/#").await;
    let shim = Mqtt31Shim::start(Upstream::tcp(broker.host(), broker.port())).unwrap();
    let mut options = shim.mqtt_options("willing").unwrap();
    options.set_last_will(rumqttc::LastWill::new(
        "status/willing",
        "offline",
        QoS::AtLeastOnce,
        false,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let first = timeout(DEADLINE, eventloop.poll()).await.unwrap();
    assert!(
        matches!(first, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "{first:?}"
    );

    // No DISCONNECT: the process "crashes", its socket to the shim closes, the shim closes the broker side.
    drop((client, eventloop));
    let will = timeout(DEADLINE, status.recv())
        .await
        .expect("Last Will in time")
        .unwrap();
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("status/willing", &b"offline"[..])
    );
}

// ---- the bridge with `version=3.1` ---------------------------------------------------------------------

/// Mosquitto logs each client's protocol as it read it from the wire: `p1` is MQTT 3.1 (`MQIsdp`/3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_1_speaks_mqisdp_level_3_on_the_wire() {
    let td = common::StandIn::with_meters(1, "t").await;
    td.insert(2, 0..10);
    let broker = Mosquitto::builder().verbose_log(true).start().unwrap();
    let mut sub =
        common::Subscriber::start(broker.addr(), simulator::broker::MqttVersion::V311, "w/#", 1).await;
    let run = common::Running::start(
        &td.earliest_dsn("t", "wire"),
        &format!(
            "mqtt://{}?version=3.1&qos=2&client_id=wire31&topic=w/{{table}}",
            broker.addr()
        ),
    );
    let got = sub.collect(10, Duration::from_secs(30)).await;
    assert_eq!(common::distinct_f1(&got), (0..10).collect());
    run.stop().await;
    let log = broker.log();
    assert!(
        log.contains("as wire31 (p1,"),
        "Mosquitto saw no MQTT 3.1 client:\n{log}"
    );
}

#[test]
fn version_3_1_client_id_longer_than_23_bytes_is_refused_at_parse() {
    let err =
        tmq2mqtt::dsn::TargetDsn::parse("mqtt://h?version=3.1&client_id=a-client-id-of-24-bytes!&topic=x")
            .unwrap_err()
            .to_string();
    assert!(err.contains("1 to 23 bytes"), "{err}");
    assert!(tmq2mqtt::dsn::TargetDsn::parse(
        "mqtt://h?version=3.1.1&client_id=a-client-id-of-24-bytes!&topic=x"
    )
    .is_ok());
}

/// A broker that acknowledges some PUBLISHes and closes while the client is still publishing: every PUBACK
/// it sent before the close reaches rumqttc through the shim. (Dropping rumqttc's socket at the broker's
/// close failed its next write before it read the last PUBACKs, and the bridge re-sent acknowledged rows.)
/// The broker is scripted on a raw socket to close at an exact point; it half-closes and reads on, so
/// what it wrote reaches the shim whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubacks_sent_before_the_broker_closes_reach_the_client() {
    const ACKS: usize = 40;
    for round in 0..20 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let broker = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut packets = 0;
            let mut acked = 0;
            let mut chunk = [0u8; 8192];
            while acked < ACKS {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed first");
                buf.extend_from_slice(&chunk[..n]);
                let mut reply = Vec::new();
                while let Some(len) = common::ack_proxy::frame_len(&buf) {
                    let packet: Vec<u8> = buf.drain(..len).collect();
                    packets += 1;
                    if packets == 1 {
                        reply.extend_from_slice(&[0x20, 2, 0, 0]); // CONNACK to the CONNECT
                    } else if packet[0] >> 4 == 3 && acked < ACKS {
                        // QoS 1 PUBLISH: topic (length-prefixed), then the packet id.
                        let body = common::ack_proxy::body(&packet);
                        let at = 2 + u16::from_be_bytes([body[0], body[1]]) as usize;
                        reply.extend_from_slice(&[0x40, 2, body[at], body[at + 1]]);
                        acked += 1;
                    }
                }
                s.write_all(&reply).await.unwrap();
            }
            s.shutdown().await.unwrap();
            while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {}
        });
        let shim = Mqtt31Shim::start(Upstream::tcp("127.0.0.1", upstream.port())).unwrap();
        let mut options = shim.mqtt_options("busy").unwrap();
        options.set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        for i in 0..1000 {
            client
                .try_publish("busy", QoS::AtLeastOnce, false, vec![b'x'; 100 + i % 7])
                .unwrap();
        }
        let mut pubacks = 0;
        timeout(DEADLINE, async {
            while let Ok(event) = eventloop.poll().await {
                pubacks += usize::from(matches!(event, Event::Incoming(Packet::PubAck(_))));
            }
        })
        .await
        .expect("the broker's close reaches the client");
        // rumqttc keeps the events of packets read together with the close (the bridge takes them too).
        pubacks += eventloop
            .state
            .events
            .iter()
            .filter(|e| matches!(e, Event::Incoming(Packet::PubAck(_))))
            .count();
        assert_eq!(
            pubacks, ACKS,
            "round {round}: PUBACKs the client read before the close"
        );
        broker.await.unwrap();
    }
}
