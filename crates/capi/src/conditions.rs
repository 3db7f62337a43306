//! The Cluster API condition types and reasons kaas reads, and lookups over the optional
//! `status.conditions` lists of the v1beta2 resources (metav1 `Condition`s).
//!
//! One place for both: the operator derives the SCS Cluster's status from them
//! (`kaas-operator`'s Cluster API backend) and `kaas diagnose` explains them.

use crate::Condition;

/// `Cluster`: the infrastructure is provisioned (also `status.initialization`).
pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
/// `Cluster`: the control plane is available.
pub const CONTROL_PLANE_AVAILABLE: &str = "ControlPlaneAvailable";
/// `Cluster`: every worker pool is available.
pub const WORKERS_AVAILABLE: &str = "WorkersAvailable";
/// `Cluster` with a topology: the topology controller applied the current topology.
pub const TOPOLOGY_RECONCILED: &str = "TopologyReconciled";
/// `Cluster`, `KubeadmControlPlane`, `MachineDeployment`: available.
pub const AVAILABLE: &str = "Available";
/// `Machine` (and others): ready.
pub const READY: &str = "Ready";

/// Reasons of [`TOPOLOGY_RECONCILED`] `False` that mean the topology cannot be applied (as
/// opposed to waiting for something).
pub mod reason {
    /// The topology controller's apply failed (a webhook, a patch or a variable was refused).
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// The ClusterClass has not been reconciled (e.g. a template it names is missing).
    pub const CLUSTER_CLASS_NOT_RECONCILED: &str = "ClusterClassNotReconciled";
}

/// The condition of type `t` in `list`.
pub fn find<'a>(list: Option<&'a Vec<Condition>>, t: &str) -> Option<&'a Condition> {
    list.and_then(|l| l.iter().find(|c| c.type_ == t))
}

/// Whether the condition of type `t` is there and `True`.
pub fn is_true(list: Option<&Vec<Condition>>, t: &str) -> bool {
    find(list, t).is_some_and(|c| c.status == "True")
}

/// Whether the condition of type `t` is there and `False`.
pub fn is_false(list: Option<&Vec<Condition>>, t: &str) -> bool {
    find(list, t).is_some_and(|c| c.status == "False")
}

/// A condition's status: `Some(true)`, `Some(false)`, or `None` for `Unknown` (or anything
/// else).
pub fn status(c: &Condition) -> Option<bool> {
    match c.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: &str, status: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn lookups() {
        let list = vec![
            c(CONTROL_PLANE_AVAILABLE, "True"),
            c(WORKERS_AVAILABLE, "False"),
            c(TOPOLOGY_RECONCILED, "Unknown"),
        ];
        let l = Some(&list);
        assert!(is_true(l, CONTROL_PLANE_AVAILABLE));
        assert!(!is_false(l, CONTROL_PLANE_AVAILABLE));
        assert!(is_false(l, WORKERS_AVAILABLE));
        assert!(!is_true(l, TOPOLOGY_RECONCILED) && !is_false(l, TOPOLOGY_RECONCILED));
        assert!(find(l, INFRASTRUCTURE_READY).is_none());
        assert!(!is_true(None, CONTROL_PLANE_AVAILABLE));
        let s: Vec<_> = list.iter().map(status).collect();
        assert_eq!(s, [Some(true), Some(false), None]);
    }
}
