//! Polls: which message comes next for a consumer — its vgroups in turn from their positions, a scan
//! continued where the group's last response stopped ([`Cursor`]), snapshots below the WAL retention — and
//! a blocking poll's wait for new log entries. The rest of the connection is in the parent module.

use super::*;

/// Log entries read per backend call while scanning for the next message.
const READ_BATCH: usize = 8192;
/// Backend reads per vgroup and poll before moving on (bounds the work of one poll).
const READS_PER_POLL: usize = 16;
/// How long a response may take to fill (`fetch.max.wait.ms`'s default; TDengine's fixed bound before 3.3.6).
const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1000);

impl Session {
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

    pub(super) fn empty_poll(&self, req_id: u64) -> String {
        proto::ok("poll", req_id, 0, proto::PollReply::default())
    }

    pub(super) fn poll(
        &mut self,
        req_id: u64,
        args: proto::PollArgs,
        started: Instant,
    ) -> Result<Vec<Reply>, TdError> {
        let consumer = self.consumer()?;
        // A newer client tells which message it last received; if that is not our current one, its reply
        // was lost in flight: hand the same message out again.
        if let (Some(seen), Some(cur)) = (args.message_id, self.current.as_mut()) {
            if seen != cur.id {
                cur.next_block = 0;
                cur.staged = None;
                return Ok(vec![Reply::Text(self.poll_reply(req_id, started))]);
            }
        }
        self.current = None;
        let receivers = if args.blocking_time > 0 {
            self.receivers(consumer)
        } else {
            Vec::new()
        };
        if self.next(consumer)? {
            self.bounce_if_asked(consumer);
            return Ok(vec![Reply::Text(self.poll_reply(req_id, started))]);
        }
        if args.blocking_time > 0 {
            let blocking = Duration::from_millis(args.blocking_time as u64).min(self.tmq.config.max_blocking);
            return Ok(vec![Reply::Wait(PollWait {
                req_id,
                deadline: started + blocking,
                receivers,
            })]);
        }
        Ok(vec![Reply::Text(self.empty_poll(req_id))])
    }

    /// After a blocking poll woke up: try again; reply, or keep waiting until the deadline.
    pub(super) fn retry_poll(&mut self, wait: PollWait, timed_out: bool) -> Vec<Reply> {
        let started = Instant::now();
        let consumer = match self.consumer() {
            Ok(c) => c,
            Err(e) => return vec![Reply::Text(poll_error(wait.req_id, &e))],
        };
        match self.next(consumer) {
            Ok(true) => {
                self.bounce_if_asked(consumer);
                vec![Reply::Text(self.poll_reply(wait.req_id, started))]
            }
            Ok(false) if timed_out || Instant::now() >= wait.deadline => {
                vec![Reply::Text(self.empty_poll(wait.req_id))]
            }
            Ok(false) => vec![Reply::Wait(wait)],
            Err(e) => vec![Reply::Text(poll_error(wait.req_id, &e))],
        }
    }

    /// The fault [`crate::tdengine::faults::Faults::bounce_after_next_message`], on the message just made current.
    fn bounce_if_asked(&self, consumer: ConsumerId) {
        if let Some(cur) = &self.current {
            if self.tmq.faults.take_bounce_after_message() {
                self.tmq.bounce(consumer, &cur.message.topic, cur.message.vgroup);
            }
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
                if let Some(sub) = &self.sub {
                    self.tmq.note_served(&sub.group, &message);
                }
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
}
