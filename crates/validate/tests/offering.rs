//! `validate(cluster, provider)`: every rule with a valid and an invalid case and the exact path.

use kaas_api::{Cluster, ClusterStatus, Provider};
use kaas_validate::offering::{Size, default_version};
use kaas_validate::{ErrorKind, validate};

const OPENSTACK: &str = include_str!("../../../examples/provider-openstack.yaml");
const DEV: &str = include_str!("../../../examples/provider-inmemory.yaml");
const FULL: &str = include_str!("../../../examples/cluster-full.yaml");
const LEGACY: &str = include_str!("../../../examples/cluster-2022-proposal.yaml");

fn provider(y: &str) -> Provider {
    serde_yaml::from_str(y).unwrap()
}

fn cluster(spec: &str) -> Cluster {
    let mut c: Cluster = serde_yaml::from_str(FULL).unwrap();
    c.spec = serde_yaml::from_str(spec).unwrap();
    c
}

fn running(mut c: Cluster, version: &str) -> Cluster {
    c.status = Some(ClusterStatus {
        target_version: Some(version.into()),
        ..Default::default()
    });
    c
}

fn fra1() -> Provider {
    provider(OPENSTACK)
}

#[test]
fn the_full_example_resolves_with_every_default_filled_in() {
    let c: Cluster = serde_yaml::from_str(FULL).unwrap();
    let r = validate(&c, &fra1()).unwrap();
    assert_eq!(r.version.unwrap().to_string(), "v1.35.4");
    assert_eq!(r.cluster_class.as_deref(), Some("openstack-scs2-1-35-v5"));
    assert_eq!(r.region, "fra1");
    assert_eq!(r.control_plane.replicas, 3);
    assert_eq!(r.pools[0].size, Size::Autoscale { min: 3, max: 9 });
    assert_eq!(r.pools[1].size, Size::Fixed(1));
    let ext: Vec<_> = r.extensions.keys().cloned().collect();
    assert_eq!(ext, ["certManager", "gatewayAPI", "ingress", "metrics"]);
    assert_eq!(
        r.extensions["ingress"].implementation.as_deref(),
        Some("nginx")
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn an_object_in_the_2022_proposal_shape_validates_unchanged() {
    let c: Cluster = serde_yaml::from_str(LEGACY).unwrap();
    let r = validate(&c, &fra1()).unwrap();
    assert_eq!(r.version.unwrap().to_string(), "v1.35.4");
    assert_eq!(r.pools[0].flavor, "SCS-4V-8");
    assert_eq!(r.pools[0].size, Size::Fixed(3));
    assert!(r.extensions.contains_key("ingress"));
    assert!(r.extensions.contains_key("certManager"));
    assert!(r.extensions.contains_key("metrics"));
    assert!(!r.extensions.contains_key("flux"));
}

#[test]
fn an_empty_spec_gets_the_providers_defaults() {
    let r = validate(&cluster("{}"), &fra1()).unwrap();
    assert_eq!(r.version.unwrap().to_string(), "v1.36.3");
    assert_eq!(r.control_plane.flavor, "SCS-2V-4");
    assert_eq!(r.control_plane.replicas, 3);
    assert!(r.pools.is_empty());
    assert_eq!(r.network.pods, ["192.168.0.0/16"]);
    assert_eq!(r.network.nodes, ["10.8.0.0/20"]);
    // metrics always; gatewayAPI is this provider's default for the mandatory ingress/gateway.
    assert_eq!(
        r.extensions.keys().cloned().collect::<Vec<_>>(),
        ["gatewayAPI", "metrics"]
    );
    assert_eq!(default_version(&fra1()).unwrap().to_string(), "v1.36.3");
}

#[test]
fn unknown_flavor_names_the_path_and_what_is_offered() {
    let e = validate(
        &cluster("workers: [{name: a, flavor: SCS-4V-8}, {name: b, flavor: m9.huge}]"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(e.paths(), ["spec.workers[1].flavor"]);
    assert_eq!(
        e.0[0].to_string(),
        r#"spec.workers[1].flavor: "m9.huge" is not offered by provider "fra1" (offered: SCS-2V-4, SCS-4V-8, SCS-8V-32, SCS-16V-64-GPU)"#
    );
}

#[test]
fn a_worker_only_flavor_is_refused_for_the_control_plane() {
    let e = validate(&cluster("controlPlane: {flavor: SCS-16V-64-GPU}"), &fra1()).unwrap_err();
    assert_eq!(e.paths(), ["spec.controlPlane.flavor"]);
    assert!(e.0[0].message.contains("for control-plane nodes"));
    assert!(!e.0[0].allowed.contains(&"SCS-16V-64-GPU".to_string()));
}

#[test]
fn all_errors_are_returned_at_once() {
    let e = validate(
        &cluster(
            "provider: {region: fra9}\nkubernetes: {version: 1.30.1}\ncontrolPlane: {flavor: tiny}\nworkers: [{name: a, flavor: nope}]\nextensions: {harbor: {enabled: true}}",
        ),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(
        e.paths(),
        [
            "spec.provider.region",
            "spec.kubernetes.version",
            "spec.controlPlane.flavor",
            "spec.workers[0].flavor",
            "spec.extensions.harbor"
        ]
    );
}

#[test]
fn zones_must_belong_to_the_region() {
    assert!(
        validate(
            &cluster("provider: {region: fra2}\ncontrolPlane: {zones: [fra2-a]}"),
            &fra1()
        )
        .is_ok()
    );
    let e = validate(
        &cluster("provider: {region: fra2}\ncontrolPlane: {zones: [fra2-a, fra1-a]}\nworkers: [{name: a, zones: [fra1-b]}]"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(
        e.paths(),
        ["spec.controlPlane.zones[1]", "spec.workers[0].zones[0]"]
    );
    assert_eq!(e.0[0].allowed, ["fra2-a"]);
}

#[test]
fn provider_type_and_name_must_match_the_provider() {
    assert!(
        validate(
            &cluster("provider: {providerType: openstack, name: fra1}"),
            &fra1()
        )
        .is_ok()
    );
    let e = validate(
        &cluster("provider: {providerType: hcloud, name: fra2}"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(
        e.paths(),
        ["spec.provider.name", "spec.provider.providerType"]
    );
}

#[test]
fn x_resolves_to_the_newest_supported_patch_and_preview_only_when_exact() {
    let v = |s: &str| validate(&cluster(&format!("kubernetes: {{version: {s}}}")), &fra1());
    assert_eq!(v("1.36.x").unwrap().version.unwrap().to_string(), "v1.36.3");
    assert_eq!(
        v("v1.35.4").unwrap().version.unwrap().to_string(),
        "v1.35.4"
    );
    let e = v("1.37.x").unwrap_err();
    assert_eq!(e.0[0].kind, ErrorKind::NotSupported);
    assert!(
        e.0[0].message.contains("no supported patch of 1.37"),
        "{}",
        e
    );
    assert_eq!(
        v("1.37.2").unwrap().classification.unwrap().to_string(),
        "preview"
    );
    assert!(v("1.35.3").is_err());
    let e = v("1.34.4").unwrap_err();
    assert!(e.0[0].message.contains("expired"));
    assert!(
        !e.0[0].allowed.iter().any(|a| a.starts_with("1.34")),
        "expired versions are not offered"
    );
}

#[test]
fn deprecated_versions_work_with_a_warning() {
    let r = validate(&cluster("kubernetes: {version: 1.35.0}"), &provider(DEV)).unwrap();
    assert_eq!(r.version.unwrap().to_string(), "v1.35.0");
    assert_eq!(
        r.warnings,
        ["spec.kubernetes.version: 1.35.0 is deprecated at provider \"dev\""]
    );
}

#[test]
fn an_expired_running_version_is_moved_to_the_newest_patch_of_its_branch() {
    let mut p = fra1();
    p.spec.kubernetes_versions.push(serde_yaml::from_str(
        "{version: 1.34.9, classification: supported, stack: {clusterClass: openstack-scs2-1-34-v10}}",
    ).unwrap());
    let r = validate(
        &running(cluster("kubernetes: {version: 1.34.4}"), "v1.34.4"),
        &p,
    )
    .unwrap();
    assert!(r.forced_update);
    assert_eq!(r.version.unwrap().to_string(), "v1.34.9");
    assert_eq!(r.cluster_class.as_deref(), Some("openstack-scs2-1-34-v10"));
    // A new cluster cannot start on an expired version.
    assert!(validate(&cluster("kubernetes: {version: 1.34.4}"), &p).is_err());
}

#[test]
fn upgrades_go_one_minor_at_a_time_and_never_down() {
    let mut p = fra1();
    p.spec.kubernetes_versions.push(
        serde_yaml::from_str(
            "{version: 1.34.9, classification: supported, stack: {clusterClass: c}}",
        )
        .unwrap(),
    );
    let at = |want: &str, cur: &str| {
        validate(
            &running(cluster(&format!("kubernetes: {{version: {want}}}")), cur),
            &p,
        )
    };
    assert!(at("1.35.x", "v1.34.9").is_ok());
    assert!(at("1.35.4", "v1.35.4").is_ok());
    let skip = at("1.36.x", "v1.34.9").unwrap_err();
    assert_eq!(skip.0[0].kind, ErrorKind::Forbidden);
    assert_eq!(
        skip.0[0].to_string(),
        "spec.kubernetes.version: upgrade from v1.34.9 to v1.36.3 skips a minor version; upgrade one minor at a time (next: 1.35.x)"
    );
    let down = at("1.34.x", "v1.35.4").unwrap_err();
    assert!(
        down.0[0]
            .message
            .contains("downgrade from v1.35.4 to v1.34.9")
    );
}

#[test]
fn extensions_must_be_offered_and_metrics_cannot_be_switched_off() {
    let e = validate(
        &cluster("extensions: {harbor: {enabled: true}, additional: [{name: velero}]}"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(
        e.paths(),
        ["spec.extensions.harbor", "spec.extensions.additional[0]"]
    );
    assert!(e.0[0].allowed.contains(&"certManager".to_string()));
    // A disabled extension that is not offered is fine: nothing to install.
    assert!(validate(&cluster("extensions: {harbor: {enabled: false}}"), &fra1()).is_ok());
    let r = validate(
        &cluster("addons: {metricsServer: {enabled: false}}"),
        &fra1(),
    )
    .unwrap();
    assert!(r.extensions.contains_key("metrics"));
    assert_eq!(r.warnings.len(), 1);
    let e = validate(
        &cluster("extensions: {ingress: {enabled: true, implementation: traefik}}"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(e.paths(), ["spec.extensions.ingress.implementation"]);
    assert_eq!(e.0[0].allowed, ["nginx"]);
}

#[test]
fn ingress_or_gateway_is_mandatory() {
    let e = validate(
        &cluster("extensions: {ingress: {enabled: false}, gatewayAPI: {enabled: false}}"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(e.paths(), ["spec.extensions"]);
    let r = validate(
        &cluster("extensions: {ingress: {enabled: true}, gatewayAPI: {enabled: false}}"),
        &fra1(),
    )
    .unwrap();
    assert!(r.extensions.contains_key("ingress") && !r.extensions.contains_key("gatewayAPI"));
    // The 2022 switch nginxIngress=false: the dev provider's default Gateway API (with its
    // implementation) runs instead, nothing to warn about.
    let mut dev = provider(DEV);
    let r = validate(&cluster("addons: {nginxIngress: {enabled: false}}"), &dev).unwrap();
    assert!(!r.extensions.contains_key("ingress"));
    assert_eq!(
        r.extensions["gatewayAPI"].implementation.as_deref(),
        Some("envoy-gateway")
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // It was valid in 2022 also where neither is a default: keep a mandatory one on and warn.
    for e in &mut dev.spec.extensions {
        e.default = false;
    }
    let r = validate(&cluster("addons: {nginxIngress: {enabled: false}}"), &dev).unwrap();
    assert!(r.extensions.contains_key("gatewayAPI") || r.extensions.contains_key("ingress"));
    assert!(
        r.warnings[0].contains("nginxIngress.enabled: false is ignored"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn provider_limits_are_enforced() {
    let e = validate(
        &cluster("workers: [{name: a, count: 101}, {name: b, minCount: 1, maxCount: 200}]"),
        &fra1(),
    )
    .unwrap_err();
    assert_eq!(
        e.paths(),
        ["spec.workers[0].count", "spec.workers[1].maxCount"]
    );
    let dev = provider(DEV);
    let pools = (0..9)
        .map(|i| format!("{{name: p{i}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let e = validate(&cluster(&format!("workers: [{pools}]")), &dev).unwrap_err();
    assert_eq!(e.paths(), ["spec.workers"]);
}

#[test]
fn missing_flavor_without_provider_default_is_required() {
    let mut p = fra1();
    p.spec.defaults = None;
    let e = validate(&cluster("workers: [{name: a}]"), &p).unwrap_err();
    assert_eq!(
        e.paths(),
        ["spec.controlPlane.flavor", "spec.workers[0].flavor"]
    );
    assert!(e.0.iter().all(|e| e.kind == ErrorKind::Required));
}

#[test]
fn a_static_provider_checks_no_machines() {
    let p = provider(
        "apiVersion: scs.community/v1alpha1\nkind: Provider\nmetadata: {name: imported}\nspec:\n  providerType: static\n  backend: {type: Static, namespace: kaas-provider-imported}\n  regions: [{name: onprem}]\n  flavors: [{name: any, cpu: 1, memory: 1Gi}]\n  kubernetesVersions: [{version: 1.35.0, classification: supported, stack: {clusterClass: none}}]\n  extensions: [{name: metrics, default: true}, {name: ingress, default: true}]\n",
    );
    let e = validate(&cluster("{}"), &p).unwrap_err();
    assert_eq!(e.paths(), ["spec.import.kubeconfigSecretRef"]);
    let r = validate(
        &cluster(
            "import: {kubeconfigSecretRef: {name: kc}}\nworkers: [{name: a, flavor: whatever}]",
        ),
        &p,
    )
    .unwrap();
    assert!(r.version.is_none());
    assert_eq!(
        r.warnings,
        ["spec.workers is ignored: a static provider provisions nothing"]
    );
    // OIDC asked of an imported cluster: never silently dropped.
    let r = validate(
        &cluster(
            "import: {kubeconfigSecretRef: {name: kc}}\naccess: {oidc: {issuerURL: 'https://id.example.org', clientID: k}}",
        ),
        &p,
    )
    .unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("spec.access is ignored")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn features_the_provider_disables_are_refused_with_path_and_reason() {
    let mut p = provider(DEV);
    p.spec.disabled_features = vec![kaas_api::provider::DisabledFeature {
        name: "oidc".into(),
        reason: Some("no identity provider reachable".into()),
    }];
    p.spec.kubernetes_versions[0].disabled_features = vec![kaas_api::provider::DisabledFeature {
        name: "labels".into(),
        reason: None,
    }];
    let first = p.spec.kubernetes_versions[0].version.clone();
    let other = p.spec.kubernetes_versions[1].version.clone();
    let spec = |v: &str| {
        format!(
            "{{provider: {{name: dev}}, kubernetes: {{version: '{v}'}}, access: {{oidc: {{issuerURL: 'https://id.example.com', clientID: k}}}}, workers: [{{name: w, flavor: small, count: 1, labels: {{a: b}}}}]}}"
        )
    };
    let errs = validate(&cluster(&spec(&first)), &p).unwrap_err();
    let oidc = errs
        .0
        .iter()
        .find(|e| e.path == "spec.access.oidc")
        .expect("oidc refused");
    assert_eq!(oidc.kind, ErrorKind::Forbidden);
    assert!(
        oidc.message.contains("no identity provider reachable")
            && oidc.message.contains(&format!("version {first}")),
        "{oidc:?}"
    );
    assert!(
        errs.0.iter().any(|e| e.path == "spec.workers[0].labels"
            && e.message.contains("disabled by the provider")),
        "{errs:?}"
    );
    // The version-specific declaration does not reach the other version; the global one does.
    let errs = validate(&cluster(&spec(&other)), &p).unwrap_err();
    assert_eq!(
        errs.0.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["spec.access.oidc"],
        "{errs:?}"
    );
    // Without declarations the same cluster is accepted: declarations are the only cause.
    p.spec.disabled_features.clear();
    p.spec.kubernetes_versions[0].disabled_features.clear();
    validate(&cluster(&spec(&first)), &p).expect("accepted without declarations");
}

#[test]
fn an_oidc_issuer_ca_is_refused_on_cluster_api_stacks_and_taken_by_the_hosted_backend() {
    let spec = "access: {oidc: {issuerURL: 'https://id.example.org', clientID: k, certificateAuthority: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}}";
    let e = validate(&cluster(spec), &fra1()).unwrap_err();
    assert_eq!(e.paths(), ["spec.access.oidc.certificateAuthority"]);
    assert!(e.0[0].to_string().contains("publicly trusted"), "{e}");
    assert_eq!(e.0[0].kind, ErrorKind::Forbidden);

    let local = provider(include_str!("../../../examples/provider-local.yaml"));
    let c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: c, namespace: t}}\nspec: {{provider: {{name: {}}}, {}}}",
        local.metadata.name.as_deref().unwrap(),
        spec
    ))
    .unwrap();
    let r = validate(&c, &local).expect("the hosted backend takes an issuer CA");
    assert!(
        r.access
            .oidc
            .unwrap()
            .certificate_authority
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
}
