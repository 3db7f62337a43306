//! Rendering for the hosted backend: one `HostedControlPlane` per SCS Cluster, in the
//! provider-side namespace, with the resolved version, pools and the flavor's capacity.

use kaas_api::{Cluster, Provider};
use kaas_render::hosted::render_hosted;

const LOCAL: &str = include_str!("../../../examples/provider-local.yaml");
const DEMO: &str = include_str!("../../../examples/cluster-local.yaml");
const DEV: &str = include_str!("../../../examples/provider-inmemory.yaml");

fn resolved(cluster: &Cluster, provider: &str) -> kaas_validate::Resolved {
    let p: Provider = serde_yaml::from_str(provider).unwrap();
    kaas_validate::validate(cluster, &p).unwrap()
}

#[test]
fn the_demo_cluster_becomes_one_hosted_control_plane_in_the_provider_side_namespace() {
    let c: Cluster = serde_yaml::from_str(DEMO).unwrap();
    let r = resolved(&c, LOCAL);
    let out = render_hosted(&c, &r, r.hosted_runtime.as_deref()).unwrap();
    let ns = kaas_render::capi_namespace("local", "tenant-demo");
    assert_eq!(out.namespace.metadata.name.as_deref(), Some(ns.as_str()));
    let hcp = out.control_plane;
    assert_eq!(hcp.metadata.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(hcp.metadata.name.as_deref(), Some("demo"));
    let labels = hcp.metadata.labels.unwrap();
    assert_eq!(labels["scs.community/cluster"], "demo");
    assert_eq!(labels["scs.community/tenant"], "tenant-demo");
    assert_eq!(labels["scs.community/provider"], "local");
    assert_eq!(hcp.spec.runtime, "local");
    // `1.36.x` resolves to the newest offered 1.36 patch.
    assert_eq!(hcp.spec.version, "1.36.3");
    assert_eq!(hcp.spec.region, "local");
    assert_eq!(hcp.spec.replicas, 1);
    assert_eq!(hcp.spec.pools.len(), 1);
    let pool = &hcp.spec.pools[0];
    assert_eq!(pool.name, "default");
    assert_eq!(pool.replicas, 3);
    assert_eq!(pool.zones, ["zone-a", "zone-b", "zone-c"]);
    // Capacity comes from the offering's flavor `small` (the provider's default worker flavor).
    assert_eq!(
        (pool.flavor.as_str(), pool.cpu, pool.memory.as_str()),
        ("small", 2, "4Gi")
    );
    assert_eq!(hcp.spec.service_cidr.as_deref(), Some("10.96.0.0/12"));
}

#[test]
fn an_autoscaled_pool_starts_at_its_lower_bound_and_taints_and_labels_are_kept() {
    let mut c: Cluster = serde_yaml::from_str(DEMO).unwrap();
    c.spec.workers = serde_yaml::from_str(
        "[{name: gpu, flavor: large, minCount: 2, maxCount: 5, labels: {team: ml}, taints: [{key: gpu, value: 'yes', effect: NoSchedule}]}]",
    )
    .unwrap();
    let r = resolved(&c, LOCAL);
    let hcp = render_hosted(&c, &r, Some("local")).unwrap().control_plane;
    let pool = &hcp.spec.pools[0];
    assert_eq!(pool.replicas, 2);
    assert_eq!((pool.cpu, pool.memory.as_str()), (8, "32Gi"));
    assert_eq!(pool.labels["team"], "ml");
    assert_eq!(pool.taints[0].key, "gpu");
}

#[test]
fn oidc_reaches_the_control_plane_with_the_scs_stacks_defaults_filled_in() {
    let mut c: Cluster = serde_yaml::from_str(DEMO).unwrap();
    let r = resolved(&c, LOCAL);
    let hcp = render_hosted(&c, &r, None).unwrap().control_plane;
    assert_eq!(hcp.spec.oidc, None, "no OIDC asked for, none configured");
    c.spec.access = serde_yaml::from_str(
        "{oidc: {issuerURL: 'https://id.example.org', clientID: kaas, groupsPrefix: '-'}}",
    )
    .unwrap();
    let r = resolved(&c, LOCAL);
    let oidc = render_hosted(&c, &r, None)
        .unwrap()
        .control_plane
        .spec
        .oidc
        .expect("oidc rendered");
    assert_eq!(oidc.issuer_url, "https://id.example.org");
    assert_eq!(oidc.client_id, "kaas");
    assert_eq!(oidc.username_claim.as_deref(), Some("preferred_username"));
    assert_eq!(oidc.username_prefix.as_deref(), Some("oidc:"));
    assert_eq!(oidc.groups_claim.as_deref(), Some("groups"));
    assert_eq!(oidc.groups_prefix.as_deref(), Some(""), "`-`: no prefix");
}

#[test]
fn a_cluster_api_provider_is_not_rendered_as_hosted() {
    let mut c: Cluster = serde_yaml::from_str(DEMO).unwrap();
    c.spec.provider = serde_yaml::from_str("{name: dev}").unwrap();
    let r = resolved(&c, DEV);
    assert!(render_hosted(&c, &r, None).is_err());
}
