//! The Cluster API backend: server-side applies the rendered topology into the provider-side
//! namespace, copies provider credentials there and the kubeconfig to the tenant, and reads the
//! Cluster API status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kaas_api::Cluster;
use kaas_capi::cluster::{Cluster as CapiCluster, ClusterStatusWorkers};
use kaas_capi::conditions;
use kaas_capi::machine::Machine;
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_validate::Resolved;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::Backend;
use kaas_render::{Objects, RenderError};

use crate::adopt::Location;
use crate::install::{CAPI_VIEWER_BINDING, CAPI_VIEWER_ROLE, TENANT_ROLE};
use crate::types::{Deletion, Observation, PoolObservation, Signal};
use crate::{Context, Error, FIELD_MANAGER};

/// Key of the kubeconfig in Cluster API's and kaas' kubeconfig Secrets.
pub const KUBECONFIG_KEY: &str = "value";

/// Name of the kubeconfig Secret of a cluster (Cluster API's convention, kept for the tenant copy).
pub fn kubeconfig_secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

/// The Cluster API backend.
pub struct ClusterApi;

/// How long what a reconcile read of an unchanged cluster (that Cluster API has not written its
/// kubeconfig yet; its MachineDeployments where they are not watched) is reused: the same as the
/// settled requeue, so even a change no watch shows is seen within it.
const REREAD: Duration = Duration::from_secs(300);

/// What the Cluster API backend keeps between the reconciles of a cluster, so a repeat reconcile
/// of an unchanged cluster costs no request: the Cluster API Clusters kaas owns (a reflector of the
/// controller's own watch, updated before that watch triggers a reconcile), the worker pools
/// ([`super::pools`]) and the provider-side namespaces (watches of their own), and per Cluster
/// API Cluster what kaas last applied and read.
#[derive(Default)]
pub struct CapiCache {
    store: Option<Store<CapiCluster>>,
    /// The worker pools of every Cluster API Cluster, from a watch of their MachineDeployments:
    /// read here instead of a LIST per reconcile.
    pools: Option<Arc<super::pools::Pools>>,
    /// The provider-side namespaces kaas made (metadata only, selected by
    /// [`crate::orphans::NAMESPACE_SELECTOR`]) and their watch's health: a namespace is written
    /// only when it is missing or differs, and the orphan collector reads them here instead of a
    /// LIST a minute.
    namespaces: Option<(Store<PartialObjectMeta<Namespace>>, Arc<crate::WatchHealth>)>,
    entries: Mutex<HashMap<String, Entry>>,
    /// resourceVersions of providers' credentials Secrets by `namespace/name`, and when read.
    credentials: Mutex<HashMap<String, (String, Instant)>>,
}

/// How often a provider's credentials Secret is read for the settled clusters' digests.
const CREDENTIALS_REREAD: Duration = Duration::from_secs(60);

/// What kaas knows of one Cluster API Cluster.
#[derive(Default)]
struct Entry {
    /// The last apply: hash of the rendered object, and the uid and generation it resulted in.
    applied: Option<(u64, Option<String>, Option<i64>)>,
    /// The apply's answer in this reconcile (the object as it is now), for `observe`.
    fresh: Option<Arc<CapiCluster>>,
    /// The newest resourceVersion seen, to never read an older copy from the cache.
    seen: Option<u64>,
    /// The last reads of `observe`.
    reads: Option<Reads>,
    /// This reconcile's apply created the object ([`CapiCache::absent`]), for `observe`.
    created: bool,
}

/// What `observe` read besides the Cluster API Cluster, and of which versions.
#[derive(Clone)]
struct Reads {
    /// The SCS Cluster's trigger hash and the Cluster API Cluster's resourceVersion then.
    versions: (Option<String>, Option<String>),
    at: Instant,
    pools: Vec<PoolObservation>,
    /// Cluster API's kubeconfig Secret did not exist (and the copy was allowed).
    kubeconfig_absent: bool,
}

fn rv(c: &CapiCluster) -> Option<u64> {
    c.metadata.resource_version.as_deref()?.parse().ok()
}

fn contains(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl CapiCache {
    /// A cache reading owned Cluster API Clusters from `store` (`None`: Cluster API is not
    /// installed, nothing is cached and every read goes to the API server).
    pub fn new(store: Option<Store<CapiCluster>>) -> Self {
        CapiCache {
            store,
            pools: None,
            namespaces: None,
            entries: Default::default(),
            credentials: Default::default(),
        }
    }

    /// The same cache, reading worker pools from `pools` once it is filled.
    pub fn with_pools(mut self, pools: Arc<super::pools::Pools>) -> Self {
        self.pools = Some(pools);
        self
    }

    /// The same cache, reading provider-side namespaces from `store` (metadata of those
    /// [`crate::orphans::NAMESPACE_SELECTOR`] selects) once it is filled.
    /// `health`: its watch's ([`crate::WatchHealth`]; the cache is not used while it fails).
    pub fn with_namespaces(
        mut self,
        store: Store<PartialObjectMeta<Namespace>>,
        health: Arc<crate::WatchHealth>,
    ) -> Self {
        self.namespaces = Some((store, health));
        self
    }

    /// The namespace cache, when filled and its watch is usable.
    fn namespace_cache(&self) -> Option<&Store<PartialObjectMeta<Namespace>>> {
        let (store, health) = self.namespaces.as_ref()?;
        (health.usable() && crate::is_filled(store)).then_some(store)
    }

    /// The provider-side namespaces from the cache; `None` while they are not watched, the
    /// cache is not filled or its watch fails (then the caller lists them).
    pub fn provider_namespaces(&self) -> Option<Vec<Arc<PartialObjectMeta<Namespace>>>> {
        Some(self.namespace_cache()?.state())
    }

    /// Whether the cache holds `rendered` as applying it would leave it: the namespace exists,
    /// is not being deleted, and carries its labels and annotations; `None` while the cache is
    /// not watched, not filled or its watch fails.
    pub fn namespace_current(&self, rendered: &Namespace) -> Option<bool> {
        let store = self.namespace_cache()?;
        Some(
            store
                .get(&ObjectRef::new(&rendered.name_any()))
                .is_some_and(|live| {
                    live.metadata.deletion_timestamp.is_none()
                        && contains(live.labels(), rendered.labels())
                        && contains(live.annotations(), rendered.annotations())
                }),
        )
    }

    /// The worker pools of the Cluster API Cluster `ns/name` from the watch; `None` while they
    /// are not watched, the index is not filled or its watch fails (then the caller lists them).
    fn pools(&self, ns: &str, name: &str) -> Option<Vec<PoolObservation>> {
        self.pools.as_ref()?.of(ns, name)
    }

    /// The cached Cluster API Clusters of `provider` (label `scs.community/provider`, which
    /// every owned and adopted one carries); `None` when they are not watched or the cache is
    /// not filled within 10 s (then the caller lists them).
    pub async fn of_provider(&self, provider: &str) -> Option<Vec<Arc<CapiCluster>>> {
        self.owned_where(|c| {
            c.labels()
                .get(kaas_render::LABEL_PROVIDER)
                .map(String::as_str)
                == Some(provider)
        })
        .await
    }

    /// The cached Cluster API Clusters (label `scs.community/cluster`: owned and adopted ones)
    /// for which `keep` holds; `None` when they are not watched or the cache is not filled within
    /// 10 s (then the caller lists them).
    pub async fn owned_where(
        &self,
        keep: impl Fn(&CapiCluster) -> bool,
    ) -> Option<Vec<Arc<CapiCluster>>> {
        let store = self.store.as_ref()?;
        tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
            .await
            .ok()?
            .ok()?;
        Some(store.state_filter(keep))
    }

    /// Whether owned Cluster API Clusters are watched (their changes trigger reconciles).
    pub fn watched(&self) -> bool {
        self.store.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached `ns/name`, unless it is older than what kaas has seen of it.
    fn cached(&self, ns: &str, name: &str) -> Option<Arc<CapiCluster>> {
        let live = self.store.as_ref()?.get(&ObjectRef::new(name).within(ns))?;
        let seen = self
            .lock()
            .get(&format!("{ns}/{name}"))
            .and_then(|e| e.seen);
        match (rv(&live), seen) {
            (Some(have), Some(seen)) if have < seen => None,
            (None, _) => None,
            _ => Some(live),
        }
    }

    /// The live object, when it is what applying `rendered` (hash `digest`) again would leave:
    /// kaas applied the same object last, the cached object is the one that apply resulted in
    /// (same uid, same generation: nobody changed its spec since) and still carries the rendered
    /// labels and annotations.
    fn unchanged(&self, rendered: &CapiCluster, digest: u64) -> Option<Arc<CapiCluster>> {
        let (ns, name) = (rendered.namespace()?, rendered.name_any());
        let live = self.cached(&ns, &name)?;
        let applied = self.lock().get(&format!("{ns}/{name}"))?.applied.clone()?;
        let same = applied == (digest, live.uid(), live.metadata.generation)
            && live.metadata.deletion_timestamp.is_none()
            && contains(live.labels(), rendered.labels())
            && contains(live.annotations(), rendered.annotations());
        same.then_some(live)
    }

    /// Whether the Cluster API Cluster `ns/name` does not exist as far as kaas knows: the cache is
    /// filled and holds none, and kaas has not seen one since it last forgot it.
    fn absent(&self, ns: &str, name: &str) -> bool {
        let Some(store) = self.store.as_ref() else {
            return false;
        };
        crate::is_filled(store)
            && store.get(&ObjectRef::new(name).within(ns)).is_none()
            && self
                .lock()
                .get(&format!("{ns}/{name}"))
                .is_none_or(|e| e.seen.is_none())
    }

    /// Records an apply of the object hashed `digest` and its answer `applied` (`created`: the
    /// apply created it).
    fn record_apply(&self, digest: u64, applied: &Arc<CapiCluster>, created: bool) {
        let key = format!(
            "{}/{}",
            applied.namespace().unwrap_or_default(),
            applied.name_any()
        );
        let mut entries = self.lock();
        let e = entries.entry(key).or_default();
        e.applied = Some((digest, applied.uid(), applied.metadata.generation));
        e.seen = rv(applied).max(e.seen);
        e.fresh = Some(applied.clone());
        e.created = created;
    }

    /// Whether this reconcile's apply created the object, once.
    fn take_created(&self, key: &str) -> bool {
        self.lock()
            .get_mut(key)
            .is_some_and(|e| std::mem::take(&mut e.created))
    }

    /// The apply's answer of this reconcile, once.
    fn take_fresh(&self, key: &str) -> Option<Arc<CapiCluster>> {
        self.lock().get_mut(key).and_then(|e| e.fresh.take())
    }

    fn seen(&self, key: &str, c: &CapiCluster) {
        if let Some(v) = rv(c) {
            let mut entries = self.lock();
            let e = entries.entry(key.to_string()).or_default();
            e.seen = Some(v).max(e.seen);
        }
    }

    /// The last reads, when made for these very versions less than [`REREAD`] ago.
    fn reads(&self, key: &str, versions: &(Option<String>, Option<String>)) -> Option<Reads> {
        self.lock()
            .get(key)
            .and_then(|e| e.reads.clone())
            .filter(|r| r.versions == *versions && r.versions.1.is_some())
            .filter(|r| r.at.elapsed() < REREAD)
    }

    fn record_reads(&self, key: &str, reads: Reads) {
        self.lock().entry(key.to_string()).or_default().reads = Some(reads);
    }

    /// The resourceVersion of the Secret `ns/name` (a provider's credentials; `-` while absent),
    /// read at most once per [`CREDENTIALS_REREAD`]; `None` when it cannot be read.
    async fn credentials_version(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Option<String> {
        let key = format!("{ns}/{name}");
        let known = {
            let seen = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
            seen.get(&key)
                .filter(|(_, at)| at.elapsed() < CREDENTIALS_REREAD)
                .map(|(v, _)| v.clone())
        };
        if known.is_some() {
            return known;
        }
        let version = Api::<Secret>::namespaced(client.clone(), ns)
            .get_metadata_opt(name)
            .await
            .ok()?
            .map_or_else(
                || "-".to_string(),
                |s| s.resource_version().unwrap_or_default(),
            );
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (version.clone(), Instant::now()));
        Some(version)
    }

    /// Forgets `ns/name` (deleted).
    fn forget(&self, ns: &str, name: &str) {
        self.lock().remove(&format!("{ns}/{name}"));
    }
}

fn signal(c: Option<&Condition>, missing: &str) -> Signal {
    match c {
        Some(c) => Signal::new(
            conditions::status(c),
            if c.reason.is_empty() {
                "Unknown"
            } else {
                &c.reason
            },
            c.message.clone(),
        ),
        None => Signal::new(None, "Pending", missing),
    }
}

#[async_trait]
impl Backend for ClusterApi {
    /// The topology, at an adopted cluster's place once both sides of the handshake agree (the
    /// controller applies nothing while they do not).
    fn render(
        &self,
        cluster: &Cluster,
        resolved: &Resolved,
        loc: &Location,
    ) -> Result<Objects, RenderError> {
        let rendered = kaas_render::render_at(cluster, resolved, loc.target.as_ref())?;
        Ok(Objects::ClusterApi(Box::new(rendered)))
    }

    async fn apply(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: &Resolved,
        objects: Objects,
    ) -> Result<(), Error> {
        let Objects::ClusterApi(rendered) = objects else {
            return Err(Error::Other("not Cluster API objects".into()));
        };
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let ns_name = rendered.namespace.name_any();
        let copies = resolved
            .stack
            .is_some_and(|s| kaas_render::stacks::for_kind(s).copies_credentials());
        let api: Api<CapiCluster> = Api::namespaced(ctx.client.clone(), &ns_name);
        let capi_name = rendered.cluster.name_any();
        let capi_patch = Patch::Apply(&rendered.cluster);
        // Applied identically before and unchanged since (the cache): the apply would change
        // nothing, so it is not sent.
        let digest = crate::Written::hash_of(&rendered.cluster);
        let key = format!(
            "{}/{capi_name}",
            rendered.cluster.namespace().unwrap_or_default()
        );
        ctx.capi.take_fresh(&key);
        ctx.capi.take_created(&key);
        let unchanged = if rendered.adopted {
            None
        } else {
            ctx.capi.unchanged(&rendered.cluster, digest)
        };
        let absent =
            unchanged.is_none() && !rendered.adopted && ctx.capi.absent(&ns_name, &capi_name);
        let skip_apply = unchanged.is_some();
        // What goes into the namespace: the provider's credentials, the Cluster API Cluster.
        let writes = || async {
            if copies {
                copy_credentials(ctx, resolved, &ns_name).await?;
            }
            if skip_apply {
                return Ok(None);
            }
            Ok(Some(api.patch(&capi_name, &pp, &capi_patch).await?))
        };
        let answer = if rendered.adopted {
            // The adopted cluster's namespace is the provider's: never written.
            writes().await?
        } else {
            super::into_namespace(ctx, &rendered.namespace, writes).await?
        };
        let mut created = false;
        let applied = match (unchanged, answer) {
            (Some(live), _) => live,
            (None, Some(applied)) => {
                ctx.echoes.record(&applied);
                // Created by this apply: nothing Cluster API makes for it can exist yet.
                created =
                    absent && applied.status.is_none() && applied.metadata.generation == Some(1);
                let applied = Arc::new(applied);
                ctx.capi.record_apply(digest, &applied, created);
                applied
            }
            // `writes` applies whenever nothing is unchanged.
            (None, None) => {
                return Err(Error::Other(
                    "the Cluster API Cluster was not applied".into(),
                ));
            }
        };
        if rendered.adopted {
            // The adopted cluster's namespace is the provider's; tenants get no access there, and
            // kaas runs no autoscaler in it (docs/autoscaling.md).
            return Ok(());
        }
        keep_tenant_viewer(ctx, cluster, &ns_name).await;
        // The cluster-autoscaler, while a pool autoscales.
        super::autoscaler::keep(ctx, cluster, resolved, &applied, created).await
    }

    /// The cached Cluster API Cluster's uid and resourceVersion (the watch delivers its every
    /// change) and, for a stack that copies the provider's credentials, the resourceVersion of
    /// the credentials Secret (read at most once a minute per provider: a rotated Secret is
    /// copied within a minute); none for an adopted cluster, which is located with a request.
    async fn settled_token(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: &Resolved,
    ) -> Option<String> {
        if cluster
            .annotations()
            .contains_key(kaas_api::ANNOTATION_ADOPT_FROM)
        {
            return None;
        }
        let ns = kaas_render::capi_namespace(&resolved.provider, &cluster.namespace()?);
        let live = ctx.capi.cached(&ns, &cluster.name_any())?;
        let mut token = format!("{}/{}", live.uid()?, live.resource_version()?);
        if let Some(pools) = ctx
            .capi
            .pools
            .as_ref()
            .and_then(|p| p.digest(&ns, &cluster.name_any()))
        {
            token = format!("{token} pools {pools:x}");
        }
        if resolved
            .stack
            .is_some_and(|s| kaas_render::stacks::for_kind(s).copies_credentials())
        {
            let provider = crate::dereference::provider(&ctx.provider_store, cluster).ok()?;
            let (Some(cref), Some(src_ns)) = (
                provider.spec.credentials_ref.as_ref(),
                resolved.provider_namespace.as_ref(),
            ) else {
                return Some(token);
            };
            let version = ctx
                .capi
                .credentials_version(&ctx.client, src_ns, &cref.name)
                .await?;
            token = format!("{token} credentials {version}");
        }
        Some(token)
    }

    async fn observe(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: Option<&Resolved>,
        loc: &Location,
    ) -> Result<Observation, Error> {
        let (ns, capi_name) = (loc.namespace.clone(), loc.name.clone());
        let api: Api<CapiCluster> = Api::namespaced(ctx.client.clone(), &ns);
        let key = format!("{ns}/{capi_name}");
        // The newer of what this reconcile's apply answered and the cache (an adopted cluster is
        // not in it), else the API server.
        let fresh = ctx.capi.take_fresh(&key);
        let cached = if loc.target.is_none() {
            ctx.capi.cached(&ns, &capi_name)
        } else {
            None
        };
        let newest = match (fresh, cached) {
            (Some(f), Some(c)) => Some(if rv(&c) > rv(&f) { c } else { f }),
            (f, c) => f.or(c),
        };
        let capi = match newest {
            Some(c) => c,
            None => match api.get_opt(&capi_name).await? {
                Some(c) => Arc::new(c),
                None => return Ok(Observation::default()),
            },
        };
        ctx.capi.seen(&key, &capi);
        // The SCS Cluster by what triggers a reconcile, not its resourceVersion: the status this
        // reconcile writes must not make the next one read everything again.
        let versions = (
            crate::controller::trigger_hash(cluster).map(|h| h.to_string()),
            capi.metadata.resource_version.clone(),
        );
        let status = capi.status.clone().unwrap_or_default();
        let conds = status.conditions.as_ref();
        let mut o = Observation {
            exists: true,
            ..Default::default()
        };
        let infra_done = status
            .initialization
            .as_ref()
            .and_then(|i| i.infrastructure_provisioned)
            .unwrap_or(false);
        o.infrastructure = if infra_done {
            Signal::new(Some(true), "Provisioned", "infrastructure is provisioned")
        } else {
            signal(
                conditions::find(conds, conditions::INFRASTRUCTURE_READY),
                "waiting for infrastructure",
            )
        };
        o.control_plane = signal(
            conditions::find(conds, conditions::CONTROL_PLANE_AVAILABLE),
            "waiting for the control plane",
        );
        o.workers = signal(
            conditions::find(conds, conditions::WORKERS_AVAILABLE),
            "waiting for workers",
        );
        if let Some(cp) = &status.control_plane {
            o.control_plane_versions = cp
                .versions
                .iter()
                .flatten()
                .map(|v| v.version.clone())
                .collect();
        }
        if let Some(w) = &status.workers {
            o.worker_versions = w
                .versions
                .iter()
                .flatten()
                .map(|v| v.version.clone())
                .collect();
        }
        if let Some(t) = conditions::find(conds, conditions::TOPOLOGY_RECONCILED)
            && t.status != "True"
        {
            o.rolling_out = Some(format!("{}: {}", t.reason, t.message));
            if matches!(
                t.reason.as_str(),
                conditions::reason::RECONCILE_FAILED
                    | conditions::reason::CLUSTER_CLASS_NOT_RECONCILED
            ) {
                o.failure = Some(format!(
                    "Cluster API cannot apply the topology: {}",
                    t.message
                ));
            }
        }
        if let Some(ep) = capi
            .spec
            .control_plane_endpoint
            .as_ref()
            .filter(|e| e.host.as_deref().is_some_and(|h| !h.is_empty()))
        {
            o.endpoint = Some(format!(
                "https://{}:{}",
                ep.host.clone().unwrap_or_default(),
                ep.port.unwrap_or(6443)
            ));
        }

        // While the control plane is not available and neither the SCS Cluster (its spec, labels,
        // annotations and finalizers) nor the Cluster API Cluster changed, what was read for them
        // is reused: Cluster API reports its progress (machines, the control plane's
        // initialization after it wrote the kubeconfig Secret) in the Cluster API Cluster, and
        // what is read stays at most [`REREAD`].
        let reused = if o.control_plane.ok == Some(true) {
            None
        } else {
            ctx.capi.reads(&key, &versions)
        };
        // This reconcile's apply created the Cluster API Cluster and no Cluster API controller has
        // written its status yet: no MachineDeployment, kubeconfig Secret or autoscaler of it can
        // exist (all are made for it, after it), so nothing is read. The next reconcile reads —
        // Cluster API's first status write triggers it — and nothing is recorded as read.
        let created = ctx.capi.take_created(&key) && capi.status.is_none();
        // Worker pools: MachineDeployments of this cluster, grouped by the pool label.
        // From the watch while they agree with the Cluster API Cluster's own count of its workers
        // (two watches: the Cluster's change may arrive before its MachineDeployments'), else
        // listed.
        let cached_pools = ctx
            .capi
            .pools(&ns, &capi_name)
            .filter(|p| agrees(p, status.workers.as_ref()));
        let read_pools = match (cached_pools, &reused) {
            (Some(p), _) => p,
            (None, Some(r)) => r.pools.clone(),
            (None, None) if created => Vec::new(),
            (None, None) => pools_of(ctx, &ns, &capi_name).await?,
        };
        o.pools = read_pools.clone();
        if resolved.is_some_and(|r| r.autoscaler_image.is_some())
            && loc.target.is_none()
            && !created
        {
            let kubeconfig = kubeconfig_secret_name(&capi_name);
            super::autoscaler::observe(ctx, &ns, &kubeconfig, &mut o.pools).await;
        }

        // Converged only when Cluster API has applied this very topology: its Cluster observed the
        // latest generation and reconciled the topology for it, and every pool has exactly its
        // desired nodes ready. (Without this, a status read right after a scale could call the
        // new generation Ready while the old MachineDeployment replicas were still in place.)
        let generation = capi.metadata.generation;
        let topology_current = conditions::find(conds, conditions::TOPOLOGY_RECONCILED)
            .is_some_and(|t| t.status == "True" && t.observed_generation >= generation);
        if status.observed_generation < generation || !topology_current {
            o.rolling_out.get_or_insert_with(|| {
                "Cluster API has not applied the latest topology yet".into()
            });
        }
        if o.workers.ok == Some(true)
            && let Some(p) = o.pools.iter().find(|p| p.ready != p.desired)
        {
            o.workers = Signal::new(
                Some(false),
                "Scaling",
                format!("pool {}: {}/{} nodes ready", p.name, p.ready, p.desired),
            );
        }

        // Hibernation (Cluster API): the topology applied, every pool at zero, no worker Machine
        // left (counted directly: a MachineDeployment's status lags Machines still being
        // deleted), and the control plane available — it is what stays.
        if resolved.is_some_and(|r| r.hibernated)
            && o.rolling_out.is_none()
            && o.control_plane.ok == Some(true)
            && o.pools.iter().all(|p| p.desired == 0 && p.current == 0)
        {
            let machines: Api<kaas_capi::machine::Machine> =
                Api::namespaced(ctx.client.clone(), &ns);
            let workers = machines
                .list_metadata(&ListParams::default().labels(&format!(
                    "cluster.x-k8s.io/cluster-name={capi_name},!cluster.x-k8s.io/control-plane"
                )))
                .await?;
            if workers.items.is_empty() {
                o.at_rest =
                    Some("every worker pool is at 0 nodes; the control plane keeps running".into());
            }
        }

        // Kubeconfig: copy Cluster API's Secret into the tenant namespace (owned by the SCS Cluster).
        let allowed = super::admin_copy_allowed(ctx, cluster);
        o.kubeconfig_secret = if allowed
            && (created || reused.as_ref().is_some_and(|r| r.kubeconfig_absent))
        {
            None
        } else {
            super::copy_kubeconfig(ctx, cluster, &ns, &kubeconfig_secret_name(&capi_name)).await?
        };
        let reads = match reused {
            Some(r) => r,
            None => Reads {
                versions,
                at: Instant::now(),
                pools: read_pools,
                kubeconfig_absent: allowed && o.kubeconfig_secret.is_none(),
            },
        };
        if !created {
            ctx.capi.record_reads(&key, reads);
        }
        Ok(o)
    }

    async fn workload(
        &self,
        ctx: &Context,
        _cluster: &Cluster,
        _resolved: &Resolved,
        loc: &Location,
    ) -> Result<Option<kube::Client>, Error> {
        capi_workload(ctx, loc).await
    }

    async fn delete(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        provider: &str,
    ) -> Result<Deletion, Error> {
        // A confirmed adoption deletes the adopted cluster; an unconfirmed one touches nothing
        // but the tenant's own derived location.
        let loc = crate::adopt::locate(&ctx.client, cluster, provider).await?;
        let (ns, name) = (loc.namespace.clone(), loc.name.clone());
        // The namespace may go with the cluster: a cluster created again writes it again.
        ctx.written.forget(&format!("Namespace/{ns}"));
        ctx.capi.forget(&ns, &name);
        ctx.echoes.forget::<CapiCluster>(&ns, &name);
        ctx.written
            .forget(&format!("RoleBinding/{ns}/{CAPI_VIEWER_BINDING}"));
        if loc.target.is_none() {
            // The autoscaler goes first: it must not scale what is being deleted.
            super::autoscaler::remove(ctx, &ns, &name).await?;
        }
        let api: Api<CapiCluster> = Api::namespaced(ctx.client.clone(), &ns);
        let Some(capi) = api.get_opt(&name).await? else {
            return Ok(Deletion::Done);
        };
        if capi.meta().deletion_timestamp.is_none() {
            api.delete(&name, &DeleteParams::background()).await?;
        }
        let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
        let left = machines
            .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={name}")))
            .await?;
        let mut names: Vec<String> = left.items.iter().map(|m| m.name_any()).collect();
        names.sort();
        let msg = if names.is_empty() {
            "waiting for Cluster API to remove the cluster's infrastructure".to_string()
        } else {
            let shown: Vec<_> = names.iter().take(5).cloned().collect();
            format!(
                "waiting for Cluster API to delete {} machine(s): {}{}",
                names.len(),
                shown.join(", "),
                if names.len() > 5 { ", …" } else { "" }
            )
        };
        Ok(Deletion::Waiting(msg))
    }
}

/// Whether `pools` add up to what the Cluster API Cluster counts of its workers (wanted, ready
/// and existing replicas; nothing to compare before it counts them). Pure.
fn agrees(pools: &[PoolObservation], workers: Option<&ClusterStatusWorkers>) -> bool {
    let Some(w) = workers else {
        return true;
    };
    let sum = |f: fn(&PoolObservation) -> i32| pools.iter().map(f).sum::<i32>();
    (sum(|p| p.desired), sum(|p| p.ready), sum(|p| p.current))
        == (
            w.desired_replicas.unwrap_or(0),
            w.ready_replicas.unwrap_or(0),
            w.replicas.unwrap_or(0),
        )
}

/// The worker pools of Cluster API Cluster `ns/name`: its MachineDeployments grouped by the pool
/// label.
async fn pools_of(ctx: &Context, ns: &str, capi_name: &str) -> Result<Vec<PoolObservation>, Error> {
    let mds: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), ns);
    let list = mds
        .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={capi_name}")))
        .await?;
    let parts: Vec<(String, super::pools::Part)> = list
        .items
        .iter()
        .map(|md| (md.name_any(), super::pools::Part::of(md)))
        .collect();
    Ok(super::pools::group(
        parts.iter().map(|(name, part)| (name.as_str(), part)),
    ))
}

/// The workload cluster's client from Cluster API's kubeconfig Secret at `loc`, once it exists.
pub async fn capi_workload(ctx: &Context, loc: &Location) -> Result<Option<kube::Client>, Error> {
    super::workload_from_secret(ctx, &loc.namespace, &kubeconfig_secret_name(&loc.name)).await
}

/// The RoleBinding [`CAPI_VIEWER_BINDING`] for `capi_ns`: [`CAPI_VIEWER_ROLE`] for every subject of
/// the tenant namespace's RoleBindings of [`TENANT_ROLE`] (ServiceAccounts without a namespace are
/// the tenant's), sorted and without duplicates. Pure.
pub fn capi_viewer_binding(
    tenant: &str,
    capi_ns: &str,
    tenant_bindings: &[RoleBinding],
) -> RoleBinding {
    let mut subjects: Vec<Subject> = tenant_bindings
        .iter()
        .filter(|rb| rb.role_ref.kind == "ClusterRole" && rb.role_ref.name == TENANT_ROLE)
        .flat_map(|rb| rb.subjects.clone().unwrap_or_default())
        .map(|mut s| {
            if s.kind == "ServiceAccount" && s.namespace.as_deref().is_none_or(str::is_empty) {
                s.namespace = Some(tenant.to_string());
            }
            s
        })
        .collect();
    subjects.sort_by(|a, b| {
        (&a.kind, &a.namespace, &a.name, &a.api_group).cmp(&(
            &b.kind,
            &b.namespace,
            &b.name,
            &b.api_group,
        ))
    });
    subjects.dedup();
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(CAPI_VIEWER_BINDING.into()),
            namespace: Some(capi_ns.into()),
            labels: Some(BTreeMap::from([
                (kaas_render::LABEL_TENANT.to_string(), tenant.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "kaas".to_string(),
                ),
            ])),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: CAPI_VIEWER_ROLE.into(),
        },
        subjects: Some(subjects),
    }
}

/// The tenant's read access to its provider-side namespace, retried with every reconcile: a
/// failure is logged and never holds up the cluster.
/// Kept at most once a minute per namespace ([`crate::Written`]) while the tenant namespace's
/// RoleBindings do not change (their change count is part of the hash): a RoleBinding the tenant
/// adds or removes reaches the binding at the next reconcile.
pub(crate) async fn keep_tenant_viewer(ctx: &Context, cluster: &Cluster, ns: &str) {
    let tenant = cluster.namespace().unwrap_or_default();
    let key = format!("RoleBinding/{ns}/{CAPI_VIEWER_BINDING}");
    let hash = crate::Written::hash_of(&(&tenant, ctx.namespaces.of(&tenant)));
    if ctx.written.fresh(&key, hash) {
        return;
    }
    match sync_capi_viewer(ctx, &tenant, ns).await {
        Ok(()) => ctx.written.record(key, hash),
        Err(e) => {
            tracing::warn!(namespace = %ns, error = %e, "cannot keep the tenant's RoleBinding {CAPI_VIEWER_BINDING}")
        }
    }
}

/// Keeps the tenant's read access to its Cluster API objects: writes [`capi_viewer_binding`] into
/// `capi_ns` when it differs from what is there (one list and one get otherwise).
async fn sync_capi_viewer(ctx: &Context, tenant: &str, capi_ns: &str) -> Result<(), Error> {
    let tenant_bindings = Api::<RoleBinding>::namespaced(ctx.client.clone(), tenant)
        .list(&ListParams::default())
        .await?
        .items;
    let want = capi_viewer_binding(tenant, capi_ns, &tenant_bindings);
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), capi_ns);
    let have = api.get_opt(CAPI_VIEWER_BINDING).await?;
    let current = have
        .as_ref()
        .map(|rb| (&rb.role_ref, rb.subjects.clone().unwrap_or_default()));
    if current != Some((&want.role_ref, want.subjects.clone().unwrap_or_default())) {
        api.patch(
            CAPI_VIEWER_BINDING,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&want),
        )
        .await?;
    }
    Ok(())
}

async fn copy_credentials(
    ctx: &Context,
    resolved: &Resolved,
    target_ns: &str,
) -> Result<(), Error> {
    let provider: Api<kaas_api::Provider> = Api::all(ctx.client.clone());
    let p = provider.get(&resolved.provider).await?;
    let (Some(cref), Some(src_ns)) = (
        p.spec.credentials_ref.as_ref(),
        resolved.provider_namespace.as_ref(),
    ) else {
        return Ok(());
    };
    let src: Secret = Api::namespaced(ctx.client.clone(), src_ns)
        .get(&cref.name)
        .await?;
    let copy = Secret {
        metadata: ObjectMeta {
            name: Some(kaas_render::stacks::CREDENTIALS_SECRET.into()),
            namespace: Some(target_ns.into()),
            labels: Some(BTreeMap::from([(
                "scs.community/credentials".to_string(),
                resolved.provider.clone(),
            )])),
            ..Default::default()
        },
        data: src.data,
        type_: src.type_,
        ..Default::default()
    };
    Api::<Secret>::namespaced(ctx.client.clone(), target_ns)
        .patch(
            kaas_render::stacks::CREDENTIALS_SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&copy),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta::default(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
        }
    }

    fn capi(rv: &str, generation: i64, labels: &[(&str, &str)]) -> CapiCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "kaas-dev-t-1", "uid": "u1",
                "resourceVersion": rv, "generation": generation,
                "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()},
            "spec": {},
        }))
        .unwrap()
    }

    fn cache_with(live: &[CapiCluster]) -> CapiCache {
        CapiCache::new(Some(crate::fake_api::filled(live)))
    }

    #[tokio::test]
    async fn a_providers_clusters_come_from_the_cache_once_it_is_filled() {
        let named = |name: &str, provider: &str| {
            let mut c = capi("1", 1, &[("scs.community/provider", provider)]);
            c.metadata.name = Some(name.into());
            c
        };
        let cache = cache_with(&[named("a", "dev"), named("b", "other"), named("c", "dev")]);
        let mut names: Vec<String> = cache
            .of_provider("dev")
            .await
            .expect("filled")
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "c"]);
        assert!(
            CapiCache::new(None).of_provider("dev").await.is_none(),
            "not watched: the caller lists"
        );
    }

    #[test]
    fn an_apply_is_skipped_only_while_the_cached_object_is_what_it_left() {
        let rendered = capi("", 0, &[("scs.community/cluster", "c")]);
        let answer = Arc::new(capi("10", 1, &[("scs.community/cluster", "c")]));
        // Never applied: applied.
        let cache = cache_with(&[capi("10", 1, &[("scs.community/cluster", "c")])]);
        assert!(cache.unchanged(&rendered, 7).is_none());
        cache.record_apply(7, &answer, false);
        assert!(
            cache.unchanged(&rendered, 7).is_some(),
            "same object, same generation"
        );
        assert!(
            cache.unchanged(&rendered, 8).is_none(),
            "rendered differently"
        );
        // Someone changed the spec (generation), removed a label, or the cache is older than
        // what the apply answered: applied again.
        for live in [
            capi("11", 2, &[("scs.community/cluster", "c")]),
            capi("11", 1, &[]),
            capi("9", 1, &[("scs.community/cluster", "c")]),
        ] {
            let cache = cache_with(std::slice::from_ref(&live));
            cache.record_apply(7, &answer, false);
            assert!(
                cache.unchanged(&rendered, 7).is_none(),
                "{:?}",
                live.metadata
            );
        }
        // Not in the cache (deleted, or Cluster API not watched): applied.
        let cache = cache_with(&[]);
        cache.record_apply(7, &answer, false);
        assert!(cache.unchanged(&rendered, 7).is_none());
        let unwatched = CapiCache::new(None);
        unwatched.record_apply(7, &answer, false);
        assert!(unwatched.unchanged(&rendered, 7).is_none());
        assert!(!unwatched.watched());
        // The apply's answer is taken once; forgetting drops everything.
        assert!(cache.take_fresh("kaas-dev-t-1/c").is_some());
        assert!(cache.take_fresh("kaas-dev-t-1/c").is_none());
        cache.forget("kaas-dev-t-1", "c");
        assert!(cache.lock().is_empty());
    }

    #[tokio::test]
    async fn a_cluster_is_new_only_when_the_filled_cache_and_kaas_know_none() {
        let answer = Arc::new(capi("10", 1, &[("scs.community/cluster", "c")]));
        assert!(
            !CapiCache::new(None).absent("kaas-dev-t-1", "c"),
            "not watched: unknown"
        );
        let (store, _writer) = kube::runtime::reflector::store::<CapiCluster>();
        assert!(
            !CapiCache::new(Some(store)).absent("kaas-dev-t-1", "c"),
            "not filled yet: unknown"
        );
        assert!(!cache_with(std::slice::from_ref(&answer)).absent("kaas-dev-t-1", "c"));
        let cache = cache_with(&[]);
        assert!(cache.absent("kaas-dev-t-1", "c"));
        assert!(!cache.take_created("kaas-dev-t-1/c"), "nothing applied");
        cache.record_apply(7, &answer, true);
        assert!(
            !cache.absent("kaas-dev-t-1", "c"),
            "kaas has seen it (the cache lags)"
        );
        assert!(cache.take_created("kaas-dev-t-1/c"), "taken once");
        assert!(!cache.take_created("kaas-dev-t-1/c"));
        cache.forget("kaas-dev-t-1", "c");
        assert!(cache.absent("kaas-dev-t-1", "c"), "deleted");
    }

    fn ns_store(live: &[serde_json::Value]) -> Store<PartialObjectMeta<Namespace>> {
        let metas: Vec<PartialObjectMeta<Namespace>> = live
            .iter()
            .map(|n| PartialObjectMeta {
                types: None,
                metadata: serde_json::from_value(n.clone()).unwrap(),
                _phantom: Default::default(),
            })
            .collect();
        crate::fake_api::filled(&metas)
    }

    #[test]
    fn a_namespace_is_written_only_when_the_filled_cache_lacks_it_as_rendered() {
        let rendered = Namespace {
            metadata: ObjectMeta {
                name: Some("kaas-dev-t".into()),
                labels: Some(kaas_render::namespace_labels("t", "dev")),
                ..Default::default()
            },
            ..Default::default()
        };
        let labels = serde_json::to_value(kaas_render::namespace_labels("t", "dev")).unwrap();
        let mut extra = labels.clone();
        extra["other"] = "x".into();
        let current = |live: &[serde_json::Value]| {
            CapiCache::new(None)
                .with_namespaces(ns_store(live), Arc::new(crate::WatchHealth::default()))
                .namespace_current(&rendered)
                .expect("filled")
        };
        assert!(current(&[
            serde_json::json!({"name": "kaas-dev-t", "labels": labels})
        ]));
        assert!(
            current(&[serde_json::json!({"name": "kaas-dev-t", "labels": extra})]),
            "more labels than rendered"
        );
        assert!(!current(&[]), "missing");
        assert!(
            !current(&[serde_json::json!({"name": "kaas-dev-u", "labels": labels})]),
            "another namespace"
        );
        let mut less = labels.clone();
        less.as_object_mut()
            .unwrap()
            .remove("pod-security.kubernetes.io/enforce");
        assert!(
            !current(&[serde_json::json!({"name": "kaas-dev-t", "labels": less})]),
            "a label removed"
        );
        assert!(
            !current(&[serde_json::json!({"name": "kaas-dev-t", "labels": labels,
                "deletionTimestamp": "2026-12-01T00:00:00Z"})]),
            "being deleted"
        );
        assert_eq!(
            CapiCache::new(None).namespace_current(&rendered),
            None,
            "not watched"
        );
        let (unfilled, _writer) = kube::runtime::reflector::store();
        let cache =
            CapiCache::new(None).with_namespaces(unfilled, Arc::new(crate::WatchHealth::default()));
        assert_eq!(cache.namespace_current(&rendered), None, "not filled yet");
        assert!(
            cache.provider_namespaces().is_none(),
            "not filled: the caller lists"
        );
        let health = Arc::new(crate::WatchHealth::default());
        let filled = CapiCache::new(None).with_namespaces(
            ns_store(&[serde_json::json!({"name": "kaas-dev-t", "labels": labels})]),
            health.clone(),
        );
        assert_eq!(filled.provider_namespaces().expect("filled").len(), 1);
        assert_eq!(filled.namespace_current(&rendered), Some(true));
        // A failing watch: the cache is not used until it recovers.
        health.failed();
        assert!(filled.provider_namespaces().is_none());
        assert_eq!(filled.namespace_current(&rendered), None);
    }

    #[test]
    fn watched_pools_are_used_only_while_they_add_up_to_the_clusters_count() {
        let pool = |desired, ready, current| PoolObservation {
            name: "w".into(),
            desired,
            ready,
            current,
            ..Default::default()
        };
        let pools = [pool(2, 2, 2), pool(1, 0, 1)];
        let workers = |desired, ready, replicas| ClusterStatusWorkers {
            desired_replicas: Some(desired),
            ready_replicas: Some(ready),
            replicas: Some(replicas),
            ..Default::default()
        };
        assert!(agrees(&pools, None), "not counted yet");
        assert!(agrees(&pools, Some(&workers(3, 2, 3))));
        for stale in [workers(4, 2, 3), workers(3, 3, 3), workers(3, 2, 4)] {
            assert!(!agrees(&pools, Some(&stale)), "{stale:?}");
        }
        assert!(agrees(&[], Some(&ClusterStatusWorkers::default())));
    }

    #[test]
    fn reads_are_reused_only_for_the_same_versions() {
        let cache = CapiCache::new(None);
        let v = (Some("5".to_string()), Some("10".to_string()));
        cache.record_reads(
            "n/c",
            Reads {
                versions: v.clone(),
                at: Instant::now(),
                pools: Vec::new(),
                kubeconfig_absent: true,
            },
        );
        assert!(cache.reads("n/c", &v).is_some());
        assert!(
            cache
                .reads("n/c", &(v.0.clone(), Some("11".into())))
                .is_none()
        );
        assert!(
            cache
                .reads("n/c", &(Some("6".into()), v.1.clone()))
                .is_none()
        );
        assert!(cache.reads("n/d", &v).is_none());
        // Older than REREAD: read again.
        cache.record_reads(
            "n/c",
            Reads {
                versions: v.clone(),
                at: Instant::now()
                    .checked_sub(REREAD + Duration::from_secs(1))
                    .unwrap(),
                pools: Vec::new(),
                kubeconfig_absent: true,
            },
        );
        assert!(cache.reads("n/c", &v).is_none());
    }

    /// A client whose API server answers a Secret's metadata with resourceVersion = the number of
    /// requests so far, counted in `sent` (404 for the Secret `gone`).
    fn versions(sent: Arc<std::sync::atomic::AtomicU64>) -> kube::Client {
        crate::fake_api::client(move |req| {
            let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if req.uri().path().ends_with("/gone") {
                (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_string())
            } else {
                (
                    200,
                    format!(
                        r#"{{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":{{"name":"c","resourceVersion":"{n}"}}}}"#
                    ),
                )
            }
        })
    }

    #[tokio::test]
    async fn a_providers_credentials_are_read_at_most_once_a_minute() {
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let client = versions(sent.clone());
        let cache = CapiCache::default();
        let first = cache.credentials_version(&client, "p", "creds").await;
        assert_eq!(first.as_deref(), Some("1"));
        let again = cache.credentials_version(&client, "p", "creds").await;
        assert_eq!(again, first, "the same version, from the cache");
        assert_eq!(
            sent.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "one request"
        );
        // Another provider's Secret is read; an absent one has a version too.
        let other = cache.credentials_version(&client, "q", "creds").await;
        assert_eq!(other.as_deref(), Some("2"));
        let gone = cache.credentials_version(&client, "p", "gone").await;
        assert_eq!(gone.as_deref(), Some("-"));
        // Once the minute is over, it is read again.
        cache
            .credentials
            .lock()
            .unwrap()
            .get_mut("p/creds")
            .unwrap()
            .1 -= CREDENTIALS_REREAD;
        let later = cache.credentials_version(&client, "p", "creds").await;
        assert_eq!(later.as_deref(), Some("4"));
    }

    #[test]
    fn viewer_binding_copies_only_tenant_role_subjects() {
        let rbs = [
            binding(
                TENANT_ROLE,
                vec![
                    subject("Group", "oidc:tenant-a", None),
                    subject("ServiceAccount", "alice", None),
                ],
            ),
            binding(
                TENANT_ROLE,
                vec![
                    subject("Group", "oidc:tenant-a", None),
                    subject("ServiceAccount", "alice", Some("tenant-a")),
                ],
            ),
            binding("admin", vec![subject("User", "mallory", None)]),
        ];
        let rb = capi_viewer_binding("tenant-a", "kaas-dev-tenant-a-1", &rbs);
        assert_eq!(rb.metadata.name.as_deref(), Some(CAPI_VIEWER_BINDING));
        assert_eq!(
            rb.metadata.namespace.as_deref(),
            Some("kaas-dev-tenant-a-1")
        );
        assert_eq!(rb.role_ref.name, CAPI_VIEWER_ROLE);
        assert_eq!(
            rb.subjects.unwrap(),
            [
                subject("Group", "oidc:tenant-a", None),
                subject("ServiceAccount", "alice", Some("tenant-a")),
            ]
        );
        // No tenant binding: a binding without subjects (grants nothing).
        let empty = capi_viewer_binding("t", "ns", &[]);
        assert_eq!(empty.subjects, Some(Vec::new()));
    }
}
