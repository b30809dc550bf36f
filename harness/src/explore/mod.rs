//! `harness explore`: random scenarios from a seed (fault schedules nobody wrote down), each run on the
//! embedded world and judged by the ordinary verdict against the delivery contract; every failing run is
//! shrunk and written as a scenario file that `harness run` replays.
//!
//! - [`generate`]: run `n` of seed `S` → a valid [`Scenario`] with the contract's expectations;
//! - [`invariants`]: which promise a failed verdict broke, and whom it is attributed to;
//! - [`shrink`]: smaller variants that still break the same invariant;
//! - [`output`]: scenario files (round-tripped through the model), the summary and its JSON.

pub mod generate;
pub mod invariants;
pub mod output;
pub mod shrink;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::report::{replay_command, Outcome};
use crate::runner::{self, RunOptions};
use crate::scenario::Scenario;
use generate::GenOptions;
use invariants::Invariant;
use output::{Failure, Summary};

/// What to explore.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    pub seed: u64,
    /// Stop after this many runs …
    pub runs: Option<u64>,
    /// … or after this long (runs under way finish).
    pub duration: Option<Duration>,
    /// Where failing runs are written.
    pub out: PathBuf,
    /// Runs at once.
    pub jobs: usize,
    pub gen: GenOptions,
    /// Runs spent shrinking one failure at most.
    pub shrink_runs: u32,
    /// Start no new run after this many failures.
    pub max_failures: Option<u64>,
}

/// What the caller hears while exploring.
pub enum Event<'a> {
    /// A run finished (with its failure, shrunk and written, if it failed).
    Finished { run: u64, failure: Option<&'a Failure> },
    /// A shrinking step.
    Shrinking { run: u64, note: String },
}

/// One run of one scenario: its outcome and the invariants it broke.
pub async fn judge_run(s: &Scenario, file: &str) -> (Outcome, Vec<Invariant>) {
    let result = runner::run(s, file, &RunOptions::default()).await;
    let broken = invariants::violated(s, &result.outcome);
    (result.outcome, broken)
}

/// Explores and returns the summary.
pub async fn explore(opts: &ExploreOptions, on: &(dyn Fn(Event) + Sync)) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::new(opts.seed);
    let end = opts.duration.map(|d| started + d);
    let limit = opts.runs.unwrap_or(if end.is_some() { u64::MAX } else { 100 });
    let failed = AtomicU64::new(0);
    let failed = &failed;
    let runs = futures_util::stream::iter(0..limit)
        .take_while(|_| {
            std::future::ready(
                end.is_none_or(|e| Instant::now() < e)
                    && opts
                        .max_failures
                        .is_none_or(|m| failed.load(Ordering::Relaxed) < m),
            )
        })
        .map(|n| async move {
            let s = generate::generate(opts.seed, n, &opts.gen);
            let failure = explore_one(opts, n, s.clone(), on).await;
            (s, n, failure)
        })
        .buffer_unordered(opts.jobs.max(1));
    futures_util::pin_mut!(runs);
    while let Some((s, n, failure)) = runs.next().await {
        summary.cover(&s);
        if failure.is_some() {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        on(Event::Finished {
            run: n,
            failure: failure.as_ref(),
        });
        summary.record(failure);
    }
    summary.failures.sort_by_key(|f| f.run);
    summary.elapsed_s = started.elapsed().as_secs_f64();
    summary
}

/// Runs one generated scenario; on failure shrinks it and writes the smallest failing one.
async fn explore_one(
    opts: &ExploreOptions,
    n: u64,
    s: Scenario,
    on: &(dyn Fn(Event) + Sync),
) -> Option<Failure> {
    let file = opts.out.join(format!("{}.toml", s.name)).display().to_string();
    let (outcome, broken) = judge_run(&s, &file).await;
    if broken.is_empty() {
        return None;
    }
    let primary = broken
        .iter()
        .copied()
        .find(|i| *i != Invariant::Harness)
        .unwrap_or(broken[0]);
    let mut best = (s.clone(), outcome, broken);
    let mut spent = 0;
    if primary != Invariant::Harness {
        'shrink: loop {
            for c in shrink::candidates(&best.0) {
                if spent >= opts.shrink_runs {
                    break 'shrink;
                }
                spent += 1;
                let (o, b) = judge_run(&c, &file).await;
                let kept = b.contains(&primary);
                on(Event::Shrinking {
                    run: n,
                    note: format!(
                        "{} → {}: {}",
                        output::shape(&best.0),
                        output::shape(&c),
                        if kept { "still fails" } else { "passes" }
                    ),
                });
                if kept {
                    best = (c, o, b);
                    continue 'shrink;
                }
            }
            break;
        }
    }
    let (small, outcome, broken) = best;
    let blame: Vec<&'static str> = broken.iter().map(|i| i.blame()).collect();
    let names: Vec<&str> = broken.iter().map(|i| i.name()).collect();
    let replay = replay_command(&file, small.seed);
    let header = format!(
        "harness explore --seed {} (run {n}) broke: {} (attributed to: {})\nshrunk from {} to {} in {spent} run(s)\nreplay: {replay}",
        opts.seed,
        names.join(", "),
        blame.join(", "),
        output::shape(&s),
        output::shape(&small),
    );
    let written = output::write(&opts.out, &small, &header);
    let mut failures = outcome
        .verdict
        .as_ref()
        .map(|v| v.failures.clone())
        .unwrap_or_default();
    failures.extend(outcome.error.clone());
    if let Err(e) = &written {
        failures.push(e.clone());
    }
    Some(Failure {
        run: n,
        name: small.name.clone(),
        invariants: broken,
        blame,
        failures,
        file: written.ok().map(|p| p.display().to_string()),
        replay,
        shrink_runs: spent,
        shrunk_from: output::shape(&s),
        shrunk_to: output::shape(&small),
    })
}
