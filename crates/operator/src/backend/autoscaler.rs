//! The cluster-autoscaler stage of the Cluster API backend: after the Cluster API `Cluster` is
//! applied, the cluster's autoscaler ([`kaas_render::autoscaler`]: ServiceAccount, RoleBinding of
//! the autoscaler role, Deployment) is server-side applied into its provider-side namespace while
//! a pool autoscales, and removed when none does any more or the cluster is deleted. A write the API server refuses is returned as it is, so the
//! controller reports it like any refusal of the backend (`SpecAccepted=False`, an event).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kaas_api::Cluster;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_render::autoscaler::{Autoscaler, Placement, render_autoscaler};
use kaas_validate::Resolved;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::capi::kubeconfig_secret_name;
use crate::{Context, Error, FIELD_MANAGER};

/// How long an absent autoscaler is remembered: the settled clusters' full-pass period.
const ABSENT: std::time::Duration = crate::settled::RESYNC;

/// Keeps the autoscaler of the Cluster API cluster `capi` (as applied, with its uid) as
/// `cluster` and `resolved` want it: applied while a pool autoscales, removed otherwise
/// (`created`: the apply just created `capi`, so there is none to remove — it would be owned by
/// `capi`; nothing is recorded, the next reconcile checks).
pub(crate) async fn keep(
    ctx: &Context,
    cluster: &Cluster,
    resolved: &Resolved,
    capi: &CapiCluster,
    created: bool,
) -> Result<(), Error> {
    let ns = capi.namespace().unwrap_or_default();
    let capi_name = capi.name_any();
    let secret = kubeconfig_secret_name(&capi_name);
    let at = Placement {
        namespace: &ns,
        capi_cluster: &capi_name,
        kubeconfig_secret: &secret,
    };
    let wanted = render_autoscaler(cluster, resolved, &at)?;
    let key = format!("Autoscaler/{ns}/{capi_name}");
    let hash = crate::Written::hash_of(&wanted.as_ref().map(|a| &a.deployment));
    // An autoscaler kaas removed or never created is remembered absent for longer than a written
    // one is trusted: only kaas creates it, right here, so it stays absent until the cluster wants
    // one (another hash). Without this, every cluster that never autoscales cost a GET of the
    // ServiceAccount a minute.
    let trusted = if wanted.is_some() {
        ctx.written.fresh(&key, hash)
    } else {
        ctx.written.fresh_for(&key, hash, ABSENT)
    };
    if trusted {
        return Ok(());
    }
    if created && wanted.is_none() {
        return Ok(());
    }
    let result = match wanted {
        Some(a) => apply(ctx, &ns, a, capi).await,
        None => remove(ctx, &ns, &capi_name).await,
    };
    match result {
        Ok(()) => ctx.written.record(key, hash),
        Err(_) => ctx.written.forget(&key),
    }
    result
}

/// The autoscaler's ServiceAccount and Deployment are owned by the Cluster API `Cluster`
/// (garbage-collected with it, should the explicit removal ever be skipped); its RoleBinding by
/// the ServiceAccount, so it goes with it (the operator has no right to delete RoleBindings).
async fn apply(
    ctx: &Context,
    ns: &str,
    mut a: Autoscaler,
    capi: &CapiCluster,
) -> Result<(), Error> {
    let by_cluster = capi.controller_owner_ref(&()).map(|o| OwnerReference {
        controller: Some(false),
        ..o
    });
    a.service_account.metadata.owner_references = by_cluster.clone().map(|o| vec![o]);
    a.deployment.metadata.owner_references = by_cluster.map(|o| vec![o]);
    let sa = apply_one(ctx, ns, &a.service_account).await?;
    a.role_binding.metadata.owner_references = sa.controller_owner_ref(&()).map(|o| {
        vec![OwnerReference {
            controller: Some(false),
            ..o
        }]
    });
    apply_one(ctx, ns, &a.role_binding).await?;
    apply_one(ctx, ns, &a.deployment).await?;
    Ok(())
}

async fn apply_one<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    Api::<K>::namespaced(ctx.client.clone(), ns)
        .patch(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(Error::from)
}

/// Removes the autoscaler of Cluster API cluster `capi_name` in `ns`: the Deployment first (so
/// it stops scaling before it loses its rights), then the ServiceAccount — its RoleBinding, owned
/// by it, goes with it (garbage collector) and grants nothing to a ServiceAccount that is gone.
/// What is already gone is fine.
pub(crate) async fn remove(ctx: &Context, ns: &str, capi_name: &str) -> Result<(), Error> {
    let name = kaas_render::autoscaler::name(capi_name);
    // The ServiceAccount is written first and deleted last: without it there is nothing to
    // remove (one read for the many clusters that never autoscaled).
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    if sas.get_opt(&name).await?.is_none() {
        return Ok(());
    }
    delete::<Deployment>(ctx, ns, &name).await?;
    delete::<ServiceAccount>(ctx, ns, &name).await?;
    ctx.written.forget(&format!("Autoscaler/{ns}/{capi_name}"));
    Ok(())
}

async fn delete<K>(ctx: &Context, ns: &str, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(ctx.client.clone(), ns)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ConfigMap the cluster-autoscaler publishes its status in (workload cluster, `kube-system`).
pub const STATUS_CONFIGMAP: &str = "cluster-autoscaler-status";

/// Fills in what the cluster-autoscaler reports for each of `pools` (by their MachineDeployments
/// in `ns`), read from its status ConfigMap in the workload cluster reached by the kubeconfig
/// Secret `kubeconfig` in `ns`. While the workload cluster cannot be reached or the autoscaler
/// has published nothing (yet), the pools keep no report: the status says only what is known.
pub(crate) async fn observe(
    ctx: &Context,
    ns: &str,
    kubeconfig: &str,
    pools: &mut [crate::types::PoolObservation],
) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let text = async {
        let Some(workload) = super::workload_from_secret(ctx, ns, kubeconfig).await? else {
            return Ok::<_, Error>(None);
        };
        let cm = Api::<ConfigMap>::namespaced(workload, "kube-system")
            .get_opt(STATUS_CONFIGMAP)
            .await?;
        Ok(cm.and_then(|c| c.data).and_then(|mut d| d.remove("status")))
    }
    .await;
    let text = match text {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(namespace = %ns, error = %e, "cannot read the cluster-autoscaler's status");
            return;
        }
    };
    match parse_status(&text) {
        Ok(groups) => {
            for pool in pools.iter_mut() {
                pool.autoscaler = pool_report(ns, &pool.machine_deployments, &groups);
            }
        }
        Err(e) => {
            tracing::warn!(namespace = %ns, error = %e, "the cluster-autoscaler's status is not what kaas reads")
        }
    }
}

/// One node group of the cluster-autoscaler's status (the fields kaas reports).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupStatus {
    /// `MachineDeployment/<namespace>/<name>` for the Cluster API provider.
    pub name: String,
    /// Health.
    #[serde(default)]
    pub health: Health,
    /// Scale-up state.
    #[serde(default)]
    pub scale_up: Activity,
    /// Scale-down state.
    #[serde(default)]
    pub scale_down: Activity,
}

/// Health of a node group.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `Healthy`, `Unhealthy`.
    #[serde(default)]
    pub status: Option<String>,
    /// The size the autoscaler asks for.
    #[serde(default)]
    pub cloud_provider_target: Option<i32>,
}

/// Scale-up or scale-down state of a node group.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// e.g. `NoActivity`, `InProgress`, `Backoff`, `NoCandidates`, `CandidatesPresent`.
    #[serde(default)]
    pub status: Option<String>,
    /// Why it backs off.
    #[serde(default)]
    pub backoff_info: Option<BackoffInfo>,
    /// When the state last changed.
    #[serde(default)]
    pub last_transition_time: Option<String>,
}

/// Why a scale-up backs off.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackoffInfo {
    /// e.g. `OutOfResource`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// The provider's message.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// The node groups of the status the cluster-autoscaler publishes (the YAML document of its
/// status ConfigMap's `status` key, cluster-autoscaler 1.30 and later). Pure.
pub fn parse_status(text: &str) -> Result<Vec<NodeGroupStatus>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        autoscaler_status: Option<String>,
        #[serde(default)]
        node_groups: Vec<NodeGroupStatus>,
    }
    let doc: Doc = serde_yaml::from_str(text).map_err(|e| format!("not the YAML status: {e}"))?;
    if doc.autoscaler_status.is_none() {
        return Err("no autoscalerStatus (the text format of releases before 1.30?)".into());
    }
    Ok(doc.node_groups)
}

/// The report of a pool with MachineDeployments `mds` in `ns`: targets summed, the worst health,
/// the most telling scale-up state (a back-off over activity over none), the latest change.
/// `None` when the autoscaler lists none of them.
pub fn pool_report(
    ns: &str,
    mds: &[String],
    groups: &[NodeGroupStatus],
) -> Option<kaas_api::cluster::PoolAutoscalerStatus> {
    let mine: Vec<&NodeGroupStatus> = groups
        .iter()
        .filter(|g| {
            mds.iter()
                .any(|md| g.name == format!("MachineDeployment/{ns}/{md}"))
        })
        .collect();
    if mine.is_empty() {
        return None;
    }
    let rank = |s: &Option<String>| match s.as_deref() {
        Some("Backoff") => 3,
        Some("InProgress") => 2,
        Some("CandidatesPresent") => 2,
        Some(_) => 1,
        None => 0,
    };
    let most = |pick: fn(&NodeGroupStatus) -> &Activity| {
        mine.iter()
            .map(|g| pick(g).status.clone())
            .max_by_key(|s| rank(s))
            .flatten()
    };
    let cannot_scale = mine
        .iter()
        .filter_map(|g| g.scale_up.backoff_info.as_ref())
        .map(|b| match (&b.error_code, &b.error_message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (None, None) => String::new(),
        })
        .find(|m| !m.is_empty());
    let last_activity = mine
        .iter()
        .flat_map(|g| [&g.scale_up, &g.scale_down])
        .filter_map(|a| a.last_transition_time.clone())
        .max();
    let health = if mine
        .iter()
        .any(|g| g.health.status.as_deref() == Some("Unhealthy"))
    {
        Some("Unhealthy".to_string())
    } else {
        mine.iter().find_map(|g| g.health.status.clone())
    };
    let targets: Vec<i32> = mine
        .iter()
        .filter_map(|g| g.health.cloud_provider_target)
        .collect();
    Some(kaas_api::cluster::PoolAutoscalerStatus {
        // Numbers from the workload cluster (the tenant's to write): never an overflow.
        target: (!targets.is_empty())
            .then(|| targets.iter().fold(0i32, |a, t| a.saturating_add(*t))),
        health,
        scale_up: most(|g| &g.scale_up),
        scale_down: most(|g| &g.scale_down),
        last_activity,
        cannot_scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"
time: 2026-11-30 03:50:00.000000 +0000 UTC
autoscalerStatus: Running
clusterWide:
  health: {status: Healthy}
nodeGroups:
- name: MachineDeployment/ns/c-w-a-1x2y3
  health: {status: Healthy, nodeCounts: {registered: {total: 1, ready: 1}}, cloudProviderTarget: 2, minSize: 0, maxSize: 3}
  scaleUp:
    status: Backoff
    backoffInfo: {errorCode: OutOfResource, errorMessage: quota exceeded}
    lastTransitionTime: "2026-11-30T03:40:00Z"
  scaleDown: {status: NoCandidates, lastTransitionTime: "2026-11-30T03:30:00Z"}
- name: MachineDeployment/ns/c-w-b-4z5q6
  health: {status: Healthy, cloudProviderTarget: 1, minSize: 0, maxSize: 3}
  scaleUp: {status: NoActivity, lastTransitionTime: "2026-11-30T03:45:00Z"}
  scaleDown: {status: CandidatesPresent}
- name: MachineDeployment/other/c-w-a-1x2y3
  health: {status: Unhealthy, cloudProviderTarget: 9}
"#;

    #[test]
    fn a_pool_report_sums_its_machine_deployments_and_keeps_the_most_telling_state() {
        let groups = parse_status(STATUS).unwrap();
        assert_eq!(groups.len(), 3);
        let mds = ["c-w-a-1x2y3".to_string(), "c-w-b-4z5q6".to_string()];
        let r = pool_report("ns", &mds, &groups).unwrap();
        assert_eq!(
            r.target,
            Some(3),
            "the other namespace's group does not count"
        );
        assert_eq!(r.health.as_deref(), Some("Healthy"));
        assert_eq!(r.scale_up.as_deref(), Some("Backoff"));
        assert_eq!(r.scale_down.as_deref(), Some("CandidatesPresent"));
        assert_eq!(r.last_activity.as_deref(), Some("2026-11-30T03:45:00Z"));
        assert_eq!(
            r.cannot_scale.as_deref(),
            Some("OutOfResource: quota exceeded")
        );
        assert_eq!(pool_report("ns", &["x".into()], &groups), None);
    }

    #[test]
    fn the_text_status_of_old_releases_is_told_apart() {
        let old = "Cluster-autoscaler status at 2020-01-01 00:00:00 +0000 UTC:\nCluster-wide:\n  Health: Healthy";
        assert!(parse_status(old).is_err());
    }
}
