//! Offset commits: coalesced per vgroup, retried until they go through — or until no consumer of the bridge
//! holds the vgroup any more. TDengine refuses a commit for a vgroup assigned to another consumer of the group
//! (`TSDB_CODE_TMQ_INVALID_VGID`); such a vgroup moved to another bridge, which reads it again from the group's
//! last commit and commits what it delivers, so the refused commit is dropped, not retried for ever.

use std::sync::Arc;

use taos::AsAsyncConsumer;

use super::answered::answered;
use super::CurrentConsumer;
use crate::ledger::CommitPoint;

/// TDengine's `TSDB_CODE_TMQ_INVALID_VGID`: the vgroup is not assigned to the consumer asked.
const INVALID_VGID: i32 = 0x4008;

/// Commits offsets through the bridge's live consumers (the vgroup's owner first, see [`super::Consumers`]);
/// coalesces to the newest per vgroup and keeps what failed for the next round.
pub struct Committer {
    consumer: CurrentConsumer,
    pending: std::collections::BTreeMap<(Arc<str>, i32), i64>,
}

impl Committer {
    pub fn new(consumer: CurrentConsumer) -> Self {
        Committer {
            consumer,
            pending: Default::default(),
        }
    }

    pub fn add(&mut self, point: CommitPoint) {
        let e = self
            .pending
            .entry((point.topic, point.vgroup_id))
            .or_insert(point.offset);
        *e = (*e).max(point.offset);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every pending commit; returns the ones that went through.
    pub async fn flush(&mut self) -> Vec<CommitPoint> {
        if self.consumer.live() == 0 {
            return Vec::new();
        }
        let mut done = Vec::new();
        let skip = crate::test_knobs::skip_commits();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            let point = CommitPoint {
                topic,
                vgroup_id: vg,
                offset,
            };
            if skip {
                done.push(point);
                continue;
            }
            let mut errors = Vec::new();
            let mut committed = false;
            for consumer in self.consumer.for_vgroup(&point.topic, vg) {
                let c = consumer.read().await;
                let commit = c.commit_offset(&point.topic, vg, offset);
                match answered("commit", commit).await {
                    Ok(()) => {
                        committed = true;
                        break;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if committed {
                done.push(point);
                continue;
            }
            if assigned_elsewhere(&errors) {
                tracing::info!(
                    topic = %point.topic,
                    vg,
                    offset,
                    "commit dropped: the vgroup is assigned to a consumer of another bridge, which commits it"
                );
                continue;
            }
            if let Some(e) = errors.last() {
                tracing::warn!(error = %e, topic = %point.topic, vg, offset, "commit failed; will retry");
            }
            self.pending.insert((point.topic, vg), offset);
        }
        done
    }
}

/// Whether every consumer asked refused a commit because the vgroup is not assigned to it: then none of the
/// bridge's consumers holds it (a failure of another kind, e.g. a lost connection, is retried).
fn assigned_elsewhere(errors: &[taos::Error]) -> bool {
    !errors.is_empty() && errors.iter().all(|e| e.code() == INVALID_VGID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_dropped_only_when_every_consumer_says_the_vgroup_is_not_its_own() {
        let not_ours = || taos::Error::new(INVALID_VGID, "Invalid vgroup id");
        let lost = || taos::Error::from_string("TDengine did not answer `commit` within 5s");
        assert!(assigned_elsewhere(&[not_ours(), not_ours()]));
        assert!(
            !assigned_elsewhere(&[not_ours(), lost()]),
            "one may still hold it"
        );
        assert!(!assigned_elsewhere(&[lost()]));
        assert!(!assigned_elsewhere(&[]), "no consumer asked: retried");
    }
}
