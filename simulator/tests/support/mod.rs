//! Helpers shared by the stand-in's socket-level tests: waiting for the server to close a socket, and
//! reading the first line a spawned `simulator` prints (its bound address).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads until the server closes the socket (EOF or reset); fails if it stays open past `within`.
pub async fn closed_by_server(sock: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .expect("server closed the socket");
    seen
}

/// The first line `child` writes on its (piped) stdout, read on a helper thread with a deadline.
pub fn first_stdout_line(child: &mut Child, within: Duration) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(within).expect("a first line on stdout")
}
