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
    let r = bench::run(&opts, |_| {}).await.expect("bench runs");
    assert_eq!(r.qos.len(), 3);
    for q in &r.qos {
        assert!(q.limit > 0.0 && q.bridge > 0.0, "{q:?}");
        assert!((q.ratio - q.bridge / q.limit).abs() < 1e-9);
    }
    assert!(r.batch_rows_per_s > 0.0);
    assert_eq!(r.latency.sent, 300);
    assert!(r.latency.received > 0 && r.latency.p50_ms <= r.latency.p99_ms);
    assert!(r.latency.p99_ms <= r.latency.max_ms);
    assert!(r.peak_rss_kb.is_none() && r.notes.iter().any(|n| n.contains("peak RSS")));
    let table = bench::table(&r);
    assert!(table.contains("| QoS 2 rows/s |"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rows"], 2_000);
}

#[test]
fn vm_hwm_of_this_process_is_read() {
    let kb = bench::drain::vm_hwm_kb(std::process::id()).expect("VmHWM in /proc/self/status");
    assert!(kb > 0);
}
