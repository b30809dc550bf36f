//! The encode stage: a task between the source and the MQTT thread that turns each TMQ message into its
//! publishes (taosx JSON payloads, rendered topics, skips counted), so that work runs beside the MQTT
//! thread instead of on it.

use std::sync::{atomic::Ordering::Relaxed, Arc};

use bytes::Bytes;
use taos::RawBlock;
use tokio::sync::mpsc;

use super::{BridgeConfig, Skip, Stats};
use crate::{
    dsn::PayloadFormat,
    encode::{Encoder, OffsetSuffix},
    source::{SourceEvent, TmqMessage},
    template::{RenderError, Vars},
};

/// One MQTT publish the pipeline hands to the client (and re-sends after a lost session).
#[derive(Debug, Clone)]
pub(super) struct Publish {
    pub(super) topic: Arc<str>,
    pub(super) payload: Bytes,
    /// The bridge's status (QoS 1, retained), not a row.
    pub(super) status: bool,
}

impl Publish {
    fn row(topic: Arc<str>, payload: Bytes) -> Publish {
        Publish {
            topic,
            payload,
            status: false,
        }
    }

    pub(super) fn status(topic: &str, payload: &str) -> Publish {
        Publish {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            status: true,
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
                    publishes: encoding.publishes,
                    topic: msg.topic,
                    vgroup_id: msg.vgroup_id,
                    position: msg.position,
                }
            });
            if tx.send(staged).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// One message being encoded: its meta units, then its blocks (skips counted on the way).
struct Encoding<'a> {
    config: &'a BridgeConfig,
    stats: &'a Stats,
    encoder: &'a mut Encoder,
    suffix: OffsetSuffix,
    base: Vars<'a>,
    offset: i64,
    publishes: Vec<Publish>,
}

impl<'a> Encoding<'a> {
    fn new(
        config: &'a BridgeConfig,
        stats: &'a Stats,
        encoder: &'a mut Encoder,
        msg: &'a TmqMessage,
    ) -> Self {
        stats.messages.fetch_add(1, Relaxed);
        Encoding {
            config,
            stats,
            encoder,
            suffix: OffsetSuffix::new(&msg.database, &msg.topic, msg.vgroup_id, msg.offset),
            base: Vars {
                database: &msg.database,
                tmq_topic: &msg.topic,
                vgroup_id: msg.vgroup_id,
                stable: None,
                table: None,
            },
            offset: msg.offset,
            publishes: Vec::new(),
        }
    }

    /// The message's meta: a batch of metas (`{"tmq_meta_version":…,"metas":[…]}`) is published one unit
    /// at a time, so filters and topic variables apply to each.
    fn metas(&mut self, msg: &TmqMessage) {
        if msg.has_meta && msg.meta.is_none() {
            self.stats.skip(Skip::MetaDisabled, 1);
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
            self.stats.skip(Skip::MetaFiltered, 1);
            return;
        }
        let (stable, table) = meta_vars(unit);
        let vars = Vars {
            stable: stable.as_deref(),
            table: table.as_deref(),
            ..self.base
        };
        match self.config.target.meta_topic.render(&vars) {
            Err(e @ RenderError::Invalid { .. }) => {
                tracing::warn!(%e, "meta event skipped");
                self.stats.skip(Skip::InvalidTopic, 1);
            }
            Ok(topic) => {
                let payload = self.encoder.encode_meta(unit, &self.suffix);
                if self.fits(&topic, &payload) {
                    self.publishes.push(Publish::row(topic.into(), payload));
                } else {
                    tracing::warn!(%topic, bytes = payload.len(), "meta event exceeds max_packet_size; skipped");
                    self.stats.skip(Skip::TooLarge, 1);
                }
            }
            Err(missing @ RenderError::Missing(_)) => {
                tracing::debug!(%missing, offset = self.offset, "meta event skipped");
                self.stats.skip(Skip::MissingVariable, 1);
            }
        }
    }

    /// The message's data blocks: a publish per row, or with `format=batch` one per topic (the blocks
    /// going to one topic, in order of first appearance).
    fn blocks(&mut self, msg: &TmqMessage) {
        let target = &self.config.target;
        let mut batches: Vec<(Arc<str>, Vec<&RawBlock>)> = Vec::new();
        for block in &msg.blocks {
            let rows = block.nrows() as u64;
            self.stats.rows.fetch_add(rows, Relaxed);
            let vars = Vars {
                table: block.table_name(),
                ..self.base
            };
            match target.topic.render(&vars) {
                Err(e @ RenderError::Invalid { .. }) => {
                    tracing::warn!(%e, rows, "rows skipped");
                    self.stats.skip(Skip::InvalidTopic, rows);
                }
                Ok(topic) if target.format == PayloadFormat::Batch => {
                    match batches.iter_mut().find(|(t, _)| **t == *topic) {
                        Some((_, blocks)) => blocks.push(block),
                        None => batches.push((topic.into(), vec![block])),
                    }
                }
                Ok(topic) => self.rows(block, topic.into()),
                Err(missing @ RenderError::Missing(_)) => {
                    tracing::debug!(%missing, rows, offset = self.offset, "rows skipped");
                    self.stats.skip(Skip::MissingVariable, rows);
                }
            }
        }
        for (topic, blocks) in batches {
            self.batch(topic, blocks);
        }
    }

    /// One publish per row of `block`.
    fn rows(&mut self, block: &RawBlock, topic: Arc<str>) {
        let max = self.config.target.max_packet_size;
        let (stats, publishes) = (self.stats, &mut self.publishes);
        self.encoder.encode_block(block, &self.suffix, |row, payload| {
            if fits(max, &topic, &payload) {
                publishes.push(Publish::row(topic.clone(), payload));
            } else {
                tracing::warn!(%topic, row, bytes = payload.len(), "row exceeds max_packet_size; skipped");
                stats.skip(Skip::TooLarge, 1);
            }
        });
    }

    /// One publish of `blocks`' rows (`format=batch`).
    fn batch(&mut self, topic: Arc<str>, blocks: Vec<&RawBlock>) {
        let rows: u64 = blocks.iter().map(|b| b.nrows() as u64).sum();
        let payload = self.encoder.encode_batch(blocks, &self.suffix);
        if self.fits(&topic, &payload) {
            self.publishes.push(Publish::row(topic, payload));
        } else {
            tracing::warn!(%topic, rows, bytes = payload.len(), "batch exceeds max_packet_size; skipped");
            self.stats.skip(Skip::TooLarge, rows);
        }
    }

    fn fits(&self, topic: &str, payload: &[u8]) -> bool {
        fits(self.config.target.max_packet_size, topic, payload)
    }
}

/// Whether a PUBLISH of `payload` to `topic` stays within `max` bytes (fixed header ≤ 5, topic length
/// prefix 2, packet id 2, MQTT 5 properties: content type and format indicator, with room to spare).
fn fits(max: usize, topic: &str, payload: &[u8]) -> bool {
    5 + 2 + topic.len() + 2 + 32 + payload.len() <= max
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
