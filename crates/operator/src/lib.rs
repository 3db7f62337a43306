//! The kaas operator. One reconcile of an SCS `Cluster` is a pipeline:
//!
//! 1. [`dereference`] — read its `Provider` (the only stage that reads other objects), chosen by
//!    `kaas_validate::admission::choose` like every other writer's admission;
//! 2. validate — `kaas_validate::validate`, the offering stage of the admission `kaas validate`,
//!    the REST API and GitSource run (`kaas_validate::admission::admit`);
//! 3. render — `kaas_render::render`, pure;
//! 4. apply — the provider's [`backend::Backend`] (server-side apply, finalizer);
//! 5. observe and [`status`] — derive conditions and write them only when they change.

pub mod addons;
pub mod adopt;
pub mod backend;
pub mod backup;
pub mod compliance;
pub mod controller;
pub mod credentials;
pub mod dereference;
pub mod doctor;
pub mod echoes;
pub mod events;
#[cfg(test)]
mod fake_api;
pub mod gitsource;
pub mod hibernation;
pub mod install;
pub mod kubeconfig;
pub mod leader;
pub mod maintenance;
pub mod metrics;
pub mod orphans;
pub mod planning;
pub mod provider;
pub mod s3;
pub mod settled;
pub mod status;
pub mod types;
pub mod upgrade_hooks;
pub mod verify;

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;

pub use controller::{Config, run};

/// Field manager of everything the operator writes (so GitOps tools and kaas never fight).
pub const FIELD_MANAGER: &str = "kaas-operator";
/// Finalizer on SCS Clusters. Only identities that may patch `clusters/status` can remove it
/// (admission policy `kaas_api::policy::finalizer_protection`).
pub const FINALIZER: &str = kaas_api::policy::CLUSTER_FINALIZER;

/// Errors of one reconcile; all are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Rendering failed (validation should have prevented it).
    #[error(transparent)]
    Render(#[from] kaas_render::RenderError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Shared state of the controllers (a clone shares everything; a Cluster reconcile runs on a clone
/// whose client also tallies that reconcile's requests).
#[derive(Clone)]
pub struct Context {
    /// Client with the operator's identity.
    pub client: Client,
    /// Publishes events ([`events`]).
    pub recorder: events::Publisher,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Providers this instance handles (empty: all).
    pub providers: BTreeSet<String>,
    /// Every Provider, kept current by a watch (read instead of a GET per reconcile).
    pub provider_store: kube::runtime::reflector::Store<kaas_api::Provider>,
    /// Every SCS Cluster, the controller's own cache (its trigger watch, managedFields dropped):
    /// the orphan collector and the backup scheduler read it instead of listing them all. Read
    /// it with [`Context::cached_clusters`], which says when it is not filled yet.
    pub clusters: kube::runtime::reflector::Store<kaas_api::Cluster>,
    /// Writes made recently that a reconcile may skip while what it would write is unchanged.
    pub written: Arc<Written>,
    /// Digests of settled clusters' last full passes ([`settled`]): a repeat reconcile with the
    /// same inputs sends no request.
    pub settled: Arc<Written>,
    /// Requeue of a settled cluster.
    pub settled_requeue: std::time::Duration,
    /// Changes of each namespace's RoleBindings, part of its settled clusters' digests.
    pub namespaces: Arc<settled::Epochs>,
    /// The answers of the operator's own writes whose watch events trigger no reconcile.
    pub echoes: Arc<echoes::Echoes>,
    /// The Cluster API backend's cache of owned Cluster API Clusters and of what it last applied
    /// and read ([`backend::capi::CapiCache`]).
    pub capi: Arc<backend::capi::CapiCache>,
    /// The ConfigMap with current release and CVE data for the compliance checks (`None`: the
    /// bundled data only).
    pub release_data: Option<compliance::ReleaseDataSource>,
    /// The leader lease's write fence (with leader election): the clients kaas builds for
    /// workload clusters pass it too.
    pub fence: Option<leader::Fence>,
}

/// Whether a watch's cache may be used: not while its last error is recent. kube's watcher
/// reports an error at every failed attempt (at most every 2 s with the operator's backoff) but
/// nothing when it reconnects, so a cache is usable again [`WatchHealth::QUIET`] after the last
/// error — or at once when an event shows the watch delivering.
#[derive(Debug, Default)]
pub struct WatchHealth {
    last_error: std::sync::Mutex<Option<std::time::Instant>>,
}

impl WatchHealth {
    /// How long after its last error a watch's cache is not used.
    pub const QUIET: std::time::Duration = std::time::Duration::from_secs(10);

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch failed.
    pub fn failed(&self) {
        *self.lock() = Some(std::time::Instant::now());
    }

    /// The watch delivered (a change, or the end of a list).
    pub fn delivered(&self) {
        *self.lock() = None;
    }

    /// Takes one item of a watch stream: an error, or an event that shows the watch delivering.
    pub fn observe<K, E>(&self, item: &Result<kube::runtime::watcher::Event<K>, E>) {
        use kube::runtime::watcher::Event;
        match item {
            Err(_) => self.failed(),
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_)) => self.delivered(),
            Ok(Event::Init | Event::InitApply(_)) => {}
        }
    }

    /// Whether the cache may be used.
    pub fn usable(&self) -> bool {
        self.lock().is_none_or(|at| at.elapsed() >= Self::QUIET)
    }
}

/// Recent idempotent writes by key (e.g. `Namespace/<name>`) with a hash of what was written.
/// A reconcile skips a write whose object it wrote identically less than `ttl` ago — mostly the
/// second and third reconcile of a new cluster, which would repeat the first one's writes — and
/// forgets the entry when a later write that depends on it fails. After `ttl` everything is
/// written again, which also repairs what someone else changed or deleted meanwhile.
#[derive(Debug)]
pub struct Written {
    ttl: std::time::Duration,
    seen: std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// Bumped by [`Written::clear`]: a record made by work that started before is dropped
    /// ([`Written::record_since`]).
    epoch: std::sync::atomic::AtomicU64,
}

impl Default for Written {
    fn default() -> Self {
        Written::new(std::time::Duration::from_secs(60))
    }
}

impl Written {
    /// Remembers writes for `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Written {
            ttl,
            seen: Default::default(),
            epoch: Default::default(),
        }
    }

    /// A hash of what is written (its JSON form).
    pub fn hash_of(value: &impl serde::Serialize) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(value)
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    }

    /// Whether `key` was written as `hash` less than `ttl` ago.
    pub fn fresh(&self, key: &str, hash: u64) -> bool {
        self.fresh_for(key, hash, self.ttl)
    }

    /// Whether `key` was written as `hash` less than `ttl` ago — another period than the
    /// default one, for a state only kaas could change (such an entry may still be swept after
    /// the default period when the map is full).
    pub fn fresh_for(&self, key: &str, hash: u64, ttl: std::time::Duration) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(key) {
            Some((h, at)) if *h == hash && at.elapsed() < ttl => true,
            Some(_) => {
                seen.remove(key);
                false
            }
            None => false,
        }
    }

    /// Records a successful write.
    pub fn record(&self, key: impl Into<String>, hash: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: expired entries go when the map grows past what 10,000 clusters need.
        if seen.len() > 50_000 {
            let ttl = self.ttl;
            seen.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        seen.insert(key.into(), (hash, std::time::Instant::now()));
    }

    /// Forgets `key` (the next reconcile writes it).
    pub fn forget(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Forgets every key, also what work in flight would record ([`Written::record_since`]).
    pub fn clear(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        seen.clear();
    }

    /// The current epoch, to pass to [`Written::record_since`] by work that may take a while.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records `key` as `hash` unless everything was cleared since `epoch` (what the work read
    /// may be outdated); returns whether it recorded.
    pub fn record_since(&self, key: impl Into<String>, hash: u64, epoch: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch() != epoch {
            return false;
        }
        seen.insert(key.into(), (hash, std::time::Instant::now()));
        true
    }
}

impl Context {
    /// Whether this instance handles clusters of `provider`.
    pub fn handles(&self, provider: &str) -> bool {
        self.providers.is_empty() || self.providers.contains(provider)
    }

    /// The cached SCS Clusters for which `keep` holds — `None` until the cache has been filled by
    /// its first list: an unfilled cache is empty, and "no Cluster exists" would make every
    /// provider-side object an orphan.
    pub fn cached_clusters(
        &self,
        keep: impl Fn(&kaas_api::Cluster) -> bool,
    ) -> Option<Vec<Arc<kaas_api::Cluster>>> {
        filled(&self.clusters, keep)
    }
}

/// The objects of a reflector's `store` for which `keep` holds — `None` until its first list
/// has filled it (never waits).
pub fn filled<K>(
    store: &kube::runtime::reflector::Store<K>,
    keep: impl Fn(&K) -> bool,
) -> Option<Vec<Arc<K>>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    is_filled(store).then(|| store.state_filter(keep))
}

/// Whether a reflector's `store` has been filled by its first list (never waits).
pub fn is_filled<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::Written;
    use std::time::Duration;

    #[test]
    fn a_write_is_skipped_only_while_identical_and_recent() {
        let w = Written::new(Duration::from_millis(200));
        let a = Written::hash_of(&serde_json::json!({"labels": {"a": "1"}}));
        let b = Written::hash_of(&serde_json::json!({"labels": {"a": "2"}}));
        assert!(!w.fresh("Namespace/x", a), "never written");
        w.record("Namespace/x", a);
        assert!(w.fresh("Namespace/x", a));
        assert!(!w.fresh("Namespace/x", b), "changed");
        w.record("Namespace/x", a);
        w.forget("Namespace/x");
        assert!(!w.fresh("Namespace/x", a), "forgotten");
        w.record("Namespace/x", a);
        std::thread::sleep(Duration::from_millis(250));
        assert!(!w.fresh("Namespace/x", a), "expired");
    }

    #[test]
    fn an_entry_may_be_trusted_for_another_period() {
        let w = Written::new(Duration::from_millis(100));
        let none = Written::hash_of(&None::<u8>);
        w.record("Autoscaler/x", none);
        std::thread::sleep(Duration::from_millis(150));
        assert!(w.fresh_for("Autoscaler/x", none, Duration::from_secs(60)));
        assert!(!w.fresh_for(
            "Autoscaler/x",
            Written::hash_of(&Some(1)),
            Duration::from_secs(60)
        ));
        w.record("Autoscaler/x", none);
        std::thread::sleep(Duration::from_millis(150));
        assert!(!w.fresh("Autoscaler/x", none), "the default period is over");
    }

    #[test]
    fn a_watch_cache_is_unused_for_a_while_after_an_error_or_until_the_watch_delivers() {
        use kube::runtime::watcher::Event;
        let h = super::WatchHealth::default();
        assert!(h.usable());
        h.observe::<k8s_openapi::api::core::v1::Namespace, _>(&Err(()));
        assert!(!h.usable());
        h.observe::<k8s_openapi::api::core::v1::Namespace, ()>(&Ok(Event::Init));
        assert!(!h.usable(), "a relist under way shows nothing yet");
        h.observe::<k8s_openapi::api::core::v1::Namespace, ()>(&Ok(Event::InitDone));
        assert!(h.usable());
        h.failed();
        *h.lock() = Some(std::time::Instant::now() - super::WatchHealth::QUIET);
        assert!(h.usable(), "quiet since the last error: reconnected");
    }

    #[test]
    fn work_that_started_before_a_clear_records_nothing() {
        let w = Written::new(Duration::from_secs(60));
        let before = w.epoch();
        w.clear();
        assert!(!w.record_since("Settled/t/a", 1, before), "started before");
        assert!(!w.fresh("Settled/t/a", 1));
        let now = w.epoch();
        assert!(w.record_since("Settled/t/a", 1, now));
        assert!(w.fresh("Settled/t/a", 1));
        w.clear();
        assert!(!w.fresh("Settled/t/a", 1));
        assert!(!w.record_since("Settled/t/a", 1, now));
    }
}
