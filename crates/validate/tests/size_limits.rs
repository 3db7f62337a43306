//! Oversized input is judged in time linear in its size: a list over its `maxItems` stops the
//! checks of its items and the CEL rules (whose cost the API server bounds with `maxItems`), set
//! and map uniqueness is linear, and CEL rules have a cost budget like the API server's.

use std::time::Instant;

use kaas_validate::schema::{COST_BUDGET, PER_CALL_LIMIT, admit, crd_schema};
#[allow(unused_imports)]
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn cluster(workers: usize, additional: usize) -> Value {
    let w: Vec<_> = (0..workers)
        .map(|i| json!({"name": format!("w{i}"), "count": 1}))
        .collect();
    let a: Vec<_> = (0..additional)
        .map(|i| json!({"name": format!("e{i}")}))
        .collect();
    json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "t"},
        "spec": {"provider": {"name": "dev"}, "workers": w, "extensions": {"additional": a}}})
}

#[test]
fn ten_thousand_pools_stop_at_max_items_quickly() {
    let schema = crd_schema(&kaas_api::Cluster::crd());
    let object = cluster(10_000, 10_000);
    let start = Instant::now();
    let errs = admit(&schema, &object, None);
    let took = start.elapsed();
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["spec.extensions.additional", "spec.workers"],
        "{errs:?}"
    );
    assert!(errs.0[1].message.contains("at most 32 items (got 10000)"));
    // (Before: every item checked, then the quadratic CEL rule on 10,000 items: about a minute.)
    assert!(took.as_millis() < 500, "{took:?}");
}

#[test]
fn within_max_items_the_rules_still_run() {
    let schema = crd_schema(&kaas_api::Cluster::crd());
    let mut object = cluster(3, 0);
    object["spec"]["workers"][2]["name"] = json!("w0");
    let errs = admit(&schema, &object, None);
    assert!(
        errs.0
            .iter()
            .any(|e| e.path == "spec.workers" && e.message.contains("unique")),
        "{errs:?}"
    );
}

#[test]
fn rules_over_the_cost_budget_are_not_evaluated() {
    // A schema without maxItems and a quadratic rule: the estimate refuses it.
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(a, self.exists_one(b, b == a))"}]}}}}});
    let n = 2_000; // 2000² = 4·10⁶ > the per-call limit
    assert!((n as u64).pow(2) > PER_CALL_LIMIT && (n as u64).pow(2) < COST_BUDGET);
    let items: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    let object = json!({"spec": {"items": items}});
    let start = Instant::now();
    let errs = admit(&schema, &object, None);
    assert!(start.elapsed().as_millis() < 500, "{:?}", start.elapsed());
    assert_eq!(errs.0.len(), 1, "{errs:?}");
    assert_eq!(errs.0[0].path, "spec.items");
    assert!(errs.0[0].message.contains("cost"), "{errs:?}");
    // Small input is evaluated as before.
    let errs = admit(&schema, &json!({"spec": {"items": ["a", "a"]}}), None);
    assert_eq!(errs.0.len(), 1, "{errs:?}");
    assert!(!errs.0[0].message.contains("cost"));
}

#[test]
fn duplicates_in_a_large_set_are_found_in_linear_time() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}}});
    let mut tags: Vec<String> = (0..50_000).map(|i| format!("t{i}")).collect();
    tags.push("t7".into());
    let start = Instant::now();
    let errs = admit(&schema, &json!({"spec": {"tags": tags}}), None);
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].path, "spec.tags[50000]");
}
