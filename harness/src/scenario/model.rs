//! The typed shape of a scenario file: what world to build, what data to write, which bridges and
//! subscribers to run, which faults to fire when, and what the verdict must find.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
pub use simulator::broker::MqttVersion;
use tmq2mqtt::{DsnError, SourceDsn, TargetDsn};

/// One scenario, as written in `scenarios/NAME.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file stem.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seed of the meter fleet (its readings, chaos choices and timestamps); `harness run --seed` overrides it.
    /// Faults are not random: they fire at the triggers the scenario names.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The run ends at this deadline even if the expected rows never arrive.
    #[serde(default = "default_deadline", with = "duration_str")]
    pub deadline: Duration,
    /// The run ends early once every subscriber saw everything expected and nothing new arrived for this long.
    #[serde(default = "default_quiet", with = "duration_str")]
    pub quiet: Duration,
    /// Tags let `harness run --tag` pick groups (e.g. `mosquitto`, `slow`).
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub world: WorldDef,
    #[serde(default)]
    pub data: Data,
    /// TMQ topics created before the bridges start (`CREATE TOPIC …` statements).
    #[serde(default)]
    pub topics: Vec<TopicDef>,
    pub bridges: Vec<BridgeDef>,
    pub subscribers: Vec<SubscriberDef>,
    #[serde(default)]
    pub faults: Vec<FaultDef>,
    #[serde(default)]
    pub expect: Expect,
    /// Snapshot the delivered stream with insta (only for small deterministic scenarios).
    #[serde(default)]
    pub snapshot: bool,
}

fn default_seed() -> u64 {
    42
}
fn default_deadline() -> Duration {
    Duration::from_secs(60)
}
fn default_quiet() -> Duration {
    Duration::from_millis(500)
}

/// Where TDengine and the broker come from (the `[world]` table).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct WorldDef {
    #[serde(default)]
    pub tdengine: TdengineKind,
    #[serde(default)]
    pub broker: BrokerKind,
    /// Version the stand-in reports (picks the client's code path).
    #[serde(default)]
    pub server_version: Option<String>,
    /// Broker credentials the world enforces (the embedded broker and Mosquitto).
    #[serde(default)]
    pub broker_auth: Option<Credentials>,
    /// Mosquitto's `max_queued_messages` (the harness default is 1000000; Mosquitto's own is 1000).
    #[serde(default)]
    pub mosquitto_max_queued: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// `"standin"`, `"testcontainers"` or `{ dsn = "ws://…" }`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TdengineKind {
    #[default]
    Standin,
    Testcontainers,
    External {
        dsn: String,
    },
}

impl TdengineKind {
    pub fn label(&self) -> &'static str {
        match self {
            TdengineKind::Standin => "standin",
            TdengineKind::Testcontainers => "testcontainers",
            TdengineKind::External { .. } => "external",
        }
    }
}

impl<'de> Deserialize<'de> for TdengineKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NameOr::deserialize(d)? {
            NameOr::Name(n) if n == "standin" => Ok(TdengineKind::Standin),
            NameOr::Name(n) if n == "testcontainers" => Ok(TdengineKind::Testcontainers),
            NameOr::Table {
                dsn: Some(dsn),
                url: None,
            } => Ok(TdengineKind::External { dsn }),
            other => Err(serde::de::Error::custom(format!(
                "unknown tdengine {other}; expected \"standin\", \"testcontainers\" or {{ dsn = \"ws://…\" }}"
            ))),
        }
    }
}

/// `"embedded"`, `"mosquitto"` or `{ url = "mqtt://…" }`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    #[default]
    Embedded,
    Mosquitto,
    External {
        url: String,
    },
}

impl BrokerKind {
    pub fn label(&self) -> &'static str {
        match self {
            BrokerKind::Embedded => "embedded",
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::External { .. } => "external",
        }
    }
}

impl<'de> Deserialize<'de> for BrokerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NameOr::deserialize(d)? {
            NameOr::Name(n) if n == "embedded" => Ok(BrokerKind::Embedded),
            NameOr::Name(n) if n == "mosquitto" => Ok(BrokerKind::Mosquitto),
            NameOr::Table {
                url: Some(url),
                dsn: None,
            } => Ok(BrokerKind::External { url }),
            other => Err(serde::de::Error::custom(format!(
                "unknown broker {other}; expected \"embedded\", \"mosquitto\" or {{ url = \"mqtt://…\" }}"
            ))),
        }
    }
}

/// The raw form of a "name or external address" setting.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameOr {
    Name(String),
    Table {
        dsn: Option<String>,
        url: Option<String>,
    },
}

impl std::fmt::Display for NameOr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameOr::Name(n) => write!(f, "{n:?}"),
            NameOr::Table { .. } => write!(f, "table"),
        }
    }
}

/// What gets written into TDengine: the meter fleet, or literal SQL (the seed example), or both.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Data {
    #[serde(default = "default_db")]
    pub db: String,
    #[serde(default = "default_vgroups")]
    pub vgroups: u32,
    /// Number of meters (child tables `d0…dN`); 0 = no fleet.
    #[serde(default)]
    pub meters: u32,
    /// Rows the fleet writes in total.
    #[serde(default)]
    pub rows: u64,
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Rows per second; absent = as fast as possible.
    #[serde(default)]
    pub rate: Option<u64>,
    /// WAL retention of the database in seconds (snapshot scenarios).
    #[serde(default)]
    pub wal_retention_s: Option<u64>,
    /// Rows written before the bridges start (the rest after); absent = all before.
    #[serde(default)]
    pub before_start: Option<u64>,
    /// Literal SQL statements run before the fleet (schema, seed inserts, meta changes).
    #[serde(default)]
    pub sql: Vec<String>,
    /// Literal SQL statements run after the bridges started.
    #[serde(default)]
    pub sql_after_start: Vec<String>,
    #[serde(default)]
    pub chaos: Chaos,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            db: default_db(),
            vgroups: default_vgroups(),
            meters: 0,
            rows: 0,
            batch: default_batch(),
            rate: None,
            wal_retention_s: None,
            before_start: None,
            sql: Vec::new(),
            sql_after_start: Vec::new(),
            chaos: Chaos::default(),
        }
    }
}

fn default_db() -> String {
    "power".into()
}
fn default_vgroups() -> u32 {
    1
}
fn default_batch() -> u32 {
    100
}

/// The fleet's chaos options (all off by default); probabilities are per row.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    #[serde(default)]
    pub out_of_order: f64,
    #[serde(default)]
    pub repeated_ts: f64,
    #[serde(default)]
    pub nulls: f64,
    #[serde(default)]
    pub new_meters: u32,
    #[serde(default)]
    pub add_column: bool,
    #[serde(default)]
    pub drop_meter: bool,
    #[serde(default)]
    pub delete_range: bool,
}

/// A TMQ topic: its name and the `CREATE TOPIC` statement.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicDef {
    pub name: String,
    pub sql: String,
}

/// One bridge process; several bridges with the same `group.id` form one consumer group.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BridgeDef {
    pub name: String,
    /// Source DSN; `{tdengine}` is replaced by the stand-in's `host:port`.
    pub from: String,
    /// Target DSN; `{broker}` is replaced by the broker's (or the fault proxy's) `host:port`.
    pub to: String,
    #[serde(default)]
    pub mode: BridgeMode,
    /// Route the bridge's MQTT connection through the recording fault proxy (default true).
    #[serde(default = "yes")]
    pub proxy: bool,
    /// Start later than the others (e.g. a second bridge joining the group).
    #[serde(default, with = "opt_duration_str")]
    pub start_after: Option<Duration>,
    /// The bridge is expected to exit with an error (e.g. wrong credentials); the text it must name.
    #[serde(default)]
    pub expect_error: Option<String>,
}

impl BridgeDef {
    /// The source DSN as the bridge parses it (`{tdengine}` reads as a host name).
    pub fn source(&self) -> Result<SourceDsn, DsnError> {
        SourceDsn::parse(&self.from)
    }

    /// The target DSN as the bridge parses it (`{broker}` reads as a host name).
    pub fn target(&self) -> Result<TargetDsn, DsnError> {
        TargetDsn::parse(&self.to)
    }

    /// Whether this bridge consumes TMQ topic `topic`.
    pub fn consumes(&self, topic: &str) -> bool {
        self.source().is_ok_and(|d| d.topics.iter().any(|t| t == topic))
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BridgeMode {
    /// A task in the harness process (fast; cannot be killed with SIGKILL).
    #[default]
    InProcess,
    /// A child process of the `tmq2mqtt` binary (needed for `kill -9`).
    Process,
}

/// A recording subscriber.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriberDef {
    pub name: String,
    /// Topic filter; `+` and `#` wildcards as MQTT defines them.
    pub filter: String,
    #[serde(default = "default_sub_qos")]
    pub qos: u8,
    /// `"3.1.1"` (default) or `"5.0"`.
    #[serde(default)]
    pub version: MqttVersion,
    #[serde(default = "yes")]
    pub clean_session: bool,
    /// Never acknowledge deliveries (a stuck consumer: the broker's window for it fills, then its queue).
    #[serde(default)]
    pub withhold_acks: bool,
}

fn default_sub_qos() -> u8 {
    2
}

/// A fault and when it fires.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultDef {
    pub at: Trigger,
    pub action: FaultAction,
    /// The bridge the fault hits (proxy faults and kills); defaults to the first bridge.
    #[serde(default)]
    pub bridge: Option<String>,
    /// How many acks to drop/delay, or calls to fail.
    #[serde(default)]
    pub count: Option<u32>,
    /// Delay, stall or throttle duration.
    #[serde(default, with = "opt_duration_str")]
    pub duration: Option<Duration>,
    /// Throttle rate in bytes per second.
    #[serde(default)]
    pub bytes_per_s: Option<u64>,
    /// Error code for `standin-fail-calls`.
    #[serde(default)]
    pub code: Option<u32>,
    /// Statements for `sql`.
    #[serde(default)]
    pub sql: Vec<String>,
}

/// When a fault fires: `{ published = N }` (PUBLISH packets the proxy forwarded), `{ written = N }` (rows the
/// fleet wrote), `{ delivered = N }` (messages the first subscriber received), `{ after = "2s" }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    Published(u64),
    Written(u64),
    Delivered(u64),
    #[serde(with = "duration_str")]
    After(Duration),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// Close both sides of the bridge's broker connection.
    Cut,
    /// Forward the next PUBLISH, then cut before its PUBACK/PUBREC/PUBCOMP reaches the bridge.
    CutAfterPublish,
    /// Swallow the next `count` acks from the broker.
    DropAcks,
    /// Hold the next `count` acks for `duration`.
    DelayAcks,
    /// Limit broker-bound bytes to `bytes_per_s` for `duration`.
    Throttle,
    /// Stop and restart the broker (sessions lost: none are persisted).
    BrokerRestart,
    /// SIGKILL the bridge process and start it again.
    BridgeKill,
    /// SIGKILL the bridge process and leave it dead.
    BridgeKillNoRestart,
    /// Drop every WebSocket connection of the stand-in (an adapter restart; storage kept).
    StandinDrop,
    /// Stall the stand-in's replies for `duration`.
    StandinStall,
    /// Fail the stand-in's next `count` calls with `code`.
    StandinFailCalls,
    /// Stop the bridge gracefully (it drains, commits and exits) and leave it stopped.
    BridgeStop,
    /// Run the fault's `sql` statements (e.g. writes while no bridge runs).
    Sql,
}

impl FaultAction {
    /// Faults the MQTT proxy executes itself.
    pub fn is_proxy_fault(self) -> bool {
        matches!(
            self,
            FaultAction::Cut
                | FaultAction::CutAfterPublish
                | FaultAction::DropAcks
                | FaultAction::DelayAcks
                | FaultAction::Throttle
        )
    }
}

/// What the verdict must find.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub delivery: Delivery,
    /// Upper bound on duplicate deliveries per subscriber (absent = whatever `delivery` allows).
    #[serde(default)]
    pub max_duplicates: Option<u64>,
    /// Rows of one table arrive in write order (first deliveries).
    #[serde(default = "yes")]
    pub per_table_order: bool,
    /// Subscribers the row expectations apply to (default: all). Each sees the expected rows whose
    /// rendered topic matches its filter.
    #[serde(default)]
    pub subscribers: Vec<String>,
    /// Losses the scenario tolerates, by cause (e.g. QoS 0 over a cut: `["never-acked"]`).
    #[serde(default)]
    pub allowed_losses: Vec<LossCause>,
    /// Losses the run must show, by cause: at least one row lost to each (a scenario about attributing a
    /// loss fails when there was none to attribute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_losses: Vec<LossCause>,
    /// Rows the in-process bridges must have counted as skipped, by reason (`missing_variable`,
    /// `meta_disabled`, …), summed over the bridges, exactly: proves a run that expects nothing read the rows.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Override: the number of rows that must arrive (e.g. 0 when nothing may be published).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Meta event types (`create`, `alter`, `drop`, `delete`) that must arrive, in this order.
    #[serde(default)]
    pub meta_events: Vec<String>,
    /// No bridge's consumer group may have committed an offset (`SHOW SUBSCRIPTIONS`), e.g. when the broker
    /// refused every connection.
    #[serde(default)]
    pub nothing_committed: bool,
    #[serde(default)]
    pub wire: WireExpect,
    /// With `dead_letter_topic`: the dead letters a subscriber on that topic must receive.
    #[serde(default)]
    pub dead_letters: Option<DeadLetterExpect>,
    /// A group resuming behind WAL retention: the gap the bridge must report.
    #[serde(default)]
    pub wal_gap: Option<WalGapExpect>,
    /// MQTT 5 properties every row delivered to a v5 subscriber must carry.
    #[serde(default)]
    pub properties: Option<PropertiesExpect>,
}

/// `[expect.dead_letters]`: what arrives on the dead-letter topic. Each dead letter accounts for the row
/// it stands for (by its data, or by its table when only its size is given), which is then not missing.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterExpect {
    /// The subscriber on the dead-letter topic (judged here, not for rows).
    pub subscriber: String,
    /// Rows per reason (`too_large`, `invalid_topic`, `missing_variable`, `broker_rejected`), exactly.
    pub reasons: std::collections::BTreeMap<String, u64>,
}

/// `[expect.wal_gap]`: the gap a group resuming behind WAL retention must report.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WalGapExpect {
    /// The subscriber on `<status_topic>/events` (judged here, not for rows).
    pub subscriber: String,
    /// WAL versions the `wal_gap` events (and in-process bridges' counters) must add up to.
    pub versions: u64,
    /// Rows written into the trimmed versions: each row subscriber misses exactly these, never published.
    pub rows: u64,
}

/// `[expect.properties]`: MQTT 5 properties of every row a v5 subscriber receives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PropertiesExpect {
    /// User properties `database`, `topic`, `vgroup_id`, `offset` (matching the payload's `offset`) and
    /// `table`.
    #[serde(default)]
    pub user_properties: bool,
    /// A Message Expiry Interval of 1 to this many seconds (the broker counts it down).
    #[serde(default)]
    pub message_expiry: Option<u32>,
}

impl Expect {
    /// Subscribers that receive the bridge's side output (dead letters, events), not rows.
    pub fn side_subscribers(&self) -> Vec<&str> {
        let dl = self.dead_letters.as_ref().map(|d| d.subscriber.as_str());
        let gap = self.wal_gap.as_ref().map(|g| g.subscriber.as_str());
        dl.into_iter().chain(gap).collect()
    }

    /// How many deliveries the run waits for on `subscriber`, which would see `rows` expected rows:
    /// dead-lettered and gap-lost rows do not come; side subscribers wait for their own output.
    pub fn wait_for(&self, subscriber: &str, rows: usize) -> usize {
        let dead: u64 = self.dead_letters.as_ref().map_or(0, |d| d.reasons.values().sum());
        if self
            .dead_letters
            .as_ref()
            .is_some_and(|d| d.subscriber == subscriber)
        {
            return dead as usize;
        }
        if self.wal_gap.as_ref().is_some_and(|g| g.subscriber == subscriber) {
            return 1;
        }
        let lost = self.wal_gap.as_ref().map_or(0, |g| g.rows);
        rows.saturating_sub((dead + lost) as usize)
    }
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            delivery: Delivery::default(),
            max_duplicates: None,
            per_table_order: true,
            subscribers: Vec::new(),
            allowed_losses: Vec::new(),
            required_losses: Vec::new(),
            skipped: Default::default(),
            rows: None,
            meta_events: Vec::new(),
            nothing_committed: false,
            wire: WireExpect::default(),
            dead_letters: None,
            wal_gap: None,
            properties: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    AtMostOnce,
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

/// Why a row did not arrive, judged from the wire.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum LossCause {
    /// The bridge never sent a PUBLISH for it.
    NeverPublished,
    /// Sent, but no PUBACK/PUBCOMP ever came back (QoS 0: nothing to wait for).
    NeverAcked,
    /// Acknowledged on the wire but never delivered: the broker lost it.
    Broker,
    /// No wire recording to judge from.
    Unknown,
}

/// Wire-level expectations; `report` notes a deviation, `fail` makes it fail the scenario.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireExpect {
    /// A retransmitted PUBLISH without DUP=1 (rumqttc never sets it).
    #[serde(default)]
    pub missing_dup: Severity,
    /// A subscriber receives at a higher QoS than published (rumqttd upgrades to the subscription's).
    #[serde(default)]
    pub qos_upgrade: Severity,
    /// A QoS 1/2 PUBLISH never acknowledged / a QoS 2 flow left incomplete at the end of the run.
    #[serde(default = "fail")]
    pub unacked: Severity,
    /// A packet id reused while still in flight.
    #[serde(default = "fail")]
    pub pkid_reuse: Severity,
    /// An acknowledgement for a packet id with no open flow on its connection.
    #[serde(default = "fail")]
    pub unsolicited_acks: Severity,
    /// QoS 1/2 flows open when a connection closed, in a scenario without faults whose bridges are not
    /// expected to fail (with faults they are reported: the cut or restart left them open).
    #[serde(default = "fail")]
    pub open_at_close: Severity,
}

impl Default for WireExpect {
    fn default() -> Self {
        WireExpect {
            missing_dup: Severity::Report,
            qos_upgrade: Severity::Report,
            unacked: Severity::Fail,
            pkid_reuse: Severity::Fail,
            unsolicited_acks: Severity::Fail,
            open_at_close: Severity::Fail,
        }
    }
}

fn fail() -> Severity {
    Severity::Fail
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Report,
    Fail,
}

/// Durations as humantime strings ("250ms", "2s", "1m").
pub(crate) mod duration_str {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. \"500ms\" or \"2s\""
            ))
        })
    }
}

pub(crate) mod opt_duration_str {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration_str::deserialize(d).map(Some)
    }
}
