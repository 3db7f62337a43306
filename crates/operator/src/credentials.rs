//! Cloud credentials into workload clusters: a stack's cloud controller manager and CSI driver
//! read `clouds.yaml`/`cloud.conf` from a Secret in the workload cluster (the bundle index says
//! which: `cloudCredentials`). The operator copies the Provider's `credentialsRef` Secret — in the
//! provider namespace, which no tenant can read — straight into that Secret with its other addon
//! objects (server-side apply, inventory, pruning), so it is never written to a tenant-readable
//! object on the management side, and re-applied on every addon reconcile, so a rotated Provider
//! Secret reaches every cluster. The data never reaches a log, event or status: the addon's
//! status names the source Secret and its resourceVersion only.

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

/// The credentials as an addon to apply before the stack's own: the Provider's `credentialsRef`
/// Secret from `namespace` (the provider namespace), or why it cannot be delivered.
pub async fn planned(
    mgmt: &Client,
    provider: &Provider,
    namespace: &str,
    target: &CloudCredentials,
) -> Planned {
    let (version, objects) = match &provider.spec.credentials_ref {
        None => (
            String::new(),
            Err(format!(
                "the stack's addons read cloud credentials from Secret {}/{} in the workload cluster, but Provider {:?} names no spec.credentialsRef",
                target.namespace,
                target.name,
                provider.metadata.name.as_deref().unwrap_or_default()
            )),
        ),
        Some(r) => {
            let api: Api<Secret> = Api::namespaced(mgmt.clone(), namespace);
            match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(&r.name)).await {
                Ok(Ok(Some(s))) => (
                    format!(
                        "{namespace}/{} (resourceVersion {})",
                        r.name,
                        s.metadata.resource_version.as_deref().unwrap_or("?")
                    ),
                    Ok(vec![workload_secret(target, &s)]),
                ),
                Ok(Ok(None)) => (
                    String::new(),
                    Err(format!(
                        "the Provider's credentials Secret {namespace}/{} (spec.credentialsRef) does not exist",
                        r.name
                    )),
                ),
                Ok(Err(e)) => (
                    String::new(),
                    Err(format!(
                        "reading the Provider's credentials Secret {namespace}/{}: {}",
                        r.name, e
                    )),
                ),
                Err(_) => (
                    String::new(),
                    Err(format!(
                        "reading the Provider's credentials Secret {namespace}/{}: no answer within {} s",
                        r.name,
                        CALL_TIMEOUT.as_secs()
                    )),
                ),
            }
        }
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
