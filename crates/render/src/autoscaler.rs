//! The upstream cluster-autoscaler with its Cluster API provider, one per cluster with an
//! autoscaled pool, on the management side in the cluster's provider-side namespace
//! ([`render_autoscaler`]: Deployment, ServiceAccount, a RoleBinding of the least-privilege
//! [`CLUSTER_ROLE`]), and the capacity annotations that let it scale a MachineDeployment up from
//! zero nodes (it has no node to copy, so it builds one from these; [`capacity_annotations`]). Annotation names and
//! flags as the upstream Cluster API provider of cluster-autoscaler reads them; the node size
//! comes from the offering's flavor of the pool. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleBinding};
use kaas_api::cluster::TaintEffect;
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;
use serde_json::json;

use crate::RenderError;

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

/// The ClusterRole of every autoscaler ([`rules`]), granted per cluster by a RoleBinding in the
/// cluster's provider-side namespace: its permissions hold there only. (A Role per namespace
/// would need the operator to hold these permissions itself; it holds `bind` on this role only.)
pub const CLUSTER_ROLE: &str = "kaas-cluster-autoscaler";

/// What the cluster-autoscaler's Cluster API provider needs on the management side, and nothing
/// else: no Secrets (the workload kubeconfig is mounted), no other kinds. The infrastructure
/// machine templates are those of every stack kaas renders.
pub fn rules() -> Vec<PolicyRule> {
    let capi = "cluster.x-k8s.io";
    let templates: Vec<&str> = crate::supported_stacks()
        .into_iter()
        .map(|k| crate::stacks::for_kind(k).machine_template_resource())
        .collect();
    typed(json!([
        // Find the node groups and the machines of their nodes.
        {"apiGroups": [capi], "resources": ["machinedeployments", "machinesets", "machinepools"],
         "verbs": ["get", "list", "watch"]},
        // Mark a machine for deletion before scaling its group down.
        {"apiGroups": [capi], "resources": ["machines"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        // Scale the node groups.
        {"apiGroups": [capi],
         "resources": ["machinedeployments/scale", "machinesets/scale", "machinepools/scale"],
         "verbs": ["get", "update", "patch"]},
        // The node size of a group at zero, when the infrastructure provider publishes it.
        {"apiGroups": ["infrastructure.cluster.x-k8s.io"], "resources": templates,
         "verbs": ["get", "list", "watch"]},
    ]))
}

/// Name of a cluster's autoscaler Deployment, ServiceAccount and RoleBinding.
pub fn name(capi_cluster: &str) -> String {
    format!("{capi_cluster}-autoscaler")
}

/// Where a cluster's autoscaler runs and what it works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement<'a> {
    /// The provider-side namespace of the Cluster API cluster.
    pub namespace: &'a str,
    /// The Cluster API `Cluster`'s name.
    pub capi_cluster: &'a str,
    /// The Secret with the workload cluster's kubeconfig (key `value`) in `namespace`.
    pub kubeconfig_secret: &'a str,
}

/// What runs one cluster's autoscaler on the management side, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub struct Autoscaler {
    /// Its identity.
    pub service_account: ServiceAccount,
    /// [`CLUSTER_ROLE`] for the ServiceAccount, in the cluster's namespace only.
    pub role_binding: RoleBinding,
    /// The upstream cluster-autoscaler.
    pub deployment: Deployment,
}

/// Mount path of the workload cluster's kubeconfig in the autoscaler's container.
const KUBECONFIG_DIR: &str = "/etc/kubernetes/workload";

/// The autoscaler of `cluster` when one of its pools autoscales and the provider names an image
/// ([`Resolved::autoscaler_image`]), else `None`.
pub fn render_autoscaler(
    cluster: &kaas_api::Cluster,
    resolved: &Resolved,
    at: &Placement<'_>,
) -> Result<Option<Autoscaler>, RenderError> {
    let Some(image) = &resolved.autoscaler_image else {
        return Ok(None);
    };
    // A hibernating cluster has no nodes to scale; its pools are rendered at zero.
    if resolved.hibernated {
        return Ok(None);
    }
    let (scs_name, tenant) = crate::name_and_tenant(cluster)?;
    let name = name(at.capi_cluster);
    let mut labels = crate::object_labels(&scs_name, &tenant, &resolved.provider);
    labels.insert("app.kubernetes.io/name".into(), "cluster-autoscaler".into());
    labels.insert("app.kubernetes.io/managed-by".into(), "kaas".into());
    let selector = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "cluster-autoscaler".to_string(),
        ),
        (crate::LABEL_CLUSTER.to_string(), scs_name.clone()),
    ]);
    let meta = json!({"name": name, "namespace": at.namespace, "labels": labels});
    let args = vec![
        "--cloud-provider=clusterapi".to_string(),
        // The workload cluster: its nodes and pods, and the status ConfigMap in its kube-system.
        format!("--kubeconfig={KUBECONFIG_DIR}/value"),
        // The management cluster: in-cluster credentials, the ServiceAccount and its RoleBinding.
        "--clusterapi-cloud-config-authoritative".to_string(),
        format!(
            "--node-group-auto-discovery=clusterapi:namespace={},clusterName={}",
            at.namespace, at.capi_cluster
        ),
        // A pool below its minCount (after hibernation, which rendered it at zero) is raised to
        // it: waking restores autoscaled pools.
        "--enforce-node-group-min-size=true".to_string(),
    ];
    let pod_labels: BTreeMap<String, String> = labels.clone();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "cluster-autoscaler",
                        "image": image,
                        "command": ["/cluster-autoscaler"],
                        "args": args,
                        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "workload-kubeconfig",
                                          "mountPath": KUBECONFIG_DIR, "readOnly": true}],
                    }],
                    "volumes": [{"name": "workload-kubeconfig",
                                 "secret": {"secretName": at.kubeconfig_secret,
                                            "items": [{"key": "value", "path": "value"}]}}],
                },
            },
        },
    });
    Ok(Some(Autoscaler {
        service_account: typed(json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
            "automountServiceAccountToken": true,
        })),
        role_binding: typed(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": at.namespace}],
        })),
        deployment: typed(deployment),
    }))
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("the autoscaler's objects are well-formed")
}
