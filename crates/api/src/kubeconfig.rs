//! `KubeconfigRequest` (scs.community/v1alpha1, namespaced, tenant side): a tenant asks for a
//! short-lived credential for one of its workload clusters (issue #19).
//!
//! The tenant (or the REST server and the CLI, acting with the tenant's own credentials) creates
//! the request in its namespace; it names a `Cluster` of the same namespace, a lifetime and a role.
//! The kaas operator — which, unlike tenants, can read the workload cluster's CA in the
//! provider-side namespace — validates it against the Provider's policy (`spec.access`), signs a
//! client certificate with exactly the requested lifetime (user `spec.user`, group `kaas:admins` or
//! `kaas:viewers`), makes sure the workload cluster binds that group (`cluster-admin`, `view`),
//! writes the kubeconfig into a Secret next to the request (owned by it: deleted with it), records
//! the issue as an Event on the Cluster and reports `status`. The key never appears in the status,
//! events or logs.
//!
//! `spec.user` must be the name of whoever creates the request: the admission policy
//! [`crate::policy::kubeconfig_request_identity`] refuses anything else and any change of the spec.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request for a short-lived kubeconfig of a workload cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "KubeconfigRequest",
    doc = "A tenant's request for a short-lived kubeconfig (client certificate) of one of its workload clusters. Issued by the kaas operator into the Secret named in status.secretName, owned by this request.",
    plural = "kubeconfigrequests",
    singular = "kubeconfigrequest",
    namespaced,
    status = "KubeconfigRequestStatus",
    shortname = "kcr",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.user","priority":1}"#,
    printcolumn = r#"{"name":"Issued","type":"string","jsonPath":".status.conditions[?(@.type==\"Issued\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Issued\")].reason"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigRequestSpec {
    /// Name of a `Cluster` in the request's own namespace (there is no namespace field: a request
    /// can only name a cluster of its namespace).
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength" = 63))]
    pub cluster: String,
    /// Lifetime of the credential, a duration such as `30s`, `15m`, `1h` or `1h30m`. At most the
    /// Provider's `spec.access.maxKubeconfigLifetime` (default 24h); a longer one is refused.
    #[schemars(extend("pattern" = r"^([0-9]+(s|m|h))+$", "maxLength" = 32))]
    pub expiration: String,
    /// `admin` (group `kaas:admins`, bound to `cluster-admin`) or `viewer` (group `kaas:viewers`,
    /// bound to `view`).
    #[serde(default)]
    pub role: KubeconfigRole,
    /// The requester: the certificate's user name. Must be the user that creates the request
    /// (admission policy); the CLI and the REST server fill it in.
    #[schemars(extend("minLength" = 1, "maxLength" = 253))]
    pub user: String,
}

/// Role of an issued credential in the workload cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KubeconfigRole {
    /// Group `kaas:admins`, bound to `cluster-admin`.
    #[default]
    #[serde(rename = "admin")]
    Admin,
    /// Group `kaas:viewers`, bound to `view`.
    #[serde(rename = "viewer")]
    Viewer,
}

impl KubeconfigRole {
    /// `admin` / `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeconfigRole::Admin => "admin",
            KubeconfigRole::Viewer => "viewer",
        }
    }
    /// The certificate's group.
    pub fn group(self) -> &'static str {
        match self {
            KubeconfigRole::Admin => GROUP_ADMINS,
            KubeconfigRole::Viewer => GROUP_VIEWERS,
        }
    }
    /// The ClusterRole the group is bound to in the workload cluster.
    pub fn cluster_role(self) -> &'static str {
        match self {
            KubeconfigRole::Admin => "cluster-admin",
            KubeconfigRole::Viewer => "view",
        }
    }
}

/// Group of admin credentials in workload clusters.
pub const GROUP_ADMINS: &str = "kaas:admins";
/// Group of viewer credentials in workload clusters.
pub const GROUP_VIEWERS: &str = "kaas:viewers";
/// Condition type: the credential was issued (True), is being issued (Unknown) or was refused
/// (False, with the reason).
pub const CONDITION_ISSUED: &str = "Issued";
/// Key of the kubeconfig in the issued Secret.
pub const KUBECONFIG_KEY: &str = "value";
/// Default of the Provider's `spec.access.maxKubeconfigLifetime`.
pub const DEFAULT_MAX_LIFETIME: &str = "24h";

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigRequestStatus {
    /// `Issued`: True once the Secret exists; False with a reason (`ClusterNotFound`,
    /// `LifetimeExceedsPolicy`, `InvalidExpiration`, `ClusterNotReady`, …) when refused or waiting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the certificate expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Secret in this namespace with the kubeconfig (key `value`), owned by the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Parses a duration of the form `1h30m`, `45s`, `2h` (units s, m, h). `None` if malformed.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total: u64 = 0;
    let mut num = String::new();
    if s.is_empty() {
        return None;
    }
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        return None;
    }
    Some(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("24h").unwrap().as_secs(), 86400);
        for bad in ["", "1", "h", "1d", "1.5h", "-1h"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn role_defaults_to_admin_and_maps_to_groups() {
        let s: KubeconfigRequestSpec =
            serde_json::from_str(r#"{"cluster":"c","expiration":"1h","user":"u"}"#).unwrap();
        assert_eq!(s.role, KubeconfigRole::Admin);
        assert_eq!(KubeconfigRole::Viewer.group(), "kaas:viewers");
        assert_eq!(KubeconfigRole::Viewer.cluster_role(), "view");
    }
}
