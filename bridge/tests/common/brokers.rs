//! The broker under test for suites that run one generic body against the embedded rumqttd and a real
//! Mosquitto ([`against_both_brokers!`](crate::common::brokers::against_both_brokers)).
#![allow(unused_imports, unused_macros)]

use std::net::SocketAddr;

use simulator::{
    broker::{BrokerConfig, EmbeddedBroker, MqttVersion},
    mosquitto::Mosquitto,
};

/// The broker under test.
pub enum TestBroker {
    Rumqttd(EmbeddedBroker),
    Mosquitto(Mosquitto),
}

impl TestBroker {
    pub async fn rumqttd() -> TestBroker {
        TestBroker::Rumqttd(
            EmbeddedBroker::start(BrokerConfig::default())
                .await
                .expect("rumqttd"),
        )
    }

    pub fn mosquitto() -> TestBroker {
        TestBroker::Mosquitto(Mosquitto::start().expect("mosquitto (ci/setup.sh installs it)"))
    }

    /// DSN `version=` values this broker accepts, with the subscriber version to read them with.
    pub fn versions(&self) -> Vec<(&'static str, MqttVersion)> {
        let mut v = vec![("3.1.1", MqttVersion::V311), ("5.0", MqttVersion::V5)];
        if matches!(self, TestBroker::Mosquitto(_)) {
            v.insert(0, ("3.1", MqttVersion::V311)); // rumqttd does not speak 3.1
        }
        v
    }

    /// Where a client of `version` connects (rumqttd has one listener per version).
    pub fn addr(&self, version: MqttVersion) -> SocketAddr {
        match self {
            TestBroker::Rumqttd(b) => b.addr(version).unwrap(),
            TestBroker::Mosquitto(b) => b.addr(),
        }
    }

    /// Where the bridge connects with DSN `version=` (3.1 shares the 3.1.1 listener).
    pub fn addr_for_dsn(&self, version: &str) -> SocketAddr {
        self.addr(listener_for_dsn(version))
    }

    pub async fn stop(&mut self) {
        match self {
            TestBroker::Rumqttd(b) => b.stop().await,
            TestBroker::Mosquitto(b) => b.stop().unwrap(),
        }
    }

    pub async fn start_again(&mut self) {
        match self {
            TestBroker::Rumqttd(b) => b.restart().await.unwrap(),
            TestBroker::Mosquitto(b) => b.restart().unwrap(),
        }
    }
}

/// The listener a DSN version connects to (3.1 shares the 3.1.1 listener).
pub fn listener_for_dsn(version: &str) -> MqttVersion {
    if version == "5.0" {
        MqttVersion::V5
    } else {
        MqttVersion::V311
    }
}

/// The two tests of a generic body: `async fn body(TestBroker)` against rumqttd and against Mosquitto,
/// or, with `versions`, `async fn body(TestBroker, &str)` once per DSN version listed for each broker
/// (a fresh broker each time).
macro_rules! against_both_brokers {
    ($body:ident => $rumqttd:ident, $mosquitto:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rumqttd() {
            $body(common::brokers::TestBroker::rumqttd().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $mosquitto() {
            $body(common::brokers::TestBroker::mosquitto()).await;
        }
    };
    ($body:ident, versions [$($rv:literal),+] [$($mv:literal),+] => $rumqttd:ident, $mosquitto:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rumqttd() {
            for version in [$($rv),+] {
                $body(common::brokers::TestBroker::rumqttd().await, version).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $mosquitto() {
            for version in [$($mv),+] {
                $body(common::brokers::TestBroker::mosquitto(), version).await;
            }
        }
    };
}
pub(crate) use against_both_brokers;
