//! Prometheus metrics and the operator's HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of the orphan-collection metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrphanLabels {
    /// `Cluster` (Cluster API), `HostedControlPlane` or `Namespace`.
    pub kind: String,
    /// The provider the object belongs to (label `scs.community/provider`).
    pub provider: String,
}

/// Labels of the API request metric: the Kubernetes verb (as the API server's own
/// `apiserver_request_total` spells it: `GET`, `LIST`, `WATCH`, `APPLY`, `PATCH`, `POST`, `PUT`,
/// `DELETE`, `DELETECOLLECTION`) and the resource (`secrets`, `clusters.cluster.x-k8s.io`,
/// `clusters.scs.community/status`; empty for non-resource paths such as `/version`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The verb.
    pub verb: String,
    /// `resource[.group][/subresource]`.
    pub resource: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Metrics named `kaas_…` (not `kaas_operator_…`): the API requests.
    api_registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// 1 while this instance is the leader.
    pub leader: Gauge,
    /// Provider-side objects deleted because their SCS Cluster was gone (`crate::orphans`).
    pub orphans_collected: Family<OrphanLabels, Counter>,
    /// Requests to the management cluster's API server by verb and resource
    /// (`kaas_api_requests_total`), every controller of the operator.
    pub api_requests: Family<RequestLabels, Counter>,
    /// Requests to the management API server made by one Cluster reconcile, by result
    /// (`kaas_api_requests_per_reconcile`; `_sum / _count` is the mean).
    pub requests_per_reconcile: Family<ResultLabel, Histogram, fn() -> Histogram>,
    /// Reconciles of settled clusters that ended without a request (`crate::settled`).
    pub settled: Counter,
    /// Set once the controller runs (for `/readyz`).
    pub ready: AtomicBool,
}

fn per_reconcile_histogram() -> Histogram {
    // 0, 1, 2, 4, … 128 requests.
    Histogram::new([0.0].into_iter().chain(exponential_buckets(1.0, 2.0, 8)))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas_operator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let leader = Gauge::default();
        let orphans_collected = Family::<OrphanLabels, Counter>::default();
        let settled = Counter::default();
        registry.register(
            "reconciles_settled",
            "Cluster reconciles that found a settled cluster's inputs unchanged since its last full pass and sent no request",
            settled.clone(),
        );
        registry.register(
            "reconciles",
            "Cluster reconciles by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one Cluster reconcile",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "orphans_collected",
            "Provider-side objects deleted because their SCS Cluster no longer existed",
            orphans_collected.clone(),
        );
        let mut api_registry = Registry::with_prefix("kaas");
        let api_requests = Family::<RequestLabels, Counter>::default();
        let requests_per_reconcile =
            Family::<ResultLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                per_reconcile_histogram,
            );
        api_registry.register(
            "api_requests",
            "Requests of the operator to the management cluster's API server, by verb and resource",
            api_requests.clone(),
        );
        api_registry.register(
            "api_requests_per_reconcile",
            "Requests to the management cluster's API server made by one Cluster reconcile",
            requests_per_reconcile.clone(),
        );
        Metrics {
            registry,
            api_registry,
            api_requests,
            requests_per_reconcile,
            reconciles,
            duration,
            leader,
            orphans_collected,
            settled,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one reconcile.
    pub fn observe(&self, ok: bool, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Counts one reconcile's requests to the management API server.
    pub fn observe_requests(&self, ok: bool, requests: u64) {
        self.requests_per_reconcile
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .observe(requests as f64);
    }

    /// Counts one collected orphan.
    pub fn orphan_collected(&self, kind: &str, provider: &str) {
        self.orphans_collected
            .get_or_create(&OrphanLabels {
                kind: kind.into(),
                provider: provider.into(),
            })
            .inc();
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.api_registry))
            .and_then(|()| encode_eof(&mut out))
            .expect("encoding to a String");
        out
    }
}

/// The verb and resource of a request to a Kubernetes API server, pure. The verb follows the API
/// server's `apiserver_request_total` (a GET without a name is a `LIST`, with `watch=true` a
/// `WATCH`, a server-side apply an `APPLY`).
pub fn classify<B>(req: &http::Request<B>) -> RequestLabels {
    let path = req.uri().path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // `/api/v1/…` (core) or `/apis/<group>/<version>/…`; anything else is a non-resource path.
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => ("", &[][..]),
    };
    // `namespaces/<ns>/<resource>/…` is namespaced; `namespaces/<name>` is a Namespace.
    let rest = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [] => ("", None, None),
        [r] => (*r, None, None),
        [r, n] => (*r, Some(*n), None),
        [r, n, s, ..] => (*r, Some(*n), Some(*s)),
    };
    let watch = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1"))
    });
    let apply = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let verb = match *req.method() {
        http::Method::GET if watch => "WATCH",
        http::Method::GET if name.is_none() && !resource.is_empty() => "LIST",
        http::Method::GET => "GET",
        http::Method::PATCH if apply => "APPLY",
        http::Method::PATCH => "PATCH",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE if name.is_none() => "DELETECOLLECTION",
        http::Method::DELETE => "DELETE",
        ref m => m.as_str(),
    };
    let mut res = resource.to_string();
    if !group.is_empty() && !res.is_empty() {
        res = format!("{res}.{group}");
    }
    if let Some(s) = sub {
        res = format!("{res}/{s}");
    }
    RequestLabels {
        verb: verb.to_string(),
        resource: res,
    }
}

/// Where a counted client counts: the operator's metric by verb and resource and/or one
/// reconcile's total.
#[derive(Clone, Default)]
struct Counting {
    metrics: Option<Arc<Metrics>>,
    total: Option<Arc<AtomicU64>>,
}

/// A [`kube::Client`] as a tower service (what a client built around it sends goes through it).
#[derive(Clone)]
struct Counted {
    inner: kube::Client,
    counting: Counting,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Request<kube::client::Body>> for Counted {
    type Response = http::Response<kube::client::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner client waits for its own capacity in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        if let Some(m) = &self.counting.metrics {
            m.api_requests.get_or_create(&classify(&req)).inc();
        }
        if let Some(t) = &self.counting.total {
            t.fetch_add(1, Ordering::Relaxed);
        }
        let inner = self.inner.clone();
        // The inner client's errors pass unchanged (the outer client unwraps a `kube::Error`).
        Box::pin(async move { inner.send(req).await.map_err(|e| Box::new(e) as BoxError) })
    }
}

/// `client` counting every request into `metrics` (`kaas_api_requests_total`).
pub fn counted_client(client: &kube::Client, metrics: Arc<Metrics>) -> kube::Client {
    wrap(
        client,
        Counting {
            metrics: Some(metrics),
            total: None,
        },
    )
}

/// `client` counting its requests into `total` (one reconcile's count; the requests still pass
/// `client`'s own layers and counters).
pub fn tallied_client(client: &kube::Client, total: Arc<AtomicU64>) -> kube::Client {
    wrap(
        client,
        Counting {
            metrics: None,
            total: Some(total),
        },
    )
}

fn wrap(client: &kube::Client, counting: Counting) -> kube::Client {
    kube::Client::new(
        Counted {
            inner: client.clone(),
            counting,
        },
        client.default_namespace().to_string(),
    )
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.encode() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, content_type: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        b.body(()).unwrap()
    }

    fn label(method: &str, uri: &str, ct: Option<&str>) -> (String, String) {
        let l = classify(&req(method, uri, ct));
        (l.verb, l.resource)
    }

    fn pair(v: &str, r: &str) -> (String, String) {
        (v.into(), r.into())
    }

    #[test]
    fn requests_are_named_like_the_api_servers_own_metric() {
        let apply = Some("application/apply-patch+yaml");
        let merge = Some("application/merge-patch+json");
        for (method, uri, ct, want) in [
            (
                "GET",
                "/api/v1/namespaces/t/secrets/c-kubeconfig",
                None,
                pair("GET", "secrets"),
            ),
            (
                "GET",
                "/api/v1/namespaces/t",
                None,
                pair("GET", "namespaces"),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                None,
                pair("LIST", "namespaces"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/kaas-dev-t-1?fieldManager=kaas-operator&force=true",
                apply,
                pair("APPLY", "namespaces"),
            ),
            (
                "GET",
                "/apis/cluster.x-k8s.io/v1beta2/namespaces/n/machinedeployments?labelSelector=a%3Db",
                None,
                pair("LIST", "machinedeployments.cluster.x-k8s.io"),
            ),
            (
                "GET",
                "/apis/cluster.x-k8s.io/v1beta2/clusters?labelSelector=x&watch=true&timeoutSeconds=290",
                None,
                pair("WATCH", "clusters.cluster.x-k8s.io"),
            ),
            (
                "PATCH",
                "/apis/scs.community/v1alpha1/namespaces/t/clusters/c/status?fieldManager=kaas-operator",
                apply,
                pair("APPLY", "clusters.scs.community/status"),
            ),
            (
                "PATCH",
                "/apis/scs.community/v1alpha1/namespaces/t/clusters/c",
                merge,
                pair("PATCH", "clusters.scs.community"),
            ),
            (
                "GET",
                "/apis/scs.community/v1alpha1/providers/dev",
                None,
                pair("GET", "providers.scs.community"),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/t/events",
                None,
                pair("POST", "events.events.k8s.io"),
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/k/leases/kaas-operator",
                None,
                pair("PUT", "leases.coordination.k8s.io"),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/n/deployments/a",
                None,
                pair("DELETE", "deployments.apps"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/n/configmaps",
                None,
                pair("DELETECOLLECTION", "configmaps"),
            ),
            ("GET", "/version", None, pair("GET", "")),
        ] {
            assert_eq!(label(method, uri, ct), want, "{method} {uri}");
        }
    }

    /// Answers every request with an empty list and counts what reaches it.
    #[derive(Clone)]
    struct Fake(Arc<AtomicU64>);

    impl tower::Service<http::Request<kube::client::Body>> for Fake {
        type Response = http::Response<kube::client::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: http::Request<kube::client::Body>) -> Self::Future {
            self.0.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"apiVersion":"v1","kind":"SecretList","metadata":{},"items":[]}"#;
            std::future::ready(Ok(http::Response::builder()
                .status(200)
                .body(kube::client::Body::from(body.as_bytes().to_vec()))
                .unwrap()))
        }
    }

    fn fake_client(reached: Arc<AtomicU64>) -> kube::Client {
        kube::Client::new(Fake(reached), "default")
    }

    #[tokio::test]
    async fn the_client_counts_by_verb_and_resource_and_per_reconcile() {
        use k8s_openapi::api::core::v1::Secret;
        let reached = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(Metrics::default());
        let client = counted_client(&fake_client(reached.clone()), metrics.clone());
        let secrets = kube::Api::<Secret>::namespaced(client.clone(), "t");
        secrets.list(&Default::default()).await.unwrap();
        secrets.list(&Default::default()).await.unwrap();
        // One reconcile: its own tally on top of the operator-wide counter.
        let total = Arc::new(AtomicU64::new(0));
        let one = kube::Api::<Secret>::namespaced(tallied_client(&client, total.clone()), "u");
        one.list(&Default::default()).await.unwrap();
        metrics.observe_requests(true, total.load(Ordering::Relaxed));
        metrics.observe_requests(false, 0);
        metrics.observe(true, 0.1);

        assert_eq!(
            reached.load(Ordering::Relaxed),
            3,
            "every request is sent once"
        );
        assert_eq!(total.load(Ordering::Relaxed), 1);
        let text = metrics.encode();
        assert!(
            text.contains(r#"kaas_api_requests_total{verb="LIST",resource="secrets"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kaas_api_requests_per_reconcile_sum{result="ok"} 1.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kaas_api_requests_per_reconcile_count{result="error"} 1"#),
            "{text}"
        );
        // The operator's own metrics keep their names; one end marker.
        assert!(
            text.contains(r#"kaas_operator_reconciles_total{result="ok"} 1"#),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
