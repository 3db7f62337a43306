//! `kaas doctor`: checks a management cluster's prerequisites for kaas and prints each with its
//! fix (logic in `kaas_operator::doctor`). Exit codes: 0 everything ok, 1 at least one problem,
//! 2 something could not be checked (or usage and connection errors).

use std::path::PathBuf;

use anyhow::{Context, Result};
use kaas_operator::doctor::{self, Options};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::OutputFormat;

/// Flags of `kaas doctor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the operator's leader Lease.
    #[arg(long, default_value = "kaas-system")]
    pub lease_namespace: String,
    /// text (a table with the fixes) or json.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Runs the checks; returns the exit code.
pub async fn run(args: Args) -> Result<u8> {
    let client = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Client::try_from(
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?,
            )?
        }
        None => kube::Client::try_default()
            .await
            .context("connecting to the management cluster")?,
    };
    let findings = doctor::diagnose(
        &client,
        &Options {
            lease_namespace: args.lease_namespace,
        },
    )
    .await;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&findings)?),
        OutputFormat::Text => print!("{}", doctor::table(&findings)),
    }
    Ok(doctor::exit_code(&findings))
}
