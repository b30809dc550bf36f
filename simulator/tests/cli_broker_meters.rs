//! The `simulator broker` and `simulator meters` commands as a user runs them.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use simulator::broker::{handshake, Credentials, MqttVersion};
use simulator::meters::verify::{diff, select_rows};
use simulator::meters::WriteLog;
use simulator::tdengine::{TdConfig, TdServer};
use taos::{AsyncTBuilder, TaosBuilder};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(60);

fn simulator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
}

/// Runs the command to completion off the async runtime.
async fn output(mut command: Command) -> std::process::Output {
    timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || command.output().unwrap()),
    )
    .await
    .expect("command finished")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_writes_the_rows_its_write_log_file_lists() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write_log_path = dir.path().join("write_log.ndjson");
    let mut command = simulator();
    command.args(["meters", "--dsn", &server.dsn(), "--db", "fleet", "--create"]);
    command.args(["--meters", "4", "--rows", "400", "--batch", "50", "--seed", "9"]);
    command.args(["--start-ms", "1700000000000", "--chaos"]);
    command.arg("--write-log").arg(&write_log_path);
    let out = output(command).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("wrote 400 rows"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("taosdata"), "password printed: {stderr}");

    let file = BufReader::new(std::fs::File::open(&write_log_path).unwrap());
    let write_log = WriteLog::from_ndjson("fleet", file).unwrap();
    assert_eq!(write_log.rows_written(), 400);
    let taos = TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap();
    let actual = select_rows(&taos, "fleet").await.unwrap();
    assert_eq!(diff(&write_log.expected_rows(), &actual), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_reports_rejected_rows_with_exit_code_3() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let mut command = simulator();
    // No --create: the database does not exist, every statement is rejected.
    command.args(["meters", "--dsn", &server.dsn(), "--meters", "2", "--rows", "3"]);
    command.args(["--batch", "10", "--no-progress"]);
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("TDengine rejected 3 rows"), "{stderr}");
    assert_eq!(stderr.matches("rejected row").count(), 3, "{stderr}");
}

#[tokio::test]
async fn meters_bad_input_is_one_clear_line() {
    let mut command = simulator();
    command.args(["meters", "--nulls", "1.5"]);
    let out = output(command).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .unwrap()
            .contains("`1.5` is not a probability"),
        "{stderr}"
    );

    let mut command = simulator();
    command.args(["meters", "--rows", "1", "--duration", "1s"]);
    let out = output(command).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_serves_with_authentication_until_sigterm() {
    let mut child = simulator()
        .args(["broker", "--listen", "127.0.0.1:0", "--listen-v5", "127.0.0.1:0"])
        .args(["--user", "meter", "--password", "pw-123"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 || line.starts_with("broker ready") {
                return (lines, stdout);
            }
            lines.push(line.trim_end().to_string());
        }
    });
    let (lines, mut stdout) = timeout(DEADLINE, lines).await.unwrap().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("pw-123")),
        "password printed: {lines:?}"
    );
    let creds = Credentials {
        username: "meter".into(),
        password: "pw-123".into(),
    };
    for (line, version) in lines.iter().zip([MqttVersion::V311, MqttVersion::V5]) {
        let addr: SocketAddr = line
            .split("mqtt://meter:***@")
            .nth(1)
            .and_then(|rest| rest.split('?').next())
            .unwrap_or_else(|| panic!("{line}"))
            .parse()
            .unwrap();
        handshake(version, addr, Some(&creds), Duration::from_secs(5))
            .await
            .unwrap();
        let wrong = Credentials {
            password: "nope".into(),
            ..creds.clone()
        };
        assert!(handshake(version, addr, Some(&wrong), Duration::from_secs(5))
            .await
            .is_err());
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
            child.wait().unwrap()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");
}
