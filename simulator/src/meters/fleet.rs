//! Executes the fleet's [`Plan`] against TDengine through the official `taos` client: holds the
//! requested rate with a token bucket, retries connection errors with backoff (reporting each),
//! records every statement's outcome in the [`WriteLog`], and reports rejected rows one by one.

use std::future::Future;
use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use taos::{AsyncQueryable, AsyncTBuilder, Taos, TaosBuilder};
use tokio::time::Instant;

use super::plan::{Plan, Step};
use super::rate::TokenBucket;
use super::write_log::WriteLog;
use super::{FleetConfig, StopAfter};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("bad TDengine DSN {dsn}: {reason}")]
    Dsn { dsn: String, reason: String },
    #[error("TDengine refused the login: {0}")]
    Auth(String),
    #[error("TDengine unreachable for {after:?} ({attempts} attempts), last error: {last}")]
    Connection {
        attempts: u64,
        after: Duration,
        last: String,
    },
    #[error("cannot write the write log: {0}")]
    WriteLog(#[from] io::Error),
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetReport {
    pub statements: u64,
    pub statements_rejected: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
    /// Connection errors met (each was retried).
    pub connection_errors: u64,
    pub elapsed: Duration,
    /// The run ended early because the shutdown signal fired.
    pub interrupted: bool,
}

impl FleetReport {
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows_written as f64 / secs
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for FleetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} rows in {} statements in {:.2?} ({:.0} rows/s); {} rows in {} statements rejected; {} connection errors retried{}",
            self.rows_written,
            self.statements,
            self.elapsed,
            self.rows_per_sec(),
            self.rows_rejected,
            self.statements_rejected,
            self.connection_errors,
            if self.interrupted { "; interrupted" } else { "" }
        )
    }
}

/// A configured fleet. Its write log is shared, so a harness can read it while the fleet runs.
pub struct Fleet {
    config: FleetConfig,
    write_log: Arc<Mutex<WriteLog>>,
}

impl Fleet {
    /// Opens the `--write-log` file if any.
    pub fn new(config: FleetConfig) -> Result<Fleet, FleetError> {
        let mut write_log = WriteLog::new(config.db.clone());
        if !config.keep_entries {
            write_log = write_log.without_entries();
        }
        if let Some(path) = &config.write_log_path {
            let file = std::fs::File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            write_log = write_log.with_sink(Box::new(io::BufWriter::new(file)));
        }
        Ok(Fleet {
            config,
            write_log: Arc::new(Mutex::new(write_log)),
        })
    }

    pub fn write_log(&self) -> Arc<Mutex<WriteLog>> {
        self.write_log.clone()
    }

    /// Runs the script until its end, the configured duration, or `shutdown` resolves (checked
    /// between statements; a statement in flight is finished so its outcome is known).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<FleetReport, FleetError> {
        let config = &self.config;
        let builder = TaosBuilder::from_dsn(&config.dsn).map_err(|e| {
            let dsn = redact_dsn(&config.dsn);
            FleetError::Dsn {
                reason: e.to_string().replace(&config.dsn, &dsn),
                dsn,
            }
        })?;
        let (rows_limit, deadline) = match config.stop {
            StopAfter::Rows(n) => (Some(n), None),
            StopAfter::Duration(d) => (None, Instant::now().checked_add(d)),
            StopAfter::Never => (None, None),
        };
        // A batch holds at most one second's worth of rows, so a slow rate gives a steady trickle
        // rather than rare bursts.
        let mut script = config.clone();
        if let Some(rate) = config.rate.filter(|r| *r > 0.0) {
            script.batch = config.batch.min(rate.ceil() as usize).max(1);
        }
        let plan = Plan::new(&script, rows_limit);
        let mut bucket = config
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| TokenBucket::new(r, script.batch as f64));
        let progress = progress_bar(config.progress, rows_limit);
        let mut conn = Connection {
            builder,
            taos: None,
            config,
            errors: 0,
        };
        let mut report = FleetReport::default();
        let started = Instant::now();
        tokio::pin!(shutdown);
        tracing::info!(dsn = %redact_dsn(&config.dsn), db = %config.db, meters = config.meters, seed = config.seed, "fleet starting");

        for step in plan {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let rows = step.rows();
            if let (Some(bucket), true) = (bucket.as_mut(), rows > 0) {
                let until_deadline = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = bucket.acquire(rows) => {}
                    _ = &mut shutdown => { report.interrupted = true; break; }
                    // A slow rate must not carry the run past its duration.
                    _ = until_deadline => break,
                }
            }
            // Shutdown is honoured between statements only: a statement once sent is awaited, so
            // its outcome is known and the write log stays exact.
            if shutdown.as_mut().now_or_never().is_some() {
                report.interrupted = true;
                break;
            }
            let sql = step.sql(&config.db);
            let (result, retried) = match conn.execute(&sql).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Gave up: whether TDengine applied this statement is unknown; say so.
                    progress.finish_and_clear();
                    let mut write_log = self.write_log.lock();
                    write_log.record_unknown(&step, &error.to_string())?;
                    write_log.flush()?;
                    return Err(error);
                }
            };
            report.statements += 1;
            if let Err(error) = &result {
                report.statements_rejected += 1;
                report_rejection(&step, error);
            }
            if result.is_ok() {
                report.rows_written += rows as u64;
            } else {
                report.rows_rejected += rows as u64;
            }
            self.write_log.lock().record(&step, result, retried)?;
            progress.inc(rows as u64);
        }
        progress.finish_and_clear();
        self.write_log.lock().flush()?;
        report.connection_errors = conn.errors;
        report.elapsed = started.elapsed();
        tracing::info!(%report, "fleet done");
        Ok(report)
    }
}

/// The connection with its retry policy.
struct Connection<'a> {
    builder: TaosBuilder,
    taos: Option<Taos>,
    config: &'a FleetConfig,
    errors: u64,
}

impl Connection<'_> {
    /// Executes `sql`, reconnecting with backoff on connection errors. Returns the statement's
    /// outcome (`Err` = TDengine rejected it) and whether it was sent more than once.
    async fn execute(&mut self, sql: &str) -> Result<(Result<(), String>, bool), FleetError> {
        let started = Instant::now();
        let mut attempts = 0u64;
        let mut backoff = Duration::from_millis(100);
        loop {
            attempts += 1;
            let result = match &self.taos {
                Some(taos) => Self::exec(taos, sql, self.config.statement_timeout).await,
                None => match self.builder.build().await {
                    Ok(taos) => {
                        let r = Self::exec(&taos, sql, self.config.statement_timeout).await;
                        self.taos = Some(taos);
                        r
                    }
                    Err(e) => Err(classify(&e)),
                },
            };
            let error = match result {
                Ok(()) => return Ok((Ok(()), attempts > 1)),
                Err(Failure::Rejected(e)) => return Ok((Err(e), attempts > 1)),
                Err(Failure::Auth(e)) => return Err(FleetError::Auth(e)),
                Err(Failure::Connection(e)) => e,
            };
            self.errors += 1;
            self.taos = None;
            if started.elapsed() >= self.config.retry_for {
                return Err(FleetError::Connection {
                    attempts,
                    after: started.elapsed(),
                    last: error,
                });
            }
            tracing::warn!(attempt = attempts, retry_in = ?backoff, %error, "TDengine connection error; retrying");
            // Backoff between reconnection attempts (not synchronisation).
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
    }

    async fn exec(taos: &Taos, sql: &str, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, taos.exec(sql)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(Failure::Connection(format!("no answer within {timeout:?}"))),
        }
    }
}

enum Failure {
    Connection(String),
    Auth(String),
    Rejected(String),
}

/// Sorts a `taos` error: client-side transport codes (0xE001–0xE005) and transport failures
/// without a TDengine code are connection errors; authentication codes are fatal; anything else
/// is TDengine rejecting the statement.
fn classify(error: &taos::Error) -> Failure {
    let code = i32::from(error.code()) & 0xFFFF;
    let text = error.to_string();
    let text = if text.starts_with("[0x") {
        text
    } else {
        format!("[{code:#06X}] {text}")
    };
    match code {
        0x0357 | 0xE006 => Failure::Auth(text),
        0xE001..=0xE005 => Failure::Connection(text),
        0xFFFF if looks_like_transport(&error.to_string()) => Failure::Connection(text),
        _ => Failure::Rejected(text),
    }
}

fn looks_like_transport(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection",
        "connect",
        "websocket",
        "closed",
        "broken pipe",
        "reset",
        "refused",
        "io error",
        "timeout",
        "timed out",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// One error line for the statement and one per row it carried, so no rejected row goes unseen.
fn report_rejection(step: &Step, error: &str) {
    match step {
        Step::Insert { rows } => {
            tracing::error!(rows = rows.len(), %error, "TDengine rejected an insert");
            for row in rows {
                tracing::error!(
                    table = %row.table,
                    ts = row.ts,
                    values = %serde_json::to_string(&row.reading).unwrap_or_default(),
                    "rejected row"
                );
            }
        }
        other => tracing::error!(step = ?other, %error, "TDengine rejected a statement"),
    }
}

fn progress_bar(enabled: bool, rows: Option<u64>) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match rows {
        Some(n) => (
            ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec})",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {pos} rows ({per_sec})",
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// The DSN with its password replaced by `***` (for logs and errors).
pub fn redact_dsn(dsn: &str) -> String {
    let Some(scheme_end) = dsn.find("://").map(|i| i + 3) else {
        return dsn.to_string();
    };
    let rest = &dsn[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &dsn[..scheme_end], &userinfo[..colon], &rest[at..]),
                None => dsn.to_string(),
            }
        }
        None => dsn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_dsn("ws://root:taosdata@127.0.0.1:6041/db?x=1"),
            "ws://root:***@127.0.0.1:6041/db?x=1"
        );
        assert_eq!(redact_dsn("ws://127.0.0.1:6041"), "ws://127.0.0.1:6041");
        assert_eq!(redact_dsn("ws://root@h:1"), "ws://root@h:1");
    }

    #[test]
    fn report_line_names_the_numbers() {
        let r = FleetReport {
            statements: 3,
            rows_written: 1000,
            elapsed: Duration::from_secs(2),
            ..FleetReport::default()
        };
        let s = r.to_string();
        assert!(
            s.contains("wrote 1000 rows in 3 statements") && s.contains("500 rows/s"),
            "{s}"
        );
    }
}
