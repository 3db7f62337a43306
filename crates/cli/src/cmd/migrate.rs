//! `kaas migrate`: an SCS `Cluster` from the settings of a KaaS v1 (k8s-cluster-api-provider)
//! cluster, `~/CLUSTER/clusterctl.yaml`. Prints the Cluster (YAML with the report as a leading
//! comment block, or `{cluster, report}` as JSON) on stdout and a summary on stderr. Values of
//! secrets are never printed. Exit 0, or 2 when the settings cannot be migrated.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kaas_migrate::{Error, Options, migrate};

/// Output of `kaas migrate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The Cluster as YAML, after a comment block with the report.
    #[default]
    Yaml,
    /// `{cluster, report}`.
    Json,
}

/// Flags of `kaas migrate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The v1 settings file (`~/CLUSTER/clusterctl.yaml`; `-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Cluster name (default: CLUSTER_NAME of the file, else from the path:
    /// `~/NAME/clusterctl.yaml`, `clusterctl-NAME.yaml`).
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of the tenant the Cluster goes into.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Name of the Provider offering (`kubectl get providers.scs.community`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Region of the provider (default: its first region).
    #[arg(long)]
    pub region: Option<String>,
    /// Keep the exact patch of KUBERNETES_VERSION (default: MAJOR.MINOR.x, the newest offered
    /// patch).
    #[arg(long)]
    pub keep_patch: bool,
    /// yaml (default) or json.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Format,
}

/// Migrates; errors (exit 2) name each offending key.
pub fn run(args: Args) -> Result<bool> {
    let stdin = args.file.as_os_str() == "-";
    let text = if stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let from_path = if stdin {
        None
    } else {
        name_from_path(&args.file)
    };
    let opts = Options {
        name: args.name.clone(),
        default_name: from_path.clone(),
        namespace: args.namespace.clone(),
        provider: args.provider.clone(),
        region: args.region.clone(),
        keep_patch: args.keep_patch,
    };
    let file = args.file.display().to_string();
    let m = match migrate(&text, &opts) {
        Ok(m) => m,
        Err(Error::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{file}: {e}");
            }
            bail!(
                "{file}: {} value(s) cannot be migrated; no Cluster written",
                errors.len()
            );
        }
        Err(e) => bail!("{file}: {e}"),
    };
    match args.output {
        Format::Yaml => print!("{}", m.to_yaml()),
        Format::Json => println!("{}", m.to_json()),
    }
    let named_by_file = m.report.entries.iter().any(|e| e.key == "CLUSTER_NAME");
    if let (None, false, Some(n)) = (&args.name, named_by_file, &from_path) {
        eprintln!("kaas migrate: cluster name {n:?} taken from the file path (--name overrides)");
    }
    eprintln!("kaas migrate: {}", m.report.summary());
    for w in &m.report.warnings {
        eprintln!("kaas migrate: warning: {w}");
    }
    Ok(true)
}

/// `~/NAME/clusterctl.yaml` (the v1 layout) or `clusterctl-NAME.yaml`, when NAME is a DNS label.
fn name_from_path(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))?;
    let name = match stem.strip_prefix("clusterctl-") {
        Some(n) => n.to_string(),
        None if stem == "clusterctl" => {
            let dir = std::path::absolute(path).ok()?;
            dir.parent()?.file_name()?.to_str()?.to_string()
        }
        None => return None,
    };
    let label = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    label.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_v1_paths() {
        let n = |p: &str| name_from_path(Path::new(p));
        assert_eq!(
            n("/home/ubuntu/prod/clusterctl.yaml").as_deref(),
            Some("prod")
        );
        assert_eq!(n("clusterctl-shop.yaml").as_deref(), Some("shop"));
        assert_eq!(n("/x/clusterctl-web-1.yml").as_deref(), Some("web-1"));
        assert_eq!(n("/x/Prod/clusterctl.yaml"), None);
        assert_eq!(n("settings.yaml"), None);
    }
}
