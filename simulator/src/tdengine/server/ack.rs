//! [`AckStream`]: the TCP stream under every stand-in connection, acknowledging at once what a reply will
//! not acknowledge soon.
//!
//! The official client writes each WebSocket frame as two writes (header, then payload) without
//! TCP_NODELAY, so Nagle holds the payload until the header is acknowledged — and Linux delays that ACK
//! by ~40 ms when no reply carries it. A reply carries it whenever the server has read a whole request,
//! so only a read that leaves a frame incomplete needs an immediate ACK (`TCP_QUICKACK`). Once the
//! WebSocket upgrade is done ([`AckStream::track_frames`]) the stream follows the frame boundaries in
//! what it reads and acks only then: one `setsockopt` per split frame instead of one per read. Before
//! that (the HTTP upgrade), and under TLS (the stream sees records, not frames), every read is acked.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges a read at once when the request it belongs to is incomplete.
pub struct AckStream {
    stream: TcpStream,
    frames: Option<FrameTracker>,
}

impl AckStream {
    /// Acks every read until [`Self::track_frames`].
    pub fn new(stream: TcpStream) -> Self {
        AckStream { stream, frames: None }
    }

    /// From now on the stream carries client WebSocket frames (the upgrade is done): ack only reads
    /// that end inside a frame.
    pub fn track_frames(&mut self) {
        self.frames = Some(FrameTracker::default());
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }
}

fn ack_now(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

impl AsyncRead for AckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let incomplete = match &mut this.frames {
                Some(f) => f.feed(&buf.filled()[before..]),
                None => true,
            };
            if incomplete {
                ack_now(&this.stream);
            }
        }
        r
    }
}

impl AsyncWrite for AckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Where the byte stream is relative to WebSocket frame boundaries (RFC 6455 §5.2 headers; sans-IO).
#[derive(Debug, Default)]
struct FrameTracker {
    header: [u8; 14],
    have: usize,
    payload_left: u64,
}

impl FrameTracker {
    /// Takes bytes read; returns whether they end inside a frame.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64) as usize;
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let need = header_len(&self.header[..self.have]);
            let n = (need - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            let h = &self.header[..self.have];
            if self.have == header_len(h) {
                self.payload_left = payload_len(h);
                self.have = 0;
            }
        }
        self.have > 0 || self.payload_left > 0
    }
}

/// The length of a frame header starting with `h` (as far as `h` tells: 2 until the second byte).
fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if h[1] & 0x80 != 0 { 4 } else { 0 }
}

/// The payload length of a complete header.
fn payload_len(h: &[u8]) -> u64 {
    match h[1] & 0x7f {
        126 => u16::from_be_bytes([h[2], h[3]]) as u64,
        127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
        n => n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame with `len` payload bytes.
    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x82];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend((len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend((len as u64).to_be_bytes());
            }
        }
        f.extend([1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn a_header_alone_is_incomplete_a_whole_frame_is_not() {
        for len in [0, 5, 125, 126, 300, 70_000] {
            let f = frame(len);
            let hdr = f.len() - len;
            let mut t = FrameTracker::default();
            assert!(t.feed(&f[..hdr]) || len == 0, "header of {len}");
            assert!(!t.feed(&f[hdr..]), "payload of {len}");
            let mut t = FrameTracker::default();
            assert!(!t.feed(&f), "whole frame of {len}");
        }
    }

    #[test]
    fn any_split_of_a_stream_of_frames_is_tracked() {
        let stream: Vec<u8> = [frame(3), frame(200), frame(0), frame(70_000), frame(1)].concat();
        for cut in [1, 2, 3, 7, 13, 100, 4096] {
            let mut t = FrameTracker::default();
            let mut ends_inside = false;
            for chunk in stream.chunks(cut) {
                ends_inside = t.feed(chunk);
            }
            assert!(!ends_inside, "chunks of {cut}");
        }
        let mut t = FrameTracker::default();
        assert!(t.feed(&stream[..stream.len() - 1]));
    }
}
