//! The world a scenario runs in: a TDengine (the stand-in, or an external one) and a broker (embedded
//! rumqttd, Mosquitto started from the system binary with a generated config, or an external one), all on
//! free loopback ports, with the restart and fault hooks the timeline needs.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use simulator::broker::{BrokerConfig, Credentials as BrokerCredentials, EmbeddedBroker};
use simulator::tdengine::server::{TdConfig, TdServer};
use tokio::process::{Child, Command};

use crate::scenario::{BrokerKind, MqttVersion, Scenario, TdengineKind};

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("TDengine stand-in did not start: {0}")]
    Standin(String),
    #[error("the testcontainers world needs Docker with a registry, which this machine does not have")]
    NoDocker,
    #[error("embedded broker did not start: {0}")]
    Broker(String),
    #[error("mosquitto: {0}")]
    Mosquitto(String),
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
    Embedded(EmbeddedBroker),
    Mosquitto(Mosquitto),
    External { addr: SocketAddr },
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
                    .map(Broker::Embedded)
                    .map_err(|e| WorldError::Broker(e.to_string()))
            }
            BrokerKind::Mosquitto => Mosquitto::start(
                creds.map(|c| (c.user.as_str(), c.password.as_str())),
                s.world.mosquitto_max_queued.unwrap_or(1_000_000),
            )
            .await
            .map(Broker::Mosquitto),
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
            Broker::Embedded(b) => b
                .addr(match version {
                    MqttVersion::V311 => simulator::broker::MqttVersion::V311,
                    MqttVersion::V5 => simulator::broker::MqttVersion::V5,
                })
                .expect("both listeners configured"),
            Broker::Mosquitto(m) => m.addr,
            Broker::External { addr } => *addr,
        }
    }

    /// Stops and starts the broker on the same ports; sessions are lost (no persistence).
    pub async fn restart(&mut self) -> Result<(), WorldError> {
        match self {
            Broker::Embedded(b) => b.restart().await.map_err(|e| WorldError::Broker(e.to_string())),
            Broker::Mosquitto(m) => m.restart().await,
            Broker::External { .. } => Err(WorldError::Address(
                "an external broker cannot be restarted by the harness".into(),
            )),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Broker::Embedded(mut b) => b.stop().await,
            Broker::Mosquitto(mut m) => m.stop().await,
            Broker::External { .. } => {}
        }
    }
}

/// Mosquitto from the system binary, on a free loopback port, with a generated configuration.
pub struct Mosquitto {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

impl Mosquitto {
    async fn start(creds: Option<(&str, &str)>, max_queued: u32) -> Result<Mosquitto, WorldError> {
        let err = |e: std::io::Error| WorldError::Mosquitto(e.to_string());
        let dir = tempfile::tempdir().map_err(err)?;
        let addr = free_port().map_err(err)?;
        let mut conf = format!(
            "listener {} 127.0.0.1\npersistence false\nmax_queued_messages {max_queued}\n",
            addr.port()
        );
        match creds {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let status = std::process::Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| WorldError::Mosquitto(format!("mosquitto_passwd: {e}")))?;
                if !status.success() {
                    return Err(WorldError::Mosquitto("mosquitto_passwd failed".into()));
                }
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).map_err(err)?;
        let mut m = Mosquitto {
            addr,
            dir,
            child: None,
        };
        m.launch().await?;
        Ok(m)
    }

    async fn launch(&mut self) -> Result<(), WorldError> {
        let bin = mosquitto_binary()
            .ok_or_else(|| WorldError::Mosquitto("binary not found (apt-get install mosquitto)".into()))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| WorldError::Mosquitto(e.to_string()))?;
        self.child = Some(child);
        // Ready when it accepts connections.
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                return Err(WorldError::Mosquitto(format!(
                    "not listening on {} after 10 s",
                    self.addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn restart(&mut self) -> Result<(), WorldError> {
        self.stop().await;
        self.launch().await
    }
}
