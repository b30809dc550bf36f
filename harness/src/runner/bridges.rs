//! Running a bridge: in-process (a task around `tmq2mqtt::Bridge`) or as a child process of the
//! `tmq2mqtt` binary (which can be killed with SIGKILL and started again).

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tmq2mqtt::{Bridge, BridgeConfig, Stats};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::bridge_bin::bridge_binary;

/// One running bridge.
pub enum RunningBridge {
    InProcess {
        task: JoinHandle<Result<tmq2mqtt::RunSummary, tmq2mqtt::BridgeError>>,
        stop: watch::Sender<bool>,
        stats: Arc<Stats>,
    },
    Process {
        child: Box<Child>,
        from: String,
        to: String,
        stderr: Arc<Mutex<VecDeque<String>>>,
        kills: u32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeStartError {
    #[error("bridge configuration rejected: {0}")]
    Config(String),
    #[error("tmq2mqtt binary not found (build it with `cargo build -p tmq2mqtt` or set TMQ2MQTT_BIN)")]
    NoBinary,
    #[error("cannot start {bin}: {reason}")]
    Spawn { bin: String, reason: String },
}

impl RunningBridge {
    pub fn in_process(from: &str, to: &str) -> Result<RunningBridge, BridgeStartError> {
        let config =
            BridgeConfig::from_dsns(from, to).map_err(|e| BridgeStartError::Config(e.to_string()))?;
        let bridge = Bridge::new(config);
        let stats = bridge.stats();
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(bridge.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        Ok(RunningBridge::InProcess { task, stop, stats })
    }

    pub fn process(from: &str, to: &str) -> Result<RunningBridge, BridgeStartError> {
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let child = Box::new(spawn_child(from, to, stderr.clone())?);
        Ok(RunningBridge::Process {
            child,
            from: from.into(),
            to: to.into(),
            stderr,
            kills: 0,
        })
    }

    /// Live counters of an in-process bridge.
    pub fn stats(&self) -> Option<&Arc<Stats>> {
        match self {
            RunningBridge::InProcess { stats, .. } => Some(stats),
            RunningBridge::Process { .. } => None,
        }
    }

    /// Whether the bridge already ended by itself.
    pub fn exited(&mut self) -> bool {
        match self {
            RunningBridge::InProcess { task, .. } => task.is_finished(),
            RunningBridge::Process { child, .. } => matches!(child.try_wait(), Ok(Some(_))),
        }
    }

    /// SIGKILL (no graceful shutdown: nothing flushed, nothing committed).
    pub async fn kill9(&mut self) {
        if let RunningBridge::Process { child, kills, .. } = self {
            let _ = child.start_kill();
            let _ = child.wait().await;
            *kills += 1;
        }
    }

    /// Starts a killed process bridge again with the same DSNs.
    pub fn restart(&mut self) -> Result<(), BridgeStartError> {
        if let RunningBridge::Process {
            child,
            from,
            to,
            stderr,
            ..
        } = self
        {
            **child = spawn_child(from, to, stderr.clone())?;
        }
        Ok(())
    }

    /// Graceful stop (shutdown signal / SIGTERM); returns the error the bridge ended with, if any.
    pub async fn stop(self, grace: Duration) -> Option<String> {
        match self {
            RunningBridge::InProcess { task, stop, .. } => {
                let _ = stop.send(true);
                match tokio::time::timeout(grace, task).await {
                    Ok(Ok(Ok(_))) => None,
                    Ok(Ok(Err(e))) => Some(e.to_string()),
                    Ok(Err(join)) => Some(format!("bridge task panicked: {join}")),
                    Err(_) => Some(format!("did not stop within {grace:?} of the shutdown signal")),
                }
            }
            RunningBridge::Process {
                mut child, stderr, ..
            } => {
                let already = child.try_wait().ok().flatten();
                let status = match already {
                    Some(s) => Some(s),
                    None => {
                        if let Some(pid) = child.id() {
                            // SAFETY: kill(2) on our own child's pid; no memory is touched.
                            unsafe {
                                libc::kill(pid as i32, libc::SIGTERM);
                            }
                        }
                        match tokio::time::timeout(grace, child.wait()).await {
                            Ok(Ok(s)) => Some(s),
                            _ => {
                                let _ = child.kill().await;
                                None
                            }
                        }
                    }
                };
                let tail = stderr
                    .lock()
                    .expect("stderr lock")
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_default();
                match status {
                    Some(s) if s.success() => None,
                    Some(s) => Some(format!("exited with {s}: {tail}")),
                    None => Some(format!("did not stop within {grace:?} of SIGTERM")),
                }
            }
        }
    }
}

fn spawn_child(
    from: &str,
    to: &str,
    stderr: Arc<Mutex<VecDeque<String>>>,
) -> Result<Child, BridgeStartError> {
    let bin = bridge_binary().ok_or(BridgeStartError::NoBinary)?;
    let mut child = Command::new(&bin)
        .args(["run", "-f", from, "-t", to])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BridgeStartError::Spawn {
            bin: bin.display().to_string(),
            reason: format!("{e} (args: run -f {} -t {})", redacted(from), redacted(to)),
        })?;
    if let Some(err) = child.stderr.take() {
        // With RUST_LOG set by whoever runs the harness, the bridge's log lines are shown as they come.
        let show = std::env::var_os("RUST_LOG").is_some();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if show {
                    eprintln!("{line}");
                }
                let mut tail = stderr.lock().expect("stderr lock");
                if tail.len() == 50 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    }
    Ok(child)
}

/// A DSN for messages: as the bridge shows it (password hidden), or only its scheme when it does not parse.
fn redacted(dsn: &str) -> String {
    tmq2mqtt::SourceDsn::parse(dsn)
        .map(|d| d.to_string())
        .or_else(|_| tmq2mqtt::TargetDsn::parse(dsn).map(|d| d.to_string()))
        .unwrap_or_else(|_| format!("{}://…", dsn.split_once("://").map_or("", |(s, _)| s)))
}
