//! The bench's world: stand-in + embedded rumqttd on loopback, the smart-meter schema, and a backlog of
//! rows written straight into the store (fast, so loading does not dominate the run).

use std::sync::Arc;

use simulator::{
    broker::{BrokerConfig, EmbeddedBroker},
    tdengine::{Store, TdConfig, TdServer},
};

use super::BenchError;

/// Tables the backlog is spread over (each TMQ message then holds several blocks).
pub const TABLES: u64 = 8;
/// The TMQ topic every bridge run subscribes to.
pub const TOPIC: &str = "topic_meters";
/// Backlog timestamps start here; latency rows use [`LIVE_TS`] and up.
const BASE_TS: i64 = 1_700_000_000_000;
pub const LIVE_TS: i64 = 1_800_000_000_000;

pub struct BenchWorld {
    pub td: TdServer,
    pub broker: EmbeddedBroker,
}

impl BenchWorld {
    pub async fn start() -> Result<BenchWorld, BenchError> {
        let td = TdServer::start(TdConfig::default())
            .await
            .map_err(|e| BenchError::Setup(format!("stand-in: {e}")))?;
        let broker = EmbeddedBroker::start(BrokerConfig::default())
            .await
            .map_err(|e| BenchError::Setup(format!("broker: {e}")))?;
        let w = BenchWorld { td, broker };
        w.sql("create database power vgroups 4")?;
        w.sql(&simulator::meters::create_stable_sql("power"))?;
        w.sql(&format!("create topic {TOPIC} as select ts, current, voltage, phase, tbname, groupid, location from power.meters"))?;
        Ok(w)
    }

    pub fn store(&self) -> &Arc<Store> {
        self.td.store()
    }

    pub fn sql(&self, sql: &str) -> Result<(), BenchError> {
        self.store()
            .execute(sql, &mut None)
            .map(|_| ())
            .map_err(|e| BenchError::Setup(format!("{}: {e}", &sql[..sql.len().min(80)])))
    }

    /// Writes `rows` backlog rows in writes of 1000 rows over [`TABLES`] tables.
    pub fn load_backlog(&self, rows: u64) -> Result<(), BenchError> {
        let mut id = 0u64;
        while id < rows {
            let n = (rows - id).min(1000);
            self.sql(&insert_sql(BASE_TS, id, n))?;
            id += n;
        }
        Ok(())
    }

    pub fn tmq_dsn(&self, group: &str, reset: &str) -> String {
        self.tmq_dsn_for(TOPIC, group, reset)
    }

    pub fn tmq_dsn_for(&self, topic: &str, group: &str, reset: &str) -> String {
        format!(
            "tmq+ws://root:taosdata@{}/{topic}?group.id={group}&auto.offset.reset={reset}",
            self.td.addr()
        )
    }

    /// Target DSN over MQTT 3.1.1 (no MQTT 5 properties: the bare publisher sends the same bytes).
    pub fn mqtt_dsn(&self, qos: u8, client_id: &str, topic: &str, extra: &str) -> String {
        let addr = self.broker.v4_addr().expect("v4 listener");
        format!("mqtt://{addr}?version=3.1.1&qos={qos}&client_id={client_id}&topic={topic}{extra}")
    }
}

/// One INSERT of rows `first..first+n` spread over the tables: row `id` goes to table `d{id % TABLES}` with
/// ts `base + id`.
pub fn insert_sql(base: i64, first: u64, n: u64) -> String {
    let mut s = String::with_capacity(64 + n as usize * 40);
    s.push_str("insert into");
    for t in 0..TABLES {
        let mut id = first + (t + TABLES - first % TABLES) % TABLES;
        if id >= first + n {
            continue;
        }
        s.push_str(&format!(
            " power.d{t} using power.meters tags ({t}, 'California.SanFrancisco') values"
        ));
        while id < first + n {
            let (current, voltage) = reading(id);
            s.push_str(&format!(" ({}, {current:.2}, {voltage}, 0.31)", base + id as i64));
            id += TABLES;
        }
    }
    s
}

fn reading(id: u64) -> (f32, u64) {
    (10.0 + (id % 100) as f32 / 10.0, 220 + id % 10)
}

/// 1000 payloads as the bridge renders this bench's rows at `offset`, for the bare publishers to cycle through.
pub fn payloads(offset: i64) -> Vec<bytes::Bytes> {
    (0..1000u64)
        .map(|id| bytes::Bytes::from(row_payload(id, 2 + (id % 4) as i32, offset)))
        .collect()
}

/// The payload the bridge publishes for backlog row `id` at WAL offset `offset` — what the bare publisher
/// sends, so both sides move the same bytes.
pub fn row_payload(id: u64, vgroup: i32, offset: i64) -> Vec<u8> {
    let (current, voltage) = reading(id);
    let current: f32 = format!("{current:.2}").parse().unwrap_or(current);
    format!(
        r#"{{"data":{{"ts":{},"current":{current},"voltage":{voltage},"phase":0.31,"tbname":"d{}","groupid":{},"location":"California.SanFrancisco"}},"offset":{{"database":"power","topic":"{TOPIC}","vgroupId":{vgroup},"offset":{offset}}}}}"#,
        BASE_TS + id as i64,
        id % TABLES,
        id % TABLES
    )
    .into_bytes()
}
