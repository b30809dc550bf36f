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
        let skip = skip_commits_for_tests();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            if skip {
                done.push((topic, vg, offset));
                continue;
            }
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

/// `TMQ2MQTT_TEST_SKIP_COMMITS=1` makes a deliberately broken bridge that reports its commits done without
/// sending them, so a restart replays from the group's start. Exists only to prove that the tests bounding
/// duplicates can fail (docs/testing.md); not a user setting.
fn skip_commits_for_tests() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| {
        let on = std::env::var_os("TMQ2MQTT_TEST_SKIP_COMMITS").is_some_and(|v| v == "1");
        if on {
            tracing::warn!(
                "TMQ2MQTT_TEST_SKIP_COMMITS=1: offsets are never committed (a test-only broken bridge)"
            );
        }
        on
    })
}
