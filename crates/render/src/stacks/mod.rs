//! Stack families: how a resolved cluster becomes topology variables and worker classes of the
//! provider's ClusterClasses, and back (adoption), and what else the operator does for a stack.
//! A new stack is one file here implementing [`Stack`], and one arm in [`for_kind`].

mod in_memory;
mod openstack_scs2;

use std::collections::BTreeMap;

use kaas_api::Cluster;
use kaas_api::provider::StackKind;
use kaas_capi::cluster::{
    ClusterTopologyVariables, ClusterTopologyWorkersMachineDeploymentsVariablesOverrides,
};
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;
use serde_json::Value;

pub use in_memory::InMemory;
pub use openstack_scs2::{CREDENTIALS_SECRET, OpenStackScs2};

/// One stack family.
pub trait Stack: Send + Sync {
    /// Machine deployment class of the ClusterClass used for `pool`.
    fn worker_class(&self, pool: &Pool) -> &str;
    /// Cluster-wide topology variables.
    fn cluster_variables(&self, r: &Resolved) -> Vec<ClusterTopologyVariables>;
    /// Per-pool variable overrides.
    fn pool_variables(
        &self,
        r: &Resolved,
        pool: &Pool,
    ) -> Vec<ClusterTopologyWorkersMachineDeploymentsVariablesOverrides>;
    /// The resource (plural, group `infrastructure.cluster.x-k8s.io`) of the stack's worker
    /// machine templates: the cluster-autoscaler reads them when it scales from zero.
    fn machine_template_resource(&self) -> &'static str;
    /// Adoption, the inverse of the variables: writes what an existing topology's `vars` say
    /// into `cluster` (whose control plane, workers and network are already taken from the
    /// topology, workers in its order) and pushes a refusal (`field path: why`) for every variable
    /// this stack does not render. The values are checked afterwards by rendering again.
    fn absorb(&self, vars: Variables<'_>, cluster: &mut Cluster, refusals: &mut Vec<String>);
    /// Whether the operator copies the provider's credentials Secret into each cluster's
    /// provider-side namespace as [`CREDENTIALS_SECRET`] (the variables reference it).
    fn copies_credentials(&self) -> bool {
        false
    }
    /// Whether the stack's machines — and so the workload cluster's nodes — are simulated: addons
    /// are applied to its API server but no pod of theirs ever runs.
    fn simulated(&self) -> bool {
        false
    }
}

/// The variables of an existing topology, for [`Stack::absorb`].
#[derive(Clone, Copy, Debug)]
pub struct Variables<'a> {
    /// Cluster-wide variables by name.
    pub cluster: &'a BTreeMap<String, Value>,
    /// Per MachineDeployment, in the topology's order: its name and its variable overrides.
    pub pools: &'a [(String, BTreeMap<String, Value>)],
}

/// The implementation for a stack kind.
pub fn for_kind(kind: StackKind) -> Box<dyn Stack> {
    match kind {
        StackKind::InMemory => Box::new(InMemory),
        StackKind::OpenStackScs2 => Box::new(OpenStackScs2),
    }
}
