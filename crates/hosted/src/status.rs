//! Pure: what the runtime observed of one control plane → the `HostedControlPlane` status
//! (endpoint, version, kubeconfig Secret, pools, conditions `Ready`, `ControlPlaneAvailable`,
//! `WorkersAvailable` with reasons, phase). `lastTransitionTime` only moves when a condition's
//! status changes, so an unchanged control plane yields an identical status and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kaas_api::conditions::{Status, set};
use kaas_api::hosted::{
    HostedControlPlaneSpec, HostedControlPlaneStatus, HostedPoolStatus, PHASE_HIBERNATED,
    REASON_HIBERNATED, conditions,
};

use crate::plan::normalize;

/// Condition reasons.
pub mod reasons {
    /// The desired version is not built for this runtime.
    pub const VERSION_NOT_AVAILABLE: &str = "VersionNotAvailable";
    /// A process did not start or the API server did not become ready.
    pub const START_FAILED: &str = "StartFailed";
    /// The API server does not answer (yet).
    pub const API_SERVER_NOT_READY: &str = "APIServerNotReady";
    /// The API server reports another version than desired.
    pub const UPGRADING: &str = "Upgrading";
    /// The controllers have not initialised the cluster yet (no default ServiceAccount).
    pub const CONTROLLERS_NOT_READY: &str = "ControllersNotReady";
    /// The API server answers with the desired version.
    pub const AVAILABLE: &str = "Available";
    /// Without an API server the nodes cannot be seen.
    pub const CONTROL_PLANE_UNAVAILABLE: &str = "ControlPlaneUnavailable";
    /// A pool has more or fewer nodes than desired.
    pub const SCALING: &str = "Scaling";
    /// Nodes are not Ready.
    pub const NODES_NOT_READY: &str = "NodesNotReady";
    /// Nodes run another version than desired.
    pub const ROLLING_VERSIONS: &str = "RollingVersions";
    /// Every pool at size, Ready and at the desired version.
    pub const POOLS_AVAILABLE: &str = "PoolsAvailable";
    /// Applying the node plan failed.
    pub const NODES_FAILED: &str = "NodeUpdateFailed";
    /// Both available.
    pub const READY: &str = "Ready";
}

/// What the runtime saw in one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// `metadata.generation` of the object the pass worked on.
    pub generation: Option<i64>,
    /// The object is being deleted.
    pub deleting: bool,
    /// Every process is stopped as `spec.hibernated` asks, the data kept.
    pub hibernated: bool,
    /// While hibernated: the ports the runtime cannot hold (`hibernation::NotHeld`, as text).
    pub ports_not_held: Vec<String>,
    /// `https://127.0.0.1:<port>` once ports are assigned.
    pub endpoint: Option<String>,
    /// Why the desired version cannot run (names the built versions).
    pub version_unavailable: Option<String>,
    /// Why a process failed to start (with its log tail).
    pub start_error: Option<String>,
    /// `/readyz` answered ok.
    pub apiserver_ready: bool,
    /// `/version` gitVersion.
    pub reported_version: Option<String>,
    /// The default ServiceAccount exists (controller-manager works).
    pub controllers_ready: bool,
    /// Name of the kubeconfig Secret once written.
    pub kubeconfig_secret: Option<String>,
    /// Per pool, in spec order (`None` while nodes cannot be listed).
    pub pools: Option<Vec<HostedPoolStatus>>,
    /// Why applying the node plan failed.
    pub nodes_error: Option<String>,
}

/// The status for what was observed; `previous` keeps condition transition times.
pub fn compute(
    spec: &HostedControlPlaneSpec,
    o: &Observed,
    previous: Option<&HostedControlPlaneStatus>,
    now: &Time,
) -> HostedControlPlaneStatus {
    if o.hibernated && !o.deleting {
        return hibernated(spec, o, previous, now);
    }
    let desired = normalize(&spec.version);
    let mut conds = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let g = o.generation;
    let reported = o.reported_version.as_deref().map(normalize);

    let (cp_ok, cp_reason, cp_msg): (bool, &str, String) = if let Some(m) = &o.version_unavailable {
        (false, reasons::VERSION_NOT_AVAILABLE, m.clone())
    } else if let Some(e) = &o.start_error {
        (false, reasons::START_FAILED, e.clone())
    } else if !o.apiserver_ready {
        (
            false,
            reasons::API_SERVER_NOT_READY,
            "the API server does not answer /readyz yet".into(),
        )
    } else if reported.as_deref() != Some(desired.as_str()) {
        (
            false,
            reasons::UPGRADING,
            format!(
                "the API server reports {}, want {desired}",
                reported.as_deref().unwrap_or("no version")
            ),
        )
    } else if !o.controllers_ready {
        (
            false,
            reasons::CONTROLLERS_NOT_READY,
            "the controller-manager has not created the default ServiceAccount yet".into(),
        )
    } else {
        (
            true,
            reasons::AVAILABLE,
            format!("the API server answers at {desired}"),
        )
    };

    let pools = o.pools.clone().unwrap_or_default();
    let (w_status, w_reason, w_msg): (Status, &str, String) = match &o.pools {
        None => (
            Status::Unknown,
            reasons::CONTROL_PLANE_UNAVAILABLE,
            "nodes cannot be listed without the API server".into(),
        ),
        Some(ps) => {
            let off = |f: &dyn Fn(&HostedPoolStatus) -> bool| -> Vec<String> {
                ps.iter().filter(|p| f(p)).map(|p| p.name.clone()).collect()
            };
            let size = off(&|p| p.current != p.desired);
            let unready = off(&|p| p.ready < p.desired);
            let versions =
                off(&|p| p.current > 0 && p.versions.iter().any(|v| normalize(v) != desired));
            if let Some(e) = &o.nodes_error {
                (Status::False, reasons::NODES_FAILED, e.clone())
            } else if !size.is_empty() {
                (
                    Status::False,
                    reasons::SCALING,
                    format!("pools not at their size: {}", size.join(", ")),
                )
            } else if !versions.is_empty() {
                (
                    Status::False,
                    reasons::ROLLING_VERSIONS,
                    format!("pools not at {desired}: {}", versions.join(", ")),
                )
            } else if !unready.is_empty() {
                (
                    Status::False,
                    reasons::NODES_NOT_READY,
                    format!("pools with nodes not Ready: {}", unready.join(", ")),
                )
            } else {
                (
                    Status::True,
                    reasons::POOLS_AVAILABLE,
                    format!("{} pools at size, Ready, at {desired}", ps.len()),
                )
            }
        }
    };
    let ready = cp_ok && w_status == Status::True;
    let (r_reason, r_msg) = if ready {
        (
            reasons::READY,
            "control plane and every pool available".to_string(),
        )
    } else if !cp_ok {
        (cp_reason, cp_msg.clone())
    } else {
        (w_reason, w_msg.clone())
    };
    set(
        &mut conds,
        conditions::READY,
        ready.into(),
        r_reason,
        r_msg,
        g,
        now,
    );
    set(
        &mut conds,
        conditions::CONTROL_PLANE_AVAILABLE,
        cp_ok.into(),
        cp_reason,
        cp_msg,
        g,
        now,
    );
    set(
        &mut conds,
        conditions::WORKERS_AVAILABLE,
        w_status,
        w_reason,
        w_msg,
        g,
        now,
    );

    let phase = if o.deleting {
        "Deleting"
    } else if o.version_unavailable.is_some() || o.start_error.is_some() {
        "Failed"
    } else if ready {
        "Running"
    } else if reported.is_some() && reported.as_deref() != Some(desired.as_str()) {
        "Upgrading"
    } else if !o.apiserver_ready {
        "Provisioning"
    } else if w_reason == reasons::ROLLING_VERSIONS {
        "Upgrading"
    } else {
        // Once a control plane ran, a pool off its size is scaling; before, it is provisioning.
        let ran = previous
            .and_then(|p| p.phase.as_deref())
            .is_some_and(|p| matches!(p, "Running" | "Scaling" | "Upgrading"));
        match (ran, w_reason) {
            (true, reasons::SCALING) => "Scaling",
            (true, _) => "Running",
            (false, _) => "Provisioning",
        }
    };

    HostedControlPlaneStatus {
        observed_generation: g,
        conditions: conds,
        phase: Some(phase.into()),
        endpoint: o.endpoint.clone(),
        version: reported,
        kubeconfig_secret: o.kubeconfig_secret.clone(),
        pools,
        // The controller carries the etcd operation's report over (`Observed` knows nothing of it).
        etcd_operation: None,
    }
}

/// Message of `Ready=False` and `ControlPlaneAvailable=False` while hibernated.
pub const HIBERNATED_MESSAGE: &str = "the control plane is stopped as spec.hibernated asks, its data kept (etcd's data, certificates, kubeconfig and endpoint); spec.hibernated: false starts it again";

/// The status of a hibernated control plane: phase `Hibernated`, `Ready`,
/// `ControlPlaneAvailable` and `WorkersAvailable` False with reason `Hibernated`, every pool
/// with no node running, the endpoint and kubeconfig Secret kept, and the version the API server
/// last reported (it runs that version again on waking).
fn hibernated(
    spec: &HostedControlPlaneSpec,
    o: &Observed,
    previous: Option<&HostedControlPlaneStatus>,
    now: &Time,
) -> HostedControlPlaneStatus {
    let mut conds = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let g = o.generation;
    let msg = if o.ports_not_held.is_empty() {
        HIBERNATED_MESSAGE.to_string()
    } else {
        format!(
            "{HIBERNATED_MESSAGE}; the runtime cannot hold {} while it sleeps (another program has it; retried): the endpoint moves on waking if it is still taken then",
            o.ports_not_held.join(", ")
        )
    };
    for (t, msg) in [
        (conditions::READY, msg.as_str()),
        (conditions::CONTROL_PLANE_AVAILABLE, msg.as_str()),
        (
            conditions::WORKERS_AVAILABLE,
            "no node runs while the cluster is hibernated",
        ),
    ] {
        set(
            &mut conds,
            t,
            Status::False,
            REASON_HIBERNATED,
            msg.to_string(),
            g,
            now,
        );
    }
    HostedControlPlaneStatus {
        observed_generation: g,
        conditions: conds,
        phase: Some(PHASE_HIBERNATED.into()),
        endpoint: o.endpoint.clone(),
        version: previous.and_then(|p| p.version.clone()),
        kubeconfig_secret: o.kubeconfig_secret.clone(),
        pools: spec
            .pools
            .iter()
            .map(|p| HostedPoolStatus {
                name: p.name.clone(),
                desired: p.replicas,
                current: 0,
                ready: 0,
                versions: Vec::new(),
            })
            .collect(),
        etcd_operation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use kaas_api::conditions::get;
    use kaas_api::hosted::HostedPool;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn spec() -> HostedControlPlaneSpec {
        HostedControlPlaneSpec {
            runtime: "local".into(),
            version: "1.35.4".into(),
            replicas: 1,
            region: "r".into(),
            pools: vec![HostedPool {
                name: "w".into(),
                replicas: 3,
                ..HostedPool::default()
            }],
            ..HostedControlPlaneSpec::default()
        }
    }

    fn pool(current: i32, ready: i32, v: &str) -> HostedPoolStatus {
        HostedPoolStatus {
            name: "w".into(),
            desired: 3,
            current,
            ready,
            versions: vec![v.into()],
        }
    }

    fn healthy() -> Observed {
        Observed {
            generation: Some(2),
            endpoint: Some("https://127.0.0.1:1".into()),
            apiserver_ready: true,
            reported_version: Some("v1.35.4".into()),
            controllers_ready: true,
            kubeconfig_secret: Some("c-kubeconfig".into()),
            pools: Some(vec![pool(3, 3, "v1.35.4")]),
            ..Observed::default()
        }
    }

    fn cond<'a>(s: &'a HostedControlPlaneStatus, t: &str) -> (&'a str, &'a str) {
        let c = get(&s.conditions, t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn ready_and_stable() {
        let s = compute(&spec(), &healthy(), None, &at(1));
        assert_eq!(cond(&s, "Ready"), ("True", "Ready"));
        assert_eq!(cond(&s, "ControlPlaneAvailable"), ("True", "Available"));
        assert_eq!(cond(&s, "WorkersAvailable"), ("True", "PoolsAvailable"));
        assert_eq!(s.conditions[0].type_, "Ready");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.version.as_deref(), Some("v1.35.4"));
        assert_eq!(s.observed_generation, Some(2));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        // Same observation later: identical status (no write).
        assert_eq!(compute(&spec(), &healthy(), Some(&s), &at(99)), s);
    }

    #[test]
    fn version_not_available_is_a_condition() {
        let o = Observed {
            version_unavailable: Some("Kubernetes v1.99.0 is not built (built: v1.35.4)".into()),
            apiserver_ready: false,
            pools: None,
            ..healthy()
        };
        let s = compute(&spec(), &o, None, &at(1));
        assert_eq!(cond(&s, "Ready"), ("False", "VersionNotAvailable"));
        assert_eq!(
            cond(&s, "ControlPlaneAvailable"),
            ("False", "VersionNotAvailable")
        );
        assert!(
            get(&s.conditions, "Ready")
                .unwrap()
                .message
                .contains("built: v1.35.4")
        );
        assert_eq!(
            cond(&s, "WorkersAvailable"),
            ("Unknown", "ControlPlaneUnavailable")
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn scaling_upgrading_provisioning() {
        let ready = compute(&spec(), &healthy(), None, &at(1));
        let o = Observed {
            pools: Some(vec![pool(1, 1, "v1.35.4")]),
            ..healthy()
        };
        let s = compute(&spec(), &o, Some(&ready), &at(2));
        assert_eq!(cond(&s, "Ready"), ("False", "Scaling"));
        assert_eq!(s.phase.as_deref(), Some("Scaling"));
        assert_eq!(s.pools[0].current, 1);
        // Transition time moved with the status.
        assert_eq!(
            get(&s.conditions, "Ready").unwrap().last_transition_time,
            at(2)
        );
        assert_eq!(
            get(&s.conditions, "ControlPlaneAvailable")
                .unwrap()
                .last_transition_time,
            at(1)
        );
        let mut up = spec();
        up.version = "1.36.3".into();
        let s = compute(&up, &healthy(), Some(&ready), &at(3));
        assert_eq!(cond(&s, "ControlPlaneAvailable"), ("False", "Upgrading"));
        assert_eq!(s.phase.as_deref(), Some("Upgrading"));
        let o = Observed {
            reported_version: Some("v1.36.3".into()),
            ..healthy()
        };
        let s = compute(&up, &o, Some(&ready), &at(3));
        assert_eq!(cond(&s, "WorkersAvailable"), ("False", "RollingVersions"));
        assert_eq!(s.phase.as_deref(), Some("Upgrading"));
        let fresh = Observed {
            generation: Some(1),
            endpoint: Some("https://127.0.0.1:1".into()),
            ..Observed::default()
        };
        let s = compute(&spec(), &fresh, None, &at(1));
        assert_eq!(cond(&s, "Ready"), ("False", "APIServerNotReady"));
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        let failed = Observed {
            start_error: Some("kube-apiserver exited".into()),
            ..fresh
        };
        let s = compute(&spec(), &failed, None, &at(1));
        assert_eq!(cond(&s, "ControlPlaneAvailable"), ("False", "StartFailed"));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn hibernated_keeps_endpoint_and_version_and_stops_everything() {
        let running = compute(&spec(), &healthy(), None, &at(1));
        let mut asleep = spec();
        asleep.hibernated = true;
        asleep.pools[0].replicas = 0;
        let o = Observed {
            generation: Some(3),
            hibernated: true,
            endpoint: Some("https://127.0.0.1:1".into()),
            kubeconfig_secret: Some("c-kubeconfig".into()),
            ..Observed::default()
        };
        let s = compute(&asleep, &o, Some(&running), &at(5));
        assert_eq!(s.phase.as_deref(), Some("Hibernated"));
        for t in ["Ready", "ControlPlaneAvailable", "WorkersAvailable"] {
            assert_eq!(cond(&s, t), ("False", "Hibernated"), "{t}");
            let c = get(&s.conditions, t).unwrap();
            assert_eq!(c.observed_generation, Some(3));
            assert_eq!(c.last_transition_time, at(5));
        }
        assert!(
            get(&s.conditions, "Ready")
                .unwrap()
                .message
                .contains("data kept")
        );
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.endpoint.as_deref(), Some("https://127.0.0.1:1"));
        assert_eq!(s.kubeconfig_secret.as_deref(), Some("c-kubeconfig"));
        assert_eq!(s.version.as_deref(), Some("v1.35.4"));
        assert_eq!(
            (s.pools[0].desired, s.pools[0].current, s.pools[0].ready),
            (0, 0, 0)
        );
        // Stable while it sleeps: no write.
        assert_eq!(compute(&asleep, &o, Some(&s), &at(50)), s);
        // A port the runtime cannot hold is named (the endpoint may move on waking).
        let taken = Observed {
            ports_not_held: vec!["the API server port 1 (Address in use)".into()],
            ..o.clone()
        };
        let t = compute(&asleep, &taken, Some(&s), &at(55));
        let m = &get(&t.conditions, "Ready").unwrap().message;
        assert!(
            m.contains("data kept") && m.contains("cannot hold the API server port 1"),
            "{m}"
        );
        assert!(m.contains("endpoint moves on waking"), "{m}");
        assert_eq!(cond(&t, "Ready"), ("False", "Hibernated"));
        // Deleting wins over hibernated.
        let d = Observed {
            deleting: true,
            ..o.clone()
        };
        assert_eq!(
            compute(&asleep, &d, Some(&s), &at(60)).phase.as_deref(),
            Some("Deleting")
        );
        // Awake again: the usual status.
        let s = compute(&spec(), &healthy(), Some(&s), &at(70));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), ("True", "Ready"));
    }
}
