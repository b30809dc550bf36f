//! The fleet's script executed directly on the stand-in's store (no network): what `SELECT`
//! returns is exactly what the write log says must exist, per seed, with and without chaos.

use std::collections::BTreeMap;

use simulator::meters::plan::Plan;
use simulator::meters::verify::{diff, TableRows};
use simulator::meters::{Chaos, FleetConfig, Reading, StopAfter, WriteLog};
use simulator::tdengine::types::Value;
use simulator::tdengine::Store;

fn run(config: &FleetConfig) -> (WriteLog, TableRows) {
    let store = Store::new();
    let mut db = None;
    let StopAfter::Rows(n) = config.stop else {
        panic!("rows")
    };
    let mut write_log = WriteLog::new(config.db.clone());
    for step in Plan::new(config, Some(n)) {
        let sql = step.sql(&config.db);
        let outcome = store
            .execute(&sql, &mut db)
            .map(|_| ())
            .map_err(|e| format!("{e} <- {sql}"));
        write_log.record(&step, outcome, false).unwrap();
    }
    let tables = store
        .execute(&format!("SHOW {}.TABLES", config.db), &mut db)
        .unwrap();
    let mut actual = BTreeMap::new();
    for t in tables.rows {
        let Value::VarChar(name) = &t[0] else {
            panic!("{t:?}")
        };
        let rs = store
            .execute(&format!("SELECT * FROM {}.{name}", config.db), &mut db)
            .unwrap();
        let has_power = rs.fields.len() > 4;
        let rows = rs
            .rows
            .iter()
            .map(|r| {
                let Value::Timestamp(ts) = r[0] else {
                    panic!("{r:?}")
                };
                let f = |v: &Value| match v {
                    Value::Float(x) => Some(*x),
                    _ => None,
                };
                let voltage = match r[2] {
                    Value::Int(v) => Some(v),
                    _ => None,
                };
                let power = has_power.then(|| f(&r[4]));
                (
                    ts,
                    Reading {
                        current: f(&r[1]),
                        voltage,
                        phase: f(&r[3]),
                        power,
                    },
                )
            })
            .collect();
        actual.insert(name.clone(), rows);
    }
    (write_log, actual)
}

fn config(seed: u64, chaos: Chaos) -> FleetConfig {
    FleetConfig {
        meters: 8,
        batch: 50,
        seed,
        create: true,
        stop: StopAfter::Rows(2000),
        chaos,
        ..FleetConfig::default()
    }
}

fn assert_nothing_rejected(write_log: &WriteLog) {
    let rejected: Vec<_> = write_log
        .entries()
        .iter()
        .filter_map(|e| e.error.as_deref())
        .collect();
    assert!(rejected.is_empty(), "{rejected:?}");
}

#[test]
fn plain_fleet_rows_are_exactly_what_select_returns() {
    for seed in [1, 42] {
        let (write_log, actual) = run(&config(seed, Chaos::default()));
        assert_nothing_rejected(&write_log);
        assert_eq!(write_log.rows_written(), 2000);
        let expected = write_log.expected_rows();
        assert_eq!(expected.values().map(|r| r.len()).sum::<usize>(), 2000);
        assert_eq!(diff(&expected, &actual), Vec::<String>::new(), "seed {seed}");
    }
}

#[test]
fn chaos_fleet_rows_are_exactly_what_select_returns() {
    for seed in [3, 42, 7777] {
        let (write_log, actual) = run(&config(seed, Chaos::all()));
        assert_nothing_rejected(&write_log);
        let expected = write_log.expected_rows();
        // Chaos really happened: fewer live rows than writes (updates, delete, drop), new tables.
        let live: usize = expected.values().map(|r| r.len()).sum();
        assert!(live < 2000, "{live}");
        assert_eq!(expected.len(), 8 + 2 - 1);
        assert!(write_log.has_added_column());
        assert_eq!(diff(&expected, &actual), Vec::<String>::new(), "seed {seed}");
    }
}
