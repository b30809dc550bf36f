//! Offset commits: coalesced per vgroup, retried until they go through.

use std::sync::Arc;

use taos::AsAsyncConsumer;

use super::CurrentConsumer;

/// Commits offsets through whichever consumer is current; coalesces to the newest per vgroup and keeps
/// what failed for the next round.
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

    pub fn add(&mut self, topic: Arc<str>, vgroup_id: i32, offset: i64) {
        let e = self.pending.entry((topic, vgroup_id)).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every pending commit; returns the ones that went through.
    pub async fn flush(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let Some(consumer) = self.consumer.borrow().clone() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        let skip = crate::test_knobs::skip_commits();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            if skip {
                done.push((topic, vg, offset));
                continue;
            }
            let result = consumer.read().await.commit_offset(&topic, vg, offset).await;
            match result {
                Ok(()) => done.push((topic, vg, offset)),
                Err(e) => {
                    tracing::warn!(error = %e, %topic, vg, offset, "commit failed; will retry");
                    self.pending.insert((topic, vg), offset);
                }
            }
        }
        done
    }
}
