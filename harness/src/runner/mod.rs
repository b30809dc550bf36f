//! The runner: brings up a scenario's world on free loopback ports, starts recorders, proxies and bridges,
//! writes the data, fires the fault timeline, waits for quiescence (or the deadline), stops everything and
//! hands what it saw to the verdict.

pub mod bridges;
pub mod expected;
pub mod needs;
pub mod sql;
pub mod world;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simulator::meters::{Chaos, Fleet, FleetConfig, StopAfter};

use crate::proxy::{Proxy, ProxyFault};
use crate::recorder::{now_us, wait_quiescent, Activity, Delivered, Ending, Login, Recorder};
use crate::report::{replay_command, Outcome};
use crate::scenario::dsn::{query_params, TargetInfo};
use crate::scenario::{self, BridgeMode, FaultAction, FaultDef, MqttVersion, Scenario, Trigger};
use crate::verdict::{self, BridgeOutcome, ExpectedRow, Inputs};
use bridges::RunningBridge;
use expected::TopicShape;
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
    let (verdict, delivered, error) = match run_inner(s, seed, &replay, opts).await {
        Ok((v, d)) => (Some(v), d, None),
        Err(e) => (None, Vec::new(), Some(e)),
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
        trace: None,
    }
}

fn version_of(to: &str) -> MqttVersion {
    match TargetInfo::from_dsn(to).map(|t| t.version) {
        Ok(v) if v == "5.0" || v == "5" => MqttVersion::V5,
        _ => MqttVersion::V311,
    }
}

fn proxy_fault(f: &FaultDef) -> Option<ProxyFault> {
    Some(match f.action {
        FaultAction::Cut => ProxyFault::Cut,
        FaultAction::CutAfterPublish => ProxyFault::CutAfterPublish,
        FaultAction::DropAcks => ProxyFault::DropAcks(f.count.unwrap_or(1)),
        FaultAction::DelayAcks => ProxyFault::DelayAcks {
            n: f.count.unwrap_or(1),
            delay: f.duration.unwrap_or(Duration::from_millis(100)),
        },
        FaultAction::Throttle => ProxyFault::Throttle {
            bytes_per_s: f.bytes_per_s.unwrap_or(10_000),
            duration: f.duration.unwrap_or(Duration::from_secs(1)),
        },
        _ => return None,
    })
}

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
    ledger: Arc<parking_lot::Mutex<simulator::meters::WriteLog>>,
    task: tokio::task::JoinHandle<Result<simulator::meters::FleetReport, simulator::meters::FleetError>>,
    stamps: Arc<parking_lot::Mutex<HashMap<u64, u64>>>,
    stamper: tokio::task::JoinHandle<()>,
}

async fn run_inner(
    s: &Scenario,
    seed: u64,
    replay: &str,
    opts: &RunOptions,
) -> Result<(verdict::Verdict, Vec<Delivered>), String> {
    let started = Instant::now();
    let td = Tdengine::start(s).await.map_err(|e| e.to_string())?;
    let mut broker = Broker::start(s).await.map_err(|e| e.to_string())?;
    let sql = sql::Sql::connect(&td.sql_dsn())
        .await
        .map_err(|e| e.to_string())?;

    // Schema, literal data, topics.
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
    let literal = d.meters == 0;
    let mut before: HashMap<String, Vec<ExpectedRow>> = HashMap::new();
    if literal {
        for shape in &shapes {
            if let Some(q) = expected::select_for(shape) {
                let rows = sql.rows(&q).await.map_err(|e| e.to_string())?;
                before.insert(shape.name.clone(), expected::from_select(shape, rows));
            }
        }
    }

    // Recorders first, so nothing published is missed.
    let activity = Activity::default();
    let login = s.world.broker_auth.as_ref().map(|c| Login {
        user: c.user.clone(),
        password: c.password.clone(),
    });
    let mut recorders = Vec::new();
    for sub in &s.subscribers {
        let addr = broker.addr(sub.version);
        let rec = Recorder::start(
            addr,
            sub,
            &format!("rec-{}-{seed}", sub.name),
            login.as_ref(),
            activity.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        recorders.push(rec);
    }

    // Proxies and bridges.
    let mut slots = Vec::new();
    for b in &s.bridges {
        let upstream = broker.addr(version_of(&b.to));
        let proxy = if b.proxy {
            let p = Proxy::start(upstream)
                .await
                .map_err(|e| format!("proxy for {}: {e}", b.name))?;
            for f in &s.faults {
                let target = f.bridge.as_deref().unwrap_or(&s.bridges[0].name);
                if let (Trigger::Published(n), Some(pf), true) = (&f.at, proxy_fault(f), target == b.name) {
                    p.arm_at_publish(*n, pf);
                }
            }
            Some(p)
        } else {
            None
        };
        let broker_hp = proxy.as_ref().map(|p| p.addr()).unwrap_or(upstream).to_string();
        slots.push(BridgeSlot {
            name: b.name.clone(),
            from: b.from.replace("{tdengine}", &td.host_port()),
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
    wait_subscribed(&td, &mut slots, started, s.deadline).await?;

    // Data after the bridges subscribed.
    for stmt in &d.sql_after_start {
        sql.exec(stmt).await.map_err(|e| e.to_string())?;
    }
    let fleet = if d.meters > 0 {
        Some(start_fleet(s, seed, &td)?)
    } else {
        None
    };

    // Fault timeline, until every fault fired and the data is written (or the deadline).
    let mut fired = vec![false; s.faults.len()];
    for (i, f) in s.faults.iter().enumerate() {
        if matches!(f.at, Trigger::Published(_)) && proxy_fault(f).is_some() {
            fired[i] = true; // armed in the proxy
        }
    }
    let deadline = started + s.deadline;
    let mut fault_log = Vec::new();
    loop {
        let elapsed = started.elapsed();
        for slot in slots.iter_mut().filter(|x| x.running.is_none()) {
            if slot.start_after.is_some_and(|d| elapsed >= d) {
                slot.start()?;
            }
        }
        let written = fleet
            .as_ref()
            .map(|f| f.ledger.lock().rows_written())
            .unwrap_or(0);
        let delivered = recorders.first().map(|r| r.count() as u64).unwrap_or(0);
        for (i, f) in s.faults.iter().enumerate() {
            if fired[i] {
                continue;
            }
            let slot_idx = f
                .bridge
                .as_ref()
                .and_then(|n| slots.iter().position(|x| &x.name == n))
                .unwrap_or(0);
            let due = match f.at {
                Trigger::Published(n) => slots[slot_idx].proxy.as_ref().is_some_and(|p| p.published() >= n),
                Trigger::Written(n) => written >= n,
                Trigger::Delivered(n) => delivered >= n,
                Trigger::After(d) => elapsed >= d,
            };
            if due {
                fired[i] = true;
                fault_log.push(format!("{:?} at {:?}", f.action, elapsed));
                fire(f, &mut slots[slot_idx], &mut broker, &td, &sql).await?;
            }
        }
        let data_done = fleet.as_ref().is_none_or(|f| f.task.is_finished());
        // A bridge that starts late is part of the timeline too.
        let all_started = slots
            .iter()
            .all(|x| x.running.is_some() || x.stopped.is_some() || x.start_after.is_none());
        if (data_done && all_started && fired.iter().all(|f| *f)) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unfired: Vec<String> = s
        .faults
        .iter()
        .zip(&fired)
        .filter(|(_, f)| !**f)
        .map(|(f, _)| format!("{:?} at {:?}", f.action, f.at))
        .collect();

    // Expected rows, now that all data is written.
    let mut expected_rows = Vec::new();
    if let Some(f) = fleet {
        f.task
            .await
            .map_err(|e| format!("fleet task: {e}"))?
            .map_err(|e| format!("meter fleet: {e}"))?;
        f.stamper.abort();
        let stamps = f.stamps.lock().clone();
        let ledger = f.ledger.lock();
        for shape in &shapes {
            expected_rows.extend(expected::from_ledger(shape, ledger.entries(), &stamps));
        }
    } else {
        for shape in &shapes {
            let Some(q) = expected::select_for(shape) else {
                continue;
            };
            let rows = sql.rows(&q).await.map_err(|e| e.to_string())?;
            let mut after = expected::from_select(shape, rows);
            if reset_is_latest(s, &shape.name) {
                let old: Vec<String> = before
                    .get(&shape.name)
                    .map(|b| {
                        b.iter()
                            .map(|r| crate::verdict::payload::row_key(&r.data))
                            .collect()
                    })
                    .unwrap_or_default();
                after.retain(|r| !old.contains(&crate::verdict::payload::row_key(&r.data)));
            }
            expected_rows.extend(after);
        }
    }
    if let Some(standin) = td.standin() {
        for r in &mut expected_rows {
            r.vgroup_id = standin
                .store()
                .table(&r.database, &r.table)
                .ok()
                .map(|t| t.vgroup);
        }
    }

    // Wait for the stream to settle.
    let per_sub: Vec<usize> = match s.expect.rows {
        Some(n) => vec![n as usize; s.subscribers.len()],
        None => expected_counts(s, &expected_rows),
    }
    .into_iter()
    .zip(&s.subscribers)
    // A subscriber that never acknowledges is not waited for: its broker window stays full.
    .map(|(n, sub)| {
        if sub.withhold_acks {
            0
        } else {
            s.expect.wait_for(&sub.name, n)
        }
    })
    .collect();
    let ending = {
        let recs = &recorders;
        let slots_ref = &mut slots;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut done = || {
            let errors_done = slots_ref
                .iter_mut()
                .filter(|x| x.expect_error)
                .all(|x| x.running.as_mut().is_some_and(|r| r.exited()));
            errors_done && recs.iter().zip(&per_sub).all(|(r, n)| r.count() >= *n)
        };
        if left.is_zero() {
            Ending::Deadline
        } else {
            wait_quiescent(&activity, &mut done, s.quiet, left).await
        }
    };

    // Stop and collect.
    let mut outcomes = Vec::new();
    let mut wire = Vec::new();
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
                }
            }),
        });
        if let Some(p) = slot.proxy {
            let records = p.records();
            if let Some(dir) = &opts.wire_dir {
                let path = dir.join(format!("{}-{}.wire.ndjson", s.name, slot.name));
                let text: String = records
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
                    .collect();
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            wire.push((slot.name.clone(), records));
            p.shutdown().await;
        }
    }
    let delivered: Vec<Delivered> = recorders.into_iter().flat_map(|r| r.stop()).collect();
    let mut v = verdict::judge(&Inputs {
        scenario: s,
        seed,
        expected: &expected_rows,
        delivered: &delivered,
        wire: &wire,
        bridges: &outcomes,
        ending,
        replay: replay.to_string(),
    });
    if !unfired.is_empty() {
        v.failures.push(format!(
            "fault(s) never fired (trigger not reached before the deadline): {}",
            unfired.join(", ")
        ));
        v.passed = false;
    }
    if s.expect.nothing_committed {
        let groups: Vec<String> = s
            .bridges
            .iter()
            .filter_map(|b| query_params(&b.from).get("group.id").cloned())
            .collect();
        let rows = sql.rows("show subscriptions").await.map_err(|e| e.to_string())?;
        let committed: Vec<String> = rows
            .iter()
            .filter(|r| {
                r.get("consumer_group")
                    .and_then(|g| g.as_str())
                    .is_some_and(|g| groups.iter().any(|x| x == g))
            })
            .filter_map(|r| r.get("offset").and_then(|o| o.as_str()))
            .filter(|o| o.starts_with("log:"))
            .map(str::to_string)
            .collect();
        if !committed.is_empty() {
            v.failures.push(format!(
                "offsets were committed although nothing may be: {}",
                committed.join(", ")
            ));
            v.passed = false;
        }
    }
    if !fault_log.is_empty() {
        v.deviations
            .push(format!("faults fired: {}", fault_log.join(", ")));
    }
    drop(sql);
    broker.shutdown().await;
    td.shutdown().await;
    Ok((v, delivered))
}

fn reset_is_latest(s: &Scenario, topic: &str) -> bool {
    s.bridges.iter().any(|b| {
        crate::scenario::dsn::path(&b.from).split(',').any(|t| t == topic)
            && query_params(&b.from)
                .get("auto.offset.reset")
                .or(query_params(&b.from).get("auto_offset_reset"))
                .is_none_or(|v| v == "latest")
    })
}

/// How many deliveries each subscriber waits for (rows whose topic matches its filter).
fn expected_counts(s: &Scenario, rows: &[ExpectedRow]) -> Vec<usize> {
    let target = s.bridges.first().and_then(|b| TargetInfo::from_dsn(&b.to).ok());
    s.subscribers
        .iter()
        .map(|sub| {
            rows.iter()
                .filter(|r| {
                    let Some(t) = &target else { return false };
                    let vars = crate::verdict::topic::Vars {
                        database: Some(&r.database),
                        tmq_topic: Some(&r.tmq_topic),
                        vgroup_id: r.vgroup_id,
                        stable: None,
                        table: Some(&r.table),
                    };
                    match crate::verdict::topic::render(&t.topic, &vars) {
                        Ok(topic) => rumqttc::matches(&topic, &sub.filter),
                        Err(crate::verdict::topic::Unrendered::Unknown(_)) => true,
                        Err(crate::verdict::topic::Unrendered::Missing(_)) => false,
                    }
                })
                .count()
        })
        .collect()
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
        for t in crate::scenario::dsn::path(&slot.from).split(',') {
            *want.entry(t.to_string()).or_default() += 1;
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
    let ledger = fleet.write_log();
    let task = tokio::spawn(fleet.run(std::future::pending()));
    // Stamp each ledger row with the time it appeared: the insert → receipt latency's start.
    let stamps = Arc::new(parking_lot::Mutex::new(HashMap::new()));
    let stamper = {
        let ledger = ledger.clone();
        let stamps = stamps.clone();
        tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                {
                    let l = ledger.lock();
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
        ledger,
        task,
        stamps,
        stamper,
    })
}

async fn fire(
    f: &FaultDef,
    slot: &mut BridgeSlot,
    broker: &mut Broker,
    td: &Tdengine,
    sql: &sql::Sql,
) -> Result<(), String> {
    if let Some(pf) = proxy_fault(f) {
        if let Some(p) = &slot.proxy {
            p.fire(pf);
        }
        return Ok(());
    }
    match f.action {
        FaultAction::BrokerRestart => broker.restart().await.map_err(|e| e.to_string()),
        FaultAction::BridgeKill | FaultAction::BridgeKillNoRestart => {
            if let Some(r) = slot.running.as_mut() {
                r.kill9().await;
                if f.action == FaultAction::BridgeKill {
                    r.restart().map_err(|e| e.to_string())?;
                } else {
                    slot.killed_for_good = true;
                }
            }
            Ok(())
        }
        FaultAction::StandinDrop => {
            if let Some(s) = td.standin() {
                s.drop_connections();
            }
            Ok(())
        }
        FaultAction::StandinStall => {
            if let Some(s) = td.standin() {
                s.stall_replies(f.duration.unwrap_or(Duration::from_secs(1)));
            }
            Ok(())
        }
        FaultAction::BridgeStop => {
            if let Some(r) = slot.running.take() {
                slot.stopped = Some(r.stop(Duration::from_secs(15)).await);
            }
            Ok(())
        }
        FaultAction::Sql => {
            for stmt in &f.sql {
                sql.exec(stmt)
                    .await
                    .map_err(|e| format!("fault sql {stmt:?}: {e}"))?;
            }
            Ok(())
        }
        FaultAction::StandinFailCalls => {
            if let Some(s) = td.standin() {
                s.fail_next(f.count.unwrap_or(1), f.code.unwrap_or(0xFFFF) as i32);
            }
            Ok(())
        }
        _ => Ok(()),
    }
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
