//! The kaas operator. One reconcile of an SCS `Cluster` is a pipeline:
//!
//! 1. [`dereference`] — read its `Provider` (the only stage that reads other objects);
//! 2. validate — `kaas_validate::validate`, the same pure function as `kaas validate`;
//! 3. render — `kaas_render::render`, pure;
//! 4. apply — the provider's [`backend::Backend`] (server-side apply, finalizer);
//! 5. observe and [`status`] — derive conditions and write them only when they change.

pub mod addons;
pub mod adopt;
pub mod backend;
pub mod compliance;
pub mod controller;
pub mod dereference;
pub mod doctor;
pub mod gitsource;
pub mod install;
pub mod leader;
pub mod maintenance;
pub mod metrics;
pub mod orphans;
pub mod provider;
pub mod status;
pub mod verify;

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Recorder;

pub use controller::{Config, run};

/// Field manager of everything the operator writes (so GitOps tools and kaas never fight).
pub const FIELD_MANAGER: &str = "kaas-operator";
/// Finalizer on SCS Clusters. Only identities that may patch `clusters/status` can remove it
/// (admission policy `kaas_api::policy::finalizer_protection`).
pub const FINALIZER: &str = kaas_api::policy::CLUSTER_FINALIZER;

/// Errors of one reconcile; all are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Rendering failed (validation should have prevented it).
    #[error(transparent)]
    Render(#[from] kaas_render::RenderError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Shared state of the controllers.
pub struct Context {
    /// Client with the operator's identity.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Providers this instance handles (empty: all).
    pub providers: BTreeSet<String>,
    /// Every Provider, kept current by a watch (read instead of a GET per reconcile).
    pub provider_store: kube::runtime::reflector::Store<kaas_api::Provider>,
}

impl Context {
    /// Whether this instance handles clusters of `provider`.
    pub fn handles(&self, provider: &str) -> bool {
        self.providers.is_empty() || self.providers.contains(provider)
    }
}
