//! `kaas describe cluster` and `kaas diagnose`: the diagnosis of one SCS Cluster
//! (`kaas_diagnose`) with the identity of the current kubeconfig. What that identity may not read
//! shows as "not visible to you".

use std::path::PathBuf;

use anyhow::Result;

use crate::OutputFormat;

/// What to describe.
#[derive(clap::Subcommand, Debug)]
pub enum Describe {
    /// An SCS Cluster: the tree down to the Cluster API machines, recent events, what it waits
    /// for and what to do.
    Cluster(Target),
}

/// Which cluster, how to reach the management cluster, and the output.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// Name of the SCS Cluster.
    pub name: String,
    /// Its (tenant) namespace; default: the kubeconfig context's namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Kubeconfig of the management cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// text (default), yaml or json (the full diagnosis; its schema is documented in
    /// kaas_diagnose).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

async fn client(t: &Target) -> Result<(kube::Client, String)> {
    let config =
        super::kube_config(t.kubeconfig.as_deref(), "no kubeconfig (use --kubeconfig)").await?;
    let ns = t
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((kube::Client::try_from(config)?, ns))
}

async fn diagnosis(t: &Target) -> Result<kaas_diagnose::Diagnosis> {
    let (client, ns) = client(t).await?;
    Ok(kaas_diagnose::diagnose(&client, &ns, &t.name).await?)
}

fn print_full(d: &kaas_diagnose::Diagnosis, output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Text => print!("{}", d.to_text()),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(d)?),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(d)?),
    }
    Ok(())
}

/// `kaas describe …`.
pub async fn describe(what: Describe) -> Result<()> {
    match what {
        Describe::Cluster(t) => print_full(&diagnosis(&t).await?, t.output),
    }
}

/// `kaas diagnose`: only what needs attention (text), or the full diagnosis (yaml, json).
/// Returns whether the verdict is healthy (Ready, nothing failing, nothing degraded).
pub async fn diagnose(t: Target) -> Result<bool> {
    let d = diagnosis(&t).await?;
    match t.output {
        OutputFormat::Text => print!("{}", d.to_short_text()),
        other => print_full(&d, other)?,
    }
    Ok(d.healthy())
}
