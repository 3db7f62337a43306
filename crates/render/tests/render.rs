//! Rendering rules, independent of golden files.

use kaas_api::{Cluster, Provider};
use kaas_render::{render, spread};

const FULL: &str = include_str!("../../../examples/cluster-full.yaml");
const OPENSTACK: &str = include_str!("../../../examples/provider-openstack.yaml");
const DEV: &str = include_str!("../../../examples/provider-inmemory.yaml");

fn rendered(spec: &str, provider: &str) -> serde_json::Value {
    let mut c: Cluster = serde_yaml::from_str(FULL).unwrap();
    c.spec = serde_yaml::from_str(spec).unwrap();
    let p: Provider = serde_yaml::from_str(provider).unwrap();
    let r = kaas_validate::validate(&c, &p).unwrap();
    serde_json::to_value(render(&c, &r).unwrap().cluster).unwrap()
}

#[test]
fn spread_distributes_evenly_with_the_remainder_first() {
    assert_eq!(spread(7, 3), [3, 2, 2]);
    assert_eq!(spread(2, 3), [1, 1, 0]);
    assert_eq!(spread(5, 1), [5]);
    assert_eq!(spread(4, 0), [4]);
}

#[test]
fn cluster_api_objects_go_to_the_provider_side_namespace_and_share_the_class() {
    let c = rendered("{}", OPENSTACK);
    assert_eq!(c["apiVersion"], "cluster.x-k8s.io/v1beta2");
    assert_eq!(
        c["metadata"]["namespace"],
        kaas_render::capi_namespace("fra1", "tenant-a")
    );
    assert_eq!(c["metadata"]["name"], "prod");
    assert_eq!(
        c["spec"]["topology"]["classRef"],
        serde_json::json!({"name": "openstack-scs2-1-36-v2", "namespace": "kaas-provider-fra1"})
    );
    assert_eq!(c["spec"]["topology"]["version"], "v1.36.3");
    assert!(
        c["spec"]["topology"].get("workers").is_none(),
        "no empty lists (minItems: 1)"
    );
}

#[test]
fn a_pool_over_three_zones_becomes_three_machine_deployments() {
    let c = rendered(
        "workers: [{name: web, count: 7, zones: [fra1-a, fra1-b, fra1-c]}]",
        OPENSTACK,
    );
    let mds = c["spec"]["topology"]["workers"]["machineDeployments"]
        .as_array()
        .unwrap();
    let got: Vec<_> = mds
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["failureDomain"].as_str().unwrap(),
                m["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("web-fra1-a", "fra1-a", 3),
            ("web-fra1-b", "fra1-b", 2),
            ("web-fra1-c", "fra1-c", 2)
        ]
    );
    assert!(
        mds.iter()
            .all(|m| m["metadata"]["labels"]["scs.community/pool"] == "web")
    );
}

#[test]
fn autoscaled_pools_carry_autoscaler_bounds_and_no_replicas() {
    let c = rendered("workers: [{name: a, minCount: 2, maxCount: 6}]", OPENSTACK);
    let md = &c["spec"]["topology"]["workers"]["machineDeployments"][0];
    assert!(md.get("replicas").is_none());
    assert_eq!(
        md["metadata"]["annotations"]["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"],
        "2"
    );
    assert_eq!(
        md["metadata"]["annotations"]["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"],
        "6"
    );
}

#[test]
fn the_in_memory_stack_gets_no_variables() {
    let c = rendered("provider: {name: dev}\nworkers: [{name: a, count: 2}]", DEV);
    assert!(c["spec"]["topology"].get("variables").is_none());
    let md = &c["spec"]["topology"]["workers"]["machineDeployments"][0];
    assert_eq!(md["class"], "default-worker");
    assert!(md.get("variables").is_none());
    assert_eq!(c["spec"]["topology"]["classRef"]["name"], "in-memory");
}

#[test]
fn openstack_variables_follow_the_spec() {
    let c = rendered(
        "workers: [{name: a, flavor: SCS-8V-32}]\naccess: {apiServerAllowedCIDRs: [198.51.100.0/24]}",
        OPENSTACK,
    );
    let vars: std::collections::BTreeMap<String, serde_json::Value> =
        c["spec"]["topology"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v["value"].clone()))
            .collect();
    assert_eq!(vars["controlPlaneFlavor"], "SCS-2V-4");
    assert_eq!(vars["workerFlavor"], "SCS-8V-32");
    assert_eq!(vars["nodeCIDR"], "10.8.0.0/20");
    assert_eq!(vars["apiServerLoadBalancer"], "octavia-amphora");
    assert_eq!(vars["identityRef"]["name"], "kaas-provider-credentials");
    let md = &c["spec"]["topology"]["workers"]["machineDeployments"][0];
    assert_eq!(
        md["variables"]["overrides"][0],
        serde_json::json!({"name": "workerFlavor", "value": "SCS-8V-32"})
    );
}

#[test]
fn a_static_provider_renders_nothing() {
    let mut c: Cluster = serde_yaml::from_str(FULL).unwrap();
    c.spec = serde_yaml::from_str("import: {kubeconfigSecretRef: {name: kc}}").unwrap();
    let p: Provider = serde_yaml::from_str(
        "apiVersion: scs.community/v1alpha1\nkind: Provider\nmetadata: {name: imported}\nspec:\n  providerType: static\n  backend: {type: Static, namespace: kaas-provider-imported}\n  regions: [{name: onprem}]\n  flavors: [{name: any, cpu: 1, memory: 1Gi}]\n  kubernetesVersions: [{version: 1.35.0, classification: supported, stack: {clusterClass: none}}]\n  extensions: [{name: metrics, default: true}, {name: ingress, default: true}]\n",
    ).unwrap();
    let r = kaas_validate::validate(&c, &p).unwrap();
    assert!(render(&c, &r).is_err());
}
