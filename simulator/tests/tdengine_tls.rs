//! The stand-in's TLS listener (`wss://`): SQL and TMQ over TLS with a client trusting the test CA;
//! the unchanged official client refusing it (taos-ws 0.12.3 trusts only its compiled-in webpki roots
//! and takes no CA, see docs/security.md); abusive clients on the TLS port (plain HTTP, garbage, a
//! stalled TLS handshake, an oversized frame) never hurting the server; `simulator tdengine --tls-cert`.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rumqttc::tokio_rustls::{client::TlsStream, rustls::pki_types::ServerName, TlsConnector};
use serde_json::{json, Value};
use simulator::tdengine::server::TdTls;
use simulator::tdengine::{TdConfig, TdServer};
use simulator::tls::{client_config, TestPki};
use taos::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Generous bound for anything that crosses a socket.
const DEADLINE: Duration = Duration::from_secs(20);
const MAX_MESSAGE: usize = 256 << 10;

type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn tls_of(pki: &TestPki) -> TdTls {
    let cert = pki.server_cert().unwrap();
    TdTls {
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
    }
}

async fn start(pki: &TestPki) -> TdServer {
    TdServer::start(TdConfig {
        tls: Some(tls_of(pki)),
        max_message_size: MAX_MESSAGE,
        // Short enough for the stalled-socket test, long enough for a TLS handshake on a loaded machine.
        handshake_timeout: Duration::from_secs(3),
        ..TdConfig::default()
    })
    .await
    .expect("TLS stand-in starts")
}

/// A WebSocket over TLS to `path`, trusting only `ca_pem`, verifying the name `localhost`.
async fn wss(server: &TdServer, ca_pem: &str, path: &str) -> Result<Wss, String> {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let connector = TlsConnector::from(client_config(ca_pem, None).unwrap());
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let url = format!("wss://localhost:{}{path}", server.addr().port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn call(ws: &mut Wss, action: &str, args: Value) -> Value {
    let text = json!({ "action": action, "args": args }).to_string();
    ws.send(Message::text(text)).await.expect("send");
    loop {
        let msg = timeout(DEADLINE, ws.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("JSON reply");
        }
    }
}

/// A client trusting the test CA connects, logs in and runs SQL over TLS.
async fn sql_over_tls_works(server: &TdServer, ca_pem: &str, db: &str) {
    let mut ws = timeout(DEADLINE, wss(server, ca_pem, "/ws"))
        .await
        .expect("TLS connect in time")
        .expect("TLS connect");
    let conn = call(
        &mut ws,
        "conn",
        json!({"req_id": 1, "user": "root", "password": "taosdata", "db": ""}),
    )
    .await;
    assert_eq!(conn["code"], 0, "{conn}");
    let created = call(
        &mut ws,
        "query",
        json!({"req_id": 2, "sql": format!("create database if not exists {db} vgroups 1")}),
    )
    .await;
    assert_eq!(created["code"], 0, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_tmq_over_tls_with_the_test_ca() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let server = start(&pki).await;
    assert!(server.dsn().starts_with("wss://"), "{}", server.dsn());
    sql_over_tls_works(&server, &pki.ca_pem(), "over_tls").await;
    let store = server.store();
    for sql in [
        "create stable over_tls.meters (ts timestamp, f1 int) tags (t1 int)",
        "create topic t as select ts, f1 from over_tls.meters",
        "insert into over_tls.d0 using over_tls.meters tags (1) values (1700000000000, 7)",
    ] {
        store.execute(sql, &mut None).unwrap();
    }
    let mut ws = wss(&server, &pki.ca_pem(), "/rest/tmq").await.unwrap();
    let sub = call(
        &mut ws,
        "subscribe",
        json!({
            "req_id": 1, "user": "root", "password": "taosdata", "db": "", "group_id": "g",
            "client_id": null, "offset_rest": "earliest", "snapshot_enable": "false",
            "with_table_name": "true", "auto_commit": "false", "auto_commit_interval_ms": null,
            "offset_seek": null, "topics": ["t"], "enable_batch_meta": "0",
            "msg_consume_excluded": "0", "config": {"session.timeout.ms": "12000"},
            "connector": "rust-3.0", "tz": "UTC", "app": "test", "ip": "127.0.0.1"
        }),
    )
    .await;
    assert_eq!(sub["code"], 0, "{sub}");
    let polled = call(
        &mut ws,
        "poll",
        json!({"req_id": 2, "blocking_time": 5000, "message_id": 0}),
    )
    .await;
    assert_eq!(polled["code"], 0, "{polled}");
    assert_eq!(polled["have_message"], true, "{polled}");
    assert_eq!(polled["topic"], "t", "{polled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_is_refused() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let other = TestPki::new("other CA").unwrap();
    let server = start(&pki).await;
    let err = wss(&server, &other.ca_pem(), "/ws").await.expect_err("refused");
    assert!(err.contains("UnknownIssuer"), "{err}");
    sql_over_tls_works(&server, &pki.ca_pem(), "after_wrong_ca").await;
}

/// taos-ws 0.12.3 (through ws-tool 0.11) builds its TLS configuration from webpki-roots alone, with
/// an always-empty list of extra CA files: a private CA can never be trusted, so both SQL (`wss://`)
/// and TMQ (`tmq+wss://`) stop at certificate verification. This pins that behaviour: if a future
/// client starts trusting something else, the bridge's TLS tunnel (bridge/src/wss.rs) can be revisited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_verifies_and_trusts_only_its_built_in_roots() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let server = start(&pki).await;
    let port = server.addr().port();
    // `build` is lazy: the first statement connects.
    let sql = timeout(DEADLINE, async {
        let taos = TaosBuilder::from_dsn(format!("wss://root:taosdata@localhost:{port}"))
            .unwrap()
            .build()
            .await
            .unwrap();
        taos.exec("show databases").await
    })
    .await
    .expect("fails in time")
    .expect_err("an untrusted certificate is refused")
    .to_string();
    eprintln!("official SQL client: {sql}");
    assert!(sql.contains("UnknownIssuer"), "{sql}");
    let tmq = timeout(DEADLINE, async {
        TmqBuilder::from_dsn(format!("tmq+wss://root:taosdata@localhost:{port}?group.id=g"))
            .unwrap()
            .build()
            .await
    })
    .await
    .expect("fails in time")
    .expect_err("an untrusted certificate is refused")
    .to_string();
    eprintln!("official TMQ client: {tmq}");
    assert!(tmq.contains("UnknownIssuer"), "{tmq}");
    // The server is unharmed by the refused handshakes.
    sql_over_tls_works(&server, &pki.ca_pem(), "after_official").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_garbage_and_stalled_handshakes_on_the_tls_port_are_dropped() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let server = start(&pki).await;
    // A plain WebSocket upgrade, plain HTTP, and random bytes: each connection is closed.
    for junk in [
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            .to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        (0..2048u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
    ] {
        let mut sock = TcpStream::connect(server.addr()).await.unwrap();
        let _ = sock.write_all(&junk).await;
        let seen = support::closed_by_server(&mut sock, DEADLINE).await;
        assert!(
            !String::from_utf8_lossy(&seen).contains(" 101 "),
            "no upgrade without TLS"
        );
    }
    // Silent sockets and one stopped inside its ClientHello time out without blocking others.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    stalled.push(partial);
    sql_over_tls_works(&server, &pki.ca_pem(), "while_stalled").await;
    for sock in &mut stalled {
        support::closed_by_server(sock, DEADLINE).await;
    }
    sql_over_tls_works(&server, &pki.ca_pem(), "after_garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_limit_is_refused_over_tls_too() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let server = start(&pki).await;
    let mut ws = wss(&server, &pki.ca_pem(), "/ws").await.unwrap();
    let _ = ws.send(Message::binary(vec![0u8; MAX_MESSAGE + 1])).await;
    let close = loop {
        match timeout(DEADLINE, ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1009), "message too big");
    sql_over_tls_works(&server, &pki.ca_pem(), "after_too_big").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdengine_subcommand_serves_wss_with_tls_cert_and_key() {
    let pki = TestPki::new("stand-in CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = pki.server_cert().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["tdengine", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = support::first_stdout_line(&mut child, Duration::from_secs(30));
    let addr: std::net::SocketAddr = line
        .trim()
        .rsplit("wss://")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    // The same checks as in-process, against the child's port.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(client_config(&pki.ca_pem(), None).unwrap());
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS with the test CA");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/ws", addr.port()), tls)
        .await
        .expect("upgrade");
    let version = call(&mut ws, "version", json!({"req_id": 1})).await;
    assert_eq!(version["code"], 0, "{version}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tdengine_subcommand_names_an_unusable_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new("stand-in CA").unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, pki.server_cert().unwrap().cert_pem).unwrap();
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, "not a key").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["tdengine", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS key"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
