//! Offset commits: coalesced per vgroup, retried until they go through.

use std::sync::Arc;

use taos::AsAsyncConsumer;

use super::CurrentConsumer;

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

    pub fn add(&mut self, topic: Arc<str>, vgroup_id: i32, offset: i64) {
        let e = self.pending.entry((topic, vgroup_id)).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every pending commit; returns the ones that went through.
    pub async fn flush(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        if self.consumer.live() == 0 {
            return Vec::new();
        }
        let mut done = Vec::new();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            let mut error = None;
            let mut committed = false;
            for consumer in self.consumer.for_vgroup(&topic, vg) {
                match consumer.read().await.commit_offset(&topic, vg, offset).await {
                    Ok(()) => {
                        committed = true;
                        break;
                    }
                    Err(e) => error = Some(e),
                }
            }
            if committed {
                done.push((topic, vg, offset));
                continue;
            }
            if let Some(e) = error {
                tracing::warn!(error = %e, %topic, vg, offset, "commit failed; will retry");
            }
            self.pending.insert((topic, vg), offset);
        }
        done
    }
}
