//! Rendering: a validated SCS `Cluster` ([`kaas_validate::Resolved`]) becomes the Cluster API
//! objects of its provider's stack. Pure — no client, no clock — so it is unit-tested from YAML
//! and benchmarked on its own.
//!
//! Where things live (see `docs/tenancy.md`): a tenant's SCS `Cluster` stays in the tenant's
//! namespace; its Cluster API objects go to a namespace owned by the provider side,
//! [`capi_namespace`]`(provider, tenant)`, which tenants cannot read. The ClusterClass is shared
//! from the provider's namespace through `classRef.namespace`.

pub mod autoscaler;
pub mod hosted;
pub mod maintenance;
pub mod names;
pub mod plan;
pub mod stacks;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaas_api::Cluster;
use kaas_api::provider::{BackendType, StackKind};
use kaas_capi::cluster as capi;
use kaas_validate::Resolved;
use kaas_validate::offering::Size;

pub use names::capi_namespace;

/// Label on every object kaas renders: the SCS cluster's name.
pub const LABEL_CLUSTER: &str = "scs.community/cluster";
/// Label: the tenant namespace of the SCS cluster.
pub const LABEL_TENANT: &str = "scs.community/tenant";
/// Label: the provider.
pub const LABEL_PROVIDER: &str = "scs.community/provider";
/// Label: the worker pool a MachineDeployment belongs to.
pub const LABEL_POOL: &str = "scs.community/pool";
/// Autoscaler annotations (Cluster API provider of cluster-autoscaler).
pub const ANNOTATION_MIN_SIZE: &str = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size";
/// Autoscaler annotation, upper bound.
pub const ANNOTATION_MAX_SIZE: &str = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size";

/// Why a cluster cannot be rendered (validation should have caught it; never a panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The provider's backend is not Cluster API.
    #[error("provider {0:?} does not use the Cluster API backend; nothing to render")]
    NotClusterApi(String),
    /// A required resolved field is missing.
    #[error("cannot render: {0}")]
    Incomplete(&'static str),
    /// The cluster has no name or namespace.
    #[error("cannot render: the Cluster has no {0}")]
    NoMetadata(&'static str),
}

/// The SCS Cluster's name and tenant namespace.
pub(crate) fn name_and_tenant(cluster: &Cluster) -> Result<(String, String), RenderError> {
    let name = cluster
        .metadata
        .name
        .clone()
        .ok_or(RenderError::NoMetadata("name"))?;
    let tenant = cluster
        .metadata
        .namespace
        .clone()
        .ok_or(RenderError::NoMetadata("namespace"))?;
    Ok((name, tenant))
}

/// Labels of every object kaas renders for a cluster (the orphan collector and the watches
/// find them by these).
pub(crate) fn object_labels(name: &str, tenant: &str, provider: &str) -> BTreeMap<String, String> {
    [
        (LABEL_CLUSTER, name),
        (LABEL_TENANT, tenant),
        (LABEL_PROVIDER, provider),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Pod Security level of every provider-side namespace: the only pods there are the
/// cluster-autoscalers kaas runs, which comply; anything else the operator's credentials could
/// start there is held to `restricted` too (the chart's policy `kaas-operator-workloads` requires
/// the label, `kaas-operator-namespaces` keeps the operator from labelling other namespaces).
pub const POD_SECURITY: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");

/// Labels of a provider-side namespace.
pub fn namespace_labels(tenant: &str, provider: &str) -> BTreeMap<String, String> {
    [
        (LABEL_TENANT, tenant),
        (LABEL_PROVIDER, provider),
        ("app.kubernetes.io/managed-by", "kaas"),
        POD_SECURITY,
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What kaas writes to the management cluster for one SCS `Cluster`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The provider-side namespace for the Cluster API objects. For an adopted cluster
    /// ([`Target`]) only its name: the namespace is not kaas' and is never written.
    pub namespace: Namespace,
    /// The Cluster API `Cluster` with its managed topology.
    pub cluster: capi::Cluster,
    /// Rendered for an adopted Cluster API cluster ([`render_at`] with a [`Target`]).
    pub adopted: bool,
}

/// What a backend writes for a cluster, rendered (pure) before the backend applies it.
#[derive(Clone, Debug)]
pub enum Objects {
    /// Cluster API: the namespace and the `Cluster` with its topology.
    ClusterApi(Box<Rendered>),
    /// A hosted control plane and its namespace.
    Hosted(Box<hosted::RenderedHosted>),
    /// An imported cluster: only the provider-side namespace that holds its addon inventory.
    Imported(Box<Namespace>),
}

/// The provider-side namespace of an imported cluster (it holds the addon inventory).
pub fn render_imported(cluster: &Cluster, resolved: &Resolved) -> Result<Namespace, RenderError> {
    let (_, tenant) = name_and_tenant(cluster)?;
    Ok(Namespace {
        metadata: ObjectMeta {
            name: Some(capi_namespace(&resolved.provider, &tenant)),
            labels: Some(
                [("app.kubernetes.io/managed-by", "kaas"), POD_SECURITY]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Where an adopted Cluster API cluster lives and what kaas keeps of it (see
/// `docs/adoption.md`): kaas manages the Cluster API `Cluster` `namespace/name` instead of the
/// derived [`capi_namespace`]`/<cluster name>`. Only built by the operator after the two-sided
/// handshake (the SCS Cluster's `adopt-from` and the Cluster API Cluster's `adopted-by`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Namespace of the Cluster API `Cluster`.
    pub namespace: String,
    /// Name of the Cluster API `Cluster`.
    pub name: String,
    /// The cluster's current `topology.classRef` (name, namespace as written). While kaas renders
    /// the same class name, it keeps this reference as it is (a cluster may use a copy of the
    /// class in its own namespace; switching to the provider's copy would roll every machine).
    /// A different class (an upgrade to another stack release) comes from the provider namespace.
    pub class_ref: Option<(String, Option<String>)>,
}

impl Rendered {
    /// All objects as JSON values (apiVersion and kind set), in apply order.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        let mut ns = serde_json::to_value(&self.namespace).expect("Namespace serialises");
        ns["apiVersion"] = "v1".into();
        ns["kind"] = "Namespace".into();
        let cl = serde_json::to_value(&self.cluster).expect("Cluster serialises");
        if self.adopted {
            return vec![cl];
        }
        vec![ns, cl]
    }

    /// All objects as multi-document YAML.
    pub fn to_yaml(&self) -> String {
        self.objects()
            .iter()
            .map(|o| serde_yaml::to_string(o).expect("JSON serialises to YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// Renders the Cluster API objects of `cluster`, validated into `resolved`.
pub fn render(cluster: &Cluster, resolved: &Resolved) -> Result<Rendered, RenderError> {
    render_at(cluster, resolved, None)
}

/// [`render`], for an adopted cluster at `target` when given: the Cluster API `Cluster` gets the
/// target's name and namespace, keeps its class reference (see [`Target::class_ref`]), and a
/// pool with at most one zone keeps its own name as MachineDeployment topology name (adopted
/// pools are named after the existing topologies). No Namespace object is written.
pub fn render_at(
    cluster: &Cluster,
    resolved: &Resolved,
    target: Option<&Target>,
) -> Result<Rendered, RenderError> {
    if resolved.backend != BackendType::ClusterAPI {
        return Err(RenderError::NotClusterApi(resolved.provider.clone()));
    }
    let (name, tenant) = name_and_tenant(cluster)?;
    let stack = resolved.stack.ok_or(RenderError::Incomplete("stack"))?;
    let provider_ns = resolved
        .provider_namespace
        .clone()
        .ok_or(RenderError::Incomplete("provider namespace"))?;
    let class = resolved
        .cluster_class
        .clone()
        .ok_or(RenderError::Incomplete("cluster class"))?;
    let version = resolved
        .version
        .as_ref()
        .ok_or(RenderError::Incomplete("version"))?;
    let namespace = match target {
        Some(t) => t.namespace.clone(),
        None => capi_namespace(&resolved.provider, &tenant),
    };
    let class_namespace = match target.and_then(|t| t.class_ref.as_ref()) {
        Some((kept, ns)) if *kept == class => ns.clone(),
        _ => Some(provider_ns),
    };

    let labels = object_labels(&name, &tenant, &resolved.provider);
    let ns_labels = namespace_labels(&tenant, &resolved.provider);

    let stack_impl = stacks::for_kind(stack);
    let machine_deployments = machine_deployments(resolved, stack_impl.as_ref(), target.is_some());
    let variables = stack_impl.cluster_variables(resolved);

    let spec = capi::ClusterSpec {
        cluster_network: Some(capi::ClusterClusterNetwork {
            pods: Some(capi::ClusterClusterNetworkPods {
                cidr_blocks: resolved.network.pods.clone(),
            }),
            services: Some(capi::ClusterClusterNetworkServices {
                cidr_blocks: resolved.network.services.clone(),
            }),
            ..Default::default()
        }),
        topology: Some(capi::ClusterTopology {
            class_ref: capi::ClusterTopologyClassRef {
                name: class,
                namespace: class_namespace,
            },
            version: version.release(),
            control_plane: Some(capi::ClusterTopologyControlPlane {
                replicas: Some(resolved.control_plane.replicas),
                ..Default::default()
            }),
            workers: (!machine_deployments.is_empty()).then(|| capi::ClusterTopologyWorkers {
                machine_deployments: Some(machine_deployments),
                ..Default::default()
            }),
            variables: (!variables.is_empty()).then_some(variables),
        }),
        ..Default::default()
    };
    let capi_name = target.map_or(name.as_str(), |t| t.name.as_str());
    let mut capi_cluster = capi::Cluster::new(capi_name, spec);
    capi_cluster.metadata.namespace = Some(namespace.clone());
    capi_cluster.metadata.labels = Some(labels);

    Ok(Rendered {
        namespace: Namespace {
            metadata: ObjectMeta {
                name: Some(namespace),
                labels: target.is_none().then_some(ns_labels),
                ..Default::default()
            },
            ..Default::default()
        },
        cluster: capi_cluster,
        adopted: target.is_some(),
    })
}

/// Splits `n` as evenly as possible into `parts` (the first ones get the remainder).
pub fn spread(n: i32, parts: usize) -> Vec<i32> {
    let parts = parts.max(1) as i32;
    (0..parts)
        .map(|i| n / parts + i32::from(i < n % parts))
        .collect()
}

fn machine_deployments(
    resolved: &Resolved,
    stack: &dyn stacks::Stack,
    adopted: bool,
) -> Vec<capi::ClusterTopologyWorkersMachineDeployments> {
    let mut out = Vec::new();
    for pool in &resolved.pools {
        let zones: Vec<Option<&String>> = if pool.zones.is_empty() {
            vec![None]
        } else {
            pool.zones.iter().map(Some).collect()
        };
        let (replicas, mins, maxs) = match resolved.size_now(pool) {
            Size::Fixed(n) => (
                spread(n, zones.len()).into_iter().map(Some).collect(),
                None,
                None,
            ),
            Size::Autoscale { min, max } => (
                vec![None; zones.len()],
                Some(spread(min, zones.len())),
                Some(spread(max, zones.len())),
            ),
        };
        for (i, zone) in zones.iter().enumerate() {
            let mut labels = pool.labels.clone();
            labels.insert(LABEL_POOL.into(), pool.name.clone());
            let mut annotations = BTreeMap::new();
            if let (Some(mins), Some(maxs)) = (&mins, &maxs) {
                annotations.insert(ANNOTATION_MIN_SIZE.to_string(), mins[i].to_string());
                annotations.insert(ANNOTATION_MAX_SIZE.to_string(), maxs[i].to_string());
                if mins[i] == 0 {
                    annotations.extend(autoscaler::capacity_annotations(pool));
                }
            }
            let overrides = stack.pool_variables(resolved, pool);
            out.push(capi::ClusterTopologyWorkersMachineDeployments {
                class: stack.worker_class(pool).to_string(),
                name: if adopted && zones.len() == 1 {
                    pool.name.clone()
                } else {
                    names::machine_deployment(&pool.name, zone.map(|z| z.as_str()))
                },
                failure_domain: zone.map(|z| z.to_string()),
                replicas: replicas[i],
                metadata: Some(capi::ClusterTopologyWorkersMachineDeploymentsMetadata {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                }),
                taints: (!pool.taints.is_empty()).then(|| pool.taints.iter().map(taint).collect()),
                variables: (!overrides.is_empty()).then_some({
                    capi::ClusterTopologyWorkersMachineDeploymentsVariables {
                        overrides: Some(overrides),
                    }
                }),
                ..Default::default()
            });
        }
    }
    out
}

fn taint(t: &kaas_api::cluster::Taint) -> capi::ClusterTopologyWorkersMachineDeploymentsTaints {
    use capi::ClusterTopologyWorkersMachineDeploymentsTaintsEffect as E;
    use kaas_api::cluster::TaintEffect;
    capi::ClusterTopologyWorkersMachineDeploymentsTaints {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: match t.effect {
            TaintEffect::NoSchedule => E::NoSchedule,
            TaintEffect::PreferNoSchedule => E::PreferNoSchedule,
            TaintEffect::NoExecute => E::NoExecute,
        },
        propagation: capi::ClusterTopologyWorkersMachineDeploymentsTaintsPropagation::Always,
    }
}

/// Used by [`stacks`] to build variables.
pub(crate) fn var(name: &str, value: serde_json::Value) -> capi::ClusterTopologyVariables {
    capi::ClusterTopologyVariables {
        name: name.into(),
        value,
    }
}

/// Which stacks kaas renders for.
pub fn supported_stacks() -> [StackKind; 2] {
    [StackKind::InMemory, StackKind::OpenStackScs2]
}
