//! The server side of a client connection: a `TcpStream` that acknowledges every read at once.
//!
//! Why: the official client's WebSocket writer sends a frame's header and its payload as two TCP segments
//! with Nagle's algorithm on, so the payload waits for the ACK of the header — which Linux delays by up to
//! 40 ms. Every request would cost 40 ms (TMQ needs three per block). Re-arming `TCP_QUICKACK` after each
//! read makes the kernel ACK at once, as a real taosAdapter's clients never notice.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A server-side connection: `TcpStream` with `TCP_NODELAY` and `TCP_QUICKACK` kept on.
#[derive(Debug)]
pub struct Conn {
    inner: TcpStream,
}

impl Conn {
    pub fn new(inner: TcpStream) -> Self {
        let _ = inner.set_nodelay(true);
        let conn = Self { inner };
        conn.quickack();
        conn
    }

    #[cfg(target_os = "linux")]
    fn quickack(&self) {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a correctly sized option value; failure is harmless (slower ACKs).
        unsafe {
            libc::setsockopt(
                self.inner.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn quickack(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // The kernel drops quick-ACK mode on its own; re-arm it after every read.
            self.quickack();
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
