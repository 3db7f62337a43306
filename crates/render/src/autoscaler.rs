//! The cluster-autoscaler's Cluster API provider: the capacity annotations that let it scale a
//! MachineDeployment up from zero nodes (it has no node to copy, so it builds one from these).
//! Annotation names as the upstream Cluster API provider of cluster-autoscaler reads them; the
//! values come from the offering's flavor of the pool.

use std::collections::BTreeMap;

use kaas_api::cluster::TaintEffect;
use kaas_validate::offering::Pool;

/// Prefix of the scale-from-zero capacity annotations.
const CAPACITY: &str = "capacity.cluster-autoscaler.kubernetes.io/";
/// CPUs of a node.
pub const ANNOTATION_CPU: &str = "capacity.cluster-autoscaler.kubernetes.io/cpu";
/// Memory of a node (a quantity).
pub const ANNOTATION_MEMORY: &str = "capacity.cluster-autoscaler.kubernetes.io/memory";
/// Ephemeral disk of a node (a quantity).
pub const ANNOTATION_EPHEMERAL_DISK: &str =
    "capacity.cluster-autoscaler.kubernetes.io/ephemeral-disk";
/// Pods per node.
pub const ANNOTATION_MAX_PODS: &str = "capacity.cluster-autoscaler.kubernetes.io/maxPods";
/// GPUs per node.
pub const ANNOTATION_GPU_COUNT: &str = "capacity.cluster-autoscaler.kubernetes.io/gpu-count";
/// The extended resource of the GPUs (device plugin).
pub const ANNOTATION_GPU_TYPE: &str = "capacity.cluster-autoscaler.kubernetes.io/gpu-type";
/// Node labels, `k=v,k=v`.
pub const ANNOTATION_LABELS: &str = "capacity.cluster-autoscaler.kubernetes.io/labels";
/// Node taints, `k=v:Effect,k:Effect`.
pub const ANNOTATION_TAINTS: &str = "capacity.cluster-autoscaler.kubernetes.io/taints";

/// Pods per node: kaas' stacks keep the kubelet's default.
pub const KUBELET_MAX_PODS: i32 = 110;

/// The capacity annotations of a MachineDeployment of `pool` that may be at 0 nodes. Empty when
/// the pool's flavor is not in the offering (validation refused such a cluster before).
pub fn capacity_annotations(pool: &Pool) -> BTreeMap<String, String> {
    let Some(flavor) = &pool.offered else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::from([
        (ANNOTATION_CPU.to_string(), flavor.cpu.to_string()),
        (ANNOTATION_MEMORY.to_string(), flavor.memory.clone()),
        (
            ANNOTATION_MAX_PODS.to_string(),
            KUBELET_MAX_PODS.to_string(),
        ),
    ]);
    if let Some(disk) = flavor.disk_gi_b {
        out.insert(ANNOTATION_EPHEMERAL_DISK.into(), format!("{disk}Gi"));
    }
    if let Some(gpu) = flavor.gpu.as_ref().filter(|g| g.count > 0) {
        out.insert(ANNOTATION_GPU_COUNT.into(), gpu.count.to_string());
        out.insert(ANNOTATION_GPU_TYPE.into(), gpu.resource_name().to_string());
    }
    // The kubelet labels every node with its architecture; workloads select on it.
    let mut labels = pool.labels.clone();
    labels.insert("kubernetes.io/arch".into(), flavor.architecture.clone());
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.insert(ANNOTATION_LABELS.into(), labels.join(","));
    if !pool.taints.is_empty() {
        let taints: Vec<String> = pool
            .taints
            .iter()
            .map(|t| {
                let effect = match t.effect {
                    TaintEffect::NoSchedule => "NoSchedule",
                    TaintEffect::PreferNoSchedule => "PreferNoSchedule",
                    TaintEffect::NoExecute => "NoExecute",
                };
                match t.value.as_deref().filter(|v| !v.is_empty()) {
                    Some(v) => format!("{}={v}:{effect}", t.key),
                    None => format!("{}:{effect}", t.key),
                }
            })
            .collect();
        out.insert(ANNOTATION_TAINTS.into(), taints.join(","));
    }
    debug_assert!(out.keys().all(|k| k.starts_with(CAPACITY)));
    out
}
