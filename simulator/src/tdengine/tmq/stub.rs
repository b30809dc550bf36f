//! Placeholder for the `/rest/tmq` connection handler until TMQ serving lands (branch `tmq` replaces
//! this file and the `pub use` in `tmq/mod.rs`): it closes the connection at once.

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use crate::tdengine::server::ServerCtx;

/// Serves one `/rest/tmq` connection (placeholder: closes it).
pub async fn serve(mut ws: WebSocketStream<TcpStream>, _ctx: ServerCtx) {
    tracing::warn!("TMQ is not served yet; closing the /rest/tmq connection");
    let _ = ws.close(None).await;
}
