//! The MQTT half of the bridge (`tmq2mqtt::run::pipeline`) against the embedded rumqttd over real
//! sockets, fed TMQ messages directly: QoS × version, topic templates, broker restart, commit order.

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use common::{ack_proxy::AckProxy, Subscriber};
use simulator::broker::{BrokerConfig, EmbeddedBroker, MqttVersion};
use taos::{ColumnView, Precision, RawBlock};
use tmq2mqtt::{
    run::{encode_stage, pipeline, Stats},
    source::{SourceEvent, TmqMessage},
    BridgeConfig,
};
use tokio::sync::{mpsc, oneshot};

const T: Duration = Duration::from_secs(20);

fn block(table: &str, first_ts: i64, rows: usize) -> RawBlock {
    let ts: Vec<i64> = (0..rows as i64).map(|i| first_ts + i).collect();
    let names: Vec<&str> = vec![table; rows];
    let f1: Vec<i32> = (0..rows as i32).collect();
    let mut b = RawBlock::from_views(
        &[
            ColumnView::from_millis_timestamp(ts),
            ColumnView::from_varchar::<&str, _, _, _>(names),
            ColumnView::from_ints(f1),
            ColumnView::from_ints(vec![1; rows]),
        ],
        Precision::Millisecond,
    );
    b.with_field_names(["ts", "tbname", "f1", "t1"]);
    b.with_table_name(table);
    b
}

fn message(vg: i32, offset: i64, blocks: Vec<RawBlock>) -> SourceEvent {
    SourceEvent::Message(TmqMessage {
        topic: "topic_meters".into(),
        database: "db".into(),
        vgroup_id: vg,
        offset,
        position: offset + 1,
        commit_at: offset + 1,
        has_meta: false,
        meta: None,
        blocks: blocks.into(),
    })
}

struct Running {
    feed: mpsc::Sender<SourceEvent>,
    commits: mpsc::UnboundedReceiver<tmq2mqtt::ledger::CommitPoint>,
    stop: Option<oneshot::Sender<()>>,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<Result<usize, tmq2mqtt::BridgeError>>,
    committed: BTreeMap<i32, i64>,
}

impl Running {
    fn start(to: &str) -> Running {
        let mut config =
            BridgeConfig::from_dsns("tmq+ws://root:taosdata@127.0.0.1:1/topic_meters?group.id=g", to)
                .unwrap();
        config.shutdown_timeout = Duration::from_secs(1);
        let (feed, source_rx) = mpsc::channel(16);
        let (commit_tx, commits) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        let task = tokio::spawn(async move {
            let staged = encode_stage(Arc::new(config.clone()), st.clone(), source_rx);
            pipeline(&config, &st, staged, commit_tx, async {
                let _ = stop_rx.await;
            })
            .await
        });
        Running {
            feed,
            commits,
            stop: Some(stop),
            stats,
            task,
            committed: BTreeMap::new(),
        }
    }

    /// Waits until vgroup `vg` has committed at least `offset`.
    async fn wait_commit(&mut self, vg: i32, offset: i64) {
        tokio::time::timeout(T, async {
            while self.committed.get(&vg).copied().unwrap_or(-1) < offset {
                let point = self.commits.recv().await.expect("commit channel open");
                let (v, o) = (point.vgroup_id, point.offset);
                let prev = self.committed.insert(v, o);
                assert!(
                    prev.is_none_or(|p| p < o),
                    "commit went backwards on vgroup {v}: {prev:?} -> {o}"
                );
            }
        })
        .await
        .unwrap_or_else(|_| panic!("vgroup {vg} never committed {offset}; have {:?}", self.committed));
    }

    async fn stop(mut self) -> usize {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().expect("pipeline ended cleanly")
    }
}

fn expected(table: &str, ts: i64, f1: i32, vg: i32, offset: i64) -> String {
    format!(
        r#"{{"data":{{"ts":{ts},"tbname":"{table}","f1":{f1},"t1":1}},"offset":{{"database":"db","topic":"topic_meters","vgroupId":{vg},"offset":{offset}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos_and_version_delivers_every_row_and_commits_after_acks() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    for version in [MqttVersion::V311, MqttVersion::V5] {
        for qos in 0..=2u8 {
            let addr = broker.addr(version).unwrap();
            let topic = format!("qos{qos}/{}", version.dsn_value());
            let mut sub = Subscriber::start(addr, version, &format!("{topic}/#"), 2).await;
            let to = format!(
                "mqtt://{addr}?version={}&qos={qos}&client_id=bridge-{qos}-{}&topic={topic}/{{vgroup_id}}/{{table}}",
                version.dsn_value(),
                version.dsn_value()
            );
            let mut run = Running::start(&to);
            // Two vgroups, 5 messages each, 2 tables of 10 rows per message.
            for i in 0..5i64 {
                for vg in [2, 3] {
                    let m = message(
                        vg,
                        10 + i,
                        vec![block("d0", 1000 * i, 10), block("d1", 1000 * i + 500, 10)],
                    );
                    run.feed.send(m).await.unwrap();
                }
            }
            let got = sub.collect(200, T).await;
            run.wait_commit(2, 15).await;
            run.wait_commit(3, 15).await;
            let s = run.stats.snapshot();
            assert_eq!(
                (s.messages, s.rows, s.acked),
                (10, 200, 200),
                "{version:?} qos {qos}: {s:?}"
            );
            assert_eq!(run.stop().await, 0, "nothing unacknowledged at the end");
            sub.assert_nothing_more(&format!("{version:?} qos {qos}: no duplicates"))
                .await;
            // Exact payloads and topics; per-table order kept.
            let mut by_table: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in &got {
                by_table
                    .entry(m.topic.clone())
                    .or_default()
                    .push(m.payload.clone());
                if version == MqttVersion::V5 {
                    assert_eq!(m.content_type.as_deref(), Some("application/json"));
                    assert_eq!(m.payload_format, Some(1));
                }
            }
            for vg in [2, 3] {
                for (table, base) in [("d0", 0), ("d1", 500)] {
                    let want: Vec<String> = (0..5i64)
                        .flat_map(|i| {
                            (0..10).map(move |r| expected(table, 1000 * i + base + r as i64, r, vg, 10 + i))
                        })
                        .collect();
                    assert_eq!(
                        by_table[&format!("{topic}/{vg}/{table}")],
                        want,
                        "{version:?} qos {qos}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_lacking_a_template_variable_are_skipped_counted_and_committed() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let addr = broker.v4_addr().unwrap();
    let mut sub = Subscriber::start(addr, MqttVersion::V311, "skip/#", 1).await;
    // Data messages have no {stable} (taosx's rule): nothing is published, offsets still advance.
    let mut run = Running::start(&format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=skipper&topic=skip/{{stable}}"
    ));
    run.feed
        .send(message(2, 7, vec![block("d0", 0, 3)]))
        .await
        .unwrap();
    run.wait_commit(2, 8).await;
    let s = run.stats.snapshot();
    assert_eq!(s.skipped.get("missing_variable"), Some(&3));
    assert_eq!(s.published, 0);
    // A later message with a plain topic still flows (proves the subscriber would have seen any).
    assert_eq!(run.stop().await, 0);
    let run = Running::start(&format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=skipper2&topic=skip/x"
    ));
    run.feed
        .send(message(2, 8, vec![block("d0", 0, 1)]))
        .await
        .unwrap();
    let got = sub.collect(1, T).await;
    assert_eq!(got[0].payload, expected("d0", 0, 0, 2, 8));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_whose_names_are_no_valid_topic_are_skipped_counted_and_the_rest_flows() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let addr = broker.v4_addr().unwrap();
    let mut sub = Subscriber::start(addr, MqttVersion::V311, "names/#", 1).await;
    let mut run = Running::start(&format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=namer&topic=names/{{table}}"
    ));
    // Escaped TDengine names may hold MQTT's wildcards or a NUL; rumqttc refuses such a PUBLISH, which
    // must cost only those rows, not the whole run.
    let blocks = vec![
        block("d+1", 0, 2),
        block("d#2", 10, 3),
        block("d\x003", 20, 1),
        block("ok", 30, 2),
    ];
    run.feed.send(message(2, 7, blocks)).await.unwrap();
    let got = sub.collect(2, T).await;
    run.wait_commit(2, 8).await;
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["names/ok", "names/ok"]);
    let s = run.stats.snapshot();
    assert_eq!(s.skipped.get("invalid_topic"), Some(&6), "{s:?}");
    assert_eq!((s.rows, s.acked), (8, 2));
    assert_eq!(run.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_at_qos1_loses_nothing() {
    let mut broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let addr = broker.v5_addr().unwrap();
    let mut sub = Subscriber::start(addr, MqttVersion::V5, "restart/#", 1).await;
    // The bridge reaches the broker through a proxy that records what the broker acknowledged.
    let proxy = AckProxy::start(addr).await;
    let mut run = Running::start(&format!(
        "mqtt://{}?version=5.0&qos=1&client_id=restarter&topic=restart/{{table}}",
        proxy.addr
    ));
    // Phase 1: delivered and committed before the fault.
    for i in 0..10i64 {
        run.feed
            .send(message(2, i, vec![block("d0", i * 100, 50)]))
            .await
            .unwrap();
    }
    let mut got = sub.collect(500, T).await;
    run.wait_commit(2, 10).await;
    // Phase 2: published while the broker goes away (some in flight — written to its socket and never
    // read — some not yet sent).
    proxy.blackhole(true);
    for i in 10..20i64 {
        run.feed
            .send(message(2, i, vec![block("d0", i * 100, 50)]))
            .await
            .unwrap();
    }
    common::wait_for("rows in flight", T, || proxy.swallowed() >= 10).await;
    broker.stop().await;
    // Phase 3: polled while the broker is down.
    for i in 20..30i64 {
        run.feed
            .send(message(2, i, vec![block("d0", i * 100, 50)]))
            .await
            .unwrap();
    }
    // Let the bridge's backoff grow well past the subscriber's reconnect time, so the subscriber is
    // subscribed again before the bridge re-sends (otherwise the broker would drop those for it).
    let stats = run.stats.clone();
    common::wait_for("bridge reconnect attempts", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 5
    })
    .await;
    assert!(run.committed[&2] < 30, "nothing past the outage may be committed");
    // The bridge has read its socket to the end, so the proxy forwarded every ack the stopped broker sent.
    // A row the broker acknowledged but had not yet forwarded when it stopped is the broker's loss (it took
    // responsibility); every other row is the bridge's to deliver. What the broker acknowledged is taken
    // from the wire, not from the bridge's own `acked` counter.
    let acked_by_broker: std::collections::HashSet<String> = proxy.acked().into_iter().collect();
    let row = |n: usize| {
        let (i, r) = ((n / 50) as i64, (n % 50) as i32);
        expected("d0", i * 100 + r as i64, r, 2, i)
    };
    proxy.blackhole(false);
    broker.restart().await.unwrap();
    sub.wait_subscribed(T).await;
    // The rows still to come, crossed off as they arrive (each message looked at once); until every row
    // arrived or is the broker's loss. At the deadline the assertions below name what is missing and whose.
    let mut wanted: std::collections::HashSet<String> = (500..1500)
        .map(row)
        .filter(|r| !acked_by_broker.contains(r))
        .collect();
    for m in got.iter() {
        wanted.remove(&m.payload);
    }
    let mut looked = 0;
    let more = sub
        .try_collect_until(T, |g| {
            for m in &g[looked..] {
                wanted.remove(&m.payload);
            }
            looked = g.len();
            wanted.is_empty()
        })
        .await;
    got.extend(more.unwrap_or_else(|g| g));
    run.wait_commit(2, 30).await;
    let s = run.stats.snapshot();
    eprintln!("after the restart: {s:?}");
    assert!(s.mqtt_connects >= 2, "{s:?}");
    assert!(s.acked >= 1500, "{s:?}");
    assert_eq!(run.stop().await, 0);
    // Late copies count too.
    got.extend(sub.settle(common::QUIET, T).await);
    // Every row at least once; duplicates only of what was re-sent.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &got {
        *counts.entry(m.payload.as_str()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..1500)
        .filter(|n| !counts.contains_key(row(*n).as_str()))
        .collect();
    let not_acked: Vec<usize> = missing
        .iter()
        .copied()
        .filter(|n| *n < 500 || !acked_by_broker.contains(&row(*n)))
        .collect();
    assert!(
        not_acked.is_empty(),
        "rows {not_acked:?} lost that the stopped broker never acknowledged on the wire (all lost: {missing:?})"
    );
    if !missing.is_empty() {
        eprintln!(
            "the broker lost {} row(s) it had acknowledged: {missing:?}",
            missing.len()
        );
    }
    assert_eq!(counts.len(), 1500 - missing.len(), "distinct rows");
    // Duplicates only of what was in flight at the outage, judged from the wire (not the bridge's `resent`).
    common::assert_duplicates_were_in_flight(&got, &proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_before_ack_commits_at_poll_and_after_ack_waits() {
    // Nothing listens here: no publish can ever be acknowledged.
    let port = simulator::net::free_port().unwrap().port();
    for (mode, expect_commit) in [("before-ack", true), ("after-ack", false)] {
        let mut run = Running::start(&format!(
            "mqtt://127.0.0.1:{port}?version=5.0&qos=1&client_id=c&topic=t&commit={mode}"
        ));
        run.feed
            .send(message(2, 41, vec![block("d0", 0, 5)]))
            .await
            .unwrap();
        let stats = run.stats.clone();
        common::wait_for("message handled", T, || {
            stats.messages.load(std::sync::atomic::Ordering::Relaxed) == 1
        })
        .await;
        // Commits are sent synchronously while the message is handled.
        let commit = run.commits.try_recv().ok();
        assert_eq!(commit.is_some(), expect_commit, "{mode}: {commit:?}");
        if let Some(c) = commit {
            assert_eq!((&*c.topic, c.vgroup_id, c.offset), ("topic_meters", 2, 42));
        }
        assert_eq!(run.stats.snapshot().acked, 0);
        run.stop.take().unwrap().send(()).unwrap();
        let unacked = run.task.await.unwrap().expect("clean stop");
        assert_eq!(
            unacked, 5,
            "{mode}: the shutdown deadline passes with 5 rows unacknowledged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_larger_than_max_packet_size_are_skipped_and_counted() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).await.unwrap();
    let addr = broker.v4_addr().unwrap();
    let mut sub = Subscriber::start(addr, MqttVersion::V311, "big/#", 1).await;
    let mut run = Running::start(&format!(
        "mqtt://{addr}?version=3.1.1&qos=1&client_id=big&topic=big/x&max_packet_size=1024"
    ));
    let huge = "h".repeat(1100);
    run.feed
        .send(message(2, 1, vec![block(&huge, 0, 2), block("d0", 5, 1)]))
        .await
        .unwrap();
    let got = sub.collect(1, T).await;
    assert_eq!(got[0].payload, expected("d0", 5, 0, 2, 1));
    run.wait_commit(2, 2).await;
    assert_eq!(run.stats.snapshot().skipped.get("too_large"), Some(&2));
    run.stop().await;
}
