//! The delivery ledger: a sans-IO state machine that decides when a TMQ offset may be committed.
//!
//! It is fed events — a TMQ message was polled with N publishes, a publish was handed to the MQTT
//! client, the client reported it outgoing with packet id P, P was acknowledged, the session was lost —
//! and answers with [`Action`]s (commit this vgroup's offset). It owns the publishes until they are
//! acknowledged, so a lost session re-queues them for sending again.
//!
//! Correlation (rumqttc 0.25 gives no ack token): publishes handed to the client leave in the order they
//! were handed, each reported as `Outgoing::Publish(pkid)`; the ledger pops the oldest handed publish and
//! binds it to that pkid (pkid 0 = QoS 0: written, so acknowledged at once). An outgoing report for a pkid
//! whose flow still waits for PUBACK/PUBREC is a retransmission of that publish, not a new one; a QoS 2 id
//! waiting only for PUBCOMP may carry a new publish as well (see `pkids`).
//!
//! Commit frontier: per (topic, vgroup), messages queue in poll order; the offset to commit advances over
//! the prefix of messages whose publishes are all acknowledged, and never moves backwards.
//!
//! Control publishes ([`Ledger::push_control`], the bridge's `online`/`offline` status) go through the
//! same client, so they take part in the packet-id correlation exactly like rows — otherwise they would
//! shift every later binding by one — but belong to no message: their acks commit nothing, they are not
//! counted as unacknowledged rows, and a lost session drops them instead of re-sending them (the caller
//! publishes a fresh status on every connection).

mod pkids;

use pkids::PkidMap;
use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

/// Keys of the per-publish maps are our own sequence numbers and packet ids, never chosen by a peer, so
/// a multiplicative hash replaces SipHash (callgrind: SipHash was ~18% of the bridge's per-row work).
#[derive(Default, Clone, Copy)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u16(&mut self, x: u16) {
        self.write_u64(x as u64);
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SeqMap<K, V> = HashMap<K, V, BuildHasherDefault<SeqHasher>>;

/// Publishes by id. Ids are handed out in sequence, each inserted at once, and mostly retired oldest
/// first, so a ring of slots from the oldest live id replaces a hash map (one map insert and remove per
/// row was the ledger's largest cost in `cargo bench -p tmq2mqtt --bench encode`).
#[derive(Debug)]
struct Slab<T> {
    /// Id of `slots[0]`.
    base: PubId,
    slots: VecDeque<Option<T>>,
    live: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            base: 0,
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Inserts the newest id (the one after every id inserted so far).
    fn insert(&mut self, id: PubId, value: T) {
        if self.slots.is_empty() {
            self.base = id;
        }
        debug_assert_eq!(
            id,
            self.base + self.slots.len() as u64,
            "ids are inserted in sequence"
        );
        self.slots.push_back(Some(value));
        self.live += 1;
    }

    fn index(&self, id: PubId) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    fn get(&self, id: PubId) -> Option<&T> {
        self.slots.get(self.index(id)?)?.as_ref()
    }

    fn get_mut(&mut self, id: PubId) -> Option<&mut T> {
        let i = self.index(id)?;
        self.slots.get_mut(i)?.as_mut()
    }

    fn remove(&mut self, id: PubId) -> Option<T> {
        let i = self.index(id)?;
        let value = self.slots[i].take()?;
        self.live -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(value)
    }

    fn len(&self) -> usize {
        self.live
    }
}

/// Identifies one publish inside the ledger.
pub type PubId = u64;

/// A position to commit: `offset` (the position to resume from) for this topic's vgroup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitPoint {
    pub topic: Arc<str>,
    pub vgroup_id: i32,
    pub offset: i64,
}

/// What the ledger asks the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Commit this position.
    Commit(CommitPoint),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VgKey {
    topic: Arc<str>,
    vgroup_id: i32,
}

#[derive(Debug)]
struct Msg {
    vg: VgKey,
    commit_at: i64,
    remaining: usize,
}

#[derive(Debug, Default)]
struct VgState {
    /// Message ids in poll order, not yet behind the frontier.
    queue: VecDeque<u64>,
    committed: Option<i64>,
}

/// The `msg` of a control publish: it belongs to no TMQ message.
const CONTROL: u64 = u64::MAX;
/// The `msg` of an event publish ([`Ledger::push_event`]): a control publish no status supersedes.
const EVENT: u64 = u64::MAX - 1;

/// Whether an entry's `msg` marks a control publish (a status or an event).
fn is_control(msg: u64) -> bool {
    msg >= EVENT
}

#[derive(Debug)]
struct Entry<P> {
    /// The TMQ message this publish belongs to, or [`CONTROL`].
    msg: u64,
    payload: P,
}

/// Counters the ledger keeps about the events it saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCounters {
    pub acked: u64,
    pub resent: u64,
    /// Control publishes acknowledged (not in `acked`).
    pub control_acked: u64,
    /// Outgoing/ack reports the ledger could not match (should stay 0).
    pub unmatched: u64,
}

/// The ledger; `P` is whatever the caller needs to (re-)send a publish.
#[derive(Debug)]
pub struct Ledger<P> {
    next_pub: PubId,
    next_msg: u64,
    entries: Slab<Entry<P>>,
    to_send: VecDeque<PubId>,
    handed: VecDeque<PubId>,
    by_pkid: PkidMap,
    msgs: SeqMap<u64, Msg>,
    vgroups: HashMap<VgKey, VgState>,
    /// Control publishes in `entries`.
    controls: usize,
    counters: LedgerCounters,
}

impl<P> Default for Ledger<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> Ledger<P> {
    pub fn new() -> Self {
        Ledger {
            next_pub: 0,
            next_msg: 0,
            entries: Slab::default(),
            to_send: VecDeque::new(),
            handed: VecDeque::new(),
            by_pkid: PkidMap::default(),
            msgs: SeqMap::default(),
            vgroups: HashMap::new(),
            controls: 0,
            counters: LedgerCounters::default(),
        }
    }

    /// A TMQ message was polled; `commit_at` is the position after it. Its publishes (possibly none, when
    /// every row was skipped) queue for sending.
    pub fn on_message(
        &mut self,
        topic: &Arc<str>,
        vgroup_id: i32,
        commit_at: i64,
        publishes: impl IntoIterator<Item = P>,
    ) -> Vec<Action> {
        let msg_id = self.next_msg;
        self.next_msg += 1;
        let vg = VgKey {
            topic: topic.clone(),
            vgroup_id,
        };
        let mut remaining = 0;
        for payload in publishes {
            let id = self.insert(msg_id, payload);
            self.to_send.push_back(id);
            remaining += 1;
        }
        self.msgs.insert(
            msg_id,
            Msg {
                vg: vg.clone(),
                commit_at,
                remaining,
            },
        );
        self.vgroups
            .entry(vg.clone())
            .or_default()
            .queue
            .push_back(msg_id);
        self.advance(&vg)
    }

    /// The next publish to hand to the MQTT client, without taking it (see [`Ledger::mark_handed`]).
    pub fn peek_to_send(&self) -> Option<&P> {
        let id = self.to_send.front()?;
        Some(&self.entries.get(*id)?.payload)
    }

    /// The publish `peek_to_send` showed was handed to the client: it now awaits its outgoing report.
    pub fn mark_handed(&mut self) {
        if let Some(id) = self.to_send.pop_front() {
            self.handed.push_back(id);
        }
    }

    /// Takes the next publish to hand to the MQTT client (`peek_to_send` + `mark_handed`).
    pub fn next_to_send(&mut self) -> Option<(PubId, &P)> {
        let id = *self.to_send.front()?;
        self.mark_handed();
        Some((id, &self.entries.get(id)?.payload))
    }

    /// Whether publishes wait to be handed to the client.
    pub fn has_to_send(&self) -> bool {
        !self.to_send.is_empty()
    }

    /// Publishes handed to the client and not yet reported outgoing (they sit in its request queue).
    pub fn handed_len(&self) -> usize {
        self.handed.len()
    }

    /// Publishes of TMQ messages not yet acknowledged (queued, handed or on the wire); control
    /// publishes are not counted.
    pub fn unacked(&self) -> usize {
        self.entries.len() - self.controls
    }

    /// Queues a control publish ahead of every queued row, so it is the next one handed to the client.
    /// A control publish still queued (not yet handed) is superseded and dropped: the newest status wins.
    pub fn push_control(&mut self, payload: P) -> PubId {
        let superseded: Vec<PubId> = self
            .to_send
            .iter()
            .copied()
            .filter(|&id| self.entries.get(id).is_some_and(|e| e.msg == CONTROL))
            .collect();
        if !superseded.is_empty() {
            self.to_send.retain(|id| !superseded.contains(id));
            for id in &superseded {
                self.entries.remove(*id);
            }
            self.controls -= superseded.len();
        }
        let id = self.insert(CONTROL, payload);
        self.to_send.push_front(id);
        id
    }

    /// Queues an event (a control publish that no status supersedes) behind everything queued. Like a
    /// status, it commits nothing and a lost session drops it.
    pub fn push_event(&mut self, payload: P) -> PubId {
        let id = self.insert(EVENT, payload);
        self.to_send.push_back(id);
        id
    }

    /// A new entry of message `msg` (or [`CONTROL`] / [`EVENT`]), not queued yet.
    fn insert(&mut self, msg: u64, payload: P) -> PubId {
        let id = self.next_pub;
        self.next_pub += 1;
        self.entries.insert(id, Entry { msg, payload });
        if is_control(msg) {
            self.controls += 1;
        }
        id
    }

    /// Control publishes not yet acknowledged (queued, handed or on the wire).
    pub fn control_unacked(&self) -> usize {
        self.controls
    }

    /// Whether the flow on `pkid` waiting for PUBACK/PUBREC is a control publish (to tell a rejected status
    /// from a rejected row).
    pub fn is_control(&self, pkid: u16) -> bool {
        self.by_pkid
            .get(pkid)
            .sent
            .is_some_and(|id| self.entries.get(id).is_some_and(|e| is_control(e.msg)))
    }

    /// TMQ messages not yet behind their vgroup's commit frontier.
    pub fn pending_messages(&self) -> usize {
        self.msgs.len()
    }

    pub fn counters(&self) -> LedgerCounters {
        self.counters
    }

    /// The client reported a publish outgoing with `pkid` (0 for QoS 0, which counts as acknowledged).
    pub fn on_outgoing(&mut self, pkid: u16) -> Vec<Action> {
        if pkid != 0 && self.by_pkid.get(pkid).sent.is_some() {
            // A retransmission (session resumed) of the publish waiting for PUBACK/PUBREC on this id.
            return Vec::new();
        }
        let Some(id) = self.handed.pop_front() else {
            self.counters.unmatched += 1;
            return Vec::new();
        };
        if pkid == 0 {
            return self.ack(id);
        }
        self.by_pkid.get_mut(pkid).sent = Some(id);
        Vec::new()
    }

    /// PUBACK for `pkid` (QoS 1): its flow is acknowledged, and so is an older QoS 2 flow on the id that
    /// still waited for PUBCOMP (the broker processed its PUBREL first).
    pub fn on_ack(&mut self, pkid: u16) -> Vec<Action> {
        let flows = std::mem::take(self.by_pkid.get_mut(pkid));
        if flows.sent.is_none() {
            self.counters.unmatched += 1;
        }
        let mut actions = Vec::new();
        for id in [flows.released, flows.sent].into_iter().flatten() {
            actions.extend(self.ack(id));
        }
        actions
    }

    /// PUBREC for `pkid` (QoS 2): its flow now waits for PUBCOMP; an older flow on the id that still
    /// waited for PUBCOMP is acknowledged (the broker processed its PUBREL first).
    pub fn on_received(&mut self, pkid: u16) -> Vec<Action> {
        let flows = self.by_pkid.get_mut(pkid);
        let Some(id) = flows.sent.take() else {
            self.counters.unmatched += 1;
            return Vec::new();
        };
        match flows.released.replace(id) {
            Some(older) => self.ack(older),
            None => Vec::new(),
        }
    }

    /// PUBCOMP for `pkid` (QoS 2): the flow that waited for it is acknowledged (the one still waiting for
    /// PUBREC if no PUBREC was reported).
    pub fn on_complete(&mut self, pkid: u16) -> Vec<Action> {
        let flows = self.by_pkid.get_mut(pkid);
        match flows.released.take().or_else(|| flows.sent.take()) {
            Some(id) => self.ack(id),
            None => {
                self.counters.unmatched += 1;
                Vec::new()
            }
        }
    }

    /// The broker rejected `pkid` (an MQTT 5 failure reason code on PUBACK or PUBREC): `replace` may give a publish to send
    /// in its place (its dead letter), which stays part of the same message — the message's offset then
    /// commits only once the replacement is acknowledged. Without a replacement (or for a control
    /// publish) the rejection settles the publish like an ack.
    pub fn on_rejected(&mut self, pkid: u16, replace: impl FnOnce(&P) -> Option<P>) -> Vec<Action> {
        let flows = std::mem::take(self.by_pkid.get_mut(pkid));
        let Some(id) = flows.sent else {
            self.counters.unmatched += 1;
            return Vec::new();
        };
        // The broker answered this PUBLISH: it processed the older flow's PUBREL first.
        let mut actions = flows.released.map(|older| self.ack(older)).unwrap_or_default();
        let Some(entry) = self.entries.get_mut(id).filter(|e| !is_control(e.msg)) else {
            actions.extend(self.ack(id));
            return actions;
        };
        match replace(&entry.payload) {
            Some(replacement) => {
                entry.payload = replacement;
                self.to_send.push_back(id);
            }
            None => actions.extend(self.ack(id)),
        }
        actions
    }

    /// The connection failed: publishes handed to the client but never reported outgoing did not go out
    /// and the client dropped them (the sink takes them out of its queue); they are queued again (see
    /// [`Ledger::requeue`]) to be handed once a session is up. Returns how many rows were re-queued.
    pub fn on_disconnected(&mut self) -> usize {
        let handed: Vec<PubId> = self.handed.drain(..).collect();
        self.requeue(handed)
    }

    /// The MQTT session is gone (reconnected without a session): nothing handed to the client or on
    /// the wire will be acknowledged any more. Re-queues all of it (see [`Ledger::requeue`]); returns how
    /// many rows.
    pub fn on_session_lost(&mut self) -> usize {
        let ids: Vec<PubId> = self.handed.drain(..).chain(self.by_pkid.drain()).collect();
        let n = self.requeue(ids);
        self.counters.resent += n as u64;
        n
    }

    /// Puts `ids` back at the front of the queue, oldest first — everything still queued was polled later,
    /// so order is kept. Control publishes among them are dropped, not re-sent (each connection publishes a
    /// fresh status). Returns how many rows were re-queued.
    fn requeue(&mut self, mut ids: Vec<PubId>) -> usize {
        ids.sort_unstable();
        let mut rows = 0;
        for &id in ids.iter().rev() {
            match self.entries.get(id) {
                Some(e) if is_control(e.msg) => {
                    self.entries.remove(id);
                    self.controls -= 1;
                }
                Some(_) => {
                    self.to_send.push_front(id);
                    rows += 1;
                }
                None => {}
            }
        }
        rows
    }

    /// The committed position per (topic, vgroup) as far as the ledger has asked for it.
    pub fn committed(&self) -> Vec<CommitPoint> {
        let mut v: Vec<_> = self
            .vgroups
            .iter()
            .filter_map(|(k, s)| {
                s.committed.map(|offset| CommitPoint {
                    topic: k.topic.clone(),
                    vgroup_id: k.vgroup_id,
                    offset,
                })
            })
            .collect();
        v.sort();
        v
    }

    fn ack(&mut self, id: PubId) -> Vec<Action> {
        let Some(entry) = self.entries.remove(id) else {
            self.counters.unmatched += 1;
            return Vec::new();
        };
        if is_control(entry.msg) {
            self.controls -= 1;
            self.counters.control_acked += 1;
            return Vec::new();
        }
        self.counters.acked += 1;
        let msg = self
            .msgs
            .get_mut(&entry.msg)
            .expect("publish belongs to a message");
        msg.remaining -= 1;
        if msg.remaining > 0 {
            return Vec::new();
        }
        let vg = msg.vg.clone();
        self.advance(&vg)
    }

    fn advance(&mut self, vg: &VgKey) -> Vec<Action> {
        let state = self.vgroups.get_mut(vg).expect("vgroup has state");
        let mut frontier = None;
        while let Some(front) = state.queue.front() {
            let msg = &self.msgs[front];
            if msg.remaining > 0 {
                break;
            }
            frontier = Some(frontier.map_or(msg.commit_at, |f: i64| f.max(msg.commit_at)));
            let front = *front;
            state.queue.pop_front();
            self.msgs.remove(&front);
        }
        match frontier {
            // Redelivered messages (after a TMQ reconnect) may carry older offsets: never go backwards.
            Some(f) if state.committed.is_none_or(|c| f > c) => {
                state.committed = Some(f);
                vec![Action::Commit(CommitPoint {
                    topic: vg.topic.clone(),
                    vgroup_id: vg.vgroup_id,
                    offset: f,
                })]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_qos2;
