//! Each vgroup's WAL end and resume point, for the `tmq2mqtt_lag` metric (see the module doc of
//! [`super`]).

use std::{collections::BTreeMap, sync::Mutex};

/// Per (topic, vgroup): the WAL end (last version + 1) as last seen, and where the group resumes when
/// the bridge has committed nothing there yet. Shared with the metrics (see the module doc).
#[derive(Debug, Default)]
pub struct WalEnds(Mutex<BTreeMap<(String, i32), VgroupWal>>);

#[derive(Debug, Default, Clone, Copy)]
struct VgroupWal {
    end: Option<i64>,
    resume: Option<i64>,
}

impl WalEnds {
    fn with(&self, topic: &str, vgroup_id: i32, f: impl FnOnce(&mut VgroupWal)) {
        let mut map = self.0.lock().expect("wal ends lock");
        f(map.entry((topic.to_string(), vgroup_id)).or_default());
    }

    /// The end `assignment` reported: authoritative, so it replaces (a database dropped and created
    /// again starts over).
    pub fn set_end(&self, topic: &str, vgroup_id: i32, end: i64) {
        self.with(topic, vgroup_id, |v| v.end = Some(end));
    }

    /// A message ended at `position`: the end is at least there.
    pub fn saw_position(&self, topic: &str, vgroup_id: i32, position: i64) {
        self.with(topic, vgroup_id, |v| {
            v.end = Some(v.end.map_or(position, |e| e.max(position)))
        });
    }

    /// Where the group resumes in this vgroup (its commit, else where `auto.offset.reset` starts).
    pub fn set_resume(&self, topic: &str, vgroup_id: i32, offset: i64) {
        self.with(topic, vgroup_id, |v| v.resume = Some(offset));
    }

    /// WAL versions after the committed offset, per (topic, vgroup): `end - committed`, where
    /// `committed` is this run's commit (else where the group resumes). Vgroups with no end or no
    /// commit known yet have no lag.
    pub fn lag(&self, committed: &BTreeMap<(String, i32), i64>) -> BTreeMap<(String, i32), i64> {
        let map = self.0.lock().expect("wal ends lock");
        map.iter()
            .filter_map(|(key, v)| {
                let base = committed.get(key).copied().or(v.resume)?;
                Some((key.clone(), (v.end? - base).max(0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_end_minus_the_commit_else_the_resume_point() {
        let ends = WalEnds::default();
        let mut committed = BTreeMap::new();
        assert!(ends.lag(&committed).is_empty());
        ends.saw_position("t", 2, 7);
        assert!(
            ends.lag(&committed).is_empty(),
            "no commit and no resume point: unknown"
        );
        ends.set_resume("t", 2, 3);
        assert_eq!(ends.lag(&committed), BTreeMap::from([(("t".into(), 2), 4)]));
        committed.insert(("t".to_string(), 2), 6);
        assert_eq!(
            ends.lag(&committed)[&("t".into(), 2)],
            1,
            "this run's commit wins"
        );
        // Positions only raise the end; assignment replaces it.
        ends.saw_position("t", 2, 5);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 1);
        ends.set_end("t", 2, 10);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 4);
        ends.set_end("t", 2, 4);
        assert_eq!(ends.lag(&committed)[&("t".into(), 2)], 0, "never negative");
        committed.insert(("t".to_string(), 9), 1);
        assert_eq!(
            ends.lag(&committed).len(),
            1,
            "a commit without an end has no lag"
        );
    }
}
