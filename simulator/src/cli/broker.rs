//! `simulator broker`: rumqttd in-process until Ctrl-C.

use std::net::SocketAddr;

use clap::Args;
use simulator::broker::{BrokerConfig, Credentials, EmbeddedBroker, MqttVersion};

use super::Exit;

#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// MQTT 3.1.1 listener (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: SocketAddr,
    /// MQTT 5.0 listener (none if not given).
    #[arg(long)]
    pub listen_v5: Option<SocketAddr>,
    /// Username clients must present (with --password).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Password clients must present (with --user).
    #[arg(
        long,
        env = "SIMULATOR_MQTT_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub password: Option<String>,
    /// Largest accepted PUBLISH payload in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_payload: usize,
}

impl BrokerArgs {
    pub fn config(&self) -> BrokerConfig {
        BrokerConfig {
            v4_listen: Some(self.listen),
            v5_listen: self.listen_v5,
            credentials: self
                .user
                .clone()
                .zip(self.password.clone())
                .map(|(username, password)| Credentials { username, password }),
            max_payload_size: self.max_payload,
            ..BrokerConfig::default()
        }
    }
}

/// Lines naming the broker's URLs (passwords redacted).
pub fn describe(broker: &EmbeddedBroker) -> Vec<String> {
    let mut lines = Vec::new();
    for (version, name) in [(MqttVersion::V311, "MQTT 3.1.1"), (MqttVersion::V5, "MQTT 5.0")] {
        if let Some(url) = broker.redacted_url(version) {
            lines.push(format!("{name:<10} {url}"));
        }
    }
    lines
}

pub async fn run(args: BrokerArgs) -> Result<(), Exit> {
    let mut broker = EmbeddedBroker::start(args.config()).await?;
    for line in describe(&broker) {
        println!("{line}");
    }
    println!("broker ready; Ctrl-C stops it");
    super::shutdown_signal().await;
    broker.stop().await;
    Ok(())
}
