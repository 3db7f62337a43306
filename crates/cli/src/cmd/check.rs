//! `kaas check`: black-box SCS KaaS compliance checks against any cluster, from nothing but a
//! kubeconfig. Exit codes: 0 every testcase that ran passed, 1 at least one FAIL, 2 only ABORTs
//! (or nothing could run), usage and I/O errors.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kaas_check::report::Format;
use kaas_check::{CheckOptions, ConformanceMode};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Flags of `kaas check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kubeconfig of the cluster to check (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Output: table (default, with remediation hints), scs (the SCS `<id>: PASS|FAIL|ABORT`
    /// lines), scs-yaml (the SCS report), json, junit.
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// Only the static testcases (create nothing in the cluster).
    #[arg(long)]
    pub static_only: bool,
    /// Probe node ports from here (scs-0217).
    #[arg(long)]
    pub port_probes: bool,
    /// Conformance: skip (default), quick, certified, or a path to earlier results (junit_01.xml).
    #[arg(long, default_value = "skip")]
    pub conformance: String,
    /// Judge as of this day (YYYY-MM-DD) instead of today.
    #[arg(long)]
    pub reference_date: Option<chrono::NaiveDate>,
    /// Try to refresh release/CVE data from upstream first (falls back to the bundled data).
    #[arg(long)]
    pub refresh_data: bool,
    /// Name of the cluster in reports.
    #[arg(long, default_value = "kubernetes")]
    pub subject: String,
    /// Write the report here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the checks; returns the exit code.
pub async fn run(args: Args) -> Result<u8> {
    let format: Format = args.output.parse().map_err(anyhow::Error::msg)?;
    let kubeconfig = args
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
    let client = match &kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Client::try_from(
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?,
            )?
        }
        None => kube::Client::try_default()
            .await
            .context("no kubeconfig (use --kubeconfig)")?,
    };
    let opts = CheckOptions {
        reference_date: args.reference_date,
        behavioural: !args.static_only,
        port_probes: args.port_probes,
        conformance: match args.conformance.as_str() {
            "skip" => ConformanceMode::Skip,
            "quick" => ConformanceMode::Quick,
            "certified" => ConformanceMode::Certified,
            path => ConformanceMode::Results(PathBuf::from(path)),
        },
        refresh_data: args.refresh_data,
        subject: args.subject.clone(),
        argv: std::env::args().collect(),
        kubeconfig,
        ..CheckOptions::default()
    };
    let report = kaas_check::run(client, &opts, &|line: &str| eprintln!("{line}")).await;
    let text = report.render(format);
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(report.exit_code())
}
