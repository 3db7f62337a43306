//! Admission policies that need no webhook (ValidatingAdmissionPolicy, CEL in the API server):
//! deletion protection — a `Cluster` with `spec.deletionProtection: true` cannot be deleted.

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

/// The policies as multi-document YAML (with apiVersion and kind).
pub fn policies_yaml() -> String {
    let (p, b) = deletion_protection();
    let mut pv = serde_json::to_value(&p).expect("serialises");
    pv["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    pv["kind"] = "ValidatingAdmissionPolicy".into();
    let mut bv = serde_json::to_value(&b).expect("serialises");
    bv["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    bv["kind"] = "ValidatingAdmissionPolicyBinding".into();
    [pv, bv]
        .iter()
        .map(|v| serde_yaml::to_string(v).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}
