//! TMQ under faults and at the edges, through the official client: the harness's fault hooks (dropped
//! connections, stalled replies, failed calls), missed heartbeats, WAL retention and snapshots, auto-commit.

mod tmq_support;

use std::collections::BTreeSet;
use std::time::Duration;

use simulator::tdengine::tmq::TmqConfig;
use taos::AsAsyncConsumer;
use tmq_support::*;

use simulator::tdengine::fixture::BASE_TS;
const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(800);

fn setup(s: &Server, vgroups: u32, options: &str) {
    s.sql(&format!("create database db vgroups {vgroups} {options}"));
    s.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
}

fn insert(s: &Server, tables: u32, ids: std::ops::Range<u32>) {
    for id in ids {
        let t = id % tables;
        s.sql(&format!(
            "insert into db.d{t} using db.meters tags ({t}) values ({}, {id})",
            BASE_TS + id as i64
        ));
    }
}

fn ids(received: &[Received]) -> BTreeSet<u32> {
    let all: Vec<u32> = rows(received).iter().map(|r| r[2].parse().expect("f1")).collect();
    let set: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "duplicates in {all:?}");
    set
}

/// A consumer of group `p` from `earliest` without snapshots, after asserting that it receives nothing
/// (`what` names the rows that came if it does).
async fn log_only_consumer_gets_nothing(s: &Server, what: &str) -> taos::Consumer {
    let plain = s
        .consumer("group.id=p&auto.offset.reset=earliest", &["t"])
        .await
        .expect("plain");
    assert!(recv_rest(&plain, QUIET).await.is_empty(), "{what}");
    plain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_keep_storage_and_committed_offsets() {
    let s = Server::start().await;
    setup(&s, 2, "");
    insert(&s, 4, 0..20);
    let config = "group.id=g&auto.offset.reset=earliest";
    let c = s.consumer(config, &["t"]).await.expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 20).await;
    commit_positions(&c, &got).await;

    s.server.drop_connections();
    let err = recv_one(&c, Duration::from_secs(5))
        .await
        .expect_err("the connection is gone");
    assert_eq!(err.code(), 0xE002, "{err}");
    drop(c);
    s.wait_until("the dropped consumer left", |s| s.tmq.subscribers("t") == 0)
        .await;

    insert(&s, 4, 20..30);
    let c = s.consumer(config, &["t"]).await.expect("reconnect");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 10).await;
    assert!(recv_rest(&c, QUIET).await.is_empty());
    assert_eq!(ids(&got), (20..30).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_stalls_reach_the_client() {
    let s = Server::start().await;
    setup(&s, 1, "");
    insert(&s, 2, 0..10);
    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");

    s.server.fail_next(2, 0x0B00);
    for _ in 0..2 {
        let err = recv_one(&c, Duration::from_secs(5)).await.expect_err("injected");
        assert_eq!(err.code(), 0x0B00, "{err}");
    }
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 10).await;
    assert_eq!(ids(&got), (0..10).collect());

    s.server.stall_replies(Duration::from_millis(1500));
    insert(&s, 2, 10..14);
    assert!(
        recv_one(&c, Duration::from_millis(300))
            .await
            .expect("no error")
            .is_none(),
        "a reply got through the stall"
    );
    // The client gave up on that poll and discards its late reply (the message is lost to this consumer,
    // as with taosAdapter). A call without a timeout returns once the stall is over and every queued
    // reply went out; after that, polls are answered again.
    c.position("t", 2).await.expect("position after the stall");
    insert(&s, 2, 14..16);
    let after = recv_until(&c, WAIT, |r| row_count(r) >= 2).await;
    assert_eq!(ids(&after), (14..16).collect());
    // Nothing was committed: a restarted consumer of the group gets every row, the lost ones included.
    drop(c);
    s.wait_until("left", |s| s.tmq.subscribers("t") == 0).await;
    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");
    let all = recv_until(&c, WAIT, |r| row_count(r) >= 16).await;
    assert_eq!(ids(&all), (0..16).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_misses_its_heartbeats_loses_its_vgroups() {
    // Pings far apart: only requests count as heartbeats here.
    let config = TmqConfig {
        session_timeout: Duration::from_millis(1000),
        ping_interval: Duration::from_secs(600),
        ..TmqConfig::default()
    };
    let s = Server::with_config(config).await;
    setup(&s, 2, "");
    let dsn = "group.id=g&auto.offset.reset=earliest";
    let idle = s.consumer(dsn, &["t"]).await.expect("idle");
    let busy = s.consumer(dsn, &["t"]).await.expect("busy");
    assert_eq!(assigned(&busy).await, 1);
    let until = tokio::time::Instant::now() + WAIT;
    while assigned(&busy).await < 2 {
        assert!(
            tokio::time::Instant::now() < until,
            "the idle consumer never expired"
        );
        assert!(recv_one(&busy, Duration::from_millis(100))
            .await
            .expect("recv")
            .is_none());
    }
    // The busy consumer now reads both vgroups.
    insert(&s, 8, 0..16);
    let got = recv_until(&busy, WAIT, |r| row_count(r) >= 16).await;
    assert_eq!(ids(&got), (0..16).collect());
    assert_eq!(got.iter().map(|r| r.vgroup).collect::<BTreeSet<_>>().len(), 2);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_beyond_wal_retention_are_only_readable_with_snapshots() {
    let s = Server::start().await;
    setup(&s, 1, "wal_retention_period 1");
    insert(&s, 3, 0..30);
    let written = simulator::tdengine::store::now_ms();
    // Let the retention period pass (waiting on the clock is the point of this test).
    s.wait_until("retention passed", |_| {
        simulator::tdengine::store::now_ms() > written + 1100
    })
    .await;

    let plain = log_only_consumer_gets_nothing(&s, "trimmed rows came from the log").await;
    let assignment = plain.topic_assignment("t").await;
    // Only the consumer's own subscribe (TMQ_SUBSCRIBE takes a version too) is left in the log.
    assert_eq!(
        assignment[0].end() - assignment[0].begin(),
        1,
        "the log still holds entries: {assignment:?}"
    );

    let snap = s
        .consumer(
            "group.id=s&auto.offset.reset=earliest&experimental.snapshot.enable=true",
            &["t"],
        )
        .await
        .expect("snapshot");
    let got = recv_until(&snap, WAIT, |r| row_count(r) >= 30).await;
    assert!(recv_rest(&snap, QUIET).await.is_empty());
    assert_eq!(ids(&got), (0..30).collect());
}

/// The bridge scenario `snapshot-enable`, at the TMQ layer: with `WAL_RETENTION_PERIOD 0` nothing stays in the
/// log once written, so `earliest` must start at the beginning of the data (not at the log's first retained
/// version, which is past every row) and the rows come from the snapshot — in capped chunks, then the log.
/// The position after the last snapshot chunk is past the snapshot, so committing it does not replay it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_with_retention_zero_reads_rows_written_before_subscribing() {
    let s = Server::with_config(TmqConfig {
        max_rows_per_message: 2,
        ..TmqConfig::default()
    })
    .await;
    setup(&s, 1, "wal_retention_period 0");
    insert(&s, 2, 0..5);

    let _plain = log_only_consumer_gets_nothing(&s, "rows came from a log that retains nothing").await;

    let dsn = "group.id=s&auto.offset.reset=earliest&experimental.snapshot.enable=true";
    let snap = s.consumer(dsn, &["t"]).await.expect("snapshot");
    let got = recv_until(&snap, WAIT, |r| row_count(r) >= 5).await;
    assert_eq!(ids(&got), (0..5).collect(), "{}", summary(&got));
    assert!(got.len() >= 3, "5 rows at 2 per message: {}", summary(&got));
    let tags: BTreeSet<String> = rows(&got).iter().map(|r| r[3].clone()).collect();
    assert_eq!(tags, ["0", "1"].map(String::from).into(), "tag column projected");
    let last_position = got.last().expect("a message").position;
    let end = s.store.wal(2).expect("vgroup 2").lock().last_version() + 1;
    assert_eq!(
        last_position,
        end,
        "position after the last snapshot chunk: {}",
        summary(&got)
    );

    // Writes after the snapshot come from the log, once (a log that keeps them: with retention 0 they would
    // be gone before any poll, and only another snapshot could read them).
    s.sql("alter database db wal_retention_period 3600");
    insert(&s, 2, 5..7);
    let more = recv_until(&snap, WAIT, |r| row_count(r) >= 2).await;
    assert_eq!(ids(&more), (5..7).collect());
    assert!(recv_rest(&snap, QUIET).await.is_empty());

    // Committed after the snapshot: a restarted member of the group does not replay it.
    commit_positions(&snap, &got).await;
    drop(snap);
    s.wait_until("left", |s| s.tmq.subscribers("t") <= 1).await;
    let again = s.consumer(dsn, &["t"]).await.expect("again");
    let replayed = recv_rest(&again, QUIET).await;
    assert_eq!(ids(&replayed), (5..7).collect(), "{}", summary(&replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_commits_what_was_consumed() {
    let s = Server::start().await;
    setup(&s, 1, "");
    insert(&s, 2, 0..10);
    let dsn = "group.id=g&auto.offset.reset=earliest&enable.auto.commit=true&auto.commit.interval.ms=100";
    let c = s.consumer(dsn, &["t"]).await.expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 10).await;
    let position = got.last().expect("a message").position;
    let until = tokio::time::Instant::now() + WAIT;
    while c.committed("t", 2).await.expect("committed") != position {
        assert!(tokio::time::Instant::now() < until, "never auto-committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    s.wait_until("left", |s| s.tmq.subscribers("t") == 0).await;
    let subs = s.sql("show subscriptions");
    assert_eq!(subs.rows.len(), 1);
    assert_eq!(
        subs.rows[0][4],
        simulator::tdengine::types::Value::VarChar(format!("log:{position}"))
    );
    insert(&s, 2, 10..12);
    let c = s.consumer(dsn, &["t"]).await.expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 2).await;
    assert!(recv_rest(&c, QUIET).await.is_empty());
    assert_eq!(ids(&got), (10..12).collect());
}

async fn assigned(c: &taos::Consumer) -> usize {
    c.assignments()
        .await
        .expect("assignments")
        .into_iter()
        .flat_map(|(_, a)| a)
        .count()
}
