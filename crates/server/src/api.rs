//! The REST API under `/api/v1`. Handlers are thin: they act with the caller's client, validate
//! with `kaas-validate` before writing, and map Kubernetes answers to JSON errors. The routes are
//! registered from [`crate::openapi::OPERATIONS`], so what is documented is what is served.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kaas_api::{Cluster, Provider};
use kaas_validate::admission::{self, Providers};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult, FieldProblem};
use crate::openapi::OPERATIONS;
use crate::wait::{self, WaitFor};
use crate::{AppState, Caller};

/// Field manager of writes made through the API (on behalf of the caller).
pub const FIELD_MANAGER: &str = "kaas-api";
/// Default and maximum of `?timeout=` for waits.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Upper bound of `?timeout=`.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Routes of the API, registered from the operation table.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    let mut by_path: BTreeMap<&str, MethodRouter<AppState>> = BTreeMap::new();
    for op in OPERATIONS {
        let h = handler(op.id);
        let entry = by_path.remove(op.path);
        by_path.insert(op.path, entry.map_or(h.clone(), |m| m.merge(h)));
    }
    for (path, m) in by_path {
        r = r.route(path, m);
    }
    r.route("/healthz", get(|| async { "ok" }))
        .fallback(crate::edge::not_found)
}

fn handler(id: &str) -> MethodRouter<AppState> {
    match id {
        "getOpenApi" => get(openapi_doc),
        "whoAmI" => get(who_am_i),
        "listProviders" => get(list_providers),
        "getProvider" => get(get_provider),
        "listClusters" => get(list_clusters),
        "createCluster" => post(create_cluster),
        "getCluster" => get(get_cluster),
        "replaceCluster" => put(replace_cluster),
        "deleteCluster" => delete(delete_cluster),
        "scaleCluster" => post(scale_cluster),
        "upgradeCluster" => post(upgrade_cluster),
        "hibernateCluster" => post(hibernate_cluster),
        "wakeCluster" => post(wake_cluster),
        "getKubeconfig" => get(get_kubeconfig),
        "requestKubeconfig" => post(request_kubeconfig),
        "getDiagnostics" => get(get_diagnostics),
        "getCompliance" => get(get_compliance),
        "planCluster" => post(crate::plan::plan_cluster),
        other => panic!("operation {other} of the OpenAPI table has no handler"),
    }
}

async fn openapi_doc() -> Json<Value> {
    Json(crate::openapi::document())
}

// ---------------------------------------------------------------------------------------------
// Request and response bodies.

/// Who the caller is, as the management cluster's API server sees them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    /// User name.
    pub username: String,
    /// Groups.
    pub groups: Vec<String>,
    /// The tenant namespace, when it follows from the identity (service accounts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A list of clusters.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ClusterList {
    /// The clusters.
    pub items: Vec<Cluster>,
}

/// A list of provider offerings.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ProviderList {
    /// The offerings.
    pub items: Vec<Offering>,
}

/// Change a worker pool's size: either a fixed `count` or autoscaling bounds.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleRequest {
    /// Name of the worker pool.
    pub pool: String,
    /// Fixed number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Autoscaling lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<i32>,
    /// Autoscaling upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i32>,
}

/// Move the cluster to another Kubernetes version (one minor at a time).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// Target version, e.g. `1.36.x` (newest offered patch) or `1.36.3`.
    pub version: String,
}

/// Ask for a short-lived kubeconfig (a `KubeconfigRequest` in the caller's name).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRequestBody {
    /// Lifetime, e.g. `30m`, `1h`, `1h30m`; at most the provider's
    /// `spec.access.maxKubeconfigLifetime` (default 24h), a longer one is refused.
    pub expiration: String,
    /// `admin` (default; group `kaas:admins`, `cluster-admin`) or `viewer` (`kaas:viewers`, `view`).
    #[serde(default)]
    pub role: kaas_api::kubeconfig::KubeconfigRole,
}

/// The latest compliance report of a cluster.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// Summary from the cluster's status.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub summary: Option<Value>,
    /// The report files (`report.txt`, `report.json`, `scs.yaml`).
    pub files: BTreeMap<String, String>,
}

/// `?wait=&timeout=&dryRun=` of reads and writes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitQuery {
    /// `All`: a server-side dry run of a write (validated and admitted, not stored).
    pub dry_run: Option<String>,
    /// `Ready`, `Deleted`, or the type of any condition that must become True.
    pub wait: Option<String>,
    /// Seconds (`600`) or a duration (`600s`, `10m`); default 300 s, at most 3600 s.
    pub timeout: Option<String>,
}

impl WaitQuery {
    /// Whether a write is a dry run (`dryRun=All`, as in Kubernetes; anything else is refused).
    fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None => Ok(false),
            Some("All") => {
                if self.wait.as_deref().is_some_and(|w| !w.is_empty()) {
                    return Err(ApiError::bad_request(
                        "a dry run cannot wait: nothing is written",
                    ));
                }
                Ok(true)
            }
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun={other:?}: the only dry run is `All`"
            ))),
        }
    }

    fn parse(&self, default: Option<WaitFor>) -> ApiResult<Option<(WaitFor, Duration)>> {
        let what = match self.wait.as_deref() {
            None | Some("") => default,
            Some(w) => Some(WaitFor::parse(w).map_err(ApiError::bad_request)?),
        };
        let Some(what) = what else {
            if self.timeout.is_some() {
                return Err(ApiError::bad_request("`timeout` needs `wait`"));
            }
            return Ok(None);
        };
        let timeout = match &self.timeout {
            None => DEFAULT_WAIT,
            Some(t) => parse_duration(t).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "timeout {t:?} is not a duration (e.g. `600`, `600s`, `10m`)"
                ))
            })?,
        };
        if timeout > MAX_WAIT {
            return Err(ApiError::bad_request(format!(
                "timeout is at most {} s",
                MAX_WAIT.as_secs()
            )));
        }
        Ok(Some((what, timeout)))
    }
}

/// `600`, `600s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mult).map(Duration::from_secs)
}

// ---------------------------------------------------------------------------------------------
// Identity and offerings.

async fn who_am_i(caller: Caller) -> ApiResult<Json<WhoAmI>> {
    Ok(Json(whoami(&caller.client).await?))
}

/// Asks the API server who the client's credential belongs to (SelfSubjectReview).
pub(crate) async fn whoami(client: &Client) -> ApiResult<WhoAmI> {
    let review: SelfSubjectReview = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    let username = info.username.unwrap_or_default();
    let namespace = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns.to_string());
    Ok(WhoAmI {
        username,
        groups: info.groups.unwrap_or_default(),
        namespace,
    })
}

/// What a provider offers its customers: the discoverable part of a `Provider`. Backend details
/// (namespaces, stacks, ClusterClasses) and the credentials reference are the provider's business
/// and are left out.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Offering {
    /// Provider name (what `spec.provider.name` of a Cluster names).
    pub name: String,
    /// Name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Kind of infrastructure (e.g. `openstack`).
    pub provider_type: String,
    /// `ClusterAPI` (clusters are created) or `Static` (existing clusters are imported).
    pub backend: kaas_api::provider::BackendType,
    /// Regions and their zones.
    pub regions: Vec<kaas_api::provider::Region>,
    /// Machine flavors.
    pub flavors: Vec<kaas_api::provider::Flavor>,
    /// Kubernetes versions with their lifecycle (stack details removed).
    pub kubernetes_versions: Vec<OfferedVersion>,
    /// Extensions.
    pub extensions: Vec<kaas_api::provider::OfferedExtension>,
    /// Defaults applied where a Cluster says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<kaas_api::provider::ProviderDefaults>,
    /// Limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<kaas_api::provider::Limits>,
    /// The provider's status (default version, conditions), stack details removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OfferingStatus>,
}

/// The tenant-visible part of a provider's status.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingStatus {
    /// Version chosen for clusters that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,
    /// Conditions (`Ready`, `StackVerified`), messages without the provider's stack names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

/// An offered Kubernetes version.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedVersion {
    /// Exact version, e.g. `1.36.3`.
    pub version: String,
    /// Lifecycle classification.
    pub classification: kaas_api::provider::Classification,
    /// When the version expires (then clusters are moved to a newer patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// SCS-API features clusters of this version cannot use, and why (found by the provider's
    /// stack verification or disabled by the provider). Validation refuses a Cluster using one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable_features: Vec<kaas_api::provider::UnusableFeature>,
}

/// The offering of a Provider.
pub(crate) fn offering(p: Provider) -> Offering {
    let hide = stack_names(&p);
    let versions = p
        .spec
        .kubernetes_versions
        .iter()
        .map(|v| OfferedVersion {
            version: v.version.clone(),
            classification: v.classification,
            expiration_date: v.expiration_date.clone(),
            unusable_features: p
                .unusable_features(&v.version)
                .into_iter()
                .map(|mut u| {
                    u.reason = scrub(&u.reason, &hide);
                    u
                })
                .collect(),
        })
        .collect();
    let status = p.status.map(|s| OfferingStatus {
        default_version: s.default_version,
        conditions: s
            .conditions
            .into_iter()
            .map(|mut c| {
                c.message = scrub(&c.message, &hide);
                c
            })
            .collect(),
    });
    Offering {
        name: p.metadata.name.clone().unwrap_or_default(),
        display_name: p.spec.display_name,
        provider_type: p.spec.provider_type,
        backend: p.spec.backend.kind,
        regions: p.spec.regions,
        flavors: p.spec.flavors,
        kubernetes_versions: versions,
        extensions: p.spec.extensions,
        defaults: p.spec.defaults,
        limits: p.spec.limits,
        status,
    }
}

/// The provider's stack names a tenant is not shown, each with what replaces it: namespace,
/// ClusterClasses, stack releases, addon bundles. Longest first, so that no name is replaced
/// inside a longer one.
fn stack_names(p: &Provider) -> Vec<(String, &'static str)> {
    let mut out = vec![(p.spec.backend.namespace.clone(), "<provider namespace>")];
    for v in &p.spec.kubernetes_versions {
        out.push((v.stack.cluster_class.clone(), "<cluster class>"));
        if let Some(r) = &v.stack.release {
            out.push((r.clone(), "<stack release>"));
        }
        if let Some(b) = &v.stack.addons {
            out.push((b.clone(), "<addon bundle>"));
        }
    }
    out.retain(|(n, _)| !n.is_empty());
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Replaces each whole name (not part of a longer name: no letter, digit, `.`, `-` or `_` on
/// either side) in one pass, longest names first where several start at the same place.
fn scrub(text: &str, names: &[(String, &'static str)]) -> String {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        let before = text[..i].chars().next_back();
        if !part(before) {
            for (name, with) in names {
                if text[i..].starts_with(name.as_str())
                    && !part(text[i + name.len()..].chars().next())
                {
                    out.push_str(with);
                    i += name.len();
                    continue 'scan;
                }
            }
        }
        let c = text[i..]
            .chars()
            .next()
            .expect("i is a char boundary below len");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

async fn list_providers(caller: Caller) -> ApiResult<Json<ProviderList>> {
    let list = Api::<Provider>::all(caller.client)
        .list(&ListParams::default())
        .await?;
    Ok(Json(ProviderList {
        items: list.items.into_iter().map(offering).collect(),
    }))
}

async fn get_provider(caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Offering>> {
    let p = Api::<Provider>::all(caller.client).get(&name).await?;
    Ok(Json(offering(p)))
}

// ---------------------------------------------------------------------------------------------
// Clusters.

fn clean(mut c: Cluster) -> Cluster {
    c.metadata.managed_fields = None;
    c
}

async fn list_clusters(caller: Caller, Path(ns): Path<String>) -> ApiResult<Json<ClusterList>> {
    let list = Api::<Cluster>::namespaced(caller.client, &ns)
        .list(&ListParams::default())
        .await?;
    Ok(Json(ClusterList {
        items: list.items.into_iter().map(clean).collect(),
    }))
}

async fn get_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    if q.dry_run.is_some() {
        return Err(ApiError::bad_request("dryRun is for writes"));
    }
    let wait = q.parse(None)?;
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    match wait {
        Some((what, timeout)) => wait::until(&api, &name, what, timeout)
            .await
            .map(|c| respond(StatusCode::OK, c)),
        None => Ok(respond(StatusCode::OK, Some(api.get(&name).await?))),
    }
}

fn respond(status: StatusCode, c: Option<Cluster>) -> Response {
    match c {
        Some(c) => (status, Json(clean(c))).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Checks a cluster as `kaas validate`, GitSource and the operator do
/// ([`kaas_validate::admission::admit`]): the CRD's schema and CEL rules, then (when the caller may
/// read providers) the provider the operator would choose — the named one, or without a name the
/// only one of the requested type — and its offering, version changes judged against what `old`
/// (the stored cluster, for updates) runs.
pub(crate) async fn prevalidate(
    client: &Client,
    object: Value,
    old: Option<&Cluster>,
) -> ApiResult<Cluster> {
    let named = object
        .pointer("/spec/provider/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let api = Api::<Provider>::all(client.clone());
    let read = match &named {
        // The named one is all the choice needs.
        Some(name) => api.get_opt(name).await.map(|p| p.into_iter().collect()),
        // Without a name the operator chooses among all providers.
        None => api.list(&ListParams::default()).await.map(|l| l.items),
    };
    let providers: Option<Vec<Provider>> = match read {
        Ok(p) => Some(p),
        // Not allowed to read offerings: the operator validates and reports in the status.
        Err(kube::Error::Api(s)) if s.code == 403 => None,
        Err(e) => return Err(e.into()),
    };
    let old = old.cloned();
    let admitted = off_the_workers(move || {
        let providers = match &providers {
            Some(p) => Providers::All(p),
            None => Providers::Unreadable,
        };
        admission::admit(&object, old.as_ref(), providers)
    })
    .await?;
    match admitted {
        Ok(a) => {
            let mut cluster = a.cluster;
            cluster.status = None;
            Ok(cluster)
        }
        // Not a Cluster at all: said as before, without a field path.
        Err(r) if r.errors.0.len() == 1 && r.errors.0[0].path.is_empty() => Err(ApiError::invalid(
            format!("the cluster is invalid: {}", r.errors.0[0].message),
            Vec::new(),
        )),
        Err(r) => Err(ApiError::from_field_errors("the cluster", &r.errors)),
    }
}

/// Runs CPU-bound validation on the blocking pool, at most one per core at a time, so the
/// async workers (and every other request, `/healthz` included) keep answering.
async fn off_the_workers<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    static SLOTS: OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::sync::Arc::new(tokio::sync::Semaphore::new(n))
    });
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "validation failed unexpectedly",
        )
    })
}

/// A JSON request body, parsed off the async workers (a large body takes a while to parse and
/// must not stall other requests). Wrong content type: 415; over [`crate::BODY_LIMIT`]: 413;
/// not JSON of the expected shape: 400 — all as JSON errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send + 'static> axum::extract::FromRequest<S>
    for JsonBody<T>
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "send the body as `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "PayloadTooLarge"
                } else {
                    "BadRequest"
                };
                ApiError::new(status, code, e.body_text())
            })?;
        off_the_workers(move || serde_json::from_slice::<T>(&bytes))
            .await?
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))
    }
}

/// The body as a Cluster object in namespace `ns` (apiVersion/kind filled in when missing).
fn cluster_object(ns: &str, name: Option<&str>, mut body: Value) -> ApiResult<Value> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object (a Cluster)"))?;
    obj.entry("apiVersion")
        .or_insert_with(|| Value::from(Cluster::api_version(&()).to_string()));
    obj.entry("kind")
        .or_insert_with(|| Value::from(Cluster::kind(&()).to_string()));
    obj.remove("status");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(n) if n != ns => {
            return Err(ApiError::invalid(
                "the cluster is invalid: 1 problem(s)",
                vec![FieldProblem {
                    path: "metadata.namespace".into(),
                    message: format!("{n:?} differs from the namespace of the URL {ns:?}"),
                }],
            ));
        }
        _ => {
            meta.insert("namespace".into(), Value::from(ns));
        }
    }
    if let Some(name) = name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::invalid(
                    "the cluster is invalid: 1 problem(s)",
                    vec![FieldProblem {
                        path: "metadata.name".into(),
                        message: format!("{n:?} differs from the name of the URL {name:?}"),
                    }],
                ));
            }
            _ => {
                meta.insert("name".into(), Value::from(name));
            }
        }
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::invalid(
            "the cluster is invalid: 1 problem(s)",
            vec![FieldProblem {
                path: "metadata.name".into(),
                message: "required".into(),
            }],
        ));
    }
    Ok(body)
}

async fn create_cluster(
    caller: Caller,
    Path(ns): Path<String>,
    Query(q): Query<WaitQuery>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let object = cluster_object(&ns, None, body)?;
    let cluster = prevalidate(&caller.client, object, None).await?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        dry_run,
    };
    let created = api.create(&pp, &cluster).await?;
    finish(&api, created, StatusCode::CREATED, wait).await
}

/// Answers with the written cluster, or waits first.
async fn finish(
    api: &Api<Cluster>,
    written: Cluster,
    status: StatusCode,
    wait: Option<(WaitFor, Duration)>,
) -> ApiResult<Response> {
    match wait {
        None => Ok(respond(status, Some(written))),
        Some((what, timeout)) => {
            let c = wait::until(api, &written.name_any(), what, timeout).await?;
            Ok(respond(status, c))
        }
    }
}

async fn replace_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let object = cluster_object(&ns, Some(&name), body)?;
    let api = Api::<Cluster>::namespaced(caller.client.clone(), &ns);
    let current = api.get(&name).await?;
    let mut cluster = prevalidate(&caller.client, object, Some(&current)).await?;
    // Optimistic concurrency: the caller's resourceVersion if given, else the one just read.
    if cluster.metadata.resource_version.is_none() {
        cluster.metadata.resource_version = current.metadata.resource_version.clone();
    }
    keep_system_metadata(&mut cluster, &current);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        dry_run,
    };
    let written = api.replace(&name, &pp, &cluster).await?;
    finish(&api, written, StatusCode::OK, wait).await
}

/// Finalizers and owner references belong to controllers; a replace through the API keeps them,
/// and kaas' own labels and annotations (`scs.community/…`: an adoption link, the GitSource a
/// cluster came from) unless the body sets them itself.
fn keep_system_metadata(new: &mut Cluster, current: &Cluster) {
    new.metadata.finalizers = current.metadata.finalizers.clone();
    new.metadata.owner_references = current.metadata.owner_references.clone();
    let ours = |k: &String| k.starts_with("scs.community/");
    for (have, want) in [
        (&current.metadata.labels, &mut new.metadata.labels),
        (&current.metadata.annotations, &mut new.metadata.annotations),
    ] {
        for (k, v) in have.iter().flatten().filter(|(k, _)| ours(k)) {
            want.get_or_insert_with(Default::default)
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

/// Reads, changes the spec with `change`, validates and writes; retries on conflicts.
pub(crate) async fn modify(
    client: &Client,
    ns: &str,
    name: &str,
    dry_run: bool,
    change: impl Fn(&mut Cluster) -> ApiResult<()>,
) -> ApiResult<Cluster> {
    let api = Api::<Cluster>::namespaced(client.clone(), ns);
    let mut attempt = 0;
    loop {
        let current = api.get(name).await?;
        let mut next = current.clone();
        change(&mut next)?;
        next.status = None;
        next.metadata.managed_fields = None;
        let object = serde_json::to_value(&next).unwrap_or_default();
        prevalidate(client, object, Some(&current)).await?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run,
        };
        match api.replace(name, &pp, &next).await {
            Ok(c) => return Ok(c),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 3 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

async fn scale_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    JsonBody(req): JsonBody<ScaleRequest>,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    if req.count.is_none() && req.min_count.is_none() && req.max_count.is_none() {
        return Err(ApiError::invalid(
            "the scale request is invalid",
            vec![FieldProblem {
                path: "count".into(),
                message: "give `count`, or `minCount` and `maxCount`".into(),
            }],
        ));
    }
    let written = modify(&caller.client, &ns, &name, dry_run, |c| scale(c, &req)).await?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    finish(&api, written, StatusCode::OK, wait).await
}

/// Applies a scale request to the spec.
pub(crate) fn scale(c: &mut Cluster, req: &ScaleRequest) -> ApiResult<()> {
    let workers = c.spec.workers.get_or_insert_with(Vec::new);
    let names: Vec<String> = workers.iter().map(|w| w.name.clone()).collect();
    let Some(pool) = workers.iter_mut().find(|w| w.name == req.pool) else {
        return Err(ApiError::invalid(
            "the scale request is invalid",
            vec![FieldProblem {
                path: "pool".into(),
                message: format!(
                    "the cluster has no worker pool {:?} (pools: {})",
                    req.pool,
                    names.join(", ")
                ),
            }],
        ));
    };
    if req.count.is_some() {
        pool.count = req.count;
        pool.min_count = None;
        pool.max_count = None;
    } else {
        pool.count = None;
        pool.min_count = req.min_count.or(pool.min_count);
        pool.max_count = req.max_count.or(pool.max_count);
    }
    Ok(())
}

async fn upgrade_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    JsonBody(req): JsonBody<UpgradeRequest>,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let written = modify(&caller.client, &ns, &name, dry_run, |c| {
        c.spec
            .kubernetes
            .get_or_insert_with(Default::default)
            .version = Some(req.version.clone());
        Ok(())
    })
    .await?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    finish(&api, written, StatusCode::OK, wait).await
}

async fn hibernate_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    set_hibernation(caller, ns, name, q, true).await
}

async fn wake_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    set_hibernation(caller, ns, name, q, false).await
}

/// `POST …/hibernate` and `…/wake`: `spec.hibernation.enabled` set to `hibernate`, validated and
/// written as every change (an imported cluster is refused at `spec.hibernation`). A wait that
/// the change itself makes impossible (`Ready` after hibernate, `Hibernated` after wake) is
/// refused before anything is written.
async fn set_hibernation(
    caller: Caller,
    ns: String,
    name: String,
    q: WaitQuery,
    hibernate: bool,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    match &wait {
        Some((WaitFor::Ready, _)) if hibernate => {
            return Err(ApiError::bad_request(
                "wait=Ready: a hibernating cluster is never Ready; wait for `Hibernated`",
            ));
        }
        Some((WaitFor::Condition(t), _)) if !hibernate && t == kaas_api::conditions::HIBERNATED => {
            return Err(ApiError::bad_request(
                "wait=Hibernated: a cluster woken up does not hibernate; wait for `Ready`",
            ));
        }
        Some((WaitFor::Deleted, _)) => {
            return Err(ApiError::bad_request("wait=Deleted is for deletes only"));
        }
        _ => {}
    }
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let written = modify(&caller.client, &ns, &name, dry_run, |c| {
        set_hibernation_enabled(c, hibernate);
        Ok(())
    })
    .await?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    finish(&api, written, StatusCode::OK, wait).await
}

/// Sets `spec.hibernation.enabled`, schedules untouched. Waking a cluster that never had a
/// `hibernation` section changes nothing (it is awake).
pub(crate) fn set_hibernation_enabled(c: &mut Cluster, hibernate: bool) {
    if !hibernate && c.spec.hibernation.is_none() {
        return;
    }
    c.spec
        .hibernation
        .get_or_insert_with(Default::default)
        .enabled = Some(hibernate);
}

async fn delete_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let wait = q.parse(None)?;
    if matches!(wait, Some((ref w, _)) if *w != WaitFor::Deleted) {
        return Err(ApiError::bad_request(
            "a delete can only wait for `Deleted`",
        ));
    }
    let _slot = wait.as_ref().map(|_| caller.wait_slot()).transpose()?;
    let api = Api::<Cluster>::namespaced(caller.client, &ns);
    let dp = DeleteParams {
        dry_run,
        ..DeleteParams::foreground()
    };
    let res = api.delete(&name, &dp).await?;
    match wait {
        Some((what, timeout)) => {
            wait::until(&api, &name, what, timeout).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Ok(match res.left() {
            Some(c) => (StatusCode::ACCEPTED, Json(clean(c))).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        }),
    }
}

async fn get_kubeconfig(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let cluster = Api::<Cluster>::namespaced(caller.client.clone(), &ns)
        .get(&name)
        .await?;
    let Some(secret_name) = cluster
        .status
        .as_ref()
        .and_then(|s| s.kubeconfig_secret_ref.as_ref())
        .map(|r| r.name.clone())
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotReady",
            format!("cluster {name} has no kubeconfig yet (its control plane is not up)"),
        ));
    };
    let secret = Api::<Secret>::namespaced(caller.client, &ns)
        .get(&secret_name)
        .await?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .map(|b| b.0.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "NotReady",
                format!("secret {secret_name} has no key `value` yet"),
            )
        })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/yaml"),
            ),
            (
                header::CONTENT_DISPOSITION,
                crate::edge::attachment(&name, "kubeconfig"),
            ),
        ],
        value,
    )
        .into_response())
}

/// `POST …/clusters/{name}/kubeconfig`: creates a `KubeconfigRequest` with the caller's own
/// credentials (`spec.user` = the caller, checked by the admission policy), waits for the operator
/// to issue it and answers the kubeconfig (201, YAML); a refusal is 404 (`ClusterNotFound`) or 422
/// with the condition's reason as code.
async fn request_kubeconfig(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<KubeconfigRequestBody>,
) -> ApiResult<Response> {
    let _slot = caller.wait_slot()?;
    issue_kubeconfig(&caller.client, &ns, &name, &body.expiration, body.role).await
}

/// Creates a `KubeconfigRequest` for cluster `ns/name` with `client`'s own credentials, waits
/// (at most 120 s) for the operator to issue it and answers the kubeconfig as a download (201,
/// YAML, `X-KaaS-Expires-At`), or the refusal. Shared by REST and the GUI.
pub(crate) async fn issue_kubeconfig(
    client: &Client,
    ns: &str,
    name: &str,
    expiration: &str,
    role: kaas_api::kubeconfig::KubeconfigRole,
) -> ApiResult<Response> {
    use kaas_api::kubeconfig::{CONDITION_ISSUED, KubeconfigRequest, KubeconfigRequestSpec};
    let me = whoami(client).await?;
    let mut req = KubeconfigRequest::new(
        "",
        KubeconfigRequestSpec {
            cluster: name.to_string(),
            expiration: expiration.to_string(),
            role,
            user: me.username,
        },
    );
    req.metadata.name = None;
    req.metadata.generate_name = Some(format!("{name}-{}-", role.as_str()));
    let api: Api<KubeconfigRequest> = Api::namespaced(client.clone(), ns);
    let created = api.create(&PostParams::default(), &req).await?;
    let req_name = created.name_any();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = api.get(&req_name).await?;
        let st = r.status.unwrap_or_default();
        if let Some(c) = kaas_api::conditions::get(&st.conditions, CONDITION_ISSUED) {
            match c.status.as_str() {
                "True" => {
                    let secret_name = st.secret_name.unwrap_or_default();
                    let secret = Api::<Secret>::namespaced(client.clone(), ns)
                        .get(&secret_name)
                        .await?;
                    let value = secret
                        .data
                        .and_then(|mut d| d.remove("value"))
                        .map(|b| b.0)
                        .unwrap_or_default();
                    let expires = st.expires_at.unwrap_or_default();
                    return Ok((
                        StatusCode::CREATED,
                        [
                            (
                                header::CONTENT_TYPE,
                                header::HeaderValue::from_static("application/yaml"),
                            ),
                            (
                                header::CONTENT_DISPOSITION,
                                crate::edge::attachment(name, "kubeconfig"),
                            ),
                            (
                                header::HeaderName::from_static("x-kaas-expires-at"),
                                header::HeaderValue::from_str(&expires)
                                    .unwrap_or(header::HeaderValue::from_static("unknown")),
                            ),
                        ],
                        value,
                    )
                        .into_response());
                }
                "False" => {
                    let status = if c.reason == "ClusterNotFound" {
                        StatusCode::NOT_FOUND
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    };
                    return Err(ApiError::new(
                        status,
                        &c.reason,
                        format!("KubeconfigRequest {req_name}: {}", c.message),
                    ));
                }
                _ => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("KubeconfigRequest {ns}/{req_name} was not issued within 120s"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn get_diagnostics(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<kaas_diagnose::Diagnosis>> {
    diagnosis(&caller.client, &ns, &name).await.map(Json)
}

/// The diagnosis of a cluster as the caller may see it.
pub(crate) async fn diagnosis(
    client: &Client,
    ns: &str,
    name: &str,
) -> ApiResult<kaas_diagnose::Diagnosis> {
    diagnosis_inputs(client, ns, name)
        .await
        .map(|i| kaas_diagnose::analyze(&i))
}

/// What the diagnosis of a cluster looks at, read with the caller's identity (the GUI draws its
/// picture of the cluster from the same read).
pub(crate) async fn diagnosis_inputs(
    client: &Client,
    ns: &str,
    name: &str,
) -> ApiResult<kaas_diagnose::Inputs> {
    kaas_diagnose::fetch(client, ns, name)
        .await
        .map_err(|e| match e {
            e @ kaas_diagnose::Error::NotFound { .. } => ApiError::not_found(e.to_string()),
            e @ kaas_diagnose::Error::Forbidden { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string())
            }
            kaas_diagnose::Error::Kube { source, .. } => source.into(),
        })
}

async fn get_compliance(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<ComplianceReport>> {
    compliance(&caller.client, &ns, &name).await.map(Json)
}

/// The compliance summary and report files of a cluster.
pub(crate) async fn compliance(
    client: &Client,
    ns: &str,
    name: &str,
) -> ApiResult<ComplianceReport> {
    let cluster = Api::<Cluster>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let Some(summary) = cluster.status.and_then(|s| s.compliance) else {
        return Err(ApiError::not_found(format!(
            "cluster {name} has not been checked yet"
        )));
    };
    let files = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&summary.report_config_map)
        .await?
        .data
        .unwrap_or_default();
    Ok(ComplianceReport {
        summary: serde_json::to_value(&summary).ok(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn wait_query_bounds() {
        let q = WaitQuery {
            dry_run: None,
            wait: Some("Ready".into()),
            timeout: Some("2h".into()),
        };
        assert_eq!(q.parse(None).unwrap_err().status, StatusCode::BAD_REQUEST);
        let q = WaitQuery {
            dry_run: None,
            wait: None,
            timeout: Some("10s".into()),
        };
        assert!(q.parse(None).is_err(), "timeout without wait");
        let q = WaitQuery {
            dry_run: None,
            wait: Some("Ready".into()),
            timeout: None,
        };
        assert_eq!(q.parse(None).unwrap(), Some((WaitFor::Ready, DEFAULT_WAIT)));
    }

    fn demo() -> Cluster {
        serde_yaml::from_str(
            "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: a, namespace: t}\nspec:\n  workers: [{name: w, count: 1}, {name: x, minCount: 1, maxCount: 3}]",
        )
        .unwrap()
    }

    #[test]
    fn scaling_a_pool() {
        let mut c = demo();
        scale(
            &mut c,
            &ScaleRequest {
                pool: "w".into(),
                count: Some(3),
                min_count: None,
                max_count: None,
            },
        )
        .unwrap();
        let w = &c.spec.workers.as_ref().unwrap()[0];
        assert_eq!((w.count, w.min_count, w.max_count), (Some(3), None, None));
        scale(
            &mut c,
            &ScaleRequest {
                pool: "x".into(),
                count: None,
                min_count: None,
                max_count: Some(5),
            },
        )
        .unwrap();
        let x = &c.spec.workers.as_ref().unwrap()[1];
        assert_eq!(
            (x.count, x.min_count, x.max_count),
            (None, Some(1), Some(5))
        );
        let e = scale(
            &mut c,
            &ScaleRequest {
                pool: "nope".into(),
                count: Some(1),
                min_count: None,
                max_count: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.body.errors[0].path, "pool");
        assert!(e.body.errors[0].message.contains("pools: w, x"));
    }

    #[test]
    fn hibernating_and_waking_set_only_the_switch() {
        let mut c = demo();
        set_hibernation_enabled(&mut c, false);
        assert!(
            c.spec.hibernation.is_none(),
            "an awake cluster stays as it is"
        );
        c.spec.hibernation = Some(kaas_api::hibernation::HibernationSpec {
            enabled: None,
            schedules: Some(vec![kaas_api::hibernation::HibernationSchedule {
                start: Some("0 20 * * 1-5".into()),
                end: Some("0 7 * * 1-5".into()),
                location: Some("Europe/Berlin".into()),
            }]),
        });
        let schedules = c.spec.hibernation.as_ref().unwrap().schedules.clone();
        set_hibernation_enabled(&mut c, true);
        let h = c.spec.hibernation.as_ref().unwrap();
        assert_eq!((h.enabled, &h.schedules), (Some(true), &schedules));
        set_hibernation_enabled(&mut c, false);
        let h = c.spec.hibernation.as_ref().unwrap();
        assert_eq!((h.enabled, &h.schedules), (Some(false), &schedules));
    }

    #[test]
    fn body_namespace_and_name_must_match_the_url() {
        let e = cluster_object(
            "t",
            None,
            serde_json::json!({"metadata": {"name": "a", "namespace": "other"}, "spec": {}}),
        )
        .unwrap_err();
        assert_eq!(e.body.errors[0].path, "metadata.namespace");
        let e = cluster_object(
            "t",
            Some("a"),
            serde_json::json!({"metadata": {"name": "b"}}),
        )
        .unwrap_err();
        assert_eq!(e.body.errors[0].path, "metadata.name");
        let e = cluster_object("t", None, serde_json::json!({"spec": {}})).unwrap_err();
        assert_eq!(e.body.errors[0].path, "metadata.name");
        let ok = cluster_object(
            "t",
            None,
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Ready"}}),
        )
        .unwrap();
        assert_eq!(ok["metadata"]["namespace"], "t");
        assert_eq!(ok["kind"], "Cluster");
        assert!(ok.get("status").is_none(), "a client cannot write status");
    }

    #[test]
    fn a_replace_keeps_kaas_metadata_it_does_not_set() {
        let mut current = demo();
        current.metadata.finalizers = Some(vec!["scs.community/cluster".into()]);
        current.metadata.annotations = Some(
            [
                (
                    "scs.community/adopt-from".to_string(),
                    "legacy/old".to_string(),
                ),
                ("note".to_string(), "mine".to_string()),
            ]
            .into(),
        );
        let mut new = demo();
        new.metadata.annotations = Some([("other".to_string(), "x".to_string())].into());
        keep_system_metadata(&mut new, &current);
        let a = new.metadata.annotations.unwrap();
        assert_eq!(
            a.get("scs.community/adopt-from").map(String::as_str),
            Some("legacy/old")
        );
        assert!(
            !a.contains_key("note"),
            "the client's own annotations are replaced"
        );
        assert_eq!(new.metadata.finalizers, current.metadata.finalizers);
    }

    #[test]
    fn offerings_hide_backend_and_credentials() {
        let p: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-openstack.yaml"))
                .unwrap();
        let v = serde_json::to_value(offering(p)).unwrap();
        let text = v.to_string();
        assert!(!text.contains("credentials"), "{text}");
        assert!(!text.contains("kaas-provider-fra1"), "{text}");
        assert!(
            !text.contains("openstack-scs2-1-36-v2"),
            "no ClusterClass names: {text}"
        );
        assert_eq!(v["backend"], "ClusterAPI");
        assert_eq!(v["kubernetesVersions"][3]["classification"], "expired");
        assert!(v["flavors"].as_array().is_some_and(|f| f.len() == 4));
    }

    #[test]
    fn scrub_replaces_whole_names_only() {
        let names = vec![
            ("kaas-provider-dev".to_string(), "<provider namespace>"),
            ("dev".to_string(), "<cluster class>"),
            ("c".to_string(), "<stack release>"),
        ];
        assert_eq!(
            scrub(
                "ClusterClass kaas-provider-dev/dev cannot use devclusters; c, (c) ünïcode c",
                &names
            ),
            "ClusterClass <provider namespace>/<cluster class> cannot use devclusters; <stack release>, (<stack release>) ünïcode <stack release>"
        );
        assert_eq!(scrub("", &names), "");
    }

    #[test]
    fn offerings_mark_unusable_features_per_version_without_stack_names() {
        let mut p: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-openstack.yaml"))
                .unwrap();
        let class = p.spec.kubernetes_versions[0].stack.cluster_class.clone();
        let ns = p.spec.backend.namespace.clone();
        let v0 = p.spec.kubernetes_versions[0].version.clone();
        p.spec.disabled_features = vec![kaas_api::provider::DisabledFeature {
            name: "oidc".into(),
            reason: None,
        }];
        p.status = Some(kaas_api::ProviderStatus {
            versions: vec![kaas_api::provider::VersionVerification {
                version: v0.clone(),
                cluster_class: Some(class.clone()),
                unusable: vec![kaas_api::provider::UnusableFeature {
                    feature: "taints".into(),
                    reason: format!("Cluster API refused it: ClusterClass {ns}/{class}: gate off"),
                }],
                ..Default::default()
            }],
            conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "StackVerified".into(),
                status: "False".into(),
                reason: "FeaturesUnusable".into(),
                message: format!("not verified: 1.34.4: ClusterClass {ns}/{class} not found"),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
                observed_generation: None,
            }],
            ..Default::default()
        });
        let v = serde_json::to_value(offering(p)).unwrap();
        let text = v.to_string();
        assert!(!text.contains(&class) && !text.contains(&ns), "{text}");
        let first = &v["kubernetesVersions"][0]["unusableFeatures"];
        assert_eq!(first[0]["feature"], "oidc");
        assert_eq!(first[0]["reason"], "disabled by the provider");
        assert_eq!(first[1]["feature"], "taints");
        assert_eq!(
            first[1]["reason"],
            "Cluster API refused it: ClusterClass <provider namespace>/<cluster class>: gate off"
        );
        // Other versions: only what the provider declares for all.
        assert_eq!(
            v["kubernetesVersions"][1]["unusableFeatures"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert!(v["status"].get("versions").is_none(), "{text}");
    }
}
