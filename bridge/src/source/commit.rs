//! Offset commits: coalesced per vgroup, retried until they go through.

use std::sync::Arc;

use taos::AsAsyncConsumer;

use super::answered::answered;
use super::CurrentConsumer;
use crate::ledger::CommitPoint;

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
            let mut error = None;
            let mut committed = false;
            for consumer in self.consumer.for_vgroup(&point.topic, vg) {
                let c = consumer.read().await;
                let commit = c.commit_offset(&point.topic, vg, offset);
                match answered("commit", commit).await {
                    Ok(()) => {
                        committed = true;
                        break;
                    }
                    Err(e) => error = Some(e),
                }
            }
            if committed {
                done.push(point);
                continue;
            }
            if let Some(e) = error {
                tracing::warn!(error = %e, topic = %point.topic, vg, offset, "commit failed; will retry");
            }
            self.pending.insert((point.topic, vg), offset);
        }
        done
    }
}
