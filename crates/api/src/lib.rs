//! SCS-API v1alpha1 (`scs.community`): the `Cluster` a tenant writes and the `Provider` offering
//! that makes a provider discoverable. Types only: validation lives in `kaas-validate`, rendering in
//! `kaas-render`.

pub mod addons;
pub mod backup;
pub mod cluster;
pub mod conditions;
pub mod gitsource;
pub mod hibernation;
pub mod hosted;
pub mod kubeconfig;
pub mod legacy;
pub mod policy;
pub mod provider;
pub mod version;

pub use backup::{ClusterBackup, ClusterRestore};
pub use cluster::{Cluster, ClusterSpec, ClusterStatus};
pub use gitsource::{GitSource, GitSourceSpec, GitSourceStatus};
pub use hosted::{HostedControlPlane, HostedControlPlaneSpec, HostedControlPlaneStatus};
pub use kubeconfig::{KubeconfigRequest, KubeconfigRequestSpec, KubeconfigRequestStatus};
pub use provider::{Provider, ProviderSpec, ProviderStatus};
pub use version::KubeVersion;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of the SCS-API.
pub const GROUP: &str = "scs.community";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// Annotation on an SCS `Cluster` (tenant side) naming the existing Cluster API Cluster it
/// stands for, `<namespace>/<name>` (`docs/adoption.md`). Effective only together with
/// [`ANNOTATION_ADOPTED_BY`] on that Cluster API Cluster.
pub const ANNOTATION_ADOPT_FROM: &str = "scs.community/adopt-from";
/// Annotation on an adopted Cluster API `Cluster` (provider side, written by `kaas adopt`):
/// `<tenant namespace>/<SCS Cluster name>` of the one SCS Cluster allowed to manage it.
pub const ANNOTATION_ADOPTED_BY: &str = "scs.community/adopted-by";

/// Every CRD of the SCS-API, ready to apply.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        cluster::crd(),
        Provider::crd(),
        GitSource::crd(),
        HostedControlPlane::crd(),
        KubeconfigRequest::crd(),
        ClusterBackup::crd(),
        ClusterRestore::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serialises to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}
