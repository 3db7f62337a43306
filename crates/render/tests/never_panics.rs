//! Property test: admission checks, `validate` and `render` never panic, whatever the input.
//! Inputs are random JSON trees built from the SCS-API's own field names and edge-case values,
//! so they reach deep into the schema instead of failing at the first key.
//!
//! Case count: `KAAS_PROPTEST_CASES` (default 2000, as in CI). The long run that RELIABILITY.md
//! reports: `KAAS_PROPTEST_CASES=1000000 nice -n 19 cargo test --release -p kaas-render --test never_panics`

use kaas_api::{Cluster, Provider};
use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// Cases per property: `KAAS_PROPTEST_CASES` when set (the long-running mode), else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("KAAS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

const KEYS: &[&str] = &[
    "kubernetes",
    "version",
    "provider",
    "name",
    "providerType",
    "region",
    "controlPlane",
    "replicas",
    "flavor",
    "zones",
    "antiAffinity",
    "workers",
    "count",
    "minCount",
    "maxCount",
    "labels",
    "taints",
    "key",
    "value",
    "effect",
    "network",
    "ipFamily",
    "pods",
    "services",
    "nodes",
    "extensions",
    "metrics",
    "ingress",
    "gatewayAPI",
    "certManager",
    "flux",
    "harbor",
    "additional",
    "enabled",
    "implementation",
    "addons",
    "nginxIngress",
    "metricsServer",
    "maintenance",
    "window",
    "start",
    "duration",
    "autoUpdatePatch",
    "access",
    "oidc",
    "issuerURL",
    "clientID",
    "apiServerAllowedCIDRs",
    "deletionProtection",
    "status",
    "targetVersion",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(-1i64),
            Just(0),
            Just(1),
            Just(3),
            Just(5),
            Just(i64::from(i32::MAX) + 1),
            any::<i64>()
        ]
        .prop_map(|n| json!(n)),
        prop_oneof![
            Just("1.35.x".to_string()),
            Just("v1.36.3".to_string()),
            Just("1.34.4".to_string()),
            Just("1.99.x".to_string()),
            Just("SCS-4V-8".to_string()),
            Just("fra1".to_string()),
            Just("fra1-a".to_string()),
            Just("10.0.0.0/8".to_string()),
            // Network ranges: overlapping, adjacent, of both families, the whole space, too small.
            Just("10.96.0.0/16".to_string()),
            Just("10.96.0.0/12".to_string()),
            Just("10.8.0.0/20".to_string()),
            Just("fd00:10:244::/56".to_string()),
            Just("fd00::/8".to_string()),
            Just("0.0.0.0/0".to_string()),
            Just("::/0".to_string()),
            Just("10.0.0.1/32".to_string()),
            Just("10.0.0.0/33".to_string()),
            Just("IPv6".to_string()),
            Just("DualStack".to_string()),
            Just("02:00".to_string()),
            Just("3h".to_string()),
            Just("https://x".to_string()),
            Just("".to_string()),
            "[a-zA-Z0-9.:/_-]{0,12}",
        ]
        .prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn providers() -> &'static [Provider] {
    static PROVIDERS: OnceLock<Vec<Provider>> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        [
            include_str!("../../../examples/provider-openstack.yaml"),
            include_str!("../../../examples/provider-inmemory.yaml"),
        ]
        .iter()
        .map(|y| serde_yaml::from_str::<Provider>(y).unwrap())
        .flat_map(|p| {
            // The same offering with reserved ranges that the examples' ranges overlap.
            let mut reserved = p.clone();
            reserved.spec.reserved_networks = vec!["10.0.0.0/8".into(), "fd00::/8".into()];
            [p, reserved]
        })
        .collect()
    })
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| crd_schema(&Cluster::crd()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn nothing_panics_on_arbitrary_specs(spec in tree(), status in tree(), old in tree()) {
        let object = json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t"}, "spec": spec, "status": status,
        });
        let old_object = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"}, "spec": old});
        let _ = admit(schema(), &object, None);
        let _ = admit(schema(), &object, Some(&old_object));
        if let Ok(cluster) = serde_json::from_value::<Cluster>(object) {
            for p in providers() {
                if let Ok(resolved) = kaas_validate::validate(&cluster, p) {
                    let _ = kaas_render::render(&cluster, &resolved);
                }
            }
        }
    }
}
