//! Where one hosted control plane lives on disk (`<state>/<namespace>/<name>/`) and the ports it
//! listens on. Everything that must survive a restart of the runtime is here: PKI, etcd data,
//! ports (so the endpoint and the kubeconfig stay stable), process records and logs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// File naming the UID of the `HostedControlPlane` a state directory belongs to.
pub const UID_FILE: &str = "uid";

/// The files of one control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `<state>/<namespace>/<name>`.
    pub dir: PathBuf,
}

impl Layout {
    /// The layout of `namespace/name` under a state directory.
    pub fn new(state_dir: &Path, namespace: &str, name: &str) -> Self {
        Self {
            dir: state_dir.join(namespace).join(name),
        }
    }
    /// Certificates and keys.
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    /// etcd's data directory.
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    /// Process records (`<component>.json`).
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    /// Logs (`<component>.log`).
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// A kubeconfig for one identity (`admin`, `kube-controller-manager`, `kube-scheduler`, `kwok`).
    pub fn kubeconfig(&self, who: &str) -> PathBuf {
        self.dir
            .join("kubeconfigs")
            .join(format!("{who}.kubeconfig"))
    }
    /// The persisted ports.
    pub fn ports_file(&self) -> PathBuf {
        self.dir.join("ports.json")
    }
    /// The owner's UID.
    pub fn uid_file(&self) -> PathBuf {
        self.dir.join(UID_FILE)
    }
}

/// Ports of one control plane, all on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    /// etcd client port.
    pub etcd: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port (the endpoint).
    pub apiserver: u16,
}

impl Ports {
    /// Reads persisted ports.
    pub fn load(layout: &Layout) -> Option<Ports> {
        let bytes = std::fs::read(layout.ports_file()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Persists the ports.
    pub fn save(&self, layout: &Layout) -> Result<()> {
        write_atomic(&layout.ports_file(), &serde_json::to_vec_pretty(self)?)
    }
}

/// Writes a file through a temporary sibling and a rename, creating parent directories.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Like [`write_atomic`], readable by the owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_atomic(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Writes only when the content differs; returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8], private: bool) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    if private {
        write_private(path, contents)?;
    } else {
        write_atomic(path, contents)?;
    }
    Ok(true)
}

/// The `(namespace, name)` pairs of every control-plane directory under a state directory
/// (those holding a [`UID_FILE`] or a `run/` directory).
pub fn control_plane_dirs(state_dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(state_dir) else {
        return out;
    };
    for ns in namespaces.flatten() {
        let Ok(ns_name) = ns.file_name().into_string() else {
            continue;
        };
        let Ok(names) = std::fs::read_dir(ns.path()) else {
            continue;
        };
        for n in names.flatten() {
            let Ok(name) = n.file_name().into_string() else {
                continue;
            };
            let p = n.path();
            if p.join(UID_FILE).is_file() || p.join("run").is_dir() {
                out.push((ns_name.clone(), name));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_ports_and_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(tmp.path(), "ns1", "a");
        assert!(Ports::load(&l).is_none());
        let p = Ports {
            etcd: 1,
            etcd_peer: 2,
            apiserver: 3,
        };
        p.save(&l).unwrap();
        assert_eq!(Ports::load(&l), Some(p));
        std::fs::write(l.uid_file(), "u").unwrap();
        std::fs::create_dir_all(tmp.path().join("ns1/not-a-plane")).unwrap();
        assert_eq!(
            control_plane_dirs(tmp.path()),
            [("ns1".to_string(), "a".to_string())]
        );
        assert!(write_if_changed(&l.kubeconfig("admin"), b"x", true).unwrap());
        assert!(!write_if_changed(&l.kubeconfig("admin"), b"x", true).unwrap());
    }
}
