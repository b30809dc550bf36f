//! Offset commits: coalesced per vgroup, retried until they go through — or until TDengine says no retry can.
//! It refuses a commit for a vgroup assigned to another consumer of the group (`TSDB_CODE_TMQ_INVALID_VGID`):
//! when every consumer of the bridge refuses that way, the vgroup moved to another bridge, which reads it again
//! from the group's last commit and commits what it delivers. It refuses an offset outside the vgroup's WAL
//! (`TSDB_CODE_TMQ_VERSION_OUT_OF_RANGE`): below its start, retention trimmed the WAL past it, and the group
//! resumes at the start anyway. Such a commit is dropped, not retried for ever.

use std::sync::Arc;

use taos::AsAsyncConsumer;

use super::answered::answered;
use super::CurrentConsumer;
use crate::ledger::CommitPoint;

/// TDengine's `TSDB_CODE_TMQ_INVALID_VGID`: the vgroup is not assigned to the consumer asked.
const INVALID_VGID: i32 = 0x4008;
/// TDengine's `TSDB_CODE_TMQ_VERSION_OUT_OF_RANGE`: the offset is outside the vgroup's WAL.
const OUT_OF_RANGE: i32 = 0x4007;

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
            if never_committable(&errors) {
                let why = errors.last().map(|e| e.to_string()).unwrap_or_default();
                tracing::info!(
                    topic = %point.topic,
                    vg,
                    offset,
                    why,
                    "commit dropped: the vgroup is another bridge's now, or its WAL no longer holds the offset"
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

/// Whether every consumer asked refused a commit in a way no retry changes: the vgroup is not assigned to it,
/// or the offset is outside the vgroup's WAL. A failure of another kind (e.g. a lost connection) is retried.
fn never_committable(errors: &[taos::Error]) -> bool {
    !errors.is_empty()
        && errors
            .iter()
            .all(|e| e.code() == INVALID_VGID || e.code() == OUT_OF_RANGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_dropped_only_when_every_consumer_refuses_it_for_good() {
        let not_ours = || taos::Error::new(INVALID_VGID, "Invalid vgroup id");
        let trimmed = || taos::Error::new(OUT_OF_RANGE, "Offset out of range");
        let lost = || taos::Error::from_string("TDengine did not answer `commit` within 5s");
        assert!(never_committable(&[not_ours(), not_ours()]));
        assert!(never_committable(&[trimmed()]));
        assert!(never_committable(&[trimmed(), not_ours()]));
        assert!(!never_committable(&[not_ours(), lost()]), "one may still hold it");
        assert!(!never_committable(&[lost()]));
        assert!(!never_committable(&[]), "no consumer asked: retried");
    }
}
