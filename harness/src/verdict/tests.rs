//! Verdict tests on hand-made runs: each builds expected rows, deliveries and wire records and checks that
//! the verdict finds exactly what is wrong (or nothing).

use std::path::Path;

use super::*;
use crate::scenario::{self, LossCause};
use crate::wire::{Direction, Kind, WireRecord};

fn scenario_with(qos: u8, template: &str, expect: &str, subs: &str) -> Scenario {
    let text = format!(
        r#"
[[bridges]]
name = "b"
from = "tmq+ws://root:taosdata@{{tdengine}}/t?group.id=g"
to = "mqtt://{{broker}}?topic={template}&qos={qos}&version=3.1.1&client_id=b"
{subs}
[expect]
{expect}
"#
    );
    scenario::parse(Path::new("t.toml"), &text).unwrap()
}

fn one_sub(filter: &str, qos: u8) -> String {
    format!("[[subscribers]]\nname = \"s\"\nfilter = \"{filter}\"\nqos = {qos}\n")
}

fn row(seq: u64, table: &str, ts: i64, v: i64) -> ExpectedRow {
    let data: Map<String, Value> =
        serde_json::from_value(serde_json::json!({"ts": ts, "tbname": table, "v": v})).unwrap();
    ExpectedRow {
        seq,
        order: seq,
        database: "power".into(),
        tmq_topic: "t".into(),
        table: table.into(),
        vgroup_id: Some(2),
        ts,
        data,
        written_at_us: Some(1_000_000 + seq * 10),
    }
}

fn payload_of(r: &ExpectedRow, offset: i64) -> Bytes {
    Bytes::from(
        serde_json::json!({"data": r.data, "offset": {"database": r.database, "topic": r.tmq_topic, "vgroupId": 2, "offset": offset}})
            .to_string(),
    )
}

fn delivered(sub: &str, topic: &str, payload: Bytes, qos: u8, at_us: u64) -> Delivered {
    Delivered {
        subscriber: sub.into(),
        topic: topic.into(),
        payload,
        qos,
        dup: false,
        retain: false,
        at_us,
        v5: None,
    }
}

/// Deliveries of `rows` in order on topic `m/{table}` to subscriber "s".
fn deliver_all(rows: &[ExpectedRow], qos: u8) -> Vec<Delivered> {
    rows.iter()
        .map(|r| {
            delivered(
                "s",
                &format!("m/{}", r.table),
                payload_of(r, r.seq as i64),
                qos,
                2_000_000 + r.seq * 1000,
            )
        })
        .collect()
}

/// A wire where every row was published at `qos` and acked (when `acked`).
fn wire_for(rows: &[ExpectedRow], qos: u8, acked: &dyn Fn(&ExpectedRow) -> bool) -> Vec<WireRecord> {
    let mut out = vec![WireRecord::event(1, 0, Kind::Opened)];
    for (i, r) in rows.iter().enumerate() {
        let mut p = WireRecord::event(1, 0, Kind::Publish);
        p.qos = qos;
        p.pkid = i as u16 + 1;
        p.payload = Some(payload_of(r, r.seq as i64));
        out.push(p);
        if acked(r) {
            let mut a = WireRecord::event(1, 0, Kind::PubAck);
            a.dir = Direction::ToClient;
            a.pkid = i as u16 + 1;
            out.push(a);
        }
    }
    out
}

fn run(s: &Scenario, expected: &[ExpectedRow], delivered: &[Delivered], wire: Vec<WireRecord>) -> Verdict {
    let wire = if wire.is_empty() {
        vec![]
    } else {
        vec![("b".to_string(), wire)]
    };
    judge(&Inputs {
        scenario: s,
        seed: 7,
        expected,
        delivered,
        wire: &wire,
        bridges: &[BridgeOutcome {
            name: "b".into(),
            error: None,
            counters: None,
        }],
        ending: Ending::Quiescent,
        faults: &FaultLog::default(),
        committed: &[],
        served: None,
        replay: "harness run t --seed 7".into(),
    })
}

fn rows() -> Vec<ExpectedRow> {
    vec![
        row(1, "d0", 100, 1),
        row(2, "d1", 100, 2),
        row(3, "d0", 101, 3),
        row(4, "d1", 101, 4),
    ]
}

#[test]
fn everything_once_passes_with_latency_and_throughput() {
    let s = scenario_with(1, "m/{table}", "delivery = \"exactly-once\"", &one_sub("m/#", 1));
    let rows = rows();
    let v = run(&s, &rows, &deliver_all(&rows, 1), wire_for(&rows, 1, &|_| true));
    assert!(v.passed, "{:?}", v.failures);
    assert_eq!(v.subscribers[0].distinct, 4);
    let l = v.latency.unwrap();
    assert_eq!(l.samples, 4);
    assert!(l.p50_ms > 1000.0);
    assert!(v.throughput_msg_s.is_some());
    assert!(v.deviations.is_empty(), "{:?}", v.deviations);
}

#[test]
fn every_loss_is_attributed_and_named() {
    let s = scenario_with(1, "m/{table}", "", &one_sub("m/#", 1));
    let rows = rows();
    // Row 2 never published, row 3 published but not acked, row 4 acked but not delivered.
    let wire_rows: Vec<ExpectedRow> = rows.iter().filter(|r| r.seq != 2).cloned().collect();
    let wire = wire_for(&wire_rows, 1, &|r| r.seq != 3);
    let v = run(&s, &rows, &deliver_all(&rows[..1], 1), wire);
    assert!(!v.passed);
    let names = |c: LossCause| -> Vec<u64> { v.losses[&c].iter().map(|r| r.seq).collect() };
    assert_eq!(names(LossCause::NeverPublished), [2]);
    assert_eq!(names(LossCause::NeverAcked), [3]);
    assert_eq!(names(LossCause::Broker), [4]);
    let text = v.failures.join("\n");
    assert!(text.contains("d1@100 (write log #2)"), "{text}");
    assert!(text.contains("the broker's loss"), "{text}");
    assert!(text.contains("never acknowledged"), "{text}");
}

#[test]
fn without_a_wire_recording_losses_are_unknown() {
    let s = scenario_with(1, "m/{table}", "", &one_sub("m/#", 1));
    let rows = rows();
    let v = run(&s, &rows, &deliver_all(&rows[..3], 1), vec![]);
    assert_eq!(v.losses[&LossCause::Unknown].len(), 1);
}

#[test]
fn tolerated_losses_do_not_fail() {
    let s = scenario_with(0, "m/{table}", "delivery = \"at-most-once\"", &one_sub("m/#", 0));
    let rows = rows();
    let v = run(
        &s,
        &rows,
        &deliver_all(&rows[..2], 0),
        wire_for(&rows, 0, &|_| false),
    );
    assert!(v.passed, "{:?}", v.failures);
    assert!(v.deviations.iter().any(|d| d.contains("tolerated loss")));

    let s = scenario_with(
        1,
        "m/{table}",
        "allowed_losses = [\"never-acked\"]",
        &one_sub("m/#", 1),
    );
    let v = run(
        &s,
        &rows,
        &deliver_all(&rows[..2], 1),
        wire_for(&rows, 1, &|r| r.seq <= 2),
    );
    // Still failing: the wire shows unacked QoS 1 publishes.
    assert!(
        v.failures.iter().all(|f| !f.contains("row(s) published")),
        "{:?}",
        v.failures
    );
}

#[test]
fn duplicates_fail_exactly_once_but_not_at_least_once() {
    let rows = rows();
    let mut d = deliver_all(&rows, 1);
    d.push(d[1].clone());
    let s = scenario_with(2, "m/{table}", "delivery = \"exactly-once\"", &one_sub("m/#", 2));
    let v = run(&s, &rows, &d, vec![]);
    assert!(!v.passed);
    assert_eq!(v.subscribers[0].duplicates, 1);
    let s = scenario_with(1, "m/{table}", "delivery = \"at-least-once\"", &one_sub("m/#", 1));
    let v = run(&s, &rows, &d, vec![]);
    assert!(v.passed, "{:?}", v.failures);
    let s = scenario_with(1, "m/{table}", "max_duplicates = 0", &one_sub("m/#", 1));
    assert!(!run(&s, &rows, &d, vec![]).passed);
}

#[test]
fn order_topic_and_shape_are_checked() {
    let s = scenario_with(1, "m/{table}", "", &one_sub("m/#", 1));
    let rows = rows();
    let mut d = deliver_all(&rows, 1);
    d.swap(0, 2); // d0's second row before its first
    d[1].topic = "m/wrong".into();
    d.push(delivered("s", "m/x", Bytes::from_static(b"{\"data\":{}}"), 1, 9));
    d.push(delivered("s", "m/x", payload_of(&row(99, "d9", 1, 1), 1), 1, 9));
    let v = run(&s, &rows, &d, vec![]);
    let rep = &v.subscribers[0];
    assert_eq!(rep.out_of_order.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(rep.wrong_topic.len(), 1);
    assert_eq!(rep.wrong_topic[0].1, "m/d1");
    assert_eq!(rep.malformed.len(), 1);
    assert_eq!(rep.extra, 1);
    assert_eq!(v.failures.len(), 4, "{:#?}", v.failures);
}

#[test]
fn wildcard_subscribers_are_judged_on_their_subset() {
    let subs = "[[subscribers]]\nname = \"s\"\nfilter = \"m/d1\"\nqos = 1\n\
                [[subscribers]]\nname = \"plus\"\nfilter = \"+/d0\"\nqos = 1\n";
    let s = scenario_with(1, "m/{table}", "", subs);
    let rows = rows();
    let mut d: Vec<Delivered> = deliver_all(&rows, 1)
        .into_iter()
        .filter(|m| m.topic == "m/d1")
        .collect();
    let mut plus: Vec<Delivered> = deliver_all(&rows, 1)
        .into_iter()
        .filter(|m| m.topic == "m/d0")
        .collect();
    for m in &mut plus {
        m.subscriber = "plus".into();
    }
    d.extend(plus);
    let v = run(&s, &rows, &d, vec![]);
    assert!(v.passed, "{:?}", v.failures);
    assert_eq!(v.subscribers[0].expected, 2);
    assert_eq!(v.subscribers[1].expected, 2);
    // A row of the other subset arriving at "s" is extra.
    d.push(deliver_all(&rows, 1)[0].clone());
    assert!(!run(&s, &rows, &d, vec![]).passed);
}

#[test]
fn a_template_variable_data_lacks_means_nothing_is_expected() {
    let s = scenario_with(1, "m/{stable}", "rows = 0", &one_sub("#", 1));
    let rows = rows();
    let v = run(&s, &rows, &[], vec![]);
    assert!(v.passed, "{:?}", v.failures);
    assert_eq!(v.skipped_by_template, 4);
}

#[test]
fn vgroup_topics_are_learnt_from_deliveries() {
    let s = scenario_with(1, "m/{vgroup_id}/{table}", "", &one_sub("m/2/#", 1));
    let mut rows = rows();
    for r in &mut rows {
        r.vgroup_id = None;
    }
    let mut d = deliver_all(&rows, 1);
    for m in &mut d {
        m.topic = m.topic.replace("m/", "m/2/");
    }
    let v = run(&s, &rows, &d, vec![]);
    assert!(v.passed, "{:?}", v.failures);
}

#[test]
fn qos_upgrades_and_missing_dup_are_deviations_unless_the_scenario_fails_them() {
    let rows = rows();
    let mut wire = wire_for(&rows[..1], 1, &|_| false);
    wire.push(WireRecord::event(1, 0, Kind::Closed));
    wire.extend(wire_for(&rows, 1, &|_| true).into_iter().skip(1).map(|mut r| {
        r.conn = 2;
        r
    }));
    // The cut connection closed with its flow open: the scenario declares that (no fault of its own did it).
    let s = scenario_with(
        1,
        "m/{table}",
        "[expect.wire]\nopen_at_close = \"report\"",
        &one_sub("m/#", 2),
    );
    let v = run(&s, &rows, &deliver_all(&rows, 2), wire.clone());
    assert!(v.passed, "{:?}", v.failures);
    assert_eq!(v.deviations.len(), 3, "{:?}", v.deviations);
    assert!(v
        .deviations
        .iter()
        .any(|d| d.contains("open when their connection closed")));
    assert!(v.deviations.iter().any(|d| d.contains("subscription's QoS")));
    assert!(v.deviations.iter().any(|d| d.contains("without DUP=1")));

    let s = scenario_with(
        1,
        "m/{table}",
        "[expect.wire]\nmissing_dup = \"fail\"\nqos_upgrade = \"fail\"\nopen_at_close = \"report\"",
        &one_sub("m/#", 2),
    );
    let v = run(&s, &rows, &deliver_all(&rows, 2), wire);
    assert_eq!(v.failures.len(), 2, "{:?}", v.failures);
}

#[test]
fn expected_bridge_errors_are_checked() {
    let text = r##"
[[bridges]]
name = "b"
from = "tmq+ws://root:taosdata@{tdengine}/t?group.id=g"
to = "mqtt://bad:creds@{broker}?topic=m&qos=1&version=3.1.1&client_id=b"
expect_error = "authentication"
[[subscribers]]
name = "s"
filter = "#"
[expect]
rows = 0
"##;
    let s = scenario::parse(Path::new("t.toml"), text).unwrap();
    let judge_with = |error: Option<&str>| {
        judge(&Inputs {
            scenario: &s,
            seed: 1,
            expected: &rows(),
            delivered: &[],
            wire: &[],
            bridges: &[BridgeOutcome {
                name: "b".into(),
                error: error.map(str::to_string),
                counters: None,
            }],
            ending: Ending::Quiescent,
            faults: &FaultLog::default(),
            committed: &[],
            served: None,
            replay: String::new(),
        })
    };
    assert!(judge_with(Some("MQTT authentication failed")).passed);
    assert!(!judge_with(None).passed);
    assert!(!judge_with(Some("timeout")).passed);
}

/// The stand-in's record of serving `rows` one message each, at offset `seq` (as [`wire_for`] publishes).
fn served_for(rows: &[ExpectedRow], group: &str) -> Vec<simulator::tdengine::tmq::ServedMessage> {
    rows.iter()
        .map(|r| simulator::tdengine::tmq::ServedMessage {
            group: group.into(),
            topic: r.tmq_topic.clone(),
            db: r.database.clone(),
            vgroup: 2,
            offset: r.seq as i64,
            rows: vec![(r.table.clone(), r.ts)],
        })
        .collect()
}

fn judge_offsets(
    wire: Vec<WireRecord>,
    served: &[simulator::tdengine::tmq::ServedMessage],
    committed: &[CommittedOffset],
) -> Verdict {
    let s = scenario_with(1, "m/{table}", "", &one_sub("m/#", 1));
    let rows = rows();
    judge(&Inputs {
        scenario: &s,
        seed: 7,
        expected: &rows,
        delivered: &deliver_all(&rows, 1),
        wire: &[("b".to_string(), wire)],
        bridges: &[],
        ending: Ending::Quiescent,
        faults: &FaultLog::default(),
        committed,
        served: Some(served),
        replay: String::new(),
    })
}

#[test]
fn payload_offsets_must_be_those_of_the_served_messages() {
    let rows = rows();
    let served = served_for(&rows, "g");
    let good = judge_offsets(wire_for(&rows, 1, &|_| true), &served, &[]);
    assert!(good.passed, "{:?}", good.failures);
    assert_eq!(good.offsets.checked, 4);
    // A bridge that shows where its poll started (one less) instead of the message's offset.
    let mut shifted = wire_for(&rows, 1, &|_| true);
    for (r, row) in shifted.iter_mut().filter(|r| r.kind == Kind::Publish).zip(&rows) {
        r.payload = Some(payload_of(row, row.seq as i64 - 1));
    }
    let v = judge_offsets(shifted, &served, &[]);
    assert!(!v.passed);
    assert_eq!(v.offsets.not_served.len(), 4, "{:?}", v.offsets);
    assert!(v
        .failures
        .iter()
        .any(|f| f.contains("d0@100") && f.contains("carries offset 0")));
}

#[test]
fn first_publications_going_backwards_on_one_connection_fail_but_re_sends_do_not() {
    let rows = rows();
    let served = served_for(&rows, "g");
    // The last row first, on one connection: offsets 4, 1, 2, 3.
    let mut order = rows.clone();
    order.rotate_right(1);
    let v = judge_offsets(wire_for(&order, 1, &|_| true), &served, &[]);
    assert!(!v.passed);
    assert_eq!(v.offsets.backwards.len(), 3, "{:?}", v.offsets);
    // All four, then the first two again (re-sent after TMQ resumed from the commit): fine.
    let mut again = wire_for(&rows, 1, &|_| true);
    again.extend(
        wire_for(&rows[..2], 1, &|_| true)
            .into_iter()
            .skip(1)
            .map(|mut r| {
                r.pkid += 10;
                r
            }),
    );
    let v = judge_offsets(again, &served, &[]);
    assert!(v.offsets.backwards.is_empty(), "{:?}", v.offsets);
}

#[test]
fn a_commit_past_a_row_the_broker_never_acknowledged_fails() {
    let rows = rows();
    let served = served_for(&rows, "g");
    let commit = |n: i64| CommittedOffset {
        group: "g".into(),
        topic: "t".into(),
        vgroup_id: 2,
        offset: format!("log:{n}"),
    };
    // Row 3 published, never acknowledged; the group committed past its message (offset 3).
    let wire = wire_for(&rows, 1, &|r| r.seq != 3);
    let v = judge_offsets(wire.clone(), &served, &[commit(4)]);
    assert_eq!(v.offsets.committed_unacked.len(), 1, "{:?}", v.offsets);
    assert!(v.failures.iter().any(|f| f.contains("never acknowledged")));
    // Committed only up to it: nothing wrong with the offsets (the row is still lost, judged elsewhere).
    let v = judge_offsets(wire, &served, &[commit(3)]);
    assert!(v.offsets.committed_unacked.is_empty(), "{:?}", v.offsets);
}

#[test]
fn skip_counters_and_required_losses_are_judged() {
    let rows = rows();
    let s = scenario_with(
        1,
        "m/{table}",
        "skipped = { missing_variable = 4 }\nrequired_losses = [\"broker\"]",
        &one_sub("m/#", 1),
    );
    let judge_with = |skipped: u64| {
        judge(&Inputs {
            scenario: &s,
            seed: 1,
            expected: &rows,
            delivered: &deliver_all(&rows, 1),
            wire: &[],
            bridges: &[BridgeOutcome {
                name: "b".into(),
                error: None,
                counters: Some(BridgeCounters {
                    skipped: [("missing_variable".to_string(), skipped)].into(),
                    ..Default::default()
                }),
            }],
            ending: Ending::Quiescent,
            faults: &FaultLog::default(),
            committed: &[],
            served: None,
            replay: String::new(),
        })
    };
    let v = judge_with(4);
    // Everything arrived, so there was no broker loss to show.
    assert_eq!(v.failures.len(), 1, "{:?}", v.failures);
    assert!(v.failures[0].contains("no row lost to Broker"));
    let v = judge_with(0);
    assert!(v
        .failures
        .iter()
        .any(|f| f.contains("0 row(s) skipped as missing_variable")));
}

#[test]
fn unsolicited_acks_refused_connacks_and_flows_open_at_close_fail_a_fault_free_run() {
    let rows = rows();
    let s = scenario_with(1, "m/{table}", "", &one_sub("m/#", 1));
    let mut wire = wire_for(&rows, 1, &|_| true);
    let mut stray = WireRecord::event(1, 0, Kind::PubAck);
    stray.dir = Direction::ToClient;
    stray.pkid = 99;
    wire.push(stray);
    let mut refused = WireRecord::event(2, 0, Kind::ConnAck);
    refused.dir = Direction::ToClient;
    refused.code = Some(5);
    wire.push(refused);
    let mut open = WireRecord::event(3, 0, Kind::Publish);
    open.qos = 1;
    open.pkid = 1;
    open.payload = Some(payload_of(&rows[0], 1));
    wire.push(open);
    wire.push(WireRecord::event(3, 0, Kind::Closed));
    let v = run(&s, &rows, &deliver_all(&rows, 1), wire);
    for want in [
        "no open flow",
        "CONNACK refused with code(s) [5]",
        "1 QoS 1/2 flow(s) open when their connection closed",
    ] {
        assert!(
            v.failures.iter().any(|f| f.contains(want)),
            "{want}: {:?}",
            v.failures
        );
    }
}
