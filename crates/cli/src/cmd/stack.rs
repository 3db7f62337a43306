//! `kaas stack build`: a provider's addon bundle for one offered Kubernetes version from a stack
//! layout the SCS way (docs/stacks.md), rendered with a helm binary. Writes the bundle's
//! ConfigMaps into `--out`; prints one line per addon on stderr. Exit 0, 2 on error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};

/// `kaas stack …`.
#[derive(clap::Subcommand, Debug)]
pub enum Stack {
    /// Build the addon bundle (ConfigMaps) of one Kubernetes version from a stack layout
    /// (clusteraddon.yaml and one wrapper chart per addon) and the upstream charts' sources.
    Build(Build),
}

/// Flags of `kaas stack build`.
#[derive(clap::Args, Debug)]
pub struct Build {
    /// The stack layout: the directory with clusteraddon.yaml.
    #[arg(long)]
    pub dir: PathBuf,
    /// The source of an upstream chart a wrapper chart depends on, as NAME=DIR (repeatable).
    #[arg(long = "chart", value_name = "NAME=DIR")]
    pub charts: Vec<String>,
    /// Name of the bundle (the Provider's kubernetesVersions[].stack.addons).
    #[arg(long)]
    pub bundle: String,
    /// The provider namespace the bundle is published in (Provider.spec.backend.namespace).
    #[arg(long)]
    pub namespace: String,
    /// The Kubernetes version the bundle serves (helm template --kube-version).
    #[arg(long)]
    pub kube_version: String,
    /// The helm binary (addons/build.sh builds one into ~/.cache/kaas/addons/<key>/bin/helm).
    #[arg(long, env = "KAAS_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// Directory the ConfigMaps are written to (NN-<configMap>.yaml, the index last).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `kaas stack`.
pub fn run(cmd: Stack) -> Result<bool> {
    let Stack::Build(b) = cmd;
    let mut charts = BTreeMap::new();
    for c in &b.charts {
        let Some((name, dir)) = c.split_once('=') else {
            bail!("--chart {c:?}: want NAME=DIR");
        };
        charts.insert(name.to_string(), PathBuf::from(dir));
    }
    let summary = kaas_stack::build(&kaas_stack::Options {
        dir: b.dir,
        charts,
        bundle: b.bundle.clone(),
        namespace: b.namespace,
        kube_version: b.kube_version,
        helm: b.helm,
        out: b.out.clone(),
    })?;
    for s in &summary {
        eprintln!(
            "{}: {} {} objects, hooks {}",
            s.name,
            s.version,
            s.objects,
            s.hooks.join(", ")
        );
    }
    eprintln!(
        "bundle {} ({} addons) written to {}",
        b.bundle,
        summary.len(),
        b.out.display()
    );
    Ok(true)
}
