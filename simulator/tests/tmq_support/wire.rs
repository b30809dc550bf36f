//! `/rest/tmq` frame by frame over a plain WebSocket, for tests of the wire protocol itself.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Server;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(s: &Server) -> Ws {
    let url = format!("ws://127.0.0.1:{}/rest/tmq", s.port);
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

pub async fn send(ws: &mut Ws, action: &str, args: Value) {
    let text = json!({ "action": action, "args": args }).to_string();
    ws.send(Message::text(text)).await.expect("send");
}

/// The next data frame (pings skipped), within a deadline.
pub async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .expect("frame");
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            return msg;
        }
    }
}

/// The next data frame, which must be a JSON reply.
pub async fn reply(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("json reply"),
        other => panic!("expected JSON, got {other:?}"),
    }
}
