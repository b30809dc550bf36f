//! `simulator tdengine` serves the stand-in until SIGTERM, and rejects a version the client cannot parse.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use taos::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdengine_subcommand_serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args([
            "tdengine",
            "--listen",
            "127.0.0.1:0",
            "--server-version",
            "3.3.1.0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first stdout line names the bound address.
    let line = support::first_stdout_line(&mut child, Duration::from_secs(30));
    let addr = line.trim().rsplit("ws://").next().unwrap().to_string();
    let taos = TaosBuilder::from_dsn(format!("ws://root:taosdata@{addr}"))
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(taos.server_version().await.unwrap(), "3.3.1.0");
    taos.exec("create database cli").await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "simulator did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn bad_server_version_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args([
            "tdengine",
            "--listen",
            "127.0.0.1:0",
            "--server-version",
            "3.3.0.0-community",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server version"), "{err}");
}
