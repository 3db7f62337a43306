//! Every key the KaaS v1 settings (`clusterctl.yaml` of k8s-cluster-api-provider, all releases
//! R1–R6) know, and what becomes of it. Keys in [`MAPPED`] are translated by `migrate`; the others
//! are reported with the reason from [`OTHERS`]. `docs/migration.md` carries the same table (a test
//! keeps them in step).

use crate::report::Kind;

/// Keys translated into fields of the SCS `Cluster`, with the field they become.
pub const MAPPED: &[(&str, &str)] = &[
    ("CLUSTER_NAME", "metadata.name"),
    ("KUBERNETES_VERSION", "spec.kubernetes.version"),
    ("CONTROL_PLANE_MACHINE_COUNT", "spec.controlPlane.replicas"),
    (
        "OPENSTACK_CONTROL_PLANE_MACHINE_FLAVOR",
        "spec.controlPlane.flavor",
    ),
    ("OPENSTACK_ANTI_AFFINITY", "spec.controlPlane.antiAffinity"),
    ("OPENSTACK_ANTIAFFINITY", "spec.controlPlane.antiAffinity"),
    ("WORKER_MACHINE_COUNT", "spec.workers[0].count"),
    ("OPENSTACK_NODE_MACHINE_FLAVOR", "spec.workers[0].flavor"),
    ("OPENSTACK_FAILURE_DOMAIN", "spec.workers[0].zones"),
    ("NODE_CIDR", "spec.network.nodes"),
    ("SERVICE_CIDR", "spec.network.services"),
    ("POD_CIDR", "spec.network.pods"),
    ("RESTRICT_KUBEAPI", "spec.access.apiServerAllowedCIDRs"),
    ("DEPLOY_METRICS", "spec.extensions.metrics"),
    ("DEPLOY_NGINX_INGRESS", "spec.extensions.ingress"),
    ("DEPLOY_GATEWAY_API", "spec.extensions.gatewayAPI"),
    ("DEPLOY_CERT_MANAGER", "spec.extensions.certManager"),
    ("DEPLOY_FLUX", "spec.extensions.flux"),
    ("DEPLOY_HARBOR", "spec.extensions.harbor"),
];

const STACK_ADDONS: &str = "the OpenStack cloud-controller-manager and Cinder CSI are base addons of the provider's cluster stack, in the version that fits the Kubernetes version";
const GENERATION: &str = "generation counter for rolling machine changes: Cluster API topologies roll out changed machine templates by themselves";
const SERVER_GROUP: &str =
    "server groups are created by the provider's stack from spec.controlPlane.antiAffinity";
const CNI: &str = "the CNI (and its version) comes with the provider's cluster stack";
const MTU: &str = "the stack sets the CNI MTU from the cloud network";
const IMAGE_UPLOAD: &str = "node images are registered by the provider";
const MGMT: &str = "a setting of the management plane, which the provider runs";
const ETCD: &str = "etcd tuning is part of the provider's cluster stack";
const INGRESS_LB: &str = "how the ingress load balancer passes client addresses is set by the provider's ingress extension";
const CONTROL_PLANE_IP: &str =
    "the API server endpoint comes from the stack's load balancer (status.apiEndpoint)";
const DISK: &str = "the root disk comes with the flavor (Provider.spec.flavors[].diskGiB)";
const SSH: &str = "the SCS-API has no node SSH keys: nodes are managed through Kubernetes and Cluster API, not logged into";
const METADATA: &str = "OpenStack instance metadata is not part of the SCS-API (node labels are: spec.workers[].labels)";
const CREDENTIALS: &str = "belongs to the provider's credentials Secret referenced by Provider.spec.credentialsRef, in the provider namespace (docs/tenancy.md); never copied into a Cluster";

/// The other keys: what they were for and why nothing in the `Cluster` carries them.
pub const OTHERS: &[(&str, Kind, &str)] = &[
    (
        "OPENSTACK_IMAGE_NAME",
        Kind::Derived,
        "node images come with the provider's cluster stack for the Kubernetes version",
    ),
    ("CONTROL_PLANE_MACHINE_GEN", Kind::Derived, GENERATION),
    ("WORKER_MACHINE_GEN", Kind::Derived, GENERATION),
    ("OPENSTACK_CLUSTER_GEN", Kind::Derived, GENERATION),
    ("OPENSTACK_SRVGRP_CONTROLLER", Kind::Derived, SERVER_GROUP),
    ("OPENSTACK_SRVGRP_WORKER", Kind::Derived, SERVER_GROUP),
    (
        "OPENSTACK_SOFT_ANTI_AFFINITY_CONTROLLER",
        Kind::Derived,
        "hard or soft anti-affinity is the provider's choice (spec.controlPlane.antiAffinity is soft where hard is not possible)",
    ),
    ("MTU_VALUE", Kind::Derived, MTU),
    ("SET_MTU_B64", Kind::Derived, MTU),
    ("USE_CILIUM", Kind::Derived, CNI),
    ("CALICO_VERSION", Kind::Derived, CNI),
    ("DEPLOY_OCCM", Kind::Derived, STACK_ADDONS),
    ("DEPLOY_CINDERCSI", Kind::Derived, STACK_ADDONS),
    ("DEPLOY_K8S_OPENSTACK_GIT", Kind::Derived, STACK_ADDONS),
    ("DEPLOY_K8S_CINDERCSI_GIT", Kind::Derived, STACK_ADDONS),
    ("NGINX_INGRESS_PROXY", Kind::Derived, INGRESS_LB),
    ("USE_OVN_LB_PROVIDER", Kind::Derived, INGRESS_LB),
    (
        "OPENSTACK_DNS_NAMESERVERS",
        Kind::Derived,
        "the nodes' DNS servers are a network setting of the provider",
    ),
    (
        "OPENSTACK_EXTERNAL_NETWORK_ID",
        Kind::Derived,
        "the external network is chosen by the provider",
    ),
    (
        "OPENSTACK_CLOUD",
        Kind::Derived,
        "the cloud entry comes with the provider's credentials Secret (Provider.spec.credentialsRef)",
    ),
    (
        "OPENSTACK_CONTROL_PLANE_IP",
        Kind::Derived,
        CONTROL_PLANE_IP,
    ),
    ("OPENSTACK_CONTROLPLANE_IP", Kind::Derived, CONTROL_PLANE_IP),
    ("CONTROL_PLANE_ROOT_DISKSIZE", Kind::Derived, DISK),
    ("WORKER_ROOT_DISKSIZE", Kind::Derived, DISK),
    ("OPENSTACK_IMAGE_RAW", Kind::Derived, IMAGE_UPLOAD),
    (
        "OPENSTACK_IMAGE_REGISTRATION_EXTRA_FLAGS",
        Kind::Derived,
        IMAGE_UPLOAD,
    ),
    (
        "CLUSTER_API_OPENSTACK_INSTANCE_CREATE_TIMEOUT",
        Kind::Derived,
        MGMT,
    ),
    ("CLUSTER_API_VERSION", Kind::Derived, MGMT),
    ("CLUSTERAPI_VERSION", Kind::Derived, MGMT),
    ("CLUSTERAPI_OPENSTACK_PROVIDER_VERSION", Kind::Derived, MGMT),
    ("ETCD_PRIO_BOOST", Kind::Derived, ETCD),
    ("ETCDCTL_VERSION", Kind::Derived, ETCD),
    (
        "PROXY_CMD",
        Kind::Derived,
        "HTTP proxies of the nodes are part of the provider's network setup",
    ),
    (
        "NAMESPACE",
        Kind::Derived,
        "the Cluster API objects live in the provider-side namespace kaas-<provider>-<tenant>; the SCS Cluster lives in the tenant's namespace (--namespace)",
    ),
    (
        "PREFIX",
        Kind::Derived,
        "names of OpenStack resources are chosen by the provider's stack",
    ),
    (
        "ETCD_UNSAFE_FS",
        Kind::NoEquivalent,
        "unsafe filesystem tuning (barrier=0) of control-plane nodes is not offered to tenants",
    ),
    (
        "OPENSTACK_CONTROL_PLANE_MACHINE_METADATA",
        Kind::NoEquivalent,
        METADATA,
    ),
    (
        "OPENSTACK_NODE_MACHINE_METADATA",
        Kind::NoEquivalent,
        METADATA,
    ),
    ("OPENSTACK_SSH_KEY_NAME", Kind::NoEquivalent, SSH),
    ("OPENSTACK_KEYPAIR_NAME", Kind::NoEquivalent, SSH),
    (
        "OPENSTACK_CLOUD_YAML_B64",
        Kind::Secret,
        "OpenStack credentials (clouds.yaml): they belong to the provider's credentials Secret referenced by Provider.spec.credentialsRef, in the provider namespace (docs/tenancy.md); never copied into a Cluster",
    ),
    (
        "OPENSTACK_CLOUD_PROVIDER_CONF_B64",
        Kind::Secret,
        "cloud.conf of the cloud-controller-manager, with credentials: the stack builds it from the provider's credentials Secret referenced by Provider.spec.credentialsRef, in the provider namespace (docs/tenancy.md); never copied into a Cluster",
    ),
    (
        "OPENSTACK_CLOUD_CACERT_B64",
        Kind::Secret,
        "CA certificate of the OpenStack API: it belongs to the provider's credentials Secret referenced by Provider.spec.credentialsRef, in the provider namespace (docs/tenancy.md); never copied into a Cluster",
    ),
];

/// What a key not in the tables is treated as: names that look like credentials are secrets
/// (their value is never shown), everything else is unknown (value not shown either: it might be
/// anything).
pub fn classify_unknown(key: &str) -> (Kind, String) {
    const SECRET_WORDS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "APPCRED",
        "PRIVATE",
    ];
    if key.ends_with("_B64") || SECRET_WORDS.iter().any(|w| key.contains(w)) {
        (
            Kind::Secret,
            format!("not a key of the v1 template, but named like a credential: it {CREDENTIALS}"),
        )
    } else {
        (
            Kind::Unknown,
            "not a key of the v1 template: if a customised cluster-template.yaml used it, carry its intent over by hand".into(),
        )
    }
}

/// Every key of the tables with its kind (mapped keys first), for documentation and tests.
pub fn known_keys() -> Vec<(&'static str, Kind)> {
    MAPPED
        .iter()
        .map(|(k, _)| (*k, Kind::Mapped))
        .chain(OTHERS.iter().map(|(k, kind, _)| (*k, *kind)))
        .collect()
}

/// Whether the value of `key` may be shown in reports: never for secrets and base64 blobs.
pub fn value_shown(key: &str, kind: Kind) -> bool {
    !matches!(kind, Kind::Secret | Kind::Unknown) && !key.ends_with("_B64")
}
