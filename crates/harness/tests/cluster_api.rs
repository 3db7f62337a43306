//! The proof that real Cluster API runs here: a Cluster on the upstream in-memory ClusterClass
//! (1 control plane, 2 workers) gets an initialized, available control plane and running Machines;
//! deleting it removes every Machine.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kaas_harness::{
    Plane, PlaneOptions, apply_yaml, dynamic_api, in_memory_cluster, in_memory_cluster_class,
};
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "proof";

fn condition(obj: &DynamicObject, t: &str) -> Option<String> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

fn machines(client: &Client) -> Api<DynamicObject> {
    dynamic_api(
        client,
        "cluster.x-k8s.io",
        "v1beta2",
        "Machine",
        "machines",
        Some(NS),
    )
}

fn summary(cluster: &Option<DynamicObject>, ms: &[DynamicObject]) -> String {
    let conditions: Vec<String> = cluster
        .as_ref()
        .and_then(|c| c.data["status"]["conditions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            format!(
                "{}={} ({})",
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    let phases: Vec<(String, Value)> = ms
        .iter()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap_or_default(),
                m.data["status"]["phase"].clone(),
            )
        })
        .collect();
    format!("cluster conditions {conditions:?}; machines {phases:?}")
}

#[tokio::test]
async fn a_cluster_on_the_in_memory_class_becomes_available_and_deletes_cleanly() {
    let plane = Plane::start(PlaneOptions::with_capi())
        .await
        .expect("plane with Cluster API starts");
    eprintln!(
        "plane with Cluster API started in {:?}",
        plane.startup_time()
    );
    let client = plane.client();
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": NS } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    // The upstream ClusterClass and templates, then a Cluster from the upstream template.
    let class = in_memory_cluster_class(plane.artifacts()).unwrap();
    apply_yaml(&client, &class, NS)
        .await
        .expect("in-memory ClusterClass applies");
    let version = kaas_harness::versions().kubernetes;
    let cluster = in_memory_cluster(plane.artifacts(), "proof", NS, &version, 1, 2).unwrap();
    apply_yaml(&client, &cluster, NS)
        .await
        .expect("Cluster applies (through the Cluster API webhooks)");

    let clusters = dynamic_api(
        &client,
        "cluster.x-k8s.io",
        "v1beta2",
        "Cluster",
        "clusters",
        Some(NS),
    );
    let machines = machines(&client);
    let start = Instant::now();
    let limit = Duration::from_secs(300);
    loop {
        let c = clusters.get_opt("proof").await.unwrap();
        let ms = machines.list(&ListParams::default()).await.unwrap().items;
        let running = ms
            .iter()
            .filter(|m| m.data["status"]["phase"] == "Running")
            .count();
        let initialized = c
            .as_ref()
            .is_some_and(|c| c.data["status"]["initialization"]["controlPlaneInitialized"] == true);
        let available = c
            .as_ref()
            .and_then(|c| condition(c, "Available"))
            .as_deref()
            == Some("True");
        if initialized && available && running == 3 && ms.len() == 3 {
            eprintln!(
                "Cluster available, control plane initialized, 3 Machines Running after {:?}",
                start.elapsed()
            );
            break;
        }
        assert!(
            start.elapsed() < limit,
            "Cluster not available with 3 running Machines after {limit:?}: {}\n{}",
            summary(&c, &ms),
            plane.dump_logs(30)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Reading it at the served, non-storage version v1beta1 goes through the core manager's
    // conversion webhook (CRD conversion pointed at 127.0.0.1 with the plane's CA).
    let old = dynamic_api(
        &client,
        "cluster.x-k8s.io",
        "v1beta1",
        "Cluster",
        "clusters",
        Some(NS),
    );
    let converted = old.get("proof").await.expect("v1beta1 read converts");
    assert_eq!(
        converted.data["spec"]["topology"]["class"], "in-memory",
        "v1beta1 shape: {:?}",
        converted.data["spec"]
    );

    // Deleting the Cluster deletes every Machine (and the Cluster itself).
    clusters
        .delete("proof", &DeleteParams::default())
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let c = clusters.get_opt("proof").await.unwrap();
        let ms = machines.list(&ListParams::default()).await.unwrap().items;
        if c.is_none() && ms.is_empty() {
            eprintln!(
                "Cluster and all Machines deleted after {:?}",
                start.elapsed()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "deletion did not finish: {}\n{}",
            summary(&c, &ms),
            plane.dump_logs(30)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The managers can be stopped and started again (the API server keeps running). While they
    // are stopped, their webhooks fail closed.
    plane.stop_capi();
    assert!(!plane.capi_running());
    assert_eq!(
        plane.pids().len(),
        3,
        "only etcd, kube-apiserver, kube-controller-manager: {:?}",
        plane.pids()
    );
    let err = apply_yaml(&client, &cluster, NS)
        .await
        .expect_err("no webhook server while stopped");
    assert!(
        format!("{err:#}").contains("failed calling webhook"),
        "{err:#}"
    );
    let restart = Instant::now();
    plane
        .start_capi()
        .await
        .expect("Cluster API managers start again");
    assert!(plane.capi_running());
    eprintln!("Cluster API managers restarted in {:?}", restart.elapsed());
    apply_yaml(&client, &cluster, NS)
        .await
        .expect("webhooks answer again");
    clusters
        .delete("proof", &DeleteParams::default())
        .await
        .unwrap();
}
