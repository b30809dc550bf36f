//! tmq2mqtt: publish TDengine TMQ subscriptions to MQTT, committing offsets only after the broker
//! acknowledged.
//!
//! Layers, outermost first: [`run`] (the pipeline and its shutdown) drives [`source`] (the TMQ consumer)
//! and [`sink`] (the MQTT client), with the sans-IO [`ledger`] deciding what to commit and the sans-IO
//! [`lifecycle`] when to stop, [`encode`] making the taosx-compatible payloads and [`template`]
//! rendering topics. [`dsn`] parses both DSNs; [`check`] validates a configuration against the live
//! ends. [`tls`] and [`wss`] hold the TLS of both sides.
//!
//! In-process use (as the harness does):
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tmq2mqtt::{Bridge, BridgeConfig};
//! let config = BridgeConfig::from_dsns(
//!     "tmq+ws://root:taosdata@127.0.0.1:6041/topic_meters?group.id=g&auto.offset.reset=earliest",
//!     "mqtt://127.0.0.1:1883?topic=test/topic_meters&qos=1&version=5.0&client_id=bridge",
//! )?;
//! let bridge = Bridge::new(config);
//! let stats = bridge.stats(); // live counters
//! let summary = bridge.run(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
//! println!("{} rows acknowledged, committed {:?}", summary.acked, summary.committed);
//! # Ok(()) }
//! ```

pub mod check;
pub mod dead_letter;
pub mod dsn;
pub mod encode;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
#[cfg(unix)]
pub mod mqtt31;
pub mod redact;
pub mod run;
pub mod sink;
pub mod source;
pub mod template;
pub mod test_knobs;
pub mod tls;
pub mod wss;

pub use dsn::{CommitMode, DsnError, SourceDsn, TargetDsn};
pub use run::{run, Bridge, BridgeConfig, BridgeError, RunSummary, Stats};
