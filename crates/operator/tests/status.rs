//! Status derivation from validation results and observations (pure; no API server).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaas_api::cluster::ClusterPhase;
use kaas_api::conditions as c;
use kaas_api::{Cluster, Provider};
use kaas_operator::status::{Inputs, derive};
use kaas_operator::types::{Observation, PoolObservation, Problem, Signal};

fn cluster() -> Cluster {
    let mut c: Cluster =
        serde_yaml::from_str(include_str!("../../../examples/cluster-demo.yaml")).unwrap();
    c.metadata.generation = Some(3);
    c
}

fn provider() -> Provider {
    serde_yaml::from_str(include_str!("../../../examples/provider-inmemory.yaml")).unwrap()
}

fn t(s: i64) -> Time {
    Time(Timestamp::from_second(s).unwrap())
}

fn running() -> Observation {
    Observation {
        exists: true,
        infrastructure: Signal::new(Some(true), "Provisioned", "infrastructure is provisioned"),
        control_plane: Signal::new(Some(true), "Available", ""),
        workers: Signal::new(Some(true), "Available", ""),
        control_plane_versions: vec!["v1.35.4".into()],
        worker_versions: vec!["v1.35.4".into()],
        pools: vec![PoolObservation {
            name: "default".into(),
            desired: 2,
            ready: 2,
            versions: vec!["v1.35.4".into()],
            ..Default::default()
        }],
        endpoint: Some("https://127.0.0.1:20001".into()),
        kubeconfig_secret: Some("demo-kubeconfig".into()),
        ..Default::default()
    }
}

#[test]
fn a_running_cluster_is_ready_with_ready_first_and_observed_generation() {
    let c = cluster();
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    let s = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &running(),
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(100),
    });
    assert_eq!(s.conditions[0].type_, "Ready");
    assert!(c::is_true(&s.conditions, c::READY), "{:?}", s.conditions);
    assert_eq!(s.observed_generation, Some(3));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert_eq!(s.phase, Some(ClusterPhase::Ready));
    assert_eq!(s.kubernetes_version.as_deref(), Some("v1.35.4"));
    assert_eq!(s.kubeconfig_secret_ref.unwrap().name, "demo-kubeconfig");
    assert_eq!(s.workers[0].ready, 2);
}

#[test]
fn the_same_inputs_give_the_same_status_no_churn() {
    let mut c = cluster();
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    let first = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &running(),
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(100),
    });
    c.status = Some(first.clone());
    let second = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &running(),
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(999),
    });
    assert_eq!(first, second);
}

#[test]
fn an_invalid_spec_says_why_with_field_paths_and_is_not_ready() {
    let mut c = cluster();
    c.spec.workers.as_mut().unwrap()[0].flavor = Some("m9.huge".into());
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    let s = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &Observation::default(),
        target_version: None,
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(1),
    });
    let accepted = c::get(&s.conditions, c::SPEC_ACCEPTED).unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        accepted
            .message
            .starts_with(r#"spec.workers[0].flavor: "m9.huge" is not offered by provider "dev""#),
        "{}",
        accepted.message
    );
    let ready = c::get(&s.conditions, c::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(ready.message.contains("spec.workers[0].flavor"));
    assert_eq!(s.phase, Some(ClusterPhase::Invalid));
}

#[test]
fn a_missing_provider_is_reported() {
    let c = cluster();
    let v = Err(Problem::Provider(
        "spec.provider.name: provider \"dev\" does not exist".into(),
    ));
    let s = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &Observation::default(),
        target_version: None,
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(1),
    });
    let accepted = c::get(&s.conditions, c::SPEC_ACCEPTED).unwrap();
    assert_eq!(accepted.reason, "ProviderNotFound");
}

#[test]
fn provisioning_then_upgrading_phases() {
    let c = cluster();
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    let mut o = running();
    o.control_plane = Signal::new(Some(false), "NotAvailable", "waiting for control plane");
    o.control_plane_versions.clear();
    o.worker_versions.clear();
    let s = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &o,
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(1),
    });
    assert_eq!(s.phase, Some(ClusterPhase::Provisioning));
    assert_eq!(
        c::get(&s.conditions, c::READY).unwrap().reason,
        "NotAvailable"
    );

    let mut up = cluster();
    up.status = Some(derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &running(),
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(1),
    }));
    let mut o = running();
    o.worker_versions = vec!["v1.35.4".into()];
    o.control_plane_versions = vec!["v1.36.3".into()];
    o.rolling_out = Some("ClusterUpgrading: upgrading workers".into());
    let s = derive(Inputs {
        cluster: &up,
        validation: &v,
        observation: &o,
        target_version: Some("v1.36.3".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(2),
    });
    let vc = c::get(&s.conditions, c::VERSION_CURRENT).unwrap();
    assert_eq!(
        (vc.status.as_str(), vc.reason.as_str()),
        ("False", "Upgrading")
    );
    assert_eq!(vc.message, "rolling out v1.36.3; running v1.35.4, v1.36.3");
    assert_eq!(s.phase, Some(ClusterPhase::Updating));
    assert_eq!(s.kubernetes_version, None, "no single version while mixed");
}

#[test]
fn a_refused_write_is_failed_stalled_and_names_the_refusal() {
    let c = cluster();
    let v = Err(Problem::Refused(
        "an admission webhook of the management cluster refused what kaas wrote for this cluster (403 Forbidden): taints are not allowed".into(),
    ));
    let s = derive(Inputs {
        cluster: &c,
        validation: &v,
        observation: &Observation::default(),
        target_version: None,
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(1),
    });
    let accepted = c::get(&s.conditions, c::SPEC_ACCEPTED).unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "BackendRefused")
    );
    assert!(accepted.message.contains("taints are not allowed"));
    assert_eq!(s.phase, Some(ClusterPhase::Failed));
    assert!(c::is_true(&s.conditions, c::STALLED));
    assert!(!c::is_true(&s.conditions, c::READY));
}

/// One status computation for `c` observed as `o`, on top of `c`'s current status.
fn derive_for(
    c: &Cluster,
    o: &Observation,
    v: &Result<kaas_validate::Resolved, Problem>,
) -> kaas_api::ClusterStatus {
    derive(Inputs {
        cluster: c,
        validation: v,
        observation: o,
        target_version: Some("v1.35.4".into()),
        version_note: None,
        extensions: None,
        compliance: None,
        now: t(100),
    })
}

#[test]
fn hibernation_going_reached_refused_and_awake_again() {
    let mut c = cluster();
    c.spec.hibernation = Some(kaas_api::hibernation::HibernationSpec {
        enabled: Some(true),
        schedules: None,
    });
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    assert!(v.as_ref().unwrap().hibernated);
    // On the way: nodes left.
    let mut going = running();
    going.pools[0].desired = 0;
    going.pools[0].current = 1;
    going.pools[0].ready = 1;
    let s = derive_for(&c, &going, &v);
    let h = c::get(&s.conditions, c::HIBERNATED).unwrap();
    assert_eq!(
        (h.status.as_str(), h.reason.as_str()),
        ("False", "Hibernating")
    );
    assert!(h.message.contains("1 worker node(s) left"), "{}", h.message);
    assert_eq!(
        c::get(&s.conditions, c::READY).unwrap().reason,
        "Hibernating"
    );
    assert!(c::is_true(&s.conditions, c::RECONCILING));
    assert_ne!(s.phase, Some(ClusterPhase::Hibernated));
    // Reached: phase Hibernated, Ready False/Hibernated, nothing in progress (kstatus Current).
    let mut rest = running();
    rest.pools[0] = PoolObservation {
        name: "default".into(),
        ..Default::default()
    };
    rest.worker_versions.clear();
    rest.at_rest = Some("every worker pool is at 0 nodes".into());
    let s = derive_for(&c, &rest, &v);
    assert_eq!(s.phase, Some(ClusterPhase::Hibernated));
    assert!(c::is_true(&s.conditions, c::HIBERNATED));
    let r = c::get(&s.conditions, c::READY).unwrap();
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "Hibernated")
    );
    assert!(!c::is_true(&s.conditions, c::RECONCILING));
    assert!(!c::is_true(&s.conditions, c::STALLED));
    // The pool status says 0 desired; the spec keeps its count for waking.
    assert_eq!(s.workers[0].desired, 0);
    // A backend that is at rest but not asked is not hibernated (no condition at all).
    let awake_c = cluster();
    let awake_v = kaas_validate::validate(&awake_c, &provider()).map_err(Problem::Invalid);
    let s2 = derive_for(&awake_c, &rest, &awake_v);
    assert!(c::get(&s2.conditions, c::HIBERNATED).is_none());
    // A spec that is no longer accepted while asked: Unknown, never "Awake".
    c.status = Some(s.clone());
    let refused: Result<kaas_validate::Resolved, Problem> = Err(Problem::Provider("gone".into()));
    let s3 = derive_for(&c, &rest, &refused);
    let h = c::get(&s3.conditions, c::HIBERNATED).unwrap();
    assert_eq!(
        (h.status.as_str(), h.reason.as_str()),
        ("Unknown", "SpecNotAccepted")
    );
    // Woken: False/Awake, then Ready once everything is back.
    let mut woken = c.clone();
    woken.spec.hibernation.as_mut().unwrap().enabled = Some(false);
    let wv = kaas_validate::validate(&woken, &provider()).map_err(Problem::Invalid);
    let s4 = derive_for(&woken, &running(), &wv);
    let h = c::get(&s4.conditions, c::HIBERNATED).unwrap();
    assert_eq!((h.status.as_str(), h.reason.as_str()), ("False", "Awake"));
    assert!(c::is_true(&s4.conditions, c::READY), "{:?}", s4.conditions);
}

#[test]
fn a_deleted_cluster_shows_what_it_waits_for_and_clears_what_no_longer_runs() {
    use kaas_operator::status::{Deleting, deleting};
    let mut c = cluster();
    let v = kaas_validate::validate(&c, &provider()).map_err(Problem::Invalid);
    c.status = Some(derive_for(&c, &running(), &v));
    let before = c.status.clone().unwrap();
    assert!(before.kubeconfig_secret_ref.is_some() && !before.workers.is_empty());

    // Protected: only Deleting False is added.
    let held = deleting(&c, Deleting::Protected, &t(200));
    let d = c::get(&held.conditions, c::DELETING).unwrap();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("False", "DeletionProtected")
    );
    let mut rest = held.clone();
    rest.conditions.retain(|x| x.type_ != c::DELETING);
    assert_eq!(rest, before);

    // Waiting for the backend.
    let s = deleting(&c, Deleting::Waiting("2 Machines left"), &t(200));
    assert_eq!(s.phase, Some(ClusterPhase::Deleting));
    let d = c::get(&s.conditions, c::DELETING).unwrap();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str(), d.message.as_str()),
        ("True", "WaitingForBackend", "2 Machines left")
    );
    let r = c::get(&s.conditions, c::READY).unwrap();
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "Deleting")
    );
    assert_eq!(s.conditions[0].type_, c::READY, "Ready stays first");
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.kubernetes_version, None);
    assert_eq!(s.kubeconfig_secret_ref, None);
    assert!(s.workers.is_empty());
    assert_eq!(s.target_version, before.target_version);
    assert_eq!(s.api_endpoint, before.api_endpoint);
    assert_eq!(s.warnings, before.warnings);
    assert_eq!(s.extensions, before.extensions);
    assert_eq!(s.compliance, before.compliance);
    // The same progress a second time changes nothing (no status write).
    let mut again = c.clone();
    again.status = Some(s.clone());
    assert_eq!(
        deleting(&again, Deleting::Waiting("2 Machines left"), &t(300)),
        s
    );
}
