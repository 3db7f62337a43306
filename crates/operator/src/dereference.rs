//! Finding a cluster's `Provider`: by `spec.provider.name`; without a name, the only provider of
//! the legacy `providerType` (or the only provider at all) — the choice of
//! [`kaas_validate::admission::choose`], the same as `kaas validate`, the REST API and GitSource.

use std::sync::Arc;

use kaas_api::{Cluster, Provider};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::types::Problem;

/// The provider of `cluster` from the operator's provider cache, or why there is none.
pub fn provider(store: &Store<Provider>, cluster: &Cluster) -> Result<Provider, Problem> {
    let named = cluster.spec.provider.as_ref().and_then(|p| p.name.as_ref());
    let providers: Vec<Arc<Provider>> = match named {
        // The named one is all the choice needs.
        Some(name) => store.get(&ObjectRef::new(name)).into_iter().collect(),
        None => store.state(),
    };
    choose(&providers, cluster)
}

/// Chooses among `providers` for `cluster` (pure); the error is the status message.
pub fn choose(providers: &[Arc<Provider>], cluster: &Cluster) -> Result<Provider, Problem> {
    kaas_validate::admission::choose_for(providers, cluster)
        .map(|p| (**p).clone())
        .map_err(|no| Problem::Provider(no.to_string()))
}
