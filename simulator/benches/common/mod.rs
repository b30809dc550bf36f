//! What the stand-in's benches share: their runtime and draining a topic with the official client.

// Each bench uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use taos::{AsAsyncConsumer, AsyncTBuilder, IsAsyncData, MessageSet, Timeout, TmqBuilder};

/// The benches' runtime: two workers, as many as the machine the figures come from has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Drains `want` rows of `topic` the way the bridge's source reads them (`recv_timeout` +
/// `fetch_raw_block`), committing every message when `commit`; returns the rows and messages received.
pub async fn drain_official(dsn: &str, topic: &str, want: usize, commit: bool) -> (usize, usize) {
    let mut consumer = TmqBuilder::from_dsn(dsn)
        .expect("dsn")
        .build()
        .await
        .expect("consumer");
    consumer.subscribe([topic]).await.expect("subscribe");
    let (mut rows, mut messages) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while rows < want {
        assert!(Instant::now() < deadline, "official: only {rows} of {want} rows");
        let Some((offset, set)) = consumer
            .recv_timeout(Timeout::Duration(Duration::from_secs(1)))
            .await
            .expect("recv")
        else {
            continue;
        };
        if let MessageSet::Data(data) = set {
            while let Some(block) = data.fetch_raw_block().await.expect("block") {
                rows += block.nrows();
            }
        }
        messages += 1;
        if commit {
            consumer.commit(offset).await.expect("commit");
        }
    }
    assert_eq!(rows, want);
    (rows, messages)
}
