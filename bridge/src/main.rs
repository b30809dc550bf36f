//! The `tmq2mqtt` command line: `run` the bridge or `check` a configuration.
//!
//! Exit codes: 0 success (including a graceful shutdown on SIGINT/SIGTERM), 1 runtime failure,
//! 2 bad input (one line naming the parameter).

use std::{num::NonZeroUsize, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use tmq2mqtt::{
    check::check,
    metrics,
    redact::{RedactingWriter, Secrets},
    run::runtime_workers,
    Bridge, BridgeConfig,
};

const EXAMPLES: &str = "\
Examples:
  # The taosx example, unchanged but for the command name:
  tmq2mqtt run \\
    -f \"tmq+ws://root:taosdata@localhost:6041/topic_meters?group.id=taosx-pub-test&auto.offset.reset=earliest\" \\
    -t \"mqtt://localhost:1883?topic=test/topic_meters&qos=1&version=5.0&client_id=taosx-pub-meters\"

  # One MQTT topic per table, meta events (create/alter/drop, no deletes) on their own topic:
  tmq2mqtt run \\
    -f \"tmq+ws://root:taosdata@localhost:6041/topic_meters?group.id=g1&with.meta=true&with.meta.delete=false\" \\
    -t \"mqtt://localhost:1883?version=3.1.1&qos=2&client_id=b1&topic=meters/{vgroup_id}/{table}&meta_topic=meta/{database}\"

  # Keep passwords out of the process list:
  export TMQ2MQTT_FROM='tmq+ws://root:taosdata@localhost:6041/topic_meters?group.id=g1'
  export TMQ2MQTT_TO='mqtt://user:secret@localhost:1883?version=5.0&client_id=b1&topic=t'
  tmq2mqtt check && tmq2mqtt run

Topic variables: {database} {tmq_topic} {vgroup_id} {stable} {table}; a message lacking one is skipped
(counted). Offsets are committed only after the broker acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP).
Every DSN parameter is described in docs/configuration.md.";

#[derive(Parser)]
#[command(name = "tmq2mqtt", version, about = "Publish TDengine TMQ subscriptions to MQTT (a drop-in for `taosx run -f tmq+ws://… -t mqtt://…`), committing offsets only after the broker acknowledged", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (RUST_LOG syntax), e.g. `info`, `tmq2mqtt=debug`.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    log: String,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Worker threads of the runtime beside the MQTT thread (default: one per core but one, at least one).
    #[arg(long, global = true, env = "TOKIO_WORKER_THREADS")]
    worker_threads: Option<NonZeroUsize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGINT/SIGTERM.
    #[command(after_help = EXAMPLES)]
    Run {
        #[command(flatten)]
        dsns: Dsns,
        /// How long shutdown waits for outstanding acknowledgements before committing what was acked.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        shutdown_timeout: Duration,
        /// Serve Prometheus `/metrics` and `/healthz` (200 when TDengine and the broker are both
        /// connected, else 503) on this address, e.g. `127.0.0.1:9464`.
        #[arg(long, env = "TMQ2MQTT_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Validate both DSNs, connect to TDengine (subscribe, without consuming) and to the broker, report.
    Check {
        #[command(flatten)]
        dsns: Dsns,
        /// How long to wait for each end.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Args)]
struct Dsns {
    /// Source: `tmq+ws://user:pass@host:port/topic?group.id=…` (taosx syntax).
    #[arg(short = 'f', long = "from", env = "TMQ2MQTT_FROM", hide_env_values = true)]
    from: String,
    /// Target: `mqtt://[user:pass@]host:port?version=…&client_id=…&topic=…` (taosx syntax).
    #[arg(short = 't', long = "to", env = "TMQ2MQTT_TO", hide_env_values = true)]
    to: String,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let (dsns, action) = match &cli.command {
        Command::Run {
            dsns,
            shutdown_timeout,
            metrics_addr,
        } => (dsns, Ok((*shutdown_timeout, *metrics_addr))),
        Command::Check { dsns, timeout } => (dsns, Err(*timeout)),
    };
    let parsed = BridgeConfig::from_dsns(&dsns.from, &dsns.to);
    // Every line leaving the process is masked: dependencies log what they send (the `taos` client its
    // connect request, password included, at trace).
    let secrets = parsed
        .as_ref()
        .map(Secrets::of)
        .unwrap_or_default()
        .with_typed(&dsns.from)
        .with_typed(&dsns.to);
    init_logs(&cli, secrets.clone());
    let mut config = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", secrets.redact(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let workers = cli
        .worker_threads
        .map_or_else(|| runtime_workers(cores), NonZeroUsize::get);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        match action {
            Ok((shutdown_timeout, metrics_addr)) => {
                config.shutdown_timeout = shutdown_timeout;
                let bridge = Bridge::new(config);
                if let Some(addr) = metrics_addr {
                    let served = match metrics::install_recorder() {
                        Ok(handle) => metrics::serve(addr, bridge.stats(), handle)
                            .await
                            .map_err(|e| format!("--metrics-addr {addr}: {e}")),
                        Err(e) => Err(e),
                    };
                    match served {
                        Ok(server) => {
                            tokio::spawn(server);
                        }
                        Err(e) => {
                            eprintln!("error: {}", secrets.redact(&e));
                            return ExitCode::from(1);
                        }
                    }
                }
                match bridge.run(shutdown_signal()).await {
                    Ok(summary) => {
                        eprintln!(
                            "stopped: {} messages, {} rows, {} published, {} acknowledged, skipped {:?}, committed {:?}",
                            summary.messages,
                            summary.rows,
                            summary.published,
                            summary.acked,
                            summary.skipped,
                            summary.committed
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {}", secrets.redact(&e.to_string()));
                        ExitCode::from(1)
                    }
                }
            }
            Err(timeout) => {
                let report = check(&config, timeout).await;
                for line in &report.lines {
                    println!("{}", secrets.redact(line));
                }
                if report.ok {
                    println!("ok");
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
        }
    })
}

/// A command-line error as one line: clap's message (with what it lists, e.g. the missing arguments) without
/// its usage and `--help` hints.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let message = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    message.collect::<Vec<_>>().join(" ")
}

/// Logs to stderr through the password mask, filtered by `--log`/`RUST_LOG`.
fn init_logs(cli: &Cli, secrets: Secrets) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingWriter::new(std::io::stderr, secrets));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("signal received");
}
