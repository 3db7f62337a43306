//! `kaas-bench`: benchmarks of kaas against a real local management plane (started with
//! `kaas-harness`). Not a test: nothing asserts a time; the figures go to `BENCHMARKS.md`.
//!
//! ```sh
//! cargo build --release -p kaas          # the operator binary the benchmark runs
//! cargo run --release -p kaas-bench -- operator-scale --clusters 1000 [--with-capi] [--json]
//! cargo run --release -p kaas-bench -- operator-settled --clusters 20 [--json]   # idle Ready clusters
//! cargo run --release -p kaas-bench -- chaos all --clusters 10   # fault injection (RELIABILITY.md)
//! ```

mod probe;
mod report;
mod scale;
mod settled;

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
    /// What idle Ready clusters cost: N SCS Clusters made Ready by the real Cluster API managers
    /// (in-memory infrastructure), then the real `kaas operator` binary's requests, reconciles
    /// and CPU over a quiet window longer than the 5-minute requeue of settled clusters.
    OperatorSettled(settled::Args),
    /// Fault injection on the real plane (kube-apiserver killed, etcd stopped, clusters deleted
    /// mid-creation and mid-upgrade, the operator SIGKILLed repeatedly, the leader replica
    /// SIGKILLed, the Cluster API core manager SIGKILLed during upgrades): invariants checked,
    /// recovery times printed (RELIABILITY.md).
    Chaos(ChaosArgs),
}

/// Flags of `chaos`.
#[derive(clap::Args, Debug)]
struct ChaosArgs {
    /// The scenario, or `all`.
    #[arg(value_enum)]
    scenario: kaas_bench::chaos::Scenario,
    /// SCS Clusters per scenario.
    #[arg(long, default_value_t = 10)]
    clusters: usize,
    /// How long the fault lasts (kube-apiserver down, etcd stopped, Cluster API core manager
    /// down), seconds.
    #[arg(long, default_value_t = 30)]
    fault_secs: u64,
    /// Bound of each wait for convergence, seconds.
    #[arg(long, default_value_t = 900)]
    converge_secs: u64,
    /// The `kaas` binary (default: target/release/kaas, else target/debug/kaas).
    #[arg(long)]
    kaas_bin: Option<std::path::PathBuf>,
    /// Keep the daemons' logs in this directory.
    #[arg(long)]
    keep_logs: Option<std::path::PathBuf>,
    /// Bound of the whole run, seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// `kills`: how many times the operator is SIGKILLed.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// `kills`: seconds from a restart to the next SIGKILL, at most (at least a fifth of it).
    #[arg(long, default_value_t = 15)]
    kill_every_secs: u64,
    /// `kills`: seed of the random moments (0: from the clock; printed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::OperatorScale(args) => rt.block_on(operator_scale(args)),
        Command::OperatorSettled(args) => rt.block_on(operator_settled(args)),
        Command::Chaos(args) => rt.block_on(chaos(args)),
    }
}

async fn chaos(args: ChaosArgs) -> anyhow::Result<()> {
    use kaas_bench::chaos;
    let kaas_bin = match args.kaas_bin {
        Some(p) => p,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .or_else(|| kaas_harness::repo_root().map(|r| r.join("target")))
                .ok_or_else(|| anyhow::anyhow!("cannot find the workspace; pass --kaas-bin"))?;
            let release = target.join("release/kaas");
            if release.is_file() {
                release
            } else {
                target.join("debug/kaas")
            }
        }
    };
    eprintln!("[kaas-bench] kaas binary: {}", kaas_bin.display());
    let opts = chaos::Options {
        clusters: args.clusters.max(1),
        kaas_bin,
        fault: Duration::from_secs(args.fault_secs),
        converge_timeout: Duration::from_secs(args.converge_secs),
        keep_logs: args.keep_logs,
        kills: args.kills,
        kill_every: (
            Duration::from_secs(args.kill_every_secs.max(1)) / 5,
            Duration::from_secs(args.kill_every_secs.max(1)),
        ),
        restart_after: (Duration::from_millis(500), Duration::from_secs(3)),
        seed: args.seed,
    };
    let started = jiff::Timestamp::now();
    let mut failed = Vec::new();
    let mut tables = Vec::new();
    let deadline = Duration::from_secs(args.timeout_secs);
    let t0 = std::time::Instant::now();
    for s in args.scenario.expand() {
        let left = deadline.saturating_sub(t0.elapsed());
        let r = tokio::select! {
            r = chaos::run(s, &opts) => r,
            _ = tokio::time::sleep(left) => Err(anyhow::anyhow!("global timeout (--timeout-secs) reached")),
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        match r {
            Ok(o) => tables.push(o.markdown()),
            Err(e) => {
                eprintln!("[kaas-bench] chaos {}: FAILED: {e:#}", s.name());
                failed.push(format!("{}: {e:#}", s.name()));
            }
        }
    }
    println!(
        "chaos {} --clusters {} --fault-secs {} (started {})\n",
        args.scenario.name(),
        opts.clusters,
        args.fault_secs,
        started.strftime("%Y-%m-%d %H:%M UTC")
    );
    for t in tables {
        println!("{t}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("failed: {}", failed.join("; "))
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

async fn operator_settled(args: settled::Args) -> anyhow::Result<()> {
    let json = args.json;
    let timeout = Duration::from_secs(args.timeout_secs);
    let report = Mutex::new(settled::Report::default());
    let outcome = tokio::select! {
        r = settled::run(args, &report) => r.err().map(|e| format!("{e:#}")),
        _ = tokio::time::sleep(timeout) => Some(format!(
            "global timeout (--timeout-secs {}) reached; figures below are partial",
            timeout.as_secs()
        )),
        _ = tokio::signal::ctrl_c() => Some("interrupted; figures below are partial".into()),
    };
    // The run's future is dropped here: the plane and the operator are stopped.
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = &outcome {
        eprintln!("[kaas-bench] incomplete: {why}");
        report.incomplete = Some(why.clone());
    }
    println!("{}", report.text());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    match outcome {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}
