//! `simulator meters`: the smart-meter fleet from the command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use simulator::meters::{Chaos, Fleet, FleetConfig, FleetReport, StopAfter};

use super::{probability, Exit};

#[derive(Args, Debug, Clone)]
pub struct MetersArgs {
    /// TDengine DSN (taosAdapter WebSocket).
    #[arg(
        long,
        env = "TDENGINE_DSN",
        hide_env_values = true,
        default_value = "ws://root:taosdata@127.0.0.1:6041"
    )]
    pub dsn: String,
    #[arg(long, default_value = "power")]
    pub db: String,
    /// VGROUPS of the database created with --create.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub vgroups: u32,
    /// Number of meters (child tables d0…dN-1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub meters: u32,
    /// Stop after this many row writes (default 1000 when --duration is not given).
    #[arg(long, conflicts_with = "duration")]
    pub rows: Option<u64>,
    /// Stop after this much time (e.g. 60s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Rows per second (default: as fast as TDengine takes them).
    #[arg(long, value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Rows per INSERT statement (with --rate, at most one second's worth).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Seed of every random choice: same seed and --start-ms, same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Create the database and the super table first (IF NOT EXISTS).
    #[arg(long)]
    pub create: bool,
    /// Timestamp of the first reading in epoch milliseconds (default: now).
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Reporting interval of each meter (timestamp step), e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Write the write log (every statement and row, with replacements and deletions) as NDJSON here.
    // `--ledger`, the flag's former name, is still accepted (hidden) so old command lines keep working.
    #[arg(long, alias = "ledger")]
    pub write_log: Option<PathBuf>,
    /// No progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Give up after connection errors lasting this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,

    /// Chaos: turn every chaos option on at moderate rates (explicit options below override).
    #[arg(long, help_heading = "Chaos")]
    pub chaos: bool,
    /// Probability that a reading arrives late (out of order), 0–1.
    #[arg(long, value_parser = probability, help_heading = "Chaos")]
    pub out_of_order: Option<f64>,
    /// Probability that a row rewrites an earlier timestamp (an update), 0–1.
    #[arg(long, value_parser = probability, help_heading = "Chaos")]
    pub updates: Option<f64>,
    /// Probability that a column value is NULL, 0–1.
    #[arg(long, value_parser = probability, help_heading = "Chaos")]
    pub nulls: Option<f64>,
    /// Meters that appear mid-run.
    #[arg(long, help_heading = "Chaos")]
    pub new_meters: Option<u32>,
    /// Add a column (power FLOAT) to the super table mid-run.
    #[arg(long, help_heading = "Chaos")]
    pub add_column: bool,
    /// Drop one meter's table mid-run.
    #[arg(long, help_heading = "Chaos")]
    pub drop_meter: bool,
    /// Delete a time range of one meter mid-run.
    #[arg(long, help_heading = "Chaos")]
    pub delete_range: bool,
    /// Rows written before the mid-run events (default: half of --rows, or 1000).
    #[arg(long, help_heading = "Chaos")]
    pub chaos_after: Option<u64>,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("`{s}` is not a positive number of rows per second")),
    }
}

impl MetersArgs {
    pub fn config(&self) -> FleetConfig {
        let base = if self.chaos {
            Chaos::all()
        } else {
            Chaos::default()
        };
        let chaos = Chaos {
            out_of_order: self.out_of_order.unwrap_or(base.out_of_order),
            updates: self.updates.unwrap_or(base.updates),
            nulls: self.nulls.unwrap_or(base.nulls),
            new_meters: self.new_meters.unwrap_or(base.new_meters),
            add_column: self.add_column || base.add_column,
            drop_meter: self.drop_meter || base.drop_meter,
            delete_range: self.delete_range || base.delete_range,
            after_rows: self.chaos_after,
        };
        let stop = match (self.rows, self.duration) {
            (_, Some(d)) => StopAfter::Duration(d),
            (Some(n), None) => StopAfter::Rows(n),
            (None, None) => StopAfter::Rows(1000),
        };
        FleetConfig {
            dsn: self.dsn.clone(),
            db: self.db.clone(),
            vgroups: self.vgroups,
            meters: self.meters,
            stop,
            rate: self.rate,
            batch: self.batch as usize,
            seed: self.seed,
            create: self.create,
            start_ms: self
                .start_ms
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            interval_ms: (self.interval.as_millis() as i64).max(1),
            chaos,
            write_log_path: self.write_log.clone(),
            keep_entries: false,
            progress: !self.no_progress,
            retry_for: self.retry_for,
            ..FleetConfig::default()
        }
    }
}

/// Runs the fleet; exit code 3 when TDengine rejected rows (each was logged with its values).
pub async fn run_fleet(config: FleetConfig) -> Result<FleetReport, Exit> {
    let fleet = Fleet::new(config)?;
    let report = fleet.run(super::shutdown_signal()).await?;
    Ok(report)
}

pub async fn run(args: MetersArgs) -> Result<(), Exit> {
    let config = args.config();
    eprintln!(
        "fleet: {} meters into {} (seed {}, start {} ms)",
        config.meters, config.db, config.seed, config.start_ms
    );
    let report = run_fleet(config).await?;
    println!("{report}");
    if report.rows_rejected > 0 {
        return Err(Exit {
            code: 3,
            message: format!("TDengine rejected {} rows (logged above)", report.rows_rejected),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        meters: MetersArgs,
    }

    #[test]
    fn the_write_log_path_is_taken_from_write_log_or_its_former_name() {
        for flag in ["--write-log", "--ledger"] {
            let cli = Cli::try_parse_from(["meters", flag, "/tmp/w.ndjson"]).unwrap();
            assert_eq!(
                cli.meters.config().write_log_path,
                Some(PathBuf::from("/tmp/w.ndjson")),
                "{flag}"
            );
        }
    }
}
