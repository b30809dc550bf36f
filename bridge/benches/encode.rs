//! Throughput of the bridge's pure hot path: encoding rows to taosx JSON, rendering topic templates, and
//! the ledger's bookkeeping per publish. Run: `cargo bench -p tmq2mqtt --bench encode`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use taos::{ColumnView, Precision, RawBlock};
use tmq2mqtt::{
    encode::{Encoder, OffsetSuffix},
    ledger::Ledger,
    template::{Template, Vars},
};

const ROWS: usize = 1000;

/// The canonical smart-meter schema: ts, current, voltage, phase, tbname, groupid, location.
fn meters_block() -> RawBlock {
    let ts: Vec<i64> = (0..ROWS as i64).map(|i| 1_700_000_000_000 + i).collect();
    let current: Vec<f32> = (0..ROWS).map(|i| 10.0 + i as f32 * 0.01).collect();
    let voltage: Vec<i32> = (0..ROWS as i32).map(|i| 220 + i % 10).collect();
    let phase: Vec<f32> = (0..ROWS).map(|i| 0.3 + (i % 7) as f32 * 0.01).collect();
    let tbname: Vec<&str> = vec!["d1001"; ROWS];
    let groupid: Vec<i32> = vec![2; ROWS];
    let location: Vec<&str> = vec!["California.SanFrancisco"; ROWS];
    let mut b = RawBlock::from_views(
        &[
            ColumnView::from_millis_timestamp(ts),
            ColumnView::from_floats(current),
            ColumnView::from_ints(voltage),
            ColumnView::from_floats(phase),
            ColumnView::from_varchar::<&str, _, _, _>(tbname),
            ColumnView::from_ints(groupid),
            ColumnView::from_varchar::<&str, _, _, _>(location),
        ],
        Precision::Millisecond,
    );
    b.with_field_names([
        "ts", "current", "voltage", "phase", "tbname", "groupid", "location",
    ]);
    b
}

fn bench(c: &mut Criterion) {
    let block = meters_block();
    let suffix = OffsetSuffix::new("power", "topic_meters", 2, 12345);
    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("encode_1000_meter_rows", |b| {
        let mut enc = Encoder::new();
        b.iter(|| {
            let mut bytes = 0usize;
            enc.encode_block(&block, &suffix, |_, p| bytes += p.len());
            bytes
        })
    });
    g.bench_function("render_1000_topics", |b| {
        let template = Template::parse("meters/{database}/{tmq_topic}/{vgroup_id}/{stable}/{table}").unwrap();
        let tables: Vec<String> = (0..ROWS).map(|i| format!("d{i}")).collect();
        b.iter(|| {
            let mut bytes = 0usize;
            for table in &tables {
                let vars = Vars {
                    database: "power",
                    tmq_topic: "topic_meters",
                    vgroup_id: 2,
                    stable: Some("meters"),
                    table: Some(table),
                };
                bytes += template.render(&vars).unwrap().len();
            }
            bytes
        })
    });
    g.bench_function("ledger_1000_publishes_qos1", |b| {
        let topic: Arc<str> = "topic_meters".into();
        b.iter(|| {
            let mut l = Ledger::new();
            let mut commits = 0;
            for m in 0..10i64 {
                commits += l.on_message(&topic, 2, m + 1, 0..ROWS / 10).len();
                while l.next_to_send().is_some() {}
                for pkid in 1..=(ROWS / 10) as u16 {
                    l.on_outgoing(pkid);
                }
                for pkid in 1..=(ROWS / 10) as u16 {
                    commits += l.on_ack(pkid).len();
                }
            }
            assert_eq!(commits, 10);
            commits
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
