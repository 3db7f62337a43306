//! SCS cluster stack `openstack/scs2` (ClusterClasses `openstack-scs2-<minor>-<release>`): one
//! worker class `default-worker`; SCS-API fields become the stack's variables. Type-2 parameters
//! of the SCS parameter discussion (image, MTU, DNS, server groups, external network) are left to
//! the stack's defaults or the provider — never asked from the tenant.

use kaas_capi::cluster::{
    ClusterTopologyVariables, ClusterTopologyWorkersMachineDeploymentsVariablesOverrides,
};
use kaas_validate::Resolved;
use kaas_validate::offering::Pool;
use serde_json::json;

use super::Stack;
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
}
