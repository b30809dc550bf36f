//! The MQTT thread: the [`pipeline`] and rumqttc's event loop on a single-threaded runtime of their own.
//!
//! Every row passes the run loop and rumqttc's event loop one by one (a request, a write, an event each):
//! together they are the bridge's serial stage. On one thread they hand over without cross-thread
//! wake-ups, and the source, the encode stage and the commits run beside them on the caller's runtime.
//! Measured with `harness bench --qos 0` (ratio to the bare publisher in the same run): on the shared
//! runtime the two tasks kept ~1.45 of 2 cores busy and waited on each other.
//!
//! The caller's runtime (the `tmq2mqtt` binary's) therefore gets one worker per core but the one this
//! thread keeps busy ([`runtime_workers`]): with a worker per core the source's round trips woke threads
//! across cores more often, and fleet shapes drained 3–5 % slower (docs/performance.md, "Fleet shape").

use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use super::{pipeline, BridgeConfig, BridgeError, Staged, Stats};
use crate::ledger::CommitPoint;

/// Worker threads for the runtime beside the MQTT thread on `cores` cores: one per core but one, at least one.
pub fn runtime_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// Runs [`pipeline`] on the MQTT thread until `shutdown` resolves (graceful stop) or this future is
/// dropped (the pipeline is dropped at once, as when the process dies).
pub(super) async fn on_mqtt_thread(
    config: Arc<BridgeConfig>,
    stats: Arc<Stats>,
    staged: mpsc::Receiver<Staged>,
    commit_tx: mpsc::UnboundedSender<CommitPoint>,
    shutdown: impl Future<Output = ()>,
) -> Result<usize, BridgeError> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BridgeError::Thread)?;
    std::thread::Builder::new()
        .name("tmq2mqtt-mqtt".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
                let run = pipeline(&config, &stats, staged, commit_tx, async {
                    let _ = graceful_rx.await;
                });
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => Some(r),
                    stop = stop_rx => match stop {
                        Ok(()) => {
                            let _ = graceful_tx.send(());
                            Some(run.await)
                        }
                        // The caller is gone: drop the pipeline without a goodbye.
                        Err(_) => None,
                    },
                }
            });
            if let Some(result) = result {
                let _ = done_tx.send(result);
            }
        })
        .map_err(BridgeError::Thread)?;
    tokio::pin!(shutdown, done_rx);
    tokio::select! {
        r = &mut done_rx => r.unwrap_or(Err(BridgeError::SinkStopped)),
        _ = &mut shutdown => {
            let _ = stop_tx.send(());
            done_rx.await.unwrap_or(Err(BridgeError::SinkStopped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::runtime_workers;

    #[test]
    fn the_runtime_leaves_a_core_to_the_mqtt_thread() {
        assert_eq!(runtime_workers(0), 1, "nothing known: one");
        assert_eq!(runtime_workers(1), 1);
        assert_eq!(runtime_workers(2), 1);
        assert_eq!(runtime_workers(8), 7);
    }
}
