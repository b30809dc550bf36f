//! One `/rest/tmq` connection: requests in, replies out, one consumer per connection (as in taosAdapter),
//! one current message per consumer, freed at the next poll. Closing the socket closes the consumer.
//!
//! The request handlers are plain methods on [`Session`] returning what to send; [`serve`] is the IO loop
//! around them (socket, pings as heartbeats, blocking polls, fault hooks).

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

use super::cut::{next_message, Limits, Resume, VersionModel};
use super::group::DEFAULT_AUTO_COMMIT_INTERVAL_MS;
use super::group::{ConsumerId, ConsumerOptions, OffsetReset, Position, VgroupId};
use super::message::{Message, Snapshot, TopicSpec};
use super::proto::{self, Request};
use super::raw::{self, RawContext};
use super::server::{wire_position, FetchCounts, Tmq};
use crate::tdengine::error::{code, TdError};
use crate::tdengine::types::Precision;

const CODE_NO_COMMITTED: u32 = 0x0A0D;
const CODE_NOT_SUBSCRIBED: u32 = 0x4009;
/// Log entries read per backend call while scanning for the next message.
const READ_BATCH: usize = 8192;
/// Backend reads per vgroup and poll before moving on (bounds the work of one poll).
const READS_PER_POLL: usize = 16;
/// How long a response may take to fill (`fetch.max.wait.ms`'s default; TDengine's fixed bound before 3.3.6).
const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1000);

/// What a handler wants sent.
enum Out {
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

/// Where a group's scan of a topic in a vgroup stands while its position is `at`: TDengine keeps one scan
/// task per subscription (group and topic) in each vnode, across consumers of the group, and continues it
/// when a poll starts where the last response ended, so the rest of an entry a response stopped inside
/// still comes next, and log entries already found to hold nothing for the topic are not read again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    at: i64,
    scan_from: i64,
    resume: Option<Resume>,
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

/// Serves one `/rest/tmq` connection of the stand-in's server.
pub async fn serve(ws: crate::tdengine::server::WsStream, ctx: crate::tdengine::server::ServerCtx) {
    serve_connection(ws, ctx.tmq, ctx.shutdown).await
}

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
        let outs: Vec<Out> = tokio::select! {
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
                    if let Some(frame) = crate::tdengine::server::refusal(&e) {
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
                Out::Text(t) => WsMessage::text(t),
                Out::Binary(b) => WsMessage::binary(b),
                Out::Wait(w) => {
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

    fn handle_text(&mut self, text: &str) -> Vec<Out> {
        let started = Instant::now();
        let env = match proto::parse(text) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(error = %e, "unparsable tmq request");
                return vec![Out::Text(proto::error(
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
                return vec![Out::Binary(raw::fetch_raw_data_error(0, req_id, message_id, &e))];
            }
            vec![Out::Text(proto::error(&env.action, req_id, message_id, &e))]
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
    ) -> Result<Vec<Out>, TdError> {
        let text = |s: String| Ok(vec![Out::Text(s)]);
        match request {
            Request::Version => {
                let version = self.tmq.backend.server_version();
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::VersionReply { version: &version },
                ))
            }
            Request::Subscribe(args) => {
                self.subscribe(*args)?;
                let version = self.tmq.backend.server_version();
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::VersionReply { version: &version },
                ))
            }
            Request::Unsubscribe => {
                self.close();
                self.current = None;
                self.snapshots.clear();
                text(proto::ok(action, req_id, Self::timing(started), proto::Empty {}))
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
                    Some(json) => text(proto::ok(
                        action,
                        req_id,
                        Self::timing(started),
                        proto::MetaReply {
                            message_id: a.message_id,
                            data: &json,
                        },
                    )),
                    None => Err(TdError::new(code::ADAPTER, "message is not a meta message")),
                }
            }
            Request::FetchRawData(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch_raw_data);
                let (raw_type, raw) = self.raw(a.message_id)?;
                Ok(vec![Out::Binary(raw::fetch_raw_data_frame(
                    Self::timing(started),
                    req_id,
                    a.message_id,
                    raw_type,
                    &raw,
                ))])
            }
            Request::FetchRaw(a) => {
                FetchCounts::count(&self.tmq.fetches.fetch_raw);
                let (raw_type, raw) = self.raw(a.message_id)?;
                Ok(vec![Out::Binary(raw::fetch_raw_frame(
                    Self::timing(started),
                    req_id,
                    a.message_id,
                    raw_type,
                    &raw,
                ))])
            }
            Request::Commit(a) => {
                let consumer = self.consumer()?;
                self.tmq
                    .coordinator
                    .lock()
                    .commit_positions(consumer)
                    .map_err(group_err)?;
                self.tmq.flush_writes();
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::MessageIdReply {
                        message_id: a.message_id,
                    },
                ))
            }
            Request::CommitOffset(a) => {
                let consumer = self.consumer()?;
                let world = self.tmq.world(std::slice::from_ref(&a.topic));
                self.tmq
                    .coordinator
                    .lock()
                    .commit_offset(consumer, &a.topic, a.vgroup_id, a.offset, &world)
                    .map_err(group_err)?;
                self.tmq.flush_writes();
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::CommitOffsetReply {
                        topic: &a.topic,
                        vgroup_id: a.vgroup_id,
                        offset: a.offset,
                    },
                ))
            }
            Request::Seek(a) => {
                let consumer = self.consumer()?;
                let spec = self.spec(&a.topic)?;
                let bounds = self.tmq.backend.wal_bounds(&spec.db, a.vgroup_id);
                self.tmq
                    .coordinator
                    .lock()
                    .seek(consumer, &a.topic, a.vgroup_id, a.offset, bounds)
                    .map_err(group_err)?;
                self.snapshots.remove(&(a.topic.clone(), a.vgroup_id));
                text(proto::ok(action, req_id, Self::timing(started), proto::Empty {}))
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
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::CommittedReply { committed },
                ))
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
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::PositionReply { position },
                ))
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
                text(proto::ok(
                    action,
                    req_id,
                    Self::timing(started),
                    proto::AssignmentReply { assignment },
                ))
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

    /// The current message in `tmq_get_raw`'s form, with its `raw_type`.
    fn raw(&self, message_id: u64) -> Result<(u16, Vec<u8>), TdError> {
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
        raw::encode(&cur.message.body, &ctx)
    }

    fn poll_reply(&self, req_id: u64, started: Instant) -> String {
        let (message_type, offset) = self.current.as_ref().map(|c| c.poll_reply_body).unwrap_or((0, 0));
        match &self.current {
            Some(c) => proto::ok(
                "poll",
                req_id,
                Self::timing(started),
                proto::PollReply {
                    have_message: true,
                    topic: &c.message.topic,
                    database: &c.message.db,
                    vgroup_id: c.message.vgroup,
                    message_type,
                    message_id: c.id,
                    offset,
                },
            ),
            None => self.empty_poll(req_id),
        }
    }

    fn empty_poll(&self, req_id: u64) -> String {
        proto::ok("poll", req_id, 0, proto::PollReply::default())
    }

    fn poll(&mut self, req_id: u64, args: proto::PollArgs, started: Instant) -> Result<Vec<Out>, TdError> {
        let consumer = self.consumer()?;
        // A newer client tells which message it last received; if that is not our current one, its reply
        // was lost in flight: hand the same message out again.
        if let (Some(seen), Some(cur)) = (args.message_id, self.current.as_mut()) {
            if seen != cur.id {
                cur.next_block = 0;
                cur.staged = None;
                return Ok(vec![Out::Text(self.poll_reply(req_id, started))]);
            }
        }
        self.current = None;
        let receivers = if args.blocking_time > 0 {
            self.receivers(consumer)
        } else {
            Vec::new()
        };
        if self.next(consumer)? {
            return Ok(vec![Out::Text(self.poll_reply(req_id, started))]);
        }
        if args.blocking_time > 0 {
            let blocking = Duration::from_millis(args.blocking_time as u64).min(self.tmq.config.max_blocking);
            return Ok(vec![Out::Wait(PollWait {
                req_id,
                deadline: started + blocking,
                receivers,
            })]);
        }
        Ok(vec![Out::Text(self.empty_poll(req_id))])
    }

    /// After a blocking poll woke up: try again; reply, or keep waiting until the deadline.
    fn retry_poll(&mut self, wait: PollWait, timed_out: bool) -> Vec<Out> {
        let started = Instant::now();
        let consumer = match self.consumer() {
            Ok(c) => c,
            Err(e) => return vec![Out::Text(poll_error(wait.req_id, &e))],
        };
        match self.next(consumer) {
            Ok(true) => vec![Out::Text(self.poll_reply(wait.req_id, started))],
            Ok(false) if timed_out || Instant::now() >= wait.deadline => {
                vec![Out::Text(self.empty_poll(wait.req_id))]
            }
            Ok(false) => vec![Out::Wait(wait)],
            Err(e) => vec![Out::Text(poll_error(wait.req_id, &e))],
        }
    }

    fn receivers(&self, consumer: ConsumerId) -> Vec<watch::Receiver<i64>> {
        let Some(sub) = &self.sub else { return Vec::new() };
        let assigned: Vec<(String, VgroupId)> = sub
            .topics
            .iter()
            .flat_map(|t| {
                self.tmq
                    .coordinator
                    .lock()
                    .assignment(consumer, t)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |(vg, _)| (t.clone(), vg))
            })
            .collect();
        assigned
            .iter()
            .filter_map(|(t, vg)| {
                let db = &sub.specs.get(t)?.db;
                self.tmq.backend.watch_wal(db, *vg)
            })
            .collect()
    }

    /// Finds the next message over the consumer's vgroups and makes it current. `Ok(false)`: none yet.
    fn next(&mut self, consumer: ConsumerId) -> Result<bool, TdError> {
        let order = self
            .tmq
            .coordinator
            .lock()
            .poll_order(consumer)
            .map_err(group_err)?;
        for (topic, vg, pos) in order {
            let Position::At(pos) = pos else {
                return Err(TdError::new(
                    CODE_NO_COMMITTED,
                    format!("TQ no committed offset: topic {topic} vgroup {vg} with auto.offset.reset=none"),
                ));
            };
            if let Some(message) = self.next_in_vgroup(consumer, &topic, vg, pos) {
                let precision = self.tmq.backend.precision(&message.db);
                let message_type = message.body.message_type();
                let blocks = message.body.blocks().len();
                let id = self.next_message_id;
                self.next_message_id += 1;
                // 3.1 on, the client's message offset is where the poll started (`reqOffset`); 3.0 reported
                // the message's own last version.
                let offset = if self.model.offset_is_request {
                    pos
                } else {
                    message.offset
                };
                self.current = Some(Current {
                    id,
                    message,
                    precision,
                    req_offset: pos,
                    poll_reply_body: (message_type, offset),
                    next_block: 0,
                    encoded: vec![None; blocks],
                    staged: None,
                });
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn next_in_vgroup(
        &mut self,
        consumer: ConsumerId,
        topic: &str,
        vg: VgroupId,
        mut pos: i64,
    ) -> Option<Message> {
        let sub = self.sub.as_ref()?;
        let spec = sub.specs.get(topic)?.clone();
        let group = sub.group.clone();
        let snapshot_enabled = sub.options.snapshot;
        let backend = self.tmq.backend.clone();
        let max_rows = self.tmq.config.max_rows_per_message;
        let bounds = backend.wal_bounds(&spec.db, vg);
        if pos < bounds.first && pos >= backend.data_trimmed_to(&spec.db, vg) {
            // Retention only trimmed TMQ's own writes (subscribes, commits) there: nothing to read back;
            // scan on from the log's start (the position moves with the next message, not before).
            pos = bounds.first;
        }
        if pos < bounds.first {
            if snapshot_enabled {
                let key = (topic.to_string(), vg);
                let fresh = self.snapshots.get(&key).is_none_or(|(start, _)| *start != pos);
                if fresh {
                    let (tables, version) = backend.snapshot(&spec.db, vg);
                    self.snapshots
                        .insert(key.clone(), (pos, Snapshot::new(tables, version + 1)));
                }
                let (_, snap) = self.snapshots.get_mut(&key).expect("inserted above");
                let message = snap.next_message(&spec, vg, max_rows);
                if message.is_some() && !snap.is_drained(&spec) {
                    // Mid-snapshot the position stays where the snapshot started: committing it replays
                    // the snapshot, never skips it.
                    return message;
                }
                pos = snap.resume_at;
                self.snapshots.remove(&key);
                if message.is_some() {
                    self.tmq.coordinator.lock().advance(consumer, topic, vg, pos);
                    return message;
                }
            } else {
                tracing::warn!(
                    topic,
                    vgroup = vg,
                    skipped = bounds.first - pos,
                    "position is below the WAL retention; skipping to the oldest retained version \
                     (enable experimental.snapshot.enable to read them)"
                );
                pos = bounds.first;
            }
            self.tmq.coordinator.lock().advance(consumer, topic, vg, pos);
        }
        let (min_rows, max_wait) = self.limits();
        let started = std::time::Instant::now();
        let expired = move || started.elapsed() > max_wait;
        let limits = Limits {
            cut: self.model.cut,
            min_rows,
            expired: &expired,
        };
        let key = (group, topic.to_string(), vg);
        let (mut from, mut resume) = match self.tmq.cursors.lock().remove(&key) {
            Some(c) if c.at == pos => (c.scan_from.max(pos), c.resume),
            _ => (pos, None),
        };
        for _ in 0..READS_PER_POLL {
            let read_from = resume.map_or(from, |r| r.version);
            let entries = backend.read_wal(&spec.db, vg, read_from, READ_BATCH);
            if entries.is_empty() {
                break;
            }
            let (scan, stopped) = next_message(&spec, vg, from, resume.take(), entries.iter(), &limits);
            if let Some(message) = scan.message {
                self.tmq
                    .coordinator
                    .lock()
                    .advance(consumer, topic, vg, scan.next);
                if let Some(r) = stopped {
                    self.tmq.cursors.lock().insert(
                        key,
                        Cursor {
                            at: scan.next,
                            scan_from: scan.next,
                            resume: Some(r),
                        },
                    );
                }
                return Some(message);
            }
            from = from.max(scan.next);
            if entries.len() < READ_BATCH {
                break;
            }
        }
        // Nothing for the topic: the position stays (an empty response carries the position it was asked
        // at), but the entries looked at are not read again while it does.
        if from > pos {
            self.tmq.cursors.lock().insert(
                key,
                Cursor {
                    at: pos,
                    scan_from: from,
                    resume: None,
                },
            );
        }
        None
    }

    /// (rows, time) after which a response closes: the consumer's `min.poll.rows` / `fetch.max.wait.ms`
    /// where the reported version honours them, else the server's (`TmqConfig::max_rows_per_message`, 1 s).
    fn limits(&self) -> (usize, Duration) {
        let server = (self.tmq.config.max_rows_per_message, DEFAULT_MAX_WAIT);
        match &self.sub {
            Some(sub) if self.model.client_limits => (
                sub.min_poll_rows.unwrap_or(server.0),
                sub.max_wait.unwrap_or(server.1),
            ),
            _ => server,
        }
    }

    fn fetch(&mut self, req_id: u64, message_id: u64, started: Instant) -> Result<Vec<Out>, TdError> {
        self.current_message(message_id)?;
        let with_table_name = self.sub.as_ref().is_none_or(|s| s.with_table_name);
        let cur = self.current.as_mut().expect("checked above");
        let blocks = match cur.message.body.blocks() {
            blocks if cur.next_block < blocks.len() => blocks,
            _ => {
                cur.staged = None;
                return Ok(vec![Out::Text(proto::ok(
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
        Ok(vec![Out::Text(reply)])
    }

    fn fetch_block(&mut self, req_id: u64, message_id: u64, started: Instant) -> Result<Vec<Out>, TdError> {
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
        Ok(vec![Out::Binary(proto::fetch_block_frame(
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
