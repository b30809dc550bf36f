use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};

fn commit(topic: &str, vg: i32, offset: i64) -> Action {
    Action::Commit(CommitPoint {
        topic: topic.into(),
        vgroup_id: vg,
        offset,
    })
}

#[test]
fn an_event_is_a_control_publish_no_status_supersedes() {
    let mut l: Ledger<&str> = Ledger::new();
    let t: Arc<str> = "t".into();
    l.push_event("gap");
    l.on_message(&t, 1, 10, ["row"]);
    l.push_control("online");
    l.push_control("online again");
    assert_eq!(l.control_unacked(), 2, "the event survives, one status");
    assert_eq!(l.unacked(), 1);
    let sent: Vec<&str> = std::iter::from_fn(|| l.next_to_send().map(|(_, p)| *p)).collect();
    assert_eq!(sent, ["online again", "gap", "row"]);
    for pkid in 1..=3 {
        l.on_outgoing(pkid);
    }
    assert!(l.is_control(2));
    assert!(l.on_ack(2).is_empty());
    assert_eq!(l.on_ack(3), [commit("t", 1, 10)]);
    assert_eq!(l.control_unacked(), 1);
}

#[test]
fn a_rejected_publish_replaced_by_its_dead_letter_commits_only_after_that_is_acked() {
    let mut l: Ledger<&str> = Ledger::new();
    let t: Arc<str> = "t".into();
    assert!(l.on_message(&t, 1, 10, ["a", "b"]).is_empty());
    for pkid in [1, 2] {
        l.next_to_send().unwrap();
        assert!(l.on_outgoing(pkid).is_empty());
    }
    // "a" rejected: its dead letter takes its place in the same message.
    assert!(l
        .on_rejected(1, |p| Some(if *p == "a" { "dead-a" } else { "?" }))
        .is_empty());
    assert!(l.on_ack(2).is_empty(), "the dead letter is not acknowledged yet");
    assert_eq!(l.unacked(), 1);
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("dead-a"));
    assert!(l.on_outgoing(3).is_empty());
    assert_eq!(l.on_ack(3), [commit("t", 1, 10)]);
    // Without a replacement a rejection settles the publish.
    l.on_message(&t, 1, 20, ["c"]);
    l.next_to_send().unwrap();
    l.on_outgoing(4);
    assert_eq!(l.on_rejected(4, |_| None), [commit("t", 1, 20)]);
    assert_eq!(l.on_rejected(9, |_| None), []);
    assert_eq!(l.counters().unmatched, 1);
}

#[test]
fn commits_only_after_every_publish_of_a_message_is_acked() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    assert!(l.on_message(&t, 2, 10, ["a", "b"]).is_empty());
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("a"));
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("b"));
    assert!(l.on_outgoing(1).is_empty());
    assert!(l.on_outgoing(2).is_empty());
    assert!(l.on_ack(2).is_empty());
    assert_eq!(l.on_ack(1), vec![commit("t", 2, 10)]);
    assert_eq!(l.unacked(), 0);
}

#[test]
fn frontier_waits_for_earlier_messages_of_the_same_vgroup_only() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    l.on_message(&t, 2, 10, ["a"]);
    l.on_message(&t, 2, 11, ["b"]);
    l.on_message(&t, 3, 5, ["c"]);
    for _ in 0..3 {
        l.next_to_send();
    }
    l.on_outgoing(1);
    l.on_outgoing(2);
    l.on_outgoing(3);
    assert!(l.on_ack(2).is_empty(), "message 11 must wait for 10");
    assert_eq!(l.on_ack(3), vec![commit("t", 3, 5)]);
    assert_eq!(l.on_ack(1), vec![commit("t", 2, 11)]);
}

#[test]
fn skipped_message_commits_at_once_when_nothing_is_before_it() {
    let t: Arc<str> = "t".into();
    let mut l: Ledger<()> = Ledger::new();
    assert_eq!(l.on_message(&t, 2, 7, []), vec![commit("t", 2, 7)]);
}

#[test]
fn qos0_outgoing_is_an_ack() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    l.on_message(&t, 2, 3, ["a"]);
    l.next_to_send();
    assert_eq!(l.on_outgoing(0), vec![commit("t", 2, 3)]);
}

#[test]
fn session_loss_requeues_in_order_and_retransmits_are_ignored() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    l.on_message(&t, 2, 3, ["a", "b", "c"]);
    l.next_to_send();
    l.next_to_send();
    l.on_outgoing(1);
    assert!(l.on_outgoing(1).is_empty(), "retransmit of bound pkid 1");
    assert_eq!(l.handed_len(), 1);
    assert_eq!(l.on_session_lost(), 2);
    let order: Vec<&str> = std::iter::from_fn(|| l.next_to_send().map(|(_, p)| *p)).collect();
    assert_eq!(order, vec!["a", "b", "c"]);
    assert!(l.on_ack(1).is_empty(), "the old pkid binding is gone");
    assert_eq!(l.counters().unmatched, 1);
}

#[test]
fn control_publish_takes_part_in_the_correlation_but_commits_nothing() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    l.on_message(&t, 2, 10, ["a", "b"]);
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("a"));
    // The status goes ahead of the queued row `b`.
    l.push_control("online");
    assert_eq!((l.unacked(), l.control_unacked()), (2, 1));
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("online"));
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("b"));
    // rumqttc reports them in handing order: a=1, online=2, b=3.
    assert!(l.on_outgoing(1).is_empty());
    assert!(l.on_outgoing(2).is_empty());
    assert!(l.on_outgoing(3).is_empty());
    assert!(l.is_control(2) && !l.is_control(1) && !l.is_control(3));
    assert!(
        l.on_outgoing(2).is_empty(),
        "a retransmitted status binds nothing new"
    );
    assert!(l.on_ack(2).is_empty(), "a status ack commits nothing");
    assert_eq!(l.control_unacked(), 0);
    assert!(l.on_ack(3).is_empty(), "b alone does not complete the message");
    assert_eq!(l.on_ack(1), vec![commit("t", 2, 10)]);
    let c = l.counters();
    assert_eq!((c.acked, c.control_acked, c.unmatched), (2, 1, 0));
    assert_eq!(l.unacked(), 0);
}

#[test]
fn a_lost_session_drops_control_publishes_instead_of_resending_them() {
    let t: Arc<str> = "t".into();
    let mut l = Ledger::new();
    l.push_control("online");
    l.on_message(&t, 1, 5, ["a", "b"]);
    l.next_to_send(); // online
    l.next_to_send(); // a
    l.on_outgoing(1); // online
                      // `a` is handed, not yet outgoing; `b` queued.
    assert_eq!(l.on_session_lost(), 1, "only the row is re-sent");
    assert_eq!(l.control_unacked(), 0);
    assert!(l.on_ack(1).is_empty(), "the old status binding is gone");
    assert_eq!(l.counters().unmatched, 1);
    // The next session's status goes first, then the rows in their order.
    l.push_control("online");
    let order: Vec<&str> = std::iter::from_fn(|| l.next_to_send().map(|(_, p)| *p)).collect();
    assert_eq!(order, vec!["online", "a", "b"]);
    l.on_outgoing(1);
    l.on_outgoing(2);
    l.on_outgoing(3);
    assert!(l.on_ack(1).is_empty() && l.on_ack(2).is_empty());
    assert_eq!(l.on_ack(3), vec![commit("t", 1, 5)]);
}

#[test]
fn a_newer_control_publish_supersedes_one_still_queued() {
    let mut l: Ledger<&str> = Ledger::new();
    l.push_control("online");
    l.push_control("offline");
    assert_eq!(l.control_unacked(), 1);
    assert_eq!(l.next_to_send().map(|(_, p)| *p), Some("offline"));
    assert!(l.next_to_send().is_none());
    // Once handed it is no longer superseded: both wait for their acks.
    l.push_control("online");
    assert_eq!(l.control_unacked(), 2);
}

#[test]
fn commits_never_go_backwards() {
    let t: Arc<str> = "t".into();
    let mut l: Ledger<()> = Ledger::new();
    assert_eq!(l.on_message(&t, 2, 9, []), vec![commit("t", 2, 9)]);
    assert!(l.on_message(&t, 2, 5, []).is_empty());
}

/// One step of the random interleaving: the bridge, the rumqttc client and the broker.
#[derive(Debug, Clone)]
enum Op {
    Poll {
        vg: i32,
        rows: usize,
    },
    Hand,
    ClientSends,
    BrokerAcks(usize),
    Reconnect,
    /// The bridge publishes its status (a control publish).
    Status,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3i32, 0..4usize).prop_map(|(vg, rows)| Op::Poll { vg, rows }),
        4 => Just(Op::Hand),
        4 => Just(Op::ClientSends),
        4 => (0..8usize).prop_map(Op::BrokerAcks),
        1 => Just(Op::Reconnect),
        1 => Just(Op::Status),
    ]
}

/// A model of rumqttc + broker: a request queue, packet ids 1..=inflight in use, acks in any order.
struct ClientModel {
    qos0: bool,
    ledger: Ledger<(i32, i64, usize)>,
    client_queue: VecDeque<(i32, i64, usize)>,
    on_wire: Vec<(u16, (i32, i64, usize))>,
    next_pkid: u16,
    acked: HashSet<(i32, i64, usize)>,
    rows_of: BTreeMap<(i32, i64), usize>,
    committed: BTreeMap<i32, i64>,
    next_offset: i64,
}

impl ClientModel {
    fn check(&mut self, actions: Vec<Action>) -> Result<(), TestCaseError> {
        for Action::Commit(CommitPoint {
            vgroup_id, offset, ..
        }) in actions
        {
            // Every row of every message of this vgroup below the committed position was acked.
            for (&(vg, commit_at), &rows) in &self.rows_of {
                if vg == vgroup_id && commit_at <= offset {
                    for r in 0..rows {
                        prop_assert!(
                            self.acked.contains(&(vg, commit_at, r)),
                            "commit {offset} on vg {vg} passes unacked row {r} of message {commit_at}"
                        );
                    }
                }
            }
            let prev = self.committed.insert(vgroup_id, offset);
            prop_assert!(prev.is_none_or(|p| p < offset), "commit went backwards");
        }
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let t: Arc<str> = "t".into();
        match op {
            Op::Poll { vg, rows } => {
                self.next_offset += 1;
                let at = self.next_offset;
                self.rows_of.insert((vg, at), rows);
                let a = self.ledger.on_message(&t, vg, at, (0..rows).map(|r| (vg, at, r)));
                self.check(a)?;
            }
            Op::Hand => {
                if let Some((_, p)) = self.ledger.next_to_send() {
                    self.client_queue.push_back(*p);
                }
            }
            Op::ClientSends => {
                if let Some(p) = self.client_queue.pop_front() {
                    // Status publishes are QoS 1 even when rows are QoS 0.
                    if self.qos0 && p.0 != -1 {
                        self.acked.insert(p);
                        let a = self.ledger.on_outgoing(0);
                        self.check(a)?;
                    } else {
                        // The next free packet id, cycling as rumqttc does.
                        let mut pkid = self.next_pkid;
                        while self.on_wire.iter().any(|(k, _)| *k == pkid) {
                            pkid = pkid % 20 + 1;
                        }
                        self.next_pkid = pkid % 20 + 1;
                        self.on_wire.push((pkid, p));
                        let a = self.ledger.on_outgoing(pkid);
                        self.check(a)?;
                    }
                }
            }
            Op::BrokerAcks(i) => {
                if !self.on_wire.is_empty() {
                    let (pkid, p) = self.on_wire.remove(i % self.on_wire.len());
                    self.acked.insert(p);
                    let a = self.ledger.on_ack(pkid);
                    self.check(a)?;
                }
            }
            Op::Reconnect => {
                // Clean session: rumqttc drops its queue and everything on the wire.
                self.client_queue.clear();
                self.on_wire.clear();
                self.ledger.on_session_lost();
            }
            Op::Status => {
                // Control publishes carry vgroup -1, which no message uses.
                self.next_offset += 1;
                self.ledger.push_control((-1, self.next_offset, 0));
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>, qos0: bool) -> Result<(), TestCaseError> {
    let mut w = ClientModel {
        qos0,
        ledger: Ledger::new(),
        client_queue: VecDeque::new(),
        on_wire: Vec::new(),
        next_pkid: 1,
        acked: HashSet::new(),
        rows_of: BTreeMap::new(),
        committed: BTreeMap::new(),
        next_offset: 0,
    };
    for op in ops {
        w.step(op)?;
    }
    // Then let everything through: the frontier must reach the last message of every vgroup.
    for _ in 0..10_000 {
        if w.ledger.unacked() == 0 && w.ledger.control_unacked() == 0 && w.client_queue.is_empty() {
            break;
        }
        w.step(Op::Hand)?;
        w.step(Op::ClientSends)?;
        w.step(Op::BrokerAcks(0))?;
    }
    prop_assert_eq!(w.ledger.unacked(), 0);
    prop_assert_eq!(w.ledger.control_unacked(), 0);
    prop_assert_eq!(w.ledger.pending_messages(), 0);
    let last: BTreeMap<i32, i64> = w.rows_of.keys().map(|&(vg, at)| (vg, at)).collect();
    prop_assert_eq!(&w.committed, &last);
    let vgs: BTreeSet<i32> = w.committed.keys().copied().collect();
    prop_assert_eq!(vgs.len(), last.len());
    prop_assert_eq!(w.ledger.counters().unmatched, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn prop_commit_never_passes_unacked_row_qos12(ops in proptest::collection::vec(op(), 0..200)) {
        run(ops, false)?;
    }

    #[test]
    fn prop_commit_never_passes_unacked_row_qos0(ops in proptest::collection::vec(op(), 0..200)) {
        run(ops, true)?;
    }
}

#[test]
fn a_failed_connection_hands_again_what_never_went_out_in_order_without_its_status() {
    let mut l: Ledger<&str> = Ledger::new();
    let t: Arc<str> = "t".into();
    l.on_message(&t, 1, 10, ["a", "b", "c"]);
    l.push_control("online");
    let sent: Vec<&str> = std::iter::from_fn(|| l.next_to_send().map(|(_, p)| *p)).collect();
    assert_eq!(sent, ["online", "a", "b", "c"]);
    l.on_outgoing(1); // online
    l.on_outgoing(2); // a; b and c never went out
    assert_eq!(l.on_disconnected(), 2);
    l.push_control("online again");
    let again: Vec<&str> = std::iter::from_fn(|| l.next_to_send().map(|(_, p)| *p)).collect();
    assert_eq!(again, ["online again", "b", "c"]);
    for pkid in 3..=5 {
        l.on_outgoing(pkid);
    }
    for pkid in 1..=5 {
        l.on_ack(pkid);
    }
    assert_eq!(l.unacked(), 0);
    assert_eq!(l.control_unacked(), 0);
    assert_eq!(l.counters().unmatched, 0);
}
