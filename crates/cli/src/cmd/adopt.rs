//! `kaas adopt`: an existing Cluster API cluster built on a ClusterClass becomes an SCS `Cluster`
//! managed by kaas, in place — no machine is recreated or rolled (`docs/adoption.md`). Run by the
//! provider admin: it writes both sides of the adoption handshake. Exit 0 adopted (or, with
//! `--dry-run`, adoptable), 1 refused (one line per reason, nothing written), 2 on error.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kaas_operator::adopt::{self, Request, Verdict};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::OutputFormat;

/// Flags of `kaas adopt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Namespace of the Cluster API Cluster.
    #[arg(short, long)]
    pub namespace: String,
    /// Name of the Cluster API Cluster.
    #[arg(long)]
    pub name: String,
    /// Provider offering the SCS Cluster uses (`kubectl get providers.scs.community`).
    #[arg(short, long)]
    pub provider: String,
    /// Tenant namespace the SCS Cluster goes into.
    #[arg(short, long)]
    pub tenant: String,
    /// Name of the SCS Cluster (default: the Cluster API Cluster's name).
    #[arg(long = "as")]
    pub as_name: Option<String>,
    /// Only print the SCS Cluster and the verdict; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// text (default: the verdict, and with --dry-run the Cluster as YAML), yaml (the Cluster)
    /// or json (`{adoptable, refusals, notes, cluster}`).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Kubeconfig of the management cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

async fn client(path: Option<PathBuf>) -> Result<kube::Client> {
    let path = path.or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
    let config = match &path {
        Some(p) => {
            let kc =
                Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig (use --kubeconfig)")?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn cluster_yaml(v: &Verdict) -> Result<String> {
    let mut value = serde_json::to_value(&v.cluster)?;
    value["apiVersion"] = "scs.community/v1alpha1".into();
    value["kind"] = "Cluster".into();
    Ok(serde_yaml::to_string(&value)?)
}

fn report(v: &Verdict, req: &Request, output: OutputFormat, print_cluster: bool) -> Result<()> {
    let what = format!(
        "Cluster API Cluster {}/{} as SCS Cluster {}/{} (provider {})",
        req.namespace,
        req.name,
        req.tenant,
        req.scs_name(),
        req.provider
    );
    match output {
        OutputFormat::Json => {
            let mut cluster = serde_json::to_value(&v.cluster)?;
            cluster["apiVersion"] = "scs.community/v1alpha1".into();
            cluster["kind"] = "Cluster".into();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "adoptable": v.ok(),
                    "refusals": v.refusals,
                    "notes": v.notes,
                    "cluster": cluster,
                }))?
            );
        }
        OutputFormat::Yaml if v.ok() => print!("{}", cluster_yaml(v)?),
        _ if v.ok() && print_cluster => print!("{}", cluster_yaml(v)?),
        _ => {}
    }
    if v.ok() {
        eprintln!("kaas adopt: {what}: adoptable");
    } else {
        eprintln!("kaas adopt: {what}: refused");
        for r in &v.refusals {
            eprintln!("kaas adopt: refused: {r}");
        }
    }
    for n in &v.notes {
        eprintln!("kaas adopt: note: {n}");
    }
    Ok(())
}

/// Runs `kaas adopt`: `Ok(true)` adopted (or adoptable with --dry-run), `Ok(false)` refused.
pub async fn run(args: Args) -> Result<bool> {
    let req = Request {
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        provider: args.provider.clone(),
        tenant: args.tenant.clone(),
        scs_name: args.as_name.clone(),
    };
    let client = client(args.kubeconfig.clone()).await?;
    let verdict = adopt::plan(&client, &req).await?;
    report(&verdict, &req, args.output, args.dry_run)?;
    if !verdict.ok() {
        eprintln!("kaas adopt: nothing written");
        return Ok(false);
    }
    if args.dry_run {
        eprintln!("kaas adopt: --dry-run: nothing written");
        return Ok(true);
    }
    adopt::apply(&client, &req, &verdict).await?;
    eprintln!(
        "kaas adopt: annotated Cluster API Cluster {}/{} with {}={}/{}",
        req.namespace,
        req.name,
        kaas_api::ANNOTATION_ADOPTED_BY,
        req.tenant,
        req.scs_name()
    );
    eprintln!(
        "kaas adopt: created SCS Cluster {}/{} ({}={}/{}); the operator manages the cluster in place from now on, and deleting the SCS Cluster deletes it",
        req.tenant,
        req.scs_name(),
        kaas_api::ANNOTATION_ADOPT_FROM,
        req.namespace,
        req.name
    );
    Ok(true)
}
