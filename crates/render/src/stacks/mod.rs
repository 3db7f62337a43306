//! Stack families: how a resolved cluster becomes topology variables and worker classes of the
//! provider's ClusterClasses.

mod in_memory;
mod openstack_scs2;

use kaas_api::provider::StackKind;
use kaas_capi::cluster::{
    ClusterTopologyVariables, ClusterTopologyWorkersMachineDeploymentsVariablesOverrides,
};
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;

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
}

/// The implementation for a stack kind.
pub fn for_kind(kind: StackKind) -> Box<dyn Stack> {
    match kind {
        StackKind::InMemory => Box::new(InMemory),
        StackKind::OpenStackScs2 => Box::new(OpenStackScs2),
    }
}
