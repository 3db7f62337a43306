//! The PKI of one hosted control plane: its own CA (serving and client certificates), a front-proxy
//! CA for aggregated APIs, the ServiceAccount signing key pair, and the client certificates of the
//! admin, kube-controller-manager, kube-scheduler and kwok. Created once and persisted in the
//! state directory, so a restarted runtime serves the same certificates and kubeconfigs stay valid.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kaas_harness::certs::{CertPair, Pki, service_account_keys};

use crate::state::{write_atomic, write_private};

/// Paths and client credentials of one control plane's PKI.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The PKI directory.
    pub dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// `kaas-admin` in `system:masters`.
    pub admin: CertPair,
    /// `system:kube-controller-manager`.
    pub controller_manager: CertPair,
    /// `system:kube-scheduler`.
    pub scheduler: CertPair,
    /// kwok's identity (`kaas-kwok` in `system:masters`: it writes node and pod status).
    pub kwok: CertPair,
}

impl Credentials {
    /// A file of the PKI directory (`ca.crt`, `sa.key`, `apiserver.crt`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn load_pair(dir: &Path, stem: &str) -> Option<CertPair> {
    Some(CertPair {
        cert_pem: std::fs::read_to_string(dir.join(format!("{stem}.crt"))).ok()?,
        key_pem: std::fs::read_to_string(dir.join(format!("{stem}.key"))).ok()?,
    })
}

fn save_pair(dir: &Path, stem: &str, pair: &CertPair) -> Result<()> {
    write_private(&dir.join(format!("{stem}.key")), pair.key_pem.as_bytes())?;
    write_atomic(&dir.join(format!("{stem}.crt")), pair.cert_pem.as_bytes())
}

fn ca(dir: &Path, stem: &str) -> Result<Pki> {
    if let Some(pair) = load_pair(dir, stem) {
        return Pki::load(pair.cert_pem, &pair.key_pem)
            .with_context(|| format!("loading {}/{stem}.key", dir.display()));
    }
    let pki = Pki::generate()?;
    save_pair(
        dir,
        stem,
        &CertPair {
            cert_pem: pki.ca_pem().to_string(),
            key_pem: pki.ca_key_pem(),
        },
    )?;
    Ok(pki)
}

fn pair(dir: &Path, stem: &str, make: impl FnOnce() -> Result<CertPair>) -> Result<CertPair> {
    if let Some(p) = load_pair(dir, stem) {
        return Ok(p);
    }
    let p = make().with_context(|| format!("issuing {stem}"))?;
    save_pair(dir, stem, &p)?;
    Ok(p)
}

/// Loads the PKI under `dir`, creating whatever is missing.
pub fn ensure(dir: &Path) -> Result<Credentials> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_ = ca(dir, "ca")?;
    let front = ca(dir, "front-proxy-ca")?;
    if !(dir.join("sa.key").is_file() && dir.join("sa.pub").is_file()) {
        let (key, public) = service_account_keys()?;
        write_private(&dir.join("sa.key"), key.as_bytes())?;
        write_atomic(&dir.join("sa.pub"), public.as_bytes())?;
    }
    pair(dir, "apiserver", || {
        ca_.serving_cert(
            "kube-apiserver",
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
    })?;
    pair(dir, "front-proxy-client", || {
        front.client_cert("front-proxy-client", &[])
    })?;
    Ok(Credentials {
        dir: dir.to_path_buf(),
        ca_pem: ca_.ca_pem().to_string(),
        admin: pair(dir, "admin", || {
            ca_.client_cert("kaas-admin", &["system:masters"])
        })?,
        controller_manager: pair(dir, "kube-controller-manager", || {
            ca_.client_cert("system:kube-controller-manager", &[])
        })?,
        scheduler: pair(dir, "kube-scheduler", || {
            ca_.client_cert("system:kube-scheduler", &[])
        })?,
        kwok: pair(dir, "kwok", || {
            ca_.client_cert("kaas-kwok", &["system:masters"])
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ensure(tmp.path()).unwrap();
        let b = ensure(tmp.path()).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin.cert_pem, b.admin.cert_pem);
        for f in [
            "ca.crt",
            "ca.key",
            "sa.key",
            "sa.pub",
            "apiserver.crt",
            "apiserver.key",
            "front-proxy-ca.crt",
            "front-proxy-client.key",
            "kwok.crt",
        ] {
            assert!(a.file(f).is_file(), "{f}");
        }
        // A lost file is re-issued, the CA stays.
        std::fs::remove_file(a.file("admin.crt")).unwrap();
        let c = ensure(tmp.path()).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.admin.cert_pem, c.admin.cert_pem);
    }
}
