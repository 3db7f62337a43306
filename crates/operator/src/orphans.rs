//! Garbage collection of provider-side objects whose SCS `Cluster` is gone.
//!
//! Normally the operator's finalizer keeps an SCS `Cluster` until its provider-side objects are
//! deleted, and tenants cannot remove it (admission policy `kaas_api::policy::finalizer_protection`).
//! Whatever still ends up owner-less — a finalizer removed by an admin, a policy not installed,
//! an operator bug — is collected here, so no Cluster API cluster keeps running unaccounted for:
//!
//! - Cluster API `Cluster`s and `HostedControlPlane`s labelled [`LABEL_CLUSTER`] +
//!   [`LABEL_TENANT`] whose SCS `Cluster` `<tenant>/<cluster>` does not exist, unless adopted
//!   ([`ANNOTATION_ADOPTED_BY`]: a provider admin's cluster; removing that annotation is how a
//!   provider takes a cluster back, so kaas never deletes it on its own);
//! - provider-side namespaces (labelled [`LABEL_TENANT`], [`LABEL_PROVIDER`] and managed by kaas)
//!   without any Cluster API `Cluster` or `HostedControlPlane` left in them, whose tenant has no
//!   SCS `Cluster` of that provider.
//!
//! An object is deleted only after it was seen orphaned, continuously, for the grace period
//! ([`GRACE_ENV`], default [`DEFAULT_GRACE`]) and is at least that old, and only after a last
//! direct read of its SCS Cluster. Which SCS Clusters exist comes from the controller's cache of
//! them ([`Context::clusters`]); no sweep runs before that cache is filled ([`survey`]). Each
//! deletion counts in the metric `kaas_operator_orphans_collected_total{kind,provider}` and is
//! reported by a Warning event (reason [`REASON`]) on the `Provider`. The loop runs in the
//! leading instance, for the providers this instance handles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::jiff::Timestamp;
use kaas_api::{ANNOTATION_ADOPTED_BY, Cluster, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_render::{LABEL_CLUSTER, LABEL_PROVIDER, LABEL_TENANT};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::Context;
use crate::backend::capi::CapiCache;

/// Environment variable: the grace period in seconds.
pub const GRACE_ENV: &str = "KAAS_ORPHAN_GRACE_SECONDS";
/// Grace period when [`GRACE_ENV`] is not set.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(600);
/// Reason of the Warning event on the Provider.
pub const REASON: &str = "OrphanCollected";
/// Label kaas puts on the provider-side namespaces it creates.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kaas");
/// The label selector of the provider-side namespaces kaas creates (tenant, provider and
/// `app.kubernetes.io/managed-by=kaas`).
pub const NAMESPACE_SELECTOR: &str =
    "scs.community/tenant,scs.community/provider,app.kubernetes.io/managed-by=kaas";

/// The grace period: [`GRACE_ENV`] (seconds) or [`DEFAULT_GRACE`].
pub fn grace() -> Duration {
    std::env::var(GRACE_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_GRACE)
}

/// Kinds of provider-side objects the collector deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A Cluster API `Cluster` (Cluster API deletes everything below it).
    Cluster,
    /// A `HostedControlPlane` (scs.community, the hosted backend).
    HostedControlPlane,
    /// A provider-side namespace `kaas-<provider>-<tenant>-<hash>`.
    Namespace,
}

impl Kind {
    /// The metric label and the word in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::HostedControlPlane => "HostedControlPlane",
            Kind::Namespace => "Namespace",
        }
    }
}

/// A provider-side object as the collector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// What it is.
    pub kind: Kind,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it carries [`ANNOTATION_ADOPTED_BY`].
    pub adopted: bool,
    /// Whether it is being deleted already.
    pub deleting: bool,
    /// Its creation time.
    pub created: Option<Timestamp>,
}

impl Found {
    fn from_meta(kind: Kind, meta: &ObjectMeta) -> Self {
        Found {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            adopted: meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANNOTATION_ADOPTED_BY)),
            deleting: meta.deletion_timestamp.is_some(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// `Namespace <name>` or `<Kind> <namespace>/<name>`, for events and logs.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Namespace => format!("Namespace {}", self.name),
            Kind::Cluster => format!("Cluster API Cluster {}/{}", self.namespace, self.name),
            Kind::HostedControlPlane => {
                format!("HostedControlPlane {}/{}", self.namespace, self.name)
            }
        }
    }
}

/// An SCS Cluster that exists: tenant namespace, name, provider it names (if any).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Live {
    /// Tenant namespace.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// `spec.provider.name`, if set.
    pub provider: Option<String>,
}

/// An object to collect (pure result of [`select`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The object.
    pub object: Found,
    /// Its provider (label [`LABEL_PROVIDER`]); empty when unlabelled.
    pub provider: String,
    /// Why it is an orphan, for the event.
    pub why: String,
}

/// Which of `objects` are orphans, pure. `live` are the SCS Clusters that exist; `handles`
/// says whether this instance handles a provider. Objects being deleted, adopted ones and those
/// of other providers' instances are never selected; a namespace only when no Cluster API
/// `Cluster` or `HostedControlPlane` of `objects` is in it.
pub fn select(objects: &[Found], live: &[Live], handles: impl Fn(&str) -> bool) -> Vec<Orphan> {
    let clusters: BTreeSet<(&str, &str)> = live
        .iter()
        .map(|l| (l.tenant.as_str(), l.name.as_str()))
        .collect();
    let occupied: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind != Kind::Namespace)
        .map(|o| o.namespace.as_str())
        .collect();
    let mut out = Vec::new();
    for o in objects {
        if o.deleting || o.adopted {
            continue;
        }
        let provider = o.label(LABEL_PROVIDER).unwrap_or_default();
        if !handles(provider) {
            continue;
        }
        let Some(tenant) = o.label(LABEL_TENANT) else {
            continue;
        };
        match o.kind {
            Kind::Cluster | Kind::HostedControlPlane => {
                let Some(cluster) = o.label(LABEL_CLUSTER) else {
                    continue;
                };
                if !clusters.contains(&(tenant, cluster)) {
                    out.push(Orphan {
                        object: o.clone(),
                        provider: provider.to_string(),
                        why: format!("its SCS Cluster {tenant}/{cluster} no longer exists"),
                    });
                }
            }
            Kind::Namespace => {
                if provider.is_empty()
                    || o.label(MANAGED_BY.0) != Some(MANAGED_BY.1)
                    || occupied.contains(o.name.as_str())
                {
                    continue;
                }
                // Conservative: a Cluster naming no provider may land on any.
                let used = live.iter().any(|l| {
                    l.tenant == tenant && l.provider.as_deref().is_none_or(|p| p == provider)
                });
                if !used {
                    out.push(Orphan {
                        object: o.clone(),
                        provider: provider.to_string(),
                        why: format!(
                            "tenant {tenant} has no SCS Cluster of provider {provider} and nothing is left in it"
                        ),
                    });
                }
            }
        }
    }
    out
}

/// `HostedControlPlane` (scs.community/v1alpha1), untyped: the collector works whether or not
/// its CRD is installed.
fn hosted_resource() -> ApiResource {
    ApiResource {
        group: kaas_api::GROUP.into(),
        version: kaas_api::VERSION.into(),
        api_version: format!("{}/{}", kaas_api::GROUP, kaas_api::VERSION),
        kind: "HostedControlPlane".into(),
        plural: "hostedcontrolplanes".into(),
    }
}

/// Cluster API Clusters and `HostedControlPlane`s: 404 (the CRD is not installed — a provider
/// may run only hosted control planes, or only Cluster API) reads as "none"; so does 403 (a role
/// without them), logged, so the other kinds are still collected.
fn none_if_missing<T>(what: &str, r: Result<Vec<T>, kube::Error>) -> Result<Vec<T>, kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            warn!(error = %e.message, "cannot list {what}; not collecting them");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Only 404 (the CRD is not installed) reads as "none": before a namespace is deleted, anything
/// else — a 403 included — keeps it (Clusters may still be finalising there).
fn none_if_not_installed<T>(r: Result<Vec<T>, kube::Error>) -> Result<Vec<T>, kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
        other => other,
    }
}

/// Runs the collector until `shutdown` resolves: one sweep every third of the grace period
/// (1 s to 1 min).
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    let grace = grace();
    let every = (grace / 3).clamp(Duration::from_secs(1), Duration::from_secs(60));
    info!(grace = ?grace, "orphan collector running");
    let mut seen: BTreeMap<(Kind, String, String), Instant> = BTreeMap::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = sweep(&ctx, grace, &mut seen).await {
            warn!(error = %e, "orphan collection failed; retrying");
        }
    }
}

/// What one sweep looks at: the SCS Clusters that exist and the provider-side objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survey {
    /// The SCS Clusters that exist.
    pub live: Vec<Live>,
    /// The provider-side objects kaas labelled.
    pub objects: Vec<Found>,
}

/// Reads what a sweep looks at, without listing every SCS Cluster (issue #15: at 10,000 clusters
/// a LIST of every full object a minute): they come from the controller's cache `clusters`, and
/// only once its first list has filled it — before, it is empty and every provider-side object
/// would look orphaned, so then `None`, without any request. The Cluster API Clusters come from
/// `capi`'s cache when it is filled, else from a LIST, and so do the namespaces (else a
/// metadata-only LIST); `HostedControlPlane`s from a metadata-only LIST (only their metadata is
/// looked at).
pub async fn survey(
    client: &Client,
    clusters: &Store<Cluster>,
    capi: &CapiCache,
) -> Result<Option<Survey>, kube::Error> {
    let Some(clusters) = crate::filled(clusters, |_| true) else {
        return Ok(None);
    };
    let live: Vec<Live> = clusters
        .iter()
        .map(|c| Live {
            tenant: c.namespace().unwrap_or_default(),
            name: c.name_any(),
            provider: c.spec.provider.as_ref().and_then(|p| p.name.clone()),
        })
        .collect();
    drop(clusters);
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER},{LABEL_TENANT}"));
    // The cache holds every Cluster API Cluster labelled LABEL_CLUSTER; the LIST's selector
    // asks LABEL_TENANT too.
    let cached = capi
        .owned_where(|c| c.labels().contains_key(LABEL_TENANT))
        .await;
    let mut objects: Vec<Found> = match cached {
        Some(cached) => cached
            .iter()
            .map(|c| Found::from_meta(Kind::Cluster, &c.metadata))
            .collect(),
        None => none_if_missing(
            "Cluster API Clusters",
            Api::<CapiCluster>::all(client.clone())
                .list(&selector)
                .await
                .map(|l| l.items),
        )?
        .iter()
        .map(|c| Found::from_meta(Kind::Cluster, &c.metadata))
        .collect(),
    };
    let hosted: Api<DynamicObject> = Api::all_with(client.clone(), &hosted_resource());
    objects.extend(
        none_if_missing(
            "HostedControlPlanes",
            hosted.list_metadata(&selector).await.map(|l| l.items),
        )?
        .iter()
        .map(|h| Found::from_meta(Kind::HostedControlPlane, &h.metadata)),
    );
    match capi.provider_namespaces() {
        Some(cached) => objects.extend(
            cached
                .iter()
                .map(|n| Found::from_meta(Kind::Namespace, &n.metadata)),
        ),
        None => objects.extend(
            Api::<Namespace>::all(client.clone())
                .list_metadata(&ListParams::default().labels(NAMESPACE_SELECTOR))
                .await?
                .items
                .iter()
                .map(|n| Found::from_meta(Kind::Namespace, &n.metadata)),
        ),
    }
    Ok(Some(Survey { live, objects }))
}

/// One pass: survey, select, delete what has been orphaned for `grace`. Skipped while the SCS
/// Cluster cache is not filled ([`survey`]).
pub async fn sweep(
    ctx: &Context,
    grace: Duration,
    seen: &mut BTreeMap<(Kind, String, String), Instant>,
) -> Result<(), kube::Error> {
    let Some(Survey { live, objects }) = survey(&ctx.client, &ctx.clusters, &ctx.capi).await?
    else {
        info!("the SCS Cluster cache is not filled yet; orphan collection skipped this time");
        return Ok(());
    };
    let orphans = select(&objects, &live, |p| ctx.handles(p));
    let now = Instant::now();
    let current: BTreeSet<(Kind, String, String)> = orphans
        .iter()
        .map(|o| {
            (
                o.object.kind,
                o.object.namespace.clone(),
                o.object.name.clone(),
            )
        })
        .collect();
    seen.retain(|k, _| current.contains(k));
    let ts = Timestamp::now();
    for o in orphans {
        let key = (
            o.object.kind,
            o.object.namespace.clone(),
            o.object.name.clone(),
        );
        let since = *seen.entry(key.clone()).or_insert(now);
        let age = o
            .object
            .created
            .and_then(|c| ts.duration_since(c).try_into().ok())
            .unwrap_or(Duration::ZERO);
        if now.duration_since(since) < grace || age < grace {
            continue;
        }
        match collect(ctx, &o).await {
            Ok(true) => {
                seen.remove(&key);
                ctx.metrics
                    .orphan_collected(o.object.kind.as_str(), &o.provider);
                report(ctx, &o).await;
            }
            Ok(false) => {
                seen.remove(&key);
            }
            Err(e) => warn!(object = %o.object.describe(), error = %e, "cannot delete orphan"),
        }
    }
    Ok(())
}

/// Deletes one orphan after a last direct check; `false` when it turned out not to be one.
async fn collect(ctx: &Context, o: &Orphan) -> Result<bool, kube::Error> {
    let client = &ctx.client;
    let tenant = o.object.label(LABEL_TENANT).unwrap_or_default();
    let bg = DeleteParams::background();
    match o.object.kind {
        Kind::Cluster | Kind::HostedControlPlane => {
            let cluster = o.object.label(LABEL_CLUSTER).unwrap_or_default();
            if Api::<Cluster>::namespaced(client.clone(), tenant)
                .get_opt(cluster)
                .await?
                .is_some()
            {
                return Ok(false);
            }
            let ns = &o.object.namespace;
            let r = if o.object.kind == Kind::Cluster {
                Api::<CapiCluster>::namespaced(client.clone(), ns)
                    .delete(&o.object.name, &bg)
                    .await
                    .map(|_| ())
            } else {
                Api::<DynamicObject>::namespaced_with(client.clone(), ns, &hosted_resource())
                    .delete(&o.object.name, &bg)
                    .await
                    .map(|_| ())
            };
            match r {
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
                other => other.map(|_| true),
            }
        }
        Kind::Namespace => {
            // Anything there at all (not only what kaas labelled) keeps the namespace.
            let ns = &o.object.name;
            // Only "not installed" (404) reads as none here: a namespace is deleted only when
            // nothing can be in it — a 403 must keep it (Clusters may still be finalising).
            let capi = none_if_not_installed(
                Api::<CapiCluster>::namespaced(client.clone(), ns)
                    .list_metadata(&ListParams::default().limit(1))
                    .await
                    .map(|l| l.items),
            )?;
            let hosted = none_if_not_installed(
                Api::<DynamicObject>::namespaced_with(client.clone(), ns, &hosted_resource())
                    .list_metadata(&ListParams::default().limit(1))
                    .await
                    .map(|l| l.items),
            )?;
            let used = Api::<Cluster>::namespaced(client.clone(), tenant)
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|c| {
                    c.spec
                        .provider
                        .as_ref()
                        .and_then(|p| p.name.as_deref())
                        .is_none_or(|p| p == o.provider)
                });
            if !capi.is_empty() || !hosted.is_empty() || used {
                return Ok(false);
            }
            match Api::<Namespace>::all(client.clone()).delete(ns, &bg).await {
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
                other => other.map(|_| true),
            }
        }
    }
}

/// The Warning event on the Provider (and a log line).
async fn report(ctx: &Context, o: &Orphan) {
    let what = o.object.describe();
    warn!(object = %what, provider = %o.provider, why = %o.why, "orphan collected");
    if o.provider.is_empty() {
        return;
    }
    let reference = match Api::<Provider>::all(ctx.client.clone())
        .get_opt(&o.provider)
        .await
    {
        Ok(Some(p)) => p.object_ref(&()),
        _ => ObjectReference {
            api_version: Some(Provider::api_version(&()).into_owned()),
            kind: Some(Provider::kind(&()).into_owned()),
            name: Some(o.provider.clone()),
            ..Default::default()
        },
    };
    // The collected object as `related`: events of one kind on one Provider are otherwise
    // aggregated into one series (with the first note).
    let related = ObjectReference {
        api_version: Some(match o.object.kind {
            Kind::Cluster => CapiCluster::api_version(&()).into_owned(),
            Kind::HostedControlPlane => hosted_resource().api_version,
            Kind::Namespace => "v1".into(),
        }),
        kind: Some(o.object.kind.as_str().into()),
        namespace: (o.object.kind != Kind::Namespace).then(|| o.object.namespace.clone()),
        name: Some(o.object.name.clone()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: REASON.into(),
        note: Some(format!("{what} deleted: {}", o.why)),
        action: "CollectOrphan".into(),
        secondary: Some(related),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        warn!(error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: Kind, ns: &str, name: &str, labels: &[(&str, &str)]) -> Found {
        Found {
            kind,
            namespace: ns.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            adopted: false,
            deleting: false,
            created: None,
        }
    }

    fn capi(ns: &str, tenant: &str, cluster: &str) -> Found {
        found(
            Kind::Cluster,
            ns,
            cluster,
            &[
                (LABEL_CLUSTER, cluster),
                (LABEL_TENANT, tenant),
                (LABEL_PROVIDER, "dev"),
            ],
        )
    }

    fn ns(name: &str, tenant: &str) -> Found {
        found(
            Kind::Namespace,
            "",
            name,
            &[
                (LABEL_TENANT, tenant),
                (LABEL_PROVIDER, "dev"),
                (MANAGED_BY.0, MANAGED_BY.1),
            ],
        )
    }

    fn live(tenant: &str, name: &str, provider: Option<&str>) -> Live {
        Live {
            tenant: tenant.into(),
            name: name.into(),
            provider: provider.map(Into::into),
        }
    }

    fn names(o: &[Orphan]) -> Vec<String> {
        o.iter().map(|o| o.object.describe()).collect()
    }

    #[test]
    fn only_owner_less_unadopted_objects_of_handled_providers_are_selected() {
        let mut adopted = capi("legacy", "t", "gone");
        adopted.adopted = true;
        let mut deleting = capi("kaas-dev-t", "t", "leaving");
        deleting.deleting = true;
        let mut hosted = capi("kaas-dev-t", "t", "h");
        hosted.kind = Kind::HostedControlPlane;
        let objects = vec![
            capi("kaas-dev-t", "t", "alive"),
            capi("kaas-dev-t", "t", "ghost"),
            adopted,
            deleting,
            hosted,
            found(Kind::Cluster, "x", "unlabelled", &[]),
        ];
        let l = [live("t", "alive", Some("dev"))];
        let got = select(&objects, &l, |_| true);
        assert_eq!(
            names(&got),
            [
                "Cluster API Cluster kaas-dev-t/ghost",
                "HostedControlPlane kaas-dev-t/h"
            ]
        );
        assert!(got[0].why.contains("t/ghost"), "{}", got[0].why);
        assert!(select(&objects, &l, |p| p != "dev").is_empty());
        // The same name in another tenant is another cluster.
        assert_eq!(
            names(&select(&[capi("kaas-dev-u", "u", "alive")], &l, |_| true)),
            ["Cluster API Cluster kaas-dev-u/alive"]
        );
    }

    /// An API server that answers the sweep's LISTs and records every request it gets
    /// (`METHOD path?query [metadata]`).
    #[derive(Clone, Default)]
    struct Fake(Arc<std::sync::Mutex<Vec<String>>>);

    impl Fake {
        fn sent(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        /// A client whose requests this fake answers and records.
        fn client(&self) -> Client {
            let log = self.0.clone();
            crate::fake_api::client(move |req| {
                let metadata = req
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|a| a.to_str().ok())
                    .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
                let path = req.uri().path().to_string();
                log.lock().unwrap().push(format!(
                    "{} {}{}",
                    req.method(),
                    req.uri(),
                    if metadata { " [metadata]" } else { "" }
                ));
                let (status, body) = if path == "/apis/cluster.x-k8s.io/v1beta2/clusters" {
                    let item = |name: &str| {
                        serde_json::json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                                "metadata": {"name": name, "namespace": "kaas-dev-t",
                                    "labels": labels("t", name)},
                                "spec": {}})
                    };
                    let list = serde_json::json!({"apiVersion": "cluster.x-k8s.io/v1beta2",
                            "kind": "ClusterList", "metadata": {},
                            "items": [item("alive"), item("ghost")]});
                    (200, list)
                } else if path == "/api/v1/namespaces" && metadata {
                    let mut l = labels("u", "");
                    l.as_object_mut().unwrap().remove(LABEL_CLUSTER);
                    l[MANAGED_BY.0] = MANAGED_BY.1.into();
                    let list = serde_json::json!({"apiVersion": "meta.k8s.io/v1",
                            "kind": "PartialObjectMetadataList", "metadata": {},
                            "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                "metadata": {"name": "kaas-dev-u", "labels": l}}]});
                    (200, list)
                } else {
                    // HostedControlPlanes are not installed; nothing else is expected.
                    let (code, reason) = if path.ends_with("/hostedcontrolplanes") {
                        (404, "NotFound")
                    } else {
                        (500, "InternalError")
                    };
                    let st = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": reason, "code": code});
                    (code, st)
                };
                (status, body.to_string())
            })
        }
    }

    fn labels(tenant: &str, cluster: &str) -> serde_json::Value {
        serde_json::json!({
            LABEL_CLUSTER: cluster,
            LABEL_TENANT: tenant,
            LABEL_PROVIDER: "dev",
        })
    }

    fn scs(tenant: &str, name: &str) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": tenant},
            "spec": {"provider": {"name": "dev"}}
        }))
        .unwrap()
    }

    fn capi_object(name: &str, labels: &[(&str, &str)]) -> CapiCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": "kaas-dev-t",
                "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()},
            "spec": {}
        }))
        .unwrap()
    }

    /// A filled reflector store holding `objects`.
    use crate::fake_api::filled;

    #[tokio::test]
    async fn nothing_is_surveyed_before_the_cluster_cache_is_filled() {
        let fake = Fake::default();
        let client = fake.client();
        let capi = CapiCache::new(None);
        // Not filled: no list has begun, or the first one is still under way (its clusters are
        // not in the store yet), or the watch ended before it was filled.
        let (clusters, mut writer) = kube::runtime::reflector::store::<Cluster>();
        assert_eq!(survey(&client, &clusters, &capi).await.unwrap(), None);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitApply(scs("t", "a")));
        assert_eq!(survey(&client, &clusters, &capi).await.unwrap(), None);
        drop(writer);
        assert_eq!(survey(&client, &clusters, &capi).await.unwrap(), None);
        // No request at all: `sweep` returns at once, before it selects or deletes anything.
        assert!(fake.sent().is_empty(), "{:?}", fake.sent());
    }

    fn context(client: Client, clusters: Store<Cluster>) -> Context {
        crate::fake_api::context(client, clusters, CapiCache::new(None))
    }

    #[tokio::test]
    async fn a_sweep_before_the_cluster_cache_is_filled_deletes_nothing() {
        use kube::runtime::watcher::Event;
        let fake = Fake::default();
        let (clusters, mut writer) = kube::runtime::reflector::store::<Cluster>();
        let ctx = context(fake.client(), clusters);
        // Everything the API server would show has been "orphaned" for an hour, with no grace.
        let long_ago = Instant::now() - Duration::from_secs(3600);
        let mut seen: BTreeMap<_, _> = [
            (Kind::Cluster, "kaas-dev-t", "ghost"),
            (Kind::Cluster, "kaas-dev-t", "alive"),
            (Kind::Namespace, "", "kaas-dev-u"),
        ]
        .into_iter()
        .map(|(k, ns, n)| ((k, ns.to_string(), n.to_string()), long_ago))
        .collect();
        let before = seen.clone();
        sweep(&ctx, Duration::ZERO, &mut seen).await.unwrap();
        // The first list under way: still skipped.
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(scs("t", "alive")));
        sweep(&ctx, Duration::ZERO, &mut seen).await.unwrap();
        assert!(fake.sent().is_empty(), "{:?}", fake.sent());
        assert_eq!(seen, before);

        // Filled: the sweep goes on to delete the orphans, each after a direct read of its SCS
        // Cluster (the fake fails those reads, so nothing is deleted here either).
        writer.apply_watcher_event(&Event::InitDone);
        sweep(&ctx, Duration::ZERO, &mut seen).await.unwrap();
        let sent = fake.sent();
        assert!(
            sent.contains(&"GET /apis/scs.community/v1alpha1/namespaces/t/clusters/ghost".into()),
            "{sent:?}"
        );
        assert!(!sent.iter().any(|r| r.starts_with("DELETE")), "{sent:?}");
        assert!(!seen.contains_key(&(Kind::Cluster, "kaas-dev-t".into(), "alive".into())));
    }

    #[tokio::test]
    async fn a_filled_cache_replaces_the_lists_of_every_cluster() {
        let clusters = filled(&[scs("t", "alive")]);
        // Cluster API not watched: its Clusters are listed, the rest as metadata only; the SCS
        // Clusters are never listed.
        let fake = Fake::default();
        let client = fake.client();
        let got = survey(&client, &clusters, &CapiCache::new(None))
            .await
            .unwrap()
            .expect("filled");
        assert_eq!(got.live, [live("t", "alive", Some("dev"))]);
        let orphans = names(&select(&got.objects, &got.live, |_| true));
        assert_eq!(
            orphans,
            [
                "Cluster API Cluster kaas-dev-t/ghost",
                "Namespace kaas-dev-u"
            ]
        );
        let selector = "labelSelector=scs.community%2Fcluster%2Cscs.community%2Ftenant";
        let ns_selector = "labelSelector=scs.community%2Ftenant%2Cscs.community%2Fprovider\
                           %2Capp.kubernetes.io%2Fmanaged-by%3Dkaas";
        assert_eq!(
            fake.sent(),
            [
                format!("GET /apis/cluster.x-k8s.io/v1beta2/clusters?&{selector}"),
                format!(
                    "GET /apis/scs.community/v1alpha1/hostedcontrolplanes?&{selector} [metadata]"
                ),
                format!("GET /api/v1/namespaces?&{ns_selector} [metadata]"),
            ]
        );

        // Cluster API watched: its Clusters come from that cache, those with a tenant label only
        // (as the LIST's selector).
        let fake = Fake::default();
        let client = fake.client();
        let labels = |name| {
            [
                (LABEL_CLUSTER, name),
                (LABEL_TENANT, "t"),
                (LABEL_PROVIDER, "dev"),
            ]
        };
        let capi = CapiCache::new(Some(filled(&[
            capi_object("alive", &labels("alive")),
            capi_object("gone", &labels("gone")),
            capi_object("untenanted", &[(LABEL_CLUSTER, "x")]),
        ])));
        let got = survey(&client, &clusters, &capi)
            .await
            .unwrap()
            .expect("filled");
        assert_eq!(
            names(&select(&got.objects, &got.live, |_| true)),
            [
                "Cluster API Cluster kaas-dev-t/gone",
                "Namespace kaas-dev-u"
            ]
        );
        assert_eq!(got.objects.len(), 3, "{:?}", got.objects);
        assert!(
            fake.sent().iter().all(|r| r.ends_with("[metadata]")),
            "{:?}",
            fake.sent()
        );
        assert_eq!(fake.sent().len(), 2, "{:?}", fake.sent());
    }

    #[test]
    fn the_namespace_selector_names_the_labels_kaas_puts_on_provider_side_namespaces() {
        assert_eq!(
            NAMESPACE_SELECTOR,
            format!(
                "{LABEL_TENANT},{LABEL_PROVIDER},{}={}",
                MANAGED_BY.0, MANAGED_BY.1
            )
        );
        let rendered = kaas_render::namespace_labels("t", "dev");
        for key in [LABEL_TENANT, LABEL_PROVIDER, MANAGED_BY.0] {
            assert!(rendered.contains_key(key), "{key}");
        }
        assert_eq!(
            rendered.get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
    }

    #[test]
    fn a_namespace_goes_only_when_empty_and_unused() {
        let objects = vec![
            ns("kaas-dev-t", "t"),
            ns("kaas-dev-u", "u"),
            ns("kaas-dev-v", "v"),
        ];
        let mut with_cluster = objects.clone();
        with_cluster.push(capi("kaas-dev-u", "u", "ghost"));
        // t has a cluster of dev, v one naming no provider (it may land on dev): both kept.
        let l = [live("t", "a", Some("dev")), live("v", "b", None)];
        assert_eq!(
            names(&select(&objects, &l, |_| true)),
            ["Namespace kaas-dev-u"]
        );
        // u's namespace still holds a Cluster API Cluster: only that goes (first).
        assert_eq!(
            names(&select(&with_cluster, &l, |_| true)),
            ["Cluster API Cluster kaas-dev-u/ghost"]
        );
        // A cluster of another provider does not keep dev's namespace.
        assert_eq!(
            names(&select(
                &objects[..1],
                &[live("t", "a", Some("fra1"))],
                |_| true
            )),
            ["Namespace kaas-dev-t"]
        );
        // Not kaas' namespace (no managed-by): kept.
        let mut foreign = ns("kaas-dev-w", "w");
        foreign.labels.remove(MANAGED_BY.0);
        assert!(select(&[foreign], &[], |_| true).is_empty());
    }
}
