//! `POST …/clusters/{name}/plan` against a real API server with the operator running: a tenant
//! plans changes of its own cluster with its own credentials (scale, upgrade, a refused change),
//! nothing is written, and another tenant gets 403/404.

mod common;

use std::time::Duration;

use common::*;
use kaas_api::Cluster;
use kube::Api;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_tenant_plans_changes_of_its_cluster_and_no_one_else_can() {
    let env = env(false).await;
    let (a, b) = (Some(env.token_a.as_str()), Some(env.token_b.as_str()));
    let spec = json!({
        "provider": {"name": "dev"},
        "kubernetes": {"version": "1.35.x"},
        "workers": [{"name": "w", "count": 1}]
    });
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters",
            a,
            Some(
                json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
                "metadata": {"name": "p1"}, "spec": spec}),
            ),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    // The operator records the version it rolls out: the plan judges changes against it.
    let admin = env.plane.client();
    let stored: Cluster = until("status.targetVersion", Duration::from_secs(90), || {
        let api = Api::<Cluster>::namespaced(admin.clone(), "tenant-a");
        async move {
            let c = api.get("p1").await.map_err(|e| e.to_string())?;
            c.status
                .as_ref()
                .and_then(|s| s.target_version.as_ref())
                .map(|_| c.clone())
                .ok_or_else(|| "not yet".to_string())
        }
    })
    .await;
    let path = "/api/v1/namespaces/tenant-a/clusters/p1/plan";
    let body = |spec: serde_json::Value| json!({"metadata": {"name": "p1"}, "spec": spec});

    // Scale: +3 machines, nothing rolls.
    let mut scaled = spec.clone();
    scaled["workers"][0]["count"] = 4.into();
    let res = env.call(Method::POST, path, a, Some(body(scaled))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let plan = res.json();
    assert_eq!(plan["refused"], false, "{plan}");
    assert_eq!(plan["specChanges"][0]["path"], "spec.workers[name=w].count");
    assert_eq!(plan["rollout"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["rollout"][0]["change"], "scale");
    assert_eq!(plan["rollout"][0]["machines"], 3);
    assert_eq!(plan["objects"][0]["kind"], "Cluster");
    assert_eq!(plan["objects"][0]["action"], "changed");

    // Upgrade to the next minor: the control plane first, then the pool.
    let mut upgraded = spec.clone();
    upgraded["kubernetes"]["version"] = "1.36.x".into();
    let res = env.call(Method::POST, path, a, Some(body(upgraded))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let plan = res.json();
    assert_eq!(plan["version"]["to"], "v1.36.3", "{plan}");
    assert_eq!(plan["rollout"][0]["part"], "controlPlane");
    assert_eq!(plan["rollout"][1]["name"], "w");
    assert_eq!(plan["rollout"][1]["change"], "roll");

    // Refused: the field errors, still 200 (a plan, nothing written).
    let mut bad = spec.clone();
    bad["workers"][0]["flavor"] = "m9.huge".into();
    let res = env.call(Method::POST, path, a, Some(body(bad))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let plan = res.json();
    assert_eq!(plan["refused"], true, "{plan}");
    assert_eq!(plan["errors"][0]["path"], "spec.workers[0].flavor");

    // No change: an empty plan.
    let res = env
        .call(Method::POST, path, a, Some(body(spec.clone())))
        .await;
    assert_eq!(res.json()["noChange"], true, "{}", res.text);

    // Nothing was written.
    let after = Api::<Cluster>::namespaced(admin.clone(), "tenant-a")
        .get("p1")
        .await
        .unwrap();
    assert_eq!(after.spec, stored.spec);

    // Another tenant, and a cluster that does not exist.
    let res = env
        .call(Method::POST, path, b, Some(body(spec.clone())))
        .await;
    assert!(
        res.status == 403 || res.status == 404,
        "{} {}",
        res.status,
        res.text
    );
    assert!(!res.text.contains("specChanges"), "{}", res.text);
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters/nope/plan",
            a,
            Some(json!({"metadata": {"name": "nope"}, "spec": spec})),
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    // The URL decides the name.
    let res = env
        .call(
            Method::POST,
            path,
            a,
            Some(json!({"metadata": {"name": "other"}, "spec": {}})),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    // Without a token: 401.
    let res = env
        .call(Method::POST, path, None, Some(body(json!({}))))
        .await;
    assert_eq!(res.status, 401, "{}", res.text);
}
