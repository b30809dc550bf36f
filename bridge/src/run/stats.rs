//! The run's counters: live ([`Stats`], shared with the metrics endpoint and the harness) and as a
//! summary ([`RunSummary`]), plus the reasons a row is not published ([`Skip`]).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
};

use crate::source;

/// Why a row or meta event was not published (each counted; [`Skip::as_str`] is the metric label of
/// `tmq2mqtt_skipped_total`, and of `tmq2mqtt_dead_lettered_total` when its dead letter went out instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// The topic template uses a variable the message does not have (taosx's rule).
    MissingVariable,
    /// A meta event arrived but the source DSN did not ask for meta (`with.meta`).
    MetaDisabled,
    /// A delete or drop event filtered out by `with.meta.delete` / `with.meta.drop`.
    MetaFiltered,
    /// MQTT 5: the broker answered with a failure reason code.
    BrokerRejected,
    /// The PUBLISH would exceed `max_packet_size` (the client would fail the connection on it, forever).
    TooLarge,
    /// The rendered topic is no valid topic name (a table name with `+`, `#` or NUL).
    InvalidTopic,
}

impl Skip {
    /// The reason as reported in [`RunSummary::skipped`] and the `reason` label of
    /// `tmq2mqtt_skipped_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::MissingVariable => "missing_variable",
            Skip::MetaDisabled => "meta_disabled",
            Skip::MetaFiltered => "meta_filtered",
            Skip::BrokerRejected => "broker_rejected",
            Skip::TooLarge => "too_large",
            Skip::InvalidTopic => "invalid_topic",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live counters, readable while the bridge runs ([`Bridge::stats`](super::Bridge::stats)).
#[derive(Debug, Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub rows: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub resent: AtomicU64,
    pub mqtt_connects: AtomicU64,
    /// Failed MQTT connection attempts (each followed by a backoff).
    pub mqtt_failures: AtomicU64,
    pub tmq_subscribes: AtomicU64,
    /// TDengine connection losses / failed subscribes (each followed by a backoff).
    pub tmq_failures: AtomicU64,
    /// Connected to the broker now (between a CONNACK and the next disconnect).
    pub mqtt_connected: AtomicBool,
    /// Subscribed to TDengine now (between a subscribe and the next connection loss).
    pub tmq_connected: AtomicBool,
    /// Rows (and meta events) queued or published but not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Polls cut short by `poll.interval.ms` that had moved the server, sought back.
    pub tmq_rewinds: AtomicU64,
    /// Each vgroup's WAL end as the source last saw it (`tmq2mqtt_lag`).
    pub wal_ends: Arc<source::WalEnds>,
    skipped: Mutex<BTreeMap<Skip, u64>>,
    dead_lettered: Mutex<BTreeMap<Skip, u64>>,
    wal_gap_versions: Mutex<BTreeMap<(String, i32), u64>>,
    committed: Mutex<BTreeMap<(String, i32), i64>>,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub(super) fn skip(&self, reason: Skip, n: u64) {
        if n > 0 {
            *self
                .skipped
                .lock()
                .expect("stats lock")
                .entry(reason)
                .or_default() += n;
        }
    }

    pub(super) fn dead_letter(&self, reason: Skip, n: u64) {
        if n > 0 {
            *self
                .dead_lettered
                .lock()
                .expect("stats lock")
                .entry(reason)
                .or_default() += n;
        }
    }

    pub(super) fn wal_gap(&self, gap: &source::WalGap) {
        *self
            .wal_gap_versions
            .lock()
            .expect("stats lock")
            .entry((gap.topic.to_string(), gap.vgroup_id))
            .or_default() += gap.versions();
    }

    /// The last connection error (MQTT or TDengine), for reports; `None` while all went well.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("stats lock").clone()
    }

    pub(super) fn set_error(&self, e: String) {
        *self.last_error.lock().expect("stats lock") = Some(e);
    }

    pub(super) fn set_committed(&self, topic: &str, vgroup_id: i32, offset: i64) {
        self.committed
            .lock()
            .expect("stats lock")
            .insert((topic.to_string(), vgroup_id), offset);
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> RunSummary {
        RunSummary {
            messages: self.messages.load(Relaxed),
            rows: self.rows.load(Relaxed),
            published: self.published.load(Relaxed),
            acked: self.acked.load(Relaxed),
            resent: self.resent.load(Relaxed),
            mqtt_connects: self.mqtt_connects.load(Relaxed),
            mqtt_failures: self.mqtt_failures.load(Relaxed),
            tmq_subscribes: self.tmq_subscribes.load(Relaxed),
            tmq_failures: self.tmq_failures.load(Relaxed),
            tmq_rewinds: self.tmq_rewinds.load(Relaxed),
            skipped: self
                .skipped
                .lock()
                .expect("stats lock")
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            dead_lettered: self
                .dead_lettered
                .lock()
                .expect("stats lock")
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            wal_gap_versions: self.wal_gap_versions.lock().expect("stats lock").clone(),
            committed: self.committed.lock().expect("stats lock").clone(),
            unacked_at_exit: 0,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// TMQ messages received.
    pub messages: u64,
    /// Data rows received.
    pub rows: u64,
    /// Publishes handed to the MQTT client (re-sends included).
    pub published: u64,
    /// Publishes acknowledged (QoS 0: written).
    pub acked: u64,
    /// Publishes re-sent after a session was lost.
    pub resent: u64,
    /// MQTT connections established (1 + reconnects).
    pub mqtt_connects: u64,
    /// Failed MQTT connection attempts.
    pub mqtt_failures: u64,
    /// TMQ subscriptions made (1 + reconnects).
    pub tmq_subscribes: u64,
    /// TDengine connection losses / failed subscribes.
    pub tmq_failures: u64,
    /// Polls cut short by `poll.interval.ms` that had moved the server past a message; the source
    /// sought back, so nothing was skipped.
    pub tmq_rewinds: u64,
    /// Rows/meta events not published, by reason ([`Skip::as_str`]).
    pub skipped: BTreeMap<String, u64>,
    /// Rows/meta events published to the dead-letter topic instead, by reason ([`Skip::as_str`]).
    pub dead_lettered: BTreeMap<String, u64>,
    /// WAL versions trimmed before the group read them, per (topic, vgroup) (see
    /// [`WalGap`](crate::source::WalGap)).
    pub wal_gap_versions: BTreeMap<(String, i32), u64>,
    /// Offsets committed to TDengine, per (topic, vgroup): the position a restart resumes from.
    pub committed: BTreeMap<(String, i32), i64>,
    /// Publishes still unacknowledged when the run ended (shutdown deadline passed).
    pub unacked_at_exit: usize,
}

#[cfg(test)]
mod tests {
    use super::Skip;

    /// The labels are an interface (metrics, summaries, tests): they must not drift.
    #[test]
    fn skip_labels_are_stable() {
        let all = [
            (Skip::MissingVariable, "missing_variable"),
            (Skip::MetaDisabled, "meta_disabled"),
            (Skip::MetaFiltered, "meta_filtered"),
            (Skip::BrokerRejected, "broker_rejected"),
            (Skip::TooLarge, "too_large"),
            (Skip::InvalidTopic, "invalid_topic"),
        ];
        for (skip, label) in all {
            assert_eq!(skip.as_str(), label);
            assert_eq!(skip.to_string(), label);
        }
    }
}
