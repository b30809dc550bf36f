//! The fleet's own cost, without TDengine: generating the seeded script (chaos on) and rendering
//! its SQL, and recording it in the write log. Target: ≥ 500k rows/s, well above what the stand-in
//! ingests (its insert bench targets 200k rows/s), so the fleet is never a benchmark's bottleneck.
//!
//! Run: `cargo bench -p simulator --bench fleet`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use simulator::meters::{Chaos, FleetConfig, Plan, WriteLog};

const ROWS: u64 = 100_000;

fn config() -> FleetConfig {
    FleetConfig {
        meters: 100,
        batch: 500,
        create: true,
        chaos: Chaos::all(),
        ..FleetConfig::default()
    }
}

fn fleet(c: &mut Criterion) {
    let mut group = c.benchmark_group("fleet");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    let config = config();
    group.bench_function("plan+sql", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for step in Plan::new(&config, Some(ROWS)) {
                bytes += step.sql(&config.db).len();
            }
            bytes
        })
    });
    group.bench_function("plan+sql+write_log", |b| {
        b.iter(|| {
            let mut write_log = WriteLog::new("power").without_entries();
            for step in Plan::new(&config, Some(ROWS)) {
                let _ = step.sql(&config.db);
                write_log.record(&step, Ok(()), false).unwrap();
            }
            write_log.rows_written()
        })
    });
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
