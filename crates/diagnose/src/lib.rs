//! Diagnosis of one SCS `Cluster`: why it is (not) Ready and what to do about it.
//!
//! [`diagnose`] reads, with whatever identity the client has, the SCS `Cluster`, the Cluster API
//! objects that realise it in the provider-side namespace (`kaas_render::capi_namespace`) and
//! recent events, and hands them to the pure [`analyze`]. What the identity may not read (HTTP
//! 403) becomes a node with status `hidden` ("not visible to you"), never an error of the whole
//! call; only the SCS `Cluster` itself must be readable ([`Error::NotFound`], [`Error::Forbidden`]).
//!
//! Used by `kaas describe cluster` / `kaas diagnose` (current kubeconfig) and by the REST server
//! (the end user's own token).
//!
//! # JSON shape (stable; [`schema`] gives the JSON Schema)
//!
//! ```text
//! {
//!   "cluster":    {"namespace", "name", "phase"?, "version"?, "targetVersion"?, "ready": bool,
//!                  "provider"?, "capiNamespace"?},
//!   "tree":       Node,
//!   "events":     [{"type", "reason", "message", "object", "namespace", "time"?, "age"?, "count"}],
//!   "verdict":    "healthy" | "progressing" | "degraded" | "failed",
//!   "degraded":   [{"aspect", "condition"?, "reason"?, "message", "hints": [string]}],
//!   "waitingFor": string | null,
//!   "hints":      [{"code", "message", "fields": [string]}]
//! }
//! Node = {"kind", "apiGroup", "name", "namespace"?, "status", "summary",
//!         "conditions": [{"type", "status", "reason", "message"}], "children": [Node]}
//! ```
//!
//! - `tree` starts at the SCS `Cluster` (`apiGroup` `scs.community`); its child is the Cluster API
//!   `Cluster` (`cluster.x-k8s.io`) with the infrastructure cluster (e.g. `DevCluster`,
//!   `OpenStackCluster`), the control plane (`KubeadmControlPlane` with its `Machine`s) and the
//!   `MachineDeployment`s (each with its `Machine`s) below it. Clusters of a static (imported)
//!   provider have no children.
//! - `verdict` judges the cluster as a whole ([`Verdict`]): `healthy` (Ready, nothing failing),
//!   `degraded` (Ready, but a non-blocking aspect fails: extensions, compliance, a machine),
//!   `progressing` (not Ready yet, nothing failed: being created, changed or deleted), `failed`
//!   (not Ready because something failed; someone must act).
//! - `degraded` lists, for a degraded cluster only, each failing aspect (`extensions`,
//!   `compliance`, `machines`, `clusterAPI`) with the condition that says so and the codes of the
//!   `hints` about it; empty otherwise.
//! - `status` is one of `ok`, `progressing`, `degraded` (the SCS `Cluster` only: Ready, but
//!   `ExtensionsReady` or `Compliant` is `False`), `failed`, `unknown` (could not be read or
//!   judged), `hidden` (the identity may not read it; `summary` is "not visible to you").
//! - `events` are the most recent first: about the SCS `Cluster` in the tenant namespace and, if
//!   visible, about the Cluster API objects of the tree in the provider-side namespace. `object` is
//!   `Kind/name`, `time` RFC 3339, `age` relative to the diagnosis (`45s`, `12m`, `3h`, `2d`).
//! - `waitingFor`: one sentence, why the cluster is not Ready or not converged; `null` when it is.
//! - `hints[].code` is one of the `HINT_*` constants; `fields` lists spec field paths where the
//!   hint concerns the spec.

mod analyze;
mod fetch;
mod text;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use analyze::{Fetched, Inputs, analyze, cluster_verdict};
pub use fetch::{diagnose, fetch};

/// Why a diagnosis could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SCS `Cluster` does not exist (HTTP 404).
    #[error("cluster {namespace}/{name} not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The identity may not read the SCS `Cluster` (HTTP 403).
    #[error("not allowed to read cluster {namespace}/{name}: {message}")]
    Forbidden {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// Any other failure reading the SCS `Cluster`.
    #[error("reading cluster {namespace}/{name}: {source}")]
    Kube {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Hint: the spec is invalid; `fields` names the paths (from `SpecAccepted`).
pub const HINT_INVALID_SPEC: &str = "InvalidSpec";
/// Hint: the requested version is refused (a downgrade, or a skipped minor).
pub const HINT_VERSION_REFUSED: &str = "VersionRefused";
/// Hint: the provider named by the spec does not exist or cannot be chosen.
pub const HINT_PROVIDER_MISSING: &str = "ProviderMissing";
/// Hint: the operator has not written any status (or not for the current generation).
pub const HINT_OPERATOR_IDLE: &str = "OperatorIdle";
/// Hint: the Cluster API objects exist but Cluster API has not reconciled them.
pub const HINT_CLUSTER_API_IDLE: &str = "ClusterApiIdle";
/// Hint: Cluster API is still provisioning machines (which, since when).
pub const HINT_WAITING_FOR_MACHINES: &str = "WaitingForMachines";
/// Hint: a machine failed.
pub const HINT_MACHINE_FAILED: &str = "MachineFailed";
/// Hint: Cluster API reports a failure of the cluster (e.g. the topology cannot be applied).
pub const HINT_CLUSTER_API_FAILED: &str = "ClusterApiFailed";
/// Hint: deletion is refused while `spec.deletionProtection` is true.
pub const HINT_DELETION_PROTECTED: &str = "DeletionProtected";
/// Hint: deletion waits on kaas' finalizer (Cluster API still deletes the machines).
pub const HINT_DELETION_WAITING: &str = "DeletionWaiting";
/// Hint: deletion waits on a finalizer kaas did not put there.
pub const HINT_FOREIGN_FINALIZER: &str = "ForeignFinalizer";
/// Hint: an extension (or base addon) could not be applied.
pub const HINT_EXTENSION_FAILED: &str = "ExtensionFailed";
/// Hint: compliance checks failed (which, and the report ConfigMap).
pub const HINT_COMPLIANCE_FAILED: &str = "ComplianceFailed";
/// Hint: compliance checks could not decide or could not run.
pub const HINT_COMPLIANCE_UNDECIDED: &str = "ComplianceUndecided";
/// Hint: a version change waits (maintenance window, automatic patch updates off) or rolls.
pub const HINT_VERSION_PENDING: &str = "VersionPending";
/// Hint: parts of the tree are not visible to this identity.
pub const HINT_NOT_VISIBLE: &str = "NotVisible";
/// Hint: a warning about the spec that does not stop reconciliation.
pub const HINT_SPEC_WARNING: &str = "SpecWarning";

/// The result: the cluster, the tree of objects, events, what it waits for, what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// The SCS cluster at a glance.
    pub cluster: ClusterInfo,
    /// SCS Cluster → Cluster API Cluster → infrastructure, control plane, machine deployments →
    /// machines.
    pub tree: Node,
    /// Recent events, newest first.
    pub events: Vec<EventInfo>,
    /// The cluster as a whole: healthy, progressing, degraded or failed.
    pub verdict: Verdict,
    /// What makes a Ready cluster degraded (empty unless `verdict` is `degraded`).
    pub degraded: Vec<Aspect>,
    /// Why the cluster is not Ready / not converged, in one sentence; `null` when it is.
    pub waiting_for: Option<String>,
    /// What to do.
    pub hints: Vec<Hint>,
}

/// The SCS cluster at a glance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// Tenant namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.phase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `status.kubernetesVersion`: what the cluster runs, when uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `status.targetVersion`: what kaas rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// `Ready` is `True`.
    pub ready: bool,
    /// The provider (named in the spec or the one kaas chose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider-side namespace of its Cluster API objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capi_namespace: Option<String>,
}

/// The cluster as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Ready, and nothing fails.
    Healthy,
    /// Not Ready yet, and nothing failed: being created, changed or deleted.
    Progressing,
    /// Ready and usable, but a non-blocking aspect fails (extensions, compliance, a machine):
    /// someone should look ([`Diagnosis::degraded`] says what, the hints what to do).
    Degraded,
    /// Not Ready because something failed (the spec is refused, the provider is missing, Cluster
    /// API reports a failure, a machine failed): someone must act.
    Failed,
}

impl Verdict {
    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Progressing => "progressing",
            Verdict::Degraded => "degraded",
            Verdict::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aspect: the extensions (or base addons) are not applied (`ExtensionsReady=False`).
pub const ASPECT_EXTENSIONS: &str = "extensions";
/// Aspect: compliance checks failed (`Compliant=False`).
pub const ASPECT_COMPLIANCE: &str = "compliance";
/// Aspect: a machine failed (the cluster is still Ready).
pub const ASPECT_MACHINES: &str = "machines";
/// Aspect: another Cluster API object reports a failure (the cluster is still Ready).
pub const ASPECT_CLUSTER_API: &str = "clusterAPI";

/// One failing, non-blocking aspect of a Ready cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aspect {
    /// One of the `ASPECT_*` constants.
    pub aspect: String,
    /// The condition of the SCS `Cluster` that reports it (`ExtensionsReady`, `Compliant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The condition's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What fails, for people.
    pub message: String,
    /// Codes of the entries of `hints` about it (what to do).
    #[serde(default)]
    pub hints: Vec<String>,
}

/// State of a node of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// As it should be.
    Ok,
    /// On its way (being created, scaled, upgraded, deleted).
    Progressing,
    /// Ready, but a non-blocking aspect fails (the SCS `Cluster` only: `ExtensionsReady` or
    /// `Compliant` is `False`).
    Degraded,
    /// Failed: needs someone to act.
    Failed,
    /// Could not be read or judged.
    Unknown,
    /// The identity may not read it.
    Hidden,
}

impl NodeStatus {
    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ok => "ok",
            NodeStatus::Progressing => "progressing",
            NodeStatus::Degraded => "degraded",
            NodeStatus::Failed => "failed",
            NodeStatus::Unknown => "unknown",
            NodeStatus::Hidden => "hidden",
        }
    }
}

/// One object of the tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Kind (`Cluster`, `KubeadmControlPlane`, `MachineDeployment`, `Machine`, `DevCluster`, …).
    pub kind: String,
    /// API group (`scs.community`, `cluster.x-k8s.io`, …).
    pub api_group: String,
    /// Name (empty for a placeholder of objects that could not be listed).
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// State.
    pub status: NodeStatus,
    /// One line for people.
    pub summary: String,
    /// The object's conditions.
    #[serde(default)]
    pub conditions: Vec<ConditionInfo>,
    /// Objects below it.
    #[serde(default)]
    pub children: Vec<Node>,
}

impl Node {
    /// This node and every node below it, depth first.
    pub fn walk(&self) -> Vec<&Node> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.walk());
        }
        out
    }

    /// `Kind/name` (`Kind` alone for a placeholder without a name).
    pub fn title(&self) -> String {
        if self.name.is_empty() {
            self.kind.clone()
        } else {
            format!("{}/{}", self.kind, self.name)
        }
    }
}

/// A condition of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionInfo {
    /// Type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    #[serde(default)]
    pub reason: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

/// An event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// `Kind/name` of the object the event is about.
    pub object: String,
    /// Namespace of the event.
    pub namespace: String,
    /// When it (last) happened, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// How long ago, relative to the diagnosis (`45s`, `12m`, `3h`, `2d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    /// How often it happened.
    pub count: i32,
}

/// Something to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hint {
    /// Stable code (one of the `HINT_*` constants).
    pub code: String,
    /// What is wrong and what to do, for people.
    pub message: String,
    /// Spec field paths concerned (e.g. `spec.workers[0].flavor`).
    #[serde(default)]
    pub fields: Vec<String>,
}

impl Diagnosis {
    /// The verdict is [`Verdict::Healthy`]: Ready, and nothing fails (no failed node, nothing
    /// degraded).
    pub fn healthy(&self) -> bool {
        self.verdict == Verdict::Healthy
    }

    /// Nodes with status `failed`, depth first.
    pub fn failing(&self) -> Vec<&Node> {
        self.tree
            .walk()
            .into_iter()
            .filter(|n| n.status == NodeStatus::Failed)
            .collect()
    }

    /// The human tree (`kaas describe cluster`).
    pub fn to_text(&self) -> String {
        text::describe(self)
    }

    /// Only what needs attention: waiting for, hints, failing nodes (`kaas diagnose`).
    pub fn to_short_text(&self) -> String {
        text::short(self)
    }
}

/// The JSON Schema of [`Diagnosis`].
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(Diagnosis)
}
