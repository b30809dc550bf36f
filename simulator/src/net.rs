//! Socket helpers shared by the test worlds.

use std::net::{SocketAddr, TcpListener};

/// A loopback address with a port that was free a moment ago (the OS picked it for a listener that is
/// closed again). Another process can take it before the caller binds, so callers that start an
/// external program on it retry on "address in use".
pub fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_free_port_is_on_loopback_and_can_be_bound() {
        let addr = super::free_port().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        std::net::TcpListener::bind(addr).unwrap();
    }
}
