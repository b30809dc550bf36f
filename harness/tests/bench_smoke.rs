//! `harness bench` end to end with a tiny backlog: every phase runs and reports sane numbers. Not a
//! performance check (those are the bench's numbers, never a test's).

use std::time::Duration;

use harness::bench::{self, BenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_bench_runs_every_phase() {
    let mut opts = BenchOptions::new(true, Some(2_000));
    opts.limit_messages = 2_000;
    opts.latency_for = Duration::from_millis(300);
    opts.latency_rate = 1_000;
    opts.deadline = Duration::from_secs(60);
    // The child-process phase needs the binary; the test must not depend on a build order.
    opts.bridge_bin = None;
    opts.fleet = BenchOptions::fleet_shapes(&[10, 3000], &[1]);
    opts.fleet_rows = 3_000;
    let r = bench::run(&opts, |_| {}).await.expect("bench runs");
    assert_eq!(r.qos.len(), 3);
    for q in &r.qos {
        assert!(q.limit > 0.0 && q.bridge > 0.0, "{q:?}");
        assert!((q.ratio - q.bridge / q.limit).abs() < 1e-9);
    }
    assert!(r.batch_rows_per_s.expect("batch measured") > 0.0);
    let latency = r.latency.as_ref().expect("latency measured");
    assert_eq!(latency.sent, 300);
    assert!(latency.received > 0 && latency.p50_ms <= latency.p99_ms);
    assert!(latency.p99_ms <= latency.max_ms);
    assert!(r.peak_rss_kb.is_none() && r.notes.iter().any(|n| n.contains("peak RSS")));
    let table = bench::table(&r);
    assert!(table.contains("| QoS 2 rows/s |"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rows"], 2_000);
    // The fleet phase: every shape drained by the bridge and by the bare client, blocks counted.
    assert_eq!(r.fleet.len(), 2);
    let (small, big) = (&r.fleet[0], &r.fleet[1]);
    assert_eq!((small.tables, small.rows), (10, 3_000));
    assert_eq!((big.tables, big.rows), (3_000, 3_000));
    assert_eq!(big.blocks, 3_000, "one row per table: one block per row");
    assert!(small.blocks < 100, "10 tables: blocks of many rows ({small:?})");
    for f in &r.fleet {
        assert!(f.rows_per_s > 0.0 && f.client_rows_per_s > 0.0, "{f:?}");
        assert!((f.ratio - f.rows_per_s / f.client_rows_per_s).abs() < 1e-9);
        assert!(f.publisher_rows_per_s > 0.0, "{f:?}");
        let bound = f.client_rows_per_s.min(f.publisher_rows_per_s);
        assert!((f.ratio_to_bound - f.rows_per_s / bound).abs() < 1e-9, "{f:?}");
        assert!((f.rows_per_block - f.rows as f64 / f.blocks as f64).abs() < 1e-9);
        assert!(f.peak_rss_kb.is_none() && f.rewinds.is_some());
    }
    for key in [
        "tables",
        "rows",
        "blocks",
        "rows_per_block",
        "rows_per_s",
        "us_per_block",
        "peak_rss_kb",
        "publisher_rows_per_s",
        "ratio_to_bound",
    ] {
        assert!(
            json["fleet"][0].get(key).is_some(),
            "fleet JSON lacks {key}: {}",
            json["fleet"][0]
        );
    }
    assert!(
        table.contains("| 3000 | 1 | ≤ 5000 rows | 3000 | 3000 | 1.0 |"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_qos_level_repeated_reports_every_pair_and_their_median() {
    let mut opts = BenchOptions::new(true, Some(1_000));
    opts.limit_messages = 1_000;
    opts.deadline = Duration::from_secs(60);
    opts.qos = vec![1];
    opts.repeat = 3;
    opts.extras = false;
    opts.fleet.clear();
    let r = bench::run(&opts, |_| {}).await.expect("bench runs");
    assert_eq!(r.qos.len(), 1);
    let q = &r.qos[0];
    assert_eq!((q.qos, q.runs.len()), (1, 3), "{q:?}");
    let mut ratios: Vec<f64> = q.runs.iter().map(|(l, b)| b / l).collect();
    ratios.sort_by(f64::total_cmp);
    assert!((q.ratio - ratios[1]).abs() < 1e-9, "{q:?}");
    assert!(r.batch_rows_per_s.is_none() && r.latency.is_none() && r.peak_rss_kb.is_none());
    let table = bench::table(&r);
    assert!(table.contains("ratios of the 3 pairs"), "{table}");
    assert!(!table.contains("QoS 0 rows/s"), "{table}");
}

#[test]
fn vm_hwm_of_this_process_is_read() {
    let kb = bench::drain::vm_hwm_kb(std::process::id()).expect("VmHWM in /proc/self/status");
    assert!(kb > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_client_limit_runs_in_a_process_of_its_own() {
    let mut opts = BenchOptions::new(true, Some(1_000));
    opts.deadline = Duration::from_secs(60);
    opts.qos.clear();
    opts.extras = false;
    opts.bridge_bin = None;
    opts.fleet = BenchOptions::fleet_shapes(&[2000], &[1]);
    opts.fleet_rows = 2_000;
    opts.client_bin = Some(env!("CARGO_BIN_EXE_harness").into());
    let r = bench::run(&opts, |_| {}).await.expect("bench runs");
    let f = &r.fleet[0];
    // The blocks come from the child's answer: one row per table, one block per row.
    assert_eq!((f.rows, f.blocks), (2_000, 2_000), "{f:?}");
    assert!(f.client_rows_per_s > 0.0, "{f:?}");

    // A client binary that fails is an error naming it, not a figure.
    opts.client_bin = Some("/bin/false".into());
    let e = bench::run(&opts, |_| {}).await.expect_err("no client figure");
    assert!(e.to_string().contains("/bin/false bench-client"), "{e}");
}
