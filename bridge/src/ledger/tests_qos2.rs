//! QoS 2 as rumqttc 0.25 runs it: a packet id is free again at PUBREC, so a new PUBLISH may take an id whose
//! PUBCOMP is still due (see `pkids`), and a PUBCOMP may never come.

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

fn commit(vg: i32, offset: i64) -> Vec<Action> {
    vec![Action::Commit(CommitPoint {
        topic: "t".into(),
        vgroup_id: vg,
        offset,
    })]
}

/// Three one-row messages handed and sent as `a`, `b`, `c`.
fn three_sent() -> Ledger<&'static str> {
    let mut l = Ledger::new();
    let t: Arc<str> = "t".into();
    for (at, row) in [(1, "a"), (2, "b"), (3, "c")] {
        l.on_message(&t, 1, at, [row]);
        l.next_to_send().unwrap();
    }
    l
}

#[test]
fn a_packet_id_reused_while_its_pubcomp_is_due_binds_the_new_publish() {
    let mut l = three_sent();
    assert!(l.on_outgoing(4).is_empty()); // a
    assert!(l.on_received(4).is_empty());
    assert!(
        l.on_outgoing(4).is_empty(),
        "b takes id 4 again: a new flow, not a re-send of a"
    );
    assert!(l.on_outgoing(5).is_empty()); // c
    assert_eq!(l.on_complete(4), commit(1, 1), "a's PUBCOMP");
    assert!(l.on_received(4).is_empty(), "b's PUBREC");
    assert_eq!(l.on_complete(4), commit(1, 2), "b's PUBCOMP");
    assert!(l.on_received(5).is_empty());
    assert_eq!(l.on_complete(5), commit(1, 3));
    assert_eq!(l.counters().unmatched, 0);
    assert_eq!(l.unacked(), 0);
}

#[test]
fn a_pubcomp_that_never_comes_is_implied_by_the_answer_to_the_next_publish_on_its_id() {
    let mut l = three_sent();
    l.on_outgoing(4); // a
    l.on_received(4);
    l.on_outgoing(4); // b; a's PUBCOMP is lost
    assert_eq!(
        l.on_received(4),
        commit(1, 1),
        "the broker processed a's PUBREL before b's PUBLISH"
    );
    assert_eq!(l.on_complete(4), commit(1, 2));
    l.on_outgoing(4); // c, QoS 1 on the same id after b's PUBCOMP: nothing older left
    assert_eq!(l.on_ack(4), commit(1, 3));
    assert_eq!(l.counters().unmatched, 0);
}

#[test]
fn a_resumed_session_resends_a_publish_still_waiting_for_pubrec_without_binding_anew() {
    let mut l = three_sent();
    l.on_outgoing(4); // a
    l.on_outgoing(5); // b
    l.on_received(5);
    assert!(l.on_outgoing(4).is_empty(), "a re-sent");
    l.on_outgoing(6); // c
    assert!(l.on_received(4).is_empty());
    assert_eq!(l.on_complete(4), commit(1, 1));
    assert_eq!(l.on_complete(5), commit(1, 2));
    l.on_received(6);
    assert_eq!(l.on_complete(6), commit(1, 3));
    assert_eq!(l.counters().unmatched, 0);
}

/// The client's and the broker's sides of one QoS 2 connection.
#[derive(Debug, Clone)]
enum Op {
    Poll,
    Send,
    /// The broker answers the oldest PUBLISH it has not answered (it reads one connection in order);
    /// `true`: the PUBCOMP of an older flow on the same id, still due, arrives first (else it was lost).
    Rec(bool),
    /// The broker completes the oldest released flow; `false`: its PUBCOMP is lost on the way.
    Comp(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Poll),
        4 => Just(Op::Send),
        3 => any::<bool>().prop_map(Op::Rec),
        3 => any::<bool>().prop_map(Op::Comp),
    ]
}

/// A row is safe once the broker has processed its PUBREL; a commit must never pass a row that is not.
fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let t: Arc<str> = "t".into();
    let mut l: Ledger<i64> = Ledger::new();
    let (mut next_offset, mut next_pkid) = (0i64, 1u16);
    // rumqttc: ids waiting for PUBREC (collision if taken again) and ids whose PUBCOMP is due.
    let mut sent: VecDeque<(u16, i64)> = VecDeque::new();
    let mut released: VecDeque<(u16, i64)> = VecDeque::new();
    let mut safe: HashSet<i64> = HashSet::new();
    let mut committed = 0;
    let mut check = |actions: Vec<Action>, safe: &HashSet<i64>| -> Result<(), TestCaseError> {
        for Action::Commit(c) in actions {
            for row in committed + 1..=c.offset {
                prop_assert!(safe.contains(&row), "commit {} passes row {row}", c.offset);
            }
            committed = c.offset;
        }
        Ok(())
    };
    for op in ops {
        match op {
            Op::Poll => {
                next_offset += 1;
                check(l.on_message(&t, 1, next_offset, [next_offset]), &safe)?;
            }
            Op::Send => {
                let pkid = next_pkid;
                if sent.iter().any(|(k, _)| *k == pkid) {
                    continue; // a collision: rumqttc waits
                }
                let Some((_, row)) = l.next_to_send().map(|(id, p)| (id, *p)) else {
                    continue;
                };
                next_pkid = pkid % 5 + 1;
                sent.push_back((pkid, row));
                check(l.on_outgoing(pkid), &safe)?;
            }
            Op::Rec(older_completes) => {
                let Some((pkid, row)) = sent.pop_front() else {
                    continue;
                };
                // Whatever was released on this id before was processed first; its PUBCOMP went out
                // (and is read before this PUBREC) unless it was lost.
                if let Some(i) = released.iter().position(|(k, _)| *k == pkid) {
                    let (_, older) = released.remove(i).unwrap();
                    safe.insert(older);
                    if older_completes {
                        check(l.on_complete(pkid), &safe)?;
                    }
                }
                released.push_back((pkid, row));
                check(l.on_received(pkid), &safe)?;
            }
            Op::Comp(delivered) => {
                let Some((pkid, row)) = released.pop_front() else {
                    continue;
                };
                safe.insert(row);
                if delivered {
                    check(l.on_complete(pkid), &safe)?;
                }
            }
        }
    }
    prop_assert_eq!(l.counters().unmatched, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn prop_qos2_commit_never_passes_a_row_the_broker_has_not_released(
        ops in proptest::collection::vec(op(), 0..200)
    ) {
        run(ops)?;
    }
}
