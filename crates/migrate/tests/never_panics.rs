//! Property tests over random settings built from the v1 keys and edge-case values:
//! `migrate` never panics; whatever it accepts is admitted by the CRD (schema + CEL); and the
//! values of secret keys never appear in any output, whether it succeeds or fails.
//!
//! Case count: `KAAS_PROPTEST_CASES` (default 400, as in CI). The long run that RELIABILITY.md
//! reports: `KAAS_PROPTEST_CASES=1000000 nice -n 19 cargo test --release -p kaas-migrate --test never_panics`

use kaas_api::Cluster;
use kaas_migrate::{Kind, Options, migrate};
use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;
use proptest::prelude::*;
use std::cell::Cell;

/// Cases per property: `KAAS_PROPTEST_CASES` when set (the long-running mode), else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("KAAS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

const VALUES: &[&str] = &[
    "true",
    "false",
    "\"true\"",
    "\"False\"",
    "0",
    "1",
    "3",
    "5",
    "-1",
    "1001",
    "2.5",
    "99999999999999999999",
    "\"\"",
    "null",
    "v1.35.4",
    "v1.35.x",
    "1.35",
    "v1.9.6",
    "v",
    "10.8.0.0/20",
    "10.8.0.0/40",
    "::/0",
    "\"[  ]\"",
    "\"[ none ]\"",
    "\"[ 203.0.113.0/24, 198.51.100.7, ]\"",
    "\"[ bogus\"",
    "[1, 2]",
    "[203.0.113.0/24, none]",
    "{a: b}",
    "fra1-a",
    "fra1-a,fra1-b",
    "SCS-2V-4",
    "\"x\\ny\"",
    "!tag value",
    "\"ünïcödé\"",
];

fn keys() -> Vec<String> {
    let mut k: Vec<String> = kaas_migrate::keys::known_keys()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    k.extend(["RANDOM_KEY", "MY_TOKEN", "X_B64", "lower_case"].map(String::from));
    k
}

/// Values that fit `key`, so that many generated files are accepted and reach the admission check.
fn good(key: &str) -> &'static [&'static str] {
    match key {
        "KUBERNETES_VERSION" => &["v1.35.4", "v1.35.x", "v1.29.0-rc.1", "\"1.36.3\""],
        "CONTROL_PLANE_MACHINE_COUNT" => &["1", "\"3\"", "5"],
        "WORKER_MACHINE_COUNT" => &["0", "1", "\"7\"", "1000"],
        "NODE_CIDR" | "SERVICE_CIDR" | "POD_CIDR" => &["10.8.0.0/20", "fd00::/64", "\"\""],
        "RESTRICT_KUBEAPI" => &[
            "\"[  ]\"",
            "\"[ none ]\"",
            "\"[  203.0.113.0/24,  198.51.100.7,  ]\"",
            "[2001:db8::1, none]",
            "null",
        ],
        "DEPLOY_NGINX_INGRESS" | "DEPLOY_CERT_MANAGER" | "DEPLOY_FLUX" => {
            &["true", "false", "v1.9.6", "\"False\""]
        }
        "DEPLOY_METRICS"
        | "DEPLOY_GATEWAY_API"
        | "DEPLOY_HARBOR"
        | "OPENSTACK_ANTI_AFFINITY"
        | "OPENSTACK_ANTIAFFINITY" => &["true", "false", "\"True\""],
        "OPENSTACK_FAILURE_DOMAIN" => &[
            "fra1-a",
            "\"\"",
            "az-with-a-rather-long-name-0123456789-0123456789-0123456789",
        ],
        "OPENSTACK_CONTROL_PLANE_MACHINE_FLAVOR" | "OPENSTACK_NODE_MACHINE_FLAVOR" => {
            &["SCS-2V-4", "\"a flavor with spaces\""]
        }
        "CLUSTER_NAME" => &["prod", "null"],
        _ => VALUES,
    }
}

fn settings() -> impl Strategy<Value = (Vec<(usize, bool, usize)>, Vec<usize>)> {
    let n_keys = keys().len();
    (
        prop::collection::vec((0..n_keys, prop::bool::weighted(0.9), 0..64usize), 0..30),
        prop::collection::vec(0..n_keys, 0..4),
    )
}

fn opt(choice: u8, good: &str, bad: &str) -> Option<String> {
    match choice % 3 {
        0 => None,
        1 => Some(good.into()),
        _ => Some(bad.into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn never_panics_and_only_admissible_clusters_come_out(
        (pairs, secret_slots) in settings(),
        o in any::<(u8, u8, u8, u8, bool)>(),
    ) {
        let keys = keys();
        // Written as text, the way v1 files are, so that values YAML itself refuses reach
        // `migrate` too (duplicate keys included).
        let mut lines: Vec<String> = pairs
            .iter()
            .map(|(k, fits, v)| {
                let pool = if *fits { good(&keys[*k]) } else { VALUES };
                format!("{}: {}", keys[*k], pool[v % pool.len()])
            })
            .collect();
        // Secret keys get unique marker values that must never come out again.
        let mut markers = Vec::new();
        for (i, k) in secret_slots.iter().enumerate() {
            let key = &keys[*k];
            let secret = kaas_migrate::keys::known_keys()
                .iter()
                .any(|(name, kind)| name == key && *kind == Kind::Secret)
                || key.ends_with("_B64")
                || key.contains("TOKEN");
            if secret {
                let marker = format!("S3CRETMARK{i}Q");
                lines.push(format!("{key}: {marker}"));
                markers.push(marker);
            }
        }
        let text = lines.join("\n");
        let opts = Options {
            name: opt(o.0, "prod", "Bad Name"),
            default_name: Some("fallback".into()),
            namespace: opt(o.1, "tenant-a", "kaas-x"),
            provider: opt(o.2, "fra1", "-bad-"),
            region: opt(o.3, "fra1", ""),
            keep_patch: o.4,
        };
        match migrate(&text, &opts) {
            Ok(m) => {
                let errors = admit(
                    &crd_schema(&Cluster::crd()),
                    &serde_json::to_value(&m.cluster).unwrap(),
                    None,
                );
                prop_assert!(errors.is_empty(), "not admitted: {}\n{}", errors, text);
                let out = format!("{}{}{:?}", m.to_yaml(), m.to_json(), m.report);
                for marker in &markers {
                    prop_assert!(!out.contains(marker.as_str()), "secret leaked:\n{}", text);
                }
                prop_assert_eq!(m.report.entries.len(), lines.len());
            }
            Err(e) => {
                let out = format!("{e}{e:?}");
                for marker in &markers {
                    prop_assert!(!out.contains(marker.as_str()), "secret leaked into error:\n{}", text);
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = migrate(&text, &Options { name: Some("x".into()), ..Options::default() });
    }
}

#[test]
fn many_generated_files_are_accepted() {
    // The property above is only meaningful if many generated files are accepted.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    let accepted = Cell::new(0);
    runner
        .run(&settings(), |(pairs, _)| {
            let keys = keys();
            let text: Vec<String> = pairs
                .iter()
                .map(|(k, fits, v)| {
                    let pool = if *fits { good(&keys[*k]) } else { VALUES };
                    format!("{}: {}", keys[*k], pool[v % pool.len()])
                })
                .collect();
            if migrate(
                &text.join("\n"),
                &Options {
                    name: Some("x".into()),
                    ..Options::default()
                },
            )
            .is_ok()
            {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    let accepted = accepted.get();
    eprintln!("{accepted} of 200 generated files accepted");
    assert!(
        accepted >= 20,
        "only {accepted} of 200 generated files were accepted"
    );
}
