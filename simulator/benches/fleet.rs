//! The fleet's own cost, without TDengine: generating the seeded script (chaos on) and rendering
//! its SQL, and recording it in the ledger. Target: well above what any TDengine ingests from one
//! connection (≥ 1M rows/s), so the fleet never is the bottleneck of a benchmark.
//!
//! Run: `cargo bench -p simulator --bench fleet`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use simulator::meters::{Chaos, FleetConfig, Ledger, Plan};

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
    group.bench_function("plan+sql+ledger", |b| {
        b.iter(|| {
            let mut ledger = Ledger::new("power").without_entries();
            for step in Plan::new(&config, Some(ROWS)) {
                let _ = step.sql(&config.db);
                ledger.record(&step, Ok(()), false).unwrap();
            }
            ledger.rows_written()
        })
    });
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
