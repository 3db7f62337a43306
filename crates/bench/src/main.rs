//! `kaas-bench`: benchmarks of kaas against a real local management plane (started with
//! `kaas-harness`). Not a test: nothing asserts a time; the figures go to `BENCHMARKS.md`.
//!
//! ```sh
//! cargo build --release -p kaas          # the operator binary the benchmark runs
//! cargo run --release -p kaas-bench -- operator-scale --clusters 1000 [--with-capi] [--json]
//! ```

mod probe;
mod report;
mod scale;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kaas-bench",
    about = "Benchmarks of kaas against a real management plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The operator at scale: N SCS Clusters against the real `kaas operator` binary, a bare-client
    /// baseline writing the same objects, spec-change latency, and (optionally) the Cluster API
    /// core manager's memory at the same count.
    OperatorScale(scale::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::OperatorScale(args) => rt.block_on(operator_scale(args)),
    }
}

async fn operator_scale(args: scale::Args) -> anyhow::Result<()> {
    let json = args.json;
    let timeout = Duration::from_secs(args.timeout_secs);
    let report = Arc::new(Mutex::new(report::Report::new(&args)));
    let outcome = tokio::select! {
        r = scale::run(args, report.clone()) => r.err().map(|e| format!("{e:#}")),
        _ = tokio::time::sleep(timeout) => Some(format!(
            "global timeout (--timeout-secs {}) reached; figures below are partial",
            timeout.as_secs()
        )),
        _ = tokio::signal::ctrl_c() => Some("interrupted; figures below are partial".into()),
    };
    // The run's future is dropped here: the plane and the operator are stopped.
    let mut report = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(why) = &outcome {
        eprintln!("[kaas-bench] incomplete: {why}");
        report.incomplete = Some(why.clone());
    }
    println!("{}", report.markdown());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    match outcome {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}
