//! Hibernation on the Cluster API dev stack (real kube-apiserver, real Cluster API controllers
//! with the in-memory infrastructure provider, the operator in-process): by spec and by schedule,
//! waking restores every pool, and a hibernated cluster can be deleted. The hosted backend's half
//! (the control plane stopped with its data) is proven in crates/cli/tests/hibernation.rs.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kaas_api::Cluster;
use kaas_api::cluster::ClusterPhase;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machine::Machine;
use kaas_capi::machinedeployment::MachineDeployment;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const NS: &str = "tenant-sleep";
const NAME: &str = "sleepy";
const WAIT: Duration = Duration::from_secs(300);

fn capi_ns() -> String {
    kaas_render::capi_namespace("dev", NS)
}

/// Worker machines (not control plane) of the cluster, by pool label.
async fn workers(client: &Client) -> Vec<(String, bool)> {
    Api::<Machine>::namespaced(client.clone(), &capi_ns())
        .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={NAME}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|m| !m.labels().contains_key("cluster.x-k8s.io/control-plane"))
        .map(|m| {
            let running = m
                .status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| format!("{p:?}") == "Running");
            (
                m.labels()
                    .get("cluster.x-k8s.io/deployment-name")
                    .cloned()
                    .unwrap_or_default(),
                running,
            )
        })
        .collect()
}

async fn control_plane_machines(client: &Client) -> usize {
    Api::<Machine>::namespaced(client.clone(), &capi_ns())
        .list(&ListParams::default().labels(&format!(
            "cluster.x-k8s.io/cluster-name={NAME},cluster.x-k8s.io/control-plane"
        )))
        .await
        .unwrap()
        .items
        .len()
}

async fn md_replicas(client: &Client) -> Vec<(String, Option<i32>)> {
    let mut v: Vec<(String, Option<i32>)> =
        Api::<MachineDeployment>::namespaced(client.clone(), &capi_ns())
            .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={NAME}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|md| {
                (
                    md.labels()
                        .get(kaas_render::LABEL_POOL)
                        .cloned()
                        .unwrap_or_default(),
                    md.spec.replicas,
                )
            })
            .collect();
    v.sort();
    v
}

async fn phase_is(api: &Api<Cluster>, what: &str, phase: ClusterPhase) -> Cluster {
    until(what, WAIT, || async {
        let c = api.get(NAME).await.map_err(|e| e.to_string())?;
        let s = c.status.clone().unwrap_or_default();
        if s.phase == Some(phase) && s.observed_generation == c.metadata.generation {
            Ok(c)
        } else {
            Err(summary(&c))
        }
    })
    .await
}

/// A 5-field cron expression for the minute starting at `t` in `zone`'s local time.
fn cron_at(t: Timestamp, zone: &str) -> String {
    let z = t.to_zoned(TimeZone::get(zone).unwrap());
    format!("{} {} {} {} *", z.minute(), z.hour(), z.day(), z.month())
}

/// The start of a minute at least 40 s ahead (so the spec is written before it begins).
fn next_minute() -> Timestamp {
    let s = Timestamp::now().as_second() + 40;
    Timestamp::from_second((s / 60 + 1) * 60).unwrap()
}

async fn events(client: &Client, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test]
async fn hibernate_and_wake_by_spec_and_by_schedule_then_delete_hibernated() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, NS, &[])
        .await
        .unwrap();
    let _op = operator(client.clone(), &[]);
    let api: Api<Cluster> = Api::namespaced(client.clone(), NS);
    let autoscaler = kaas_render::autoscaler::name(NAME);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &capi_ns());

    // Two pools: a fixed one and an autoscaled one (the provider names an autoscaler image).
    create(&client, &cluster(NAME, NS, "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: fixed, count: 2}, {name: elastic, minCount: 1, maxCount: 3}]")).await;
    let awake = phase_is(&api, "Ready after create", ClusterPhase::Ready).await;
    assert!(
        kaas_api::conditions::get(&awake.status.unwrap().conditions, "Hibernated").is_none(),
        "a cluster that never hibernated has no Hibernated condition"
    );
    assert!(deployments.get_opt(&autoscaler).await.unwrap().is_some());
    let before = md_replicas(&client).await;
    assert_eq!(
        before
            .iter()
            .map(|(p, r)| (p.as_str(), *r))
            .collect::<Vec<_>>(),
        [("elastic", Some(1)), ("fixed", Some(2))],
        "{before:?}"
    );

    // 1. Hibernate by spec: every pool at 0 machines, the control plane kept, no autoscaler.
    patch_spec(&client, NS, NAME, json!({"hibernation": {"enabled": true}})).await;
    let c = phase_is(&api, "Hibernated by spec", ClusterPhase::Hibernated).await;
    let (hs, hr, hm) = condition(&c, "Hibernated").unwrap();
    assert_eq!((hs.as_str(), hr.as_str()), ("True", "Hibernated"), "{hm}");
    let (rs, rr, _) = condition(&c, "Ready").unwrap();
    assert_eq!((rs.as_str(), rr.as_str()), ("False", "Hibernated"));
    assert_eq!(condition(&c, "Reconciling").unwrap().0, "False");
    assert_eq!(condition(&c, "Stalled").unwrap().0, "False");
    assert_eq!(workers(&client).await, vec![], "no worker machine is left");
    assert_eq!(control_plane_machines(&client).await, 1);
    assert!(
        md_replicas(&client)
            .await
            .iter()
            .all(|(_, r)| *r == Some(0)),
        "{:?}",
        md_replicas(&client).await
    );
    assert!(
        Api::<CapiCluster>::namespaced(client.clone(), &capi_ns())
            .get_opt(NAME)
            .await
            .unwrap()
            .is_some()
    );
    until("the autoscaler removed", WAIT, || async {
        match deployments.get_opt(&autoscaler).await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|d| d.is_some()))),
        }
    })
    .await;
    // The pool status keeps the bounds (for waking) and says 0 nodes.
    let pools = c.status.unwrap().workers;
    let elastic = pools.iter().find(|p| p.name == "elastic").unwrap();
    assert_eq!(
        (elastic.desired, elastic.min, elastic.max),
        (0, Some(1), Some(3))
    );

    // 2. Wake by spec: every pool back at its size, the autoscaler back.
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"enabled": false}}),
    )
    .await;
    let c = phase_is(&api, "Ready after waking", ClusterPhase::Ready).await;
    assert_eq!(condition(&c, "Hibernated").unwrap().1, "Awake");
    let up = workers(&client).await;
    assert_eq!(up.iter().filter(|(_, run)| *run).count(), 3, "{up:?}");
    assert_eq!(
        md_replicas(&client).await,
        before,
        "waking restores every pool, the autoscaled one at its minCount"
    );
    assert!(deployments.get_opt(&autoscaler).await.unwrap().is_some());

    // 3. By schedule. A schedule added now never acts on a time before it existed: a start a
    //    minute ago (after the cluster's creation) is taken in, not applied.
    let past = Timestamp::from_second((Timestamp::now().as_second() / 60 - 1) * 60).unwrap();
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"schedules": [{"start": cron_at(past, "UTC")}]}}),
    )
    .await;
    let taken = until("the new schedule taken in", WAIT, || async {
        let c = api.get(NAME).await.map_err(|e| e.to_string())?;
        let spec = c.spec.hibernation.clone().unwrap_or_default();
        match c
            .annotations()
            .get(kaas_api::hibernation::ANNOTATION_SCHEDULE_APPLIED)
        {
            Some(v) if v.ends_with(&kaas_api::hibernation::digest(&spec)) => Ok(c),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = api.get(NAME).await.unwrap();
    assert_ne!(
        c.spec.hibernation.as_ref().unwrap().enabled,
        Some(true),
        "a start before the schedule existed was applied"
    );
    assert_eq!(
        c.status.unwrap().phase,
        Some(ClusterPhase::Ready),
        "{:?}",
        taken.annotations()
    );

    //    A start in the coming minute (Berlin time) hibernates the cluster: the operator flips
    //    spec.hibernation.enabled, records the event and publishes it.
    let start = next_minute();
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"schedules": [{"start": cron_at(start, "Europe/Berlin"), "location": "Europe/Berlin"}]}}),
    )
    .await;
    let c = phase_is(&api, "Hibernated by schedule", ClusterPhase::Hibernated).await;
    assert_eq!(
        c.spec.hibernation.as_ref().unwrap().enabled,
        Some(true),
        "the schedule sets the switch"
    );
    assert!(
        c.annotations()
            .get(kaas_api::hibernation::ANNOTATION_SCHEDULE_APPLIED)
            .is_some_and(|v| v.starts_with(&start.to_string())),
        "{:?}",
        c.annotations()
    );
    assert!(
        Timestamp::now() >= start,
        "not before the schedule's minute"
    );
    assert_eq!(events(&client, "HibernationScheduled").await.len(), 1);

    // ... and an end in the coming minute wakes it.
    let end = next_minute();
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"schedules": [{"start": cron_at(start, "Europe/Berlin"), "end": cron_at(end, "UTC")}]}}),
    )
    .await;
    let c = phase_is(&api, "Ready by schedule", ClusterPhase::Ready).await;
    assert_eq!(c.spec.hibernation.as_ref().unwrap().enabled, Some(false));
    assert!(Timestamp::now() >= end);
    assert_eq!(events(&client, "WakeUpScheduled").await.len(), 1);
    assert_eq!(md_replicas(&client).await, before);

    // A schedule that does not parse is refused with its field path, never silently ignored.
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"schedules": [{"start": "0 20 * * *", "location": "Mars/Olympus"}]}}),
    )
    .await;
    until("the bad time zone reported", WAIT, || async {
        let c = api.get(NAME).await.map_err(|e| e.to_string())?;
        match condition(&c, "SpecAccepted") {
            Some((s, _, m))
                if s == "False" && m.contains("spec.hibernation.schedules[0].location") =>
            {
                Ok(())
            }
            _ => Err(summary(&c)),
        }
    })
    .await;

    // 4. A hibernated cluster is deleted like any other.
    patch_spec(
        &client,
        NS,
        NAME,
        json!({"hibernation": {"enabled": true, "schedules": null}}),
    )
    .await;
    phase_is(&api, "Hibernated again", ClusterPhase::Hibernated).await;
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    until("the hibernated cluster is gone", WAIT, || async {
        let capi = Api::<CapiCluster>::namespaced(client.clone(), &capi_ns())
            .get_opt(NAME)
            .await
            .map_err(|e| e.to_string())?;
        match (api.get_opt(NAME).await.map_err(|e| e.to_string())?, capi) {
            (None, None) => Ok(()),
            (c, capi) => Err(format!(
                "scs: {:?}, capi: {}",
                c.map(|c| summary(&c)),
                capi.is_some()
            )),
        }
    })
    .await;
}
