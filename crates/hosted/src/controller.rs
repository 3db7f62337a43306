//! The kube-rs controller of the local runtime: watches `HostedControlPlane` objects in all
//! namespaces, handles those with `spec.runtime: local`, and per object brings the processes to
//! the plan (start, adopt, restart, upgrade), writes the kubeconfig Secret, applies the node plan
//! through the workload API server, and writes the status when it changed. On start it stops and
//! removes control planes whose object is gone; on deletion (finalizer) it stops the processes
//! and removes the state directory.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Node, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kaas_api::backup::{EtcdOperation, EtcdOperationStatus};
use kaas_api::hosted::{
    HostedControlPlane, HostedControlPlaneStatus, HostedPoolStatus, RUNTIME_FINALIZER,
    RUNTIME_LOCAL,
};
use kaas_harness::PlaneArtifacts;
use kaas_harness::certs::CertPair;
use kaas_harness::process::{Mode, free_port, http_status, port_is_free};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::authn;
use crate::etcd_ops;
use crate::hibernation;
use crate::nodes;
use crate::pki::{self, Credentials};
use crate::plan::{self, Inputs, Step};
use crate::processes::{self, Component, Launch};
use crate::state::{Layout, Ports, UID_FILE, control_plane_dirs, write_if_changed};
use crate::status::{self, Observed};

/// Field manager of the runtime's writes.
pub const FIELD_MANAGER: &str = "kaas-hosted-runtime";
/// Key of the kubeconfig in its Secret (Cluster API convention).
pub const KUBECONFIG_KEY: &str = "value";
/// Type of the kubeconfig Secret (Cluster API convention).
pub const KUBECONFIG_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";

/// How the runtime runs.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where control planes keep their files (`<state>/<namespace>/<name>/`).
    pub state_dir: PathBuf,
    /// The plane build with the workload binaries and kwok.
    pub artifacts: PlaneArtifacts,
    /// `Attached` (tests: processes die with this process) or `Detached` (they survive it).
    pub mode: Mode,
    /// etcd `--unsafe-no-fsync` (tests; data survives process restarts but not power loss).
    pub etcd_unsafe_no_fsync: bool,
    /// Control planes reconciled in parallel.
    pub concurrency: u16,
    /// `etcdutl` of the pinned etcd (`plane/build-backup.sh`): checks snapshots and restores
    /// them. Without it etcd operations fail with a message saying so.
    pub etcdutl: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults for a state directory, artifacts and mode.
    pub fn new(state_dir: PathBuf, artifacts: PlaneArtifacts, mode: Mode) -> Self {
        Self {
            state_dir,
            artifacts,
            mode,
            etcd_unsafe_no_fsync: false,
            concurrency: 4,
            etcdutl: None,
        }
    }
}

/// The `<name>-kubeconfig` Secret name.
pub fn kubeconfig_secret_name(name: &str) -> String {
    format!("{name}-kubeconfig")
}

/// The `<name>-ca` Secret name (Cluster API convention: keys `tls.crt`, `tls.key`).
pub fn ca_secret_name(name: &str) -> String {
    format!("{name}-ca")
}

struct Ctx {
    client: Client,
    cfg: RuntimeConfig,
}

#[derive(Debug)]
struct Error(anyhow::Error);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error(e)
    }
}

/// Runs the runtime until the controller stream ends (callers abort it or select on a signal).
/// Processes it starts are not stopped when it returns or is aborted.
pub async fn run(client: Client, cfg: RuntimeConfig) -> Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    // Keys, kubeconfigs and etcd data live below: only the runtime's user may enter.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", cfg.state_dir.display()))?;
    }
    // One runtime per state directory: two would start every control plane twice.
    let _lock = lock_state_dir(&cfg.state_dir)?;
    // A state directory belongs to one management cluster: pointed at another one, the orphan
    // sweep would remove every control plane it does not know.
    bind_to_management_cluster(&client, &cfg.state_dir).await?;
    tracing::info!(
        state_dir = %cfg.state_dir.display(),
        versions = ?cfg.artifacts.workload_versions(),
        mode = ?cfg.mode,
        "hosted control-plane runtime (local) starting"
    );
    sweep_orphans(&client, &cfg).await?;
    let api: Api<HostedControlPlane> = Api::all(client.clone());
    let concurrency = cfg.concurrency.max(1);
    let ctx = Arc::new(Ctx { client, cfg });
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
    Ok(())
}

/// File in the state directory naming the management cluster it belongs to (the UID of its
/// `kube-system` namespace).
const MANAGEMENT_CLUSTER_FILE: &str = ".management-cluster";

/// Records the management cluster's identity in a new state directory, and refuses to run on a
/// state directory of another management cluster.
async fn bind_to_management_cluster(client: &Client, state_dir: &std::path::Path) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let ns = tokio::time::timeout(
        Duration::from_secs(15),
        Api::<Namespace>::all(client.clone()).get("kube-system"),
    )
    .await
    .map_err(|_| anyhow!("reading namespace kube-system of the management cluster timed out"))?
    .context("reading namespace kube-system of the management cluster")?;
    let uid = ns.metadata.uid.unwrap_or_default();
    let file = state_dir.join(MANAGEMENT_CLUSTER_FILE);
    match std::fs::read_to_string(&file) {
        Ok(known) if known.trim() == uid => Ok(()),
        Ok(known) => bail!(
            "{} holds the control planes of another management cluster (kube-system uid {}, this one is {uid}); use another --state-dir",
            state_dir.display(),
            known.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_if_changed(&file, uid.as_bytes(), false).map(|_| ())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// An exclusive `flock` on `<state>/.runtime.lock`, held while the returned descriptor lives (the
/// kernel drops it when the process dies).
fn lock_state_dir(state_dir: &std::path::Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = state_dir.join(".runtime.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "another hosted control-plane runtime uses {} (it holds {}); stop it first",
            state_dir.display(),
            path.display()
        );
    }
    Ok(file.into())
}

/// Stops and removes control planes whose `HostedControlPlane` (with `runtime: local` and the
/// same UID) no longer exists. Returns how many it removed.
pub async fn sweep_orphans(client: &Client, cfg: &RuntimeConfig) -> Result<usize> {
    let api: Api<HostedControlPlane> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .context("listing HostedControlPlanes")?;
    let live: BTreeSet<(String, String, String)> = list
        .items
        .iter()
        .filter(|h| h.spec.runtime == RUNTIME_LOCAL)
        .map(|h| {
            (
                h.namespace().unwrap_or_default(),
                h.name_any(),
                h.uid().unwrap_or_default(),
            )
        })
        .collect();
    let mut removed = 0;
    for (ns, name) in control_plane_dirs(&cfg.state_dir) {
        let layout = Layout::new(&cfg.state_dir, &ns, &name);
        let uid = std::fs::read_to_string(layout.uid_file()).unwrap_or_default();
        if live.contains(&(ns.clone(), name.clone(), uid.trim().to_string())) {
            continue;
        }
        let stopped = processes::stop_control_plane(&layout).await;
        hibernation::release(&layout);
        std::fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("removing {}", layout.dir.display()))?;
        tracing::info!(namespace = %ns, name = %name, processes = stopped.len(), "removed the control plane of a HostedControlPlane that no longer exists");
        removed += 1;
    }
    tracing::info!(removed, kept = live.len(), "orphan sweep done");
    Ok(removed)
}

fn error_policy(_: Arc<HostedControlPlane>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(hcp: Arc<HostedControlPlane>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if hcp.spec.runtime != RUNTIME_LOCAL {
        return Ok(Action::await_change());
    }
    let ns = hcp
        .namespace()
        .ok_or_else(|| anyhow!("HostedControlPlane without a namespace"))?;
    let name = hcp.name_any();
    let api: Api<HostedControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    let layout = Layout::new(&ctx.cfg.state_dir, &ns, &name);
    let has_finalizer = hcp.finalizers().iter().any(|f| f == RUNTIME_FINALIZER);

    if hcp.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        let o = Observed {
            generation: hcp.meta().generation,
            deleting: true,
            ..Observed::default()
        };
        write_status(&api, &hcp, &o, None).await.ok();
        // Nothing needs to run for this: a hibernated control plane is only files.
        let stopped = processes::stop_control_plane(&layout).await;
        hibernation::release(&layout);
        if layout.dir.exists() {
            std::fs::remove_dir_all(&layout.dir)
                .with_context(|| format!("removing {}", layout.dir.display()))?;
        }
        let rest: Vec<String> = hcp
            .finalizers()
            .iter()
            .filter(|f| *f != RUNTIME_FINALIZER)
            .cloned()
            .collect();
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": rest,
                "resourceVersion": hcp.resource_version(),
            }})),
        )
        .await
        .context("removing the runtime finalizer")?;
        tracing::info!(namespace = %ns, %name, processes = stopped.len(), "control plane deleted");
        return Ok(Action::await_change());
    }

    if !has_finalizer {
        let mut all = hcp.finalizers().to_vec();
        all.push(RUNTIME_FINALIZER.into());
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": all,
                "resourceVersion": hcp.resource_version(),
            }})),
        )
        .await
        .context("adding the runtime finalizer")?;
    }

    // Hibernated: everything stops, the data stays, nothing starts; an etcd operation is refused
    // (a snapshot needs a running etcd, and a restore would have to start it).
    if hcp.spec.hibernated {
        let op_report = etcd_ops::pending(&hcp).map(|op| {
            tracing::info!(namespace = %ns, %name, id = %op.id, "etcd operation refused: hibernated");
            hibernation::refuse(op, &Timestamp::now().to_string())
        });
        let o = hibernate(&hcp, &ns, &name, &layout).await?;
        write_status(&api, &hcp, &o, op_report).await?;
        // Checked now and then: a process that appeared (started by hand) is stopped again, and
        // ports not held yet are tried again (sooner).
        let again = if o.ports_not_held.is_empty() { 60 } else { 10 };
        return Ok(Action::requeue(Duration::from_secs(again)));
    }

    // A restore replaces etcd's data while nothing runs; `realise` then starts everything again.
    let mut op_report = None;
    if let Some(op) = etcd_ops::pending(&hcp).filter(|op| etcd_ops::is_restore(op)) {
        op_report = Some(run_etcd_operation(&ctx, &ns, &name, &layout, op).await);
    }
    let o = realise(&hcp, &ctx, &ns, &name, &layout).await?;
    if let Some(op) = etcd_ops::pending(&hcp).filter(|op| !etcd_ops::is_restore(op))
        && o.apiserver_ready
    {
        op_report = Some(run_etcd_operation(&ctx, &ns, &name, &layout, op).await);
    }
    let st = write_status(&api, &hcp, &o, op_report).await?;
    let ready = kaas_api::conditions::is_true(&st.conditions, kaas_api::hosted::conditions::READY);
    // Ready ones are checked now and then (dead processes restart); failed ones back off (a spec
    // change wakes them at once); progressing ones soon.
    Ok(Action::requeue(if ready {
        Duration::from_secs(15)
    } else if o.version_unavailable.is_some() || o.start_error.is_some() {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(2)
    }))
}

async fn write_status(
    api: &Api<HostedControlPlane>,
    hcp: &HostedControlPlane,
    o: &Observed,
    op: Option<EtcdOperationStatus>,
) -> Result<HostedControlPlaneStatus> {
    let now = Time(Timestamp::now());
    let mut st = status::compute(&hcp.spec, o, hcp.status.as_ref(), &now);
    st.etcd_operation = op.or_else(|| hcp.status.as_ref()?.etcd_operation.clone());
    if hcp.status.as_ref() == Some(&st) {
        return Ok(st);
    }
    let patch = json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "HostedControlPlane",
        "status": st,
    });
    api.patch_status(
        &hcp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .context("writing the HostedControlPlane status")?;
    Ok(st)
}

/// Does one etcd operation and reports on it (failures included: the operator shows them).
async fn run_etcd_operation(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    layout: &Layout,
    op: &EtcdOperation,
) -> EtcdOperationStatus {
    let started = Timestamp::now();
    tracing::info!(namespace = %ns, %name, id = %op.id, kind = ?op.kind, "etcd operation");
    let result = async {
        let etcdutl = ctx.cfg.etcdutl.as_deref().ok_or_else(|| {
            anyhow!("this runtime has no etcdutl (kaas hosted-runtime --etcdutl, plane/build-backup.sh)")
        })?;
        let transfer = etcd_ops::Transfer::load(&ctx.client, ns, op).await?;
        let ports = Ports::load(layout).ok_or_else(|| anyhow!("the control plane has no ports yet"))?;
        if etcd_ops::is_restore(op) {
            let stopped = processes::stop_control_plane(layout).await;
            tracing::info!(namespace = %ns, %name, processes = stopped.len(), "stopped for the restore");
            etcd_ops::restore(layout, ports.etcd_peer, etcdutl, &transfer).await
        } else {
            etcd_ops::snapshot(layout, ports.etcd, etcdutl, &transfer).await
        }
    }
    .await;
    let finished = Timestamp::now();
    let mut report = EtcdOperationStatus {
        id: op.id.clone(),
        started_at: Some(started.to_string()),
        finished_at: Some(finished.to_string()),
        ..EtcdOperationStatus::default()
    };
    match result {
        Ok((revision, size)) => {
            tracing::info!(namespace = %ns, %name, id = %op.id, revision, size, "etcd operation done");
            report.phase = "Succeeded".into();
            report.revision = Some(revision);
            report.size = Some(size);
        }
        Err(e) => {
            tracing::warn!(namespace = %ns, %name, id = %op.id, error = %short(&e), "etcd operation failed");
            report.phase = "Failed".into();
            report.message = Some(short(&e));
        }
    }
    report
}

/// Ports: persisted ones stay while they are free or held by our own running process; any other
/// is replaced (the launches then differ and the plan restarts what uses it).
fn ports(
    layout: &Layout,
    running: &std::collections::BTreeMap<Component, processes::Record>,
) -> Result<Ports> {
    let held = |c: Component| running.contains_key(&c);
    let ok = |port: u16, c: Component| port != 0 && (held(c) || port_is_free(port));
    let old = Ports::load(layout);
    let p = Ports {
        etcd: match old {
            Some(o) if ok(o.etcd, Component::Etcd) => o.etcd,
            _ => free_port()?,
        },
        etcd_peer: match old {
            Some(o) if ok(o.etcd_peer, Component::Etcd) => o.etcd_peer,
            _ => free_port()?,
        },
        apiserver: match old {
            Some(o) if ok(o.apiserver, Component::ApiServer) => o.apiserver,
            _ => free_port()?,
        },
    };
    if old != Some(p) {
        if old.is_some() {
            tracing::info!(dir = %layout.dir.display(), ?old, new = ?p, "ports taken by others; moving");
        }
        p.save(layout)?;
    }
    Ok(p)
}

fn kubeconfig_yaml(
    cluster: &str,
    port: u16,
    ca_pem: &str,
    user: &str,
    cert: &CertPair,
) -> Result<String> {
    use base64::Engine as _;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ctx = format!("{user}@{cluster}");
    Ok(serde_yaml::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": b(ca_pem),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b(&cert.cert_pem),
            "client-key-data": b(&cert.key_pem),
        }}],
        "contexts": [{"name": ctx, "context": {"cluster": cluster, "user": user}}],
        "current-context": ctx,
    }))?)
}

/// A client for the workload API server with bounded connect and read timeouts.
pub async fn workload_client(kubeconfig_yaml: &str) -> Result<Client> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml).context("parsing kubeconfig")?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("kubeconfig")?;
    cfg.connect_timeout = Some(Duration::from_secs(3));
    cfg.read_timeout = Some(Duration::from_secs(15));
    cfg.write_timeout = Some(Duration::from_secs(15));
    Client::try_from(cfg).context("workload client")
}

async fn readyz(client: &Client) -> bool {
    let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await,
        Ok(Ok(body)) if body.trim() == "ok"
    )
}

async fn server_version(client: &Client) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
        Ok(Ok(info)) => Some(info.git_version),
        _ => None,
    }
}

/// Waits for a started component to serve; fails with its log tail if it exits or times out.
async fn wait_ready(
    layout: &Layout,
    launch: &Launch,
    ports: Ports,
    admin: Option<&Client>,
    want_version: &str,
) -> Result<()> {
    let timeout = match launch.component {
        Component::Etcd => Duration::from_secs(30),
        Component::ApiServer => Duration::from_secs(90),
        _ => Duration::from_millis(1500),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let rec = processes::read_record(layout, launch.component);
        let alive = rec
            .as_ref()
            .is_some_and(|r| processes::runs_program(r.pid, &r.program));
        if !alive {
            bail!(
                "{} exited during start-up; last lines of its log:\n{}",
                launch.component.name(),
                processes::log_tail(layout, launch.component, 15)
            );
        }
        let ok = match launch.component {
            Component::Etcd => http_status(ports.etcd, "/health").await == Some(200),
            Component::ApiServer => match admin {
                Some(c) => {
                    readyz(c).await
                        && server_version(c)
                            .await
                            .is_some_and(|v| plan::normalize(&v) == want_version)
                }
                None => false,
            },
            // Clients of the API server: alive after a short while is all there is to check.
            _ => Instant::now() + Duration::from_millis(200) >= deadline,
        };
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} not ready after {timeout:?}; last lines of its log:\n{}",
                launch.component.name(),
                processes::log_tail(layout, launch.component, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn short(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    if s.len() > 2000 {
        let mut cut = 2000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// Labels the workload cluster's `default` namespace with Pod Security `baseline` (enforce) and
/// `restricted` (audit, warn) unless it already carries an enforce level.
async fn label_default_namespace(admin: &Client) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(admin.clone());
    let ns = tokio::time::timeout(Duration::from_secs(5), api.get("default"))
        .await
        .map_err(|_| anyhow!("reading namespace default timed out"))??;
    if ns
        .labels()
        .contains_key("pod-security.kubernetes.io/enforce")
    {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default", "labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        }},
    });
    tokio::time::timeout(
        Duration::from_secs(5),
        api.patch(
            "default",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&patch),
        ),
    )
    .await
    .map_err(|_| anyhow!("labelling namespace default timed out"))??;
    Ok(())
}

/// The state directory of a `HostedControlPlane` belongs to it: one left by an earlier object of
/// the same name (another UID) is stopped and removed first.
async fn claim(hcp: &HostedControlPlane, ns: &str, name: &str, layout: &Layout) -> Result<()> {
    let uid = hcp.uid().unwrap_or_default();
    match std::fs::read_to_string(layout.uid_file()) {
        Ok(old) if old.trim() != uid => {
            tracing::warn!(namespace = %ns, %name, "state of an earlier object with this name; removing it");
            processes::stop_control_plane(layout).await;
            hibernation::release(layout);
            std::fs::remove_dir_all(&layout.dir)
                .with_context(|| format!("removing {}", layout.dir.display()))?;
        }
        _ => {}
    }
    std::fs::create_dir_all(&layout.dir)
        .with_context(|| format!("creating {}", layout.dir.display()))?;
    write_if_changed(&layout.dir.join(UID_FILE), uid.as_bytes(), false)?;
    Ok(())
}

/// Puts one control plane to rest as `spec.hibernated` asks (every process stopped, files and
/// ports kept) and observes it.
async fn hibernate(
    hcp: &HostedControlPlane,
    ns: &str,
    name: &str,
    layout: &Layout,
) -> Result<Observed> {
    claim(hcp, ns, name, layout).await?;
    let rest = hibernation::stop(layout).await;
    if !rest.stopped.is_empty() {
        let killed = rest.stopped.iter().filter(|(_, _, k)| *k).count();
        tracing::info!(namespace = %ns, %name, processes = rest.stopped.len(), killed, "hibernated: control plane and nodes stopped, data kept");
    }
    Ok(Observed {
        generation: hcp.meta().generation,
        hibernated: true,
        ports_not_held: rest.not_held.iter().map(ToString::to_string).collect(),
        endpoint: Ports::load(layout).map(|p| format!("https://127.0.0.1:{}", p.apiserver)),
        // The Secrets stay as they are: the kubeconfig works again once the cluster wakes.
        kubeconfig_secret: hcp
            .status
            .as_ref()
            .and_then(|s| s.kubeconfig_secret.clone()),
        ..Observed::default()
    })
}

/// Brings one control plane to its spec and observes it. Errors only for what must be retried
/// (files, the management API); process and workload problems end up in [`Observed`].
async fn realise(
    hcp: &HostedControlPlane,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    layout: &Layout,
) -> Result<Observed> {
    let cfg = &ctx.cfg;
    let mut o = Observed {
        generation: hcp.meta().generation,
        ..Observed::default()
    };
    // A directory left by an earlier object of the same name is not this one's.
    claim(hcp, ns, name, layout).await?;
    // Awake: the ports held while it slept go back to the processes that use them.
    hibernation::release(layout);

    let running = processes::observe(layout);
    // Processes of this control plane without a record (a runtime died between start and record)
    // would hold its ports and etcd's data: stop them before anything starts again.
    processes::stop_strays(layout, &running).await;
    let running_version = running
        .get(&Component::ApiServer)
        .and_then(|r| r.version.clone());
    let built = cfg.artifacts.workload_versions();
    let target = plan::target(&hcp.spec.version, &built, running_version.as_deref());
    o.version_unavailable = target.unavailable.clone();
    let Some(version) = target.version else {
        return Ok(o);
    };

    let creds: Credentials = pki::ensure(&layout.pki())?;
    let ports = ports(layout, &running)?;
    o.endpoint = Some(format!("https://127.0.0.1:{}", ports.apiserver));
    let admin_yaml = kubeconfig_yaml(
        name,
        ports.apiserver,
        &creds.ca_pem,
        "kaas-admin",
        &creds.admin,
    )?;
    write_if_changed(&layout.kubeconfig("admin"), admin_yaml.as_bytes(), true)?;
    for (who, user, cert) in [
        (
            "kube-controller-manager",
            "system:kube-controller-manager",
            &creds.controller_manager,
        ),
        ("kube-scheduler", "system:kube-scheduler", &creds.scheduler),
        ("kwok", "kaas-kwok", &creds.kwok),
    ] {
        let y = kubeconfig_yaml(name, ports.apiserver, &creds.ca_pem, user, cert)?;
        write_if_changed(&layout.kubeconfig(who), y.as_bytes(), true)?;
    }

    let a = &cfg.artifacts;
    let binaries = || -> Result<_> {
        Ok((
            a.workload_bin(&version, "kube-apiserver")?,
            a.workload_bin(&version, "kube-controller-manager")?,
            a.workload_bin(&version, "kube-scheduler")?,
            a.kwok()?,
            a.kwok_stages()?,
        ))
    };
    let (apiserver, controller_manager, scheduler, kwok, kwok_stages) = match binaries() {
        Ok(b) => b,
        Err(e) => {
            // A broken build is the operator's to see in the status, not only in a log.
            o.start_error = Some(short(&e));
            return Ok(o);
        }
    };
    let authentication_config = match &hcp.spec.oidc {
        Some(oidc) => {
            let minor = version
                .split('.')
                .nth(1)
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            let config = serde_json::to_vec_pretty(&authn::authentication_config(oidc, minor))?;
            let path = authn::config_path(layout, &config);
            write_if_changed(&path, &config, true)?;
            Some(path)
        }
        None => None,
    };
    authn::remove_others(layout, authentication_config.as_deref());
    let inputs = Inputs {
        name,
        spec: &hcp.spec,
        layout,
        ports,
        version: &version,
        apiserver,
        controller_manager,
        scheduler,
        etcd: a.bin("etcd"),
        kwok,
        kwok_stages,
        authentication_config,
        etcd_unsafe_no_fsync: cfg.etcd_unsafe_no_fsync,
    };
    // Never an empty etcd after a restore that died mid-swap.
    crate::etcd_ops::recover_data(layout);
    let launches = plan::launches(&inputs);
    let steps = plan::process_steps(&launches, &running);
    let admin = workload_client(&admin_yaml).await?;
    for step in &steps {
        let (c, restart) = match step {
            Step::Start(c) => (*c, false),
            Step::Restart(c) => (*c, true),
        };
        let Some(launch) = launches.iter().find(|l| l.component == c) else {
            continue;
        };
        if restart {
            let old = running.get(&c);
            tracing::info!(namespace = %ns, %name, component = c.name(),
                from = ?old.and_then(|r| r.version.clone()), to = ?launch.version, "restarting");
            processes::stop(layout, c).await;
        } else {
            tracing::info!(namespace = %ns, %name, component = c.name(), version = ?launch.version, "starting");
        }
        let started = processes::start(layout, launch, cfg.mode)
            .with_context(|| format!("starting {}", c.name()));
        let result = match started {
            Ok(_) => wait_ready(layout, launch, ports, Some(&admin), &version).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(namespace = %ns, %name, component = c.name(), error = %short(&e), "start failed");
            o.start_error = Some(short(&e));
            return Ok(o);
        }
    }

    o.apiserver_ready = readyz(&admin).await;
    if !o.apiserver_ready {
        return Ok(o);
    }
    o.reported_version = server_version(&admin).await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    o.controllers_ready = matches!(
        tokio::time::timeout(Duration::from_secs(5), sas.get_opt("default")).await,
        Ok(Ok(Some(_)))
    );
    // Pod Security for the one workload namespace every cluster starts with (scs-0217: at least
    // baseline, as a label); kept if the tenant has set its own level.
    if let Err(e) = label_default_namespace(&admin).await {
        tracing::warn!(namespace = %ns, %name, error = %short(&e), "cannot label the default namespace");
    }

    // The kubeconfig Secret next to the object, owned by it.
    let secret_name = kubeconfig_secret_name(name);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(
                [(
                    "cluster.x-k8s.io/cluster-name".to_string(),
                    name.to_string(),
                )]
                .into(),
            ),
            owner_references: hcp.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some(KUBECONFIG_SECRET_TYPE.into()),
        data: Some(
            [(
                KUBECONFIG_KEY.to_string(),
                ByteString(admin_yaml.clone().into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let current = secrets
        .get_opt(&secret_name)
        .await
        .context("reading the kubeconfig Secret")?;
    // Written only when missing or different (a moved port rewrites it).
    let same = current.is_some_and(|c| {
        c.data == secret.data
            && c.type_ == secret.type_
            && c.metadata.owner_references == secret.metadata.owner_references
    });
    if !same {
        secrets
            .patch(
                &secret_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .context("writing the kubeconfig Secret")?;
    }
    o.kubeconfig_secret = Some(secret_name);

    // The CA next to it (Cluster API convention `<name>-ca`, keys `tls.crt` and `tls.key`): the
    // operator signs tenants' short-lived credentials with it (`KubeconfigRequest`), the same way
    // it does with the CA Secret of a Cluster API cluster. Tenants cannot read Secrets here.
    let ca_key = std::fs::read(creds.file("ca.key")).context("reading the CA key")?;
    let ca_secret = Secret {
        metadata: ObjectMeta {
            name: Some(ca_secret_name(name)),
            namespace: Some(ns.to_string()),
            labels: Some(
                [(
                    "cluster.x-k8s.io/cluster-name".to_string(),
                    name.to_string(),
                )]
                .into(),
            ),
            owner_references: hcp.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some(KUBECONFIG_SECRET_TYPE.into()),
        data: Some(
            [
                (
                    "tls.crt".to_string(),
                    ByteString(creds.ca_pem.clone().into_bytes()),
                ),
                ("tls.key".to_string(), ByteString(ca_key)),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    let current = secrets
        .get_opt(&ca_secret_name(name))
        .await
        .context("reading the CA Secret")?;
    let same = current.is_some_and(|c| {
        c.data == ca_secret.data
            && c.type_ == ca_secret.type_
            && c.metadata.owner_references == ca_secret.metadata.owner_references
    });
    if !same {
        secrets
            .patch(
                &ca_secret_name(name),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&ca_secret),
            )
            .await
            .context("writing the CA Secret")?;
    }

    // Nodes: at the version the API server reports (never newer than it).
    let cp_version = o.reported_version.clone().unwrap_or(version.clone());
    let node_api: Api<Node> = Api::all(admin.clone());
    let list = |api: Api<Node>| async move {
        tokio::time::timeout(Duration::from_secs(15), api.list(&ListParams::default()))
            .await
            .map_err(|_| anyhow!("listing nodes timed out"))?
            .context("listing nodes")
    };
    let existing = match list(node_api.clone()).await {
        Ok(l) => l.items,
        Err(e) => {
            o.nodes_error = Some(short(&e));
            return Ok(o);
        }
    };
    let node_plan = plan::plan_nodes(
        &hcp.spec,
        &existing.iter().map(nodes::existing).collect::<Vec<_>>(),
        &cp_version,
    );
    let mut items = existing;
    if !node_plan.is_empty() {
        if let Err(e) = nodes::apply(&admin, ns, name, &hcp.spec, &node_plan).await {
            o.nodes_error = Some(short(&e));
        }
        match list(node_api).await {
            Ok(l) => items = l.items,
            Err(e) => {
                o.nodes_error = Some(short(&e));
                return Ok(o);
            }
        }
    }
    o.pools = Some(
        hcp.spec
            .pools
            .iter()
            .map(|p| {
                let mine: Vec<&Node> = items
                    .iter()
                    .filter(|n| nodes::existing(n).pool.as_deref() == Some(p.name.as_str()))
                    .collect();
                let versions: BTreeSet<String> = mine
                    .iter()
                    .filter_map(|n| nodes::existing(n).kubelet_version)
                    .collect();
                HostedPoolStatus {
                    name: p.name.clone(),
                    desired: p.replicas,
                    current: mine.len() as i32,
                    ready: mine.iter().filter(|n| nodes::is_ready(n)).count() as i32,
                    versions: versions.into_iter().collect(),
                }
            })
            .collect(),
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_persist_and_move_when_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "c");
        let none = std::collections::BTreeMap::new();
        let first = ports(&layout, &none).unwrap();
        assert_eq!(Ports::load(&layout), Some(first));
        // Free: kept.
        assert_eq!(ports(&layout, &none).unwrap(), first);
        // Taken by someone else: the API server moves, the rest stays, and it is persisted.
        let squatter = std::net::TcpListener::bind(("127.0.0.1", first.apiserver)).unwrap();
        let moved = ports(&layout, &none).unwrap();
        assert_ne!(moved.apiserver, first.apiserver);
        assert_eq!((moved.etcd, moved.etcd_peer), (first.etcd, first.etcd_peer));
        assert_eq!(Ports::load(&layout), Some(moved));
        // Held by our own running API server: kept.
        let _squatter2 = std::net::TcpListener::bind(("127.0.0.1", moved.apiserver)).unwrap();
        let running = std::collections::BTreeMap::from([(
            Component::ApiServer,
            processes::Record {
                pid: 1,
                program: "/x".into(),
                args: vec![],
                version: None,
            },
        )]);
        assert_eq!(ports(&layout, &running).unwrap(), moved);
        drop(squatter);
    }

    #[test]
    fn one_runtime_per_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_state_dir(tmp.path()).unwrap();
        let err = lock_state_dir(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("another hosted control-plane runtime"),
            "{err}"
        );
        drop(held);
        assert!(lock_state_dir(tmp.path()).is_ok());
        // The lock file is not taken for a namespace directory.
        assert!(control_plane_dirs(tmp.path()).is_empty());
    }

    #[test]
    fn kubeconfig_parses() {
        let pki = kaas_harness::certs::Pki::generate().unwrap();
        let admin = pki.client_cert("kaas-admin", &["system:masters"]).unwrap();
        let y = kubeconfig_yaml("c1", 6443, pki.ca_pem(), "kaas-admin", &admin).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&y).unwrap();
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(kc.current_context.as_deref(), Some("kaas-admin@c1"));
        assert_eq!(kubeconfig_secret_name("c1"), "c1-kubeconfig");
    }
}
