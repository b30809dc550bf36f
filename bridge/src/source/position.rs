//! Where each vgroup should be on the server after a poll may have been cut short, and how far back to
//! seek when the server is ahead (see the module doc of [`super`]).

use std::{collections::HashMap, sync::Arc};

use taos::AsAsyncConsumer;

use crate::dsn::{OffsetReset, SourceDsn};

use super::answered::{answered, answered_plain};
use super::{SharedConsumer, SourceEvent, WalEnds, WalGap};

/// Where each vgroup should be on the server: the position after the last message the bridge received
/// from it, or, for a vgroup not yet seen (or one the server moved back, e.g. reassigned in a
/// rebalance), the group's committed offset (else the start `auto.offset.reset` gives). One per
/// consumer: a new consumer resumes from the committed offsets.
///
/// It also knows which vgroups' last message may have stopped inside a log entry (its commit point is
/// below its position, see [`super::commit_point`]): the rest of that entry comes next at the *same*
/// position, so a poll cut short while it was under way would leave no trace in the position. While any
/// such rest may be pending, polls must not be cut short ([`PositionGuard::rest_may_follow`]).
#[derive(Debug, Default)]
pub struct PositionGuard {
    expected: HashMap<(Arc<str>, i32), i64>,
    rest_pending: std::collections::HashSet<(Arc<str>, i32)>,
    /// Vgroups whose last message's poll took the server's whole time budget: it may have stopped inside a
    /// log entry below `min.poll.rows`, so its rest could come at the same position.
    slow: std::collections::HashSet<(Arc<str>, i32)>,
}

/// What one assigned vgroup needs after a poll may have been cut short.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// The server is past what the bridge received: seek back here.
    SeekTo(i64),
    /// No trustworthy expectation: compare with the floor (committed, or where the group starts).
    AskFloor,
}

impl PositionGuard {
    /// Records the position after a received message and whether it may have stopped inside a log entry
    /// (`commit_at < position`).
    pub fn on_message(&mut self, topic: &Arc<str>, vgroup_id: i32, position: i64, commit_at: i64) {
        let key = (topic.clone(), vgroup_id);
        match commit_at < position {
            true => self.rest_pending.insert(key.clone()),
            false => self.rest_pending.remove(&key),
        };
        self.expected.insert(key, position);
    }

    /// Whether the server's `position` after a message from this vgroup shows it went back between the poll
    /// and the question: a message always moves its vgroup forward (the rest of an entry stays at the same
    /// position), so a position behind the last one (or at it, with no rest pending and a last poll quicker than
    /// the server's time budget) means a rebalance took
    /// the vgroup away and gave it back at the group's commit meanwhile. Then `position` says nothing about
    /// this message, whose rows the server hands out again from there; the caller drops it and calls
    /// [`PositionGuard::on_reset`]. (A vgroup another consumer read and committed past the last position
    /// while it was away is not caught: its offset in payloads may then be too high, its commit is the
    /// group's own.)
    pub fn went_back(&self, topic: &Arc<str>, vgroup_id: i32, position: i64) -> bool {
        let key = (topic.clone(), vgroup_id);
        match self.expected.get(&key) {
            Some(&e) => {
                position < e
                    || (position == e && !self.rest_pending.contains(&key) && !self.slow.contains(&key))
            }
            None => false,
        }
    }

    /// Records whether the poll of the vgroup's last message took the server's whole time budget.
    pub fn on_poll_time(&mut self, topic: &Arc<str>, vgroup_id: i32, slow: bool) {
        let key = (topic.clone(), vgroup_id);
        match slow {
            true => self.slow.insert(key),
            false => self.slow.remove(&key),
        };
    }

    /// Records that the server moved a vgroup back to `position` (see [`PositionGuard::went_back`]).
    pub fn on_reset(&mut self, topic: &Arc<str>, vgroup_id: i32, position: i64) {
        let key = (topic.clone(), vgroup_id);
        self.rest_pending.remove(&key);
        self.slow.remove(&key);
        self.expected.insert(key, position);
    }

    /// Whether the rest of a log entry may still be handed out at an unchanged position: then the next poll
    /// must wait for its reply, however long the server takes.
    pub fn rest_may_follow(&self) -> bool {
        !self.rest_pending.is_empty()
    }

    /// Judges one vgroup whose server position is `current`.
    pub fn verdict(&self, topic: &str, vgroup_id: i32, current: i64) -> Verdict {
        match self.expected.get(&(Arc::<str>::from(topic), vgroup_id)) {
            Some(&e) if current == e => Verdict::Fine,
            Some(&e) if current > e => Verdict::SeekTo(e),
            // Never seen, or the server went back (a rebalance resumed it from the commit):
            // what the bridge saw says nothing about where a dropped poll started.
            _ => Verdict::AskFloor,
        }
    }

    /// The seek (if any) for a vgroup judged against its floor (`None`: nothing to compare with);
    /// remembers the outcome. A negative `current` is TDengine's "not positioned yet".
    pub fn settle_with_floor(
        &mut self,
        topic: &Arc<str>,
        vgroup_id: i32,
        current: i64,
        floor: Option<i64>,
    ) -> Option<i64> {
        let key = (topic.clone(), vgroup_id);
        let Some(floor) = floor else {
            self.expected.remove(&key);
            return None;
        };
        if current < 0 {
            self.expected.insert(key, floor);
            return None;
        }
        self.expected.insert(key, current.min(floor));
        (current > floor).then_some(floor)
    }

    /// Forgets vgroups of `topic` no longer assigned to this consumer.
    fn retain_assigned(&mut self, topic: &str, assigned: &[i32]) {
        self.expected
            .retain(|(t, vg), _| &**t != topic || assigned.contains(vg));
        self.rest_pending
            .retain(|(t, vg)| &**t != topic || assigned.contains(vg));
        self.slow.retain(|(t, vg)| &**t != topic || assigned.contains(vg));
    }

    fn known(&self, topic: &str) -> Vec<i32> {
        self.expected
            .keys()
            .filter(|(t, _)| &**t == topic)
            .map(|(_, vg)| *vg)
            .collect()
    }

    /// Checks every assigned vgroup and seeks back where the server is ahead. Must run with no poll
    /// in flight (after `recv_timeout` returned).
    pub(super) async fn check(
        &mut self,
        consumer: &SharedConsumer,
        dsn: &SourceDsn,
        ends: &WalEnds,
    ) -> Result<Vec<SourceEvent>, taos::Error> {
        let mut seeks = Vec::new();
        let mut gaps = Vec::new();
        {
            let c = consumer.read().await;
            for topic in &dsn.topics {
                let topic: Arc<str> = topic.as_str().into();
                // (vgroup, position, WAL begin..end). 0.12.3 turns a failed `assignment` into an empty
                // list; then ask `position` for the vgroups we know, whose errors do surface.
                let mut assigned: Vec<(i32, i64, Option<WalRange>)> =
                    answered_plain("assignment", c.topic_assignment(&topic))
                        .await?
                        .into_iter()
                        .map(|a| (a.vgroup_id(), a.current_offset(), Some((a.begin(), a.end()))))
                        .collect();
                if assigned.is_empty() {
                    for vg in self.known(&topic) {
                        let at = answered("position", c.position(&topic, vg)).await?;
                        assigned.push((vg, at, None));
                    }
                }
                let ids: Vec<i32> = assigned.iter().map(|a| a.0).collect();
                self.retain_assigned(&topic, &ids);
                for (vg, current, wal) in assigned {
                    if let Some((_, end)) = wal {
                        ends.set_end(&topic, vg, end);
                    }
                    let to = match self.verdict(&topic, vg, current) {
                        Verdict::Fine => None,
                        Verdict::SeekTo(to) => Some(to),
                        Verdict::AskFloor => {
                            let committed = answered("committed", c.committed(&topic, vg)).await?;
                            let mut floor = floor(committed, dsn.offset_reset, current, wal);
                            if let Some(gap) = wal_gap(&topic, vg, &mut floor, wal) {
                                gaps.push(gap);
                            }
                            if let Some(f) = floor {
                                ends.set_resume(&topic, vg, f);
                            }
                            // Behind the WAL's begin the server continues at the begin, not where it is.
                            let current = match wal {
                                Some((begin, _)) if (0..begin).contains(&current) => begin,
                                _ => current,
                            };
                            self.settle_with_floor(&topic, vg, current, floor)
                        }
                    };
                    if let Some(to) = to {
                        seeks.push((topic.clone(), vg, current, to));
                    }
                }
            }
        }
        let mut events: Vec<SourceEvent> = gaps.into_iter().map(SourceEvent::WalGap).collect();
        if !seeks.is_empty() {
            let mut c = consumer.write().await;
            for (topic, vg, from, to) in seeks {
                answered("seek", c.offset_seek(&topic, vg, to)).await?;
                // A seek restarts the vgroup's read at `to`: no rest of an entry is pending any more.
                self.rest_pending.remove(&(topic.clone(), vg));
                self.expected.insert((topic.clone(), vg), to);
                tracing::debug!(%topic, vg, from, to, "a poll cut short had moved the server; sought back");
                events.push(SourceEvent::Rewound {
                    topic,
                    vgroup_id: vg,
                    from,
                    to,
                });
            }
        }
        Ok(events)
    }
}

/// A vgroup's WAL as `assignment` reports it: first version, last + 1.
type WalRange = (i64, i64);

/// A resume point (`floor`) behind the WAL's begin: the gap, warned about here, with the floor moved to
/// the begin, where TDengine continues (seeking below it would go nowhere).
fn wal_gap(
    topic: &Arc<str>,
    vgroup_id: i32,
    floor: &mut Option<i64>,
    wal: Option<WalRange>,
) -> Option<WalGap> {
    let (begin, _) = wal?;
    let gap = WalGap::between(topic, vgroup_id, (*floor)?, begin)?;
    tracing::warn!(
        %topic,
        vgroup = vgroup_id,
        first = gap.first,
        last = gap.last,
        versions = gap.versions(),
        "WAL versions {}..={} of vgroup {vgroup_id} (topic {topic}) were trimmed (WAL_RETENTION_PERIOD) \
         before this group read them: their rows are lost",
        gap.first,
        gap.last,
    );
    *floor = Some(begin);
    Some(gap)
}

/// Where a vgroup without a trustworthy expectation must be at least: the group's commit, else the
/// start `auto.offset.reset` gives (the WAL's begin, or its end when not positioned yet under
/// `latest`), else the server's own position. `None` when nothing is known (negative = unset).
pub fn floor(committed: i64, reset: Option<OffsetReset>, current: i64, wal: Option<WalRange>) -> Option<i64> {
    if committed >= 0 {
        return Some(committed);
    }
    match (reset.unwrap_or(OffsetReset::Latest), wal) {
        (OffsetReset::Earliest, Some((begin, _))) => Some(begin),
        (OffsetReset::Latest, Some((_, end))) if current < 0 => Some(end),
        _ => (current >= 0).then_some(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSET: i64 = -2147467247;

    #[test]
    fn a_server_ahead_of_the_last_message_is_sought_back_to_it() {
        let mut g = PositionGuard::default();
        let t: Arc<str> = "t".into();
        g.on_message(&t, 2, 10, 10);
        assert_eq!(g.verdict("t", 2, 10), Verdict::Fine);
        assert_eq!(g.verdict("t", 2, 15), Verdict::SeekTo(10));
        // Never seen, or moved back by the server (rebalance): ask the floor.
        assert_eq!(g.verdict("t", 3, 4), Verdict::AskFloor);
        assert_eq!(g.verdict("t", 2, 7), Verdict::AskFloor);
    }

    #[test]
    fn a_message_that_may_have_stopped_inside_an_entry_holds_short_polls_off_until_its_rest() {
        let mut g = PositionGuard::default();
        let (t, u): (Arc<str>, Arc<str>) = ("t".into(), "u".into());
        g.on_message(&t, 2, 10, 9);
        assert!(g.rest_may_follow());
        // Another vgroup's message does not settle vgroup 2.
        g.on_message(&u, 3, 7, 7);
        assert!(g.rest_may_follow());
        // The rest came (same position, commit point at it).
        g.on_message(&t, 2, 10, 10);
        assert!(!g.rest_may_follow());
        // A vgroup that moved away in a rebalance is no longer waited for.
        g.on_message(&t, 4, 20, 19);
        g.retain_assigned("t", &[2]);
        assert!(!g.rest_may_follow());
    }

    #[test]
    fn a_position_that_did_not_move_forward_is_a_reset_unless_a_rest_was_due() {
        let mut g = PositionGuard::default();
        let t: Arc<str> = "t".into();
        assert!(!g.went_back(&t, 2, 3), "nothing known yet");
        g.on_message(&t, 2, 10, 10);
        assert!(!g.went_back(&t, 2, 11));
        assert!(g.went_back(&t, 2, 6), "behind the last position");
        assert!(g.went_back(&t, 2, 10), "at it, no rest pending");
        g.on_message(&t, 2, 12, 11);
        assert!(
            !g.went_back(&t, 2, 12),
            "the rest of the entry comes at the same position"
        );
        assert!(g.went_back(&t, 2, 7));
        g.on_reset(&t, 2, 7);
        assert!(!g.rest_may_follow(), "a reset re-reads the entry from its start");
        assert_eq!(g.verdict("t", 2, 7), Verdict::Fine);
        assert!(!g.went_back(&t, 2, 9));
        g.on_message(&t, 2, 9, 9);
        g.on_poll_time(&t, 2, true);
        assert!(
            !g.went_back(&t, 2, 9),
            "a slow poll may have been cut inside an entry by time"
        );
        g.on_poll_time(&t, 2, false);
        assert!(g.went_back(&t, 2, 9));
    }

    #[test]
    fn the_floor_is_the_commit_then_the_reset_start() {
        use OffsetReset::{Earliest, Latest};
        assert_eq!(floor(5, Some(Earliest), 9, Some((0, 20))), Some(5));
        assert_eq!(floor(UNSET, Some(Earliest), 9, Some((3, 20))), Some(3));
        assert_eq!(floor(UNSET, Some(Latest), UNSET, Some((3, 20))), Some(20));
        assert_eq!(
            floor(UNSET, None, UNSET, Some((3, 20))),
            Some(20),
            "latest is the default"
        );
        assert_eq!(floor(UNSET, Some(Latest), 9, Some((3, 20))), Some(9));
        assert_eq!(floor(UNSET, Some(Earliest), UNSET, None), None);
    }

    #[test]
    fn settling_seeks_only_when_the_server_is_past_the_floor() {
        let mut g = PositionGuard::default();
        let t: Arc<str> = "t".into();
        assert_eq!(g.settle_with_floor(&t, 2, 8, Some(5)), Some(5));
        assert_eq!(g.verdict("t", 2, 5), Verdict::Fine);
        assert_eq!(g.settle_with_floor(&t, 3, 5, Some(5)), None);
        assert_eq!(g.verdict("t", 3, 6), Verdict::SeekTo(5));
        // Not positioned yet: expect the floor, so a first poll cut short is caught.
        assert_eq!(g.settle_with_floor(&t, 4, UNSET, Some(20)), None);
        assert_eq!(g.verdict("t", 4, 21), Verdict::SeekTo(20));
        // Nothing to compare with: forget.
        assert_eq!(g.settle_with_floor(&t, 4, 30, None), None);
        assert_eq!(g.verdict("t", 4, 30), Verdict::AskFloor);
        g.retain_assigned("t", &[2]);
        assert_eq!(g.known("t"), vec![2]);
    }
}
