//! etcd backups and restores of workload clusters (`ClusterBackup`, `ClusterRestore`,
//! `Cluster.spec.backup`; issue #19, `docs/backup.md`).
//!
//! The operator holds the store's credentials and the provider's master key (Secrets in the
//! provider's namespace) and never hands them on. Per request it derives the object's own
//! AES-256-GCM key (HMAC-SHA256 of the master key and the object key), presigns one URL of that
//! object for a few minutes, puts both into a Secret next to the `HostedControlPlane` (provider
//! side, unreadable for tenants) and asks the runtime through `spec.etcdOperation`; the runtime
//! reports in `status.etcdOperation` (crates/hosted, `etcd_ops.rs`). Requests can only name a
//! `Cluster` and a `ClusterBackup` of their own namespace. Scheduled backups are `ClusterBackup`s
//! the operator creates when the cron schedule is due (skipped, with one event, while the cluster
//! hibernates); retention deletes the oldest of them, and deleting a `ClusterBackup` deletes its
//! object (finalizer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kaas_api::backup::{
    BACKUP_FINALIZER, BackupStatus, CONDITION_READY, ClusterBackup, ClusterBackupSpec,
    ClusterRestore, Cron, EtcdOperationKind, EtcdOperationStatus, LABEL_SCHEDULED_FOR,
    PHASE_FAILED, PHASE_RUNNING, PHASE_SUCCEEDED,
};
use kaas_api::conditions::{self as c, Status};
use kaas_api::hosted::HostedControlPlane;
use kaas_api::provider::BackendType;
use kaas_api::{Cluster, Provider};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::s3::Bucket;
use crate::{Context, Error, FIELD_MANAGER};

/// Field manager of `HostedControlPlane.spec.etcdOperation` (apart from the hosted backend's).
pub const ETCD_FIELD_MANAGER: &str = "kaas-operator-backup";
/// How long a presigned URL is valid.
const URL_TTL: Duration = Duration::from_secs(15 * 60);

/// What Cluster API clusters get instead of a backup.
pub const CAPI_NOT_BUILT: &str = "etcd backups of Cluster API clusters are not built yet: kaas would run a Job in the workload cluster on a control-plane node (nodeSelector node-role.kubernetes.io/control-plane, hostNetwork, the kubeadm etcd client certificate /etc/kubernetes/pki/etcd/healthcheck-client.{crt,key} and CA mounted read-only by hostPath) running etcdctl snapshot save against https://127.0.0.1:2379 and uploading through a presigned URL (docs/backup.md); use a hosted provider";

/// The store of a provider, with the master key.
struct Store {
    bucket: Bucket,
    master: Vec<u8>,
}

/// Why a request cannot go on: reason and message, for good or for now.
enum Stop {
    Refused(&'static str, String),
    Waiting(&'static str, String),
}

/// Runs the backup, restore and schedule controllers until `shutdown`.
pub async fn run<F>(ctx: Arc<Context>, shutdown: impl Fn() -> F)
where
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let backups = Controller::new(
        Api::<ClusterBackup>::all(ctx.client.clone()),
        watcher::Config::default().any_semantic(),
    );
    // The backup controller's cache of every ClusterBackup: the scheduler reads each cluster's
    // scheduled backups there instead of a LIST per cluster every 10 s.
    let cached = backups.store();
    let backups = backups
        .graceful_shutdown_on(shutdown())
        .run(
            reconcile_backup,
            |b, e, _| {
                warn!(backup = %b.name_any(), error = %e, "cluster backup failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            ctx.clone(),
        )
        .for_each(|_| async {});
    let restores = Controller::new(
        Api::<ClusterRestore>::all(ctx.client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown())
    .run(
        reconcile_restore,
        |r, e, _| {
            warn!(restore = %r.name_any(), error = %e, "cluster restore failed; retrying");
            Action::requeue(Duration::from_secs(5))
        },
        ctx.clone(),
    )
    .for_each(|_| async {});
    let stop = shutdown();
    let schedules = async move {
        tokio::select! {
            _ = stop => {}
            _ = schedule_loop(ctx, cached) => {}
        }
    };
    futures::join!(backups, restores, schedules);
}

/// The provider's store, or why there is none. Nothing of the Secrets goes into a message.
async fn store(ctx: &Context, provider: &Provider) -> Result<Store, Stop> {
    let Some(cfg) = provider.spec.backup.as_ref().map(|b| &b.store) else {
        return Err(Stop::Refused(
            "NoBackupStore",
            format!(
                "provider {} has no backup store (Provider spec.backup.store); ask the provider to configure one",
                provider.name_any()
            ),
        ));
    };
    let ns = &provider.spec.backend.namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let read = |name: String| {
        let secrets = secrets.clone();
        async move {
            match secrets.get_opt(&name).await {
                Ok(Some(s)) => Ok(s.data.unwrap_or_default()),
                Ok(None) => Err(Stop::Waiting(
                    "StoreCredentialsMissing",
                    format!("the provider's backup Secret {name} does not exist yet"),
                )),
                Err(e) => Err(Stop::Waiting(
                    "StoreCredentialsMissing",
                    format!(
                        "cannot read the provider's backup Secret {name}: {}",
                        status_text(&e)
                    ),
                )),
            }
        }
    };
    let creds = read(cfg.credentials_secret_ref.name.clone()).await?;
    let text = |d: &BTreeMap<String, ByteString>, k: &str| {
        d.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .map(|s| s.trim().to_string())
    };
    let (Some(ak), Some(sk)) = (text(&creds, "accessKeyID"), text(&creds, "secretAccessKey"))
    else {
        return Err(Stop::Waiting(
            "StoreCredentialsMissing",
            format!(
                "the provider's backup Secret {} lacks accessKeyID or secretAccessKey",
                cfg.credentials_secret_ref.name
            ),
        ));
    };
    let key = read(cfg.encryption_key_secret_ref.name.clone()).await?;
    let Some(master) = key.get("key").and_then(|b| master_key(&b.0)) else {
        return Err(Stop::Waiting(
            "StoreCredentialsMissing",
            format!(
                "the provider's encryption key Secret {} lacks key: 32 bytes, raw or base64",
                cfg.encryption_key_secret_ref.name
            ),
        ));
    };
    Ok(Store {
        bucket: Bucket::new(&cfg.endpoint, &cfg.bucket, cfg.region.as_deref(), &ak, &sk),
        master,
    })
}

/// 32 raw bytes, or their base64.
fn master_key(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() == 32 {
        return Some(raw.to_vec());
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|k| k.len() == 32)
}

/// The AES-256-GCM key of one object: HMAC-SHA256(master, "kaas-backup-v1:" + object key).
pub fn object_key_secret(master: &[u8], object_key: &str) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master);
    ring::hmac::sign(&k, format!("kaas-backup-v1:{object_key}").as_bytes())
        .as_ref()
        .to_vec()
}

/// Where a backup's object goes: `<namespace>/<cluster>/<backup>-<uid>.etcd.sealed`.
pub fn object_key(ns: &str, cluster: &str, backup: &str, uid: &str) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("{ns}/{cluster}/{backup}-{short}.etcd.sealed")
}

/// The cluster, its provider and control plane, or why not.
async fn locate(
    ctx: &Context,
    ns: &str,
    cluster_name: &str,
    what: &str,
) -> Result<(Cluster, Provider, Store, HostedControlPlane), Stop> {
    let cluster = match Api::<Cluster>::namespaced(ctx.client.clone(), ns)
        .get_opt(cluster_name)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Stop::Refused(
                "ClusterNotFound",
                format!(
                    "spec.cluster: there is no Cluster {cluster_name} in namespace {ns}; a {what} can only name a Cluster of its own namespace"
                ),
            ));
        }
        Err(e) => return Err(Stop::Waiting("ClusterUnreadable", status_text(&e))),
    };
    let provider = crate::dereference::provider(&ctx.provider_store, &cluster).map_err(|e| {
        warn!(error = ?e, "the provider of a backup's cluster");
        Stop::Waiting(
            "ProviderNotFound",
            "the cluster's provider is not known to the operator yet".into(),
        )
    })?;
    if !ctx.handles(&provider.name_any()) {
        return Err(Stop::Waiting(
            "Pending",
            "waiting for the operator instance of this cluster's provider".into(),
        ));
    }
    match provider.spec.backend.kind {
        BackendType::Hosted => {}
        BackendType::ClusterAPI => {
            return Err(Stop::Refused("NotSupported", CAPI_NOT_BUILT.into()));
        }
        BackendType::Static => {
            return Err(Stop::Refused(
                "NotSupported",
                format!(
                    "cluster {cluster_name} is an imported (Static) cluster: kaas does not run its etcd"
                ),
            ));
        }
    }
    let store = store(ctx, &provider).await?;
    let side_ns = kaas_render::capi_namespace(&provider.name_any(), ns);
    let hcp = match Api::<HostedControlPlane>::namespaced(ctx.client.clone(), &side_ns)
        .get_opt(cluster_name)
        .await
    {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Err(Stop::Waiting(
                "ClusterNotReady",
                format!("cluster {cluster_name} has no control plane yet"),
            ));
        }
        Err(e) => return Err(Stop::Waiting("ClusterUnreadable", status_text(&e))),
    };
    Ok((cluster, provider, store, hcp))
}

fn hcp_ready(hcp: &HostedControlPlane) -> bool {
    hcp.status
        .as_ref()
        .is_some_and(|s| c::is_true(&s.conditions, kaas_api::hosted::conditions::READY))
}

/// The runtime's report on the operation `id`.
fn report<'a>(hcp: &'a HostedControlPlane, id: &str) -> Option<&'a EtcdOperationStatus> {
    hcp.status
        .as_ref()?
        .etcd_operation
        .as_ref()
        .filter(|r| r.id == id)
}

/// Waiting for another request's operation the runtime has not finished.
fn busy(hcp: &HostedControlPlane, id: &str) -> Option<Stop> {
    let op = hcp.spec.etcd_operation.as_ref()?;
    (op.id != id && report(hcp, &op.id).is_none()).then(|| {
        Stop::Waiting(
            "Busy",
            format!("waiting for the cluster's running etcd operation {}", op.id),
        )
    })
}

/// The status of a finished operation, from the runtime's report.
fn finished(
    st: &BackupStatus,
    key: &str,
    rep: &EtcdOperationStatus,
    finished_at: Option<String>,
) -> BackupStatus {
    let mut done = st.clone();
    done.object_key = Some(key.into());
    done.size = rep.size;
    done.revision = rep.revision;
    done.started_at = st.started_at.clone().or(rep.started_at.clone());
    done.finished_at = finished_at;
    done.duration_seconds =
        seconds_between(done.started_at.as_deref(), done.finished_at.as_deref());
    done
}

fn transfer_secret_name(hcp: &str, id: &str) -> String {
    let short: String = id.chars().filter(|c| *c != '-').take(12).collect();
    format!("{hcp}-etcd-{short}")
}

/// Writes the transfer Secret and asks the runtime for the operation.
async fn request_operation(
    ctx: &Context,
    hcp: &HostedControlPlane,
    id: &str,
    kind: EtcdOperationKind,
    url: String,
    key: &[u8],
) -> Result<(), Error> {
    let ns = hcp.namespace().unwrap_or_default();
    let name = hcp.name_any();
    let secret_name = transfer_secret_name(&name, id);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(ns.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "scs.community/v1alpha1".into(),
                kind: "HostedControlPlane".into(),
                name: name.clone(),
                uid: hcp.uid().unwrap_or_default(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                ("url".to_string(), ByteString(url.into_bytes())),
                (
                    "key".to_string(),
                    ByteString(
                        base64::engine::general_purpose::STANDARD
                            .encode(key)
                            .into_bytes(),
                    ),
                ),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &secret_name,
            &PatchParams::apply(ETCD_FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Api::<HostedControlPlane>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &name,
            &PatchParams::apply(ETCD_FIELD_MANAGER).force(),
            &Patch::Apply(&json!({
                "apiVersion": "scs.community/v1alpha1",
                "kind": "HostedControlPlane",
                "spec": {"etcdOperation": {"id": id, "kind": kind, "secretName": secret_name}},
            })),
        )
        .await?;
    Ok(())
}

async fn remove_transfer_secret(ctx: &Context, hcp: &HostedControlPlane, id: &str) {
    let ns = hcp.namespace().unwrap_or_default();
    let _ = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .delete(
            &transfer_secret_name(&hcp.name_any(), id),
            &Default::default(),
        )
        .await;
}

/// Sets `Ready` and the phase, and writes the status if it changed.
async fn set_status<K>(
    ctx: &Context,
    obj: &K,
    mut st: BackupStatus,
    phase: &str,
    status: Status,
    reason: &str,
    message: String,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let old = st.clone();
    st.phase = Some(phase.into());
    c::set(
        &mut st.conditions,
        CONDITION_READY,
        status,
        reason,
        message,
        obj.meta().generation,
        &Time(Timestamp::now()),
    );
    if st == old {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&json!({
            "apiVersion": "scs.community/v1alpha1",
            "kind": K::kind(&()),
            "status": st,
        })),
    )
    .await?;
    Ok(())
}

async fn event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    on: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &on.object_ref(&())).await {
        warn!(error = %e, reason, "cannot publish an event");
    }
}

fn seconds_between(a: Option<&str>, b: Option<&str>) -> Option<f64> {
    let a: Timestamp = a?.parse().ok()?;
    let b: Timestamp = b?.parse().ok()?;
    Some((b.as_millisecond() - a.as_millisecond()) as f64 / 1000.0)
}

/// Refusals and waits end up in the status (and refusals as a Warning event).
async fn stopped<K>(ctx: &Context, obj: &K, st: BackupStatus, stop: Stop) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match stop {
        Stop::Refused(reason, msg) => {
            info!(namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(), reason, "refused");
            event(ctx, obj, true, reason, msg.clone()).await;
            set_status(ctx, obj, st, PHASE_FAILED, Status::False, reason, msg).await?;
            Ok(Action::await_change())
        }
        Stop::Waiting(reason, msg) => {
            let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
            set_status(ctx, obj, st, &phase, Status::Unknown, reason, msg).await?;
            Ok(Action::requeue(Duration::from_secs(3)))
        }
    }
}

fn terminal(st: &BackupStatus) -> bool {
    matches!(st.phase.as_deref(), Some(PHASE_SUCCEEDED | PHASE_FAILED))
}

async fn set_finalizers(
    ctx: &Context,
    b: &ClusterBackup,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    Api::<ClusterBackup>::namespaced(ctx.client.clone(), &b.namespace().unwrap_or_default())
        .patch(
            &b.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": finalizers,
                "resourceVersion": b.resource_version(),
            }})),
        )
        .await?;
    Ok(())
}

/// A deleted backup: its object goes first, then the finalizer.
async fn delete_backup(ctx: &Context, b: &ClusterBackup) -> Result<Action, Error> {
    if !b.finalizers().iter().any(|f| f == BACKUP_FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = b.namespace().unwrap_or_default();
    if let Some(key) = b.status.as_ref().and_then(|s| s.object_key.clone()) {
        let cluster = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&b.spec.cluster)
            .await?;
        let provider = cluster
            .as_ref()
            .and_then(|c| crate::dereference::provider(&ctx.provider_store, c).ok());
        if let Some(provider) = provider {
            if !ctx.handles(&provider.name_any()) {
                return Ok(Action::await_change());
            }
            if let Ok(store) = store(ctx, &provider).await {
                store
                    .bucket
                    .delete(&key)
                    .await
                    .map_err(|e| Error::Other(format!("deleting backup object {key}: {e:#}")))?;
                info!(namespace = %ns, backup = %b.name_any(), %key, "backup object deleted");
            }
        }
    }
    let rest = b
        .finalizers()
        .iter()
        .filter(|f| *f != BACKUP_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, b, rest).await?;
    Ok(Action::await_change())
}

async fn reconcile_backup(b: Arc<ClusterBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    if b.meta().deletion_timestamp.is_some() {
        return delete_backup(&ctx, &b).await;
    }
    let st = b.status.clone().unwrap_or_default();
    if terminal(&st) {
        return Ok(Action::await_change());
    }
    let ns = b.namespace().unwrap_or_default();
    let (cluster, _provider, store, hcp) =
        match locate(&ctx, &ns, &b.spec.cluster, "ClusterBackup").await {
            Ok(v) => v,
            Err(stop) => return stopped(&ctx, &*b, st, stop).await,
        };
    if !b.finalizers().iter().any(|f| f == BACKUP_FINALIZER) {
        let mut all = b.finalizers().to_vec();
        all.push(BACKUP_FINALIZER.into());
        set_finalizers(&ctx, &b, all).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let id = b.uid().unwrap_or_default();
    let key = st
        .object_key
        .clone()
        .unwrap_or_else(|| object_key(&ns, &b.spec.cluster, &b.name_any(), &id));
    match report(&hcp, &id) {
        Some(r) if r.phase == PHASE_SUCCEEDED => {
            remove_transfer_secret(&ctx, &hcp, &id).await;
            let done = finished(&st, &key, r, r.finished_at.clone());
            let msg = format!(
                "etcd snapshot at revision {} stored as {key} ({} bytes, encrypted)",
                r.revision.unwrap_or_default(),
                r.size.unwrap_or_default()
            );
            info!(namespace = %ns, backup = %b.name_any(), %key, size = ?r.size, revision = ?r.revision, "backup done");
            event(
                &ctx,
                &cluster,
                false,
                "BackupSucceeded",
                format!("ClusterBackup {}: {msg}", b.name_any()),
            )
            .await;
            set_status(
                &ctx,
                &*b,
                done,
                PHASE_SUCCEEDED,
                Status::True,
                "Succeeded",
                msg,
            )
            .await?;
            Ok(Action::await_change())
        }
        Some(r) => {
            remove_transfer_secret(&ctx, &hcp, &id).await;
            let msg = format!(
                "the snapshot failed: {}",
                r.message.clone().unwrap_or_default()
            );
            event(&ctx, &*b, true, "BackupFailed", msg.clone()).await;
            set_status(&ctx, &*b, st, PHASE_FAILED, Status::False, "Failed", msg).await?;
            Ok(Action::await_change())
        }
        None if hcp.spec.etcd_operation.as_ref().is_some_and(|o| o.id == id) => {
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        None => {
            // A snapshot needs the running etcd: refused at once, not left waiting for a Ready
            // that comes only once someone wakes the cluster (while it wakes, it waits).
            if asked_to_hibernate(&cluster) {
                return stopped(
                    &ctx,
                    &*b,
                    st,
                    Stop::Refused("Hibernated", hibernated_refusal(&b.spec.cluster)),
                )
                .await;
            }
            if let Some(busy) = busy(&hcp, &id) {
                return stopped(&ctx, &*b, st, busy).await;
            }
            if !hcp_ready(&hcp) {
                return stopped(
                    &ctx,
                    &*b,
                    st,
                    Stop::Waiting(
                        "ClusterNotReady",
                        format!("waiting for cluster {} to be Ready", b.spec.cluster),
                    ),
                )
                .await;
            }
            let url = store.bucket.presign("PUT", &key, URL_TTL);
            let secret = object_key_secret(&store.master, &key);
            request_operation(&ctx, &hcp, &id, EtcdOperationKind::Snapshot, url, &secret).await?;
            let mut running = st;
            running.object_key = Some(key);
            running.started_at = Some(Timestamp::now().to_string());
            set_status(
                &ctx,
                &*b,
                running,
                PHASE_RUNNING,
                Status::Unknown,
                "Running",
                "taking the etcd snapshot".into(),
            )
            .await?;
            Ok(Action::requeue(Duration::from_secs(2)))
        }
    }
}

async fn reconcile_restore(r: Arc<ClusterRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let st = r.status.clone().unwrap_or_default();
    if terminal(&st) {
        return Ok(Action::await_change());
    }
    let ns = r.namespace().unwrap_or_default();
    let backup = match Api::<ClusterBackup>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&r.spec.backup)
        .await?
    {
        Some(b) => b,
        None => {
            let stop = Stop::Refused(
                "BackupNotFound",
                format!(
                    "spec.backup: there is no ClusterBackup {} in namespace {ns}; a ClusterRestore can only name a backup of its own namespace",
                    r.spec.backup
                ),
            );
            return stopped(&ctx, &*r, st, stop).await;
        }
    };
    let bst = backup.status.clone().unwrap_or_default();
    let Some(key) = bst
        .object_key
        .clone()
        .filter(|_| bst.phase.as_deref() == Some(PHASE_SUCCEEDED))
    else {
        let stop = if bst.phase.as_deref() == Some(PHASE_FAILED) {
            Stop::Refused(
                "BackupFailed",
                format!(
                    "spec.backup: ClusterBackup {} failed; name one that succeeded",
                    r.spec.backup
                ),
            )
        } else {
            Stop::Waiting(
                "BackupNotReady",
                format!("waiting for ClusterBackup {} to succeed", r.spec.backup),
            )
        };
        return stopped(&ctx, &*r, st, stop).await;
    };
    let (cluster, _provider, store, hcp) =
        match locate(&ctx, &ns, &r.spec.cluster, "ClusterRestore").await {
            Ok(v) => v,
            Err(stop) => return stopped(&ctx, &*r, st, stop).await,
        };
    let id = r.uid().unwrap_or_default();
    match report(&hcp, &id) {
        Some(rep) if rep.phase == PHASE_SUCCEEDED => {
            remove_transfer_secret(&ctx, &hcp, &id).await;
            if !hcp_ready(&hcp) {
                let mut w = st;
                w.revision = rep.revision;
                set_status(
                    &ctx,
                    &*r,
                    w,
                    PHASE_RUNNING,
                    Status::Unknown,
                    "Restarting",
                    "etcd restored; waiting for the control plane to be Ready".into(),
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            // A restore is done when the control plane is Ready again, not when etcd is.
            let done = finished(&st, &key, rep, Some(Timestamp::now().to_string()));
            let msg = format!(
                "cluster {} restored from ClusterBackup {} (revision {}); the control plane is Ready",
                r.spec.cluster,
                r.spec.backup,
                rep.revision.unwrap_or_default()
            );
            info!(namespace = %ns, restore = %r.name_any(), cluster = %r.spec.cluster, backup = %r.spec.backup, "restore done");
            event(
                &ctx,
                &cluster,
                false,
                "RestoreSucceeded",
                format!("ClusterRestore {}: {msg}", r.name_any()),
            )
            .await;
            set_status(
                &ctx,
                &*r,
                done,
                PHASE_SUCCEEDED,
                Status::True,
                "Restored",
                msg,
            )
            .await?;
            Ok(Action::await_change())
        }
        Some(rep) => {
            remove_transfer_secret(&ctx, &hcp, &id).await;
            let msg = format!(
                "the restore failed: {}",
                rep.message.clone().unwrap_or_default()
            );
            event(&ctx, &*r, true, "RestoreFailed", msg.clone()).await;
            set_status(&ctx, &*r, st, PHASE_FAILED, Status::False, "Failed", msg).await?;
            Ok(Action::await_change())
        }
        None if hcp.spec.etcd_operation.as_ref().is_some_and(|o| o.id == id) => {
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        None => {
            if let Some(busy) = busy(&hcp, &id) {
                return stopped(&ctx, &*r, st, busy).await;
            }
            let url = store.bucket.presign("GET", &key, URL_TTL);
            let secret = object_key_secret(&store.master, &key);
            request_operation(&ctx, &hcp, &id, EtcdOperationKind::Restore, url, &secret).await?;
            let mut running = st;
            running.object_key = Some(key);
            running.started_at = Some(Timestamp::now().to_string());
            set_status(
                &ctx,
                &*r,
                running,
                PHASE_RUNNING,
                Status::Unknown,
                "Running",
                "restoring etcd (the control plane restarts)".into(),
            )
            .await?;
            Ok(Action::requeue(Duration::from_secs(2)))
        }
    }
}

/// Every 10 s: scheduled backups that are due, and retention. Starts once the Provider and the
/// SCS Cluster caches are filled.
async fn schedule_loop(ctx: Arc<Context>, backups: kube::runtime::reflector::Store<ClusterBackup>) {
    if ctx.provider_store.wait_until_ready().await.is_err()
        || ctx.clusters.wait_until_ready().await.is_err()
    {
        return;
    }
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Err(e) = schedule_once(&ctx, &backups, &mut warned).await {
            warn!(error = %e, "backup schedules");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// One pass over the clusters with a backup schedule, read from the SCS Cluster cache (not a LIST
/// of every full Cluster every 10 s, issue #15). Nothing is done while the cache is not filled:
/// the pass only ever looks at the clusters it is given (no backup is pruned or forgotten for a
/// cluster it does not see).
///
/// Each cluster's scheduled backups come from the backup controller's cache (`backups`), grouped
/// once per pass; until that cache is filled, each cluster's are listed.
async fn schedule_once(
    ctx: &Context,
    backups: &kube::runtime::reflector::Store<ClusterBackup>,
    warned: &mut BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(clusters) = ctx.cached_clusters(|c| c.spec.backup.is_some()) else {
        return Ok(());
    };
    let mut scheduled = crate::filled(backups, |b| b.labels().contains_key(LABEL_SCHEDULED_FOR))
        .map(|all| {
            let mut by: BTreeMap<(String, String), Vec<ClusterBackup>> = BTreeMap::new();
            for b in all {
                let key = (
                    b.namespace().unwrap_or_default(),
                    b.labels()[LABEL_SCHEDULED_FOR].clone(),
                );
                by.entry(key).or_default().push((*b).clone());
            }
            by
        });
    let now_minute = Timestamp::now().as_second().div_euclid(60);
    for cluster in clusters.iter().map(|c| &**c) {
        // One cluster's trouble is that cluster's (an event on it), never every other tenant's:
        // the pass goes on with the next cluster.
        let mine = scheduled.as_mut().map(|by| {
            by.remove(&(cluster.namespace().unwrap_or_default(), cluster.name_any()))
                .unwrap_or_default()
        });
        if let Err(e) = schedule_cluster(ctx, cluster, mine, now_minute, warned).await {
            let key = format!(
                "{}/{}",
                cluster.namespace().unwrap_or_default(),
                cluster.name_any()
            );
            warn!(cluster = %key, error = %e, "backup schedule");
            let msg = match &e {
                Error::Kube(kube::Error::Api(s)) => format!(
                    "the scheduled backup could not be taken or pruned: HTTP {} {}; retried in 10 s",
                    s.code, s.reason
                ),
                _ => "the scheduled backup could not be taken or pruned; retried in 10 s".into(),
            };
            if warned.get(&key) != Some(&msg) {
                event(ctx, cluster, true, "BackupScheduleFailed", msg.clone()).await;
                warned.insert(key, msg);
            }
        }
    }
    Ok(())
}

/// Scheduled backups and retention of one cluster whose scheduled backups are `mine` (`None`:
/// not known, listed here).
async fn schedule_cluster(
    ctx: &Context,
    cluster: &Cluster,
    mine: Option<Vec<ClusterBackup>>,
    now_minute: i64,
    warned: &mut BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(sched) = cluster.spec.backup.clone() else {
        return Ok(());
    };
    let Ok(provider) = crate::dereference::provider(&ctx.provider_store, cluster) else {
        return Ok(());
    };
    if !ctx.handles(&provider.name_any()) {
        return Ok(());
    }
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    // A schedule where backups cannot be taken creates nothing (one Failed ClusterBackup a
    // minute would pile up for good): the Cluster gets the reason once, as an event.
    let unusable = if provider.spec.backend.kind != kaas_api::provider::BackendType::Hosted {
        Some(format!(
            "provider {:?} runs no hosted control planes: backups are taken on the hosted backend only (docs/backup.md); no scheduled backups are taken",
            provider.name_any()
        ))
    } else if provider.spec.backup.is_none() {
        Some(format!(
            "provider {:?} names no backup store (spec.backup.store); no scheduled backups are taken",
            provider.name_any()
        ))
    } else {
        None
    };
    if let Some(msg) = unusable {
        if warned.get(&format!("{ns}/{name}")) != Some(&msg) {
            event(ctx, cluster, true, "BackupScheduleUnusable", msg.clone()).await;
            warned.insert(format!("{ns}/{name}"), msg);
        }
        return Ok(());
    }
    let cron = match Cron::parse(&sched.schedule) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("spec.backup.schedule: {e}; no scheduled backups are taken");
            if warned.get(&format!("{ns}/{name}")) != Some(&msg) {
                event(ctx, cluster, true, "BackupScheduleInvalid", msg.clone()).await;
                warned.insert(format!("{ns}/{name}"), msg);
            }
            return Ok(());
        }
    };
    let api: Api<ClusterBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let mine = match mine {
        Some(mine) => mine,
        None => {
            api.list(&ListParams::default().labels(&format!("{LABEL_SCHEDULED_FOR}={name}")))
                .await?
                .items
        }
    };
    let created = |b: &ClusterBackup| {
        b.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second().div_euclid(60))
            .unwrap_or(0)
    };
    let since = mine
        .iter()
        .map(created)
        .max()
        .or_else(|| {
            cluster
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second().div_euclid(60))
        })
        .unwrap_or(now_minute);
    let hibernating = hibernates(cluster);
    let decision = scheduled(&cron, since, hibernating, woke(cluster), now_minute);
    if announce_skip(warned, &format!("{ns}/{name}"), hibernating, &decision) {
        info!(namespace = %ns, cluster = %name, "scheduled backup skipped: the cluster hibernates");
        event(ctx, cluster, false, "BackupSkipped", BACKUP_SKIPPED.into()).await;
    }
    if decision == Scheduled::Take {
        let stamp = Timestamp::from_second(now_minute * 60)
            .map(|t| t.strftime("%Y%m%d%H%M").to_string())
            .unwrap_or_default();
        let mut b = ClusterBackup::new(
            &format!("{name}-{stamp}"),
            ClusterBackupSpec {
                cluster: name.clone(),
            },
        );
        b.metadata.labels = Some([(LABEL_SCHEDULED_FOR.to_string(), name.clone())].into());
        match api.create(&PostParams::default(), &b).await {
            Ok(_) => {
                info!(namespace = %ns, cluster = %name, backup = %b.name_any(), "scheduled backup created")
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    prune(ctx, &api, cluster, mine, sched.retention).await
}

/// Why a backup asked of a hibernated cluster is refused.
fn hibernated_refusal(cluster: &str) -> String {
    format!(
        "cluster {cluster} hibernates (spec.hibernation.enabled): a snapshot needs its running etcd; wake it first, then ask again"
    )
}

/// The note of the event `BackupSkipped` (once per hibernation).
const BACKUP_SKIPPED: &str = "scheduled backup skipped: the cluster hibernates (spec.hibernation.enabled); scheduled backups resume at the first due time after it wakes (those due while it sleeps are not caught up)";

/// `spec.hibernation.enabled`.
fn asked_to_hibernate(cluster: &Cluster) -> bool {
    cluster
        .spec
        .hibernation
        .as_ref()
        .and_then(|h| h.enabled)
        .unwrap_or(false)
}

/// Whether the cluster hibernates or is asked to (`spec.hibernation.enabled`, or still phase
/// `Hibernated` while waking begins): its etcd does not run, no snapshot can be taken.
fn hibernates(cluster: &Cluster) -> bool {
    asked_to_hibernate(cluster)
        || cluster.status.as_ref().and_then(|s| s.phase.as_ref())
            == Some(&kaas_api::cluster::ClusterPhase::Hibernated)
}

/// The minute the cluster's hibernation last changed (the `Hibernated` condition's transition;
/// for an awake cluster: when it woke). Due times before it were skipped, not caught up.
fn woke(cluster: &Cluster) -> Option<i64> {
    let st = cluster.status.as_ref()?;
    let cond = c::get(&st.conditions, c::HIBERNATED)?;
    Some(cond.last_transition_time.0.as_second().div_euclid(60))
}

/// What a cluster's backup schedule asks at `now` (unix minutes).
#[derive(Debug, PartialEq, Eq)]
enum Scheduled {
    /// Nothing is due.
    Nothing,
    /// A backup is due: create its `ClusterBackup`.
    Take,
    /// A backup is due but the cluster hibernates: nothing is created (it would only fail).
    Skip,
}

/// `since`: the minute of the newest scheduled backup (or the cluster's creation); `woke`: see
/// [`woke`].
fn scheduled(cron: &Cron, since: i64, hibernating: bool, woke: Option<i64>, now: i64) -> Scheduled {
    let since = woke.map_or(since, |w| since.max(w));
    if cron.next_after(since).is_none_or(|due| due > now) {
        Scheduled::Nothing
    } else if hibernating {
        Scheduled::Skip
    } else {
        Scheduled::Take
    }
}

/// Whether to publish `BackupSkipped` now: at the first skip of a hibernation only (the mark in
/// `warned` goes once the cluster is awake).
fn announce_skip(
    warned: &mut BTreeMap<String, String>,
    key: &str,
    hibernating: bool,
    decision: &Scheduled,
) -> bool {
    let marked = warned.get(key).map(String::as_str) == Some(BACKUP_SKIPPED);
    if !hibernating {
        if marked {
            warned.remove(key);
        }
        return false;
    }
    if *decision != Scheduled::Skip || marked {
        return false;
    }
    warned.insert(key.into(), BACKUP_SKIPPED.into());
    true
}

/// An API error as a tenant-readable status may show it: the code and reason, never the server's
/// text (which names the operator's identity and provider-side objects).
fn status_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("HTTP {} {}; retried", s.code, s.reason),
        _ => "the API server did not answer; retried".into(),
    }
}

/// Failed scheduled backups kept per cluster (the newest), for their reasons.
const KEEP_FAILED: usize = 3;

/// Keeps the newest `retention` succeeded scheduled backups and the newest [`KEEP_FAILED`]
/// failed ones; deletes older ones (their objects go with them, by the finalizer).
async fn prune(
    ctx: &Context,
    api: &Api<ClusterBackup>,
    cluster: &Cluster,
    mut mine: Vec<ClusterBackup>,
    retention: i32,
) -> Result<(), Error> {
    mine.retain(|b| b.meta().deletion_timestamp.is_none());
    let phase = |b: &ClusterBackup| b.status.as_ref().and_then(|s| s.phase.clone());
    // Failed scheduled backups are kept for their reasons, the newest few only.
    let (mut failed, mut mine): (Vec<_>, Vec<_>) = mine
        .into_iter()
        .filter(|b| matches!(phase(b).as_deref(), Some(PHASE_SUCCEEDED | PHASE_FAILED)))
        .partition(|b| phase(b).as_deref() == Some(PHASE_FAILED));
    failed.sort_by_key(|b| {
        std::cmp::Reverse((
            b.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            b.name_any(),
        ))
    });
    // A backup the cache still shows is already gone: nothing to do (404).
    let delete = |name: String| async move {
        match api.delete(&name, &Default::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    };
    for old in failed.iter().skip(KEEP_FAILED) {
        delete(old.name_any()).await?;
    }
    mine.sort_by_key(|b| {
        std::cmp::Reverse((
            b.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            b.name_any(),
        ))
    });
    for old in mine.iter().skip(retention.max(1) as usize) {
        if !delete(old.name_any()).await? {
            continue;
        }
        let note = format!(
            "ClusterBackup {} deleted by retention (spec.backup.retention {retention})",
            old.name_any()
        );
        info!(namespace = %cluster.namespace().unwrap_or_default(), cluster = %cluster.name_any(), backup = %old.name_any(), "pruned");
        event(ctx, cluster, false, "BackupPruned", note).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_differ_per_backup_and_so_do_their_keys() {
        let a = object_key("t", "c", "b1", "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert_eq!(a, "t/c/b1-0a1b2c3d4e5f.etcd.sealed");
        let b = object_key("t", "c", "b2", "11111111-4e5f-6789-abcd-ef0123456789");
        let m = [1u8; 32];
        assert_eq!(object_key_secret(&m, &a).len(), 32);
        assert_ne!(object_key_secret(&m, &a), object_key_secret(&m, &b));
        assert_ne!(object_key_secret(&m, &a), object_key_secret(&[2u8; 32], &a));
    }

    fn cluster(v: serde_json::Value) -> Cluster {
        let mut c = json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t"}, "spec": {}
        });
        for (k, x) in v.as_object().unwrap() {
            c[k] = x.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn hibernated_condition(status: &str, minute: i64) -> serde_json::Value {
        json!({"type": "Hibernated", "status": status, "reason": "R", "message": "",
               "lastTransitionTime": Timestamp::from_second(minute * 60).unwrap().to_string()})
    }

    #[test]
    fn hibernating_clusters_skip_scheduled_backups() {
        let awake = cluster(json!({}));
        let asked = cluster(json!({"spec": {"hibernation": {"enabled": true}}}));
        let asleep = cluster(json!({
            "spec": {"hibernation": {"enabled": false}},
            "status": {"phase": "Hibernated", "conditions": [hibernated_condition("True", 0)]}
        }));
        assert!(!hibernates(&awake) && hibernates(&asked) && hibernates(&asleep));
        // A backup asked for is refused while the spec asks to hibernate; while it wakes (the
        // phase still Hibernated) it waits for Ready instead.
        assert!(asked_to_hibernate(&asked) && !asked_to_hibernate(&asleep));
        assert_eq!(woke(&awake), None);
        assert_eq!(woke(&asleep), Some(0));

        // Every hour at :00; the last backup at minute 0.
        let cron = Cron::parse("0 * * * *").unwrap();
        assert_eq!(scheduled(&cron, 0, false, None, 59), Scheduled::Nothing);
        assert_eq!(scheduled(&cron, 0, false, None, 60), Scheduled::Take);
        assert_eq!(scheduled(&cron, 0, true, None, 59), Scheduled::Nothing);
        assert_eq!(scheduled(&cron, 0, true, Some(30), 60), Scheduled::Skip);
        assert_eq!(scheduled(&cron, 0, true, Some(30), 300), Scheduled::Skip);
        // Woken at minute 310: what was due while it slept is not caught up, the next one is
        // taken.
        assert_eq!(
            scheduled(&cron, 0, false, Some(310), 311),
            Scheduled::Nothing
        );
        assert_eq!(
            scheduled(&cron, 0, false, Some(310), 359),
            Scheduled::Nothing
        );
        assert_eq!(scheduled(&cron, 0, false, Some(310), 360), Scheduled::Take);
        // A hibernation long ago changes nothing.
        assert_eq!(scheduled(&cron, 0, false, Some(-500), 60), Scheduled::Take);
    }

    #[test]
    fn a_skip_is_announced_once_per_hibernation() {
        let mut warned = BTreeMap::new();
        let k = "t/c";
        // Asked to hibernate, nothing due yet: nothing to say.
        assert!(!announce_skip(&mut warned, k, true, &Scheduled::Nothing));
        // The first skipped due time says so, later ones (and every later pass) do not.
        assert!(announce_skip(&mut warned, k, true, &Scheduled::Skip));
        for _ in 0..3 {
            assert!(!announce_skip(&mut warned, k, true, &Scheduled::Skip));
        }
        // Awake: the mark goes, a backup is taken; the next hibernation says so again.
        assert!(!announce_skip(&mut warned, k, false, &Scheduled::Take));
        assert!(!warned.contains_key(k));
        assert!(announce_skip(&mut warned, k, true, &Scheduled::Skip));
        // Another cluster's warning is left alone.
        warned.insert("t/other".into(), "provider without a store".into());
        assert!(!announce_skip(
            &mut warned,
            "t/other",
            false,
            &Scheduled::Take
        ));
        assert_eq!(warned["t/other"], "provider without a store");
    }

    #[test]
    fn a_backup_of_a_hibernated_cluster_is_refused_with_the_reason() {
        let m = hibernated_refusal("prod");
        assert!(m.contains("cluster prod hibernates"), "{m}");
        assert!(m.contains("wake it first"), "{m}");
    }

    #[test]
    fn master_keys_are_32_bytes_raw_or_base64() {
        assert!(master_key(&[0u8; 32]).is_some());
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(master_key(b64.as_bytes()).unwrap(), vec![3u8; 32]);
        assert!(master_key(b"short").is_none());
        assert!(
            master_key(
                base64::engine::general_purpose::STANDARD
                    .encode([3u8; 16])
                    .as_bytes()
            )
            .is_none()
        );
    }
}
