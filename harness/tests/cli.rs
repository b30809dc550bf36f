//! The `harness` binary's cheap commands: `list`, and `check` naming file, line and key of a mistake.

use std::process::Command;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

#[test]
fn list_shows_every_scenario_with_its_description() {
    let out = harness().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("seed-example"), "{text}");
    assert!(text.contains("cut-mid-qos1"), "{text}");
    assert!(text.lines().count() >= 15, "{text}");
}

#[test]
fn check_names_file_line_and_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[bridges]]\nname = \"b\"\nfrom = \"tmq+ws://h/t?group.id=g\"\nto = \"mqtt://h?topic=m&qos=1&version=3.1.1&client_id=c\"\n\
         [[subscribers]]\nname = \"s\"\nfilter = \"m/#/x\"\n",
    )
    .unwrap();
    let out = harness().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bad.toml:7: subscribers[0].filter:"), "{text}");

    let out = harness().args(["check", "no-such-scenario"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario \"no-such-scenario\""));
}
