//! One process with everything a bridge needs: the TDengine stand-in with a database, super table
//! and topic ready, the embedded MQTT broker, and (optionally) the meter fleet writing into it.
//! [`World`] gives the DSNs to hand to `tmq2mqtt run` and the MQTT filter to subscribe to.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::broker::{BrokerConfig, BrokerError, EmbeddedBroker, MqttVersion};
use crate::meters::{Fleet, FleetConfig, FleetError, FleetReport, Step, WriteLog};
use crate::tdengine::{TdConfig, TdServer};

/// TDengine's public default password: the only one the world prints in clear.
const DEFAULT_PASSWORD: &str = "taosdata";

#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub tdengine: TdConfig,
    pub broker: BrokerConfig,
    pub db: String,
    pub vgroups: u32,
    /// TMQ topic over the super table.
    pub topic: String,
    /// MQTT topic template for the bridge (taosx variables).
    pub mqtt_topic: String,
    /// Protocol and QoS of the suggested bridge DSN.
    pub mqtt_version: MqttVersion,
    pub qos: u8,
    /// The fleet to run (its `dsn`, `db`, `vgroups` and `create` are set by the world).
    pub fleet: Option<FleetConfig>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            tdengine: TdConfig::default(),
            broker: BrokerConfig::default(),
            db: "power".into(),
            vgroups: 2,
            topic: "topic_meters".into(),
            mqtt_topic: "meters/{database}/{table}".into(),
            mqtt_version: MqttVersion::V5,
            qos: 1,
            fleet: Some(FleetConfig::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("TDengine stand-in: {0}")]
    TdEngine(String),
    #[error("preparing the database: {0}")]
    Setup(String),
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("fleet: {0}")]
    Fleet(#[from] FleetError),
    #[error("the fleet task failed: {0}")]
    FleetTask(String),
}

/// The running world. Stop it with [`World::stop`] (dropping it stops the servers too).
pub struct World {
    config: WorldConfig,
    tdengine: TdServer,
    broker: EmbeddedBroker,
    fleet: Option<RunningFleet>,
}

struct RunningFleet {
    write_log: Arc<Mutex<WriteLog>>,
    /// Dropping it also stops the fleet (the receiver then resolves).
    stop: Option<oneshot::Sender<()>>,
    /// Taken by whoever awaits the fleet's end.
    task: Option<JoinHandle<Result<FleetReport, FleetError>>>,
}

impl World {
    /// Starts the stand-in, creates the database, super table and topic, starts the broker, and
    /// starts the fleet in the background.
    pub async fn start(config: WorldConfig) -> Result<World, WorldError> {
        let tdengine = TdServer::start(config.tdengine.clone())
            .await
            .map_err(|e| WorldError::TdEngine(e.to_string()))?;
        // The schema comes from the fleet's own script, so world and fleet cannot disagree.
        let mut current_db = None;
        let setup = [
            Step::CreateDatabase {
                vgroups: config.vgroups,
            }
            .sql(&config.db),
            Step::CreateStable.sql(&config.db),
            format!(
                "CREATE TOPIC IF NOT EXISTS {} AS SELECT ts, tbname, current, voltage, phase, groupid, location FROM {}.meters",
                config.topic, config.db
            ),
        ];
        for sql in setup {
            tdengine
                .store()
                .execute(&sql, &mut current_db)
                .map_err(|e| WorldError::Setup(format!("{e} ({sql})")))?;
        }
        let broker = EmbeddedBroker::start(config.broker.clone()).await?;
        let mut world = World {
            config,
            tdengine,
            broker,
            fleet: None,
        };
        if let Some(mut fleet_config) = world.config.fleet.clone() {
            fleet_config.dsn = world.tdengine.dsn();
            fleet_config.db = world.config.db.clone();
            fleet_config.vgroups = world.config.vgroups;
            fleet_config.create = true;
            let fleet = Fleet::new(fleet_config)?;
            let write_log = fleet.write_log();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let task = tokio::spawn(fleet.run(async move {
                let _ = stop_rx.await;
            }));
            world.fleet = Some(RunningFleet {
                write_log,
                stop: Some(stop_tx),
                task: Some(task),
            });
        }
        Ok(world)
    }

    pub fn tdengine(&self) -> &TdServer {
        &self.tdengine
    }

    pub fn broker(&self) -> &EmbeddedBroker {
        &self.broker
    }

    pub fn broker_mut(&mut self) -> &mut EmbeddedBroker {
        &mut self.broker
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// The fleet's write log, while a fleet runs or ran.
    pub fn write_log(&self) -> Option<Arc<Mutex<WriteLog>>> {
        self.fleet.as_ref().map(|f| f.write_log.clone())
    }

    /// `ws://user:password@host:port` of the stand-in.
    pub fn tdengine_dsn(&self) -> String {
        self.tdengine.dsn()
    }

    /// The `-f` DSN for `tmq2mqtt run` (contains the password).
    pub fn tmq_dsn(&self) -> String {
        self.tmq_dsn_with(&self.config.tdengine.password)
    }

    fn tmq_dsn_with(&self, password: &str) -> String {
        let c = &self.config.tdengine;
        format!(
            "tmq+ws://{}:{}@{}/{}?group.id=world&auto.offset.reset=earliest",
            c.user,
            password,
            self.tdengine.addr(),
            self.config.topic
        )
    }

    /// The `-t` DSN for `tmq2mqtt run` (contains the broker password if any).
    pub fn mqtt_dsn(&self) -> String {
        self.mqtt_dsn_with(false)
    }

    fn mqtt_dsn_with(&self, redact: bool) -> String {
        let version = self.suggested_version();
        let base = if redact {
            self.broker.redacted_url(version)
        } else {
            self.broker.url(version)
        }
        .unwrap_or_default();
        format!(
            "{base}&topic={}&qos={}&client_id=tmq2mqtt-world",
            self.config.mqtt_topic, self.config.qos
        )
    }

    /// The MQTT version of the suggested bridge DSN: the configured one if the broker listens for
    /// it, else the one it listens for. Subscribe with the same version (see [`crate::broker`]).
    pub fn suggested_version(&self) -> MqttVersion {
        let wanted = self.config.mqtt_version;
        if self.broker.addr(wanted).is_some() {
            wanted
        } else if wanted == MqttVersion::V5 {
            MqttVersion::V311
        } else {
            MqttVersion::V5
        }
    }

    /// The MQTT filter that matches everything the suggested bridge publishes.
    pub fn subscribe_filter(&self) -> String {
        let template = &self.config.mqtt_topic;
        match template.find('{') {
            Some(i) => {
                let prefix = &template[..i];
                format!("{prefix}#")
            }
            None => template.clone(),
        }
    }

    /// A `tmq2mqtt run` command line to copy. Passwords are printed only when they are TDengine's
    /// public default; others appear as shell variables (`$TDENGINE_PASSWORD`,
    /// `$SIMULATOR_MQTT_PASSWORD`, the variables the simulator reads them from).
    pub fn bridge_command(&self) -> String {
        let td_password = if self.config.tdengine.password == DEFAULT_PASSWORD {
            DEFAULT_PASSWORD.to_string()
        } else {
            "${TDENGINE_PASSWORD}".to_string()
        };
        let mut mqtt = self.mqtt_dsn_with(true);
        if self.broker.credentials().is_some() {
            mqtt = mqtt.replace(":***@", ":${SIMULATOR_MQTT_PASSWORD}@");
        }
        format!(
            "tmq2mqtt run -f \"{}\" -t \"{}\"",
            self.tmq_dsn_with(&td_password),
            mqtt
        )
    }

    /// Waits until the fleet finished its rows (endless fleets never do) and returns its report;
    /// `None` without a fleet or when it was already awaited. Cancel-safe.
    pub async fn wait_fleet(&mut self) -> Result<Option<FleetReport>, WorldError> {
        // Cancel-safe: the handle stays in place until the task has finished.
        let Some(fleet) = self.fleet.as_mut() else {
            return Ok(None);
        };
        let Some(task) = fleet.task.as_mut() else {
            return Ok(None);
        };
        let result = task.await;
        fleet.task = None;
        let report = result.map_err(|e| WorldError::FleetTask(e.to_string()))??;
        Ok(Some(report))
    }

    /// Stops the fleet (between statements), the broker and the stand-in.
    pub async fn stop(mut self) -> Result<Option<FleetReport>, WorldError> {
        let mut report = None;
        if let Some(mut fleet) = self.fleet.take() {
            if let Some(stop) = fleet.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = fleet.task.take() {
                report = Some(task.await.map_err(|e| WorldError::FleetTask(e.to_string()))??);
            }
        }
        self.broker.stop().await;
        let World { tdengine, .. } = self;
        tdengine.shutdown().await;
        Ok(report)
    }
}
