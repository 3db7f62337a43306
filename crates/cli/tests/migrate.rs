//! `kaas migrate`, the real binary: the golden output of the `kaas-migrate` fixtures on stdout,
//! the summary on stderr, exit codes, no secret anywhere, and the output accepted by
//! `kaas validate` against the example OpenStack provider.

use std::process::{Command, Output};

const FIXTURES: &str = "crates/migrate/tests/fixtures";

fn kaas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaas"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap()
}

fn fixture(file: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join(FIXTURES)
            .join(file),
    )
    .unwrap()
}

fn migrate(case: &str, extra: &[&str]) -> Output {
    let file = format!("{FIXTURES}/{case}.clusterctl.yaml");
    let mut args = vec![
        "migrate",
        "-f",
        &file,
        "--name",
        case,
        "-n",
        "tenant-a",
        "--provider",
        "fra1",
        "--region",
        "fra1",
    ];
    args.extend_from_slice(extra);
    kaas(&args)
}

#[test]
fn prints_the_golden_cluster_and_a_summary() {
    for case in ["all-on", "all-off", "legacy", "secrets"] {
        let out = migrate(case, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{case}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            fixture(&format!("{case}.cluster.yaml")),
            "{case}"
        );
        assert!(
            stderr.contains("kaas migrate: ") && stderr.contains(" mapped, "),
            "{stderr}"
        );
    }
    // Warnings are repeated on stderr.
    let out = migrate("all-off", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kaas migrate: warning: RESTRICT_KUBEAPI [none]"),
        "{stderr}"
    );
}

#[test]
fn json_is_cluster_and_report() {
    let out = migrate("all-on", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        fixture("all-on.json") + "\n"
    );
    // --name wins over CLUSTER_NAME of the file, and the report says so.
    let out = migrate("custom-cidrs", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["metadata"]["name"], "custom-cidrs");
    assert_eq!(v["report"]["entries"][0]["key"], "CLUSTER_NAME");
    assert_eq!(
        v["report"]["entries"][0]["note"],
        "overridden by --name (v1 name \"shop\")"
    );
}

#[test]
fn the_output_passes_kaas_validate() {
    for case in ["all-on", "all-off", "custom-cidrs", "secrets", "no-workers"] {
        let out = migrate(case, &[]);
        assert_eq!(out.status.code(), Some(0), "{case}");
        let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::fs::write(f.path(), &out.stdout).unwrap();
        let v = kaas(&[
            "validate",
            "-f",
            f.path().to_str().unwrap(),
            "-p",
            "examples/provider-openstack.yaml",
        ]);
        assert_eq!(
            v.status.code(),
            Some(0),
            "{case}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(
            String::from_utf8_lossy(&v.stdout)
                .contains("valid (schema + offering against provider \"fra1\")"),
            "{case}"
        );
    }
}

#[test]
fn secrets_appear_nowhere() {
    let settings: serde_yaml::Mapping =
        serde_yaml::from_str(&fixture("secrets.clusterctl.yaml")).unwrap();
    let secrets: Vec<&str> = [
        "OPENSTACK_CLOUD_YAML_B64",
        "OPENSTACK_CLOUD_PROVIDER_CONF_B64",
        "OPENSTACK_CLOUD_CACERT_B64",
        "MY_APPCRED_SECRET",
        "EXTRA_REGISTRY_AUTH_B64",
    ]
    .iter()
    .map(|k| settings[*k].as_str().unwrap())
    .collect();
    for output in ["yaml", "json"] {
        let out = migrate("secrets", &["-o", output]);
        assert_eq!(out.status.code(), Some(0));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for s in &secrets {
            assert!(!all.contains(s), "a secret leaked into the {output} output");
        }
    }
    // Nor in errors about the same file.
    let broken = fixture("secrets.clusterctl.yaml")
        .replace("WORKER_MACHINE_COUNT: 2", "WORKER_MACHINE_COUNT: two");
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(f.path(), broken).unwrap();
    let out = kaas(&["migrate", "-f", f.path().to_str().unwrap(), "--name", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("WORKER_MACHINE_COUNT: \"two\" is not a whole number"),
        "{all}"
    );
    for s in &secrets {
        assert!(!all.contains(s), "a secret leaked into an error");
    }
}

#[test]
fn invalid_settings_exit_2_naming_each_key() {
    let out = migrate("invalid", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in fixture("invalid.error.txt").lines() {
        assert!(
            stderr.contains(&format!("{FIXTURES}/invalid.clusterctl.yaml: {line}")),
            "{line}: {stderr}"
        );
    }
    assert!(
        stderr.contains("10 value(s) cannot be migrated; no Cluster written"),
        "{stderr}"
    );
    // Missing file, bad flags, no name.
    assert_eq!(
        kaas(&["migrate", "-f", "/nonexistent.yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(kaas(&["migrate"]).status.code(), Some(2));
    let out = kaas(&[
        "migrate",
        "-f",
        &format!("{FIXTURES}/all-on.clusterctl.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name: no cluster name"));
}

#[test]
fn the_name_comes_from_the_v1_layout() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_dir = dir.path().join("testcluster");
    std::fs::create_dir(&cluster_dir).unwrap();
    let file = cluster_dir.join("clusterctl.yaml");
    std::fs::write(&file, fixture("all-on.clusterctl.yaml")).unwrap();
    let out = kaas(&["migrate", "-f", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["metadata"]["name"], "testcluster");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cluster name \"testcluster\" taken from the file path")
    );
}
