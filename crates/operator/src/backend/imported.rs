//! The static (imported) backend: a `Cluster` stands for an existing cluster reached through a
//! kubeconfig Secret in the tenant's namespace. Nothing is provisioned; extensions, status and
//! compliance work as for any other cluster. Proof that non-Cluster-API backends fit the trait.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kaas_api::Cluster;
use kaas_render::capi_namespace;
use kaas_validate::Resolved;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{Backend, client_from_kubeconfig};
use kaas_render::{Objects, RenderError};

use crate::adopt::Location;
use crate::types::{Deletion, Observation, Signal};
use crate::{Context, Error, FIELD_MANAGER};

/// The static backend.
pub struct Imported;

async fn client(ctx: &Context, cluster: &Cluster) -> Result<Result<kube::Client, String>, Error> {
    let Some(import) = cluster.spec.import.as_ref() else {
        return Ok(Err(
            "spec.import.kubeconfigSecretRef is required for a static provider".into(),
        ));
    };
    let r = &import.kubeconfig_secret_ref;
    let key = r.key.clone().unwrap_or_else(|| "value".into());
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let Some(secret) = secrets.get_opt(&r.name).await? else {
        return Ok(Err(format!(
            "spec.import.kubeconfigSecretRef: Secret {:?} not found",
            r.name
        )));
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&key)) else {
        return Ok(Err(format!(
            "spec.import.kubeconfigSecretRef: Secret {:?} has no key {key:?}",
            r.name
        )));
    };
    Ok(client_from_kubeconfig(&bytes.0, ctx.fence.as_ref())
        .await
        .map_err(|e| e.to_string()))
}

#[async_trait]
impl Backend for Imported {
    /// Only the provider-side namespace that holds the addon inventory.
    fn render(
        &self,
        cluster: &Cluster,
        resolved: &Resolved,
        _loc: &Location,
    ) -> Result<Objects, RenderError> {
        let ns = kaas_render::render_imported(cluster, resolved)?;
        Ok(Objects::Imported(Box::new(ns)))
    }

    async fn apply(
        &self,
        ctx: &Context,
        _cluster: &Cluster,
        _resolved: &Resolved,
        objects: Objects,
    ) -> Result<(), Error> {
        let Objects::Imported(ns) = objects else {
            return Err(Error::Other("not an imported cluster's namespace".into()));
        };
        Api::<Namespace>::all(ctx.client.clone())
            .patch(
                &ns.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&ns),
            )
            .await?;
        Ok(())
    }

    async fn observe(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        _resolved: Option<&Resolved>,
        _loc: &Location,
    ) -> Result<Observation, Error> {
        let mut o = Observation {
            exists: true,
            ..Default::default()
        };
        o.infrastructure = Signal::new(
            Some(true),
            "Imported",
            "an existing cluster; nothing is provisioned",
        );
        let client = match client(ctx, cluster).await? {
            Ok(c) => c,
            Err(msg) => {
                o.control_plane = Signal::new(Some(false), "KubeconfigInvalid", msg);
                return Ok(o);
            }
        };
        match tokio::time::timeout(crate::addons::CALL_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(v)) => {
                o.control_plane = Signal::new(
                    Some(true),
                    "Reachable",
                    format!("API server answers ({})", v.git_version),
                );
                o.control_plane_versions = vec![v.git_version];
            }
            Ok(Err(e)) => o.control_plane = Signal::new(Some(false), "Unreachable", e.to_string()),
            Err(_) => {
                o.control_plane = Signal::new(Some(false), "Unreachable", "no answer within 15 s")
            }
        }
        if let Ok(Ok(nodes)) = tokio::time::timeout(
            crate::addons::CALL_TIMEOUT,
            Api::<Node>::all(client).list(&ListParams::default()),
        )
        .await
        {
            let ready = nodes.items.iter().filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            o.workers = Signal::new(
                Some(true),
                "Observed",
                format!("{}/{} nodes ready", ready.count(), nodes.items.len()),
            );
        }
        o.kubeconfig_secret = cluster
            .spec
            .import
            .as_ref()
            .map(|i| i.kubeconfig_secret_ref.name.clone());
        Ok(o)
    }

    async fn delete(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        provider: &str,
    ) -> Result<Deletion, Error> {
        // Remove what kaas installed (bounded, best effort); the cluster itself stays.
        let ns = capi_namespace(provider, &cluster.namespace().unwrap_or_default());
        if let Ok(Ok(workload)) = client(ctx, cluster).await {
            let old = crate::addons::load_inventory(&ctx.client, &ns, &cluster.name_any()).await?;
            let (_, left) = crate::addons::apply(&workload, &old.bundle, &[], &old, false).await;
            crate::addons::save_inventory(&ctx.client, &ns, &cluster.name_any(), &left).await?;
        }
        Ok(Deletion::Done)
    }

    async fn workload(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        _resolved: &Resolved,
        _loc: &Location,
    ) -> Result<Option<kube::Client>, Error> {
        Ok(client(ctx, cluster).await?.ok())
    }
}
