//! Golden tests: the Cluster API objects rendered for the example clusters. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kaas-render --test golden` and review the diff.

use std::path::PathBuf;

use kaas_api::{Cluster, Provider};

fn example(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
    .unwrap()
}

fn check(cluster: &str, provider: &str, golden: &str) {
    let c: Cluster = serde_yaml::from_str(&example(cluster)).unwrap();
    let p: Provider = serde_yaml::from_str(&example(provider)).unwrap();
    let resolved = kaas_validate::validate(&c, &p).unwrap();
    let yaml = kaas_render::render(&c, &resolved).unwrap().to_yaml();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &yaml).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        yaml, want,
        "rendering of {cluster} changed; UPDATE_GOLDEN=1 to accept"
    );
}

#[test]
fn full_cluster_on_openstack_scs2() {
    check(
        "cluster-full.yaml",
        "provider-openstack.yaml",
        "full-openstack.yaml",
    );
}

#[test]
fn cluster_in_the_2022_shape_on_openstack_scs2() {
    check(
        "cluster-2022-proposal.yaml",
        "provider-openstack.yaml",
        "legacy-openstack.yaml",
    );
}

#[test]
fn demo_cluster_on_the_in_memory_stack() {
    check(
        "cluster-demo.yaml",
        "provider-inmemory.yaml",
        "demo-in-memory.yaml",
    );
}
