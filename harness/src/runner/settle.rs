//! Phase 8, the end of a run: wait until every subscriber saw what it expects (and every bridge expected to
//! fail exited) and the stream stayed quiet — or until every row a subscriber still misses is accounted for
//! and nothing moved for `quiet` — or the deadline.
//!
//! "Accounted for" is decided by [`accounted_for`], a pure function of the expected rows, the deliveries
//! and the wire: a missing row the broker acknowledged is the broker's loss, which the bridge will not send
//! again (it committed it), so waiting longer cannot bring it. Only scenarios that allow the broker's losses
//! end this way; the verdict still judges every row.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use crate::recorder::{wait_quiescent, Activity, Ending, Recorder};
use crate::scenario::{LossCause, Scenario};
use crate::verdict::payload::{self, Payload};
use crate::verdict::{self, ExpectedRow};

use super::BridgeSlot;

/// Whether every expected row (by [`payload::row_key`]) missing from `delivered` was acknowledged by the
/// broker: the broker's loss, final.
pub fn accounted_for<'a>(
    expected: impl IntoIterator<Item = &'a str>,
    delivered: &HashSet<String>,
    acked: &HashSet<String>,
) -> bool {
    expected
        .into_iter()
        .filter(|k| !delivered.contains(*k))
        .all(|k| acked.contains(k))
}

/// Rows the broker acknowledged on any bridge's wire so far.
fn acked_rows(slots: &[BridgeSlot]) -> HashSet<String> {
    let mut fates: HashMap<Bytes, verdict::wire::PayloadFate> = HashMap::new();
    for slot in slots {
        if let Some(p) = &slot.proxy {
            verdict::wire::check(&slot.name, &p.records(), &mut fates);
        }
    }
    verdict::wire::by_row(&fates)
        .into_iter()
        .filter(|(_, f)| f.acked)
        .map(|(k, _)| k)
        .collect()
}

/// The distinct rows a subscriber received so far.
fn delivered_rows(r: &Recorder) -> HashSet<String> {
    r.messages()
        .iter()
        .filter_map(|d| match payload::parse(&d.payload) {
            Ok(Payload::Row { data, .. }) => Some(payload::row_key(&data)),
            _ => None,
        })
        .collect()
}

/// Phase 8 (see the module).
pub(super) async fn settle(
    s: &Scenario,
    expected_rows: &[ExpectedRow],
    recorders: &[Recorder],
    slots: &mut [BridgeSlot],
    activity: &Activity,
    deadline: Instant,
) -> Ending {
    let mine = expected_for(s, expected_rows);
    // Missing rows end a run early only where the scenario allows the broker's losses and the expected rows
    // are the waited-for ones.
    let accounting = s.expect.rows.is_none() && s.expect.allowed_losses.contains(&LossCause::Broker);
    let per_sub: Vec<usize> = match s.expect.rows {
        Some(n) => vec![n as usize; s.subscribers.len()],
        None => mine.iter().map(Vec::len).collect(),
    }
    .into_iter()
    .zip(&s.subscribers)
    // A subscriber that never acknowledges is not waited for (its broker window stays full) unless what it
    // misses may be accounted for as the broker's loss.
    .map(|(n, sub)| {
        if sub.withhold_acks && !accounting {
            0
        } else {
            s.expect.wait_for(&sub.name, n)
        }
    })
    .collect();
    let keys: Vec<Vec<String>> = mine
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|&i| payload::row_key(&expected_rows[i].data))
                .collect()
        })
        .collect();
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ending::Deadline;
    }
    // What the bridges had published at the last check: "nothing moved" spans two checks.
    let mut last_published: Option<u64> = None;
    let mut accounted = false;
    let mut done = || {
        accounted = false;
        let errors_done = slots
            .iter_mut()
            .filter(|x| x.expect_error)
            .all(|x| x.running.as_mut().is_some_and(|r| r.exited()));
        // No proxy may still hold acks back: their flows would count as never acknowledged.
        let released = slots.iter().all(|x| x.proxy.as_ref().is_none_or(|p| !p.busy()));
        if !errors_done || !released || !skips_done(s, slots) {
            return false;
        }
        let short: Vec<usize> = (0..recorders.len())
            .filter(|&i| recorders[i].distinct() < per_sub[i])
            .collect();
        if short.is_empty() {
            return true;
        }
        if !accounting {
            return false;
        }
        let published: u64 = slots
            .iter()
            .filter_map(|x| x.proxy.as_ref())
            .map(|p| p.published())
            .sum();
        if last_published.replace(published) != Some(published) {
            return false;
        }
        let acked = acked_rows(slots);
        accounted = short.iter().all(|&i| {
            accounted_for(
                keys[i].iter().map(String::as_str),
                &delivered_rows(&recorders[i]),
                &acked,
            )
        });
        accounted
    };
    match wait_quiescent(activity, &mut done, s.quiet, left).await {
        Ending::Quiescent if accounted => Ending::Accounted,
        ending => ending,
    }
}

/// The expected rows each subscriber waits for (indices into `rows`: those whose topic matches its filter).
fn expected_for(s: &Scenario, rows: &[ExpectedRow]) -> Vec<Vec<usize>> {
    let target = s.bridges.first().and_then(|b| b.target().ok());
    s.subscribers
        .iter()
        .map(|sub| {
            (0..rows.len())
                .filter(|&i| {
                    let r = &rows[i];
                    let Some(t) = &target else { return false };
                    let vars = verdict::topic::Vars {
                        database: Some(&r.database),
                        tmq_topic: Some(&r.tmq_topic),
                        vgroup_id: r.vgroup_id,
                        stable: None,
                        table: Some(&r.table),
                    };
                    match verdict::topic::render(t.topic.as_str(), &vars) {
                        Ok(topic) => rumqttc::matches(&topic, &sub.filter),
                        Err(verdict::topic::Unrendered::Unknown(_)) => true,
                        Err(verdict::topic::Unrendered::Missing(_)) => false,
                    }
                })
                .collect()
        })
        .collect()
}

/// `[expect] skipped`: the bridges must have read (and skipped) the rows before the run may end.
fn skips_done(s: &Scenario, slots: &[BridgeSlot]) -> bool {
    if s.expect.skipped.is_empty() {
        return true;
    }
    let counters: Vec<verdict::BridgeCounters> = slots
        .iter()
        .filter_map(|x| x.stats.as_ref())
        .map(|st| verdict::BridgeCounters {
            skipped: st.snapshot().skipped,
            ..Default::default()
        })
        .collect();
    let sum = verdict::skipped_sum(counters.iter());
    s.expect
        .skipped
        .iter()
        .all(|(reason, n)| sum.get(reason).copied().unwrap_or(0) >= *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> HashSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_run_is_over_when_every_missing_row_is_the_brokers_loss() {
        let expected = ["a", "b", "c"];
        // Everything arrived.
        assert!(accounted_for(expected, &set(&["a", "b", "c"]), &set(&[])));
        // "c" is missing but the broker acknowledged it: nothing will bring it any more.
        assert!(accounted_for(expected, &set(&["a", "b"]), &set(&["a", "c"])));
        // "c" was never acknowledged: the bridge will re-send it, keep waiting.
        assert!(!accounted_for(expected, &set(&["a", "b"]), &set(&["a", "b"])));
        // Nothing arrived, nothing acknowledged.
        assert!(!accounted_for(expected, &set(&[]), &set(&[])));
    }
}
