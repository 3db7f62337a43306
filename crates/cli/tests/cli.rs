//! The `kaas` binary: exit codes, where errors go, machine-readable output.

use std::process::{Command, Output};

fn kaas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaas"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap()
}

fn write(content: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(f.path(), content).unwrap();
    f
}

const BAD: &str = "apiVersion: scs.community/v1alpha1
kind: Cluster
metadata: {name: bad, namespace: t}
spec:
  provider: {name: fra1}
  controlPlane: {replicas: 2}
  workers: [{name: a, flavor: SCS-4V-8}, {name: b, flavor: m9.huge}]
";

#[test]
fn valid_files_exit_0() {
    let out = kaas(&[
        "validate",
        "-f",
        "examples/cluster-full.yaml",
        "-f",
        "examples/cluster-2022-proposal.yaml",
        "-p",
        "examples/provider-openstack.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Cluster tenant-a/legacy: valid (schema + offering against provider \"fra1\")"
        ),
        "{stdout}"
    );
}

#[test]
fn invalid_files_exit_1_with_field_paths_on_stderr() {
    let f = write(BAD);
    let out = kaas(&[
        "validate",
        "-f",
        f.path().to_str().unwrap(),
        "-p",
        "examples/provider-openstack.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.controlPlane.replicas: control-plane replicas must be 1, 3 or 5"),
        "{stderr}"
    );
    // The offering layer runs only on objects the API server would admit.
    assert!(!stderr.contains("m9.huge"), "{stderr}");
    let fixed = write(&BAD.replace("replicas: 2", "replicas: 3"));
    let out = kaas(&[
        "validate",
        "-f",
        fixed.path().to_str().unwrap(),
        "-p",
        "examples/provider-openstack.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"spec.workers[1].flavor: "m9.huge" is not offered by provider "fra1" (offered: SCS-2V-4, SCS-4V-8, SCS-8V-32, SCS-16V-64-GPU)"#), "{stderr}");
}

#[test]
fn json_output_is_a_report_per_document() {
    let f = write(&format!(
        "{BAD}---\n{}",
        include_str!("../../../examples/cluster-demo.yaml")
    ));
    let out = kaas(&[
        "validate",
        "-o",
        "json",
        "-f",
        f.path().to_str().unwrap(),
        "-p",
        "examples/provider-inmemory.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clusters: Vec<_> = reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "Cluster")
        .collect();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0]["valid"], false);
    assert_eq!(
        clusters[0]["errors"][0]["path"],
        "spec.controlPlane.replicas"
    );
    assert_eq!(clusters[1]["valid"], true);
    assert_eq!(clusters[1]["provider"], "dev");
}

#[test]
fn legacy_metrics_switch_is_a_warning() {
    let f = write(
        &include_str!("../../../examples/cluster-2022-proposal.yaml").replace(
            "metricsServer:\n      enabled: true",
            "metricsServer:\n      enabled: false",
        ),
    );
    let out = kaas(&[
        "validate",
        "-f",
        f.path().to_str().unwrap(),
        "-p",
        "examples/provider-openstack.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: spec.addons.metricsServer.enabled: false is ignored")
    );
}

#[test]
fn io_and_usage_errors_exit_2() {
    assert_eq!(
        kaas(&["validate", "-f", "/does/not/exist.yaml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(kaas(&["validate"]).status.code(), Some(2));
}

#[test]
fn broken_yaml_is_invalid_input() {
    let f = write("kind: Cluster\nspec: [unclosed\n");
    let out = kaas(&["validate", "-f", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));
}

#[test]
fn render_prints_the_cluster_api_objects() {
    let out = kaas(&[
        "render",
        "-f",
        "examples/cluster-demo.yaml",
        "-p",
        "examples/provider-inmemory.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(objs[0]["kind"], "Namespace");
    assert_eq!(objs[1]["kind"], "Cluster");
    assert_eq!(objs[1]["spec"]["topology"]["classRef"]["name"], "in-memory");
    let f = write(BAD);
    assert_eq!(
        kaas(&[
            "render",
            "-f",
            f.path().to_str().unwrap(),
            "-p",
            "examples/provider-openstack.yaml"
        ])
        .status
        .code(),
        Some(1)
    );
}

#[test]
fn crds_prints_both_crds() {
    let out = kaas(&["crds"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("name: clusters.scs.community") && s.contains("name: providers.scs.community")
    );
}
