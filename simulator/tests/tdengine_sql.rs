//! The TDengine stand-in driven by the unchanged official `taos` client, on the JSON fetch path
//! (server version 3.3.0.0) and the binary path (3.3.1.0).

use std::time::Duration;

use simulator::tdengine::{TdConfig, TdServer};
use taos::taos_query::common::Timestamp;
use taos::*;
use tokio_tungstenite::tungstenite::Message;

const JSON_PATH: &str = "3.3.0.0";
const BINARY_PATH: &str = "3.3.1.0";

async fn start(version: &str) -> (TdServer, Taos) {
    let server = TdServer::start(TdConfig::with_version(version))
        .await
        .expect("stand-in starts");
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .expect("client builds");
    (server, taos)
}

async fn rows(taos: &Taos, sql: &str) -> Vec<Vec<Value>> {
    let mut rs = taos.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rs.to_records().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn ts(ms: i64) -> Value {
    Value::Timestamp(Timestamp::Milliseconds(ms))
}

fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut v = vec![1, 1, 0, 0, 0];
    v.extend_from_slice(&x.to_le_bytes());
    v.extend_from_slice(&y.to_le_bytes());
    v
}

async fn every_type_round_trips(version: &str) {
    let (server, taos) = start(version).await;
    assert_eq!(taos.server_version().await.unwrap(), version);
    taos.exec("create database alltypes vgroups 2").await.unwrap();
    taos.exec(
        "create stable alltypes.st (ts timestamp, b bool, ti tinyint, si smallint, i int, bi bigint, \
         f float, d double, vc varchar(32), nc nchar(16), uti tinyint unsigned, usi smallint unsigned, \
         ui int unsigned, ubi bigint unsigned, vb varbinary(16), g geometry(64)) \
         tags (t_int int, t_nc nchar(8))",
    )
    .await
    .unwrap();
    let n = taos
        .exec(
            "insert into alltypes.c1 using alltypes.st tags (7, '北京') values \
             (1700000000000, true, -128, -32768, -2147483648, -9223372036854775808, -3.5, -1.25e300, \
              'min', '北京', 0, 0, 0, 0, '\\x00ff', 'POINT(1 2)') \
             (1700000000001, false, 127, 32767, 2147483647, 9223372036854775807, 3.4e38, 1.7e308, \
              'max', '😀 emoji', 255, 65535, 4294967295, 18446744073709551615, 'abc', 'POINT(-1.5 0)') \
             (1700000000002, null, null, null, null, null, null, null, null, null, null, null, null, null, \
              null, null)",
        )
        .await
        .unwrap();
    assert_eq!(n, 3);

    let got = rows(&taos, "select * from alltypes.c1 order by ts").await;
    let expected = vec![
        vec![
            ts(1_700_000_000_000),
            Value::Bool(true),
            Value::TinyInt(i8::MIN),
            Value::SmallInt(i16::MIN),
            Value::Int(i32::MIN),
            Value::BigInt(i64::MIN),
            Value::Float(-3.5),
            Value::Double(-1.25e300),
            Value::VarChar("min".into()),
            Value::NChar("北京".into()),
            Value::UTinyInt(0),
            Value::USmallInt(0),
            Value::UInt(0),
            Value::UBigInt(0),
            Value::VarBinary(vec![0x00, 0xff].into()),
            Value::Geometry(point_wkb(1.0, 2.0).into()),
        ],
        vec![
            ts(1_700_000_000_001),
            Value::Bool(false),
            Value::TinyInt(i8::MAX),
            Value::SmallInt(i16::MAX),
            Value::Int(i32::MAX),
            Value::BigInt(i64::MAX),
            Value::Float(3.4e38),
            Value::Double(1.7e308),
            Value::VarChar("max".into()),
            Value::NChar("😀 emoji".into()),
            Value::UTinyInt(u8::MAX),
            Value::USmallInt(u16::MAX),
            Value::UInt(u32::MAX),
            Value::UBigInt(u64::MAX),
            Value::VarBinary(b"abc".to_vec().into()),
            Value::Geometry(point_wkb(-1.5, 0.0).into()),
        ],
    ];
    assert_eq!(got.len(), 3);
    for (r, (g, e)) in got.iter().zip(&expected).enumerate() {
        for (c, (gv, ev)) in g.iter().zip(e).enumerate() {
            assert_eq!(gv, ev, "row {r} column {c}");
        }
        assert_eq!(g.len(), e.len());
    }
    let null_row = &got[2];
    assert_eq!(null_row[0], ts(1_700_000_000_002));
    for (c, v) in null_row.iter().enumerate().skip(1) {
        assert!(v.is_null(), "column {c} of the NULL row is {v:?}");
    }

    // Tags, tbname and filters on the super table.
    let got = rows(
        &taos,
        "select tbname, t_int, t_nc, vc from alltypes.st where t_nc = '北京' and ts > 1700000000000",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![
                Value::VarChar("c1".into()),
                Value::Int(7),
                Value::NChar("北京".into()),
                Value::VarChar("max".into())
            ],
            vec![
                Value::VarChar("c1".into()),
                Value::Int(7),
                Value::NChar("北京".into()),
                Value::Null(Ty::VarChar)
            ],
        ]
    );
    let count: Option<i64> = taos.query_one("select count(*) from alltypes.st").await.unwrap();
    assert_eq!(count, Some(3));
    // Empty results, and reading the (empty) result of a statement without one.
    assert!(rows(&taos, "select * from alltypes.st where ts > 1800000000000")
        .await
        .is_empty());
    assert!(rows(
        &taos,
        "create table if not exists alltypes.c1 using alltypes.st tags (7, 'x')"
    )
    .await
    .is_empty());

    // A JSON tag.
    taos.exec("create stable alltypes.js (ts timestamp, v int) tags (j json)")
        .await
        .unwrap();
    taos.exec(r#"insert into alltypes.j1 using alltypes.js tags ('{"k":"v","n":1}') values (1, 1)"#)
        .await
        .unwrap();
    let got = rows(&taos, "select j from alltypes.js").await;
    assert_eq!(
        got,
        vec![vec![Value::Json(serde_json::json!({"k": "v", "n": 1}))]]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_json_fetch_path() {
    every_type_round_trips(JSON_PATH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_binary_fetch_path() {
    every_type_round_trips(BINARY_PATH).await;
}

async fn errors_carry_tdengine_codes(version: &str) {
    let server = TdServer::start(TdConfig::with_version(version)).await.unwrap();
    let bad = format!("ws://root:wrong@{}", server.addr());
    let e = match TaosBuilder::from_dsn(&bad).unwrap().build().await {
        Ok(taos) => taos.exec("show databases").await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), 0x0357, "{e}");

    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    let e = taos.exec("selec * from t").await.unwrap_err();
    assert_eq!(e.code(), 0x2600, "{e}");
    assert!(e.to_string().contains("position 0"), "{e}");
    let e = taos.exec("create database x vgroups").await.unwrap_err();
    assert_eq!(e.code(), 0x2600, "{e}");
    taos.exec("create database x").await.unwrap();
    let e = taos.exec("create database x").await.unwrap_err();
    assert_eq!(e.code(), 0x0381, "{e}");
    let e = taos.query("select * from x.nope").await.unwrap_err();
    assert_eq!(e.code(), 0x2603, "{e}");
    let e = taos.exec("select * from nope").await.unwrap_err();
    assert_eq!(e.code(), 0x2616, "no database selected: {e}");
    let e = taos.exec("use nope").await.unwrap_err();
    assert_eq!(e.code(), 0x0388, "{e}");
    taos.exec("create table x.n (ts timestamp, v tinyint, s varchar(2), c nchar(1))")
        .await
        .unwrap();
    for (sql, code) in [
        ("insert into x.n values (1, 128, 'a', 'b')", 0x2600),
        ("insert into x.n values (1, -129, 'a', 'b')", 0x2600),
        ("insert into x.n values (1, 1, 'abc', 'b')", 0x2610),
        ("insert into x.n values (1, 1, 'a', '北京')", 0x2610),
        ("insert into x.n values (1, 1, 'a')", 0x263F),
        ("insert into x.n (ts, nope) values (1, 1)", 0x2602),
    ] {
        let e = taos.exec(sql).await.unwrap_err();
        assert_eq!(e.code(), code, "{sql}: {e}");
    }
    // The connection survives every error.
    assert_eq!(
        taos.exec("insert into x.n values (1, 1, 'ab', '京')")
            .await
            .unwrap(),
        1
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_tdengine_codes_json_path() {
    errors_carry_tdengine_codes(JSON_PATH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_tdengine_codes_binary_path() {
    errors_carry_tdengine_codes(BINARY_PATH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_sql_runs_unchanged() {
    let (server, taos) = start(JSON_PATH).await;
    for sql in [
        "create database db vgroups 1;",
        "create table db.meters (ts timestamp, f1 int) tags(t1 int);",
        "create topic topic_meters as select ts, tbname, f1, t1 from db.meters;",
        "insert into db.tb using db.meters tags(1) values(now, 1);",
    ] {
        taos.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let got = rows(&taos, "select tbname, f1, t1 from db.meters").await;
    assert_eq!(
        got,
        vec![vec![Value::VarChar("tb".into()), Value::Int(1), Value::Int(1)]]
    );
    let topics = rows(&taos, "show topics").await;
    assert_eq!(topics[0][0], Value::VarChar("topic_meters".into()));
    assert_eq!(server.store().database("db").unwrap().vgroups, vec![2]);
    let e = taos
        .exec("create topic topic_meters as database db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), 0x03E0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_meter_schema_and_ddl() {
    let (server, taos) = start(BINARY_PATH).await;
    taos.exec_many([
        "create database if not exists power vgroups 4 precision 'us' wal_retention_period 60",
        "use power",
        &simulator::meters::create_stable_sql("power"),
        "create table d0 using meters tags (1, 'California.SanFrancisco')",
        "create table d1 using meters (groupid) tags (2)",
    ])
    .await
    .unwrap();
    taos.exec(
        "insert into d0 values ('2024-01-01 00:00:00.000', 10.3, 219, 0.31) (now - 1h, 12.6, 218, 0.33) \
               d1 (ts, current) values (now, 1.5)",
    )
    .await
    .unwrap();
    let got = rows(
        &taos,
        "select tbname, groupid, location from meters where groupid = 2",
    )
    .await;
    assert_eq!(
        got,
        vec![vec![
            Value::VarChar("d1".into()),
            Value::Int(2),
            Value::Null(Ty::VarChar)
        ]]
    );
    let count: Option<i64> = taos
        .query_one("select count(*) from meters where location = 'California.SanFrancisco'")
        .await
        .unwrap();
    assert_eq!(count, Some(2));
    let precision = taos.query("select * from d0").await.unwrap().precision();
    assert_eq!(precision, Precision::Microsecond);
    let vgroups = server.store().database("power").unwrap().vgroups;
    assert_eq!(vgroups, vec![2, 3, 4, 5]);

    taos.exec("alter stable meters add column energy double")
        .await
        .unwrap();
    taos.exec("alter table d1 set tag location = 'Paris'")
        .await
        .unwrap();
    let got = rows(&taos, "select location, energy from d1").await;
    assert_eq!(
        got,
        vec![vec![Value::VarChar("Paris".into()), Value::Null(Ty::Double)]]
    );
    let desc = rows(&taos, "describe meters").await;
    assert_eq!(desc.len(), 7);
    assert_eq!(desc[4][0], Value::VarChar("energy".into()));
    assert_eq!(desc[6][3], Value::VarChar("TAG".into()));
    let deleted = taos
        .exec("delete from meters where ts < '2024-06-01 00:00:00'")
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let tables = rows(&taos, "show tables").await;
    assert_eq!(tables.len(), 2);
    taos.exec("drop table d1").await.unwrap();
    let e = taos.exec("drop table d1").await.unwrap_err();
    assert_eq!(e.code(), 0x2603);
    taos.exec("drop table if exists d1").await.unwrap();
    let stables = rows(&taos, "show stables").await;
    assert_eq!(stables[0][0], Value::VarChar("meters".into()));
    // 1000 rows through several fetch blocks on the binary path.
    let values: String = (0..5000)
        .map(|i| format!("({}, {i}.5, {i}, 0.1)", 1_800_000_000_000_000i64 + i))
        .collect();
    taos.exec(format!(
        "insert into d0 (ts, current, voltage, phase) values {values}"
    ))
    .await
    .unwrap();
    let got = rows(
        &taos,
        "select voltage from d0 where ts >= 1800000000000000 order by ts desc limit 4500",
    )
    .await;
    assert_eq!(got.len(), 4500);
    assert_eq!(got[0][0], Value::Int(4999));
    assert_eq!(got[4499][0], Value::Int(500));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_404_and_shutdown_closes_clients() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let url = format!("ws://{}/nope", server.addr());
    let e = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    taos.exec("create database s").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown completes");
    assert!(taos.exec("show databases").await.is_err());
}

/// The next frame from the server (a test failure after 5 s).
async fn next_reply<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a reply within 5 s")
        .expect("the socket stays open")
        .expect("a frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_actions_get_errors_pings_get_pongs() {
    use futures_util::SinkExt;
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/rest/ws", server.addr()))
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"action":"no_such_action","args":{"req_id":42}}"#,
    ))
    .await
    .unwrap();
    let reply = next_reply(&mut ws).await;
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["code"], 0xFFFF);
    assert_eq!(reply["req_id"], 42);
    assert_eq!(reply["action"], "no_such_action");
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let reply = next_reply(&mut ws).await;
    assert!(reply.is_text(), "short binary frame gets a JSON error");
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let reply = next_reply(&mut ws).await;
    assert_eq!(reply, Message::Pong(b"hi".to_vec().into()));
    // A query before `conn` is refused, and the socket stays usable.
    ws.send(Message::text(
        r#"{"action":"query","args":{"req_id":1,"sql":"show databases"}}"#,
    ))
    .await
    .unwrap();
    let reply = next_reply(&mut ws).await;
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_ne!(reply["code"], 0);
    // The server still serves the official client.
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    taos.exec("create database alive").await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_connections_keeps_storage() {
    let (server, taos) = start(JSON_PATH).await;
    taos.exec("create database kept").await.unwrap();
    server.drop_connections();
    // The old connection is gone (the 0.12.3 client does not reconnect by itself)…
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while taos.exec("show databases").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "connection still open after drop_connections"
        );
        tokio::task::yield_now().await;
    }
    // …while a new one sees everything written before.
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    let dbs = rows(&taos, "show databases").await;
    assert!(
        dbs.iter().any(|r| r[0] == Value::VarChar("kept".into())),
        "{dbs:?}"
    );
    server.shutdown().await;
}
