//! TMQ consumption through the official client: rows per second a consumer drains from the stand-in.
//!
//! Setup (once): a 4-vgroup database of smart meters, 200k rows in 100 child tables written by
//! 1000-row INSERTs, and a query topic over the super table. Each iteration subscribes a fresh group
//! from `earliest` and receives every row (`recv_timeout` + `fetch_raw_block`, the bridge's path).
//!
//! Run: `cargo bench -p simulator --bench tmq`

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use simulator::tdengine::{TdConfig, TdServer};

const TABLES: usize = 100;
const ROWS: usize = 200_000;
const PER_INSERT: usize = 1000;

fn setup(server: &TdServer) {
    let store = server.store();
    let sql = |s: &str| {
        store.execute(s, &mut None).unwrap_or_else(|e| panic!("{s}: {e}"));
    };
    sql("create database power vgroups 4");
    sql(&simulator::meters::create_stable_sql("power"));
    sql("create topic meters_topic as select ts, current, voltage, phase, groupid, location from power.meters");
    let base = 1_700_000_000_000i64;
    for chunk in 0..ROWS / PER_INSERT {
        let t = chunk % TABLES;
        let mut s =
            format!("insert into power.d{t} using power.meters tags ({t}, 'California.SanFrancisco') values");
        for i in 0..PER_INSERT {
            let ts = base + (chunk * PER_INSERT + i) as i64;
            s.push_str(&format!(
                " ({ts}, {:.1}, {}, 0.3{})",
                10.0 + (i % 7) as f64,
                219 + i % 5,
                i % 10
            ));
        }
        sql(&s);
    }
}

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let server = rt.block_on(TdServer::start(TdConfig::default())).expect("server");
    setup(&server);
    let port = server.addr().port();
    let mut group = c.benchmark_group("tmq");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    let mut n = 0u64;
    group.bench_function("consume_200k_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let dsn = format!(
                    "tmq+ws://root:taosdata@127.0.0.1:{port}/?group.id=bench{n}&auto.offset.reset=earliest"
                );
                let start = Instant::now();
                rt.block_on(common::drain_official(&dsn, "meters_topic", ROWS, false));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
