//! `?wait=`: answer when the cluster reaches a state, polling with the caller's identity.
//! A wait ends early when the cluster cannot get there (its spec was refused, its deletion is
//! refused, `Ready` while its spec asks it to hibernate, `Hibernated` while it does not), with the
//! cluster and the reason in the error body.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use kaas_api::Cluster;
use kaas_api::conditions as c;
use kube::Api;

use crate::error::{ApiError, FieldProblem};

/// How often the cluster is read while waiting.
const POLL: Duration = Duration::from_secs(2);

/// What a wait waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// `Ready=True` for the current generation.
    Ready,
    /// The cluster is gone.
    Deleted,
    /// Any other condition True for the current generation.
    Condition(String),
}

impl WaitFor {
    /// `Ready`, `Deleted` or a condition type (`SpecAccepted`, `ControlPlaneReady`, …).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "Ready" => Ok(WaitFor::Ready),
            "Deleted" => Ok(WaitFor::Deleted),
            t if c::ORDER.contains(&t) => Ok(WaitFor::Condition(t.to_string())),
            other => Err(format!(
                "wait={other:?}: wait for `Ready`, `Deleted` or a condition ({})",
                c::ORDER.join(", ")
            )),
        }
    }

    fn condition(&self) -> Option<&str> {
        match self {
            WaitFor::Ready => Some(c::READY),
            WaitFor::Condition(t) => Some(t),
            WaitFor::Deleted => None,
        }
    }
}

/// What one look at the cluster says about the wait.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Reached.
    Done,
    /// Not yet.
    Pending,
    /// Cannot be reached without a change: the status says why.
    Failed(String, Vec<FieldProblem>),
}

fn cond<'a>(
    cluster: &'a Cluster,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|x| x.type_ == t))
}

/// `spec.x: message; spec.y: message` (the operator's SpecAccepted message) as field problems.
pub fn field_problems(message: &str) -> Vec<FieldProblem> {
    message
        .split("; ")
        .map(|part| match part.split_once(": ") {
            Some((path, msg)) if path.starts_with("spec") || path.starts_with("metadata") => {
                FieldProblem {
                    path: path.to_string(),
                    message: msg.to_string(),
                }
            }
            _ => FieldProblem {
                path: String::new(),
                message: part.to_string(),
            },
        })
        .collect()
}

/// Judges one observation of the cluster (`None`: it does not exist).
pub fn judge(what: &WaitFor, cluster: Option<&Cluster>) -> Verdict {
    let Some(cluster) = cluster else {
        return match what {
            WaitFor::Deleted => Verdict::Done,
            _ => Verdict::Failed("the cluster does not exist (any more)".into(), Vec::new()),
        };
    };
    let generation = cluster.metadata.generation;
    let observed = cluster.status.as_ref().and_then(|s| s.observed_generation);
    let current = generation.is_some() && observed >= generation;
    if let WaitFor::Deleted = what {
        if let Some(d) = cond(cluster, c::DELETING)
            && d.status == "False"
            && d.reason == "DeletionProtected"
        {
            return Verdict::Failed(d.message.clone(), Vec::new());
        }
        return Verdict::Pending;
    }
    if current
        && let Some(a) = cond(cluster, c::SPEC_ACCEPTED)
        && a.status == "False"
        && a.observed_generation >= generation
    {
        return Verdict::Failed(
            format!("the spec was refused ({}): {}", a.reason, a.message),
            field_problems(&a.message),
        );
    }
    // Hibernation (`spec.hibernation.enabled`) decides between Ready and Hibernated: the spec
    // as stored now is what the operator works towards, so the other one cannot come.
    let asked = cluster.spec.hibernation.as_ref().is_some_and(|h| h.asked());
    match what {
        WaitFor::Ready if asked => {
            return Verdict::Failed(
                "the cluster is asked to hibernate (spec.hibernation.enabled); wake it first"
                    .into(),
                Vec::new(),
            );
        }
        WaitFor::Condition(t) if t == c::HIBERNATED && !asked => {
            return Verdict::Failed(
                "the cluster is not asked to hibernate (spec.hibernation.enabled is not true); \
                 hibernate it first"
                    .into(),
                Vec::new(),
            );
        }
        _ => {}
    }
    let t = what.condition().unwrap_or(c::READY);
    match cond(cluster, t) {
        Some(x) if x.status == "True" && current && x.observed_generation >= generation => {
            Verdict::Done
        }
        _ => Verdict::Pending,
    }
}

/// Polls until the cluster reaches `what`, it cannot, or `timeout` passes. Returns the cluster
/// as seen last (`None` once deleted).
pub async fn until(
    api: &Api<Cluster>,
    name: &str,
    what: WaitFor,
    timeout: Duration,
) -> Result<Option<Cluster>, ApiError> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = api.get_opt(name).await?;
        match judge(&what, seen.as_ref()) {
            Verdict::Done => return Ok(seen),
            Verdict::Failed(message, errors) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "WaitFailed", message);
                if !errors.is_empty() && errors.iter().any(|p| !p.path.is_empty()) {
                    e.status = StatusCode::UNPROCESSABLE_ENTITY;
                    e.body.errors = errors;
                }
                e.body.cluster = seen.and_then(|c| serde_json::to_value(c).ok());
                return Err(e);
            }
            Verdict::Pending => {}
        }
        if Instant::now() + POLL > deadline {
            let mut e = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "WaitTimeout",
                format!(
                    "cluster {name} did not reach {what:?} within {} s; it is still being worked on",
                    timeout.as_secs()
                ),
            );
            e.body.cluster = seen.and_then(|c| serde_json::to_value(c).ok());
            return Err(e);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(generation: i64, observed: i64, conds: &[(&str, &str, &str, &str)]) -> Cluster {
        let conditions: Vec<_> = conds
            .iter()
            .map(|(t, s, r, m)| {
                serde_json::json!({"type": t, "status": s, "reason": r, "message": m,
                    "lastTransitionTime": "2026-11-28T00:00:00Z", "observedGeneration": observed})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "a", "namespace": "t", "generation": generation},
            "spec": {},
            "status": {"observedGeneration": observed, "conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn ready_needs_the_current_generation() {
        let old = cluster(2, 1, &[("Ready", "True", "Ready", "")]);
        assert_eq!(judge(&WaitFor::Ready, Some(&old)), Verdict::Pending);
        let now = cluster(2, 2, &[("Ready", "True", "Ready", "")]);
        assert_eq!(judge(&WaitFor::Ready, Some(&now)), Verdict::Done);
        let not = cluster(2, 2, &[("Ready", "False", "WaitingForControlPlane", "")]);
        assert_eq!(judge(&WaitFor::Ready, Some(&not)), Verdict::Pending);
        assert!(matches!(judge(&WaitFor::Ready, None), Verdict::Failed(..)));
    }

    #[test]
    fn a_refused_spec_ends_the_wait_with_field_paths() {
        let bad = cluster(
            3,
            3,
            &[
                ("Ready", "False", "InvalidSpec", "x"),
                (
                    "SpecAccepted",
                    "False",
                    "InvalidSpec",
                    "spec.workers[0].flavor: \"m9\" is not offered; spec.kubernetes.version: skips a minor",
                ),
            ],
        );
        match judge(&WaitFor::Ready, Some(&bad)) {
            Verdict::Failed(msg, errs) => {
                assert!(msg.contains("InvalidSpec"));
                assert_eq!(
                    errs.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
                    ["spec.workers[0].flavor", "spec.kubernetes.version"]
                );
            }
            other => panic!("{other:?}"),
        }
        // A refusal of an older generation does not end a wait for the new one.
        let stale = cluster(
            4,
            3,
            &[("SpecAccepted", "False", "InvalidSpec", "spec.a: b")],
        );
        assert_eq!(judge(&WaitFor::Ready, Some(&stale)), Verdict::Pending);
    }

    fn with_hibernation(mut c: Cluster, enabled: Option<bool>) -> Cluster {
        c.spec.hibernation = Some(kaas_api::hibernation::HibernationSpec {
            enabled,
            schedules: None,
        });
        c
    }

    #[test]
    fn ready_cannot_come_while_the_spec_asks_hibernation() {
        // Still Ready from before the operator took in the change: the spec decides.
        let asked = with_hibernation(cluster(3, 2, &[("Ready", "True", "Ready", "")]), Some(true));
        match judge(&WaitFor::Ready, Some(&asked)) {
            Verdict::Failed(msg, errs) => {
                assert_eq!(
                    msg,
                    "the cluster is asked to hibernate (spec.hibernation.enabled); wake it first"
                );
                assert!(errs.is_empty(), "a conflict (409), not a refused spec");
            }
            other => panic!("{other:?}"),
        }
        let hibernated = with_hibernation(
            cluster(
                3,
                3,
                &[
                    ("Ready", "False", "Hibernated", ""),
                    ("Hibernated", "True", "Hibernated", ""),
                ],
            ),
            Some(true),
        );
        assert!(matches!(
            judge(&WaitFor::Ready, Some(&hibernated)),
            Verdict::Failed(..)
        ));
        // Woken (enabled false, or no section at all): Ready is waited for as always.
        let waking = with_hibernation(
            cluster(
                4,
                4,
                &[
                    ("Ready", "False", "Hibernated", ""),
                    ("Hibernated", "False", "Awake", ""),
                ],
            ),
            Some(false),
        );
        assert_eq!(judge(&WaitFor::Ready, Some(&waking)), Verdict::Pending);
        let awake = with_hibernation(cluster(4, 4, &[("Ready", "True", "Ready", "")]), None);
        assert_eq!(judge(&WaitFor::Ready, Some(&awake)), Verdict::Done);
        // A refused spec still says why, with its paths, before hibernation is looked at.
        let refused = with_hibernation(
            cluster(
                2,
                2,
                &[(
                    "SpecAccepted",
                    "False",
                    "InvalidSpec",
                    "spec.hibernation: imported",
                )],
            ),
            Some(true),
        );
        match judge(&WaitFor::Ready, Some(&refused)) {
            Verdict::Failed(_, errs) => assert_eq!(errs[0].path, "spec.hibernation"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hibernated_is_waited_for_only_when_asked() {
        let hibernated = WaitFor::parse("Hibernated").unwrap();
        assert_eq!(hibernated, WaitFor::Condition("Hibernated".into()));
        let on_the_way = with_hibernation(
            cluster(
                5,
                5,
                &[
                    ("Ready", "False", "Hibernating", ""),
                    ("Hibernated", "False", "Hibernating", ""),
                ],
            ),
            Some(true),
        );
        assert_eq!(judge(&hibernated, Some(&on_the_way)), Verdict::Pending);
        let reached = with_hibernation(
            cluster(
                5,
                5,
                &[
                    ("Ready", "False", "Hibernated", ""),
                    ("Hibernated", "True", "Hibernated", ""),
                ],
            ),
            Some(true),
        );
        assert_eq!(judge(&hibernated, Some(&reached)), Verdict::Done);
        // Hibernated from an older generation does not count for the new one.
        let stale = with_hibernation(
            cluster(6, 5, &[("Hibernated", "True", "Hibernated", "")]),
            Some(true),
        );
        assert_eq!(judge(&hibernated, Some(&stale)), Verdict::Pending);
        // Not asked (never, or woken meanwhile): it cannot come.
        for enabled in [None, Some(false)] {
            let awake = with_hibernation(
                cluster(5, 5, &[("Hibernated", "True", "Hibernated", "")]),
                enabled,
            );
            match judge(&hibernated, Some(&awake)) {
                Verdict::Failed(msg, errs) => {
                    assert!(msg.contains("not asked to hibernate"), "{msg}");
                    assert!(errs.is_empty());
                }
                other => panic!("{enabled:?}: {other:?}"),
            }
        }
        let plain = cluster(1, 1, &[("Ready", "True", "Ready", "")]);
        assert!(matches!(
            judge(&hibernated, Some(&plain)),
            Verdict::Failed(..)
        ));
    }

    #[test]
    fn deletion_waits() {
        assert_eq!(judge(&WaitFor::Deleted, None), Verdict::Done);
        let going = cluster(1, 1, &[("Deleting", "True", "WaitingForBackend", "")]);
        assert_eq!(judge(&WaitFor::Deleted, Some(&going)), Verdict::Pending);
        let refused = cluster(
            1,
            1,
            &[(
                "Deleting",
                "False",
                "DeletionProtected",
                "deletionProtection is set",
            )],
        );
        assert!(matches!(
            judge(&WaitFor::Deleted, Some(&refused)),
            Verdict::Failed(..)
        ));
    }

    #[test]
    fn parse() {
        assert_eq!(WaitFor::parse("Ready"), Ok(WaitFor::Ready));
        assert_eq!(
            WaitFor::parse("ControlPlaneReady"),
            Ok(WaitFor::Condition("ControlPlaneReady".into()))
        );
        assert!(
            WaitFor::parse("Bogus")
                .unwrap_err()
                .contains("SpecAccepted")
        );
    }
}
