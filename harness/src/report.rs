//! Reports: the human summary table and failure details (with seed and replay command), JSON and JUnit XML.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::verdict::Verdict;

/// One scenario's result: a verdict, or an error that kept it from running at all.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub file: String,
    pub seed: u64,
    pub elapsed_ms: u64,
    /// Set when the world could not be built or the run broke down (no verdict then).
    pub error: Option<String>,
    pub verdict: Option<Verdict>,
    pub replay: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.verdict.as_ref().is_some_and(|v| v.passed)
    }
}

/// The command that replays one scenario with one seed.
pub fn replay_command(file: &str, seed: u64) -> String {
    format!("cargo run -p harness -- run {file} --seed {seed}")
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

/// The summary table printed after a run.
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let w = outcomes
        .iter()
        .map(|o| o.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:<w$}  {:<6}  {:>9}  {:>5}  {:>5}  {:>8}  {:>8}  {:>9}  {:>7}",
        "scenario", "result", "rows", "dups", "lost", "p50 ms", "p99 ms", "msg/s", "time"
    );
    for o in outcomes {
        let result = if o.passed() { "pass" } else { "FAIL" };
        match &o.verdict {
            Some(v) => {
                let expected: usize = v.subscribers.iter().map(|s| s.expected).sum();
                let distinct: usize = v.subscribers.iter().map(|s| s.distinct).sum();
                let dups: u64 = v.subscribers.iter().map(|s| s.duplicates).sum();
                let lost: usize = v.losses.values().map(Vec::len).sum();
                let _ = writeln!(
                    out,
                    "{:<w$}  {:<6}  {:>9}  {:>5}  {:>5}  {:>8}  {:>8}  {:>9}  {:>7}",
                    o.scenario,
                    result,
                    format!("{distinct}/{expected}"),
                    dups,
                    lost,
                    fmt_ms(v.latency.map(|l| l.p50_ms)),
                    fmt_ms(v.latency.map(|l| l.p99_ms)),
                    v.throughput_msg_s
                        .map(|t| format!("{t:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    format!("{:.1}s", o.elapsed_ms as f64 / 1000.0),
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<w$}  {:<6}  {:>9}  {:>5}  {:>5}  {:>8}  {:>8}  {:>9}  {:>7}",
                    o.scenario,
                    "ERROR",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    format!("{:.1}s", o.elapsed_ms as f64 / 1000.0)
                );
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let _ = writeln!(
        out,
        "{} scenario(s): {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    out
}

/// Details of one outcome: failures, deviations, wire summary, and how to replay it.
pub fn details(o: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "── {} ({}) seed {}: {}",
        o.scenario,
        o.file,
        o.seed,
        if o.passed() { "passed" } else { "FAILED" }
    );
    if let Some(e) = &o.error {
        let _ = writeln!(out, "  error: {e}");
    }
    if let Some(v) = &o.verdict {
        for f in &v.failures {
            let _ = writeln!(out, "  ✗ {f}");
        }
        for d in &v.deviations {
            let _ = writeln!(out, "  ! {d}");
        }
        if v.ending == crate::recorder::Ending::Deadline {
            let _ = writeln!(out, "  ended at the deadline, not at quiescence");
        }
        for w in &v.wire {
            let _ = writeln!(
                out,
                "  wire {}: {} connection(s), {} PUBLISH ({} QoS 0), {} PUBACK, {} PUBCOMP, {} retransmit(s), {} dropped by faults",
                w.bridge, w.connections, w.publishes, w.qos0, w.puback, w.pubcomp, w.retransmits, w.dropped_by_fault
            );
        }
        for s in &v.subscribers {
            let _ = writeln!(
                out,
                "  subscriber {}: {}/{} rows, {} received, {} duplicate(s), {} missing",
                s.name,
                s.distinct,
                s.expected,
                s.received,
                s.duplicates,
                s.missing.len()
            );
        }
        if v.skipped_by_template > 0 {
            let _ = writeln!(
                out,
                "  {} row(s) skipped by the topic template (as taosx)",
                v.skipped_by_template
            );
        }
    }
    if !o.passed() {
        let _ = writeln!(out, "  replay: {}", o.replay);
    }
    out
}

/// JSON of every outcome.
pub fn json(outcomes: &[Outcome]) -> String {
    serde_json::to_string_pretty(outcomes).expect("outcomes serialize")
}

/// JUnit XML: one test case per scenario.
pub fn junit(outcomes: &[Outcome]) -> String {
    let mut suite = TestSuite::new("scenarios");
    for o in outcomes {
        let status = if o.passed() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(if o.error.is_some() {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            });
            let message = o
                .error
                .clone()
                .or_else(|| o.verdict.as_ref().and_then(|v| v.failures.first().cloned()))
                .unwrap_or_default();
            s.set_message(message);
            s.set_description(details(o));
            s
        };
        let mut case = TestCase::new(o.scenario.clone(), status);
        case.set_time(Duration::from_millis(o.elapsed_ms));
        case.set_classname(o.file.clone());
        suite.add_test_case(case);
    }
    let mut report = Report::new("harness");
    report.add_test_suite(suite);
    report.to_string().expect("junit serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, error: Option<&str>) -> Outcome {
        Outcome {
            scenario: name.into(),
            file: format!("scenarios/{name}.toml"),
            seed: 42,
            elapsed_ms: 1500,
            error: error.map(str::to_string),
            verdict: None,
            replay: replay_command(&format!("scenarios/{name}.toml"), 42),
        }
    }

    #[test]
    fn failures_show_seed_and_replay_command() {
        let o = outcome("cut", Some("stand-in did not start"));
        let d = details(&o);
        assert!(d.contains("seed 42"), "{d}");
        assert!(
            d.contains("replay: cargo run -p harness -- run scenarios/cut.toml --seed 42"),
            "{d}"
        );
        let s = summary(&[o]);
        assert!(s.contains("ERROR"));
        assert!(s.contains("0 passed, 1 failed"));
    }

    #[test]
    fn junit_has_one_case_per_scenario() {
        let xml = junit(&[outcome("a", None), outcome("b", Some("boom"))]);
        assert!(xml.contains("testcase name=\"a\""), "{xml}");
        assert!(xml.contains("boom"), "{xml}");
        assert!(xml.contains("tests=\"2\""), "{xml}");
    }
}
