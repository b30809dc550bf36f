//! The fleet's script, sans-IO: from a configuration and a seed, the exact sequence of SQL steps
//! (create, insert batches, chaos events) the fleet executes. Pure and lazy, so the same seed and
//! start time always give the same statements, and duration-limited runs execute a prefix of it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::reading::{create_stable_sql, draw_tags, Profile, Reading, Tags, ADDED_COLUMN};
use super::{Chaos, FleetConfig};

/// How many recent timestamps per meter are candidates for an update (late correction).
const RECENT: usize = 32;

/// One statement of the script.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    CreateDatabase {
        vgroups: u32,
    },
    CreateStable,
    CreateTable {
        table: String,
        tags: Tags,
    },
    Insert {
        rows: Vec<RowWrite>,
    },
    AddColumn {
        name: String,
        ty: String,
    },
    /// Deletes rows of `table` with `from_ms <= ts <= to_ms`.
    DeleteRange {
        table: String,
        from_ms: i64,
        to_ms: i64,
    },
    DropTable {
        table: String,
    },
}

/// One row of an insert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowWrite {
    pub table: String,
    pub ts: i64,
    #[serde(flatten)]
    pub reading: Reading,
    pub kind: RowKind,
}

/// Why a row is in the batch it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// The meter's next reading, in timestamp order.
    InOrder,
    /// A reading held back for some batches (out-of-order chaos).
    Late,
    /// A new value for a timestamp written in an earlier batch (repeated-timestamp chaos).
    Update,
}

impl Step {
    /// Number of rows this step writes.
    pub fn rows(&self) -> usize {
        match self {
            Step::Insert { rows } => rows.len(),
            _ => 0,
        }
    }

    /// The SQL statement, tables qualified with `db`.
    pub fn sql(&self, db: &str) -> String {
        match self {
            Step::CreateDatabase { vgroups } => {
                format!("CREATE DATABASE IF NOT EXISTS {db} VGROUPS {vgroups} PRECISION 'ms'")
            }
            Step::CreateStable => create_stable_sql(db),
            Step::CreateTable { table, tags } => format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table} USING {db}.meters TAGS ({}, '{}')",
                tags.groupid, tags.location
            ),
            Step::Insert { rows } => insert_sql(db, rows),
            Step::AddColumn { name, ty } => format!("ALTER STABLE {db}.meters ADD COLUMN {name} {ty}"),
            Step::DeleteRange {
                table,
                from_ms,
                to_ms,
            } => format!("DELETE FROM {db}.{table} WHERE ts >= {from_ms} AND ts <= {to_ms}"),
            Step::DropTable { table } => format!("DROP TABLE IF EXISTS {db}.{table}"),
        }
    }
}

/// `INSERT INTO db.d0 VALUES (…) (…) db.d1 VALUES (…)`: rows grouped per table in order of first
/// appearance, every column given in schema order (no column list needed).
fn insert_sql(db: &str, rows: &[RowWrite]) -> String {
    let mut tables: Vec<(&str, Vec<&RowWrite>)> = Vec::new();
    for row in rows {
        match tables.iter_mut().find(|(t, _)| *t == row.table) {
            Some((_, list)) => list.push(row),
            None => tables.push((&row.table, vec![row])),
        }
    }
    let mut sql = String::with_capacity(32 + rows.len() * 48);
    sql.push_str("INSERT INTO");
    for (table, list) in tables {
        let _ = write!(sql, " {db}.{table} VALUES");
        for row in list {
            let r = &row.reading;
            let _ = write!(
                sql,
                " ({},{},{},{}",
                row.ts,
                opt(r.current),
                opt(r.voltage),
                opt(r.phase)
            );
            if let Some(power) = r.power {
                let _ = write!(sql, ",{}", opt(power));
            }
            sql.push(')');
        }
    }
    sql
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "NULL".to_string(), |v| v.to_string())
}

struct Meter {
    table: String,
    profile: Profile,
    /// Fixed phase of the meter inside the reporting interval, so meters do not share timestamps.
    offset_ms: i64,
    alive: bool,
    /// Timestamps written in earlier batches, newest last: candidates for updates.
    recent: VecDeque<i64>,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    AddColumn,
    NewMeters,
    DeleteRange,
    DropMeter,
}

/// The script as an iterator of steps.
pub struct Plan {
    rng: ChaCha8Rng,
    start_ms: i64,
    interval_ms: i64,
    batch: usize,
    chaos: Chaos,
    limit: Option<u64>,
    chaos_after: u64,
    pending: VecDeque<Step>,
    events: VecDeque<Event>,
    meters: Vec<Meter>,
    base_meters: usize,
    tick: u64,
    cursor: usize,
    late: Vec<(u64, RowWrite)>,
    batch_no: u64,
    generated: u64,
    with_power: bool,
    deleted_from: Option<usize>,
}

impl Plan {
    /// The script of `config`; `rows_limit` is `None` for duration-limited runs (endless script).
    pub fn new(config: &FleetConfig, rows_limit: Option<u64>) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut pending = VecDeque::new();
        if config.create {
            pending.push_back(Step::CreateDatabase {
                vgroups: config.vgroups,
            });
            pending.push_back(Step::CreateStable);
        }
        let interval_ms = config.interval_ms.max(1);
        let mut meters = Vec::new();
        for i in 0..config.meters as usize {
            let meter = new_meter(&mut rng, i, interval_ms);
            pending.push_back(Step::CreateTable {
                table: meter.table.clone(),
                tags: draw_tags(&mut rng),
            });
            meters.push(meter);
        }
        let chaos = config.chaos.clone();
        let mut events = VecDeque::new();
        if chaos.add_column {
            events.push_back(Event::AddColumn);
        }
        if chaos.new_meters > 0 {
            events.push_back(Event::NewMeters);
        }
        if chaos.delete_range {
            events.push_back(Event::DeleteRange);
        }
        if chaos.drop_meter {
            events.push_back(Event::DropMeter);
        }
        let chaos_after = chaos
            .after_rows
            .unwrap_or_else(|| rows_limit.map_or(1000, |n| n / 2));
        Plan {
            rng,
            start_ms: config.start_ms,
            interval_ms,
            batch: config.batch.max(1),
            chaos,
            limit: rows_limit,
            chaos_after,
            pending,
            events,
            base_meters: meters.len(),
            meters,
            tick: 0,
            cursor: 0,
            late: Vec::new(),
            batch_no: 0,
            generated: 0,
            with_power: false,
            deleted_from: None,
        }
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|n| self.generated >= n)
    }

    fn event_step(&mut self, event: Event) {
        match event {
            Event::AddColumn => {
                self.with_power = true;
                // Held-back rows are written after the column exists: they get NULL there.
                for (_, row) in &mut self.late {
                    row.reading.power = Some(None);
                }
                self.pending.push_back(Step::AddColumn {
                    name: ADDED_COLUMN.0.into(),
                    ty: ADDED_COLUMN.1.into(),
                });
            }
            Event::NewMeters => {
                for _ in 0..self.chaos.new_meters {
                    let meter = new_meter(&mut self.rng, self.meters.len(), self.interval_ms);
                    self.pending.push_back(Step::CreateTable {
                        table: meter.table.clone(),
                        tags: draw_tags(&mut self.rng),
                    });
                    self.meters.push(meter);
                }
            }
            Event::DeleteRange => {
                let Some(i) = self.pick_alive(None) else { return };
                let meter = &self.meters[i];
                let ticks = self.tick as i64;
                let from_ms = self.start_ms + (ticks / 4) * self.interval_ms + meter.offset_ms;
                let to_ms = self.start_ms + (ticks / 2) * self.interval_ms + meter.offset_ms;
                self.deleted_from = Some(i);
                self.pending.push_back(Step::DeleteRange {
                    table: meter.table.clone(),
                    from_ms,
                    to_ms,
                });
            }
            Event::DropMeter => {
                if self.meters.iter().filter(|m| m.alive).count() < 2 {
                    return;
                }
                let Some(i) = self.pick_alive(self.deleted_from) else {
                    return;
                };
                let table = self.meters[i].table.clone();
                self.meters[i].alive = false;
                let before = self.late.len();
                self.late.retain(|(_, row)| row.table != table);
                // Held-back rows of the dropped meter are never written: generate others instead.
                self.generated -= (before - self.late.len()) as u64;
                self.pending.push_back(Step::DropTable { table });
            }
        }
    }

    /// A random alive meter among the fleet's original ones, avoiding `except` when possible.
    fn pick_alive(&mut self, except: Option<usize>) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.base_meters)
            .filter(|&i| self.meters[i].alive && Some(i) != except)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.gen_range(0..candidates.len())])
    }

    /// The next meter's next reading, round robin over alive meters, tick after tick.
    fn next_in_order(&mut self) -> Option<RowWrite> {
        if !self.meters.iter().any(|m| m.alive) {
            return None;
        }
        loop {
            if self.cursor >= self.meters.len() {
                self.cursor = 0;
                self.tick += 1;
            }
            let i = self.cursor;
            self.cursor += 1;
            if !self.meters[i].alive {
                continue;
            }
            let nulls = self.chaos.nulls;
            let with_power = self.with_power;
            let meter = &self.meters[i];
            let ts = self.start_ms + self.tick as i64 * self.interval_ms + meter.offset_ms;
            let profile = meter.profile;
            let reading = profile.read(&mut self.rng, nulls, with_power);
            return Some(RowWrite {
                table: self.meters[i].table.clone(),
                ts,
                reading,
                kind: RowKind::InOrder,
            });
        }
    }

    /// A full new value (never NULL, so the replacement is unambiguous) for a timestamp an alive
    /// meter wrote in an earlier batch.
    fn next_update(&mut self) -> Option<RowWrite> {
        let candidates: Vec<usize> = (0..self.meters.len())
            .filter(|&i| self.meters[i].alive && !self.meters[i].recent.is_empty())
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = candidates[self.rng.gen_range(0..candidates.len())];
        let recent = &self.meters[i].recent;
        let ts = recent[self.rng.gen_range(0..recent.len())];
        let profile = self.meters[i].profile;
        let reading = profile.read(&mut self.rng, 0.0, self.with_power);
        Some(RowWrite {
            table: self.meters[i].table.clone(),
            ts,
            reading,
            kind: RowKind::Update,
        })
    }

    fn build_batch(&mut self) -> Vec<RowWrite> {
        let mut batch = Vec::new();
        // Held-back rows whose time has come go first, oldest hold first.
        let batch_no = self.batch_no;
        let flush_all = self.limit_reached();
        let mut i = 0;
        while i < self.late.len() && batch.len() < self.batch {
            if flush_all || self.late[i].0 <= batch_no {
                batch.push(self.late.remove(i).1);
            } else {
                i += 1;
            }
        }
        while batch.len() < self.batch && !self.limit_reached() {
            self.generated += 1;
            if self.chaos.updates > 0.0 && self.rng.gen_bool(self.chaos.updates) {
                if let Some(row) = self.next_update() {
                    batch.push(row);
                    continue;
                }
            }
            let Some(mut row) = self.next_in_order() else {
                self.generated -= 1;
                break;
            };
            if self.chaos.out_of_order > 0.0 && self.rng.gen_bool(self.chaos.out_of_order) {
                row.kind = RowKind::Late;
                let release = batch_no + self.rng.gen_range(1..=3);
                self.late.push((release, row));
                continue;
            }
            batch.push(row);
        }
        self.batch_no += 1;
        for row in &batch {
            // Tables are named `d{index}` by `new_meter`.
            let index = row.table[1..].parse::<usize>().ok();
            if let Some(meter) = index.and_then(|i| self.meters.get_mut(i)) {
                if meter.recent.len() == RECENT {
                    meter.recent.pop_front();
                }
                meter.recent.push_back(row.ts);
            }
        }
        batch
    }
}

impl Iterator for Plan {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.pending.pop_front() {
                return Some(step);
            }
            if self.generated >= self.chaos_after && !self.limit_reached() {
                if let Some(event) = self.events.pop_front() {
                    self.event_step(event);
                    continue;
                }
            }
            if self.limit_reached() && self.late.is_empty() {
                return None;
            }
            let rows = self.build_batch();
            if !rows.is_empty() {
                return Some(Step::Insert { rows });
            }
            if !self.meters.iter().any(|m| m.alive) && self.late.is_empty() {
                return None;
            }
        }
    }
}

fn new_meter(rng: &mut ChaCha8Rng, index: usize, interval_ms: i64) -> Meter {
    Meter {
        table: format!("d{index}"),
        profile: Profile::draw(rng),
        offset_ms: rng.gen_range(0..interval_ms),
        alive: true,
        recent: VecDeque::with_capacity(RECENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn config(chaos: Chaos) -> FleetConfig {
        FleetConfig {
            meters: 5,
            batch: 7,
            seed: 42,
            start_ms: 1_700_000_000_000,
            interval_ms: 1000,
            create: true,
            chaos,
            ..FleetConfig::default()
        }
    }

    fn all_rows(steps: &[Step]) -> Vec<RowWrite> {
        steps
            .iter()
            .flat_map(|s| match s {
                Step::Insert { rows } => rows.clone(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn same_seed_same_script_other_seed_other_values() {
        let a: Vec<Step> = Plan::new(&config(Chaos::all()), Some(300)).collect();
        let b: Vec<Step> = Plan::new(&config(Chaos::all()), Some(300)).collect();
        assert_eq!(a, b);
        let mut other = config(Chaos::all());
        other.seed = 43;
        let c: Vec<Step> = Plan::new(&other, Some(300)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn plain_run_writes_exactly_the_rows_in_order_without_nulls() {
        let steps: Vec<Step> = Plan::new(&config(Chaos::default()), Some(100)).collect();
        assert_eq!(steps[0], Step::CreateDatabase { vgroups: 4 });
        assert_eq!(steps[1], Step::CreateStable);
        assert!(matches!(&steps[2], Step::CreateTable { table, .. } if table == "d0"));
        let rows = all_rows(&steps);
        assert_eq!(rows.len(), 100);
        assert!(steps.iter().filter(|s| s.rows() > 0).all(|s| s.rows() <= 7));
        let mut last: HashMap<&str, i64> = HashMap::new();
        for row in &rows {
            assert_eq!(row.kind, RowKind::InOrder);
            assert!(row.reading.current.is_some() && row.reading.power.is_none());
            if let Some(prev) = last.insert(&row.table, row.ts) {
                assert_eq!(row.ts - prev, 1000, "one reading per interval");
            }
        }
        assert_eq!(last.len(), 5);
    }

    #[test]
    fn chaos_produces_every_kind_of_event() {
        let steps: Vec<Step> = Plan::new(&config(Chaos::all()), Some(400)).collect();
        let rows = all_rows(&steps);
        assert_eq!(
            rows.len(),
            400,
            "every generated row is written, late ones included"
        );
        assert!(rows.iter().any(|r| r.kind == RowKind::Late));
        assert!(rows.iter().any(|r| r.kind == RowKind::Update));
        assert!(rows.iter().any(|r| r.reading.current.is_none()));
        let add = steps
            .iter()
            .position(|s| matches!(s, Step::AddColumn { .. }))
            .expect("column added");
        assert!(all_rows(&steps[..add]).iter().all(|r| r.reading.power.is_none()));
        assert!(all_rows(&steps[add..]).iter().all(|r| r.reading.power.is_some()));
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::CreateTable { table, .. } if table == "d5")));
        let dropped = steps
            .iter()
            .position(|s| matches!(s, Step::DropTable { .. }))
            .expect("meter dropped");
        let Step::DropTable { table } = &steps[dropped] else {
            unreachable!()
        };
        assert!(all_rows(&steps[dropped..]).iter().all(|r| &r.table != table));
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::DeleteRange { from_ms, to_ms, .. } if from_ms <= to_ms)));
        // Late rows really are older than something written before them.
        let mut newest: HashMap<&str, i64> = HashMap::new();
        let mut out_of_order = 0;
        for row in &rows {
            let n = newest.entry(&row.table).or_insert(i64::MIN);
            if row.ts < *n && row.kind == RowKind::Late {
                out_of_order += 1;
            }
            *n = (*n).max(row.ts);
        }
        assert!(out_of_order > 0);
        // No statement writes the same (table, ts) twice.
        for step in &steps {
            if let Step::Insert { rows } = step {
                let keys: HashSet<(&str, i64)> = rows.iter().map(|r| (r.table.as_str(), r.ts)).collect();
                assert_eq!(keys.len(), rows.len());
            }
        }
    }

    #[test]
    fn sql_is_rendered_as_tdengine_expects() {
        let row = |table: &str, ts, power| RowWrite {
            table: table.into(),
            ts,
            reading: Reading {
                current: Some(10.3),
                voltage: None,
                phase: Some(0.31),
                power,
            },
            kind: RowKind::InOrder,
        };
        let step = Step::Insert {
            rows: vec![row("d0", 1, None), row("d1", 2, None), row("d0", 3, None)],
        };
        assert_eq!(
            step.sql("power"),
            "INSERT INTO power.d0 VALUES (1,10.3,NULL,0.31) (3,10.3,NULL,0.31) power.d1 VALUES (2,10.3,NULL,0.31)"
        );
        let step = Step::Insert {
            rows: vec![row("d0", 1, Some(None)), row("d0", 2, Some(Some(2.25)))],
        };
        assert_eq!(
            step.sql("db"),
            "INSERT INTO db.d0 VALUES (1,10.3,NULL,0.31,NULL) (2,10.3,NULL,0.31,2.25)"
        );
        assert_eq!(
            Step::CreateStable.sql("power"),
            "CREATE STABLE IF NOT EXISTS power.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT) TAGS (groupid INT, location VARCHAR(24))"
        );
    }

    #[test]
    fn endless_plan_keeps_going() {
        let steps: Vec<Step> = Plan::new(&config(Chaos::default()), None).take(50).collect();
        assert_eq!(steps.len(), 50);
    }
}
