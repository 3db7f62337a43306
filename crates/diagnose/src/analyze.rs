//! The pure part: from what was read to a [`Diagnosis`]. No client, no clock (`now` is an input),
//! so every case is unit-tested with fixture objects.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kaas_api::Cluster;
use kaas_api::cluster::ClusterStatus;
use kaas_api::conditions as c;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::conditions::{self as capi_c, find as cond, is_false, is_true};
use kaas_capi::kubeadmcontrolplane::KubeadmControlPlane;
use kaas_capi::machine::{Machine, MachineStatusPhase};
use kaas_capi::machinedeployment::{MachineDeployment, MachineDeploymentStatusPhase};
use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::*;

/// Label Cluster API puts on control-plane machines.
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// Label Cluster API puts on machines of a MachineDeployment (its name).
const DEPLOYMENT_LABEL: &str = "cluster.x-k8s.io/deployment-name";
/// Label of the topology's machine deployment name.
const TOPOLOGY_DEPLOYMENT_LABEL: &str = "topology.cluster.x-k8s.io/deployment-name";
/// kaas' finalizer on SCS Clusters.
const FINALIZER: &str = "scs.community/cluster";
/// Events kept.
const MAX_EVENTS: usize = 20;
/// Machines named in a hint.
const MAX_NAMED: usize = 5;
/// A machine provisioning longer than this deserves the provider's attention.
const SLOW_MACHINE_SECS: i64 = 15 * 60;
/// Grace before "nobody reconciles this" hints.
const IDLE_SECS: i64 = 60;

const SCS_GROUP: &str = "scs.community";
const CAPI_GROUP: &str = "cluster.x-k8s.io";
const CONTROL_PLANE_GROUP: &str = "controlplane.cluster.x-k8s.io";
const INFRA_GROUP: &str = "infrastructure.cluster.x-k8s.io";

/// What a read gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fetched<T> {
    /// Not attempted (nothing to read, or it did not apply).
    #[default]
    NotRead,
    /// Read.
    Ok(T),
    /// The identity may not read it (HTTP 403).
    Forbidden,
    /// Reading failed otherwise.
    Failed(String),
}

impl<T> Fetched<T> {
    /// The value, if read.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Fetched::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// Everything [`analyze`] looks at.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The SCS Cluster.
    pub cluster: Cluster,
    /// Its provider (named, or the one kaas would choose), if known.
    pub provider: Option<String>,
    /// The provider uses the static (imported) backend: there are no Cluster API objects.
    pub imported: bool,
    /// The provider-side namespace (`kaas_render::capi_namespace`), if the provider is known.
    pub capi_namespace: Option<String>,
    /// The Cluster API Cluster (same name as the SCS Cluster).
    pub capi_cluster: Fetched<Option<CapiCluster>>,
    /// The control plane its `controlPlaneRef` names.
    pub control_plane: Fetched<Option<KubeadmControlPlane>>,
    /// The infrastructure cluster its `infrastructureRef` names.
    pub infrastructure: Fetched<Option<DynamicObject>>,
    /// Its MachineDeployments.
    pub machine_deployments: Fetched<Vec<MachineDeployment>>,
    /// Its Machines.
    pub machines: Fetched<Vec<Machine>>,
    /// Events of the tenant namespace.
    pub tenant_events: Fetched<Vec<Event>>,
    /// Events of the provider-side namespace.
    pub capi_events: Fetched<Vec<Event>>,
    /// Now.
    pub now: Timestamp,
}

impl Inputs {
    /// Inputs with only the SCS Cluster read; the provider from `spec.provider.name`.
    pub fn new(cluster: Cluster, now: Timestamp) -> Self {
        let provider = cluster.spec.provider.as_ref().and_then(|p| p.name.clone());
        let capi_namespace = provider
            .as_deref()
            .map(|p| kaas_render::capi_namespace(p, &cluster.namespace().unwrap_or_default()));
        Inputs {
            cluster,
            provider,
            imported: false,
            capi_namespace,
            capi_cluster: Fetched::NotRead,
            control_plane: Fetched::NotRead,
            infrastructure: Fetched::NotRead,
            machine_deployments: Fetched::NotRead,
            machines: Fetched::NotRead,
            tenant_events: Fetched::NotRead,
            capi_events: Fetched::NotRead,
            now,
        }
    }
}

fn infos(list: Option<&Vec<Condition>>) -> Vec<ConditionInfo> {
    list.map(|l| {
        l.iter()
            .map(|c| ConditionInfo {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn seconds_since(now: Timestamp, t: &Time) -> i64 {
    (now.as_second() - t.0.as_second()).max(0)
}

/// `45s`, `12m`, `3h`, `2d` (like kubectl's AGE column).
pub(crate) fn human(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 120 {
        format!("{secs}s")
    } else if secs < 120 * 60 {
        format!("{}m", secs / 60)
    } else if secs < 48 * 3600 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86400)
    }
}

fn age_of(
    now: Timestamp,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map(|t| seconds_since(now, t))
        .unwrap_or(0)
}

fn node(kind: &str, group: &str, name: &str, namespace: Option<&str>) -> Node {
    Node {
        kind: kind.into(),
        api_group: group.into(),
        name: name.into(),
        namespace: namespace.map(str::to_string),
        status: NodeStatus::Unknown,
        summary: String::new(),
        conditions: Vec::new(),
        children: Vec::new(),
    }
}

fn placeholder<T>(
    fetched: &Fetched<T>,
    kind: &str,
    group: &str,
    name: &str,
    namespace: &str,
) -> Option<Node> {
    let mut n = node(kind, group, name, Some(namespace));
    match fetched {
        Fetched::Forbidden => {
            n.status = NodeStatus::Hidden;
            n.summary = "not visible to you".into();
        }
        Fetched::Failed(e) => {
            n.status = NodeStatus::Unknown;
            n.summary = format!("could not be read: {e}");
        }
        _ => return None,
    }
    Some(n)
}

/// Spec errors of a `SpecAccepted` message (`path: message; path: message`), each with its path.
pub(crate) fn spec_errors(message: &str) -> Vec<(Option<String>, String)> {
    fn path_of(s: &str) -> Option<&str> {
        let (head, _) = s.split_once(": ")?;
        let looks_like_path = (head.starts_with("spec") || head.starts_with("metadata"))
            && !head.contains(' ')
            && head.len() < 256;
        looks_like_path.then_some(head)
    }
    let mut items: Vec<String> = Vec::new();
    for part in message.split("; ") {
        match items.last_mut() {
            Some(last) if path_of(part).is_none() => {
                last.push_str("; ");
                last.push_str(part);
            }
            _ => items.push(part.to_string()),
        }
    }
    items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| (path_of(&s).map(str::to_string), s))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Nodes

fn root_node(i: &Inputs) -> Node {
    let cl = &i.cluster;
    let mut n = node(
        "Cluster",
        SCS_GROUP,
        &cl.name_any(),
        cl.namespace().as_deref(),
    );
    let Some(st) = cl.status.as_ref() else {
        n.status = NodeStatus::Unknown;
        n.summary = "no status yet: the kaas operator has not reconciled it".into();
        return n;
    };
    let conds = Some(&st.conditions);
    n.conditions = infos(conds);
    let phase = st.phase.map(|p| p.to_string());
    let ready = cond(conds, c::READY);
    let deleting = cl.metadata.deletion_timestamp.is_some();
    n.status = if deleting {
        NodeStatus::Progressing
    } else if matches!(
        st.phase,
        Some(kaas_api::cluster::ClusterPhase::Failed | kaas_api::cluster::ClusterPhase::Invalid)
    ) {
        NodeStatus::Failed
    } else if ready.is_some_and(|r| r.status == "True") {
        if is_false(conds, c::EXTENSIONS_READY) || is_false(conds, c::COMPLIANT) {
            NodeStatus::Degraded
        } else {
            NodeStatus::Ok
        }
    } else {
        NodeStatus::Progressing
    };
    let mut parts = Vec::new();
    if let Some(p) = &phase {
        parts.push(format!("phase {p}"));
    }
    match ready {
        Some(r) if r.status == "True" => parts.push("Ready".into()),
        Some(r) => parts.push(format!("Ready={} ({})", r.status, r.reason)),
        None => parts.push("Ready not reported".into()),
    }
    if let Some(v) = &st.kubernetes_version {
        parts.push(format!("version {v}"));
    } else if let Some(v) = &st.target_version {
        parts.push(format!("target version {v}"));
    }
    if deleting {
        parts.push("being deleted".into());
    }
    if i.imported {
        parts.push("imported (static provider: no Cluster API objects)".into());
    }
    if let (Some(o), Some(g)) = (st.observed_generation, cl.metadata.generation)
        && o < g
    {
        parts.push(format!("status is for generation {o} of {g}"));
    }
    n.summary = parts.join(", ");
    n
}

fn capi_cluster_node(cc: &CapiCluster, ns: &str) -> Node {
    let mut n = node("Cluster", CAPI_GROUP, &cc.name_any(), Some(ns));
    let st = cc.status.as_ref();
    let conds = st.and_then(|s| s.conditions.as_ref());
    n.conditions = infos(conds);
    let topo_failed = cond(conds, capi_c::TOPOLOGY_RECONCILED).filter(|t| {
        t.status != "True"
            && matches!(
                t.reason.as_str(),
                "ReconcileFailed" | "ClusterClassNotReconciled"
            )
    });
    let phase = st.and_then(|s| s.phase.as_ref()).map(|p| format!("{p:?}"));
    n.status = if cc.metadata.deletion_timestamp.is_some() {
        NodeStatus::Progressing
    } else if phase.as_deref() == Some("Failed") || topo_failed.is_some() {
        NodeStatus::Failed
    } else if is_true(conds, capi_c::AVAILABLE) {
        NodeStatus::Ok
    } else {
        NodeStatus::Progressing
    };
    let mut parts = Vec::new();
    match (&phase, conds.is_some_and(|c| !c.is_empty())) {
        (None, false) => parts.push("no status yet (Cluster API has not reconciled it)".into()),
        (Some(p), _) => parts.push(format!("phase {p}")),
        _ => {}
    }
    if let Some(cp) = st.and_then(|s| s.control_plane.as_ref()) {
        parts.push(format!(
            "control plane {}/{} available",
            cp.available_replicas.unwrap_or(0),
            cp.desired_replicas.unwrap_or(0)
        ));
    }
    if let Some(w) = st.and_then(|s| s.workers.as_ref()) {
        parts.push(format!(
            "workers {}/{} available",
            w.available_replicas.unwrap_or(0),
            w.desired_replicas.unwrap_or(0)
        ));
    }
    if let Some(t) = cc.spec.topology.as_ref() {
        parts.push(format!("version {}", t.version));
    }
    if let Some(t) = topo_failed {
        parts.push(format!("topology: {}: {}", t.reason, t.message));
    }
    if cc.metadata.deletion_timestamp.is_some() {
        parts.push("being deleted".into());
    }
    n.summary = parts.join(", ");
    n
}

fn value_conditions(v: &serde_json::Value) -> Vec<ConditionInfo> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some(ConditionInfo {
                        type_: c["type"].as_str()?.to_string(),
                        status: c["status"].as_str().unwrap_or("Unknown").to_string(),
                        reason: c["reason"].as_str().unwrap_or_default().to_string(),
                        message: c["message"].as_str().unwrap_or_default().to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an infrastructure object (v1beta1 or v1beta2 contract) is provisioned, and its failure.
fn infra_state(obj: &DynamicObject) -> (bool, Option<String>, Vec<ConditionInfo>) {
    let s = &obj.data["status"];
    let conditions = value_conditions(&s["conditions"]);
    let ready = s["ready"].as_bool() == Some(true)
        || s["initialization"]["provisioned"].as_bool() == Some(true)
        || conditions
            .iter()
            .any(|c| c.type_ == capi_c::READY && c.status == "True");
    let failure = s["failureMessage"]
        .as_str()
        .or(s["deprecated"]["v1beta1"]["failureMessage"].as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    (ready, failure, conditions)
}

fn infra_node(obj: &DynamicObject, ns: &str) -> Node {
    let (kind, group) = match &obj.types {
        Some(t) => (
            t.kind.clone(),
            t.api_version
                .split_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
        ),
        None => ("InfrastructureCluster".to_string(), INFRA_GROUP.to_string()),
    };
    let mut n = node(&kind, &group, &obj.name_any(), Some(ns));
    let (ready, failure, conditions) = infra_state(obj);
    n.conditions = conditions;
    (n.status, n.summary) = if let Some(f) = failure {
        (NodeStatus::Failed, format!("failed: {f}"))
    } else if obj.metadata.deletion_timestamp.is_some() {
        (NodeStatus::Progressing, "being deleted".into())
    } else if ready {
        (NodeStatus::Ok, "provisioned".into())
    } else {
        (NodeStatus::Progressing, "not provisioned yet".into())
    };
    n
}

fn kcp_node(kcp: &KubeadmControlPlane, ns: &str) -> Node {
    let mut n = node(
        "KubeadmControlPlane",
        CONTROL_PLANE_GROUP,
        &kcp.name_any(),
        Some(ns),
    );
    let st = kcp.status.as_ref();
    let conds = st.and_then(|s| s.conditions.as_ref());
    n.conditions = infos(conds);
    let desired = kcp.spec.replicas.unwrap_or(1);
    let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = st.and_then(|s| s.available_replicas).unwrap_or(0);
    let up_to_date = st.and_then(|s| s.up_to_date_replicas).unwrap_or(0);
    n.status = if kcp.metadata.deletion_timestamp.is_some() {
        NodeStatus::Progressing
    } else if is_true(conds, capi_c::AVAILABLE) && available >= desired {
        NodeStatus::Ok
    } else {
        NodeStatus::Progressing
    };
    let mut s = format!(
        "{ready}/{desired} ready, {available}/{desired} available, version {}",
        kcp.spec.version
    );
    if st.is_some() && up_to_date < desired {
        s.push_str(&format!(", {up_to_date}/{desired} up to date"));
    }
    if st.is_none() {
        s = format!(
            "no status yet, {desired} replica(s) of {}",
            kcp.spec.version
        );
    }
    n.summary = s;
    n
}

fn pool_of(md: &MachineDeployment) -> String {
    let labels = md.labels();
    labels
        .get(kaas_render::LABEL_POOL)
        .or_else(|| labels.get(TOPOLOGY_DEPLOYMENT_LABEL))
        .cloned()
        .unwrap_or_else(|| md.name_any())
}

fn md_node(md: &MachineDeployment, ns: &str) -> Node {
    let mut n = node("MachineDeployment", CAPI_GROUP, &md.name_any(), Some(ns));
    let st = md.status.as_ref();
    let conds = st.and_then(|s| s.conditions.as_ref());
    n.conditions = infos(conds);
    let desired = md.spec.replicas.unwrap_or(1);
    let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = st.and_then(|s| s.available_replicas).unwrap_or(0);
    let failed = st.and_then(|s| s.phase.as_ref()) == Some(&MachineDeploymentStatusPhase::Failed);
    n.status = if failed {
        NodeStatus::Failed
    } else if md.metadata.deletion_timestamp.is_some() {
        NodeStatus::Progressing
    } else if is_true(conds, capi_c::AVAILABLE) && ready >= desired && available >= desired {
        NodeStatus::Ok
    } else {
        NodeStatus::Progressing
    };
    let mut s = format!("pool {}: {ready}/{desired} ready", pool_of(md));
    if let Some(v) = md.spec.template.spec.version.as_deref() {
        s.push_str(&format!(", version {v}"));
    }
    if failed {
        s.push_str(", failed");
    }
    n.summary = s;
    n
}

fn machine_failure(m: &Machine) -> Option<String> {
    let st = m.status.as_ref()?;
    let msg = st
        .deprecated
        .as_ref()
        .and_then(|d| d.v1beta1.as_ref())
        .and_then(|v| v.failure_message.clone())
        .filter(|s| !s.is_empty());
    match (&st.phase, msg) {
        (_, Some(m)) => Some(m),
        (Some(MachineStatusPhase::Failed), None) => Some(
            cond(st.conditions.as_ref(), capi_c::READY)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "phase Failed".into()),
        ),
        _ => None,
    }
}

fn machine_phase(m: &Machine) -> Option<String> {
    m.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| format!("{p:?}"))
}

/// A machine is still being provisioned (not running, not failed, not being deleted).
fn provisioning(m: &Machine) -> bool {
    m.metadata.deletion_timestamp.is_none()
        && machine_failure(m).is_none()
        && !matches!(
            m.status.as_ref().and_then(|s| s.phase.as_ref()),
            Some(
                MachineStatusPhase::Running
                    | MachineStatusPhase::Deleting
                    | MachineStatusPhase::Deleted
            )
        )
}

fn machine_node(m: &Machine, ns: &str, now: Timestamp) -> Node {
    let mut n = node("Machine", CAPI_GROUP, &m.name_any(), Some(ns));
    let st = m.status.as_ref();
    let conds = st.and_then(|s| s.conditions.as_ref());
    n.conditions = infos(conds);
    let phase = machine_phase(m);
    let failure = machine_failure(m);
    let running = phase.as_deref() == Some("Running");
    let not_ready = cond(conds, capi_c::READY).filter(|c| c.status == "False");
    n.status = if failure.is_some() {
        NodeStatus::Failed
    } else if m.metadata.deletion_timestamp.is_some() || phase.as_deref() == Some("Deleting") {
        NodeStatus::Progressing
    } else if running && not_ready.is_none() {
        NodeStatus::Ok
    } else {
        NodeStatus::Progressing
    };
    let mut parts = vec![match &phase {
        Some(p) if running => p.clone(),
        Some(p) => format!("{p} (created {} ago)", human(age_of(now, &m.metadata))),
        None => format!(
            "no phase yet (created {} ago)",
            human(age_of(now, &m.metadata))
        ),
    }];
    match st.and_then(|s| s.node_ref.as_ref()) {
        Some(r) => parts.push(format!("node {}", r.name)),
        None => parts.push("no node yet".into()),
    }
    if let Some(v) = &m.spec.version {
        parts.push(format!("version {v}"));
    }
    if let Some(f) = &failure {
        parts.push(format!("failed: {f}"));
    } else if let Some(c) = not_ready.filter(|_| running) {
        parts.push(format!("Ready=False ({}): {}", c.reason, c.message));
    }
    if m.metadata.deletion_timestamp.is_some() {
        parts.push("being deleted".into());
    }
    n.summary = parts.join(", ");
    n
}

fn hidden_or_failed_machines(i: &Inputs, ns: &str) -> Option<Node> {
    placeholder(&i.machines, "Machine", CAPI_GROUP, "", ns)
}

fn capi_subtree(i: &Inputs, ns: &str) -> Node {
    let name = i.cluster.name_any();
    let spec_refused = c::get(
        i.cluster
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        c::SPEC_ACCEPTED,
    )
    .is_some_and(|x| x.status == "False");
    let capi = i.capi_cluster.ok().and_then(|c| c.as_ref());
    let mut root = match (&i.capi_cluster, capi) {
        (_, Some(cc)) => capi_cluster_node(cc, ns),
        (Fetched::Ok(None), _) => {
            let mut n = node("Cluster", CAPI_GROUP, &name, Some(ns));
            (n.status, n.summary) = if i.cluster.metadata.deletion_timestamp.is_some() {
                (NodeStatus::Ok, "deleted".into())
            } else if spec_refused {
                (
                    NodeStatus::Unknown,
                    "not created: the spec is not accepted".into(),
                )
            } else {
                (
                    NodeStatus::Progressing,
                    "not created yet (the kaas operator creates it)".into(),
                )
            };
            n
        }
        (f, _) => placeholder(f, "Cluster", CAPI_GROUP, &name, ns).unwrap_or_else(|| {
            let mut n = node("Cluster", CAPI_GROUP, &name, Some(ns));
            n.summary = "not read".into();
            n
        }),
    };

    // Infrastructure cluster.
    let infra_ref = capi.and_then(|c| c.spec.infrastructure_ref.as_ref());
    match (&i.infrastructure, infra_ref) {
        (Fetched::Ok(Some(obj)), _) => root.children.push(infra_node(obj, ns)),
        (Fetched::Ok(None), Some(r)) => {
            let mut n = node(&r.kind, &r.api_group, &r.name, Some(ns));
            n.status = NodeStatus::Progressing;
            n.summary = "not created yet".into();
            root.children.push(n);
        }
        (f @ (Fetched::Forbidden | Fetched::Failed(_)), r) => {
            let (kind, group, n) = r
                .map(|r| (r.kind.as_str(), r.api_group.as_str(), r.name.as_str()))
                .unwrap_or(("InfrastructureCluster", INFRA_GROUP, ""));
            root.children.extend(placeholder(f, kind, group, n, ns));
        }
        (_, None) if capi.is_some() => {
            let mut n = node("InfrastructureCluster", INFRA_GROUP, "", Some(ns));
            n.status = NodeStatus::Progressing;
            n.summary = "not created by Cluster API yet".into();
            root.children.push(n);
        }
        _ => {}
    }

    // Machines, split by owner.
    let mut machines: Vec<&Machine> = i
        .machines
        .ok()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    machines.sort_by_key(|m| m.name_any());
    let (cp_machines, mut rest): (Vec<&Machine>, Vec<&Machine>) = machines
        .into_iter()
        .partition(|m| m.labels().contains_key(CONTROL_PLANE_LABEL));
    let machine_nodes =
        |ms: &[&Machine]| -> Vec<Node> { ms.iter().map(|m| machine_node(m, ns, i.now)).collect() };

    // Control plane.
    let cp_ref = capi.and_then(|c| c.spec.control_plane_ref.as_ref());
    let mut cp_node = match (&i.control_plane, cp_ref) {
        (Fetched::Ok(Some(kcp)), _) => Some(kcp_node(kcp, ns)),
        (Fetched::Ok(None), Some(r)) => {
            let mut n = node(&r.kind, &r.api_group, &r.name, Some(ns));
            n.status = NodeStatus::Progressing;
            n.summary = "not created yet".into();
            Some(n)
        }
        (f @ (Fetched::Forbidden | Fetched::Failed(_)), r) => {
            let (kind, group, n) = r
                .map(|r| (r.kind.as_str(), r.api_group.as_str(), r.name.as_str()))
                .unwrap_or(("KubeadmControlPlane", CONTROL_PLANE_GROUP, ""));
            placeholder(f, kind, group, n, ns)
        }
        (_, Some(r)) => {
            let mut n = node(&r.kind, &r.api_group, &r.name, Some(ns));
            n.status = NodeStatus::Unknown;
            n.summary = format!("kind {} is not inspected", r.kind);
            Some(n)
        }
        (_, None) if capi.is_some() => {
            let mut n = node("KubeadmControlPlane", CONTROL_PLANE_GROUP, "", Some(ns));
            n.status = NodeStatus::Progressing;
            n.summary = "not created by Cluster API yet".into();
            Some(n)
        }
        _ => None,
    };
    match cp_node.as_mut() {
        Some(cp) => cp.children.extend(machine_nodes(&cp_machines)),
        None => rest.extend(cp_machines),
    }
    root.children.extend(cp_node);

    // Machine deployments with their machines.
    let mut mds: Vec<&MachineDeployment> = i
        .machine_deployments
        .ok()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    mds.sort_by_key(|m| m.name_any());
    for md in mds {
        let mut n = md_node(md, ns);
        let md_name = md.name_any();
        let (mine, others): (Vec<&Machine>, Vec<&Machine>) = rest
            .into_iter()
            .partition(|m| m.labels().get(DEPLOYMENT_LABEL) == Some(&md_name));
        rest = others;
        n.children = machine_nodes(&mine);
        root.children.push(n);
    }
    root.children.extend(placeholder(
        &i.machine_deployments,
        "MachineDeployment",
        CAPI_GROUP,
        "",
        ns,
    ));
    root.children.extend(machine_nodes(&rest));
    root.children.extend(hidden_or_failed_machines(i, ns));
    root
}

// ---------------------------------------------------------------------------------------------
// Events

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn event_info(e: &Event, now: Timestamp) -> EventInfo {
    let t = event_time(e);
    let o = &e.involved_object;
    EventInfo {
        type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        object: format!(
            "{}/{}",
            o.kind.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default()
        ),
        namespace: e.metadata.namespace.clone().unwrap_or_default(),
        time: t.map(|t| t.to_string()),
        age: t.map(|t| human(now.as_second() - t.as_second())),
        count: e
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(e.count)
            .unwrap_or(1)
            .max(1),
    }
}

/// Names of the objects in the provider-side namespace whose events belong to this cluster.
fn capi_names(i: &Inputs) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::from([i.cluster.name_any()]);
    let mut prefixes = Vec::new();
    if let Some(Some(cc)) = i.capi_cluster.ok() {
        if let Some(r) = &cc.spec.infrastructure_ref {
            names.insert(r.name.clone());
        }
        if let Some(r) = &cc.spec.control_plane_ref {
            names.insert(r.name.clone());
        }
    }
    if let Some(Some(kcp)) = i.control_plane.ok() {
        names.insert(kcp.name_any());
    }
    if let Some(Some(obj)) = i.infrastructure.ok() {
        names.insert(obj.name_any());
    }
    for md in i.machine_deployments.ok().into_iter().flatten() {
        names.insert(md.name_any());
        prefixes.push(format!("{}-", md.name_any()));
    }
    for m in i.machines.ok().into_iter().flatten() {
        names.insert(m.name_any());
        names.insert(m.spec.infrastructure_ref.name.clone());
        if let Some(r) = &m.spec.bootstrap.config_ref {
            names.insert(r.name.clone());
        }
    }
    (names, prefixes)
}

fn events(i: &Inputs) -> Vec<EventInfo> {
    let name = i.cluster.name_any();
    let mut all: Vec<&Event> = Vec::new();
    for e in i.tenant_events.ok().into_iter().flatten() {
        let o = &e.involved_object;
        let scs = o
            .api_version
            .as_deref()
            .is_none_or(|v| v.starts_with("scs.community/"));
        if o.kind.as_deref() == Some("Cluster") && o.name.as_deref() == Some(name.as_str()) && scs {
            all.push(e);
        }
    }
    let (names, prefixes) = capi_names(i);
    for e in i.capi_events.ok().into_iter().flatten() {
        let Some(n) = e.involved_object.name.as_deref() else {
            continue;
        };
        let machine_set = e.involved_object.kind.as_deref() == Some("MachineSet")
            && prefixes.iter().any(|p| n.starts_with(p.as_str()));
        if names.contains(n) || machine_set {
            all.push(e);
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    all.into_iter()
        .take(MAX_EVENTS)
        .map(|e| event_info(e, i.now))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What it waits for, and what to do

fn hint(code: &str, message: impl Into<String>, fields: Vec<String>) -> Hint {
    Hint {
        code: code.into(),
        message: message.into(),
        fields,
    }
}

fn named(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(MAX_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX_NAMED {
        s.push_str(&format!(" and {} more", items.len() - MAX_NAMED));
    }
    s
}

/// Machines still being provisioned, as `name (Phase, 3m)`, and the longest wait in seconds.
fn provisioning_machines(ms: &[&Machine], now: Timestamp) -> (Vec<String>, i64) {
    let mut longest = 0;
    let list = ms
        .iter()
        .filter(|m| provisioning(m))
        .map(|m| {
            let age = age_of(now, &m.metadata);
            longest = longest.max(age);
            format!(
                "{} ({}, {})",
                m.name_any(),
                machine_phase(m).unwrap_or_else(|| "no phase yet".into()),
                human(age)
            )
        })
        .collect();
    (list, longest)
}

/// Why the control plane or the workers are not there yet, from the Cluster API objects.
fn capi_waiting(i: &Inputs, hints: &mut Vec<Hint>) -> Option<String> {
    let cc = i.capi_cluster.ok()?.as_ref()?;
    let st = cc.status.as_ref();
    let conds = st.and_then(|s| s.conditions.as_ref());
    let reconciled = st.is_some_and(|s| {
        s.observed_generation.is_some() || s.conditions.as_ref().is_some_and(|c| !c.is_empty())
    });
    let machines: Vec<&Machine> = i
        .machines
        .ok()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let (cp_machines, workers): (Vec<&Machine>, Vec<&Machine>) = machines
        .into_iter()
        .partition(|m| m.labels().contains_key(CONTROL_PLANE_LABEL));
    let slow_hint = |ms: &[&Machine], what: &str, hints: &mut Vec<Hint>| -> Option<String> {
        let (list, longest) = provisioning_machines(ms, i.now);
        if list.is_empty() {
            return None;
        }
        let mut msg = format!(
            "Cluster API is still provisioning {} {what} machine(s): {}",
            list.len(),
            named(&list)
        );
        if longest > SLOW_MACHINE_SECS {
            msg.push_str(&format!(
                "; the oldest has waited {}, longer than usual: ask the provider to check the infrastructure (quota, images, network)",
                human(longest)
            ));
        } else {
            msg.push_str("; nothing to do but wait");
        }
        hints.push(hint(HINT_WAITING_FOR_MACHINES, msg, Vec::new()));
        Some(named(&list))
    };

    if !is_true(conds, capi_c::CONTROL_PLANE_AVAILABLE) {
        let detail = if !reconciled {
            if age_of(i.now, &cc.metadata) >= IDLE_SECS {
                hints.push(hint(
                    HINT_CLUSTER_API_IDLE,
                    format!(
                        "Cluster API has not reconciled Cluster {}/{} for {}: its controllers may not be running; ask the provider",
                        cc.namespace().unwrap_or_default(),
                        cc.name_any(),
                        human(age_of(i.now, &cc.metadata))
                    ),
                    Vec::new(),
                ));
            }
            "the Cluster API Cluster has no status yet (Cluster API has not reconciled it)"
                .to_string()
        } else if !st
            .and_then(|s| s.initialization.as_ref())
            .and_then(|x| x.infrastructure_provisioned)
            .unwrap_or(false)
            && !is_true(conds, capi_c::INFRASTRUCTURE_READY)
        {
            match cc.spec.infrastructure_ref.as_ref() {
                Some(r) => format!(
                    "infrastructure {}/{} is not provisioned yet",
                    r.kind, r.name
                ),
                None => "the infrastructure is not created yet".to_string(),
            }
        } else if let Some(list) = slow_hint(&cp_machines, "control-plane", hints) {
            format!("control-plane machine(s) {list}")
        } else if cp_machines.iter().any(|m| machine_failure(m).is_some()) {
            let failed: Vec<String> = cp_machines
                .iter()
                .filter(|m| machine_failure(m).is_some())
                .map(|m| m.name_any())
                .collect();
            format!("failed control-plane machine(s) {}", named(&failed))
        } else if cp_machines.is_empty() {
            "no control-plane machine exists yet".to_string()
        } else {
            cond(conds, capi_c::CONTROL_PLANE_AVAILABLE)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "the control plane is not available yet".into())
        };
        return Some(format!(
            "Cluster API has not provisioned the control plane yet: {detail}"
        ));
    }
    if !is_true(conds, capi_c::WORKERS_AVAILABLE) {
        let failed: Vec<String> = workers
            .iter()
            .filter(|m| machine_failure(m).is_some())
            .map(|m| m.name_any())
            .collect();
        let detail = match slow_hint(&workers, "worker", hints) {
            Some(list) => format!("worker machine(s) {list}"),
            None if !failed.is_empty() => format!("failed worker machine(s) {}", named(&failed)),
            None => cond(conds, capi_c::WORKERS_AVAILABLE)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "workers are not available yet".into()),
        };
        return Some(format!(
            "Cluster API has not provisioned all worker machines yet: {detail}"
        ));
    }
    None
}

/// What the cluster waits for, and what to do: first the hints that hold whatever it waits for
/// ([`standing_hints`]), then the one thing it waits for with the hints that go with it
/// ([`waiting_for`]).
fn conclude(i: &Inputs, root: &Node) -> (Option<String>, Vec<Hint>) {
    let status = i.cluster.status.clone().unwrap_or_default();
    let mut hints = standing_hints(i, root, &status);
    let waiting = waiting_for(i, &status, &mut hints);
    (waiting, hints)
}

/// The hints that hold whatever the cluster waits for, in this order: the spec's warnings,
/// extensions not applied, compliance, a version change that waits for its maintenance window,
/// failed machines and objects the reader may not see.
fn standing_hints(i: &Inputs, root: &Node, status: &ClusterStatus) -> Vec<Hint> {
    let name = i.cluster.name_any();
    let ns = i.cluster.namespace().unwrap_or_default();
    let mut hints: Vec<Hint> = status
        .warnings
        .iter()
        .map(|w| hint(HINT_SPEC_WARNING, w.clone(), Vec::new()))
        .collect();
    hints.extend(extension_hints(status));
    hints.extend(compliance_hint(status, &name, &ns));
    if let Some(x) = cond(Some(&status.conditions), c::VERSION_CURRENT)
        && x.message.contains(" waits")
    {
        hints.push(hint(
            HINT_VERSION_PENDING,
            x.message.clone(),
            vec!["spec.maintenance".into()],
        ));
    }
    hints.extend(tree_hints(i, root, &ns));
    hints
}

/// When `ExtensionsReady` is `False`: one hint per extension or base addon not applied (naming
/// the `spec.extensions` field of a selected extension), or one for the condition when the
/// status names none.
fn extension_hints(status: &ClusterStatus) -> Vec<Hint> {
    let Some(x) =
        cond(Some(&status.conditions), c::EXTENSIONS_READY).filter(|x| x.status == "False")
    else {
        return Vec::new();
    };
    let failed: Vec<&kaas_api::cluster::ExtensionStatus> =
        status.extensions.iter().filter(|e| !e.applied).collect();
    let mut hints = Vec::new();
    if failed.is_empty() {
        hints.push(hint(
            HINT_EXTENSION_FAILED,
            format!(
                "extensions are not applied ({}): {}; this is on the provider's side (its addon bundles) unless you changed spec.extensions",
                x.reason, x.message
            ),
            Vec::new(),
        ));
    }
    for e in failed {
        hints.push(hint(
            HINT_EXTENSION_FAILED,
            format!(
                "{} {:?} could not be applied: {}; if you selected it, check spec.extensions, otherwise ask the provider",
                if e.stage == "base" { "base addon" } else { "extension" },
                e.name,
                e.message.clone().unwrap_or_else(|| "no message".into())
            ),
            if e.stage == "base" {
                Vec::new()
            } else {
                vec![format!("spec.extensions.{}", e.name)]
            },
        ));
    }
    hints
}

/// The hint `Compliant` calls for, if any: the failed checks and where the report is (`False`),
/// a check that could not run (`Unknown`, reason `CheckError`) or an undecided result (`Unknown`).
fn compliance_hint(status: &ClusterStatus, name: &str, ns: &str) -> Option<Hint> {
    let x = cond(Some(&status.conditions), c::COMPLIANT)?;
    let report = status
        .compliance
        .as_ref()
        .map(|r| r.report_config_map.clone())
        .unwrap_or_else(|| format!("{name}-compliance"));
    let read =
        format!("kubectl -n {ns} get configmap {report} -o jsonpath='{{.data.report\\.txt}}'");
    match (x.status.as_str(), x.reason.as_str()) {
        ("False", _) => Some(hint(
            HINT_COMPLIANCE_FAILED,
            format!(
                "compliance checks failed: {}; the full report with remediation is in ConfigMap {report} ({read})",
                failed_checks(&x.message).join(", ")
            ),
            Vec::new(),
        )),
        ("Unknown", "CheckError") => Some(hint(
            HINT_COMPLIANCE_UNDECIDED,
            format!(
                "the compliance check could not run: {}; kaas retries",
                x.message
            ),
            Vec::new(),
        )),
        ("Unknown", _) => Some(hint(
            HINT_COMPLIANCE_UNDECIDED,
            format!("compliance is undecided: {} ({read})", x.message),
            Vec::new(),
        )),
        _ => None,
    }
}

/// The names of the failed checks in a `Compliant=False` message (`… failed: a (why); b (why)
/// (report: ConfigMap …)`); the whole message's parts when it has no ` failed: `.
fn failed_checks(message: &str) -> Vec<&str> {
    let list = message
        .split_once(" failed: ")
        .map(|(_, rest)| rest)
        .unwrap_or(message);
    let list = list.split(" (report: ConfigMap").next().unwrap_or(list);
    list.split("; ")
        .filter_map(|s| s.split(" (").next())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The hints the tree calls for: one per failed Machine, and one naming every object the reader
/// may not see (and the RoleBinding that would let them).
fn tree_hints(i: &Inputs, root: &Node, ns: &str) -> Vec<Hint> {
    let mut hints = Vec::new();
    for n in root.walk() {
        if n.kind == "Machine" && n.status == NodeStatus::Failed {
            hints.push(hint(
                HINT_MACHINE_FAILED,
                format!(
                    "Machine {} failed ({}); a machine health check of the provider replaces failed machines; if it stays, ask the provider",
                    n.name, n.summary
                ),
                Vec::new(),
            ));
        }
    }
    let hidden: Vec<String> = root
        .walk()
        .into_iter()
        .filter(|n| n.status == NodeStatus::Hidden)
        .map(|n| n.title())
        .collect();
    if !hidden.is_empty() {
        hints.push(hint(
            HINT_NOT_VISIBLE,
            format!(
                "not visible to you: {} in namespace {}; tenants read their Cluster API objects through the RoleBinding kaas-tenant-capi-viewer the operator keeps there (it follows the kaas-tenant RoleBindings of {ns})",
                named(&hidden),
                i.capi_namespace.clone().unwrap_or_default()
            ),
            Vec::new(),
        ));
    }
    hints
}

/// The one thing the cluster waits for, adding the hints that go with it; the first that applies
/// of: its deletion, a first status, an accepted spec, the operator catching up with the latest
/// generation, then the rollout ([`rollout_waits`]).
fn waiting_for(i: &Inputs, status: &ClusterStatus, hints: &mut Vec<Hint>) -> Option<String> {
    let cl = &i.cluster;
    let conds = Some(&status.conditions);
    if cl.metadata.deletion_timestamp.is_some() {
        return Some(deletion_waits(i, cond(conds, c::DELETING), hints));
    }
    if cl.status.is_none() {
        return Some(unreconciled(i, hints));
    }
    if let Some(x) = cond(conds, c::SPEC_ACCEPTED).filter(|x| x.status == "False") {
        return Some(spec_refused(i, x, hints));
    }
    if let (Some(o), Some(g)) = (status.observed_generation, cl.metadata.generation)
        && o < g
    {
        return Some(format!(
            "the kaas operator has not processed the latest change yet (status is for generation {o}, the spec is at {g})"
        ));
    }
    rollout_waits(i, status, hints)
}

/// What a cluster being deleted waits for: `spec.deletionProtection` (refused), kaas' finalizer
/// (what `Deleting` says) or finalizers someone else set; with a hint for each.
fn deletion_waits(i: &Inputs, deleting: Option<&Condition>, hints: &mut Vec<Hint>) -> String {
    let cl = &i.cluster;
    let name = cl.name_any();
    let ns = cl.namespace().unwrap_or_default();
    if cl.spec.deletion_protection == Some(true) {
        hints.push(hint(
            HINT_DELETION_PROTECTED,
            format!(
                "deletion waits while spec.deletionProtection is true: set it to false to let it proceed (kubectl -n {ns} patch clusters.scs.community {name} --type merge -p '{{\"spec\":{{\"deletionProtection\":false}}}}')"
            ),
            vec!["spec.deletionProtection".into()],
        ));
        return "deletion is refused: spec.deletionProtection is true".into();
    }
    let foreign: Vec<String> = cl
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let ours = cl.finalizers().iter().any(|f| f == FINALIZER);
    let what = deleting
        .map(|d| d.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "the kaas operator has not started the deletion yet".into());
    if ours {
        hints.push(hint(
            HINT_DELETION_WAITING,
            format!(
                "deletion waits on the finalizer {FINALIZER}: the kaas operator handling the cluster's provider removes it once Cluster API has deleted the cluster's machines and infrastructure ({what})"
            ),
            Vec::new(),
        ));
    }
    if !foreign.is_empty() {
        hints.push(hint(
            HINT_FOREIGN_FINALIZER,
            format!(
                "deletion also waits on finalizer(s) kaas did not set: {}; whoever added them must remove them",
                foreign.join(", ")
            ),
            Vec::new(),
        ));
    }
    if ours {
        format!("the deletion waits: {what}")
    } else {
        format!("the deletion waits on finalizer(s) {}", foreign.join(", "))
    }
}

/// A cluster without status waits for the operator; after [`IDLE_SECS`] a hint asks whether one
/// runs for its provider.
fn unreconciled(i: &Inputs, hints: &mut Vec<Hint>) -> String {
    let age = age_of(i.now, &i.cluster.metadata);
    if age >= IDLE_SECS {
        hints.push(hint(
            HINT_OPERATOR_IDLE,
            format!(
                "no status after {}: is the kaas operator running, and does one of its instances handle provider {}?",
                human(age),
                i.provider.clone().unwrap_or_else(|| "(none named)".into())
            ),
            Vec::new(),
        ));
    }
    "the kaas operator has not reconciled the cluster yet".into()
}

/// A spec not accepted (`x` is `SpecAccepted=False`): no usable provider (one hint naming the
/// fields), or one hint per field error — a refused version change or any other invalid field.
fn spec_refused(i: &Inputs, x: &Condition, hints: &mut Vec<Hint>) -> String {
    if x.reason == "ProviderNotFound" {
        let fields: Vec<String> = spec_errors(&x.message)
            .into_iter()
            .filter_map(|(p, _)| p)
            .collect();
        hints.push(hint(
            HINT_PROVIDER_MISSING,
            format!(
                "{}: choose an offering (kubectl get providers.scs.community) and set spec.provider.name (the field is immutable: for another provider create a new Cluster)",
                x.message
            ),
            if fields.is_empty() {
                vec!["spec.provider.name".into()]
            } else {
                fields
            },
        ));
        return format!("no usable provider: {}", x.message);
    }
    let kubectl = format!(
        "kubectl -n {} edit clusters.scs.community {}",
        i.cluster.namespace().unwrap_or_default(),
        i.cluster.name_any()
    );
    for (path, text) in spec_errors(&x.message) {
        hints.push(spec_error_hint(path, &text, &kubectl));
    }
    format!(
        "the spec is not accepted (nothing is changed until it is fixed): {}",
        x.message
    )
}

/// The hint for one field error of a refused spec: a version downgrade or skipped minor asks for
/// the running or next minor, anything else to fix the field; `kubectl` is the edit command.
fn spec_error_hint(path: Option<String>, text: &str, kubectl: &str) -> Hint {
    let version = path.as_deref() == Some("spec.kubernetes.version")
        && (text.contains("downgrade") || text.contains("skips a minor"));
    if version {
        hint(
            HINT_VERSION_REFUSED,
            format!(
                "{text}; set spec.kubernetes.version to the running minor or the next one ({kubectl}); until then nothing changes"
            ),
            vec!["spec.kubernetes.version".into()],
        )
    } else {
        hint(
            HINT_INVALID_SPEC,
            format!("{text}; fix the spec ({kubectl})"),
            path.into_iter().collect(),
        )
    }
}

/// What an accepted, processed cluster waits for: a failure Cluster API reports (with a hint),
/// nothing or extensions when Ready, the Cluster API objects being provisioned ([`capi_waiting`],
/// not for imported clusters), a version rollout, or else what `Ready` says.
fn rollout_waits(i: &Inputs, status: &ClusterStatus, hints: &mut Vec<Hint>) -> Option<String> {
    let conds = Some(&status.conditions);
    let ready = cond(conds, c::READY);
    if let Some(r) = ready.filter(|r| r.status == "False" && r.reason == "Failed") {
        hints.push(hint(
            HINT_CLUSTER_API_FAILED,
            format!(
                "{}; this usually is a problem of the provider's ClusterClass or Cluster API: ask the provider",
                r.message
            ),
            Vec::new(),
        ));
        return Some(format!("the cluster failed: {}", r.message));
    }
    if ready.is_some_and(|r| r.status == "True") {
        return match cond(conds, c::EXTENSIONS_READY) {
            Some(x) if x.status != "True" => Some(format!(
                "extensions are not ready ({}): {}",
                x.reason, x.message
            )),
            _ => None,
        };
    }
    if !i.imported
        && let Some(w) = capi_waiting(i, hints)
    {
        return Some(w);
    }
    if let Some(x) = cond(conds, c::VERSION_CURRENT).filter(|x| x.status == "False") {
        return Some(format!("the version change rolls out: {}", x.message));
    }
    let w = ready
        .map(|r| {
            if r.message.is_empty() {
                format!("not Ready ({})", r.reason)
            } else {
                format!("not Ready: {}", r.message)
            }
        })
        .unwrap_or_else(|| "the cluster has not reported Ready yet".into());
    Some(w)
}

/// The verdict on a cluster from its own status alone (pure; no tree, no events): what the GUI's
/// cluster list shows. [`analyze`] refines it with the tree (a failed machine makes a Ready
/// cluster degraded and a not yet Ready one failed).
///
/// - `failed`: phase `Failed` or `Invalid`, `SpecAccepted=False`, or `Ready=False` with reason
///   `Failed` — not Ready because something failed;
/// - `degraded`: `Ready=True`, but `ExtensionsReady` or `Compliant` is `False`;
/// - `healthy`: `Ready=True` otherwise;
/// - `progressing`: no status yet, being deleted, or not Ready yet without a failure.
pub fn cluster_verdict(cluster: &Cluster) -> Verdict {
    let Some(st) = cluster.status.as_ref() else {
        return Verdict::Progressing;
    };
    let conds = Some(&st.conditions);
    if cluster.metadata.deletion_timestamp.is_some() {
        return Verdict::Progressing;
    }
    let ready = cond(conds, c::READY);
    if matches!(
        st.phase,
        Some(kaas_api::cluster::ClusterPhase::Failed | kaas_api::cluster::ClusterPhase::Invalid)
    ) || is_false(conds, c::SPEC_ACCEPTED)
        || ready.is_some_and(|r| r.status == "False" && r.reason == "Failed")
    {
        return Verdict::Failed;
    }
    // Hibernated as asked: nothing is wrong and nothing is in progress.
    if st.phase == Some(kaas_api::cluster::ClusterPhase::Hibernated) {
        return Verdict::Healthy;
    }
    if ready.is_some_and(|r| r.status == "True") {
        if is_false(conds, c::EXTENSIONS_READY) || is_false(conds, c::COMPLIANT) {
            Verdict::Degraded
        } else {
            Verdict::Healthy
        }
    } else {
        Verdict::Progressing
    }
}

/// The verdict with the tree and the hints, and what makes a Ready cluster degraded.
fn verdict(i: &Inputs, root: &Node, hints: &[Hint]) -> (Verdict, Vec<Aspect>) {
    let base = cluster_verdict(&i.cluster);
    let failed_below: Vec<&Node> = root
        .children
        .iter()
        .flat_map(|c| c.walk())
        .filter(|n| n.status == NodeStatus::Failed)
        .collect();
    match base {
        Verdict::Progressing
            if i.cluster.metadata.deletion_timestamp.is_none()
                && i.cluster.status.is_some()
                && !failed_below.is_empty() =>
        {
            (Verdict::Failed, Vec::new())
        }
        Verdict::Healthy | Verdict::Degraded => {
            let has = |code: &str| -> Vec<String> {
                if hints.iter().any(|h| h.code == code) {
                    vec![code.to_string()]
                } else {
                    Vec::new()
                }
            };
            let conds = i.cluster.status.as_ref().map(|s| &s.conditions);
            let mut aspects = Vec::new();
            for (t, aspect, code) in [
                (
                    c::EXTENSIONS_READY,
                    ASPECT_EXTENSIONS,
                    HINT_EXTENSION_FAILED,
                ),
                (c::COMPLIANT, ASPECT_COMPLIANCE, HINT_COMPLIANCE_FAILED),
            ] {
                if let Some(x) = cond(conds, t).filter(|x| x.status == "False") {
                    aspects.push(Aspect {
                        aspect: aspect.into(),
                        condition: Some(t.into()),
                        reason: Some(x.reason.clone()).filter(|r| !r.is_empty()),
                        message: if x.message.is_empty() {
                            format!("{t} is False ({})", x.reason)
                        } else {
                            x.message.clone()
                        },
                        hints: has(code),
                    });
                }
            }
            for n in failed_below {
                let machine = n.kind == "Machine";
                aspects.push(Aspect {
                    aspect: if machine {
                        ASPECT_MACHINES
                    } else {
                        ASPECT_CLUSTER_API
                    }
                    .into(),
                    condition: None,
                    reason: None,
                    message: format!("{} failed: {}", n.title(), n.summary),
                    hints: if machine {
                        has(HINT_MACHINE_FAILED)
                    } else {
                        Vec::new()
                    },
                });
            }
            if aspects.is_empty() {
                (Verdict::Healthy, aspects)
            } else {
                (Verdict::Degraded, aspects)
            }
        }
        v => (v, Vec::new()),
    }
}

/// The diagnosis of what was read.
pub fn analyze(i: &Inputs) -> Diagnosis {
    let st = i.cluster.status.clone().unwrap_or_default();
    let mut root = root_node(i);
    if !i.imported
        && let Some(ns) = &i.capi_namespace
    {
        root.children.push(capi_subtree(i, ns));
    }
    let (waiting_for, hints) = conclude(i, &root);
    let (verdict, degraded) = verdict(i, &root, &hints);
    Diagnosis {
        cluster: ClusterInfo {
            namespace: i.cluster.namespace().unwrap_or_default(),
            name: i.cluster.name_any(),
            phase: st.phase.map(|p| p.to_string()),
            version: st.kubernetes_version.clone(),
            target_version: st.target_version.clone(),
            ready: c::is_true(&st.conditions, c::READY),
            provider: i.provider.clone(),
            capi_namespace: i.capi_namespace.clone(),
        },
        tree: root,
        events: events(i),
        verdict,
        degraded,
        waiting_for,
        hints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_checks_are_the_names_before_the_report() {
        assert_eq!(
            failed_checks(
                "2 failed: scs-0210-v2 (v1.35.4 is outdated); scs-0214-v2 (all nodes in one zone) (report: ConfigMap c-compliance)"
            ),
            vec!["scs-0210-v2", "scs-0214-v2"]
        );
        assert_eq!(failed_checks("scs-0217 (pod-security)"), vec!["scs-0217"]);
        assert!(failed_checks("").is_empty());
    }

    #[test]
    fn a_refused_version_change_asks_for_the_running_or_next_minor() {
        let edit = "kubectl -n t edit clusters.scs.community c";
        let h = spec_error_hint(
            Some("spec.kubernetes.version".into()),
            "1.33 is a downgrade from 1.34",
            edit,
        );
        assert_eq!(h.code, HINT_VERSION_REFUSED);
        assert_eq!(h.fields, vec!["spec.kubernetes.version".to_string()]);
        let h = spec_error_hint(Some("spec.kubernetes.version".into()), "not offered", edit);
        assert_eq!(h.code, HINT_INVALID_SPEC);
        assert_eq!(h.fields, vec!["spec.kubernetes.version".to_string()]);
        let h = spec_error_hint(None, "bad", edit);
        assert_eq!(h.code, HINT_INVALID_SPEC);
        assert!(h.fields.is_empty());
        assert_eq!(h.message, format!("bad; fix the spec ({edit})"));
    }
}
