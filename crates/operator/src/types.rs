//! The values the stages of a reconcile hand each other: why a spec is not accepted
//! ([`Problem`], from dereference and validation to the status), what a backend sees of a cluster
//! ([`Observation`], from observe to the status) and how far a deletion is ([`Deletion`]).

use kaas_validate::FieldErrors;

/// Why a spec is not accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// The provider is missing or not usable.
    Provider(String),
    /// The spec is invalid against the offering.
    Invalid(FieldErrors),
    /// The management cluster refused what the backend wrote for this spec (an admission
    /// webhook or policy, schema validation, RBAC): the full message of the refusal.
    Refused(String),
}

impl Problem {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Problem::Provider(_) => "ProviderNotFound",
            Problem::Invalid(_) => "InvalidSpec",
            Problem::Refused(_) => "BackendRefused",
        }
    }
    pub(crate) fn message(&self) -> String {
        match self {
            Problem::Provider(m) | Problem::Refused(m) => m.clone(),
            Problem::Invalid(e) => e.to_string(),
        }
    }
}

/// A condition-like observation: status plus reason and message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// True/False/None (= unknown).
    pub ok: Option<bool>,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl Signal {
    /// A signal.
    pub fn new(ok: Option<bool>, reason: &str, message: impl Into<String>) -> Self {
        Signal {
            ok,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Observed state of one worker pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolObservation {
    /// Pool name.
    pub name: String,
    /// Nodes wanted.
    pub desired: i32,
    /// Nodes ready.
    pub ready: i32,
    /// Nodes (machines) that exist, ready or not.
    pub current: i32,
    /// Versions the pool's nodes run.
    pub versions: Vec<String>,
    /// Names of the pool's MachineDeployments (Cluster API backend).
    pub machine_deployments: Vec<String>,
    /// What the cluster-autoscaler reports for the pool, when it publishes its status.
    pub autoscaler: Option<kaas_api::cluster::PoolAutoscalerStatus>,
}

/// What a backend sees of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// The backend's objects exist.
    pub exists: bool,
    /// Infrastructure (network, load balancer).
    pub infrastructure: Signal,
    /// Control plane availability.
    pub control_plane: Signal,
    /// Worker availability.
    pub workers: Signal,
    /// Control-plane versions in use.
    pub control_plane_versions: Vec<String>,
    /// Worker versions in use.
    pub worker_versions: Vec<String>,
    /// Per pool.
    pub pools: Vec<PoolObservation>,
    /// A change is still rolling out (topology not reconciled yet).
    pub rolling_out: Option<String>,
    /// A failure the user should see.
    pub failure: Option<String>,
    /// API endpoint (`https://host:port`).
    pub endpoint: Option<String>,
    /// Name of the kubeconfig Secret in the tenant namespace, once copied there.
    pub kubeconfig_secret: Option<String>,
    /// The backend's objects are at rest as hibernation asks (what rests, for people), or `None`.
    pub at_rest: Option<String>,
}

/// Progress of a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Everything is gone.
    Done,
    /// Still waiting; the message says on what.
    Waiting(String),
}
