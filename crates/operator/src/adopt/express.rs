//! Expressibility (pure): can a Cluster API cluster be described as an SCS Cluster of a provider,
//! and which Cluster is that — checked by rendering that Cluster and comparing every field kaas
//! manages with the existing topology ([`express`], [`compare`]).

use std::collections::{BTreeMap, BTreeSet};

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
use kaas_render::{ANNOTATION_MAX_SIZE, ANNOTATION_MIN_SIZE, LABEL_CLUSTER, LABEL_POOL, Target};
use kaas_validate::admission::{Providers, Stage};
use kube::ResourceExt;
use serde_json::{Value, json};

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
pub(super) fn pool_size(
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
