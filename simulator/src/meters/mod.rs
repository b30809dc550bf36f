//! A smart-meter fleet that writes TDengine's canonical `meters` rows into any TDengine — the
//! stand-in or a real one — through the official `taos` client.
//!
//! Layers: [`reading`] (schema and realistic values) → [`plan`] (the seeded, sans-IO script of
//! statements, chaos included) → [`fleet`] (executes it: rate limit, retries, progress) →
//! [`write_log`] (what was written, so a verifier knows which rows must exist).

pub mod fleet;
pub mod plan;
pub mod rate;
pub mod reading;
pub mod verify;
pub mod write_log;

use std::path::PathBuf;
use std::time::Duration;

pub use fleet::{Fleet, FleetError, FleetReport};
pub use plan::{Plan, RowKind, RowWrite, Step};
pub use reading::{create_stable_sql, Reading, Tags};
pub use write_log::{Entry, Outcome, WriteLog, WriteLogEntry};

/// When the fleet stops writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAfter {
    /// After this many row writes (updates and late rows included).
    Rows(u64),
    /// After this much wall-clock time.
    Duration(Duration),
    /// Until the shutdown signal.
    Never,
}

/// Chaos options; each is off by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chaos {
    /// Probability that a reading is held back 1–3 batches and written after newer ones.
    pub out_of_order: f64,
    /// Probability that a row slot rewrites an already written timestamp (an update).
    pub updates: f64,
    /// Probability that a column value of a first write is NULL.
    pub nulls: f64,
    /// Meters created mid-run (`d{meters}`, `d{meters+1}`, …).
    pub new_meters: u32,
    /// `ALTER STABLE … ADD COLUMN power FLOAT` mid-run.
    pub add_column: bool,
    /// `DROP TABLE` of one meter mid-run.
    pub drop_meter: bool,
    /// `DELETE FROM` one meter's table over a time range mid-run.
    pub delete_range: bool,
    /// Rows written before the mid-run events start (default: half of `--rows`, or 1000).
    pub after_rows: Option<u64>,
}

impl Chaos {
    /// Every chaos option on, with moderate rates: what the tests and `--chaos` use.
    pub fn all() -> Chaos {
        Chaos {
            out_of_order: 0.1,
            updates: 0.1,
            nulls: 0.05,
            new_meters: 2,
            add_column: true,
            drop_meter: true,
            delete_range: true,
            after_rows: None,
        }
    }
}

/// Everything the fleet needs. `Default` gives a small deterministic run (fixed start time).
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// `ws://user:password@host:port` (any DSN `taos` accepts).
    pub dsn: String,
    pub db: String,
    /// `VGROUPS` of the database the fleet creates with `create`.
    pub vgroups: u32,
    pub meters: u32,
    pub stop: StopAfter,
    /// Rows per second; `None` = as fast as TDengine takes them.
    pub rate: Option<f64>,
    /// Rows per INSERT statement (with a `rate`, at most one second's worth: `ceil(rate)`).
    pub batch: usize,
    pub seed: u64,
    /// Create the database and the super table (child tables are always created if missing).
    pub create: bool,
    /// Timestamp of the first tick, epoch milliseconds.
    pub start_ms: i64,
    /// Each meter reports once per interval.
    pub interval_ms: i64,
    pub chaos: Chaos,
    /// Write the write log as NDJSON here.
    pub write_log_path: Option<PathBuf>,
    /// Keep every write log entry in memory (the library's [`WriteLog::entries`]); off for long runs.
    pub keep_entries: bool,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Give up after connection errors lasting this long.
    pub retry_for: Duration,
    /// A statement not answered within this time counts as a connection error.
    pub statement_timeout: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            dsn: "ws://root:taosdata@127.0.0.1:6041".into(),
            db: "power".into(),
            vgroups: 4,
            meters: 100,
            stop: StopAfter::Rows(1000),
            rate: None,
            batch: 500,
            seed: 42,
            create: false,
            start_ms: 1_700_000_000_000,
            interval_ms: 1000,
            chaos: Chaos::default(),
            write_log_path: None,
            keep_entries: true,
            progress: false,
            retry_for: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(30),
        }
    }
}
