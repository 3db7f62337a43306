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
    check_yaml(&example(cluster), provider, golden)
}

fn check_yaml(cluster_yaml: &str, provider: &str, golden_name: &str) {
    let c: Cluster = serde_yaml::from_str(cluster_yaml).unwrap();
    let p: Provider = serde_yaml::from_str(&example(provider)).unwrap();
    let resolved = kaas_validate::validate(&c, &p).unwrap();
    let yaml = kaas_render::render(&c, &resolved).unwrap().to_yaml();
    golden(&yaml, golden_name);
}

fn golden(yaml: &str, golden: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, yaml).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(yaml, want, "{golden} changed; UPDATE_GOLDEN=1 to accept");
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

/// Pools that may be at 0 nodes carry the autoscaler's capacity annotations from the flavor:
/// the GPU pool (GPUs, labels, taints) and the third zone of a pool whose lower bound 2 is spread
/// over three zones; its other zones and the fixed pool carry none.
#[test]
fn pools_that_scale_from_zero_carry_the_capacity_of_their_flavor() {
    let cluster = r#"
apiVersion: scs.community/v1alpha1
kind: Cluster
metadata: {name: elastic, namespace: tenant-a}
spec:
  provider: {name: fra1}
  kubernetes: {version: 1.35.x}
  controlPlane: {replicas: 1, flavor: SCS-2V-4}
  workers:
    - {name: general, flavor: SCS-4V-8, minCount: 2, maxCount: 9, zones: [fra1-a, fra1-b, fra1-c]}
    - name: gpu
      flavor: SCS-16V-64-GPU
      minCount: 0
      maxCount: 4
      labels: {accelerator: nvidia-l4}
      taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}, {key: dedicated, effect: NoExecute}]
    - {name: fixed, flavor: SCS-2V-4, count: 1}
"#;
    check_yaml(
        cluster,
        "provider-openstack.yaml",
        "scale-from-zero-openstack.yaml",
    );
}

/// The autoscaler of a cluster with autoscaled pools: its Deployment with the image of the
/// cluster's minor and the flags of the Cluster API provider, its ServiceAccount and the
/// RoleBinding of the autoscaler role in the cluster's namespace.
#[test]
fn the_autoscaler_of_a_cluster_runs_the_image_of_its_minor() {
    let c: Cluster = serde_yaml::from_str(&example("cluster-full.yaml")).unwrap();
    let p: Provider = serde_yaml::from_str(&example("provider-openstack.yaml")).unwrap();
    let resolved = kaas_validate::validate(&c, &p).unwrap();
    let ns = kaas_render::capi_namespace("fra1", "tenant-a");
    let at = kaas_render::autoscaler::Placement {
        namespace: &ns,
        capi_cluster: "prod",
        kubeconfig_secret: "prod-kubeconfig",
    };
    let a = kaas_render::autoscaler::render_autoscaler(&c, &resolved, &at)
        .unwrap()
        .expect("a pool autoscales");
    let yaml = [
        serde_yaml::to_string(&a.service_account).unwrap(),
        serde_yaml::to_string(&a.role_binding).unwrap(),
        serde_yaml::to_string(&a.deployment).unwrap(),
    ]
    .join("---\n");
    golden(&yaml, "autoscaler-openstack.yaml");

    let mut fixed = c.clone();
    for w in fixed.spec.workers.iter_mut().flatten() {
        (w.count, w.min_count, w.max_count) = (Some(1), None, None);
    }
    let resolved = kaas_validate::validate(&fixed, &p).unwrap();
    assert_eq!(
        kaas_render::autoscaler::render_autoscaler(&fixed, &resolved, &at).unwrap(),
        None,
        "no autoscaled pool, no autoscaler"
    );
}
