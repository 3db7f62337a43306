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
    #[arg(long, value_parser = kaas_check::parse_date)]
    pub reference_date: Option<jiff::civil::Date>,
    /// Refresh the release/CVE data from upstream first (GitHub releases of kubernetes/kubernetes,
    /// kubernetes/website schedule.yaml, the Kubernetes CVE feed; 20 s per request, 16 MiB per
    /// answer). If that fails (offline), the error is printed, the report names it, the checks
    /// use the other data, and the exit code is at least 2.
    #[arg(long)]
    pub refresh_data: bool,
    /// Release/CVE data file to use instead of the bundled data (the bundled file's format, e.g.
    /// written by --save-data).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Write the release/CVE data used (after --refresh-data: the fetched data) to FILE, e.g. for
    /// the operator's release-data ConfigMap (docs/compliance.md).
    #[arg(long, value_name = "FILE")]
    pub save_data: Option<PathBuf>,
    /// Only load (and with --refresh-data refresh) the release data, print where it comes from
    /// and how old it is, and save it with --save-data; no cluster is contacted. Exit code 2 if a
    /// requested refresh failed.
    #[arg(long)]
    pub data_only: bool,
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
    let mut data = match &args.data {
        Some(path) => kaas_check::ReleaseData::load(path).map_err(anyhow::Error::msg)?,
        None => kaas_check::ReleaseData::bundled(),
    };
    let mut refresh_failed: Option<String> = None;
    if args.refresh_data {
        eprintln!("refreshing release and CVE data from upstream");
        match kaas_check::upstream::fetch(&data, kaas_check::Timeouts::default().refresh).await {
            Ok(d) => data = d,
            Err(e) => {
                eprintln!(
                    "kaas check: --refresh-data failed: {e}\nkaas check: using {} instead",
                    data.describe()
                );
                refresh_failed = Some(e);
            }
        }
    }
    if let (Some(path), Some(_)) = (&args.save_data, &refresh_failed) {
        eprintln!(
            "kaas check: {} not written: the refresh failed",
            path.display()
        );
    } else if let Some(path) = &args.save_data {
        std::fs::write(path, data.to_yaml())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("release data written to {}", path.display());
    }
    if args.data_only {
        let today = args.reference_date.unwrap_or_else(kaas_check::today_utc);
        println!(
            "{} ({} days old on {today})",
            data.describe(),
            kaas_check::version::days_between(data.releases_as_of, today)
        );
        return Ok(if refresh_failed.is_some() { 2 } else { 0 });
    }
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
        data,
        // Refreshed above; a failure is still named in the report.
        refresh_data: false,
        subject: args.subject.clone(),
        argv: std::env::args().collect(),
        kubeconfig,
        ..CheckOptions::default()
    };
    let mut report = kaas_check::run(client, &opts, &|line: &str| eprintln!("{line}")).await;
    if args.refresh_data {
        report.data.refresh_requested = true;
        report.data.refresh_error = refresh_failed;
    }
    let text = report.render(format);
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(report.exit_code())
}
