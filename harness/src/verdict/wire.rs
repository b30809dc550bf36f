//! Wire checks over the proxy's records of one bridge: every QoS 1 PUBLISH acknowledged, every QoS 2 flow
//! completed, DUP=1 on retransmissions, no packet id reused while in flight — and, per payload, whether it
//! was published and whether the broker acknowledged it (the basis of loss attribution).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde::Serialize;

use crate::wire::{ClosedBy, Direction, Kind, WireRecord};

/// What the wire says about one payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadFate {
    pub published: bool,
    /// The broker took responsibility: PUBACK (QoS 1) or PUBREC (QoS 2) sent back.
    pub acked: bool,
    /// Highest QoS it was published with.
    pub qos: u8,
}

/// Summary of one bridge's wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WireReport {
    pub bridge: String,
    pub connections: u32,
    pub publishes: u64,
    pub qos0: u64,
    pub puback: u64,
    pub pubcomp: u64,
    /// PUBLISHes whose payload had been sent before.
    pub retransmits: u64,
    /// Retransmits without DUP=1.
    pub retransmits_without_dup: u64,
    /// QoS 1/2 flows still open when their connection closed.
    pub open_at_close: u64,
    /// Distinct QoS 1/2 rows (payloads, when not a row) never acknowledged by the broker on any connection
    /// (a row re-sent in a differently cut TMQ message after a restart counts as the same row).
    pub never_acked: u64,
    /// QoS 1/2 flows still open at the end of the run on a live connection.
    pub open_at_end: u64,
    /// A packet id reused for a different payload while its flow was open (conn, pkid).
    pub pkid_reuse: Vec<(u32, u16)>,
    /// Acks for packet ids with no open flow.
    pub unsolicited_acks: u64,
    /// CONNACK codes other than 0.
    pub refused_connacks: Vec<u8>,
    /// Packets dropped by proxy faults.
    pub dropped_by_fault: u64,
    /// PUBRELs the broker had not answered with PUBCOMP when it closed the connection (PUBRELs open when
    /// the bridge or a fault ended the connection are nobody's fault: the flow resumes on the next one).
    pub pubrel_unanswered_at_close: u64,
    /// Row identity → acknowledged, for the QoS 1/2 rows this bridge published (merged across bridges by
    /// [`settle_never_acked`]: a row a killed bridge left unacked may be acked through its group peer).
    #[serde(skip)]
    pub ids: HashMap<String, bool>,
}

/// Recounts `never_acked` of every report against acknowledgements seen on any bridge.
pub fn settle_never_acked(reports: &mut [WireReport]) {
    let acked: HashSet<String> = reports
        .iter()
        .flat_map(|r| r.ids.iter().filter(|(_, a)| **a).map(|(id, _)| id.clone()))
        .collect();
    for r in reports {
        r.never_acked = r.ids.keys().filter(|id| !acked.contains(*id)).count() as u64;
    }
}

#[derive(Debug)]
struct Flight {
    payload: Bytes,
    qos: u8,
}

/// Checks one bridge's records; fills `fates` (keyed by raw payload) along the way.
pub fn check(bridge: &str, records: &[WireRecord], fates: &mut HashMap<Bytes, PayloadFate>) -> WireReport {
    let mut rep = WireReport {
        bridge: bridge.into(),
        ..WireReport::default()
    };
    let mut open: HashMap<(u32, u16), Flight> = HashMap::new();
    let mut sent: HashSet<Bytes> = HashSet::new();
    let mut qos_ids: HashMap<String, bool> = HashMap::new();
    let mut rels: HashSet<(u32, u16)> = HashSet::new();
    for r in records {
        if r.fate == crate::wire::Fate::Dropped {
            rep.dropped_by_fault += 1;
        }
        match (r.dir, r.kind) {
            (_, Kind::Opened) => rep.connections += 1,
            (_, Kind::Closed) => {
                let before = open.len();
                open.retain(|(conn, _), _| *conn != r.conn);
                rep.open_at_close += (before - open.len()) as u64;
                let before = rels.len();
                rels.retain(|(conn, _)| *conn != r.conn);
                if r.closed_by == Some(ClosedBy::Broker) {
                    rep.pubrel_unanswered_at_close += (before - rels.len()) as u64;
                }
            }
            (Direction::ToClient, Kind::ConnAck) => {
                if let Some(code) = r.code.filter(|c| *c != 0) {
                    rep.refused_connacks.push(code);
                }
            }
            (Direction::ToBroker, Kind::Publish) => {
                rep.publishes += 1;
                let payload = r.payload.clone().unwrap_or_default();
                if !sent.insert(payload.clone()) {
                    rep.retransmits += 1;
                    if !r.dup {
                        rep.retransmits_without_dup += 1;
                    }
                }
                let fate = fates.entry(payload.clone()).or_default();
                fate.published = true;
                fate.qos = fate.qos.max(r.qos);
                if r.qos == 0 {
                    rep.qos0 += 1;
                    continue;
                }
                qos_ids.entry(identity(&payload)).or_insert(false);
                if let Some(f) = open.get(&(r.conn, r.pkid)) {
                    if f.payload != payload {
                        rep.pkid_reuse.push((r.conn, r.pkid));
                    }
                }
                open.insert((r.conn, r.pkid), Flight { payload, qos: r.qos });
            }
            (Direction::ToClient, Kind::PubAck) => match open.get(&(r.conn, r.pkid)) {
                Some(f) if f.qos == 1 => {
                    rep.puback += 1;
                    let f = open.remove(&(r.conn, r.pkid)).expect("present");
                    qos_ids.insert(identity(&f.payload), true);
                    fates.entry(f.payload).or_default().acked = true;
                }
                _ => rep.unsolicited_acks += 1,
            },
            (Direction::ToClient, Kind::PubRec) => match open.get(&(r.conn, r.pkid)) {
                Some(f) if f.qos == 2 => {
                    qos_ids.insert(identity(&f.payload), true);
                    fates.entry(f.payload.clone()).or_default().acked = true;
                }
                _ => rep.unsolicited_acks += 1,
            },
            (Direction::ToBroker, Kind::PubRel) => {
                rels.insert((r.conn, r.pkid));
            }
            (Direction::ToClient, Kind::PubComp) => {
                // A PUBCOMP answering a PUBREL re-sent on a resumed session closes a flow of an earlier
                // connection: solicited, though no PUBLISH was open on this one.
                let answered = rels.remove(&(r.conn, r.pkid));
                match open.remove(&(r.conn, r.pkid)) {
                    Some(_) => rep.pubcomp += 1,
                    None if answered => rep.pubcomp += 1,
                    None => rep.unsolicited_acks += 1,
                }
            }
            _ => {}
        }
    }
    rep.open_at_end = open.len() as u64;
    rep.never_acked = qos_ids.values().filter(|acked| !**acked).count() as u64;
    rep.ids = qos_ids;
    rep
}

/// The payloads' fates per row (its [`super::payload::row_key`]): a row re-sent in a differently cut
/// message is one row. Payloads that are not rows are left out.
pub fn by_row(fates: &HashMap<Bytes, PayloadFate>) -> HashMap<String, PayloadFate> {
    let mut out: HashMap<String, PayloadFate> = HashMap::new();
    for (raw, fate) in fates {
        if let Ok(super::payload::Payload::Row { data, .. }) = super::payload::parse(raw) {
            let e = out.entry(super::payload::row_key(&data)).or_default();
            e.published |= fate.published;
            e.acked |= fate.acked;
            e.qos = e.qos.max(fate.qos);
        }
    }
    out
}

/// What makes two publishes "the same": the row they carry, or the raw bytes of anything else.
fn identity(payload: &Bytes) -> String {
    match super::payload::parse(payload) {
        Ok(super::payload::Payload::Row { data, .. }) => super::payload::row_key(&data),
        _ => format!("{payload:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Fate;

    fn rec(conn: u32, dir: Direction, kind: Kind, pkid: u16, qos: u8, payload: &str) -> WireRecord {
        let mut r = WireRecord::event(conn, 0, kind);
        r.dir = dir;
        r.pkid = pkid;
        r.qos = qos;
        if kind == Kind::Publish {
            r.payload = Some(Bytes::from(payload.to_string()));
        }
        r
    }
    use Direction::{ToBroker as B, ToClient as C};

    #[test]
    fn a_clean_qos1_and_qos2_exchange_passes() {
        let records = vec![
            WireRecord::event(1, 0, Kind::Opened),
            rec(1, B, Kind::Publish, 1, 1, "a"),
            rec(1, C, Kind::PubAck, 1, 0, ""),
            rec(1, B, Kind::Publish, 2, 2, "b"),
            rec(1, C, Kind::PubRec, 2, 0, ""),
            rec(1, B, Kind::PubRel, 2, 0, ""),
            rec(1, C, Kind::PubComp, 2, 0, ""),
        ];
        let mut fates = HashMap::new();
        let rep = check("b", &records, &mut fates);
        assert_eq!(
            (rep.puback, rep.pubcomp, rep.never_acked, rep.open_at_end),
            (1, 1, 0, 0)
        );
        assert!(rep.pkid_reuse.is_empty());
        assert!(fates.values().all(|f| f.published && f.acked));
    }

    #[test]
    fn a_retransmit_after_a_cut_without_dup_is_counted() {
        let mut resent = rec(2, B, Kind::Publish, 1, 1, "a");
        resent.dup = false;
        let records = vec![
            WireRecord::event(1, 0, Kind::Opened),
            rec(1, B, Kind::Publish, 1, 1, "a"),
            WireRecord::event(1, 0, Kind::Closed),
            WireRecord::event(2, 0, Kind::Opened),
            resent,
            rec(2, C, Kind::PubAck, 1, 0, ""),
        ];
        let mut fates = HashMap::new();
        let rep = check("b", &records, &mut fates);
        assert_eq!(rep.connections, 2);
        assert_eq!((rep.retransmits, rep.retransmits_without_dup), (1, 1));
        assert_eq!((rep.open_at_close, rep.never_acked), (1, 0));
    }

    #[test]
    fn pkid_reuse_in_flight_and_unacked_publishes_are_found() {
        let mut dropped_ack = rec(1, C, Kind::PubAck, 2, 0, "");
        dropped_ack.fate = Fate::Dropped;
        let records = vec![
            rec(1, B, Kind::Publish, 1, 1, "a"),
            rec(1, B, Kind::Publish, 1, 1, "b"),
            rec(1, B, Kind::Publish, 2, 1, "c"),
            dropped_ack,
            rec(1, C, Kind::PubAck, 9, 0, ""),
        ];
        let mut fates = HashMap::new();
        let rep = check("b", &records, &mut fates);
        assert_eq!(rep.pkid_reuse, vec![(1, 1)]);
        assert_eq!(rep.unsolicited_acks, 1);
        assert_eq!(rep.dropped_by_fault, 1);
        // "a" and "b" never acked; "c" was acked by the broker (the proxy swallowed the ack).
        assert_eq!(rep.never_acked, 2);
        assert!(fates[&Bytes::from("c")].acked);
        assert_eq!(rep.open_at_end, 1);
    }

    fn closed(conn: u32, by: ClosedBy) -> WireRecord {
        let mut r = WireRecord::event(conn, 0, Kind::Closed);
        r.closed_by = Some(by);
        r
    }

    #[test]
    fn pubrels_left_unanswered_by_a_closing_broker_are_counted() {
        let records = vec![
            rec(2, B, Kind::PubRel, 1, 0, ""),
            closed(2, ClosedBy::Broker),
            rec(3, B, Kind::PubRel, 2, 0, ""),
            rec(3, C, Kind::PubComp, 2, 0, ""),
            closed(3, ClosedBy::Broker),
        ];
        let rep = check("b", &records, &mut HashMap::new());
        assert_eq!(rep.pubrel_unanswered_at_close, 1);
        // The PUBCOMP answering a PUBREL of a flow from an earlier connection is solicited.
        assert_eq!(rep.unsolicited_acks, 0);
        // One answering nothing is not.
        let stray = check("b", &[rec(4, C, Kind::PubComp, 9, 0, "")], &mut HashMap::new());
        assert_eq!(stray.unsolicited_acks, 1);
    }

    #[test]
    fn pubrels_open_when_a_fault_or_the_bridge_ends_the_connection_are_not_the_brokers() {
        let records = vec![
            rec(1, B, Kind::PubRel, 1, 0, ""),
            closed(1, ClosedBy::Fault),
            rec(2, B, Kind::PubRel, 1, 0, ""),
            closed(2, ClosedBy::Bridge),
        ];
        let rep = check("b", &records, &mut HashMap::new());
        assert_eq!(rep.pubrel_unanswered_at_close, 0);
    }

    #[test]
    fn a_row_acked_in_a_differently_cut_message_counts_as_acked() {
        let row = |offset: i64| {
            format!(
                r#"{{"data":{{"ts":1,"v":2}},"offset":{{"database":"d","topic":"t","vgroupId":2,"offset":{offset}}}}}"#
            )
        };
        let records = vec![
            rec(1, B, Kind::Publish, 1, 1, &row(7)),
            WireRecord::event(1, 0, Kind::Closed),
            rec(2, B, Kind::Publish, 1, 1, &row(9)),
            rec(2, C, Kind::PubAck, 1, 0, ""),
        ];
        let rep = check("b", &records, &mut HashMap::new());
        assert_eq!(rep.never_acked, 0);
    }

    #[test]
    fn a_row_acked_through_a_group_peer_is_not_never_acked() {
        let row = r#"{"data":{"ts":1},"offset":{"database":"d","topic":"t","vgroupId":2,"offset":1}}"#;
        let killed = check(
            "left",
            &[rec(1, B, Kind::Publish, 1, 1, row)],
            &mut HashMap::new(),
        );
        let peer = check(
            "right",
            &[
                rec(1, B, Kind::Publish, 1, 1, row),
                rec(1, C, Kind::PubAck, 1, 0, ""),
            ],
            &mut HashMap::new(),
        );
        let mut reports = vec![killed, peer];
        assert_eq!(reports[0].never_acked, 1);
        settle_never_acked(&mut reports);
        assert_eq!((reports[0].never_acked, reports[1].never_acked), (0, 0));
    }

    #[test]
    fn refused_connections_are_reported() {
        let mut connack = rec(1, C, Kind::ConnAck, 0, 0, "");
        connack.code = Some(0x86);
        let rep = check("b", &[connack], &mut HashMap::new());
        assert_eq!(rep.refused_connacks, vec![0x86]);
    }
}
