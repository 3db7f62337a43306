//! The cluster-autoscaler stage of the Cluster API backend: after the Cluster API `Cluster` is
//! applied, the cluster's autoscaler ([`kaas_render::autoscaler`]: ServiceAccount, RoleBinding of
//! the autoscaler role, Deployment) is server-side applied into its provider-side namespace while
//! a pool autoscales, owned by the Cluster API `Cluster`, and removed when none does any more or
//! the cluster is deleted. A write the API server refuses is returned as it is, so the
//! controller reports it like any refusal of the backend (`SpecAccepted=False`, an event).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
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

/// Keeps the autoscaler of the Cluster API cluster `capi` (as applied, with its uid) as
/// `cluster` and `resolved` want it: applied while a pool autoscales, removed otherwise.
pub(crate) async fn keep(
    ctx: &Context,
    cluster: &Cluster,
    resolved: &Resolved,
    capi: &CapiCluster,
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
    if ctx.written.fresh(&key, hash) {
        return Ok(());
    }
    let result = match wanted {
        Some(a) => apply(ctx, &ns, owned_by(a, capi)).await,
        None => remove(ctx, &ns, &capi_name).await,
    };
    match result {
        Ok(()) => ctx.written.record(key, hash),
        Err(_) => ctx.written.forget(&key),
    }
    result
}

/// The autoscaler's objects, owned by the Cluster API `Cluster` (garbage-collected with it,
/// should the explicit removal ever be skipped).
fn owned_by(mut a: Autoscaler, capi: &CapiCluster) -> Autoscaler {
    let owner = capi.controller_owner_ref(&()).map(|o| OwnerReference {
        controller: Some(false),
        ..o
    });
    for meta in [
        &mut a.service_account.metadata,
        &mut a.role_binding.metadata,
        &mut a.deployment.metadata,
    ] {
        meta.owner_references = owner.clone().map(|o| vec![o]);
    }
    a
}

async fn apply(ctx: &Context, ns: &str, a: Autoscaler) -> Result<(), Error> {
    apply_one(ctx, ns, &a.service_account).await?;
    apply_one(ctx, ns, &a.role_binding).await?;
    apply_one(ctx, ns, &a.deployment).await
}

async fn apply_one<K>(ctx: &Context, ns: &str, obj: &K) -> Result<(), Error>
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
        .await?;
    Ok(())
}

/// Removes the autoscaler of Cluster API cluster `capi_name` in `ns`, the Deployment first (so
/// it stops scaling before it loses its rights); what is already gone is fine.
pub(crate) async fn remove(ctx: &Context, ns: &str, capi_name: &str) -> Result<(), Error> {
    let name = kaas_render::autoscaler::name(capi_name);
    delete::<Deployment>(ctx, ns, &name).await?;
    delete::<RoleBinding>(ctx, ns, &name).await?;
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
