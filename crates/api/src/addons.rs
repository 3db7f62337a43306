//! Addon bundles: what a provider's stack installs into workload clusters, per offered
//! Kubernetes version — the base addons that come with the stack (CNI, CCM, CSI) and the
//! extensions (metrics, ingress, Gateway API, optional ones). Manifests are data (rendered YAML)
//! the provider publishes in ConfigMaps of its namespace; kaas applies them with server-side apply
//! and an inventory, so removed objects are pruned.
//!
//! A bundle is a ConfigMap labelled [`BUNDLE_LABEL`] whose key [`BUNDLE_INDEX`] holds an
//! [`AddonBundle`]; each addon names the key(s) holding its manifests — in the same ConfigMap or,
//! for large manifests, in further ConfigMaps named `<configMap>/<key>`.

use serde::{Deserialize, Serialize};

/// Label on bundle ConfigMaps (value: the bundle name).
pub const BUNDLE_LABEL: &str = "scs.community/addon-bundle";
/// Key of the index in a bundle ConfigMap.
pub const BUNDLE_INDEX: &str = "bundle.yaml";

/// When an addon is applied.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Comes with the stack (CNI, CCM, CSI): applied as soon as the API server answers.
    #[default]
    Base,
    /// An extension: applied after the base addons.
    Extension,
}

/// The index of a bundle.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AddonBundle {
    /// Bundle name (e.g. `in-memory-1-35-v2`).
    pub name: String,
    /// Addons in apply order within their stage.
    pub addons: Vec<BundleAddon>,
    /// Where the stack's cloud controller manager and CSI driver read the cloud credentials in
    /// the workload cluster: the operator copies the Provider's `credentialsRef` Secret there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_credentials: Option<CloudCredentials>,
}

/// The Secret in each workload cluster that receives the Provider's credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudCredentials {
    /// Namespace in the workload cluster (usually `kube-system`).
    pub namespace: String,
    /// Secret name (e.g. `cloud-config`).
    pub name: String,
}

/// Lifecycle hooks of SCS cluster stacks (`clusteraddon.yaml`'s `addonStages`) an addon of a
/// bundle built by `kaas stack build` belongs to.
pub mod hooks {
    /// Applied once the workload cluster's API server answers (kaas' `base` stage).
    pub const AFTER_CONTROL_PLANE_INITIALIZED: &str = "AfterControlPlaneInitialized";
    /// Applied, for the new version, before the control plane is upgraded.
    pub const BEFORE_CLUSTER_UPGRADE: &str = "BeforeClusterUpgrade";
    /// Applied after the control plane runs the new version (kaas' `base` stage of the new
    /// version's bundle).
    pub const AFTER_CLUSTER_UPGRADE: &str = "AfterClusterUpgrade";
    /// Every hook kaas knows.
    pub const ALL: &[&str] = &[
        AFTER_CONTROL_PLANE_INITIALIZED,
        BEFORE_CLUSTER_UPGRADE,
        AFTER_CLUSTER_UPGRADE,
    ];
}

/// Placeholders a bundle's manifests may contain (from a stack's `overwrite.yaml`): kaas
/// replaces them, per cluster, in the string values of the parsed objects when it applies them.
pub mod placeholders {
    /// The Cluster's name.
    pub const CLUSTER_NAME: &str = "${cluster.name}";
    /// The Cluster's (tenant) namespace.
    pub const CLUSTER_NAMESPACE: &str = "${cluster.namespace}";
    /// The first pod CIDR.
    pub const POD_CIDR: &str = "${cluster.podCIDR}";
    /// The first service CIDR.
    pub const SERVICE_CIDR: &str = "${cluster.serviceCIDR}";
    /// The Kubernetes version the bundle is applied for (`1.35.4`).
    pub const KUBERNETES_VERSION: &str = "${cluster.kubernetesVersion}";
    /// Every placeholder.
    pub const ALL: &[&str] = &[
        CLUSTER_NAME,
        CLUSTER_NAMESPACE,
        POD_CIDR,
        SERVICE_CIDR,
        KUBERNETES_VERSION,
    ];
    /// How every placeholder starts.
    pub const PREFIX: &str = "${cluster.";
}

/// One addon of a bundle.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BundleAddon {
    /// Name: for extensions the name in `Provider.spec.extensions` (`metrics`, `ingress`,
    /// `gatewayAPI`, …); for base addons a free name (`cni`, `ccm`, `csi`).
    pub name: String,
    /// Stage.
    #[serde(default)]
    pub stage: Stage,
    /// Version of what the manifests install.
    pub version: String,
    /// Implementation, where an extension has several (e.g. `nginx`); empty: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Keys holding the manifests: `key` (same ConfigMap) or `configMap/key`.
    pub manifests: Vec<String>,
    /// The SCS lifecycle hooks (see [`hooks`]) the stack's `clusteraddon.yaml` names this addon
    /// in; empty for bundles not built from a stack layout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
}
