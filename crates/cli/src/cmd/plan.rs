//! `kaas plan`: what a change to a Cluster will do — the spec diff, what rolls and in which order,
//! the upgrade steps, whether it waits for the maintenance window, the objects that change, or why
//! it is refused ([`kaas_render::plan`]). Offline with `--current` and `--provider` files; without
//! them the stored cluster and its Provider are read from the management cluster with the current
//! kubeconfig's identity.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kaas_api::{Cluster, Provider};
use kaas_render::plan::Timestamp;
use kube::Api;

use crate::OutputFormat;
use crate::docs;

/// `kaas plan -f new.yaml [--current current.yaml] [--provider provider.yaml]`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The proposed Cluster (one Cluster document; `-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// The cluster as stored now, with its status (the version it runs). Default: read from the
    /// management cluster.
    #[arg(long)]
    pub current: Option<PathBuf>,
    /// The Provider offering. Default: the one the cluster names, read from the management
    /// cluster.
    #[arg(short, long)]
    pub provider: Option<PathBuf>,
    /// Kubeconfig of the management cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Plan as of this time (RFC 3339, e.g. `2026-11-23T02:30:00Z`) instead of now: whether a
    /// patch update waits for the maintenance window.
    #[arg(long)]
    pub at: Option<Timestamp>,
    /// text (default), yaml or json.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn one<T: serde::de::DeserializeOwned>(path: &Path, kind: &str) -> Result<T> {
    let docs = docs::read(&[path.to_path_buf()])?;
    let found: Vec<_> = docs.iter().filter(|d| d.kind() == kind).collect();
    let [d] = found.as_slice() else {
        bail!(
            "{}: expected exactly one {kind} document, found {}",
            path.display(),
            found.len()
        );
    };
    let value = d
        .value
        .clone()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_value(value).with_context(|| format!("{}: not a {kind}", path.display()))
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client> {
    let config = super::kube_config(
        kubeconfig.map(PathBuf::as_path),
        "no kubeconfig (use --kubeconfig, or --current and --provider files)",
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Prints the plan. Returns false when the change is refused.
pub async fn run(args: Args) -> Result<bool> {
    let proposed: Cluster = one(&args.file, "Cluster")?;
    let needs_client = args.current.is_none() || args.provider.is_none();
    let client = if needs_client {
        Some(client(args.kubeconfig.as_ref()).await?)
    } else {
        None
    };
    let current: Cluster = match &args.current {
        Some(p) => one(p, "Cluster")?,
        None => {
            let client = client.clone().expect("a client when --current is missing");
            let name = proposed
                .metadata
                .name
                .clone()
                .context("the proposed Cluster has no metadata.name")?;
            let ns = proposed
                .metadata
                .namespace
                .clone()
                .context("the proposed Cluster has no metadata.namespace")?;
            Api::<Cluster>::namespaced(client, &ns)
                .get(&name)
                .await
                .with_context(|| format!("reading the stored cluster {ns}/{name}"))?
        }
    };
    let provider: Provider = match &args.provider {
        Some(p) => one(p, "Provider")?,
        None => {
            let client = client.expect("a client when --provider is missing");
            let name = current
                .spec
                .provider
                .as_ref()
                .and_then(|p| p.name.clone())
                .or_else(|| proposed.spec.provider.as_ref().and_then(|p| p.name.clone()))
                .context("the cluster names no provider (spec.provider.name); pass --provider")?;
            Api::<Provider>::all(client)
                .get(&name)
                .await
                .with_context(|| format!("reading provider {name}"))?
        }
    };
    let plan = kaas_render::plan::plan(
        &current,
        &proposed,
        &provider,
        args.at.unwrap_or_else(Timestamp::now),
    );
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&plan)?),
        OutputFormat::Text => print!("{}", plan.to_text()),
    }
    Ok(!plan.refused)
}
