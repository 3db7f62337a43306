//! The tools of etcd backups (`plane/build-backup.sh`): `etcdutl` for the hosted runtime's
//! restores, and a real S3-compatible object store for tests — versitygw (Apache-2.0) with its
//! `posix` backend in a temporary directory, one bucket, root credentials made up per store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{Mode, Proc, Spec, free_port, tail};

/// The complete output directory of `plane/build-backup.sh` (`$KAAS_BACKUP_TOOLS_DIR` if set).
/// Builds it when missing (a few minutes, then cached by the pins).
pub fn tools_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KAAS_BACKUP_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let root = crate::repo_root().context(
        "cannot find the kaas repository (plane/build-backup.sh); set KAAS_BACKUP_TOOLS_DIR",
    )?;
    let script = root.join("plane/build-backup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed", script.display());
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// `etcdutl` of the pinned etcd.
pub fn etcdutl() -> Result<PathBuf> {
    let p = tools_dir()?.join("bin/etcdutl");
    p.is_file()
        .then_some(p.clone())
        .with_context(|| format!("{} missing; run plane/build-backup.sh", p.display()))
}

/// `etcdutl` if `plane/build-backup.sh` has built it (never builds): the hosted runtime's default.
pub fn built_etcdutl() -> Option<PathBuf> {
    let dir = match std::env::var_os("KAAS_BACKUP_TOOLS_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let script = crate::repo_root()?.join("plane/build-backup.sh");
            let out = Command::new("bash")
                .arg(&script)
                .args(["--print-dir", "--no-build"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status.success().then_some(())?;
            PathBuf::from(String::from_utf8(out.stdout).ok()?.trim())
        }
    };
    Some(dir.join("bin/etcdutl")).filter(|p| p.is_file())
}

/// A running versitygw on 127.0.0.1 with one bucket; stopped when dropped.
pub struct TestStore {
    proc: Proc,
    endpoint: String,
    /// Root access key.
    pub access_key: String,
    /// Root secret key.
    pub secret_key: String,
    /// The bucket (created empty).
    pub bucket: String,
    /// The posix backend's root: `<root>/<bucket>/<key>` are the objects as files.
    pub root: PathBuf,
}

impl TestStore {
    /// Starts versitygw with its data under `dir` and creates `bucket` (a directory of the
    /// posix backend).
    pub async fn start(dir: &Path, bucket: &str) -> Result<TestStore> {
        let bin = tools_dir()?.join("bin/versitygw");
        let root = dir.join("gw");
        let sidecar = dir.join("meta");
        std::fs::create_dir_all(root.join(bucket))?;
        std::fs::create_dir_all(&sidecar)?;
        let port = free_port()?;
        let rand = |n: usize| -> String {
            let mut b = vec![0u8; n];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                .expect("random bytes");
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        let access_key = format!("kaas{}", rand(6));
        let secret_key = rand(20);
        let spec = Spec {
            name: "versitygw".into(),
            program: bin,
            args: vec![
                "--port".into(),
                format!("127.0.0.1:{port}").into(),
                "--quiet".into(),
                "posix".into(),
                "--sidecar".into(),
                sidecar.into_os_string(),
                root.clone().into_os_string(),
            ],
            env: vec![
                ("ROOT_ACCESS_KEY".into(), access_key.clone()),
                ("ROOT_SECRET_KEY".into(), secret_key.clone()),
            ],
            log: dir.join("versitygw.log"),
            inherit_fd: None,
        };
        let mut proc = Proc::spawn(&spec, Mode::Attached)?;
        let start = Instant::now();
        loop {
            proc.check_running()
                .with_context(|| tail(&spec.log, 20))
                .context("versitygw exited")?;
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "versitygw did not listen within 30 s: {}",
                    tail(&spec.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(TestStore {
            proc,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key,
            secret_key,
            bucket: bucket.into(),
            root,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The pid (tests only).
    pub fn pid(&self) -> i32 {
        self.proc.pid
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(2));
    }
}
