//! `kaas plan` offline, from files: text and JSON, exit 0 for a plan and 1 for a refused change.

use std::process::Command;

const PROVIDER: &str = include_str!("../../../examples/provider-inmemory.yaml");

const CURRENT: &str = r#"
apiVersion: scs.community/v1alpha1
kind: Cluster
metadata: {name: demo, namespace: tenant-a}
spec:
  provider: {name: dev}
  kubernetes: {version: 1.35.x}
  workers: [{name: default, count: 2}]
status:
  kubernetesVersion: v1.35.4
  targetVersion: v1.35.4
"#;

fn kaas(dir: &std::path::Path, new: &str, output: &str) -> (i32, String) {
    std::fs::write(dir.join("current.yaml"), CURRENT).unwrap();
    std::fs::write(dir.join("provider.yaml"), PROVIDER).unwrap();
    std::fs::write(dir.join("new.yaml"), new).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kaas"))
        .current_dir(dir)
        .args([
            "plan",
            "-f",
            "new.yaml",
            "--current",
            "current.yaml",
            "--provider",
            "provider.yaml",
            "-o",
            output,
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn plans_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let scaled = CURRENT
        .replace("count: 2", "count: 4")
        .split("status:")
        .next()
        .unwrap()
        .to_string();
    let (code, text) = kaas(dir.path(), &scaled, "text");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("spec.workers[name=default].count: 2 → 4"),
        "{text}"
    );
    assert!(
        text.contains("pool default: adds 2 machines (2 → 4), none rolls"),
        "{text}"
    );

    let upgraded = scaled.replace("1.35.x", "1.36.x");
    let (code, json) = kaas(dir.path(), &upgraded, "json");
    assert_eq!(code, 0, "{json}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["rollout"][0]["part"], "controlPlane", "{plan}");
    assert_eq!(plan["version"]["to"], "v1.36.3");

    let refused = scaled.replace("count: 4", "count: 4, flavor: m9.huge");
    let (code, text) = kaas(dir.path(), &refused, "text");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("REFUSED") && text.contains("spec.workers[0].flavor"),
        "{text}"
    );
}
