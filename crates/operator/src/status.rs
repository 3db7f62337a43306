//! Status derivation: from what validation said and what the backend observed to the `Cluster`'s
//! status. Pure (the clock is a parameter), so every transition is unit-tested; unchanged inputs
//! give an unchanged status (no churn for GitOps tools).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kaas_api::Cluster;
use kaas_api::cluster::{ClusterPhase, ClusterStatus, SecretRef, WorkerPoolStatus};
use kaas_api::conditions::{self as c, Status};
use kaas_validate::Resolved;

use crate::types::{Observation, Problem, Signal};

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

/// Computes the new status from the old one, in steps that each set their part: what was
/// accepted, what the backend shows, the version, extensions and compliance, where the cluster is
/// reached, then hibernation, `Ready`, the phase and the kstatus conditions derived from them.
pub fn derive(i: Inputs<'_>) -> ClusterStatus {
    let mut d = Deriving::new(&i);
    d.spec_accepted();
    d.backend_conditions();
    d.version_current();
    d.extensions();
    d.compliance();
    d.access_and_pools();
    let hibernation = hibernation(
        &mut d.s,
        i.cluster,
        i.validation,
        i.observation,
        d.generation,
        &i.now,
    );
    let ready = d.ready(hibernation);
    d.phase(ready.0, hibernation);
    d.kstatus(ready, hibernation);
    d.s
}

/// Where the deletion of a cluster stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleting<'a> {
    /// `spec.deletionProtection` holds it.
    Protected,
    /// The backend still waits for this (its message).
    Waiting(&'a str),
}

/// The status of a cluster being deleted (pure). Protected: the status as it was, with
/// `Deleting` False. Waiting: `Deleting` True with what the backend waits for, `Ready` False,
/// phase `Deleting`; what no longer runs (the version, the pools, the kubeconfig Secret) is
/// cleared, what was decided or checked (target version, endpoint, extensions, compliance,
/// warnings) stays until the object is gone.
pub fn deleting(cluster: &Cluster, progress: Deleting<'_>, now: &Time) -> ClusterStatus {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let msg = match progress {
        Deleting::Protected => {
            let mut s = old;
            c::set(
                &mut s.conditions,
                c::DELETING,
                Status::False,
                "DeletionProtected",
                "spec.deletionProtection is true: set it to false to let the deletion proceed",
                generation,
                now,
            );
            return s;
        }
        Deleting::Waiting(msg) => msg,
    };
    let mut s = ClusterStatus {
        observed_generation: generation,
        conditions: old.conditions,
        phase: Some(ClusterPhase::Deleting),
        target_version: old.target_version,
        api_endpoint: old.api_endpoint,
        warnings: old.warnings,
        extensions: old.extensions,
        compliance: old.compliance,
        ..Default::default()
    };
    c::set(
        &mut s.conditions,
        c::DELETING,
        Status::True,
        "WaitingForBackend",
        msg,
        generation,
        now,
    );
    c::set(
        &mut s.conditions,
        c::READY,
        Status::False,
        "Deleting",
        "the cluster is being deleted",
        generation,
        now,
    );
    s
}

/// The status being derived from [`Inputs`] and the old status.
struct Deriving<'a> {
    i: &'a Inputs<'a>,
    o: &'a Observation,
    old: ClusterStatus,
    s: ClusterStatus,
    generation: Option<i64>,
    /// Imported clusters show their control plane only: nothing is provisioned.
    static_backend: bool,
}

impl<'a> Deriving<'a> {
    fn new(i: &'a Inputs<'a>) -> Self {
        let old = i.cluster.status.clone().unwrap_or_default();
        let s = ClusterStatus {
            conditions: old.conditions.clone(),
            observed_generation: i.cluster.metadata.generation,
            target_version: i.target_version.clone().or(old.target_version.clone()),
            ..Default::default()
        };
        Deriving {
            i,
            o: i.observation,
            old,
            s,
            generation: i.cluster.metadata.generation,
            static_backend: matches!(i.validation, Ok(r) if r.backend == kaas_api::provider::BackendType::Static),
        }
    }

    fn set(&mut self, t: &str, st: Status, reason: &str, msg: impl Into<String>) {
        set(
            &mut self.s,
            t,
            st,
            reason,
            msg,
            self.generation,
            &self.i.now,
        );
    }

    fn set_signal(&mut self, t: &str, sig: &Signal, msg: String) {
        self.set(t, from_signal(sig), &sig.reason, msg);
    }

    /// `SpecAccepted` and the validation's warnings.
    fn spec_accepted(&mut self) {
        match self.i.validation {
            Ok(r) => {
                self.s.warnings = r.warnings.clone();
                let msg = format!("valid for provider {:?}", r.provider);
                self.set(c::SPEC_ACCEPTED, Status::True, "Valid", msg);
            }
            Err(p) => self.set(c::SPEC_ACCEPTED, Status::False, p.reason(), p.message()),
        }
    }

    /// What the backend shows: the control plane of an imported cluster; infrastructure, control
    /// plane and workers of a provisioned one.
    fn backend_conditions(&mut self) {
        let o = self.o;
        self.set_signal(
            c::CONTROL_PLANE_READY,
            &o.control_plane,
            o.control_plane.message.clone(),
        );
        if self.static_backend {
            return;
        }
        self.set_signal(
            c::INFRASTRUCTURE_READY,
            &o.infrastructure,
            o.infrastructure.message.clone(),
        );
        let desired: i32 = o.pools.iter().map(|p| p.desired).sum();
        let ready: i32 = o.pools.iter().map(|p| p.ready).sum();
        let workers_msg = if o.pools.is_empty() {
            o.workers.message.clone()
        } else {
            format!("{ready}/{desired} worker nodes ready")
        };
        self.set_signal(c::WORKERS_READY, &o.workers, workers_msg);
    }

    /// The version the cluster runs, and `VersionCurrent`: everything runs the target version
    /// and nothing is rolling.
    fn version_current(&mut self) {
        let o = self.o;
        let target = self.s.target_version.clone();
        let mut versions: Vec<&String> = o
            .control_plane_versions
            .iter()
            .chain(o.worker_versions.iter())
            .collect();
        versions.sort();
        versions.dedup();
        let uniform = (versions.len() == 1).then(|| versions[0].clone());
        self.s.kubernetes_version =
            uniform
                .clone()
                .or(self.old.kubernetes_version.clone().filter(|_| !o.exists));
        if self.static_backend {
            return;
        }
        let (vs, reason, msg) = match (&target, &uniform) {
            (Some(t), Some(u)) if t == u && o.rolling_out.is_none() => (
                Status::True,
                "UpToDate",
                self.i
                    .version_note
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
        self.set(c::VERSION_CURRENT, vs, reason, msg);
    }

    /// Extensions from this reconcile's addon run, else as they were (Unknown while the cluster
    /// hibernates: no nodes run them; waking checks them again).
    fn extensions(&mut self) {
        match &self.i.extensions {
            Some(x) => {
                self.s.extensions = x.statuses.clone();
                let st = match x.ready {
                    Some(true) => Status::True,
                    Some(false) => Status::False,
                    None => Status::Unknown,
                };
                self.set(c::EXTENSIONS_READY, st, &x.reason, x.message.clone());
            }
            None => {
                self.s.extensions = self.old.extensions.clone();
                if matches!(self.i.validation, Ok(r) if r.hibernated)
                    && !self.s.extensions.is_empty()
                {
                    self.set(
                        c::EXTENSIONS_READY,
                        Status::Unknown,
                        "Hibernated",
                        "not checked while the cluster hibernates",
                    );
                }
            }
        }
    }

    /// The compliance summary of a check run in this reconcile, else the last one.
    fn compliance(&mut self) {
        self.s.compliance = self.old.compliance.clone();
        match &self.i.compliance {
            Some(Ok(x)) => {
                self.s.compliance = Some(x.summary.clone());
                let st = match x.compliant {
                    Some(true) => Status::True,
                    Some(false) => Status::False,
                    None => Status::Unknown,
                };
                self.set(c::COMPLIANT, st, &x.reason, x.message.clone());
            }
            Some(Err(e)) => self.set(c::COMPLIANT, Status::Unknown, "CheckError", e.clone()),
            None => {}
        }
    }

    /// The API endpoint, the kubeconfig Secret and the pools (with their autoscaler bounds).
    fn access_and_pools(&mut self) {
        let o = self.o;
        self.s.api_endpoint =
            o.endpoint
                .clone()
                .or(self.old.api_endpoint.clone().filter(|_| o.exists));
        self.s.kubeconfig_secret_ref = o.kubeconfig_secret.clone().map(|name| SecretRef {
            name,
            key: Some("value".into()),
        });
        let validation = self.i.validation;
        let bounds = |pool: &str| {
            let resolved = validation.as_ref().ok()?;
            match resolved.pools.iter().find(|p| p.name == pool)?.size {
                kaas_validate::offering::Size::Autoscale { min, max } => Some((min, max)),
                kaas_validate::offering::Size::Fixed(_) => None,
            }
        };
        self.s.workers = o
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
    }

    fn deleting(&self) -> bool {
        self.i.cluster.metadata.deletion_timestamp.is_some()
    }

    /// `Ready`: deletion, a failure, hibernation, else the first of its parts that is not True.
    fn ready(&mut self, hibernation: Hibernation) -> (Status, String, String) {
        let parts: &[&str] = if self.static_backend {
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
            .find(|t| !c::is_true(&self.s.conditions, t))
            .copied();
        let reason_of = |s: &ClusterStatus, t: &str| {
            c::get(&s.conditions, t)
                .map(|c| (c.reason.clone(), c.message.clone()))
                .unwrap_or_default()
        };
        let (ready, reason, msg) = match (first_not_ready, &self.o.failure) {
            _ if self.deleting() => (
                Status::False,
                "Deleting".to_string(),
                "the cluster is being deleted".to_string(),
            ),
            (_, Some(f)) => (Status::False, "Failed".to_string(), f.clone()),
            _ if hibernation != Hibernation::Awake => {
                let (reason, message) = reason_of(&self.s, c::HIBERNATED);
                (Status::False, reason, message)
            }
            (None, None) => (
                Status::True,
                "Ready".to_string(),
                "the cluster is ready".to_string(),
            ),
            (Some(t), None) => {
                let (reason, message) = reason_of(&self.s, t);
                (Status::False, reason, format!("{t}: {message}"))
            }
        };
        self.set(c::READY, ready, &reason, msg.clone());
        (ready, reason, msg)
    }

    /// The phase, from the conditions just set.
    fn phase(&mut self, ready: Status, hibernation: Hibernation) {
        let accepted = self.i.validation.is_ok();
        let refused = matches!(self.i.validation, Err(Problem::Refused(_)));
        let o = self.o;
        self.s.phase = Some(if self.deleting() {
            ClusterPhase::Deleting
        } else if refused {
            // Valid against the offering, but what realises it was refused: a provider-side
            // problem or a feature the backend cannot serve; it stays so until the spec or
            // provider changes.
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
        } else if !o.exists && !self.static_backend {
            ClusterPhase::Pending
        } else if matches!(
            self.old.phase,
            Some(ClusterPhase::Ready | ClusterPhase::Updating | ClusterPhase::Hibernated)
        ) {
            // Updating only once the cluster has been Ready; before that it is being provisioned.
            ClusterPhase::Updating
        } else {
            ClusterPhase::Provisioning
        });
    }

    /// kstatus (Flux `wait`/health checks, cli-utils): `Reconciling` while kaas works towards
    /// the spec, `Stalled` when it cannot get there without a change. Both are always present
    /// (False when not applicable), so a steady cluster's conditions do not churn.
    fn kstatus(
        &mut self,
        (ready, reason, msg): (Status, String, String),
        hibernation: Hibernation,
    ) {
        let stalled = matches!(
            self.s.phase,
            Some(ClusterPhase::Invalid | ClusterPhase::Failed)
        );
        // A hibernated cluster is where its spec asks: nothing is in progress.
        let reconciling = !stalled && ready != Status::True && hibernation != Hibernation::Reached;
        let (st_reason, st_msg) = if stalled {
            (reason.as_str(), msg.clone())
        } else {
            ("NotStalled", String::new())
        };
        self.set(c::STALLED, Status::from(stalled), st_reason, st_msg);
        let (rc_reason, rc_msg) = if reconciling {
            (reason.as_str(), msg)
        } else {
            ("Reconciled", String::new())
        };
        self.set(c::RECONCILING, Status::from(reconciling), rc_reason, rc_msg);
    }
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
