//! `validate(cluster, provider)` on `spec.network`: ranges must be disjoint, stay clear of the
//! provider's reserved ranges, be large enough for the cluster and match its IP family. Every rule
//! with a refused and an accepted case and the exact path; defaults are never refused.
//! The property at the end runs `KAAS_PROPTEST_CASES` cases (default 2000, as in CI).

use kaas_api::{Cluster, Provider};
use kaas_validate::{ErrorKind, FieldErrors, Resolved, validate};
use proptest::prelude::*;

const OPENSTACK: &str = include_str!("../../../examples/provider-openstack.yaml");
const DEV: &str = include_str!("../../../examples/provider-inmemory.yaml");
const LOCAL: &str = include_str!("../../../examples/provider-local.yaml");

fn provider(y: &str) -> Provider {
    serde_yaml::from_str(y).unwrap()
}

/// fra1: three control-plane nodes by default, default node range 10.8.0.0/20.
fn fra1() -> Provider {
    provider(OPENSTACK)
}

fn cluster(spec: &str) -> Cluster {
    let mut c = Cluster::new("c", serde_yaml::from_str(spec).unwrap());
    c.metadata.namespace = Some("t".into());
    c
}

fn network(yaml: &str) -> Cluster {
    cluster(&format!("network: {yaml}"))
}

fn refused(c: &Cluster, p: &Provider) -> FieldErrors {
    validate(c, p).expect_err("the cluster is refused")
}

fn accepted(c: &Cluster, p: &Provider) -> Resolved {
    match validate(c, p) {
        Ok(r) => r,
        Err(e) => panic!("refused: {e}"),
    }
}

fn network_warnings(r: &Resolved) -> Vec<&String> {
    r.warnings
        .iter()
        .filter(|w| w.starts_with("spec.network"))
        .collect()
}

#[test]
fn a_pod_range_inside_the_service_range_is_refused_naming_both() {
    let e = refused(
        &network("{pods: [10.96.0.0/16], services: [10.96.0.0/12]}"),
        &fra1(),
    );
    assert_eq!(e.paths(), ["spec.network.pods[0]"]);
    assert_eq!(e.0[0].kind, ErrorKind::Invalid);
    assert_eq!(
        e.0[0].to_string(),
        "spec.network.pods[0]: 10.96.0.0/16 overlaps spec.network.services[0] 10.96.0.0/12: cluster ranges must be disjoint"
    );
}

#[test]
fn a_range_overlapping_the_node_range_is_refused() {
    let e = refused(
        &network("{services: [10.8.0.0/24], nodes: [10.8.0.0/20]}"),
        &fra1(),
    );
    assert_eq!(e.paths(), ["spec.network.services[0]"]);
    assert!(
        e.0[0]
            .message
            .contains("overlaps spec.network.nodes[0] 10.8.0.0/20"),
        "{e}"
    );
    // Against the provider's default node range: the error is on the range the tenant wrote.
    let e = refused(&network("{pods: [10.0.0.0/12]}"), &fra1());
    assert_eq!(e.paths(), ["spec.network.pods[0]"]);
    assert!(
        e.0[0]
            .message
            .contains("overlaps spec.network.nodes[0] 10.8.0.0/20 (default)"),
        "{e}"
    );
}

#[test]
fn a_range_overlapping_a_reserved_network_of_the_provider_is_refused() {
    let mut p = fra1();
    p.spec.reserved_networks = vec!["100.64.0.0/10".into(), "172.24.4.0/24".into()];
    let e = refused(
        &network("{pods: [172.16.0.0/12], nodes: [100.100.0.0/22]}"),
        &p,
    );
    assert_eq!(e.paths(), ["spec.network.pods[0]", "spec.network.nodes[0]"]);
    assert_eq!(e.0[0].kind, ErrorKind::Forbidden);
    assert_eq!(
        e.0[0].message,
        "172.16.0.0/12 overlaps 172.24.4.0/24, which provider \"fra1\" reserves for its infrastructure: choose a range outside it"
    );
    assert!(e.0[1].message.contains("overlaps 100.64.0.0/10"), "{e}");
    // Next to the reserved ranges is fine.
    accepted(
        &network("{pods: [172.16.0.0/14], nodes: [100.128.0.0/22]}"),
        &p,
    );
}

#[test]
fn defaults_overlapping_a_reserved_network_are_a_warning_not_a_refusal() {
    let mut p = fra1();
    p.spec.reserved_networks = vec!["10.8.0.0/16".into()];
    let r = accepted(&cluster("{}"), &p);
    assert_eq!(
        network_warnings(&r),
        [
            "spec.network.nodes[0]: 10.8.0.0/20 (default) overlaps 10.8.0.0/16, which provider \"fra1\" reserves for its infrastructure: choose a range outside it (defaults of provider \"fra1\"; set spec.network to choose other ranges)"
        ]
    );
    // The tenant's own node range is refused.
    let e = refused(&network("{nodes: [10.8.16.0/20]}"), &p);
    assert_eq!(e.paths(), ["spec.network.nodes[0]"]);
}

#[test]
fn ranges_too_small_for_the_cluster_are_refused_with_the_size_needed() {
    // 3 control-plane + 9 worker nodes + 2 during rolling updates = 14 nodes, 16 /24 blocks.
    let spec = |net: &str| {
        cluster(&format!(
            "workers: [{{name: a, minCount: 1, maxCount: 9}}]\nnetwork: {net}"
        ))
    };
    let e = refused(
        &spec("{pods: [10.244.0.0/21], services: [10.96.0.0/25], nodes: [10.8.0.0/28]}"),
        &fra1(),
    );
    assert_eq!(
        e.paths(),
        [
            "spec.network.pods[0]",
            "spec.network.services[0]",
            "spec.network.nodes[0]"
        ]
    );
    assert_eq!(
        e.0[0].message,
        "10.244.0.0/21 holds 8 blocks of /24, one per node; the cluster can have 14 nodes at once (3 control-plane, 9 worker, 2 more during rolling updates): use a /20 or larger"
    );
    assert_eq!(
        e.0[1].message,
        "10.96.0.0/25 has 128 addresses; a service range needs at least 256: use a /24 or larger"
    );
    assert!(
        e.0[2]
            .message
            .starts_with("10.8.0.0/28 has 16 addresses; the cluster can have 14 nodes"),
        "{e}"
    );
    assert!(e.0[2].message.ends_with("use a /27 or larger"), "{e}");
    let e = refused(&spec("{pods: [10.244.0.0/25]}"), &fra1());
    assert!(
        e.0[0]
            .message
            .starts_with("10.244.0.0/25 is smaller than the /24 each node gets"),
        "{e}"
    );
    // Exactly enough is enough.
    accepted(
        &spec("{pods: [10.244.0.0/20], services: [10.96.0.0/24], nodes: [10.8.0.0/27]}"),
        &fra1(),
    );
}

#[test]
fn a_hosted_control_plane_needs_no_node_blocks() {
    let c = |provider: &str| {
        cluster(&format!(
            "provider: {{name: {provider}}}\nworkers: [{{name: a, count: 3}}]\nnetwork: {{pods: [10.244.0.0/22]}}"
        ))
    };
    // Hosted: 3 workers + 1 during rolling updates fit four /24 blocks.
    accepted(&c("local"), &provider(LOCAL));
    // Cluster API: one more control-plane node and its surge do not.
    let e = refused(&c("dev"), &provider(DEV));
    assert!(e.0[0].message.contains("can have 6 nodes at once"), "{e}");
}

#[test]
fn an_ipv6_pod_range_larger_than_a_48_is_refused() {
    let e = refused(
        &network(
            "{ipFamily: IPv6, pods: ['fd00:10::/40'], services: ['fd00:96::/112'], nodes: ['fd00:8::/64']}",
        ),
        &fra1(),
    );
    assert_eq!(e.paths(), ["spec.network.pods[0]"]);
    assert!(e.0[0].message.contains("larger than a /48"), "{e}");
}

#[test]
fn ranges_of_the_wrong_ip_family_are_refused() {
    // The default family is IPv4.
    let e = refused(&network("{pods: ['fd00:10:244::/56']}"), &fra1());
    assert_eq!(e.paths(), ["spec.network.pods[0]"]);
    assert_eq!(
        e.0[0].message,
        "fd00:10:244::/56 is an IPv6 range; ipFamily IPv4 (the default) takes IPv4 ranges only: set spec.network.ipFamily to IPv6 or DualStack"
    );
    // IPv6 with the (IPv4) defaults: every list must be given.
    let e = refused(&network("{ipFamily: IPv6}"), &fra1());
    assert_eq!(
        e.paths(),
        [
            "spec.network.pods",
            "spec.network.services",
            "spec.network.nodes"
        ]
    );
    assert_eq!(
        e.0[0].message,
        "192.168.0.0/16 (default) is an IPv4 range; ipFamily IPv6 takes IPv6 ranges only: set spec.network.pods to an IPv6 range"
    );
    // One range per family.
    let e = refused(&network("{pods: [10.244.0.0/16, 10.245.0.0/16]}"), &fra1());
    assert_eq!(e.paths(), ["spec.network.pods"]);
    assert!(
        e.0[0].message.contains("give one range per IP family"),
        "{e}"
    );
}

#[test]
fn dual_stack_needs_one_range_of_each_family_per_list() {
    let e = refused(
        &network(
            "{ipFamily: DualStack, pods: [10.244.0.0/16, 'fd00:10:244::/56'], services: [10.96.0.0/12], nodes: [10.8.0.0/20, 'fd00:10:8::/64']}",
        ),
        &fra1(),
    );
    assert_eq!(e.paths(), ["spec.network.services"]);
    assert_eq!(e.0[0].kind, ErrorKind::Required);
    assert_eq!(
        e.0[0].message,
        "ipFamily DualStack needs one IPv4 and one IPv6 range; IPv6 is missing (got 10.96.0.0/12)"
    );
}

#[test]
fn a_dual_stack_network_is_accepted() {
    let r = accepted(
        &network(
            "{ipFamily: DualStack, pods: [10.244.0.0/16, 'fd00:10:244::/56'], services: ['fd00:10:96::/112', 10.96.0.0/12], nodes: [10.8.0.0/20, 'fd00:10:8::/64']}",
        ),
        &fra1(),
    );
    assert!(network_warnings(&r).is_empty(), "{:?}", r.warnings);
}

#[test]
fn an_ipv6_network_is_accepted() {
    let r = accepted(
        &network(
            "{ipFamily: IPv6, pods: ['fd00:10:244::/48'], services: ['fd00:10:96::/108'], nodes: ['fd00:10:8::/64']}",
        ),
        &fra1(),
    );
    assert!(network_warnings(&r).is_empty(), "{:?}", r.warnings);
}

#[test]
fn adjacent_ranges_are_accepted() {
    accepted(
        &network("{pods: [10.95.0.0/16], services: [10.96.0.0/12], nodes: [10.112.0.0/20]}"),
        &fra1(),
    );
    accepted(
        &network("{pods: [10.8.16.0/20], services: [10.7.255.0/24]}"),
        &fra1(),
    );
}

#[test]
fn a_cluster_without_a_network_gets_the_defaults_unrefused() {
    for p in [fra1(), provider(DEV), provider(LOCAL)] {
        let r = accepted(&cluster("workers: [{name: a, count: 3}]"), &p);
        assert!(network_warnings(&r).is_empty(), "{:?}", r.warnings);
    }
    // Defaults that contradict each other are the provider's to fix: a warning, not a refusal.
    let mut p = fra1();
    p.spec.defaults.as_mut().unwrap().pod_cidr = Some("10.8.0.0/16".into());
    let r = accepted(&cluster("{}"), &p);
    assert_eq!(
        network_warnings(&r),
        [
            "spec.network.pods[0]: 10.8.0.0/16 (default) overlaps spec.network.nodes[0] 10.8.0.0/20 (default): cluster ranges must be disjoint (defaults of provider \"fra1\"; set spec.network to choose other ranges)"
        ]
    );
}

#[test]
fn an_empty_pod_list_is_refused() {
    let e = refused(&network("{pods: []}"), &fra1());
    assert_eq!(e.paths(), ["spec.network.pods"]);
    assert_eq!(e.0[0].kind, ErrorKind::Required);
    // No node range at all leaves the choice to the provider.
    accepted(&network("{nodes: []}"), &fra1());
}

#[test]
fn reserved_networks_of_a_provider_must_be_cidrs_at_admission() {
    use kaas_validate::schema::{admit, crd_schema};
    use kube::CustomResourceExt;
    let mut object: serde_json::Value = serde_yaml::from_str(OPENSTACK).unwrap();
    object["spec"]["reservedNetworks"] = serde_json::json!(["100.64.0.0/10", "fd00::/8", "nope"]);
    let errs = admit(&crd_schema(&Provider::crd()), &object, None);
    assert_eq!(errs.paths(), ["spec.reservedNetworks[2]"], "{errs}");
    object["spec"]["reservedNetworks"] = serde_json::json!(vec!["10.0.0.0/8"; 65]);
    let errs = admit(&crd_schema(&Provider::crd()), &object, None);
    assert_eq!(errs.paths(), ["spec.reservedNetworks"], "{errs}");
}

fn range() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=40)
            .prop_map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3])),
        (any::<u16>(), any::<u16>(), 0u8..=140).prop_map(|(a, b, p)| format!("{a:x}:{b:x}::/{p}")),
        Just("10.96.0.0/12".to_string()),
        Just("10.96.0.0/16".to_string()),
        Just("::/0".to_string()),
        Just("0.0.0.0/0".to_string()),
        "[0-9a-f.:/]{0,12}",
    ]
}

/// Cases per property: `KAAS_PROPTEST_CASES` when set (the long-running mode, see
/// RELIABILITY.md), else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("KAAS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    /// Whatever the ranges, family and sizes: no panic, and an accepted cluster's ranges are
    /// pairwise disjoint across lists.
    #[test]
    fn arbitrary_networks_never_panic_and_accepted_ones_are_disjoint(
        pods in prop::option::of(prop::collection::vec(range(), 0..3)),
        services in prop::option::of(prop::collection::vec(range(), 0..3)),
        nodes in prop::option::of(prop::collection::vec(range(), 0..3)),
        family in prop::option::of(prop::sample::select(vec!["IPv4", "IPv6", "DualStack"])),
        counts in prop::collection::vec(prop_oneof![Just(-1i32), 0..300, Just(i32::MAX)], 0..4),
        reserved in prop::collection::vec(range(), 0..3),
    ) {
        let workers: Vec<_> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| serde_json::json!({"name": format!("w{i}"), "count": c}))
            .collect();
        let spec = serde_json::json!({
            "workers": workers,
            "network": {"ipFamily": family, "pods": pods, "services": services, "nodes": nodes},
        });
        let c = cluster(&spec.to_string());
        for mut p in [fra1(), provider(DEV), provider(LOCAL)] {
            p.spec.reserved_networks = reserved.clone();
            if let Ok(r) = validate(&c, &p) {
                let parsed = |l: &[String]| -> Vec<kaas_validate::network::Cidr> {
                    l.iter().map(|s| s.parse().unwrap()).collect()
                };
                let lists = [parsed(&r.network.pods), parsed(&r.network.services), parsed(&r.network.nodes)];
                for (i, a) in lists.iter().enumerate() {
                    for b in &lists[i + 1..] {
                        for x in a {
                            prop_assert!(!b.iter().any(|y| x.overlaps(y)), "{:?}", r.network);
                        }
                    }
                }
            }
        }
    }
}
