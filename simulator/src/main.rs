//! `simulator`: the outside world of the tmq2mqtt test bench as a command-line tool.
//! `simulator tdengine` serves the TDengine stand-in until SIGINT/SIGTERM; `broker` runs the
//! embedded MQTT broker; `meters` runs the smart-meter fleet; `world` starts all of them in one
//! process.

mod cli;

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use simulator::tdengine::{server::TdTls, TdConfig, TdServer};

#[derive(Parser)]
#[command(name = "simulator", version, about = "The outside world for tmq2mqtt tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the TDengine stand-in (taosAdapter's WebSocket protocol: /ws, /rest/ws, /rest/tmq).
    Tdengine {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6041")]
        listen: SocketAddr,
        /// Version reported to clients; >= 3.3.0.8 makes `taos` 0.12.3 use binary SQL, >= 3.3.2.0 makes the
        /// newer client generation (taos-ws-py) fetch TMQ data with `fetch_raw_data`.
        #[arg(long, default_value = simulator::tdengine::server::DEFAULT_SERVER_VERSION)]
        server_version: String,
        #[arg(long, default_value = "root")]
        user: String,
        #[arg(
            long,
            default_value = "taosdata",
            env = "TDENGINE_PASSWORD",
            hide_env_values = true
        )]
        password: String,
        /// Serve `wss://`: the server certificate chain (PEM, leaf first). Needs --tls-key.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<std::path::PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<std::path::PathBuf>,
    },
    /// Run rumqttd in-process with an MQTT 3.1.1 and optionally an MQTT 5.0 listener.
    Broker(cli::broker::BrokerArgs),
    /// Write smart-meter rows into TDengine (the stand-in or a real one) through the `taos` client.
    Meters(cli::meters::MetersArgs),
    /// Start the TDengine stand-in, the broker and optionally the fleet in one process.
    World(cli::world::WorldArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Tdengine {
                listen,
                server_version,
                user,
                password,
                tls_cert,
                tls_key,
            } => {
                let tls = match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => match TdTls::from_files(&cert, &key) {
                        Ok(tls) => Some(tls),
                        Err(e) => return Err(cli::Exit::from(anyhow::Error::from(e))),
                    },
                    _ => None,
                };
                let config = TdConfig {
                    listen,
                    server_version,
                    user,
                    password,
                    tls,
                    ..TdConfig::default()
                };
                run_tdengine(config).await.map_err(cli::Exit::from)
            }
            Command::Broker(args) => cli::broker::run(args).await,
            Command::Meters(args) => cli::meters::run(args).await,
            Command::World(args) => cli::world::run(args).await,
        }
    });
    cli::exit(result)
}

async fn run_tdengine(config: TdConfig) -> anyhow::Result<()> {
    let server = TdServer::start(config)
        .await
        .context("starting the TDengine stand-in")?;
    println!(
        "TDengine stand-in listening on {}://{}",
        server.scheme(),
        server.addr()
    );
    cli::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
