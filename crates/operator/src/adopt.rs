//! Adoption of an existing Cluster API cluster (built on a ClusterClass) as an SCS `Cluster`
//! managed by kaas, without recreating or rolling a machine (`docs/adoption.md`).
//!
//! Three parts:
//! - the handshake ([`confirm`], [`locate`]): the SCS Cluster (tenant-writable) names the Cluster
//!   API Cluster in [`ANNOTATION_ADOPT_FROM`]; that Cluster API Cluster (in a namespace only the
//!   provider admin writes) names the SCS Cluster back in [`ANNOTATION_ADOPTED_BY`]. Only when both
//!   agree does the operator manage it; otherwise the SCS Cluster is not accepted and nothing of
//!   the named Cluster API cluster is read, written or deleted;
//! - the pure expressibility check [`express`]: can this Cluster API cluster be described as an
//!   SCS Cluster of provider P, and which Cluster is that — checked by rendering that Cluster and
//!   comparing every field kaas manages with the existing topology;
//! - [`plan`] and [`apply`]: what `kaas adopt` reads and writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kaas_api::cluster::{
    ControlPlaneSpec, KubernetesSpec, NetworkSpec, ProviderRef, Taint, TaintEffect, WorkerPool,
};
use kaas_api::provider::{BackendType, Classification, KubernetesVersion, StackKind};
use kaas_api::{ANNOTATION_ADOPT_FROM, ANNOTATION_ADOPTED_BY, Cluster, KubeVersion, Provider};
use kaas_capi::cluster::{
    Cluster as CapiCluster, ClusterTopology, ClusterTopologyWorkersMachineDeployments,
    ClusterTopologyWorkersMachineDeploymentsTaintsEffect as CapiEffect,
    ClusterTopologyWorkersMachineDeploymentsTaintsPropagation as CapiPropagation,
};
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_render::{
    ANNOTATION_MAX_SIZE, ANNOTATION_MIN_SIZE, LABEL_CLUSTER, LABEL_POOL, LABEL_PROVIDER,
    LABEL_TENANT, Target, capi_namespace,
};
use kaas_validate::admission::{Providers, Stage};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::FIELD_MANAGER;

/// Field manager of what `kaas adopt` writes (never the operator's: an apply by the operator
/// would otherwise remove the `adopted-by` annotation it does not render).
pub const ADOPT_MANAGER: &str = "kaas-adopt";

/// Path of the tenant's annotation in error messages.
pub const ADOPT_FROM_PATH: &str = "metadata.annotations[scs.community/adopt-from]";

/// `<namespace>/<name>` → its parts, when both are non-empty and there is exactly one `/`.
pub fn parse_ref(s: &str) -> Option<(String, String)> {
    let (ns, name) = s.trim().split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (ns.to_string(), name.to_string()))
}

/// Where the operator manages the Cluster API objects of an SCS Cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Namespace of the Cluster API Cluster.
    pub namespace: String,
    /// Name of the Cluster API Cluster.
    pub name: String,
    /// Set for a confirmed adoption.
    pub target: Option<Target>,
    /// Why a requested adoption is not confirmed; the location is then the derived one (the
    /// tenant's own), and the operator does not apply anything.
    pub problem: Option<String>,
}

/// The handshake, pure: `Ok(None)` when `cluster` asks for no adoption, `Ok(Some(target))` when
/// `capi` (the Cluster API Cluster its `adopt-from` names, if it exists) names it back, otherwise
/// why not.
pub fn confirm(cluster: &Cluster, capi: Option<&CapiCluster>) -> Result<Option<Target>, String> {
    let Some(raw) = cluster.annotations().get(ANNOTATION_ADOPT_FROM) else {
        return Ok(None);
    };
    let Some((ns, name)) = parse_ref(raw) else {
        return Err(format!(
            "annotation {ANNOTATION_ADOPT_FROM}: expected <namespace>/<name> of a Cluster API Cluster, got {raw:?}"
        ));
    };
    let me = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    // One answer for every unconfirmed case — the Cluster API Cluster does not exist, has no
    // `adopted-by`, or is adopted by another SCS Cluster: the tenant may name any namespace,
    // and what the operator finds there (with its own privileges) must not leak to the tenant
    // (`docs/adoption.md`, "The handshake").
    let unconfirmed = || {
        Err(format!(
            "adoption not confirmed by the provider: no Cluster API Cluster {ns}/{name} carries the annotation {ANNOTATION_ADOPTED_BY}: {me} (the provider adopts a cluster with `kaas adopt`)"
        ))
    };
    let Some(capi) = capi else {
        return unconfirmed();
    };
    match capi.annotations().get(ANNOTATION_ADOPTED_BY) {
        Some(by) if by.trim() == me => {}
        _ => return unconfirmed(),
    }
    Ok(Some(Target {
        namespace: ns,
        name,
        class_ref: capi
            .spec
            .topology
            .as_ref()
            .map(|t| (t.class_ref.name.clone(), t.class_ref.namespace.clone())),
    }))
}

/// Where the Cluster API objects of `cluster` (of `provider`) are: the derived
/// [`capi_namespace`]`/<name>`, or the adopted Cluster API Cluster when the handshake holds.
pub async fn locate(
    client: &Client,
    cluster: &Cluster,
    provider: &str,
) -> Result<Location, kube::Error> {
    let tenant = cluster.namespace().unwrap_or_default();
    let mut loc = Location {
        namespace: capi_namespace(provider, &tenant),
        name: cluster.name_any(),
        target: None,
        problem: None,
    };
    let Some(raw) = cluster.annotations().get(ANNOTATION_ADOPT_FROM) else {
        return Ok(loc);
    };
    let capi = match parse_ref(raw) {
        Some((ns, name)) => {
            Api::<CapiCluster>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await?
        }
        None => None,
    };
    match confirm(cluster, capi.as_ref()) {
        Ok(Some(t)) => {
            loc.namespace = t.namespace.clone();
            loc.name = t.name.clone();
            loc.target = Some(t);
        }
        Ok(None) => {}
        Err(p) => loc.problem = Some(p),
    }
    Ok(loc)
}

/// What [`express`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The SCS Cluster that describes the Cluster API cluster (complete only without refusals).
    pub cluster: Cluster,
    /// Why it cannot be adopted, one line each (empty: it can).
    pub refusals: Vec<String>,
    /// What kaas keeps as it is without managing it.
    pub notes: Vec<String>,
}

impl Verdict {
    /// Whether the cluster can be adopted.
    pub fn ok(&self) -> bool {
        self.refusals.is_empty()
    }
}

/// The SCS Cluster `tenant/name` of `provider` that describes `capi`, pure. `standalone` names
/// worker objects of the cluster outside its topology (MachineDeployments, MachinePools), which
/// kaas cannot express. The result is checked by rendering it for the adopted location and
/// comparing every field kaas writes with `capi`'s topology: any difference would change (roll)
/// the cluster and is a refusal.
pub fn express(
    capi: &CapiCluster,
    provider: &Provider,
    tenant: &str,
    name: &str,
    standalone: &[String],
) -> Verdict {
    let mut v = Verdict {
        cluster: skeleton(capi, provider, tenant, name),
        refusals: Vec::new(),
        notes: Vec::new(),
    };
    if provider.spec.backend.kind != BackendType::ClusterAPI {
        v.refusals.push(format!(
            "provider {:?} does not use the Cluster API backend",
            provider.name_any()
        ));
        return v;
    }
    let stack = provider
        .spec
        .backend
        .cluster_api
        .as_ref()
        .map(|c| c.stack)
        .unwrap_or(StackKind::InMemory);
    v.refusals
        .extend(ownership_refusals(capi, tenant, name, standalone));
    let Some(topo) = capi.spec.topology.as_ref() else {
        v.refusals.push(
            "spec.topology: the cluster is not built on a ClusterClass (no managed topology)"
                .into(),
        );
        return v;
    };
    express_version(capi, topo, provider, &mut v);
    express_control_plane(topo, &mut v);
    let net = capi.spec.cluster_network.clone().unwrap_or_default();
    v.cluster.spec.network = Some(NetworkSpec {
        pods: net.pods.as_ref().map(|p| p.cidr_blocks.clone()),
        services: net.services.as_ref().map(|s| s.cidr_blocks.clone()),
        ..Default::default()
    });
    express_workers(topo, &mut v);
    // The stack's variables become SCS fields; the rest cannot be expressed.
    absorb_variables(stack, topo, &mut v.cluster, &mut v.refusals);
    check(capi, topo, provider, &mut v);
    v
}

/// The SCS Cluster `tenant/name` before anything of the topology is read: its `adopt-from`
/// annotation naming `capi` and `spec.provider.name`.
fn skeleton(capi: &CapiCluster, provider: &Provider, tenant: &str, name: &str) -> Cluster {
    let mut cluster = Cluster::new(name, Default::default());
    cluster.metadata.namespace = Some(tenant.to_string());
    cluster.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_ADOPT_FROM.to_string(),
        format!(
            "{}/{}",
            capi.namespace().unwrap_or_default(),
            capi.name_any()
        ),
    )]));
    cluster.spec.provider = Some(ProviderRef {
        name: Some(provider.name_any()),
        ..Default::default()
    });
    cluster
}

/// Why `capi` cannot become `tenant/name` whatever its topology says: it is being deleted, kaas
/// already manages it (its label without `adopted-by`), another SCS Cluster adopted it, or worker
/// objects (`standalone`) live outside its topology.
fn ownership_refusals(
    capi: &CapiCluster,
    tenant: &str,
    name: &str,
    standalone: &[String],
) -> Vec<String> {
    let capi_ns = capi.namespace().unwrap_or_default();
    let capi_name = capi.name_any();
    let mut refusals = Vec::new();
    if capi.metadata.deletion_timestamp.is_some() {
        refusals.push(format!(
            "Cluster API Cluster {capi_ns}/{capi_name} is being deleted"
        ));
    }
    if capi.labels().contains_key(LABEL_CLUSTER)
        && !capi.annotations().contains_key(ANNOTATION_ADOPTED_BY)
    {
        refusals.push(format!(
            "Cluster API Cluster {capi_ns}/{capi_name} is already managed by kaas (label {LABEL_CLUSTER})"
        ));
    }
    if let Some(by) = capi.annotations().get(ANNOTATION_ADOPTED_BY)
        && *by != format!("{tenant}/{name}")
    {
        refusals.push(format!(
            "Cluster API Cluster {capi_ns}/{capi_name} is already adopted by {by:?}"
        ));
    }
    for s in standalone {
        refusals.push(format!(
            "{s} belongs to the cluster but not to its topology; kaas manages topologies only"
        ));
    }
    refusals
}

/// The provider's offer of the version the topology runs: refused when that is not an exact
/// release (`v1.34.2`), not offered, or expired (kaas would upgrade it at once).
fn offered_version<'p>(
    topo: &ClusterTopology,
    provider: &'p Provider,
    refusals: &mut Vec<String>,
) -> Option<&'p KubernetesVersion> {
    let pname = provider.name_any();
    let versions = &provider.spec.kubernetes_versions;
    let offered: Vec<String> = versions
        .iter()
        .filter(|o| o.classification != Classification::Expired)
        .map(|o| o.version.clone())
        .collect();
    match topo.version.parse::<KubeVersion>() {
        Ok(v) if v.patch_number().is_some() && v.pre.is_none() => {
            let found = versions
                .iter()
                .find(|o| o.version.parse::<KubeVersion>().is_ok_and(|ov| ov == v));
            match found {
                None => {
                    refusals.push(format!(
                        "spec.topology.version: {} is not offered by provider {pname:?} (offered: {})",
                        topo.version,
                        offered.join(", ")
                    ));
                    None
                }
                Some(o) if o.classification == Classification::Expired => {
                    refusals.push(format!(
                        "spec.topology.version: {} is expired at provider {pname:?}; kaas would upgrade it at once (upgrade it first to one of: {})",
                        topo.version,
                        offered.join(", ")
                    ));
                    None
                }
                Some(o) => Some(o),
            }
        }
        _ => {
            refusals.push(format!(
                "spec.topology.version: {:?} is not an exact Kubernetes release",
                topo.version
            ));
            None
        }
    }
}

/// Version and class: an offered version becomes `spec.kubernetes.version`; a ClusterClass other
/// than the one the provider uses for it is refused, one kept in another namespace than the
/// provider's copy is a note.
fn express_version(
    capi: &CapiCluster,
    topo: &ClusterTopology,
    provider: &Provider,
    v: &mut Verdict,
) {
    let Some(o) = offered_version(topo, provider, &mut v.refusals) else {
        return;
    };
    v.cluster.spec.kubernetes = Some(KubernetesSpec {
        version: Some(o.version.trim_start_matches('v').to_string()),
    });
    if topo.class_ref.name != o.stack.cluster_class {
        v.refusals.push(format!(
            "spec.topology.classRef.name: {:?} is not the ClusterClass provider {:?} uses for {} ({:?})",
            topo.class_ref.name,
            provider.name_any(),
            topo.version,
            o.stack.cluster_class
        ));
    }
    let capi_ns = capi.namespace().unwrap_or_default();
    let class_ns = topo.class_ref.namespace.as_deref().unwrap_or(&capi_ns);
    if class_ns != provider.spec.backend.namespace {
        v.notes.push(format!(
            "spec.topology.classRef: kaas keeps {}/{} (the provider's copy is in {}); an upgrade to another ClusterClass uses the provider's",
            class_ns, topo.class_ref.name, provider.spec.backend.namespace
        ));
    }
}

/// The control plane's replicas (refused when not set) and no MachinePool workers (kaas has
/// none).
fn express_control_plane(topo: &ClusterTopology, v: &mut Verdict) {
    let cp = topo.control_plane.clone().unwrap_or_default();
    match cp.replicas {
        Some(r) => {
            v.cluster.spec.control_plane = Some(ControlPlaneSpec {
                replicas: Some(r),
                ..Default::default()
            })
        }
        None => v.refusals.push(
            "spec.topology.controlPlane.replicas: not set; kaas needs an explicit count".into(),
        ),
    }
    if topo
        .workers
        .as_ref()
        .and_then(|w| w.machine_pools.as_ref())
        .is_some_and(|p| !p.is_empty())
    {
        v.refusals.push(
            "spec.topology.workers.machinePools: kaas has no MachinePool workers (only MachineDeployments)"
                .into(),
        );
    }
}

/// One worker pool per MachineDeployment of the topology, in its order (`spec.workers` stays
/// unset without any).
fn express_workers(topo: &ClusterTopology, v: &mut Verdict) {
    let mds: Vec<ClusterTopologyWorkersMachineDeployments> = topo
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default();
    let pools: Vec<WorkerPool> = mds
        .iter()
        .map(|md| worker_pool(md, &mut v.refusals))
        .collect();
    if !pools.is_empty() {
        v.cluster.spec.workers = Some(pools);
    }
}

/// The worker pool of one MachineDeployment: its name (a DNS label of at most 40 characters,
/// agreeing with its pool label), zone, labels, size ([`pool_size`]) and taints (propagation
/// `Always` only).
fn worker_pool(
    md: &ClusterTopologyWorkersMachineDeployments,
    refusals: &mut Vec<String>,
) -> WorkerPool {
    let path = format!("spec.topology.workers.machineDeployments[{}]", md.name);
    if !dns_label(&md.name) || md.name.len() > 40 {
        refusals.push(format!(
            "{path}.name: {:?} cannot be a worker pool name (a DNS label of at most 40 characters)",
            md.name
        ));
    }
    let meta = md.metadata.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let mut labels = meta.labels.clone().unwrap_or_default();
    if let Some(p) = labels.remove(LABEL_POOL)
        && p != md.name
    {
        refusals.push(format!(
            "{path}.metadata.labels[{LABEL_POOL}]: {p:?} differs from the topology name {:?}",
            md.name
        ));
    }
    let mut pool = WorkerPool {
        name: md.name.clone(),
        zones: md.failure_domain.clone().map(|z| vec![z]),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    };
    pool_size(md, &annotations, &path, &mut pool, refusals);
    if let Some(taints) = md.taints.as_ref().filter(|t| !t.is_empty()) {
        pool.taints = Some(
            taints
                .iter()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: match t.effect {
                        CapiEffect::NoSchedule => TaintEffect::NoSchedule,
                        CapiEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
                        CapiEffect::NoExecute => TaintEffect::NoExecute,
                    },
                })
                .collect(),
        );
        if taints
            .iter()
            .any(|t| !matches!(t.propagation, CapiPropagation::Always))
        {
            refusals.push(format!(
                "{path}.taints: kaas writes taints with propagation Always only"
            ));
        }
    }
    pool
}

/// A pool's size: a fixed count (replicas, no autoscaler annotations) or autoscaler bounds (both
/// annotations, numbers, no replicas); anything else is refused.
fn pool_size(
    md: &ClusterTopologyWorkersMachineDeployments,
    annotations: &BTreeMap<String, String>,
    path: &str,
    pool: &mut WorkerPool,
    refusals: &mut Vec<String>,
) {
    let min = annotations.get(ANNOTATION_MIN_SIZE);
    let max = annotations.get(ANNOTATION_MAX_SIZE);
    match (md.replicas, min, max) {
        (Some(n), None, None) => pool.count = Some(n),
        (None, Some(min), Some(max)) => match (min.parse::<i32>(), max.parse::<i32>()) {
            (Ok(min), Ok(max)) => {
                pool.min_count = Some(min);
                pool.max_count = Some(max);
            }
            _ => refusals.push(format!(
                "{path}.metadata.annotations: autoscaler bounds {min:?}..{max:?} are not numbers"
            )),
        },
        (None, None, None) => refusals.push(format!(
            "{path}.replicas: not set and no autoscaler bounds; kaas needs a count"
        )),
        _ => refusals.push(format!(
            "{path}: replicas and autoscaler annotations ({ANNOTATION_MIN_SIZE}, {ANNOTATION_MAX_SIZE}) must be either a fixed count or both bounds without replicas"
        )),
    }
}

/// The check of the expressed Cluster: the CRD's schema and CEL rules, then the provider's
/// offering; only when nothing is refused so far, it is rendered for `capi`'s location and every
/// field kaas writes that differs from `capi` is refused ([`compare`]), what kaas keeps unmanaged
/// is noted ([`kept`]).
fn check(capi: &CapiCluster, topo: &ClusterTopology, provider: &Provider, v: &mut Verdict) {
    // The admission every writer of a Cluster runs (schema and CEL, then this provider's offering).
    let mut object = serde_json::to_value(&v.cluster).unwrap_or(Value::Null);
    object["apiVersion"] = json!("scs.community/v1alpha1");
    object["kind"] = json!("Cluster");
    let one = std::slice::from_ref(provider);
    let resolved = match kaas_validate::admission::admit(&object, None, Providers::All(one)) {
        Ok(admitted) => admitted.resolved,
        Err(rejected) => {
            for e in rejected.errors.0 {
                v.refusals.push(match rejected.stage {
                    Stage::Schema => format!("the SCS Cluster would be invalid: {e}"),
                    Stage::Provider | Stage::Offering => {
                        format!("provider {:?} does not offer it: {e}", provider.name_any())
                    }
                });
            }
            None
        }
    };
    let Some(r) = resolved.filter(|_| v.refusals.is_empty()) else {
        return;
    };
    let target = Target {
        namespace: capi.namespace().unwrap_or_default(),
        name: capi.name_any(),
        class_ref: Some((
            topo.class_ref.name.clone(),
            topo.class_ref.namespace.clone(),
        )),
    };
    match kaas_render::render_at(&v.cluster, &r, Some(&target)) {
        Ok(rendered) => {
            v.refusals.extend(compare(capi, &rendered.cluster));
            v.notes.extend(kept(capi, &rendered.cluster));
        }
        Err(e) => v.refusals.push(e.to_string()),
    }
}

fn dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Turns the stack's topology variables into SCS fields; every variable the stack does not
/// render is a refusal (the comparison after rendering checks the values).
fn absorb_variables(
    stack: StackKind,
    topo: &ClusterTopology,
    cluster: &mut Cluster,
    refusals: &mut Vec<String>,
) {
    let vars: BTreeMap<String, Value> = topo
        .variables
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let md_overrides = |md: &ClusterTopologyWorkersMachineDeployments| -> BTreeMap<String, Value> {
        md.variables
            .as_ref()
            .and_then(|v| v.overrides.as_ref())
            .into_iter()
            .flatten()
            .map(|o| (o.name.clone(), o.value.clone()))
            .collect()
    };
    let mds = topo
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default();
    if topo
        .control_plane
        .as_ref()
        .and_then(|c| c.variables.as_ref())
        .and_then(|v| v.overrides.as_ref())
        .is_some_and(|o| !o.is_empty())
    {
        refusals.push(
            "spec.topology.controlPlane.variables.overrides: kaas renders no control-plane overrides"
                .into(),
        );
    }
    let pools: Vec<(String, BTreeMap<String, Value>)> = mds
        .iter()
        .map(|md| (md.name.clone(), md_overrides(md)))
        .collect();
    let vars = kaas_render::stacks::Variables {
        cluster: &vars,
        pools: &pools,
    };
    kaas_render::stacks::for_kind(stack).absorb(vars, cluster, refusals);
}

/// Every field kaas writes that the existing topology has otherwise (one line each; empty: the
/// apply changes nothing that could roll a machine).
pub fn compare(have: &CapiCluster, want: &CapiCluster) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |path: &str, have: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| {
        let (h, w) = (format!("{have:?}"), format!("{want:?}"));
        if h != w {
            out.push(format!("{path}: the cluster has {h}, kaas would write {w}"));
        }
    };
    diff("metadata.name", &have.metadata.name, &want.metadata.name);
    diff(
        "metadata.namespace",
        &have.metadata.namespace,
        &want.metadata.namespace,
    );
    let hn = have.spec.cluster_network.clone().unwrap_or_default();
    let wn = want.spec.cluster_network.clone().unwrap_or_default();
    diff(
        "spec.clusterNetwork.pods.cidrBlocks",
        &hn.pods.map(|p| p.cidr_blocks),
        &wn.pods.map(|p| p.cidr_blocks),
    );
    diff(
        "spec.clusterNetwork.services.cidrBlocks",
        &hn.services.map(|p| p.cidr_blocks),
        &wn.services.map(|p| p.cidr_blocks),
    );
    let (Some(h), Some(w)) = (&have.spec.topology, &want.spec.topology) else {
        diff(
            "spec.topology",
            &have.spec.topology.is_some(),
            &want.spec.topology.is_some(),
        );
        return out;
    };
    diff(
        "spec.topology.classRef.name",
        &h.class_ref.name,
        &w.class_ref.name,
    );
    diff(
        "spec.topology.classRef.namespace",
        &h.class_ref.namespace,
        &w.class_ref.namespace,
    );
    diff("spec.topology.version", &h.version, &w.version);
    diff(
        "spec.topology.controlPlane.replicas",
        &h.control_plane.as_ref().and_then(|c| c.replicas),
        &w.control_plane.as_ref().and_then(|c| c.replicas),
    );
    let vars = |t: &ClusterTopology| -> BTreeMap<String, Value> {
        t.variables
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    };
    let (hv, wv) = (vars(h), vars(w));
    for name in hv.keys().chain(wv.keys()).collect::<BTreeSet<_>>() {
        diff(
            &format!("spec.topology.variables[{name}]"),
            &hv.get(name),
            &wv.get(name),
        );
    }
    let mds = |t: &ClusterTopology| -> BTreeMap<String, ClusterTopologyWorkersMachineDeployments> {
        t.workers
            .as_ref()
            .and_then(|w| w.machine_deployments.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect()
    };
    let (hm, wm) = (mds(h), mds(w));
    for name in hm.keys().chain(wm.keys()).collect::<BTreeSet<_>>() {
        let path = format!("spec.topology.workers.machineDeployments[{name}]");
        let (Some(a), Some(b)) = (hm.get(name), wm.get(name)) else {
            diff(&path, &hm.contains_key(name), &wm.contains_key(name));
            continue;
        };
        diff(&format!("{path}.class"), &a.class, &b.class);
        diff(&format!("{path}.replicas"), &a.replicas, &b.replicas);
        diff(
            &format!("{path}.failureDomain"),
            &a.failure_domain,
            &b.failure_domain,
        );
        diff(
            &format!("{path}.taints"),
            &serde_json::to_value(&a.taints).ok(),
            &serde_json::to_value(&b.taints).ok(),
        );
        // Labels kaas writes (its pool label may be added: labels propagate in place).
        let labels = |m: &ClusterTopologyWorkersMachineDeployments| {
            let mut l = m
                .metadata
                .as_ref()
                .and_then(|x| x.labels.clone())
                .unwrap_or_default();
            l.remove(LABEL_POOL);
            l
        };
        diff(&format!("{path}.metadata.labels"), &labels(a), &labels(b));
        let bounds = |m: &ClusterTopologyWorkersMachineDeployments| {
            let a = m
                .metadata
                .as_ref()
                .and_then(|x| x.annotations.clone())
                .unwrap_or_default();
            (
                a.get(ANNOTATION_MIN_SIZE).cloned(),
                a.get(ANNOTATION_MAX_SIZE).cloned(),
            )
        };
        diff(
            &format!("{path}.metadata.annotations (autoscaler)"),
            &bounds(a),
            &bounds(b),
        );
        // Variables as the MachineDeployment sees them: its override, else the cluster's value.
        let eff = |m: &ClusterTopologyWorkersMachineDeployments,
                   cluster: &BTreeMap<String, Value>| {
            let mut all = cluster.clone();
            for o in m
                .variables
                .as_ref()
                .and_then(|v| v.overrides.clone())
                .unwrap_or_default()
            {
                all.insert(o.name, o.value);
            }
            all
        };
        let (ae, be) = (eff(a, &hv), eff(b, &wv));
        for v in ae.keys().chain(be.keys()).collect::<BTreeSet<_>>() {
            if hv.get(v) != wv.get(v) {
                continue; // reported for the cluster already
            }
            diff(&format!("{path}.variables[{v}]"), &ae.get(v), &be.get(v));
        }
    }
    out
}

/// Fields of the existing topology kaas does not write: they stay as they are.
fn kept(have: &CapiCluster, want: &CapiCluster) -> Vec<String> {
    let (Ok(h), Ok(w)) = (
        serde_json::to_value(&have.spec),
        serde_json::to_value(&want.spec),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let extra = |path: &str, a: &Value, b: &Value, out: &mut Vec<String>| {
        if let Some(a) = a.as_object() {
            for k in a.keys() {
                if b.get(k).is_none() {
                    out.push(format!(
                        "{path}.{k}: kept as it is (kaas does not manage it)"
                    ));
                }
            }
        }
    };
    extra(
        "spec.clusterNetwork",
        &h["clusterNetwork"],
        &w["clusterNetwork"],
        &mut out,
    );
    let ht = &h["topology"];
    let wt = &w["topology"];
    extra("spec.topology", ht, wt, &mut out);
    extra(
        "spec.topology.controlPlane",
        &ht["controlPlane"],
        &wt["controlPlane"],
        &mut out,
    );
    let empty = Vec::new();
    let wmds = wt["workers"]["machineDeployments"]
        .as_array()
        .unwrap_or(&empty);
    for md in ht["workers"]["machineDeployments"]
        .as_array()
        .unwrap_or(&empty)
    {
        let name = md["name"].as_str().unwrap_or_default();
        if let Some(wmd) = wmds.iter().find(|m| m["name"] == md["name"]) {
            extra(
                &format!("spec.topology.workers.machineDeployments[{name}]"),
                md,
                wmd,
                &mut out,
            );
        }
    }
    out
}

/// The managed fields of an adopted Cluster API Cluster with every other field manager's
/// ownership of `spec.topology` and the cluster network CIDRs removed, so the operator becomes
/// their only owner (otherwise a pool the tenant removes would stay, still owned by whoever
/// created the cluster). Fields kaas does not write are left without an owner: they stay as
/// they are. Entries that own nothing any more are dropped. Pure.
pub fn release_fields(entries: &[ManagedFieldsEntry]) -> Vec<ManagedFieldsEntry> {
    let mut out = Vec::new();
    for e in entries {
        let mut e = e.clone();
        if e.manager.as_deref() != Some(FIELD_MANAGER)
            && e.subresource.as_deref().is_none_or(str::is_empty)
            && let Some(FieldsV1(fields)) = e.fields_v1.as_mut()
        {
            if let Some(spec) = fields.get_mut("f:spec").and_then(Value::as_object_mut) {
                spec.remove("f:topology");
                if let Some(net) = spec
                    .get_mut("f:clusterNetwork")
                    .and_then(Value::as_object_mut)
                {
                    net.remove("f:pods");
                    net.remove("f:services");
                    if net.keys().all(|k| k == ".") {
                        spec.remove("f:clusterNetwork");
                    }
                }
                if spec.keys().all(|k| k == ".") {
                    fields.as_object_mut().map(|f| f.remove("f:spec"));
                }
            }
            if fields.as_object().is_some_and(|f| f.is_empty()) {
                continue;
            }
        }
        out.push(e);
    }
    out
}

/// What `kaas adopt` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Namespace of the Cluster API Cluster.
    pub namespace: String,
    /// Name of the Cluster API Cluster.
    pub name: String,
    /// Provider offering the SCS Cluster uses.
    pub provider: String,
    /// Tenant namespace the SCS Cluster goes into.
    pub tenant: String,
    /// Name of the SCS Cluster (default: the Cluster API Cluster's).
    pub scs_name: Option<String>,
}

impl Request {
    /// The SCS Cluster's name.
    pub fn scs_name(&self) -> &str {
        self.scs_name.as_deref().unwrap_or(&self.name)
    }
}

/// Reads everything [`express`] needs and runs it; also refuses when the tenant namespace is
/// missing or the SCS Cluster exists already. Writes nothing.
pub async fn plan(client: &Client, req: &Request) -> anyhow::Result<Verdict> {
    let capi = Api::<CapiCluster>::namespaced(client.clone(), &req.namespace)
        .get_opt(&req.name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Cluster API Cluster {}/{} not found",
                req.namespace,
                req.name
            )
        })?;
    let provider = Api::<Provider>::all(client.clone())
        .get_opt(&req.provider)
        .await?
        .ok_or_else(|| anyhow::anyhow!("provider {:?} not found", req.provider))?;
    let selector = format!("cluster.x-k8s.io/cluster-name={}", req.name);
    let mut standalone = Vec::new();
    for md in Api::<MachineDeployment>::namespaced(client.clone(), &req.namespace)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        if !md.labels().contains_key("topology.cluster.x-k8s.io/owned") {
            standalone.push(format!("MachineDeployment {}", md.name_any()));
        }
    }
    let pools = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &req.namespace,
        &kube::api::ApiResource {
            group: "cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "MachinePool".into(),
            plural: "machinepools".into(),
        },
    );
    // MachinePools are optional in Cluster API (a feature gate): no such resource, none to see.
    if let Ok(list) = pools.list(&ListParams::default().labels(&selector)).await {
        for mp in list.items {
            standalone.push(format!("MachinePool {}", mp.name_any()));
        }
    }
    let mut v = express(&capi, &provider, &req.tenant, req.scs_name(), &standalone);
    if Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(&req.tenant)
        .await?
        .is_none()
    {
        v.refusals
            .push(format!("tenant namespace {:?} does not exist", req.tenant));
    }
    if Api::<Cluster>::namespaced(client.clone(), &req.tenant)
        .get_opt(req.scs_name())
        .await?
        .is_some()
    {
        v.refusals.push(format!(
            "SCS Cluster {}/{} exists already",
            req.tenant,
            req.scs_name()
        ));
    }
    Ok(v)
}

/// Adopts: confirms the adoption on the Cluster API Cluster (annotation [`ANNOTATION_ADOPTED_BY`]
/// and kaas' labels, as [`ADOPT_MANAGER`]), creates the SCS Cluster of `verdict`, and hands the
/// ownership of the topology to the operator ([`release_fields`]). Refuses (writing nothing)
/// when `verdict` has refusals. If the SCS Cluster cannot be created, the confirmation is
/// taken back.
pub async fn apply(client: &Client, req: &Request, verdict: &Verdict) -> anyhow::Result<Cluster> {
    if !verdict.ok() {
        anyhow::bail!(
            "cannot adopt {}/{}: {}",
            req.namespace,
            req.name,
            verdict.refusals.join("; ")
        );
    }
    let capis = Api::<CapiCluster>::namespaced(client.clone(), &req.namespace);
    let pp = PatchParams {
        field_manager: Some(ADOPT_MANAGER.into()),
        ..Default::default()
    };
    let by = format!("{}/{}", req.tenant, req.scs_name());
    capis
        .patch(
            &req.name,
            &pp,
            &Patch::Merge(json!({"metadata": {
                "annotations": {ANNOTATION_ADOPTED_BY: by},
                "labels": {
                    LABEL_CLUSTER: req.scs_name(),
                    LABEL_TENANT: req.tenant,
                    LABEL_PROVIDER: req.provider,
                },
            }})),
        )
        .await?;
    let created = Api::<Cluster>::namespaced(client.clone(), &req.tenant)
        .create(
            &PostParams {
                field_manager: Some(ADOPT_MANAGER.into()),
                ..Default::default()
            },
            &verdict.cluster,
        )
        .await;
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            let undo = capis
                .patch(
                    &req.name,
                    &pp,
                    &Patch::Merge(json!({"metadata": {
                        "annotations": {ANNOTATION_ADOPTED_BY: null},
                        "labels": {LABEL_CLUSTER: null, LABEL_TENANT: null, LABEL_PROVIDER: null},
                    }})),
                )
                .await;
            if let Err(u) = undo {
                anyhow::bail!(
                    "creating SCS Cluster {by}: {e}; and taking back the confirmation on {}/{} failed: {u}",
                    req.namespace,
                    req.name
                );
            }
            anyhow::bail!("creating SCS Cluster {by}: {e} (nothing adopted)");
        }
    };
    // Hand the topology's fields to the operator (retried on a concurrent write).
    let mut last = None;
    for _ in 0..5 {
        let now = capis.get(&req.name).await?;
        let entries = now.metadata.managed_fields.clone().unwrap_or_default();
        let released = release_fields(&entries);
        if released == entries {
            last = None;
            break;
        }
        let patch = json!({"metadata": {
            "managedFields": released,
            "resourceVersion": now.resource_version(),
        }});
        match capis
            .patch(&req.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                last = None;
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => last = Some(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = last {
        anyhow::bail!(
            "adopted as {by}, but the topology's field ownership could not be handed to the operator: {e}"
        );
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = include_str!("../../../examples/provider-inmemory.yaml");

    /// The upstream in-memory cluster template as `kaas_harness::in_memory_cluster` renders it.
    fn template(version: &str, class_ns: &str) -> CapiCluster {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: legacy, namespace: old-ns}}
spec:
  clusterNetwork:
    services: {{cidrBlocks: ["10.128.0.0/12"]}}
    pods: {{cidrBlocks: ["192.168.0.0/16"]}}
    serviceDomain: cluster.local
  topology:
    classRef: {{name: in-memory, namespace: {class_ns}}}
    version: {version}
    controlPlane: {{replicas: 1}}
    workers:
      machineDeployments:
      - {{class: default-worker, name: md-0, replicas: 2}}
"#
        ))
        .unwrap()
    }

    fn provider() -> Provider {
        serde_yaml::from_str(PROVIDER).unwrap()
    }

    /// The first MachineDeployment of `capi`'s topology.
    fn first_md(capi: &mut CapiCluster) -> &mut ClusterTopologyWorkersMachineDeployments {
        let t = capi.spec.topology.as_mut().unwrap();
        &mut t
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0]
    }

    #[test]
    fn a_pool_size_is_a_fixed_count_or_both_autoscaler_bounds() {
        let size = |replicas: Option<i32>, bounds: &[(&str, &str)]| {
            let md = ClusterTopologyWorkersMachineDeployments {
                name: "md-0".into(),
                replicas,
                ..Default::default()
            };
            let annotations: BTreeMap<String, String> = bounds
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut pool = WorkerPool::default();
            let mut refusals = Vec::new();
            pool_size(&md, &annotations, "p", &mut pool, &mut refusals);
            (pool.count, pool.min_count, pool.max_count, refusals)
        };
        assert_eq!(size(Some(3), &[]), (Some(3), None, None, vec![]));
        let bounds = [(ANNOTATION_MIN_SIZE, "1"), (ANNOTATION_MAX_SIZE, "5")];
        assert_eq!(size(None, &bounds), (None, Some(1), Some(5), vec![]));
        let (.., r) = size(Some(3), &bounds);
        assert!(
            r[0].starts_with("p: replicas and autoscaler annotations"),
            "{r:?}"
        );
        let (.., r) = size(None, &[]);
        assert!(r[0].starts_with("p.replicas: not set"), "{r:?}");
        let (.., r) = size(
            None,
            &[(ANNOTATION_MIN_SIZE, "1"), (ANNOTATION_MAX_SIZE, "x")],
        );
        assert!(r[0].contains("are not numbers"), "{r:?}");
        let (.., r) = size(None, &[(ANNOTATION_MIN_SIZE, "1")]);
        assert_eq!(r.len(), 1, "{r:?}");
    }

    #[test]
    fn the_in_memory_template_is_expressible_and_renders_to_the_same_topology() {
        let capi = template("v1.35.4", "old-ns");
        let v = express(&capi, &provider(), "tenant-a", "adopted", &[]);
        assert!(v.ok(), "{:?}", v.refusals);
        let spec = &v.cluster.spec;
        assert_eq!(
            spec.kubernetes.as_ref().unwrap().version.as_deref(),
            Some("1.35.4")
        );
        let pools = spec.workers.as_ref().unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!((pools[0].name.as_str(), pools[0].count), ("md-0", Some(2)));
        assert_eq!(
            v.cluster
                .annotations()
                .get(ANNOTATION_ADOPT_FROM)
                .map(String::as_str),
            Some("old-ns/legacy")
        );
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("old-ns/in-memory") && n.contains("kaas-provider-dev")),
            "{:?}",
            v.notes
        );
        assert!(
            v.notes.iter().any(|n| n.contains("serviceDomain")),
            "{:?}",
            v.notes
        );

        // Render it the way the operator does after the handshake and compare field by field.
        let resolved = kaas_validate::validate(&v.cluster, &provider()).unwrap();
        let (_, target) = {
            let mut capi = capi.clone();
            capi.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_ADOPTED_BY.to_string(),
                "tenant-a/adopted".to_string(),
            )]));
            let t = confirm(&v.cluster, Some(&capi)).unwrap().unwrap();
            (capi, t)
        };
        let r = kaas_render::render_at(&v.cluster, &resolved, Some(&target)).unwrap();
        assert!(r.adopted);
        assert_eq!(r.objects().len(), 1, "no Namespace for an adopted cluster");
        let (h, w) = (
            capi.spec.topology.as_ref().unwrap(),
            r.cluster.spec.topology.as_ref().unwrap(),
        );
        assert_eq!(r.cluster.metadata.name.as_deref(), Some("legacy"));
        assert_eq!(r.cluster.metadata.namespace.as_deref(), Some("old-ns"));
        assert_eq!(h.class_ref, w.class_ref);
        assert_eq!(h.version, w.version);
        assert_eq!(
            h.control_plane.as_ref().unwrap().replicas,
            w.control_plane.as_ref().unwrap().replicas
        );
        let (hm, wm) = (
            h.workers
                .as_ref()
                .unwrap()
                .machine_deployments
                .as_ref()
                .unwrap(),
            w.workers
                .as_ref()
                .unwrap()
                .machine_deployments
                .as_ref()
                .unwrap(),
        );
        assert_eq!(hm.len(), wm.len());
        assert_eq!(
            (
                &hm[0].name,
                &hm[0].class,
                hm[0].replicas,
                &hm[0].failure_domain
            ),
            (
                &wm[0].name,
                &wm[0].class,
                wm[0].replicas,
                &wm[0].failure_domain
            )
        );
        assert_eq!(w.variables, None);
        assert_eq!(
            r.cluster.spec.cluster_network.as_ref().unwrap().services,
            capi.spec.cluster_network.as_ref().unwrap().services
        );
        assert!(compare(&capi, &r.cluster).is_empty());
    }

    #[test]
    fn compare_names_every_field_kaas_would_change() {
        let capi = template("v1.35.4", "old-ns");
        let mut other = capi.clone();
        let t = other.spec.topology.as_mut().unwrap();
        t.version = "v1.36.3".into();
        t.class_ref.namespace = Some("kaas-provider-dev".into());
        t.workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0]
            .replicas = Some(3);
        let d = compare(&capi, &other);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("spec.topology.version:")));
        assert!(
            d.iter()
                .any(|l| l.starts_with("spec.topology.classRef.namespace:"))
        );
        assert!(
            d.iter()
                .any(|l| l.starts_with("spec.topology.workers.machineDeployments[md-0].replicas:"))
        );
    }

    #[test]
    fn refusals_name_each_reason() {
        let p = provider();
        // Not offered.
        let v = express(&template("v1.33.1", "old-ns"), &p, "t", "c", &[]);
        assert!(!v.ok());
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("spec.topology.version: v1.33.1 is not offered")),
            "{:?}",
            v.refusals
        );
        // Expired.
        let v = express(&template("v1.34.4", "old-ns"), &p, "t", "c", &[]);
        assert!(
            v.refusals.iter().any(|r| r.contains("expired")),
            "{:?}",
            v.refusals
        );
        // Another class, variables, machine pools, unknown worker class, standalone objects.
        let mut capi = template("v1.35.4", "old-ns");
        let t = capi.spec.topology.as_mut().unwrap();
        t.class_ref.name = "quick-start".into();
        t.variables = Some(vec![kaas_capi::cluster::ClusterTopologyVariables {
            name: "imageRepository".into(),
            value: json!("registry.example"),
        }]);
        let w = t.workers.as_mut().unwrap();
        w.machine_deployments.as_mut().unwrap()[0].class = "gpu-worker".into();
        w.machine_pools = Some(vec![Default::default()]);
        let v = express(&capi, &p, "t", "c", &["MachineDeployment extra".into()]);
        for want in [
            "spec.topology.classRef.name: \"quick-start\"",
            "spec.topology.variables[imageRepository]",
            "spec.topology.workers.machinePools",
            "MachineDeployment extra",
        ] {
            assert!(
                v.refusals.iter().any(|r| r.contains(want)),
                "{want}: {:?}",
                v.refusals
            );
        }
        // Worker class differs: caught by the comparison once everything else is expressible.
        let mut capi = template("v1.35.4", "old-ns");
        first_md(&mut capi).class = "gpu-worker".into();
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("spec.topology.workers.machineDeployments[md-0].class:")),
            "{:?}",
            v.refusals
        );
        // Judged by the admission every writer of a Cluster runs: the schema and its rules, then
        // the provider's offering.
        let mut capi = template("v1.35.4", "old-ns");
        capi.spec
            .cluster_network
            .as_mut()
            .unwrap()
            .pods
            .as_mut()
            .unwrap()
            .cidr_blocks = vec!["192.168.0.0/33".into()];
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("the SCS Cluster would be invalid: spec.network.pods")),
            "{:?}",
            v.refusals
        );
        let mut capi = template("v1.35.4", "old-ns");
        first_md(&mut capi).failure_domain = Some("zone-x".into());
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("provider \"dev\" does not offer it: spec.workers[0].zones")),
            "{:?}",
            v.refusals
        );
        // No topology at all.
        let mut capi = template("v1.35.4", "old-ns");
        capi.spec.topology = None;
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(v.refusals.iter().any(|r| r.starts_with("spec.topology:")));
        // Adopted by someone else already.
        let mut capi = template("v1.35.4", "old-ns");
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "other/x".to_string(),
        )]));
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.contains("already adopted by \"other/x\""))
        );
    }

    #[test]
    fn autoscaled_and_zoned_pools_keep_their_topology() {
        let mut capi = template("v1.35.4", "old-ns");
        let md = &mut capi
            .spec
            .topology
            .as_mut()
            .unwrap()
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0];
        md.replicas = None;
        md.failure_domain = Some("zone-b".into());
        md.metadata = Some(
            kaas_capi::cluster::ClusterTopologyWorkersMachineDeploymentsMetadata {
                labels: Some(BTreeMap::from([("tier".to_string(), "web".to_string())])),
                annotations: Some(BTreeMap::from([
                    (ANNOTATION_MIN_SIZE.to_string(), "1".to_string()),
                    (ANNOTATION_MAX_SIZE.to_string(), "4".to_string()),
                ])),
            },
        );
        let v = express(&capi, &provider(), "t", "c", &[]);
        assert!(v.ok(), "{:?}", v.refusals);
        let pool = &v.cluster.spec.workers.as_ref().unwrap()[0];
        assert_eq!((pool.min_count, pool.max_count), (Some(1), Some(4)));
        assert_eq!(pool.zones.as_deref(), Some(&["zone-b".to_string()][..]));
        // A zone the region does not have is the offering's refusal.
        let md = &mut capi
            .spec
            .topology
            .as_mut()
            .unwrap()
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0];
        md.failure_domain = Some("elsewhere".into());
        let v = express(&capi, &provider(), "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.contains("spec.workers[0].zones[0]")),
            "{:?}",
            v.refusals
        );
    }

    fn cluster_with(annotation: Option<&str>) -> Cluster {
        let mut c = Cluster::new("web", Default::default());
        c.metadata.namespace = Some("tenant-a".into());
        if let Some(a) = annotation {
            c.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_ADOPT_FROM.to_string(),
                a.to_string(),
            )]));
        }
        c
    }

    #[test]
    fn the_handshake_needs_both_sides() {
        let mut capi = template("v1.35.4", "old-ns");
        assert_eq!(confirm(&cluster_with(None), Some(&capi)), Ok(None));
        let c = cluster_with(Some("old-ns/legacy"));
        let e = confirm(&c, Some(&capi)).unwrap_err();
        assert!(
            e.starts_with("adoption not confirmed by the provider"),
            "{e}"
        );
        // Missing, not annotated, adopted by another SCS Cluster: one answer (no oracle).
        assert_eq!(confirm(&c, None).unwrap_err(), e);
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "tenant-b/web".to_string(),
        )]));
        assert_eq!(confirm(&c, Some(&capi)).unwrap_err(), e);
        assert!(!e.contains("tenant-b"), "{e}");
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "tenant-a/web".to_string(),
        )]));
        let t = confirm(&c, Some(&capi)).unwrap().unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("old-ns", "legacy")
        );
        assert_eq!(
            t.class_ref,
            Some(("in-memory".to_string(), Some("old-ns".to_string())))
        );
        for bad in ["legacy", "/legacy", "old-ns/", "a/b/c", ""] {
            assert!(
                confirm(&cluster_with(Some(bad)), Some(&capi)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn release_fields_hands_the_topology_to_the_operator() {
        let entry = |manager: &str, fields: Value, sub: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: sub.map(str::to_string),
            ..Default::default()
        };
        let creator = entry(
            "kubectl",
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {
                "f:clusterNetwork": {"f:pods": {"f:cidrBlocks": {}}, "f:serviceDomain": {}},
                "f:topology": {"f:version": {}, "f:classRef": {"f:name": {}}},
            }}),
            None,
        );
        let only_topology = entry(
            "other",
            json!({"f:spec": {"f:topology": {"f:version": {}}}}),
            None,
        );
        let status = entry("capi", json!({"f:status": {"f:phase": {}}}), Some("status"));
        let operator = entry(
            FIELD_MANAGER,
            json!({"f:spec": {"f:topology": {"f:version": {}}}}),
            None,
        );
        let out = release_fields(&[creator, only_topology, status.clone(), operator.clone()]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {"f:clusterNetwork": {"f:serviceDomain": {}}}})
        );
        assert_eq!(out[1], status);
        assert_eq!(out[2], operator);
    }
}
