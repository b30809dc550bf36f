//! Fuzzes the stand-in's sans-IO SQL WebSocket session with a sequence of frames against a fresh store.
//! Frames are separated by `0xFF 0xFE`; a frame starting with `b` is binary (the rest), anything else
//! is text (lossily decoded, as tungstenite only delivers valid UTF-8 text frames). The session must
//! answer or ignore every frame without panicking.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use simulator::tdengine::server::session::SqlSession;
use simulator::tdengine::{Store, TdConfig};

fuzz_target!(|data: &[u8]| {
    // Half the inputs see the binary-SQL protocol (server version ≥ 3.3.0.8).
    let version = if data.first().is_some_and(|b| b & 1 == 1) {
        "3.3.6.0"
    } else {
        "3.3.0.0"
    };
    let mut session = SqlSession::new(Store::new(), Arc::new(TdConfig::with_version(version)));
    for frame in split(data) {
        match frame.split_first() {
            Some((b'b', rest)) => drop(session.on_binary(rest)),
            _ => drop(session.on_text(&String::from_utf8_lossy(frame))),
        }
    }
});

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.windows(2).position(|w| w == [0xFF, 0xFE]) {
            Some(i) => {
                let frame = &rest[..i];
                rest = &rest[i + 2..];
                Some(frame)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}
