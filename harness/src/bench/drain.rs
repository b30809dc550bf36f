//! Draining the backlog through the bridge: in-process (rows/s per QoS and for `format=batch`) and as a
//! child process `tmq2mqtt run …` whose peak RSS (`VmHWM`) is read from /proc, so the stand-in's and the
//! broker's memory do not count.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tmq2mqtt::{Bridge, BridgeConfig};

use super::{world::BenchWorld, world::TOPIC, BenchError};

/// Where a drain ends: the position after the last WAL entry of every vgroup of the bench database.
pub fn end_positions(w: &BenchWorld) -> Result<BTreeMap<i32, i64>, BenchError> {
    end_positions_of(w, "power")
}

/// Where a drain of database `db` ends: the position after the last WAL entry of each of its vgroups.
pub fn end_positions_of(w: &BenchWorld, db: &str) -> Result<BTreeMap<i32, i64>, BenchError> {
    let db = w
        .store()
        .database(db)
        .map_err(|e| BenchError::Setup(format!("database {db}: {e}")))?;
    let mut end = BTreeMap::new();
    for vg in db.vgroups {
        let wal = w
            .store()
            .wal(vg)
            .ok_or_else(|| BenchError::Setup(format!("no WAL for vgroup {vg}")))?;
        end.insert(vg, wal.lock().last_version() + 1);
    }
    Ok(end)
}

fn reached(committed: &BTreeMap<i32, i64>, end: &BTreeMap<i32, i64>) -> bool {
    end.iter()
        .all(|(vg, e)| committed.get(vg).is_some_and(|c| c >= e))
}

/// Runs an in-process bridge from `earliest` until every vgroup is committed at its end; rows/s from the
/// bridge's start (subscribe included) to the last commit.
pub async fn in_process(
    w: &BenchWorld,
    rows: u64,
    qos: u8,
    extra: &str,
    label: &str,
    deadline: Duration,
) -> Result<f64, BenchError> {
    let end = end_positions(w)?;
    let from = w.tmq_dsn(&format!("bench-{label}"), "earliest");
    let to = w.mqtt_dsn(
        qos,
        &format!("bench-{label}"),
        &format!("bench/{label}/{{table}}"),
        extra,
    );
    run_in_process(&from, &to, &end, rows, label, deadline)
        .await
        .map(|(rps, _)| rps)
}

/// Runs an in-process bridge `from` → `to` until every vgroup is committed at `end`; rows/s from the
/// bridge's start to the last commit, and its summary.
pub async fn run_in_process(
    from: &str,
    to: &str,
    end: &BTreeMap<i32, i64>,
    rows: u64,
    label: &str,
    deadline: Duration,
) -> Result<(f64, tmq2mqtt::RunSummary), BenchError> {
    let config = BridgeConfig::from_dsns(from, to).map_err(|e| BenchError::Setup(e.to_string()))?;
    let bridge = Bridge::new(config);
    let stats = bridge.stats();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn(bridge.run(async {
        let _ = rx.await;
    }));
    loop {
        let committed: BTreeMap<i32, i64> = stats
            .snapshot()
            .committed
            .into_iter()
            .map(|((_, vg), o)| (vg, o))
            .collect();
        if reached(&committed, end) {
            break;
        }
        if start.elapsed() > deadline || task.is_finished() {
            let _ = stop.send(());
            return Err(BenchError::Stalled(format!(
                "{label}: {:?} (last error: {:?})",
                stats.snapshot(),
                stats.last_error()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dt = start.elapsed();
    let _ = stop.send(());
    let summary = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .map_err(|_| BenchError::Stalled(format!("{label}: bridge did not stop")))?
        .map_err(|e| BenchError::Setup(format!("{label}: {e}")))?
        .map_err(|e| BenchError::Setup(format!("{label}: {e}")))?;
    if summary.rows != rows {
        return Err(BenchError::Setup(format!(
            "{label}: bridge polled {} rows, expected {rows}",
            summary.rows
        )));
    }
    Ok((rows as f64 / dt.as_secs_f64(), summary))
}

/// What the child-process drain measured.
pub struct ChildDrain {
    pub rows_per_s: f64,
    /// Peak resident set size of the `tmq2mqtt` process, kB (`VmHWM`).
    pub peak_rss_kb: u64,
}

/// Runs `bin run -f … -t …` (QoS 1) from `earliest` until the stand-in shows the group committed at the end
/// of every vgroup, then reads the child's `VmHWM` and stops it with SIGTERM.
pub async fn child(
    w: &BenchWorld,
    bin: &Path,
    rows: u64,
    deadline: Duration,
) -> Result<ChildDrain, BenchError> {
    let end = end_positions(w)?;
    let group = "bench-rss";
    let from = w.tmq_dsn(group, "earliest");
    let to = w.mqtt_dsn(1, group, "bench/rss/{table}", "");
    child_with(w, bin, &from, &to, group, TOPIC, &end, rows, deadline).await
}

/// Runs `bin run` `from` → `to` until the stand-in shows `group` committed at `end` in `topic`.
#[allow(clippy::too_many_arguments)]
pub async fn child_with(
    w: &BenchWorld,
    bin: &Path,
    from: &str,
    to: &str,
    group: &str,
    topic: &str,
    end: &BTreeMap<i32, i64>,
    rows: u64,
    deadline: Duration,
) -> Result<ChildDrain, BenchError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("run")
        .env("TMQ2MQTT_FROM", from)
        .env("TMQ2MQTT_TO", to)
        .env("RUST_LOG", bridge_log())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Setup(format!("{}: {e}", bin.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| BenchError::Setup("child exited at once".into()))?;
    let mut peak = 0;
    loop {
        peak = peak.max(vm_hwm_kb(pid).unwrap_or(0));
        let committed: BTreeMap<i32, i64> =
            w.td.tmq()
                .subscriptions()
                .into_iter()
                .filter(|s| s.group == group && s.topic == topic)
                .map(|s| (s.vgroup, s.committed))
                .collect();
        if reached(&committed, end) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Setup(format!("tmq2mqtt exited early: {status}")));
        }
        if start.elapsed() > deadline {
            return Err(BenchError::Stalled(format!(
                "child bridge: committed {committed:?} of {end:?}"
            )));
        }
        // The drain's end is seen at most this late (the client limit's end is reported at once).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dt = start.elapsed();
    peak = peak.max(vm_hwm_kb(pid).unwrap_or(0));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    Ok(ChildDrain {
        rows_per_s: rows as f64 / dt.as_secs_f64(),
        peak_rss_kb: peak,
    })
}

/// `VmHWM` (peak resident set) of a process in kB, from /proc/PID/status.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The child bridge's `RUST_LOG`: `BENCH_BRIDGE_LOG` (e.g. `tmq2mqtt=debug` to see its commits), default `warn`.
fn bridge_log() -> String {
    std::env::var("BENCH_BRIDGE_LOG").unwrap_or_else(|_| "warn".into())
}
