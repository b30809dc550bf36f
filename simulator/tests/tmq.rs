//! TMQ through the unchanged official client against the stand-in: delivery exactly once per committed
//! offset, redelivery of what was not committed, consumer groups, meta events, the seed example, offset
//! reset policies and error codes.

mod tmq_support;

use std::collections::BTreeSet;
use std::time::Duration;

use simulator::tdengine::tmq::TmqConfig;
use taos::AsAsyncConsumer;
use tmq_support::*;

use simulator::tdengine::fixture::{insert_sql, BASE_TS};

/// Creates `db` with `vgroups` and super table `meters (ts, f1 int) tags (t1 int)`.
fn schema(s: &Server, vgroups: u32) {
    s.sql(&format!("create database db vgroups {vgroups}"));
    s.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
}

/// Inserts rows `ids` spread over `tables` child tables (`f1` = id, `ts` = BASE_TS + id).
fn insert(s: &Server, tables: u32, ids: std::ops::Range<u32>) {
    s.sql(&insert_sql(tables, ids));
}

/// The `f1` ids of the received rows of topic `select ts, tbname, f1, t1`.
fn ids(received: &[Received]) -> Vec<u32> {
    rows(received).iter().map(|r| r[2].parse().expect("f1")).collect()
}

fn all_distinct(ids: &[u32]) -> BTreeSet<u32> {
    let set: BTreeSet<u32> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "duplicates in {ids:?}");
    set
}

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_is_consumed_once_and_a_restart_resumes_at_the_committed_offset() {
    let s = Server::start().await;
    schema(&s, 2);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    insert(&s, 10, 0..200);
    insert(&s, 10, 200..300);

    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 300).await;
    let mut rest = recv_rest(&c, QUIET).await;
    assert!(rest.is_empty(), "more than inserted: {rest:?}");
    assert_eq!(all_distinct(&ids(&got)), (0..300).collect());
    commit_positions(&c, &got).await;
    drop(c);
    s.wait_until("the consumer left", |s| s.tmq.subscribers("t") == 0)
        .await;

    insert(&s, 10, 300..350);
    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 50).await;
    rest = recv_rest(&c, QUIET).await;
    assert!(rest.is_empty(), "repeated after restart: {rest:?}");
    assert_eq!(all_distinct(&ids(&got)), (300..350).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_consumed_but_not_committed_are_delivered_again() {
    // Ten rows per message, so the writes below make four messages.
    let s = Server::with_config(TmqConfig {
        max_rows_per_message: 10,
        ..Default::default()
    })
    .await;
    schema(&s, 1);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    for batch in 0..4 {
        insert(&s, 2, batch * 10..batch * 10 + 10);
    }
    let config = "group.id=g&auto.offset.reset=earliest";
    let c = s.consumer(config, &["t"]).await.expect("consumer");
    let first = recv_until(&c, WAIT, |r| !r.is_empty()).await;
    commit_positions(&c, &first).await;
    let committed_ids = all_distinct(&ids(&first));
    assert_eq!(committed_ids.len(), 10);
    let after = recv_until(&c, WAIT, |r| {
        row_count(&[first.clone(), r.to_vec()].concat()) >= 40
    })
    .await;
    assert_eq!(row_count(&after), 30);
    let seen: BTreeSet<u32> = committed_ids
        .union(&all_distinct(&ids(&after)))
        .copied()
        .collect();
    assert_eq!(seen, (0..40).collect());
    // Committed: the first message. Consumed and not committed: the rest.
    let vg = first[0].vgroup;
    assert_eq!(c.committed("t", vg).await.expect("committed"), first[0].position);
    drop(c);
    s.wait_until("the consumer left", |s| s.tmq.subscribers("t") == 0)
        .await;

    let c = s.consumer(config, &["t"]).await.expect("consumer");
    let again = recv_until(&c, WAIT, |r| {
        row_count(r) >= after.iter().map(|r| r.items.len()).sum()
    })
    .await;
    assert!(recv_rest(&c, QUIET).await.is_empty());
    let again = all_distinct(&ids(&again));
    assert_eq!(
        again,
        all_distinct(&ids(&after)),
        "exactly the uncommitted rows come again"
    );
    assert!(again.is_disjoint(&committed_ids));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_four_vgroups_and_the_survivor_takes_over_from_the_committed_offset() {
    let s = Server::start().await;
    schema(&s, 4);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    insert(&s, 16, 0..400);
    let config = "group.id=g&auto.offset.reset=earliest";
    let a = s.consumer(config, &["t"]).await.expect("a");
    let b = s.consumer(config, &["t"]).await.expect("b");

    let vgroups =
        |assignments: Option<Vec<(String, Vec<taos::taos_query::tmq::Assignment>)>>| -> BTreeSet<i32> {
            assignments
                .expect("assignments")
                .into_iter()
                .flat_map(|(_, v)| v)
                .map(|x| x.vgroup_id())
                .collect()
        };
    let va = vgroups(a.assignments().await);
    let vb = vgroups(b.assignments().await);
    assert_eq!(va.len(), 2, "{va:?}");
    assert_eq!(vb.len(), 2, "{vb:?}");
    assert!(va.is_disjoint(&vb));

    // Together they receive everything, disjointly, each only from its own vgroups.
    let mut got_a: Vec<Received> = Vec::new();
    let mut got_b: Vec<Received> = Vec::new();
    let until = tokio::time::Instant::now() + WAIT;
    while row_count(&got_a) + row_count(&got_b) < 400 {
        assert!(
            tokio::time::Instant::now() < until,
            "a: {}, b: {}",
            row_count(&got_a),
            row_count(&got_b)
        );
        got_a.extend(recv_one(&a, Duration::from_millis(100)).await.expect("a recv"));
        got_b.extend(recv_one(&b, Duration::from_millis(100)).await.expect("b recv"));
    }
    assert!(got_a.iter().all(|r| va.contains(&r.vgroup)));
    assert!(got_b.iter().all(|r| vb.contains(&r.vgroup)));
    let ia = all_distinct(&ids(&got_a));
    let ib = all_distinct(&ids(&got_b));
    assert!(ia.is_disjoint(&ib));
    assert_eq!(
        ia.union(&ib).copied().collect::<BTreeSet<_>>(),
        (0..400).collect()
    );

    // A vgroup assigned to the other consumer cannot be committed (TDengine's client checks its own
    // vgroups: TSDB_CODE_TMQ_INVALID_VGID), and the group's commit stays where it was.
    let theirs = *vb.first().expect("b has vgroups");
    let before = a.committed("t", theirs).await.expect("committed");
    let err = a.commit_offset("t", theirs, 1).await.expect_err("not a's vgroup");
    assert_eq!(err.code(), 0x4008, "{err}");
    assert_eq!(a.committed("t", theirs).await.expect("committed"), before);
    // Nor an offset past the end of the vgroup's WAL (TSDB_CODE_TMQ_VERSION_OUT_OF_RANGE, as `seek`).
    let mine = *va.first().expect("a has vgroups");
    let err = a
        .commit_offset("t", mine, 1_000_000)
        .await
        .expect_err("past the WAL");
    assert_eq!(err.code(), 0x4007, "{err}");

    // `a` commits what it consumed and leaves; `b` takes its vgroups over from there.
    commit_positions(&a, &got_a).await;
    drop(a);
    s.wait_until("a left", |s| s.tmq.subscribers("t") == 1).await;
    insert(&s, 16, 400..480);
    let more = recv_until(&b, WAIT, |r| row_count(r) >= 80).await;
    assert!(
        recv_rest(&b, QUIET).await.is_empty(),
        "a's committed rows came again"
    );
    assert_eq!(all_distinct(&ids(&more)), (400..480).collect());
    assert_eq!(vgroups(b.assignments().await), va.union(&vb).copied().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_with_meta_database_topic_delivers_create_alter_drop_delete_in_order_with_the_data() {
    let s = Server::start().await;
    s.sql("create database db vgroups 1");
    s.sql("create topic t with meta as database db");
    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");
    s.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
    s.sql("create table db.d0 using db.meters tags (7)");
    s.sql(&format!("insert into db.d0 values ({BASE_TS}, 1)"));
    s.sql("alter stable db.meters add column f2 int");
    s.sql(&format!("insert into db.d0 values ({}, 2, 20)", BASE_TS + 1));
    s.sql(&format!("delete from db.d0 where ts <= {BASE_TS}"));
    s.sql("drop table db.d0");

    let got = recv_until(&c, WAIT, |r| r.iter().flat_map(|r| &r.items).count() >= 7).await;
    assert!(recv_rest(&c, QUIET).await.is_empty());
    let seq: Vec<String> = got
        .iter()
        .flat_map(|r| &r.items)
        .map(|g| match g {
            Got::Meta { json, .. } => format!("meta:{}", json["type"].as_str().unwrap_or("?")),
            Got::Row { values, .. } => format!("row:{}", values[1]),
        })
        .collect();
    assert_eq!(
        seq,
        [
            "meta:create",
            "meta:create",
            "row:1",
            "meta:alter",
            "row:2",
            "meta:delete",
            "meta:drop"
        ]
    );
    let metas: Vec<&serde_json::Value> = got
        .iter()
        .flat_map(|r| &r.items)
        .filter_map(|g| match g {
            Got::Meta { json, .. } => Some(json),
            Got::Row { .. } => None,
        })
        .collect();
    assert_eq!(metas[0]["tableType"], "super");
    assert_eq!(metas[0]["tableName"], "meters");
    assert_eq!(metas[1]["tableType"], "child");
    assert_eq!(metas[1]["using"], "meters");
    assert_eq!(metas[2]["colName"], "f2");
}

/// As in TDengine, an insert that auto-creates its child table (`USING … TAGS`) is one log entry: a
/// `WITH META` topic gets it as one meta+data message (type 3, the plural meta JSON), other topics as data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_creating_insert_is_one_meta_data_message_for_with_meta_topics() {
    let s = Server::start().await;
    s.sql("create database db vgroups 1");
    s.sql("create stable db.meters (ts timestamp, f1 int) tags (t1 int)");
    s.sql("create topic m with meta as database db");
    s.sql("create topic q as select ts, tbname, f1, t1 from db.meters");
    let with_meta = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["m"])
        .await
        .expect("consumer of m");
    let data_only = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["q"])
        .await
        .expect("consumer of q");
    s.sql(&format!(
        "insert into db.d0 using db.meters tags (7) values ({BASE_TS}, 1) db.d1 using db.meters tags (8) values ({BASE_TS}, 2)"
    ));
    s.sql(&format!("insert into db.d0 values ({}, 3)", BASE_TS + 1));

    let got = recv_until(&with_meta, WAIT, |r| row_count(r) >= 3).await;
    assert!(recv_rest(&with_meta, QUIET).await.is_empty());
    let types: Vec<u8> = got.iter().map(|r| r.message_type).collect();
    // The plain insert may ride in the meta+data message (consecutive writes are batched) or follow as data.
    assert!(
        types.starts_with(&[2, 3]) && types[2..].iter().all(|t| *t == 1),
        "create stable, then the auto-creating insert: {types:?}"
    );
    let Got::Meta { json, .. } = &got[1].items[0] else {
        panic!("meta first: {:?}", got[1].items)
    };
    assert_eq!(json["tmq_meta_version"], "1.0");
    let metas = json["metas"].as_array().expect("plural meta JSON");
    let created: Vec<_> = metas
        .iter()
        .map(|m| (m["tableName"].clone(), m["tableType"].clone()))
        .collect();
    assert_eq!(
        created,
        [
            (serde_json::json!("d0"), serde_json::json!("child")),
            (serde_json::json!("d1"), serde_json::json!("child"))
        ]
    );
    assert_eq!(metas[0]["using"], "meters");
    let rows: Vec<_> = got
        .iter()
        .flat_map(|r| &r.items)
        .filter_map(Got::row_values)
        .collect();
    assert_eq!(rows.len(), 3, "{}", summary(&got));
    // One log version per write: the sync no-op (0), create stable (1), the two subscribes (2, 3: each
    // consumer took a vgroup), the auto-creating insert (4), the plain insert (5).
    assert_eq!(got[0].position, 2);
    assert_eq!(got.last().expect("messages").position, 6);

    let got = recv_until(&data_only, WAIT, |r| row_count(r) >= 3).await;
    assert!(recv_rest(&data_only, QUIET).await.is_empty());
    assert!(got.iter().all(|r| r.message_type == 1), "{}", summary(&got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_example_yields_ts_tbname_f1_t1_from_vgroup_2() {
    // taos 0.12.3 takes the same TMQ path at every version (it never asks on /rest/tmq); both the version
    // before the newer generation's raw fetch and a current release are pinned here.
    for version in ["3.3.0.0", "3.3.6.0"] {
        seed_example_at(version).await;
    }
}

async fn seed_example_at(version: &str) {
    let s = Server::at_version(version).await;
    s.sql("create database db vgroups 1");
    s.sql("create table db.meters (ts timestamp, f1 int) tags(t1 int)");
    s.sql("create topic topic_meters as select ts, tbname, f1, t1 from db.meters");
    s.sql("insert into db.tb using db.meters tags(1) values(now, 1)");
    let c = s
        .consumer(
            "group.id=taosx-pub-test&auto.offset.reset=earliest",
            &["topic_meters"],
        )
        .await
        .expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 1).await;
    let Got::Row {
        vgroup,
        table,
        fields,
        values,
    } = &got[0].items[0]
    else {
        panic!("{got:?}")
    };
    assert_eq!(*vgroup, 2);
    assert_eq!(table, "tb");
    assert_eq!(fields, &["ts", "tbname", "f1", "t1"]);
    assert_eq!(&values[1..], ["tb", "1", "1"]);
    assert_eq!(got[0].topic, "topic_meters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_sees_only_new_rows_and_none_without_a_commit_is_an_error() {
    let s = Server::start().await;
    schema(&s, 2);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    insert(&s, 4, 0..20);
    // latest is the default
    let latest = s.consumer("group.id=l", &["t"]).await.expect("latest");
    let earliest = s
        .consumer("group.id=e&auto.offset.reset=earliest", &["t"])
        .await
        .expect("earliest");
    insert(&s, 4, 20..30);
    let got = recv_until(&latest, WAIT, |r| row_count(r) >= 10).await;
    assert!(recv_rest(&latest, QUIET).await.is_empty());
    assert_eq!(all_distinct(&ids(&got)), (20..30).collect());
    let got = recv_until(&earliest, WAIT, |r| row_count(r) >= 30).await;
    assert_eq!(all_distinct(&ids(&got)), (0..30).collect());

    let none = s
        .consumer("group.id=n&auto.offset.reset=none", &["t"])
        .await
        .expect("subscribe works");
    let err = recv_one(&none, Duration::from_secs(2))
        .await
        .expect_err("nothing committed");
    assert_eq!(err.code(), 0x0A0D, "{err}");
    // Once the group committed, `none` resumes from there.
    none.commit_offset("t", 2, 1).await.expect("commit");
    none.commit_offset("t", 3, 1).await.expect("commit");
    drop(none);
    s.wait_until("n left", |s| s.tmq.subscribers("t") == 2).await;
    let none = s
        .consumer("group.id=n&auto.offset.reset=none", &["t"])
        .await
        .expect("subscribe");
    let got = recv_until(&none, WAIT, |r| row_count(r) >= 30).await;
    assert_eq!(all_distinct(&ids(&got)), (0..30).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_bad_parameters_and_dropping_a_subscribed_topic_give_tdengine_codes() {
    let s = Server::start().await;
    schema(&s, 1);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    let err = s
        .consumer("group.id=g", &["nope"])
        .await
        .expect_err("unknown topic");
    assert_eq!(err.code(), 0x03E1, "{err}");
    let err = s
        .consumer("group.id=g&auto.offset.reset=sideways", &["t"])
        .await
        .expect_err("bad reset");
    assert_eq!(err.code(), 0x0118, "{err}");

    let c = s.consumer("group.id=g", &["t"]).await.expect("consumer");
    let err = s.try_sql("drop topic t").expect_err("subscribed");
    assert_eq!(err.code, 0x03EB_u32, "{err}");
    let consumers = s.sql("show consumers");
    assert_eq!(consumers.rows.len(), 1);
    drop(c);
    s.wait_until("the consumer left", |s| s.tmq.subscribers("t") == 0)
        .await;
    s.sql("drop topic t");
    let err = s.consumer("group.id=g", &["t"]).await.expect_err("dropped");
    assert_eq!(err.code(), 0x03E1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filters_and_stable_topics_keep_only_their_tables() {
    let s = Server::start().await;
    schema(&s, 2);
    s.sql("create stable db.other (ts timestamp, f1 int) tags (t1 int)");
    s.sql("create topic q as select ts, tbname, f1, t1 from db.meters where t1 = 1");
    s.sql("create topic st with meta as stable db.meters where t1 >= 2");
    let q = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["q"])
        .await
        .expect("q");
    let st = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["st"])
        .await
        .expect("st");
    insert(&s, 4, 0..40); // d0..d3 with t1 = 0..3
    s.sql(&format!(
        "insert into db.x0 using db.other tags (1) values ({BASE_TS}, 999)"
    ));

    let got = recv_until(&q, WAIT, |r| row_count(r) >= 10).await;
    assert!(recv_rest(&q, QUIET).await.is_empty());
    assert!(
        rows(&got).iter().all(|r| r[1] == "d1" && r[3] == "1"),
        "{}",
        summary(&got)
    );
    assert_eq!(all_distinct(&ids(&got)), (0..40).filter(|i| i % 4 == 1).collect());

    let got = recv_until(&st, WAIT, |r| row_count(r) >= 20).await;
    assert!(recv_rest(&st, QUIET).await.is_empty());
    let tables: BTreeSet<String> = got
        .iter()
        .flat_map(|r| &r.items)
        .filter_map(|g| match g {
            Got::Row { table, fields, .. } => {
                assert_eq!(
                    fields,
                    &["ts", "f1"],
                    "a stable topic carries the columns as written"
                );
                Some(table.clone())
            }
            Got::Meta { json, .. } => {
                assert_ne!(json["tableName"], "other", "meta of another super table");
                None
            }
        })
        .collect();
    assert_eq!(tables, ["d2", "d3"].map(String::from).into());
}

/// TDengine's client reports `assignment().end` as the vnode's last WAL version + 1 (clientTmq.c adds 1
/// to the `walever` the vnode sends), `begin` as its first version: a consumer that read everything is
/// positioned at `end`, and each write moves `end` by one. The bridge's lag metric relies on this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_end_is_the_last_wal_version_plus_one() {
    let s = Server::start().await;
    schema(&s, 1);
    s.sql("create topic t as select ts, tbname, f1, t1 from db.meters");
    s.sql("create table db.d0 using db.meters tags (0)");
    let write = |id: i64| s.sql(&format!("insert into db.d0 values ({}, {id})", BASE_TS + id));
    for id in 0..4 {
        write(id);
    }
    let c = s
        .consumer("group.id=g&auto.offset.reset=earliest", &["t"])
        .await
        .expect("consumer");
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 4).await;
    let vg = got[0].vgroup;
    let wal_end = || s.store.wal(vg).unwrap().lock().last_version() + 1;
    let a = c.topic_assignment("t").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].end(), wal_end(), "{a:?}");
    assert_eq!(
        c.position("t", vg).await.expect("position"),
        a[0].end(),
        "read everything"
    );
    assert!(a[0].begin() <= a[0].end() - 4, "four writes in the log: {a:?}");

    write(4);
    let got = recv_until(&c, WAIT, |r| row_count(r) >= 1).await;
    let b = c.topic_assignment("t").await;
    assert_eq!(b[0].end(), a[0].end() + 1, "one write, one version: {b:?}");
    assert_eq!(got.last().unwrap().position, b[0].end());
}
