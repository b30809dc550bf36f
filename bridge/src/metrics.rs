//! `/metrics` (Prometheus text) and `/healthz` for `tmq2mqtt run --metrics-addr`.
//!
//! The pipeline only bumps its [`Stats`] atomics; this module copies them into the `metrics` facade at
//! each scrape, so the hot path never touches a recorder. The global Prometheus recorder is installed
//! by the binary ([`install_recorder`] from `main.rs`), never by library code tests run in-process.
//! The exporter cannot serve extra paths, so a tiny HTTP/1.1 listener here serves both.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::Stats;

/// Installs the process-wide Prometheus recorder. Call once, from the binary.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))
}

/// Copies the live counters into the installed recorder (a no-op without one).
pub fn record(stats: &Stats) {
    let s = stats.snapshot();
    counter!("tmq2mqtt_messages_received_total").absolute(s.messages);
    counter!("tmq2mqtt_rows_received_total").absolute(s.rows);
    counter!("tmq2mqtt_published_total").absolute(s.published);
    counter!("tmq2mqtt_acknowledged_total").absolute(s.acked);
    counter!("tmq2mqtt_resent_total").absolute(s.resent);
    for (reason, n) in &s.skipped {
        counter!("tmq2mqtt_skipped_total", "reason" => reason.clone()).absolute(*n);
    }
    for (reason, n) in &s.dead_lettered {
        counter!("tmq2mqtt_dead_lettered_total", "reason" => reason.clone()).absolute(*n);
    }
    for ((topic, vgroup), n) in &s.wal_gap_versions {
        counter!("tmq2mqtt_wal_gap_versions_total", "topic" => topic.clone(), "vgroup" => vgroup.to_string())
            .absolute(*n);
    }
    gauge!("tmq2mqtt_in_flight").set(stats.in_flight.load(Relaxed) as f64);
    let sides = [
        ("mqtt", s.mqtt_connects, s.mqtt_failures, &stats.mqtt_connected),
        ("tmq", s.tmq_subscribes, s.tmq_failures, &stats.tmq_connected),
    ];
    for (side, connects, failures, connected) in sides {
        // The first connect is not a reconnect.
        counter!("tmq2mqtt_reconnects_total", "side" => side).absolute(connects.saturating_sub(1));
        counter!("tmq2mqtt_connection_failures_total", "side" => side).absolute(failures);
        gauge!("tmq2mqtt_connected", "side" => side).set(f64::from(u8::from(connected.load(Relaxed))));
    }
    for ((topic, vgroup), offset) in &s.committed {
        gauge!("tmq2mqtt_committed_offset", "topic" => topic.clone(), "vgroup" => vgroup.to_string())
            .set(*offset as f64);
    }
    // WAL versions not yet committed; the end's freshness is explained in `source`.
    for ((topic, vgroup), lag) in stats.wal_ends.lag(&s.committed) {
        gauge!("tmq2mqtt_lag", "topic" => topic, "vgroup" => vgroup.to_string()).set(lag as f64);
    }
}

/// Both ends connected: the bridge can move rows.
pub fn healthy(stats: &Stats) -> bool {
    stats.mqtt_connected.load(Relaxed) && stats.tmq_connected.load(Relaxed)
}

/// Binds `addr` now (so a bad address fails at startup) and returns the serving future.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    handle: PrometheusHandle,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    Ok(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let (stats, handle) = (stats.clone(), handle.clone());
            tokio::spawn(async move {
                // A client that never finishes its request must not hold a task forever.
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(conn, &stats, &handle)).await;
            });
        }
    })
}

/// Reads one request head and answers it; the connection is then closed.
async fn answer(mut conn: TcpStream, stats: &Stats, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > 8192 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            record(stats);
            ("200 OK", "text/plain; version=0.0.4", handle.render())
        }
        ("GET", "/healthz") if healthy(stats) => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/healthz") => (
            "503 Service Unavailable",
            "text/plain",
            format!(
                "mqtt connected: {}, tmq connected: {}\n",
                stats.mqtt_connected.load(Relaxed),
                stats.tmq_connected.load(Relaxed)
            ),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}
