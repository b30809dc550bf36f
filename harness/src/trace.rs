//! What happened over time in one run, for the report's pictures: cumulative counts (rows written into
//! TDengine, PUBLISHes the bridge sent, acknowledgements the broker sent, rows committed, messages each
//! subscriber received), the faults as time spans, the bridge's reconnects, and every row's insert → receipt
//! latency.
//!
//! A trace is built after the run from what the runner keeps anyway (the fleet's write stamps, the proxy's
//! wire records, the subscribers' deliveries) plus the commit positions sampled while it ran. It never
//! judges: the verdict stays the only place that decides pass or fail. Times are seconds since the run
//! started; long series are thinned to at most [`MAX_POINTS`] points, keeping the last of each stretch.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::proxy::Fired;
use crate::recorder::Delivered;
use crate::verdict::payload::{self, Payload};
use crate::verdict::ExpectedRow;
use crate::wire::{Direction, Kind, WireRecord};

/// The most points one series keeps.
pub const MAX_POINTS: usize = 400;

/// What a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Rows the fleet wrote into TDengine.
    Written,
    /// PUBLISH packets the bridge sent (retransmissions with DUP not counted).
    Published,
    /// PUBACK / PUBCOMP packets the broker sent.
    Acked,
    /// Rows whose offset the bridge's consumer group committed.
    Committed,
    /// Messages one subscriber received (duplicates counted).
    Delivered,
}

impl Measure {
    /// The legend text.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Written => "written into TDengine",
            Measure::Published => "published by the bridge",
            Measure::Acked => "acknowledged by the broker",
            Measure::Committed => "committed",
            Measure::Delivered => "delivered",
        }
    }
}

/// One cumulative count over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub measure: Measure,
    /// The bridge or subscriber it belongs to (empty for the world's own counts).
    pub owner: String,
    /// (seconds since the start, count), time ascending, starting at (0, 0).
    pub points: Vec<(f64, u64)>,
}

impl Series {
    pub fn title(&self) -> String {
        if self.owner.is_empty() {
            self.measure.label().to_string()
        } else {
            format!("{} ({})", self.measure.label(), self.owner)
        }
    }

    pub fn last(&self) -> u64 {
        self.points.last().map(|p| p.1).unwrap_or(0)
    }
}

/// A fault from the moment it fired until its effect ended (a restart completed, a stall ran out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub label: String,
    pub from_s: f64,
    pub to_s: f64,
}

/// Something that happened at one moment (a bridge's reconnect).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub label: String,
    pub at_s: f64,
}

/// The consumer groups' commit positions at one moment: (topic, vgroup) → position (next version to read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitSample {
    pub at_us: u64,
    pub positions: BTreeMap<(String, i32), i64>,
}

/// One bridge's wire records and the faults its proxy fired, and when the proxy started (both count from
/// there).
pub struct WireTrace<'a> {
    pub bridge: &'a str,
    pub proxy_started_us: u64,
    pub records: &'a [WireRecord],
    pub fired: &'a [Fired],
}

/// What a trace is built from.
pub struct TraceInputs<'a> {
    /// The run's start and end, µs since the Unix epoch.
    pub start_us: u64,
    pub end_us: u64,
    pub expected: &'a [ExpectedRow],
    pub delivered: &'a [Delivered],
    pub wire: &'a [WireTrace<'a>],
    pub commits: &'a [CommitSample],
    /// The faults the runner's timeline fired (the proxies' own come with [`WireTrace::fired`]).
    pub faults: &'a [Span],
}

/// A run over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    pub duration_s: f64,
    pub series: Vec<Series>,
    pub faults: Vec<Span>,
    pub reconnects: Vec<Mark>,
    /// Insert → receipt latency of each row's first delivery to each subscriber, ms, ascending.
    pub latency_ms: Vec<f64>,
    /// Receipt times of every delivered message, seconds since the start, ascending (for msg/s).
    pub receipts_s: Vec<f64>,
}

fn secs(start_us: u64, at_us: u64) -> f64 {
    at_us.saturating_sub(start_us) as f64 / 1e6
}

/// A cumulative step series of events at `times` (seconds), from (0, 0) to `end`.
pub fn cumulative(mut times: Vec<f64>, end: f64) -> Vec<(f64, u64)> {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let mut points = vec![(0.0, 0)];
    if n > 0 {
        let keep = n.min(MAX_POINTS);
        // Indices spread evenly over the events, always ending with the last one.
        for k in 1..=keep {
            let i = (k * n).div_ceil(keep) - 1;
            points.push((times[i], i as u64 + 1));
        }
    }
    let last = points.last().copied().unwrap_or((0.0, 0));
    if end > last.0 {
        points.push((end, last.1));
    }
    points
}

/// Keeps a series of (time, value) samples to at most [`MAX_POINTS`], always with the last one.
fn thin(points: Vec<(f64, u64)>) -> Vec<(f64, u64)> {
    let n = points.len();
    if n <= MAX_POINTS {
        return points;
    }
    (1..=MAX_POINTS)
        .map(|k| points[(k * n).div_ceil(MAX_POINTS) - 1])
        .collect()
}

/// Builds the trace of one run.
pub fn build(inp: &TraceInputs<'_>) -> Trace {
    let end = secs(inp.start_us, inp.end_us);
    let mut series = Vec::new();

    let written: Vec<f64> = inp
        .expected
        .iter()
        .filter_map(|r| r.written_at_us.map(|w| secs(inp.start_us, w)))
        .collect();
    if !written.is_empty() {
        series.push(Series {
            measure: Measure::Written,
            owner: String::new(),
            points: cumulative(written, end),
        });
    }

    let mut reconnects = Vec::new();
    let mut faults = inp.faults.to_vec();
    for w in inp.wire {
        let at = |r: &WireRecord| secs(inp.start_us, w.proxy_started_us + r.at_us);
        let since = |d: std::time::Duration| secs(inp.start_us, w.proxy_started_us + d.as_micros() as u64);
        faults.extend(w.fired.iter().map(|f| Span {
            label: format!("{} ({})", f.fault.label(), w.bridge),
            from_s: since(f.at),
            // Still lasting when the run ended.
            to_s: f.until.map_or(end, since),
        }));
        let published = w
            .records
            .iter()
            .filter(|r| r.kind == Kind::Publish && r.dir == Direction::ToBroker && !r.dup)
            .map(at)
            .collect();
        let acked = w
            .records
            .iter()
            .filter(|r| matches!(r.kind, Kind::PubAck | Kind::PubComp) && r.dir == Direction::ToClient)
            .map(at)
            .collect();
        series.push(Series {
            measure: Measure::Published,
            owner: w.bridge.to_string(),
            points: cumulative(published, end),
        });
        series.push(Series {
            measure: Measure::Acked,
            owner: w.bridge.to_string(),
            points: cumulative(acked, end),
        });
        reconnects.extend(
            w.records
                .iter()
                .filter(|r| r.kind == Kind::Opened && r.conn > 1)
                .map(|r| Mark {
                    label: format!("{} reconnects (connection {})", w.bridge, r.conn),
                    at_s: at(r),
                }),
        );
    }

    if let Some(committed) = committed(inp, end) {
        series.push(committed);
    }

    let mut subscribers: Vec<&str> = inp.delivered.iter().map(|d| d.subscriber.as_str()).collect();
    subscribers.sort_unstable();
    subscribers.dedup();
    for sub in &subscribers {
        let times = inp
            .delivered
            .iter()
            .filter(|d| d.subscriber == *sub)
            .map(|d| secs(inp.start_us, d.at_us))
            .collect();
        series.push(Series {
            measure: Measure::Delivered,
            owner: sub.to_string(),
            points: cumulative(times, end),
        });
    }

    let mut receipts_s: Vec<f64> = inp
        .delivered
        .iter()
        .map(|d| secs(inp.start_us, d.at_us))
        .collect();
    receipts_s.sort_by(f64::total_cmp);

    faults.sort_by(|a, b| a.from_s.total_cmp(&b.from_s));
    Trace {
        duration_s: end,
        series,
        faults,
        reconnects,
        latency_ms: latencies(inp),
        receipts_s,
    }
}

/// Rows committed over time: a row counts from the first sample whose position for its (topic, vgroup) is
/// past the row's message offset (as the bridge published it, or else as a subscriber received it).
fn committed(inp: &TraceInputs<'_>, end: f64) -> Option<Series> {
    if inp.commits.is_empty() {
        return None;
    }
    // Each distinct row once, with the (topic, vgroup, offset) of its first publish or delivery.
    let published = inp.wire.iter().flat_map(|w| {
        w.records
            .iter()
            .filter(|r| r.kind == Kind::Publish && r.dir == Direction::ToBroker)
            .filter_map(|r| r.payload.as_ref())
    });
    let mut seen = HashSet::new();
    let mut rows: Vec<((String, i32), i64)> = Vec::new();
    for p in published.chain(inp.delivered.iter().map(|d| &d.payload)) {
        if let Ok(Payload::Row { data, offset }) = payload::parse(p) {
            if seen.insert(payload::row_key(&data)) {
                rows.push(((offset.topic, offset.vgroup_id), offset.offset));
            }
        }
    }
    let mut points = vec![(0.0, 0)];
    for c in inp.commits {
        let n = rows
            .iter()
            .filter(|(k, off)| c.positions.get(k).is_some_and(|p| off < p))
            .count() as u64;
        let last = points.last().map_or(0, |p| p.1);
        if last != n {
            // A step: the count holds until the sample that moved it.
            let at = secs(inp.start_us, c.at_us);
            points.extend([(at, last), (at, n)]);
        }
    }
    let last = points.last().copied().unwrap_or((0.0, 0));
    if end > last.0 {
        points.push((end, last.1));
    }
    Some(Series {
        measure: Measure::Committed,
        owner: String::new(),
        points: thin(points),
    })
}

/// Insert → receipt latency of each expected row's first delivery to each subscriber.
fn latencies(inp: &TraceInputs<'_>) -> Vec<f64> {
    let written: BTreeMap<String, u64> = inp
        .expected
        .iter()
        .filter_map(|r| r.written_at_us.map(|w| (payload::row_key(&r.data), w)))
        .collect();
    if written.is_empty() {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out: Vec<f64> = inp
        .delivered
        .iter()
        .filter_map(|d| match payload::parse(&d.payload) {
            Ok(Payload::Row { data, .. }) => {
                let key = payload::row_key(&data);
                let w = *written.get(&key)?;
                seen.insert((d.subscriber.as_str(), key))
                    .then(|| d.at_us.saturating_sub(w) as f64 / 1000.0)
            }
            _ => None,
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn row(seq: u64, written_us: u64) -> ExpectedRow {
        let data = json!({"ts": 1_700_000_000_000i64 + seq as i64, "v": seq});
        ExpectedRow {
            seq,
            order: seq,
            database: "db".into(),
            tmq_topic: "t".into(),
            table: "d0".into(),
            vgroup_id: Some(2),
            ts: 1_700_000_000_000 + seq as i64,
            data: data.as_object().cloned().expect("object"),
            written_at_us: Some(written_us),
        }
    }

    fn delivery(sub: &str, seq: u64, offset: i64, at_us: u64) -> Delivered {
        let payload = json!({
            "data": {"ts": 1_700_000_000_000i64 + seq as i64, "v": seq},
            "offset": {"database": "db", "topic": "t", "vgroupId": 2, "offset": offset}
        });
        Delivered {
            subscriber: sub.into(),
            topic: "m".into(),
            payload: Bytes::from(payload.to_string()),
            qos: 1,
            dup: false,
            retain: false,
            at_us,
            v5: None,
        }
    }

    #[test]
    fn cumulative_starts_at_zero_ends_at_the_end_and_thins_long_series() {
        assert_eq!(
            cumulative(vec![2.0, 1.0], 3.0),
            vec![(0.0, 0), (1.0, 1), (2.0, 2), (3.0, 2)]
        );
        assert_eq!(cumulative(vec![], 1.0), vec![(0.0, 0), (1.0, 0)]);
        let long = cumulative((0..10_000).map(|i| i as f64 / 1000.0).collect(), 20.0);
        assert_eq!(long.len(), MAX_POINTS + 2);
        assert_eq!(long[long.len() - 2], (9.999, 10_000));
    }

    #[test]
    fn commits_count_rows_whose_message_offset_is_behind_the_position() {
        let start = 1_000_000;
        let expected = [row(1, start + 100_000), row(2, start + 200_000)];
        let delivered = [
            delivery("s", 1, 10, start + 150_000),
            delivery("s", 2, 11, start + 300_000),
            delivery("s", 2, 11, start + 400_000),
        ];
        let at = |ms: u64, pos: i64| CommitSample {
            at_us: start + ms * 1000,
            positions: [(("t".to_string(), 2), pos)].into(),
        };
        let commits = [at(200, 11), at(300, 11), at(500, 12)];
        let t = build(&TraceInputs {
            start_us: start,
            end_us: start + 1_000_000,
            expected: &expected,
            delivered: &delivered,
            wire: &[],
            commits: &commits,
            faults: &[],
        });
        let committed = t.series.iter().find(|s| s.measure == Measure::Committed).unwrap();
        assert_eq!(
            committed.points,
            vec![(0.0, 0), (0.2, 0), (0.2, 1), (0.5, 1), (0.5, 2), (1.0, 2)]
        );
        let delivered = t.series.iter().find(|s| s.measure == Measure::Delivered).unwrap();
        assert_eq!(delivered.last(), 3, "duplicates count as deliveries");
        assert_eq!(
            t.latency_ms,
            vec![50.0, 100.0],
            "one latency per row and subscriber"
        );
        assert_eq!(t.receipts_s.len(), 3);
    }

    #[test]
    fn proxy_faults_span_from_firing_to_their_end_and_published_rows_count_as_committed() {
        use crate::proxy::{Fired, ProxyFault};
        use std::time::Duration;
        let start = 1_000_000;
        let expected = [row(1, start + 100_000), row(2, start + 100_000)];
        // Row 2 is published but never delivered (the broker's loss); its offset comes from the wire.
        let mut publish = WireRecord::event(1, 150_000, Kind::Publish);
        publish.payload = Some(delivery("s", 2, 11, 0).payload);
        let records = [
            WireRecord::event(1, 0, Kind::Opened),
            publish,
            WireRecord::event(2, 400_000, Kind::Opened),
        ];
        let ms = Duration::from_millis;
        let fired = [
            Fired {
                fault: ProxyFault::Cut,
                at: ms(300),
                until: Some(ms(300)),
            },
            Fired {
                fault: ProxyFault::DropAcks(5),
                at: ms(350),
                until: None,
            },
        ];
        let wire = [WireTrace {
            bridge: "b",
            proxy_started_us: start + 50_000,
            records: &records,
            fired: &fired,
        }];
        let commits = [CommitSample {
            at_us: start + 600_000,
            positions: [(("t".to_string(), 2), 12)].into(),
        }];
        let delivered = [delivery("s", 1, 10, start + 200_000)];
        let t = build(&TraceInputs {
            start_us: start,
            end_us: start + 1_000_000,
            expected: &expected,
            delivered: &delivered,
            wire: &wire,
            commits: &commits,
            faults: &[Span {
                label: "broker-restart".into(),
                from_s: 0.32,
                to_s: 0.33,
            }],
        });
        let spans: Vec<(&str, f64, f64)> = t
            .faults
            .iter()
            .map(|f| (f.label.as_str(), f.from_s, f.to_s))
            .collect();
        assert_eq!(
            spans,
            [
                ("broker-restart", 0.32, 0.33),
                ("cut (b)", 0.35, 0.35),
                ("drop 5 ack(s) (b)", 0.4, 1.0),
            ],
            "sorted by start; a fault still lasting ends with the run"
        );
        let committed = t.series.iter().find(|s| s.measure == Measure::Committed).unwrap();
        assert_eq!(committed.last(), 2, "the undelivered row is committed too");
        assert_eq!(t.reconnects.len(), 1);
        assert!((t.reconnects[0].at_s - 0.45).abs() < 1e-9);
    }
}
