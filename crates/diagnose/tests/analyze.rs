//! `analyze` on fixture objects: every case the operator can report (conditions and reasons of
//! `crates/operator/src/status.rs`, `controller.rs`, `compliance.rs`, `addons.rs`) and the
//! Cluster API states in between. Pure: no API server, `now` fixed.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kaas_api::Cluster;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::kubeadmcontrolplane::KubeadmControlPlane;
use kaas_capi::machine::Machine;
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_diagnose::*;
use kube::api::DynamicObject;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const NS: &str = "tenant-a";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// RFC 3339 time `ago` seconds before [`NOW`].
fn at(ago: i64) -> String {
    Timestamp::from_second(NOW - ago).unwrap().to_string()
}

fn cond(t: &str, s: &str, reason: &str, message: &str) -> Value {
    json!({"type": t, "status": s, "reason": reason, "message": message, "lastTransitionTime": at(600)})
}

fn scs(status: Value) -> Cluster {
    let mut c: Cluster = serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": NS, "generation": 1, "creationTimestamp": at(3600),
                     "finalizers": ["scs.community/cluster"]},
        "spec": {"provider": {"name": "dev"}, "workers": [{"name": "pool", "count": 2}]},
    }))
    .unwrap();
    if !status.is_null() {
        let mut s = status;
        if s.get("observedGeneration").is_none() {
            s["observedGeneration"] = json!(1);
        }
        c.status = Some(serde_json::from_value(s).unwrap());
    }
    c
}

fn ready_conditions() -> Vec<Value> {
    vec![
        cond("Ready", "True", "Ready", "the cluster is ready"),
        cond(
            "SpecAccepted",
            "True",
            "Valid",
            "valid for provider \"dev\"",
        ),
        cond(
            "InfrastructureReady",
            "True",
            "Provisioned",
            "infrastructure is provisioned",
        ),
        cond("ControlPlaneReady", "True", "Available", ""),
        cond(
            "WorkersReady",
            "True",
            "Available",
            "2/2 worker nodes ready",
        ),
        cond("VersionCurrent", "True", "UpToDate", "running v1.35.4"),
        cond("ExtensionsReady", "True", "Applied", "3 addon(s) applied"),
    ]
}

fn ready_status() -> Value {
    json!({"phase": "Ready", "kubernetesVersion": "v1.35.4", "targetVersion": "v1.35.4",
           "conditions": ready_conditions()})
}

fn capi_ns() -> String {
    kaas_render::capi_namespace("dev", NS)
}

fn capi_cluster(status: Value) -> CapiCluster {
    let mut v = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": capi_ns(), "creationTimestamp": at(3000)},
        "spec": {
            "topology": {"classRef": {"name": "in-memory", "namespace": "kaas-provider-dev"}, "version": "v1.35.4"},
            "controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "c-cp"},
            "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DevCluster", "name": "c-infra"},
        },
    });
    if !status.is_null() {
        v["status"] = status;
    }
    serde_json::from_value(v).unwrap()
}

fn capi_status(cp_available: bool, workers_available: bool) -> Value {
    let b = |x: bool| if x { "True" } else { "False" };
    json!({
        "phase": "Provisioned",
        "observedGeneration": 1,
        "initialization": {"infrastructureProvisioned": true, "controlPlaneInitialized": cp_available},
        "controlPlane": {"desiredReplicas": 1, "availableReplicas": if cp_available {1} else {0}},
        "workers": {"desiredReplicas": 2, "availableReplicas": if workers_available {2} else {0}},
        "conditions": [
            cond("Available", b(cp_available && workers_available), "Available", ""),
            cond("InfrastructureReady", "True", "Ready", ""),
            cond("ControlPlaneAvailable", b(cp_available), if cp_available {"Available"} else {"NotAvailable"}, if cp_available {""} else {"* Control plane: 0/1 machines available"}),
            cond("WorkersAvailable", b(workers_available), if workers_available {"Available"} else {"NotAvailable"}, if workers_available {""} else {"* MachineDeployment c-pool: 0/2 available"}),
            cond("TopologyReconciled", "True", "ReconcileSucceeded", ""),
            cond("ScalingUp", "False", "NotScalingUp", ""),
        ],
    })
}

fn kcp(ready: i32) -> KubeadmControlPlane {
    serde_json::from_value(json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
        "kind": "KubeadmControlPlane",
        "metadata": {"name": "c-cp", "namespace": capi_ns()},
        "spec": {"replicas": 1, "version": "v1.35.4",
                 "machineTemplate": {"spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DevMachineTemplate", "name": "t"}}}},
        "status": {"readyReplicas": ready, "availableReplicas": ready, "upToDateReplicas": 1, "replicas": 1,
                   "conditions": [cond("Available", if ready == 1 {"True"} else {"False"}, "", "")]},
    }))
    .unwrap()
}

fn md(ready: i32) -> MachineDeployment {
    serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": {"name": "c-pool-x1", "namespace": capi_ns(),
                     "labels": {"cluster.x-k8s.io/cluster-name": "c", "scs.community/pool": "pool"}},
        "spec": {"clusterName": "c", "replicas": 2, "selector": {},
                 "template": {"spec": {"clusterName": "c", "version": "v1.35.4", "bootstrap": {},
                                       "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DevMachine", "name": "x"}}}},
        "status": {"phase": if ready == 2 {"Running"} else {"ScalingUp"}, "readyReplicas": ready, "availableReplicas": ready, "replicas": 2,
                   "conditions": [cond("Available", if ready == 2 {"True"} else {"False"}, "", "")]},
    }))
    .unwrap()
}

/// A machine of the control plane (`md` None) or of the MachineDeployment, in `phase`.
fn machine(name: &str, md: Option<&str>, phase: &str, created_ago: i64) -> Machine {
    let mut labels = json!({"cluster.x-k8s.io/cluster-name": "c"});
    match md {
        Some(d) => labels["cluster.x-k8s.io/deployment-name"] = json!(d),
        None => labels["cluster.x-k8s.io/control-plane"] = json!(""),
    }
    let running = phase == "Running";
    let mut status = json!({"phase": phase, "conditions": [cond("Ready", if running {"True"} else {"False"}, if running {"Ready"} else {"NotReady"}, "")]});
    if running {
        status["nodeRef"] = json!({"name": name});
    }
    serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Machine",
        "metadata": {"name": name, "namespace": capi_ns(), "labels": labels, "creationTimestamp": at(created_ago)},
        "spec": {"clusterName": "c", "version": "v1.35.4", "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfig", "name": format!("{name}-boot")}},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DevMachine", "name": format!("{name}-infra")}},
        "status": status,
    }))
    .unwrap()
}

fn infra(ready: bool) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
        "kind": "DevCluster",
        "metadata": {"name": "c-infra", "namespace": capi_ns()},
        "spec": {},
        "status": {"initialization": {"provisioned": ready}},
    }))
    .unwrap()
}

fn event(ns: &str, kind: &str, name: &str, reason: &str, ago: i64) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{reason}.{ago}"), "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns,
                           "apiVersion": if kind == "Cluster" && ns == NS {"scs.community/v1alpha1"} else {"cluster.x-k8s.io/v1beta2"}},
        "reason": reason, "message": format!("{reason} happened"), "type": "Normal",
        "lastTimestamp": at(ago), "count": 2,
    }))
    .unwrap()
}

/// A cluster whose Cluster API objects are all readable.
fn with_capi(
    status: Value,
    capi: Value,
    kcp_ready: i32,
    md_ready: i32,
    machines: Vec<Machine>,
) -> Inputs {
    let mut i = Inputs::new(scs(status), now());
    i.capi_cluster = Fetched::Ok(Some(capi_cluster(capi)));
    i.control_plane = Fetched::Ok(Some(kcp(kcp_ready)));
    i.infrastructure = Fetched::Ok(Some(infra(true)));
    i.machine_deployments = Fetched::Ok(vec![md(md_ready)]);
    i.machines = Fetched::Ok(machines);
    i.tenant_events = Fetched::Ok(Vec::new());
    i.capi_events = Fetched::Ok(Vec::new());
    i
}

fn running_machines() -> Vec<Machine> {
    vec![
        machine("c-cp-a", None, "Running", 3000),
        machine("c-pool-x1-a", Some("c-pool-x1"), "Running", 2900),
        machine("c-pool-x1-b", Some("c-pool-x1"), "Running", 2900),
    ]
}

fn codes(d: &Diagnosis) -> Vec<&str> {
    d.hints.iter().map(|h| h.code.as_str()).collect()
}

fn find<'a>(d: &'a Diagnosis, kind: &str, name: &str) -> &'a Node {
    d.tree
        .walk()
        .into_iter()
        .find(|n| n.kind == kind && n.name == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not in the tree:\n{}", d.to_text()))
}

#[test]
fn all_ready() {
    let mut i = with_capi(
        ready_status(),
        capi_status(true, true),
        1,
        2,
        running_machines(),
    );
    i.tenant_events = Fetched::Ok(vec![
        event(NS, "Cluster", "c", "ReadyReady", 100),
        event(NS, "Cluster", "other", "ReadyReady", 10),
    ]);
    i.capi_events = Fetched::Ok(vec![
        event(&capi_ns(), "Machine", "c-pool-x1-a", "SuccessfulCreate", 50),
        event(
            &capi_ns(),
            "MachineSet",
            "c-pool-x1-abcde",
            "SuccessfulCreate",
            200,
        ),
        event(&capi_ns(), "Machine", "d-pool-a", "SuccessfulCreate", 5),
    ]);
    let d = analyze(&i);
    assert!(d.healthy(), "{}", d.to_text());
    assert_eq!(d.verdict, Verdict::Healthy);
    assert!(d.degraded.is_empty());
    assert!(d.cluster.ready);
    assert_eq!(d.waiting_for, None);
    assert!(d.hints.is_empty(), "{:?}", d.hints);
    for n in d.tree.walk() {
        assert_eq!(n.status, NodeStatus::Ok, "{} {}", n.title(), n.summary);
    }
    // Placement: the control-plane machine under the control plane, workers under their
    // MachineDeployment, infrastructure first.
    let capi = &d.tree.children[0];
    assert_eq!(
        (capi.kind.as_str(), capi.api_group.as_str()),
        ("Cluster", "cluster.x-k8s.io")
    );
    let kinds: Vec<&str> = capi.children.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["DevCluster", "KubeadmControlPlane", "MachineDeployment"]
    );
    assert_eq!(capi.children[1].children[0].name, "c-cp-a");
    let workers: Vec<&str> = capi.children[2]
        .children
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(workers, ["c-pool-x1-a", "c-pool-x1-b"]);
    assert!(
        capi.children[2].summary.contains("pool pool: 2/2 ready"),
        "{}",
        capi.children[2].summary
    );
    // Events: only this cluster's, newest first, with age.
    let ev: Vec<(&str, &str)> = d
        .events
        .iter()
        .map(|e| (e.object.as_str(), e.age.as_deref().unwrap()))
        .collect();
    assert_eq!(
        ev,
        [
            ("Machine/c-pool-x1-a", "50s"),
            ("Cluster/c", "100s"),
            ("MachineSet/c-pool-x1-abcde", "3m")
        ]
    );
    assert_eq!(d.events[0].count, 2);
    assert!(d.to_short_text().contains("Nothing to do."));
}

#[test]
fn invalid_spec_names_the_field_paths() {
    let msg = r#"spec.workers[0].flavor: "m9.huge" is not offered by provider "dev" (offered: small, medium, large); spec.controlPlane.zones[0]: "z9" is not a zone of region "default" (offered: a, b)"#;
    let mut i = Inputs::new(
        scs(json!({"phase": "Invalid", "conditions": [
            cond("Ready", "False", "InvalidSpec", &format!("SpecAccepted: {msg}")),
            cond("SpecAccepted", "False", "InvalidSpec", msg),
        ]})),
        now(),
    );
    i.capi_cluster = Fetched::Ok(None);
    let d = analyze(&i);
    assert!(!d.healthy());
    assert_eq!(d.tree.status, NodeStatus::Failed);
    let w = d.waiting_for.clone().unwrap();
    assert!(w.contains("spec is not accepted"), "{w}");
    let invalid: Vec<&Hint> = d
        .hints
        .iter()
        .filter(|h| h.code == HINT_INVALID_SPEC)
        .collect();
    assert_eq!(invalid.len(), 2, "{:?}", d.hints);
    assert_eq!(invalid[0].fields, ["spec.workers[0].flavor"]);
    assert_eq!(invalid[1].fields, ["spec.controlPlane.zones[0]"]);
    assert!(invalid[0].message.contains("offered: small, medium, large"));
    assert!(invalid[0].message.contains("fix the spec"));
    // Nothing was created for it, and the tree says why.
    let capi = &d.tree.children[0];
    assert_eq!(capi.status, NodeStatus::Unknown);
    assert!(capi.summary.contains("not accepted"), "{}", capi.summary);
}

#[test]
fn refused_version_change_is_one_hint_with_its_field() {
    let msg = "spec.kubernetes.version: upgrade from v1.35.4 to v1.37.2 skips a minor version; upgrade one minor at a time (next: 1.36.x)";
    let mut status = ready_status();
    status["phase"] = json!("Invalid");
    status["conditions"] = json!([
        cond(
            "Ready",
            "False",
            "InvalidSpec",
            &format!("SpecAccepted: {msg}")
        ),
        cond("SpecAccepted", "False", "InvalidSpec", msg),
    ]);
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_VERSION_REFUSED], "{:?}", d.hints);
    assert_eq!(d.hints[0].fields, ["spec.kubernetes.version"]);
    assert!(
        d.hints[0].message.contains("next: 1.36.x"),
        "{}",
        d.hints[0].message
    );
    // The running cluster is untouched.
    assert_eq!(find(&d, "Machine", "c-cp-a").status, NodeStatus::Ok);
}

#[test]
fn missing_provider() {
    let msg = r#"spec.provider.name: provider "nope" does not exist (kubectl get providers lists the offerings)"#;
    let mut c = scs(json!({"phase": "Invalid", "conditions": [
        cond("Ready", "False", "ProviderNotFound", &format!("SpecAccepted: {msg}")),
        cond("SpecAccepted", "False", "ProviderNotFound", msg),
    ]}));
    c.spec.provider.as_mut().unwrap().name = Some("nope".into());
    let mut i = Inputs::new(c, now());
    i.capi_cluster = Fetched::Ok(None);
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_PROVIDER_MISSING]);
    assert_eq!(d.hints[0].fields, ["spec.provider.name"]);
    assert!(d.waiting_for.unwrap().contains("no usable provider"));
    assert_eq!(d.cluster.provider.as_deref(), Some("nope"));
}

#[test]
fn waiting_for_the_control_plane_machine() {
    let status = json!({"phase": "Provisioning", "targetVersion": "v1.35.4", "conditions": [
        cond("Ready", "False", "NotAvailable", "ControlPlaneReady: * Control plane: 0/1 machines available"),
        cond("SpecAccepted", "True", "Valid", ""),
        cond("InfrastructureReady", "True", "Provisioned", ""),
        cond("ControlPlaneReady", "False", "NotAvailable", "0/1"),
    ]});
    let machines = vec![machine("c-cp-a", None, "Provisioning", 20 * 60)];
    let i = with_capi(status, capi_status(false, false), 0, 0, machines);
    let d = analyze(&i);
    let w = d.waiting_for.clone().unwrap();
    assert!(
        w.starts_with("Cluster API has not provisioned the control plane yet")
            && w.contains("c-cp-a"),
        "{w}"
    );
    let h = d
        .hints
        .iter()
        .find(|h| h.code == HINT_WAITING_FOR_MACHINES)
        .expect("a hint about the machine");
    assert!(
        h.message.contains("c-cp-a (Provisioning, 20m)") && h.message.contains("ask the provider"),
        "{}",
        h.message
    );
    assert_eq!(
        find(&d, "Machine", "c-cp-a").status,
        NodeStatus::Progressing
    );
    assert!(d.failing().is_empty());
    assert!(!d.healthy());
}

#[test]
fn waiting_for_worker_machines() {
    let status = json!({"phase": "Provisioning", "conditions": [
        cond("Ready", "False", "NotAvailable", "WorkersReady: 0/2 worker nodes ready"),
        cond("SpecAccepted", "True", "Valid", ""),
        cond("InfrastructureReady", "True", "Provisioned", ""),
        cond("ControlPlaneReady", "True", "Available", ""),
        cond("WorkersReady", "False", "NotAvailable", "0/2 worker nodes ready"),
    ]});
    let machines = vec![
        machine("c-cp-a", None, "Running", 600),
        machine("c-pool-x1-a", Some("c-pool-x1"), "Provisioning", 90),
        machine("c-pool-x1-b", Some("c-pool-x1"), "Pending", 90),
    ];
    let i = with_capi(status, capi_status(true, false), 1, 0, machines);
    let d = analyze(&i);
    let w = d.waiting_for.clone().unwrap();
    assert!(
        w.contains("worker machines") && w.contains("c-pool-x1-a") && w.contains("c-pool-x1-b"),
        "{w}"
    );
    let h = &d.hints[0];
    assert_eq!(h.code, HINT_WAITING_FOR_MACHINES);
    assert!(h.message.contains("2 worker machine(s)"), "{}", h.message);
    assert!(
        h.message.contains("nothing to do but wait"),
        "{}",
        h.message
    );
}

#[test]
fn the_cluster_api_cluster_without_status_says_cluster_api_has_not_reconciled_it() {
    let status = json!({"phase": "Provisioning", "conditions": [
        cond("Ready", "False", "Pending", "InfrastructureReady: waiting for infrastructure"),
        cond("SpecAccepted", "True", "Valid", ""),
        cond("InfrastructureReady", "Unknown", "Pending", "waiting for infrastructure"),
    ]});
    let mut i = Inputs::new(scs(status), now());
    let mut cc = capi_cluster(Value::Null);
    cc.spec.control_plane_ref = None;
    cc.spec.infrastructure_ref = None;
    i.capi_cluster = Fetched::Ok(Some(cc));
    i.machine_deployments = Fetched::Ok(Vec::new());
    i.machines = Fetched::Ok(Vec::new());
    let d = analyze(&i);
    let w = d.waiting_for.clone().unwrap();
    assert!(
        w.contains("Cluster API has not provisioned the control plane") && w.contains("no status"),
        "{w}"
    );
    assert_eq!(codes(&d), [HINT_CLUSTER_API_IDLE]);
    let capi = &d.tree.children[0];
    let kinds: Vec<&str> = capi.children.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["InfrastructureCluster", "KubeadmControlPlane"]);
    assert!(
        capi.children
            .iter()
            .all(|n| n.status == NodeStatus::Progressing)
    );
}

#[test]
fn a_failed_machine_fails_the_diagnosis() {
    let mut failed = machine("c-pool-x1-b", Some("c-pool-x1"), "Failed", 1200);
    let st = failed.status.as_mut().unwrap();
    st.deprecated = Some(
        serde_json::from_value(json!({"v1beta1": {"failureReason": "CreateError", "failureMessage": "flavor quota exceeded"}}))
            .unwrap(),
    );
    let machines = vec![
        machine("c-cp-a", None, "Running", 3000),
        machine("c-pool-x1-a", Some("c-pool-x1"), "Running", 2900),
        failed,
    ];
    let status = json!({"phase": "Provisioning", "conditions": [
        cond("Ready", "False", "NotAvailable", "WorkersReady: 1/2 worker nodes ready"),
        cond("SpecAccepted", "True", "Valid", ""),
        cond("InfrastructureReady", "True", "Provisioned", ""),
        cond("ControlPlaneReady", "True", "Available", ""),
        cond("WorkersReady", "False", "NotAvailable", "1/2 worker nodes ready"),
    ]});
    let i = with_capi(status, capi_status(true, false), 1, 1, machines);
    let d = analyze(&i);
    let n = find(&d, "Machine", "c-pool-x1-b");
    assert_eq!(n.status, NodeStatus::Failed);
    assert!(n.summary.contains("flavor quota exceeded"), "{}", n.summary);
    assert!(!d.healthy());
    assert_eq!(
        d.verdict,
        Verdict::Failed,
        "not Ready because a machine failed"
    );
    assert!(d.degraded.is_empty());
    assert_eq!(d.failing().len(), 1);
    assert_eq!(
        d.waiting_for.as_deref(),
        Some(
            "Cluster API has not provisioned all worker machines yet: failed worker machine(s) c-pool-x1-b"
        )
    );
    let h = d
        .hints
        .iter()
        .find(|h| h.code == HINT_MACHINE_FAILED)
        .unwrap();
    assert!(
        h.message.contains("c-pool-x1-b") && h.message.contains("flavor quota exceeded"),
        "{}",
        h.message
    );
    let short = d.to_short_text();
    assert!(
        short.contains("Failing:") && short.contains("Machine/c-pool-x1-b"),
        "{short}"
    );
}

#[test]
fn deletion_waits_for_deletion_protection() {
    let mut status = ready_status();
    status["phase"] = json!("Deleting");
    status["conditions"].as_array_mut().unwrap().push(cond(
        "Deleting",
        "False",
        "DeletionProtected",
        "spec.deletionProtection is true: set it to false to let the deletion proceed",
    ));
    let mut c = scs(status);
    c.spec.deletion_protection = Some(true);
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(NOW - 60).unwrap(),
    ));
    let mut i = Inputs::new(c, now());
    i.capi_cluster = Fetched::Ok(Some(capi_cluster(capi_status(true, true))));
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_DELETION_PROTECTED]);
    assert_eq!(d.hints[0].fields, ["spec.deletionProtection"]);
    assert!(d.hints[0].message.contains("deletionProtection\":false"));
    assert!(d.waiting_for.unwrap().contains("deletionProtection"));
    assert_eq!(d.tree.status, NodeStatus::Progressing);
}

#[test]
fn deletion_waits_on_finalizers() {
    let mut status = ready_status();
    status["phase"] = json!("Deleting");
    status["conditions"] = json!([
        cond("Ready", "False", "Deleting", "the cluster is being deleted"),
        cond(
            "Deleting",
            "True",
            "WaitingForBackend",
            "waiting for Cluster API to delete 2 machine(s): c-cp-a, c-pool-x1-a"
        ),
    ]);
    let mut c = scs(status);
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(NOW - 60).unwrap(),
    ));
    c.metadata.finalizers = Some(vec![
        "scs.community/cluster".into(),
        "backup.example.com/snapshot".into(),
    ]);
    let i = Inputs::new(c, now());
    let d = analyze(&i);
    assert_eq!(
        codes(&d),
        [HINT_DELETION_WAITING, HINT_FOREIGN_FINALIZER],
        "{:?}",
        d.hints
    );
    assert!(d.hints[0].message.contains("c-cp-a, c-pool-x1-a"));
    assert!(d.hints[1].message.contains("backup.example.com/snapshot"));
    assert!(
        d.waiting_for
            .unwrap()
            .contains("waiting for Cluster API to delete 2 machine(s)")
    );
}

#[test]
fn extension_failure_names_the_extension() {
    let mut status = ready_status();
    status["conditions"][6] = cond(
        "ExtensionsReady",
        "False",
        "ApplyFailed",
        "ingress: Deployment ingress-nginx/controller: admission webhook denied",
    );
    status["extensions"] = json!([
        {"name": "metrics", "stage": "extension", "applied": true, "objects": 3},
        {"name": "ingress", "stage": "extension", "applied": false, "objects": 5,
         "message": "Deployment ingress-nginx/controller: admission webhook denied"},
    ]);
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_EXTENSION_FAILED]);
    assert!(
        d.hints[0].message.contains("\"ingress\"")
            && d.hints[0].message.contains("admission webhook denied"),
        "{}",
        d.hints[0].message
    );
    assert_eq!(d.hints[0].fields, ["spec.extensions.ingress"]);
    // Ready with an extension not applied: degraded, never failed.
    assert_eq!(d.tree.status, NodeStatus::Degraded);
    assert_eq!(d.verdict, Verdict::Degraded);
    assert!(d.failing().is_empty(), "nothing failed: {:?}", d.failing());
    assert!(!d.healthy());
    assert_eq!(
        d.degraded,
        [Aspect {
            aspect: ASPECT_EXTENSIONS.into(),
            condition: Some("ExtensionsReady".into()),
            reason: Some("ApplyFailed".into()),
            message: "ingress: Deployment ingress-nginx/controller: admission webhook denied"
                .into(),
            hints: vec![HINT_EXTENSION_FAILED.into()],
        }]
    );
    assert!(
        d.waiting_for
            .as_deref()
            .unwrap()
            .contains("extensions are not ready")
    );
    let short = d.to_short_text();
    assert!(short.contains("Ready  degraded"), "{short}");
    assert!(
        short.contains("- extensions (ExtensionsReady=False, ApplyFailed): ingress:")
            && short.contains("hint: extension \"ingress\" could not be applied"),
        "{short}"
    );
    assert!(
        !short.contains("Failing:") && !short.contains("failed"),
        "{short}"
    );
    let text = d.to_text();
    assert!(text.contains("Cluster/c (SCS)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Cluster/c (SCS)") && l.contains("degraded")),
        "{text}"
    );
}

#[test]
fn compliance_failure_names_the_checks_and_the_report() {
    let mut status = ready_status();
    status["conditions"].as_array_mut().unwrap().push(cond(
        "Compliant",
        "False",
        "ChecksFailed",
        "2 failed: scs-0210-v2 (v1.35.4 is outdated); scs-0214-v2 (all nodes in one zone) (report: ConfigMap c-compliance)",
    ));
    status["compliance"] = json!({"checkedAt": at(100), "generation": 1, "passed": 5, "failed": 2,
                                  "aborted": 0, "reportConfigMap": "c-compliance"});
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_COMPLIANCE_FAILED]);
    let m = &d.hints[0].message;
    assert!(
        m.contains("scs-0210-v2, scs-0214-v2") && m.contains("ConfigMap c-compliance"),
        "{m}"
    );
    assert!(d.cluster.ready);
    assert!(!d.healthy(), "a failed compliance check is not healthy");
    assert_eq!(d.verdict, Verdict::Degraded, "Ready: degraded, not failed");
    assert_eq!(d.tree.status, NodeStatus::Degraded);
    assert!(d.failing().is_empty());
    assert_eq!(d.degraded.len(), 1, "{:?}", d.degraded);
    let a = &d.degraded[0];
    assert_eq!(a.aspect, ASPECT_COMPLIANCE);
    assert_eq!(a.condition.as_deref(), Some("Compliant"));
    assert_eq!(a.reason.as_deref(), Some("ChecksFailed"));
    assert!(
        a.message.starts_with("2 failed: scs-0210-v2"),
        "{}",
        a.message
    );
    assert_eq!(a.hints, [HINT_COMPLIANCE_FAILED]);
    assert_eq!(d.waiting_for, None, "Ready and converged");
    let short = d.to_short_text();
    assert!(
        short.contains("- compliance (Compliant=False, ChecksFailed): 2 failed")
            && short.contains("hint: compliance checks failed: scs-0210-v2, scs-0214-v2"),
        "{short}"
    );
}

#[test]
fn compliance_and_extensions_failing_together_are_two_aspects() {
    let mut status = ready_status();
    status["conditions"][6] = cond("ExtensionsReady", "False", "ApplyFailed", "cni: timeout");
    status["conditions"].as_array_mut().unwrap().push(cond(
        "Compliant",
        "False",
        "ChecksFailed",
        "1 failed: scs-0217 (pod-security) (report: ConfigMap c-compliance)",
    ));
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(d.verdict, Verdict::Degraded);
    let aspects: Vec<&str> = d.degraded.iter().map(|a| a.aspect.as_str()).collect();
    assert_eq!(aspects, [ASPECT_EXTENSIONS, ASPECT_COMPLIANCE]);
    // Every aspect names a hint that is in the hints.
    for a in &d.degraded {
        assert!(!a.hints.is_empty(), "{a:?}");
        for code in &a.hints {
            assert!(d.hints.iter().any(|h| &h.code == code), "{code}");
        }
    }
}

#[test]
fn a_ready_cluster_with_a_failed_machine_is_degraded() {
    let mut failed = machine("c-pool-x1-b", Some("c-pool-x1"), "Failed", 1200);
    let st = failed.status.as_mut().unwrap();
    st.deprecated = Some(
        serde_json::from_value(
            json!({"v1beta1": {"failureReason": "UpdateError", "failureMessage": "disk full"}}),
        )
        .unwrap(),
    );
    let machines = vec![
        machine("c-cp-a", None, "Running", 3000),
        machine("c-pool-x1-a", Some("c-pool-x1"), "Running", 2900),
        failed,
    ];
    let i = with_capi(ready_status(), capi_status(true, true), 1, 2, machines);
    let d = analyze(&i);
    assert!(d.cluster.ready);
    assert_eq!(
        d.tree.status,
        NodeStatus::Ok,
        "the SCS Cluster itself is fine"
    );
    assert_eq!(d.verdict, Verdict::Degraded);
    assert_eq!(d.degraded.len(), 1, "{:?}", d.degraded);
    assert_eq!(d.degraded[0].aspect, ASPECT_MACHINES);
    assert!(
        d.degraded[0].message.contains("Machine/c-pool-x1-b failed")
            && d.degraded[0].message.contains("disk full"),
        "{}",
        d.degraded[0].message
    );
    assert_eq!(d.degraded[0].hints, [HINT_MACHINE_FAILED]);
}

#[test]
fn compliance_undecided_or_extensions_still_applying_keep_a_ready_cluster_healthy() {
    let mut status = ready_status();
    status["conditions"][6] = cond(
        "ExtensionsReady",
        "Unknown",
        "Applying",
        "applying 3 addon(s)",
    );
    status["conditions"].as_array_mut().unwrap().push(cond(
        "Compliant",
        "Unknown",
        "CheckError",
        "the workload cluster did not answer",
    ));
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(d.verdict, Verdict::Healthy, "{:?}", d.degraded);
    assert_eq!(d.tree.status, NodeStatus::Ok);
    assert!(d.degraded.is_empty());
}

/// The verdict from the status alone (the GUI's cluster list): every state the operator reports.
#[test]
fn cluster_verdict_from_the_status_alone() {
    let with = |extra: &[Value]| {
        let mut s = ready_status();
        for x in extra {
            let t = x["type"].as_str().unwrap();
            let list = s["conditions"].as_array_mut().unwrap();
            list.retain(|c| c["type"] != t);
            list.push(x.clone());
        }
        scs(s)
    };
    let cases: Vec<(&str, Cluster, Verdict)> = vec![
        ("ready", with(&[]), Verdict::Healthy),
        (
            "compliance failed",
            with(&[cond("Compliant", "False", "ChecksFailed", "1 failed")]),
            Verdict::Degraded,
        ),
        (
            "extensions failed",
            with(&[cond("ExtensionsReady", "False", "ApplyFailed", "x")]),
            Verdict::Degraded,
        ),
        (
            "compliance passed",
            with(&[cond("Compliant", "True", "ChecksPassed", "")]),
            Verdict::Healthy,
        ),
        ("no status", scs(Value::Null), Verdict::Progressing),
        (
            "provisioning",
            scs(json!({"phase": "Provisioning", "conditions": [
                cond("Ready", "False", "NotAvailable", "ControlPlaneReady: 0/1")]})),
            Verdict::Progressing,
        ),
        (
            "backend failed",
            scs(json!({"phase": "Failed", "conditions": [
                cond("Ready", "False", "Failed", "topology cannot be applied")]})),
            Verdict::Failed,
        ),
        (
            "invalid spec",
            scs(json!({"phase": "Invalid", "conditions": [
                cond("Ready", "False", "InvalidSpec", "x"),
                cond("SpecAccepted", "False", "InvalidSpec", "x")]})),
            Verdict::Failed,
        ),
        (
            "hibernated as asked",
            scs(json!({"phase": "Hibernated", "conditions": [
                cond("Ready", "False", "Hibernated", "hibernated: every worker pool is at 0 nodes"),
                cond("Hibernated", "True", "Hibernated", "x")]})),
            Verdict::Healthy,
        ),
        (
            "hibernating",
            scs(json!({"phase": "Updating", "conditions": [
                cond("Ready", "False", "Hibernating", "2 worker node(s) left"),
                cond("Hibernated", "False", "Hibernating", "x")]})),
            Verdict::Progressing,
        ),
        (
            "not Ready and compliance failed",
            scs(json!({"phase": "Provisioning", "conditions": [
                cond("Ready", "False", "NotAvailable", "x"),
                cond("Compliant", "False", "ChecksFailed", "x")]})),
            Verdict::Progressing,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(cluster_verdict(&c), want, "{what}");
    }
    let mut deleting = with(&[cond("Compliant", "False", "ChecksFailed", "x")]);
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    assert_eq!(cluster_verdict(&deleting), Verdict::Progressing);
}

#[test]
fn hidden_objects_are_not_an_error() {
    let status = json!({"phase": "Provisioning", "conditions": [
        cond("Ready", "False", "NotAvailable", "ControlPlaneReady: 0/1"),
        cond("SpecAccepted", "True", "Valid", ""),
    ]});
    let mut i = Inputs::new(scs(status), now());
    i.capi_cluster = Fetched::Forbidden;
    i.machine_deployments = Fetched::Forbidden;
    i.machines = Fetched::Forbidden;
    i.capi_events = Fetched::Forbidden;
    i.tenant_events = Fetched::Ok(vec![event(NS, "Cluster", "c", "ReadyNotAvailable", 5)]);
    let d = analyze(&i);
    let capi = &d.tree.children[0];
    assert_eq!(capi.status, NodeStatus::Hidden);
    assert_eq!(capi.summary, "not visible to you");
    let hidden = d
        .tree
        .walk()
        .into_iter()
        .filter(|n| n.status == NodeStatus::Hidden)
        .count();
    assert_eq!(hidden, 3, "{}", d.to_text());
    assert_eq!(codes(&d), [HINT_NOT_VISIBLE]);
    assert!(d.hints[0].message.contains("kaas-tenant-capi-viewer"));
    // Falls back to what the SCS Cluster says.
    assert_eq!(
        d.waiting_for.as_deref(),
        Some("not Ready: ControlPlaneReady: 0/1")
    );
    assert_eq!(d.events.len(), 1);
}

#[test]
fn no_status_yet() {
    let i = Inputs::new(scs(Value::Null), now());
    let d = analyze(&i);
    assert_eq!(d.tree.status, NodeStatus::Unknown);
    assert_eq!(
        d.waiting_for.as_deref(),
        Some("the kaas operator has not reconciled the cluster yet")
    );
    // Created an hour ago: the operator seems not to run.
    assert_eq!(codes(&d), [HINT_OPERATOR_IDLE]);
    assert!(d.hints[0].message.contains("provider dev"));
}

#[test]
fn version_change_waiting_for_the_window() {
    let mut status = ready_status();
    status["conditions"][5] = cond(
        "VersionCurrent",
        "True",
        "UpToDate",
        "running v1.35.4; v1.35.5 waits for the maintenance window",
    );
    let i = with_capi(status, capi_status(true, true), 1, 2, running_machines());
    let d = analyze(&i);
    assert_eq!(codes(&d), [HINT_VERSION_PENDING]);
    assert!(d.healthy());
}

#[test]
fn json_shape_is_stable_and_round_trips() {
    let i = with_capi(
        ready_status(),
        capi_status(true, true),
        1,
        2,
        running_machines(),
    );
    let d = analyze(&i);
    let v = serde_json::to_value(&d).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        [
            "cluster",
            "degraded",
            "events",
            "hints",
            "tree",
            "verdict",
            "waitingFor"
        ]
    );
    assert!(v["waitingFor"].is_null(), "waitingFor is present as null");
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["degraded"], json!([]));
    for k in ["namespace", "name", "phase", "version", "ready"] {
        assert!(v["cluster"].get(k).is_some(), "cluster.{k}");
    }
    for k in [
        "kind",
        "apiGroup",
        "name",
        "namespace",
        "status",
        "summary",
        "conditions",
        "children",
    ] {
        assert!(v["tree"].get(k).is_some(), "tree.{k}");
    }
    assert_eq!(v["tree"]["status"], "ok");
    assert_eq!(
        keys(&v["tree"]["conditions"][0]),
        ["message", "reason", "status", "type"]
    );
    let back: Diagnosis = serde_json::from_value(v).unwrap();
    assert_eq!(back, d);
    let schema = serde_json::to_value(schema()).unwrap();
    let props = keys(&schema["properties"]);
    assert_eq!(
        props,
        [
            "cluster",
            "degraded",
            "events",
            "hints",
            "tree",
            "verdict",
            "waitingFor"
        ]
    );
    // The verdict's values, as documented.
    let verdicts = serde_json::to_string(&schema).unwrap();
    for v in ["healthy", "progressing", "degraded", "failed"] {
        assert!(verdicts.contains(&format!("\"{v}\"")), "{v} in the schema");
    }
    let text = d.to_text();
    assert!(text.contains("Cluster/c (SCS)"), "{text}");
    assert!(text.contains("└─ Cluster/c (Cluster API)"), "{text}");
    assert!(text.contains("Machine/c-pool-x1-b"), "{text}");
}

#[test]
fn an_imported_cluster_has_no_cluster_api_tree() {
    let status = json!({"phase": "Ready", "kubernetesVersion": "v1.35.4", "conditions": [
        cond("Ready", "True", "Ready", "the cluster is ready"),
        cond("SpecAccepted", "True", "Valid", ""),
        cond("ControlPlaneReady", "True", "Reachable", ""),
    ]});
    let mut i = Inputs::new(scs(status), now());
    i.imported = true;
    let d = analyze(&i);
    assert!(d.tree.children.is_empty());
    assert!(d.tree.summary.contains("imported"), "{}", d.tree.summary);
    assert!(d.healthy());
    assert_eq!(d.waiting_for, None);
}
