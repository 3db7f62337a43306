//! Admission policies that need no webhook (ValidatingAdmissionPolicy, CEL in the API server):
//! - deletion protection — a `Cluster` with `spec.deletionProtection: true` cannot be deleted;
//! - finalizer protection — kaas' finalizer on a `Cluster` ([`CLUSTER_FINALIZER`]) can only be
//!   removed by an identity that may write the Cluster's status (the operator, cluster admins):
//!   a tenant that drops it and deletes the Cluster would leave its Cluster API cluster running,
//!   unaccounted for.
//!
//! And one that needs no webhook either (MutatingAdmissionPolicy, Kubernetes 1.36 and later):
//! - finalizer at creation — a new `Cluster` gets [`CLUSTER_FINALIZER`] when it is created, so the
//!   operator does not have to add it with a write of its own (where the API is not served, it
//!   still does).

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Name of the deletion-protection policy and its binding.
pub const DELETION_PROTECTION: &str = "clusters.scs.community-deletion-protection";

/// The policy refusing DELETE of protected clusters, and its binding.
pub fn deletion_protection() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let policy = ValidatingAdmissionPolicy {
        metadata: ObjectMeta { name: Some(DELETION_PROTECTION.into()), ..Default::default() },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![crate::GROUP.into()]),
                    api_versions: Some(vec![crate::VERSION.into()]),
                    operations: Some(vec!["DELETE".into()]),
                    resources: Some(vec!["clusters".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            validations: Some(vec![Validation {
                expression: "!has(oldObject.spec.deletionProtection) || oldObject.spec.deletionProtection != true".into(),
                message: Some(
                    "spec.deletionProtection is true: set it to false before deleting this cluster".into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(DELETION_PROTECTION.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(DELETION_PROTECTION.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    };
    (policy, binding)
}

/// The finalizer the kaas operator keeps on every SCS `Cluster` until its provider-side objects
/// are gone (`kaas_operator::FINALIZER`).
pub const CLUSTER_FINALIZER: &str = "scs.community/cluster";

/// Name of the finalizer-protection policy and its binding.
pub const FINALIZER_PROTECTION: &str = "clusters.scs.community-finalizer-protection";

/// The policy refusing an UPDATE (or patch) of a `Cluster` that removes [`CLUSTER_FINALIZER`],
/// unless the requester may patch `clusters/status` of that Cluster — which the operator may
/// (chart role `kaas-operator`; in dev and tests it runs as cluster admin) and tenants may not
/// (`kaas-tenant` only reads the status). The operator is recognised by that permission, not by
/// its name, so the policy needs no parameters and is the same for every installation.
pub fn finalizer_protection() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let has = |obj: &str| {
        format!(
            "(has({obj}.metadata.finalizers) && '{CLUSTER_FINALIZER}' in {obj}.metadata.finalizers)"
        )
    };
    let policy = ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(FINALIZER_PROTECTION.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![crate::GROUP.into()]),
                    api_versions: Some(vec![crate::VERSION.into()]),
                    operations: Some(vec!["UPDATE".into()]),
                    resources: Some(vec!["clusters".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            validations: Some(vec![Validation {
                expression: format!(
                    "!{old} || {new} || authorizer.group('{group}').resource('clusters').subresource('status').namespace(object.metadata.namespace).name(object.metadata.name).check('patch').allowed()",
                    old = has("oldObject"),
                    new = has("object"),
                    group = crate::GROUP,
                ),
                message: Some(format!(
                    "metadata.finalizers: {CLUSTER_FINALIZER} is removed by the kaas operator once the cluster's provider-side objects are deleted; delete the Cluster instead"
                )),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(FINALIZER_PROTECTION.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(FINALIZER_PROTECTION.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    };
    (policy, binding)
}

/// Name of the mutating policy that sets [`CLUSTER_FINALIZER`] on a new `Cluster`, and of its
/// binding.
pub const FINALIZER_AT_CREATION: &str = "clusters.scs.community-finalizer-at-creation";

/// API version of [`finalizer_at_creation`]'s objects: served from Kubernetes 1.36 on.
pub const MUTATING_POLICY_API_VERSION: &str = "admissionregistration.k8s.io/v1";

/// The MutatingAdmissionPolicy adding [`CLUSTER_FINALIZER`] to every `Cluster` when it is created,
/// beside any finalizer the request carries, and its binding — as documents with `apiVersion` and
/// `kind` (this crate's Kubernetes types predate the API's `v1`).
///
/// Without it the operator adds the finalizer with a PATCH of its own before it creates anything
/// (it still does wherever the policy is not installed, or the API is not served). With it, that
/// write is saved for every new cluster, and a cluster carries the finalizer from its first
/// moment. The change is not attributed to any field manager (admission runs after the request's
/// managed fields are recorded), so a later server-side apply of the same manifest keeps it. The
/// policy ignores its own failures: the operator's PATCH is the fallback.
pub fn finalizer_at_creation() -> [serde_json::Value; 2] {
    let policy = serde_json::json!({
        "apiVersion": MUTATING_POLICY_API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": FINALIZER_AT_CREATION},
        "spec": {
            "failurePolicy": "Ignore",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [crate::GROUP],
                "apiVersions": [crate::VERSION],
                "operations": ["CREATE"],
                "resources": ["clusters"],
            }]},
            "matchConditions": [{
                "name": "lacks-the-finalizer",
                "expression": format!(
                    "!has(object.metadata.finalizers) || !('{CLUSTER_FINALIZER}' in object.metadata.finalizers)"
                ),
            }],
            "reinvocationPolicy": "Never",
            "mutations": [{
                "patchType": "JSONPatch",
                "jsonPatch": {"expression": format!(
                    "has(object.metadata.finalizers) ? [JSONPatch{{op: 'add', path: '/metadata/finalizers/-', value: '{CLUSTER_FINALIZER}'}}] : [JSONPatch{{op: 'add', path: '/metadata/finalizers', value: ['{CLUSTER_FINALIZER}']}}]"
                )},
            }],
        },
    });
    let binding = serde_json::json!({
        "apiVersion": MUTATING_POLICY_API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": FINALIZER_AT_CREATION},
        "spec": {"policyName": FINALIZER_AT_CREATION},
    });
    [policy, binding]
}

/// Name of the policy that binds a `KubeconfigRequest` to its creator, and of its binding.
pub const KUBECONFIG_REQUEST_IDENTITY: &str = "kubeconfigrequests.scs.community-identity";

/// The policy making `spec.user` of a `KubeconfigRequest` the name of the user that creates it
/// (the issued certificate carries it), and the spec immutable: nobody can request a credential
/// in someone else's name, or turn a request into another one after it was issued.
pub fn kubeconfig_request_identity() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)
{
    let policy = ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(KUBECONFIG_REQUEST_IDENTITY.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![crate::GROUP.into()]),
                    api_versions: Some(vec![crate::VERSION.into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    resources: Some(vec!["kubeconfigrequests".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            validations: Some(vec![
                Validation {
                    expression: "request.operation != 'CREATE' || object.spec.user == request.userInfo.username".into(),
                    message_expression: Some(
                        "'spec.user must be your own user name, ' + request.userInfo.username + ': a credential is issued only to whoever requests it'".into(),
                    ),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
                Validation {
                    expression: "request.operation != 'UPDATE' || object.spec == oldObject.spec".into(),
                    message: Some(
                        "spec of a KubeconfigRequest is immutable: create a new request".into(),
                    ),
                    reason: Some("Forbidden".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(KUBECONFIG_REQUEST_IDENTITY.into()),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(KUBECONFIG_REQUEST_IDENTITY.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    };
    (policy, binding)
}

/// Every admission policy with its binding: deletion protection, finalizer protection, the
/// identity of kubeconfig requests.
pub fn policies() -> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
    vec![
        deletion_protection(),
        finalizer_protection(),
        kubeconfig_request_identity(),
    ]
}

/// [`finalizer_at_creation`] as multi-document YAML.
pub fn finalizer_at_creation_yaml() -> String {
    finalizer_at_creation()
        .iter()
        .map(|v| serde_yaml::to_string(v).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The validating policies as multi-document YAML (with apiVersion and kind).
pub fn policies_yaml() -> String {
    let mut docs = Vec::new();
    for (p, b) in policies() {
        let mut pv = serde_json::to_value(&p).expect("serialises");
        pv["apiVersion"] = "admissionregistration.k8s.io/v1".into();
        pv["kind"] = "ValidatingAdmissionPolicy".into();
        let mut bv = serde_json::to_value(&b).expect("serialises");
        bv["apiVersion"] = "admissionregistration.k8s.io/v1".into();
        bv["kind"] = "ValidatingAdmissionPolicyBinding".into();
        docs.push(pv);
        docs.push(bv);
    }
    docs.iter()
        .map(|v| serde_yaml::to_string(v).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}
