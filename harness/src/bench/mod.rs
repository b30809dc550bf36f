//! `harness bench`: the bridge measured against the physical limit in one run on the embedded world
//! (stand-in + embedded rumqttd, loopback). Ratios within one run are what counts on a shared machine.
//!
//! - `limit`: bare rumqttc publisher, the bridge's payloads, same broker and QoS ([`limit`]);
//! - `bridge`: backlog drained from `earliest` at QoS 0/1/2, rows/s to the last commit ([`drain`]);
//! - `latency`: insert → subscriber at a steady 5k rows/s ([`latency`]);
//! - peak RSS of the bridge as a child process draining the backlog ([`drain::child`]);
//! - `format=batch` rows/s;
//! - `fleet`: many tables with a row or two each per message, bridge against the official client's own
//!   limit ([`fleet`]).

pub mod drain;
pub mod fleet;
pub mod latency;
pub mod limit;
pub mod world;

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use serde::Serialize;

pub use latency::Latency;
use world::BenchWorld;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench setup: {0}")]
    Setup(String),
    #[error("bench stalled: {0}")]
    Stalled(String),
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Backlog rows drained per bridge run.
    pub rows: u64,
    /// Messages the bare publisher sends per run at QoS 0 and 1 (QoS 2: at most [`QOS2_LIMIT_MESSAGES`]).
    pub limit_messages: u64,
    /// Latency phase length.
    pub latency_for: Duration,
    pub latency_rate: u64,
    /// The `tmq2mqtt` binary for the RSS run; `None` skips it (reported).
    pub bridge_bin: Option<PathBuf>,
    /// The harness binary, to measure the fleet's client limit in a process of its own (`bench-client`);
    /// `None`: in the bench's process.
    pub client_bin: Option<PathBuf>,
    /// Per-phase deadline.
    pub deadline: Duration,
    /// QoS levels measured (limit and bridge).
    pub qos: Vec<u8>,
    /// Limit + bridge pairs per QoS level; the table shows the medians.
    pub repeat: u32,
    /// The batch, peak-RSS and latency phases.
    pub extras: bool,
    /// Fleet shapes measured (none: no fleet phase).
    pub fleet: Vec<fleet::Shape>,
    /// Each fleet shape's backlog holds at least this many rows (whole rounds).
    pub fleet_rows: u64,
    /// `consumers=` counts each fleet shape is measured with (empty: the automatic default).
    pub fleet_consumers: Vec<usize>,
    /// Source DSN parameters added to the fleet bridge's (`a=b&c=d`; empty: none).
    pub fleet_source_params: String,
}

impl BenchOptions {
    /// The full run (≥ 1M rows) or `--quick` (100k rows, short latency phase).
    pub fn new(quick: bool, rows: Option<u64>) -> Self {
        let rows = rows.unwrap_or(if quick { 100_000 } else { 1_000_000 });
        BenchOptions {
            rows,
            // As long as the bridge's run, so both see the same stretch of a noisy machine.
            limit_messages: rows.min(if quick { 100_000 } else { 1_000_000 }),
            latency_for: Duration::from_secs(if quick { 3 } else { 10 }),
            latency_rate: 5_000,
            bridge_bin: crate::bridge_bin::bridge_binary(),
            client_bin: None,
            deadline: Duration::from_secs(600),
            qos: vec![0, 1, 2],
            repeat: if quick { 1 } else { 3 },
            extras: true,
            fleet: [
                Self::fleet_shapes(
                    if quick {
                        &[10, 1000, 10_000]
                    } else {
                        &DEFAULT_FLEET_TABLES
                    },
                    &[1, 2],
                ),
                Self::single_row_shapes(if quick { &[10] } else { &[10, 1000] }),
            ]
            .concat(),
            fleet_rows: if quick { 20_000 } else { 200_000 },
            fleet_consumers: Vec::new(),
            fleet_source_params: String::new(),
        }
    }

    /// Every (tables, rows per table) pair.
    pub fn fleet_shapes(tables: &[u64], rows_per_table: &[u64]) -> Vec<fleet::Shape> {
        tables
            .iter()
            .flat_map(|&t| {
                rows_per_table.iter().map(move |&r| fleet::Shape {
                    tables: t.max(1),
                    rows_per_table: r.max(1),
                    single: false,
                })
            })
            .collect()
    }

    /// "N meters, one row per INSERT" for each table count.
    pub fn single_row_shapes(tables: &[u64]) -> Vec<fleet::Shape> {
        tables
            .iter()
            .map(|&t| fleet::Shape {
                tables: t.max(1),
                rows_per_table: 1,
                single: true,
            })
            .collect()
    }
}

/// The fleet phase's table counts in the full run.
pub const DEFAULT_FLEET_TABLES: [u64; 4] = [10, 1000, 10_000, 100_000];

/// The QoS 2 limit runs ~100k msg/s; more would only lengthen the bench.
pub const QOS2_LIMIT_MESSAGES: u64 = 300_000;

#[derive(Debug, Clone, Serialize)]
pub struct QosRow {
    pub qos: u8,
    /// Bare publisher, msg/s acknowledged (median of the runs).
    pub limit: f64,
    /// Bridge, rows/s acknowledged and committed (median of the runs).
    pub bridge: f64,
    /// Median of the per-pair ratios bridge / limit.
    pub ratio: f64,
    /// Every pair (limit, bridge) in the order measured.
    pub runs: Vec<(f64, f64)>,
}

impl QosRow {
    fn from_runs(qos: u8, runs: Vec<(f64, f64)>) -> QosRow {
        QosRow {
            qos,
            limit: median(runs.iter().map(|r| r.0)),
            bridge: median(runs.iter().map(|r| r.1)),
            ratio: median(runs.iter().map(|r| r.1 / r.0)),
            runs,
        }
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: String,
    pub rows: u64,
    pub limit_messages: u64,
    pub payload_bytes: usize,
    pub qos: Vec<QosRow>,
    pub batch_rows_per_s: Option<f64>,
    pub latency: Option<Latency>,
    /// Peak RSS of `tmq2mqtt run` (child process) while draining the backlog at QoS 1, kB.
    pub peak_rss_kb: Option<u64>,
    pub child_rows_per_s: Option<f64>,
    /// The fleet-shape phase, one entry per shape.
    pub fleet: Vec<fleet::FleetRow>,
    pub notes: Vec<String>,
}

/// Runs every phase; `progress` gets one line per phase.
pub async fn run(opts: &BenchOptions, progress: impl Fn(&str)) -> Result<BenchReport, BenchError> {
    let w = BenchWorld::start().await?;
    if !opts.qos.is_empty() || opts.extras {
        progress(&format!("loading {} backlog rows", opts.rows));
        w.load_backlog(opts.rows)?;
    }
    let end = drain::end_positions(&w)?;
    // Payloads as the bridge renders them (offsets of this backlog's size), cycled by the bare publisher.
    let offset = *end.values().next().unwrap_or(&1);
    let payloads = world::payloads(offset);
    let payload_bytes = payloads[0].len();
    let broker = w.broker.v4_addr().expect("v4 listener");
    let mut qos_rows = Vec::new();
    for &qos in &opts.qos {
        let mut runs = Vec::new();
        for i in 0..opts.repeat {
            let round = if opts.repeat > 1 {
                format!(" ({}/{})", i + 1, opts.repeat)
            } else {
                String::new()
            };
            progress(&format!(
                "limit QoS {qos}{round}: {} messages",
                opts.limit_messages
            ));
            let limit =
                limit::publish_rate(broker, qos, &payloads, 8, opts.limit_messages, opts.deadline).await?;
            progress(&format!("bridge QoS {qos}{round}: {} rows", opts.rows));
            let label = if i == 0 {
                format!("q{qos}")
            } else {
                format!("q{qos}r{i}")
            };
            let bridge = drain::in_process(&w, opts.rows, qos, "", &label, opts.deadline).await?;
            runs.push((limit, bridge));
        }
        qos_rows.push(QosRow::from_runs(qos, runs));
    }
    let mut notes = Vec::new();
    let (batch, latency, peak_rss_kb, child_rows_per_s) = if opts.extras {
        progress("batch (format=batch, QoS 1)");
        let batch = drain::in_process(&w, opts.rows, 1, "&format=batch", "batch", opts.deadline).await?;
        let (peak_rss_kb, child_rows_per_s) = match &opts.bridge_bin {
            Some(bin) => {
                progress(&format!("peak RSS: {} run, QoS 1", bin.display()));
                let c = drain::child(&w, bin, opts.rows, opts.deadline).await?;
                (Some(c.peak_rss_kb), Some(c.rows_per_s))
            }
            None => {
                notes.push("tmq2mqtt binary not found (cargo build --release -p tmq2mqtt or TMQ2MQTT_BIN): peak RSS not measured".into());
                (None, None)
            }
        };
        progress(&format!("latency at {} rows/s", opts.latency_rate));
        let latency = latency::measure(&w, opts.latency_rate, opts.latency_for).await?;
        if latency.received < latency.sent {
            notes.push(format!(
                "latency: {} of {} rows arrived",
                latency.received, latency.sent
            ));
        }
        (Some(batch), Some(latency), peak_rss_kb, child_rows_per_s)
    } else {
        if !opts.qos.is_empty() {
            notes.push("batch, peak RSS and latency not measured (--qos)".into());
        }
        (None, None, None, None)
    };
    let mut fleet_rows = Vec::new();
    let counts: Vec<Option<usize>> = match opts.fleet_consumers.is_empty() {
        true => vec![None],
        false => opts.fleet_consumers.iter().map(|&n| Some(n)).collect(),
    };
    for &shape in &opts.fleet {
        for &consumers in &counts {
            let row = fleet::measure(&w, opts, shape, consumers, &progress).await?;
            fleet_rows.push(row);
        }
    }
    if !opts.fleet.is_empty() {
        let how = match fleet::fetches_raw(&opts.fleet_source_params) {
            true => "whole messages (`as_raw_data`), as the bridge's `fetch.raw=true`",
            false => "block by block (`fetch` + `fetch_block`), as the bridge's `fetch.raw=false`",
        };
        notes.push(format!("fleet: the client limit fetches {how}"));
        if !opts.fleet_source_params.is_empty() {
            notes.push(format!(
                "fleet: the bridge's source DSN adds `{}`",
                opts.fleet_source_params
            ));
        }
    }
    if !opts.fleet.is_empty() && opts.bridge_bin.is_none() {
        notes.push(
            "fleet: tmq2mqtt binary not found: the bridge ran in-process, peak RSS not measured".into(),
        );
    }
    w.td.shutdown().await;
    Ok(BenchReport {
        machine: machine(),
        rows: opts.rows,
        limit_messages: opts.limit_messages,
        payload_bytes,
        qos: qos_rows,
        batch_rows_per_s: batch,
        latency,
        peak_rss_kb,
        child_rows_per_s,
        fleet: fleet_rows,
        notes,
    })
}

/// CPU model, core count, kernel: where the numbers came from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}

/// The report as a Markdown table (what docs/performance.md shows).
pub fn table(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "machine: {}", r.machine);
    let _ = writeln!(
        s,
        "backlog {} rows ({} B payloads, 8 tables, 4 vgroups, MQTT 3.1.1, embedded rumqttd); limit: {} messages (QoS 2: {})",
        r.rows, r.payload_bytes, r.limit_messages, r.limit_messages.min(QOS2_LIMIT_MESSAGES)
    );
    let _ = writeln!(s, "| what | limit (bare rumqttc) | bridge | ratio |");
    let _ = writeln!(s, "|---|---|---|---|");
    for q in &r.qos {
        let _ = writeln!(
            s,
            "| QoS {} rows/s | {:.0} | {:.0} | {:.2} |",
            q.qos, q.limit, q.bridge, q.ratio
        );
        if q.runs.len() > 1 {
            let pairs: Vec<String> = q.runs.iter().map(|(l, b)| format!("{:.2}", b / l)).collect();
            let _ = writeln!(
                s,
                "|   ratios of the {} pairs | | | {} |",
                q.runs.len(),
                pairs.join(" ")
            );
        }
    }
    if let Some(batch) = r.batch_rows_per_s {
        let _ = writeln!(s, "| format=batch rows/s (QoS 1) | | {batch:.0} | |");
    }
    if let Some(l) = &r.latency {
        let _ = writeln!(
            s,
            "| latency at {} rows/s (QoS 1) | | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({}/{} rows) | |",
            l.rate, l.p50_ms, l.p99_ms, l.max_ms, l.received, l.sent
        );
    }
    match (r.peak_rss_kb, r.child_rows_per_s) {
        (Some(kb), Some(rps)) => {
            let _ = writeln!(
                s,
                "| peak RSS `tmq2mqtt run`, {} rows backlog, QoS 1 | | {:.1} MB ({:.0} rows/s) | |",
                r.rows,
                kb as f64 / 1024.0,
                rps
            );
        }
        _ if r.latency.is_none() => {}
        _ => {
            let _ = writeln!(s, "| peak RSS | | not measured | |");
        }
    }
    if !r.fleet.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "fleet shapes (4 vgroups, INSERTs of {} rows, QoS 1, default parameters; client limit: as many bare `taos` consumers as the bridge runs, fetching as it does; publisher: bare rumqttc, QoS 1, a topic per table; bound: the slower of the two)",
            fleet::BATCH_ROWS
        );
        let _ = writeln!(
            s,
            "| tables | rows/table/round | INSERTs | rows | blocks | rows/block | bridge rows/s | µs/block | peak RSS | consumers | client rows/s | client µs/block | ratio | publisher rows/s | ratio to bound |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &r.fleet {
            let rss = f
                .peak_rss_kb
                .map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.1} | {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.2} |",
                f.tables,
                f.rows_per_table,
                if f.single { "one row each" } else { "≤ 5000 rows" },
                f.rows,
                f.blocks,
                f.rows_per_block,
                f.rows_per_s,
                f.us_per_block,
                rss,
                f.consumers,
                f.client_rows_per_s,
                f.client_us_per_block,
                f.ratio,
                f.publisher_rows_per_s,
                f.ratio_to_bound
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
