//! `kaas stack build`: the addon bundle of one offered Kubernetes version from a stack layout
//! the SCS way (SovereignCloudStack/cluster-stacks' `cluster-addon` directory: `clusteraddon.yaml`
//! with lifecycle hooks, one wrapper chart per addon with `values.yaml` and `overwrite.yaml`) and
//! the provider's upstream chart sources, rendered with Helm's own engine (`helm template
//! --kube-version`). Values that depend on the cluster stay placeholders (`${cluster.name}`, …)
//! that the operator resolves per cluster when it applies the bundle (docs/stacks.md says why).
//! The output is the bundle's ConfigMaps, ready to publish in the provider namespace.

pub mod layout;
pub mod pack;
pub mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The layout is wrong (file, then field and what to do).
    #[error("{0}: {1}")]
    Layout(String, String),
    /// A chart source is missing or does not match.
    #[error("{0}")]
    Chart(String),
    /// Helm failed.
    #[error("{0}")]
    Helm(String),
    /// Something does not fit a ConfigMap.
    #[error("{0}")]
    Size(String),
}

/// What to build.
#[derive(Debug)]
pub struct Options {
    /// The layout's directory (with `clusteraddon.yaml`).
    pub dir: PathBuf,
    /// Upstream chart sources: chart name → directory.
    pub charts: BTreeMap<String, PathBuf>,
    /// The bundle's name (the Provider's `stack.addons`).
    pub bundle: String,
    /// The provider namespace (`Provider.spec.backend.namespace`).
    pub namespace: String,
    /// The Kubernetes version rendered for (`--kube-version`).
    pub kube_version: String,
    /// The helm binary.
    pub helm: PathBuf,
    /// Where the ConfigMaps are written.
    pub out: PathBuf,
}

/// Per addon: name, version, hooks, documents and ConfigMaps' bytes.
#[derive(Debug)]
pub struct Summary {
    /// Addon name.
    pub name: String,
    /// What it installs.
    pub version: String,
    /// Hooks.
    pub hooks: Vec<String>,
    /// Objects.
    pub objects: usize,
}

/// Builds the bundle; writes `out/NN-<configMap>.yaml` (the index last) and returns what it
/// packed.
pub fn build(o: &Options) -> Result<Vec<Summary>, Error> {
    let layout = layout::read_layout(&o.dir)?;
    let scratch = tempdir(&o.out)?;
    let mut packed = Vec::new();
    let result = (|| {
        for a in &layout.addons {
            let r = render::render(&o.helm, a, &o.charts, &o.kube_version, &scratch)?;
            packed.push(pack::Packed {
                name: a.name.clone(),
                version: r.version,
                hooks: a.hooks.clone(),
                extension: a.extension.clone(),
                documents: r.documents,
            });
        }
        pack::pack(
            &o.bundle,
            &o.namespace,
            &packed,
            layout.cloud_credentials.clone(),
        )
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let files = result?;
    std::fs::create_dir_all(&o.out).map_err(|e| Error::Io(o.out.display().to_string(), e))?;
    for f in &files {
        let p = o.out.join(&f.name);
        std::fs::write(&p, &f.text).map_err(|e| Error::Io(p.display().to_string(), e))?;
    }
    Ok(packed
        .into_iter()
        .map(|p| Summary {
            name: p.extension.unwrap_or(p.name),
            version: p.version,
            hooks: p.hooks,
            objects: p.documents.len(),
        })
        .collect())
}

fn tempdir(near: &Path) -> Result<PathBuf, Error> {
    let base = std::env::temp_dir().join(format!(
        "kaas-stack-{}-{}",
        std::process::id(),
        near.display().to_string().len()
    ));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).map_err(|e| Error::Io(base.display().to_string(), e))?;
    Ok(base)
}
