//! Backends realise SCS clusters. The controller knows only this trait; the Cluster API backend
//! and the static (imported) backend sit behind it.

mod autoscaler;
pub mod capi;
pub mod hosted;
pub mod imported;

use async_trait::async_trait;
use kaas_api::Cluster;
use kaas_validate::Resolved;

use kaas_render::{Objects, RenderError};

use crate::adopt::Location;
use crate::types::{Deletion, Observation};
use crate::{Context, Error};

/// One way of realising clusters.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Renders what realises `cluster` at `loc` (pure).
    fn render(
        &self,
        cluster: &Cluster,
        resolved: &Resolved,
        loc: &Location,
    ) -> Result<Objects, RenderError>;
    /// Creates or updates the rendered `objects` (idempotent, server-side apply), and what
    /// follows from them (an autoscaler, copied credentials, the tenant's view).
    async fn apply(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: &Resolved,
        objects: Objects,
    ) -> Result<(), Error>;
    /// Reads the state of what realises `cluster` at `loc`.
    async fn observe(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: Option<&Resolved>,
        loc: &Location,
    ) -> Result<Observation, Error>;
    /// Deletes what realises `cluster`; called until it returns [`Deletion::Done`].
    async fn delete(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        provider: &str,
    ) -> Result<Deletion, Error>;
    /// A token of the state of what realises `cluster` that (nearly) costs no request and changes
    /// with every change a watch delivers (a cached resourceVersion), for [`crate::settled`];
    /// `None` when there is none, and then every reconcile is a full pass.
    async fn settled_token(
        &self,
        _ctx: &Context,
        _cluster: &Cluster,
        _resolved: &Resolved,
    ) -> Option<String> {
        None
    }
    /// A client for the workload cluster, once its API server can be reached.
    async fn workload(
        &self,
        ctx: &Context,
        cluster: &Cluster,
        resolved: &Resolved,
        loc: &Location,
    ) -> Result<Option<kube::Client>, Error>;
}

/// A client from kubeconfig bytes (bounded connect and read timeouts). With leader election its
/// writes pass the lease's fence like the management client's (`ctx.fence`): a resumed stale
/// leader must not apply addons or bindings to a workload cluster either.
pub async fn client_from_kubeconfig(
    bytes: &[u8],
    fence: Option<&crate::leader::Fence>,
) -> Result<kube::Client, Error> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::Other(format!("kubeconfig is not UTF-8: {e}")))?;
    let kc = kube::config::Kubeconfig::from_yaml(text)
        .map_err(|e| Error::Other(format!("kubeconfig: {e}")))?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Other(format!("kubeconfig: {e}")))?;
    cfg.connect_timeout = Some(std::time::Duration::from_secs(5));
    cfg.read_timeout = Some(std::time::Duration::from_secs(15));
    let builder = kube::client::ClientBuilder::try_from(cfg)?;
    Ok(match fence {
        Some(f) => builder.with_layer(&f.layer()).build(),
        None => builder.build(),
    })
}

/// Copies a kubeconfig Secret (`src_ns/src_name`, key `value`) of the provider side into the
/// tenant namespace as `<cluster>-kubeconfig`, owned by the SCS Cluster; writes only when the
/// content differs. Returns the copy's name, or `None` while the source does not exist.
pub(crate) async fn copy_kubeconfig(
    ctx: &Context,
    cluster: &Cluster,
    src_ns: &str,
    src_name: &str,
) -> Result<Option<String>, Error> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{ObjectMeta, Patch, PatchParams};
    use kube::{Api, Resource, ResourceExt};

    use capi::{KUBECONFIG_KEY, kubeconfig_secret_name};
    // The Provider may turn the long-lived admin kubeconfig off (tenants then use
    // `KubeconfigRequest`s, crate::kubeconfig): the copy is removed, the source stays.
    if !admin_copy_allowed(ctx, cluster) {
        let tenant_secrets: Api<Secret> =
            Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
        let copy_name = kubeconfig_secret_name(&cluster.name_any());
        if tenant_secrets.get_opt(&copy_name).await?.is_some() {
            tenant_secrets
                .delete(&copy_name, &Default::default())
                .await?;
        }
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), src_ns);
    let Some(value) = secrets
        .get_opt(src_name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(KUBECONFIG_KEY))
    else {
        return Ok(None);
    };
    let name = cluster.name_any();
    let tenant = cluster.namespace().unwrap_or_default();
    let copy_name = kubeconfig_secret_name(&name);
    let copy = Secret {
        metadata: ObjectMeta {
            name: Some(copy_name.clone()),
            namespace: Some(tenant.clone()),
            labels: Some([(kaas_render::LABEL_CLUSTER.to_string(), name.clone())].into()),
            owner_references: cluster.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("cluster.x-k8s.io/secret".into()),
        data: Some([(KUBECONFIG_KEY.to_string(), ByteString(value.0))].into()),
        ..Default::default()
    };
    let tenant_secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &tenant);
    let current = tenant_secrets.get_opt(&copy_name).await?;
    if current.as_ref().and_then(|c| c.data.as_ref()) != copy.data.as_ref() {
        tenant_secrets
            .patch(
                &copy_name,
                &PatchParams::apply(crate::FIELD_MANAGER).force(),
                &Patch::Apply(&copy),
            )
            .await?;
    }
    Ok(Some(copy_name))
}

/// Whether the tenant gets a copy of the long-lived admin kubeconfig (the Provider's
/// `spec.access`; yes unless it says otherwise).
pub(crate) fn admin_copy_allowed(ctx: &Context, cluster: &Cluster) -> bool {
    crate::dereference::provider(&ctx.provider_store, cluster)
        .map(|p| kaas_api::provider::ProviderAccess::admin_secret(p.spec.access.as_ref()))
        .unwrap_or(true)
}

/// A workload client from a provider-side kubeconfig Secret (key `value`), once it exists.
pub(crate) async fn workload_from_secret(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<kube::Client>, Error> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(ctx.client.clone(), ns);
    let Some(v) = secrets
        .get_opt(name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(capi::KUBECONFIG_KEY))
    else {
        return Ok(None);
    };
    client_from_kubeconfig(&v.0, ctx.fence.as_ref())
        .await
        .map(Some)
}
