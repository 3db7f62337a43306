//! `kaas adopt` against the real plane with real Cluster API (in-memory backend): a Cluster API
//! cluster created directly from the upstream in-memory template (class in its own namespace)
//! is adopted as an SCS Cluster and reaches Ready under kaas with the very same Machines (names
//! and uids) and MachineSets — no rollout. A cluster kaas cannot express is refused with its
//! reason and nothing written; an SCS Cluster pointing at a Cluster API cluster the provider did
//! not hand over is not accepted and the Cluster API cluster stays untouched. Deleting the
//! adopted SCS Cluster deletes the Cluster API cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use kaas_api::{ANNOTATION_ADOPT_FROM, ANNOTATION_ADOPTED_BY, Cluster};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machine::Machine;
use kaas_harness::{apply_object, apply_yaml, dynamic_api, in_memory_cluster};
use kaas_operator::adopt::{self, Request};
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

const LEGACY: &str = "legacy-capi";
const TENANT: &str = "tenant-adopt";
const VERSION: &str = "v1.35.4";

fn selector(name: &str) -> ListParams {
    ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={name}"))
}

/// Machine name → uid, and whether all are Running.
async fn machines(client: &Client, cluster: &str) -> (BTreeMap<String, String>, usize) {
    let ms = Api::<Machine>::namespaced(client.clone(), LEGACY)
        .list(&selector(cluster))
        .await
        .unwrap()
        .items;
    let running = ms
        .iter()
        .filter(|m| {
            m.status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| format!("{p:?}") == "Running")
        })
        .count();
    (
        ms.iter()
            .map(|m| (m.name_any(), m.uid().unwrap_or_default()))
            .collect(),
        running,
    )
}

async fn machine_sets(client: &Client, cluster: &str) -> BTreeSet<String> {
    dynamic_api(
        client,
        "cluster.x-k8s.io",
        "v1beta2",
        "MachineSet",
        "machinesets",
        Some(LEGACY),
    )
    .list(&selector(cluster))
    .await
    .unwrap()
    .items
    .iter()
    .map(DynamicObject::name_any)
    .collect()
}

fn adopt_from(name: &str, from: &str) -> Cluster {
    let mut c = cluster(
        name,
        TENANT,
        "provider: {name: dev}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\nworkers: [{name: md-0, count: 2}]",
    );
    c.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_ADOPT_FROM.to_string(),
        from.to_string(),
    )]));
    c
}

#[tokio::test]
async fn adopting_keeps_every_machine_and_reaches_ready() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, LEGACY, &[])
        .await
        .unwrap();
    kaas_operator::install::namespace(&client, TENANT, &[])
        .await
        .unwrap();

    // A Cluster API cluster made directly from the upstream template, its class in its own
    // namespace (not kaas' provider namespace), and a paused one on a version `dev` does not offer.
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    apply_yaml(&client, &class, LEGACY).await.unwrap();
    let old = in_memory_cluster(plane.artifacts(), "old", LEGACY, VERSION, 1, 2).unwrap();
    apply_yaml(&client, &old, LEGACY).await.unwrap();
    let odd = in_memory_cluster(plane.artifacts(), "odd", LEGACY, "v1.33.1", 1, 1).unwrap();
    let mut odd: DynamicObject = serde_yaml::from_str(&odd).unwrap();
    odd.data["spec"]["paused"] = true.into();
    apply_object(&client, &odd, LEGACY).await.unwrap();

    let (before, _) = until(
        "3 Machines Running in the existing cluster",
        Duration::from_secs(300),
        || async {
            let (ms, running) = machines(&client, "old").await;
            if ms.len() == 3 && running == 3 {
                Ok((ms, running))
            } else {
                Err(format!("{} machines, {running} running", ms.len()))
            }
        },
    )
    .await;
    let sets_before = machine_sets(&client, "old").await;
    assert_eq!(sets_before.len(), 1, "{sets_before:?}");

    // Refused: the version is not offered. Nothing is written.
    let capis = Api::<CapiCluster>::namespaced(client.clone(), LEGACY);
    let odd_before = capis.get("odd").await.unwrap();
    let req = Request {
        namespace: LEGACY.into(),
        name: "odd".into(),
        provider: "dev".into(),
        tenant: TENANT.into(),
        scs_name: None,
    };
    let v = adopt::plan(&client, &req).await.unwrap();
    assert!(!v.ok());
    assert!(
        v.refusals
            .iter()
            .any(|r| r
                .starts_with("spec.topology.version: v1.33.1 is not offered by provider \"dev\"")),
        "{:?}",
        v.refusals
    );
    assert!(adopt::apply(&client, &req, &v).await.is_err());
    let scs: Api<Cluster> = Api::namespaced(client.clone(), TENANT);
    assert!(scs.get_opt("odd").await.unwrap().is_none());
    assert_eq!(
        capis.get("odd").await.unwrap().resource_version(),
        odd_before.resource_version()
    );

    // Adopted, as SCS Cluster `web`.
    let req = Request {
        namespace: LEGACY.into(),
        name: "old".into(),
        provider: "dev".into(),
        tenant: TENANT.into(),
        scs_name: Some("web".into()),
    };
    let v = adopt::plan(&client, &req).await.unwrap();
    assert!(v.ok(), "{:?}", v.refusals);
    adopt::apply(&client, &req, &v).await.unwrap();
    let capi = capis.get("old").await.unwrap();
    assert_eq!(
        capi.annotations()
            .get(ANNOTATION_ADOPTED_BY)
            .map(String::as_str),
        Some("tenant-adopt/web")
    );
    // Adopting again is refused (the SCS Cluster exists).
    let again = adopt::plan(&client, &req).await.unwrap();
    assert!(
        again.refusals.iter().any(|r| r.contains("exists already")),
        "{:?}",
        again.refusals
    );

    // Tenants pointing at Cluster API clusters not handed to them.
    let odd_before = capis.get("odd").await.unwrap();
    create(&client, &adopt_from("sneaky", &format!("{LEGACY}/odd"))).await;
    create(&client, &adopt_from("thief", &format!("{LEGACY}/old"))).await;

    let _op = operator(client.clone(), &[]);

    let ready = until(
        "adopted cluster Ready",
        Duration::from_secs(300),
        || async {
            let c = scs.get("web").await.map_err(|e| e.to_string())?;
            match condition(&c, "Ready") {
                Some((s, _, _)) if s == "True" => Ok(c),
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
    let st = ready.status.clone().unwrap();
    assert_eq!(st.kubernetes_version.as_deref(), Some(VERSION));
    assert_eq!(st.workers.len(), 1, "{:?}", st.workers);
    assert_eq!(
        (
            st.workers[0].name.as_str(),
            st.workers[0].desired,
            st.workers[0].ready
        ),
        ("md-0", 2, 2)
    );
    assert_eq!(
        st.kubeconfig_secret_ref.as_ref().map(|s| s.name.as_str()),
        Some("web-kubeconfig")
    );
    // Nothing in kaas' derived namespace: the cluster is managed where it is.
    let derived = kaas_render::capi_namespace("dev", TENANT);
    assert!(
        Api::<CapiCluster>::namespaced(client.clone(), &derived)
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
    );

    // `kaas describe` follows the confirmed adoption to the machines where they are.
    let d = kaas_diagnose::diagnose(&client, TENANT, "web")
        .await
        .unwrap();
    assert_eq!(d.cluster.capi_namespace.as_deref(), Some(LEGACY));
    let text = serde_json::to_string(&d.tree).unwrap();
    for name in before.keys() {
        assert!(
            text.contains(name.as_str()),
            "{name} missing in the diagnosis"
        );
    }

    // No rollout: the same Machines (names and uids) and MachineSets over a settling period.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(30) {
        let (now, running) = machines(&client, "old").await;
        assert_eq!(now, before, "Machines changed after adoption");
        assert_eq!(running, 3);
        assert_eq!(machine_sets(&client, "old").await, sets_before);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let capi = capis.get("old").await.unwrap();
    let topo = capi.spec.topology.as_ref().unwrap();
    assert_eq!(
        (
            topo.class_ref.name.as_str(),
            topo.class_ref.namespace.as_deref()
        ),
        ("in-memory", Some(LEGACY)),
        "the class reference is kept"
    );
    assert_eq!(topo.version, VERSION);
    assert_eq!(
        capi.labels()
            .get("scs.community/cluster")
            .map(String::as_str),
        Some("web")
    );
    // The operator is the only owner of the topology.
    let owners: Vec<String> = capi
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get("f:topology"))
                    .is_some()
            })
        })
        .filter_map(|e| e.manager.clone())
        .collect();
    assert_eq!(owners, ["kaas-operator"], "owners of spec.topology");

    // The tampering clusters: not accepted, and the Cluster API clusters untouched by them.
    for (name, target) in [("sneaky", "odd"), ("thief", "old")] {
        let c = until(
            &format!("{name} not accepted"),
            Duration::from_secs(60),
            || async {
                let c = scs.get(name).await.map_err(|e| e.to_string())?;
                match condition(&c, "SpecAccepted") {
                    Some((s, _, m)) if s == "False" => Ok((c, m)),
                    _ => Err(summary(&c)),
                }
            },
        )
        .await;
        assert!(
            c.1.contains("adoption not confirmed by the provider")
                && c.1.contains(&format!("{LEGACY}/{target}")),
            "{name}: {}",
            c.1
        );
        assert!(c.0.status.as_ref().unwrap().kubeconfig_secret_ref.is_none());
    }
    assert_eq!(
        capis.get("odd").await.unwrap().resource_version(),
        odd_before.resource_version(),
        "the un-adopted Cluster API cluster was written"
    );
    let tenant_secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), TENANT);
    assert!(
        tenant_secrets
            .get_opt("thief-kubeconfig")
            .await
            .unwrap()
            .is_none()
    );
    // Deleting a tampering cluster deletes nothing of the cluster it pointed at.
    scs.delete("thief", &DeleteParams::default()).await.unwrap();
    until("thief deleted", Duration::from_secs(60), || async {
        match scs.get_opt("thief").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(summary(&c)),
        }
    })
    .await;
    assert!(
        capis
            .get("old")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert_eq!(machines(&client, "old").await.0, before);

    // Deleting the adopted SCS Cluster deletes the Cluster API cluster, like any kaas cluster.
    scs.delete("web", &DeleteParams::default()).await.unwrap();
    until(
        "adopted cluster deleted",
        Duration::from_secs(300),
        || async {
            let c = scs.get_opt("web").await.map_err(|e| e.to_string())?;
            let capi = capis.get_opt("old").await.map_err(|e| e.to_string())?;
            let (ms, _) = machines(&client, "old").await;
            if c.is_none() && capi.is_none() && ms.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "scs={} capi={} machines={}",
                    c.map(|c| summary(&c)).unwrap_or_default(),
                    capi.is_some(),
                    ms.len()
                ))
            }
        },
    )
    .await;
    assert!(capis.get_opt("odd").await.unwrap().is_some());
}
