//! The official Python client, `taos-ws-py` 0.7.0 (the newer client generation, built on taos-ws from
//! GitHub main), against the stand-in at a current release and at one before 3.3.2.0: SQL of every type,
//! TMQ data of every type (NULL, NCHAR, JSON tags), meta messages of a `WITH META` topic, commit, seek,
//! position, committed, assignment and two consumers splitting vgroups. The checks are in
//! `tests/python/test_tmq.py`; the client decodes everything itself, so nothing here trusts our encoders.
//!
//! At 3.3.6.0 the client fetches each data message with one `fetch_raw_data` (TDengine's raw response
//! format); at 3.3.0.0 block by block with `fetch` + `fetch_block`. The test asserts which path was taken.
//!
//! The interpreter is `$TMQ2MQTT_PYTHON` or the repository's `.venv-py/bin/python`, made by `ci/setup.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use simulator::tdengine::{TdConfig, TdServer};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TMQ2MQTT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-py/bin/python");
    assert!(
        venv.exists(),
        "the Python client is not installed: run ci/setup.sh (creates .venv-py with taos-ws-py==0.7.0) \
         or set TMQ2MQTT_PYTHON to an interpreter that has it"
    );
    venv
}

/// Runs the Python suite against a fresh stand-in reporting `version`; returns the fetch counts
/// (`fetch`, `fetch_block`, `fetch_raw_data`, `fetch_raw`).
async fn run_suite(version: &str) -> (u64, u64, u64, u64) {
    let python = python();
    let server = TdServer::start(TdConfig::with_version(version))
        .await
        .expect("start");
    let port = server.addr().port().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_tmq.py");
    let version_arg = version.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .arg(&port)
            .arg(&version_arg)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()))
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Python client suite failed at server version {version} ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("all passed at server version {version}")),
        "{stdout}"
    );
    let counts = server.tmq().fetch_counts().snapshot();
    server.shutdown().await;
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_at_a_current_release_fetches_whole_messages_raw() {
    let (fetch, fetch_block, fetch_raw_data, _) = run_suite("3.3.6.0").await;
    assert!(fetch_raw_data > 0, "no fetch_raw_data at 3.3.6.0");
    assert_eq!((fetch, fetch_block), (0, 0), "block-wise fetches at 3.3.6.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_before_3_3_2_fetches_block_by_block() {
    let (fetch, fetch_block, fetch_raw_data, _) = run_suite("3.3.0.0").await;
    assert_eq!(fetch_raw_data, 0, "fetch_raw_data below 3.3.2.0");
    assert!(fetch > 0 && fetch_block > 0, "{fetch} {fetch_block}");
}
