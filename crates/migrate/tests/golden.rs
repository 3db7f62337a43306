//! Golden tests: KaaS v1 settings files (`tests/fixtures/<case>.clusterctl.yaml`) and exactly what
//! `kaas migrate` makes of them — the commented Cluster YAML (`<case>.cluster.yaml`), the JSON
//! (`<case>.json`) or the error (`<case>.error.txt`). Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kaas-migrate --test golden` and review the diff.
//!
//! Every produced Cluster must pass the CRD's schema and CEL rules, and the offering check
//! against `examples/provider-openstack.yaml` where its flavors and versions fit.

use std::path::PathBuf;

use kaas_api::{Cluster, Provider};
use kaas_migrate::{Error, Kind, Migration, Options, migrate};
use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn input(case: &str) -> String {
    std::fs::read_to_string(fixtures().join(format!("{case}.clusterctl.yaml"))).unwrap()
}

fn golden(file: &str, actual: &str) {
    let path = fixtures().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, want,
        "{file} changed; UPDATE_GOLDEN=1 to accept, then review the diff"
    );
}

fn options(case: &str) -> Options {
    Options {
        default_name: Some(case.into()),
        namespace: Some("tenant-a".into()),
        provider: Some("fra1".into()),
        region: Some("fra1".into()),
        ..Options::default()
    }
}

fn provider() -> Provider {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/provider-openstack.yaml"),
    )
    .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Migrates `case`, compares both outputs with their golden files and checks what every
/// migration must satisfy.
fn migrated(case: &str, opts: &Options) -> Migration {
    let text = input(case);
    let m = migrate(&text, opts).unwrap_or_else(|e| panic!("{case}: {e}"));
    golden(&format!("{case}.cluster.yaml"), &m.to_yaml());
    golden(&format!("{case}.json"), &m.to_json());

    // The printed YAML (comment block and all) reads back as the same Cluster.
    let back: Cluster = serde_yaml::from_str(&m.to_yaml()).unwrap();
    assert_eq!(back, m.cluster, "{case}");
    // The JSON is {cluster, report}.
    let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(json["cluster"], serde_json::to_value(&m.cluster).unwrap());
    assert_eq!(json["report"], serde_json::to_value(&m.report).unwrap());

    // Admission: the CRD's schema and CEL rules.
    let errors = admit(
        &crd_schema(&Cluster::crd()),
        &serde_json::to_value(&m.cluster).unwrap(),
        None,
    );
    assert!(errors.is_empty(), "{case}: not admitted: {errors}");

    // One entry per key, in file order.
    let doc: serde_yaml::Mapping = serde_yaml::from_str(&text).unwrap();
    let keys: Vec<&str> = doc.keys().map(|k| k.as_str().unwrap()).collect();
    let reported: Vec<&str> = m.report.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(reported, keys, "{case}");
    // Known keys keep the kind of the table, except mapped keys that turn out to have no
    // equivalent for their value (RESTRICT_KUBEAPI [none], DEPLOY_METRICS false, …).
    for e in &m.report.entries {
        if let Some((_, kind)) = kaas_migrate::keys::known_keys()
            .into_iter()
            .find(|(k, _)| *k == e.key)
        {
            assert!(
                e.kind == kind || (kind == Kind::Mapped && e.kind == Kind::NoEquivalent),
                "{case}: {} is {:?}, the table says {kind:?}",
                e.key,
                e.kind
            );
        }
        if matches!(e.kind, Kind::Secret | Kind::Unknown) {
            assert_eq!(e.original, None, "{case}: value of {} shown", e.key);
        }
    }
    m
}

fn offering_ok(case: &str, m: &Migration) -> kaas_validate::Resolved {
    kaas_validate::validate(&m.cluster, &provider())
        .unwrap_or_else(|e| panic!("{case}: offering check failed: {e}"))
}

fn error(case: &str, opts: &Options) -> Error {
    let e = migrate(&input(case), opts).expect_err(case);
    golden(&format!("{case}.error.txt"), &format!("{e}\n"));
    e
}

#[test]
fn every_switch_on() {
    let m = migrated("all-on", &options("all-on"));
    let r = offering_ok("all-on", &m);
    assert_eq!(r.version.unwrap().to_string(), "v1.35.4");
    let ext: Vec<&str> = r.extensions.keys().map(String::as_str).collect();
    assert_eq!(
        ext,
        ["certManager", "flux", "gatewayAPI", "ingress", "metrics"]
    );
    assert_eq!(
        r.extensions["ingress"].implementation.as_deref(),
        Some("nginx")
    );
    assert_eq!(r.control_plane.replicas, 3);
    assert!(r.control_plane.anti_affinity);
    assert_eq!(r.pools[0].zones, ["fra1-b"]);
    assert!(m.report.warnings.is_empty(), "{:?}", m.report.warnings);
}

#[test]
fn every_switch_off() {
    let m = migrated("all-off", &options("all-off"));
    let r = offering_ok("all-off", &m);
    // Mandatory ones stay on: metrics, and the provider's default of ingress/Gateway API.
    let ext: Vec<&str> = r.extensions.keys().map(String::as_str).collect();
    assert_eq!(ext, ["gatewayAPI", "metrics"]);
    assert!(!r.control_plane.anti_affinity);
    assert_eq!(m.cluster.spec.access, None);
    let warnings = m.report.warnings.join("\n");
    for w in [
        "RESTRICT_KUBEAPI [none]",
        "DEPLOY_METRICS=false",
        "neither ingress nor Gateway API",
    ] {
        assert!(warnings.contains(w), "{w}: {warnings}");
    }
}

#[test]
fn custom_cidrs_and_restricted_api() {
    let m = migrated("custom-cidrs", &options("custom-cidrs"));
    // CLUSTER_NAME in the file wins over the name derived from the path.
    assert_eq!(m.cluster.metadata.name.as_deref(), Some("shop"));
    let r = offering_ok("custom-cidrs", &m);
    assert_eq!(r.network.nodes, ["10.20.0.0/22"]);
    assert_eq!(r.network.services, ["172.20.0.0/16"]);
    assert_eq!(r.network.pods, ["172.21.0.0/16"]);
    assert_eq!(
        r.access.api_server_allowed_cidrs.unwrap(),
        ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/48"]
    );
    assert_eq!(r.version.unwrap().to_string(), "v1.35.4");
}

#[test]
fn secrets_are_never_copied_or_shown() {
    let text = input("secrets");
    let m = migrated("secrets", &options("secrets"));
    offering_ok("secrets", &m);
    let doc: serde_yaml::Mapping = serde_yaml::from_str(&text).unwrap();
    let secret_keys = [
        "OPENSTACK_CLOUD_YAML_B64",
        "OPENSTACK_CLOUD_PROVIDER_CONF_B64",
        "OPENSTACK_CLOUD_CACERT_B64",
        "MY_APPCRED_SECRET",
        "EXTRA_REGISTRY_AUTH_B64",
    ];
    let everything = format!("{}\n{}\n{:?}", m.to_yaml(), m.to_json(), m);
    for key in secret_keys {
        let value = doc[key].as_str().unwrap();
        assert!(!everything.contains(value), "value of {key} leaked");
        let e = m.report.entries.iter().find(|e| e.key == key).unwrap();
        assert_eq!(e.kind, Kind::Secret, "{key}");
        assert!(
            e.note.contains("Provider.spec.credentialsRef"),
            "{key}: {}",
            e.note
        );
    }
    // An unknown key's value is not shown either: it could be anything.
    assert!(!everything.contains("custom-value-7"));
    let unknown = m
        .report
        .entries
        .iter()
        .find(|e| e.key == "SOME_CUSTOM_SETTING")
        .unwrap();
    assert_eq!(unknown.kind, Kind::Unknown);
}

#[test]
fn legacy_settings() {
    let m = migrated("legacy", &options("legacy"));
    assert_eq!(
        m.cluster
            .spec
            .kubernetes
            .as_ref()
            .unwrap()
            .version
            .as_deref(),
        Some("1.21.x")
    );
    // Everything fits the offering except the version, which the provider no longer offers.
    let errors = kaas_validate::validate(&m.cluster, &provider()).unwrap_err();
    assert_eq!(errors.paths(), ["spec.kubernetes.version"], "{errors}");
    // With a version the provider offers, it is accepted as it is.
    let fixed = input("legacy").replace("v1.21.5", "v1.36.3");
    let m = migrate(&fixed, &options("legacy")).unwrap();
    kaas_validate::validate(&m.cluster, &provider()).unwrap();
}

#[test]
fn a_control_plane_without_workers() {
    let m = migrated("no-workers", &options("no-workers"));
    let r = offering_ok("no-workers", &m);
    assert!(r.pools.is_empty());
    assert_eq!(r.control_plane.replicas, 5);
    assert!(r.extensions.contains_key("gatewayAPI") && !r.extensions.contains_key("ingress"));
}

#[test]
fn keep_patch_requests_the_exact_version() {
    let opts = Options {
        keep_patch: true,
        ..options("all-on")
    };
    let m = migrate(&input("all-on"), &opts).unwrap();
    assert_eq!(
        m.cluster
            .spec
            .kubernetes
            .as_ref()
            .unwrap()
            .version
            .as_deref(),
        Some("1.35.4")
    );
    let r = offering_ok("all-on", &m);
    assert_eq!(r.version.unwrap().to_string(), "v1.35.4");
    // An exact patch the provider does not offer is refused by the offering check.
    let m = migrate(&input("all-on").replace("v1.35.4", "v1.35.2"), &opts).unwrap();
    let errors = kaas_validate::validate(&m.cluster, &provider()).unwrap_err();
    assert_eq!(errors.paths(), ["spec.kubernetes.version"]);
}

#[test]
fn several_zones_are_refused_with_a_hint() {
    let e = error("several-zones", &options("several-zones"));
    assert!(
        e.to_string().starts_with("OPENSTACK_FAILURE_DOMAIN: "),
        "{e}"
    );
}

#[test]
fn invalid_values_name_their_keys() {
    let e = error("invalid", &options("invalid"));
    let Error::Invalid(errors) = &e else {
        panic!("{e:?}")
    };
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "KUBERNETES_VERSION",
            "CONTROL_PLANE_MACHINE_COUNT",
            "OPENSTACK_ANTI_AFFINITY",
            "WORKER_MACHINE_COUNT",
            "NODE_CIDR",
            "SERVICE_CIDR",
            "POD_CIDR",
            "RESTRICT_KUBEAPI",
            "DEPLOY_METRICS",
            "DEPLOY_FLUX",
        ]
    );
    assert!(
        !e.to_string()
            .contains("c2VjcmV0LWluLWFuLWludmFsaWQtZmlsZQ==")
    );
}

#[test]
fn what_is_not_a_settings_map() {
    let o = options("x");
    assert!(matches!(migrate("", &o), Err(Error::NotAMap(_))));
    assert!(matches!(
        migrate("- a\n- b\n", &o),
        Err(Error::NotAMap("a list"))
    ));
    assert!(matches!(migrate("just text", &o), Err(Error::NotAMap(_))));
    let e = migrate("A: [1,\nB: 'x", &o).unwrap_err();
    assert!(matches!(e, Error::Yaml(_)), "{e}");
    let e = migrate("1: x\n", &o).unwrap_err();
    assert_eq!(e.to_string(), "1: keys must be strings (KEY: value)");
}

#[test]
fn options_are_checked() {
    let text = "KUBERNETES_VERSION: v1.35.4\n";
    let e = migrate(text, &Options::default()).unwrap_err();
    assert!(e.to_string().starts_with("--name: no cluster name"), "{e}");
    let bad = |o: Options| migrate(text, &o).unwrap_err().to_string();
    let base = options("ok");
    assert_eq!(
        bad(Options {
            name: Some("Prod_1".into()),
            ..base.clone()
        }),
        "--name (metadata.name): \"Prod_1\" is not a DNS label (lower-case letters, digits and '-', at most 63 characters)"
    );
    assert_eq!(
        bad(Options {
            namespace: Some("kaas-fra1-x".into()),
            ..base.clone()
        }),
        "--namespace (metadata.namespace): \"kaas-fra1-x\": tenant namespaces must not start with kaas- (docs/tenancy.md)"
    );
    assert!(
        bad(Options {
            provider: Some("Fra 1".into()),
            ..base.clone()
        })
        .starts_with("--provider (spec.provider.name): ")
    );
    assert!(
        bad(Options {
            region: Some("r".repeat(64)),
            ..base.clone()
        })
        .starts_with("--region (spec.provider.region): ")
    );
    // A CLUSTER_NAME that is no DNS label names the key.
    let e = migrate("CLUSTER_NAME: My_Cluster\n", &Options::default()).unwrap_err();
    assert!(
        e.to_string().starts_with("CLUSTER_NAME: \"My_Cluster\""),
        "{e}"
    );
    // Without provider and namespace the cluster is still valid for admission; notes say what to set.
    let m = migrate(
        text,
        &Options {
            name: Some("x".into()),
            ..Options::default()
        },
    )
    .unwrap();
    let notes = m.report.notes.join("\n");
    assert!(notes.contains("spec.provider.name is not set"), "{notes}");
    assert!(notes.contains("metadata.namespace is not set"), "{notes}");
}

#[test]
fn the_mapping_table_in_the_docs_lists_every_key() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/migration.md"),
    )
    .unwrap();
    for (key, kind) in kaas_migrate::keys::known_keys() {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/migration.md has no row for {key}"));
        let want = match kind {
            Kind::Mapped => "`spec.",
            Kind::Derived => "derived",
            Kind::NoEquivalent => "no equivalent",
            Kind::Secret => "secret",
            Kind::Unknown => unreachable!(),
        };
        let cell = row.split('|').nth(2).unwrap_or_default();
        let want = if key == "CLUSTER_NAME" {
            "`metadata.name`"
        } else {
            want
        };
        assert!(
            cell.contains(want),
            "docs row for {key} should say {want}: {row}"
        );
    }
}
