//! Consumer groups, sans-IO: membership (join, leave, heartbeat, session expiry), the split of each topic's
//! vgroups across a group's consumers, positions, committed offsets and `auto.offset.reset`.
//!
//! Time comes in as an argument (ms); WAL bounds come from a [`LogBounds`] the caller provides, so every rule
//! here is unit-tested without sockets or clocks. Offsets are vgroup log versions; a position is the version
//! the next message starts at; a committed offset is a position a restarted group resumes from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

pub type ConsumerId = u64;
pub type VgroupId = i32;

/// What `committed` reports for a (topic, vgroup) nothing was ever committed for (TDengine's value).
pub const UNSET_OFFSET: i64 = -2147467247;

/// TDengine's default session timeout (`session.timeout.ms`).
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 12_000;
/// TDengine's default `auto.commit.interval.ms`.
pub const DEFAULT_AUTO_COMMIT_INTERVAL_MS: i64 = 5_000;

/// Where a consumer starts in a vgroup nothing was committed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    Earliest,
    /// TDengine's default since 3.2.0.0.
    #[default]
    Latest,
    /// Polling such a vgroup is an error.
    None,
}

impl FromStr for OffsetReset {
    type Err = GroupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "earliest" | "smallest" => Ok(Self::Earliest),
            "latest" | "largest" => Ok(Self::Latest),
            "none" => Ok(Self::None),
            _ => Err(GroupError::InvalidParameter(format!("auto.offset.reset: {s}"))),
        }
    }
}

/// Per-consumer options from `subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOptions {
    pub client_id: Option<String>,
    pub offset_reset: OffsetReset,
    /// `Some(interval_ms)` when `enable.auto.commit` is on.
    pub auto_commit_interval_ms: Option<i64>,
    pub snapshot: bool,
}

/// A consumer's position in one assigned vgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    At(i64),
    /// `auto.offset.reset=none` and nothing committed: polling this vgroup fails.
    NoCommitted,
}

/// The oldest and newest version of a vgroup's log (`first = last + 1` when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub first: i64,
    pub last: i64,
}

/// What the coordinator needs to know about the logs: each topic's vgroups and their log bounds.
pub trait LogBounds {
    /// The vgroups of `topic`'s database, or `None` when the topic does not exist.
    fn vgroups(&self, topic: &str) -> Option<Vec<VgroupId>>;
    fn bounds(&self, topic: &str, vgroup: VgroupId) -> Bounds;
}

/// `seek` and `commit_offset` take offsets from the log's first version to the one after its last
/// (`TSDB_CODE_TMQ_VERSION_OUT_OF_RANGE` otherwise).
fn in_wal_range(offset: i64, bounds: Bounds) -> Result<(), GroupError> {
    let end = bounds.last + 1;
    if offset < bounds.first.min(end) || offset > end {
        return Err(GroupError::OffsetOutOfRange {
            offset,
            first: bounds.first,
            end,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("Consumer not exist")]
    UnknownConsumer,
    #[error("Topic not exist: {0}")]
    UnknownTopic(String),
    #[error("Topic does not belong to this consumer: {0}")]
    TopicNotSubscribed(String),
    #[error("VgId does not belong to this consumer: {0}")]
    VgroupNotAssigned(VgroupId),
    #[error("Offset out of range: {offset} not in [{first}, {end}]")]
    OffsetOutOfRange { offset: i64, first: i64, end: i64 },
    #[error("Invalid parameter: {0}")]
    InvalidParameter(String),
}

impl GroupError {
    /// TDengine's error code for this error.
    pub fn code(&self) -> i32 {
        match self {
            Self::UnknownConsumer => 0x03E6,
            Self::UnknownTopic(_) => 0x03E1,
            Self::TopicNotSubscribed(_) => 0x4009,
            Self::VgroupNotAssigned(_) => 0x4008,
            Self::OffsetOutOfRange { .. } => 0x4007,
            Self::InvalidParameter(_) => 0x0118,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    group: String,
    topics: Vec<String>,
    options: ConsumerOptions,
    joined_ms: i64,
    last_seen_ms: i64,
    last_auto_commit_ms: i64,
    assigned: BTreeMap<(String, VgroupId), Position>,
    /// Rotates which assigned vgroup a poll looks at first, so one busy vgroup cannot starve the others.
    poll_cursor: usize,
}

#[derive(Debug, Default)]
struct Group {
    members: BTreeSet<ConsumerId>,
    committed: HashMap<(String, VgroupId), i64>,
    /// Which consumer owns each (topic, vgroup) after the last rebalance.
    owners: BTreeMap<(String, VgroupId), ConsumerId>,
}

/// A vnode write the coordinator caused (TDengine writes these to the vgroup's WAL, where they take a
/// version): the caller appends them, outside the coordinator's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmqWrite {
    pub topic: String,
    pub vgroup: VgroupId,
    pub op: crate::tdengine::wal::InternalOp,
}

/// A row of `SHOW CONSUMERS` / `SHOW SUBSCRIPTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: ConsumerId,
    pub group: String,
    pub client_id: Option<String>,
    pub topics: Vec<String>,
    pub assigned: Vec<(String, VgroupId, Position)>,
    /// When it joined, in the coordinator's clock.
    pub joined_ms: i64,
}

/// The consumer-group coordinator of one stand-in server.
#[derive(Debug)]
pub struct Coordinator {
    session_timeout_ms: i64,
    next_id: ConsumerId,
    members: HashMap<ConsumerId, Member>,
    groups: HashMap<String, Group>,
    writes: Vec<TmqWrite>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_TIMEOUT_MS)
    }
}

impl Coordinator {
    pub fn new(session_timeout_ms: i64) -> Self {
        Self {
            session_timeout_ms,
            next_id: 1,
            members: HashMap::new(),
            groups: HashMap::new(),
            writes: Vec::new(),
        }
    }

    /// The vnode writes caused since the last call: a `TMQ_SUBSCRIBE` for every (topic, vgroup) whose
    /// consumer changed in a rebalance, a `TMQ_COMMIT_OFFSET` for every commit that changed an offset.
    pub fn take_writes(&mut self) -> Vec<TmqWrite> {
        std::mem::take(&mut self.writes)
    }

    fn record(&mut self, topic: &str, vgroup: VgroupId, op: crate::tdengine::wal::InternalOp) {
        self.writes.push(TmqWrite {
            topic: topic.to_string(),
            vgroup,
            op,
        });
    }

    /// Commits `offset` for `key` in `group`, recording the vnode write when the offset changes (the
    /// client only sends a commit for a vgroup whose offset moved).
    fn set_committed(&mut self, group: &str, key: (String, VgroupId), offset: i64) {
        let g = self.groups.entry(group.to_string()).or_default();
        if g.committed.get(&key) == Some(&offset) {
            return;
        }
        g.committed.insert(key.clone(), offset);
        self.record(&key.0, key.1, crate::tdengine::wal::InternalOp::TmqCommitOffset);
    }

    pub fn session_timeout_ms(&self) -> i64 {
        self.session_timeout_ms
    }

    /// Adds a consumer subscribed to `topics` to `group` and rebalances the group.
    pub fn join(
        &mut self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
        log: &dyn LogBounds,
        now_ms: i64,
    ) -> Result<ConsumerId, GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidParameter("group.id is required".into()));
        }
        if topics.is_empty() {
            return Err(GroupError::InvalidParameter("no topic to subscribe".into()));
        }
        for topic in topics {
            if log.vgroups(topic).is_none() {
                return Err(GroupError::UnknownTopic(topic.clone()));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut unique: Vec<String> = Vec::with_capacity(topics.len());
        for t in topics {
            if !unique.contains(t) {
                unique.push(t.clone());
            }
        }
        self.members.insert(
            id,
            Member {
                group: group.to_string(),
                topics: unique,
                options,
                joined_ms: now_ms,
                last_seen_ms: now_ms,
                last_auto_commit_ms: now_ms,
                assigned: BTreeMap::new(),
                poll_cursor: 0,
            },
        );
        self.groups
            .entry(group.to_string())
            .or_default()
            .members
            .insert(id);
        self.rebalance(group, log);
        Ok(id)
    }

    /// Removes a consumer (close, unsubscribe, socket gone). Auto-commit consumers commit their positions first.
    pub fn leave(&mut self, id: ConsumerId, log: &dyn LogBounds) -> Result<(), GroupError> {
        let member = self.members.get(&id).ok_or(GroupError::UnknownConsumer)?;
        if member.options.auto_commit_interval_ms.is_some() {
            self.commit_positions(id)?;
        }
        let member = self.members.remove(&id).expect("checked above");
        if let Some(group) = self.groups.get_mut(&member.group) {
            group.members.remove(&id);
        }
        self.rebalance(&member.group, log);
        Ok(())
    }

    /// Any sign of life from the consumer's connection.
    pub fn heartbeat(&mut self, id: ConsumerId, now_ms: i64) {
        if let Some(m) = self.members.get_mut(&id) {
            m.last_seen_ms = m.last_seen_ms.max(now_ms);
        }
    }

    pub fn contains(&self, id: ConsumerId) -> bool {
        self.members.contains_key(&id)
    }

    /// Periodic work: removes consumers silent for longer than the session timeout (rebalancing their groups)
    /// and runs due auto-commits. Returns the expired consumers with the topics they subscribed.
    pub fn tick(&mut self, now_ms: i64, log: &dyn LogBounds) -> Vec<(ConsumerId, Vec<String>)> {
        let mut expired: Vec<ConsumerId> = self
            .members
            .iter()
            .filter(|(_, m)| now_ms - m.last_seen_ms > self.session_timeout_ms)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        let mut gone = Vec::with_capacity(expired.len());
        for id in expired {
            // An expired consumer does not commit: it is gone, as a crashed client would be.
            if let Some(member) = self.members.remove(&id) {
                if let Some(group) = self.groups.get_mut(&member.group) {
                    group.members.remove(&id);
                }
                self.rebalance(&member.group, log);
                gone.push((id, member.topics));
            }
        }
        let due: Vec<ConsumerId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.options
                    .auto_commit_interval_ms
                    .is_some_and(|iv| now_ms - m.last_auto_commit_ms >= iv)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let _ = self.commit_positions(id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_auto_commit_ms = now_ms;
            }
        }
        gone
    }

    /// Recomputes the split of every topic subscribed in `group`: per topic, the subscribed consumers sorted
    /// by id take the vgroups sorted by id round-robin. A consumer keeps its position in a vgroup it keeps; a
    /// vgroup that changes hands starts from the committed offset (or the new owner's reset policy).
    fn rebalance(&mut self, group_name: &str, log: &dyn LogBounds) {
        let owners = self.assign(group_name, log);
        let Some(group) = self.groups.get_mut(group_name) else {
            return;
        };
        let before = std::mem::replace(&mut group.owners, owners.clone());
        let changed: Vec<(String, VgroupId)> = before
            .keys()
            .chain(owners.keys())
            .filter(|k| before.get(*k) != owners.get(*k))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for (topic, vg) in changed {
            self.record(&topic, vg, crate::tdengine::wal::InternalOp::TmqSubscribe);
        }
    }

    /// The assignment part of [`Coordinator::rebalance`]; returns the new owner of each (topic, vgroup).
    fn assign(&mut self, group_name: &str, log: &dyn LogBounds) -> BTreeMap<(String, VgroupId), ConsumerId> {
        let mut owners = BTreeMap::new();
        let Some(group) = self.groups.get(group_name) else {
            return owners;
        };
        let members: Vec<ConsumerId> = group.members.iter().copied().collect();
        if members.is_empty() {
            return owners;
        }
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for id in &members {
            topics.extend(self.members[id].topics.iter().cloned());
        }
        let mut wanted: BTreeMap<ConsumerId, BTreeSet<(String, VgroupId)>> =
            members.iter().map(|id| (*id, BTreeSet::new())).collect();
        for topic in &topics {
            let subscribers: Vec<ConsumerId> = members
                .iter()
                .copied()
                .filter(|id| self.members[id].topics.contains(topic))
                .collect();
            let mut vgroups = log.vgroups(topic).unwrap_or_default();
            vgroups.sort_unstable();
            for (i, vg) in vgroups.into_iter().enumerate() {
                let owner = subscribers[i % subscribers.len()];
                owners.insert((topic.clone(), vg), owner);
                wanted
                    .get_mut(&owner)
                    .expect("owner is a member")
                    .insert((topic.clone(), vg));
            }
        }
        for (id, keys) in wanted {
            let member = self.members.get(&id).expect("member of its group");
            let mut assigned = BTreeMap::new();
            for key in keys {
                let pos = match member.assigned.get(&key) {
                    Some(p) => *p,
                    None => initial_position(group.committed.get(&key).copied(), &member.options, || {
                        log.bounds(&key.0, key.1)
                    }),
                };
                assigned.insert(key, pos);
            }
            self.members.get_mut(&id).expect("present").assigned = assigned;
        }
        owners
    }

    fn member(&self, id: ConsumerId) -> Result<&Member, GroupError> {
        self.members.get(&id).ok_or(GroupError::UnknownConsumer)
    }

    fn member_mut(&mut self, id: ConsumerId) -> Result<&mut Member, GroupError> {
        self.members.get_mut(&id).ok_or(GroupError::UnknownConsumer)
    }

    pub fn options(&self, id: ConsumerId) -> Result<&ConsumerOptions, GroupError> {
        Ok(&self.member(id)?.options)
    }

    pub fn group_of(&self, id: ConsumerId) -> Result<&str, GroupError> {
        Ok(&self.member(id)?.group)
    }

    pub fn topics(&self, id: ConsumerId) -> Result<&[String], GroupError> {
        Ok(&self.member(id)?.topics)
    }

    /// The consumer's assigned (topic, vgroup, position), starting at its rotating poll cursor; each call
    /// moves the cursor by one so successive polls start at successive vgroups.
    pub fn poll_order(&mut self, id: ConsumerId) -> Result<Vec<(String, VgroupId, Position)>, GroupError> {
        let m = self.member_mut(id)?;
        let all: Vec<_> = m.assigned.iter().map(|((t, v), p)| (t.clone(), *v, *p)).collect();
        if all.is_empty() {
            return Ok(all);
        }
        let start = m.poll_cursor % all.len();
        m.poll_cursor = m.poll_cursor.wrapping_add(1);
        Ok(all[start..].iter().chain(&all[..start]).cloned().collect())
    }

    /// The consumer's position in an assigned vgroup.
    pub fn position(&self, id: ConsumerId, topic: &str, vgroup: VgroupId) -> Result<Position, GroupError> {
        let m = self.member(id)?;
        if !m.topics.iter().any(|t| t == topic) {
            return Err(GroupError::TopicNotSubscribed(topic.into()));
        }
        m.assigned
            .get(&(topic.to_string(), vgroup))
            .copied()
            .ok_or(GroupError::VgroupNotAssigned(vgroup))
    }

    /// Moves the position after a message was handed out. Ignored when the vgroup moved away meanwhile.
    pub fn advance(&mut self, id: ConsumerId, topic: &str, vgroup: VgroupId, next: i64) {
        if let Some(m) = self.members.get_mut(&id) {
            if let Some(p) = m.assigned.get_mut(&(topic.to_string(), vgroup)) {
                *p = Position::At(next);
            }
        }
    }

    /// A vgroup of `id` moved to another consumer and back (two rebalances): `id`'s position there is where a
    /// new owner starts, the group's commit or the reset policy's start. Nothing when it is not assigned.
    pub fn bounce(&mut self, id: ConsumerId, topic: &str, vgroup: VgroupId, log: &dyn LogBounds) {
        let key = (topic.to_string(), vgroup);
        let Some(m) = self.members.get(&id) else { return };
        if !m.assigned.contains_key(&key) {
            return;
        }
        let committed = self
            .groups
            .get(&m.group)
            .and_then(|g| g.committed.get(&key).copied());
        let pos = initial_position(committed, &m.options, || log.bounds(topic, vgroup));
        self.members
            .get_mut(&id)
            .expect("present")
            .assigned
            .insert(key.clone(), pos);
        // Each rebalance takes a version in the vgroup's log, as a subscribe does.
        self.record(topic, vgroup, crate::tdengine::wal::InternalOp::TmqSubscribe);
        self.record(topic, vgroup, crate::tdengine::wal::InternalOp::TmqSubscribe);
    }

    /// The assignment of one topic for `assignment`: (vgroup, position) sorted by vgroup.
    pub fn assignment(&self, id: ConsumerId, topic: &str) -> Result<Vec<(VgroupId, Position)>, GroupError> {
        let m = self.member(id)?;
        if !m.topics.iter().any(|t| t == topic) {
            return Err(GroupError::TopicNotSubscribed(topic.into()));
        }
        Ok(m.assigned
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, v), p)| (*v, *p))
            .collect())
    }

    /// `seek`: positions an assigned vgroup at `offset`, which must lie within the log (`first..=last+1`).
    pub fn seek(
        &mut self,
        id: ConsumerId,
        topic: &str,
        vgroup: VgroupId,
        offset: i64,
        bounds: Bounds,
    ) -> Result<(), GroupError> {
        self.position(id, topic, vgroup)?;
        in_wal_range(offset, bounds)?;
        self.advance(id, topic, vgroup, offset);
        Ok(())
    }

    /// `commit`: commits the consumer's position in every assigned vgroup it has a position in.
    pub fn commit_positions(&mut self, id: ConsumerId) -> Result<(), GroupError> {
        let m = self.member(id)?;
        let updates: Vec<((String, VgroupId), i64)> = m
            .assigned
            .iter()
            .filter_map(|(k, p)| match p {
                Position::At(v) => Some((k.clone(), *v)),
                Position::NoCommitted => None,
            })
            .collect();
        let group = m.group.clone();
        for (key, offset) in updates {
            self.set_committed(&group, key, offset);
        }
        Ok(())
    }

    /// `commit_offset`: commits `offset` for a vgroup assigned to the consumer, within the vgroup's log (as
    /// `seek`). TDengine's client checks both (`tmq_commit_offset_sync` → `getClientVg`, `checkWalRange`): a
    /// vgroup that moved to another consumer of the group is refused with `TSDB_CODE_TMQ_INVALID_VGID`, so a
    /// consumer that lost a vgroup cannot move the group's commit behind what the new owner committed.
    pub fn commit_offset(
        &mut self,
        id: ConsumerId,
        topic: &str,
        vgroup: VgroupId,
        offset: i64,
        bounds: Bounds,
    ) -> Result<(), GroupError> {
        let m = self.member(id)?;
        if !m.topics.iter().any(|t| t == topic) {
            return Err(GroupError::TopicNotSubscribed(topic.into()));
        }
        if !m.assigned.contains_key(&(topic.to_string(), vgroup)) {
            return Err(GroupError::VgroupNotAssigned(vgroup));
        }
        in_wal_range(offset, bounds)?;
        let group = m.group.clone();
        self.set_committed(&group, (topic.to_string(), vgroup), offset);
        Ok(())
    }

    /// The group's committed offset, [`UNSET_OFFSET`] when none.
    pub fn committed(&self, group: &str, topic: &str, vgroup: VgroupId) -> i64 {
        self.groups
            .get(group)
            .and_then(|g| g.committed.get(&(topic.to_string(), vgroup)))
            .copied()
            .unwrap_or(UNSET_OFFSET)
    }

    /// How many live consumers subscribe to `topic` (`DROP TOPIC` refuses while non-zero).
    pub fn subscribers(&self, topic: &str) -> usize {
        self.members
            .values()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .count()
    }

    /// Forgets the committed offsets of a dropped topic.
    pub fn forget_topic(&mut self, topic: &str) {
        for g in self.groups.values_mut() {
            g.committed.retain(|(t, _), _| t != topic);
            g.owners.retain(|(t, _), _| t != topic);
        }
    }

    /// Every committed offset as (group, topic, vgroup, offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, VgroupId, i64)> {
        self.groups
            .iter()
            .flat_map(|(g, group)| {
                group
                    .committed
                    .iter()
                    .map(move |((t, v), o)| (g.clone(), t.clone(), *v, *o))
            })
            .collect()
    }

    /// Every live consumer, sorted by id.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        let mut all: Vec<ConsumerInfo> = self
            .members
            .iter()
            .map(|(id, m)| ConsumerInfo {
                id: *id,
                group: m.group.clone(),
                client_id: m.options.client_id.clone(),
                topics: m.topics.clone(),
                assigned: m.assigned.iter().map(|((t, v), p)| (t.clone(), *v, *p)).collect(),
                joined_ms: m.joined_ms,
            })
            .collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

fn initial_position(
    committed: Option<i64>,
    options: &ConsumerOptions,
    bounds: impl FnOnce() -> Bounds,
) -> Position {
    if let Some(c) = committed {
        return Position::At(c);
    }
    match options.offset_reset {
        // With snapshots, `earliest` means the beginning of the data, even what the log no longer holds.
        OffsetReset::Earliest if options.snapshot => Position::At(1),
        OffsetReset::Earliest => Position::At(bounds().first),
        OffsetReset::Latest => Position::At(bounds().last + 1),
        OffsetReset::None => Position::NoCommitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Topic "t" over vgroups 2..=5 whose logs hold versions 1..=10; topic "u" over vgroup 9, versions 3..=7.
    struct FixedLogs;
    impl LogBounds for FixedLogs {
        fn vgroups(&self, topic: &str) -> Option<Vec<VgroupId>> {
            match topic {
                "t" => Some(vec![5, 3, 2, 4]),
                "u" => Some(vec![9]),
                _ => None,
            }
        }
        fn bounds(&self, topic: &str, _: VgroupId) -> Bounds {
            match topic {
                "u" => Bounds { first: 3, last: 7 },
                _ => Bounds { first: 1, last: 10 },
            }
        }
    }

    fn opts(reset: OffsetReset) -> ConsumerOptions {
        ConsumerOptions {
            offset_reset: reset,
            ..Default::default()
        }
    }

    fn t() -> Vec<String> {
        vec!["t".to_string()]
    }

    fn vgroups_of(c: &Coordinator, id: ConsumerId) -> Vec<VgroupId> {
        c.assignment(id, "t")
            .unwrap()
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn a_single_consumer_gets_every_vgroup_at_its_reset_position() {
        let mut c = Coordinator::default();
        let a = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        assert_eq!(
            c.assignment(a, "t").unwrap(),
            vec![
                (2, Position::At(1)),
                (3, Position::At(1)),
                (4, Position::At(1)),
                (5, Position::At(1))
            ]
        );
        let b = c
            .join("h", &t(), opts(OffsetReset::Latest), &FixedLogs, 0)
            .unwrap();
        assert_eq!(c.position(b, "t", 2).unwrap(), Position::At(11));
        let n = c.join("i", &t(), opts(OffsetReset::None), &FixedLogs, 0).unwrap();
        assert_eq!(c.position(n, "t", 2).unwrap(), Position::NoCommitted);
    }

    #[test]
    fn two_consumers_split_disjointly_and_the_survivor_takes_over_from_committed() {
        let mut c = Coordinator::default();
        let a = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        c.advance(a, "t", 3, 7);
        c.commit_positions(a).unwrap();
        c.advance(a, "t", 3, 9); // consumed, not committed
        let b = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        assert_eq!(vgroups_of(&c, a), vec![2, 4]);
        assert_eq!(vgroups_of(&c, b), vec![3, 5]);
        // b took vgroup 3 over from the committed offset, not from a's uncommitted position.
        assert_eq!(c.position(b, "t", 3).unwrap(), Position::At(7));
        assert_eq!(c.position(a, "t", 3), Err(GroupError::VgroupNotAssigned(3)));
        // a lost vgroup 3: its commit is refused (TDengine's 0x4008) and the group's stays.
        let log = Bounds { first: 1, last: 10 };
        assert_eq!(c.commit_offset(a, "t", 3, 2, log).unwrap_err().code(), 0x4008);
        // Outside the vgroup's log, as `seek`: 0x4007.
        assert_eq!(c.commit_offset(a, "t", 4, 12, log).unwrap_err().code(), 0x4007);
        assert_eq!(c.commit_offset(a, "t", 4, 0, log).unwrap_err().code(), 0x4007);
        c.commit_offset(a, "t", 4, 11, log).unwrap();
        assert_eq!(c.committed("g", "t", 4), 11);
        assert_eq!(c.committed("g", "t", 3), 7);
        c.advance(b, "t", 5, 4);
        c.commit_positions(b).unwrap();
        c.leave(b, &FixedLogs).unwrap();
        assert_eq!(vgroups_of(&c, a), vec![2, 3, 4, 5]);
        assert_eq!(c.position(a, "t", 5).unwrap(), Position::At(4));
        assert_eq!(c.committed("g", "t", 3), 7);
        assert_eq!(c.committed("g", "t", 2), 1);
    }

    #[test]
    fn committed_offsets_survive_the_last_consumer_leaving() {
        let mut c = Coordinator::default();
        let a = c
            .join("g", &t(), opts(OffsetReset::Latest), &FixedLogs, 0)
            .unwrap();
        c.commit_offset(a, "t", 4, 6, Bounds { first: 1, last: 10 })
            .unwrap();
        c.leave(a, &FixedLogs).unwrap();
        assert_eq!(c.committed("g", "t", 4), 6);
        assert_eq!(c.committed("g", "t", 2), UNSET_OFFSET);
        let b = c
            .join("g", &t(), opts(OffsetReset::Latest), &FixedLogs, 0)
            .unwrap();
        assert_eq!(c.position(b, "t", 4).unwrap(), Position::At(6));
        assert_eq!(c.position(b, "t", 2).unwrap(), Position::At(11));
        // Another group is independent.
        let x = c
            .join("other", &t(), opts(OffsetReset::None), &FixedLogs, 0)
            .unwrap();
        assert_eq!(c.position(x, "t", 4).unwrap(), Position::NoCommitted);
    }

    #[test]
    fn silent_consumers_expire_after_the_session_timeout() {
        let mut c = Coordinator::new(12_000);
        let a = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        let b = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        c.heartbeat(a, 10_000);
        assert!(c.tick(12_000, &FixedLogs).is_empty());
        assert_eq!(c.tick(12_001, &FixedLogs), vec![(b, t())]);
        assert!(!c.contains(b));
        assert_eq!(vgroups_of(&c, a), vec![2, 3, 4, 5]);
        assert_eq!(c.tick(22_001, &FixedLogs), vec![(a, t())]);
        assert_eq!(c.subscribers("t"), 0);
    }

    #[test]
    fn auto_commit_commits_positions_every_interval_and_on_leave() {
        let mut c = Coordinator::default();
        let o = ConsumerOptions {
            offset_reset: OffsetReset::Earliest,
            auto_commit_interval_ms: Some(1_000),
            ..Default::default()
        };
        let a = c.join("g", &t(), o, &FixedLogs, 0).unwrap();
        c.advance(a, "t", 2, 5);
        c.heartbeat(a, 999);
        c.tick(999, &FixedLogs);
        assert_eq!(c.committed("g", "t", 2), UNSET_OFFSET);
        c.tick(1_000, &FixedLogs);
        assert_eq!(c.committed("g", "t", 2), 5);
        c.advance(a, "t", 2, 8);
        c.leave(a, &FixedLogs).unwrap();
        assert_eq!(c.committed("g", "t", 2), 8);
    }

    #[test]
    fn consumers_on_different_topics_split_each_topic_separately() {
        let mut c = Coordinator::default();
        let a = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        let both = vec!["t".to_string(), "u".to_string()];
        let b = c
            .join("g", &both, opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        assert_eq!(vgroups_of(&c, a), vec![2, 4]);
        assert_eq!(vgroups_of(&c, b), vec![3, 5]);
        assert_eq!(c.assignment(b, "u").unwrap(), vec![(9, Position::At(3))]);
        assert_eq!(
            c.assignment(a, "u"),
            Err(GroupError::TopicNotSubscribed("u".into()))
        );
        assert_eq!(c.subscribers("u"), 1);
        assert_eq!(c.subscribers("t"), 2);
    }

    #[test]
    fn seek_checks_the_range_and_poll_order_rotates() {
        let mut c = Coordinator::default();
        let a = c
            .join("g", &t(), opts(OffsetReset::Earliest), &FixedLogs, 0)
            .unwrap();
        let b = Bounds { first: 1, last: 10 };
        c.seek(a, "t", 2, 11, b).unwrap();
        assert_eq!(c.position(a, "t", 2).unwrap(), Position::At(11));
        assert_eq!(c.seek(a, "t", 2, 12, b).unwrap_err().code(), 0x4007);
        assert_eq!(c.seek(a, "t", 42, 1, b).unwrap_err().code(), 0x4008);
        let first: Vec<_> = (0..4).map(|_| c.poll_order(a).unwrap()[0].1).collect();
        assert_eq!(first, vec![2, 3, 4, 5]);
    }

    #[test]
    fn join_validates_its_input() {
        let mut c = Coordinator::default();
        let o = opts(OffsetReset::Latest);
        assert_eq!(
            c.join("", &t(), o.clone(), &FixedLogs, 0).unwrap_err().code(),
            0x0118
        );
        assert_eq!(
            c.join("g", &["nope".to_string()], o, &FixedLogs, 0)
                .unwrap_err()
                .code(),
            0x03E1
        );
        assert_eq!("earliest".parse::<OffsetReset>(), Ok(OffsetReset::Earliest));
        assert!("sideways".parse::<OffsetReset>().is_err());
    }
}
