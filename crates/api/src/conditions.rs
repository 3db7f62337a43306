//! Condition types and reasons of `Cluster.status.conditions`, and a helper that keeps
//! `lastTransitionTime` stable (so a steady cluster's status does not churn).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Everything below is true: the cluster is usable and as specified.
pub const READY: &str = "Ready";
/// The spec is valid against the CRD and the provider's offering.
pub const SPEC_ACCEPTED: &str = "SpecAccepted";
/// Infrastructure (networks, load balancer) exists.
pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
/// The control plane is available.
pub const CONTROL_PLANE_READY: &str = "ControlPlaneReady";
/// Every worker pool has its nodes.
pub const WORKERS_READY: &str = "WorkersReady";
/// Control plane and every pool run the target version.
pub const VERSION_CURRENT: &str = "VersionCurrent";
/// Extensions are applied and ready.
pub const EXTENSIONS_READY: &str = "ExtensionsReady";
/// The latest compliance checks passed.
pub const COMPLIANT: &str = "Compliant";
/// Hibernation (`spec.hibernation`) reached: True while hibernated, False while hibernating
/// (`Hibernating`) or awake (`Awake`); absent for clusters that never hibernated.
pub const HIBERNATED: &str = "Hibernated";
/// Deletion is in progress or refused; the message says what it waits on.
pub const DELETING: &str = "Deleting";
/// kstatus: kaas is working towards the spec (True until Ready, unless stalled).
pub const RECONCILING: &str = "Reconciling";
/// kstatus: the spec cannot be realised without a change (refused spec, failure).
pub const STALLED: &str = "Stalled";

/// Order in which conditions are listed (`Ready` first).
pub const ORDER: &[&str] = &[
    READY,
    SPEC_ACCEPTED,
    INFRASTRUCTURE_READY,
    CONTROL_PLANE_READY,
    WORKERS_READY,
    VERSION_CURRENT,
    EXTENSIONS_READY,
    COMPLIANT,
    HIBERNATED,
    DELETING,
    RECONCILING,
    STALLED,
];

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// True.
    True,
    /// False.
    False,
    /// Unknown.
    Unknown,
}

impl Status {
    /// The string Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// Sets (adds or updates) a condition. `lastTransitionTime` changes only when the status changes;
/// conditions stay sorted in [`ORDER`], unknown types after.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status.as_str() {
                c.last_transition_time = now.clone();
            }
            c.status = status.as_str().into();
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status.as_str().into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
    let rank = |t: &str| ORDER.iter().position(|o| *o == t).unwrap_or(ORDER.len());
    conditions.sort_by_key(|c| rank(&c.type_));
}

/// The condition of that type, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes_and_ready_sorts_first() {
        let mut c = Vec::new();
        set(
            &mut c,
            WORKERS_READY,
            Status::False,
            "Scaling",
            "1/3",
            Some(1),
            &at(10),
        );
        set(
            &mut c,
            READY,
            Status::False,
            "Waiting",
            "workers",
            Some(1),
            &at(10),
        );
        assert_eq!(c[0].type_, READY);
        set(
            &mut c,
            WORKERS_READY,
            Status::False,
            "Scaling",
            "2/3",
            Some(1),
            &at(20),
        );
        assert_eq!(get(&c, WORKERS_READY).unwrap().last_transition_time, at(10));
        assert_eq!(get(&c, WORKERS_READY).unwrap().message, "2/3");
        set(
            &mut c,
            WORKERS_READY,
            Status::True,
            "Ready",
            "3/3",
            Some(2),
            &at(30),
        );
        assert_eq!(get(&c, WORKERS_READY).unwrap().last_transition_time, at(30));
        assert!(is_true(&c, WORKERS_READY));
        assert!(!is_true(&c, READY));
    }
}
