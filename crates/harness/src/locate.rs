//! Finding the repository, the pinned versions and the built management-plane artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `plane/versions.env` as it was when this crate was compiled.
const VERSIONS_ENV: &str = include_str!("../../../plane/versions.env");

/// The pinned upstream versions of the management plane (`plane/versions.env`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// Kubernetes of the management plane, e.g. `v1.36.3`.
    pub kubernetes: String,
    /// etcd, e.g. `v3.6.16`.
    pub etcd: String,
    /// Cluster API, e.g. `v1.14.2`.
    pub cluster_api: String,
    /// Kubernetes versions built for hosted workload control planes, e.g. `["v1.35.4", "v1.36.3"]`.
    pub workload: Vec<String>,
    /// kwok (simulated nodes of hosted clusters), e.g. `v0.8.0`.
    pub kwok: String,
}

/// The pinned versions (compiled in from `plane/versions.env`).
pub fn versions() -> Versions {
    parse_versions(VERSIONS_ENV).expect("plane/versions.env lacks a pin")
}

fn parse_versions(text: &str) -> Result<Versions> {
    let get = |key: &str| -> Result<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .next()
            .with_context(|| format!("{key} missing in versions.env"))
    };
    Ok(Versions {
        kubernetes: get("KUBERNETES_VERSION")?,
        etcd: get("ETCD_VERSION")?,
        cluster_api: get("CLUSTER_API_VERSION")?,
        workload: get("WORKLOAD_KUBERNETES_VERSIONS")?
            .split_whitespace()
            .map(String::from)
            .collect(),
        kwok: get("KWOK_VERSION")?,
    })
}

/// The repository root: the compile-time location of this crate if it still exists, else the first
/// ancestor of the current directory holding `plane/build.sh`.
pub fn repo_root() -> Option<PathBuf> {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if compiled.join("plane/build.sh").is_file() {
        return compiled.canonicalize().ok();
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|d| d.join("plane/build.sh").is_file())
        .map(Path::to_path_buf)
}

/// The upstream binaries.
pub const BINARIES: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "capi-manager",
    "capi-kubeadm-bootstrap-manager",
    "capi-kubeadm-control-plane-manager",
    "capd-manager",
];

/// The control-plane binaries of a hosted workload cluster, built per version into
/// `bin/workload/<version>/`.
pub const WORKLOAD_BINARIES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// `v1.35.4` for `1.35.4` or `v1.35.4`.
fn with_v(version: &str) -> String {
    format!("v{}", version.trim().trim_start_matches('v'))
}

/// A complete output directory of `plane/build.sh`: binaries, CRDs, webhook manifests, templates.
#[derive(Clone, Debug)]
pub struct PlaneArtifacts {
    dir: PathBuf,
}

impl PlaneArtifacts {
    /// Finds the artifacts: `$KAAS_PLANE_DIR` if set, else the cache directory that
    /// `plane/build.sh --print-dir` names. When the build is missing, runs the (long) build if
    /// `build_if_missing` or `$KAAS_PLANE_BUILD=1`, else fails with an error saying how to build.
    pub fn locate(build_if_missing: bool) -> Result<Self> {
        if let Some(dir) = std::env::var_os("KAAS_PLANE_DIR").filter(|d| !d.is_empty()) {
            return Self::at(PathBuf::from(dir)).context("KAAS_PLANE_DIR");
        }
        let build = build_if_missing || std::env::var("KAAS_PLANE_BUILD").is_ok_and(|v| v == "1");
        let root = repo_root().context(
            "cannot find the kaas repository (plane/build.sh) to locate the management plane; set KAAS_PLANE_DIR",
        )?;
        let script = root.join("plane/build.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg("--print-dir");
        if !build {
            cmd.arg("--no-build");
        }
        // Progress of a build goes to our stderr; the directory comes on stdout.
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "the management plane is not built for the pins in plane/versions.env.\n\
                 Build it first (cold: ~9 min on 2 cores, cached afterwards):\n    {}\n\
                 or point KAAS_PLANE_DIR at a build (or set KAAS_PLANE_BUILD=1 to build on demand).",
                script.display()
            );
        }
        let dir = String::from_utf8(out.stdout)?.trim().to_string();
        Self::at(PathBuf::from(dir))
    }

    /// Uses an existing, complete build directory.
    pub fn at(dir: PathBuf) -> Result<Self> {
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| !dir.join("bin").join(b).is_file())
            .collect();
        if !missing.is_empty() {
            bail!(
                "management plane build at {} is incomplete (missing {}); run plane/build.sh",
                dir.display(),
                missing.join(", ")
            );
        }
        for sub in ["crds", "webhooks", "templates"] {
            if !dir.join(sub).is_dir() {
                bail!(
                    "management plane build at {} lacks {sub}/; run plane/build.sh",
                    dir.display()
                );
            }
        }
        Ok(Self { dir })
    }

    /// The build directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of one binary (see [`BINARIES`]).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// Directory of the Cluster API CRDs of one component (`core`, `bootstrap-kubeadm`,
    /// `controlplane-kubeadm`, `docker`): `bases/`, `kustomization.yaml`, `patches/`.
    pub fn crd_dir(&self, component: &str) -> PathBuf {
        self.dir.join("crds").join(component)
    }

    /// The upstream webhook manifests (`config/webhook/manifests.yaml`) of one component.
    pub fn webhook_manifest(&self, component: &str) -> PathBuf {
        self.dir.join("webhooks").join(format!("{component}.yaml"))
    }

    /// An upstream template: `clusterclass-in-memory.yaml` or `cluster-template-in-memory.yaml`.
    pub fn template(&self, name: &str) -> PathBuf {
        self.dir.join("templates").join(name)
    }

    /// Kubernetes versions (`v1.35.4`) with every workload control-plane binary
    /// ([`WORKLOAD_BINARIES`]) built, sorted by version.
    pub fn workload_versions(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("bin/workload")) else {
            return Vec::new();
        };
        let mut versions: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|v| {
                WORKLOAD_BINARIES
                    .iter()
                    .all(|b| self.dir.join("bin/workload").join(v).join(b).is_file())
            })
            .collect();
        let key = |v: &str| -> Vec<u64> {
            v.trim_start_matches('v')
                .split('.')
                .map(|p| p.parse().unwrap_or(0))
                .collect()
        };
        versions.sort_by_key(|v| key(v));
        versions
    }

    /// A workload control-plane binary ([`WORKLOAD_BINARIES`]) of a Kubernetes version
    /// (`1.35.4` or `v1.35.4`); fails naming the built versions when that version is not built.
    pub fn workload_bin(&self, version: &str, name: &str) -> Result<PathBuf> {
        let path = self
            .dir
            .join("bin/workload")
            .join(with_v(version))
            .join(name);
        if path.is_file() {
            return Ok(path);
        }
        let built = self.workload_versions();
        bail!(
            "no {name} for Kubernetes {} in {} (built: {}); add it to WORKLOAD_KUBERNETES_VERSIONS in plane/versions.env and run plane/build.sh",
            with_v(version),
            self.dir.display(),
            if built.is_empty() {
                "none".to_string()
            } else {
                built.join(", ")
            }
        )
    }

    /// The kwok binary (simulated kubelets of hosted clusters' worker nodes).
    pub fn kwok(&self) -> Result<PathBuf> {
        let path = self.bin("kwok");
        if !path.is_file() {
            bail!(
                "kwok is not built in {}; run plane/build.sh",
                self.dir.display()
            );
        }
        Ok(path)
    }

    /// kwok's stages (node initialize and heartbeat with leases, pod ready/complete/delete),
    /// copied from the kwok module by the build: kwok's `--config`.
    pub fn kwok_stages(&self) -> Result<PathBuf> {
        let path = self.dir.join("kwok/stages.yaml");
        if !path.is_file() {
            bail!(
                "kwok stages are missing in {}; run plane/build.sh",
                self.dir.display()
            );
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        let v = parse_versions("# c\nKUBERNETES_VERSION=v1.36.3\nETCD_VERSION=v3.6.16\nCLUSTER_API_VERSION=\"v1.14.2\"\nWORKLOAD_KUBERNETES_VERSIONS=\"v1.35.4 v1.36.3\"\nKWOK_VERSION=v0.8.0\n").unwrap();
        assert_eq!(v.kubernetes, "v1.36.3");
        assert_eq!(v.workload, ["v1.35.4", "v1.36.3"]);
        assert_eq!(v.kwok, "v0.8.0");
        assert_eq!(v.etcd, "v3.6.16");
        assert_eq!(v.cluster_api, "v1.14.2");
        let pinned = versions();
        assert!(pinned.kubernetes.starts_with("v1."));
    }

    #[test]
    fn workload_binaries_by_version() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["v1.36.3", "v1.35.4", "v1.9.0"] {
            for b in WORKLOAD_BINARIES {
                let p = dir.path().join("bin/workload").join(v).join(b);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, "").unwrap();
            }
        }
        // Incomplete: not offered.
        std::fs::create_dir_all(dir.path().join("bin/workload/v1.37.0")).unwrap();
        let a = PlaneArtifacts {
            dir: dir.path().to_path_buf(),
        };
        assert_eq!(a.workload_versions(), ["v1.9.0", "v1.35.4", "v1.36.3"]);
        assert!(
            a.workload_bin("1.35.4", "kube-scheduler")
                .unwrap()
                .ends_with("bin/workload/v1.35.4/kube-scheduler")
        );
        let err = a
            .workload_bin("1.37.0", "kube-apiserver")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("v1.37.0") && err.contains("v1.35.4, v1.36.3"),
            "{err}"
        );
        assert!(a.kwok().is_err());
    }

    #[test]
    fn finds_repo_root() {
        assert!(repo_root().unwrap().join("plane/versions.env").is_file());
    }
}
