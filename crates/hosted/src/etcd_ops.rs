//! etcd snapshots and restores of one control plane (`spec.etcdOperation`, `docs/backup.md`).
//!
//! The operator asks, the runtime does: a snapshot streams etcd's `Maintenance.Snapshot` (its
//! HTTP gateway, `POST /v3/maintenance/snapshot`) into the state directory, checks it with
//! `etcdutl snapshot status` (the revision), encrypts it with AES-256-GCM under the object's own
//! key and uploads it with the presigned PUT URL; a restore downloads with the presigned GET URL,
//! decrypts (a wrong key or a changed byte fails here), and — with the control plane stopped by
//! the caller — runs `etcdutl snapshot restore` into a fresh data directory that replaces etcd's.
//! The URL and the key come from a Secret next to the object; the store's credentials and the
//! provider's master key never reach the runtime.
//!
//! Sealed format: `KAASETC1` | 12-byte nonce | ciphertext with its 16-byte tag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kaas_api::backup::{EtcdOperation, EtcdOperationKind};
use kaas_api::hosted::HostedControlPlane;
use kube::{Api, Client};
use ring::aead;

use crate::state::Layout;

/// First bytes of a sealed snapshot.
pub const MAGIC: &[u8; 8] = b"KAASETC1";
const AAD: &[u8] = b"kaas-etcd-snapshot-v1";

/// The requested operation not reported on yet.
pub fn pending(hcp: &HostedControlPlane) -> Option<&EtcdOperation> {
    let op = hcp.spec.etcd_operation.as_ref()?;
    let done = hcp
        .status
        .as_ref()
        .and_then(|s| s.etcd_operation.as_ref())
        .is_some_and(|s| s.id == op.id);
    (!done).then_some(op)
}

/// Whether `op` is a restore.
pub fn is_restore(op: &EtcdOperation) -> bool {
    op.kind == EtcdOperationKind::Restore
}

/// Encrypts `plain` with AES-256-GCM under `key` (32 bytes).
pub fn seal(key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let k = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key)
            .map_err(|_| anyhow!("the key is not 32 bytes"))?,
    );
    let mut nonce = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| anyhow!("no random bytes"))?;
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(AAD),
        &mut buf,
    )
    .map_err(|_| anyhow!("encrypting failed"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + nonce.len() + buf.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Decrypts what [`seal`] made; fails on a wrong key or any changed byte.
pub fn open(key: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let body = sealed.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        anyhow!(
            "not a kaas etcd snapshot (no {} header)",
            String::from_utf8_lossy(MAGIC)
        )
    })?;
    if body.len() < 12 + 16 {
        bail!("the sealed snapshot is truncated");
    }
    let (nonce, ct) = body.split_at(12);
    let k = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key)
            .map_err(|_| anyhow!("the key is not 32 bytes"))?,
    );
    let mut buf = ct.to_vec();
    let plain = k
        .open_in_place(
            aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("bad nonce"))?,
            aead::Aad::from(AAD),
            &mut buf,
        )
        .map_err(|_| anyhow!("decryption failed: wrong key or a modified object"))?;
    Ok(plain.to_vec())
}

/// The presigned URL and the object key of an operation (its Secret next to the object).
pub struct Transfer {
    url: String,
    key: Vec<u8>,
}

impl Transfer {
    /// Reads the operation's Secret.
    pub async fn load(client: &Client, ns: &str, op: &EtcdOperation) -> Result<Transfer> {
        let s = Api::<Secret>::namespaced(client.clone(), ns)
            .get(&op.secret_name)
            .await
            .with_context(|| format!("reading Secret {}", op.secret_name))?;
        let data = s.data.unwrap_or_default();
        let field = |k: &str| {
            data.get(k)
                .map(|b| b.0.clone())
                .ok_or_else(|| anyhow!("Secret {} lacks {k}", op.secret_name))
        };
        let url = String::from_utf8(field("url")?).context("url is not UTF-8")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(field("key")?)
            .context("key is not base64")?;
        Ok(Transfer { url, key })
    }
}

fn http() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .context("building the HTTP client")
}

fn work_dir(layout: &Layout) -> Result<PathBuf> {
    let d = layout.dir.join("backup");
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// `etcdutl snapshot status FILE -w json` → the revision.
fn revision_of(etcdutl: &Path, file: &Path) -> Result<i64> {
    let out = std::process::Command::new(etcdutl)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .with_context(|| format!("running {}", etcdutl.display()))?;
    if !out.status.success() {
        // Its output names the runtime's paths: the log has it, the status a fixed message.
        tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "etcdutl snapshot status");
        bail!(
            "etcdutl snapshot status failed ({}); the runtime's log has its output",
            out.status
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("etcdutl output")?;
    v["revision"]
        .as_i64()
        .ok_or_else(|| anyhow!("etcdutl reported no revision"))
}

/// Streams a snapshot from etcd at `etcd_port` (the gRPC gateway's JSON stream of base64 blobs).
async fn stream_snapshot(etcd_port: u16) -> Result<Vec<u8>> {
    let resp = http()?
        .post(format!(
            "http://127.0.0.1:{etcd_port}/v3/maintenance/snapshot"
        ))
        .body("{}")
        .send()
        .await
        .context("asking etcd for a snapshot")?;
    if !resp.status().is_success() {
        bail!(
            "etcd answered the snapshot request with HTTP {}",
            resp.status()
        );
    }
    let body = resp.bytes().await.context("reading etcd's snapshot")?;
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>() {
        let v = v.context("etcd's snapshot stream")?;
        if let Some(e) = v.get("error") {
            bail!("etcd: {e}");
        }
        if let Some(blob) = v["result"]["blob"].as_str() {
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(blob)
                    .context("a snapshot chunk")?,
            );
        }
    }
    if out.is_empty() {
        bail!("etcd sent an empty snapshot");
    }
    Ok(out)
}

/// Takes, checks, seals and uploads a snapshot: (revision, bytes uploaded).
pub async fn snapshot(
    layout: &Layout,
    etcd_port: u16,
    etcdutl: &Path,
    t: &Transfer,
) -> Result<(i64, i64)> {
    let plain = stream_snapshot(etcd_port).await?;
    let file = work_dir(layout)?.join("snapshot.db");
    crate::state::write_private(&file, &plain)?;
    let revision = revision_of(etcdutl, &file);
    let _ = std::fs::remove_file(&file);
    let revision = revision?;
    let sealed = seal(&t.key, &plain)?;
    let size = sealed.len() as i64;
    let resp = http()?
        .put(&t.url)
        .body(sealed)
        .send()
        .await
        // The presigned URL is a credential: never in an error (it reaches the status).
        .map_err(reqwest::Error::without_url)
        .context("uploading the snapshot")?;
    if !resp.status().is_success() {
        bail!("the store refused the upload: HTTP {}", resp.status());
    }
    Ok((revision, size))
}

/// Downloads and decrypts the snapshot, then (the caller has stopped every process of the
/// control plane) restores it into a fresh data directory that replaces etcd's:
/// (revision, bytes downloaded).
pub async fn restore(
    layout: &Layout,
    peer_port: u16,
    etcdutl: &Path,
    t: &Transfer,
) -> Result<(i64, i64)> {
    let resp = http()?
        .get(&t.url)
        .send()
        .await
        // The presigned URL is a credential: never in an error (it reaches the status).
        .map_err(reqwest::Error::without_url)
        .context("downloading the snapshot")?;
    if !resp.status().is_success() {
        bail!("the store refused the download: HTTP {}", resp.status());
    }
    let sealed = resp
        .bytes()
        .await
        .map_err(reqwest::Error::without_url)
        .context("reading the snapshot")?;
    let plain = open(&t.key, &sealed)?;
    let dir = work_dir(layout)?;
    let file = dir.join("restore.db");
    crate::state::write_private(&file, &plain)?;
    let revision = revision_of(etcdutl, &file)?;
    let fresh = layout.dir.join("etcd.restore");
    let _ = std::fs::remove_dir_all(&fresh);
    let peer = format!("http://127.0.0.1:{peer_port}");
    let out = std::process::Command::new(etcdutl)
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg(format!("--data-dir={}", fresh.display()))
        .args([
            "--name=etcd".to_string(),
            format!("--initial-cluster=etcd={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            // Revisions go on past anything a client has seen, and the old ones read as
            // compacted: watches of the workload cluster's controllers (and kwok) that resume
            // from a resourceVersion of before the restore start over instead of missing events.
            "--bump-revision=1000000000".to_string(),
            "--mark-compacted".to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", etcdutl.display()))?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "etcdutl snapshot restore");
        bail!(
            "etcdutl snapshot restore failed ({}); the runtime's log has its output",
            out.status
        );
    }
    recover_data(layout);
    let data = layout.etcd_data();
    let old = replaced(layout);
    let _ = std::fs::remove_dir_all(&old);
    if data.exists() {
        std::fs::rename(&data, &old).context("moving the old etcd data aside")?;
    }
    std::fs::rename(&fresh, &data).context("putting the restored etcd data in place")?;
    let _ = std::fs::remove_dir_all(&old);
    Ok((revision, sealed.len() as i64))
}

/// Where the data a restore replaces waits until the restored data is in place.
fn replaced(layout: &Layout) -> std::path::PathBuf {
    layout.dir.join("etcd.replaced")
}

/// A restore that died between moving the old data aside and putting the restored data in place
/// left no data directory: the old data goes back (before etcd starts, and before a restore
/// runs again), never an empty etcd.
pub fn recover_data(layout: &Layout) {
    let (data, old) = (layout.etcd_data(), replaced(layout));
    if !data.exists() && old.exists() {
        match std::fs::rename(&old, &data) {
            Ok(()) => {
                tracing::warn!(dir = %data.display(), "an interrupted restore: the replaced etcd data put back")
            }
            Err(e) => {
                tracing::warn!(dir = %data.display(), error = %e, "cannot put the replaced etcd data back")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_swap_puts_the_old_data_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            dir: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(replaced(&layout).join("member")).unwrap();
        recover_data(&layout);
        assert!(layout.etcd_data().join("member").is_dir());
        assert!(!replaced(&layout).exists());
        // With data in place nothing moves.
        std::fs::create_dir_all(replaced(&layout)).unwrap();
        recover_data(&layout);
        assert!(replaced(&layout).exists() && layout.etcd_data().join("member").is_dir());
    }

    #[test]
    fn sealed_snapshots_open_only_with_their_key_and_unmodified() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"etcd bytes").unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert!(
            !sealed.windows(10).any(|w| w == b"etcd bytes"),
            "no plaintext"
        );
        assert_eq!(open(&key, &sealed).unwrap(), b"etcd bytes");
        assert!(open(&[8u8; 32], &sealed).is_err(), "another key");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&key, &flipped).is_err(), "a changed byte");
        assert!(open(&key, b"SQLite format").is_err(), "not sealed");
        assert_ne!(
            seal(&key, b"x").unwrap(),
            seal(&key, b"x").unwrap(),
            "fresh nonces"
        );
    }
}
