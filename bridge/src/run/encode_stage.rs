//! The encode stage: a task between the source and the MQTT thread that turns each TMQ message into its
//! publishes (taosx JSON payloads, rendered topics, skips counted or, with `dead_letter_topic`, dead
//! letters queued instead), so that work runs beside the MQTT thread instead of on it.

use std::sync::{atomic::Ordering::Relaxed, Arc};

use bytes::Bytes;
use taos::RawBlock;
use tokio::sync::mpsc;

use super::{BridgeConfig, Skip, Stats};
use crate::{
    dead_letter::{Route, PUBLISH_OVERHEAD},
    dsn::PayloadFormat,
    encode::{Encoder, OffsetSuffix},
    sink::Origin,
    source::{BlockRef, SourceEvent, TmqMessage},
    template::{RenderError, Vars},
};

/// One MQTT publish the pipeline hands to the client (and re-sends after a lost session).
#[derive(Debug, Clone)]
pub(super) struct Publish {
    pub(super) topic: Arc<str>,
    pub(super) payload: Bytes,
    pub(super) kind: Kind,
    /// Where the row or meta event came from (MQTT 5 user properties; only with `user_properties=true`).
    pub(super) origin: Option<Arc<Origin>>,
    /// With `dead_letter_topic`: where it goes if the broker rejects it (`None` for dead letters).
    pub(super) dead_letter: Option<Arc<Route>>,
}

/// What a publish is, which decides how it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A row, meta event or dead letter: the target's QoS and retain flag.
    Row,
    /// The bridge's status: QoS 1, retained.
    Status,
    /// An event of the bridge on `<status_topic>/events`: QoS 1, not retained.
    Event,
}

impl Publish {
    pub(super) fn row(
        topic: Arc<str>,
        payload: Bytes,
        origin: &Option<Arc<Origin>>,
        route: &Option<Arc<Route>>,
    ) -> Publish {
        Publish {
            topic,
            payload,
            kind: Kind::Row,
            origin: origin.clone(),
            dead_letter: route.clone(),
        }
    }

    pub(super) fn status(topic: &str, payload: &str) -> Publish {
        Publish::control(Kind::Status, topic, payload)
    }

    pub(super) fn control(kind: Kind, topic: &str, payload: &str) -> Publish {
        Publish {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            kind,
            origin: None,
            dead_letter: None,
        }
    }
}

/// A TMQ message turned into its publishes by the encode stage.
#[derive(Debug)]
pub struct EncodedMessage {
    pub(super) topic: Arc<str>,
    pub(super) vgroup_id: i32,
    /// The offset to commit once every publish is acknowledged.
    pub(super) position: i64,
    pub(super) publishes: Vec<Publish>,
}

/// What the run loop reads: the source's events, each message already encoded.
pub type Staged = SourceEvent<EncodedMessage>;

/// Encoded messages waiting for the run loop: with the source's own queue this keeps the MQTT thread fed
/// while bounding memory (the window stops polling, not encoding).
const STAGED_CAPACITY: usize = 2;

/// Spawns the encode stage: the source's events in, the same events with each message encoded out.
pub fn encode_stage(
    config: Arc<BridgeConfig>,
    stats: Arc<Stats>,
    mut source_rx: mpsc::Receiver<SourceEvent>,
) -> mpsc::Receiver<Staged> {
    let (tx, rx) = mpsc::channel(STAGED_CAPACITY);
    tokio::spawn(async move {
        let mut encoder = Encoder::new();
        while let Some(ev) = source_rx.recv().await {
            let staged = ev.map_message(|msg| {
                let mut encoding = Encoding::new(&config, &stats, &mut encoder, &msg);
                encoding.metas(&msg);
                encoding.blocks(&msg);
                EncodedMessage {
                    publishes: encoding.out.publishes,
                    topic: msg.topic,
                    vgroup_id: msg.vgroup_id,
                    position: msg.commit_at,
                }
            });
            if tx.send(staged).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// One message being encoded: its meta units, then its blocks (skips counted, or with
/// `dead_letter_topic` dead letters queued, on the way).
struct Encoding<'a> {
    config: &'a BridgeConfig,
    encoder: &'a mut Encoder,
    msg: &'a TmqMessage,
    suffix: OffsetSuffix,
    base: Vars<'a>,
    /// `dead_letter_topic` rendered for this message (it uses only variables every message has).
    dead_letter_topic: Option<Arc<str>>,
    out: Outbox<'a>,
}

impl<'a> Encoding<'a> {
    fn new(
        config: &'a BridgeConfig,
        stats: &'a Stats,
        encoder: &'a mut Encoder,
        msg: &'a TmqMessage,
    ) -> Self {
        stats.messages.fetch_add(1, Relaxed);
        let base = Vars {
            database: &msg.database,
            tmq_topic: &msg.topic,
            vgroup_id: msg.vgroup_id,
            stable: None,
            table: None,
        };
        let target = &config.target;
        let dead_letter_topic = target
            .dead_letter_topic
            .as_ref()
            .and_then(|t| match t.render(&base) {
                Ok(topic) => Some(topic.into()),
                Err(e) => {
                    tracing::warn!(%e, "no dead-letter topic for this message");
                    None
                }
            });
        Encoding {
            config,
            encoder,
            msg,
            suffix: OffsetSuffix::new(&msg.database, &msg.topic, msg.vgroup_id, msg.offset),
            base,
            dead_letter_topic,
            out: Outbox {
                stats,
                max_packet_size: target.max_packet_size,
                publishes: Vec::new(),
            },
        }
    }

    /// MQTT 5 `user_properties=true`: the origin of the message's meta events (`table` = `None`) or of
    /// a block's rows.
    fn origin(&self, table: Option<&str>) -> Option<Arc<Origin>> {
        self.config.target.user_properties.then(|| {
            Arc::new(Origin {
                database: self.msg.database.clone(),
                topic: self.msg.topic.clone(),
                vgroup_id: self.msg.vgroup_id,
                offset: self.msg.offset,
                table: table.map(Arc::from),
            })
        })
    }

    /// With `dead_letter_topic`: where what cannot be published of `table` goes.
    fn route(&self, table: Option<&str>) -> Option<Arc<Route>> {
        self.dead_letter_topic.as_ref().map(|topic| {
            Arc::new(Route {
                topic: topic.clone(),
                table: table.map(Arc::from),
            })
        })
    }

    /// The message's meta: a batch of metas (`{"tmq_meta_version":…,"metas":[…]}`) is published one unit
    /// at a time, so filters and topic variables apply to each.
    fn metas(&mut self, msg: &TmqMessage) {
        if msg.has_meta && msg.meta.is_none() {
            self.out.stats.skip(Skip::MetaDisabled, 1);
        }
        let Some(meta) = &msg.meta else { return };
        match meta.get("metas").and_then(|m| m.as_array()) {
            Some(list) => list.iter().for_each(|unit| self.meta_unit(unit)),
            None => self.meta_unit(meta),
        }
    }

    fn meta_unit(&mut self, unit: &serde_json::Value) {
        let source = &self.config.source;
        let kind = unit.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if (kind == "delete" && !source.with_meta_delete) || (kind == "drop" && !source.with_meta_drop) {
            self.out.stats.skip(Skip::MetaFiltered, 1);
            return;
        }
        let (stable, table) = meta_vars(unit);
        let vars = Vars {
            stable: stable.as_deref(),
            table: table.as_deref(),
            ..self.base
        };
        let origin = self.origin(None);
        let route = self.route(table.as_deref());
        match self.config.target.meta_topic.render(&vars) {
            Ok(topic) => {
                let payload = self.encoder.encode_meta(unit, &self.suffix);
                if self.out.fits(&topic, &payload, &origin) {
                    self.out
                        .publishes
                        .push(Publish::row(topic.into(), payload, &origin, &route));
                } else {
                    tracing::warn!(%topic, bytes = payload.len(), "meta event exceeds max_packet_size");
                    let lost = Lost::new(Skip::TooLarge, Some(&topic), &origin, &route);
                    self.out.unpublishable(&lost, &payload, 1);
                }
            }
            Err(e) => {
                let (reason, would_be) = unrendered(&e);
                log_unrendered(&e, 1, self.msg.offset);
                if route.is_some() {
                    let payload = self.encoder.encode_meta(unit, &self.suffix);
                    let lost = Lost::new(reason, would_be, &origin, &route);
                    self.out.unpublishable(&lost, &payload, 1);
                } else {
                    self.out.stats.skip(reason, 1);
                }
            }
        }
    }

    /// The message's data blocks: a publish per row, or with `format=batch` one per topic (the blocks
    /// going to one topic, in order of first appearance).
    fn blocks(&mut self, msg: &TmqMessage) {
        let target = &self.config.target;
        let mut batches: Vec<(Arc<str>, Vec<BlockRef<'_>>)> = Vec::new();
        for block in msg.blocks.iter() {
            let rows = block.nrows() as u64;
            self.out.stats.rows.fetch_add(rows, Relaxed);
            let vars = Vars {
                table: block.table_name(),
                ..self.base
            };
            match target.topic.render(&vars) {
                Ok(topic) if target.format == PayloadFormat::Batch => {
                    match batches.iter_mut().find(|(t, _)| **t == *topic) {
                        Some((_, blocks)) => blocks.push(block),
                        None => batches.push((topic.into(), vec![block])),
                    }
                }
                Ok(topic) => self.rows(&block, topic.into()),
                Err(e) => self.unrendered_block(&block, &e),
            }
        }
        for (topic, blocks) in batches {
            self.batch(topic, blocks.iter().map(|b| &**b).collect());
        }
    }

    /// One publish per row of `block`.
    fn rows(&mut self, block: &RawBlock, topic: Arc<str>) {
        let origin = self.origin(block.table_name());
        let route = self.route(block.table_name());
        let out = &mut self.out;
        self.encoder.encode_block(block, &self.suffix, |row, payload| {
            if out.fits(&topic, &payload, &origin) {
                out.publishes
                    .push(Publish::row(topic.clone(), payload, &origin, &route));
            } else {
                tracing::warn!(%topic, row, bytes = payload.len(), "row exceeds max_packet_size");
                let lost = Lost::new(Skip::TooLarge, Some(&topic), &origin, &route);
                out.unpublishable(&lost, &payload, 1);
            }
        });
    }

    /// A block whose topic could not be rendered: its rows' dead letters (one per row, or one for the
    /// block with `format=batch`), else counted as skipped.
    fn unrendered_block(&mut self, block: &RawBlock, e: &RenderError) {
        let rows = block.nrows() as u64;
        let (reason, would_be) = unrendered(e);
        log_unrendered(e, rows, self.msg.offset);
        let route = self.route(block.table_name());
        if route.is_none() {
            self.out.stats.skip(reason, rows);
        } else if self.config.target.format == PayloadFormat::Batch {
            let origin = self.origin(None);
            let payload = self.encoder.encode_batch([block], &self.suffix);
            self.out
                .unpublishable(&Lost::new(reason, would_be, &origin, &route), &payload, rows);
        } else {
            let origin = self.origin(block.table_name());
            let lost = Lost::new(reason, would_be, &origin, &route);
            let out = &mut self.out;
            self.encoder.encode_block(block, &self.suffix, |_, payload| {
                out.unpublishable(&lost, &payload, 1);
            });
        }
    }

    /// One publish of `blocks`' rows (`format=batch`).
    fn batch(&mut self, topic: Arc<str>, blocks: Vec<&RawBlock>) {
        let rows: u64 = blocks.iter().map(|b| b.nrows() as u64).sum();
        let table = match blocks.as_slice() {
            [one] => one.table_name(),
            _ => None,
        };
        let origin = self.origin(None);
        let route = self.route(table);
        let payload = self.encoder.encode_batch(blocks, &self.suffix);
        if self.out.fits(&topic, &payload, &origin) {
            self.out
                .publishes
                .push(Publish::row(topic, payload, &origin, &route));
        } else {
            tracing::warn!(%topic, rows, bytes = payload.len(), "batch exceeds max_packet_size");
            let lost = Lost::new(Skip::TooLarge, Some(&topic), &origin, &route);
            self.out.unpublishable(&lost, &payload, rows);
        }
    }
}

/// The skip reason of a topic that could not be rendered, and the would-be topic (an invalid one).
fn unrendered(e: &RenderError) -> (Skip, Option<&str>) {
    match e {
        RenderError::Invalid { topic, .. } => (Skip::InvalidTopic, Some(topic.as_str())),
        RenderError::Missing(_) => (Skip::MissingVariable, None),
    }
}

/// A missing variable is taosx's rule, at debug (a `{stable}` template would log every row); an invalid
/// topic is a surprise, at warn.
fn log_unrendered(e: &RenderError, rows: u64, offset: i64) {
    match e {
        RenderError::Missing(_) => tracing::debug!(%e, rows, offset, "no topic; skipped"),
        RenderError::Invalid { .. } => tracing::warn!(%e, rows, offset, "no valid topic"),
    }
}

/// A row, batch or meta event that cannot be published: why, the topic it would have had, its origin
/// and (with `dead_letter_topic`) where its dead letter goes.
struct Lost<'l> {
    reason: Skip,
    would_be: Option<&'l str>,
    origin: &'l Option<Arc<Origin>>,
    route: &'l Option<Arc<Route>>,
}

impl<'l> Lost<'l> {
    fn new(
        reason: Skip,
        would_be: Option<&'l str>,
        origin: &'l Option<Arc<Origin>>,
        route: &'l Option<Arc<Route>>,
    ) -> Self {
        Lost {
            reason,
            would_be,
            origin,
            route,
        }
    }
}

/// The publishes of one message as the encode stage collects them.
struct Outbox<'a> {
    stats: &'a Stats,
    max_packet_size: usize,
    publishes: Vec<Publish>,
}

impl Outbox<'_> {
    fn fits(&self, topic: &str, payload: &[u8], origin: &Option<Arc<Origin>>) -> bool {
        fits(self.max_packet_size, topic, payload, origin.as_deref())
    }

    /// `payload` (of `rows` rows, or one meta event) cannot be published: its dead letter goes out
    /// instead (with a route), else it is counted as skipped.
    fn unpublishable(&mut self, lost: &Lost<'_>, payload: &[u8], rows: u64) {
        let extra = lost.origin.as_deref().map_or(0, Origin::wire_len);
        let letter = lost.route.as_ref().and_then(|r| {
            let letter = r.letter(
                lost.reason.as_str(),
                lost.would_be,
                payload,
                self.max_packet_size,
                extra,
            )?;
            Some(Publish::row(r.topic.clone(), letter, lost.origin, &None))
        });
        match letter {
            Some(p) => {
                self.publishes.push(p);
                self.stats.dead_letter(lost.reason, rows);
            }
            None => {
                if lost.route.is_some() {
                    tracing::warn!(reason = %lost.reason, "the dead letter does not fit max_packet_size either; skipped");
                }
                self.stats.skip(lost.reason, rows);
            }
        }
    }
}

/// Whether a PUBLISH of `payload` to `topic` stays within `max` bytes (fixed header ≤ 5, topic length
/// prefix 2, packet id 2, MQTT 5 properties: content type, format indicator and expiry with room to
/// spare, plus the user properties of `origin`).
pub(super) fn fits(max: usize, topic: &str, payload: &[u8], origin: Option<&Origin>) -> bool {
    PUBLISH_OVERHEAD + topic.len() + origin.map_or(0, Origin::wire_len) + payload.len() <= max
}

/// `{stable}` and `{table}` of a meta event, as taosx defines them: stable for create super/child and
/// drop super; table for create child/normal, alter, and drop of a single child/normal table.
fn meta_vars(unit: &serde_json::Value) -> (Option<String>, Option<String>) {
    let s = |k: &str| unit.get(k).and_then(|v| v.as_str()).map(String::from);
    let kind = unit.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let table_type = unit.get("tableType").and_then(|t| t.as_str()).unwrap_or("");
    match (kind, table_type) {
        ("create", "super") => (s("tableName"), None),
        ("create", "child") => (s("using"), s("tableName")),
        ("create", _) => (None, s("tableName")),
        ("alter", _) => (None, s("tableName")),
        ("drop", "super") => (s("tableName"), None),
        ("drop", _) => {
            let list = unit.get("tableNameList").and_then(|l| l.as_array());
            let single = list
                .filter(|l| l.len() == 1)
                .and_then(|l| l[0].as_str())
                .map(String::from);
            (None, single.or_else(|| s("tableName")))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::meta_vars;
    use serde_json::json;

    #[test]
    fn meta_variables_follow_taosx() {
        let o = |a: Option<&str>, b: Option<&str>| (a.map(String::from), b.map(String::from));
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"super","tableName":"st"})),
            o(Some("st"), None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"child","tableName":"d0","using":"st"})),
            o(Some("st"), Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"create","tableType":"normal","tableName":"n"})),
            o(None, Some("n"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"alter","tableType":"child","tableName":"d0"})),
            o(None, Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableType":"super","tableName":"st"})),
            o(Some("st"), None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableNameList":["d0"]})),
            o(None, Some("d0"))
        );
        assert_eq!(
            meta_vars(&json!({"type":"drop","tableNameList":["d0","d1"]})),
            o(None, None)
        );
        assert_eq!(
            meta_vars(&json!({"type":"delete","sql":"delete from d0"})),
            o(None, None)
        );
    }
}
