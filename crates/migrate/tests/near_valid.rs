//! Property test with structure-aware generation of legacy objects: the KaaS v1 settings files of
//! the golden tests (`tests/fixtures/*.clusterctl.yaml`) are mutated one to three times — a key
//! dropped, duplicated or renamed, a value replaced by a boundary number, a huge or unicode
//! string, a near-valid version or network range, a very long list, a nested map — and the
//! options varied, so that many files still migrate and reach `validate` and `render`.
//!
//! Asserted for every input: `migrate` never panics; a refusal names at least one key; a
//! migrated Cluster is admitted by the CRD (schema + CEL); `validate` of it against the OpenStack
//! example provider never panics and its field errors start with `spec.` or `metadata.`; when
//! accepted, `render` never panics.
//!
//! Case count: `KAAS_PROPTEST_CASES` (default 1000, a few seconds in CI). The long run that
//! RELIABILITY.md reports:
//! `KAAS_PROPTEST_CASES=1000000 nice -n 19 cargo test --release -p kaas-migrate --test near_valid -- --nocapture`

use kaas_api::{Cluster, Provider};
use kaas_migrate::{Error, Options, migrate};
use kaas_validate::schema::{admit, crd_schema};
use kube::CustomResourceExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use std::cell::Cell;
use std::sync::OnceLock;

/// Cases per property: `KAAS_PROPTEST_CASES` when set (the long-running mode), else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("KAAS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

const SEEDS: &[&str] = &[
    include_str!("fixtures/all-on.clusterctl.yaml"),
    include_str!("fixtures/all-off.clusterctl.yaml"),
    include_str!("fixtures/custom-cidrs.clusterctl.yaml"),
    include_str!("fixtures/legacy.clusterctl.yaml"),
    include_str!("fixtures/no-workers.clusterctl.yaml"),
    include_str!("fixtures/secrets.clusterctl.yaml"),
    include_str!("fixtures/several-zones.clusterctl.yaml"),
    include_str!("fixtures/invalid.clusterctl.yaml"),
];

struct Fixtures {
    schema: Value,
    provider: Provider,
    /// Each seed as its `KEY: value` lines (comments dropped).
    seeds: Vec<Vec<(String, String)>>,
    /// Every `KEY: value` line of the seeds that migrate.
    seen: Vec<(String, String)>,
    keys: Vec<String>,
    values: Vec<String>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let seeds: Vec<Vec<(String, String)>> = SEEDS
            .iter()
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once(':').unwrap();
                        (k.to_string(), v.trim().to_string())
                    })
                    .collect()
            })
            .collect();
        let mut keys: Vec<String> = kaas_migrate::keys::known_keys()
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        keys.extend(["UNKNOWN_KEY", "MY_TOKEN", "X_B64"].map(String::from));
        let mut values: Vec<String> = [
            "",
            "0",
            "-1",
            "1",
            "3",
            "2147483647",
            "2147483648",
            "-2147483648",
            "9223372036854775807",
            "99999999999999999999",
            "1.5",
            "1e300",
            ".nan",
            "~",
            "null",
            "true",
            "\"True\"",
            "no",
            "v1.35.4",
            "v1.35.x",
            "1.35.x",
            "v1.35.4-rc.1",
            "v1.35",
            "v1.99.0",
            "v1.35.4.1",
            "v01.35.4",
            "garbage",
            "v1.9.6",
            "fra1-a",
            "fra1-z",
            "fra1-a,fra1-b",
            "\"\"",
            "SCS-2V-4",
            "SCS-1V-1",
            "10.8.0.0/20",
            "10.8.0.0/31",
            "10.8.0.0/33",
            "10.8.0.0",
            "10.96.0.0/16",
            "10.96.0.1/12",
            "256.0.0.0/8",
            "fd00::/64",
            "fd00::/129",
            "::/0",
            "0.0.0.0/0",
            "\"[  ]\"",
            "\"[ none ]\"",
            "\"[ 203.0.113.0/24, 198.51.100.7, ]\"",
            "\"[ 203.0.113.0/24, intranet ]\"",
            "\"[ bogus\"",
            "[1, 2]",
            "{a: b}",
            "{a: {b: {c: {d: {e: f}}}}}",
            "\"ünïcödé-名前-ß\"",
            "\"\\u0000\"",
            "\"😀\"",
            "!tag value",
            "&anchor x",
            "*alias",
            "|\n  block",
        ]
        .map(String::from)
        .to_vec();
        values.push("a".repeat(254));
        values.push(format!("\"{}\"", "é".repeat(70_000)));
        let seen = seeds[..6].iter().flatten().cloned().collect();
        Fixtures {
            seen,
            schema: crd_schema(&Cluster::crd()),
            provider: serde_yaml::from_str(include_str!(
                "../../../examples/provider-openstack.yaml"
            ))
            .unwrap(),
            seeds,
            keys,
            values,
        }
    })
}

/// One mutation: what to do, on which line, with which value or key, how many times.
type Mutation = (u8, usize, usize, usize);

fn long_list(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!("10.{}.{}.0/24", i / 256 % 256, i % 256))
        .collect();
    format!("\"[ {} ]\"", items.join(", "))
}

fn mutate(lines: &mut Vec<(String, String)>, (op, line, pick, n): Mutation) {
    let f = fixtures();
    let i = if lines.is_empty() {
        0
    } else {
        line % lines.len()
    };
    match op % 8 {
        // Drop a key.
        0 if !lines.is_empty() => {
            lines.remove(i);
        }
        // Duplicate a key (with the same or another value).
        1 if !lines.is_empty() => {
            let (k, v) = lines[i].clone();
            let v = if pick % 2 == 0 {
                v
            } else {
                f.values[n % f.values.len()].clone()
            };
            lines.insert(i, (k, v));
        }
        // Rename a key: typo, lower case, another known key.
        2 if !lines.is_empty() => {
            let k = &lines[i].0;
            lines[i].0 = match pick % 4 {
                0 => k.to_lowercase(),
                1 => format!("{k}S"),
                2 => k.chars().skip(1).collect(),
                _ => f.keys[n % f.keys.len()].clone(),
            };
        }
        // Replace a value by a boundary or near-valid one.
        3 if !lines.is_empty() => lines[i].1 = f.values[n % f.values.len()].clone(),
        // Add a known key with a near-valid value, or a line of another seed.
        4 => lines.push((
            f.keys[pick % f.keys.len()].clone(),
            f.values[n % f.values.len()].clone(),
        )),
        5 => {
            let (k, v) = f.seen[n % f.seen.len()].clone();
            lines.retain(|(other, _)| *other != k);
            lines.push((k, v));
        }
        // A very long list of ranges.
        6 => {
            let key = ["RESTRICT_KUBEAPI", "OPENSTACK_DNS_NAMESERVERS", "POD_CIDR"][pick % 3];
            lines.push((key.into(), long_list(n % 2000)));
        }
        // A nested map as a value.
        _ => {
            let depth = n % 40;
            let v = format!("{}x: y{}", "{a: ".repeat(depth), "}".repeat(depth));
            let v = if depth == 0 { "{x: y}".into() } else { v };
            if lines.is_empty() {
                lines.push(("DEPLOY_FLUX".into(), v));
            } else {
                lines[i].1 = v;
            }
        }
    }
}

fn options(o: (u8, u8, u8, bool)) -> Options {
    Options {
        name: match o.0 % 8 {
            0 => None,
            1 => Some("Bad Name".into()),
            _ => Some("prod".into()),
        },
        default_name: Some("fallback".into()),
        namespace: match o.1 % 8 {
            0 => None,
            1 => Some("kaas-system".into()),
            _ => Some("tenant-a".into()),
        },
        provider: Some("fra1".into()),
        region: match o.2 % 8 {
            0 => None,
            1 => Some("fra2".into()),
            2 => Some("nowhere".into()),
            _ => Some("fra1".into()),
        },
        keep_patch: o.3,
    }
}

fn input() -> impl Strategy<Value = (usize, Vec<Mutation>, (u8, u8, u8, bool))> {
    let m = (any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>());
    (
        any::<usize>(),
        prop_oneof![
            3 => prop::collection::vec(m, 1..=1),
            2 => prop::collection::vec(m, 2..=3),
        ],
        any::<(u8, u8, u8, bool)>(),
    )
}

#[test]
fn near_valid_legacy_settings_never_panic() {
    let f = fixtures();
    let n = cases(1000);
    let (migrated, accepted, rendered) = (Cell::new(0u64), Cell::new(0u64), Cell::new(0u64));
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&input(), |(seed, mutations, o)| {
        let mut lines = f.seeds[seed % f.seeds.len()].clone();
        for m in mutations {
            mutate(&mut lines, m);
        }
        let text: Vec<String> = lines.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let text = text.join("\n");
        let m = match migrate(&text, &options(o)) {
            Ok(m) => m,
            Err(Error::Invalid(errors)) if errors.is_empty() => {
                return Err(TestCaseError::fail("refused without naming a key"));
            }
            Err(e) => {
                let _ = e.to_string();
                return Ok(());
            }
        };
        migrated.set(migrated.get() + 1);
        let _ = (m.to_yaml(), m.to_json());
        let object = serde_json::to_value(&m.cluster).unwrap();
        let errors = admit(&f.schema, &object, None);
        if !errors.0.is_empty() {
            return Err(TestCaseError::fail(format!(
                "not admitted: {errors}\n{text}"
            )));
        }
        match kaas_validate::validate(&m.cluster, &f.provider) {
            Ok(resolved) => {
                accepted.set(accepted.get() + 1);
                if kaas_render::render(&m.cluster, &resolved).is_ok() {
                    rendered.set(rendered.get() + 1);
                }
            }
            Err(errors) => {
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
    let (migrated, accepted, rendered) = (migrated.get(), accepted.get(), rendered.get());
    eprintln!(
        "near-valid legacy settings: {n} generated, {migrated} migrated, {accepted} accepted by validate, {rendered} rendered"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = u64::from(n);
    assert!(migrated * 8 >= n, "only {migrated} of {n} inputs migrated");
    assert!(accepted * 15 >= n, "only {accepted} of {n} inputs accepted");
}
