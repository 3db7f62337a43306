//! The hosted backend: the control plane of a cluster runs on the management side. The backend
//! writes one `HostedControlPlane` (rendered by `kaas_render::hosted`) into the provider-side
//! namespace, reads the status a runtime writes there, and copies the runtime's kubeconfig to
//! the tenant. It never starts anything itself: a runtime (`kaas hosted-runtime`, local
//! processes; later pods in a seed cluster) does, so restarting the operator never touches a
//! running control plane (`docs/hosted.md`).

use async_trait::async_trait;
use kaas_api::Cluster;
use kaas_api::hosted::{HostedControlPlane, conditions as hc};
use kaas_render::capi_namespace;
use kaas_render::hosted::render_hosted;
use kaas_validate::Resolved;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::Backend;
use super::capi::{keep_tenant_viewer, kubeconfig_secret_name};
use kaas_render::{Objects, RenderError};

use crate::adopt::Location;
use crate::types::{Deletion, Observation, PoolObservation, Signal};
use crate::{Context, Error, FIELD_MANAGER};

/// The hosted backend; `runtime` comes from the Provider (`backend.hosted.runtime`).
pub struct Hosted;

/// A condition of the runtime's status as a [`Signal`]; a condition written for an older
/// generation is not trusted.
fn signal(hcp: &HostedControlPlane, t: &str, missing: &str) -> Signal {
    let generation = hcp.metadata.generation;
    let cond = hcp
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t));
    match cond {
        Some(c) if c.observed_generation >= generation => Signal::new(
            match c.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            },
            if c.reason.is_empty() {
                "Unknown"
            } else {
                &c.reason
            },
            c.message.clone(),
        ),
        Some(c) => Signal::new(
            None,
            "Pending",
            format!(
                "{missing} (the runtime reports generation {:?})",
                c.observed_generation
            ),
        ),
        None => Signal::new(None, "Pending", missing),
    }
}

/// What the runtime reports, as an [`Observation`]. Pure.
pub fn observe_hosted(hcp: &HostedControlPlane) -> Observation {
    let st = hcp.status.clone().unwrap_or_default();
    let mut o = Observation {
        exists: true,
        infrastructure: Signal::new(
            Some(true),
            "Hosted",
            "the control plane is hosted by the provider; there is no infrastructure to provision",
        ),
        control_plane: signal(
            hcp,
            hc::CONTROL_PLANE_AVAILABLE,
            "waiting for the runtime to start the control plane",
        ),
        workers: signal(hcp, hc::WORKERS_AVAILABLE, "waiting for worker nodes"),
        endpoint: st.endpoint.clone(),
        ..Default::default()
    };
    o.control_plane_versions = st.version.iter().cloned().collect();
    for p in &st.pools {
        for v in &p.versions {
            if !o.worker_versions.contains(v) {
                o.worker_versions.push(v.clone());
            }
        }
    }
    o.pools = hcp
        .spec
        .pools
        .iter()
        .map(|want| {
            let seen = st.pools.iter().find(|p| p.name == want.name);
            PoolObservation {
                name: want.name.clone(),
                desired: want.replicas,
                ready: seen.map_or(0, |p| p.ready),
                current: seen.map_or(0, |p| p.current),
                versions: seen.map(|p| p.versions.clone()).unwrap_or_default(),
                ..Default::default()
            }
        })
        .collect();
    if st.observed_generation < hcp.metadata.generation {
        o.rolling_out = Some("the runtime has not applied the latest spec yet".into());
    }
    // Hibernation: the runtime stopped the control plane and every node, data kept.
    let hibernated = hcp.spec.hibernated
        && o.rolling_out.is_none()
        && st.phase.as_deref() == Some(kaas_api::hosted::PHASE_HIBERNATED);
    if hibernated && o.pools.iter().all(|p| p.current == 0) {
        o.at_rest = Some(
            "every worker pool is at 0 nodes and the control plane is stopped with its data kept"
                .into(),
        );
        return o;
    }
    let ready = hcp
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == hc::READY));
    if let Some(r) = ready.filter(|r| r.status != "True") {
        // Only what the runtime cannot do without a change of the spec or the provider is a
        // failure; a start that failed is retried by the runtime and shows as progress.
        if r.reason == "VersionNotAvailable" {
            o.failure = Some(format!(
                "the control-plane runtime cannot run this version: {}",
                r.message
            ));
        } else {
            o.rolling_out
                .get_or_insert_with(|| format!("{}: {}", r.reason, r.message));
        }
    }
    if o.workers.ok == Some(true)
        && let Some(p) = o.pools.iter().find(|p| p.ready != p.desired)
    {
        o.workers = Signal::new(
            Some(false),
            "Scaling",
            format!("pool {}: {}/{} nodes ready", p.name, p.ready, p.desired),
        );
    }
    o
}

#[async_trait]
impl Backend for Hosted {
    fn render(
        &self,
        cluster: &Cluster,
        resolved: &Resolved,
        _loc: &Location,
    ) -> Result<Objects, RenderError> {
        let rendered = render_hosted(cluster, resolved, resolved.hosted_runtime.as_deref())?;
        Ok(Objects::Hosted(Box::new(rendered)))
    }

    async fn apply(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        _resolved: &Resolved,
        objects: Objects,
    ) -> Result<(), Error> {
        let Objects::Hosted(rendered) = objects else {
            return Err(Error::Other("not a hosted control plane".into()));
        };
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let ns = rendered.namespace.name_any();
        let hcps = Api::<HostedControlPlane>::namespaced(ctx.client.clone(), &ns);
        super::into_namespace(ctx, &rendered.namespace, || async {
            Ok(hcps
                .patch(
                    &rendered.control_plane.name_any(),
                    &pp,
                    &Patch::Apply(&rendered.control_plane),
                )
                .await?)
        })
        .await?;
        keep_tenant_viewer(ctx, cluster, &ns).await;
        Ok(())
    }

    async fn observe(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        _resolved: Option<&Resolved>,
        loc: &Location,
    ) -> Result<Observation, Error> {
        let ns = &loc.namespace;
        let api: Api<HostedControlPlane> = Api::namespaced(ctx.client.clone(), ns);
        let Some(hcp) = api.get_opt(&cluster.name_any()).await? else {
            return Ok(Observation::default());
        };
        let mut o = observe_hosted(&hcp);
        // The runtime names its Secret in the status; kaas copies only the one of the fixed name.
        if hcp
            .status
            .as_ref()
            .and_then(|s| s.kubeconfig_secret.as_deref())
            == Some(kubeconfig_secret_name(&cluster.name_any()).as_str())
        {
            o.kubeconfig_secret = super::copy_kubeconfig(
                ctx,
                cluster,
                ns,
                &kubeconfig_secret_name(&cluster.name_any()),
            )
            .await?;
        }
        Ok(o)
    }

    async fn delete(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        provider: &str,
    ) -> Result<Deletion, Error> {
        let ns = capi_namespace(provider, &cluster.namespace().unwrap_or_default());
        let name = cluster.name_any();
        let api: Api<HostedControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
        let Some(hcp) = api.get_opt(&name).await? else {
            return Ok(Deletion::Done);
        };
        if hcp.meta().deletion_timestamp.is_none() {
            api.delete(&name, &DeleteParams::background()).await?;
        }
        let phase = hcp
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "unknown".into());
        Ok(Deletion::Waiting(format!(
            "waiting for the control-plane runtime ({}) to stop the control plane and remove its data (phase {phase})",
            hcp.spec.runtime
        )))
    }

    async fn workload(
        &self,
        ctx: &Context,
        _cluster: &Cluster,
        _resolved: &Resolved,
        loc: &Location,
    ) -> Result<Option<kube::Client>, Error> {
        super::workload_from_secret(ctx, &loc.namespace, &kubeconfig_secret_name(&loc.name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use kaas_api::hosted::{HostedControlPlaneStatus, HostedPool, HostedPoolStatus};

    fn cond(t: &str, status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{t} {reason}"),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(generation),
        }
    }

    fn hcp(generation: i64, status: HostedControlPlaneStatus) -> HostedControlPlane {
        let mut h = HostedControlPlane::new(
            "c1",
            kaas_api::HostedControlPlaneSpec {
                runtime: "local".into(),
                version: "1.35.4".into(),
                replicas: 1,
                region: "local".into(),
                pools: vec![HostedPool {
                    name: "default".into(),
                    replicas: 3,
                    flavor: "small".into(),
                    cpu: 2,
                    memory: "4Gi".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        h.metadata.generation = Some(generation);
        h.status = Some(status);
        h
    }

    #[test]
    fn a_ready_control_plane_with_its_nodes_is_observed_available() {
        let o = observe_hosted(&hcp(
            2,
            HostedControlPlaneStatus {
                observed_generation: Some(2),
                conditions: vec![
                    cond("Ready", "True", "Ready", 2),
                    cond("ControlPlaneAvailable", "True", "Available", 2),
                    cond("WorkersAvailable", "True", "Available", 2),
                ],
                endpoint: Some("https://127.0.0.1:30001".into()),
                version: Some("v1.35.4".into()),
                pools: vec![HostedPoolStatus {
                    name: "default".into(),
                    desired: 3,
                    current: 3,
                    ready: 3,
                    versions: vec!["v1.35.4".into()],
                }],
                ..Default::default()
            },
        ));
        assert_eq!(o.control_plane.ok, Some(true));
        assert_eq!(o.workers.ok, Some(true));
        assert_eq!(o.control_plane_versions, vec!["v1.35.4".to_string()]);
        assert_eq!(o.pools[0].ready, 3);
        assert_eq!(o.rolling_out, None);
        assert_eq!(o.failure, None);
    }

    #[test]
    fn a_status_of_an_older_generation_is_not_trusted() {
        let o = observe_hosted(&hcp(
            3,
            HostedControlPlaneStatus {
                observed_generation: Some(2),
                conditions: vec![
                    cond("Ready", "True", "Ready", 2),
                    cond("ControlPlaneAvailable", "True", "Available", 2),
                    cond("WorkersAvailable", "True", "Available", 2),
                ],
                ..Default::default()
            },
        ));
        assert_eq!(o.control_plane.ok, None);
        assert!(o.rolling_out.is_some());
    }

    #[test]
    fn a_failed_start_is_progress_the_runtime_retries_not_a_failure() {
        let o = observe_hosted(&hcp(
            1,
            HostedControlPlaneStatus {
                observed_generation: Some(1),
                conditions: vec![cond("Ready", "False", "StartFailed", 1)],
                phase: Some("Failed".into()),
                ..Default::default()
            },
        ));
        assert_eq!(o.failure, None);
        assert!(
            o.rolling_out
                .as_deref()
                .is_some_and(|r| r.starts_with("StartFailed")),
            "{o:?}"
        );
    }

    #[test]
    fn a_version_the_runtime_cannot_run_is_a_failure_with_its_message() {
        let o = observe_hosted(&hcp(
            1,
            HostedControlPlaneStatus {
                observed_generation: Some(1),
                conditions: vec![cond("Ready", "False", "VersionNotAvailable", 1)],
                phase: Some("Failed".into()),
                ..Default::default()
            },
        ));
        assert!(
            o.failure
                .as_deref()
                .is_some_and(|f| f.contains("VersionNotAvailable")),
            "{o:?}"
        );
    }

    #[test]
    fn workers_short_of_their_size_are_scaling() {
        let o = observe_hosted(&hcp(
            1,
            HostedControlPlaneStatus {
                observed_generation: Some(1),
                conditions: vec![cond("WorkersAvailable", "True", "Available", 1)],
                pools: vec![HostedPoolStatus {
                    name: "default".into(),
                    desired: 3,
                    current: 1,
                    ready: 1,
                    versions: vec![],
                }],
                ..Default::default()
            },
        ));
        assert_eq!(o.workers.ok, Some(false));
        assert_eq!(o.workers.reason, "Scaling");
    }
}
