//! `Provider` (scs.community/v1alpha1, cluster-scoped): what one provider offers, so that tenants
//! can discover it and kaas can check a `Cluster` against it. Modelled on Gardener's CloudProfile
//! (versions with lifecycle, machine types, regions/zones) and SCS cluster stacks (the stack release
//! that realises each Kubernetes version).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A provider offering.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "Provider",
    doc = "A provider offering (cluster-scoped, written by the provider): regions and zones, flavors, Kubernetes versions with lifecycle and the stack realising each, extensions, defaults and limits. Tenants read it to discover what they can ask for in a Cluster.",
    plural = "providers",
    singular = "provider",
    status = "ProviderStatus",
    shortname = "scsprovider",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Display-Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Backend","type":"string","jsonPath":".spec.backend.type"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.providerType"}"#,
    printcolumn = r#"{"name":"Default-Version","type":"string","jsonPath":".status.defaultVersion"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","jsonPath":".status.conditions[?(@.type==\"StackVerified\")].status"}"#,
    printcolumn = r#"{"name":"Unusable","type":"string","priority":1,"jsonPath":".status.versions[*].unusable[*].feature"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Human-readable name shown to tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,

    /// Infrastructure type as named in the 2022 SCS-API (`openstack`, `hcloud`, `inmemory`,
    /// `static`); a `Cluster`'s `spec.provider.providerType` must match it when set.
    #[schemars(extend("pattern" = r"^[a-z0-9][-a-z0-9]*$", "maxLength" = 63))]
    pub provider_type: String,

    /// How clusters of this provider are realised.
    pub backend: Backend,

    /// Regions with their zones. The first region is the default.
    #[schemars(extend("minItems" = 1, "maxItems" = 64, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub regions: Vec<Region>,

    /// Machine types.
    #[schemars(extend("minItems" = 1, "maxItems" = 256, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub flavors: Vec<Flavor>,

    /// Kubernetes versions with their lifecycle and the stack that realises each.
    #[schemars(extend("minItems" = 1, "maxItems" = 128, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["version"]))]
    pub kubernetes_versions: Vec<KubernetesVersion>,

    /// Extensions offered. `metrics` and at least one of `ingress` / `gatewayAPI` must be offered
    /// (they are mandatory offerings of an SCS KaaS).
    #[schemars(extend(
        "maxItems" = 64,
        "x-kubernetes-validations" = [
            {"rule": "self.exists(e, e.name == 'metrics')", "message": "the metrics extension must be offered"},
            {"rule": "self.exists(e, e.name == 'ingress' || e.name == 'gatewayAPI')", "message": "ingress or gatewayAPI must be offered"}
        ],
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub extensions: Vec<OfferedExtension>,

    /// Defaults for fields a `Cluster` leaves empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ProviderDefaults>,

    /// Limits per cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,

    /// The provider's infrastructure credentials: a Secret in the provider's namespace
    /// (`backend.namespace`), never in a tenant namespace. Tenants cannot read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// SCS-API features the provider does not offer with any version, although its stack may
    /// serve them. Declarations only narrow: a feature stack verification found unusable stays
    /// unusable whatever is declared here. Clusters using a disabled feature are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 64, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub disabled_features: Vec<DisabledFeature>,

    /// CIDRs the provider's infrastructure uses (e.g. its floating-IP or management networks);
    /// cluster networks must not overlap them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 64, "items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 100.64.0.0/16"}]}))]
    pub reserved_networks: Vec<String>,

    /// How tenants get credentials for their workload clusters (`KubeconfigRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<ProviderAccess>,

    /// The cluster-autoscaler kaas runs on the management side for every cluster with an
    /// autoscaled pool (`minCount`/`maxCount`; Cluster API backend). Without it nothing scales
    /// those pools (a warning on each such cluster says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerSettings>,

    /// Where etcd backups of the provider's clusters go (`ClusterBackup`, `Cluster.spec.backup`;
    /// `docs/backup.md`). Without it backups are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::ProviderBackup>,
}

/// The cluster-autoscaler of a provider's clusters (upstream, its Cluster API provider).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSettings {
    /// The image per Kubernetes minor, e.g. `"1.35": registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0`.
    /// A cluster runs the image of its version's minor and gets the next one when it is upgraded
    /// to the next minor; a cluster with an autoscaled pool on a minor without an image is
    /// refused (`spec.workers[i].minCount`).
    #[schemars(extend(
        "maxProperties" = 64,
        "additionalProperties" = {"type": "string", "minLength": 1, "maxLength": 512},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.matches('^[0-9]+[.][0-9]+$'))", "message": "keys are Kubernetes minors such as 1.35"}
        ]
    ))]
    pub images: std::collections::BTreeMap<String, String>,
}

impl AutoscalerSettings {
    /// The image for Kubernetes `version` (`1.35.4` or `v1.35.4`), by its minor.
    pub fn image(&self, version: &str) -> Option<&str> {
        let v = version.trim_start_matches('v');
        let minor = v.rsplit_once('.').map_or(v, |(m, _)| m);
        self.images.get(minor).map(String::as_str)
    }
}

/// Credential policy of a provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAccess {
    /// Longest lifetime a `KubeconfigRequest` may ask for (`30m`, `8h`; default `24h`). A request
    /// for more is refused (`Issued=False`, reason `LifetimeExceedsPolicy`), not capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^([0-9]+(s|m|h))+$", "maxLength" = 32))]
    pub max_kubeconfig_lifetime: Option<String>,
    /// Whether tenants still get the long-lived admin kubeconfig Secret `<cluster>-kubeconfig`
    /// in their namespace (default true). With false, kaas removes it and tenants use
    /// `KubeconfigRequest`s only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_kubeconfig_secret: Option<bool>,
}

impl ProviderAccess {
    /// The lifetime cap.
    pub fn max_lifetime(access: Option<&ProviderAccess>) -> std::time::Duration {
        access
            .and_then(|a| a.max_kubeconfig_lifetime.as_deref())
            .and_then(crate::kubeconfig::parse_duration)
            .unwrap_or(std::time::Duration::from_secs(24 * 3600))
    }
    /// Whether the long-lived admin kubeconfig goes to tenants.
    pub fn admin_secret(access: Option<&ProviderAccess>) -> bool {
        access
            .and_then(|a| a.admin_kubeconfig_secret)
            .unwrap_or(true)
    }
}

/// A feature the provider turns off.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisabledFeature {
    /// Feature name: `oidc`, `apiServerAllowedCIDRs`, `taints`, `labels`, `zones`, `autoscaling`
    /// or `extension:<name>`.
    #[schemars(extend("pattern" = r"^(oidc|apiServerAllowedCIDRs|taints|labels|zones|autoscaling|extension:[a-zA-Z][-a-zA-Z0-9]*)$", "maxLength" = 80))]
    pub name: String,
    /// Why, shown to tenants (e.g. "no identity provider is reachable from the control planes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 512))]
    pub reason: Option<String>,
}

/// Backend realising the clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.type != 'ClusterAPI' || has(self.clusterAPI)", "message": "clusterAPI is required for backend type ClusterAPI"}
]))]
pub struct Backend {
    /// ClusterAPI: clusters are Cluster API topologies on the provider's ClusterClasses.
    /// Static: a Cluster stands for an existing cluster reached by a kubeconfig Secret.
    /// Hosted: control planes run on the management side, realised by a runtime.
    #[serde(rename = "type")]
    pub kind: BackendType,

    /// The provider's namespace on the management cluster: its ClusterClasses, addon bundles and
    /// credentials live here. The provider's, never a tenant's.
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength" = 63))]
    pub namespace: String,

    /// Settings of the Cluster API backend.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clusterAPI"
    )]
    pub cluster_api: Option<ClusterApiBackend>,

    /// Settings of the hosted backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted: Option<HostedBackend>,
}

/// Settings of the hosted backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedBackend {
    /// The runtime that realises the control planes (`local`: processes on the runtime's host,
    /// `kaas hosted-runtime`). Written into each `HostedControlPlane`'s `spec.runtime`.
    #[serde(default = "local_runtime")]
    #[schemars(extend("pattern" = r"^[a-z0-9][-a-z0-9]*$", "maxLength" = 63))]
    pub runtime: String,
}

fn local_runtime() -> String {
    crate::hosted::RUNTIME_LOCAL.to_string()
}

/// Backend kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BackendType {
    /// Cluster API with ClusterClass topologies.
    #[default]
    ClusterAPI,
    /// Existing clusters, imported by kubeconfig; nothing is provisioned.
    Static,
    /// Control planes hosted by the management side (`HostedControlPlane`, realised by a runtime:
    /// local processes here, pods in a seed cluster in production); see `docs/hosted.md`.
    Hosted,
}

/// Settings of the Cluster API backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterApiBackend {
    /// Which stack family the ClusterClasses belong to; decides how variables are rendered.
    pub stack: StackKind,
}

/// Stack families kaas knows how to render for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StackKind {
    /// SCS cluster stack for OpenStack (`openstack/scs2`): Cilium, OpenStack CCM, Cinder CSI.
    #[serde(rename = "openstack-scs2")]
    OpenStackScs2,
    /// The Cluster API Docker provider's in-memory backend: fake machines, for development/tests.
    #[default]
    #[serde(rename = "in-memory")]
    InMemory,
}

/// A region and its zones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    /// Region name.
    #[schemars(extend("minLength" = 1, "maxLength" = 63))]
    pub name: String,
    /// Zones (failure domains) of the region.
    #[serde(default)]
    #[schemars(extend("maxItems" = 16, "x-kubernetes-list-type" = "set", "items" = {"type": "string", "maxLength": 63}))]
    pub zones: Vec<String>,
}

/// A machine type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flavor {
    /// Name as used in `Cluster` specs (e.g. `SCS-4V-8`).
    #[schemars(extend("minLength" = 1, "maxLength" = 63))]
    pub name: String,
    /// Virtual CPUs.
    #[schemars(extend("minimum" = 1))]
    pub cpu: i32,
    /// Memory as a quantity (e.g. `8Gi`).
    pub memory: String,
    /// GPUs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    /// CPU architecture (`amd64`, `arm64`).
    #[serde(default = "default_arch")]
    pub architecture: String,
    /// Root disk size in GiB, if fixed by the flavor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gi_b: Option<i32>,
    /// May be used for control-plane nodes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<bool>,
    /// May be used for worker nodes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<bool>,
}

fn default_arch() -> String {
    "amd64".into()
}

/// GPUs of a flavor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// Number of GPUs.
    pub count: i32,
    /// Model, e.g. `nvidia-l4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The extended resource the nodes advertise for these GPUs (default `nvidia.com/gpu`); the
    /// cluster-autoscaler's `gpu-type` when a pool scales from zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 253))]
    pub resource: Option<String>,
}

impl Gpu {
    /// The extended resource name of the GPUs.
    pub fn resource_name(&self) -> &str {
        self.resource.as_deref().unwrap_or(DEFAULT_GPU_RESOURCE)
    }
}

/// The extended resource of GPUs when a flavor names none (NVIDIA's device plugin).
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";

/// One offered Kubernetes version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesVersion {
    /// Exact version, `1.35.4` (no `x`).
    #[schemars(extend("pattern" = r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"))]
    pub version: String,
    /// Lifecycle: preview (only on explicit request), supported, deprecated (no new clusters),
    /// expired (running clusters are moved up in their maintenance window).
    pub classification: Classification,
    /// When the version expires (RFC 3339 date or time), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// The stack release that realises this version.
    pub stack: StackRef,
    /// SCS-API features the provider does not offer with this version (in addition to
    /// `spec.disabledFeatures`); only narrows what stack verification found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 64, "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub disabled_features: Vec<DisabledFeature>,
}

/// Lifecycle of an offered version (Gardener's classification).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// Offered for testing; chosen only when asked for exactly.
    Preview,
    /// Offered.
    #[default]
    Supported,
    /// Still runs; new clusters should not use it.
    Deprecated,
    /// No longer offered; clusters on it are updated in their maintenance window.
    Expired,
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Classification::Preview => "preview",
            Classification::Supported => "supported",
            Classification::Deprecated => "deprecated",
            Classification::Expired => "expired",
        })
    }
}

/// The stack release realising a version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackRef {
    /// ClusterClass name in the provider's namespace.
    #[schemars(extend("minLength" = 1, "maxLength" = 253))]
    pub cluster_class: String,
    /// Stack release (e.g. `scs2-1-35-v3`), for humans and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Addon bundle of this version: the name of a ConfigMap in the provider namespace labelled
    /// `scs.community/addon-bundle` (see `docs/addons.md`). Empty: no addons are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<String>,
}

/// An extension the provider offers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedExtension {
    /// Name: `metrics`, `ingress`, `gatewayAPI`, `certManager`, `flux`, `harbor` or another.
    #[schemars(extend("pattern" = r"^[a-zA-Z][-a-zA-Z0-9]*$", "maxLength" = 63))]
    pub name: String,
    /// Version of what is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Installed when the `Cluster` does not say (metrics is always installed).
    #[serde(default)]
    pub default: bool,
    /// Implementations to choose from (e.g. `nginx` for ingress); the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implementations: Vec<String>,
    /// Short description for tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Defaults for empty `Cluster` fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDefaults {
    /// Default control-plane replicas (1, 3 or 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_replicas: Option<i32>,
    /// Default control-plane flavor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_flavor: Option<String>,
    /// Default worker flavor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_flavor: Option<String>,
    /// Default pod CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    /// Default service CIDR.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "serviceCIDR"
    )]
    pub service_cidr: Option<String>,
    /// Default node CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "nodeCIDR")]
    pub node_cidr: Option<String>,
}

/// Limits of one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest number of worker pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_worker_pools: Option<i32>,
    /// Largest number of nodes in one pool (count or maxCount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes_per_pool: Option<i32>,
    /// Largest number of worker nodes in one cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes_per_cluster: Option<i32>,
}

/// A Secret on the provider side.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Secret name (in `backend.namespace`).
    pub name: String,
}

/// Observed state of a provider offering.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions (`Ready`: every referenced ClusterClass exists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Version chosen for clusters that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,
    /// What stack verification found per offered version (Cluster API backends): which SCS-API
    /// features its ClusterClass and Cluster API serve, which not and why. Clusters using an
    /// unusable feature of their version are refused by validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["version"]))]
    pub versions: Vec<VersionVerification>,
}

/// How the reason of a feature the provider declares disabled starts.
pub const DISABLED_BY_PROVIDER: &str = "disabled by the provider";

/// Condition on a `Provider`: every offered version's stack was verified and serves every feature.
pub const STACK_VERIFIED: &str = "StackVerified";

/// Names of the SCS-API features stack verification probes (used in `ProviderStatus.versions`).
pub mod features {
    /// A cluster with nothing optional (control plane, one worker pool).
    pub const BASE: &str = "base";
    /// `spec.access.oidc`.
    pub const OIDC: &str = "oidc";
    /// `spec.access.apiServerAllowedCIDRs`.
    pub const ALLOWED_CIDRS: &str = "apiServerAllowedCIDRs";
    /// `spec.workers[].taints`.
    pub const TAINTS: &str = "taints";
    /// `spec.workers[].labels`.
    pub const LABELS: &str = "labels";
    /// `spec.workers[].zones`, `spec.controlPlane.zones`.
    pub const ZONES: &str = "zones";
    /// `spec.workers[].minCount` / `maxCount`.
    pub const AUTOSCALING: &str = "autoscaling";
    /// Prefix of an extension feature: `extension:<name>`.
    pub const EXTENSION_PREFIX: &str = "extension:";
}

/// Verification of one offered version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionVerification {
    /// The offered version (as in `spec.kubernetesVersions[].version`).
    pub version: String,
    /// Its ClusterClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_class: Option<String>,
    /// Features Cluster API accepted for this version (by name, see `features`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub usable: Vec<String>,
    /// Features this version cannot serve, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["feature"]))]
    pub unusable: Vec<UnusableFeature>,
}

impl Provider {
    /// The features the provider declares disabled for version `version` (exact, with or without
    /// `v`): `spec.disabledFeatures` and the version's own, one entry per feature, sorted.
    pub fn disabled_features(&self, version: &str) -> Vec<UnusableFeature> {
        let want = version.trim_start_matches('v');
        // The version's own declaration first: for a feature declared twice its reason wins.
        let mut out: Vec<UnusableFeature> = self
            .spec
            .kubernetes_versions
            .iter()
            .filter(|v| v.version.trim_start_matches('v') == want)
            .flat_map(|v| &v.disabled_features)
            .chain(&self.spec.disabled_features)
            .map(|d| UnusableFeature {
                feature: d.name.clone(),
                reason: match &d.reason {
                    Some(r) => format!("{DISABLED_BY_PROVIDER}: {r}"),
                    None => DISABLED_BY_PROVIDER.into(),
                },
            })
            .collect();
        out.sort_by(|a, b| a.feature.cmp(&b.feature));
        out.dedup_by(|a, b| a.feature == b.feature);
        out
    }

    /// The features version `version` cannot serve: what stack verification found
    /// (`status.versions`) and what the provider declares disabled. Declarations never widen:
    /// the union is taken, verification's reason first. One entry per feature, sorted.
    pub fn unusable_features(&self, version: &str) -> Vec<UnusableFeature> {
        let want = version.trim_start_matches('v');
        let mut out: Vec<UnusableFeature> = self
            .status
            .iter()
            .flat_map(|s| &s.versions)
            .filter(|v| v.version.trim_start_matches('v') == want)
            .flat_map(|v| v.unusable.iter().cloned())
            // Declarations copied into the status by verification count only from the spec, so
            // removing one takes effect at once, not after the next verification.
            .filter(|u| !u.reason.starts_with(DISABLED_BY_PROVIDER))
            .chain(self.disabled_features(version))
            .collect();
        // Stable sort: for one feature, verification's entry stays first and dedup keeps it.
        out.sort_by(|a, b| a.feature.cmp(&b.feature));
        out.dedup_by(|a, b| a.feature == b.feature);
        out
    }
}

/// A feature a version cannot serve.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnusableFeature {
    /// Feature name (see `features`).
    pub feature: String,
    /// Why, e.g. the message of Cluster API's admission or the variable the ClusterClass lacks.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        serde_yaml::from_str(
            r#"
apiVersion: scs.community/v1alpha1
kind: Provider
metadata: {name: p}
spec:
  providerType: openstack
  backend: {type: ClusterAPI, namespace: ns, clusterAPI: {stack: in-memory}}
  regions: [{name: r, zones: [a]}]
  flavors: [{name: f, cpu: 2, memory: 4Gi}]
  kubernetesVersions:
    - {version: 1.36.3, classification: supported, stack: {clusterClass: c, release: c},
       disabledFeatures: [{name: taints, reason: no gate}]}
    - {version: 1.35.4, classification: supported, stack: {clusterClass: c, release: c}}
  extensions: [{name: metrics}, {name: ingress}]
  disabledFeatures: [{name: oidc}]
status:
  versions:
    - version: 1.35.4
      unusable: [{feature: taints, reason: refused by admission}, {feature: oidc, reason: variable missing}]
"#,
        )
        .unwrap()
    }

    fn names(v: &[UnusableFeature]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|u| (u.feature.as_str(), u.reason.as_str()))
            .collect()
    }

    #[test]
    fn declared_features_apply_to_all_versions_and_their_own() {
        let p = provider();
        assert_eq!(
            names(&p.disabled_features("v1.36.3")),
            [
                ("oidc", "disabled by the provider"),
                ("taints", "disabled by the provider: no gate")
            ]
        );
        assert_eq!(
            names(&p.disabled_features("1.35.4")),
            [("oidc", "disabled by the provider")]
        );
    }

    #[test]
    fn unusable_is_the_union_and_verification_wins_the_reason() {
        let p = provider();
        assert_eq!(
            names(&p.unusable_features("1.35.4")),
            [
                ("oidc", "variable missing"),
                ("taints", "refused by admission")
            ]
        );
        assert_eq!(
            names(&p.unusable_features("1.36.3")),
            [
                ("oidc", "disabled by the provider"),
                ("taints", "disabled by the provider: no gate")
            ]
        );
        assert!(p.unusable_features("1.34.1").len() == 1, "spec-wide only");
    }

    #[test]
    fn a_removed_declaration_counts_at_once_and_the_versions_reason_wins() {
        let mut p = provider();
        // Verification copied the spec-wide declaration into the status; then it is removed.
        p.status.as_mut().unwrap().versions[0]
            .unusable
            .push(UnusableFeature {
                feature: "labels".into(),
                reason: "disabled by the provider: old".into(),
            });
        assert!(
            !p.unusable_features("1.35.4")
                .iter()
                .any(|u| u.feature == "labels"),
            "a declaration only in the status no longer counts"
        );
        p.spec.kubernetes_versions[0].disabled_features[0].name = "oidc".into();
        let oidc = p
            .unusable_features("1.36.3")
            .into_iter()
            .find(|u| u.feature == "oidc")
            .unwrap();
        assert_eq!(oidc.reason, "disabled by the provider: no gate");
    }
}
