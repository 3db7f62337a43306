//! Property test with structure-aware generation: valid example Clusters (`examples/cluster-*.yaml`,
//! the 2022-proposal shape included) are mutated one to three times — a field dropped, duplicated
//! or renamed, a value replaced by a boundary number, a huge or unicode string, a near-valid
//! version, zone, flavor or network range, an empty or very long list, deeply nested extension
//! maps — so that most inputs still parse and reach deep into `validate` and `render`.
//!
//! Asserted for every input: admission (schema + CEL) never panics; `validate` never panics and
//! returns either a resolved cluster or field errors whose paths start with `spec.` or
//! `metadata.`; when it accepts, `render` never panics (it may return an error). A share of the
//! inputs must still be accepted, so the property keeps reaching `render`.
//!
//! Case count: `KAAS_PROPTEST_CASES` (default 500, a few seconds in CI). The long run that
//! RELIABILITY.md reports:
//! `KAAS_PROPTEST_CASES=1000000 nice -n 19 cargo test --release -p kaas-validate --test near_valid -- --nocapture`

use kaas_api::{Cluster, Provider};
use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::cell::Cell;
use std::sync::OnceLock;

/// Cases per property: `KAAS_PROPTEST_CASES` when set (the long-running mode), else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("KAAS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

const CLUSTERS: &[&str] = &[
    include_str!("../../../examples/cluster-full.yaml"),
    include_str!("../../../examples/cluster-demo.yaml"),
    include_str!("../../../examples/cluster-local.yaml"),
    include_str!("../../../examples/cluster-2022-proposal.yaml"),
];
const PROVIDERS: &[&str] = &[
    include_str!("../../../examples/provider-openstack.yaml"),
    include_str!("../../../examples/provider-inmemory.yaml"),
    include_str!("../../../examples/provider-local.yaml"),
];

struct Fixtures {
    schema: Value,
    providers: Vec<Provider>,
    /// Valid (cluster object, index of a provider that accepts it) pairs.
    seeds: Vec<(Value, usize)>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let providers: Vec<Provider> = PROVIDERS
            .iter()
            .map(|y| serde_yaml::from_str(y).unwrap())
            .collect();
        let mut seeds = Vec::new();
        let legacy_spec: Value =
            serde_yaml::from_str(include_str!("fixtures/legacy-spec.yaml")).unwrap();
        let legacy = json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "legacy", "namespace": "t"}, "spec": legacy_spec,
        });
        for object in CLUSTERS
            .iter()
            .map(|y| serde_yaml::from_str::<Value>(y).unwrap())
            .chain([legacy])
        {
            let cluster: Cluster = serde_json::from_value(object.clone()).unwrap();
            for (i, p) in providers.iter().enumerate() {
                if kaas_validate::validate(&cluster, p).is_ok() {
                    seeds.push((object.clone(), i));
                }
            }
        }
        assert!(seeds.len() >= 5, "too few valid seeds: {}", seeds.len());
        Fixtures {
            schema: crd_schema(&Cluster::crd()),
            providers,
            seeds,
        }
    })
}

const KEYS: &[&str] = &[
    "kubernetes",
    "version",
    "provider",
    "name",
    "region",
    "providerType",
    "controlPlane",
    "replicas",
    "flavor",
    "zones",
    "workers",
    "count",
    "minCount",
    "maxCount",
    "labels",
    "taints",
    "network",
    "ipFamily",
    "pods",
    "services",
    "nodes",
    "extensions",
    "additional",
    "ingress",
    "enabled",
    "implementation",
    "addons",
    "maintenance",
    "window",
    "access",
    "oidc",
    "apiServerAllowedCIDRs",
    "deletionProtection",
    "namespace",
];

fn strings() -> Vec<String> {
    let mut s: Vec<String> = [
        "",
        " ",
        "1.35.x",
        "1.36.x",
        "1.35.4",
        "v1.35.4",
        "v1.35.4-rc.1",
        "1.35.4-rc.1",
        "1.35",
        "1.x",
        "1.35.x.1",
        "01.35.4",
        "1.99.x",
        "1.34.x",
        "1.37.x",
        "x.y.z",
        "1.-1.0",
        "1.35.99999999999999999999",
        "garbage",
        "fra1",
        "fra2",
        "fra1-a",
        "fra2-a",
        "fra1-z",
        "zone-a",
        "zone-z",
        "local",
        "SCS-2V-4",
        "SCS-16V-64-GPU",
        "SCS-1V-1",
        "small",
        "large",
        "huge",
        "10.244.0.0/16",
        "10.96.0.0/12",
        "10.96.0.0/16",
        "10.96.0.1/12",
        "10.8.0.0/20",
        "10.8.0.0/29",
        "10.8.0.0/31",
        "10.8.0.0/32",
        "10.8.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/",
        "/8",
        "256.0.0.0/8",
        "10.0.0/8",
        " 10.0.0.0/8",
        "0.0.0.0/0",
        "::/0",
        "fd00::/8",
        "fd00:10:244::/56",
        "fd00::/129",
        "fd00:::/64",
        "::ffff:10.0.0.0/104",
        "IPv4",
        "IPv6",
        "DualStack",
        "ipv4",
        "NoSchedule",
        "NoExecute",
        "Sometimes",
        "nginx",
        "traefik",
        "02:00",
        "25:00",
        "2:0",
        "3h",
        "0h",
        "-3h",
        "1000000h",
        "https://login.example.com",
        "http://x",
        "https://",
        "openstack",
        "ünïcödé-名前-ß",
        "\u{0}",
        "a\nb",
        "\u{202e}rtl",
        "😀",
        "kaas-system",
        "kube-system",
        "-bad-",
        "UPPER",
    ]
    .map(String::from)
    .to_vec();
    s.push("a".repeat(64));
    s.push("a".repeat(254));
    s.push("x".repeat(4096));
    s.push("é".repeat(70_000));
    s
}

fn numbers() -> Vec<Value> {
    vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(2),
        json!(3),
        json!(4),
        json!(1000),
        json!(1001),
        json!(i32::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!(i32::MIN),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
    ]
}

/// Fields that are worth hitting with near-valid values, as JSON paths from the object.
const TARGETS: &[&[&str]] = &[
    &["spec", "kubernetes", "version"],
    &["spec", "provider", "name"],
    &["spec", "provider", "region"],
    &["spec", "provider", "providerType"],
    &["spec", "controlPlane", "replicas"],
    &["spec", "controlPlane", "flavor"],
    &["spec", "controlPlane", "zones"],
    &["spec", "workers", "0", "count"],
    &["spec", "workers", "0", "minCount"],
    &["spec", "workers", "0", "maxCount"],
    &["spec", "workers", "0", "flavor"],
    &["spec", "workers", "0", "zones"],
    &["spec", "workers", "0", "name"],
    &["spec", "workers", "0", "labels"],
    &["spec", "workers", "0", "taints"],
    &["spec", "network", "ipFamily"],
    &["spec", "network", "pods"],
    &["spec", "network", "services"],
    &["spec", "network", "nodes"],
    &["spec", "extensions", "ingress"],
    &["spec", "extensions", "additional"],
    &["spec", "maintenance", "window", "start"],
    &["spec", "maintenance", "window", "duration"],
    &["spec", "access", "apiServerAllowedCIDRs"],
    &["spec", "access", "oidc", "issuerURL"],
    &["metadata", "name"],
    &["metadata", "namespace"],
];

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Idx(usize),
}

fn paths(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Seg::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Seg::Idx(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Idx(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The value at `path`, created (objects, or arrays for numeric segments) where missing.
fn ensure<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut cur = v;
    for s in path {
        if let Ok(i) = s.parse::<usize>() {
            if !cur.is_array() {
                *cur = json!([]);
            }
            let a = cur.as_array_mut().unwrap();
            while a.len() <= i {
                a.push(json!({"name": format!("w{}", a.len())}));
            }
            cur = &mut a[i];
        } else {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(s.to_string())
                .or_insert(Value::Null);
        }
    }
    cur
}

fn nested(depth: usize) -> Value {
    let mut v = json!({"enabled": true, "values": {"k": "v"}});
    for i in 0..depth {
        v = json!({ format!("level{i}"): v, "enabled": i % 2 == 0 });
    }
    v
}

/// One mutation: what to do, where, with which value, how many times.
type Mutation = (u8, usize, usize, usize);

fn value_for(pick: usize, n: usize, strings: &[String], numbers: &[Value]) -> Value {
    match pick % 8 {
        0..=2 => Value::String(strings[n % strings.len()].clone()),
        3 | 4 => numbers[n % numbers.len()].clone(),
        5 => json!([strings[n % strings.len()].clone()]),
        6 => match n % 5 {
            0 => json!([]),
            1 => json!({}),
            2 => Value::Null,
            3 => json!(n.is_multiple_of(2)),
            _ => nested(n % 40),
        },
        _ => json!([
            strings[n % strings.len()].clone(),
            strings[(n / 7) % strings.len()].clone()
        ]),
    }
}

fn mutate(object: &mut Value, (op, where_, pick, n): Mutation) {
    let strings = strings();
    let numbers = numbers();
    let mut all = Vec::new();
    paths(object, &mut Vec::new(), &mut all);
    // Keep apiVersion/kind: their mutations stop at deserialization.
    all.retain(|p| matches!(p.first(), Some(Seg::Key(k)) if k == "spec" || k == "metadata"));
    // Once spec and metadata are both gone, only the ops that add fields apply.
    if all.is_empty() && op % 9 < 6 {
        return;
    }
    let path = all
        .get(where_ % all.len().max(1))
        .cloned()
        .unwrap_or_default();
    match op % 9 {
        // Drop a field or list element.
        0 => {
            if let Some((last, parent)) = path.split_last()
                && let Some(parent) = at(object, parent)
            {
                match (last, parent) {
                    (Seg::Key(k), Value::Object(m)) => {
                        m.remove(k);
                    }
                    (Seg::Idx(i), Value::Array(a)) => {
                        a.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        // Duplicate a field (under another key) or a list element.
        1 => {
            if let Some((last, parent)) = path.split_last()
                && let Some(parent) = at(object, parent)
            {
                match (last, parent) {
                    (Seg::Key(k), Value::Object(m)) => {
                        let v = m[k].clone();
                        m.insert(KEYS[pick % KEYS.len()].to_string(), v);
                    }
                    (Seg::Idx(i), Value::Array(a)) => {
                        let v = a[*i].clone();
                        a.insert(*i, v);
                    }
                    _ => {}
                }
            }
        }
        // Rename a field: a typo, another case, another known key.
        2 => {
            if let Some((Seg::Key(k), parent)) = path.split_last()
                && let Some(Value::Object(m)) = at(object, parent)
                && let Some(v) = m.remove(k)
            {
                let renamed = match pick % 4 {
                    0 => k.to_uppercase(),
                    1 => format!("{k}s"),
                    2 => k.chars().skip(1).collect(),
                    _ => KEYS[n % KEYS.len()].to_string(),
                };
                m.insert(renamed, v);
            }
        }
        // Replace a value anywhere.
        3 | 4 => {
            if let Some(v) = at(object, &path) {
                *v = value_for(pick, n, &strings, &numbers);
            }
        }
        // Very long or empty lists.
        5 => {
            if let Some(v) = at(object, &path) {
                let len = n % 300;
                let items: Vec<Value> = match &*v {
                    Value::Array(a) if !a.is_empty() => {
                        a.iter().cycle().take(len).cloned().collect()
                    }
                    other => std::iter::repeat_n(other.clone(), len).collect(),
                };
                *v = Value::Array(items);
            }
        }
        // Nested extension maps.
        6 => {
            let key = ["additional", "ingress", "harbor", "x-custom", "metrics"][pick % 5];
            *ensure(object, &["spec", "extensions", key]) = nested(n % 64);
        }
        // Near-valid values on the fields that matter.
        _ => {
            let target = TARGETS[where_ % TARGETS.len()];
            *ensure(object, target) = value_for(pick, n, &strings, &numbers);
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>())
}

fn input() -> impl Strategy<Value = (usize, Option<usize>, Vec<Mutation>)> {
    (
        any::<usize>(),
        prop::option::weighted(0.1, any::<usize>()),
        prop_oneof![
            3 => prop::collection::vec(mutation(), 1..=1),
            2 => prop::collection::vec(mutation(), 2..=3),
        ],
    )
}

#[test]
fn near_valid_clusters_never_panic_and_errors_name_their_field() {
    let f = fixtures();
    let n = cases(500);
    let (parsed, accepted, rendered) = (Cell::new(0u64), Cell::new(0u64), Cell::new(0u64));
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&input(), |(seed, other, mutations)| {
        let (original, p) = &f.seeds[seed % f.seeds.len()];
        let provider = &f.providers[other.map_or(*p, |o| o % f.providers.len())];
        let mut object = original.clone();
        for m in mutations {
            mutate(&mut object, m);
        }
        let _ = admit(&f.schema, &object, None);
        let _ = admit(&f.schema, &object, Some(original));
        let Ok(cluster) = serde_json::from_value::<Cluster>(object) else {
            return Ok(());
        };
        parsed.set(parsed.get() + 1);
        match kaas_validate::validate(&cluster, provider) {
            Ok(resolved) => {
                accepted.set(accepted.get() + 1);
                if let Ok(r) = kaas_render::render(&cluster, &resolved) {
                    let _ = r.objects();
                    rendered.set(rendered.get() + 1);
                }
            }
            Err(errors) => {
                if errors.0.is_empty() {
                    return Err(TestCaseError::fail("refused without any field error"));
                }
                for e in &errors.0 {
                    if !(e.path.starts_with("spec.") || e.path.starts_with("metadata.")) {
                        return Err(TestCaseError::fail(format!(
                            "error path {:?} outside spec./metadata.: {e}",
                            e.path
                        )));
                    }
                }
            }
        }
        Ok(())
    });
    let (parsed, accepted, rendered) = (parsed.get(), accepted.get(), rendered.get());
    eprintln!(
        "near-valid clusters: {n} generated, {parsed} deserialized, {accepted} accepted by validate, {rendered} rendered"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = u64::from(n);
    assert!(parsed * 4 >= n, "only {parsed} of {n} inputs deserialized");
    assert!(accepted * 10 >= n, "only {accepted} of {n} inputs accepted");
}

#[test]
fn the_mutations_keep_many_inputs_near_valid() {
    // One mutation of a valid seed, with the same provider: most stay parseable.
    let f = fixtures();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = Cell::new(0);
    runner
        .run(&(any::<usize>(), mutation()), |(seed, m)| {
            let (original, p) = &f.seeds[seed % f.seeds.len()];
            let mut object = original.clone();
            mutate(&mut object, m);
            if let Ok(c) = serde_json::from_value::<Cluster>(object)
                && kaas_validate::validate(&c, &f.providers[*p]).is_ok()
            {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() >= 60,
        "only {} of 300 singly mutated clusters accepted",
        accepted.get()
    );
}

#[test]
fn mutating_an_object_without_spec_or_metadata_is_harmless() {
    // The generator itself once divided by zero after dropping both spec and metadata.
    for op in 0..9 {
        let mut object = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster"});
        mutate(&mut object, (op, 0, 0, 0));
    }
}
