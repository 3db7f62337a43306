//! Hibernation schedules (`spec.hibernation.schedules`, `kaas_api::hibernation`): at a schedule's
//! start the operator sets `spec.hibernation.enabled: true`, at its end `false`, in one write with
//! the annotation that records which event it applied, and publishes an event. Everything else of
//! hibernation follows from `enabled` through the ordinary pipeline (validation resolves it,
//! rendering puts the pools at zero, the status derives `Hibernated`).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kaas_api::Cluster;
use kaas_api::hibernation::{self as h, ANNOTATION_SCHEDULE_APPLIED};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::{Context, Error};

/// What the schedules ask of one reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum Scheduled {
    /// The latest due event was applied (the write triggers the next reconcile).
    Applied,
    /// Nothing due; look again after this long (the next event within the settled requeue).
    Next(Option<Duration>),
}

/// The minute (since the epoch) after which events are still to be applied: the last applied
/// one, else the cluster's creation (a schedule never acts on events before the cluster existed).
fn applied_until(cluster: &Cluster) -> i64 {
    let applied = cluster
        .annotations()
        .get(ANNOTATION_SCHEDULE_APPLIED)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let created = cluster.metadata.creation_timestamp.as_ref().map(|t| t.0);
    applied
        .or(created)
        .map_or(i64::MIN / 2, |t| t.as_second().div_euclid(60))
}

/// Applies the latest due scheduled event of `cluster`, if any. Schedules that do not parse are
/// left to validation, which reports them with their field paths.
pub async fn follow(
    ctx: &Context,
    cluster: &Cluster,
    api: &Api<Cluster>,
    settled: Duration,
) -> Result<Scheduled, Error> {
    let Some(spec) = cluster.spec.hibernation.as_ref() else {
        return Ok(Scheduled::Next(None));
    };
    let Ok(schedules) = h::parse(spec) else {
        return Ok(Scheduled::Next(None));
    };
    let now = Timestamp::now();
    let minute = now.as_second().div_euclid(60);
    if let Some(ev) = h::latest(&schedules, applied_until(cluster), minute) {
        let at = ev.time().to_string();
        // The resourceVersion makes this fail (and retry) if the cluster changed since it was
        // read: a change by hand in between is judged again, not overwritten blindly.
        let patch = json!({
            "metadata": {
                "resourceVersion": cluster.resource_version(),
                "annotations": {ANNOTATION_SCHEDULE_APPLIED: at},
            },
            "spec": {"hibernation": {"enabled": ev.hibernate}},
        });
        api.patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        let (reason, note) = if ev.hibernate {
            (
                "HibernationScheduled",
                format!("the hibernation schedule's start at {at}: hibernating"),
            )
        } else {
            (
                "WakeUpScheduled",
                format!("the hibernation schedule's end at {at}: waking up"),
            )
        };
        info!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), %at, hibernate = ev.hibernate, "hibernation schedule applied");
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note),
            action: "Hibernation".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
        return Ok(Scheduled::Applied);
    }
    let within = (settled.as_secs() / 60).max(1) as i64;
    Ok(Scheduled::Next(h::next(&schedules, minute, within).map(
        |ev| {
            // A second into the event's minute, so the event is due when the reconcile runs.
            let secs = (ev.unix_minute * 60 + 1 - now.as_second()).max(1);
            Duration::from_secs(secs as u64)
        },
    )))
}
