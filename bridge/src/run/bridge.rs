//! The bridge as a whole: its configuration, its errors, and [`Bridge::run`], which wires the source,
//! the encode stage, the MQTT thread and the commit task together and tears them down.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::{commit::commit_loop, encode_stage, mqtt_thread::on_mqtt_thread, RunSummary, Stats};
use crate::{
    dsn::{SourceDsn, TargetDsn},
    source::{self, Committer},
};

/// Everything the bridge needs to run.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub source: SourceDsn,
    pub target: TargetDsn,
    /// How long shutdown waits for outstanding acknowledgements.
    pub shutdown_timeout: Duration,
}

impl BridgeConfig {
    /// Parses both DSNs (errors are the one-line messages for the user).
    pub fn from_dsns(from: &str, to: &str) -> Result<Self, crate::dsn::DsnError> {
        Ok(BridgeConfig {
            source: SourceDsn::parse(from)?,
            target: TargetDsn::parse(to)?,
            shutdown_timeout: Duration::from_secs(10),
        })
    }
}

/// Why the bridge stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("MQTT broker refused the connection: {0}")]
    MqttRefused(String),
    #[error("{0} (not retried: give the broker's CA in `ca=`, or fix its certificate)")]
    MqttUntrusted(String),
    #[error("{0}")]
    Tdengine(String),
    #[error("the MQTT event loop stopped unexpectedly")]
    SinkStopped,
    #[error("{0}")]
    Sink(#[from] crate::sink::SinkError),
    #[error("cannot start the MQTT thread: {0}")]
    Thread(std::io::Error),
}

/// The bridge, ready to run.
pub struct Bridge {
    config: BridgeConfig,
    stats: Arc<Stats>,
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Self {
        Bridge {
            config,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` resolves (then shuts down gracefully) or a fatal error.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RunSummary, BridgeError> {
        let Bridge { config, stats } = self;
        tracing::info!(from = %config.source, to = %config.target, "starting bridge");
        let (source_rx, consumer, source_task) =
            source::spawn(config.source.clone(), 4, stats.wal_ends.clone());
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let commit_task = tokio::spawn(commit_loop(commit_rx, Committer::new(consumer), stats.clone()));
        let config = Arc::new(config);
        let staged = encode_stage(config.clone(), stats.clone(), source_rx);
        let result = on_mqtt_thread(config, stats.clone(), staged, commit_tx, shutdown).await;
        source_task.abort();
        // The commit task ends once it has tried to send everything it was given.
        if tokio::time::timeout(Duration::from_secs(5), commit_task)
            .await
            .is_err()
        {
            tracing::warn!("committing offsets did not finish within 5s");
        }
        let mut summary = stats.snapshot();
        let unacked = result?;
        summary.unacked_at_exit = unacked;
        tracing::info!(?summary, "bridge stopped");
        Ok(summary)
    }
}

/// Runs a bridge until `shutdown` resolves. Shorthand for `Bridge::new(config).run(shutdown)`.
pub async fn run(
    config: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, BridgeError> {
    Bridge::new(config).run(shutdown).await
}
