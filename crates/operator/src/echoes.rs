//! The operator's own writes, recognised when their watch events come back.
//!
//! A reconcile that patches an SCS Cluster's finalizer or applies its Cluster API Cluster already
//! holds the object the API server answered with; the watch event of that very resourceVersion
//! carries nothing new and would only cost a second reconcile (and its requests) per new cluster.
//! Each write records the resourceVersion of its answer here; the trigger streams drop an event
//! with exactly that resourceVersion, once. Anything written after it — by a person, Cluster API
//! or kaas itself — has another resourceVersion and triggers as before; an event that arrives
//! before the write is recorded triggers too (one reconcile more, never one less).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Resource;
use kube::ResourceExt;

/// The last own write per object (`kind.group/namespace/name` → resourceVersion of its answer).
#[derive(Debug, Default)]
pub struct Echoes {
    last: Mutex<HashMap<String, String>>,
}

/// `kind.group/namespace/name` (the SCS and the Cluster API Cluster share the kind).
fn key_of<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> String {
    format!("{}.{}/{namespace}/{name}", K::kind(&()), K::group(&()))
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    key_of::<K>(&obj.namespace().unwrap_or_default(), &obj.name_any())
}

impl Echoes {
    /// Records `answer`, the API server's answer to an own write.
    pub fn record<K: Resource<DynamicType = ()>>(&self, answer: &K) {
        if let Some(rv) = answer.resource_version() {
            self.lock().insert(key(answer), rv);
        }
    }

    /// Whether `event` is the echo of the last recorded write (then forgotten: it is dropped once).
    pub fn is_echo<K: Resource<DynamicType = ()>>(&self, event: &K) -> bool {
        let Some(rv) = event.resource_version() else {
            return false;
        };
        let mut last = self.lock();
        let k = key(event);
        if last.get(&k) == Some(&rv) {
            last.remove(&k);
            return true;
        }
        false
    }

    /// Forgets `namespace/name` of kind `K` (deleted).
    pub fn forget<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) {
        self.lock().remove(&key_of::<K>(namespace, name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Echoes;
    use kaas_api::Cluster;
    use kaas_capi::cluster::Cluster as CapiCluster;

    fn at<K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned>(
        name: &str,
        rv: &str,
    ) -> K {
        serde_json::from_value(serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": name, "namespace": "t", "resourceVersion": rv},
            "spec": {},
        }))
        .unwrap()
    }

    #[test]
    fn only_the_answer_of_the_last_own_write_is_an_echo_and_only_once() {
        let e = Echoes::default();
        let none: CapiCluster = at("a", "5");
        assert!(!e.is_echo(&none), "nothing written");
        e.record(&at::<CapiCluster>("a", "7"));
        assert!(!e.is_echo(&at::<CapiCluster>("a", "6")), "an older event");
        assert!(!e.is_echo(&at::<CapiCluster>("b", "7")), "another object");
        assert!(
            !e.is_echo(&at::<Cluster>("a", "7")),
            "another kind, same name and version"
        );
        assert!(e.is_echo(&at::<CapiCluster>("a", "7")));
        assert!(
            !e.is_echo(&at::<CapiCluster>("a", "7")),
            "a relist delivering it again triggers"
        );
        e.record(&at::<CapiCluster>("a", "9"));
        e.forget::<CapiCluster>("t", "a");
        assert!(!e.is_echo(&at::<CapiCluster>("a", "9")), "forgotten");
    }
}
