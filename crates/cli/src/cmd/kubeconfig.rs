//! `kaas kubeconfig NAME --expiration 1h [--viewer]`: a short-lived kubeconfig for a workload
//! cluster. Creates a `KubeconfigRequest` with the identity of the current kubeconfig, waits for
//! the operator to issue it (progress on stderr) and prints the kubeconfig on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use kaas_api::kubeconfig::KubeconfigRole;

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the SCS Cluster.
    pub name: String,
    /// Lifetime of the credential (`30m`, `1h`, `1h30m`); at most the provider's
    /// `spec.access.maxKubeconfigLifetime` (default 24h).
    #[arg(long, default_value = "1h")]
    pub expiration: String,
    /// A read-only credential (group `kaas:viewers`, ClusterRole `view`) instead of admin.
    #[arg(long)]
    pub viewer: bool,
    /// The cluster's (tenant) namespace; default: the kubeconfig context's namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Kubeconfig of the management cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for the operator.
    #[arg(long, default_value = "120s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    kaas_api::kubeconfig::parse_duration(s).ok_or_else(|| format!("{s:?}: use 30s, 2m, 1h"))
}

/// Runs it: the kubeconfig on stdout.
pub async fn run(a: Args) -> Result<()> {
    let config =
        super::kube_config(a.kubeconfig.as_deref(), "no kubeconfig (use --kubeconfig)").await?;
    let ns = a
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    let role = if a.viewer {
        KubeconfigRole::Viewer
    } else {
        KubeconfigRole::Admin
    };
    let yaml = kaas_operator::kubeconfig::request(
        &client,
        &ns,
        &a.name,
        &a.expiration,
        role,
        a.timeout,
        |line| eprintln!("kaas: {line}"),
    )
    .await?;
    print!("{yaml}");
    Ok(())
}
