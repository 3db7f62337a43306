//! The worker pools of Cluster API Clusters, kept from one watch of their MachineDeployments:
//! an index by Cluster API Cluster of just what the pools show, so a reconcile reads its pools
//! without a LIST and a settled cluster's digest names them, at 10,000 clusters without scanning
//! every MachineDeployment.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use kaas_capi::machinedeployment::MachineDeployment;
use kaas_render::LABEL_POOL;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::types::PoolObservation;

/// What one MachineDeployment adds to its pool. Pure data, from [`Part::of`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Part {
    /// The pool: the pool label, else the topology's name, else the MachineDeployment's own.
    pub pool: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.replicas`.
    pub current: i32,
    /// `status.versions`.
    pub versions: Vec<String>,
}

impl Part {
    /// What `md` adds to its pool.
    pub fn of(md: &MachineDeployment) -> Part {
        let labels = md.labels();
        let status = md.status.as_ref();
        Part {
            pool: labels
                .get(LABEL_POOL)
                .or_else(|| labels.get("topology.cluster.x-k8s.io/deployment-name"))
                .cloned()
                .unwrap_or_else(|| md.name_any()),
            desired: md.spec.replicas.unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            current: status.and_then(|s| s.replicas).unwrap_or(0),
            versions: status
                .and_then(|s| s.versions.as_ref())
                .map(|v| v.iter().map(|v| v.version.clone()).collect())
                .unwrap_or_default(),
        }
    }
}

/// Worker pools from MachineDeployments (name, part), grouped by pool, in pool order. Pure.
pub fn group<'a>(parts: impl Iterator<Item = (&'a str, &'a Part)>) -> Vec<PoolObservation> {
    let mut pools: BTreeMap<String, PoolObservation> = BTreeMap::new();
    for (name, part) in parts {
        let e = pools
            .entry(part.pool.clone())
            .or_insert_with(|| PoolObservation {
                name: part.pool.clone(),
                ..Default::default()
            });
        e.machine_deployments.push(name.to_string());
        e.desired += part.desired;
        e.ready += part.ready;
        e.current += part.current;
        for v in &part.versions {
            if !e.versions.contains(v) {
                e.versions.push(v.clone());
            }
        }
    }
    pools.into_values().collect()
}

/// `namespace/cluster` of a MachineDeployment (Cluster API's cluster-name label); `None` without.
fn cluster_key(md: &MachineDeployment) -> Option<String> {
    let cluster = md.labels().get(kaas_capi::LABEL_CLUSTER_NAME)?;
    Some(format!("{}/{cluster}", md.namespace()?))
}

/// The index: per Cluster API Cluster (`namespace/name`) its MachineDeployments' parts by name.
#[derive(Default)]
pub struct Pools {
    state: RwLock<State>,
    /// A watch that keeps failing (e.g. allowed to list but not to watch) must not leave a
    /// frozen index in use.
    health: crate::WatchHealth,
}

#[derive(Default)]
struct State {
    by_cluster: HashMap<String, BTreeMap<String, Part>>,
    /// The cluster key each MachineDeployment (`namespace/name`) is indexed under: a deletion
    /// (whose object may lack the label) or a changed label finds it there.
    by_md: HashMap<String, String>,
    /// The relist under way (between `Init` and `InitDone`), replacing `by_cluster` when done.
    relist: Option<HashMap<String, BTreeMap<String, Part>>>,
    /// A list completed since the start.
    filled: bool,
}

impl Pools {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one watch event; returns the MachineDeployments whose part changed, appeared or
    /// went (a deleted one as last seen), whose clusters' reconciles are due. A relist's changes
    /// show at its end (one per cluster whose MachineDeployments differ from before).
    pub fn apply(&self, event: &Event<MachineDeployment>) -> Vec<MachineDeployment> {
        if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) {
            self.health.delivered();
        }
        let mut st = self.write();
        match event {
            Event::Init => {
                st.relist = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(md) => {
                if let (Some(key), Some(relist)) = (cluster_key(md), st.relist.as_mut()) {
                    relist
                        .entry(key)
                        .or_default()
                        .insert(md.name_any(), Part::of(md));
                }
                Vec::new()
            }
            Event::InitDone => {
                let Some(new) = st.relist.take() else {
                    return Vec::new();
                };
                // Clusters whose MachineDeployments changed, came or all went while no watch
                // ran: one stub each (it names the cluster).
                let mut changed: Vec<MachineDeployment> = Vec::new();
                let mut seen: std::collections::HashSet<&String> = Default::default();
                for (k, parts) in new.iter().chain(st.by_cluster.iter()) {
                    if st.by_cluster.get(k) != new.get(k)
                        && seen.insert(k)
                        && let (Some((ns, cluster)), Some(name)) =
                            (k.split_once('/'), parts.keys().next())
                    {
                        changed.push(stub(ns, cluster, name));
                    }
                }
                st.by_md = new
                    .iter()
                    .flat_map(|(k, parts)| {
                        let ns = k.split_once('/').map_or("", |(ns, _)| ns);
                        parts.keys().map(move |n| (format!("{ns}/{n}"), k.clone()))
                    })
                    .collect();
                st.by_cluster = new;
                st.filled = true;
                changed
            }
            Event::Apply(md) => {
                let id = md_id(md);
                let before = st.by_md.get(&id).cloned();
                let Some(key) = cluster_key(md) else {
                    // The label is gone: the MachineDeployment no longer counts for its cluster.
                    return st.remove(&id, before).into_iter().collect();
                };
                let mut out = Vec::new();
                if before.as_ref().is_some_and(|b| *b != key) {
                    out.extend(st.remove(&id, before));
                }
                let part = Part::of(md);
                let parts = st.by_cluster.entry(key.clone()).or_default();
                if parts.get(&md.name_any()) != Some(&part) {
                    parts.insert(md.name_any(), part);
                    out.push(md.clone());
                }
                st.by_md.insert(id, key);
                out
            }
            Event::Delete(md) => {
                let id = md_id(md);
                let before = st.by_md.get(&id).cloned().or_else(|| cluster_key(md));
                vec![st.remove(&id, before).unwrap_or_else(|| md.clone())]
            }
        }
    }

    /// The watch failed: the index is not used for a while ([`crate::WatchHealth`]).
    pub fn failed(&self) {
        self.health.failed();
    }

    /// The worker pools of the Cluster API Cluster `ns/name`; `None` while the index is not
    /// filled or its watch is failing (then the caller lists them).
    pub fn of(&self, ns: &str, name: &str) -> Option<Vec<PoolObservation>> {
        let st = self.read();
        if !(st.filled && self.health.usable()) {
            return None;
        }
        Some(match st.by_cluster.get(&format!("{ns}/{name}")) {
            Some(parts) => group(parts.iter().map(|(n, p)| (n.as_str(), p))),
            None => Vec::new(),
        })
    }

    /// A digest of what the pools of `ns/name` show, for the settled digest; `None` while the
    /// index is not filled or failing, or the cluster has no MachineDeployment.
    pub fn digest(&self, ns: &str, name: &str) -> Option<u64> {
        let st = self.read();
        if !(st.filled && self.health.usable()) {
            return None;
        }
        let parts = st.by_cluster.get(&format!("{ns}/{name}"))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut h);
        Some(h.finish())
    }
}

/// `namespace/name` of a MachineDeployment.
fn md_id(md: &MachineDeployment) -> String {
    format!("{}/{}", md.namespace().unwrap_or_default(), md.name_any())
}

impl State {
    /// Drops the MachineDeployment `id` (`namespace/name`) from the cluster `key` it was indexed
    /// under; returns a stub naming that cluster, whose reconcile is due.
    fn remove(&mut self, id: &str, key: Option<String>) -> Option<MachineDeployment> {
        self.by_md.remove(id);
        let key = key?;
        let (ns, name) = id.split_once('/')?;
        if let Some(parts) = self.by_cluster.get_mut(&key) {
            parts.remove(name);
            if parts.is_empty() {
                self.by_cluster.remove(&key);
            }
        }
        let (_, cluster) = key.split_once('/')?;
        Some(stub(ns, cluster, name))
    }
}

/// A MachineDeployment that carries only what maps it to its cluster (namespace, name, the
/// cluster-name label), for a trigger.
fn stub(ns: &str, cluster: &str, name: &str) -> MachineDeployment {
    let mut md = MachineDeployment::new(name, Default::default());
    md.metadata.namespace = Some(ns.to_string());
    md.metadata.labels = Some(BTreeMap::from([(
        kaas_capi::LABEL_CLUSTER_NAME.to_string(),
        cluster.to_string(),
    )]));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(name: &str, ns: &str, cluster: &str, pool: &str, ready: i32) -> MachineDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "7",
                "labels": {"cluster.x-k8s.io/cluster-name": cluster, "scs.community/pool": pool}},
            "spec": {"clusterName": cluster, "replicas": 2,
                "selector": {"matchLabels": {"x": "y"}},
                "template": {"metadata": {"labels": {"x": "y"}},
                    "spec": {"clusterName": cluster, "version": "v1.35.1",
                        "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io",
                            "kind": "KubeadmConfigTemplate", "name": "t"}},
                        "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                            "kind": "DevMachineTemplate", "name": "t"}}}},
            "status": {"replicas": 2, "readyReplicas": ready,
                "versions": [{"version": "v1.35.1", "replicas": 2}],
                "conditions": [{"type": "Available", "status": "True", "reason": "Available",
                    "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    fn listed(pools: &Pools, mds: &[MachineDeployment]) -> Vec<String> {
        let mut changed = pools.apply(&Event::Init);
        for m in mds {
            changed.extend(pools.apply(&Event::InitApply(m.clone())));
        }
        changed.extend(pools.apply(&Event::InitDone));
        changed.iter().map(|m| m.name_any()).collect()
    }

    const NS: &str = "kaas-dev-t-1";

    #[test]
    fn pools_are_those_of_that_clusters_machine_deployments() {
        let all = [
            md("c-w-a", NS, "c", "w", 2),
            md("c-w-b", NS, "c", "w", 1),
            md("c-big", NS, "c", "big", 0),
            md("d-w", NS, "d", "w", 2),
            md("c-w", "kaas-dev-u-1", "c", "w", 2),
        ];
        let pools = Pools::default();
        assert!(pools.of(NS, "c").is_none(), "not filled: the caller lists");
        listed(&pools, &all);
        let got = pools.of(NS, "c").expect("filled");
        assert_eq!(
            got.iter()
                .map(|p| (
                    p.name.as_str(),
                    p.desired,
                    p.ready,
                    p.current,
                    p.machine_deployments.join(",")
                ))
                .collect::<Vec<_>>(),
            [
                ("big", 2, 0, 2, "c-big".to_string()),
                ("w", 4, 3, 4, "c-w-a,c-w-b".to_string())
            ]
        );
        assert_eq!(got[1].versions, ["v1.35.1"]);
        assert_eq!(pools.of(NS, "gone"), Some(Vec::new()));
        assert!(pools.digest(NS, "gone").is_none());
        // A failing watch leaves the index unused until the watch delivers again.
        pools.failed();
        assert!(pools.of(NS, "c").is_none());
        assert!(pools.digest(NS, "c").is_none());
        pools.apply(&Event::Init);
        assert!(pools.of(NS, "c").is_none(), "a relist shows nothing yet");
        pools.apply(&Event::Apply(all[0].clone()));
        assert!(pools.of(NS, "c").is_some());
    }

    #[test]
    fn only_a_change_of_what_the_pools_show_triggers_and_a_deletion_always_does() {
        let pools = Pools::default();
        let first = listed(
            &pools,
            &[md("c-w", NS, "c", "w", 1), md("d-w", NS, "d", "w", 1)],
        );
        assert_eq!(first.len(), 2, "new clusters: {first:?}");
        let digest = pools.digest(NS, "c");
        // A condition, an annotation, a resourceVersion: nothing the pools show.
        let mut same = md("c-w", NS, "c", "w", 1);
        same.status.as_mut().unwrap().conditions = None;
        same.metadata.resource_version = Some("8".into());
        same.metadata.annotations = Some(BTreeMap::from([("a".into(), "b".into())]));
        assert!(pools.apply(&Event::Apply(same.clone())).is_empty());
        assert_eq!(pools.digest(NS, "c"), digest);
        // Ready replicas, wanted replicas: triggers, and the digest moves.
        let ready = md("c-w", NS, "c", "w", 2);
        assert_eq!(pools.apply(&Event::Apply(ready.clone())).len(), 1);
        assert_ne!(pools.digest(NS, "c"), digest);
        let mut wanted = ready.clone();
        wanted.spec.replicas = Some(3);
        assert_eq!(pools.apply(&Event::Apply(wanted.clone())).len(), 1);
        assert_eq!(pools.of(NS, "c").unwrap()[0].desired, 3);
        // A deletion triggers even though nothing else changed, and the pool goes.
        assert_eq!(pools.apply(&Event::Delete(wanted)).len(), 1);
        assert_eq!(pools.of(NS, "c"), Some(Vec::new()));
        // A relist reports only the clusters that changed meanwhile.
        let again = listed(
            &pools,
            &[md("d-w", NS, "d", "w", 1), md("c-x", NS, "c", "x", 0)],
        );
        assert_eq!(again, ["c-x"]);
        assert_eq!(pools.of(NS, "c").unwrap()[0].name, "x");
        // … also those whose MachineDeployments all went meanwhile.
        let gone = listed(&pools, &[md("c-x", NS, "c", "x", 0)]);
        assert_eq!(gone, ["d-w"], "a stub naming cluster d");
        assert_eq!(pools.of(NS, "d"), Some(Vec::new()));
        // A MachineDeployment that loses Cluster API's cluster-name label leaves its cluster's
        // pools, and the cluster is reconciled; one without it is not indexed.
        let mut unlabelled = md("c-x", NS, "c", "x", 0);
        unlabelled.metadata.labels = None;
        let left = pools.apply(&Event::Apply(unlabelled.clone()));
        assert_eq!(
            left.iter().map(cluster_key).collect::<Vec<_>>(),
            [Some(format!("{NS}/c"))]
        );
        assert_eq!(pools.of(NS, "c"), Some(Vec::new()));
        assert!(pools.apply(&Event::Apply(unlabelled.clone())).is_empty());
        // A deletion whose object lacks the label still finds the cluster it was indexed under.
        let moved = md("c-y", NS, "c", "y", 0);
        pools.apply(&Event::Apply(moved.clone()));
        let mut deleted = moved.clone();
        deleted.metadata.labels = None;
        let due = pools.apply(&Event::Delete(deleted));
        assert_eq!(
            due.iter().map(cluster_key).collect::<Vec<_>>(),
            [Some(format!("{NS}/c"))]
        );
        assert_eq!(pools.of(NS, "c"), Some(Vec::new()));
        // A changed cluster-name label moves it, and both clusters are reconciled.
        pools.apply(&Event::Apply(moved.clone()));
        let mut relabelled = moved;
        relabelled
            .labels_mut()
            .insert(kaas_capi::LABEL_CLUSTER_NAME.into(), "e".into());
        let both = pools.apply(&Event::Apply(relabelled));
        assert_eq!(
            both.iter().map(cluster_key).collect::<Vec<_>>(),
            [Some(format!("{NS}/c")), Some(format!("{NS}/e"))]
        );
        assert_eq!(pools.of(NS, "c"), Some(Vec::new()));
        assert_eq!(pools.of(NS, "e").unwrap()[0].name, "y");
    }
}
