//! Shared helpers of the TMQ integration tests: the stand-in on a free port (SQL runs straight on its
//! store), and a consumer loop over the official client that records what it received.

#![allow(dead_code)]

pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use simulator::tdengine::tmq::{Tmq, TmqConfig};
use simulator::tdengine::{QueryResult, Store, TdConfig, TdResult, TdServer};
use taos::{AsAsyncConsumer, AsyncTBuilder, IsAsyncMeta, MessageSet, Timeout, TmqBuilder};

/// A stand-in server on a free port; SQL runs straight on its store, TMQ through its `/rest/tmq`.
pub struct Server {
    pub server: TdServer,
    pub store: Arc<Store>,
    pub tmq: Arc<Tmq>,
    pub port: u16,
}

impl Server {
    pub async fn start() -> Self {
        Self::with_config(TmqConfig::default()).await
    }

    pub async fn with_config(tmq: TmqConfig) -> Self {
        Self::with_td_config(TdConfig {
            tmq,
            ..TdConfig::default()
        })
        .await
    }

    /// A server reporting `version` (the default is a current release).
    pub async fn at_version(version: &str) -> Self {
        Self::with_td_config(TdConfig::with_version(version)).await
    }

    async fn with_td_config(config: TdConfig) -> Self {
        let server = TdServer::start(config).await.expect("start");
        Self {
            store: server.store().clone(),
            tmq: server.tmq().clone(),
            port: server.addr().port(),
            server,
        }
    }

    pub fn sql(&self, sql: &str) -> QueryResult {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn try_sql(&self, sql: &str) -> TdResult<QueryResult> {
        self.store.execute(sql, &mut None)
    }

    pub fn dsn(&self, params: &str) -> String {
        format!("tmq+ws://root:taosdata@127.0.0.1:{}/?{params}", self.port)
    }

    pub async fn consumer(&self, params: &str, topics: &[&str]) -> taos::RawResult<taos::Consumer> {
        let mut c = TmqBuilder::from_dsn(self.dsn(params))?.build().await?;
        c.subscribe(topics.iter().map(|t| t.to_string())).await?;
        Ok(c)
    }

    /// Waits until `cond` holds on the server, polling with a deadline.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One thing a consumer received.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    /// A data row: (vgroup, table, field names, values rendered as strings).
    Row {
        vgroup: i32,
        table: String,
        fields: Vec<String>,
        values: Vec<String>,
    },
    /// A meta event: (vgroup, its JSON).
    Meta { vgroup: i32, json: serde_json::Value },
}

impl Got {
    pub fn row_values(&self) -> Option<&[String]> {
        match self {
            Got::Row { values, .. } => Some(values),
            Got::Meta { .. } => None,
        }
    }
}

/// What one `recv_timeout` returned, with the consumer's position in that vgroup right after it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub vgroup: i32,
    /// TMQ's message type: 1 data, 2 meta, 3 meta+data.
    pub message_type: u8,
    pub position: i64,
    pub items: Vec<Got>,
}

fn render(v: &taos::Value) -> String {
    match v {
        taos::Value::Timestamp(ts) => ts.as_raw_i64().to_string(),
        taos::Value::Null(_) => "NULL".into(),
        other => other.to_string().unwrap_or_default(),
    }
}

/// Receives one message (waiting up to `timeout`), fetching all its blocks or its meta.
pub async fn recv_one(c: &taos::Consumer, timeout: Duration) -> taos::RawResult<Option<Received>> {
    use taos::IsOffset;
    let Some((offset, set)) = c.recv_timeout(Timeout::Duration(timeout)).await? else {
        return Ok(None);
    };
    let vgroup = offset.vgroup_id();
    let topic = offset.topic().to_string();
    let mut items = Vec::new();
    let mut data = None;
    let message_type = match &set {
        MessageSet::Data(_) => 1,
        MessageSet::Meta(_) => 2,
        MessageSet::MetaData(..) => 3,
    };
    match set {
        MessageSet::Meta(m) => {
            let json = m.as_json_meta().await?;
            items.push(Got::Meta {
                vgroup,
                json: serde_json::to_value(&json).expect("meta json"),
            });
        }
        MessageSet::Data(d) => data = Some(d),
        MessageSet::MetaData(m, d) => {
            let json = m.as_json_meta().await?;
            items.push(Got::Meta {
                vgroup,
                json: serde_json::to_value(&json).expect("meta json"),
            });
            data = Some(d);
        }
    }
    if let Some(d) = data {
        while let Some(block) = d.fetch_block().await? {
            let fields: Vec<String> = block.field_names().to_vec();
            let table = block.table_name().unwrap_or_default().to_string();
            for row in block.to_values() {
                items.push(Got::Row {
                    vgroup,
                    table: table.clone(),
                    fields: fields.clone(),
                    values: row.iter().map(render).collect(),
                });
            }
        }
    }
    let position = c.position(&topic, vgroup).await?;
    Ok(Some(Received {
        topic,
        vgroup,
        message_type,
        position,
        items,
    }))
}

/// Receives until `done` holds over everything received, or fails after `deadline`.
pub async fn recv_until(
    c: &taos::Consumer,
    deadline: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let until = tokio::time::Instant::now() + deadline;
    let mut all = Vec::new();
    while !done(&all) {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out; received so far: {}",
            summary(&all)
        );
        if let Some(r) = recv_one(c, Duration::from_millis(200)).await.expect("recv") {
            all.push(r);
        }
    }
    all
}

/// Receives until `quiet` passes with nothing new (to show nothing more comes).
pub async fn recv_rest(c: &taos::Consumer, quiet: Duration) -> Vec<Received> {
    let mut all = Vec::new();
    while let Some(r) = recv_one(c, quiet).await.expect("recv") {
        all.push(r);
    }
    all
}

pub fn rows(received: &[Received]) -> Vec<Vec<String>> {
    received
        .iter()
        .flat_map(|r| {
            r.items
                .iter()
                .filter_map(|g| g.row_values().map(<[String]>::to_vec))
        })
        .collect()
}

pub fn row_count(received: &[Received]) -> usize {
    rows(received).len()
}

/// Commits, per vgroup, the position after the last message received from it.
pub async fn commit_positions(c: &taos::Consumer, received: &[Received]) {
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for r in received {
        last.insert((r.topic.clone(), r.vgroup), r.position);
    }
    for ((topic, vg), pos) in last {
        c.commit_offset(&topic, vg, pos).await.expect("commit_offset");
    }
}

/// One line per message: vgroup, position after it, and its items (rows by their values, metas by type).
pub fn summary(received: &[Received]) -> String {
    received
        .iter()
        .map(|r| {
            let items: Vec<String> = r
                .items
                .iter()
                .map(|g| match g {
                    Got::Row { values, .. } => values.join("/"),
                    Got::Meta { json, .. } => format!("meta:{}", json["type"]),
                })
                .collect();
            format!(
                "\n  {} vg{} pos {}: {}",
                r.topic,
                r.vgroup,
                r.position,
                items.join(" ")
            )
        })
        .collect()
}
