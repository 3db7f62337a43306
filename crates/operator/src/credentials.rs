//! Cloud credentials into workload clusters: a stack's cloud controller manager and CSI driver
//! read `clouds.yaml`/`cloud.conf` from a Secret in the workload cluster (the bundle index says
//! which: `cloudCredentials`). The workload cluster's admins — the tenant — can read it there, so
//! what goes there must be the tenant's own: a Secret the provider's tooling creates in the
//! provider namespace (which no tenant can read) for one tenant, or one cluster, named by
//! [`candidates`] — an application credential restricted to that tenant's project. The
//! Provider's Cluster API identity (`spec.credentialsRef`) reaches every tenant's resources and is
//! never delivered; without a tenant's Secret the addon is refused with the reason. The operator
//! copies the chosen Secret straight into the workload cluster with its other addon objects
//! (server-side apply, inventory, pruning) — never through a tenant-readable object on the
//! management side — and re-applies it on every full addon reconcile, so a rotated Secret reaches
//! the cluster (a settled cluster's within the hour, `crate::settled`). The data never reaches a log, event or status: the addon's status names the source
//! Secret and its resourceVersion only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kaas_api::Provider;
use kaas_api::addons::{CloudCredentials, Stage};
use kube::api::{DynamicObject, ObjectMeta, TypeMeta};
use kube::{Api, Client};

use crate::addons::{CALL_TIMEOUT, LABEL_ADDON, Planned};

/// The addon name the credentials are applied and reported as.
pub const ADDON: &str = "cloud-credentials";
/// The Secret to apply in the workload cluster (pure): the source's data and type under the
/// target's name, labelled as kaas' addon.
pub fn workload_secret(target: &CloudCredentials, source: &Secret) -> DynamicObject {
    let mut data = serde_json::Map::new();
    if let Some(d) = &source.data {
        data.insert("data".into(), serde_json::to_value(d).expect("serialises"));
    }
    data.insert(
        "type".into(),
        source
            .type_
            .clone()
            .unwrap_or_else(|| "Opaque".into())
            .into(),
    );
    DynamicObject {
        types: Some(TypeMeta {
            api_version: "v1".into(),
            kind: "Secret".into(),
        }),
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(BTreeMap::from([
                (LABEL_ADDON.to_string(), ADDON.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "kaas".to_string(),
                ),
            ])),
            ..Default::default()
        },
        data: serde_json::Value::Object(data),
    }
}

/// Prefix of the workload credential Secrets in the provider namespace:
/// `workload-credentials-<tenant namespace>` for every cluster of a tenant, and
/// `workload-credentials-<tenant namespace>.<cluster>` for one cluster alone (it wins). Named, not
/// labelled: the operator reads Secrets by name only, it may not list them.
pub const PREFIX: &str = "workload-credentials-";

/// The Secrets that may hold `cluster`'s workload credential, in the order they are tried (pure).
pub fn candidates(tenant: &str, cluster: &str) -> [String; 2] {
    [
        format!("{PREFIX}{tenant}.{cluster}"),
        format!("{PREFIX}{tenant}"),
    ]
}

/// The credentials as an addon to apply before the stack's own: the Secret the provider's
/// tooling created for this cluster or its tenant in the provider namespace ([`candidates`]), or
/// why there is none to deliver. Never the Provider's own Cluster API identity
/// (`spec.credentialsRef`): it reaches every tenant's servers and volumes, and a workload
/// cluster's admins — the tenant — read `kube-system`.
pub async fn planned(
    mgmt: &Client,
    provider: &Provider,
    cluster: &kaas_api::Cluster,
    target: &CloudCredentials,
) -> Planned {
    let namespace = &provider.spec.backend.namespace;
    let tenant = cluster.metadata.namespace.clone().unwrap_or_default();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let [own, tenant_wide] = candidates(&tenant, &name);
    let identity = provider
        .spec
        .credentials_ref
        .as_ref()
        .map(|r| r.name.as_str());
    let api: Api<Secret> = Api::namespaced(mgmt.clone(), namespace);
    let mut found = Ok(None);
    for secret in [&own, &tenant_wide] {
        if Some(secret.as_str()) == identity {
            continue;
        }
        found = match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(secret)).await {
            Ok(Ok(Some(s))) => Ok(Some(s)),
            Ok(Ok(None)) => continue,
            // The status is the tenant's to read: the code and reason, not the server's text.
            Ok(Err(kube::Error::Api(e))) => Err(format!(
                "reading the workload credentials {namespace}/{secret}: HTTP {} {}",
                e.code, e.reason
            )),
            Ok(Err(_)) | Err(_) => Err(format!(
                "reading the workload credentials {namespace}/{secret}: no answer within {} s",
                CALL_TIMEOUT.as_secs()
            )),
        };
        break;
    }
    let (version, objects) = match found {
        Ok(Some(s)) => (
            format!(
                "{namespace}/{} (resourceVersion {})",
                s.metadata.name.as_deref().unwrap_or_default(),
                s.metadata.resource_version.as_deref().unwrap_or("?")
            ),
            Ok(vec![workload_secret(target, &s)]),
        ),
        Ok(None) => (
            String::new(),
            Err(format!(
                "the stack's addons read cloud credentials from Secret {}/{} in the workload cluster, and the provider has none for tenant {tenant}: its tooling creates the Secret {namespace}/{tenant_wide} (or {own} for this cluster alone) holding an application credential restricted to the tenant's project; the provider's own Cluster API identity is never delivered",
                target.namespace, target.name,
            )),
        ),
        Err(e) => (String::new(), Err(e)),
    };
    Planned {
        name: ADDON.into(),
        stage: Stage::Base,
        version,
        objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn a_clusters_own_credential_is_tried_before_its_tenants() {
        assert_eq!(
            candidates("tenant-a", "c1"),
            [
                "workload-credentials-tenant-a.c1".to_string(),
                "workload-credentials-tenant-a".to_string()
            ]
        );
        // A namespace name is one DNS label, so the first dot separates tenant and cluster: no
        // tenant's name is another's cluster-specific one.
        assert!(!candidates("tenant-a", "c1")[1].contains('.'));
    }

    #[test]
    fn the_workload_secret_carries_the_providers_data_under_the_stacks_name() {
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("openstack-credentials".into()),
                namespace: Some("kaas-provider-fra1".into()),
                annotations: Some(BTreeMap::from([("note".into(), "provider only".into())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "clouds.yaml".to_string(),
                ByteString(b"clouds: {}".to_vec()),
            )])),
            ..Default::default()
        };
        let target = CloudCredentials {
            namespace: "kube-system".into(),
            name: "cloud-config".into(),
        };
        let o = workload_secret(&target, &source);
        assert_eq!(o.metadata.name.as_deref(), Some("cloud-config"));
        assert_eq!(o.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(o.metadata.labels.as_ref().unwrap()[LABEL_ADDON], ADDON);
        // The provider-side metadata stays behind; the data is the same bytes (base64).
        assert!(o.metadata.annotations.is_none());
        assert_eq!(o.data["data"]["clouds.yaml"], "Y2xvdWRzOiB7fQ==");
        assert_eq!(o.data["type"], "Opaque");
    }
}
