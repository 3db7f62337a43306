//! Adoption of an existing Cluster API cluster (built on a ClusterClass) as an SCS `Cluster`
//! managed by kaas, without recreating or rolling a machine (`docs/adoption.md`).
//!
//! Three parts, one module each:
//! - `handshake` ([`confirm`], [`locate`]): the SCS Cluster (tenant-writable) names the Cluster
//!   API Cluster in [`kaas_api::ANNOTATION_ADOPT_FROM`]; that Cluster API Cluster (in a namespace
//!   only the provider admin writes) names the SCS Cluster back in
//!   [`kaas_api::ANNOTATION_ADOPTED_BY`]. Only when both agree does the operator manage it;
//!   otherwise the SCS Cluster is not accepted and nothing of the named Cluster API cluster is
//!   read, written or deleted;
//! - `express`, the pure expressibility check ([`express()`]): can this Cluster API cluster be
//!   described as an SCS Cluster of provider P, and which Cluster is that — checked by rendering
//!   that Cluster and comparing every field kaas manages with the existing topology;
//! - `command` ([`plan`] and [`apply`]): what `kaas adopt` reads and writes.

mod command;
mod express;
mod handshake;

pub use command::*;
pub use express::*;
pub use handshake::*;

/// Field manager of what `kaas adopt` writes (never the operator's: an apply by the operator
/// would otherwise remove the `adopted-by` annotation it does not render).
pub const ADOPT_MANAGER: &str = "kaas-adopt";

/// Path of the tenant's annotation in error messages.
pub const ADOPT_FROM_PATH: &str = "metadata.annotations[scs.community/adopt-from]";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kaas_api::cluster::WorkerPool;

    use kaas_api::{ANNOTATION_ADOPT_FROM, ANNOTATION_ADOPTED_BY, Cluster, Provider};
    use kaas_capi::cluster::{Cluster as CapiCluster, ClusterTopologyWorkersMachineDeployments};

    use kaas_render::{ANNOTATION_MAX_SIZE, ANNOTATION_MIN_SIZE};

    use kube::ResourceExt;
    use serde_json::{Value, json};

    use crate::FIELD_MANAGER;

    const PROVIDER: &str = include_str!("../../../../examples/provider-inmemory.yaml");

    /// The upstream in-memory cluster template as `kaas_harness::in_memory_cluster` renders it.
    fn template(version: &str, class_ns: &str) -> CapiCluster {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: legacy, namespace: old-ns}}
spec:
  clusterNetwork:
    services: {{cidrBlocks: ["10.128.0.0/12"]}}
    pods: {{cidrBlocks: ["192.168.0.0/16"]}}
    serviceDomain: cluster.local
  topology:
    classRef: {{name: in-memory, namespace: {class_ns}}}
    version: {version}
    controlPlane: {{replicas: 1}}
    workers:
      machineDeployments:
      - {{class: default-worker, name: md-0, replicas: 2}}
"#
        ))
        .unwrap()
    }

    fn provider() -> Provider {
        serde_yaml::from_str(PROVIDER).unwrap()
    }

    /// The first MachineDeployment of `capi`'s topology.
    fn first_md(capi: &mut CapiCluster) -> &mut ClusterTopologyWorkersMachineDeployments {
        let t = capi.spec.topology.as_mut().unwrap();
        &mut t
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0]
    }

    #[test]
    fn a_pool_size_is_a_fixed_count_or_both_autoscaler_bounds() {
        let size = |replicas: Option<i32>, bounds: &[(&str, &str)]| {
            let md = ClusterTopologyWorkersMachineDeployments {
                name: "md-0".into(),
                replicas,
                ..Default::default()
            };
            let annotations: BTreeMap<String, String> = bounds
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut pool = WorkerPool::default();
            let mut refusals = Vec::new();
            pool_size(&md, &annotations, "p", &mut pool, &mut refusals);
            (pool.count, pool.min_count, pool.max_count, refusals)
        };
        assert_eq!(size(Some(3), &[]), (Some(3), None, None, vec![]));
        let bounds = [(ANNOTATION_MIN_SIZE, "1"), (ANNOTATION_MAX_SIZE, "5")];
        assert_eq!(size(None, &bounds), (None, Some(1), Some(5), vec![]));
        let (.., r) = size(Some(3), &bounds);
        assert!(
            r[0].starts_with("p: replicas and autoscaler annotations"),
            "{r:?}"
        );
        let (.., r) = size(None, &[]);
        assert!(r[0].starts_with("p.replicas: not set"), "{r:?}");
        let (.., r) = size(
            None,
            &[(ANNOTATION_MIN_SIZE, "1"), (ANNOTATION_MAX_SIZE, "x")],
        );
        assert!(r[0].contains("are not numbers"), "{r:?}");
        let (.., r) = size(None, &[(ANNOTATION_MIN_SIZE, "1")]);
        assert_eq!(r.len(), 1, "{r:?}");
    }

    #[test]
    fn the_in_memory_template_is_expressible_and_renders_to_the_same_topology() {
        let capi = template("v1.35.4", "old-ns");
        let v = express(&capi, &provider(), "tenant-a", "adopted", &[]);
        assert!(v.ok(), "{:?}", v.refusals);
        let spec = &v.cluster.spec;
        assert_eq!(
            spec.kubernetes.as_ref().unwrap().version.as_deref(),
            Some("1.35.4")
        );
        let pools = spec.workers.as_ref().unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!((pools[0].name.as_str(), pools[0].count), ("md-0", Some(2)));
        assert_eq!(
            v.cluster
                .annotations()
                .get(ANNOTATION_ADOPT_FROM)
                .map(String::as_str),
            Some("old-ns/legacy")
        );
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("old-ns/in-memory") && n.contains("kaas-provider-dev")),
            "{:?}",
            v.notes
        );
        assert!(
            v.notes.iter().any(|n| n.contains("serviceDomain")),
            "{:?}",
            v.notes
        );

        // Render it the way the operator does after the handshake and compare field by field.
        let resolved = kaas_validate::validate(&v.cluster, &provider()).unwrap();
        let (_, target) = {
            let mut capi = capi.clone();
            capi.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_ADOPTED_BY.to_string(),
                "tenant-a/adopted".to_string(),
            )]));
            let t = confirm(&v.cluster, Some(&capi)).unwrap().unwrap();
            (capi, t)
        };
        let r = kaas_render::render_at(&v.cluster, &resolved, Some(&target)).unwrap();
        assert!(r.adopted);
        assert_eq!(r.objects().len(), 1, "no Namespace for an adopted cluster");
        let (h, w) = (
            capi.spec.topology.as_ref().unwrap(),
            r.cluster.spec.topology.as_ref().unwrap(),
        );
        assert_eq!(r.cluster.metadata.name.as_deref(), Some("legacy"));
        assert_eq!(r.cluster.metadata.namespace.as_deref(), Some("old-ns"));
        assert_eq!(h.class_ref, w.class_ref);
        assert_eq!(h.version, w.version);
        assert_eq!(
            h.control_plane.as_ref().unwrap().replicas,
            w.control_plane.as_ref().unwrap().replicas
        );
        let (hm, wm) = (
            h.workers
                .as_ref()
                .unwrap()
                .machine_deployments
                .as_ref()
                .unwrap(),
            w.workers
                .as_ref()
                .unwrap()
                .machine_deployments
                .as_ref()
                .unwrap(),
        );
        assert_eq!(hm.len(), wm.len());
        assert_eq!(
            (
                &hm[0].name,
                &hm[0].class,
                hm[0].replicas,
                &hm[0].failure_domain
            ),
            (
                &wm[0].name,
                &wm[0].class,
                wm[0].replicas,
                &wm[0].failure_domain
            )
        );
        assert_eq!(w.variables, None);
        assert_eq!(
            r.cluster.spec.cluster_network.as_ref().unwrap().services,
            capi.spec.cluster_network.as_ref().unwrap().services
        );
        assert!(compare(&capi, &r.cluster).is_empty());
    }

    #[test]
    fn compare_names_every_field_kaas_would_change() {
        let capi = template("v1.35.4", "old-ns");
        let mut other = capi.clone();
        let t = other.spec.topology.as_mut().unwrap();
        t.version = "v1.36.3".into();
        t.class_ref.namespace = Some("kaas-provider-dev".into());
        t.workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0]
            .replicas = Some(3);
        let d = compare(&capi, &other);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("spec.topology.version:")));
        assert!(
            d.iter()
                .any(|l| l.starts_with("spec.topology.classRef.namespace:"))
        );
        assert!(
            d.iter()
                .any(|l| l.starts_with("spec.topology.workers.machineDeployments[md-0].replicas:"))
        );
    }

    #[test]
    fn refusals_name_each_reason() {
        let p = provider();
        // Not offered.
        let v = express(&template("v1.33.1", "old-ns"), &p, "t", "c", &[]);
        assert!(!v.ok());
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("spec.topology.version: v1.33.1 is not offered")),
            "{:?}",
            v.refusals
        );
        // Expired.
        let v = express(&template("v1.34.4", "old-ns"), &p, "t", "c", &[]);
        assert!(
            v.refusals.iter().any(|r| r.contains("expired")),
            "{:?}",
            v.refusals
        );
        // Another class, variables, machine pools, unknown worker class, standalone objects.
        let mut capi = template("v1.35.4", "old-ns");
        let t = capi.spec.topology.as_mut().unwrap();
        t.class_ref.name = "quick-start".into();
        t.variables = Some(vec![kaas_capi::cluster::ClusterTopologyVariables {
            name: "imageRepository".into(),
            value: json!("registry.example"),
        }]);
        let w = t.workers.as_mut().unwrap();
        w.machine_deployments.as_mut().unwrap()[0].class = "gpu-worker".into();
        w.machine_pools = Some(vec![Default::default()]);
        let v = express(&capi, &p, "t", "c", &["MachineDeployment extra".into()]);
        for want in [
            "spec.topology.classRef.name: \"quick-start\"",
            "spec.topology.variables[imageRepository]",
            "spec.topology.workers.machinePools",
            "MachineDeployment extra",
        ] {
            assert!(
                v.refusals.iter().any(|r| r.contains(want)),
                "{want}: {:?}",
                v.refusals
            );
        }
        // Worker class differs: caught by the comparison once everything else is expressible.
        let mut capi = template("v1.35.4", "old-ns");
        first_md(&mut capi).class = "gpu-worker".into();
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("spec.topology.workers.machineDeployments[md-0].class:")),
            "{:?}",
            v.refusals
        );
        // Judged by the admission every writer of a Cluster runs: the schema and its rules, then
        // the provider's offering.
        let mut capi = template("v1.35.4", "old-ns");
        capi.spec
            .cluster_network
            .as_mut()
            .unwrap()
            .pods
            .as_mut()
            .unwrap()
            .cidr_blocks = vec!["192.168.0.0/33".into()];
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("the SCS Cluster would be invalid: spec.network.pods")),
            "{:?}",
            v.refusals
        );
        let mut capi = template("v1.35.4", "old-ns");
        first_md(&mut capi).failure_domain = Some("zone-x".into());
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.starts_with("provider \"dev\" does not offer it: spec.workers[0].zones")),
            "{:?}",
            v.refusals
        );
        // No topology at all.
        let mut capi = template("v1.35.4", "old-ns");
        capi.spec.topology = None;
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(v.refusals.iter().any(|r| r.starts_with("spec.topology:")));
        // Adopted by someone else already.
        let mut capi = template("v1.35.4", "old-ns");
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "other/x".to_string(),
        )]));
        let v = express(&capi, &p, "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.contains("already adopted by \"other/x\""))
        );
    }

    #[test]
    fn autoscaled_and_zoned_pools_keep_their_topology() {
        let mut capi = template("v1.35.4", "old-ns");
        let md = &mut capi
            .spec
            .topology
            .as_mut()
            .unwrap()
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0];
        md.replicas = None;
        md.failure_domain = Some("zone-b".into());
        md.metadata = Some(
            kaas_capi::cluster::ClusterTopologyWorkersMachineDeploymentsMetadata {
                labels: Some(BTreeMap::from([("tier".to_string(), "web".to_string())])),
                annotations: Some(BTreeMap::from([
                    (ANNOTATION_MIN_SIZE.to_string(), "1".to_string()),
                    (ANNOTATION_MAX_SIZE.to_string(), "4".to_string()),
                ])),
            },
        );
        let v = express(&capi, &provider(), "t", "c", &[]);
        assert!(v.ok(), "{:?}", v.refusals);
        let pool = &v.cluster.spec.workers.as_ref().unwrap()[0];
        assert_eq!((pool.min_count, pool.max_count), (Some(1), Some(4)));
        assert_eq!(pool.zones.as_deref(), Some(&["zone-b".to_string()][..]));
        // A zone the region does not have is the offering's refusal.
        let md = &mut capi
            .spec
            .topology
            .as_mut()
            .unwrap()
            .workers
            .as_mut()
            .unwrap()
            .machine_deployments
            .as_mut()
            .unwrap()[0];
        md.failure_domain = Some("elsewhere".into());
        let v = express(&capi, &provider(), "t", "c", &[]);
        assert!(
            v.refusals
                .iter()
                .any(|r| r.contains("spec.workers[0].zones[0]")),
            "{:?}",
            v.refusals
        );
    }

    fn cluster_with(annotation: Option<&str>) -> Cluster {
        let mut c = Cluster::new("web", Default::default());
        c.metadata.namespace = Some("tenant-a".into());
        if let Some(a) = annotation {
            c.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_ADOPT_FROM.to_string(),
                a.to_string(),
            )]));
        }
        c
    }

    #[test]
    fn the_handshake_needs_both_sides() {
        let mut capi = template("v1.35.4", "old-ns");
        assert_eq!(confirm(&cluster_with(None), Some(&capi)), Ok(None));
        let c = cluster_with(Some("old-ns/legacy"));
        let e = confirm(&c, Some(&capi)).unwrap_err();
        assert!(
            e.starts_with("adoption not confirmed by the provider"),
            "{e}"
        );
        // Missing, not annotated, adopted by another SCS Cluster: one answer (no oracle).
        assert_eq!(confirm(&c, None).unwrap_err(), e);
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "tenant-b/web".to_string(),
        )]));
        assert_eq!(confirm(&c, Some(&capi)).unwrap_err(), e);
        assert!(!e.contains("tenant-b"), "{e}");
        capi.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_ADOPTED_BY.to_string(),
            "tenant-a/web".to_string(),
        )]));
        let t = confirm(&c, Some(&capi)).unwrap().unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("old-ns", "legacy")
        );
        assert_eq!(
            t.class_ref,
            Some(("in-memory".to_string(), Some("old-ns".to_string())))
        );
        for bad in ["legacy", "/legacy", "old-ns/", "a/b/c", ""] {
            assert!(
                confirm(&cluster_with(Some(bad)), Some(&capi)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn release_fields_hands_the_topology_to_the_operator() {
        let entry = |manager: &str, fields: Value, sub: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: sub.map(str::to_string),
            ..Default::default()
        };
        let creator = entry(
            "kubectl",
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {
                "f:clusterNetwork": {"f:pods": {"f:cidrBlocks": {}}, "f:serviceDomain": {}},
                "f:topology": {"f:version": {}, "f:classRef": {"f:name": {}}},
            }}),
            None,
        );
        let only_topology = entry(
            "other",
            json!({"f:spec": {"f:topology": {"f:version": {}}}}),
            None,
        );
        let status = entry("capi", json!({"f:status": {"f:phase": {}}}), Some("status"));
        let operator = entry(
            FIELD_MANAGER,
            json!({"f:spec": {"f:topology": {"f:version": {}}}}),
            None,
        );
        let out = release_fields(&[creator, only_topology, status.clone(), operator.clone()]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {"f:clusterNetwork": {"f:serviceDomain": {}}}})
        );
        assert_eq!(out[1], status);
        assert_eq!(out[2], operator);
    }
}
