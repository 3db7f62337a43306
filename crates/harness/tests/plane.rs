//! The plane is real: owner references cascade through the garbage collector, namespaces finish
//! deleting, the API server enforces CRD schemas and CEL rules, RBAC applies to other identities,
//! and nothing is left running afterwards.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_harness::{Identity, Plane, PlaneOptions, dynamic_api};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Polls `check` every 200 ms until it holds, failing after `timeout` with `what`.
async fn eventually<F, Fut>(plane: &Plane, what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "{what}: not after {timeout:?}\n{}",
            plane.dump_logs(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn namespace(client: &Client, name: &str) -> Namespace {
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap()
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.test.kaas.io" },
        "spec": {
            "group": "test.kaas.io",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["min", "max"],
                            "properties": {
                                "min": { "type": "integer", "minimum": 0 },
                                "max": { "type": "integer" },
                                "size": { "type": "string", "enum": ["small", "large"] }
                            },
                            "x-kubernetes-validations": [
                                { "rule": "self.min <= self.max", "message": "min must not exceed max" }
                            ]
                        }
                    }
                }}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn plane_is_real() {
    let plane = Plane::start(PlaneOptions::minimal().crds([widget_crd()]))
        .await
        .expect("plane starts");
    eprintln!(
        "minimal plane started in {:?} at {}",
        plane.startup_time(),
        plane.server_url()
    );
    let client = plane.client();

    // /version reports the pinned Kubernetes version.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, kaas_harness::versions().kubernetes);

    // Garbage collection: deleting the owner removes the dependent.
    namespace(&client, "gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let uid = owner.metadata.uid.unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({ "metadata": {
        "name": "dependent",
        "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid }]
    }}))
    .unwrap();
    cms.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        &plane,
        "dependent garbage-collected",
        Duration::from_secs(60),
        || async { cms.get_opt("dependent").await.unwrap().is_none() },
    )
    .await;

    // Namespace deletion completes (the namespace controller empties and finalizes it).
    let ns = namespace(&client, "doomed").await;
    assert!(
        ns.spec
            .unwrap()
            .finalizers
            .unwrap()
            .contains(&"kubernetes".to_string())
    );
    let doomed: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "content" } })).unwrap();
    doomed.create(&PostParams::default(), &cm).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        &plane,
        "namespace deleted",
        Duration::from_secs(60),
        || async { namespaces.get_opt("doomed").await.unwrap().is_none() },
    )
    .await;

    // CRD schema and CEL rule are enforced by the API server.
    namespace(&client, "crd").await;
    let widgets = dynamic_api(
        &client,
        "test.kaas.io",
        "v1",
        "Widget",
        "widgets",
        Some("crd"),
    );
    let widget = |name: &str, min: i64, max: i64| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "test.kaas.io/v1", "kind": "Widget",
            "metadata": { "name": name }, "spec": { "min": min, "max": max }
        }))
        .unwrap()
    };
    widgets
        .create(&PostParams::default(), &widget("ok", 1, 2))
        .await
        .expect("valid widget");
    let err = widgets
        .create(&PostParams::default(), &widget("bad", 3, 2))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("min must not exceed max"),
        "CEL rejection: {msg}"
    );
    let err = widgets
        .create(&PostParams::default(), &widget("negative", -1, 2))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("spec.min"),
        "schema rejection: {err}"
    );

    // Other identities are subject to RBAC: a ServiceAccount token and a client-certificate user.
    let sa = plane
        .client_for_service_account("crd", "reader")
        .await
        .unwrap();
    let err = Api::<ConfigMap>::namespaced(sa, "crd")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("system:serviceaccount:crd:reader"),
        "SA is forbidden: {err}"
    );
    let alice = plane
        .client_as(Identity::User {
            name: "alice",
            groups: &["dev"],
        })
        .unwrap();
    let err = namespaces
        .get("crd")
        .await
        .map(|_| ())
        .and(Api::<Namespace>::all(alice).get("crd").await.map(|_| ()));
    assert!(
        err.unwrap_err().to_string().contains("\"alice\""),
        "alice is forbidden"
    );
    let admin_by_token = plane.client_for_token(plane.admin_token()).unwrap();
    Api::<Namespace>::all(admin_by_token)
        .get("crd")
        .await
        .expect("static admin token works");

    // A kubeconfig file works for other tools too (kubectl is preinstalled on dev machines).
    assert!(plane.kubeconfig_path().is_file());
}

#[tokio::test]
async fn processes_are_gone_after_drop() {
    let plane = Plane::start(PlaneOptions::minimal())
        .await
        .expect("plane starts");
    let pids = plane.pids();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let dir = plane.dir().to_path_buf();
    drop(plane);
    for (name, pid) in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
            .unwrap_or(false);
        assert!(!alive, "{name} ({pid}) still runs");
    }
    assert!(!dir.exists(), "temporary directory removed");
}
