//! What an exploration leaves behind: each failing run as an ordinary scenario file that `harness run` replays,
//! the summary (runs, failures by invariant, time) and its JSON form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::scenario::{self, Scenario};

use super::invariants::Invariant;

/// Serialises `s` as scenario TOML (with a comment header) and checks that it reads back identically.
pub fn to_toml(s: &Scenario, header: &str) -> Result<String, String> {
    let body = toml::to_string(s).map_err(|e| format!("{}: cannot serialise: {e}", s.name))?;
    let mut text = String::new();
    for line in header.lines() {
        let _ = writeln!(text, "# {line}");
    }
    text.push_str(&body);
    let back = scenario::parse(Path::new(&format!("{}.toml", s.name)), &text)
        .map_err(|e| format!("{}: the written scenario does not read back: {e}", s.name))?;
    if &back != s {
        return Err(format!("{}: the written scenario reads back differently", s.name));
    }
    Ok(text)
}

/// Writes `DIR/NAME.toml` and returns its path.
pub fn write(dir: &Path, s: &Scenario, header: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.toml", s.name));
    std::fs::write(&path, to_toml(s, header)?).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// One run that broke an invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub run: u64,
    pub name: String,
    pub invariants: Vec<Invariant>,
    /// Whom each is attributed to (`bridge`, `broker`, `harness`).
    pub blame: Vec<&'static str>,
    /// The verdict's failure lines of the shrunk run (or the original's when nothing shrank).
    pub failures: Vec<String>,
    /// The shrunk scenario file (absent when it could not be written).
    pub file: Option<String>,
    pub replay: String,
    /// Shrinking: runs spent, and faults/bridges/subscribers/rows before → after.
    pub shrink_runs: u32,
    pub shrunk_from: String,
    pub shrunk_to: String,
}

/// The whole exploration.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub runs: u64,
    pub passed: u64,
    pub failed: u64,
    /// Runs that broke each invariant (one run may break several).
    pub by_invariant: BTreeMap<String, u64>,
    pub by_blame: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Generated runs, by what they contained (fault kinds, broker, QoS): what was covered.
    pub coverage: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
}

impl Summary {
    pub fn new(seed: u64) -> Summary {
        Summary {
            seed,
            runs: 0,
            passed: 0,
            failed: 0,
            by_invariant: BTreeMap::new(),
            by_blame: BTreeMap::new(),
            elapsed_s: 0.0,
            coverage: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// Counts what a generated run covered.
    pub fn cover(&mut self, s: &Scenario) {
        let mut keys = vec![
            format!("broker:{}", s.world.broker.label()),
            format!("bridges:{}", s.bridges.len()),
        ];
        if let Some(b) = s.bridges.first() {
            if let Ok(t) = b.target() {
                keys.push(format!("qos:{}", t.qos));
                keys.push(format!("version:{}", t.version.as_str()));
            }
            if b.source().is_ok_and(|d| d.with_meta) {
                keys.push("topic:with-meta".into());
            }
        }
        for f in &s.faults {
            keys.push(format!("fault:{}", fault_name(f.action)));
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            *self.coverage.entry(k).or_default() += 1;
        }
    }

    pub fn record(&mut self, failure: Option<Failure>) {
        self.runs += 1;
        let Some(f) = failure else {
            self.passed += 1;
            return;
        };
        self.failed += 1;
        for i in &f.invariants {
            *self.by_invariant.entry(i.name().to_string()).or_default() += 1;
        }
        let mut blame = f.blame.clone();
        blame.sort();
        blame.dedup();
        for b in blame {
            *self.by_blame.entry(b.to_string()).or_default() += 1;
        }
        self.failures.push(f);
    }

    /// The text printed at the end.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "explore --seed {}: {} run(s), {} passed, {} failed, {:.0}s",
            self.seed, self.runs, self.passed, self.failed, self.elapsed_s
        );
        if !self.by_invariant.is_empty() {
            let by: Vec<String> = self
                .by_invariant
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(out, "  failures by invariant: {}", by.join(", "));
            let by: Vec<String> = self.by_blame.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "  attributed to: {}", by.join(", "));
        }
        for f in &self.failures {
            let inv: Vec<&str> = f.invariants.iter().map(|i| i.name()).collect();
            let _ = writeln!(
                out,
                "  ✗ run {} [{}] shrunk {} → {}: {}",
                f.run,
                inv.join(", "),
                f.shrunk_from,
                f.shrunk_to,
                f.file.as_deref().unwrap_or("(not written)")
            );
            if let Some(first) = f.failures.first() {
                let _ = writeln!(out, "      {first}");
            }
            let _ = writeln!(out, "      replay: {}", f.replay);
        }
        out
    }
}

/// A fault's name as scenario files spell it.
pub fn fault_name(a: scenario::FaultAction) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `faults/bridges/subscribers/rows` of a scenario, for the shrink line.
pub fn shape(s: &Scenario) -> String {
    format!(
        "{}f/{}b/{}s/{}r",
        s.faults.len(),
        s.bridges.len(),
        s.subscribers.len(),
        s.data.rows
    )
}

#[cfg(test)]
mod tests {
    use super::super::generate::{generate, GenOptions};
    use super::*;

    #[test]
    fn generated_scenarios_round_trip_through_toml() {
        let opts = GenOptions {
            mosquitto: true,
            bridge_params: vec![("commit".into(), "before-ack".into())],
        };
        for n in 0..200 {
            let s = generate(11, n, &opts);
            let text = to_toml(&s, "a header\nreplay: x").unwrap_or_else(|e| panic!("{e}"));
            assert!(text.starts_with("# a header\n# replay: x\n"), "{text}");
        }
    }
}
