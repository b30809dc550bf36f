//! `simulator`: the outside world of the tmq2mqtt test bench as one binary — the embedded MQTT
//! broker, the smart-meter fleet, and `world`, which starts everything in one process.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "simulator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
            Command::Broker(args) => cli::broker::run(args).await,
            Command::Meters(args) => cli::meters::run(args).await,
            Command::World(args) => cli::world::run(args).await,
        }
    });
    cli::exit(result)
}
