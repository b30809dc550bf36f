//! The verdict: pure functions from what was written (expected rows), what subscribers received and what
//! the wire carried, to pass/fail with reasons — missing rows (each loss attributed), duplicates, extra and
//! malformed messages, per-table order, topic rendering, QoS semantics, wire protocol checks, latency and
//! throughput.

pub mod offsets;
pub mod operator;
pub mod payload;
pub mod stats;
pub mod topic;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use tmq2mqtt::TargetDsn;

use crate::recorder::{Delivered, Ending};
use crate::scenario::{Delivery, LossCause, Scenario, Severity};
use crate::wire::WireRecord;
use payload::Payload;
use wire::{PayloadFate, WireReport};

/// A row the bridge must deliver, in write order.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRow {
    /// Position in the fleet's write log (names the row in reports).
    pub seq: u64,
    /// Position in the order TDengine stores the rows of one table (write order, rows of one INSERT sorted by
    /// timestamp): the per-table order check compares this.
    pub order: u64,
    pub database: String,
    pub tmq_topic: String,
    pub table: String,
    /// Vgroup of the table when the world knows it (otherwise learnt from deliveries).
    pub vgroup_id: Option<i32>,
    pub ts: i64,
    /// The `data` object the payload must carry, in the topic's column order.
    pub data: Map<String, Value>,
    /// When the row was written, µs since the Unix epoch.
    pub written_at_us: Option<u64>,
}

/// How a bridge ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BridgeOutcome {
    pub name: String,
    /// The error it exited with, if it did.
    pub error: Option<String>,
    /// Its counters at the end (in-process bridges only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<BridgeCounters>,
}

/// What an in-process bridge counted that the verdict judges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BridgeCounters {
    /// Rows published to the dead-letter topic, by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// WAL versions trimmed before the group read them.
    pub wal_gap_versions: u64,
    /// Rows (and meta events) read and not published, by reason.
    pub skipped: BTreeMap<String, u64>,
}

/// Everything a verdict is made from.
pub struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub expected: &'a [ExpectedRow],
    pub delivered: &'a [Delivered],
    /// Proxy records per bridge.
    pub wire: &'a [(String, Vec<WireRecord>)],
    pub bridges: &'a [BridgeOutcome],
    pub ending: Ending,
    /// The fault timeline: what fired and what never did.
    pub faults: &'a FaultLog,
    /// Offsets the scenario's consumer groups committed, read from TDengine after the bridges stopped.
    pub committed: &'a [CommittedOffset],
    /// Every TMQ message the stand-in handed out (`None` against an external TDengine).
    pub served: Option<&'a [simulator::tdengine::tmq::ServedMessage]>,
    /// The command that replays this run.
    pub replay: String,
}

/// The faults of a run: `"Action at time"` for each that fired, `"Action at trigger"` for each that did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultLog {
    pub fired: Vec<String>,
    pub unfired: Vec<String>,
}

/// One row of `SHOW SUBSCRIPTIONS` of a scenario's consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub vgroup_id: i32,
    /// As TDengine shows it: `log:N` once committed, else the reset position.
    pub offset: String,
}

impl CommittedOffset {
    /// The committed log position, if one was committed.
    pub fn committed(&self) -> Option<i64> {
        self.offset.strip_prefix("log:")?.parse().ok()
    }
}

/// A row named in a report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RowRef {
    pub table: String,
    pub ts: i64,
    pub seq: u64,
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} (write log #{})", self.table, self.ts, self.seq)
    }
}

/// What one subscriber saw against what it should have seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriberReport {
    pub name: String,
    pub expected: usize,
    pub received: usize,
    /// Distinct expected rows received at least once.
    pub distinct: usize,
    pub missing: Vec<RowRef>,
    pub duplicates: u64,
    /// Well-formed rows that match no expected row.
    pub extra: u64,
    /// (topic, reason) of payloads that are not the taosx shape.
    pub malformed: Vec<(String, String)>,
    /// Rows of a table that arrived before an earlier-written row of that table.
    pub out_of_order: Vec<RowRef>,
    /// (row, expected topic, actual topic).
    pub wrong_topic: Vec<(RowRef, String, String)>,
    /// Meta event types, in arrival order.
    pub meta_events: Vec<String>,
    /// Deliveries above min(published QoS, subscribed QoS): (delivered, published).
    pub qos_upgrades: u64,
    /// Expected rows that arrived on the dead-letter topic instead (`[expect.dead_letters]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dead_lettered: Vec<RowRef>,
    /// Expected rows trimmed from the WAL before the group read them (`[expect.wal_gap]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_to_wal_gap: Vec<RowRef>,
}

/// The judgement of one scenario run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub failures: Vec<String>,
    /// Deviations seen but tolerated by the scenario (library or broker behaviour).
    pub deviations: Vec<String>,
    pub ending: Ending,
    pub subscribers: Vec<SubscriberReport>,
    /// Missing rows by cause (over all judged subscribers, deduplicated).
    pub losses: BTreeMap<LossCause, Vec<RowRef>>,
    pub wire: Vec<WireReport>,
    /// The payloads' `offset` against the served messages, per-connection order and the commits.
    pub offsets: offsets::OffsetReport,
    /// Rows expected nowhere because their topic template uses a variable data messages lack.
    pub skipped_by_template: usize,
    pub latency: Option<stats::Latency>,
    pub throughput_msg_s: Option<f64>,
    pub bridges: Vec<BridgeOutcome>,
    pub replay: String,
}

/// How many rows a report lists by name before summarising.
const LIST: usize = 10;

fn list(rows: &[RowRef]) -> String {
    let mut s: Vec<String> = rows.iter().take(LIST).map(|r| r.to_string()).collect();
    if rows.len() > LIST {
        s.push(format!("… and {} more", rows.len() - LIST));
    }
    s.join(", ")
}

impl ExpectedRow {
    fn row_ref(&self) -> RowRef {
        RowRef {
            table: self.table.clone(),
            ts: self.ts,
            seq: self.seq,
        }
    }
}

/// The target of the bridge that consumes `tmq_topic` (first bridge when none names it).
fn target_for(s: &Scenario, tmq_topic: &str) -> Option<TargetDsn> {
    let bridge = s
        .bridges
        .iter()
        .find(|b| b.consumes(tmq_topic))
        .or(s.bridges.first())?;
    bridge.target().ok()
}

/// Judges one run.
pub fn judge(inp: &Inputs) -> Verdict {
    let s = inp.scenario;
    let mut failures = Vec::new();
    let mut deviations = Vec::new();

    // The wire first: it feeds loss attribution and QoS checks.
    let mut fates: HashMap<Bytes, PayloadFate> = HashMap::new();
    let mut wire: Vec<WireReport> = inp
        .wire
        .iter()
        .map(|(bridge, records)| wire::check(bridge, records, &mut fates))
        .collect();
    wire::settle_never_acked(&mut wire);
    let fate_by_key = wire::by_row(&fates);

    let offsets = offsets::judge(inp.wire, inp.served, inp.committed, inp.expected, &fate_by_key);
    failures.extend(offsets.failures());

    // Vgroups learnt from deliveries, for expectations that depend on {vgroup_id}.
    let mut vgroup_of: HashMap<(String, String), i32> = HashMap::new();
    let expected_by_key: HashMap<String, Vec<usize>> =
        inp.expected
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (i, r)| {
                m.entry(payload::row_key(&r.data)).or_default().push(i);
                m
            });
    for d in inp.delivered {
        if let Ok(Payload::Row { data, offset }) = payload::parse(&d.payload) {
            if let Some(&i) = expected_by_key
                .get(&payload::row_key(&data))
                .and_then(|v| v.first())
            {
                vgroup_of.insert(
                    (inp.expected[i].database.clone(), inp.expected[i].table.clone()),
                    offset.vgroup_id,
                );
            }
        }
    }

    // Where each expected row should appear (None = skipped by the template).
    let mut skipped = 0;
    let expected_topic: Vec<Option<Option<String>>> = inp
        .expected
        .iter()
        .map(|r| {
            let target = target_for(s, &r.tmq_topic)?;
            let vg = r
                .vgroup_id
                .or_else(|| vgroup_of.get(&(r.database.clone(), r.table.clone())).copied());
            let vars = topic::Vars {
                database: Some(&r.database),
                tmq_topic: Some(&r.tmq_topic),
                vgroup_id: vg,
                stable: None,
                table: Some(&r.table),
            };
            match topic::render(target.topic.as_str(), &vars) {
                Ok(t) => Some(Some(t)),
                Err(topic::Unrendered::Unknown(_)) => Some(None),
                Err(topic::Unrendered::Missing(_)) => None,
            }
        })
        .collect();
    for t in &expected_topic {
        if t.is_none() {
            skipped += 1;
        }
    }

    let side = s.expect.side_subscribers();
    let judged: Vec<&crate::scenario::SubscriberDef> = s
        .subscribers
        .iter()
        .filter(|sub| s.expect.subscribers.is_empty() || s.expect.subscribers.contains(&sub.name))
        .filter(|sub| !side.contains(&sub.name.as_str()))
        .collect();
    // Dead letters, gap events and v5 properties: judged by `operator`, feeding the row accounting below.
    let side_output = operator::judge(&s.expect, &judged, inp.delivered, inp.bridges);
    failures.extend(side_output.failures.iter().cloned());
    let publish_qos = s
        .bridges
        .iter()
        .filter_map(|b| b.target().ok())
        .map(|t| t.qos)
        .max()
        .unwrap_or(0);

    let mut subscribers = Vec::new();
    let mut losses: BTreeMap<LossCause, Vec<RowRef>> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut receipts = Vec::new();
    for sub in &judged {
        let mine: Vec<usize> = (0..inp.expected.len())
            .filter(|&i| match &expected_topic[i] {
                None => false,
                Some(None) => true,
                Some(Some(t)) => rumqttc::matches(t, &sub.filter),
            })
            .collect();
        let mut rep = SubscriberReport {
            name: sub.name.clone(),
            expected: mine.len(),
            ..SubscriberReport::default()
        };
        let mut want: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in &mine {
            want.entry(payload::row_key(&inp.expected[i].data))
                .or_default()
                .push(i);
        }
        let mut got: HashMap<String, usize> = HashMap::new();
        // Per table: the write-log position of the last first-delivery seen.
        let mut last_seq: HashMap<&str, u64> = HashMap::new();
        for d in inp.delivered.iter().filter(|d| d.subscriber == sub.name) {
            rep.received += 1;
            match payload::parse(&d.payload) {
                Err(why) => rep.malformed.push((d.topic.clone(), why)),
                Ok(Payload::Meta { meta, .. }) => rep.meta_events.push(
                    meta.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                ),
                Ok(Payload::Row { data, .. }) => {
                    let key = payload::row_key(&data);
                    let n = got.entry(key.clone()).or_default();
                    *n += 1;
                    let Some(rows) = want.get(&key) else {
                        rep.extra += 1;
                        continue;
                    };
                    if *n > rows.len() {
                        rep.duplicates += 1;
                        continue;
                    }
                    let row = &inp.expected[rows[*n - 1]];
                    rep.distinct += 1;
                    receipts.push(d.at_us);
                    if let Some(w) = row.written_at_us {
                        latencies.push(d.at_us.saturating_sub(w));
                    }
                    if let Some(Some(t)) = &expected_topic[rows[*n - 1]] {
                        if t != &d.topic {
                            rep.wrong_topic.push((row.row_ref(), t.clone(), d.topic.clone()));
                        }
                    }
                    let last = last_seq.entry(row.table.as_str()).or_insert(0);
                    if row.order < *last {
                        rep.out_of_order.push(row.row_ref());
                    } else {
                        *last = row.order;
                    }
                    let allowed = publish_qos.min(sub.qos);
                    if d.qos > allowed {
                        rep.qos_upgrades += 1;
                    }
                }
            }
        }
        let mut accounts = side_output.accounts.clone();
        for (key, rows) in &want {
            let n = got.get(key).copied().unwrap_or(0);
            for &i in rows.iter().skip(n) {
                let r = inp.expected[i].row_ref();
                let cause = match (inp.wire.is_empty(), fate_by_key.get(key)) {
                    (true, _) => LossCause::Unknown,
                    (false, None) => LossCause::NeverPublished,
                    (false, Some(f)) if !f.published => LossCause::NeverPublished,
                    (false, Some(f)) if !f.acked => LossCause::NeverAcked,
                    (false, Some(_)) => LossCause::Broker,
                };
                if accounts.dead_letter(key, &inp.expected[i].table) {
                    rep.dead_lettered.push(r);
                    continue;
                }
                if cause != LossCause::NeverAcked && cause != LossCause::Broker && accounts.wal_gap() {
                    rep.lost_to_wal_gap.push(r);
                    continue;
                }
                losses.entry(cause).or_default().push(r.clone());
                rep.missing.push(r);
            }
        }
        rep.missing.sort();
        rep.dead_lettered.sort();
        rep.lost_to_wal_gap.sort();
        failures.extend(accounts.unmet(&rep.name));
        for (what, rows) in [
            ("arrived as dead letters", &rep.dead_lettered),
            ("lost to the WAL gap, as expected", &rep.lost_to_wal_gap),
        ] {
            if !rows.is_empty() {
                deviations.push(format!(
                    "{}: {} row(s) {what}: {}",
                    rep.name,
                    rows.len(),
                    list(rows)
                ));
            }
        }
        subscribers.push(rep);
    }
    for rows in losses.values_mut() {
        rows.sort();
        rows.dedup();
    }
    // An explicit row count replaces the row expectation: nothing else is "missing" then.
    if let Some(n) = s.expect.rows {
        losses.clear();
        for rep in &mut subscribers {
            rep.expected = n as usize;
            rep.missing.clear();
        }
    }

    // Rules.
    let e = &s.expect;
    for rep in &subscribers {
        let who = &rep.name;
        if !rep.malformed.is_empty() {
            let (topic, why) = &rep.malformed[0];
            failures.push(format!(
                "{who}: {} malformed message(s), first on {topic:?}: {why}",
                rep.malformed.len()
            ));
        }
        if rep.extra > 0 {
            failures.push(format!("{who}: {} message(s) match no written row", rep.extra));
        }
        if !rep.wrong_topic.is_empty() {
            let (row, want, got) = &rep.wrong_topic[0];
            failures.push(format!(
                "{who}: {} row(s) on the wrong topic, e.g. {row} on {got:?} instead of {want:?}",
                rep.wrong_topic.len()
            ));
        }
        if e.per_table_order && !rep.out_of_order.is_empty() {
            failures.push(format!(
                "{who}: rows out of per-table write order: {}",
                list(&rep.out_of_order)
            ));
        }
        let dup_limit = match (e.delivery, e.max_duplicates) {
            (Delivery::AtLeastOnce, None) => None,
            (Delivery::AtLeastOnce, Some(m)) => Some(m),
            _ => Some(0),
        };
        if let Some(limit) = dup_limit {
            if rep.duplicates > limit {
                failures.push(format!(
                    "{who}: {} duplicate(s), {:?} allows {limit}",
                    rep.duplicates, e.delivery
                ));
            }
        }
        if let Some(rows) = e.rows {
            if rep.distinct as u64 != rows {
                failures.push(format!(
                    "{who}: {} distinct row(s) delivered, the scenario expects {rows}",
                    rep.distinct
                ));
            }
        }
        if !e.meta_events.is_empty() && !is_subsequence(&e.meta_events, &rep.meta_events) {
            failures.push(format!(
                "{who}: meta events {:?} do not contain {:?} in order",
                rep.meta_events, e.meta_events
            ));
        }
        if rep.qos_upgrades > 0 {
            let msg = format!(
                "{who}: {} message(s) delivered above min(published QoS {publish_qos}, subscribed QoS {}) — \
                 the broker delivers at the subscription's QoS (rumqttd does)",
                rep.qos_upgrades,
                judged.iter().find(|d| &d.name == who).map(|d| d.qos).unwrap_or(0)
            );
            match e.wire.qos_upgrade {
                Severity::Fail => failures.push(msg),
                Severity::Report => deviations.push(msg),
            }
        }
    }
    if e.rows.is_none() {
        for (cause, rows) in &losses {
            let tolerated = e.delivery == Delivery::AtMostOnce || e.allowed_losses.contains(cause);
            let what = match cause {
                LossCause::NeverPublished => "never published by the bridge",
                LossCause::NeverAcked => "published but never acknowledged by the broker",
                LossCause::Broker => "acknowledged by the broker but never delivered (the broker's loss)",
                LossCause::Unknown => "lost (no wire recording to attribute them)",
            };
            let msg = format!("{} row(s) {what}: {}", rows.len(), list(rows));
            if tolerated {
                deviations.push(format!("tolerated loss: {msg}"));
            } else {
                failures.push(msg);
            }
        }
    }
    for w in &wire {
        let b = &w.bridge;
        if w.retransmits_without_dup > 0 {
            let msg = format!(
                "{b}: {} of {} retransmitted PUBLISH(es) without DUP=1 (rumqttc never sets DUP)",
                w.retransmits_without_dup, w.retransmits
            );
            match e.wire.missing_dup {
                Severity::Fail => failures.push(msg),
                Severity::Report => deviations.push(msg),
            }
        }
        if w.pubrel_unanswered_at_close > 0 {
            deviations.push(format!(
                "{b}: {} PUBREL(s) unanswered by the broker when it closed the connection (MQTT 4.3.3 wants a PUBCOMP)",
                w.pubrel_unanswered_at_close
            ));
        }
        if !w.pkid_reuse.is_empty() {
            let msg = format!("{b}: packet id reused while in flight: {:?}", w.pkid_reuse);
            match e.wire.pkid_reuse {
                Severity::Fail => failures.push(msg),
                Severity::Report => deviations.push(msg),
            }
        }
        let expect_error = s.bridges.iter().any(|d| &d.name == b && d.expect_error.is_some());
        if w.unsolicited_acks > 0 {
            let msg = format!(
                "{b}: {} acknowledgement(s) from the broker for packet ids with no open flow",
                w.unsolicited_acks
            );
            match e.wire.unsolicited_acks {
                Severity::Fail => failures.push(msg),
                Severity::Report => deviations.push(msg),
            }
        }
        if !w.refused_connacks.is_empty() {
            let msg = format!("{b}: CONNACK refused with code(s) {:?}", w.refused_connacks);
            if expect_error {
                deviations.push(msg);
            } else {
                failures.push(msg);
            }
        }
        if w.open_at_close > 0 {
            let msg = format!(
                "{b}: {} QoS 1/2 flow(s) open when their connection closed",
                w.open_at_close
            );
            // A scenario with faults (cuts, kills, restarts: some armed in the proxy) leaves flows open.
            let excused = expect_error || !s.faults.is_empty();
            match (e.wire.open_at_close, excused) {
                (Severity::Fail, false) => failures.push(msg),
                _ => deviations.push(msg),
            }
        }
        if w.never_acked > 0 || w.open_at_end > 0 {
            let msg = format!(
                "{b}: {} QoS 1/2 payload(s) never acknowledged, {} flow(s) still open at the end",
                w.never_acked, w.open_at_end
            );
            match (e.wire.unacked, expect_error) {
                (Severity::Fail, false) => failures.push(msg),
                _ => deviations.push(msg),
            }
        }
    }
    for cause in &e.required_losses {
        if losses.get(cause).is_none_or(|rows| rows.is_empty()) {
            failures.push(format!(
                "no row lost to {cause:?}, but the scenario exists to show such a loss"
            ));
        }
    }
    judge_skipped(e, inp.bridges, &mut failures);
    for def in &s.bridges {
        let outcome = inp.bridges.iter().find(|o| o.name == def.name);
        let error = outcome.and_then(|o| o.error.as_deref());
        match (&def.expect_error, error) {
            (Some(want), Some(got)) if got.contains(want.as_str()) => {}
            (Some(want), Some(got)) => failures.push(format!(
                "bridge {}: failed with {got:?}, expected an error naming {want:?}",
                def.name
            )),
            (Some(want), None) => failures.push(format!(
                "bridge {}: expected to fail with an error naming {want:?}, but it did not",
                def.name
            )),
            (None, Some(got)) => failures.push(format!("bridge {} failed: {got}", def.name)),
            (None, None) => {}
        }
    }
    judge_faults_and_commits(inp, &mut failures, &mut deviations);
    // A run that ended at its deadline is judged like any other: every row it lacks is already a named,
    // attributed loss above (the report notes the ending).
    Verdict {
        scenario: s.name.clone(),
        seed: inp.seed,
        passed: failures.is_empty(),
        failures,
        deviations,
        ending: inp.ending,
        subscribers,
        losses,
        wire,
        offsets,
        skipped_by_template: skipped,
        latency: stats::latency(latencies),
        throughput_msg_s: stats::throughput(&receipts),
        bridges: inp.bridges.to_vec(),
        replay: inp.replay.clone(),
    }
}

/// Faults that never fired fail the run (the scenario did not test what it says); offsets committed where
/// nothing may be fail it too.
fn judge_faults_and_commits(inp: &Inputs, failures: &mut Vec<String>, deviations: &mut Vec<String>) {
    if !inp.faults.unfired.is_empty() {
        failures.push(format!(
            "fault(s) never fired (trigger not reached before the deadline): {}",
            inp.faults.unfired.join(", ")
        ));
    }
    if inp.scenario.expect.nothing_committed {
        let committed: Vec<&str> = inp
            .committed
            .iter()
            .filter(|c| c.committed().is_some())
            .map(|c| c.offset.as_str())
            .collect();
        if !committed.is_empty() {
            failures.push(format!(
                "offsets were committed although nothing may be: {}",
                committed.join(", ")
            ));
        }
    }
    if !inp.faults.fired.is_empty() {
        deviations.push(format!("faults fired: {}", inp.faults.fired.join(", ")));
    }
}

/// `[expect] skipped`: the in-process bridges' skip counters, summed, must equal the expectation per reason.
fn judge_skipped(e: &crate::scenario::Expect, bridges: &[BridgeOutcome], failures: &mut Vec<String>) {
    if e.skipped.is_empty() {
        return;
    }
    let counted: Vec<&BridgeCounters> = bridges.iter().filter_map(|b| b.counters.as_ref()).collect();
    if counted.is_empty() {
        failures.push("[expect] skipped needs an in-process bridge (no skip counters to judge)".into());
        return;
    }
    let sum = skipped_sum(counted.into_iter());
    for (reason, want) in &e.skipped {
        let got = sum.get(reason).copied().unwrap_or(0);
        if got != *want {
            failures.push(format!(
                "bridges counted {got} row(s) skipped as {reason}, the scenario expects {want} (skipped: {sum:?})"
            ));
        }
    }
}

/// Skip counters summed over bridges.
pub fn skipped_sum<'a>(counters: impl Iterator<Item = &'a BridgeCounters>) -> BTreeMap<String, u64> {
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for c in counters {
        for (reason, n) in &c.skipped {
            *sum.entry(reason.clone()).or_default() += n;
        }
    }
    sum
}

/// `want` appears in `seen` in order (other events may sit between).
fn is_subsequence(want: &[String], seen: &[String]) -> bool {
    let mut it = seen.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

#[cfg(test)]
mod tests;
