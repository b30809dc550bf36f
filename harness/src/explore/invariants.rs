//! The invariants a generated run must keep, read off the ordinary verdict: the generator wrote the delivery
//! contract into the scenario's `[expect]`, the verdict judged the run against it, and this module names which
//! promise a failure broke and whom it is attributed to.

use std::fmt;

use serde::Serialize;

use crate::report::Outcome;
use crate::scenario::{Delivery, FaultAction, LossCause, Scenario};

/// A promise of the delivery contract (or the run itself breaking down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// QoS ≥ 1: no row lost that the bridge never published or that the broker never acknowledged.
    NoLoss,
    /// Rows lost after a kill, restart or rebalance: the group's commit was ahead of the acknowledgements.
    CommitAfterAck,
    /// Acknowledged rows lost by a broker that kept its session (the broker's loss, not the bridge's).
    BrokerKeptSession,
    /// QoS 2 without a session-breaking event: no duplicate.
    Qos2NoDuplicate,
    /// Duplicates bounded by `window` per re-sending event (kill, cut, rebalance…).
    BoundedDuplicates,
    /// Rows of one table arrive in write order.
    PerTableOrder,
    /// The bridge never exits on a transient fault.
    BridgeStaysUp,
    /// Wire protocol: every QoS 1/2 flow completes, packet ids are not reused in flight.
    Wire,
    /// Payloads: well-formed, on the right topic, matching a written row.
    Payload,
    /// The world could not be built, a fault never fired, or the run broke down: not a bridge verdict.
    Harness,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoLoss => "no-loss",
            Invariant::CommitAfterAck => "commit-after-ack",
            Invariant::BrokerKeptSession => "broker-kept-session",
            Invariant::Qos2NoDuplicate => "qos2-no-duplicate",
            Invariant::BoundedDuplicates => "bounded-duplicates",
            Invariant::PerTableOrder => "per-table-order",
            Invariant::BridgeStaysUp => "bridge-stays-up",
            Invariant::Wire => "wire",
            Invariant::Payload => "payload",
            Invariant::Harness => "harness",
        }
    }

    /// Whom a violation is attributed to.
    pub fn blame(self) -> &'static str {
        match self {
            Invariant::BrokerKeptSession => "broker",
            Invariant::Harness => "harness",
            _ => "bridge",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The invariants a finished run broke (empty when it passed), in a stable order.
pub fn violated(s: &Scenario, o: &Outcome) -> Vec<Invariant> {
    let Some(v) = &o.verdict else {
        return if o.passed() || o.skipped.is_some() {
            Vec::new()
        } else {
            vec![Invariant::Harness]
        };
    };
    if v.passed {
        return Vec::new();
    }
    let e = &s.expect;
    let mut out = Vec::new();
    let restarts = s.faults.iter().any(|f| {
        matches!(
            f.action,
            FaultAction::BridgeKill | FaultAction::BridgeKillNoRestart
        )
    }) || s.bridges.iter().any(|b| b.start_after.is_some());
    let tolerated = |c: &LossCause| e.delivery == Delivery::AtMostOnce || e.allowed_losses.contains(c);
    for cause in v.losses.keys().filter(|c| !tolerated(c)) {
        out.push(match cause {
            LossCause::Broker => Invariant::BrokerKeptSession,
            _ if restarts => Invariant::CommitAfterAck,
            _ => Invariant::NoLoss,
        });
    }
    for sub in &v.subscribers {
        let limit = match (e.delivery, e.max_duplicates) {
            (Delivery::AtLeastOnce, m) => m,
            _ => Some(0),
        };
        if limit.is_some_and(|l| sub.duplicates > l) {
            out.push(if e.delivery == Delivery::ExactlyOnce {
                Invariant::Qos2NoDuplicate
            } else {
                Invariant::BoundedDuplicates
            });
        }
        if e.per_table_order && !sub.out_of_order.is_empty() {
            out.push(Invariant::PerTableOrder);
        }
        if !sub.malformed.is_empty() || sub.extra > 0 || !sub.wrong_topic.is_empty() {
            out.push(Invariant::Payload);
        }
    }
    for b in &v.bridges {
        let expected = s
            .bridges
            .iter()
            .any(|d| d.name == b.name && d.expect_error.is_some());
        match b.error.as_deref() {
            // The run ended before a late joiner's start: the schedule's doing, not the bridge's.
            Some("never started") => out.push(Invariant::Harness),
            Some(_) if !expected => out.push(Invariant::BridgeStaysUp),
            _ => {}
        }
    }
    if v.wire
        .iter()
        .any(|w| w.never_acked > 0 || w.open_at_end > 0 || !w.pkid_reuse.is_empty())
    {
        out.push(Invariant::Wire);
    }
    if v.failures.iter().any(|f| {
        f.contains("no open flow")
            || f.contains("CONNACK refused")
            || f.contains("open when their connection closed")
    }) {
        out.push(Invariant::Wire);
    }
    if !v.offsets.not_served.is_empty() || !v.offsets.backwards.is_empty() {
        out.push(Invariant::Payload);
    }
    if !v.offsets.committed_unacked.is_empty() {
        out.push(Invariant::CommitAfterAck);
    }
    if v.failures.iter().any(|f| f.starts_with("fault(s) never fired")) {
        out.push(Invariant::Harness);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        // A failure the verdict names that none of the above covers: keep it visible.
        out.push(Invariant::Harness);
    }
    out
}
