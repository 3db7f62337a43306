//! The simulated worker nodes of a hosted cluster: pure builders of the `Node` objects kwok keeps
//! alive (labels for pool, zone, region, host and flavor; taints; capacity; kubelet version), and
//! applying a [`NodePlan`] to the workload API server: create, cordon + delete pods + delete
//! (scale down), and rolling `status.nodeInfo.kubeletVersion` (upgrade).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, NodeSystemInfo, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaas_api::cluster::TaintEffect;
use kaas_api::hosted::{HostedControlPlaneSpec, HostedPool, LABEL_HOST, LABEL_POOL};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::plan::{ExistingNode, NodePlan, node_name, normalize};

/// kwok's annotation marking a node as simulated.
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";
/// Pods per node.
pub const MAX_PODS: &str = "110";

/// A stable, distinct id of the simulated host a node runs on (FNV-1a of the node's identity).
pub fn host_id(namespace: &str, cluster: &str, pool: &str, index: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{namespace}/{cluster}/{pool}/{index}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("host-{:012x}", h & 0xffff_ffff_ffff)
}

fn effect(e: TaintEffect) -> &'static str {
    match e {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    }
}

/// The `index`th node of `pool` at kubelet `version`.
pub fn build(
    namespace: &str,
    cluster: &str,
    spec: &HostedControlPlaneSpec,
    pool: &HostedPool,
    index: usize,
    version: &str,
) -> Node {
    let name = node_name(&pool.name, index);
    let mut labels: BTreeMap<String, String> = pool.labels.clone();
    labels.insert(LABEL_POOL.into(), pool.name.clone());
    if !pool.zones.is_empty() {
        labels.insert(
            "topology.kubernetes.io/zone".into(),
            pool.zones[index % pool.zones.len()].clone(),
        );
    }
    if !spec.region.is_empty() {
        labels.insert("topology.kubernetes.io/region".into(), spec.region.clone());
    }
    labels.insert(
        LABEL_HOST.into(),
        host_id(namespace, cluster, &pool.name, index),
    );
    labels.insert(
        "node.kubernetes.io/instance-type".into(),
        pool.flavor.clone(),
    );
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", pool.cpu.to_string()),
        ("memory", pool.memory.clone()),
        ("pods", MAX_PODS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    let taints: Vec<Taint> = pool
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: effect(t.effect).into(),
            time_added: None,
        })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(KWOK_ANNOTATION.into(), "fake".into())])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                kubelet_version: normalize(version),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// What the planner needs of a node.
pub fn existing(node: &Node) -> ExistingNode {
    ExistingNode {
        name: node.metadata.name.clone().unwrap_or_default(),
        pool: node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_POOL))
            .cloned(),
        kubelet_version: node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .filter(|v| !v.is_empty()),
    }
}

/// Whether the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Drains a node the simple way (cordon, delete every pod on it at once; their controllers
/// recreate them elsewhere) and deletes it.
pub async fn drain_and_delete(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .with_context(|| format!("cordoning node {name}"))?;
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .with_context(|| format!("listing the pods of node {name}"))?;
    for pod in on_node {
        let (Some(ns), Some(pod_name)) = (pod.metadata.namespace, pod.metadata.name) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match api
            .delete(
                &pod_name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("deleting pod {ns}/{pod_name} of {name}"));
            }
        }
    }
    match nodes.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting node {name}")),
    }
}

/// Applies a node plan: removals first (highest index first), then creations, then version rolls.
pub async fn apply(
    client: &Client,
    namespace: &str,
    cluster: &str,
    spec: &HostedControlPlaneSpec,
    plan: &NodePlan,
) -> Result<()> {
    for name in &plan.remove {
        tracing::info!(%namespace, %cluster, node = %name, "draining and deleting node");
        drain_and_delete(client, name).await?;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for n in &plan.create {
        let Some(pool) = spec.pools.get(n.pool) else {
            continue;
        };
        let node = build(namespace, cluster, spec, pool, n.index, &plan.version);
        tracing::info!(%namespace, %cluster, node = %n.name, version = %plan.version, "creating node");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("creating node {}", n.name)),
        }
    }
    for name in &plan.upgrade {
        tracing::info!(%namespace, %cluster, node = %name, version = %plan.version, "rolling node version");
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"nodeInfo": {"kubeletVersion": plan.version}}})),
            )
            .await
            .with_context(|| format!("setting the kubelet version of node {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaas_api::cluster::Taint as ApiTaint;

    fn spec() -> HostedControlPlaneSpec {
        HostedControlPlaneSpec {
            runtime: "local".into(),
            version: "1.35.4".into(),
            replicas: 1,
            region: "de-1".into(),
            pools: vec![HostedPool {
                name: "workers".into(),
                replicas: 3,
                zones: vec!["a".into(), "b".into()],
                flavor: "SCS-2V-4".into(),
                cpu: 2,
                memory: "4Gi".into(),
                labels: BTreeMap::from([
                    ("team".to_string(), "x".to_string()),
                    (LABEL_POOL.to_string(), "spoofed".to_string()),
                ]),
                taints: vec![ApiTaint {
                    key: "dedicated".into(),
                    value: Some("db".into()),
                    effect: TaintEffect::NoExecute,
                }],
            }],
            ..HostedControlPlaneSpec::default()
        }
    }

    #[test]
    fn node_labels_capacity_and_version() {
        let s = spec();
        let n = build("ns", "c1", &s, &s.pools[0], 2, "1.35.4");
        let l = n.metadata.labels.as_ref().unwrap();
        assert_eq!(n.metadata.name.as_deref(), Some("workers-2"));
        assert_eq!(l[LABEL_POOL], "workers");
        assert_eq!(l["topology.kubernetes.io/zone"], "a");
        assert_eq!(l["topology.kubernetes.io/region"], "de-1");
        assert_eq!(l["node.kubernetes.io/instance-type"], "SCS-2V-4");
        assert_eq!(l["kubernetes.io/hostname"], "workers-2");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["kubernetes.io/arch"], "amd64");
        assert_eq!(l["team"], "x");
        assert_eq!(
            n.metadata.annotations.as_ref().unwrap()[KWOK_ANNOTATION],
            "fake"
        );
        let st = n.status.as_ref().unwrap();
        let cap = st.capacity.as_ref().unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "4Gi");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(st.allocatable, st.capacity);
        assert_eq!(st.node_info.as_ref().unwrap().kubelet_version, "v1.35.4");
        let t = &n.spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("db"), "NoExecute")
        );
        // Zones round robin, hosts distinct.
        let zones: Vec<String> = (0..4)
            .map(|i| {
                build("ns", "c1", &s, &s.pools[0], i, "1.35.4")
                    .metadata
                    .labels
                    .unwrap()["topology.kubernetes.io/zone"]
                    .clone()
            })
            .collect();
        assert_eq!(zones, ["a", "b", "a", "b"]);
        let hosts: std::collections::BTreeSet<String> = (0..50)
            .map(|i| host_id("ns", "c1", "workers", i))
            .chain((0..50).map(|i| host_id("ns", "c2", "workers", i)))
            .collect();
        assert_eq!(hosts.len(), 100);
        assert_eq!(host_id("ns", "c1", "w", 0), host_id("ns", "c1", "w", 0));
    }

    #[test]
    fn existing_reads_pool_and_version() {
        let s = spec();
        let n = build("ns", "c1", &s, &s.pools[0], 0, "v1.36.3");
        let e = existing(&n);
        assert_eq!(e.name, "workers-0");
        assert_eq!(e.pool.as_deref(), Some("workers"));
        assert_eq!(e.kubelet_version.as_deref(), Some("v1.36.3"));
        assert!(!is_ready(&n));
    }
}
