//! `kaas plan`: what a change rolls. Unit tests on small fixtures, and golden text and JSON of an
//! upgrade (`UPDATE_GOLDEN=1 cargo test -p kaas-render --test plan` to accept a change).

use std::path::PathBuf;

use k8s_openapi::jiff::Timestamp;
use kaas_api::{Cluster, Provider};
use kaas_render::plan::{Action, Change, Decision, Part, Plan, plan};

const PROVIDER: &str = r#"
apiVersion: scs.community/v1alpha1
kind: Provider
metadata: {name: dev}
spec:
  providerType: inmemory
  backend: {type: ClusterAPI, namespace: kaas-provider-dev, clusterAPI: {stack: in-memory}}
  regions: [{name: local, zones: [zone-a, zone-b]}]
  flavors:
    - {name: small, cpu: 2, memory: 4Gi}
    - {name: medium, cpu: 4, memory: 8Gi}
  kubernetesVersions:
    - {version: 1.36.3, classification: supported, stack: {clusterClass: in-memory-1-36}}
    - {version: 1.35.5, classification: supported, stack: {clusterClass: in-memory-1-35}}
    - {version: 1.35.4, classification: supported, stack: {clusterClass: in-memory-1-35}}
    - {version: 1.34.4, classification: deprecated, stack: {clusterClass: in-memory-1-34}}
  extensions:
    - {name: gatewayAPI, version: 1.5.1, default: true}
  defaults: {controlPlaneReplicas: 1, controlPlaneFlavor: small, workerFlavor: small}
"#;

/// Runs 1.35.4 (`1.35.4` in the spec), two pools, a maintenance window 02:00+2h.
const CURRENT: &str = r#"
apiVersion: scs.community/v1alpha1
kind: Cluster
metadata: {name: demo, namespace: tenant-a}
spec:
  provider: {name: dev}
  kubernetes: {version: 1.35.4}
  controlPlane: {replicas: 3}
  workers:
    - {name: default, count: 2, flavor: small}
    - {name: big, count: 3, flavor: small, zones: [zone-a, zone-b]}
  maintenance: {window: {start: "02:00", duration: 2h}}
status:
  kubernetesVersion: v1.35.4
  targetVersion: v1.35.4
"#;

fn provider() -> Provider {
    serde_yaml::from_str(PROVIDER).unwrap()
}
fn current() -> Cluster {
    serde_yaml::from_str(CURRENT).unwrap()
}
fn noon() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}
fn proposed(change: impl FnOnce(&mut Cluster)) -> Cluster {
    let mut c = current();
    c.status = None;
    change(&mut c);
    c
}
fn plan_of(change: impl FnOnce(&mut Cluster)) -> Plan {
    let p = plan(&current(), &proposed(change), &provider(), noon());
    // Deterministic, and JSON both ways.
    let again = plan(&current(), &proposed(|_| {}), &provider(), noon());
    assert!(again.no_change, "{}", again.to_text());
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
    p
}
fn workers(c: &mut Cluster) -> &mut Vec<kaas_api::cluster::WorkerPool> {
    c.spec.workers.as_mut().unwrap()
}

#[test]
fn no_change_is_an_empty_plan() {
    let p = plan_of(|_| {});
    assert!(p.no_change && !p.refused, "{p:#?}");
    assert!(p.spec_changes.is_empty() && p.objects.is_empty() && p.rollout.is_empty());
    assert_eq!(p.version, None);
    assert_eq!(p.when.decision, Decision::Now);
    assert!(p.to_text().contains("No change"), "{}", p.to_text());
}

#[test]
fn scaling_a_pool_adds_machines_and_rolls_none() {
    let p = plan_of(|c| workers(c)[0].count = Some(5));
    assert!(!p.refused && !p.no_change, "{p:#?}");
    assert_eq!(p.spec_changes.len(), 1);
    assert_eq!(p.spec_changes[0].path, "spec.workers[name=default].count");
    assert_eq!(p.spec_changes[0].old, Some(2.into()));
    assert_eq!(p.spec_changes[0].new, Some(5.into()));
    assert_eq!(p.rollout.len(), 1, "{:#?}", p.rollout);
    let r = &p.rollout[0];
    assert_eq!(
        (r.part, r.name.as_str(), r.change),
        (Part::Pool, "default", Change::Scale)
    );
    assert_eq!((r.machines_before, r.machines_after, r.machines), (2, 5, 3));
    // Only the Cluster API Cluster changes, only that MachineDeployment's replicas.
    assert_eq!(p.objects.len(), 1);
    let o = &p.objects[0];
    assert_eq!((o.kind.as_str(), o.action), ("Cluster", Action::Changed));
    assert_eq!(
        o.fields.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["spec.topology.workers.machineDeployments[name=default].replicas"]
    );
    let text = p.to_text();
    assert!(
        text.contains("pool default: adds 3 machines (2 → 5), none rolls"),
        "{text}"
    );
}

#[test]
fn changing_a_pools_flavor_rolls_all_its_machines() {
    let p = plan_of(|c| workers(c)[1].flavor = Some("medium".into()));
    assert!(!p.refused, "{p:#?}");
    assert_eq!(p.rollout.len(), 1, "{:#?}", p.rollout);
    let r = &p.rollout[0];
    assert_eq!(
        (r.name.as_str(), r.change, r.machines),
        ("big", Change::Roll, 3)
    );
    assert_eq!(r.reasons, ["flavor small → medium"]);
    assert_eq!(r.machine_deployments, ["big-zone-a", "big-zone-b"]);
    assert_eq!(p.version, None);
    let text = p.to_text();
    assert!(
        text.contains("pool big: rolls all 3 machines (flavor small → medium)"),
        "{text}"
    );
    assert!(text.contains("maxSurge 1 (Cluster API default)"), "{text}");
}

#[test]
fn an_upgrade_rolls_the_control_plane_first_then_each_pool() {
    let p = plan_of(|c| c.spec.kubernetes.as_mut().unwrap().version = Some("1.36.x".into()));
    assert!(!p.refused, "{p:#?}");
    let v = p.version.clone().unwrap();
    assert_eq!((v.from.as_str(), v.to.as_str()), ("v1.35.4", "v1.36.3"));
    assert_eq!(v.steps.len(), 1);
    assert_eq!(
        v.steps[0].order,
        ["control plane", "pool default", "pool big"]
    );
    // Another minor, asked for: now, even outside the window.
    assert_eq!(p.when.decision, Decision::Now);
    let order: Vec<(u32, &str, Change, i32)> = p
        .rollout
        .iter()
        .map(|r| (r.order, r.name.as_str(), r.change, r.machines))
        .collect();
    assert_eq!(
        order,
        [
            (1, "control-plane", Change::Roll, 3),
            (2, "default", Change::Roll, 2),
            (3, "big", Change::Roll, 3)
        ]
    );
    assert!(
        p.rollout[0]
            .reasons
            .contains(&"version v1.35.4 → v1.36.3".to_string())
    );
    golden("plan-upgrade.txt", &p.to_text());
    golden(
        "plan-upgrade.json",
        &serde_json::to_string_pretty(&p).unwrap(),
    );
}

#[test]
fn a_patch_update_waits_for_the_maintenance_window() {
    let p = plan_of(|c| {
        c.spec.kubernetes.as_mut().unwrap().version = Some("1.35.x".into());
        workers(c)[0].count = Some(3);
    });
    assert!(!p.refused, "{p:#?}");
    assert_eq!(p.version.as_ref().unwrap().to, "v1.35.5");
    assert_eq!(p.when.decision, Decision::WaitForWindow);
    assert_eq!(p.when.window.as_deref(), Some("02:00+2h"));
    // Meanwhile only the scale rolls out; nothing rolls for the version yet.
    assert_eq!(p.rollout.len(), 1, "{:#?}", p.rollout);
    assert_eq!(p.rollout[0].change, Change::Scale);
    // Inside the window it rolls now.
    let night = "2026-11-23T02:30:00Z".parse().unwrap();
    let p = plan(
        &current(),
        &proposed(|c| c.spec.kubernetes.as_mut().unwrap().version = Some("1.35.x".into())),
        &provider(),
        night,
    );
    assert_eq!(p.when.decision, Decision::Now);
    assert_eq!(p.rollout.len(), 3);
}

#[test]
fn a_refused_change_names_its_fields() {
    let p = plan_of(|c| {
        workers(c)[0].flavor = Some("huge".into());
        c.spec.control_plane.as_mut().unwrap().replicas = Some(2);
    });
    assert!(p.refused, "{p:#?}");
    let paths: Vec<&str> = p.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"spec.controlPlane.replicas"), "{paths:?}");
    assert!(p.rollout.is_empty() && p.objects.is_empty());
    assert!(p.to_text().contains("REFUSED"), "{}", p.to_text());

    // The offering: an unknown flavor, with what is offered.
    let p = plan_of(|c| workers(c)[0].flavor = Some("huge".into()));
    assert!(p.refused);
    assert_eq!(p.errors[0].path, "spec.workers[0].flavor");
    assert_eq!(p.errors[0].kind, "NotSupported");
    assert!(
        p.errors[0].allowed.contains(&"medium".to_string()),
        "{:?}",
        p.errors
    );

    // The region is immutable (CEL transition rule against the stored cluster).
    let p = plan_of(|c| c.spec.provider.as_mut().unwrap().region = Some("other".into()));
    assert!(p.refused);
    assert!(
        p.errors.iter().any(|e| e.path.starts_with("spec")),
        "{:?}",
        p.errors
    );
}

#[test]
fn skipping_a_minor_is_refused_with_the_steps_to_take() {
    let mut cur = current();
    cur.spec.kubernetes.as_mut().unwrap().version = Some("1.34.4".into());
    let s = cur.status.as_mut().unwrap();
    s.kubernetes_version = Some("v1.34.4".into());
    s.target_version = Some("v1.34.4".into());
    let mut new = cur.clone();
    new.spec.kubernetes.as_mut().unwrap().version = Some("1.36.x".into());
    let p = plan(&cur, &new, &provider(), noon());
    assert!(p.refused, "{p:#?}");
    assert_eq!(p.errors[0].path, "spec.kubernetes.version");
    let steps: Vec<(&str, &str)> = p
        .version
        .as_ref()
        .unwrap()
        .steps
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str()))
        .collect();
    assert_eq!(steps, [("v1.34.4", "v1.35.5"), ("v1.35.5", "v1.36.3")]);
}

#[test]
fn new_and_removed_pools_and_labels() {
    let p = plan_of(|c| {
        let w = workers(c);
        w.remove(0);
        w[0].labels = Some([("tier".to_string(), "batch".to_string())].into());
        w.push(kaas_api::cluster::WorkerPool {
            name: "extra".into(),
            count: Some(1),
            ..Default::default()
        });
    });
    assert!(!p.refused, "{p:#?}");
    let got: Vec<(&str, Change, i32)> = p
        .rollout
        .iter()
        .map(|r| (r.name.as_str(), r.change, r.machines))
        .collect();
    assert_eq!(
        got,
        [
            ("big", Change::InPlace, 0),
            ("extra", Change::Create, 1),
            ("default", Change::Delete, -2)
        ]
    );
}

fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "{name} changed; UPDATE_GOLDEN=1 to accept");
}

#[test]
fn hibernating_scales_every_pool_to_zero_and_waking_back() {
    let p = plan_of(|c| {
        c.spec.hibernation = Some(kaas_api::hibernation::HibernationSpec {
            enabled: Some(true),
            schedules: None,
        })
    });
    assert!(!p.refused && !p.no_change, "{p:#?}");
    assert_eq!(p.spec_changes[0].path, "spec.hibernation");
    let pools: Vec<_> = p
        .rollout
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.change,
                r.machines_before,
                r.machines_after,
            )
        })
        .collect();
    assert_eq!(
        pools,
        [
            ("default", Change::Scale, 2, 0),
            ("big", Change::Scale, 3, 0)
        ],
        "{:#?}",
        p.rollout
    );
    let text = p.to_text();
    assert!(text.contains("(hibernation)"), "{text}");
    // Only replicas change (the control plane is kept on Cluster API stacks).
    assert!(
        p.objects
            .iter()
            .flat_map(|o| &o.fields)
            .all(|f| f.path.ends_with(".replicas")),
        "{:#?}",
        p.objects
    );

    // Waking: the pools come back to their sizes.
    let mut asleep = current();
    asleep.spec.hibernation = Some(kaas_api::hibernation::HibernationSpec {
        enabled: Some(true),
        schedules: None,
    });
    let mut woken = asleep.clone();
    woken.status = None;
    woken.spec.hibernation.as_mut().unwrap().enabled = Some(false);
    let w = plan(&asleep, &woken, &provider(), noon());
    assert_eq!(w.spec_changes[0].path, "spec.hibernation.enabled");
    let back: Vec<_> = w
        .rollout
        .iter()
        .map(|r| (r.name.as_str(), r.machines_before, r.machines_after))
        .collect();
    assert_eq!(back, [("default", 0, 2), ("big", 0, 3)]);
    assert!(
        w.to_text().contains("(waking from hibernation)"),
        "{}",
        w.to_text()
    );
}
