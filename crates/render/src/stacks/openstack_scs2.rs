//! SCS cluster stack `openstack/scs2` (ClusterClasses `openstack-scs2-<minor>-<release>`): one
//! worker class `default-worker`; SCS-API fields become the stack's variables. Type-2 parameters
//! of the SCS parameter discussion (image, MTU, DNS, server groups, external network) are left to
//! the stack's defaults or the provider — never asked from the tenant.

use kaas_api::Cluster;
use kaas_api::cluster::{AccessSpec, OidcSpec};
use kaas_capi::cluster::{
    ClusterTopologyVariables, ClusterTopologyWorkersMachineDeploymentsVariablesOverrides,
};
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;
use serde_json::{Value, json};

use super::{Stack, Variables};
use crate::var;

/// Name of the Secret with the provider's `clouds.yaml` in the provider-side Cluster API
/// namespace; the operator copies it there from the provider's `credentialsRef`.
pub const CREDENTIALS_SECRET: &str = "kaas-provider-credentials";

/// The OpenStack SCS stack.
pub struct OpenStackScs2;

impl Stack for OpenStackScs2 {
    fn worker_class(&self, _pool: &Pool) -> &str {
        "default-worker"
    }

    fn cluster_variables(&self, r: &Resolved) -> Vec<ClusterTopologyVariables> {
        let mut v = vec![
            var("controlPlaneFlavor", json!(r.control_plane.flavor)),
            var(
                "identityRef",
                json!({"name": CREDENTIALS_SECRET, "cloudName": "openstack"}),
            ),
        ];
        if let Some(first) = r.pools.first() {
            v.push(var("workerFlavor", json!(first.flavor)));
        }
        if !r.control_plane.zones.is_empty() {
            v.push(var(
                "controlPlaneAvailabilityZones",
                json!(r.control_plane.zones),
            ));
        }
        if let Some(node_cidr) = r.network.nodes.first() {
            v.push(var("nodeCIDR", json!(node_cidr)));
        }
        if let Some(oidc) = &r.access.oidc {
            let mut cfg = json!({"clientID": oidc.client_id, "issuerURL": oidc.issuer_url});
            for (k, val) in [
                ("usernameClaim", &oidc.username_claim),
                ("usernamePrefix", &oidc.username_prefix),
                ("groupsClaim", &oidc.groups_claim),
                ("groupsPrefix", &oidc.groups_prefix),
            ] {
                if let Some(val) = val {
                    cfg[k] = json!(val);
                }
            }
            v.push(var("oidcConfig", cfg));
        }
        if let Some(cidrs) = r
            .access
            .api_server_allowed_cidrs
            .as_ref()
            .filter(|c| !c.is_empty())
        {
            // Only the Amphora load balancer can filter source addresses.
            v.push(var("apiServerLoadBalancer", json!("octavia-amphora")));
            v.push(var(
                "apiServerLoadBalancerOctaviaAmphoraAllowedCIDRs",
                json!(cidrs),
            ));
        }
        v
    }

    fn pool_variables(
        &self,
        _r: &Resolved,
        pool: &Pool,
    ) -> Vec<ClusterTopologyWorkersMachineDeploymentsVariablesOverrides> {
        vec![ClusterTopologyWorkersMachineDeploymentsVariablesOverrides {
            name: "workerFlavor".into(),
            value: json!(pool.flavor),
        }]
    }

    fn machine_template_resource(&self) -> &'static str {
        "openstackmachinetemplates"
    }

    fn absorb(&self, vars: Variables<'_>, cluster: &mut Cluster, refusals: &mut Vec<String>) {
        let s = |v: &Value| v.as_str().map(str::to_string);
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        let mut access = AccessSpec::default();
        let mut lb = None;
        for (name, value) in vars.cluster {
            let path = format!("spec.topology.variables[{name}]");
            let bad = |refusals: &mut Vec<String>| {
                refusals.push(format!("{path}: unexpected value {value}"))
            };
            match name.as_str() {
                "controlPlaneFlavor" => match s(value) {
                    Some(f) => {
                        cluster
                            .spec
                            .control_plane
                            .get_or_insert_with(Default::default)
                            .flavor = Some(f)
                    }
                    None => bad(refusals),
                },
                "controlPlaneAvailabilityZones" => match strings(value) {
                    Some(z) => {
                        cluster
                            .spec
                            .control_plane
                            .get_or_insert_with(Default::default)
                            .zones = Some(z)
                    }
                    None => bad(refusals),
                },
                "nodeCIDR" => match s(value) {
                    Some(c) => {
                        cluster
                            .spec
                            .network
                            .get_or_insert_with(Default::default)
                            .nodes = Some(vec![c])
                    }
                    None => bad(refusals),
                },
                // Checked by the comparison: it must be the credentials Secret kaas copies.
                "identityRef" | "workerFlavor" => {}
                "oidcConfig" => match serde_json::from_value::<OidcSpec>(value.clone()) {
                    Ok(o) => access.oidc = Some(o),
                    Err(e) => refusals.push(format!("{path}: {e}")),
                },
                "apiServerLoadBalancer" => lb = s(value),
                "apiServerLoadBalancerOctaviaAmphoraAllowedCIDRs" => match strings(value) {
                    Some(c) => access.api_server_allowed_cidrs = Some(c),
                    None => bad(refusals),
                },
                _ => refusals.push(format!(
                    "{path}: not a variable kaas renders for the openstack-scs2 stack"
                )),
            }
        }
        if lb.is_some() && access.api_server_allowed_cidrs.is_none() {
            refusals.push(
                "spec.topology.variables[apiServerLoadBalancer]: kaas sets it only with apiServerLoadBalancerOctaviaAmphoraAllowedCIDRs"
                    .into(),
            );
        }
        if access != AccessSpec::default() {
            cluster.spec.access = Some(access);
        }
        // Pool flavors: the MachineDeployment's override, else the cluster-wide workerFlavor.
        let default_flavor = vars.cluster.get("workerFlavor").and_then(s);
        for ((md, o), pool) in vars
            .pools
            .iter()
            .zip(cluster.spec.workers.iter_mut().flatten())
        {
            for name in o.keys().filter(|n| *n != "workerFlavor") {
                refusals.push(format!(
                    "spec.topology.workers.machineDeployments[{md}].variables.overrides[{name}]: not a variable kaas renders per pool"
                ));
            }
            pool.flavor = o.get("workerFlavor").and_then(s).or(default_flavor.clone());
        }
    }

    fn copies_credentials(&self) -> bool {
        true
    }
}
