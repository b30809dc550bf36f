//! The runner: brings up a scenario's world on free loopback ports, starts recorders, proxies and bridges,
//! writes the data, fires the fault timeline, waits for quiescence (or the deadline, see [`settle`]), stops
//! everything and hands what it saw to the verdict. It never judges: the faults that never fired and the
//! offsets the bridges committed are inputs of [`verdict::judge`] like the deliveries.

pub mod bridges;
pub mod commits;
pub mod expected;
pub mod needs;
mod settle;
pub mod sql;
mod timeline;
pub mod world;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simulator::meters::{Chaos, Fleet, FleetConfig, StopAfter};

use tmq2mqtt::dsn::OffsetReset;

use crate::proxy::Proxy;
use crate::recorder::{now_us, Activity, Delivered, Login, Recorder};
use crate::report::{replay_command, Outcome};
use crate::scenario::{self, BridgeMode, MqttVersion, Scenario};
use crate::verdict::{self, BridgeOutcome, CommittedOffset, ExpectedRow, Inputs};
use crate::wire::WireRecord;
use bridges::RunningBridge;
use expected::TopicShape;
use timeline::{Progress, Timeline};
use world::{Broker, Tdengine};

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Write every bridge's wire records here as NDJSON (`SCENARIO-BRIDGE.wire.ndjson`).
    pub wire_dir: Option<std::path::PathBuf>,
}

/// A run's outcome plus the delivered stream (for snapshots) and what happened over time (for the report).
pub struct RunResult {
    pub outcome: Outcome,
    pub delivered: Vec<Delivered>,
    pub trace: Option<crate::trace::Trace>,
}

/// Loads and runs one scenario file.
pub async fn run_file(path: &Path, opts: &RunOptions) -> RunResult {
    let file = path.display().to_string();
    match scenario::load(path) {
        Ok(s) => run(&s, &file, opts).await,
        Err(e) => RunResult {
            outcome: Outcome {
                scenario: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file: file.clone(),
                seed: opts.seed.unwrap_or(0),
                elapsed_ms: 0,
                error: Some(e.to_string()),
                skipped: None,
                verdict: None,
                replay: replay_command(&file, opts.seed.unwrap_or(0)),
            },
            delivered: Vec::new(),
            trace: None,
        },
    }
}

/// Runs one scenario.
pub async fn run(s: &Scenario, file: &str, opts: &RunOptions) -> RunResult {
    let started = Instant::now();
    let seed = opts.seed.unwrap_or(s.seed);
    let replay = replay_command(file, seed);
    if let Some(skip) = needs::missing(s) {
        return RunResult {
            outcome: Outcome {
                scenario: s.name.clone(),
                file: file.to_string(),
                seed,
                elapsed_ms: 0,
                error: None,
                skipped: Some(skip),
                verdict: None,
                replay,
            },
            delivered: Vec::new(),
            trace: None,
        };
    }
    let (verdict, delivered, trace, error) = match run_inner(s, seed, &replay, opts).await {
        Ok((v, d, t)) => (Some(v), d, Some(t), None),
        Err(e) => (None, Vec::new(), None, Some(e)),
    };
    RunResult {
        outcome: Outcome {
            scenario: s.name.clone(),
            file: file.to_string(),
            seed,
            elapsed_ms: started.elapsed().as_millis() as u64,
            error,
            skipped: None,
            verdict,
            replay,
        },
        delivered,
        trace,
    }
}

/// The broker listener a target DSN speaks to (the one place the bridge's version becomes the world's).
fn version_of(to: &str) -> MqttVersion {
    match tmq2mqtt::TargetDsn::parse(to).map(|t| t.version) {
        Ok(tmq2mqtt::dsn::MqttVersion::V5) => MqttVersion::V5,
        _ => MqttVersion::V311,
    }
}

/// One scenario bridge: its DSNs with the world's addresses, its proxy and its process or task.
struct BridgeSlot {
    name: String,
    from: String,
    to: String,
    mode: BridgeMode,
    proxy: Option<Proxy>,
    running: Option<RunningBridge>,
    start_after: Option<Duration>,
    expect_error: bool,
    /// Killed by the timeline and left dead: its exit status is the scenario's doing.
    killed_for_good: bool,
    /// Stopped by the timeline (`bridge-stop`): the error it stopped with, if any.
    stopped: Option<Option<String>>,
    /// An in-process bridge's counters (kept past a `bridge-stop`).
    stats: Option<Arc<tmq2mqtt::Stats>>,
}

impl BridgeSlot {
    fn start(&mut self) -> Result<(), String> {
        let running = match self.mode {
            BridgeMode::InProcess => RunningBridge::in_process(&self.from, &self.to),
            BridgeMode::Process => RunningBridge::process(&self.from, &self.to),
        }
        .map_err(|e| format!("bridge {}: {e}", self.name))?;
        self.stats = running.stats().cloned();
        self.running = Some(running);
        Ok(())
    }
}

/// Data-phase state shared with the fleet task.
struct FleetRun {
    write_log: Arc<parking_lot::Mutex<simulator::meters::WriteLog>>,
    task: tokio::task::JoinHandle<Result<simulator::meters::FleetReport, simulator::meters::FleetError>>,
    stamps: Arc<parking_lot::Mutex<HashMap<u64, u64>>>,
    stamper: tokio::task::JoinHandle<()>,
}

/// The world a run starts: TDengine, the broker, and the harness's own SQL connection.
struct World {
    td: Tdengine,
    broker: Broker,
    sql: sql::Sql,
}

/// What the schema phase leaves for computing expectations: the topics' shapes, and for literal-SQL
/// scenarios the rows each topic held before the bridges started.
struct Schema {
    shapes: Vec<TopicShape>,
    before: HashMap<String, Vec<ExpectedRow>>,
}

async fn run_inner(
    s: &Scenario,
    seed: u64,
    replay: &str,
    opts: &RunOptions,
) -> Result<(verdict::Verdict, Vec<Delivered>, crate::trace::Trace), String> {
    let started = Instant::now();
    let start_us = now_us();
    let deadline = started + s.deadline;
    let mut world = start_world(s).await?;
    if let Some(td) = world.td.standin() {
        td.tmq().record_served();
    }
    let schema = write_schema(s, &world.sql).await?;
    let activity = Activity::default();
    let recorders = start_recorders(s, seed, &world.broker, &activity).await?;
    let sampler = world.td.standin().map(|st| {
        let groups = s
            .bridges
            .iter()
            .filter_map(|b| b.source().ok().map(|d| d.group_id));
        commits::CommitSampler::start(st.tmq().clone(), groups.collect())
    });
    let mut slots = start_bridges(s, &world).await?;
    wait_subscribed(&world.td, &mut slots, started, s.deadline).await?;
    let fleet = write_data(s, seed, &world).await?;
    let (faults, fault_spans) = drive_faults(
        s,
        &mut slots,
        &mut world,
        fleet.as_ref(),
        &recorders,
        started,
        deadline,
    )
    .await?;
    let expected_rows = expected_rows(s, &world, &schema, fleet).await?;
    let ending = settle::settle(s, &expected_rows, &recorders, &mut slots, &activity, deadline).await;
    let (outcomes, wire, fired) = stop_bridges(s, slots, opts).await?;
    let commit_samples = sampler.map(commits::CommitSampler::stop).unwrap_or_default();
    let delivered: Vec<Delivered> = recorders.into_iter().flat_map(|r| r.stop()).collect();
    let committed = committed_offsets(s, &world.td.sql_dsn()).await?;
    let served = world.td.standin().map(|td| td.tmq().served());
    let v = verdict::judge(&Inputs {
        scenario: s,
        seed,
        expected: &expected_rows,
        delivered: &delivered,
        wire: &wire,
        bridges: &outcomes,
        ending,
        faults: &faults,
        committed: &committed,
        served: served.as_deref(),
        replay: replay.to_string(),
    });
    let wire_traces: Vec<crate::trace::WireTrace> = wire
        .iter()
        .zip(&fired)
        .map(|((bridge, records), w)| crate::trace::WireTrace {
            bridge,
            proxy_started_us: w.0,
            records,
            fired: &w.1,
        })
        .collect();
    let trace = crate::trace::build(&crate::trace::TraceInputs {
        start_us,
        end_us: now_us(),
        expected: &expected_rows,
        delivered: &delivered,
        wire: &wire_traces,
        commits: &commit_samples,
        faults: &fault_spans,
    });
    let World { td, broker, sql } = world;
    drop(sql);
    broker.shutdown().await;
    td.shutdown().await;
    Ok((v, delivered, trace))
}

/// Phase 1: TDengine, the broker and an SQL connection.
async fn start_world(s: &Scenario) -> Result<World, String> {
    let td = Tdengine::start(s).await.map_err(|e| e.to_string())?;
    let broker = Broker::start(s).await.map_err(|e| e.to_string())?;
    let sql = sql::Sql::connect(&td.sql_dsn())
        .await
        .map_err(|e| e.to_string())?;
    Ok(World { td, broker, sql })
}

/// Phase 2: the database and meters schema, the literal SQL and the TMQ topics.
async fn write_schema(s: &Scenario, sql: &sql::Sql) -> Result<Schema, String> {
    let d = &s.data;
    if d.meters > 0 {
        let mut create = format!("create database if not exists {} vgroups {}", d.db, d.vgroups);
        if let Some(r) = d.wal_retention_s {
            create.push_str(&format!(" wal_retention_period {r}"));
        }
        sql.exec(&create).await.map_err(|e| e.to_string())?;
        sql.exec(&simulator::meters::create_stable_sql(&d.db))
            .await
            .map_err(|e| e.to_string())?;
    }
    for stmt in &d.sql {
        sql.exec(stmt).await.map_err(|e| e.to_string())?;
    }
    let mut shapes: Vec<TopicShape> = Vec::new();
    for (i, t) in s.topics.iter().enumerate() {
        sql.exec(&t.sql).await.map_err(|e| e.to_string())?;
        shapes.push(
            expected::parse_topic(&t.sql)
                .ok_or_else(|| format!("topics[{i}].sql: cannot read the topic's shape"))?,
        );
    }
    let mut before = HashMap::new();
    if d.meters == 0 {
        for shape in &shapes {
            if let Some(q) = expected::select_for(shape) {
                let rows = sql.rows(&q).await.map_err(|e| e.to_string())?;
                before.insert(shape.name.clone(), expected::from_select(shape, rows));
            }
        }
    }
    Ok(Schema { shapes, before })
}

/// Phase 3: the recording subscribers, first, so that nothing published is missed.
async fn start_recorders(
    s: &Scenario,
    seed: u64,
    broker: &Broker,
    activity: &Activity,
) -> Result<Vec<Recorder>, String> {
    let login = s.world.broker_auth.as_ref().map(|c| Login {
        user: c.user.clone(),
        password: c.password.clone(),
    });
    let mut recorders = Vec::new();
    for sub in &s.subscribers {
        let rec = Recorder::start(
            broker.addr(sub.version),
            sub,
            &format!("rec-{}-{seed}", sub.name),
            login.as_ref(),
            activity.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        recorders.push(rec);
    }
    Ok(recorders)
}

/// Phase 4: a proxy per bridge that uses one (its packet-count faults armed), then the bridges that start
/// at once.
async fn start_bridges(s: &Scenario, world: &World) -> Result<Vec<BridgeSlot>, String> {
    let mut slots = Vec::new();
    for b in &s.bridges {
        let upstream = world.broker.addr(version_of(&b.to));
        let proxy = if b.proxy {
            let p = Proxy::start(upstream)
                .await
                .map_err(|e| format!("proxy for {}: {e}", b.name))?;
            for (n, fault) in timeline::armed_for(s, &b.name) {
                p.arm_at_publish(n, fault);
            }
            Some(p)
        } else {
            None
        };
        let broker_hp = proxy.as_ref().map(|p| p.addr()).unwrap_or(upstream).to_string();
        slots.push(BridgeSlot {
            name: b.name.clone(),
            from: b.from.replace("{tdengine}", &world.td.host_port()),
            to: b.to.replace("{broker}", &broker_hp),
            mode: b.mode,
            proxy,
            running: None,
            start_after: b.start_after,
            expect_error: b.expect_error.is_some(),
            killed_for_good: false,
            stopped: None,
            stats: None,
        });
    }
    for slot in slots.iter_mut().filter(|s| s.start_after.is_none()) {
        slot.start()?;
    }
    Ok(slots)
}

/// Phase 5: the data written after the bridges subscribed (literal SQL, then the fleet in the background).
async fn write_data(s: &Scenario, seed: u64, world: &World) -> Result<Option<FleetRun>, String> {
    for stmt in &s.data.sql_after_start {
        world.sql.exec(stmt).await.map_err(|e| e.to_string())?;
    }
    if s.data.meters > 0 {
        start_fleet(s, seed, &world.td).map(Some)
    } else {
        Ok(None)
    }
}

/// Phase 6: the fault timeline, until every fault fired and the data is written (or the deadline).
async fn drive_faults(
    s: &Scenario,
    slots: &mut [BridgeSlot],
    world: &mut World,
    fleet: Option<&FleetRun>,
    recorders: &[Recorder],
    started: Instant,
    deadline: Instant,
) -> Result<(verdict::FaultLog, Vec<crate::trace::Span>), String> {
    let mut timeline = Timeline::new(s);
    let progress = Progress {
        fleet,
        recorders,
        started,
    };
    loop {
        timeline
            .step(&progress, slots, &mut world.broker, &world.td, &world.sql)
            .await?;
        let data_done = fleet.is_none_or(|f| f.task.is_finished());
        // A bridge that starts late is part of the timeline too.
        let all_started = slots
            .iter()
            .all(|x| x.running.is_some() || x.stopped.is_some() || x.start_after.is_none());
        if (data_done && all_started && timeline.done()) || Instant::now() >= deadline {
            return Ok(timeline.into_log());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Phase 7: the rows every subscriber must see, now that all data is written.
async fn expected_rows(
    s: &Scenario,
    world: &World,
    schema: &Schema,
    fleet: Option<FleetRun>,
) -> Result<Vec<ExpectedRow>, String> {
    let mut rows = match fleet {
        Some(f) => expected_from_fleet(f, &schema.shapes).await?,
        None => expected_from_select(s, &world.sql, schema).await?,
    };
    if let Some(standin) = world.td.standin() {
        for r in &mut rows {
            r.vgroup_id = standin
                .store()
                .table(&r.database, &r.table)
                .ok()
                .map(|t| t.vgroup);
        }
    }
    Ok(rows)
}

async fn expected_from_fleet(f: FleetRun, shapes: &[TopicShape]) -> Result<Vec<ExpectedRow>, String> {
    f.task
        .await
        .map_err(|e| format!("fleet task: {e}"))?
        .map_err(|e| format!("meter fleet: {e}"))?;
    f.stamper.abort();
    let stamps = f.stamps.lock().clone();
    let write_log = f.write_log.lock();
    Ok(shapes
        .iter()
        .flat_map(|shape| expected::from_write_log(shape, write_log.entries(), &stamps))
        .collect())
}

/// Literal-SQL scenarios: each topic's SELECT now, minus what it held before the bridges started when the
/// bridges start at `latest`.
async fn expected_from_select(
    s: &Scenario,
    sql: &sql::Sql,
    schema: &Schema,
) -> Result<Vec<ExpectedRow>, String> {
    let mut rows = Vec::new();
    for shape in &schema.shapes {
        let Some(q) = expected::select_for(shape) else {
            continue;
        };
        let mut after = expected::from_select(shape, sql.rows(&q).await.map_err(|e| e.to_string())?);
        if reset_is_latest(s, &shape.name) {
            let old: Vec<String> = schema
                .before
                .get(&shape.name)
                .map(|b| b.iter().map(|r| verdict::payload::row_key(&r.data)).collect())
                .unwrap_or_default();
            after.retain(|r| !old.contains(&verdict::payload::row_key(&r.data)));
        }
        rows.extend(after);
    }
    Ok(rows)
}

/// Each proxy's start (µs since the Unix epoch) and the faults it fired, in the order of the wire records.
type ProxyFaults = Vec<(u64, Vec<crate::proxy::Fired>)>;

/// Phase 9: stops every bridge and proxy; returns how each bridge ended, what each proxy recorded and the
/// faults each fired.
async fn stop_bridges(
    s: &Scenario,
    slots: Vec<BridgeSlot>,
    opts: &RunOptions,
) -> Result<(Vec<BridgeOutcome>, Vec<(String, Vec<WireRecord>)>, ProxyFaults), String> {
    let mut outcomes = Vec::new();
    let mut wire = Vec::new();
    let mut fired = Vec::new();
    for slot in slots {
        let error = match slot.running {
            Some(_) if slot.killed_for_good => None,
            Some(r) => r.stop(Duration::from_secs(15)).await,
            None => slot.stopped.unwrap_or_else(|| Some("never started".into())),
        };
        outcomes.push(BridgeOutcome {
            name: slot.name.clone(),
            error,
            counters: slot.stats.map(|st| {
                let sum = st.snapshot();
                verdict::BridgeCounters {
                    dead_lettered: sum.dead_lettered,
                    wal_gap_versions: sum.wal_gap_versions.values().sum(),
                    skipped: sum.skipped,
                }
            }),
        });
        if let Some(p) = slot.proxy {
            let records = p.records();
            if let Some(dir) = &opts.wire_dir {
                write_wire(
                    &dir.join(format!("{}-{}.wire.ndjson", s.name, slot.name)),
                    &records,
                )?;
            }
            wire.push((slot.name.clone(), records));
            fired.push((p.started_us(), p.fired()));
            p.shutdown().await;
        }
    }
    Ok((outcomes, wire, fired))
}

fn write_wire(path: &Path, records: &[WireRecord]) -> Result<(), String> {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Phase 10: the offsets the scenario's consumer groups committed, as TDengine reports them. Over a fresh
/// connection: a fault (`standin-drop`) may have cut the one the setup used.
async fn committed_offsets(s: &Scenario, dsn: &str) -> Result<Vec<CommittedOffset>, String> {
    let sql = sql::Sql::connect(dsn).await.map_err(|e| e.to_string())?;
    let groups: Vec<String> = s
        .bridges
        .iter()
        .filter_map(|b| b.source().ok().map(|d| d.group_id))
        .collect();
    let rows = sql.rows("show subscriptions").await.map_err(|e| e.to_string())?;
    let text = |r: &serde_json::Map<String, serde_json::Value>, k: &str| {
        r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
    };
    Ok(rows
        .iter()
        .map(|r| CommittedOffset {
            group: text(r, "consumer_group"),
            topic: text(r, "topic_name"),
            vgroup_id: r.get("vgroup_id").and_then(|v| v.as_i64()).unwrap_or(-1) as i32,
            offset: text(r, "offset"),
        })
        .filter(|c| groups.contains(&c.group))
        .collect())
}

/// Whether the bridges consuming `topic` start at `latest` (TDengine's default) when nothing is committed.
fn reset_is_latest(s: &Scenario, topic: &str) -> bool {
    s.bridges.iter().filter_map(|b| b.source().ok()).any(|d| {
        d.topics.iter().any(|t| t == topic) && d.offset_reset.is_none_or(|r| r == OffsetReset::Latest)
    })
}

/// Waits until the stand-in shows the started bridges subscribed (bridges expected to fail are skipped).
async fn wait_subscribed(
    td: &Tdengine,
    slots: &mut [BridgeSlot],
    started: Instant,
    deadline: Duration,
) -> Result<(), String> {
    let Some(standin) = td.standin() else {
        return Ok(());
    };
    let mut want: HashMap<String, usize> = HashMap::new();
    for slot in slots.iter().filter(|x| x.running.is_some() && !x.expect_error) {
        let topics = tmq2mqtt::SourceDsn::parse(&slot.from)
            .map(|d| d.topics)
            .unwrap_or_default();
        for t in topics {
            *want.entry(t).or_default() += 1;
        }
    }
    let until = started + deadline.min(Duration::from_secs(30));
    loop {
        if want.iter().all(|(t, n)| standin.tmq().subscribers(t) >= *n) {
            return Ok(());
        }
        for slot in slots.iter_mut().filter(|x| !x.expect_error) {
            if let Some(r) = slot.running.as_mut() {
                if r.exited() {
                    let r = slot.running.take().expect("present");
                    let why = r.stop(Duration::from_secs(1)).await.unwrap_or_default();
                    return Err(format!("bridge {} exited before subscribing: {why}", slot.name));
                }
            }
        }
        if Instant::now() >= until {
            return Err(format!("bridges did not subscribe in time (wanted {want:?})"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start_fleet(s: &Scenario, seed: u64, td: &Tdengine) -> Result<FleetRun, String> {
    let d = &s.data;
    let config = FleetConfig {
        dsn: td.sql_dsn(),
        db: d.db.clone(),
        vgroups: d.vgroups,
        meters: d.meters,
        stop: StopAfter::Rows(d.rows),
        rate: d.rate.map(|r| r as f64),
        batch: d.batch as usize,
        seed,
        create: false,
        chaos: Chaos {
            out_of_order: d.chaos.out_of_order,
            updates: d.chaos.repeated_ts,
            nulls: d.chaos.nulls,
            new_meters: d.chaos.new_meters,
            add_column: d.chaos.add_column,
            drop_meter: d.chaos.drop_meter,
            delete_range: d.chaos.delete_range,
            after_rows: None,
        },
        keep_entries: true,
        progress: false,
        retry_for: Duration::from_secs(30),
        ..FleetConfig::default()
    };
    let fleet = Fleet::new(config).map_err(|e| format!("meter fleet: {e}"))?;
    let write_log = fleet.write_log();
    let task = tokio::spawn(fleet.run(std::future::pending()));
    // Stamp each written row with the time it appeared: the insert → receipt latency's start.
    let stamps = Arc::new(parking_lot::Mutex::new(HashMap::new()));
    let stamper = {
        let write_log = write_log.clone();
        let stamps = stamps.clone();
        tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                {
                    let l = write_log.lock();
                    let entries = l.entries();
                    let now = now_us();
                    let mut st = stamps.lock();
                    for e in &entries[seen.min(entries.len())..] {
                        st.insert(e.seq, now);
                    }
                    seen = entries.len();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    Ok(FleetRun {
        write_log,
        task,
        stamps,
        stamper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_the_default_reset() {
        let text = r#"
[[bridges]]
name = "b"
from = "tmq+ws://root:taosdata@{tdengine}/t?group.id=g"
to = "mqtt://{broker}?topic=m&qos=1&version=5.0&client_id=b"
[[subscribers]]
name = "s"
filter = "m"
"#;
        let s = scenario::parse(Path::new("x.toml"), text).unwrap();
        assert!(reset_is_latest(&s, "t"));
        assert_eq!(version_of(&s.bridges[0].to), MqttVersion::V5);
        let s2 = scenario::parse(
            Path::new("x.toml"),
            &text.replace("group.id=g", "group.id=g&auto.offset.reset=earliest"),
        )
        .unwrap();
        assert!(!reset_is_latest(&s2, "t"));
    }
}
