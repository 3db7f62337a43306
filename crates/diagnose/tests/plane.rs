//! `diagnose` against a real plane (real kube-apiserver and etcd, the Cluster API CRDs installed,
//! its managers not running) with the kaas operator running in-process, each call with a tenant's
//! own token: an invalid spec is diagnosed with its field paths; a valid one waits for Cluster API
//! to provision the control plane, and the tenant sees its Cluster API Cluster; another tenant is
//! refused.

use std::future::Future;
use std::time::{Duration, Instant};

use kaas_api::{Cluster, Provider};
use kaas_diagnose::{Error, HINT_INVALID_SPEC, NodeStatus, diagnose};
use kaas_harness::{Plane, PlaneOptions};
use kaas_operator::install;
use kube::Api;
use kube::api::PostParams;

const PROVIDER: &str = include_str!("../../../examples/provider-inmemory.yaml");

/// A plane with the Cluster API CRDs but not its managers, kaas and the `dev` provider installed
/// (as `crates/operator/tests/common`).
async fn plane() -> Plane {
    let plane = Plane::start(PlaneOptions::capi_crds_only().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    // Without its managers Cluster API's webhooks cannot answer; its objects are then stored as
    // written (nothing reconciles them).
    plane
        .remove_capi_webhooks()
        .await
        .expect("webhooks removed");
    let client = plane.client();
    install::install_kaas(&client).await.expect("kaas installs");
    let provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    install::provider(&client, &provider, &class)
        .await
        .expect("provider installs");
    plane
}

fn cluster(name: &str, ns: &str, spec: &str) -> Cluster {
    let mut c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}"
    ))
    .unwrap();
    c.spec = serde_yaml::from_str(spec).unwrap();
    c
}

/// Polls `check` until it returns `Ok`, failing with `what` and the last observation after
/// `timeout`.
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn diagnoses_with_the_tenants_own_identity() {
    let plane = plane().await;
    let admin = plane.client();
    let token_a = install::tenant_service_account(&admin, "tenant-a", "alice")
        .await
        .unwrap();
    let token_b = install::tenant_service_account(&admin, "tenant-b", "bob")
        .await
        .unwrap();
    let a = plane.client_for_token(&token_a).unwrap();
    let b = plane.client_for_token(&token_b).unwrap();
    let _op = tokio::spawn(kaas_operator::run(
        admin.clone(),
        kaas_operator::Config {
            concurrency: 4,
            ..Default::default()
        },
    ));
    let api: Api<Cluster> = Api::namespaced(a.clone(), "tenant-a");

    // Invalid spec: the hints name the field path.
    api.create(
        &PostParams::default(),
        &cluster(
            "bad",
            "tenant-a",
            "provider: {name: dev}\nworkers: [{name: w, flavor: m9.huge}]",
        ),
    )
    .await
    .unwrap();
    let d = until(
        "invalid spec diagnosed",
        Duration::from_secs(60),
        || async {
            let d = diagnose(&a, "tenant-a", "bad")
                .await
                .map_err(|e| e.to_string())?;
            if d.hints.iter().any(|h| h.code == HINT_INVALID_SPEC) {
                Ok(d)
            } else {
                Err(d.to_text())
            }
        },
    )
    .await;
    let h = d
        .hints
        .iter()
        .find(|h| h.code == HINT_INVALID_SPEC)
        .unwrap();
    assert_eq!(h.fields, ["spec.workers[0].flavor"], "{}", d.to_text());
    assert!(h.message.contains("m9.huge"), "{}", h.message);
    assert!(!d.healthy());
    assert_eq!(d.cluster.phase.as_deref(), Some("Invalid"));
    assert!(
        d.waiting_for
            .as_deref()
            .is_some_and(|w| w.contains("spec is not accepted")),
        "{}",
        d.to_text()
    );

    // Valid spec: without Cluster API's managers nothing provisions the control plane, and the
    // diagnosis says so; the tenant sees its Cluster API Cluster.
    api.create(
        &PostParams::default(),
        &cluster(
            "good",
            "tenant-a",
            "provider: {name: dev}\nworkers: [{name: w, count: 1}]",
        ),
    )
    .await
    .unwrap();
    let d = until(
        "waiting for the control plane",
        Duration::from_secs(90),
        || async {
            let d = diagnose(&a, "tenant-a", "good")
                .await
                .map_err(|e| e.to_string())?;
            let capi_visible = d.tree.children.first().is_some_and(|n| {
                n.api_group == "cluster.x-k8s.io" && n.status != NodeStatus::Hidden
            });
            let waits = d
                .waiting_for
                .as_deref()
                .is_some_and(|w| w.contains("Cluster API has not provisioned the control plane"));
            if capi_visible && waits {
                Ok(d)
            } else {
                Err(d.to_text())
            }
        },
    )
    .await;
    let capi = &d.tree.children[0];
    assert_eq!(capi.kind, "Cluster");
    assert_eq!(capi.name, "good");
    assert_eq!(
        capi.namespace.as_deref(),
        Some(kaas_render::capi_namespace("dev", "tenant-a").as_str())
    );
    assert_eq!(capi.status, NodeStatus::Progressing, "{}", d.to_text());
    assert!(
        !d.tree.walk().iter().any(|n| n.status == NodeStatus::Hidden),
        "{}",
        d.to_text()
    );
    assert!(!d.cluster.ready);
    // Events of the tenant namespace about the cluster are there (the operator records them).
    until(
        "events in the diagnosis",
        Duration::from_secs(30),
        || async {
            let d = diagnose(&a, "tenant-a", "good")
                .await
                .map_err(|e| e.to_string())?;
            if d.events.iter().any(|e| e.object == "Cluster/good") {
                Ok(())
            } else {
                Err(format!("{:?}", d.events))
            }
        },
    )
    .await;
    let text = d.to_text();
    assert!(text.contains("Cluster/good (Cluster API)"), "{text}");

    // Another tenant: refused (403), distinguishable from a missing cluster (404).
    match diagnose(&b, "tenant-a", "good").await {
        Err(Error::Forbidden { .. }) => {}
        other => panic!("tenant B must be refused, got {other:?}"),
    }
    match diagnose(&a, "tenant-a", "nonexistent").await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("a missing cluster is NotFound, got {other:?}"),
    }
    // An admin sees the same tree.
    let d = diagnose(&admin, "tenant-a", "good").await.unwrap();
    assert_eq!(d.tree.children[0].status, NodeStatus::Progressing);
}
