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
}
