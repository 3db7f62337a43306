//! `kaas plan`: what a change to a `Cluster` will do before it is written. Pure — the stored
//! cluster (with its status: the version it runs), the proposed one, the `Provider` and the clock
//! are parameters — so the CLI, the REST API and the GUI show the same plan.
//!
//! A [`Plan`] says:
//!
//! - the spec diff, field path by field path (`spec.workers[name=default].count: 3 → 5`; lists of
//!   named items are matched by name);
//! - whether the change is refused, with the field errors of admission (the CRD's schema and CEL
//!   rules with the stored cluster as the old object, then the provider's offering judged against
//!   the version the cluster runs — [`kaas_validate`]);
//! - the version change and its upgrade steps, one minor at a time (providers allow no skipping);
//! - whether a version change rolls now, waits for the maintenance window or is held
//!   ([`crate::maintenance::decide`], the operator's decision);
//! - what rolls, in order: on an upgrade the control plane first, then each pool, one after the
//!   other; a pool whose machines change (flavor, version, ClusterClass, zones) rolls all its
//!   machines, a count change only adds or removes machines, labels and taints change in place;
//! - the rendered objects (Cluster API, or the hosted control plane) created, changed or deleted,
//!   with the fields that change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use k8s_openapi::jiff::Timestamp;
use kaas_api::provider::BackendType;
use kaas_api::{Cluster, KubeVersion, Provider};
use kaas_validate::offering::{Pool, Size};
use kaas_validate::{FieldErrors, Resolved};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::maintenance::{Rollout, decide};

/// What a change to a cluster will do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `namespace/name` of the cluster.
    pub cluster: String,
    /// The provider the change was judged against.
    pub provider: String,
    /// True when nothing changes: no spec change, no object change, nothing rolls.
    pub no_change: bool,
    /// True when the change would not be admitted (see `errors`); nothing else is planned then.
    pub refused: bool,
    /// Why it is refused, field by field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
    /// Things to know (deprecated versions, a stored cluster that no longer validates, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The spec diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec_changes: Vec<FieldChange>,
    /// The Kubernetes version change, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionChange>,
    /// When the version change rolls out (changes other than the version roll at once).
    pub when: When,
    /// What rolls, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<RolloutStep>,
    /// The rendered objects that change, in apply order (deleted ones last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectChange>,
}

/// One field error of admission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanError {
    /// Field path, e.g. `spec.workers[0].flavor`.
    pub path: String,
    /// `Required`, `Invalid`, `NotSupported`, `Duplicate`, `Forbidden`, `UnknownField`.
    pub kind: String,
    /// What is wrong.
    pub message: String,
    /// What would be valid, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

/// One changed field: absent `old` means added, absent `new` removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Field path; list items with a name as `[name=…]`.
    pub path: String,
    /// The value now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// What happens to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Written for the first time.
    Created,
    /// Changed in place (server-side apply).
    Changed,
    /// Removed.
    Deleted,
}

/// A rendered object that changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (none for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Created, changed or deleted.
    pub action: Action,
    /// The fields that change (changed objects only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// A Kubernetes version change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionChange {
    /// The version the cluster runs (`status.kubernetesVersion`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// The version rolled out so far (`status.targetVersion`).
    pub from: String,
    /// The version the proposed spec resolves to (or asks for, when refused).
    pub to: String,
    /// The upgrade path, one minor at a time; more than one step is refused — apply them in turn.
    pub steps: Vec<UpgradeStep>,
}

/// One upgrade step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStep {
    /// From this version.
    pub from: String,
    /// To this version (the newest usable patch of the minor, `1.37.x` when none is offered).
    pub to: String,
    /// What rolls in this step, in order: `control plane`, then `pool NAME` for each pool.
    pub order: Vec<String>,
}

/// When the version change rolls out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct When {
    /// `now`, `waitForWindow` or `hold`.
    pub decision: Decision,
    /// The maintenance window (`START+DURATION`, UTC), when the spec has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The operator's rollout decision ([`Rollout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Rolls out as soon as it is written.
    #[default]
    Now,
    /// The version change waits for the maintenance window.
    WaitForWindow,
    /// The version change is held: automatic patch updates are off.
    Hold,
}

/// Which part of the cluster a rollout step is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Part {
    /// The control plane.
    ControlPlane,
    /// A worker pool.
    Pool,
}

/// What happens to a part's machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// Every machine is replaced by a new one (rolling update).
    Roll,
    /// Machines are added or removed; none is replaced.
    Scale,
    /// Labels or taints change on the existing machines; none is replaced.
    InPlace,
    /// A new pool: its machines are created.
    Create,
    /// A removed pool: its machines are deleted.
    Delete,
}

/// One step of the rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// 1, 2, …: the control plane before the pools, pools one after the other in spec order.
    pub order: u32,
    /// Control plane or pool.
    pub part: Part,
    /// `control-plane` or the pool's name.
    pub name: String,
    /// What happens.
    pub change: Change,
    /// Machines before (autoscaled pools: the lower bound).
    pub machines_before: i32,
    /// Machines after (autoscaled pools: the lower bound).
    pub machines_after: i32,
    /// Machines replaced (`roll`), added (positive) or removed (negative) (`scale`, `create`,
    /// `delete`).
    pub machines: i32,
    /// Why, e.g. `flavor small → medium`.
    pub reasons: Vec<String>,
    /// The MachineDeployments of a pool (one per zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_deployments: Vec<String>,
    /// The rolling update's maxSurge when rendered (none: Cluster API's default, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<String>,
    /// The rolling update's maxUnavailable when rendered (none: Cluster API's default, 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
}

/// `cluster` as the API server would receive it (no status, no managed fields).
fn object(cluster: &Cluster) -> Value {
    let mut c = cluster.clone();
    c.status = None;
    c.metadata.managed_fields = None;
    let mut v = serde_json::to_value(&c).unwrap_or_default();
    v["apiVersion"] = format!("{}/{}", kaas_api::GROUP, kaas_api::VERSION).into();
    v["kind"] = "Cluster".into();
    v
}

/// The operator's admission (`kaas_validate::admission::admit`: schema and CEL with transition
/// rules against `current`, then the offering of `provider`, the version judged against what
/// `current` runs) of `proposed`.
fn admit(
    proposed: &Cluster,
    current: Option<&Cluster>,
    provider: &Provider,
) -> Result<Resolved, FieldErrors> {
    use kaas_validate::admission::{Admitted, Providers, admit};
    match admit(
        &object(proposed),
        current,
        Providers::Known(std::slice::from_ref(provider)),
    ) {
        Ok(Admitted {
            resolved: Some(r), ..
        }) => Ok(r),
        Ok(_) => {
            let mut e = FieldErrors::default();
            e.push(kaas_validate::FieldError::new(
                kaas_validate::ErrorKind::Invalid,
                "spec.provider",
                format!(
                    "names another provider than {:?}, which the plan is for",
                    provider.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
            Err(e)
        }
        Err(rejected) => Err(rejected.errors),
    }
}

fn errors(errs: &FieldErrors) -> Vec<PlanError> {
    errs.0
        .iter()
        .map(|e| PlanError {
            path: e.path.clone(),
            kind: serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            message: e.message.clone(),
            allowed: e.allowed.clone(),
        })
        .collect()
}

fn status_version(cluster: &Cluster, running: bool) -> Option<KubeVersion> {
    let s = cluster.status.as_ref()?;
    let v = if running {
        s.kubernetes_version.as_deref()
    } else {
        s.target_version.as_deref()
    };
    v?.parse().ok()
}

/// `resolved` with the version (and its ClusterClass) set to `version`, when the provider offers
/// it: what the operator keeps rendering while a version change waits.
fn keep_version(resolved: &Resolved, provider: &Provider, version: &KubeVersion) -> Resolved {
    let mut keep = resolved.clone();
    if let Some(offer) = provider.spec.kubernetes_versions.iter().find(|o| {
        o.version
            .parse::<KubeVersion>()
            .is_ok_and(|v| v == *version)
    }) {
        keep.version = Some(version.clone());
        keep.cluster_class = Some(offer.stack.cluster_class.clone());
        keep.stack_release = offer.stack.release.clone();
    }
    keep
}

/// Plans the change from `current` (the stored cluster, with its status) to `proposed` at
/// `provider`, as of `now` (the maintenance window).
pub fn plan(current: &Cluster, proposed: &Cluster, provider: &Provider, now: Timestamp) -> Plan {
    let mut proposed = proposed.clone();
    if proposed.metadata.name.is_none() {
        proposed.metadata.name = current.metadata.name.clone();
    }
    if proposed.metadata.namespace.is_none() {
        proposed.metadata.namespace = current.metadata.namespace.clone();
    }
    // The version change is judged against what the stored cluster runs.
    proposed.status = current.status.clone();
    let mut plan = Plan {
        cluster: format!(
            "{}/{}",
            proposed.metadata.namespace.as_deref().unwrap_or_default(),
            proposed.metadata.name.as_deref().unwrap_or_default()
        ),
        provider: provider.metadata.name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let spec = |c: &Cluster| serde_json::to_value(&c.spec).unwrap_or_default();
    diff(
        "spec",
        Some(&spec(current)),
        Some(&spec(&proposed)),
        &mut plan.spec_changes,
    );

    // Admission, as the operator's: schema and CEL (transition rules against the stored
    // cluster), then the offering.
    let new = admit(&proposed, Some(current), provider);

    let from = status_version(current, false);
    let old = match kaas_validate::validate(current, provider) {
        Ok(r) => Some(match &from {
            Some(v) => keep_version(&r, provider, v),
            None => r,
        }),
        Err(e) => {
            plan.warnings.push(format!(
                "the stored cluster does not validate against provider {:?} now ({e}); the objects it has are not compared",
                plan.provider
            ));
            None
        }
    };

    let new = match new {
        Ok(r) => r,
        Err(e) => {
            plan.refused = true;
            plan.errors = errors(&e);
            plan.version = requested_version_change(current, &proposed, provider);
            return plan;
        }
    };
    plan.warnings.extend(new.warnings.iter().cloned());

    // The operator's decision: a version change that waits keeps the current version rendered.
    let mut effective = new.clone();
    if let (Some(cur), Some(target)) = (&from, &new.version) {
        let spec_version = proposed
            .spec
            .kubernetes
            .as_ref()
            .and_then(|k| k.version.as_deref());
        let maintenance = proposed.spec.maintenance.as_ref();
        let rollout = decide(
            Some(cur),
            target,
            spec_version,
            new.forced_update,
            maintenance,
            now,
        );
        plan.when.window = maintenance
            .and_then(|m| m.window.as_ref())
            .map(|w| format!("{}+{}", w.start, w.duration));
        plan.when.decision = match rollout {
            Rollout::Now => Decision::Now,
            Rollout::WaitForWindow => Decision::WaitForWindow,
            Rollout::Hold => Decision::Hold,
        };
        if rollout != Rollout::Now {
            effective = keep_version(&new, provider, cur);
            plan.when.message = Some(match rollout {
                Rollout::WaitForWindow => format!(
                    "{} → {} is a patch update: it waits for the maintenance window{}; other changes roll now",
                    cur.release(),
                    target.release(),
                    plan.when
                        .window
                        .as_ref()
                        .map(|w| format!(" ({w} UTC)"))
                        .unwrap_or_default()
                ),
                _ => format!(
                    "{} → {} is held: automatic patch updates are off (spec.maintenance.autoUpdatePatch)",
                    cur.release(),
                    target.release()
                ),
            });
        }
    }
    if let (Some(cur), Some(target)) = (&from, &new.version)
        && cur != target
    {
        plan.version = Some(VersionChange {
            running: status_version(current, true).map(|v| v.release()),
            from: cur.release(),
            to: target.release(),
            steps: steps(
                cur,
                target,
                provider,
                &new.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            ),
        });
    }

    if let Some(old) = &old {
        plan.rollout = rollout(old, &effective);
        let (before, after) = (
            objects(current, old, provider),
            objects(&proposed, &effective, provider),
        );
        plan.objects = object_changes(&before, &after);
    }
    plan.no_change = plan.spec_changes.is_empty()
        && plan.objects.is_empty()
        && plan.rollout.is_empty()
        && plan.version.is_none();
    plan
}

/// The version change a refused spec asks for (its upgrade path), when it names a version.
fn requested_version_change(
    current: &Cluster,
    proposed: &Cluster,
    provider: &Provider,
) -> Option<VersionChange> {
    let from = status_version(current, false)?;
    let want: KubeVersion = proposed
        .spec
        .kubernetes
        .as_ref()?
        .version
        .as_deref()?
        .parse()
        .ok()?;
    if want.branch() <= from.branch() {
        return None;
    }
    let to = newest_patch(provider, want.branch()).unwrap_or(want);
    let pools: Vec<String> = proposed
        .spec
        .workers
        .iter()
        .flatten()
        .map(|w| w.name.clone())
        .collect();
    Some(VersionChange {
        running: status_version(current, true).map(|v| v.release()),
        from: from.release(),
        to: to.release(),
        steps: steps(&from, &to, provider, &pools),
    })
}

fn newest_patch(provider: &Provider, branch: (u64, u64)) -> Option<KubeVersion> {
    use kaas_api::provider::Classification;
    provider
        .spec
        .kubernetes_versions
        .iter()
        .filter(|o| {
            matches!(
                o.classification,
                Classification::Supported | Classification::Deprecated
            )
        })
        .filter_map(|o| o.version.parse::<KubeVersion>().ok())
        .filter(|v| v.branch() == branch)
        .max()
}

/// Minor by minor from `from` to `to`; each step rolls the control plane, then each pool.
fn steps(
    from: &KubeVersion,
    to: &KubeVersion,
    provider: &Provider,
    pools: &[String],
) -> Vec<UpgradeStep> {
    let order: Vec<String> = std::iter::once("control plane".to_string())
        .chain(pools.iter().map(|p| format!("pool {p}")))
        .collect();
    let mut out = Vec::new();
    let mut at = from.clone();
    if from.major != to.major {
        return vec![UpgradeStep {
            from: from.release(),
            to: to.release(),
            order,
        }];
    }
    for minor in from.minor + 1..=to.minor {
        let next = if minor == to.minor {
            to.clone()
        } else {
            newest_patch(provider, (to.major, minor)).unwrap_or(KubeVersion {
                major: to.major,
                minor,
                patch: kaas_api::version::Patch::Latest,
                pre: None,
                build: None,
            })
        };
        out.push(UpgradeStep {
            from: at.release(),
            to: next.release(),
            order: order.clone(),
        });
        at = next;
    }
    if out.is_empty() && from != to {
        // A patch update.
        out.push(UpgradeStep {
            from: from.release(),
            to: to.release(),
            order,
        });
    }
    out
}

fn machines(size: Size) -> i32 {
    match size {
        Size::Fixed(n) => n,
        Size::Autoscale { min, .. } => min,
    }
}

fn size_text(size: Size) -> String {
    match size {
        Size::Fixed(n) => n.to_string(),
        Size::Autoscale { min, max } => format!("{min}..{max} (autoscaled)"),
    }
}

fn machine_deployments(pool: &Pool) -> Vec<String> {
    if pool.zones.is_empty() {
        vec![crate::names::machine_deployment(&pool.name, None)]
    } else {
        pool.zones
            .iter()
            .map(|z| crate::names::machine_deployment(&pool.name, Some(z)))
            .collect()
    }
}

/// What rolls from `old` to `new`, control plane first, then the pools in spec order (removed
/// pools last).
fn rollout(old: &Resolved, new: &Resolved) -> Vec<RolloutStep> {
    let ver = |r: &Resolved| r.version.as_ref().map(KubeVersion::release);
    let mut common = Vec::new();
    if ver(old) != ver(new) {
        common.push(format!(
            "version {} → {}",
            ver(old).unwrap_or_default(),
            ver(new).unwrap_or_default()
        ));
    }
    if old.cluster_class != new.cluster_class {
        common.push(format!(
            "ClusterClass {} → {}",
            old.cluster_class.as_deref().unwrap_or("-"),
            new.cluster_class.as_deref().unwrap_or("-")
        ));
    }
    let mut steps = Vec::new();
    let mut push = |mut s: RolloutStep| {
        s.order = steps.len() as u32 + 1;
        steps.push(s);
    };
    let step = |part, name: &str, change, before, after, reasons, mds| RolloutStep {
        order: 0,
        part,
        name: name.to_string(),
        change,
        machines_before: before,
        machines_after: after,
        machines: match change {
            Change::Roll => after,
            Change::InPlace => 0,
            _ => after - before,
        },
        reasons,
        machine_deployments: mds,
        max_surge: None,
        max_unavailable: None,
    };

    // Control plane.
    let (ocp, ncp) = (&old.control_plane, &new.control_plane);
    let mut reasons = common.clone();
    if ocp.flavor != ncp.flavor {
        reasons.push(format!("flavor {} → {}", ocp.flavor, ncp.flavor));
    }
    if ocp.zones != ncp.zones {
        reasons.push(format!("zones {:?} → {:?}", ocp.zones, ncp.zones));
    }
    if !reasons.is_empty() {
        push(step(
            Part::ControlPlane,
            "control-plane",
            Change::Roll,
            ocp.replicas,
            ncp.replicas,
            reasons,
            Vec::new(),
        ));
    } else if ocp.replicas != ncp.replicas {
        push(step(
            Part::ControlPlane,
            "control-plane",
            Change::Scale,
            ocp.replicas,
            ncp.replicas,
            vec![format!("replicas {} → {}", ocp.replicas, ncp.replicas)],
            Vec::new(),
        ));
    }

    // Pools.
    for p in &new.pools {
        let Some(o) = old.pools.iter().find(|o| o.name == p.name) else {
            push(step(
                Part::Pool,
                &p.name,
                Change::Create,
                0,
                machines(new.size_now(p)),
                vec![format!(
                    "new pool of {} {}",
                    size_text(new.size_now(p)),
                    p.flavor
                )],
                machine_deployments(p),
            ));
            continue;
        };
        let mut reasons = common.clone();
        if o.flavor != p.flavor {
            reasons.push(format!("flavor {} → {}", o.flavor, p.flavor));
        }
        if o.zones != p.zones {
            reasons.push(format!("zones {:?} → {:?}", o.zones, p.zones));
        }
        let (before, after) = (machines(old.size_now(o)), machines(new.size_now(p)));
        let sleep = match (old.hibernated, new.hibernated) {
            (false, true) => " (hibernation)",
            (true, false) => " (waking from hibernation)",
            _ => "",
        };
        if !reasons.is_empty() {
            if old.size_now(o) != new.size_now(p) {
                reasons.push(format!(
                    "size {} → {}",
                    size_text(old.size_now(o)),
                    size_text(new.size_now(p))
                ));
            }
            push(step(
                Part::Pool,
                &p.name,
                Change::Roll,
                before,
                after,
                reasons,
                machine_deployments(p),
            ));
        } else if old.size_now(o) != new.size_now(p) {
            push(step(
                Part::Pool,
                &p.name,
                Change::Scale,
                before,
                after,
                vec![format!(
                    "size {} → {}{sleep}",
                    size_text(old.size_now(o)),
                    size_text(new.size_now(p))
                )],
                machine_deployments(p),
            ));
        } else if o.labels != p.labels || o.taints != p.taints {
            let mut reasons = Vec::new();
            if o.labels != p.labels {
                reasons.push("node labels".to_string());
            }
            if o.taints != p.taints {
                reasons.push("node taints".to_string());
            }
            push(step(
                Part::Pool,
                &p.name,
                Change::InPlace,
                before,
                after,
                reasons,
                machine_deployments(p),
            ));
        }
    }
    for o in &old.pools {
        if !new.pools.iter().any(|p| p.name == o.name) {
            push(step(
                Part::Pool,
                &o.name,
                Change::Delete,
                machines(old.size_now(o)),
                0,
                vec!["pool removed".to_string()],
                machine_deployments(o),
            ));
        }
    }
    steps
}

fn typed<T: kube::Resource<DynamicType = ()> + Serialize>(o: &T) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["apiVersion"] = T::api_version(&()).into();
    v["kind"] = T::kind(&()).into();
    v
}

/// The objects the operator writes for `cluster` resolved as `resolved`.
fn objects(cluster: &Cluster, resolved: &Resolved, provider: &Provider) -> Vec<Value> {
    match provider.spec.backend.kind {
        BackendType::ClusterAPI => crate::render(cluster, resolved)
            .map(|r| r.objects())
            .unwrap_or_default(),
        BackendType::Hosted => {
            crate::hosted::render_hosted(cluster, resolved, resolved.hosted_runtime.as_deref())
                .map(|r| vec![typed(&r.namespace), typed(&r.control_plane)])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

type Key = (String, String, Option<String>, String);

fn key(v: &Value) -> Key {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    (
        s("/apiVersion").unwrap_or_default(),
        s("/kind").unwrap_or_default(),
        s("/metadata/namespace"),
        s("/metadata/name").unwrap_or_default(),
    )
}

fn object_changes(before: &[Value], after: &[Value]) -> Vec<ObjectChange> {
    let old: BTreeMap<Key, &Value> = before.iter().map(|v| (key(v), v)).collect();
    let new_keys: BTreeSet<Key> = after.iter().map(key).collect();
    let change = |k: Key, action, fields| ObjectChange {
        api_version: k.0,
        kind: k.1,
        namespace: k.2,
        name: k.3,
        action,
        fields,
    };
    let mut out = Vec::new();
    for v in after {
        let k = key(v);
        match old.get(&k) {
            None => out.push(change(k, Action::Created, Vec::new())),
            Some(o) => {
                let mut fields = Vec::new();
                diff("", Some(o), Some(v), &mut fields);
                if !fields.is_empty() {
                    out.push(change(k, Action::Changed, fields));
                }
            }
        }
    }
    for v in before {
        let k = key(v);
        if !new_keys.contains(&k) {
            out.push(change(k, Action::Deleted, Vec::new()));
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn named(items: &[Value]) -> Option<Vec<(&str, &Value)>> {
    let out: Vec<(&str, &Value)> = items
        .iter()
        .map(|i| i.get("name").and_then(Value::as_str).map(|n| (n, i)))
        .collect::<Option<_>>()?;
    let unique: BTreeSet<&str> = out.iter().map(|(n, _)| *n).collect();
    (unique.len() == out.len()).then_some(out)
}

/// The field changes from `old` to `new` under `path`; objects field by field, lists of named
/// items item by item (`[name=…]`), other lists as a whole.
pub fn diff(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    if absent(old) && absent(new) {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                diff(&join(path, k), o.get(k), n.get(k), out);
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if o != n => match (named(o), named(n)) {
            (Some(on), Some(nn)) => {
                for (name, ov) in &on {
                    let nv = nn.iter().find(|(m, _)| m == name).map(|(_, v)| *v);
                    diff(&format!("{path}[name={name}]"), Some(ov), nv, out);
                }
                for (name, nv) in &nn {
                    if !on.iter().any(|(m, _)| m == name) {
                        diff(&format!("{path}[name={name}]"), None, Some(nv), out);
                    }
                }
            }
            _ => out.push(FieldChange {
                path: path.to_string(),
                old: old.cloned(),
                new: new.cloned(),
            }),
        },
        _ if old == new => {}
        _ => out.push(FieldChange {
            path: path.to_string(),
            old: old.filter(|v| !v.is_null()).cloned(),
            new: new.filter(|v| !v.is_null()).cloned(),
        }),
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

impl Plan {
    /// The plan for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Plan for cluster {} at provider {}",
            self.cluster, self.provider
        );
        if self.refused {
            let _ = writeln!(s, "REFUSED: the change would not be admitted:");
            for e in &self.errors {
                let _ = write!(s, "  {}: {}", e.path, e.message);
                if !e.allowed.is_empty() {
                    let _ = write!(s, " (offered: {})", e.allowed.join(", "));
                }
                s.push('\n');
            }
        } else if self.no_change {
            let _ = writeln!(s, "No change: nothing is written, nothing rolls.");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if !self.spec_changes.is_empty() {
            let _ = writeln!(s, "\nSpec changes:");
            for c in &self.spec_changes {
                let _ = writeln!(
                    s,
                    "  {}: {} → {}",
                    c.path,
                    show(c.old.as_ref()),
                    show(c.new.as_ref())
                );
            }
        }
        if let Some(v) = &self.version {
            let _ = write!(s, "\nVersion: {} → {}", v.from, v.to);
            if let Some(r) = &v.running
                && *r != v.from
            {
                let _ = write!(s, " (running {r})");
            }
            s.push('\n');
            if v.steps.len() > 1 {
                let _ = writeln!(
                    s,
                    "  {} steps, one minor at a time (apply each, wait for Ready, then the next):",
                    v.steps.len()
                );
            }
            for (i, st) in v.steps.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  step {}: {} → {}: {}",
                    i + 1,
                    st.from,
                    st.to,
                    st.order.join(", then ")
                );
            }
        }
        if self.refused {
            return s;
        }
        let _ = match (&self.when.decision, &self.when.message) {
            (Decision::Now, _) if self.no_change => Ok(()),
            (Decision::Now, _) => writeln!(s, "\nWhen: now"),
            (Decision::WaitForWindow, m) => writeln!(
                s,
                "\nWhen: waits for the maintenance window: {}",
                m.as_deref().unwrap_or_default()
            ),
            (Decision::Hold, m) => {
                writeln!(s, "\nWhen: held: {}", m.as_deref().unwrap_or_default())
            }
        };
        if !self.rollout.is_empty() {
            let _ = writeln!(s, "\nRollout, in this order:");
            for r in &self.rollout {
                let what = match r.part {
                    Part::ControlPlane => "control plane".to_string(),
                    Part::Pool => format!("pool {}", r.name),
                };
                let how = match r.change {
                    Change::Roll => format!("rolls all {} machines", r.machines),
                    Change::Scale if r.machines >= 0 => format!(
                        "adds {} machines ({} → {}), none rolls",
                        r.machines, r.machines_before, r.machines_after
                    ),
                    Change::Scale => format!(
                        "removes {} machines ({} → {}), none rolls",
                        -r.machines, r.machines_before, r.machines_after
                    ),
                    Change::InPlace => "updated in place, none rolls".to_string(),
                    Change::Create => format!("created with {} machines", r.machines),
                    Change::Delete => format!("deleted with its {} machines", -r.machines),
                };
                let _ = write!(s, "  {}. {what}: {how} ({})", r.order, r.reasons.join(", "));
                if r.change == Change::Roll && r.part == Part::Pool {
                    let _ = write!(
                        s,
                        "; rolling update maxSurge {}, maxUnavailable {}",
                        r.max_surge.as_deref().unwrap_or("1 (Cluster API default)"),
                        r.max_unavailable
                            .as_deref()
                            .unwrap_or("0 (Cluster API default)")
                    );
                }
                s.push('\n');
            }
        }
        if !self.objects.is_empty() {
            let _ = writeln!(s, "\nObjects:");
            for o in &self.objects {
                let action = match o.action {
                    Action::Created => "create",
                    Action::Changed => "change",
                    Action::Deleted => "delete",
                };
                let ns = o
                    .namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default();
                let _ = writeln!(s, "  {action} {} {ns}{}", o.kind, o.name);
                for c in &o.fields {
                    let _ = writeln!(
                        s,
                        "    {}: {} → {}",
                        c.path,
                        show(c.old.as_ref()),
                        show(c.new.as_ref())
                    );
                }
            }
        }
        s
    }
}

/// Plans the creation of `proposed` at `provider` (the GUI's create preview): admission as for
/// a change (schema and CEL without an old object, then the offering), the whole spec as added
/// fields, the control plane and each pool created with their machines, every rendered object
/// created. `when` is `now`: a new cluster waits for no maintenance window.
pub fn plan_create(proposed: &Cluster, provider: &Provider) -> Plan {
    let mut proposed = proposed.clone();
    proposed.status = None;
    let mut plan = Plan {
        cluster: format!(
            "{}/{}",
            proposed.metadata.namespace.as_deref().unwrap_or_default(),
            proposed.metadata.name.as_deref().unwrap_or_default()
        ),
        provider: provider.metadata.name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let spec = serde_json::to_value(&proposed.spec).unwrap_or_default();
    diff(
        "spec",
        Some(&Value::Object(Default::default())),
        Some(&spec),
        &mut plan.spec_changes,
    );
    let new = match admit(&proposed, None, provider) {
        Ok(r) => r,
        Err(e) => {
            plan.refused = true;
            plan.errors = errors(&e);
            return plan;
        }
    };
    plan.warnings.extend(new.warnings.iter().cloned());
    let mut push = |part, name: &str, machines: i32, reasons: Vec<String>, mds: Vec<String>| {
        plan.rollout.push(RolloutStep {
            order: plan.rollout.len() as u32 + 1,
            part,
            name: name.to_string(),
            change: Change::Create,
            machines_before: 0,
            machines_after: machines,
            machines,
            reasons,
            machine_deployments: mds,
            max_surge: None,
            max_unavailable: None,
        });
    };
    if provider.spec.backend.kind == BackendType::ClusterAPI {
        let cp = &new.control_plane;
        let version = new
            .version
            .as_ref()
            .map(|v| format!(" {}", v.release()))
            .unwrap_or_default();
        push(
            Part::ControlPlane,
            "control-plane",
            cp.replicas,
            vec![format!(
                "new control plane of {} {}{version}",
                cp.replicas, cp.flavor
            )],
            Vec::new(),
        );
    }
    for p in &new.pools {
        push(
            Part::Pool,
            &p.name,
            machines(new.size_now(p)),
            vec![format!(
                "new pool of {} {}",
                size_text(new.size_now(p)),
                p.flavor
            )],
            machine_deployments(p),
        );
    }
    plan.objects = object_changes(&[], &objects(&proposed, &new, provider));
    plan
}
