//! `GitSource` (scs.community/v1alpha1, namespaced): a git repository whose `Cluster` manifests
//! kaas keeps applied into the GitSource's own namespace — built-in GitOps for tenants without Flux
//! or Argo CD. The controller lives in `kaas-operator` (`gitsource` module); `docs/gitops.md`
//! explains it next to Flux and Argo CD.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on every `Cluster` a GitSource applied: the GitSource's name (same namespace).
pub const SOURCE_LABEL: &str = "scs.community/git-source";
/// Field manager of the GitSource controller's server-side applies (distinct from the operator's
/// `kaas-operator`, which writes Cluster finalizers and status, so the two never fight).
pub const FIELD_MANAGER: &str = "kaas-gitsource";
/// Default of `spec.interval`.
pub const DEFAULT_INTERVAL: &str = "1m";

/// Pattern of `spec.interval`: a Go duration of whole hours, minutes, seconds (e.g. `1m`, `90s`, `1h30m`).
pub const INTERVAL_PATTERN: &str = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// Condition reasons of `Ready`.
pub mod reasons {
    /// The revision is applied (and pruned as configured).
    pub const SYNCED: &str = "Synced";
    /// The repository could not be fetched (network, authentication, ref or path not found).
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// A document of the revision is invalid; nothing of it was applied.
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// The API server refused to apply or delete a Cluster.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `spec.suspend` is true: nothing is fetched or applied.
    pub const SUSPENDED: &str = "Suspended";
}

/// A git repository of SCS `Cluster` manifests, applied into this namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "GitSource",
    doc = "A git repository (branch, tag or commit, and a directory in it) whose SCS Cluster manifests kaas applies into this namespace, all or nothing per revision, and keeps applied. A source writes only into its own namespace. Progress in status.conditions (Ready) and status.errors (file and field path of every invalid document).",
    plural = "gitsources",
    singular = "gitsource",
    namespaced,
    status = "GitSourceStatus",
    shortname = "gitsrc",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision","description":"Commit applied last"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceSpec {
    /// Repository URL: `https://`, `http://` or `git://` (`file://` only where the operator allows
    /// it, for tests). Credentials never go into the URL: use `secretRef`.
    #[schemars(extend(
        "minLength" = 1,
        "maxLength" = 2048,
        "pattern" = r"^(https?|git|file)://[^\s]+$",
        "x-kubernetes-validations" = [{
            "rule": "!self.matches('^[a-z]+://[^/]*@')",
            "message": "credentials do not belong in the URL: put them into a Secret and name it in secretRef"
        }]
    ))]
    pub url: String,

    /// What to check out: exactly one of `branch`, `tag`, `commit`.
    #[serde(rename = "ref")]
    pub git_ref: GitRef,

    /// Directory in the repository whose `*.yaml` / `*.yml` files (recursively, multi-document)
    /// are applied. Default: the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxLength" = 1024,
        "x-kubernetes-validations" = [{
            "rule": "!self.matches('(^|/)[.][.](/|$)')",
            "message": "path must stay inside the repository (no '..')"
        }]
    ))]
    pub path: Option<String>,

    /// How often the repository is checked for a new revision (and drift is corrected), e.g.
    /// `1m`, `30s`, `1h`. At least 2s. Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "pattern" = INTERVAL_PATTERN,
        "maxLength" = 16,
        "x-kubernetes-validations" = [{
            "rule": "self != '' && duration(self) >= duration('2s')",
            "message": "interval must be at least 2s"
        }]
    ))]
    pub interval: Option<String>,

    /// Secret in this namespace with keys `username` and `password` (HTTP basic auth; a token as
    /// password for most forges). Its values never appear in status, events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretRef>,

    /// Delete Clusters of this source that are no longer in git (never those with
    /// `spec.deletionProtection: true`). Default false: they are only listed in `status.notPruned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,

    /// Stop fetching and applying (the Clusters stay as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// A git reference: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.commit) ? 1 : 0) == 1",
    "message": "set exactly one of branch, tag, commit"
}]))]
pub struct GitRef {
    /// Branch to follow (its newest commit), e.g. `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 255, "pattern" = r"^[^-\s~^:?*\[\\][^\s~^:?*\[\\]*$"))]
    pub branch: Option<String>,

    /// Tag (lightweight or annotated), e.g. `v1.2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 255, "pattern" = r"^[^-\s~^:?*\[\\][^\s~^:?*\[\\]*$"))]
    pub tag: Option<String>,

    /// Full commit id (40 hex digits); it must be reachable from a branch or tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^[0-9a-f]{40}$"))]
    pub commit: Option<String>,
}

/// A Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretRef {
    /// Name of the Secret.
    #[schemars(extend("minLength" = 1, "maxLength" = 253))]
    pub name: String,
}

/// Observed state, written by the kaas operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`: True (reason Synced) when the last fetched revision is applied; False with reason
    /// FetchFailed, ValidationFailed or ApplyFailed and a message otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Commit id fetched last (applied or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,

    /// Commit id applied last. Stays while a newer revision is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,

    /// When a revision was last applied with a change to a Cluster (or a Cluster pruned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// Every problem of the last attempted revision: file, field path, message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SourceError>,

    /// Clusters this source manages (in git at the last applied revision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,

    /// Clusters of this source that are no longer in git but were not deleted, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_pruned: Vec<NotPruned>,
}

/// One problem of one document.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SourceError {
    /// File in the repository (relative to its root); empty for problems of the whole source.
    #[serde(default)]
    pub file: String,
    /// Field path in the document, e.g. `spec.workers[0].flavor`; empty for the whole document.
    #[serde(default)]
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.file.is_empty(), self.path.is_empty()) {
            (true, true) => write!(f, "{}", self.message),
            (true, false) => write!(f, "{}: {}", self.path, self.message),
            (false, true) => write!(f, "{}: {}", self.file, self.message),
            (false, false) => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// A Cluster left in place although it is no longer in git.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotPruned {
    /// Cluster name.
    pub name: String,
    /// Why it was kept.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_is_namespaced_with_short_name_and_columns() {
        let crd = GitSource::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("gitsources.scs.community")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&["gitsrc".to_string()][..])
        );
        let cols: Vec<String> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(cols, ["URL", "Revision", "Ready", "Reason", "Age"]);
    }

    #[test]
    fn ref_serialises_as_ref() {
        let s: GitSourceSpec =
            serde_json::from_str(r#"{"url":"git://h/r","ref":{"branch":"main"}}"#).unwrap();
        assert_eq!(s.git_ref.branch.as_deref(), Some("main"));
        assert_eq!(serde_json::to_value(&s).unwrap()["ref"]["branch"], "main");
    }
}
