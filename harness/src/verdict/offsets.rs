//! The payload's `offset`, judged against the wire and the server:
//!
//! - **served**: every published row carries the offset of a TMQ message the stand-in handed out with that
//!   row in it (a meta event: of a meta message of its vgroup); a row carried in two differently cut
//!   messages may show either;
//! - **order**: within one connection of one bridge, the rows it publishes for the first time show
//!   non-decreasing offsets per vgroup (a row published again — re-sent after a reconnect or polled again
//!   after TMQ resumed from the commit — is exempt: it may come from an older message);
//! - **commit**: no consumer group committed a vgroup past a message whose rows the bridge published and the
//!   broker never acknowledged (QoS 1/2), read from `SHOW SUBSCRIPTIONS` and the wire.
//!
//! The served messages come from the stand-in's own record ([`simulator::tdengine::tmq::Tmq::served`]);
//! against an external TDengine only the order is judged.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use simulator::tdengine::tmq::ServedMessage;

use super::payload::{self, Payload};
use super::wire::PayloadFate;
use super::{CommittedOffset, ExpectedRow};
use crate::wire::{Direction, Kind, WireRecord};

/// What the offset checks found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OffsetReport {
    /// Row and meta publishes whose offset was compared with the served messages.
    pub checked: u64,
    /// Publishes whose offset is not that of a message the server handed out with them (first few named).
    pub not_served: Vec<String>,
    /// First publications whose offset is below an earlier one of the same vgroup on the same connection.
    pub backwards: Vec<String>,
    /// Committed offsets past a message with a published row the broker never acknowledged.
    pub committed_unacked: Vec<String>,
}

impl OffsetReport {
    /// One failure line per broken rule.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, found) in [
            (
                "published with an offset no TMQ message carrying them had",
                &self.not_served,
            ),
            (
                "published with an offset below an earlier one of their vgroup on the same connection",
                &self.backwards,
            ),
            (
                "committed past a row the broker never acknowledged",
                &self.committed_unacked,
            ),
        ] {
            if !found.is_empty() {
                out.push(format!("payload offsets {what}: {}", found.join("; ")));
            }
        }
        out
    }
}

/// How many findings of each kind are named.
const NAMED: usize = 5;

fn note(list: &mut Vec<String>, what: impl FnOnce() -> String) {
    if list.len() < NAMED {
        list.push(what());
    } else if list.len() == NAMED {
        list.push("…".into());
    }
}

/// (database, topic, vgroup).
type Vgroup = (String, String, i32);

/// Judges the offsets of every bridge's publishes.
pub fn judge(
    wire: &[(String, Vec<WireRecord>)],
    served: Option<&[ServedMessage]>,
    committed: &[CommittedOffset],
    expected: &[ExpectedRow],
    fates: &HashMap<String, PayloadFate>,
) -> OffsetReport {
    let mut rep = OffsetReport::default();
    let by_key: HashMap<String, &ExpectedRow> =
        expected.iter().map(|r| (payload::row_key(&r.data), r)).collect();
    // (topic, vgroup, table, ts) → offsets of the messages that carried the row; (topic, vgroup) → meta offsets.
    let mut row_offsets: HashMap<(&str, i32, &str, i64), BTreeSet<i64>> = HashMap::new();
    let mut meta_offsets: HashMap<(&str, i32), BTreeSet<i64>> = HashMap::new();
    for m in served.unwrap_or_default() {
        if m.rows.is_empty() {
            meta_offsets
                .entry((&m.topic, m.vgroup))
                .or_default()
                .insert(m.offset);
        }
        for (table, ts) in &m.rows {
            row_offsets
                .entry((&m.topic, m.vgroup, table, *ts))
                .or_default()
                .insert(m.offset);
        }
    }
    for (bridge, records) in wire {
        let mut published: HashSet<Vec<u8>> = HashSet::new();
        let mut last: HashMap<(u32, Vgroup), i64> = HashMap::new();
        for r in records {
            if r.dir != Direction::ToBroker || r.kind != Kind::Publish {
                continue;
            }
            let Some(raw) = &r.payload else { continue };
            let Ok(p) = payload::parse(raw) else { continue };
            let (identity, offset, row) = match &p {
                Payload::Row { data, offset } => {
                    let key = payload::row_key(data);
                    let row = by_key.get(&key).copied();
                    (key.into_bytes(), offset, row)
                }
                Payload::Meta { offset, .. } => (raw.to_vec(), offset, None),
            };
            if served.is_some() {
                let known = match (&p, row) {
                    (Payload::Row { .. }, Some(row)) => Some(
                        row_offsets
                            .get(&(
                                offset.topic.as_str(),
                                offset.vgroup_id,
                                row.table.as_str(),
                                row.ts,
                            ))
                            .is_some_and(|o| o.contains(&offset.offset)),
                    ),
                    // A row matching no expected row is judged (as extra) by the subscribers' reports.
                    (Payload::Row { .. }, None) => None,
                    (Payload::Meta { .. }, _) => Some(
                        meta_offsets
                            .get(&(offset.topic.as_str(), offset.vgroup_id))
                            .is_some_and(|o| o.contains(&offset.offset)),
                    ),
                };
                if let Some(ok) = known {
                    rep.checked += 1;
                    if !ok {
                        note(&mut rep.not_served, || {
                            let what = match row {
                                Some(row) => format!("{}@{}", row.table, row.ts),
                                None => "a meta event".into(),
                            };
                            let carried = row
                                .and_then(|row| {
                                    row_offsets.get(&(
                                        offset.topic.as_str(),
                                        offset.vgroup_id,
                                        row.table.as_str(),
                                        row.ts,
                                    ))
                                })
                                .map(|o| format!("{o:?}"))
                                .unwrap_or_else(|| "none".into());
                            format!(
                                "{bridge}: {what} (topic {}, vgroup {}) carries offset {}, served in message(s) at {carried}",
                                offset.topic, offset.vgroup_id, offset.offset
                            )
                        });
                    }
                }
            }
            if !published.insert(identity) {
                continue;
            }
            let vg = (offset.database.clone(), offset.topic.clone(), offset.vgroup_id);
            let prev = last.entry((r.conn, vg)).or_insert(offset.offset);
            if offset.offset < *prev {
                note(&mut rep.backwards, || {
                    format!(
                        "{bridge} connection {}: vgroup {} of {} at offset {} after {}",
                        r.conn, offset.vgroup_id, offset.topic, offset.offset, prev
                    )
                });
            } else {
                *prev = offset.offset;
            }
        }
    }
    if let (Some(served), false) = (served, wire.is_empty()) {
        judge_commits(served, committed, &by_key, fates, &mut rep);
    }
    rep
}

/// Committed offsets against the wire: every message of the group below its commit must have had each of
/// its published QoS 1/2 rows acknowledged by the broker.
fn judge_commits(
    served: &[ServedMessage],
    committed: &[CommittedOffset],
    by_key: &HashMap<String, &ExpectedRow>,
    fates: &HashMap<String, PayloadFate>,
    rep: &mut OffsetReport,
) {
    // (table, ts) of rows published at QoS 1/2 and never acknowledged on any bridge's wire.
    let unacked: HashSet<(&str, i64)> = fates
        .iter()
        .filter(|(_, f)| f.published && f.qos > 0 && !f.acked)
        .filter_map(|(key, _)| by_key.get(key))
        .map(|r| (r.table.as_str(), r.ts))
        .collect();
    if unacked.is_empty() {
        return;
    }
    for c in committed {
        let Some(n) = c.committed() else { continue };
        for m in served
            .iter()
            .filter(|m| m.group == c.group && m.topic == c.topic && m.vgroup == c.vgroup_id)
            .filter(|m| m.offset < n)
        {
            if let Some((table, ts)) = m.rows.iter().find(|(t, ts)| unacked.contains(&(t.as_str(), *ts))) {
                note(&mut rep.committed_unacked, || {
                    format!(
                        "group {} committed {} of vgroup {} at {n}, past message {} with {table}@{ts} never acknowledged",
                        c.group, c.topic, c.vgroup_id, m.offset
                    )
                });
            }
        }
    }
}
