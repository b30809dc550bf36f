//! `simulator`: the outside world of the tmq2mqtt test bench as a command-line tool.
//! `simulator tdengine` serves the TDengine stand-in until SIGINT/SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use simulator::tdengine::{TdConfig, TdServer};

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
        /// Version reported to clients; >= 3.3.0.8 makes the official client use binary SQL.
        #[arg(long, default_value = "3.3.0.0")]
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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Tdengine {
            listen,
            server_version,
            user,
            password,
        } => {
            let config = TdConfig {
                listen,
                server_version,
                user,
                password,
                ..TdConfig::default()
            };
            let server = TdServer::start(config)
                .await
                .context("starting the TDengine stand-in")?;
            println!("TDengine stand-in listening on ws://{}", server.addr());
            shutdown_signal().await;
            server.shutdown().await;
        }
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
