//! Finding a cluster's `Provider`: by `spec.provider.name`; without a name, the only provider of
//! the legacy `providerType` (or the only provider at all).

use kaas_api::{Cluster, Provider};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::status::Problem;

/// The provider of `cluster` from the operator's provider cache, or why there is none.
pub fn provider(store: &Store<Provider>, cluster: &Cluster) -> Result<Provider, Problem> {
    let pref = cluster.spec.provider.clone().unwrap_or_default();
    if let Some(name) = &pref.name {
        return match store.get(&ObjectRef::new(name)) {
            Some(p) => Ok((*p).clone()),
            None => Err(Problem::Provider(format!(
                "spec.provider.name: provider {name:?} does not exist (kubectl get providers lists the offerings)"
            ))),
        };
    }
    let mut all: Vec<Provider> = store.state().iter().map(|p| (**p).clone()).collect();
    all.sort_by_key(|p| p.name_any());
    choose(all, pref.provider_type.as_deref())
}

/// Chooses among providers when the cluster names none (pure).
pub fn choose(all: Vec<Provider>, provider_type: Option<&str>) -> Result<Provider, Problem> {
    let candidates: Vec<Provider> = all
        .into_iter()
        .filter(|p| provider_type.is_none_or(|t| p.spec.provider_type == t))
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().expect("one candidate")),
        0 => Err(Problem::Provider(match provider_type {
            Some(t) => format!("spec.provider.providerType: no provider of type {t:?} exists"),
            None => "spec.provider.name: no provider exists".into(),
        })),
        _ => Err(Problem::Provider(format!(
            "spec.provider.name: required, {} providers could be meant ({})",
            candidates.len(),
            candidates
                .iter()
                .map(|p| p.name_any())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
