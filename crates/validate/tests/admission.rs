//! The admission layer evaluated client-side from the CRD: schema and CEL rules, with the exact
//! field paths. The same cases run against a real API server in `crates/harness/tests`.

use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;
use serde_json::Value;

fn object(spec: &str) -> Value {
    let spec: Value = serde_yaml::from_str(spec).unwrap();
    serde_json::json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "t"},
        "spec": spec,
    })
}

fn errors(spec: &str) -> Vec<String> {
    let schema = crd_schema(&kaas_api::Cluster::crd());
    admit(&schema, &object(spec), None)
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn update_errors(old: &str, new: &str) -> Vec<String> {
    let schema = crd_schema(&kaas_api::Cluster::crd());
    admit(&schema, &object(new), Some(&object(old)))
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn paths(spec: &str) -> Vec<String> {
    errors(spec)
        .into_iter()
        .map(|e| e.split(": ").next().unwrap().to_string())
        .collect()
}

#[test]
fn valid_objects_pass() {
    for spec in [
        "{}",
        include_str!("fixtures/legacy-spec.yaml"),
        "kubernetes: {version: v1.24.0-rc.1}",
        "kubernetes: {version: 1.35.x}",
        "controlPlane: {replicas: 5}",
        "workers: [{name: a, minCount: 1, maxCount: 3}, {name: b, count: 2}, {name: c}]",
        "extensions: {metrics: {enabled: true}}",
        "network: {pods: ['10.244.0.0/16', 'fd00::/64']}",
        "maintenance: {window: {start: '23:30', duration: 2h30m}}",
        "access: {oidc: {issuerURL: 'https://id.example.com', clientID: k8s}}",
    ] {
        assert_eq!(errors(spec), Vec::<String>::new(), "{spec}");
    }
}

#[test]
fn version_syntax_is_checked() {
    assert_eq!(
        paths("kubernetes: {version: '1.35'}"),
        ["spec.kubernetes.version"]
    );
    assert_eq!(
        paths("kubernetes: {version: latest}"),
        ["spec.kubernetes.version"]
    );
}

#[test]
fn control_plane_replicas_must_be_1_3_or_5() {
    assert_eq!(
        errors("controlPlane: {replicas: 2}"),
        ["spec.controlPlane.replicas: control-plane replicas must be 1, 3 or 5"]
    );
}

#[test]
fn pool_names_are_dns_labels_and_unique() {
    assert_eq!(
        paths("workers: [{name: Bad_Name}]"),
        ["spec.workers[0].name"]
    );
    assert_eq!(
        errors("workers: [{name: a}, {name: a}]"),
        ["spec.workers: worker pool names must be unique"]
    );
    assert_eq!(
        errors("workers: [{flavor: x}]"),
        ["spec.workers[0].name: required value"]
    );
}

#[test]
fn count_or_min_max() {
    assert_eq!(
        paths("workers: [{name: a, count: 0}]"),
        ["spec.workers[0].count"]
    );
    assert_eq!(
        errors("workers: [{name: a, count: 2, minCount: 1, maxCount: 3}]"),
        ["spec.workers[0]: set either count or minCount/maxCount (autoscaling), not both"]
    );
    assert_eq!(
        errors("workers: [{name: a, minCount: 1}]"),
        ["spec.workers[0]: minCount and maxCount must be set together"]
    );
    assert_eq!(
        errors("workers: [{name: a, minCount: 4, maxCount: 3}]"),
        ["spec.workers[0].minCount: minCount must not be greater than maxCount"]
    );
}

#[test]
fn metrics_cannot_be_disabled_in_extensions() {
    assert_eq!(
        errors("extensions: {metrics: {enabled: false}}"),
        [
            "spec.extensions.metrics.enabled: metrics is a mandatory extension and cannot be disabled"
        ]
    );
    // The legacy switch stays valid (warning at the offering layer).
    assert_eq!(
        errors("addons: {metricsServer: {enabled: false}}"),
        Vec::<String>::new()
    );
}

#[test]
fn cidrs_urls_and_windows_are_checked() {
    assert_eq!(
        paths("network: {pods: [10.244.0.0]}"),
        ["spec.network.pods[0]"]
    );
    assert_eq!(
        paths("access: {oidc: {issuerURL: 'http://id.example.com', clientID: k}}"),
        ["spec.access.oidc.issuerURL"]
    );
    assert_eq!(
        paths(
            "access: {oidc: {issuerURL: 'https://id.example.com', clientID: k, certificateAuthority: 'not a certificate'}}"
        ),
        ["spec.access.oidc.certificateAuthority"]
    );
    assert_eq!(
        paths("maintenance: {window: {start: '25:00', duration: 1h}}"),
        ["spec.maintenance.window.start"]
    );
    assert_eq!(
        paths("maintenance: {window: {start: '01:00', duration: 10m}}"),
        ["spec.maintenance.window.duration"]
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    assert_eq!(
        paths("workers: [{name: a, flavour: x}]"),
        ["spec.workers[0].flavour"]
    );
    assert_eq!(
        paths("extensions: {gatewayApi: {enabled: true}}"),
        ["spec.extensions.gatewayApi"]
    );
}

#[test]
fn wrong_types_are_reported() {
    assert_eq!(
        errors("workers: [{name: a, count: three}]"),
        ["spec.workers[0].count: must be of type integer, got string"]
    );
}

#[test]
fn provider_and_region_are_immutable() {
    let old = "provider: {name: fra1, region: fra1}";
    assert_eq!(update_errors(old, old), Vec::<String>::new());
    assert_eq!(
        update_errors(old, "provider: {name: fra2, region: fra1}"),
        [
            "spec.provider.name: provider.name is immutable: a cluster cannot move to another provider (create a new Cluster there instead)"
        ]
    );
    assert_eq!(
        update_errors(old, "provider: {name: fra1}"),
        ["spec.provider.region: provider.region is immutable"]
    );
    // Other fields may change.
    assert_eq!(
        update_errors(
            old,
            "provider: {name: fra1, region: fra1}\nworkers: [{name: a}]"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn zones_are_sets() {
    assert_eq!(
        errors("controlPlane: {zones: [a, b, a]}"),
        [r#"spec.controlPlane.zones[2]: duplicate value "a""#]
    );
    assert_eq!(
        paths("workers: [{name: w, zones: [x, x]}]"),
        ["spec.workers[0].zones[1]"]
    );
}

#[test]
fn a_cluster_name_longer_than_a_label_is_refused_at_metadata_name() {
    let schema = crd_schema(&kaas_api::Cluster::crd());
    let mut obj = object("{}");
    obj["metadata"]["name"] = Value::String("a".repeat(64));
    let errs = admit(&schema, &obj, None);
    assert_eq!(errs.paths(), ["metadata.name"], "{errs}");
    assert!(errs.to_string().contains("63"), "{errs}");
    obj["metadata"]["name"] = Value::String("a".repeat(63));
    let errs = admit(&schema, &obj, None);
    assert!(errs.is_empty(), "{errs}");
}
