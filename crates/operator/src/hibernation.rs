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

/// Applies the latest due scheduled event of `cluster`, if any. Call it for accepted clusters
/// only: schedules that do not parse, or a cluster that cannot hibernate, are validation's to
/// report with their field paths.
///
/// Events count from the annotation's minute, written for the current schedules: when the
/// annotation is missing, names other schedules (they were added or changed) or lies in the
/// future, the schedules are taken in as of now — one write of the annotation, nothing switched —
/// so a new schedule never acts on a time before it existed.
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
    if schedules.is_empty() {
        return Ok(Scheduled::Next(None));
    }
    let now = Timestamp::now();
    let minute = now.as_second().div_euclid(60);
    let digest = h::digest(spec);
    let applied = cluster
        .annotations()
        .get(ANNOTATION_SCHEDULE_APPLIED)
        .and_then(|v| h::read_applied(v))
        .filter(|(at, d)| *d == digest && *at <= minute);
    let Some((since, _)) = applied else {
        let patch = json!({
            "metadata": {
                "resourceVersion": cluster.resource_version(),
                "annotations": {ANNOTATION_SCHEDULE_APPLIED: h::applied_value(minute, &digest)},
            },
        });
        write(ctx, cluster, api, &patch, None).await?;
        return Ok(Scheduled::Applied);
    };
    if let Some(ev) = h::latest(&schedules, since, minute) {
        let at = ev.time().to_string();
        // The resourceVersion makes this fail (and retry) if the cluster changed since it was
        // read: a change by hand in between is judged again, not overwritten blindly.
        let patch = json!({
            "metadata": {
                "resourceVersion": cluster.resource_version(),
                "annotations": {ANNOTATION_SCHEDULE_APPLIED: h::applied_value(ev.unix_minute, &digest)},
            },
            "spec": {"hibernation": {"enabled": ev.hibernate}},
        });
        if !write(ctx, cluster, api, &patch, Some(&ev)).await? {
            return Ok(Scheduled::Next(None));
        }
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
        publish(ctx, cluster, EventType::Normal, reason, note).await;
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

/// Writes a schedule's merge patch. A refusal (an admission policy, RBAC) is never silent: a
/// Warning event on the cluster says what was refused, and the reconcile goes on (`false`);
/// conflicts and transport errors are retried (`Err`).
async fn write(
    ctx: &Context,
    cluster: &Cluster,
    api: &Api<Cluster>,
    patch: &serde_json::Value,
    event: Option<&h::Event>,
) -> Result<bool, Error> {
    match api
        .patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            let err = Error::Kube(e);
            let Some(why) = crate::controller::refusal(&err) else {
                return Err(err);
            };
            warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), error = %why, "hibernation schedule write refused");
            let what = match event {
                Some(ev) if ev.hibernate => format!("hibernating at {}", ev.time()),
                Some(ev) => format!("waking up at {}", ev.time()),
                None => "taking in the changed schedules".to_string(),
            };
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "HibernationScheduleFailed",
                format!("the hibernation schedule could not be followed ({what}): {why}"),
            )
            .await;
            Ok(false)
        }
    }
}

async fn publish(ctx: &Context, cluster: &Cluster, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Hibernation".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}
