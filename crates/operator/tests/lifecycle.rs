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

async fn stack_bundle_in_workload(client: &kube::Client) -> Option<String> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &capi_ns())
        .get("life-kubeconfig")
        .await
        .ok()?;
    let workload =
        kaas_operator::backend::client_from_kubeconfig(&secret.data?.get("value")?.0, None)
            .await
            .ok()?;
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(workload, "kube-system")
        .get("kaas-stack")
        .await
        .ok()?;
    cm.data?.get("bundle").cloned()
}

/// A Ready cluster whose inputs did not change since its last full pass is reconciled without a
/// single request to the API server (`crate::settled`), and its status stays as it is.
async fn settled_costs_nothing(api: &Api<Cluster>, port: u16) {
    const SETTLED: &str = "kaas_operator_reconciles_settled_total";
    const NO_REQUEST: &str = "kaas_api_requests_per_reconcile_bucket{le=\"0.0\",result=\"ok\"}";
    // One full pass after Ready may still be due (the first compliance check writes the status).
    let before = until("a settled reconcile", Duration::from_secs(60), || async {
        let m = scrape(port).await;
        if sample(&m, SETTLED) >= 1.0 {
            Ok(m)
        } else {
            Err(m
                .lines()
                .filter(|l| l.starts_with("kaas_api_requests_per_reconcile"))
                .collect::<Vec<_>>()
                .join("; "))
        }
    })
    .await;
    let rv = api.get("life").await.unwrap().resource_version();
    let after = until(
        "three more settled reconciles",
        Duration::from_secs(60),
        || async {
            let m = scrape(port).await;
            let n = sample(&m, SETTLED) - sample(&before, SETTLED);
            if n >= 3.0 {
                Ok(m)
            } else {
                Err(format!("{n} settled reconciles"))
            }
        },
    )
    .await;
    let quiet = sample(&after, NO_REQUEST) - sample(&before, NO_REQUEST);
    assert!(
        quiet >= 3.0,
        "settled reconciles sent no request: {quiet} of them without one"
    );
    assert_eq!(
        api.get("life").await.unwrap().resource_version(),
        rv,
        "nothing was written to the settled cluster"
    );

    // Who may see the tenant's Cluster API objects follows the tenant's RoleBindings at once,
    // settled or not: a new binding of kaas-tenant reaches the viewer binding.
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
    let client = api.clone().into_client();
    let rb = RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some("late-viewer".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: kaas_operator::install::TENANT_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: "late-user".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), NS)
        .create(&Default::default(), &rb)
        .await
        .unwrap();
    let capi_ns = kaas_render::capi_namespace("dev", NS);
    let viewer: Api<RoleBinding> = Api::namespaced(client, &capi_ns);
    until(
        "the viewer binding names the new subject",
        Duration::from_secs(30),
        || async {
            let b = viewer
                .get(kaas_operator::install::CAPI_VIEWER_BINDING)
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = b
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.name)
                .collect();
            if names.iter().any(|n| n == "late-user") {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn create_scale_upgrade_protect_delete() {
    let plane = plane(true).await;
    let client = plane.client();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "kaas-provider-dev");
    for b in ["dev-addons-1-35", "dev-addons-1-36"] {
        cms.patch(
            b,
            &kube::api::PatchParams::apply("test").force(),
            &kube::api::Patch::Apply(kaas_harness::in_memory_addon_bundle(b, "kaas-provider-dev")),
        )
        .await
        .unwrap();
    }
    let mut provider: kaas_api::Provider = serde_yaml::from_str(PROVIDER).unwrap();
    for v in &mut provider.spec.kubernetes_versions {
        v.stack.addons = match v.version.as_str() {
            "1.35.4" => Some("dev-addons-1-35".into()),
            "1.36.3" => Some("dev-addons-1-36".into()),
            _ => None,
        };
    }
    kaas_operator::install::provider(&client, &provider, "")
        .await
        .unwrap();
    kaas_operator::install::namespace(&client, NS, &[])
        .await
        .unwrap();
    // Settled clusters requeued every 2 s instead of 5 minutes, to see what such a reconcile costs.
    let port = free_port();
    let cfg = kaas_operator::Config {
        metrics_addr: Some(([127, 0, 0, 1], port).into()),
        concurrency: 8,
        settled_requeue: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let _op = tokio::spawn(kaas_operator::run(client.clone(), cfg));
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
    settled_costs_nothing(&api, port).await;
    // The diagnosis shows every Machine, each ok.
    let d = kaas_diagnose::diagnose(&client, NS, "life").await.unwrap();
    let shown: std::collections::BTreeMap<&str, kaas_diagnose::NodeStatus> = d
        .tree
        .walk()
        .into_iter()
        .filter(|n| n.kind == "Machine")
        .map(|n| (n.name.as_str(), n.status))
        .collect();
    let ms = machines(&client).await;
    assert!(!ms.is_empty());
    for m in &ms {
        assert_eq!(
            shown.get(m.name_any().as_str()),
            Some(&kaas_diagnose::NodeStatus::Ok),
            "{}",
            d.to_text()
        );
    }
    // Extensions reach the in-memory cluster's fake API server.
    until(
        "ExtensionsReady on the in-memory cluster",
        Duration::from_secs(60),
        || async {
            let c = api.get("life").await.map_err(|e| e.to_string())?;
            let ready = condition(&c, "ExtensionsReady").is_some_and(|x| x.0 == "True");
            if ready
                && stack_bundle_in_workload(&client).await.as_deref() == Some("dev-addons-1-35")
            {
                Ok(())
            } else {
                Err(summary(&c))
            }
        },
    )
    .await;
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

    // The addons follow the control plane to the new version's bundle.
    until(
        "bundle of 1.36 applied",
        Duration::from_secs(60),
        || async {
            match stack_bundle_in_workload(&client).await.as_deref() {
                Some("dev-addons-1-36") => Ok(()),
                other => Err(format!("{other:?}")),
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
