//! `fetch.raw`: a data message read whole with one request (the official client's `as_raw_data`) gives the
//! same publishes, byte for byte (but the message's offset), as the same message fetched block by block.

mod common;
use common::{Running, StandIn, Subscriber};

use std::time::Duration;

use simulator::broker::{BrokerConfig, EmbeddedBroker, MqttVersion};

const T: Duration = Duration::from_secs(30);

/// Every type the stand-in stores, NULLs, several tables over two vgroups, and table names in the topic.
fn load(td: &StandIn) -> usize {
    td.sql("create database alltypes vgroups 2");
    td.sql(
        "create stable alltypes.st (ts timestamp, b bool, ti tinyint, si smallint, i int, bi bigint, \
         f float, d double, vc varchar(32), nc nchar(16), uti tinyint unsigned, usi smallint unsigned, \
         ui int unsigned, ubi bigint unsigned, vb varbinary(16), g geometry(64)) tags (t_int int, t_nc nchar(8))",
    );
    td.sql("create topic t_all as select * from alltypes.st");
    let mut rows = 0;
    for table in 0..6 {
        td.sql(&format!(
            "insert into alltypes.c{table} using alltypes.st tags ({table}, '北京{table}') values \
             ({ts0}, true, -128, -32768, -2147483648, -9223372036854775808, -3.5, -1.25e300, \
              'min', '北京', 0, 0, 0, 0, '\\x00ff', 'POINT(1 2)') \
             ({ts1}, false, 127, 32767, 2147483647, 9223372036854775807, 3.4e38, 1.7e308, \
              'max \"q\"', '😀 emoji', 255, 65535, 4294967295, 18446744073709551615, 'abc', 'POINT(-1.5 0)') \
             ({ts2}, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)",
            ts0 = 1_700_000_000_000i64 + table,
            ts1 = 1_700_000_001_000i64 + table,
            ts2 = 1_700_000_002_000i64 + table,
        ));
        rows += 3;
    }
    rows
}

/// The payload without its TMQ offset: the second group's messages end at later WAL versions (the first
/// group's subscribe and commits took versions), which is all that may differ.
fn without_offset(payload: &str) -> String {
    let at = payload.rfind(r#""offset":"#).expect("an offset");
    let end = payload[at..].find('}').expect("closed") + at;
    assert!(payload[at + 9..end].parse::<i64>().is_ok(), "{payload}");
    format!("{}\"offset\":_{}", &payload[..at], &payload[end..])
}

/// Every (topic, payload) one bridge publishes of the backlog, sorted.
async fn drain(td: &StandIn, broker: &EmbeddedBroker, raw: bool, rows: usize) -> Vec<(String, String)> {
    let mqtt = broker.v5_addr().unwrap();
    let prefix = format!("raw{raw}");
    let mut sub = Subscriber::start(mqtt, MqttVersion::V5, &format!("{prefix}/#"), 1).await;
    let run = Running::start(
        &td.from(
            "t_all",
            &format!("group.id=g-{raw}&auto.offset.reset=earliest&fetch.raw={raw}"),
        ),
        &format!(
            "mqtt://127.0.0.1:{}?version=5.0&qos=1&client_id=b-{raw}&topic={prefix}/{{vgroup_id}}/{{table}}",
            mqtt.port()
        ),
    );
    let got = sub.collect(rows, T).await;
    let s = run.stop().await;
    assert_eq!((s.rows, s.acked), (rows as u64, rows as u64), "{s:?}");
    let mut out: Vec<(String, String)> = got
        .into_iter()
        .map(|m| (m.topic.replacen(&prefix, "", 1), without_offset(&m.payload)))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_whole_publishes_what_its_blocks_publish() {
    let td = StandIn::start().await;
    let broker = EmbeddedBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let rows = load(&td);
    let counts = td.server.tmq().fetch_counts();

    let by_block = drain(&td, &broker, false, rows).await;
    let (fetch, fetch_block, _, fetch_raw) = counts.snapshot();
    assert!(
        fetch_block > 0 && fetch > fetch_block,
        "block by block: {:?}",
        counts.snapshot()
    );
    assert_eq!(fetch_raw, 0, "fetch.raw=false never asks for a raw message");

    let whole = drain(&td, &broker, true, rows).await;
    let after = counts.snapshot();
    assert_eq!(
        (after.0, after.1),
        (fetch, fetch_block),
        "fetch.raw=true fetches no block"
    );
    assert!(after.3 > 0, "fetch.raw=true reads raw messages: {after:?}");

    assert_eq!(whole.len(), rows);
    assert_eq!(
        whole, by_block,
        "the same topics and payloads, byte for byte but the offset"
    );
    // Spot checks that the comparison compares something: extremes, unicode, NULLs, geometry.
    let all: String = whole.iter().map(|(_, p)| p.as_str()).collect();
    for needle in [
        "18446744073709551615",
        "-9223372036854775808",
        "😀 emoji",
        r#""b":null"#,
        r#"max \"q\""#,
        "北京",
    ] {
        assert!(all.contains(needle), "{needle} in {all}");
    }
}
