//! WAL gaps made loud. TDengine keeps a vgroup's WAL for the database's `WAL_RETENTION_PERIOD`; a group
//! that resumes from a committed offset older than the oldest version still kept silently continues at
//! that oldest version (TDengine moves it forward), and whatever was trimmed in between is never
//! delivered. The source compares where each assigned vgroup resumes (the group's commit, else where
//! `auto.offset.reset` starts) with the begin of its log (`assignment`) and reports a [`WalGap`]; the
//! bridge logs one warning, counts `tmq2mqtt_wal_gap_versions_total{topic,vgroup}` and, with
//! `status_topic`, publishes an event on `<status_topic>/events`.

use std::sync::Arc;

/// WAL versions a group skipped because they were trimmed before it read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalGap {
    pub topic: Arc<str>,
    pub vgroup_id: i32,
    /// The first lost version: where the group would have resumed.
    pub first: i64,
    /// The last lost version: the log's begin - 1.
    pub last: i64,
}

impl WalGap {
    /// The gap between where a group resumes (`resume`, a WAL version; negative = unknown) and the begin
    /// of the vgroup's log, if the log begins later.
    pub fn between(topic: &Arc<str>, vgroup_id: i32, resume: i64, begin: i64) -> Option<WalGap> {
        (resume >= 0 && resume < begin).then(|| WalGap {
            topic: topic.clone(),
            vgroup_id,
            first: resume,
            last: begin - 1,
        })
    }

    /// How many versions were lost.
    pub fn versions(&self) -> u64 {
        (self.last - self.first + 1) as u64
    }

    /// The status event (`<status_topic>/events`, not retained):
    /// `{"event":"wal_gap","topic":…,"vgroup_id":…,"first":…,"last":…,"versions":…}`.
    pub fn event_json(&self) -> String {
        serde_json::json!({
            "event": "wal_gap",
            "topic": &*self.topic,
            "vgroup_id": self.vgroup_id,
            "first": self.first,
            "last": self.last,
            "versions": self.versions(),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_the_range_between_the_resume_point_and_the_logs_begin() {
        let t: Arc<str> = "t".into();
        assert_eq!(WalGap::between(&t, 2, 10, 10), None);
        assert_eq!(WalGap::between(&t, 2, 12, 10), None);
        assert_eq!(
            WalGap::between(&t, 2, -1, 10),
            None,
            "not positioned: nothing to compare"
        );
        let g = WalGap::between(&t, 2, 4, 10).unwrap();
        assert_eq!((g.first, g.last, g.versions()), (4, 9, 6));
        let v: serde_json::Value = serde_json::from_str(&g.event_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event":"wal_gap","topic":"t","vgroup_id":2,"first":4,"last":9,"versions":6})
        );
    }
}
