//! `simulator world`: the stand-in, the broker and the fleet in one process, with the command that
//! connects a bridge to them. Prints `key: value` lines (stable, for scripts and tests).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use simulator::broker::{BrokerConfig, Credentials, MqttVersion};
use simulator::meters::{Chaos, FleetConfig, StopAfter};
use simulator::tdengine::TdConfig;
use simulator::world::{World, WorldConfig};

use super::Exit;

#[derive(Args, Debug, Clone)]
pub struct WorldArgs {
    /// Where the TDengine stand-in listens (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:6041")]
    pub tdengine_listen: SocketAddr,
    /// Version the stand-in reports.
    #[arg(long, default_value = simulator::tdengine::server::DEFAULT_SERVER_VERSION)]
    pub server_version: String,
    #[arg(long, default_value = "root")]
    pub user: String,
    #[arg(
        long,
        default_value = "taosdata",
        env = "TDENGINE_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// MQTT 3.1.1 listener (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt_listen: SocketAddr,
    /// MQTT 5.0 listener (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub mqtt_listen_v5: SocketAddr,
    /// Username MQTT clients must present (with --mqtt-password).
    #[arg(long, requires = "mqtt_password")]
    pub mqtt_user: Option<String>,
    #[arg(
        long,
        env = "SIMULATOR_MQTT_PASSWORD",
        hide_env_values = true,
        requires = "mqtt_user"
    )]
    pub mqtt_password: Option<String>,
    #[arg(long, default_value = "power")]
    pub db: String,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub vgroups: u32,
    /// TMQ topic created over the super table.
    #[arg(long, default_value = "topic_meters")]
    pub topic: String,
    /// MQTT topic template of the suggested bridge command.
    #[arg(long, default_value = "meters/{database}/{table}")]
    pub mqtt_topic: String,
    /// QoS of the suggested bridge command.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// MQTT version of the suggested bridge command: 3.1.1 or 5.0.
    #[arg(long, default_value = "5.0", value_parser = str::parse::<MqttVersion>)]
    pub mqtt_version: MqttVersion,

    /// Do not run the meter fleet (stand-in and broker only).
    #[arg(long, help_heading = "Fleet")]
    pub no_fleet: bool,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Fleet")]
    pub meters: u32,
    /// Rows per second.
    #[arg(long, default_value_t = 10.0, help_heading = "Fleet")]
    pub rate: f64,
    /// Stop the fleet after this many rows (default: run until Ctrl-C).
    #[arg(long, conflicts_with = "duration", help_heading = "Fleet")]
    pub rows: Option<u64>,
    /// Stop the fleet after this much time.
    #[arg(long, value_parser = humantime::parse_duration, help_heading = "Fleet")]
    pub duration: Option<Duration>,
    #[arg(long, default_value_t = 10, help_heading = "Fleet")]
    pub batch: usize,
    #[arg(long, default_value_t = 42, help_heading = "Fleet")]
    pub seed: u64,
    /// Timestamp of the first reading in epoch ms (default: now).
    #[arg(long, help_heading = "Fleet")]
    pub start_ms: Option<i64>,
    /// Every chaos option of `simulator meters` at moderate rates.
    #[arg(long, help_heading = "Fleet")]
    pub chaos: bool,
}

impl WorldArgs {
    pub fn config(&self) -> WorldConfig {
        let fleet = (!self.no_fleet).then(|| FleetConfig {
            meters: self.meters,
            rate: (self.rate > 0.0).then_some(self.rate),
            stop: match (self.rows, self.duration) {
                (_, Some(d)) => StopAfter::Duration(d),
                (Some(n), None) => StopAfter::Rows(n),
                (None, None) => StopAfter::Never,
            },
            batch: self.batch.max(1),
            seed: self.seed,
            start_ms: self
                .start_ms
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            chaos: if self.chaos {
                Chaos::all()
            } else {
                Chaos::default()
            },
            keep_entries: false,
            ..FleetConfig::default()
        });
        WorldConfig {
            tdengine: TdConfig {
                listen: self.tdengine_listen,
                server_version: self.server_version.clone(),
                user: self.user.clone(),
                password: self.password.clone(),
                ..TdConfig::default()
            },
            broker: BrokerConfig {
                v4_listen: Some(self.mqtt_listen),
                v5_listen: Some(self.mqtt_listen_v5),
                credentials: self
                    .mqtt_user
                    .clone()
                    .zip(self.mqtt_password.clone())
                    .map(|(username, password)| Credentials { username, password }),
                ..BrokerConfig::default()
            },
            db: self.db.clone(),
            vgroups: self.vgroups,
            topic: self.topic.clone(),
            mqtt_topic: self.mqtt_topic.clone(),
            mqtt_version: self.mqtt_version,
            qos: self.qos,
            fleet,
        }
    }
}

pub async fn run(args: WorldArgs) -> Result<(), Exit> {
    let mut world = World::start(args.config()).await?;
    let redacted_td = simulator::meters::fleet::redact_dsn(&world.tdengine_dsn());
    println!("tdengine: {redacted_td}");
    for (key, version) in [("mqtt-v4", MqttVersion::V311), ("mqtt-v5", MqttVersion::V5)] {
        if let Some(url) = world.broker().redacted_url(version) {
            println!("{key}: {url}");
        }
    }
    println!("topic: {} (database {})", world.config().topic, world.config().db);
    println!("bridge: {}", world.bridge_command());
    println!("subscribe: {}", world.subscribe_filter());
    if let Some(url) = world.broker().redacted_url(world.suggested_version()) {
        // rumqttd 0.20 cannot forward a 5.0 publish with properties to a 3.1.1 subscriber.
        println!("subscribe-on: {url}");
    }
    if let Some(fleet) = &world.config().fleet {
        println!(
            "fleet: {} meters, {} rows/s, seed {}, start {} ms",
            fleet.meters,
            fleet.rate.map_or("unlimited".to_string(), |r| r.to_string()),
            fleet.seed,
            fleet.start_ms
        );
    }
    println!("ready (Ctrl-C stops)");
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        report = world.wait_fleet() => {
            if let Some(report) = report? {
                println!("fleet done: {report}");
            }
            shutdown.await;
        }
    }
    if let Some(report) = world.stop().await? {
        println!("fleet stopped: {report}");
    }
    Ok(())
}
