//! The static compliance suite (`kaas_check::run_static`) on a cluster with 1000 nodes, next to one
//! `LIST nodes` against the same API server in the same run.
//!
//! `cargo bench -p kaas-check --bench static_suite -- --warm-up-time 1 --measurement-time 5`
//!
//! The cluster is a kaas-harness plane (etcd, kube-apiserver, kube-controller-manager) with 1000
//! Node objects (3 control-plane, 997 workers; zone/region labels; a status shaped like a real
//! kubelet's: conditions, addresses, capacity, node info, 20 images), a default StorageClass and
//! labelled namespaces, so every static check has real work to do.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kaas_check::{CheckOptions, Outcome};
use kaas_harness::{Plane, PlaneOptions};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const NODES: usize = 1000;

fn node_status(i: usize) -> serde_json::Value {
    let now = "2026-05-20T10:00:00Z";
    let images: Vec<_> = (0..20)
        .map(|j| {
            json!({
                "names": [
                    format!("registry.example.com/team-{j}/service@sha256:{:064x}", i * 100 + j),
                    format!("registry.example.com/team-{j}/service:v1.{j}.{i}")
                ],
                "sizeBytes": 50_000_000 + j * 1_000_000
            })
        })
        .collect();
    let cond = |t: &str, s: &str, r: &str| json!({ "type": t, "status": s, "reason": r, "message": format!("kubelet {r}"), "lastHeartbeatTime": now, "lastTransitionTime": now });
    json!({ "status": {
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady")
        ],
        "addresses": [
            { "type": "InternalIP", "address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256) },
            { "type": "Hostname", "address": format!("node-{i:04}") }
        ],
        "capacity": { "cpu": "16", "memory": "65838292Ki", "pods": "110", "ephemeral-storage": "101430960Ki" },
        "allocatable": { "cpu": "15800m", "memory": "64712020Ki", "pods": "110", "ephemeral-storage": "93478772582" },
        "nodeInfo": {
            "machineID": format!("{i:032x}"), "systemUUID": format!("{i:032x}"), "bootID": format!("{i:032x}"),
            "kernelVersion": "6.8.0-45-generic", "osImage": "Ubuntu 24.04.1 LTS", "containerRuntimeVersion": "containerd://1.7.22",
            "kubeletVersion": "v1.36.3", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
        },
        "images": images
    }})
}

async fn populate(client: &Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..NODES)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let name = format!("node-{i:04}");
                let mut labels = json!({
                    "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
                    "topology.kubernetes.io/region": "region-1",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "SCS-16V-64"
                });
                if i < 3 {
                    labels["node-role.kubernetes.io/control-plane"] = json!("");
                }
                let n: Node = serde_json::from_value(json!({
                    "metadata": { "name": name, "labels": labels },
                    "spec": { "providerID": format!("openstack:///{i:08x}") }
                }))
                .unwrap();
                nodes.create(&PostParams::default(), &n).await.unwrap();
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(node_status(i)),
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": { "name": "standard", "annotations": { "storageclass.kubernetes.io/is-default-class": "true" } },
        "provisioner": "cinder.csi.openstack.org"
    }))
    .unwrap();
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "pod-security.kubernetes.io/enforce": "baseline" } } })),
        )
        .await
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plane = rt
        .block_on(Plane::start(PlaneOptions::minimal()))
        .expect("plane (plane/build.sh)");
    let client = rt.block_on(async { plane.client() });
    let t = std::time::Instant::now();
    rt.block_on(populate(&client));
    eprintln!(
        "created {NODES} nodes with status in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let opts = CheckOptions {
        reference_date: Some(jiff::civil::date(2026, 5, 20)),
        ..CheckOptions::default()
    };
    // Sanity: the suite sees the cluster as intended.
    let report = rt.block_on(kaas_check::run_static(client.clone(), &opts));
    let nd = report.result("node-distribution-check").unwrap();
    assert_eq!(nd.outcome, Outcome::Pass, "{}", report.table());
    assert!(nd.summary.contains("all 1000 node(s)"), "{}", nd.summary);
    let list_bytes = rt.block_on(async {
        let req = http::Request::get("/api/v1/nodes")
            .body(Vec::new())
            .unwrap();
        client.request_text(req).await.unwrap().len()
    });
    eprintln!(
        "one LIST nodes response: {:.1} MB JSON",
        list_bytes as f64 / 1e6
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let mut g = c.benchmark_group("static suite, 1000 nodes");
    g.sample_size(20);
    g.bench_function(
        "run_static (6 checks incl. SelfSubjectAccessReviews)",
        |b| b.iter(|| black_box(rt.block_on(kaas_check::run_static(client.clone(), &opts)))),
    );
    g.bench_function("baseline: one LIST nodes (typed, 1000 nodes)", |b| {
        b.iter(|| black_box(rt.block_on(nodes.list(&ListParams::default())).unwrap()))
    });
    g.bench_function(
        "LIST nodes metadata-only, pages of 500 (what the node check does)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut lp = ListParams::default().limit(500);
                    let mut n = 0;
                    loop {
                        let page = nodes.list_metadata(&lp).await.unwrap();
                        n += page.items.len();
                        match page.metadata.continue_.filter(|c| !c.is_empty()) {
                            Some(c) => lp = lp.continue_token(&c),
                            None => break black_box(n),
                        }
                    }
                })
            })
        },
    );
    g.finish();
    drop(client);
    drop(plane);
}

criterion_group!(benches, bench);
criterion_main!(benches);
