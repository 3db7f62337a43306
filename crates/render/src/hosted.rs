//! Rendering for the hosted backend: a validated SCS `Cluster` becomes one `HostedControlPlane`
//! (`kaas_api::hosted`) in the provider-side namespace. Pure, like the Cluster API rendering: the
//! operator's hosted backend applies what this returns, a runtime realises it.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaas_api::Cluster;
use kaas_api::hosted::{HostedControlPlane, HostedControlPlaneSpec, HostedPool, RUNTIME_LOCAL};
use kaas_api::provider::BackendType;
use kaas_validate::Resolved;
use kaas_validate::offering::Size;

use crate::{RenderError, capi_namespace, name_and_tenant, namespace_labels, object_labels};

/// What the hosted backend writes for one SCS `Cluster`.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedHosted {
    /// The provider-side namespace.
    pub namespace: Namespace,
    /// The control plane and its pools.
    pub control_plane: HostedControlPlane,
}

/// Renders `cluster` for a hosted provider whose runtime is `runtime` (`None`: `local`).
pub fn render_hosted(
    cluster: &Cluster,
    resolved: &Resolved,
    runtime: Option<&str>,
) -> Result<RenderedHosted, RenderError> {
    if resolved.backend != BackendType::Hosted {
        return Err(RenderError::Incomplete("a hosted provider"));
    }
    let (name, tenant) = name_and_tenant(cluster)?;
    let version = resolved
        .version
        .as_ref()
        .ok_or(RenderError::Incomplete("version"))?;
    let ns_name = capi_namespace(&resolved.provider, &tenant);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns_name.clone()),
            labels: Some(namespace_labels(&tenant, &resolved.provider)),
            ..Default::default()
        },
        ..Default::default()
    };
    let pools = resolved
        .pools
        .iter()
        .map(|p| {
            let (cpu, memory) = p
                .offered
                .as_ref()
                .map(|f| (f.cpu, f.memory.clone()))
                .ok_or(RenderError::Incomplete("the flavor's capacity"))?;
            Ok(HostedPool {
                name: p.name.clone(),
                // Autoscaled pools start at their lower bound; nothing scales them yet.
                replicas: match resolved.size_now(p) {
                    Size::Fixed(n) => n,
                    Size::Autoscale { min, .. } => min,
                },
                zones: p.zones.clone(),
                flavor: p.flavor.clone(),
                cpu,
                memory,
                labels: p.labels.clone(),
                taints: p.taints.clone(),
            })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    let control_plane = HostedControlPlane {
        metadata: ObjectMeta {
            labels: Some(object_labels(&name, &tenant, &resolved.provider)),
            name: Some(name),
            namespace: Some(ns_name),
            ..Default::default()
        },
        spec: HostedControlPlaneSpec {
            runtime: runtime.unwrap_or(RUNTIME_LOCAL).to_string(),
            version: version.release().trim_start_matches('v').to_string(),
            replicas: resolved.control_plane.replicas,
            region: resolved.region.clone(),
            service_cidr: resolved.network.services.first().cloned(),
            pod_cidr: resolved.network.pods.first().cloned(),
            oidc: resolved.access.oidc.as_ref().map(|o| o.effective()),
            pools,
            hibernated: resolved.hibernated,
            // Written by the operator's backup controller (its own field manager), never here.
            etcd_operation: None,
        },
        status: None,
    };
    Ok(RenderedHosted {
        namespace,
        control_plane,
    })
}
