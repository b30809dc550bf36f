//! The commit task: receives the positions the pipeline may commit and commits them to TDengine,
//! coalesced per vgroup, retrying what failed (e.g. while TDengine reconnects).

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::Stats;
use crate::{ledger::CommitPoint, source::Committer};

/// Runs until `rx` is closed and everything it carried was tried once more.
pub(super) async fn commit_loop(
    mut rx: mpsc::UnboundedReceiver<CommitPoint>,
    mut committer: Committer,
    stats: Arc<Stats>,
) {
    let mut closed = false;
    while !closed {
        tokio::select! {
            c = rx.recv() => match c {
                Some(point) => committer.add(point),
                None => closed = true,
            },
            // Retry failed commits (e.g. while TDengine reconnects) now and then.
            _ = tokio::time::sleep(Duration::from_millis(500)), if !committer.is_empty() => {}
        }
        while let Ok(point) = rx.try_recv() {
            committer.add(point);
        }
        for p in committer.flush().await {
            tracing::debug!(topic = %p.topic, vg = p.vgroup_id, offset = p.offset, "committed");
            stats.set_committed(&p.topic, p.vgroup_id, p.offset);
        }
    }
}
