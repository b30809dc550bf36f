//! Batched INSERT through the official `taos` client into the stand-in: 1000 rows per statement
//! (10 smart-meter child tables × 100 rows) on the binary SQL path. Target: ≥ 200k rows/s.
//! Also prints the resident memory per stored row after loading 500k rows.
//!
//! Run: `cargo bench -p simulator --bench insert`

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use simulator::tdengine::{TdConfig, TdServer};
use taos::*;

const TABLES: usize = 10;
const ROWS_PER_TABLE: usize = 100;

async fn setup(version: &str) -> (TdServer, Taos) {
    let server = TdServer::start(TdConfig::with_version(version)).await.unwrap();
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    taos.exec_many([
        "create database power vgroups 4",
        &simulator::meters::create_stable_sql("power"),
    ])
    .await
    .unwrap();
    for t in 0..TABLES {
        taos.exec(format!(
            "create table power.d{t} using power.meters tags ({t}, 'California.SanFrancisco')"
        ))
        .await
        .unwrap();
    }
    (server, taos)
}

/// One INSERT of `TABLES × ROWS_PER_TABLE` rows with fresh timestamps.
fn statement(clock: &AtomicI64) -> String {
    let base = clock.fetch_add(ROWS_PER_TABLE as i64, Ordering::Relaxed);
    let mut sql = String::with_capacity(TABLES * ROWS_PER_TABLE * 40);
    sql.push_str("insert into");
    for t in 0..TABLES {
        sql.push_str(&format!(" power.d{t} values"));
        for r in 0..ROWS_PER_TABLE as i64 {
            let ts = base + r;
            sql.push_str(&format!(
                "({ts},{}.{},{},0.{})",
                10 + r % 5,
                r % 10,
                215 + r % 10,
                r % 9
            ));
        }
    }
    sql
}

fn insert(c: &mut Criterion) {
    let rt = common::runtime();
    let mut group = c.benchmark_group("insert");
    group.throughput(Throughput::Elements((TABLES * ROWS_PER_TABLE) as u64));
    group.measurement_time(Duration::from_secs(10));
    for (name, version) in [
        ("binary_path_1000_rows", "3.3.1.0"),
        ("json_path_1000_rows", "3.3.0.0"),
    ] {
        let (server, taos) = rt.block_on(setup(version));
        let clock = AtomicI64::new(1_700_000_000_000);
        group.bench_function(name, |b| {
            b.iter_batched(
                || statement(&clock),
                |sql| {
                    let n = rt.block_on(taos.exec(sql)).unwrap();
                    assert_eq!(n, TABLES * ROWS_PER_TABLE);
                },
                BatchSize::SmallInput,
            )
        });
        drop(taos);
        rt.block_on(server.shutdown());
    }
    group.finish();
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Not a timing: loads 500k rows and reports resident memory growth per stored row (table copy + WAL).
fn memory_per_row(_: &mut Criterion) {
    let rt = common::runtime();
    let (server, taos) = rt.block_on(setup("3.3.1.0"));
    let clock = AtomicI64::new(1_600_000_000_000);
    let statements = 500;
    let sqls: Vec<String> = (0..statements).map(|_| statement(&clock)).collect();
    let before = rss_bytes();
    rt.block_on(async {
        for sql in sqls {
            taos.exec(sql).await.unwrap();
        }
    });
    let after = rss_bytes();
    let rows = (statements * TABLES * ROWS_PER_TABLE) as u64;
    let stored: usize = server
        .store()
        .snapshot("power", None)
        .unwrap()
        .iter()
        .map(|t| t.rows.len())
        .sum();
    assert_eq!(stored as u64, rows);
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "memory per stored row: {:.0} bytes ({} rows, RSS +{} MiB, includes the WAL copy)",
            a.saturating_sub(b) as f64 / rows as f64,
            rows,
            a.saturating_sub(b) / (1 << 20)
        );
    }
    drop(taos);
    rt.block_on(server.shutdown());
}

// Memory first: measured in a fresh process, before the throughput runs leave freed heap to reuse.
criterion_group!(benches, memory_per_row, insert);
criterion_main!(benches);
