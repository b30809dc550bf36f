//! The `/rest/tmq` wire protocol as the newer client generation speaks it (`version` first, `message_id`
//! in `poll`, blocking polls), driven frame by frame over a plain WebSocket.

mod tmq_support;

use std::time::Duration;

use serde_json::{json, Value};
use tmq_support::wire::{connect, next, reply, send};
use tmq_support::Server;
use tokio_tungstenite::tungstenite::Message;

fn subscribe_args(password: &str) -> Value {
    json!({
        "req_id": 1, "user": "root", "password": password, "db": "", "group_id": "g", "client_id": null,
        "offset_rest": "earliest", "snapshot_enable": "false", "with_table_name": "true",
        "auto_commit": "false", "auto_commit_interval_ms": null, "offset_seek": null, "topics": ["t"],
        "enable_batch_meta": "0", "msg_consume_excluded": "0", "config": {"session.timeout.ms": "12000"},
        "connector": "rust-3.0", "tz": "UTC", "app": "test", "ip": "127.0.0.1"
    })
}

fn setup() -> impl Fn(&Server) {
    |s: &Server| {
        s.sql("create database db vgroups 1");
        s.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
        s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_clients_get_version_blocking_polls_and_lost_messages_re_sent() {
    let s = Server::start().await;
    setup()(&s);
    let mut ws = connect(&s).await;
    send(&mut ws, "version", json!({"req_id": 0})).await;
    let v = reply(&mut ws).await;
    assert_eq!(
        (v["code"].as_i64(), v["version"].as_str()),
        (Some(0), Some(simulator::tdengine::server::DEFAULT_SERVER_VERSION))
    );

    send(&mut ws, "subscribe", subscribe_args("taosdata")).await;
    let v = reply(&mut ws).await;
    assert_eq!(v["code"], 0, "{v}");
    s.sql("insert into db.d0 using db.meters tags (0) values (1700000000000, 1)");

    send(
        &mut ws,
        "poll",
        json!({"req_id": 2, "blocking_time": 1000, "message_id": 0}),
    )
    .await;
    let first = reply(&mut ws).await;
    assert_eq!(
        (first["have_message"].as_bool(), first["req_id"].as_u64()),
        (Some(true), Some(2)),
        "{first}"
    );
    let id = first["message_id"].as_u64().expect("message_id");

    // The client says it never saw that message: the same one comes again.
    send(
        &mut ws,
        "poll",
        json!({"req_id": 3, "blocking_time": 1000, "message_id": 0}),
    )
    .await;
    let again = reply(&mut ws).await;
    assert_eq!(again["message_id"], id);
    assert_eq!(again["offset"], first["offset"]);

    send(&mut ws, "fetch", json!({"req_id": 4, "message_id": id})).await;
    let f = reply(&mut ws).await;
    assert_eq!(
        (f["completed"].as_bool(), f["rows"].as_u64()),
        (Some(false), Some(1)),
        "{f}"
    );
    assert_eq!(f["fields_names"], json!(["ts", "tbname", "f1", "t1"]));
    send(&mut ws, "fetch_block", json!({"req_id": 4, "message_id": id})).await;
    let Message::Binary(block) = next(&mut ws).await else {
        panic!("binary block expected")
    };
    assert_eq!(
        u64::from_le_bytes(block[8..16].try_into().unwrap()),
        4,
        "routed by req_id"
    );
    assert_eq!(u64::from_le_bytes(block[16..24].try_into().unwrap()), id);
    let len = i32::from_le_bytes(block[28..32].try_into().unwrap()) as usize;
    assert_eq!(len, block.len() - 24, "raw block length is exact");
    send(&mut ws, "fetch", json!({"req_id": 5, "message_id": id})).await;
    assert_eq!(reply(&mut ws).await["completed"], true);

    // Nothing new: a blocking poll answers empty after its blocking time…
    send(
        &mut ws,
        "poll",
        json!({"req_id": 6, "blocking_time": 200, "message_id": id}),
    )
    .await;
    let empty = reply(&mut ws).await;
    assert_eq!(
        (empty["have_message"].as_bool(), empty["req_id"].as_u64()),
        (Some(false), Some(6))
    );
    // …and wakes up as soon as a write lands.
    let started = tokio::time::Instant::now();
    send(
        &mut ws,
        "poll",
        json!({"req_id": 7, "blocking_time": 5000, "message_id": id}),
    )
    .await;
    s.sql("insert into db.d0 values (1700000000001, 2)");
    let woke = reply(&mut ws).await;
    assert_eq!(woke["have_message"], true, "{woke}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the poll waited out its blocking time"
    );
    assert_ne!(woke["message_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_replies_and_the_connection_lives_on() {
    let s = Server::start().await;
    setup()(&s);
    let mut ws = connect(&s).await;
    send(&mut ws, "subscribe", subscribe_args("wrong")).await;
    let v = reply(&mut ws).await;
    assert_eq!(
        (v["code"].as_i64(), v["req_id"].as_u64()),
        (Some(0x0357), Some(1)),
        "{v}"
    );

    send(&mut ws, "dance", json!({"req_id": 9})).await;
    let v = reply(&mut ws).await;
    assert_eq!(
        (v["code"].as_i64(), v["action"].as_str()),
        (Some(0xFFFF), Some("dance"))
    );
    assert!(v["message"].as_str().unwrap().contains("unknown action"));

    send(&mut ws, "poll", json!({"req_id": 10, "blocking_time": 0})).await;
    let v = reply(&mut ws).await;
    assert_ne!(v["code"], 0, "poll before subscribe: {v}");

    let mut args = subscribe_args("taosdata");
    args["group_id"] = Value::Null;
    send(&mut ws, "subscribe", args).await;
    assert_eq!(reply(&mut ws).await["code"], 0x0118);

    send(&mut ws, "subscribe", subscribe_args("taosdata")).await;
    assert_eq!(reply(&mut ws).await["code"], 0);
    send(
        &mut ws,
        "committed",
        json!({"req_id": 11, "topic_vgroup_ids": [{"topic": "other", "vgroup_id": 2}]}),
    )
    .await;
    let v = reply(&mut ws).await;
    assert_eq!(
        (v["code"].as_i64(), v["committed"].clone()),
        (Some(0x4009), json!([])),
        "{v}"
    );
    send(&mut ws, "fetch", json!({"req_id": 12, "message_id": 77})).await;
    let v = reply(&mut ws).await;
    assert_eq!(
        (v["code"].as_i64(), v["message_id"].as_u64()),
        (Some(0xFFFF), Some(77)),
        "{v}"
    );
    send(
        &mut ws,
        "seek",
        json!({"req_id": 13, "topic": "t", "vgroup_id": 2, "offset": 99}),
    )
    .await;
    assert_eq!(reply(&mut ws).await["code"], 0x4007);
    send(
        &mut ws,
        "position",
        json!({"req_id": 14, "topic_vgroup_ids": [{"topic": "t", "vgroup_id": 2}]}),
    )
    .await;
    let v = reply(&mut ws).await;
    assert_eq!(
        v["position"],
        json!([0]),
        "earliest: the first log version (the vnode's sync no-op) {v}"
    );
}
