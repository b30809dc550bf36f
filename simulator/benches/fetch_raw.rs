//! One request per TMQ message (`fetch_raw_data`) against the official client's two round trips per block
//! (`fetch` + `fetch_block`), draining the same backlog from the stand-in in the same run.
//!
//! The raw path is a prototype reader that lives only here: its own minimal TMQ WebSocket client
//! (subscribe, poll, fetch_raw_data, commit) and a reader of TDengine's raw response (`tmq_get_raw`'s
//! layout, see `simulator::tdengine::tmq::raw`) that hands each block to taos-query's `RawBlock` — the
//! view the bridge encodes from. The official path is `taos` 0.12.3 (`recv_timeout` + `fetch_raw_block`,
//! the bridge's source). Both commit after every message and count rows; neither renders payloads.
//!
//! Shapes: `fleet` — 100k child tables with 1–2 rows each (a fleet of devices that report rarely: one block
//! per table, so per-block round trips dominate), and `dense` — 100 tables with 1,500 rows each.
//!
//! Run: `cargo bench -p simulator --bench fetch_raw` (`-- fleet` or `-- dense` for one shape). Run
//! without `--bench` (`cargo test --benches`) or with `-- --test`, it only checks that both paths work, on
//! 100 tables of each shape, one round.

mod common;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use simulator::tdengine::{TdConfig, TdServer};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const BASE_TS: i64 = 1_700_000_000_000;
const PER_INSERT: usize = 5000;

struct Shape {
    name: &'static str,
    tables: usize,
    /// Rows of table `t`.
    rows: fn(usize) -> usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "fleet",
        tables: 100_000,
        rows: |t| 1 + t % 2,
    },
    Shape {
        name: "dense",
        tables: 100,
        rows: |_| 1500,
    },
];

/// Writes the backlog of `tables` tables as multi-table INSERTs of `PER_INSERT` rows (auto-creating the
/// tables); returns the number of rows.
fn setup(server: &TdServer, shape: &Shape, tables: usize) -> usize {
    let store = server.store();
    let sql = |s: &str| {
        store
            .execute(s, &mut None)
            .unwrap_or_else(|e| panic!("{}: {e}", &s[..s.len().min(200)]));
    };
    sql("create database power vgroups 4");
    sql(&simulator::meters::create_stable_sql("power"));
    sql("create topic meters_topic as select ts, current, voltage, phase, groupid, location from power.meters");
    let (mut stmt, mut in_stmt, mut total) = (String::new(), 0, 0);
    for t in 0..tables {
        let rows = (shape.rows)(t);
        let mut done = 0;
        while done < rows {
            if stmt.is_empty() {
                stmt.push_str("insert into");
            }
            let n = (rows - done).min(PER_INSERT - in_stmt);
            stmt.push_str(&format!(
                " power.d{t} using power.meters tags ({}, 'California.SanFrancisco') values",
                t % 10
            ));
            for i in done..done + n {
                stmt.push_str(&format!(
                    " ({}, {:.1}, {}, 0.3{})",
                    BASE_TS + i as i64,
                    10.0 + (i % 7) as f64,
                    219 + i % 5,
                    i % 10
                ));
            }
            done += n;
            in_stmt += n;
            total += n;
            if in_stmt == PER_INSERT {
                sql(&stmt);
                stmt.clear();
                in_stmt = 0;
            }
        }
    }
    if !stmt.is_empty() {
        sql(&stmt);
    }
    total
}

/// A minimal TMQ client over `/rest/tmq` that fetches each message whole.
struct RawConsumer {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    req_id: u64,
}

impl RawConsumer {
    async fn connect(port: u16, group: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/rest/tmq"))
            .await
            .expect("connect");
        let mut c = Self { ws, req_id: 0 };
        let r = c
            .call(
                "subscribe",
                json!({"user": "root", "password": "taosdata", "group_id": group,
                       "offset_rest": "earliest", "auto_commit": "false", "topics": ["meters_topic"]}),
            )
            .await;
        assert_eq!(r["code"], 0, "{r}");
        c
    }

    async fn send(&mut self, action: &str, mut args: Json) -> u64 {
        self.req_id += 1;
        args["req_id"] = self.req_id.into();
        let text = json!({"action": action, "args": args}).to_string();
        self.ws.send(WsMessage::text(text)).await.expect("send");
        self.req_id
    }

    async fn call(&mut self, action: &str, args: Json) -> Json {
        self.send(action, args).await;
        match self.next().await {
            WsMessage::Text(t) => serde_json::from_str(t.as_str()).expect("json"),
            other => panic!("{action}: unexpected {other:?}"),
        }
    }

    async fn next(&mut self) -> WsMessage {
        loop {
            match self.ws.next().await.expect("open").expect("frame") {
                WsMessage::Ping(p) => self.ws.send(WsMessage::Pong(p)).await.expect("pong"),
                WsMessage::Pong(_) => {}
                m => return m,
            }
        }
    }

    /// Polls once; the message id if there was a message.
    async fn poll(&mut self) -> Option<u64> {
        let r = self.call("poll", json!({"blocking_time": 500})).await;
        assert_eq!(r["code"], 0, "{r}");
        r["have_message"]
            .as_bool()
            .unwrap_or(false)
            .then(|| r["message_id"].as_u64().expect("id"))
    }

    async fn fetch_raw_data(&mut self, message_id: u64) -> bytes::Bytes {
        self.send("fetch_raw_data", json!({"message_id": message_id}))
            .await;
        match self.next().await {
            WsMessage::Binary(b) => b,
            other => panic!("fetch_raw_data: unexpected {other:?}"),
        }
    }
}

/// Reads a `fetch_raw_data` reply into taos-query blocks: (rows, blocks).
fn read_raw_reply(frame: bytes::Bytes) -> (usize, usize) {
    let mut r = Reader { b: &frame, at: 0 };
    assert_eq!(r.u64(), u64::MAX, "flag");
    r.skip(8 + 2 + 8 + 8); // action, version, timing, req_id
    let code = r.u32();
    let msg_len = r.u32() as usize;
    assert_eq!(
        code,
        0,
        "{}",
        String::from_utf8_lossy(&frame[r.at..r.at + msg_len])
    );
    r.skip(msg_len + 8 + 2); // message, message_id, raw_type
    let raw_len = r.u32() as usize;
    assert_eq!(r.at + raw_len, frame.len());
    assert!(r.u8() >= 100, "MQ_DATA_RSP_VERSION");
    let offsets = r.u32() as usize;
    r.skip(offsets);
    let blocks = r.u32() as usize;
    let with_table_name = r.u8() != 0;
    r.skip(1); // withSchema
    let mut rows = 0;
    for _ in 0..blocks {
        let len = r.varint() as usize;
        r.skip(17);
        let precision = match r.u8() {
            0 => taos::Precision::Millisecond,
            1 => taos::Precision::Microsecond,
            _ => taos::Precision::Nanosecond,
        };
        let block_len = u32::from_le_bytes(frame[r.at + 4..r.at + 8].try_into().unwrap()) as usize;
        let block = taos::RawBlock::parse_from_raw_block(frame.slice(r.at..r.at + block_len), precision);
        rows += block.nrows();
        r.skip(len - 18);
        let cols = r.varint();
        r.varint(); // schema version
        for _ in 0..cols / 2 {
            r.skip(2);
            r.varint();
            r.varint();
            let n = r.varint() as usize;
            r.skip(n);
        }
        if with_table_name {
            let n = r.varint() as usize;
            r.skip(n);
        }
    }
    (rows, blocks)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) {
        self.at += n;
    }
    fn u8(&mut self) -> u8 {
        self.at += 1;
        self.b[self.at - 1]
    }
    fn u32(&mut self) -> u32 {
        self.at += 4;
        u32::from_le_bytes(self.b[self.at - 4..self.at].try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        self.at += 8;
        u64::from_le_bytes(self.b[self.at - 8..self.at].try_into().unwrap())
    }
    /// LEB128 (zigzag values are read raw: only their length matters here).
    fn varint(&mut self) -> u32 {
        let (mut v, mut shift) = (0u32, 0);
        loop {
            let b = self.u8();
            v |= ((b & 0x7F) as u32) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
}

/// The prototype's path: poll, one `fetch_raw_data`, commit.
async fn drain_raw(port: u16, group: &str, want: usize) -> (usize, usize) {
    let mut c = RawConsumer::connect(port, group).await;
    let (mut rows, mut messages) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while rows < want {
        assert!(Instant::now() < deadline, "raw: only {rows} of {want} rows");
        let Some(id) = c.poll().await else { continue };
        let (n, _blocks) = read_raw_reply(c.fetch_raw_data(id).await);
        rows += n;
        messages += 1;
        let r = c.call("commit", json!({"message_id": id})).await;
        assert_eq!(r["code"], 0, "{r}");
    }
    assert_eq!(rows, want);
    (rows, messages)
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    // `--test`, or run without `--bench` (`cargo test --benches`): prove the paths, measure nothing.
    let quick = std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let rt = common::runtime();
    println!("shape  tables  rows     path                    messages  seconds  rows/s");
    for shape in SHAPES
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
    {
        let server = rt
            .block_on(TdServer::start(TdConfig::with_version("3.3.6.0")))
            .expect("server");
        let tables = if quick {
            shape.tables.min(100)
        } else {
            shape.tables
        };
        let want = setup(&server, shape, tables);
        let port = server.addr().port();
        for round in 0..if quick { 1 } else { 2 } {
            for (path, raw) in [
                ("official fetch_block", false),
                ("prototype fetch_raw_data", true),
            ] {
                let group = format!("{}-{round}-{raw}", shape.name);
                let start = Instant::now();
                let (rows, messages) = rt.block_on(async {
                    if raw {
                        drain_raw(port, &group, want).await
                    } else {
                        let dsn = format!(
                            "tmq+ws://root:taosdata@127.0.0.1:{port}/?group.id={group}&auto.offset.reset=earliest"
                        );
                        common::drain_official(&dsn, "meters_topic", want, true).await
                    }
                });
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{:<6} {:<7} {:<8} {:<23} {:<9} {:<8.2} {:.0}",
                    shape.name,
                    tables,
                    rows,
                    path,
                    messages,
                    secs,
                    rows as f64 / secs
                );
            }
        }
        rt.block_on(server.shutdown());
    }
}
