use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    Publish(u16),
    PubRel(u16),
    New,
}

fn reorder(pending: &[Req], max: u16, newest: u16) -> Vec<Req> {
    let mut q: VecDeque<Req> = pending.iter().copied().collect();
    let sent = Sent {
        max,
        newest: Some(newest),
    };
    resend_in_order(&mut q, sent, |r| match r {
        Req::PubRel(p) => Resend::Release(*p),
        Req::Publish(p) => Resend::Publish(*p),
        Req::New => Resend::Other,
    });
    q.into_iter().collect()
}

#[test]
fn resends_go_out_in_sending_order_across_a_packet_id_wrap() {
    use Req::*;
    // Window of 20, sent 17, 18, 19, 20, 1, 2, 3, 4, 5: 17..=20 and 1 PUBREC'd, 2..=5 not. rumqttc queues
    // the PUBLISHes first and everything by packet id; a new publish was waiting in the channel.
    let queued = [
        Publish(2),
        Publish(3),
        Publish(4),
        Publish(5),
        PubRel(1),
        PubRel(17),
        PubRel(18),
        PubRel(19),
        PubRel(20),
        New,
    ];
    assert_eq!(
        reorder(&queued, 20, 5),
        [
            PubRel(17),
            PubRel(18),
            PubRel(19),
            PubRel(20),
            PubRel(1),
            Publish(2),
            Publish(3),
            Publish(4),
            Publish(5),
            New
        ]
    );
    // PUBLISHes alone, wrapped: 19, 20, 1, 2 (rumqttc queues 1, 2, 19, 20).
    assert_eq!(
        reorder(&[Publish(1), Publish(2), Publish(19), Publish(20)], 20, 2),
        [Publish(19), Publish(20), Publish(1), Publish(2)]
    );
    // No wrap: PUBRELs before PUBLISHes, otherwise kept.
    assert_eq!(
        reorder(&[Publish(9), PubRel(7), PubRel(8), New], 20, 9),
        [PubRel(7), PubRel(8), Publish(9), New]
    );
    assert_eq!(reorder(&[New, New], 20, 3), [New, New]);
    // The whole window outstanding, sent 11..=20 then 1..=10, 11..=14 PUBREC'd.
    let mut queued: Vec<Req> = (1..=10).chain(15..=20).map(Publish).collect();
    queued.extend((11..=14).map(PubRel));
    let expected: Vec<Req> = (11..=14)
        .map(PubRel)
        .chain((15..=20).chain(1..=10).map(Publish))
        .collect();
    assert_eq!(reorder(&queued, 20, 10), expected);
    // The whole window outstanding, sent 3..=20 then 1, 2 (a cut with a full window, found by `harness
    // explore`): no gap among the ids, only the newest tells that 1 and 2 go last.
    let queued: Vec<Req> = (1..=20).map(Publish).collect();
    let expected: Vec<Req> = (3..=20).chain(1..=2).map(Publish).collect();
    assert_eq!(reorder(&queued, 20, 2), expected);
    // Nothing wrapped yet: the highest id seen is the newest, the run starts at 1.
    let sent = Sent::default();
    assert_eq!(sent.age(1), 0);
    let mut sent = Sent::default();
    [1, 2, 3, 0].into_iter().for_each(|p| sent.saw(p));
    assert_eq!((sent.max, sent.newest), (3, Some(3)));
    assert!(sent.age(1) < sent.age(2) && sent.age(2) < sent.age(3));
}

#[test]
fn events_buffered_by_a_failed_connection_are_taken_not_left_for_the_next_one() {
    use rumqttc::{Event, Incoming, Outgoing};
    let mut v4 = rumqttc::EventLoop::new(rumqttc::MqttOptions::new("t", "localhost", 1883), 10);
    // A PUBLISH reported just before its flush failed, and an ack read in the same batch as the error.
    v4.state.events.push_back(Event::Outgoing(Outgoing::Publish(7)));
    v4.state
        .events
        .push_back(Event::Incoming(Incoming::PubAck(rumqttc::PubAck::new(6))));
    v4.state.events.push_back(Event::Outgoing(Outgoing::PingReq));
    let mut el = AnyLoop::V4(v4);
    assert_eq!(
        el.take_stale_events(),
        [Polled::Outgoing(7), Polled::Acked(6), Polled::Other]
    );
    assert!(el.take_stale_events().is_empty());

    use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, PubAckReason};
    let mut v5 = rumqttc::v5::EventLoop::new(rumqttc::v5::MqttOptions::new("t", "localhost", 1883), 10);
    let mut refused = PubAck::new(3, None);
    refused.reason = PubAckReason::NotAuthorized;
    v5.state
        .events
        .push_back(rumqttc::v5::Event::Incoming(Packet::PubAck(refused)));
    v5.state
        .events
        .push_back(rumqttc::v5::Event::Outgoing(Outgoing::Publish(4)));
    let mut el = AnyLoop::V5(v5);
    assert_eq!(
        el.take_stale_events(),
        [
            Polled::Rejected(3, "PUBACK NotAuthorized".into()),
            Polled::Outgoing(4)
        ]
    );
}

#[test]
fn publishes_that_never_went_out_leave_the_queue_and_the_resends_are_listed() {
    use rumqttc::{PubRel, Publish, QoS, Request};
    let publish = |pkid| {
        let mut p = Publish::new("t", QoS::AtLeastOnce, "x");
        p.pkid = pkid;
        Request::Publish(p)
    };
    // Window of 3: 3 and 2 unanswered, 1 PUBREC'd; two newer publishes were still in the channel
    // (rumqttc's `clean()` queues them after its re-sends), and a QoS 0 one.
    let mut pending: VecDeque<Request> = [
        publish(3),
        publish(2),
        Request::PubRel(PubRel::new(1)),
        publish(0),
    ]
    .into();
    pending.push_back(Request::Publish(Publish::new("t", QoS::AtMostOnce, "q0")));
    pending.push_back(publish(0));
    let sent = Sent {
        max: 3,
        newest: Some(3),
    };
    assert_eq!(requeue(&mut pending, sent), [1, 2, 3]);
    let queued: Vec<Resend> = pending.iter().map(Queued::resend).collect();
    assert_eq!(
        queued,
        [Resend::Release(1), Resend::Publish(2), Resend::Publish(3)]
    );
}

#[test]
fn backoff_doubles_from_100ms_to_a_10s_cap_with_jitter() {
    for (attempt, max_ms) in [(0, 100), (1, 200), (2, 400), (6, 6400), (7, 10_000), (30, 10_000)] {
        for _ in 0..50 {
            let d = backoff(attempt).as_millis() as u64;
            assert!(d >= max_ms / 2 && d <= max_ms, "attempt {attempt}: {d} ms");
        }
    }
}
