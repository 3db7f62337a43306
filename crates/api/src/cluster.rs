//! `Cluster` (scs.community/v1alpha1): the provider-independent description of one Kubernetes
//! cluster of a tenant. A superset of the 2022 SCS-API proposal: every field of the proposal keeps
//! its name, type and meaning (see `docs/api.md`, "Compatibility").

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern of `spec.kubernetes.version`: the proposal's semver pattern (optional leading `v`, the
/// patch may be `x` = newest offered patch, pre-release/build suffixes allowed), written for RE2.
pub const VERSION_PATTERN: &str = r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(x|0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$";

/// DNS-1123 label: what a worker pool name becomes in Cluster API object names.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Longest name of an SCS `Cluster`: the name becomes the value of the label
/// `scs.community/cluster` and the name of the Cluster API `Cluster`, both at most 63 characters.
pub const MAX_NAME_LENGTH: u64 = 63;

/// The Cluster CRD as installed ([`crate::crds`], `kaas crds`, the Helm chart):
/// [`kube::CustomResourceExt::crd`] with `metadata.name` restricted to [`MAX_NAME_LENGTH`]
/// characters in the schema (the only part of `metadata` a CRD may restrict), so the API server
/// refuses a longer name at `metadata.name` — otherwise it is stored, can never be rendered and
/// never gets a status. `kaas_validate::schema::admit` makes the same check.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
    let mut crd = <Cluster as kube::CustomResourceExt>::crd();
    for v in &mut crd.spec.versions {
        if let Some(root) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let name = JSONSchemaProps {
                type_: Some("string".into()),
                max_length: Some(MAX_NAME_LENGTH as i64),
                ..Default::default()
            };
            let metadata = JSONSchemaProps {
                type_: Some("object".into()),
                properties: Some(BTreeMap::from([("name".to_string(), name)])),
                ..Default::default()
            };
            root.properties
                .get_or_insert_with(Default::default)
                .insert("metadata".into(), metadata);
        }
    }
    crd
}

/// Desired state of a Kubernetes cluster, independent of the provider that realises it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "Cluster",
    doc = "An SCS Kubernetes cluster of a tenant (the namespace is the tenant): version, provider offering, control plane, worker pools, network, extensions, maintenance and access. The kaas operator realises it with the provider's backend and reports progress in status.conditions (Ready first).",
    plural = "clusters",
    singular = "cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "scscluster",
    shortname = "scl",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.name","description":"Provider offering"}"#,
    printcolumn = r#"{"name":"K8s-Version","type":"string","jsonPath":".spec.kubernetes.version","description":"Requested Kubernetes version"}"#,
    printcolumn = r#"{"name":"Actual","type":"string","jsonPath":".status.kubernetesVersion","description":"Kubernetes version the cluster runs"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Ingress","type":"boolean","jsonPath":".spec.addons.nginxIngress.enabled","priority":1,"description":"Legacy addons.nginxIngress.enabled"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.apiEndpoint","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.provider) && has(self.provider.name) ? self.provider.name : '') == (has(oldSelf.provider) && has(oldSelf.provider.name) ? oldSelf.provider.name : '')",
        "message": "provider.name is immutable: a cluster cannot move to another provider (create a new Cluster there instead)",
        "fieldPath": ".provider.name",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "(has(self.provider) && has(self.provider.region) ? self.provider.region : '') == (has(oldSelf.provider) && has(oldSelf.provider.region) ? oldSelf.provider.region : '')",
        "message": "provider.region is immutable",
        "fieldPath": ".provider.region",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "(has(self.provider) && has(self.provider.providerType) ? self.provider.providerType : '') == (has(oldSelf.provider) && has(oldSelf.provider.providerType) ? oldSelf.provider.providerType : '')",
        "message": "provider.providerType is immutable",
        "fieldPath": ".provider.providerType",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct ClusterSpec {
    /// Kubernetes version and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSpec>,

    /// Which provider offering realises this cluster, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,

    /// The control plane. Defaults come from the provider (replicas 1 in the dev stack, 3 elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneSpec>,

    /// Worker pools. Names are DNS labels and unique within the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxItems" = 32,
        "x-kubernetes-validations" = [{
            "rule": "self.all(w, self.exists_one(v, v.name == w.name))",
            "message": "worker pool names must be unique",
            "reason": "FieldValueDuplicate"
        }]
    ))]
    pub workers: Option<Vec<WorkerPool>>,

    /// Cluster networking (advanced; the provider's defaults fit most clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// Extensions installed into the workload cluster. `metrics` is always on; ingress and/or
    /// Gateway API are selectable; optional ones as the provider offers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,

    /// Legacy add-on switches of the 2022 SCS-API proposal. Still honoured: each maps onto
    /// `extensions` (nginxIngress → extensions.ingress, certManager → extensions.certManager,
    /// flux → extensions.flux, harbor → extensions.harbor, metricsServer → extensions.metrics,
    /// which cannot be switched off). Where both are set, `extensions` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<LegacyAddons>,

    /// When automatic maintenance (patch updates, forced updates of expired versions) may happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,

    /// How users reach the cluster's API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,

    /// Scheduled etcd backups (`ClusterBackup`s created by the operator; `docs/backup.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::BackupSchedule>,

    /// Hibernation: every worker pool at zero nodes and, on a hosted provider, the control plane
    /// stopped with its data kept (`docs/hibernation.md`). By hand (`enabled`) or by schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hibernation: Option<crate::hibernation::HibernationSpec>,

    /// While true, deleting this Cluster is refused (the deletion waits, and a condition says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,

    /// For providers with the Static backend: the existing cluster this Cluster stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportSpec>,
}

/// An existing cluster, imported by kubeconfig.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    /// Secret in this namespace with a kubeconfig of the existing cluster (key `value` unless
    /// given). kaas uses it to install extensions and to check the cluster; it is never copied.
    pub kubeconfig_secret_ref: SecretRef,
}

/// Kubernetes version of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSpec {
    /// Kubernetes version, e.g. `1.35.4`, `v1.35.4` or `1.35.x` (x = the newest patch the provider
    /// offers for that minor). Upgrades go one minor at a time. Empty: the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = VERSION_PATTERN, "maxLength" = 64))]
    pub version: Option<String>,
}

/// Reference to the provider offering.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Name of the cluster-scoped `Provider` offering (`kubectl get providers`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength" = 253))]
    pub name: Option<String>,

    /// Infrastructure type of the 2022 proposal (e.g. `openstack`). When set it must match the
    /// provider's `spec.providerType`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,

    /// Region of the provider; empty means the provider's default region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 63))]
    pub region: Option<String>,
}

/// Control plane settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneSpec {
    /// Number of control-plane nodes: 1, 3 or 5 (etcd needs an odd number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == 1 || self == 3 || self == 5",
        "message": "control-plane replicas must be 1, 3 or 5"
    }]))]
    pub replicas: Option<i32>,

    /// Flavor (machine type) of the control-plane nodes, by name from the provider's offering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,

    /// Zones the control-plane nodes are spread over (of the cluster's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 8, "x-kubernetes-list-type" = "set", "items" = {"type": "string", "maxLength": 63}))]
    pub zones: Option<Vec<String>>,

    /// Spread control-plane nodes over distinct hosts (soft where the provider cannot do hard
    /// anti-affinity). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<bool>,
}

/// One worker pool (a set of identical nodes).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.count) && (has(self.minCount) || has(self.maxCount)))",
        "message": "set either count or minCount/maxCount (autoscaling), not both"
    },
    {
        "rule": "has(self.minCount) == has(self.maxCount)",
        "message": "minCount and maxCount must be set together"
    },
    {
        "rule": "!has(self.minCount) || !has(self.maxCount) || self.minCount <= self.maxCount",
        "message": "minCount must not be greater than maxCount",
        "fieldPath": ".minCount"
    }
]))]
pub struct WorkerPool {
    /// Name of the pool: a DNS label (lower case, digits, '-'), unique in the cluster.
    #[schemars(extend("pattern" = DNS_LABEL_PATTERN, "maxLength" = 40))]
    pub name: String,

    /// Flavor (machine type) by name from the provider's offering; empty: the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,

    /// Fixed number of nodes (≥ 1). Empty with no minCount/maxCount: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 1000))]
    pub count: Option<i32>,

    /// Autoscaling: the smallest number of nodes (≥ 0; 0: the pool scales from zero, the
    /// autoscaler takes the size of its first node from the flavor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "maximum" = 1000))]
    pub min_count: Option<i32>,

    /// Autoscaling: the largest number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 1000))]
    pub max_count: Option<i32>,

    /// Zones of the region to place nodes in; nodes are spread evenly. Empty: the provider decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 8, "x-kubernetes-list-type" = "set", "items" = {"type": "string", "maxLength": 63}))]
    pub zones: Option<Vec<String>>,

    /// Labels put on every node of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Taints put on every node of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 32))]
    pub taints: Option<Vec<Taint>>,
}

/// A node taint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Taint key.
    #[schemars(extend("minLength" = 1, "maxLength" = 316))]
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: TaintEffect,
}

/// Effect of a taint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TaintEffect {
    /// Pods that do not tolerate the taint are not scheduled.
    #[default]
    NoSchedule,
    /// The scheduler tries to avoid the node.
    PreferNoSchedule,
    /// Running pods that do not tolerate the taint are evicted.
    NoExecute,
}

/// Cluster networking.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// IP families of the cluster: IPv4 (default), IPv6 or DualStack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,

    /// Pod network CIDRs (one per IP family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 2, "items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.244.0.0/16"}]}))]
    pub pods: Option<Vec<String>>,

    /// Service network CIDRs (one per IP family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 2, "items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.96.0.0/12"}]}))]
    pub services: Option<Vec<String>>,

    /// Node network CIDRs (the provider's default fits most clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 2, "items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.8.0.0/20"}]}))]
    pub nodes: Option<Vec<String>>,
}

/// IP family of a cluster network.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IpFamily {
    /// IPv4 only.
    #[default]
    IPv4,
    /// IPv6 only.
    IPv6,
    /// IPv4 and IPv6.
    DualStack,
}

/// Extensions in the workload cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// Resource metrics (metrics-server). Mandatory: cannot be switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!has(self.enabled) || self.enabled",
        "message": "metrics is a mandatory extension and cannot be disabled",
        "fieldPath": ".enabled"
    }]))]
    pub metrics: Option<ExtensionToggle>,

    /// An ingress controller with a default IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ExtensionToggle>,

    /// Gateway API CRDs with an implementation.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "gatewayAPI"
    )]
    pub gateway_api: Option<ExtensionToggle>,

    /// cert-manager (if the provider offers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<ExtensionToggle>,

    /// Flux (if the provider offers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<ExtensionToggle>,

    /// Harbor (if the provider offers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harbor: Option<ExtensionToggle>,

    /// Further extensions from the provider's offering, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxItems" = 32,
        "x-kubernetes-validations" = [{
            "rule": "self.all(e, self.exists_one(f, f.name == e.name))",
            "message": "extension names must be unique",
            "reason": "FieldValueDuplicate"
        }]
    ))]
    pub additional: Option<Vec<NamedExtension>>,
}

/// Switch for one extension.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionToggle {
    /// Whether the extension is installed. Empty: the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Implementation to use where the provider offers several (e.g. ingress `nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
}

/// An additional extension, by name from the provider's offering.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedExtension {
    /// Name of the extension in the provider's offering.
    #[schemars(extend("pattern" = DNS_LABEL_PATTERN, "maxLength" = 63))]
    pub name: String,
    /// Whether it is installed (default true when listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The add-on block of the 2022 SCS-API proposal (kept for compatibility).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyAddons {
    /// → extensions.ingress
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx_ingress: Option<LegacyToggle>,
    /// → extensions.certManager
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<LegacyToggle>,
    /// → extensions.flux
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<LegacyToggle>,
    /// → extensions.metrics (always on; `false` is accepted with a warning)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<LegacyToggle>,
    /// → extensions.harbor
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harbor: Option<LegacyToggle>,
}

/// `{enabled: bool}` of the 2022 proposal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LegacyToggle {
    /// Whether the add-on is wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Maintenance settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Daily time window (UTC) for disruptive automatic changes. Empty: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<MaintenanceWindow>,
    /// Move to the newest offered patch of the running minor inside the window (default true).
    /// Expired versions are always moved up inside the window, whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update_patch: Option<bool>,
}

/// A daily time window in UTC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Start, `HH:MM` in UTC.
    #[schemars(extend("pattern" = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Length, e.g. `2h` or `90m` (30m to 24h).
    #[schemars(extend(
        "pattern" = r"^([0-9]+h)?([0-9]+m)?$",
        "maxLength" = 8,
        "x-kubernetes-validations" = [{
            "rule": "self != '' && duration(self) >= duration('30m') && duration(self) <= duration('24h')",
            "message": "duration must be between 30m and 24h"
        }]
    ))]
    pub duration: String,
}

/// Access to the cluster's API server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// OpenID Connect login for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
    /// Source CIDRs allowed to reach the API server. Empty: everywhere.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "apiServerAllowedCIDRs"
    )]
    #[schemars(extend("maxItems" = 64, "items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 203.0.113.0/24"}]}))]
    pub api_server_allowed_cidrs: Option<Vec<String>>,
}

/// OIDC settings of the API server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcSpec {
    /// Issuer URL (https).
    #[schemars(extend(
        "maxLength" = 2048,
        "x-kubernetes-validations" = [{
            "rule": "isURL(self) && url(self).getScheme() == 'https'",
            "message": "issuerURL must be an https URL"
        }]
    ))]
    #[serde(rename = "issuerURL")]
    pub issuer_url: String,
    /// Client id: the audience every token must be issued for.
    #[serde(rename = "clientID")]
    #[schemars(extend("minLength" = 1, "maxLength" = 256))]
    pub client_id: String,
    /// Claim used as user name (default `preferred_username`, as in the SCS cluster stacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 256))]
    pub username_claim: Option<String>,
    /// Prefix for user names (default `oidc:`; `-` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 256))]
    pub username_prefix: Option<String>,
    /// Claim used for groups, an array of strings (default `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 256))]
    pub groups_claim: Option<String>,
    /// Prefix for group names (default `oidc:`; `-` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 256))]
    pub groups_prefix: Option<String>,
    /// PEM certificate(s) of the CA that signed the issuer's serving certificate, for an issuer
    /// whose certificate is not publicly trusted. Only backends whose API server configuration
    /// kaas writes itself (hosted) can use it; the SCS cluster stacks' `oidcConfig` has no such
    /// field, so admission refuses it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxLength" = 65536,
        "x-kubernetes-validations" = [{
            "rule": "self.contains('-----BEGIN CERTIFICATE-----')",
            "message": "certificateAuthority must hold PEM certificates"
        }]
    ))]
    pub certificate_authority: Option<String>,
}

impl OidcSpec {
    /// Default of `usernameClaim` (the SCS cluster stacks' default, which kaas keeps on every
    /// backend so one description means the same user names everywhere).
    pub const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";
    /// Default of `groupsClaim`.
    pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
    /// Default of both prefixes.
    pub const DEFAULT_PREFIX: &str = "oidc:";

    /// The settings with every default filled in, prefixes as the API server takes them
    /// (`-` becomes no prefix).
    pub fn effective(&self) -> OidcSpec {
        let prefix = |p: &Option<String>| match p.as_deref() {
            None => Self::DEFAULT_PREFIX.to_string(),
            Some("-") => String::new(),
            Some(p) => p.to_string(),
        };
        OidcSpec {
            issuer_url: self.issuer_url.clone(),
            client_id: self.client_id.clone(),
            username_claim: Some(
                self.username_claim
                    .clone()
                    .unwrap_or_else(|| Self::DEFAULT_USERNAME_CLAIM.into()),
            ),
            username_prefix: Some(prefix(&self.username_prefix)),
            groups_claim: Some(
                self.groups_claim
                    .clone()
                    .unwrap_or_else(|| Self::DEFAULT_GROUPS_CLAIM.into()),
            ),
            groups_prefix: Some(prefix(&self.groups_prefix)),
            certificate_authority: self.certificate_authority.clone(),
        }
    }
}

/// Observed state, written by the kaas operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions, `Ready` first; the others say what Ready is made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Coarse phase for humans: Pending, Provisioning, Ready, Updating, Deleting, Failed, Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,

    /// Kubernetes version the whole cluster runs (control plane and every pool), when uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,

    /// The exact version kaas rolls out (the spec's `x` resolved, forced updates applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Address of the cluster's API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,

    /// Secret in the cluster's namespace holding an admin kubeconfig (key `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretRef>,

    /// Per worker pool: desired and ready nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerPoolStatus>,

    /// Warnings about the spec that do not stop reconciliation (e.g. a legacy switch ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,

    /// Addons and extensions in the workload cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionStatus>,

    /// The latest continuous compliance check (static SCS checks; details in the ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceStatus>,
}

/// Summary of the latest compliance check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceStatus {
    /// When it ran (RFC 3339).
    pub checked_at: String,
    /// The generation it ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Mandatory testcases (those that decide the SCS-compatible KaaS certificate) that passed.
    pub passed: i32,
    /// Mandatory testcases that failed.
    pub failed: i32,
    /// Mandatory testcases that could not decide.
    pub aborted: i32,
    /// Failed or undecided testcases of the other classes (preview, advisory, draft, outside the
    /// scope): reported, never a failure.
    #[serde(default)]
    pub warnings: i32,
    /// ConfigMap in this namespace with the full report (`report.txt`, `report.json`, `scs.yaml`).
    pub report_config_map: String,
    /// Where the release and CVE data of the version checks came from (the provider's
    /// release-data ConfigMap, or the data bundled with kaas and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_data_source: Option<String>,
    /// The day up to which that data lists Kubernetes releases (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_data_as_of: Option<String>,
    /// The data's age in days on the day of the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_data_age_days: Option<i64>,
}

/// State of one addon or extension in the workload cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionStatus {
    /// Name (`cni`, `metrics`, `ingress`, …).
    pub name: String,
    /// `base` (comes with the stack) or `extension`.
    pub stage: String,
    /// Version applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Every object of the addon is applied as specified.
    pub applied: bool,
    /// Its workloads (Deployments, DaemonSets) are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads_available: Option<bool>,
    /// Number of objects.
    #[serde(default)]
    pub objects: i32,
    /// Why it is not applied or not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Key holding the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Observed state of one worker pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolStatus {
    /// Pool name.
    pub name: String,
    /// Nodes wanted.
    #[serde(default)]
    pub desired: i32,
    /// Nodes ready.
    #[serde(default)]
    pub ready: i32,
    /// Version the pool's nodes run, when uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Autoscaled pools: the lower bound (`minCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    /// Autoscaled pools: the upper bound (`maxCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i32>,
    /// What the cluster-autoscaler reports for the pool, when it publishes its status (the
    /// ConfigMap `kube-system/cluster-autoscaler-status` in the workload cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<PoolAutoscalerStatus>,
}

/// The cluster-autoscaler's view of one pool (summed over its MachineDeployments).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolAutoscalerStatus {
    /// Nodes the autoscaler asks the pool for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i32>,
    /// Health of the pool (`Healthy`, `Unhealthy`); the worst of its node groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Scale-up state (`NoActivity`, `InProgress`, `Backoff`, …), the most telling of its node
    /// groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<String>,
    /// Scale-down state (`NoCandidates`, `CandidatesPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<String>,
    /// When the scale-up or scale-down state last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// Why the autoscaler cannot scale the pool up, when it backs off (`code: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cannot_scale: Option<String>,
}

/// Coarse lifecycle phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Accepted, nothing created yet.
    Pending,
    /// Infrastructure and nodes are being created.
    Provisioning,
    /// Everything is as specified.
    Ready,
    /// A change (scale, upgrade) is rolling out.
    Updating,
    /// The cluster is being deleted.
    Deleting,
    /// Something failed; see the conditions.
    Failed,
    /// The spec cannot be realised; see the `SpecAccepted` condition.
    Invalid,
    /// Hibernating as asked (`spec.hibernation`): no worker nodes, and on a hosted provider no
    /// control plane; its data is kept and waking restores everything.
    Hibernated,
}

impl std::fmt::Display for ClusterPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
