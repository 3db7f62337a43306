//! Status derivation: from what validation said and what the backend observed to the `Cluster`'s
//! status. Pure (the clock is a parameter), so every transition is unit-tested; unchanged inputs
//! give an unchanged status (no churn for GitOps tools).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kaas_api::Cluster;
use kaas_api::cluster::{ClusterPhase, ClusterStatus, SecretRef, WorkerPoolStatus};
use kaas_api::conditions::{self as c, Status};
use kaas_validate::{FieldErrors, Resolved};

use crate::backend::{Observation, Signal};

/// Inputs of one status computation.
pub struct Inputs<'a> {
    /// The cluster as read.
    pub cluster: &'a Cluster,
    /// Validation result against the provider (or why there is no provider).
    pub validation: &'a Result<Resolved, Problem>,
    /// What the backend saw.
    pub observation: &'a Observation,
    /// The version rolled out (may lag the resolved one while waiting for a window).
    pub target_version: Option<String>,
    /// Why the version lags, if it does.
    pub version_note: Option<String>,
    /// Result of the addon reconcile (`None`: not attempted).
    pub extensions: Option<crate::addons::Outcome>,
    /// Result of a compliance check run in this reconcile (`None`: none was due).
    pub compliance: Option<Result<crate::compliance::Checked, String>>,
    /// Now.
    pub now: Time,
}

/// Why a spec is not accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// The provider is missing or not usable.
    Provider(String),
    /// The spec is invalid against the offering.
    Invalid(FieldErrors),
    /// The management cluster refused what the backend wrote for this spec (an admission
    /// webhook or policy, schema validation, RBAC): the full message of the refusal.
    Refused(String),
}

impl Problem {
    fn reason(&self) -> &'static str {
        match self {
            Problem::Provider(_) => "ProviderNotFound",
            Problem::Invalid(_) => "InvalidSpec",
            Problem::Refused(_) => "BackendRefused",
        }
    }
    fn message(&self) -> String {
        match self {
            Problem::Provider(m) | Problem::Refused(m) => m.clone(),
            Problem::Invalid(e) => e.to_string(),
        }
    }
}

fn set(
    status: &mut ClusterStatus,
    t: &str,
    s: Status,
    reason: &str,
    msg: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    c::set(&mut status.conditions, t, s, reason, msg, generation, now);
}

fn from_signal(sig: &Signal) -> Status {
    match sig.ok {
        Some(true) => Status::True,
        Some(false) => Status::False,
        None => Status::Unknown,
    }
}

/// Computes the new status from the old one.
pub fn derive(i: Inputs<'_>) -> ClusterStatus {
    let generation = i.cluster.metadata.generation;
    let now = &i.now;
    let old = i.cluster.status.clone().unwrap_or_default();
    let mut s = ClusterStatus {
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    s.observed_generation = generation;
    s.target_version = i.target_version.clone().or(old.target_version.clone());
    let o = i.observation;

    match i.validation {
        Ok(r) => {
            s.warnings = r.warnings.clone();
            set(
                &mut s,
                c::SPEC_ACCEPTED,
                Status::True,
                "Valid",
                format!("valid for provider {:?}", r.provider),
                generation,
                now,
            );
        }
        Err(p) => {
            set(
                &mut s,
                c::SPEC_ACCEPTED,
                Status::False,
                p.reason(),
                p.message(),
                generation,
                now,
            );
        }
    }

    let static_backend =
        matches!(i.validation, Ok(r) if r.backend == kaas_api::provider::BackendType::Static);
    if static_backend {
        set(
            &mut s,
            c::CONTROL_PLANE_READY,
            from_signal(&o.control_plane),
            &o.control_plane.reason,
            o.control_plane.message.clone(),
            generation,
            now,
        );
    }
    if !static_backend {
        set(
            &mut s,
            c::INFRASTRUCTURE_READY,
            from_signal(&o.infrastructure),
            &o.infrastructure.reason,
            o.infrastructure.message.clone(),
            generation,
            now,
        );
        set(
            &mut s,
            c::CONTROL_PLANE_READY,
            from_signal(&o.control_plane),
            &o.control_plane.reason,
            o.control_plane.message.clone(),
            generation,
            now,
        );
        let desired: i32 = o.pools.iter().map(|p| p.desired).sum();
        let ready: i32 = o.pools.iter().map(|p| p.ready).sum();
        let workers_msg = if o.pools.is_empty() {
            o.workers.message.clone()
        } else {
            format!("{ready}/{desired} worker nodes ready")
        };
        set(
            &mut s,
            c::WORKERS_READY,
            from_signal(&o.workers),
            &o.workers.reason,
            workers_msg,
            generation,
            now,
        );
    }

    // Version: everything runs the target version and nothing is rolling.
    let target = s.target_version.clone();
    let mut versions: Vec<&String> = o
        .control_plane_versions
        .iter()
        .chain(o.worker_versions.iter())
        .collect();
    versions.sort();
    versions.dedup();
    let uniform = (versions.len() == 1).then(|| versions[0].clone());
    s.kubernetes_version = uniform
        .clone()
        .or(old.kubernetes_version.clone().filter(|_| !o.exists));
    if !static_backend {
        let (vs, reason, msg) = match (&target, &uniform) {
            (Some(t), Some(u)) if t == u && o.rolling_out.is_none() => (
                Status::True,
                "UpToDate",
                i.version_note
                    .clone()
                    .unwrap_or_else(|| format!("running {t}")),
            ),
            (Some(t), _) if !versions.is_empty() => (
                Status::False,
                "Upgrading",
                format!(
                    "rolling out {t}; running {}",
                    versions
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (Some(t), _) => (Status::Unknown, "Pending", format!("{t} not running yet")),
            _ => (Status::Unknown, "Pending", "no version chosen yet".into()),
        };
        set(&mut s, c::VERSION_CURRENT, vs, reason, msg, generation, now);
    }

    match &i.extensions {
        Some(x) => {
            s.extensions = x.statuses.clone();
            let st = match x.ready {
                Some(true) => Status::True,
                Some(false) => Status::False,
                None => Status::Unknown,
            };
            set(
                &mut s,
                c::EXTENSIONS_READY,
                st,
                &x.reason,
                x.message.clone(),
                generation,
                now,
            );
        }
        None => {
            s.extensions = old.extensions.clone();
            // Not checked while hibernated (no nodes run them); waking checks them again.
            if matches!(i.validation, Ok(r) if r.hibernated) && !s.extensions.is_empty() {
                set(
                    &mut s,
                    c::EXTENSIONS_READY,
                    Status::Unknown,
                    "Hibernated",
                    "not checked while the cluster hibernates",
                    generation,
                    now,
                );
            }
        }
    }

    s.compliance = old.compliance.clone();
    match &i.compliance {
        Some(Ok(x)) => {
            s.compliance = Some(x.summary.clone());
            let st = match x.compliant {
                Some(true) => Status::True,
                Some(false) => Status::False,
                None => Status::Unknown,
            };
            set(
                &mut s,
                c::COMPLIANT,
                st,
                &x.reason,
                x.message.clone(),
                generation,
                now,
            );
        }
        Some(Err(e)) => set(
            &mut s,
            c::COMPLIANT,
            Status::Unknown,
            "CheckError",
            e.clone(),
            generation,
            now,
        ),
        None => {}
    }

    s.api_endpoint = o
        .endpoint
        .clone()
        .or(old.api_endpoint.clone().filter(|_| o.exists));
    s.kubeconfig_secret_ref = o.kubeconfig_secret.clone().map(|name| SecretRef {
        name,
        key: Some("value".into()),
    });
    let bounds = |pool: &str| {
        let resolved = i.validation.as_ref().ok()?;
        match resolved.pools.iter().find(|p| p.name == pool)?.size {
            kaas_validate::offering::Size::Autoscale { min, max } => Some((min, max)),
            kaas_validate::offering::Size::Fixed(_) => None,
        }
    };
    s.workers = o
        .pools
        .iter()
        .map(|p| WorkerPoolStatus {
            name: p.name.clone(),
            desired: p.desired,
            ready: p.ready,
            version: (p.versions.len() == 1).then(|| p.versions[0].clone()),
            min: bounds(&p.name).map(|b| b.0),
            max: bounds(&p.name).map(|b| b.1),
            autoscaler: p.autoscaler.clone(),
        })
        .collect();

    // Ready and phase.
    let accepted = i.validation.is_ok();
    let parts: &[&str] = if static_backend {
        &[c::SPEC_ACCEPTED, c::CONTROL_PLANE_READY]
    } else {
        &[
            c::SPEC_ACCEPTED,
            c::INFRASTRUCTURE_READY,
            c::CONTROL_PLANE_READY,
            c::WORKERS_READY,
            c::VERSION_CURRENT,
        ]
    };
    let first_not_ready = parts
        .iter()
        .find(|t| !c::is_true(&s.conditions, t))
        .copied();
    let deleting = i.cluster.metadata.deletion_timestamp.is_some();
    let hibernation = hibernation(&mut s, i.cluster, i.validation, o, generation, now);
    let (ready, reason, msg) = match (first_not_ready, &o.failure) {
        _ if deleting => (
            Status::False,
            "Deleting".to_string(),
            "the cluster is being deleted".to_string(),
        ),
        (_, Some(f)) => (Status::False, "Failed".to_string(), f.clone()),
        _ if hibernation != Hibernation::Awake => {
            let (reason, message) = c::get(&s.conditions, c::HIBERNATED)
                .map(|c| (c.reason.clone(), c.message.clone()))
                .unwrap_or_default();
            (Status::False, reason, message)
        }
        (None, None) => (
            Status::True,
            "Ready".to_string(),
            "the cluster is ready".to_string(),
        ),
        (Some(t), None) => {
            let (reason, message) = c::get(&s.conditions, t)
                .map(|c| (c.reason.clone(), c.message.clone()))
                .unwrap_or_default();
            (Status::False, reason, format!("{t}: {message}"))
        }
    };
    set(
        &mut s,
        c::READY,
        ready,
        &reason,
        msg.clone(),
        generation,
        now,
    );

    let refused = matches!(i.validation, Err(Problem::Refused(_)));
    s.phase = Some(if deleting {
        ClusterPhase::Deleting
    } else if refused {
        // Valid against the offering, but what realises it was refused: a provider-side problem
        // or a feature the backend cannot serve; it stays so until the spec or provider changes.
        ClusterPhase::Failed
    } else if !accepted && !o.exists {
        ClusterPhase::Invalid
    } else if o.failure.is_some() {
        ClusterPhase::Failed
    } else if hibernation == Hibernation::Reached {
        ClusterPhase::Hibernated
    } else if ready == Status::True {
        ClusterPhase::Ready
    } else if !accepted {
        ClusterPhase::Invalid
    } else if !o.exists && !static_backend {
        ClusterPhase::Pending
    } else if matches!(
        old.phase,
        Some(ClusterPhase::Ready | ClusterPhase::Updating | ClusterPhase::Hibernated)
    ) {
        // Updating only once the cluster has been Ready; before that it is being provisioned.
        ClusterPhase::Updating
    } else {
        ClusterPhase::Provisioning
    });

    // kstatus (Flux `wait`/health checks, cli-utils): `Reconciling` while kaas works towards the
    // spec, `Stalled` when it cannot get there without a change. Both are always present (False
    // when not applicable), so a steady cluster's conditions do not churn.
    let stalled = matches!(s.phase, Some(ClusterPhase::Invalid | ClusterPhase::Failed));
    // A hibernated cluster is where its spec asks: nothing is in progress.
    let reconciling = !stalled && ready != Status::True && hibernation != Hibernation::Reached;
    let (st_reason, st_msg) = if stalled {
        (reason.as_str(), msg.clone())
    } else {
        ("NotStalled", String::new())
    };
    set(
        &mut s,
        c::STALLED,
        Status::from(stalled),
        st_reason,
        st_msg,
        generation,
        now,
    );
    let (rc_reason, rc_msg) = if reconciling {
        (reason.as_str(), msg)
    } else {
        ("Reconciled", String::new())
    };
    set(
        &mut s,
        c::RECONCILING,
        Status::from(reconciling),
        rc_reason,
        rc_msg,
        generation,
        now,
    );
    s
}

/// Where a cluster is with hibernation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hibernation {
    /// Not asked.
    Awake,
    /// Asked, on the way (pools scaling down, the control plane stopping).
    Going,
    /// Asked and reached.
    Reached,
}

/// The `Hibernated` condition: True once the backend's objects are at rest as asked, False
/// (`Hibernating`) on the way, False (`Awake`) after a cluster woke; `Unknown`
/// (`SpecNotAccepted`) while the spec asks for it but is not accepted (nothing is judged then);
/// absent for clusters that never hibernated.
fn hibernation(
    s: &mut ClusterStatus,
    cluster: &Cluster,
    validation: &Result<kaas_validate::Resolved, Problem>,
    o: &Observation,
    generation: Option<i64>,
    now: &Time,
) -> Hibernation {
    let in_spec = cluster.spec.hibernation.as_ref().is_some_and(|h| h.asked());
    let shown = c::get(&s.conditions, c::HIBERNATED).is_some();
    let (state, status, reason, message) = match (validation, &o.at_rest) {
        (Err(_), _) if in_spec || shown => (
            Hibernation::Awake,
            Status::Unknown,
            "SpecNotAccepted",
            "hibernation is not judged while the spec is not accepted (see SpecAccepted)"
                .to_string(),
        ),
        (Err(_), _) => return Hibernation::Awake,
        (Ok(r), Some(what)) if r.hibernated => (
            Hibernation::Reached,
            Status::True,
            "Hibernated",
            format!("hibernated: {what}; set spec.hibernation.enabled to false to wake it"),
        ),
        (Ok(r), None) if r.hibernated => {
            let nodes: i32 = o.pools.iter().map(|p| p.current.max(p.ready)).sum();
            let message = if nodes > 0 {
                format!("hibernating: {nodes} worker node(s) left")
            } else if o.control_plane.ok != Some(true) && !o.control_plane.message.is_empty() {
                format!("hibernating; control plane: {}", o.control_plane.message)
            } else {
                match &o.rolling_out {
                    Some(r) => format!("hibernating: {r}"),
                    None => "hibernating".to_string(),
                }
            };
            (Hibernation::Going, Status::False, "Hibernating", message)
        }
        (Ok(_), _) if shown => (
            Hibernation::Awake,
            Status::False,
            "Awake",
            "the cluster is awake (spec.hibernation.enabled is not true)".to_string(),
        ),
        (Ok(_), _) => return Hibernation::Awake,
    };
    set(s, c::HIBERNATED, status, reason, message, generation, now);
    state
}
