//! The fleet-shape phase: many tables with a row or two each per TMQ message, the shape of a smart-meter
//! fleet (one block per table, so the per-block cost of the TMQ fetch decides throughput).
//!
//! Per shape: a database of its own (4 vgroups, the `meters` schema) with a backlog written like
//! `simulator meters --batch 5000` writes it (each INSERT ≤ 5000 rows, `rows_per_table` rows per table
//! per round), drained twice in the same sitting and set beside what MQTT alone takes:
//! - the **bridge** (the `tmq2mqtt` binary as a child process, QoS 1, default parameters: rows/s from
//!   spawning it to the last commit, and peak RSS; in-process when the binary is not built);
//! - the **client limit**: bare official `taos` consumers of one group (as many as the bridge runs), each
//!   polling, fetching every message the way the bridge does (whole with `as_raw_data` under the default
//!   `fetch.raw=true`, else block by block) and dropping it — what the official client alone can fetch. They run in a
//!   process of their own (`harness bench-client`), timed as the bridge is, from spawning it to its report of
//!   the last row; inside the bench's process they would share the stand-in's runtime, where a request and its
//!   reply pass between tasks of one process instead of crossing to another (`bench --client-in-process`
//!   measures that way, for comparison);
//! - the **publisher limit**: a bare rumqttc publisher sending QoS 1 messages of the same columns to a topic
//!   per table (as many messages as rows, at least 200,000 or the bench's `limit_messages` if smaller) —
//!   what the MQTT side alone can take. The bridge can outrun neither end, so its ratio to the slower of the
//!   two (`ratio_to_bound`) says how close it comes to what this machine allows; where blocks are big (10
//!   tables) fetching alone runs several times faster than any publisher.
//!
//! Blocks are counted by the client run (both runs read the same backlog, cut the same way).
//!
//! A shape may also be written **one row per INSERT** (`single`: devices reporting one reading at a time).
//! The stand-in cuts by TDengine ≤ 3.3.x (its default reported version is 3.3.6.0): one block per table
//! per INSERT, never merged, so every such row is a block of its own whatever the table count.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use taos::{AsAsyncConsumer, AsyncTBuilder, IsAsyncData, MessageSet, Timeout};

use super::{drain, limit, world, world::BenchWorld, BenchError, BenchOptions};

/// One fleet shape: `tables` meters, each writing `rows_per_table` rows per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub tables: u64,
    pub rows_per_table: u64,
    /// Every row its own INSERT statement (else statements of up to [`BATCH_ROWS`] rows).
    pub single: bool,
}

impl Shape {
    /// The shape's database and topic name.
    pub fn name(&self) -> String {
        let single = if self.single { "_single" } else { "" };
        format!("fleet_{}_{}{single}", self.tables, self.rows_per_table)
    }
}

/// Rows per INSERT, as `simulator meters --batch 5000`.
pub const BATCH_ROWS: u64 = 5000;

/// One measured shape (the JSON's `fleet` entries).
#[derive(Debug, Clone, Serialize)]
pub struct FleetRow {
    pub tables: u64,
    pub rows_per_table: u64,
    /// One row per INSERT.
    pub single: bool,
    pub rows: u64,
    /// Blocks the backlog is delivered in (counted by the client run).
    pub blocks: u64,
    pub rows_per_block: f64,
    /// The bridge's rows/s (start to last commit).
    pub rows_per_s: f64,
    /// The bridge's time per block, µs.
    pub us_per_block: f64,
    /// Peak RSS of the bridge process, kB (`None`: measured in-process, no binary).
    pub peak_rss_kb: Option<u64>,
    /// TMQ consumers the bridge runs, and the client limit with as many bare consumers.
    pub consumers: usize,
    pub client_rows_per_s: f64,
    pub client_us_per_block: f64,
    /// Bridge / client limit.
    pub ratio: f64,
    /// The bare rumqttc publisher's rows/s (QoS 1, one topic per table).
    pub publisher_rows_per_s: f64,
    /// Bridge / the slower of the client and publisher limits.
    pub ratio_to_bound: f64,
    /// Polls cut short that had to be sought back (in-process runs only).
    pub rewinds: Option<u64>,
}

/// How many rows a shape's backlog holds: whole rounds, at least `min_rows`.
pub fn backlog_rows(shape: Shape, min_rows: u64) -> u64 {
    let round = shape.tables * shape.rows_per_table;
    round * min_rows.div_ceil(round).max(1)
}

/// The INSERT statements of a shape's backlog in `db`: rounds of `rows_per_table` rows per table, cut
/// into statements of at most [`BATCH_ROWS`] rows (a table appears once per statement).
pub fn backlog_sql(db: &str, shape: Shape, rows: u64) -> impl Iterator<Item = String> + '_ {
    const BASE_TS: i64 = 1_700_000_000_000;
    let Shape {
        tables,
        rows_per_table,
        single,
    } = shape;
    let per_stmt_tables = (BATCH_ROWS / rows_per_table).max(1);
    let rounds = rows / (tables * rows_per_table);
    // (round, first table) of each statement; statements never span rounds when a round is big.
    let mut next = (0u64, 0u64);
    std::iter::from_fn(move || {
        let (round, first) = next;
        if round >= rounds {
            return None;
        }
        let mut s = String::with_capacity(64 + BATCH_ROWS as usize * 48);
        s.push_str("insert into");
        if single {
            // Round by round, table by table, row by row: (round, table * rows_per_table + row).
            let (t, k) = (first / rows_per_table, first % rows_per_table);
            push_row(&mut s, db, t, round * rows_per_table + k, BASE_TS);
            next = if first + 1 == tables * rows_per_table {
                (round + 1, 0)
            } else {
                (round, first + 1)
            };
        } else if tables >= per_stmt_tables {
            let last = (first + per_stmt_tables).min(tables);
            for t in first..last {
                push_table(&mut s, db, t, round, round + 1, rows_per_table, BASE_TS);
            }
            next = if last == tables {
                (round + 1, 0)
            } else {
                (round, last)
            };
        } else {
            // Small fleets: several rounds per statement, each table once with all its rows.
            let per_stmt_rounds = (per_stmt_tables / tables).max(1);
            let end = (round + per_stmt_rounds).min(rounds);
            for t in 0..tables {
                push_table(&mut s, db, t, round, end, rows_per_table, BASE_TS);
            }
            next = (end, 0);
        }
        Some(s)
    })
}

fn push_table(s: &mut String, db: &str, t: u64, from_round: u64, to_round: u64, per: u64, base: i64) {
    use std::fmt::Write as _;
    let _ = write!(
        s,
        " {db}.d{t} using {db}.meters tags ({}, 'California.SanFrancisco') values",
        t % 10
    );
    for round in from_round..to_round {
        for k in 0..per {
            push_values(s, round * per + k, base);
        }
    }
}

/// Row `id` of table `t` as a statement's only row.
fn push_row(s: &mut String, db: &str, t: u64, id: u64, base: i64) {
    push_table(s, db, t, 0, 0, 0, base);
    push_values(s, id, base);
}

fn push_values(s: &mut String, id: u64, base: i64) {
    use std::fmt::Write as _;
    let _ = write!(
        s,
        " ({}, {:.2}, {}, 0.31)",
        base + id as i64 * 1000,
        10.0 + (id % 100) as f32 / 10.0,
        220 + id % 10
    );
}

/// Creates the shape's database, super table and topic (`fleet_{tables}_{rows_per_table}`) and writes its
/// backlog; returns the topic.
pub fn load(w: &BenchWorld, shape: Shape, rows: u64) -> Result<String, BenchError> {
    let db = shape.name();
    w.sql(&format!("create database {db} vgroups 4"))?;
    w.sql(&simulator::meters::create_stable_sql(&db))?;
    w.sql(&format!(
        "create topic {db} as select ts, current, voltage, phase, tbname, groupid, location from {db}.meters"
    ))?;
    for sql in backlog_sql(&db, shape, rows) {
        w.sql(&sql)?;
    }
    Ok(db)
}

/// Drops what [`load`] created (the next shape should not pay for this one's memory), once the consumers
/// of the runs have left (their sockets close asynchronously).
pub async fn unload(w: &BenchWorld, db: &str) -> Result<(), BenchError> {
    let give_up = Instant::now() + Duration::from_secs(30);
    // A consumer leaves the group before its connection releases the topic, so the group emptying is not
    // enough: DROP TOPIC is refused (0x03EB) until the catalog's count of subscribers, which it checks, is 0.
    while w.td.tmq().subscribers(db) > 0 || w.td.store().topic_subscribers(db) > 0 {
        if Instant::now() > give_up {
            return Err(BenchError::Stalled(format!("{db}: consumers did not leave")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.sql(&format!("drop topic {db}"))?;
    w.sql(&format!("drop database {db}"))
}

/// What the client-limit run measured.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct ClientRun {
    pub rows_per_s: f64,
    pub blocks: u64,
}

/// One client-limit run: `consumers` bare official consumers of one fresh group drain `topic` (holding
/// `rows` rows) from the stand-in at `addr`, within `deadline`.
#[derive(Debug, Clone)]
pub struct ClientLimit {
    pub addr: String,
    pub topic: String,
    pub consumers: usize,
    pub rows: u64,
    pub deadline: Duration,
    /// Each message fetched whole with `as_raw_data` (one request, as the bridge's `fetch.raw=true`) and its
    /// blocks parsed, instead of `fetch` + `fetch_block` per block.
    pub raw: bool,
}

impl ClientLimit {
    /// In this process: each consumer polls (`recv_timeout(Never)`, the client's own loop), fetches every
    /// block (or, `raw`, the whole message) and drops it. All of them subscribe before any polls, so the
    /// group's split is settled and no row is read twice. Rows/s from the first subscribe to the last row.
    pub async fn run(&self) -> Result<ClientRun, BenchError> {
        let Self {
            addr,
            topic,
            consumers,
            rows,
            deadline,
            raw,
        } = self;
        let (consumers, rows, deadline, raw) = (*consumers, *rows, *deadline, *raw);
        let dsn = format!(
            "ws://root:taosdata@{addr}?group.id=limit-{topic}&enable.auto.commit=false&auto.offset.reset=earliest"
        );
        let start = Instant::now();
        let mut built = Vec::new();
        for _ in 0..consumers.max(1) {
            let mut c = taos::TmqBuilder::from_dsn(&dsn)
                .map_err(|e| BenchError::Setup(format!("client limit: {e}")))?
                .build()
                .await
                .map_err(|e| BenchError::Setup(format!("client limit: {e}")))?;
            c.subscribe([topic])
                .await
                .map_err(|e| BenchError::Setup(format!("client limit: subscribe {topic}: {e}")))?;
            built.push(c);
        }
        let seen = Arc::new(AtomicU64::new(0));
        let blocks = Arc::new(AtomicU64::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for c in built {
            let (seen, blocks, done) = (seen.clone(), blocks.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let (_, set) = c.recv_timeout(Timeout::Never).await?.expect("never times out");
                    let data = match set {
                        MessageSet::Data(d) | MessageSet::MetaData(_, d) => d,
                        MessageSet::Meta(_) => continue,
                    };
                    let count = |nrows: usize| {
                        blocks.fetch_add(1, Relaxed);
                        if seen.fetch_add(nrows as u64, Relaxed) + nrows as u64 >= rows {
                            done.notify_one();
                        }
                    };
                    if raw {
                        let message = data.as_raw_data().await?;
                        let parsed = tmq2mqtt::source::raw::RawMessage::parse(&message.as_bytes())
                            .map_err(taos::Error::from_any)?;
                        parsed.blocks().for_each(|b| count(b.nrows()));
                    } else {
                        while let Some(block) = data.fetch_raw_block().await? {
                            count(block.nrows());
                        }
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), taos::Error>(())
            }));
        }
        let give_up = tokio::time::Instant::now() + deadline;
        while seen.load(Relaxed) < rows {
            if tasks.iter().any(|t| t.is_finished()) {
                let failed = tasks.into_iter().find(|t| t.is_finished()).expect("one finished");
                let why = match failed.await {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "ended".into(),
                    Err(e) => e.to_string(),
                };
                return Err(BenchError::Setup(format!("client limit: consumer failed: {why}")));
            }
            if tokio::time::timeout_at(give_up, done.notified()).await.is_err() {
                return Err(BenchError::Stalled(format!(
                    "client limit: {} of {rows} rows",
                    seen.load(Relaxed)
                )));
            }
        }
        let dt = start.elapsed();
        for t in &tasks {
            t.abort();
        }
        let got = seen.load(Relaxed);
        if got != rows {
            return Err(BenchError::Setup(format!(
                "client limit: read {got} rows, expected {rows}"
            )));
        }
        Ok(ClientRun {
            rows_per_s: rows as f64 / dt.as_secs_f64(),
            blocks: blocks.load(Relaxed),
        })
    }

    /// In a process of its own (`bin bench-client …`, the harness binary), as the bridge runs: a client in
    /// the stand-in's process would hand requests and replies over inside one runtime, which no deployment
    /// does. Timed as the bridge's child run is, from spawning the process to its answer (the JSON line it
    /// prints when the last row is read), so both pay their start-up: connecting, subscribing, the DSN.
    pub async fn run_in(&self, bin: &std::path::Path) -> Result<ClientRun, BenchError> {
        use tokio::io::AsyncBufReadExt as _;
        let start = Instant::now();
        let mut child = tokio::process::Command::new(bin)
            .args(["bench-client", "--addr", &self.addr, "--topic", &self.topic])
            .args(["--consumers", &self.consumers.to_string()])
            .args(["--rows", &self.rows.to_string()])
            .args(["--deadline-secs", &self.deadline.as_secs().to_string()])
            .args(self.raw.then_some("--raw"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("{}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        let answered = tokio::time::timeout(
            self.deadline + Duration::from_secs(10),
            reader.read_line(&mut line),
        )
        .await
        .map_err(|_| BenchError::Stalled(format!("client limit ({}): no answer", bin.display())))?;
        let dt = start.elapsed();
        answered.map_err(|e| BenchError::Setup(format!("{}: {e}", bin.display())))?;
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .map_err(|_| BenchError::Stalled(format!("client limit ({}): did not exit", bin.display())))?
            .map_err(|e| BenchError::Setup(format!("{}: {e}", bin.display())))?;
        if !status.success() {
            return Err(BenchError::Setup(format!(
                "client limit ({} bench-client): {status}",
                bin.display()
            )));
        }
        let run: ClientRun = serde_json::from_str(&line)
            .map_err(|e| BenchError::Setup(format!("client limit: {e} in {line:?}")))?;
        Ok(ClientRun {
            rows_per_s: self.rows as f64 / dt.as_secs_f64(),
            ..run
        })
    }
}

/// Whether the fleet's bridge, given these extra source parameters, fetches whole messages (`fetch.raw`),
/// so that the client limit fetches the same way.
pub fn fetches_raw(source_params: &str) -> bool {
    let dsn = format!("tmq+ws://127.0.0.1:6041/t?group.id=g&{source_params}");
    tmq2mqtt::SourceDsn::parse(dsn.trim_end_matches('&')).is_ok_and(|d| d.fetch_raw)
}

/// Loads, measures (bridge, then client limit) and unloads one shape; `consumers`: the bridge's
/// `consumers=` (`None`: automatic) and the client limit's count. From `opts`: the backlog's size
/// (`fleet_rows`), the binaries and the deadline.
pub async fn measure(
    w: &BenchWorld,
    opts: &BenchOptions,
    shape: Shape,
    consumers: Option<usize>,
    progress: &impl Fn(&str),
) -> Result<FleetRow, BenchError> {
    let deadline = opts.deadline;
    let rows = backlog_rows(shape, opts.fleet_rows);
    progress(&format!("fleet {}: loading {rows} rows", shape.name()));
    let topic = load(w, shape, rows)?;
    let end = drain::end_positions_of(w, &topic)?;
    let (consumers, param) = match consumers {
        Some(n) => (n, format!("&consumers={n}")),
        None => (tmq2mqtt::source::default_consumers(end.len()), String::new()),
    };
    let group = format!("bench-{topic}");
    let mut from = w.tmq_dsn_for(&topic, &group, "earliest") + &param;
    if !opts.fleet_source_params.is_empty() {
        from = format!("{from}&{}", opts.fleet_source_params);
    }
    let to = w.mqtt_dsn(1, &group, &format!("bench/{topic}/{{table}}"), "");
    progress(&format!("fleet {topic}: bridge"));
    let (rows_per_s, peak_rss_kb, rewinds) = match opts.bridge_bin.as_deref() {
        Some(bin) => {
            let c = drain::child_with(w, bin, &from, &to, &group, &topic, &end, rows, deadline).await?;
            (c.rows_per_s, Some(c.peak_rss_kb), None)
        }
        None => {
            let (rps, summary) = drain::run_in_process(&from, &to, &end, rows, &topic, deadline).await?;
            (rps, None, Some(summary.tmq_rewinds))
        }
    };
    progress(&format!("fleet {topic}: client limit ({consumers} consumers)"));
    let limit = ClientLimit {
        addr: w.td.addr().to_string(),
        topic: topic.clone(),
        consumers,
        rows,
        deadline,
        raw: fetches_raw(&opts.fleet_source_params),
    };
    let client = match opts.client_bin.as_deref() {
        Some(bin) => limit.run_in(bin).await?,
        None => limit.run().await?,
    };
    unload(w, &topic).await?;
    progress(&format!("fleet {topic}: publisher limit"));
    // Never fewer messages than the 8-table limit's quick run sends: a short run is mostly its ramp.
    let messages = rows.max(opts.limit_messages.min(PUBLISHER_MIN_MESSAGES));
    let publisher = publisher_limit(w, shape, messages, opts.deadline).await?;
    let per_block = |rps: f64| 1e6 * rows as f64 / rps / client.blocks.max(1) as f64;
    Ok(FleetRow {
        tables: shape.tables,
        rows_per_table: shape.rows_per_table,
        single: shape.single,
        rows,
        blocks: client.blocks,
        rows_per_block: rows as f64 / client.blocks.max(1) as f64,
        rows_per_s,
        us_per_block: per_block(rows_per_s),
        peak_rss_kb,
        consumers,
        client_rows_per_s: client.rows_per_s,
        client_us_per_block: per_block(client.rows_per_s),
        ratio: rows_per_s / client.rows_per_s,
        publisher_rows_per_s: publisher,
        ratio_to_bound: rows_per_s / client.rows_per_s.min(publisher),
        rewinds,
    })
}

/// The publisher limit sends at least this many messages (fewer only when the bench's own limit does).
const PUBLISHER_MIN_MESSAGES: u64 = 200_000;

/// The bare publisher's QoS 1 rows/s for a shape: `rows` messages with the bridge's payloads of the bench's
/// meters (the fleet's columns), one topic per table.
async fn publisher_limit(
    w: &BenchWorld,
    shape: Shape,
    rows: u64,
    deadline: Duration,
) -> Result<f64, BenchError> {
    let payloads = world::payloads(rows as i64);
    let broker = w.broker.v4_addr().expect("v4 listener");
    limit::publish_rate(broker, 1, &payloads, shape.tables, rows, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(sql: &str) -> usize {
        sql.matches(", 0.31)").count()
    }

    #[test]
    fn big_fleets_write_one_round_in_statements_of_the_batch() {
        let shape = Shape {
            tables: 12_000,
            rows_per_table: 2,
            single: false,
        };
        let rows = backlog_rows(shape, 10_000);
        assert_eq!(rows, 24_000);
        let stmts: Vec<String> = backlog_sql("f", shape, rows).collect();
        assert_eq!(stmts.iter().map(|s| rows_of(s)).sum::<usize>(), 24_000);
        assert!(stmts.iter().all(|s| rows_of(s) <= BATCH_ROWS as usize));
        assert_eq!(stmts[0].matches(" using ").count(), 2500);
        assert!(stmts.last().unwrap().contains("f.d11999 using"));
    }

    #[test]
    fn small_fleets_write_several_rounds_per_statement() {
        let shape = Shape {
            tables: 10,
            rows_per_table: 1,
            single: false,
        };
        let rows = backlog_rows(shape, 12_345);
        assert_eq!(rows, 12_350);
        let stmts: Vec<String> = backlog_sql("f", shape, rows).collect();
        assert_eq!(stmts.iter().map(|s| rows_of(s)).sum::<usize>(), 12_350);
        assert_eq!(stmts.len(), 3, "5000-row statements");
        assert_eq!(stmts[0].matches(" using ").count(), 10);
    }

    #[test]
    fn a_single_row_shape_writes_every_row_in_its_own_statement_round_by_round() {
        let shape = Shape {
            tables: 3,
            rows_per_table: 2,
            single: true,
        };
        let rows = backlog_rows(shape, 12);
        let stmts: Vec<String> = backlog_sql("f", shape, rows).collect();
        assert_eq!(stmts.len(), 12);
        assert!(stmts.iter().all(|s| rows_of(s) == 1));
        let tables: Vec<&str> = stmts
            .iter()
            .map(|s| s.split_whitespace().nth(2).unwrap_or(""))
            .collect();
        assert_eq!(
            tables,
            ["f.d0", "f.d0", "f.d1", "f.d1", "f.d2", "f.d2"].repeat(2),
            "{stmts:?}"
        );
        assert_eq!(shape.name(), "fleet_3_2_single");
    }
}
