//! The harness catches a broken bridge: with offsets committed before the broker acknowledged (taosx's
//! auto-commit behaviour, the bridge's opt-in `commit=before-ack`), a SIGKILL loses rows and the verdict
//! fails naming them; the same run with the default commit-after-ack loses nothing.

use harness::runner::{self, RunOptions};
use harness::scenario::{self, LossCause};

mod support;

#[test]
fn commit_before_ack_plus_kill_loses_rows_and_the_verdict_names_them() {
    support::ensure_bridge_binary();
    let path = scenario::default_dir().join("broken/before-ack-kill.toml");
    let broken = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(broken.bridges[0].to.contains("commit=before-ack"));
    let rt = tokio::runtime::Runtime::new().unwrap();

    let result = rt.block_on(runner::run(
        &broken,
        "scenarios/broken/before-ack-kill.toml",
        &RunOptions::default(),
    ));
    let o = &result.outcome;
    let v = o
        .verdict
        .as_ref()
        .unwrap_or_else(|| panic!("no verdict: {:?}", o.error));
    assert!(!v.passed, "the broken bridge must fail the verdict");
    let lost: usize = v.losses.values().map(Vec::len).sum();
    assert!(lost > 0, "rows must be reported lost");
    let never = v
        .losses
        .get(&LossCause::NeverPublished)
        .map(Vec::len)
        .unwrap_or(0);
    assert!(
        never > 0,
        "the lost rows were committed but never published: {:?}",
        v.losses.keys()
    );
    let text = v.failures.join("\n");
    assert!(text.contains("never published by the bridge"), "{text}");
    assert!(text.contains("(write log #"), "failures name the rows: {text}");
    assert!(o.replay.contains("--seed 42"), "{}", o.replay);

    // The control: the same faults against the default commit-after-ack bridge lose nothing.
    let mut safe = broken.clone();
    safe.name = "after-ack-kill".into();
    safe.deadline = std::time::Duration::from_secs(60);
    safe.bridges[0].to = safe.bridges[0].to.replace("&commit=before-ack", "");
    let result = rt.block_on(runner::run(
        &safe,
        "scenarios/broken/before-ack-kill.toml",
        &RunOptions::default(),
    ));
    let details = harness::report::details(&result.outcome);
    assert!(
        result.outcome.passed(),
        "commit-after-ack must survive the same kill:\n{details}"
    );
}
