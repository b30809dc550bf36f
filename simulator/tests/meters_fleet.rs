//! The fleet against the stand-in over the network with the official `taos` client: the rows it
//! wrote are exactly what `SELECT` returns, per seed and with chaos; a dropped connection is
//! retried without losing or inventing rows; rejected writes are reported, not dropped.

use std::time::Duration;

use simulator::meters::verify::{check, diff, select_rows};
use simulator::meters::{Chaos, Entry, Fleet, FleetConfig, Outcome, StopAfter};
use simulator::tdengine::{TdConfig, TdServer};
use taos::{AsyncTBuilder, Taos, TaosBuilder};
use tokio::time::{timeout, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

fn config(dsn: String, seed: u64, chaos: Chaos) -> FleetConfig {
    FleetConfig {
        dsn,
        meters: 10,
        vgroups: 3,
        batch: 100,
        seed,
        create: true,
        stop: StopAfter::Rows(3000),
        chaos,
        ..FleetConfig::default()
    }
}

async fn client(server: &TdServer) -> Taos {
    TaosBuilder::from_dsn(server.dsn())
        .unwrap()
        .build()
        .await
        .unwrap()
}

async fn run_and_check(version: &str, seed: u64, chaos: Chaos) -> simulator::meters::verify::TableRows {
    let server = TdServer::start(TdConfig::with_version(version)).await.unwrap();
    let fleet = Fleet::new(config(server.dsn(), seed, chaos)).unwrap();
    let write_log = fleet.write_log();
    let report = timeout(DEADLINE, fleet.run(std::future::pending()))
        .await
        .expect("fleet finished")
        .unwrap();
    assert_eq!(report.rows_rejected, 0, "{report}");
    assert_eq!(report.rows_written, 3000, "{report}");
    let taos = client(&server).await;
    let expected = write_log.lock().expected_rows();
    let actual = select_rows(&taos, "power").await.unwrap();
    assert_eq!(diff(&expected, &actual), Vec::<String>::new(), "seed {seed}");
    select_rows(&taos, "power").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_fleet_rows_are_exactly_what_select_returns() {
    let rows = run_and_check("3.3.0.0", 42, Chaos::default()).await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.values().map(|r| r.len()).sum::<usize>(), 3000);
    // Same seed, same rows (JSON SQL path on one server, binary SQL path on the other).
    let again = run_and_check("3.3.1.0", 42, Chaos::default()).await;
    assert_eq!(rows, again);
    let other = run_and_check("3.3.0.0", 43, Chaos::default()).await;
    assert_ne!(rows, other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_fleet_rows_are_exactly_what_select_returns() {
    for seed in [1, 42] {
        let rows = run_and_check("3.3.0.0", seed, Chaos::all()).await;
        assert_eq!(rows.len(), 10 + 2 - 1, "two meters added, one dropped");
        let live: usize = rows.values().map(|r| r.len()).sum();
        assert!(live < 3000, "updates and deletes shrink the live set: {live}");
        assert!(rows
            .values()
            .flat_map(|r| r.values())
            .any(|r| r.current.is_none()));
        assert!(rows
            .values()
            .flat_map(|r| r.values())
            .any(|r| r.power == Some(None)));
        assert!(rows
            .values()
            .flat_map(|r| r.values())
            .any(|r| matches!(r.power, Some(Some(_)))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_without_losing_rows() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let mut cfg = config(server.dsn(), 5, Chaos::default());
    cfg.stop = StopAfter::Rows(6_000);
    cfg.batch = 50;
    let fleet = Fleet::new(cfg).unwrap();
    let write_log = fleet.write_log();
    let run = tokio::spawn(fleet.run(std::future::pending()));
    // Kick every connection three times while the fleet is writing.
    for kick in 1..=3u64 {
        let deadline = Instant::now() + DEADLINE;
        while write_log.lock().rows_written() < kick * 1500 {
            assert!(Instant::now() < deadline, "fleet stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.drop_connections();
    }
    let report = timeout(DEADLINE, run).await.unwrap().unwrap().unwrap();
    assert!(report.connection_errors >= 1, "{report}");
    assert_eq!(report.rows_written, 6_000, "{report}");
    assert_eq!(report.rows_rejected, 0, "{report}");
    let taos = client(&server).await;
    let expected = write_log.lock().expected_rows();
    let actual = select_rows(&taos, "power").await.unwrap();
    assert_eq!(diff(&expected, &actual), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_writes_are_reported_with_their_rows() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    // No --create and no database: every statement fails.
    let mut cfg = config(server.dsn(), 9, Chaos::default());
    cfg.create = false;
    cfg.stop = StopAfter::Rows(250);
    let fleet = Fleet::new(cfg).unwrap();
    let write_log = fleet.write_log();
    let report = timeout(DEADLINE, fleet.run(std::future::pending()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.rows_written, 0);
    assert_eq!(report.rows_rejected, 250);
    assert_eq!(report.statements_rejected, report.statements);
    let write_log = write_log.lock();
    let rejected_rows: Vec<_> = write_log
        .entries()
        .iter()
        .filter(|e| matches!(e.what, Entry::Row { .. }))
        .collect();
    assert_eq!(rejected_rows.len(), 250);
    for e in rejected_rows {
        assert_eq!(e.outcome, Outcome::Rejected);
        assert!(e.error.as_deref().is_some_and(|m| m.contains("0x")), "{e:?}");
    }
    assert!(write_log.expected_rows().values().all(|r| r.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let dsn = format!("ws://root:wrong@{}", server.addr());
    let fleet = Fleet::new(config(dsn, 1, Chaos::default())).unwrap();
    let error = timeout(DEADLINE, fleet.run(std::future::pending()))
        .await
        .unwrap()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("refused the login"), "{text}");
    assert!(!text.contains("wrong"), "password leaked: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_log_file_replays_to_the_same_expected_rows() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("write_log.ndjson");
    let mut cfg = config(server.dsn(), 11, Chaos::all());
    cfg.write_log_path = Some(path.clone());
    let fleet = Fleet::new(cfg).unwrap();
    let write_log = fleet.write_log();
    timeout(DEADLINE, fleet.run(std::future::pending()))
        .await
        .unwrap()
        .unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let replayed = simulator::meters::WriteLog::from_ndjson("power", file).unwrap();
    {
        let write_log = write_log.lock();
        assert_eq!(replayed.entries(), write_log.entries());
        assert_eq!(replayed.expected_rows(), write_log.expected_rows());
    }
    let taos = client(&server).await;
    assert_eq!(check(&taos, &replayed).await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_a_lost_server_is_an_error_and_the_open_statement_is_unknown() {
    let server = TdServer::start(TdConfig::default()).await.unwrap();
    let mut cfg = config(server.dsn(), 3, Chaos::default());
    cfg.stop = StopAfter::Never;
    cfg.batch = 10;
    cfg.retry_for = Duration::from_millis(500);
    let fleet = Fleet::new(cfg).unwrap();
    let write_log = fleet.write_log();
    let run = tokio::spawn(fleet.run(std::future::pending()));
    let deadline = Instant::now() + DEADLINE;
    while write_log.lock().rows_written() < 100 {
        assert!(Instant::now() < deadline, "fleet stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
    let error = timeout(DEADLINE, run).await.unwrap().unwrap().unwrap_err();
    assert!(error.to_string().contains("unreachable"), "{error}");
    let write_log = write_log.lock();
    let last = write_log.entries().last().unwrap();
    assert_eq!(last.outcome, Outcome::Unknown, "{last:?}");
    // Exactly the entries of the last statement are unknown.
    for e in write_log.entries() {
        assert_eq!(e.outcome == Outcome::Unknown, e.step == last.step, "{e:?}");
    }
}
