//! How the stand-in cuts TMQ responses into blocks and numbers WAL versions, per reported version, as
//! the official `taos` 0.12.3 client sees it (rows per block, blocks per message, table names, the
//! position after each message), plus the message offset on the wire (`reqOffset` from 3.1, the
//! position after the message before). The model and its TDengine sources: docs/standin.md.

mod tmq_support;

use std::time::Duration;

use serde_json::{json, Value};
use taos::{AsAsyncConsumer, IsAsyncData, IsOffset, MessageSet, Timeout};
use tmq_support::wire::{connect, reply, send};
use tmq_support::Server;

/// The seed's SQL (database `db` with one vgroup, super table, query topic, one auto-creating insert).
fn seed(s: &Server) {
    s.sql("create database db vgroups 1");
    s.sql("create table db.meters (ts timestamp, f1 int) tags(t1 int)");
    s.sql("create topic topic_meters as select ts, tbname, f1, t1 from db.meters");
    s.sql("insert into db.tb using db.meters tags(1) values(1700000000000, 1)");
}

/// One message as the client saw it: (table name of each block, rows of each block) and the position after.
#[derive(Debug, PartialEq)]
struct Cut {
    blocks: Vec<(Option<String>, usize)>,
    position: i64,
}

async fn recv(c: &taos::Consumer) -> Cut {
    let (offset, set) = c
        .recv_timeout(Timeout::Duration(Duration::from_secs(5)))
        .await
        .expect("poll")
        .expect("a message");
    let MessageSet::Data(data) = set else {
        panic!("data expected")
    };
    let mut blocks = Vec::new();
    while let Some(b) = data.fetch_raw_block().await.expect("fetch") {
        blocks.push((b.table_name().map(str::to_string), b.nrows()));
    }
    let position = c
        .position(offset.topic(), offset.vgroup_id())
        .await
        .expect("position");
    Cut { blocks, position }
}

async fn nothing_more(c: &taos::Consumer) {
    let more = c
        .recv_timeout(Timeout::Duration(Duration::from_millis(300)))
        .await
        .expect("poll");
    assert!(more.is_none(), "unexpected message");
}

fn named(v: &[(&str, usize)]) -> Vec<(Option<String>, usize)> {
    v.iter().map(|(t, n)| (Some(t.to_string()), *n)).collect()
}

/// The seed, then a multi-table INSERT (`tb` one row, `tc` auto-created with two) and one more row into
/// `tb`, consumed from `earliest`. WAL: sync no-op 0, CREATE_STB 1, the seed's insert 2, the consumer's
/// subscribe 3, the multi-table insert 4, the last insert 5.
async fn seed_and_multi_table_insert(version: &str) -> (Cut, Cut) {
    let s = Server::at_version(version).await;
    seed(&s);
    let c = s
        .consumer("group.id=cut&auto.offset.reset=earliest", &["topic_meters"])
        .await
        .expect("consumer");
    let first = recv(&c).await;
    s.sql(
        "insert into db.tb values(1700000000001, 2) db.tc using db.meters tags(2) values(1700000000000, 3)(1700000000001, 4)",
    );
    s.sql("insert into db.tb values(1700000000002, 5)");
    let second = recv(&c).await;
    nothing_more(&c).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_3_3_every_table_of_every_insert_is_a_block_of_its_own() {
    for version in ["3.3.6.0", "3.3.0.0"] {
        let (first, second) = seed_and_multi_table_insert(version).await;
        // The seed's row: one block of one row; the scan read on to the subscribe, so the position is 4
        // (the bridge publishes offset 3 = position - 1).
        assert_eq!(
            first,
            Cut {
                blocks: named(&[("tb", 1)]),
                position: 4
            },
            "{version}"
        );
        // Two inserts, three blocks: one per table per insert, `tb`'s two writes not merged.
        assert_eq!(
            second,
            Cut {
                blocks: named(&[("tb", 1), ("tc", 2), ("tb", 1)]),
                position: 6
            },
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_3_4_a_query_topics_rows_come_as_one_block_without_a_table_name() {
    let (first, second) = seed_and_multi_table_insert("3.4.0.0").await;
    assert_eq!(first.position, 4);
    assert_eq!(first.blocks.len(), 1);
    assert_eq!(first.blocks[0].1, 1);
    assert_eq!(second.position, 6);
    assert_eq!(second.blocks.len(), 1, "{second:?}");
    assert_eq!(second.blocks[0].1, 4);
    assert!(
        second.blocks[0].0.as_deref().unwrap_or_default().is_empty(),
        "{second:?}"
    );
}

/// "N meters, one row per INSERT": up to 3.3 every row is a block; a message still closes at 4096 rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_3_3_meters_inserting_one_row_each_give_one_block_per_row() {
    let s = Server::at_version("3.3.6.0").await;
    seed(&s);
    let c = s
        .consumer("group.id=cut&auto.offset.reset=earliest", &["topic_meters"])
        .await
        .expect("consumer");
    recv(&c).await;
    for i in 0..10 {
        s.sql(&format!(
            "insert into db.m{} using db.meters tags({i}) values(1700000000000, {i})",
            i % 5
        ));
    }
    let cut = recv(&c).await;
    assert_eq!(cut.blocks.len(), 10, "{cut:?}");
    assert!(cut.blocks.iter().all(|(_, rows)| *rows == 1), "{cut:?}");
    assert_eq!(
        cut.position, 14,
        "after the subscribe (3) and ten inserts (4..=13)"
    );
}

/// The poll reply's `offset` for the seed's message and the next one, and the position after each, with
/// `config` sent at subscribe.
async fn wire_offsets(version: &str, config: Value) -> Vec<(i64, i64)> {
    let s = Server::at_version(version).await;
    seed(&s);
    let mut ws = connect(&s).await;
    send(
        &mut ws,
        "subscribe",
        json!({"req_id": 1, "user": "root", "password": "taosdata", "group_id": "w",
               "offset_rest": "earliest", "with_table_name": "true", "auto_commit": "false",
               "topics": ["topic_meters"], "config": config}),
    )
    .await;
    assert_eq!(reply(&mut ws).await["code"], 0);
    s.sql(
        "insert into db.tb values(1700000000001, 2) db.tc using db.meters tags(2) values(1700000000000, 3)",
    );
    let mut got = Vec::new();
    for req in 0..3 {
        send(&mut ws, "poll", json!({"req_id": 10 + req, "blocking_time": 500})).await;
        let p = reply(&mut ws).await;
        if p["have_message"] != true {
            break;
        }
        send(
            &mut ws,
            "position",
            json!({"req_id": 20 + req, "topic_vgroup_ids": [{"topic": "topic_meters", "vgroup_id": 2}]}),
        )
        .await;
        let pos = reply(&mut ws).await["position"][0].as_i64().expect("position");
        got.push((p["offset"].as_i64().expect("offset"), pos));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_offset_is_where_the_poll_started_from_3_1_and_min_poll_rows_is_honoured_from_3_3_6() {
    // Default limits: one response from earliest (version 0) over everything; offset = reqOffset = 0.
    assert_eq!(wire_offsets("3.3.6.0", json!({})).await, [(0, 5)]);
    // min.poll.rows 1 at 3.3.6: a response per block; inside the multi-table insert (4) the position is
    // 5 while `tc`'s block still comes next, from the same position.
    assert_eq!(
        wire_offsets("3.3.6.0", json!({"min.poll.rows": "1"})).await,
        [(0, 3), (3, 5), (5, 5)]
    );
    // 3.3.5 ignores the client's option (the server's 4096 rows apply).
    assert_eq!(
        wire_offsets("3.3.5.0", json!({"min.poll.rows": "1"})).await,
        [(0, 5)]
    );
    // 3.0 reported the message's last version read.
    assert_eq!(wire_offsets("3.0.7.0", json!({})).await, [(4, 5)]);
}
