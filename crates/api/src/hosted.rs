//! `HostedControlPlane` (scs.community/v1alpha1, namespaced, provider side): the contract between
//! the operator's hosted backend and a control-plane runtime.
//!
//! The hosted backend (crates/operator, `backend/hosted.rs`) writes one `HostedControlPlane` per SCS
//! `Cluster` into the cluster's provider-side namespace and reads its status; a **runtime** realises
//! it. The runtime that exists today is `local` (`kaas hosted-runtime`, crates/hosted): etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler as supervised local processes, worker
//! nodes simulated with kwok. A `pods` runtime (control planes as Deployments in a management or
//! seed cluster) reads the same object; the backend does not change (`docs/hosted.md`).
//!
//! Tenants never write this object; it carries no credentials. The runtime writes the workload
//! cluster's admin kubeconfig into the Secret `<name>-kubeconfig` (key `value`) next to it, the
//! Cluster API convention, from where the operator copies it to the tenant.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup::{EtcdOperation, EtcdOperationStatus};
use crate::cluster::{OidcSpec, Taint};

/// Desired state of one hosted control plane and its worker pools.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "HostedControlPlane",
    doc = "A workload cluster's control plane hosted by the management side (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and its worker pools. Written by the kaas operator's hosted backend into the provider-side namespace; realised by a control-plane runtime (local processes, or pods in a seed cluster).",
    plural = "hostedcontrolplanes",
    singular = "hostedcontrolplane",
    namespaced,
    status = "HostedControlPlaneStatus",
    shortname = "hcp",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Runtime","type":"string","jsonPath":".spec.runtime"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version","description":"Desired Kubernetes version"}"#,
    printcolumn = r#"{"name":"Actual","type":"string","jsonPath":".status.version","description":"Version the API server reports"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HostedControlPlaneSpec {
    /// Which runtime realises this control plane (`local`: processes on the runtime's host).
    /// A runtime handles only the objects that name it.
    #[schemars(extend("pattern" = r"^[a-z0-9][-a-z0-9]*$", "maxLength" = 63))]
    pub runtime: String,

    /// Kubernetes version of the control plane and of every pool (`1.36.3`). Raising the minor
    /// swaps the control-plane binaries first, then rolls the pools one by one.
    #[schemars(extend("pattern" = r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"))]
    pub version: String,

    /// API server instances wanted (the local runtime runs one and reports it).
    #[serde(default = "one")]
    #[schemars(extend("minimum" = 1, "maximum" = 5))]
    pub replicas: i32,

    /// Region the cluster runs in (node label `topology.kubernetes.io/region`).
    #[schemars(extend("maxLength" = 63))]
    pub region: String,

    /// Service CIDR of the workload cluster.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "serviceCIDR"
    )]
    pub service_cidr: Option<String>,

    /// Pod CIDR of the workload cluster (pod IPs of simulated nodes come from it).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podCIDR")]
    pub pod_cidr: Option<String>,

    /// OpenID Connect login for the workload cluster's users, every default filled in
    /// (`OidcSpec::effective`): the runtime turns it into the API server's structured
    /// authentication configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,

    /// An etcd snapshot or restore the operator asks for (`docs/backup.md`); the runtime reports
    /// on it in `status.etcdOperation` and does each `id` once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_operation: Option<EtcdOperation>,

    /// Hibernation: the runtime stops the control plane (etcd, API server, controller manager,
    /// scheduler) and every node, keeps etcd's data and the certificates, and reports phase
    /// `Hibernated`; `false` again starts it with the same data and endpoint. The operator sets
    /// every pool's replicas to 0 together with this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hibernated: bool,

    /// Worker pools.
    #[serde(default)]
    #[schemars(extend("maxItems" = 64, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub pools: Vec<HostedPool>,
}

fn one() -> i32 {
    1
}

/// One worker pool of a hosted cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedPool {
    /// Pool name (DNS label): node label `scs.community/pool`.
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength" = 63))]
    pub name: String,
    /// Nodes wanted.
    #[schemars(extend("minimum" = 0, "maximum" = 1000))]
    pub replicas: i32,
    /// Zones the nodes are spread over, round robin (`topology.kubernetes.io/zone`).
    #[serde(default)]
    #[schemars(extend("maxItems" = 16, "items" = {"type": "string", "maxLength": 63}))]
    pub zones: Vec<String>,
    /// Machine type (node label `node.kubernetes.io/instance-type`).
    #[schemars(extend("maxLength" = 63))]
    pub flavor: String,
    /// Node capacity from the flavor: cpu cores.
    #[schemars(extend("minimum" = 1))]
    pub cpu: i32,
    /// Node capacity from the flavor: memory quantity (`8Gi`).
    #[schemars(extend("maxLength" = 32))]
    pub memory: String,
    /// Labels every node of the pool carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints every node of the pool carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 32))]
    pub taints: Vec<Taint>,
}

/// Observed state, written by the runtime.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedControlPlaneStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (control plane available and every pool at its size and version) first, then
    /// `ControlPlaneAvailable` and `WorkersAvailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `Provisioning`, `Running`, `Upgrading`, `Scaling`, `Failed`, `Deleting`, `Hibernated`
    /// (stopped as `spec.hibernated` asks, data kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// API server endpoint (`https://host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Version the workload API server reports at `/version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Secret with the admin kubeconfig (key `value`), next to this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret: Option<String>,
    /// Per pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub pools: Vec<HostedPoolStatus>,
    /// The runtime's report on the last `spec.etcdOperation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_operation: Option<EtcdOperationStatus>,
}

/// Observed state of one pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedPoolStatus {
    /// Pool name.
    pub name: String,
    /// Nodes wanted.
    pub desired: i32,
    /// Nodes that exist.
    pub current: i32,
    /// Nodes Ready.
    pub ready: i32,
    /// Kubelet versions the pool's nodes report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// Condition types of a `HostedControlPlane`.
pub mod conditions {
    /// Everything as specified.
    pub const READY: &str = "Ready";
    /// The API server answers `/readyz` with the desired version.
    pub const CONTROL_PLANE_AVAILABLE: &str = "ControlPlaneAvailable";
    /// Every pool has its nodes, Ready and at the desired version.
    pub const WORKERS_AVAILABLE: &str = "WorkersAvailable";
}

/// `status.phase` of a control plane stopped for hibernation, its data kept.
pub const PHASE_HIBERNATED: &str = "Hibernated";
/// Reason of `Ready=False` (and `ControlPlaneAvailable=False`) while hibernated.
pub const REASON_HIBERNATED: &str = "Hibernated";
/// Runtime name of the local-process runtime.
pub const RUNTIME_LOCAL: &str = "local";
/// Node label: the pool a node belongs to.
pub const LABEL_POOL: &str = "scs.community/pool";
/// Node label: the (simulated) physical host a node runs on — the label SCS uses for the host of a
/// virtual node (`kaas check` reads it for scs-0214).
pub const LABEL_HOST: &str = "topology.scs.community/host-id";
/// Finalizer the runtime keeps on an object while it has processes or data for it.
pub const RUNTIME_FINALIZER: &str = "scs.community/hosted-runtime";
