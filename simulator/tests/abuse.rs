//! The TDengine stand-in survives abusive clients: garbage before the HTTP upgrade, garbage text and
//! binary frames on both endpoints, frames above the configured size limit (refused with a 1009 close
//! before their payload is read), half-open sockets (timed out, never blocking others) and a thousand
//! quick connect/disconnects. After each abuse the unchanged official `taos` client still works.
//! The same abuse on the TLS listener (plain HTTP, garbage, stalled handshakes, oversized frames) is in
//! `tdengine_tls.rs`.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use simulator::tdengine::{TdConfig, TdServer};
use taos::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Generous bound for anything the server must do by itself (close, reply, time out).
const DEADLINE: Duration = Duration::from_secs(10);
/// The size limit the abuse tests configure.
const MAX_MESSAGE: usize = 256 << 10;

async fn start() -> TdServer {
    TdServer::start(TdConfig {
        max_message_size: MAX_MESSAGE,
        handshake_timeout: Duration::from_millis(300),
        ..TdConfig::default()
    })
    .await
    .expect("stand-in starts")
}

/// A fresh official client creates a database and reads it back.
async fn official_client_works(server: &TdServer, db: &str) {
    let check = async {
        let taos = TaosBuilder::from_dsn(server.dsn())
            .unwrap()
            .build()
            .await
            .expect("official client connects");
        taos.exec(format!("create database if not exists {db} vgroups 1"))
            .await
            .expect("create database");
        let mut rs = taos.query("show databases").await.expect("show databases");
        let rows = rs.to_records().await.expect("rows");
        assert!(
            rows.iter().any(|r| r.first() == Some(&Value::VarChar(db.into()))),
            "{db} missing from {rows:?}"
        );
    };
    timeout(DEADLINE, check)
        .await
        .expect("official client answered in time");
}

async fn ws(server: &TdServer, path: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let url = format!("ws://{}{path}", server.addr());
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.expect("upgrade");
    ws
}

/// The next data frame (text or binary), skipping pings.
async fn next_reply(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Message {
    loop {
        let msg = timeout(DEADLINE, ws.next())
            .await
            .expect("reply in time")
            .expect("connection open")
            .expect("valid frame");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

#[tokio::test]
async fn garbage_before_the_upgrade_is_dropped() {
    let server = start().await;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for i in 0..20 {
        let mut sock = TcpStream::connect(server.addr()).await.unwrap();
        let len = rng.gen_range(1..4096);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.gen::<u8>()).collect();
        if i % 2 == 0 {
            // Looks like the end of a request header, so the parser must decide instead of waiting.
            junk.extend_from_slice(b"\r\n\r\n");
        }
        let _ = sock.write_all(&junk).await;
        support::closed_by_server(&mut sock, DEADLINE).await;
    }
    // A well-formed HTTP request that is not an upgrade, and one for an unknown path.
    for req in [
        "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ] {
        let mut sock = TcpStream::connect(server.addr()).await.unwrap();
        sock.write_all(req.as_bytes()).await.unwrap();
        let seen = support::closed_by_server(&mut sock, DEADLINE).await;
        assert!(
            !String::from_utf8_lossy(&seen).contains(" 101 "),
            "no upgrade for {req:?}"
        );
    }
    official_client_works(&server, "after_garbage").await;
}

#[tokio::test]
async fn garbage_frames_get_error_replies_and_the_connection_stays_usable() {
    let server = start().await;
    let mut rng = ChaCha8Rng::seed_from_u64(80);
    for path in ["/ws", "/rest/tmq"] {
        let mut ws = ws(&server, path).await;
        let texts = [
            "",
            "not json",
            "{",
            "[]",
            "null",
            "{}",
            r#"{"action":42}"#,
            r#"{"action":"query"}"#,
            r#"{"action":"query","args":{"sql":12}}"#,
            r#"{"action":"fetch","args":{"id":18446744073709551615}}"#,
            r#"{"action":"poll","args":{"blocking_time":"soon"}}"#,
            r#"{"action":"commit_offset","args":{"topic":"t","vgroup_id":99999999999,"offset":1}}"#,
            r#"{"action":"no_such_action","args":{"req_id":7}}"#,
        ];
        for t in texts {
            ws.send(Message::text(t)).await.unwrap();
            match next_reply(&mut ws).await {
                Message::Text(reply) => {
                    let v: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
                    assert_ne!(v["code"], 0, "{path}: {t:?} accepted: {reply}");
                }
                other => panic!("{path}: {t:?} got {other:?}"),
            }
        }
        for _ in 0..50 {
            let len = rng.gen_range(0..200);
            let junk: Vec<u8> = (0..len).map(|_| rng.gen::<u8>()).collect();
            ws.send(Message::binary(junk)).await.unwrap();
            if path == "/ws" {
                // The SQL endpoint answers every binary request (an error for garbage).
                assert!(matches!(next_reply(&mut ws).await, Message::Text(_)));
            }
        }
        // Still the same working connection.
        let version = r#"{"action":"version","args":{"req_id":99}}"#;
        ws.send(Message::text(version)).await.unwrap();
        match next_reply(&mut ws).await {
            Message::Text(reply) => assert!(reply.contains("\"version\""), "{reply}"),
            other => panic!("{path}: version got {other:?}"),
        }
    }
    official_client_works(&server, "after_frames").await;
}

#[tokio::test]
async fn a_message_above_the_limit_is_refused_with_a_close() {
    let server = start().await;
    for path in ["/ws", "/rest/tmq"] {
        let mut ws = ws(&server, path).await;
        ws.send(Message::binary(vec![7u8; MAX_MESSAGE + 1]))
            .await
            .unwrap();
        let close = loop {
            match next_reply(&mut ws).await {
                Message::Close(frame) => break frame,
                Message::Text(t) => panic!("{path}: oversized frame answered: {t}"),
                _ => {}
            }
        };
        assert_eq!(close.expect("close frame").code, CloseCode::Size, "{path}");
    }
    official_client_works(&server, "after_big_message").await;
}

#[tokio::test]
async fn a_frame_header_claiming_a_terabyte_is_refused_before_its_payload() {
    let server = start().await;
    let mut sock = TcpStream::connect(server.addr()).await.unwrap();
    sock.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        timeout(DEADLINE, sock.read_exact(&mut byte))
            .await
            .expect("handshake reply in time")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    // FIN + binary, masked, 64-bit length 2^40, mask key; no payload follows.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    sock.write_all(&frame).await.unwrap();
    let seen = support::closed_by_server(&mut sock, DEADLINE).await;
    // An unmasked close frame whose payload starts with 1009 (0x03F1).
    assert!(seen.len() >= 4, "no close frame: {seen:?}");
    assert_eq!(seen[0], 0x88, "{seen:?}");
    assert_eq!(&seen[2..4], &[0x03, 0xF1], "{seen:?}");
    official_client_works(&server, "after_huge_header").await;
}

#[tokio::test]
async fn half_open_sockets_time_out_and_do_not_block_others() {
    let server = start().await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // One more that stops in the middle of its request line.
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial.write_all(b"GET /ws HTT").await.unwrap();
    silent.push(partial);
    // Served while the silent ones hang.
    official_client_works(&server, "while_half_open").await;
    for sock in &mut silent {
        support::closed_by_server(sock, DEADLINE).await;
    }
    official_client_works(&server, "after_half_open").await;
}

#[tokio::test]
async fn a_thousand_quick_connects_and_disconnects() {
    let server = start().await;
    for i in 0..1000u32 {
        let mut sock = TcpStream::connect(server.addr()).await.unwrap();
        match i % 4 {
            0 => {}
            1 => drop(sock.write_all(b"GET /ws HTTP/1.1\r\n").await),
            2 => drop(sock.write_all(&[0u8; 64]).await),
            _ => {
                let url = format!("ws://{}/ws", server.addr());
                let (mut ws, _) = tokio_tungstenite::client_async(url, sock).await.expect("upgrade");
                ws.send(Message::text(r#"{"action":"version","args":{}}"#))
                    .await
                    .unwrap();
                continue; // dropped mid-conversation
            }
        }
        drop(sock);
    }
    official_client_works(&server, "after_churn").await;
    server.shutdown().await;
}
