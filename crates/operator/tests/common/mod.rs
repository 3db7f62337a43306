//! Shared setup of the operator's integration tests: a real plane, kaas installed, the in-memory
//! provider `dev` with the upstream in-memory ClusterClass, and the operator running in-process.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use kaas_api::{Cluster, Provider};
use kaas_harness::{Plane, PlaneOptions};
use kaas_operator::install;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub const PROVIDER: &str = include_str!("../../../../examples/provider-inmemory.yaml");

/// Starts a plane (with or without the Cluster API managers) with kaas and the `dev` provider.
/// Without the managers, the Cluster API CRDs are installed but nothing reconciles them.
pub async fn plane(cluster_api: bool) -> Plane {
    let opts = if cluster_api {
        PlaneOptions::with_capi()
    } else {
        PlaneOptions::capi_crds_only()
    };
    let plane = Plane::start(opts.crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    if !cluster_api {
        // Without its managers Cluster API's webhooks cannot answer; its objects are then stored
        // as written (nothing reconciles them), which is what these tests need.
        plane
            .remove_capi_webhooks()
            .await
            .expect("webhooks removed");
    }
    let client = plane.client();
    install::install_kaas(&client).await.expect("kaas installs");
    let provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    install::provider(&client, &provider, &class)
        .await
        .expect("provider installs");
    plane
}

/// Runs the operator in this process until the returned handle is dropped or aborted.
pub fn operator(client: Client, providers: &[&str]) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let cfg = kaas_operator::Config {
        providers: providers.iter().map(|s| s.to_string()).collect(),
        metrics_addr: None,
        lease: None,
        concurrency: 8,
        release_data: None,
        settled_requeue: None,
    };
    tokio::spawn(kaas_operator::run(client, cfg))
}

pub fn cluster(name: &str, ns: &str, spec: &str) -> Cluster {
    let mut c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}"
    ))
    .unwrap();
    c.spec = serde_yaml::from_str(spec).unwrap();
    c
}

pub async fn create(client: &Client, c: &Cluster) -> Cluster {
    let api: Api<Cluster> =
        Api::namespaced(client.clone(), c.metadata.namespace.as_deref().unwrap());
    api.create(&PostParams::default(), c)
        .await
        .expect("cluster created")
}

pub async fn patch_spec(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    let api: Api<Cluster> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": spec})),
    )
    .await
    .expect("spec patched");
}

/// Polls `check` until it returns `Some`, failing with `what` and the last observation after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => {
                eprintln!("{what}: after {:.1?}", start.elapsed());
                return v;
            }
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn condition(c: &Cluster, t: &str) -> Option<(String, String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .map(|x| (x.status.clone(), x.reason.clone(), x.message.clone()))
}

pub fn summary(c: &Cluster) -> String {
    let s = c.status.clone().unwrap_or_default();
    format!(
        "phase={:?} version={:?} target={:?} conditions={:?}",
        s.phase,
        s.kubernetes_version,
        s.target_version,
        s.conditions
            .iter()
            .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
            .collect::<Vec<_>>()
    )
}

/// The operator's `/metrics` text.
pub async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of `series` (a metric's name with its labels, as the text prints them) in a
/// metrics text; 0 when it is not there.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Deletes the binding of the policy that sets kaas' finalizer at creation, and waits until the
/// API server no longer applies it.
pub async fn without_finalizer_at_creation(client: &Client) {
    let probe = cluster("probe", "default", "provider: {name: dev}");
    assert!(
        install::without_finalizer_at_creation(client, &probe)
            .await
            .expect("the binding is deleted"),
        "the policy was still applied 30 s after its binding was deleted"
    );
}
