//! One `/rest/tmq` connection: requests in, replies out, one consumer per connection (as in taosAdapter),
//! one current message per consumer, freed at the next poll. Closing the socket closes the consumer.
//!
//! The request handlers are plain methods on [`Session`] returning what to send; [`serve`] is the IO loop
//! around them (socket, pings as heartbeats, blocking polls, fault hooks).

mod poll;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::cut::{next_message, Cursor, Limits, VersionModel};
use super::group::DEFAULT_AUTO_COMMIT_INTERVAL_MS;
use super::group::{Bounds, ConsumerId, ConsumerOptions, OffsetReset, Position, VgroupId};
use super::message::{Message, Snapshot, TopicSpec};
use super::proto::{self, Request};
use super::raw::{self, RawContext};
use super::server::{wire_position, FetchCounts, Tmq};
use crate::tdengine::error::{code, refusal, TdError};
use crate::tdengine::types::Precision;

const CODE_NO_COMMITTED: u32 = 0x0A0D;
const CODE_NOT_SUBSCRIBED: u32 = 0x4009;

/// A successful JSON reply to `action`, carrying `body`.
fn ok<T: serde::Serialize>(
    action: &str,
    req_id: u64,
    started: Instant,
    body: T,
) -> Result<Vec<Reply>, TdError> {
    Ok(vec![Reply::Text(proto::ok(
        action,
        req_id,
        Session::timing(started),
        body,
    ))])
}

/// What a handler wants sent.
enum Reply {
    Text(String),
    Binary(Vec<u8>),
    /// A poll found nothing and may wait for new log entries until `deadline`.
    Wait(PollWait),
}

struct PollWait {
    req_id: u64,
    deadline: Instant,
    receivers: Vec<watch::Receiver<i64>>,
}

struct Subscription {
    consumer: ConsumerId,
    group: String,
    topics: Vec<String>,
    options: ConsumerOptions,
    with_table_name: bool,
    specs: HashMap<String, TopicSpec>,
    /// `min.poll.rows` and `fetch.max.wait.ms` from the client's `config`, where the reported version
    /// passes them on to the vnode.
    min_poll_rows: Option<usize>,
    max_wait: Option<Duration>,
}

struct Current {
    id: u64,
    message: Message,
    precision: Precision,
    /// Where the poll that produced the message started in its vgroup (`reqOffset` of the raw form).
    req_offset: i64,
    /// The poll reply, re-sent when a newer client reports it did not get it.
    poll_reply_body: (u8, i64),
    next_block: usize,
    /// Each block is encoded once, at its first fetch.
    encoded: Vec<Option<Arc<Vec<u8>>>>,
    /// (req_id of the last `fetch`, block index) for the `fetch_block` that follows it.
    staged: Option<(u64, usize)>,
}

/// The state of one connection.
pub struct Session {
    tmq: Arc<Tmq>,
    sub: Option<Subscription>,
    next_message_id: u64,
    current: Option<Current>,
    /// In-progress snapshot reads, by (topic, vgroup), with the position they started at.
    snapshots: HashMap<(String, VgroupId), (i64, Snapshot)>,
    model: VersionModel,
}

/// How long a connection closed by [`Faults::close_after_next_reply`] keeps reading until the client closes.
///
/// [`Faults::close_after_next_reply`]: crate::tdengine::faults::Faults::close_after_next_reply
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves one `/rest/tmq` WebSocket connection until the client closes it, the connection fails, the
/// harness drops every connection, or `shutdown` turns true.
pub async fn serve_connection<S>(ws: WebSocketStream<S>, tmq: Arc<Tmq>, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tmq.ensure_ticking();
    let (mut sink, mut stream) = ws.split();
    let mut drops = tmq.faults.dropped();
    let mut ping = tokio::time::interval(tmq.config.ping_interval);
    ping.tick().await;
    let mut session = Session::new(tmq.clone());
    let mut waiting: Option<PollWait> = None;
    loop {
        let outs: Vec<Reply> = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    session.heartbeat();
                    session.handle_text(text.as_str())
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                    session.heartbeat();
                    Vec::new()
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    tracing::warn!("binary request on /rest/tmq ignored");
                    Vec::new()
                }
                Some(Ok(WsMessage::Frame(_))) => Vec::new(),
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "tmq connection failed");
                    if let Some(frame) = refusal(&e) {
                        let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    }
                    break;
                }
            },
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(b"TDengine".to_vec().into())).await.is_err() {
                    break;
                }
                Vec::new()
            }
            _ = async { drop(shutdown.wait_for(|s| *s).await) } => {
                let _ = sink.send(WsMessage::Close(None)).await;
                break;
            }
            _ = drops.changed() => {
                let _ = sink.send(WsMessage::Close(Some(CloseFrame {
                    code: CloseCode::Restart,
                    reason: "adapter restart".into(),
                }))).await;
                break;
            }
            woke = wait_for_log(&mut waiting) => {
                let wait = waiting.take().expect("a wait was pending");
                let timed_out = !woke;
                session.retry_poll(wait, timed_out)
            }
        };
        let mut failed = false;
        for out in outs {
            let frame = match out {
                Reply::Text(t) => WsMessage::text(t),
                Reply::Binary(b) => WsMessage::binary(b),
                Reply::Wait(w) => {
                    if let Some(old) = waiting.replace(w) {
                        // A new poll supersedes one still waiting: answer the old one empty.
                        let empty = session.empty_poll(old.req_id);
                        tmq.faults.stall().await;
                        failed |= sink.send(WsMessage::text(empty)).await.is_err();
                    }
                    continue;
                }
            };
            tmq.faults.stall().await;
            if sink.send(frame).await.is_err() {
                failed = true;
                break;
            }
            if tmq.faults.take_close_after_reply() {
                let _ = sink
                    .send(WsMessage::Close(Some(CloseFrame {
                        code: CloseCode::Restart,
                        reason: "adapter restart".into(),
                    })))
                    .await;
                // As WebSocket allows after a Close: what the client still sends is read and dropped
                // until it closes (bounded), so its requests are neither answered nor refused.
                let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                    while let Some(Ok(_)) = stream.next().await {}
                })
                .await;
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
    }
    session.close();
}

/// Resolves when any watched log grows (`true`) or the deadline passes (`false`); never while idle.
async fn wait_for_log(waiting: &mut Option<PollWait>) -> bool {
    let Some(w) = waiting.as_mut() else {
        return std::future::pending().await;
    };
    if w.receivers.is_empty() {
        tokio::time::sleep_until(w.deadline).await;
        return false;
    }
    let changes = futures_util::future::select_all(w.receivers.iter_mut().map(|r| Box::pin(r.changed())));
    matches!(
        tokio::time::timeout_at(w.deadline, changes).await,
        Ok((Ok(()), _, _))
    )
}

impl Session {
    pub fn new(tmq: Arc<Tmq>) -> Self {
        Self {
            sub: None,
            next_message_id: 1,
            current: None,
            snapshots: HashMap::new(),
            model: VersionModel::of(&tmq.backend.server_version()),
            tmq,
        }
    }

    fn heartbeat(&self) {
        if let Some(sub) = &self.sub {
            let now = self.tmq.now_ms();
            self.tmq.coordinator.lock().heartbeat(sub.consumer, now);
        }
    }

    /// Leaves the group (socket closed).
    pub fn close(&mut self) {
        if let Some(sub) = self.sub.take() {
            self.tmq.leave(sub.consumer, &sub.topics);
        }
    }

    fn handle_text(&mut self, text: &str) -> Vec<Reply> {
        let started = Instant::now();
        let env = match proto::parse(text) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(error = %e, "unparsable tmq request");
                return vec![Reply::Text(proto::error(
                    "",
                    0,
                    None,
                    &TdError::new(code::ADAPTER, e),
                ))];
            }
        };
        let req_id = env.req_id;
        let message_id = match &env.request {
            Ok(
                Request::Fetch(a)
                | Request::FetchBlock(a)
                | Request::FetchJsonMeta(a)
                | Request::FetchRaw(a)
                | Request::FetchRawData(a)
                | Request::Commit(a),
            ) => Some(a.message_id),
            _ => None,
        };
        // fetch_raw_data is answered in binary even when it fails: the clients wait for a binary reply.
        let raw_data = matches!(env.request, Ok(Request::FetchRawData(_)));
        let err = |e: TdError| {
            if raw_data {
                let message_id = message_id.unwrap_or_default();
                return vec![Reply::Binary(raw::fetch_raw_data_error(
                    0, req_id, message_id, &e,
                ))];
            }
            vec![Reply::Text(proto::error(&env.action, req_id, message_id, &e))]
        };
        let request = match env.request {
            Ok(r) => r,
            Err(e) => return err(TdError::new(code::ADAPTER, e)),
        };
        // fetch_block must be answered in binary (a JSON reply kills the 0.12.3 reader), so faults skip it.
        if !matches!(request, Request::FetchBlock(_) | Request::Version) {
            if let Some(code) = self.tmq.faults.take_failure() {
                return err(TdError::new(code as u32, "injected failure"));
            }
        }
        let result = self.handle(&env.action, req_id, request, started);
        match result {
            Ok(outs) => outs,
            Err(e) => err(e),
        }
    }

    fn timing(started: Instant) -> u64 {
        started.elapsed().as_nanos() as u64
    }

    fn handle(
        &mut self,
        action: &str,
        req_id: u64,
        request: Request,
        started: Instant,
    ) -> Result<Vec<Reply>, TdError> {
        match request {
            Request::Version => {
                let version = self.tmq.backend.server_version();
                ok(action, req_id, started, proto::VersionReply { version: &version })
            }
            Request::Subscribe(args) => {
                self.subscribe(*args)?;
                let version = self.tmq.backend.server_version();
                ok(action, req_id, started, proto::VersionReply { version: &version })
            }
            Request::Unsubscribe => {
                self.close();
                self.current = None;
                self.snapshots.clear();
                ok(action, req_id, started, proto::Empty {})
            }
            Request::Poll(args) => self.poll(req_id, args, started),
            Request::Fetch(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch);
                self.fetch(req_id, a.message_id, started)
            }
            Request::FetchBlock(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch_block);
                self.fetch_block(req_id, a.message_id, started)
            }
            Request::FetchJsonMeta(a) => {
                let cur = self.current_message(a.message_id)?;
                match cur.message.body.json_meta() {
                    Some(json) => ok(
                        action,
                        req_id,
                        started,
                        proto::MetaReply {
                            message_id: a.message_id,
                            data: &json,
                        },
                    ),
                    None => Err(TdError::new(code::ADAPTER, "message is not a meta message")),
                }
            }
            Request::FetchRawData(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch_raw_data);
                self.raw(req_id, a.message_id, started, raw::fetch_raw_data_frame)
            }
            Request::FetchRaw(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch_raw);
                self.raw(req_id, a.message_id, started, raw::fetch_raw_frame)
            }
            Request::Commit(a) => {
                let consumer = self.consumer()?;
                self.tmq.commit_positions(consumer).map_err(group_err)?;
                ok(
                    action,
                    req_id,
                    started,
                    proto::MessageIdReply {
                        message_id: a.message_id,
                    },
                )
            }
            Request::CommitOffset(a) => {
                let consumer = self.consumer()?;
                let bounds = self.wal_bounds(&a.topic, a.vgroup_id)?;
                self.tmq
                    .commit_offset(consumer, &a.topic, a.vgroup_id, a.offset, bounds)
                    .map_err(group_err)?;
                ok(
                    action,
                    req_id,
                    started,
                    proto::CommitOffsetReply {
                        topic: &a.topic,
                        vgroup_id: a.vgroup_id,
                        offset: a.offset,
                    },
                )
            }
            Request::Seek(a) => {
                let consumer = self.consumer()?;
                let bounds = self.wal_bounds(&a.topic, a.vgroup_id)?;
                self.tmq
                    .coordinator
                    .lock()
                    .seek(consumer, &a.topic, a.vgroup_id, a.offset, bounds)
                    .map_err(group_err)?;
                self.snapshots.remove(&(a.topic.clone(), a.vgroup_id));
                ok(action, req_id, started, proto::Empty {})
            }
            Request::Committed(a) => {
                let consumer = self.consumer()?;
                let sub = self.sub.as_ref().expect("consumer implies subscription");
                let mut committed = Vec::with_capacity(a.topic_vgroup_ids.len());
                let c = self.tmq.coordinator.lock();
                for tv in &a.topic_vgroup_ids {
                    c.topics(consumer).map_err(group_err).and_then(|t| {
                        t.contains(&tv.topic)
                            .then_some(())
                            .ok_or_else(|| not_subscribed(&tv.topic))
                    })?;
                    committed.push(c.committed(&sub.group, &tv.topic, tv.vgroup_id));
                }
                drop(c);
                ok(action, req_id, started, proto::CommittedReply { committed })
            }
            Request::Position(a) => {
                let consumer = self.consumer()?;
                let c = self.tmq.coordinator.lock();
                let position = a
                    .topic_vgroup_ids
                    .iter()
                    .map(|tv| c.position(consumer, &tv.topic, tv.vgroup_id).map(wire_position))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(group_err)?;
                drop(c);
                ok(action, req_id, started, proto::PositionReply { position })
            }
            Request::Assignment(a) => {
                let consumer = self.consumer()?;
                let spec = self.spec(&a.topic)?;
                let assigned = self
                    .tmq
                    .coordinator
                    .lock()
                    .assignment(consumer, &a.topic)
                    .map_err(group_err)?;
                let assignment = assigned
                    .into_iter()
                    .map(|(vg, p)| {
                        let b = self.tmq.backend.wal_bounds(&spec.db, vg);
                        proto::AssignmentItem {
                            vgroup_id: vg,
                            offset: wire_position(p),
                            begin: b.first,
                            end: b.last + 1,
                        }
                    })
                    .collect();
                ok(action, req_id, started, proto::AssignmentReply { assignment })
            }
        }
    }

    fn subscribe(&mut self, args: proto::SubscribeArgs) -> Result<(), TdError> {
        if self.sub.is_some() {
            return Err(TdError::new(
                code::ADAPTER,
                "consumer already subscribed; unsubscribe first",
            ));
        }
        let user = args.user.as_deref().unwrap_or_default();
        let password = args.password.as_deref().unwrap_or_default();
        if !self.tmq.backend.authenticate(user, password) {
            return Err(TdError::auth());
        }
        let bad = |m: String| TdError::new(code::INVALID_PARA, format!("Invalid parameter: {m}"));
        let group = args
            .group_id
            .filter(|g| !g.is_empty())
            .ok_or_else(|| bad("group.id is required".into()))?;
        let offset_reset = match args.offset_rest.as_deref().map(str::trim) {
            None | Some("") => OffsetReset::default(),
            Some(s) => s.parse().map_err(|_| bad(format!("auto.offset.reset: {s:?}")))?,
        };
        let auto_commit =
            proto::parse_bool("enable.auto.commit", args.auto_commit.as_deref(), false).map_err(bad)?;
        let interval = match args.auto_commit_interval_ms.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_AUTO_COMMIT_INTERVAL_MS,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad(format!("auto.commit.interval.ms: {s:?}")))?,
        };
        let snapshot = proto::parse_bool(
            "experimental.snapshot.enable",
            args.snapshot_enable.as_deref(),
            false,
        )
        .map_err(bad)?;
        let with_table_name =
            proto::parse_bool("with.table.name", args.with_table_name.as_deref(), true).map_err(bad)?;
        if args.topics.is_empty() {
            return Err(bad("no topic given".into()));
        }
        let config_value = |key: &str| -> Option<String> {
            let v = args.config.as_ref()?.get(key)?;
            Some(match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let positive = |key: &str| -> Result<Option<u64>, TdError> {
            match config_value(key) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| bad(format!("{key}: {v:?}"))),
            }
        };
        let min_poll_rows = positive("min.poll.rows")?.map(|n| n as usize);
        let max_wait = positive("fetch.max.wait.ms")?.map(Duration::from_millis);
        let options = ConsumerOptions {
            client_id: args.client_id.filter(|c| !c.is_empty()),
            offset_reset,
            auto_commit_interval_ms: auto_commit.then_some(interval),
            snapshot,
        };
        let (consumer, specs) = self
            .tmq
            .join(&group, &args.topics, options.clone())
            .map_err(group_err)?;
        self.sub = Some(Subscription {
            consumer,
            group,
            topics: args.topics,
            options,
            with_table_name,
            specs,
            min_poll_rows,
            max_wait,
        });
        Ok(())
    }

    /// The live consumer of this connection; re-joins transparently when it expired while the socket lived
    /// on (as TDengine's client recovers after missed heartbeats).
    fn consumer(&mut self) -> Result<ConsumerId, TdError> {
        let tmq = self.tmq.clone();
        let sub = self
            .sub
            .as_mut()
            .ok_or_else(|| TdError::new(code::ADAPTER, "tmq not init: subscribe first"))?;
        if tmq.coordinator.lock().contains(sub.consumer) {
            return Ok(sub.consumer);
        }
        let (id, _) = tmq
            .join(&sub.group, &sub.topics, sub.options.clone())
            .map_err(group_err)?;
        tracing::info!(old = sub.consumer, new = id, group = %sub.group, "expired consumer re-joined");
        sub.consumer = id;
        self.snapshots.clear();
        Ok(id)
    }

    /// The log bounds of `vgroup` in a subscribed topic's database (what `seek` and `commit_offset` check).
    fn wal_bounds(&self, topic: &str, vgroup: VgroupId) -> Result<Bounds, TdError> {
        let spec = self.spec(topic)?;
        Ok(self.tmq.backend.wal_bounds(&spec.db, vgroup))
    }

    fn spec(&self, topic: &str) -> Result<TopicSpec, TdError> {
        self.sub
            .as_ref()
            .and_then(|s| s.specs.get(topic).cloned())
            .ok_or_else(|| not_subscribed(topic))
    }

    fn current_message(&self, message_id: u64) -> Result<&Current, TdError> {
        self.current
            .as_ref()
            .filter(|c| c.id == message_id)
            .ok_or_else(|| {
                TdError::new(
                    code::ADAPTER,
                    format!("message {message_id} is not the current message"),
                )
            })
    }

    /// The current message in `tmq_get_raw`'s form, sent in the binary `frame` of the fetch that asked
    /// (`fetch_raw_data` or `fetch_raw`).
    fn raw(
        &self,
        req_id: u64,
        message_id: u64,
        started: Instant,
        frame: fn(u64, u64, u64, u16, &[u8]) -> Vec<u8>,
    ) -> Result<Vec<Reply>, TdError> {
        let cur = self.current_message(message_id)?;
        let with_table_name = self.sub.as_ref().is_none_or(|s| s.with_table_name);
        let kind = self.spec(&cur.message.topic)?.kind;
        let ctx = RawContext {
            precision: cur.precision,
            with_table_name,
            req_offset: cur.req_offset,
            rsp_offset: cur.message.next(),
            column_flags: RawContext::column_flags(&kind),
        };
        let (raw_type, raw) = raw::encode(&cur.message.body, &ctx)?;
        let frame = frame(Self::timing(started), req_id, message_id, raw_type, &raw);
        Ok(vec![Reply::Binary(frame)])
    }

    fn fetch(&mut self, req_id: u64, message_id: u64, started: Instant) -> Result<Vec<Reply>, TdError> {
        self.current_message(message_id)?;
        let with_table_name = self.sub.as_ref().is_none_or(|s| s.with_table_name);
        let cur = self.current.as_mut().expect("checked above");
        let blocks = match cur.message.body.blocks() {
            blocks if cur.next_block < blocks.len() => blocks,
            _ => {
                cur.staged = None;
                return Ok(vec![Reply::Text(proto::ok(
                    "fetch",
                    req_id,
                    Self::timing(started),
                    proto::FetchReply {
                        message_id,
                        completed: true,
                        table_name: None,
                        rows: 0,
                        fields_count: 0,
                        fields_names: None,
                        fields_types: None,
                        fields_lengths: None,
                        precision: cur.precision as u8,
                    },
                ))]);
            }
        };
        let i = cur.next_block;
        let block = &blocks[i];
        if cur.encoded[i].is_none() {
            cur.encoded[i] = Some(Arc::new(block.encode()));
        }
        cur.staged = Some((req_id, i));
        cur.next_block += 1;
        let reply = proto::ok(
            "fetch",
            req_id,
            Self::timing(started),
            proto::FetchReply {
                message_id,
                completed: false,
                table_name: with_table_name.then_some(block.table.as_str()),
                rows: block.len(),
                fields_count: block.fields.len(),
                fields_names: Some(block.fields.iter().map(|f| f.name.as_str()).collect()),
                fields_types: Some(block.fields.iter().map(|f| f.ty as u8).collect()),
                fields_lengths: Some(block.fields.iter().map(|f| f.length).collect()),
                precision: cur.precision as u8,
            },
        );
        Ok(vec![Reply::Text(reply)])
    }

    fn fetch_block(&mut self, req_id: u64, message_id: u64, started: Instant) -> Result<Vec<Reply>, TdError> {
        let cur = self.current_message(message_id)?;
        let (staged_req, i) = cur
            .staged
            .ok_or_else(|| TdError::new(code::ADAPTER, "fetch_block without a preceding fetch"))?;
        if staged_req != req_id {
            return Err(TdError::new(
                code::ADAPTER,
                "fetch_block does not follow its fetch",
            ));
        }
        let block = cur.encoded[i].as_ref().expect("encoded at fetch");
        Ok(vec![Reply::Binary(proto::fetch_block_frame(
            Self::timing(started),
            req_id,
            message_id,
            block,
        ))])
    }
}

fn not_subscribed(topic: &str) -> TdError {
    TdError::new(
        CODE_NOT_SUBSCRIBED,
        format!("Topic does not belong to this consumer: {topic}"),
    )
}

fn poll_error(req_id: u64, e: &TdError) -> String {
    proto::error("poll", req_id, None, e)
}

fn group_err(e: super::group::GroupError) -> TdError {
    TdError::new(e.code() as u32, e.to_string())
}
