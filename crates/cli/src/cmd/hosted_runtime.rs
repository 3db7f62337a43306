//! `kaas hosted-runtime`: the local-process runtime of hosted control planes (crates/hosted)
//! against the management cluster of the current (or given) kubeconfig. The control planes it
//! starts are detached: stopping or restarting this command never stops a workload cluster;
//! `kaas dev down` stops them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kaas_harness::PlaneArtifacts;
use kaas_hosted::{Mode, RuntimeConfig};

/// Flags of `kaas hosted-runtime`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where control planes keep their data (`<dir>/<namespace>/<name>/`).
    #[arg(long, env = "KAAS_HOSTED_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Control planes reconciled in parallel.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// `etcdutl` of the pinned etcd, for etcd backups and restores (`docs/backup.md`). Default:
    /// the one `plane/build-backup.sh` built, if it did; without one they fail with a message.
    #[arg(long, env = "KAAS_ETCDUTL")]
    pub etcdutl: Option<PathBuf>,
}

/// `~/.local/state/kaas/hosted` (or under `$XDG_STATE_HOME`).
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".local/state")
        })
        .join("kaas/hosted")
}

/// Runs until SIGTERM/SIGINT; the control planes keep running.
pub async fn run(args: Args) -> Result<()> {
    let client = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?;
            kube::Client::try_from(cfg)?
        }
        None => kube::Client::try_default().await?,
    };
    let artifacts = PlaneArtifacts::locate(false)
        .context("locating the workload control-plane binaries (plane/build.sh)")?;
    let mut cfg = RuntimeConfig::new(
        args.state_dir.unwrap_or_else(default_state_dir),
        artifacts,
        Mode::Detached,
    );
    cfg.concurrency = args.concurrency;
    cfg.etcdutl = args.etcdutl.or_else(kaas_harness::s3::built_etcdutl);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = kaas_hosted::run(client, cfg) => r.context("the hosted runtime"),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}
