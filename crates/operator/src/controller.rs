//! The `Cluster` controller: watches SCS Clusters, their Cluster API Clusters and Providers, and
//! runs the reconcile pipeline.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaas_api::conditions as c;
use kaas_api::provider::BackendType;
use kaas_api::{Cluster, KubeVersion, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_render::{LABEL_CLUSTER, LABEL_TENANT};
use kaas_validate::Resolved;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::adopt::Location;
use crate::backend::{Backend, capi::ClusterApi, hosted::Hosted, imported::Imported};
use crate::leader::{Leader, LeaseConfig};
use crate::metrics::{self, Metrics};
use crate::planning::{self, Plan};
use crate::status::{self, Inputs};
use crate::types::{Deletion, Observation, Problem};
use crate::{Context, Error, FIELD_MANAGER, FINALIZER, dereference, settled};

/// How the operator runs.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Providers to handle (empty: all).
    pub providers: BTreeSet<String>,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election; `None` runs without.
    pub lease: Option<LeaseConfig>,
    /// Clusters reconciled in parallel.
    pub concurrency: u16,
    /// The ConfigMap with current release and CVE data for the compliance checks (`None`: the
    /// data bundled with kaas only).
    pub release_data: Option<crate::compliance::ReleaseDataSource>,
    /// Requeue of a settled cluster (`None`: 5 minutes); tests shorten it.
    pub settled_requeue: Option<Duration>,
}

/// Requeue while something is in progress.
const BUSY: Duration = Duration::from_secs(10);
/// Requeue of a settled cluster (maintenance windows, provider changes missed by watches).
const SETTLED: Duration = Duration::from_secs(300);
/// Requeue, at the soonest, of a Cluster API cluster waiting for its control plane: everything it
/// waits for shows in the Cluster API Cluster, whose every change triggers a reconcile through
/// the watch, so the requeue is only the safety net. A minute is the interval of the other
/// safety nets (the tenant's RoleBinding is written again after a minute, `crate::Written`; the
/// namespace too where its watch is not usable); what follows the control plane (addons, the
/// workload cluster's API server, compliance) is not watched and keeps [`BUSY`].
const WATCHED: Duration = Duration::from_secs(60);

/// Whether the API server serves `K` (its CRD is installed): anything but a 404 counts as served,
/// so a transient error never drops a watch.
async fn served<K>(client: &Client) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    !matches!(
        Api::<K>::all(client.clone())
            .list_metadata(&ListParams::default().limit(1))
            .await,
        Err(kube::Error::Api(e)) if e.code == 404
    )
}

/// Runs the controllers until a shutdown signal (SIGINT/SIGTERM) or loss of leadership.
pub async fn run(client: Client, cfg: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    // Every request of every controller to the management API server is counted
    // (`kaas_api_requests_total`).
    let client = metrics::counted_client(&client, metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if let Some(addr) = cfg.metrics_addr {
        let m = metrics.clone();
        let s = shutdown();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m, s).await {
                warn!(error = %e, %addr, "metrics endpoint failed");
            }
        });
    }
    {
        let tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("shutting down");
            let _ = tx.send(true);
        });
    }
    // A standby replica is healthy and ready; whether it leads is the `leader` metric.
    metrics.ready.store(true, Ordering::Relaxed);
    if let Some(lease) = cfg.lease.clone() {
        info!(lease = %lease.name, "waiting for leadership");
        let lost = tokio::select! {
            lost = Leader::acquire(client.clone(), lease) => lost,
            _ = shutdown() => return Ok(()),
        };
        metrics.leader.set(1);
        let tx = stop_tx.clone();
        let m = metrics.clone();
        tokio::spawn(async move {
            lost.await;
            m.leader.set(0);
            let _ = tx.send(true);
        });
    }

    let reporter = Reporter {
        controller: "kaas-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // Providers are read from a cache every reconcile. The cache's own watch also triggers the
    // clusters of a changed Provider (below), after the cache holds the change.
    let (provider_store, provider_writer) = kube::runtime::reflector::store_shared::<Provider>(256);
    let provider_changes = provider_writer
        .subscribe()
        .expect("a shared store can be subscribed to");
    let provider_cache = watcher(
        Api::<Provider>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .backoff(TriggerBackoff::default())
    .reflect_shared(provider_writer)
    .take_until(shutdown())
    .for_each(|res| async move {
        if let Err(e) = res {
            warn!(error = %e, "provider watch failed; retrying");
        }
    });
    // A management cluster with only hosted control planes has no Cluster API: a watch of its
    // Clusters would fail (and log) every few seconds forever.
    let capi_served = served::<CapiCluster>(&client).await;
    // The Cluster API Clusters kaas owns: one watch fills a cache (the backend reads them there
    // instead of a GET per reconcile) and, after the cache holds the change, triggers the SCS
    // Cluster's reconcile. managedFields are dropped: nothing reads them.
    let (capi_store, capi_writer) = kube::runtime::reflector::store::<CapiCluster>();
    // Their MachineDeployments (every Cluster API Cluster's: an adopted one's carry no kaas
    // label): one watch keeps the worker pools of each Cluster API Cluster (`backend::pools`),
    // which the backend reads instead of a LIST per reconcile, and a change of what they show
    // triggers the SCS Cluster's reconcile through the Cluster API Cluster it belongs to.
    let pools = Arc::new(crate::backend::pools::Pools::default());
    let md_triggers = capi_served.then(|| {
        let pools = pools.clone();
        watcher(
            Api::<MachineDeployment>::all(client.clone()),
            watcher::Config::default()
                .labels(kaas_capi::LABEL_CLUSTER_NAME)
                .any_semantic(),
        )
        .backoff(TriggerBackoff::default())
        .flat_map(move |event| {
            let changed = match event {
                Ok(event) => pools.apply(&event).into_iter().map(Ok).collect(),
                Err(e) => {
                    pools.failed();
                    vec![Err(e)]
                }
            };
            futures::stream::iter(changed)
        })
    });
    // The provider-side namespaces kaas made, metadata only: written only when missing or
    // changed instead of once a minute, and read by the orphan collector instead of a LIST.
    let (ns_store, ns_writer) = kube::runtime::reflector::store();
    let ns_health = Arc::new(crate::WatchHealth::default());
    let ns_cache = watcher(
        Api::<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>>::all(
            client.clone(),
        ),
        watcher::Config::default()
            .labels(crate::orphans::NAMESPACE_SELECTOR)
            .any_semantic(),
    )
    .backoff(TriggerBackoff::default())
    .modify(|n| n.managed_fields_mut().clear())
    .reflect(ns_writer)
    .take_until(shutdown())
    .for_each({
        let health = ns_health.clone();
        move |res| {
            // A watch that keeps failing (say, allowed to list but not to watch) must not leave
            // a frozen cache in use.
            health.observe(&res);
            if let Err(e) = res {
                warn!(error = %e, "namespace watch failed; retrying");
            }
            async {}
        }
    });
    let echoes = Arc::new(crate::echoes::Echoes::default());
    let capi_triggers = capi_served.then(|| {
        watcher(
            Api::<CapiCluster>::all(client.clone()),
            watcher::Config::default()
                .labels(LABEL_CLUSTER)
                .any_semantic(),
        )
        .modify(|c| c.managed_fields_mut().clear())
        .reflect(capi_writer)
        .touched_objects()
        .filter(not_an_echo(echoes.clone()))
    });
    // Every SCS Cluster: the controller's cache, filled by its trigger watch below; also read by
    // the orphan collector and the backup scheduler (instead of listing them all).
    let (reader, writer) = kube::runtime::reflector::store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: crate::events::Publisher::new(client.clone(), reporter),
        metrics: metrics.clone(),
        providers: cfg.providers.clone(),
        provider_store: provider_store.clone(),
        clusters: reader.clone(),
        written: Default::default(),
        settled: Arc::new(crate::settled::memo()),
        namespaces: Default::default(),
        echoes: echoes.clone(),
        settled_requeue: cfg.settled_requeue.unwrap_or(SETTLED),
        capi: Arc::new({
            let cache =
                crate::backend::capi::CapiCache::new(capi_served.then_some(capi_store.clone()))
                    .with_namespaces(ns_store, ns_health);
            if capi_served {
                cache.with_pools(pools)
            } else {
                cache
            }
        }),
        release_data: cfg.release_data.clone(),
        fence: cfg.lease.as_ref().map(|l| l.fence.clone()),
    });
    let clusters: Api<Cluster> = Api::all(client.clone());
    // Only what a person or another controller changed triggers a reconcile: the operator's own
    // status writes (and the resourceVersion bumps they cause) do not. Progress arrives through
    // the watches of the backend's objects below, and requeues are the safety net.
    // managedFields are dropped here too: nothing reads them from the cache (a third of each
    // cached object).
    let triggers = watcher(clusters, watcher::Config::default().any_semantic())
        .backoff(TriggerBackoff::default())
        .modify(|c| c.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default())
        // After the predicate, which must see the echo to remember its hash.
        .filter(not_an_echo(echoes));
    let controller = Controller::for_stream(triggers, reader);
    let store = controller.store();
    let bundle_store = store.clone();
    let settled = ctx.settled.clone();
    let controller = if let (Some(triggers), Some(md_triggers)) = (capi_triggers, md_triggers) {
        controller
            .watches_stream(triggers, |c| scs_cluster_of(&c))
            .watches_stream(md_triggers, move |md| {
                let capi = capi_store.get(
                    &ObjectRef::new(md.labels().get(kaas_capi::LABEL_CLUSTER_NAME)?)
                        .within(&md.namespace()?),
                )?;
                scs_cluster_of(&capi)
            })
    } else {
        info!(
            "Cluster API is not installed: not watching its Clusters (restart the operator after installing it)"
        );
        controller
    };
    let controller = controller
        // Hosted control planes: the runtime's status changes (restarts, upgrades, failures)
        // reach the SCS Cluster at once, not at the next periodic requeue.
        .watches(
            Api::<kaas_api::HostedControlPlane>::all(client.clone()),
            watcher::Config::default()
                .labels(LABEL_CLUSTER)
                .any_semantic(),
            |h| {
                let labels = h.labels();
                match (labels.get(LABEL_CLUSTER), labels.get(LABEL_TENANT)) {
                    (Some(n), Some(t)) => Some(ObjectRef::<Cluster>::new(n).within(t)),
                    _ => None,
                }
            },
        )
        .watches_shared_stream(provider_changes, move |p: Arc<Provider>| {
            let name = p.name_any();
            store
                .state()
                .into_iter()
                .filter(|c| {
                    c.spec
                        .provider
                        .as_ref()
                        .and_then(|r| r.name.as_deref())
                        .is_none_or(|n| n == name)
                })
                .map(|c| ObjectRef::from_obj(&*c))
                .collect::<Vec<_>>()
        })
        // A changed addon bundle (published by a provider) concerns every cluster that may use it.
        .watches(
            Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client.clone()),
            watcher::Config::default()
                .labels(kaas_api::addons::BUNDLE_LABEL)
                .any_semantic(),
            move |_| {
                // Which cluster uses the bundle is the reconcile's business: no settled
                // cluster skips it (crate::settled).
                settled.clear();
                bundle_store
                    .state()
                    .into_iter()
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(
            kube::runtime::controller::Config::default().concurrency(cfg.concurrency.max(1)),
        )
        .trigger_backoff(TriggerBackoff::default())
        .graceful_shutdown_on(shutdown());
    let providers = Controller::new(
        Api::<Provider>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown())
    .run(
        crate::provider::reconcile,
        |p, e, _| {
            warn!(provider = %p.name_any(), error = %e, "provider reconcile failed");
            Action::requeue(Duration::from_secs(30))
        },
        ctx.clone(),
    )
    .for_each(|_| async {});
    // GitSources: in the instance that handles every provider, unless KAAS_GITSOURCES says otherwise.
    let gitsources = crate::gitsource::run(
        ctx.clone(),
        shutdown(),
        crate::gitsource::enabled(cfg.providers.is_empty()),
    );
    // A changed RoleBinding of a namespace (who may see the tenant's Cluster API objects,
    // `backend::capi::keep_tenant_viewer`) ends the settled state of that namespace's clusters
    // (crate::settled): their next requeue is a full pass. Metadata only; O(1) per event.
    let bindings = {
        let epochs = ctx.namespaces.clone();
        watcher(
            Api::<kube::core::PartialObjectMeta<k8s_openapi::api::rbac::v1::RoleBinding>>::all(
                client.clone(),
            ),
            watcher::Config::default().any_semantic(),
        )
        .backoff(TriggerBackoff::default())
        .touched_objects()
        .take_until(shutdown())
        .for_each(move |rb| {
            match rb {
                Ok(rb) => epochs.bump(&rb.namespace().unwrap_or_default()),
                Err(e) => warn!(error = %e, "RoleBinding watch failed; retrying"),
            }
            async {}
        })
    };
    // Provider-side objects whose SCS Cluster is gone (crate::orphans).
    let orphans = crate::orphans::run(ctx.clone(), shutdown());
    // Short-lived kubeconfigs (crate::kubeconfig).
    let kubeconfigs = crate::kubeconfig::run(ctx.clone(), shutdown());
    // etcd backups and restores, scheduled backups and retention (crate::backup).
    let backups = crate::backup::run(ctx.clone(), shutdown);
    info!(providers = ?cfg.providers, "kaas operator running");
    let clusters = async move {
        // No cluster is reconciled before the provider cache is filled (an empty cache would
        // report every provider missing).
        if provider_store.wait_until_ready().await.is_err() {
            return;
        }
        controller
            .run(reconcile, error_policy, ctx)
            .for_each(|res| async move {
                if let Err(e) = res {
                    warn!(error = %e, "reconcile failed");
                }
            })
            .await
    };
    futures::join!(
        bindings,
        clusters,
        providers,
        gitsources,
        orphans,
        kubeconfigs,
        backups,
        provider_cache,
        ns_cache
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The backoff of the controller's watches after an error: 250 ms doubling up to 2 s, reset by
/// the next event. All the watches above share it, and while it sleeps none of them is read. With
/// kube's default (up to 30 s per error, reset only after two quiet minutes) a restarted
/// kube-apiserver — every watch failing to connect, then answering 410 Gone one watch at a time —
/// left the operator deaf to new and changed clusters for about a minute and a half
/// (`kaas-bench chaos apiserver`, RELIABILITY.md). A few watches retrying every 2 s are no load.
#[derive(Debug, Default)]
struct TriggerBackoff {
    next: Duration,
}

impl TriggerBackoff {
    const MIN: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);
}

impl Iterator for TriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next.clamp(Self::MIN, Self::MAX);
        self.next = (d * 2).min(Self::MAX);
        Some(d)
    }
}

impl kube::runtime::utils::Backoff for TriggerBackoff {
    fn reset(&mut self) {
        self.next = Duration::ZERO;
    }
}

/// What of an SCS Cluster makes a reconcile necessary (a hash, `None`: always): the spec (its
/// generation, which also moves when deletion starts), labels, annotations (adoption,
/// `kaas.scs.community/…` requests) and finalizers. Status-only updates — the operator's own
/// writes, one or more per reconcile — hash the same and are dropped.
pub(crate) fn trigger_hash(c: &Cluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = c.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.generation.hash(&mut h);
    m.labels.hash(&mut h);
    m.annotations.hash(&mut h);
    m.finalizers.hash(&mut h);
    m.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// The SCS Cluster a Cluster API Cluster belongs to, by its labels.
fn scs_cluster_of(c: &CapiCluster) -> Option<ObjectRef<Cluster>> {
    let labels = c.labels();
    Some(ObjectRef::new(labels.get(LABEL_CLUSTER)?).within(labels.get(LABEL_TENANT)?))
}

/// A filter of a trigger stream dropping the watch events of the operator's own writes
/// ([`crate::echoes`]).
fn not_an_echo<K: Resource<DynamicType = ()>, E>(
    echoes: Arc<crate::echoes::Echoes>,
) -> impl FnMut(&Result<K, E>) -> std::future::Ready<bool> {
    move |event| std::future::ready(event.as_ref().map_or(true, |k| !echoes.is_echo(k)))
}

fn error_policy(cluster: Arc<Cluster>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), error = %err, "reconcile error; retrying");
    Action::requeue(Duration::from_secs(15))
}

async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    // This reconcile's requests to the management API server (`kaas_api_requests_per_reconcile`;
    // events go through the shared recorder and are not in it).
    let tally = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut own = (*ctx).clone();
    own.client = metrics::tallied_client(&ctx.client, tally.clone());
    let res = reconcile_cluster(&cluster, &own).await;
    drop(own);
    ctx.metrics
        .observe(res.is_ok(), start.elapsed().as_secs_f64());
    ctx.metrics
        .observe_requests(res.is_ok(), tally.load(Ordering::Relaxed));
    res
}

fn backend_for(kind: BackendType) -> &'static dyn Backend {
    match kind {
        BackendType::ClusterAPI => &ClusterApi,
        BackendType::Static => &Imported,
        BackendType::Hosted => &Hosted,
    }
}

/// One reconcile of one cluster.
pub async fn reconcile_cluster(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let provider = dereference::provider(&ctx.provider_store, cluster);
    let named = cluster.spec.provider.as_ref().and_then(|p| p.name.clone());
    let provider_name = provider.as_ref().ok().map(|p| p.name_any()).or(named);
    match &provider_name {
        Some(p) if !ctx.handles(p) => return Ok(Action::await_change()),
        None if !ctx.providers.is_empty() => return Ok(Action::await_change()),
        _ => {}
    }

    if cluster.meta().deletion_timestamp.is_some() {
        return cleanup(cluster, ctx, &api, provider.as_ref().ok()).await;
    }
    let with_finalizer;
    let cluster = if cluster.finalizers().iter().any(|f| f == FINALIZER) {
        cluster
    } else {
        // A merge patch replaces the whole list: it carries every finalizer read (another
        // controller's too) plus kaas', and the resourceVersion makes it fail (and retry) if the
        // object changed since it was read.
        let mut finalizers = cluster.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": cluster.resource_version()}});
        // This reconcile goes on with the answer (what it read plus the finalizer, as the next
        // reconcile will see it): the patch's own watch event is no trigger.
        with_finalizer = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        ctx.echoes.record(&with_finalizer);
        &with_finalizer
    };
    let backend = provider
        .as_ref()
        .map(|p| backend_for(p.spec.backend.kind))
        .unwrap_or(&ClusterApi);
    // Where the provider-side objects live: the tenant's derived namespace, or a Cluster API
    // Cluster being adopted (`scs.community/adopt-from`) — read once, handed to every stage.
    let loc = crate::adopt::locate(
        &ctx.client,
        cluster,
        provider_name.as_deref().unwrap_or_default(),
    )
    .await?;
    let Plan {
        mut validation,
        rollout,
    } = planning::plan(cluster, &provider, &loc, Timestamp::now());
    // A hibernation schedule's start or end flips spec.hibernation.enabled of an accepted
    // cluster; the write triggers the reconcile that acts on it.
    let mut next_scheduled = None;
    if validation.is_ok() {
        match crate::hibernation::follow(ctx, cluster, &api, SETTLED).await? {
            crate::hibernation::Scheduled::Applied => return Ok(Action::requeue(BUSY)),
            crate::hibernation::Scheduled::Next(at) => next_scheduled = at,
        }
    }

    let mut target_version = None;
    let mut version_note = None;
    // The version being moved to (a maintenance window permitting), held by the upgrade hook or not.
    let mut moving_to = None;
    // What a settled cluster's full pass acted on (crate::settled).
    let mut settled_inputs = None;
    if let (Ok(resolved), Ok(p), Some((mut plan, mut note))) = (&validation, &provider, rollout) {
        // Taken before anything is read: a bundle change during this pass keeps it from recording
        // its digest.
        let epoch = ctx.settled.epoch();
        let token = backend.settled_token(ctx, cluster, resolved).await;
        let inputs = token.map(|token| {
            let bindings = ctx.namespaces.of(&ns);
            let token = format!("{token} namespace {bindings}");
            settled::Inputs::of(trigger_hash(cluster), p, &token, &plan, note.as_deref())
        });
        // Settled, and nothing it acted on changed since its last full pass: done, no request.
        // (A hibernated cluster is never checked, so its check is never due.)
        if let Some(inputs) = inputs
            && (resolved.hibernated || !crate::compliance::due(cluster, Timestamp::now()))
            && ctx
                .settled
                .fresh(&settled::key(cluster), inputs.with(cluster.status.as_ref()))
        {
            ctx.metrics.settled.inc();
            let after = ctx.settled_requeue;
            return Ok(Action::requeue(
                next_scheduled.map_or(after, |n| n.min(after)),
            ));
        }
        settled_inputs = inputs.map(|i| (i, epoch));
        moving_to = plan.version.clone();
        if let Some((held, why)) =
            hold_for_upgrade_hooks(ctx, backend, cluster, &plan, p, &loc).await?
        {
            (plan, note) = (held, Some(why));
            // Held by the upgrade hook: tried again at every reconcile, never settled.
            settled_inputs = None;
        }
        target_version = plan.version.as_ref().map(KubeVersion::release);
        version_note = note;
        // Render (pure), then apply.
        let applied = match backend.render(cluster, &plan, &loc) {
            Ok(objects) => backend.apply(ctx, cluster, &plan, objects).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = applied {
            match refusal(&e) {
                // Never silent: the refusal becomes the status (SpecAccepted=False, phase Failed),
                // an event and the end of any `?wait=`; retries back off (see below).
                Some(msg) => {
                    warn!(cluster = %name, namespace = %ns, error = %e, "the backend's write was refused");
                    validation = Err(Problem::Refused(msg));
                }
                None => return Err(e),
            }
        }
    }
    let observation = backend
        .observe(ctx, cluster, validation.as_ref().ok(), &loc)
        .await?;
    // A hibernating cluster's addons and compliance are left as they were: there are no nodes
    // to run them (and on a hosted provider no API server); waking applies and checks again.
    let extensions = match (&validation, &provider) {
        (Ok(resolved), Ok(p)) if observation.exists && !resolved.hibernated => {
            let to = moving_to.as_ref();
            let seen = (&observation, &loc);
            Some(reconcile_addons(ctx, backend, cluster, resolved, p, seen, to).await?)
        }
        _ => None,
    };
    let now = Timestamp::now();
    let compliance = match &validation {
        Ok(resolved)
            if observation.exists
                && !resolved.hibernated
                && observation.control_plane.ok == Some(true)
                && crate::compliance::due(cluster, now) =>
        {
            match backend.workload(ctx, cluster, resolved, &loc).await? {
                Some(w) => Some(
                    crate::compliance::check(ctx, cluster, w, now)
                        .await
                        .map_err(|e| e.to_string()),
                ),
                None => None,
            }
        }
        _ => None,
    };
    let new = status::derive(Inputs {
        cluster,
        validation: &validation,
        observation: &observation,
        target_version,
        version_note,
        extensions,
        compliance,
        now: Time(now),
    });
    write_status(cluster, ctx, &api, new.clone()).await?;
    if matches!(validation, Err(Problem::Refused(_))) {
        // Retried in case the refusal was passing (a webhook that was down), backing off with
        // the time since it was first reported.
        let after = busy_requeue(&new, now, BUSY);
        return Ok(Action::requeue(
            next_scheduled.map_or(after, |n| n.min(after)),
        ));
    }
    let at_rest = validation.is_ok()
        && (c::is_true(&new.conditions, c::READY) || c::is_true(&new.conditions, c::HIBERNATED));
    // Settled: at rest, and for a running cluster every addon applied with its workloads
    // available (what is still coming is looked at again within the requeue, not the hour).
    let addons_done = c::is_true(&new.conditions, c::HIBERNATED)
        || (c::is_true(&new.conditions, c::EXTENSIONS_READY)
            && new
                .extensions
                .iter()
                .all(|x| x.workloads_available != Some(false)));
    let key = settled::key(cluster);
    match settled_inputs {
        Some((inputs, epoch)) if at_rest && addons_done => {
            ctx.settled
                .record_since(key, inputs.with(Some(&new)), epoch);
        }
        _ => ctx.settled.forget(&key),
    }
    let settled = at_rest || validation.is_err();
    // A Cluster API cluster waiting for its control plane is woken by the watch of its Cluster
    // API Cluster; the requeue is the safety net.
    let watched = ctx.capi.watched()
        && observation.exists
        && observation.control_plane.ok != Some(true)
        && matches!(&validation, Ok(r) if r.backend == BackendType::ClusterAPI);
    let after = if settled {
        ctx.settled_requeue
    } else {
        busy_requeue(&new, now, if watched { WATCHED } else { BUSY })
    };
    Ok(Action::requeue(
        next_scheduled.map_or(after, |n| n.min(after)),
    ))
}

/// Whether an error of the backend's write is a refusal a person has to see (and act on), with
/// its full message: the API server, an admission webhook or policy refused the object (400,
/// 403, 404, 422), or it could not be rendered. Transport errors, conflicts and server errors
/// are passing and retried without a status change.
pub fn refusal(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 404 | 422) => {
            let by = if s.message.contains("admission webhook") {
                "an admission webhook of the management cluster"
            } else if s.message.contains("ValidatingAdmissionPolicy") {
                "an admission policy of the management cluster"
            } else if s.code == 403 {
                "the management cluster (the operator is not allowed to)"
            } else {
                "the management cluster's API server"
            };
            Some(format!(
                "{by} refused what kaas wrote for this cluster ({} {}): {}",
                s.code, s.reason, s.message
            ))
        }
        Error::Render(r) => Some(format!("cannot be realised: {r}")),
        _ => None,
    }
}

/// Requeue of a cluster still on its way: soon (`floor`) while its conditions move, then backing
/// off with the time since the last transition (a quarter of it, `floor` to 5 min). Progress of
/// the Cluster API objects triggers a reconcile through the watches anyway; polling is the safety
/// net, and thousands of clusters waiting on something slow must not flood the API server with it.
fn busy_requeue(status: &kaas_api::ClusterStatus, now: Timestamp, floor: Duration) -> Duration {
    let last = status
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .max();
    let quiet = last
        .and_then(|t| now.duration_since(t).try_into().ok())
        .unwrap_or(Duration::ZERO);
    (quiet / 4).clamp(floor, SETTLED)
}

/// Holds a version change at the current version until the new version's `BeforeClusterUpgrade`
/// addons are applied (`upgrade_hooks`): the plan at the current version and why, or `None`.
async fn hold_for_upgrade_hooks(
    ctx: &Context,
    backend: &dyn Backend,
    cluster: &Cluster,
    plan: &Resolved,
    provider: &Provider,
    loc: &Location,
) -> Result<Option<(Resolved, String)>, Error> {
    let current = cluster
        .status
        .as_ref()
        .and_then(|s| s.target_version.as_deref())
        .and_then(|v| v.parse::<KubeVersion>().ok());
    let (Some(cur), Some(target)) = (current, plan.version.as_ref()) else {
        return Ok(None);
    };
    if cur == *target {
        return Ok(None);
    }
    let Some(why) = crate::upgrade_hooks::before_upgrade(
        ctx,
        backend,
        cluster,
        plan,
        provider,
        loc,
        (&cur, target),
    )
    .await?
    else {
        return Ok(None);
    };
    // Never silent: a new or changed reason is also an event (the condition keeps it).
    let shown = cluster
        .status
        .as_ref()
        .and_then(|s| c::get(&s.conditions, c::VERSION_CURRENT))
        .is_some_and(|x| x.message == why);
    if !shown {
        let ev = Event {
            type_: EventType::Warning,
            reason: "UpgradeHeld".into(),
            note: Some(why.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
    Ok(planning::hold_at(plan, provider, &cur).map(|keep| (keep, why)))
}

async fn write_status(
    cluster: &Cluster,
    ctx: &Context,
    api: &Api<Cluster>,
    new: kaas_api::ClusterStatus,
) -> Result<(), Error> {
    let old = cluster.status.clone().unwrap_or_default();
    if old == new {
        return Ok(());
    }
    let body = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "status": new});
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    publish_transitions(cluster, ctx, &old, &new).await;
    Ok(())
}

/// The events of a status write: each refusal is a Warning event of its own; the other
/// transitions of the write are one Normal event (a new cluster's Ready, SpecAccepted and
/// VersionCurrent were three POSTs, as many as the rest of its creation's writes).
async fn publish_transitions(
    cluster: &Cluster,
    ctx: &Context,
    old: &kaas_api::ClusterStatus,
    new: &kaas_api::ClusterStatus,
) {
    for ev in transition_events(old, new) {
        if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

/// The events of the condition changes from `old` to `new` ([`publish_transitions`]). The Normal
/// event has the reason of its first transition (in the order Ready, SpecAccepted,
/// VersionCurrent, Deleting) and, when there are several, a note naming each one.
fn transition_events(old: &kaas_api::ClusterStatus, new: &kaas_api::ClusterStatus) -> Vec<Event> {
    let mut events = Vec::new();
    let mut normal = Vec::new();
    for t in [c::READY, c::SPEC_ACCEPTED, c::VERSION_CURRENT, c::DELETING] {
        let (Some(n), o) = (c::get(&new.conditions, t), c::get(&old.conditions, t)) else {
            continue;
        };
        if o.is_some_and(|o| o.status == n.status && o.reason == n.reason) {
            continue;
        }
        let warning = n.status == "False"
            && matches!(
                n.reason.as_str(),
                "InvalidSpec"
                    | "ProviderNotFound"
                    | "Failed"
                    | "DeletionProtected"
                    | "BackendRefused"
            );
        if warning {
            events.push(Event {
                type_: EventType::Warning,
                reason: format!("{t}{}", n.reason),
                note: Some(n.message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            });
        } else {
            normal.push((t, n));
        }
    }
    if let Some((t, first)) = normal.first() {
        // Each transition keeps a part of the note's bytes.
        let note = match normal.as_slice() {
            [(_, only)] => only.message.clone(),
            all => all
                .iter()
                .map(|(t, n)| {
                    let part = format!("{t}={} {}: {}", n.status, n.reason, n.message);
                    crate::events::clip(&part, crate::events::NOTE_MAX / all.len() - 2)
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        events.push(Event {
            type_: EventType::Normal,
            reason: format!("{t}{}", first.reason),
            note: Some(crate::events::clip(&note, crate::events::NOTE_MAX)),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    events
}

async fn cleanup(
    cluster: &Cluster,
    ctx: &Context,
    api: &Api<Cluster>,
    provider: Option<&Provider>,
) -> Result<Action, Error> {
    if !cluster.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let now = Time(Timestamp::now());
    if cluster.spec.deletion_protection == Some(true) {
        let st = status::deleting(cluster, status::Deleting::Protected, &now);
        write_status(cluster, ctx, api, st).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let provider_name = provider.map(|p| p.name_any()).or(cluster
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.name.clone()));
    let progress = match provider_name {
        Some(p) => {
            let backend = provider
                .map(|p| backend_for(p.spec.backend.kind))
                .unwrap_or(&ClusterApi);
            backend.delete(ctx, cluster, &p).await?
        }
        None => Deletion::Done,
    };
    match progress {
        Deletion::Done => {
            let fins: Vec<String> = cluster
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"finalizers": fins, "resourceVersion": cluster.resource_version()}});
            api.patch(
                &cluster.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            ctx.echoes.forget::<Cluster>(
                &cluster.namespace().unwrap_or_default(),
                &cluster.name_any(),
            );
            info!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), "deleted");
            Ok(Action::await_change())
        }
        Deletion::Waiting(msg) => {
            let new = status::deleting(cluster, status::Deleting::Waiting(&msg), &now);
            write_status(cluster, ctx, api, new).await?;
            Ok(Action::requeue(Duration::from_secs(3)))
        }
    }
}

/// Applies the addon bundle of the version the control plane runs (the new bundle follows the
/// control plane during an upgrade). While the cluster moves to another version (`moving_to`:
/// held by the new version's BeforeClusterUpgrade hook, or rolling out), the addons that hook
/// applies stay at the new version; a move that waits for its maintenance window applies nothing
/// of the new version. Never fails the reconcile for workload-side problems: they end up in
/// `ExtensionsReady`.
async fn reconcile_addons(
    ctx: &Context,
    backend: &dyn Backend,
    cluster: &Cluster,
    resolved: &Resolved,
    provider: &Provider,
    (observation, loc): (&Observation, &Location),
    moving_to: Option<&KubeVersion>,
) -> Result<crate::addons::Outcome, Error> {
    use crate::addons::{self, Outcome};
    let running = match observation.control_plane_versions.as_slice() {
        [one] => one.parse::<KubeVersion>().ok(),
        _ => None,
    }
    .or_else(|| resolved.version.clone());
    let Some(running) = running else {
        return Ok(Outcome::waiting(
            None,
            "WaitingForVersion",
            "the workload cluster's version is not known yet",
        ));
    };
    let Some(bundle) = crate::upgrade_hooks::bundle_for(provider, &running) else {
        return Ok(Outcome::waiting(
            None,
            "NoBundle",
            format!(
                "provider {:?} publishes no addon bundle for {}",
                resolved.provider,
                running.release()
            ),
        ));
    };
    // Base addons go on as soon as the API server answers: for Cluster API, once the control plane is available.
    if resolved.backend != BackendType::Static && observation.control_plane.ok != Some(true) {
        return Ok(Outcome::waiting(
            None,
            "WaitingForControlPlane",
            "addons are applied once the control plane is available",
        ));
    }
    let Some(workload) = backend.workload(ctx, cluster, resolved, loc).await? else {
        return Ok(Outcome::waiting(
            None,
            "WaitingForAPIServer",
            "the workload cluster's API server cannot be reached yet",
        ));
    };
    let (index, manifests) =
        match addons::load_bundle(&ctx.client, &provider.spec.backend.namespace, &bundle).await {
            Ok(b) => b,
            Err(e) => return Ok(Outcome::waiting(Some(false), "BundleUnavailable", e)),
        };
    let mut planned = addons::plan(&index, &manifests, &resolved.extensions);
    addons::resolve_placeholders(
        &mut planned,
        &addons::cluster_values(cluster, &resolved.network, &running),
    );
    if let Some(target) = &index.cloud_credentials {
        // First: the CCM and CSI pods mount it.
        let creds = crate::credentials::planned(&ctx.client, provider, cluster, target).await;
        planned.insert(0, creds);
    }
    // During an upgrade, what the new version's BeforeClusterUpgrade hook applied stays.
    if let Some(target) = moving_to.filter(|t| **t != running)
        && let Ok(Some((_, hook))) =
            crate::upgrade_hooks::planned(ctx, cluster, resolved, provider, target).await
    {
        crate::upgrade_hooks::keep_upgraded(&mut planned, hook);
    }
    // The inventory lives next to the Cluster API Cluster (an adopted one's, by its name).
    let (inv_ns, inv_name) = (&loc.namespace, &loc.name);
    let old = addons::load_inventory(&ctx.client, inv_ns, inv_name).await?;
    let (statuses, inventory) = addons::apply(
        &workload,
        &bundle,
        &planned,
        &old,
        resolved
            .stack
            .is_some_and(|s| kaas_render::stacks::for_kind(s).simulated()),
    )
    .await;
    if inventory != old {
        addons::save_inventory(&ctx.client, inv_ns, inv_name, &inventory).await?;
    }
    Ok(Outcome::from_statuses(&bundle, statuses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status_changed_at(t: Timestamp) -> kaas_api::ClusterStatus {
        kaas_api::ClusterStatus {
            conditions: vec![Condition {
                type_: c::READY.into(),
                status: "False".into(),
                reason: "WaitingForControlPlane".into(),
                message: String::new(),
                last_transition_time: Time(t),
                observed_generation: Some(1),
            }],
            ..Default::default()
        }
    }

    fn api_error(code: u16, reason: &str, message: &str) -> Error {
        Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        })))
    }

    #[test]
    fn refusals_of_the_management_cluster_are_told_apart_from_passing_errors() {
        let webhook = api_error(
            403,
            "Forbidden",
            "admission webhook \"validation.cluster.cluster.x-k8s.io\" denied the request: taints are not allowed",
        );
        let msg = refusal(&webhook).expect("a webhook denial is a refusal");
        assert!(msg.starts_with("an admission webhook of the management cluster refused"));
        assert!(msg.contains("taints are not allowed"), "{msg}");
        assert!(refusal(&api_error(422, "Invalid", "spec.x: Invalid value")).is_some());
        assert!(
            refusal(&api_error(403, "Forbidden", "cannot patch"))
                .is_some_and(|m| m.contains("not allowed to"))
        );
        // Passing: conflicts, server errors, timeouts, anything else.
        assert!(refusal(&api_error(409, "Conflict", "changed")).is_none());
        assert!(refusal(&api_error(500, "InternalError", "etcd")).is_none());
        assert!(refusal(&api_error(504, "Timeout", "slow")).is_none());
        assert!(refusal(&Error::Other("x".into())).is_none());
        assert!(
            refusal(&Error::Render(kaas_render::RenderError::Incomplete(
                "stack"
            )))
            .is_some()
        );
    }

    #[test]
    fn status_writes_trigger_nothing_spec_and_metadata_changes_do() {
        let mut c: Cluster = serde_yaml::from_str(
            "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: a, namespace: t, generation: 1, resourceVersion: '5'}\nspec: {}",
        )
        .unwrap();
        let before = trigger_hash(&c);
        c.metadata.resource_version = Some("6".into());
        c.status = Some(kaas_api::ClusterStatus {
            phase: Some(kaas_api::cluster::ClusterPhase::Ready),
            ..Default::default()
        });
        assert_eq!(trigger_hash(&c), before, "a status write");
        let mut g = c.clone();
        g.metadata.generation = Some(2);
        let mut a = c.clone();
        a.annotations_mut()
            .insert("scs.community/adopt-from".into(), "x".into());
        let mut f = c.clone();
        f.finalizers_mut().push("x".into());
        let mut d = c.clone();
        d.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        for (what, changed) in [
            ("spec", g),
            ("annotation", a),
            ("finalizer", f),
            ("deletion", d),
        ] {
            assert_ne!(trigger_hash(&changed), before, "{what}");
        }
    }

    #[test]
    fn watch_errors_back_off_briefly_and_reset_with_the_next_event() {
        use kube::runtime::utils::Backoff as _;
        let mut b = TriggerBackoff::default();
        let first: Vec<u128> = b.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(first, [250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn unready_clusters_back_off_with_their_quiet_time() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let ago = |s: i64| now - k8s_openapi::jiff::SignedDuration::from_secs(s);
        assert_eq!(busy_requeue(&status_changed_at(ago(5)), now, BUSY), BUSY);
        assert_eq!(
            busy_requeue(&status_changed_at(ago(120)), now, BUSY),
            Duration::from_secs(30)
        );
        assert_eq!(
            busy_requeue(&status_changed_at(ago(7200)), now, BUSY),
            SETTLED
        );
        assert_eq!(
            busy_requeue(&kaas_api::ClusterStatus::default(), now, BUSY),
            BUSY
        );
        // A clock skew (transition "in the future") does not stall the cluster.
        assert_eq!(busy_requeue(&status_changed_at(ago(-60)), now, BUSY), BUSY);
        // Waiting on what a watch reports: a minute at the soonest, then the same backoff.
        assert_eq!(
            busy_requeue(&status_changed_at(ago(5)), now, WATCHED),
            WATCHED
        );
        assert_eq!(
            busy_requeue(&status_changed_at(ago(600)), now, WATCHED),
            Duration::from_secs(150)
        );
        assert_eq!(
            busy_requeue(&status_changed_at(ago(7200)), now, WATCHED),
            SETTLED
        );
    }

    fn status_of(conds: &[(&str, &str, &str, &str)]) -> kaas_api::ClusterStatus {
        kaas_api::ClusterStatus {
            conditions: conds
                .iter()
                .map(|(t, s, r, m)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: (*r).into(),
                    message: (*m).into(),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                    observed_generation: Some(1),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn shown(evs: &[Event]) -> Vec<(bool, String, String)> {
        evs.iter()
            .map(|e| {
                (
                    matches!(e.type_, EventType::Warning),
                    e.reason.clone(),
                    e.note.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn the_transitions_of_one_status_write_are_one_event_but_each_refusal_its_own() {
        let none = kaas_api::ClusterStatus::default();
        let new = status_of(&[
            (
                "Ready",
                "False",
                "WaitingForControlPlane",
                "waiting for the control plane",
            ),
            ("SpecAccepted", "True", "Accepted", "the spec is valid"),
            ("VersionCurrent", "True", "Current", "1.33.2"),
        ]);
        assert_eq!(
            shown(&transition_events(&none, &new)),
            [(
                false,
                "ReadyWaitingForControlPlane".to_string(),
                "Ready=False WaitingForControlPlane: waiting for the control plane; \
                 SpecAccepted=True Accepted: the spec is valid; VersionCurrent=True Current: 1.33.2"
                    .to_string()
            )]
        );
        // Nothing changed: no event; one change: its own reason and message.
        assert!(transition_events(&new, &new).is_empty());
        let ready = status_of(&[
            ("Ready", "True", "Available", "the cluster is available"),
            (
                "SpecAccepted",
                "True",
                "Accepted",
                "a new message, same reason",
            ),
            ("VersionCurrent", "True", "Current", "1.33.2"),
        ]);
        assert_eq!(
            shown(&transition_events(&new, &ready)),
            [(
                false,
                "ReadyAvailable".to_string(),
                "the cluster is available".to_string()
            )]
        );
        // Long messages: each transition keeps a part of the note, within the API's 1024 bytes.
        let long = status_of(&[
            (
                "Ready",
                "False",
                "WaitingForWorkers",
                &"machine m-1 … not ready; ".repeat(80),
            ),
            ("SpecAccepted", "True", "Valid", "valid"),
        ]);
        let evs = transition_events(&none, &long);
        let note = evs[0].note.clone().unwrap();
        assert!(note.len() <= crate::events::NOTE_MAX, "{}", note.len());
        assert!(note.ends_with("SpecAccepted=True Valid: valid"), "{note}");
        // A refusal is a Warning of its own, beside the Normal event of the rest.
        let refused = status_of(&[
            ("Ready", "False", "WaitingForControlPlane", "waiting"),
            (
                "SpecAccepted",
                "False",
                "BackendRefused",
                "taints are not allowed",
            ),
            ("VersionCurrent", "True", "Current", "1.33.2"),
        ]);
        assert_eq!(
            shown(&transition_events(&none, &refused)),
            [
                (
                    true,
                    "SpecAcceptedBackendRefused".to_string(),
                    "taints are not allowed".to_string()
                ),
                (
                    false,
                    "ReadyWaitingForControlPlane".to_string(),
                    "Ready=False WaitingForControlPlane: waiting; VersionCurrent=True Current: 1.33.2"
                        .to_string()
                )
            ]
        );
    }
}
