//! The TMQ side: the official `taos` consumer, polled in its own task, plus offset commits.
//!
//! The task loops on `recv_timeout(Timeout::Never)`: taos 0.12.3's `stream_with_timeout` ends at the first
//! timeout, and a finite `recv_timeout` may drop a poll whose reply is already under way (the server then
//! moves past a message the bridge never saw). Each message is read completely (all blocks, or its meta
//! JSON) before the next poll, because the server frees it at the next poll.
//!
//! 0.12.3's `Offset` carries no WAL offset, and `commit(offset)` commits everything consumed so far. So
//! right after each poll the task asks `position(topic, vgroup)` — where a restart must resume once this
//! message is delivered — and commits go through `commit_offset(topic, vgroup, position)`. The message's
//! own offset (shown in payloads) is `position - 1`, the WAL version of its last entry.
//!
//! TDengine gone: the task rebuilds the consumer with backoff; the group resumes from the committed offset.

use std::{sync::Arc, time::Duration};

use taos::{
    AsAsyncConsumer, AsyncTBuilder, IsAsyncData, IsAsyncMeta, IsOffset, MessageSet, RawBlock, Timeout,
};
use tokio::sync::{mpsc, watch};

use crate::{dsn::SourceDsn, sink::backoff};

/// One TMQ message, read completely.
#[derive(Debug)]
pub struct TmqMessage {
    pub topic: Arc<str>,
    pub database: Arc<str>,
    pub vgroup_id: i32,
    /// The message's own offset: the WAL version of its last entry.
    pub offset: i64,
    /// Where the vgroup resumes after this message: the offset to commit once it is delivered.
    pub position: i64,
    /// Whether the message carried meta (create/alter/drop/delete).
    pub has_meta: bool,
    /// The meta JSON, read only when the source DSN asks for meta (`with.meta`).
    pub meta: Option<serde_json::Value>,
    /// The data blocks (one per child table) for data messages.
    pub blocks: Vec<RawBlock>,
}

/// What the source task reports.
#[derive(Debug)]
pub enum SourceEvent {
    /// Subscribed (again); `reconnect` is false the first time.
    Subscribed {
        reconnect: bool,
    },
    Message(TmqMessage),
    /// The connection to TDengine failed; the task retries after `retry_in`.
    Lost {
        error: String,
        retry_in: Duration,
    },
    /// An error retrying cannot fix (authentication failure, unknown topic).
    Fatal(String),
}

/// The consumer currently in use, shared with the committer.
pub type CurrentConsumer = watch::Receiver<Option<Arc<taos::Consumer>>>;

/// Builds a consumer from the DSN and subscribes it.
pub async fn connect(dsn: &SourceDsn) -> Result<taos::Consumer, taos::Error> {
    let builder = taos::TmqBuilder::from_dsn(dsn.to_taos_dsn())?;
    let mut consumer = builder.build().await?;
    consumer.subscribe(dsn.topics.iter().cloned()).await?;
    Ok(consumer)
}

/// Whether a TDengine error is one that retrying will not fix.
pub fn is_fatal(err: &taos::Error) -> bool {
    let code = err.code();
    // Authentication failure, topic not exist, invalid parameter, DSN error.
    code == 0x0357 || code == 0x03E1 || code == 0x0118 || code == 0xE000
}

/// Spawns the polling task. Messages go into a bounded channel (the run loop's backpressure).
pub fn spawn(
    dsn: SourceDsn,
    capacity: usize,
) -> (
    mpsc::Receiver<SourceEvent>,
    CurrentConsumer,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let (cur_tx, cur_rx) = watch::channel(None);
    let task = tokio::spawn(poll_loop(dsn, tx, cur_tx));
    (rx, cur_rx, task)
}

async fn poll_loop(
    dsn: SourceDsn,
    tx: mpsc::Sender<SourceEvent>,
    current: watch::Sender<Option<Arc<taos::Consumer>>>,
) {
    let mut attempt = 0u32;
    let mut reconnect = false;
    loop {
        let consumer = match connect(&dsn).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                if is_fatal(&e) && !reconnect {
                    let _ = tx.send(SourceEvent::Fatal(format!("TDengine: {e}"))).await;
                    return;
                }
                let retry_in = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, ?retry_in, "cannot subscribe to TDengine");
                if tx
                    .send(SourceEvent::Lost {
                        error: e.to_string(),
                        retry_in,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        attempt = 0;
        tracing::info!(topics = ?dsn.topics, reconnect, "subscribed to TDengine");
        current.send_replace(Some(consumer.clone()));
        if tx.send(SourceEvent::Subscribed { reconnect }).await.is_err() {
            return;
        }
        reconnect = true;
        loop {
            match read_next(&consumer, dsn.with_meta).await {
                Ok(msg) => {
                    if tx.send(SourceEvent::Message(msg)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let retry_in = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %e, ?retry_in, "TDengine connection lost");
                    current.send_replace(None);
                    if tx
                        .send(SourceEvent::Lost {
                            error: e.to_string(),
                            retry_in,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(retry_in).await;
                    break;
                }
            }
        }
    }
}

/// Polls one message and reads it completely.
async fn read_next(consumer: &taos::Consumer, with_meta: bool) -> Result<TmqMessage, taos::Error> {
    let (offset, set) = loop {
        if let Some(m) = consumer.recv_timeout(Timeout::Never).await? {
            break m;
        }
    };
    let topic: Arc<str> = offset.topic().into();
    let database: Arc<str> = offset.database().into();
    let vgroup_id = offset.vgroup_id();
    let position = consumer.position(&topic, vgroup_id).await?;
    let mut meta = None;
    let mut blocks = Vec::new();
    let (m, d) = match set {
        MessageSet::Meta(m) => (Some(m), None),
        MessageSet::Data(d) => (None, Some(d)),
        MessageSet::MetaData(m, d) => (Some(m), Some(d)),
    };
    let has_meta = m.is_some();
    if let (Some(m), true) = (m, with_meta) {
        let json = m.as_json_meta().await?;
        meta = Some(serde_json::to_value(&json).map_err(taos::Error::from_any)?);
    }
    if let Some(d) = d {
        while let Some(block) = d.fetch_raw_block().await? {
            blocks.push(block);
        }
    }
    Ok(TmqMessage {
        topic,
        database,
        vgroup_id,
        offset: position - 1,
        position,
        has_meta,
        meta,
        blocks,
    })
}

/// Commits offsets through whichever consumer is current; coalesces to the newest per vgroup and keeps
/// what failed for the next round.
pub struct Committer {
    consumer: CurrentConsumer,
    pending: std::collections::BTreeMap<(Arc<str>, i32), i64>,
}

impl Committer {
    pub fn new(consumer: CurrentConsumer) -> Self {
        Committer {
            consumer,
            pending: Default::default(),
        }
    }

    pub fn add(&mut self, topic: Arc<str>, vgroup_id: i32, offset: i64) {
        let e = self.pending.entry((topic, vgroup_id)).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every pending commit; returns the ones that went through.
    pub async fn flush(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let Some(consumer) = self.consumer.borrow().clone() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for ((topic, vg), offset) in std::mem::take(&mut self.pending) {
            match consumer.commit_offset(&topic, vg, offset).await {
                Ok(()) => done.push((topic, vg, offset)),
                Err(e) => {
                    tracing::warn!(error = %e, %topic, vg, offset, "commit failed; will retry");
                    self.pending.insert((topic, vg), offset);
                }
            }
        }
        done
    }
}
