//! The Cluster API Docker provider's in-memory ClusterClass (`in-memory`): one worker class
//! `default-worker`, no variables. Machines are simulated, so flavors and zones only show up as
//! names (failure domains) — they decide nothing about fake machines.

use kaas_api::Cluster;
use kaas_capi::cluster::{
    ClusterTopologyVariables, ClusterTopologyWorkersMachineDeploymentsVariablesOverrides,
};
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;

use super::{Stack, Variables};

/// The in-memory development stack.
pub struct InMemory;

impl Stack for InMemory {
    fn worker_class(&self, _pool: &Pool) -> &str {
        "default-worker"
    }

    fn cluster_variables(&self, _r: &Resolved) -> Vec<ClusterTopologyVariables> {
        Vec::new()
    }

    fn pool_variables(
        &self,
        _r: &Resolved,
        _pool: &Pool,
    ) -> Vec<ClusterTopologyWorkersMachineDeploymentsVariablesOverrides> {
        Vec::new()
    }

    fn machine_template_resource(&self) -> &'static str {
        "devmachinetemplates"
    }

    fn absorb(&self, vars: Variables<'_>, _cluster: &mut Cluster, refusals: &mut Vec<String>) {
        for name in vars.cluster.keys() {
            refusals.push(format!(
                "spec.topology.variables[{name}]: the in-memory stack renders no variables"
            ));
        }
        for (md, overrides) in vars.pools {
            for name in overrides.keys() {
                refusals.push(format!(
                    "spec.topology.workers.machineDeployments[{md}].variables.overrides[{name}]: the in-memory stack renders no variables"
                ));
            }
        }
    }

    fn simulated(&self) -> bool {
        true
    }
}
