//! End to end against the real plane with real Cluster API (in-memory backend): create → Ready,
//! scale a pool 1→3, upgrade one minor, deletion protection, delete → everything gone.

mod common;

use std::time::Duration;

use common::*;
use kaas_api::Cluster;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machine::Machine;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const NS: &str = "tenant-life";

fn capi_ns() -> String {
    kaas_render::capi_namespace("dev", NS)
}

async fn machines(client: &kube::Client) -> Vec<Machine> {
    Api::<Machine>::namespaced(client.clone(), &capi_ns())
        .list(&ListParams::default().labels("cluster.x-k8s.io/cluster-name=life"))
        .await
        .unwrap()
        .items
}

fn running_workers(ms: &[Machine], version: &str) -> usize {
    ms.iter()
        .filter(|m| !m.labels().contains_key("cluster.x-k8s.io/control-plane"))
        .filter(|m| {
            m.status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| format!("{p:?}") == "Running")
        })
        .filter(|m| m.spec.version.as_deref() == Some(version))
        .count()
}

#[tokio::test]
async fn create_scale_upgrade_protect_delete() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, NS, &[])
        .await
        .unwrap();
    let _op = operator(client.clone(), &[]);
    let api: Api<Cluster> = Api::namespaced(client.clone(), NS);

    // Create: 1 control plane, 1 worker, version 1.35.x → v1.35.4.
    create(&client, &cluster("life", NS, "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: pool, count: 1}]")).await;
    let c = until("Ready after create", Duration::from_secs(300), || async {
        let c = api.get("life").await.map_err(|e| e.to_string())?;
        match condition(&c, "Ready") {
            Some((s, _, _)) if s == "True" => Ok(c),
            _ => Err(summary(&c)),
        }
    })
    .await;
    let st = c.status.clone().unwrap();
    assert_eq!(st.kubernetes_version.as_deref(), Some("v1.35.4"));
    assert_eq!(st.observed_generation, c.metadata.generation);
    assert_eq!(
        st.kubeconfig_secret_ref.as_ref().unwrap().name,
        "life-kubeconfig"
    );
    assert!(st.api_endpoint.is_some());
    let capi = Api::<CapiCluster>::namespaced(client.clone(), &capi_ns())
        .get("life")
        .await
        .unwrap();
    assert_eq!(capi.spec.topology.as_ref().unwrap().version, "v1.35.4");
    // The kubeconfig reached the tenant namespace.
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
        .get("life-kubeconfig")
        .await
        .unwrap();
    assert!(secret.data.unwrap().contains_key("value"));

    // Scale the pool 1 → 3.
    patch_spec(
        &client,
        NS,
        "life",
        json!({"workers": [{"name": "pool", "count": 3}]}),
    )
    .await;
    until(
        "3 running workers and Ready",
        Duration::from_secs(300),
        || async {
            let ms = machines(&client).await;
            let c = api.get("life").await.map_err(|e| e.to_string())?;
            let ready = condition(&c, "Ready").is_some_and(|r| r.0 == "True");
            let pool_ready = c
                .status
                .as_ref()
                .and_then(|s| s.workers.first().map(|w| w.ready))
                .unwrap_or(0);
            if running_workers(&ms, "v1.35.4") == 3 && ready && pool_ready == 3 {
                Ok(())
            } else {
                Err(format!(
                    "workers running={} pool_ready={pool_ready} {}",
                    running_workers(&ms, "v1.35.4"),
                    summary(&c)
                ))
            }
        },
    )
    .await;

    // A skip of a minor is refused with a clear message and changes nothing.
    patch_spec(
        &client,
        NS,
        "life",
        json!({"kubernetes": {"version": "1.37.2"}}),
    )
    .await;
    until(
        "refused upgrade reported",
        Duration::from_secs(60),
        || async {
            let c = api.get("life").await.map_err(|e| e.to_string())?;
            match condition(&c, "SpecAccepted") {
                Some((s, r, m))
                    if s == "False"
                        && r == "InvalidSpec"
                        && m.contains("spec.kubernetes.version") =>
                {
                    Ok(())
                }
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
    let capi = Api::<CapiCluster>::namespaced(client.clone(), &capi_ns())
        .get("life")
        .await
        .unwrap();
    assert_eq!(
        capi.spec.topology.as_ref().unwrap().version,
        "v1.35.4",
        "a refused spec must not be applied"
    );

    // Upgrade one minor: 1.35 → 1.36.
    patch_spec(
        &client,
        NS,
        "life",
        json!({"kubernetes": {"version": "1.36.x"}}),
    )
    .await;
    until(
        "upgraded to v1.36.3 and Ready",
        Duration::from_secs(420),
        || async {
            let c = api.get("life").await.map_err(|e| e.to_string())?;
            let ms = machines(&client).await;
            let s = c.status.clone().unwrap_or_default();
            let cp_new = ms
                .iter()
                .filter(|m| m.labels().contains_key("cluster.x-k8s.io/control-plane"))
                .all(|m| m.spec.version.as_deref() == Some("v1.36.3"));
            if s.kubernetes_version.as_deref() == Some("v1.36.3")
                && condition(&c, "Ready").is_some_and(|r| r.0 == "True")
                && cp_new
                && running_workers(&ms, "v1.36.3") == 3
            {
                Ok(())
            } else {
                Err(format!(
                    "machines={:?} {}",
                    ms.iter()
                        .map(|m| (m.name_any(), m.spec.version.clone()))
                        .collect::<Vec<_>>(),
                    summary(&c)
                ))
            }
        },
    )
    .await;

    // Deletion protection: refused at admission.
    patch_spec(&client, NS, "life", json!({"deletionProtection": true})).await;
    let err = api
        .delete("life", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("deletionProtection is true"),
        "{err}"
    );
    patch_spec(&client, NS, "life", json!({"deletionProtection": false})).await;

    // Delete: the finalizer waits for Cluster API, then everything is gone.
    api.delete("life", &DeleteParams::default()).await.unwrap();
    until(
        "cluster and all Cluster API objects gone",
        Duration::from_secs(300),
        || async {
            let scs = api.get_opt("life").await.map_err(|e| e.to_string())?;
            let capi = Api::<CapiCluster>::namespaced(client.clone(), &capi_ns())
                .get_opt("life")
                .await
                .map_err(|e| e.to_string())?;
            let ms = machines(&client).await;
            if scs.is_none() && capi.is_none() && ms.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "scs={} capi={} machines={} {}",
                    scs.is_some(),
                    capi.is_some(),
                    ms.len(),
                    scs.map(|c| summary(&c)).unwrap_or_default()
                ))
            }
        },
    )
    .await;
}
