//! Installing kaas into a management cluster without Helm (used by `kaas dev up` and the
//! integration tests): CRDs and the admission policy, the tenant roles, a provider with its
//! ClusterClasses, and tenants. The Helm chart installs the same objects (a test keeps them equal).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager for installed objects.
pub const MANAGER: &str = "kaas-install";
/// ClusterRole a tenant gets in its namespace (via a RoleBinding).
pub const TENANT_ROLE: &str = "kaas-tenant";
/// ClusterRole to read the provider offerings (cluster-scoped).
pub const OFFERING_READER_ROLE: &str = "kaas-offering-reader";
/// Group every tenant user is in, bound to the offering reader role.
pub const TENANTS_GROUP: &str = "kaas:tenants";
/// ClusterRole to read Cluster API objects (never Secrets, ConfigMaps or bootstrap configs),
/// bound per provider-side namespace to the tenant's subjects.
pub const CAPI_VIEWER_ROLE: &str = "kaas-capi-viewer";
/// RoleBinding of [`CAPI_VIEWER_ROLE`] the operator keeps in each provider-side namespace; its
/// subjects are those of the tenant namespace's RoleBindings of [`TENANT_ROLE`].
pub const CAPI_VIEWER_BINDING: &str = "kaas-tenant-capi-viewer";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// What a tenant may do in its own namespace: its clusters and GitSources, their status, the kubeconfig
/// Secrets and compliance reports (ConfigMaps) kaas puts there, events. Nothing about Cluster API objects or provider credentials,
/// which live in namespaces the tenant is not bound in.
pub fn tenant_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(TENANT_ROLE.into()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(
                &["scs.community"],
                &["clusters"],
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
            ),
            rule(&["scs.community"], &["clusters/status"], &["get"]),
            rule(
                &["scs.community"],
                &["gitsources"],
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
            ),
            rule(&["scs.community"], &["gitsources/status"], &["get"]),
            // Short-lived kubeconfigs: requested by the tenant, issued by the operator (the spec
            // is immutable and names the requester: admission policy).
            rule(
                &["scs.community"],
                &["kubeconfigrequests"],
                &["get", "list", "watch", "create", "delete"],
            ),
            rule(&["scs.community"], &["kubeconfigrequests/status"], &["get"]),
            // etcd backups and restores: requested by the tenant, done by the operator and the
            // runtime (`docs/backup.md`); the store's credentials stay in the provider namespace.
            rule(
                &["scs.community"],
                &["clusterbackups", "clusterrestores"],
                &["get", "list", "watch", "create", "delete"],
            ),
            rule(
                &["scs.community"],
                &["clusterbackups/status", "clusterrestores/status"],
                &["get"],
            ),
            rule(&[""], &["secrets"], &["get", "list", "watch"]),
            rule(&[""], &["configmaps"], &["get", "list", "watch"]),
            rule(
                &["", "events.k8s.io"],
                &["events"],
                &["get", "list", "watch"],
            ),
        ]),
        ..Default::default()
    }
}

/// Read access to a tenant's own Cluster API objects and their events in its provider-side
/// namespace (`kaas diagnose`, `kaas describe cluster`). An allowlist: Secrets (kubeconfigs,
/// credentials), ConfigMaps (addon inventory) and bootstrap KubeadmConfigs (they can carry file
/// contents) are never readable. Infrastructure kinds are those of the stacks kaas renders
/// (`in-memory`: Dev*, `openstack-scs2`: OpenStack*); hosted clusters have a `HostedControlPlane`.
pub fn capi_viewer_role() -> ClusterRole {
    let read = &["get", "list", "watch"];
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(CAPI_VIEWER_ROLE.into()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(
                &["cluster.x-k8s.io"],
                &[
                    "clusters",
                    "machines",
                    "machinedeployments",
                    "machinesets",
                    "machinehealthchecks",
                    "machinepools",
                ],
                read,
            ),
            rule(
                &["controlplane.cluster.x-k8s.io"],
                &["kubeadmcontrolplanes"],
                read,
            ),
            rule(
                &["infrastructure.cluster.x-k8s.io"],
                &[
                    "devclusters",
                    "devmachines",
                    "openstackclusters",
                    "openstackmachines",
                ],
                read,
            ),
            // Hosted control planes (their status; no credentials in them).
            rule(&["scs.community"], &["hostedcontrolplanes"], read),
            rule(&["", "events.k8s.io"], &["events"], read),
        ]),
        ..Default::default()
    }
}

/// What the operator needs beyond its other rules to keep [`CAPI_VIEWER_BINDING`]: read the
/// tenant namespaces' RoleBindings, write the binding, and `bind` exactly [`CAPI_VIEWER_ROLE`]
/// (so it needs none of the role's permissions itself). The Helm chart's operator ClusterRole
/// carries the same rules (`crates/cli/tests/chart.rs` checks it).
pub fn operator_capi_viewer_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["rbac.authorization.k8s.io"],
            &["rolebindings"],
            &["get", "list", "watch", "create", "patch"],
        ),
        PolicyRule {
            resource_names: Some(vec![CAPI_VIEWER_ROLE.into()]),
            ..rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"])
        },
    ]
}

/// The ClusterRole of every cluster's cluster-autoscaler ([`kaas_render::autoscaler::rules`]),
/// bound by the operator per cluster in its provider-side namespace only.
pub fn autoscaler_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(kaas_render::autoscaler::CLUSTER_ROLE.into()),
            ..Default::default()
        },
        rules: Some(kaas_render::autoscaler::rules()),
        ..Default::default()
    }
}

/// What the operator needs to run the autoscalers: their ServiceAccounts and Deployments in the
/// provider-side namespaces (server-side apply, removal; their RoleBindings go with the
/// ServiceAccounts, which own them) and `bind` on exactly [`autoscaler_role`] (it holds none of
/// the role's permissions). The Helm chart's operator ClusterRole carries the same rules.
pub fn operator_autoscaler_rules() -> Vec<PolicyRule> {
    let write = &["get", "create", "patch", "delete"];
    vec![
        rule(&[""], &["serviceaccounts"], write),
        rule(&["apps"], &["deployments"], write),
        PolicyRule {
            resource_names: Some(vec![kaas_render::autoscaler::CLUSTER_ROLE.into()]),
            ..rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"])
        },
    ]
}

/// Read access to the offerings, for every tenant.
pub fn offering_reader_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(OFFERING_READER_ROLE.into()),
            ..Default::default()
        },
        rules: Some(vec![rule(
            &["scs.community"],
            &["providers"],
            &["get", "list", "watch"],
        )]),
        ..Default::default()
    }
}

async fn apply<K>(client: &Client, obj: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
}

async fn apply_in<K>(client: &Client, obj: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj
        .meta()
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Api::<K>::namespaced(client.clone(), &ns)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
}

/// Installs the CRDs, the admission policies (deletion and finalizer protection, the finalizer at
/// creation where the API server serves mutating policies) and the tenant roles.
pub async fn install_kaas(client: &Client) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kaas_api::crds() {
        apply(client, &crd).await?;
    }
    for crd in kaas_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let cond = kube::runtime::conditions::is_crd_established();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            kube::runtime::wait::await_condition(crds.clone(), &name, cond),
        )
        .await;
    }
    for (policy, binding) in kaas_api::policy::policies() {
        apply(client, &policy).await?;
        apply(client, &binding).await?;
    }
    finalizer_at_creation(client).await?;
    apply(client, &tenant_role()).await?;
    apply(client, &offering_reader_role()).await?;
    apply(client, &capi_viewer_role()).await?;
    apply(client, &autoscaler_role()).await?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(OFFERING_READER_ROLE.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: OFFERING_READER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: TENANTS_GROUP.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    apply(client, &binding).await?;
    Ok(())
}

/// The API of the finalizer-at-creation policy's objects: `MutatingAdmissionPolicy`, or with
/// `binding` its `MutatingAdmissionPolicyBinding` (`admissionregistration.k8s.io/v1`).
pub fn mutating_policy_api(client: &Client, binding: bool) -> Api<kube::api::DynamicObject> {
    let (kind, plural) = if binding {
        (
            "MutatingAdmissionPolicyBinding",
            "mutatingadmissionpolicybindings",
        )
    } else {
        ("MutatingAdmissionPolicy", "mutatingadmissionpolicies")
    };
    let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::all_with(client.clone(), &ar)
}

/// Applies [`kaas_api::policy::finalizer_at_creation`]; returns whether the API server serves
/// mutating admission policies (Kubernetes 1.36 and later). Where it does not, nothing is written:
/// the operator adds its finalizer itself.
pub async fn finalizer_at_creation(client: &Client) -> Result<bool, kube::Error> {
    for doc in kaas_api::policy::finalizer_at_creation() {
        let obj: kube::api::DynamicObject =
            serde_json::from_value(doc).expect("the policy is an object with apiVersion and kind");
        let binding = obj
            .types
            .as_ref()
            .is_some_and(|t| t.kind.ends_with("Binding"));
        let name = obj.metadata.name.clone().unwrap_or_default();
        let res = mutating_policy_api(client, binding)
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await;
        match res {
            Ok(_) => {}
            // The resource is not served: a 404 without an object of ours behind it.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Whether a dry-run create of `probe` comes back with kaas' finalizer, i.e. whether the API
/// server applies the finalizer-at-creation policy now (a change of the policy or its binding
/// takes effect about a second later).
pub async fn finalizer_set_at_creation(
    client: &Client,
    probe: &kaas_api::Cluster,
) -> Result<bool, kube::Error> {
    let ns = probe.metadata.namespace.as_deref().unwrap_or("default");
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let created = Api::<kaas_api::Cluster>::namespaced(client.clone(), ns)
        .create(&dry_run, probe)
        .await?;
    Ok(created
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == kaas_api::policy::CLUSTER_FINALIZER))
}

/// Deletes the binding of the finalizer-at-creation policy (as on Kubernetes before 1.36: the
/// operator then adds its finalizer itself, for tests and benchmarks of that path) and waits up
/// to 30 s until dry-run creates of `probe` no longer get the finalizer; false if they still do.
pub async fn without_finalizer_at_creation(
    client: &Client,
    probe: &kaas_api::Cluster,
) -> Result<bool, kube::Error> {
    mutating_policy_api(client, true)
        .delete(kaas_api::policy::FINALIZER_AT_CREATION, &Default::default())
        .await?;
    for _ in 0..300 {
        if !finalizer_set_at_creation(client, probe).await? {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Creates a namespace.
pub async fn namespace(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<(), kube::Error> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    apply(client, &ns).await.map(|_| ())
}

/// A tenant: its namespace and a RoleBinding of [`TENANT_ROLE`] for `subjects`.
pub async fn tenant(client: &Client, ns: &str, subjects: Vec<Subject>) -> Result<(), kube::Error> {
    namespace(client, ns, &[("scs.community/tenant", "true")]).await?;
    let rb = RoleBinding {
        metadata: ObjectMeta {
            name: Some(TENANT_ROLE.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: TENANT_ROLE.into(),
        },
        subjects: Some(subjects),
    };
    apply_in(client, &rb).await.map(|_| ())
}

/// A ServiceAccount user of a tenant with a long-lived token (dev and tests); returns the token.
/// The ServiceAccount is bound to the tenant role and added to the offering readers.
pub async fn tenant_service_account(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<String, kube::Error> {
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    tenant(client, ns, vec![subject.clone()]).await?;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    apply_in(client, &sa).await?;
    let reader = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{OFFERING_READER_ROLE}-{ns}-{name}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: OFFERING_READER_ROLE.into(),
        },
        subjects: Some(vec![subject]),
    };
    apply(client, &reader).await?;
    let secret_name = format!("{name}-token");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/service-account.name".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    apply_in(client, &secret).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for _ in 0..100 {
        if let Some(token) = secrets
            .get(&secret_name)
            .await?
            .data
            .and_then(|d| d.get("token").cloned())
        {
            return Ok(String::from_utf8_lossy(&token.0).into_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(kube::Error::Service(
        format!(
            "no token was issued for ServiceAccount {ns}/{name} (is the token controller running?)"
        )
        .into(),
    ))
}

/// Applies every document of a YAML stream (namespaced objects into `namespace`), resolving kinds
/// through discovery; returns how many objects were applied.
pub async fn apply_manifests(
    client: &Client,
    namespace: &str,
    yaml: &str,
) -> Result<usize, kube::Error> {
    use kube::api::{DynamicObject, GroupVersionKind};
    use kube::discovery::{Discovery, Scope};
    use serde::Deserialize;
    let invalid = |m: String| kube::Error::Service(m.into());
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut n = 0;
    for de in serde_yaml::Deserializer::from_str(yaml) {
        let value =
            serde_json::Value::deserialize(de).map_err(|e| invalid(format!("manifest: {e}")))?;
        if value.is_null() {
            continue;
        }
        let mut obj: DynamicObject =
            serde_json::from_value(value).map_err(|e| invalid(format!("manifest: {e}")))?;
        let tm = obj
            .types
            .clone()
            .ok_or_else(|| invalid("manifest object without apiVersion/kind".into()))?;
        let gvk = GroupVersionKind::try_from(&tm).map_err(|e| invalid(e.to_string()))?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| invalid(format!("unknown kind {}/{}", tm.api_version, tm.kind)))?;
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or_else(|| invalid(format!("{} without a name", tm.kind)))?;
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            obj.metadata.namespace = Some(namespace.to_string());
            Api::namespaced_with(client.clone(), namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// Installs a provider offering: its namespace, manifests for it (ClusterClasses, addon bundles;
/// YAML), the `Provider`.
pub async fn provider(
    client: &Client,
    provider: &kaas_api::Provider,
    cluster_classes: &str,
) -> Result<(), kube::Error> {
    let ns = &provider.spec.backend.namespace;
    namespace(client, ns, &[("scs.community/provider-namespace", "true")]).await?;
    apply_manifests(client, ns, cluster_classes).await?;
    let mut p = provider.clone();
    p.status = None;
    p.metadata.resource_version = None;
    apply(client, &p).await.map(|_| ())
}
