//! The world a scenario runs in: a TDengine (the stand-in, or an external one) and a broker (embedded
//! rumqttd, the simulator's Mosquitto launcher, or an external one), all on free loopback ports, with the
//! restart and fault hooks the timeline needs.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use simulator::broker::{BrokerConfig, Credentials as BrokerCredentials, EmbeddedBroker};
use simulator::mosquitto::{Mosquitto, MosquittoError, DEFAULT_MAX_QUEUED_MESSAGES};
use simulator::tdengine::server::{TdConfig, TdServer};

use crate::scenario::{BrokerKind, MqttVersion, Scenario, TdengineKind};

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("TDengine stand-in did not start: {0}")]
    Standin(String),
    #[error("the testcontainers world needs Docker with a registry, which this machine does not have")]
    NoDocker,
    #[error("embedded broker did not start: {0}")]
    Broker(String),
    #[error(transparent)]
    Mosquitto(#[from] MosquittoError),
    #[error("mosquitto: {0}")]
    MosquittoTask(String),
    #[error("bad external address {0:?}")]
    Address(String),
}

/// TDengine side of the world.
pub enum Tdengine {
    Standin(TdServer),
    External { dsn: String },
}

impl Tdengine {
    pub async fn start(s: &Scenario) -> Result<Tdengine, WorldError> {
        match &s.world.tdengine {
            TdengineKind::Standin => {
                let mut config = TdConfig::default();
                if let Some(v) = &s.world.server_version {
                    config.server_version = v.clone();
                }
                TdServer::start(config)
                    .await
                    .map(Tdengine::Standin)
                    .map_err(|e| WorldError::Standin(e.to_string()))
            }
            TdengineKind::Testcontainers => Err(WorldError::NoDocker),
            TdengineKind::External { dsn } => Ok(Tdengine::External { dsn: dsn.clone() }),
        }
    }

    /// `host:port` for `{tdengine}` in DSNs.
    pub fn host_port(&self) -> String {
        match self {
            Tdengine::Standin(s) => s.addr().to_string(),
            Tdengine::External { dsn } => dsn
                .split_once("://")
                .map(|(_, r)| r.rsplit('@').next().unwrap_or(r))
                .unwrap_or(dsn)
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// The SQL DSN the harness writes through (`ws://root:taosdata@…` for the stand-in).
    pub fn sql_dsn(&self) -> String {
        match self {
            Tdengine::Standin(s) => format!("ws://root:taosdata@{}", s.addr()),
            Tdengine::External { dsn } => dsn.clone(),
        }
    }

    pub fn standin(&self) -> Option<&TdServer> {
        match self {
            Tdengine::Standin(s) => Some(s),
            Tdengine::External { .. } => None,
        }
    }

    pub async fn shutdown(self) {
        if let Tdengine::Standin(s) = self {
            s.shutdown().await;
        }
    }
}

/// Broker side of the world.
pub enum Broker {
    Embedded(Box<EmbeddedBroker>),
    /// Shared with the blocking thread that starts, restarts and stops it.
    Mosquitto(Arc<Mutex<Mosquitto>>),
    External {
        addr: SocketAddr,
    },
}

impl Broker {
    pub async fn start(s: &Scenario) -> Result<Broker, WorldError> {
        let creds = s.world.broker_auth.as_ref();
        match &s.world.broker {
            BrokerKind::Embedded => {
                let config = BrokerConfig {
                    credentials: creds.map(|c| BrokerCredentials {
                        username: c.user.clone(),
                        password: c.password.clone(),
                    }),
                    max_payload_size: 16 * 1024 * 1024,
                    ..BrokerConfig::default()
                };
                EmbeddedBroker::start(config)
                    .await
                    .map(|b| Broker::Embedded(Box::new(b)))
                    .map_err(|e| WorldError::Broker(e.to_string()))
            }
            BrokerKind::Mosquitto => {
                let mut builder = Mosquitto::builder().max_queued_messages(
                    s.world
                        .mosquitto_max_queued
                        .unwrap_or(DEFAULT_MAX_QUEUED_MESSAGES),
                );
                if let Some(c) = creds {
                    builder = builder.passwords([(c.user.clone(), c.password.clone())]);
                }
                // The launcher blocks until the broker accepts connections.
                let started = tokio::task::spawn_blocking(move || builder.start())
                    .await
                    .map_err(|e| WorldError::MosquittoTask(e.to_string()))??;
                Ok(Broker::Mosquitto(Arc::new(Mutex::new(started))))
            }
            BrokerKind::External { url } => {
                let hostport = url
                    .split_once("://")
                    .map(|(_, r)| r.rsplit('@').next().unwrap_or(r))
                    .unwrap_or(url)
                    .trim_end_matches('/');
                tokio::net::lookup_host(hostport)
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|addr| Broker::External { addr })
                    .ok_or_else(|| WorldError::Address(url.clone()))
            }
        }
    }

    /// The listener for a protocol version (Mosquitto and external brokers serve both on one port).
    pub fn addr(&self, version: MqttVersion) -> SocketAddr {
        match self {
            Broker::Embedded(b) => b.addr(version).expect("both listeners configured"),
            Broker::Mosquitto(m) => m.lock().addr(),
            Broker::External { addr } => *addr,
        }
    }

    /// Stops and starts the broker on the same ports; sessions are lost (no persistence).
    pub async fn restart(&mut self) -> Result<(), WorldError> {
        match self {
            Broker::Embedded(b) => b.restart().await.map_err(|e| WorldError::Broker(e.to_string())),
            Broker::Mosquitto(m) => {
                let m = m.clone();
                tokio::task::spawn_blocking(move || m.lock().restart())
                    .await
                    .map_err(|e| WorldError::MosquittoTask(e.to_string()))??;
                Ok(())
            }
            Broker::External { .. } => Err(WorldError::Address(
                "an external broker cannot be restarted by the harness".into(),
            )),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Broker::Embedded(mut b) => b.stop().await,
            // Stopping kills and reaps the process (a blocking wait).
            Broker::Mosquitto(m) => {
                let _ = tokio::task::spawn_blocking(move || m.lock().stop()).await;
            }
            Broker::External { .. } => {}
        }
    }
}
