//! The consumer groups' commit positions sampled while a scenario runs, for the report's "committed" line.
//! The stand-in is asked directly (the official client's view comes at the end, through `show
//! subscriptions`); an external TDengine is not sampled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use simulator::tdengine::tmq::Tmq;

use crate::recorder::now_us;
use crate::trace::CommitSample;

/// How often the positions are read.
const EVERY: Duration = Duration::from_millis(20);

/// (group, topic, vgroup, position) as the stand-in lists them.
type Offsets = [(String, String, i32, i64)];

/// The positions of `groups` per (topic, vgroup): the lowest over the groups (what all of them committed).
/// Unset offsets (negative) are left out.
pub fn positions(offsets: &Offsets, groups: &[String]) -> BTreeMap<(String, i32), i64> {
    let mut out: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (g, topic, vgroup, pos) in offsets {
        if *pos < 0 || !groups.contains(g) {
            continue;
        }
        out.entry((topic.clone(), *vgroup))
            .and_modify(|p| *p = (*p).min(*pos))
            .or_insert(*pos);
    }
    out
}

/// A background task keeping one sample per change of the positions.
pub struct CommitSampler {
    tmq: Arc<Tmq>,
    groups: Vec<String>,
    samples: Arc<Mutex<Vec<CommitSample>>>,
    task: tokio::task::JoinHandle<()>,
}

fn sample(tmq: &Tmq, groups: &[String], samples: &Mutex<Vec<CommitSample>>) {
    let now = positions(&tmq.committed_offsets(), groups);
    let mut s = samples.lock();
    if s.last().is_none_or(|l| l.positions != now) {
        s.push(CommitSample {
            at_us: now_us(),
            positions: now,
        });
    }
}

impl CommitSampler {
    pub fn start(tmq: Arc<Tmq>, groups: Vec<String>) -> CommitSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (tmq, groups, samples) = (tmq.clone(), groups.clone(), samples.clone());
            tokio::spawn(async move {
                loop {
                    sample(&tmq, &groups, &samples);
                    tokio::time::sleep(EVERY).await;
                }
            })
        };
        CommitSampler {
            tmq,
            groups,
            samples,
            task,
        }
    }

    /// Stops sampling after one last sample (the commits of the bridges' graceful stop).
    pub fn stop(self) -> Vec<CommitSample> {
        self.task.abort();
        sample(&self.tmq, &self.groups, &self.samples);
        std::mem::take(&mut *self.samples.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_the_lowest_over_the_scenarios_groups() {
        let o = |g: &str, v: i32, p: i64| (g.to_string(), "t".to_string(), v, p);
        let offsets = [
            o("a", 2, 10),
            o("b", 2, 7),
            o("other", 2, 1),
            o("a", 3, -2147467247),
            o("a", 4, 5),
        ];
        let p = positions(&offsets, &["a".into(), "b".into()]);
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            [(("t".to_string(), 2), 7), (("t".to_string(), 4), 5)]
        );
    }
}
