//! Backends realise SCS clusters. The controller knows only this trait; the Cluster API backend
//! and the static (imported) backend sit behind it.

mod autoscaler;
pub mod capi;
pub mod hosted;
pub mod imported;
pub mod pools;

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

/// How long a provider-side namespace the watch shows as rendered is not written again.
const NAMESPACE_REWRITE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Writes `writes` into the provider-side namespace `ns` (rendered), which is written first
/// unless kaas wrote it identically less than an hour ago ([`crate::Written`]) and the watch of
/// provider-side namespaces shows it as rendered (without that watch: less than a minute ago).
/// So a label someone removed comes back at the next reconcile, and one a new kaas no longer
/// renders goes within the hour. When that write was skipped and `writes` fail with 404 — the
/// namespace is gone since (deleted by someone, or the cache lags) — it is written and `writes`
/// run once more. (Any 404: which kind a server-side apply into a missing namespace names in its
/// answer is not relied on; another 404, such as a missing credentials Secret, costs one more
/// namespace write per failed reconcile.)
pub(crate) async fn into_namespace<T, F, Fut>(
    ctx: &Context,
    ns: &k8s_openapi::api::core::v1::Namespace,
    writes: F,
) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    use kube::ResourceExt;
    let key = format!("Namespace/{}", ns.name_any());
    let hash = crate::Written::hash_of(ns);
    let write = || async {
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
            .patch(
                &ns.name_any(),
                &kube::api::PatchParams::apply(crate::FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(ns),
            )
            .await?;
        ctx.written.record(key.clone(), hash);
        Ok::<_, Error>(())
    };
    let skipped = match ctx.capi.namespace_current(ns) {
        Some(current) => current && ctx.written.fresh_for(&key, hash, NAMESPACE_REWRITE),
        None => ctx.written.fresh(&key, hash),
    };
    if !skipped {
        write().await?;
    }
    match writes().await {
        Err(Error::Kube(kube::Error::Api(e))) if skipped && e.code == 404 => {
            ctx.written.forget(&key);
            write().await?;
            writes().await
        }
        r => r,
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::ResourceExt;
    use kube::api::ObjectMeta;
    use kube::core::PartialObjectMeta;

    use super::*;
    use crate::backend::capi::CapiCache;

    const NOT_FOUND: &str =
        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;

    /// A context whose API server answers a namespace PATCH with the namespace, GETs of the
    /// ConfigMap `probe` with `gets` in turn (status codes), and records every request; its
    /// namespace cache holds `kaas-dev-t` as rendered.
    fn setup(gets: Vec<u16>) -> (Context, Arc<Mutex<Vec<String>>>, Namespace) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let n = Arc::new(AtomicU32::new(0));
        let client = crate::fake_api::client({
            let sent = sent.clone();
            move |req| {
                sent.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.uri().path()));
                if req
                    .uri()
                    .path()
                    .contains("/namespaces/kaas-dev-t/configmaps/")
                {
                    let code =
                        gets[(n.fetch_add(1, Ordering::Relaxed) as usize).min(gets.len() - 1)];
                    if code == 200 {
                        (
                            200,
                            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"probe"}}"#
                                .into(),
                        )
                    } else {
                        (code, NOT_FOUND.replace("404", &code.to_string()))
                    }
                } else {
                    (200, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kaas-dev-t"}}"#.into())
                }
            }
        });
        let labels = kaas_render::namespace_labels("t", "dev");
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("kaas-dev-t".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let store = crate::fake_api::filled(&[PartialObjectMeta::<Namespace> {
            types: None,
            metadata: ns.metadata.clone(),
            _phantom: Default::default(),
        }]);
        let capi =
            CapiCache::new(None).with_namespaces(store, Arc::new(crate::WatchHealth::default()));
        let ctx =
            crate::fake_api::context(client.clone(), kube::runtime::reflector::store().0, capi);
        (ctx, sent, ns)
    }

    async fn probe(ctx: &Context, ns: &Namespace) -> Result<ConfigMap, Error> {
        into_namespace(ctx, ns, || async {
            Ok(
                kube::Api::<ConfigMap>::namespaced(ctx.client.clone(), "kaas-dev-t")
                    .get("probe")
                    .await?,
            )
        })
        .await
    }

    fn patches(sent: &Mutex<Vec<String>>) -> usize {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .count()
    }

    #[tokio::test]
    async fn a_namespace_is_written_once_then_skipped_while_the_watch_shows_it() {
        let (ctx, sent, ns) = setup(vec![200]);
        probe(&ctx, &ns).await.unwrap();
        assert_eq!(patches(&sent), 1, "never written by this operator: written");
        probe(&ctx, &ns).await.unwrap();
        assert_eq!(patches(&sent), 1, "written and shown as rendered: skipped");
        let mut other = ns.clone();
        other.labels_mut().insert("new".into(), "label".into());
        probe(&ctx, &other).await.unwrap();
        assert_eq!(patches(&sent), 2, "rendered differently: written");
    }

    #[tokio::test]
    async fn a_skipped_namespace_that_is_gone_is_written_and_the_writes_tried_again() {
        let (ctx, sent, ns) = setup(vec![200, 404, 200]);
        probe(&ctx, &ns).await.unwrap();
        probe(&ctx, &ns)
            .await
            .expect("written again, then the second try succeeds");
        let sent = sent.lock().unwrap().clone();
        let kinds: Vec<&str> = sent
            .iter()
            .map(|r| if r.starts_with("PATCH") { "ns" } else { "get" })
            .collect();
        assert_eq!(kinds, ["ns", "get", "get", "ns", "get"], "{sent:?}");
    }

    #[tokio::test]
    async fn other_failures_and_failures_after_a_namespace_write_are_returned_as_they_are() {
        // Skipped, then a 500: no namespace write, no second try.
        let (ctx, sent, ns) = setup(vec![200, 500, 200]);
        probe(&ctx, &ns).await.unwrap();
        assert!(probe(&ctx, &ns).await.is_err());
        assert_eq!(patches(&sent), 1);
        assert_eq!(sent.lock().unwrap().len(), 3);
        // Written in this very call, then a 404: returned, no second write.
        let (ctx, sent, ns) = setup(vec![404, 200]);
        assert!(probe(&ctx, &ns).await.is_err());
        assert_eq!(sent.lock().unwrap().len(), 2);
    }
}
