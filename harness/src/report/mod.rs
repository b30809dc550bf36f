//! Reports: the human summary table and failure details (with seed and replay command), JSON and JUnit XML;
//! the HTML report with pictures is in [`html`] (charts in [`charts`]).

pub mod charts;
pub mod html;

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::verdict::Verdict;

/// One scenario's result: a verdict, an error that kept it from running at all, or a skip because the
/// machine lacks a program the scenario's world needs.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub file: String,
    pub seed: u64,
    pub elapsed_ms: u64,
    /// Set when the world could not be built or the run broke down (no verdict then).
    pub error: Option<String>,
    /// Set when the scenario was not run because the machine lacks what its world needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skip>,
    pub verdict: Option<Verdict>,
    pub replay: String,
}

/// Why a scenario was not run: a program its world needs is not installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// What `--require` names to turn this skip into a failure (`mosquitto`).
    pub needs: String,
    /// What is missing.
    pub reason: String,
    /// The one command that installs it.
    pub install: String,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (install: {})", self.reason, self.install)
    }
}

/// How a scenario ended, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

impl Outcome {
    /// Ran and passed. A skipped scenario did not pass: tests that run one scenario fail on a skip.
    pub fn passed(&self) -> bool {
        self.skipped.is_none() && self.error.is_none() && self.verdict.as_ref().is_some_and(|v| v.passed)
    }

    pub fn status(&self) -> Status {
        match (&self.skipped, self.passed()) {
            (Some(_), _) => Status::Skipped,
            (None, true) => Status::Passed,
            (None, false) => Status::Failed,
        }
    }

    /// Turns a skip for something in `required` into a failure (`--require mosquitto`).
    pub fn require(&mut self, required: &[String]) {
        if let Some(skip) = self.skipped.take_if(|s| required.contains(&s.needs)) {
            self.error = Some(format!("required {} is missing: {skip}", skip.needs));
        }
    }
}

/// Whether a run with these outcomes succeeded: nothing failed (skips do not fail a run).
pub fn run_succeeded(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.status() != Status::Failed)
}

/// A verdict's row counts summed over its subscribers, as the summary tables show them.
pub struct Totals {
    pub expected: usize,
    pub distinct: usize,
    pub dups: u64,
    pub lost: usize,
}

impl Totals {
    pub fn of(v: &crate::verdict::Verdict) -> Totals {
        Totals {
            expected: v.subscribers.iter().map(|s| s.expected).sum(),
            distinct: v.subscribers.iter().map(|s| s.distinct).sum(),
            dups: v.subscribers.iter().map(|s| s.duplicates).sum(),
            lost: v.losses.values().map(Vec::len).sum(),
        }
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
        if o.skipped.is_some() {
            let _ = writeln!(
                out,
                "{:<w$}  {:<6}  {:>9}  {:>5}  {:>5}  {:>8}  {:>8}  {:>9}  {:>7}",
                o.scenario, "skip", "-", "-", "-", "-", "-", "-", "-"
            );
            continue;
        }
        match &o.verdict {
            Some(v) => {
                let Totals {
                    expected,
                    distinct,
                    dups,
                    lost,
                } = Totals::of(v);
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
    let mut installs: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.skipped.as_ref().map(|s| s.install.as_str()))
        .collect();
    installs.sort_unstable();
    installs.dedup();
    for install in installs {
        let _ = writeln!(
            out,
            "skipped for lack of a program: `{install}` installs it (`--require NAME` makes a skip fail)"
        );
    }
    let _ = writeln!(out, "{}", counts(outcomes));
    out
}

/// `N scenario(s): P passed, F failed, S skipped`.
pub fn counts<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> String {
    let (mut n, mut passed, mut failed, mut skipped) = (0, 0, 0, 0);
    for o in outcomes {
        n += 1;
        match o.status() {
            Status::Passed => passed += 1,
            Status::Failed => failed += 1,
            Status::Skipped => skipped += 1,
        }
    }
    format!("{n} scenario(s): {passed} passed, {failed} failed, {skipped} skipped")
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
        match o.status() {
            Status::Passed => "passed",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    );
    if let Some(skip) = &o.skipped {
        let _ = writeln!(out, "  skipped: {skip}");
        return out;
    }
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
        match v.ending {
            crate::recorder::Ending::Deadline => {
                let _ = writeln!(out, "  ended at the deadline, not at quiescence");
            }
            crate::recorder::Ending::Accounted => {
                let _ = writeln!(
                    out,
                    "  ended once every missing row was the broker's loss and nothing moved"
                );
            }
            crate::recorder::Ending::Quiescent => {}
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
        } else if let Some(skip) = &o.skipped {
            let mut s = TestCaseStatus::skipped();
            s.set_message(skip.to_string());
            s
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
            skipped: None,
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
        assert!(s.contains("0 passed, 1 failed, 0 skipped"));
    }

    fn skipped(name: &str) -> Outcome {
        let mut o = outcome(name, None);
        o.skipped = Some(Skip {
            needs: "mosquitto".into(),
            reason: "`mosquitto` not found".into(),
            install: "apt-get install mosquitto".into(),
        });
        o
    }

    #[test]
    fn a_skip_names_its_install_command_and_fails_only_when_required() {
        let outcomes = [outcome("a", None), skipped("m")];
        assert!(!outcomes[0].passed(), "no verdict: failed");
        let ok = [skipped("m"), skipped("n")];
        assert!(run_succeeded(&ok));
        let s = summary(&ok);
        assert!(s.contains("2 scenario(s): 0 passed, 0 failed, 2 skipped"), "{s}");
        assert_eq!(
            s.matches("`apt-get install mosquitto` installs it").count(),
            1,
            "{s}"
        );
        assert!(
            details(&ok[0]).contains("skipped: `mosquitto` not found (install: apt-get install mosquitto)")
        );
        let xml = junit(&ok);
        assert!(xml.contains("<skipped"), "{xml}");

        let mut required = skipped("m");
        required.require(&["other".into()]);
        assert_eq!(required.status(), Status::Skipped);
        required.require(&["mosquitto".into()]);
        assert_eq!(required.status(), Status::Failed);
        assert!(!run_succeeded(&[required.clone()]));
        assert!(required.error.unwrap().contains("apt-get install mosquitto"));
    }

    #[test]
    fn junit_has_one_case_per_scenario() {
        let xml = junit(&[outcome("a", None), outcome("b", Some("boom"))]);
        assert!(xml.contains("testcase name=\"a\""), "{xml}");
        assert!(xml.contains("boom"), "{xml}");
        assert!(xml.contains("tests=\"2\""), "{xml}");
    }
}
