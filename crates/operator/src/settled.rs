//! Settled clusters cost nothing between full passes.
//!
//! A cluster whose last reconcile found it `Ready` (or hibernated, at rest) is reconciled again
//! every few minutes as a safety net — maintenance windows open, schedules fire, versions reach
//! their end of life. Nearly always nothing changed, and each full pass reads and re-writes what it
//! wrote before (the namespace, the tenant's RoleBinding, the autoscaler, the MachineDeployments,
//! the kubeconfig copy, the addon bundle and inventory): about ten requests per cluster.
//!
//! So a full pass of a settled cluster — Ready with every addon applied and its workloads
//! available and no upgrade held by a hook, or hibernated at rest — records a digest of everything
//! it acted on that the operator can know (nearly) without a request: the SCS Cluster (what
//! triggers a reconcile, and the status the pass left), the Provider's resourceVersion, a token of
//! the backend's objects (the resourceVersion of the cached Cluster API Cluster, whose every
//! change a watch delivers; for a stack that copies the provider's credentials, their Secret's
//! resourceVersion, read once a minute per provider) and the pure plan (the resolved cluster and
//! the version to roll out now). A later reconcile with the same digest, less than [`RESYNC`]
//! after the full pass and with no compliance check due, ends there: no request at all. Anything
//! else — a spec, label or annotation change, someone else's status write, a Provider change, a
//! Cluster API change, a maintenance window opening, a rotated provider credential (at the next
//! requeue after the minute), a changed RoleBinding in the cluster's namespace (counted per
//! namespace by a metadata watch, [`Epochs`]: at the next requeue), a changed addon bundle (its
//! watch forgets every digest and triggers every cluster; a pass under way then records
//! nothing) — makes a full pass.
//!
//! What no watch shows is repaired by the full pass after [`RESYNC`] (before: within the 5-minute
//! requeue), together with the hourly compliance check: an addon deleted or changed inside the
//! workload cluster, the tenant's kubeconfig copy deleted or Cluster API's kubeconfig rotated, the
//! autoscaler Deployment or the copied provider credentials deleted or changed, a namespace's
//! labels changed, and a rotated tenant cloud-credentials Secret in the provider namespace (unless
//! the rotation annotates the Provider, `docs/stacks.md`).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use kaas_api::{Cluster, ClusterStatus, Provider};
use kube::ResourceExt;

use crate::Written;

/// The longest a settled cluster goes without a full pass: the interval of the compliance
/// check, so the two coincide.
pub const RESYNC: Duration = crate::compliance::INTERVAL;

/// What a full pass of a cluster acted on, except its status (which the pass may change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs(u64);

impl Inputs {
    /// The inputs of a reconcile: the SCS Cluster's trigger (`trigger` — generation, labels,
    /// annotations, finalizers, deletion), the Provider, the backend's `token` and the plan.
    pub fn of(
        trigger: Option<u64>,
        provider: &Provider,
        token: &str,
        plan: &impl serde::Serialize,
        note: Option<&str>,
    ) -> Inputs {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        trigger.hash(&mut h);
        provider.uid().hash(&mut h);
        provider.resource_version().hash(&mut h);
        token.hash(&mut h);
        Written::hash_of(plan).hash(&mut h);
        note.hash(&mut h);
        Inputs(h.finish())
    }

    /// The digest of these inputs with `status`.
    pub fn with(self, status: Option<&ClusterStatus>) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut h);
        Written::hash_of(&status).hash(&mut h);
        h.finish()
    }
}

/// The key of a cluster's digest.
pub fn key(cluster: &Cluster) -> String {
    key_of(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
    )
}

/// The key of the digest of the cluster `namespace/name`.
pub fn key_of(namespace: &str, name: &str) -> String {
    format!("Settled/{namespace}/{name}")
}

/// A counter per namespace of changes no cluster's own objects show (its RoleBindings: who may see
/// the tenant's Cluster API objects); part of the digest of the namespace's clusters.
#[derive(Debug, Default)]
pub struct Epochs(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl Epochs {
    /// Counts a change in `namespace`.
    pub fn bump(&self, namespace: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(namespace.to_string()).or_default() += 1;
    }

    /// The count of `namespace`.
    pub fn of(&self, namespace: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(namespace).copied().unwrap_or_default()
    }
}

/// The digests of settled clusters' last full passes (a [`Written`] whose entries live [`RESYNC`]).
pub fn memo() -> Written {
    Written::new(RESYNC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(rv: &str) -> Provider {
        let mut p: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-inmemory.yaml"))
                .expect("the example provider");
        p.metadata.uid = Some("u1".into());
        p.metadata.resource_version = Some(rv.into());
        p
    }

    fn resolved(hibernated: bool) -> serde_json::Value {
        serde_json::json!({"provider": "p", "version": "1.33.1", "hibernated": hibernated})
    }

    #[test]
    fn every_input_and_the_status_count() {
        let (p, r) = (provider("1"), resolved(false));
        let base = Inputs::of(Some(1), &p, "7", &r, None);
        assert_eq!(base, Inputs::of(Some(1), &p, "7", &r, None));
        let others = [
            Inputs::of(Some(2), &p, "7", &r, None),
            Inputs::of(None, &p, "7", &r, None),
            Inputs::of(Some(1), &provider("2"), "7", &r, None),
            Inputs::of(Some(1), &p, "8", &r, None),
            Inputs::of(
                Some(1),
                &p,
                "7",
                &r,
                Some("waits for the maintenance window"),
            ),
            Inputs::of(Some(1), &p, "7", &resolved(true), None),
        ];
        for o in others {
            assert_ne!(base, o);
        }
        let ready = ClusterStatus {
            phase: Some(kaas_api::cluster::ClusterPhase::Ready),
            ..Default::default()
        };
        assert_eq!(base.with(Some(&ready)), base.with(Some(&ready.clone())));
        assert_ne!(base.with(Some(&ready)), base.with(None));
        assert_ne!(
            base.with(Some(&ready)),
            base.with(Some(&ClusterStatus::default()))
        );
    }

    #[test]
    fn a_namespace_counts_its_own_changes() {
        let e = Epochs::default();
        assert_eq!((e.of("t1"), e.of("t2")), (0, 0));
        e.bump("t1");
        e.bump("t1");
        assert_eq!((e.of("t1"), e.of("t2")), (2, 0));
    }

    #[test]
    fn a_digest_is_held_until_resync_or_forgotten() {
        let m = Written::new(Duration::from_millis(50));
        m.record("Settled/t/a", 1);
        assert!(m.fresh("Settled/t/a", 1));
        assert!(!m.fresh("Settled/t/b", 1));
        m.record("Settled/t/a", 1);
        assert!(!m.fresh("Settled/t/a", 2), "another digest is a full pass");
        assert!(!m.fresh("Settled/t/a", 1), "and the old one is gone");
        m.record("Settled/t/a", 1);
        m.clear();
        assert!(!m.fresh("Settled/t/a", 1));
        m.record("Settled/t/a", 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            !m.fresh("Settled/t/a", 1),
            "a full pass after the resync period"
        );
    }
}
