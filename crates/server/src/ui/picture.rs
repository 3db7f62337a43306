//! A picture of one cluster on its page: server-rendered inline SVG (no script, no framework).
//! The control plane and each worker pool are boxes; inside, one square per machine, in a
//! column per zone, coloured by the machine's state; what is rolling (an upgrade, a scale, a
//! deletion) is written on the box, machines still on the old version are outlined. Everything
//! comes from what the cluster page already read with the user's identity: the SCS `Cluster`
//! and the Cluster API machines of the diagnosis. Where machines are not visible (hosted or
//! imported clusters, or not readable) the squares come from the status' counts. maud escapes
//! every text and attribute, and every element is closed, so the SVG is also well-formed XML.

use kaas_api::Cluster;
use kaas_api::conditions as c;
use kube::ResourceExt;
use maud::{Markup, html};

/// Label of the control plane's machines.
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// Label of a worker machine: its MachineDeployment.
const DEPLOYMENT_LABEL: &str = "cluster.x-k8s.io/deployment-name";
/// Label of a MachineDeployment of a ClusterClass topology: the topology's name for it.
const TOPOLOGY_DEPLOYMENT_LABEL: &str = "topology.cluster.x-k8s.io/deployment-name";

/// State of one machine, as drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    NotReady,
    Provisioning,
    Deleting,
    Failed,
    Unknown,
}

impl State {
    pub(crate) const ALL: [State; 6] = [
        State::Running,
        State::NotReady,
        State::Provisioning,
        State::Deleting,
        State::Failed,
        State::Unknown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::NotReady => "not ready",
            State::Provisioning => "provisioning",
            State::Deleting => "deleting",
            State::Failed => "failed",
            State::Unknown => "unknown",
        }
    }

    /// CSS class (`m-running`, …) and the fill colour (an attribute, so the colours also hold
    /// where the style sheet does not reach, e.g. a saved SVG).
    pub(crate) fn class(self) -> &'static str {
        match self {
            State::Running => "m-running",
            State::NotReady => "m-notready",
            State::Provisioning => "m-provisioning",
            State::Deleting => "m-deleting",
            State::Failed => "m-failed",
            State::Unknown => "m-unknown",
        }
    }

    pub(crate) fn fill(self) -> &'static str {
        match self {
            State::Running => "#1a7f37",
            State::NotReady => "#bc4c00",
            State::Provisioning => "#d4a72c",
            State::Deleting => "#8c959f",
            State::Failed => "#cf222e",
            State::Unknown => "#d0d7de",
        }
    }
}

/// Which box a machine belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    ControlPlane,
    Pool(String),
    Other,
}

/// Where a cluster stands with hibernation (`spec.hibernation.enabled`, the phase and the
/// `Hibernated` condition); `None` of [`Hibernation::of`]: awake and not asked to hibernate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hibernation {
    /// Asked, not reached yet: the pools are going to zero nodes.
    Hibernating,
    /// Asked and reached.
    Hibernated,
    /// Reached, but no longer asked: the pools are coming back.
    Waking,
}

impl Hibernation {
    pub(crate) fn of(cluster: &Cluster) -> Option<Hibernation> {
        let asked = cluster.spec.hibernation.as_ref().is_some_and(|h| h.asked());
        let reached = cluster.status.as_ref().is_some_and(|s| {
            s.phase == Some(kaas_api::cluster::ClusterPhase::Hibernated)
                || s.conditions
                    .iter()
                    .any(|x| x.type_ == c::HIBERNATED && x.status == "True")
        });
        match (asked, reached) {
            (true, true) => Some(Hibernation::Hibernated),
            (true, false) => Some(Hibernation::Hibernating),
            (false, true) => Some(Hibernation::Waking),
            (false, false) => None,
        }
    }

    /// CSS class and words.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Hibernation::Hibernating => "hibernating",
            Hibernation::Hibernated => "hibernated",
            Hibernation::Waking => "waking up",
        }
    }

    pub(crate) fn class(self) -> &'static str {
        match self {
            Hibernation::Hibernating => "hibernating",
            Hibernation::Hibernated => "hibernated",
            Hibernation::Waking => "waking",
        }
    }
}

/// What the picture needs of one Cluster API machine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MachineFact {
    pub name: String,
    pub owner: Owner,
    pub zone: Option<String>,
    pub version: Option<String>,
    pub state: State,
}

/// What the diagnosis read of the cluster's Cluster API objects, as far as the picture needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observed {
    /// The machines; `None` when they were not read (not visible to the user, no Cluster API
    /// objects, or the read failed).
    pub machines: Option<Vec<MachineFact>>,
    /// The control plane object's replicas, when it was read.
    pub control_plane_replicas: Option<i32>,
}

/// What the picture needs of the diagnosis' inputs.
pub(crate) fn observed(i: &kaas_diagnose::Inputs) -> Observed {
    Observed {
        machines: machines(i),
        control_plane_replicas: i
            .control_plane
            .ok()
            .and_then(|k| k.as_ref())
            .map(|k| k.spec.replicas.unwrap_or(1)),
    }
}

fn machines(i: &kaas_diagnose::Inputs) -> Option<Vec<MachineFact>> {
    let ms = i.machines.ok()?;
    let mds: &[_] = i.machine_deployments.ok().map_or(&[], |v| v.as_slice());
    let pool_of_md = |md_name: &str| -> Option<String> {
        let md = mds.iter().find(|m| m.name_any() == md_name)?;
        let l = md.labels();
        l.get(kaas_render::LABEL_POOL)
            .or_else(|| l.get(TOPOLOGY_DEPLOYMENT_LABEL))
            .cloned()
    };
    let mut out: Vec<MachineFact> = ms
        .iter()
        .map(|m| {
            let labels = m.labels();
            let owner = if labels.contains_key(CONTROL_PLANE_LABEL) {
                Owner::ControlPlane
            } else if let Some(p) = labels.get(kaas_render::LABEL_POOL) {
                Owner::Pool(p.clone())
            } else if let Some(p) = labels.get(DEPLOYMENT_LABEL).and_then(|d| pool_of_md(d)) {
                Owner::Pool(p)
            } else {
                Owner::Other
            };
            let st = m.status.as_ref();
            let phase = st.and_then(|s| s.phase.as_ref()).map(|p| format!("{p:?}"));
            let failure = st
                .and_then(|s| s.deprecated.as_ref())
                .and_then(|d| d.v1beta1.as_ref())
                .and_then(|v| v.failure_message.as_deref())
                .is_some_and(|m| !m.is_empty());
            let not_ready = st
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
            let state = machine_state(
                phase.as_deref(),
                failure,
                m.metadata.deletion_timestamp.is_some(),
                not_ready,
            );
            MachineFact {
                name: m.name_any(),
                owner,
                zone: m
                    .spec
                    .failure_domain
                    .clone()
                    .or_else(|| st.and_then(|s| s.failure_domain.clone())),
                version: m.spec.version.clone(),
                state,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Some(out)
}

/// A machine's state from its phase (Cluster API's names), a failure message, a deletion
/// timestamp and a `Ready=False` condition — as `kaas diagnose` judges machines.
pub(crate) fn machine_state(
    phase: Option<&str>,
    failure: bool,
    deleting: bool,
    not_ready: bool,
) -> State {
    match phase {
        _ if failure => State::Failed,
        Some("Failed") => State::Failed,
        _ if deleting => State::Deleting,
        Some("Deleting" | "Deleted") => State::Deleting,
        Some("Running") if not_ready => State::NotReady,
        Some("Running") => State::Running,
        Some("Unknown") => State::Unknown,
        _ => State::Provisioning,
    }
}

/// One square.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dot {
    /// Machine name; empty for a square from the status' counts.
    pub name: String,
    pub zone: Option<String>,
    pub state: State,
    /// Runs another version than the one being rolled out.
    pub outdated: bool,
}

/// One box: the control plane or a worker pool.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Group {
    /// `control-plane` or `pool-<name>` (the box's id).
    pub id: String,
    pub title: String,
    pub desired: i32,
    pub ready: Option<i32>,
    /// Zone columns, in order.
    pub zones: Vec<String>,
    pub dots: Vec<Dot>,
    /// The squares are the status' counts, not machines.
    pub from_counts: bool,
    /// Said instead of the count when the count is not known.
    pub note: Option<String>,
    /// What is rolling in this box (`upgrading to v1.36.3`, `scaling to 3`, …).
    pub rolling: Vec<String>,
    /// Hibernated: no nodes (a pool) or stopped (a hosted control plane); drawn greyed.
    pub hibernated: bool,
}

/// The whole picture.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Picture {
    pub name: String,
    pub groups: Vec<Group>,
    /// What is rolling for the cluster as a whole.
    pub rolling: Vec<String>,
    /// Where the cluster stands with hibernation.
    pub hibernation: Option<Hibernation>,
}

fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

fn condition_true(cluster: &Cluster, t: &str) -> Option<bool> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .map(|x| x.status == "True")
}

impl Picture {
    /// The picture of `cluster` with what was read of its Cluster API objects (where machines
    /// are not visible, the squares come from the status' counts).
    pub(crate) fn of(cluster: &Cluster, observed: &Observed) -> Picture {
        let st = cluster.status.clone().unwrap_or_default();
        let deleting = cluster.metadata.deletion_timestamp.is_some();
        let target = st.target_version.clone();
        let upgrading = match (&target, &st.kubernetes_version) {
            (Some(t), Some(v)) => !same_version(t, v),
            (Some(_), None) => condition_true(cluster, c::VERSION_CURRENT) == Some(false),
            _ => false,
        };
        let mut rolling = Vec::new();
        if deleting {
            rolling.push("being deleted".to_string());
        }
        if upgrading && let Some(t) = &target {
            rolling.push(format!("upgrading to {t}"));
        }
        let hibernation = Hibernation::of(cluster);
        let hibernated = hibernation == Some(Hibernation::Hibernated);
        match hibernation {
            Some(Hibernation::Hibernating) => {
                rolling.push("hibernating: every pool going to zero nodes".into())
            }
            Some(Hibernation::Waking) => rolling.push("waking up".into()),
            _ => {}
        }
        let outdated = |m: &MachineFact| match (&target, &m.version) {
            (Some(t), Some(v)) => !same_version(t, v),
            _ => false,
        };
        let dots_of = |ms: &[&MachineFact]| -> Vec<Dot> {
            ms.iter()
                .map(|m| Dot {
                    name: m.name.clone(),
                    zone: m.zone.clone(),
                    state: m.state,
                    outdated: outdated(m),
                })
                .collect()
        };
        let all: &[MachineFact] = observed.machines.as_deref().unwrap_or_default();
        let mut groups = Vec::new();

        // Control plane.
        let cp_spec = cluster.spec.control_plane.clone().unwrap_or_default();
        let cp_machines: Vec<&MachineFact> = all
            .iter()
            .filter(|m| m.owner == Owner::ControlPlane)
            .collect();
        let cp_known = observed.control_plane_replicas.or(cp_spec.replicas);
        let cp_desired = cp_known.unwrap_or_else(|| {
            cp_machines
                .iter()
                .filter(|m| m.state != State::Deleting)
                .count()
                .max(1) as i32
        });
        let cp_ready = condition_true(cluster, c::CONTROL_PLANE_READY);
        let mut cp = Group {
            id: "control-plane".into(),
            title: "Control plane".into(),
            desired: cp_desired,
            ready: None,
            zones: cp_spec.zones.clone().unwrap_or_default(),
            dots: dots_of(&cp_machines),
            from_counts: cp_machines.is_empty(),
            note: None,
            rolling: Vec::new(),
            hibernated: false,
        };
        if cp.from_counts {
            let state = match cp_ready {
                Some(true) => State::Running,
                _ if deleting => State::Deleting,
                _ => State::Provisioning,
            };
            let ready = if state == State::Running {
                cp_desired
            } else {
                0
            };
            cp.dots = counted(cp_desired, ready, state);
            if cp_known.is_some() {
                cp.ready = Some(ready);
            } else {
                // How many replicas the provider runs is not known: one square for all.
                cp.note = Some(
                    if state == State::Running {
                        "available"
                    } else {
                        "not available yet"
                    }
                    .into(),
                );
            }
        } else {
            cp.ready = Some(
                cp_machines
                    .iter()
                    .filter(|m| m.state == State::Running)
                    .count() as i32,
            );
        }
        // No machines to see and not available while hibernated: a hosted control plane,
        // stopped with its data.
        if hibernated && cp.from_counts && cp_ready != Some(true) {
            cp.hibernated = true;
            cp.dots.clear();
            cp.ready = None;
            cp.note = Some("stopped (hibernated)".into());
        }
        finish(&mut cp, upgrading, target.as_deref());
        groups.push(cp);

        // Worker pools: the spec's, with the status' counts and the machines of each.
        let spec_pools = cluster.spec.workers.clone().unwrap_or_default();
        let mut names: Vec<String> = spec_pools.iter().map(|p| p.name.clone()).collect();
        for w in &st.workers {
            if !names.contains(&w.name) {
                names.push(w.name.clone());
            }
        }
        for name in names {
            let spec = spec_pools.iter().find(|p| p.name == name);
            let status = st.workers.iter().find(|w| w.name == name);
            // Hibernated: zero nodes, whatever size the spec keeps for waking.
            let desired = if hibernated {
                0
            } else {
                status
                    .map(|s| s.desired)
                    .or_else(|| spec.and_then(|p| p.count.or(p.min_count)))
                    .unwrap_or(0)
            };
            let ready = status.map(|s| s.ready);
            let mine: Vec<&MachineFact> = all
                .iter()
                .filter(|m| m.owner == Owner::Pool(name.clone()))
                .collect();
            let mut g = Group {
                id: format!("pool-{name}"),
                title: format!("Pool {name}"),
                desired,
                ready,
                zones: spec.and_then(|p| p.zones.clone()).unwrap_or_default(),
                dots: dots_of(&mine),
                from_counts: mine.is_empty(),
                note: None,
                rolling: Vec::new(),
                hibernated: false,
            };
            if hibernated && g.from_counts {
                g.hibernated = true;
                g.dots.clear();
                g.ready = None;
                g.note = Some("hibernated: 0 nodes".into());
            } else if g.from_counts {
                let r = ready.unwrap_or(0).min(desired);
                let rest = if deleting {
                    State::Deleting
                } else {
                    State::Provisioning
                };
                g.dots = counted(desired, r, rest);
            }
            if hibernated && g.dots.iter().all(|d| d.state == State::Deleting) {
                g.hibernated = true;
            }
            let pool_outdated = match (status.and_then(|s| s.version.as_deref()), &target) {
                (Some(v), Some(t)) => !same_version(v, t),
                _ => false,
            };
            finish(&mut g, upgrading || pool_outdated, target.as_deref());
            groups.push(g);
        }

        // Machines of no known box (e.g. a pool removed from the spec, still draining).
        let others: Vec<&MachineFact> = all.iter().filter(|m| m.owner == Owner::Other).collect();
        if !others.is_empty() {
            let mut g = Group {
                id: "other".into(),
                title: "Other machines".into(),
                desired: 0,
                ready: None,
                zones: Vec::new(),
                dots: dots_of(&others),
                from_counts: false,
                note: None,
                rolling: Vec::new(),
                hibernated: false,
            };
            finish(&mut g, false, None);
            groups.push(g);
        }
        Picture {
            name: cluster.name_any(),
            groups,
            rolling,
            hibernation,
        }
    }
}

/// `desired` squares from counts: `ready` running, the others in state `rest`.
fn counted(desired: i32, ready: i32, rest: State) -> Vec<Dot> {
    (0..desired.max(0))
        .map(|i| Dot {
            name: String::new(),
            zone: None,
            state: if i < ready { State::Running } else { rest },
            outdated: false,
        })
        .collect()
}

/// Zones seen on machines join the box's columns; what is rolling is written on the box.
fn finish(g: &mut Group, upgrading: bool, target: Option<&str>) {
    for d in &g.dots {
        if let Some(z) = &d.zone
            && !g.zones.contains(z)
        {
            g.zones.push(z.clone());
        }
    }
    let outdated = g.dots.iter().filter(|d| d.outdated).count();
    if let Some(t) = target
        && (outdated > 0 || (upgrading && g.from_counts))
    {
        g.rolling.push(if outdated > 0 {
            format!("upgrading to {t}: {outdated} on the old version")
        } else {
            format!("upgrading to {t}")
        });
    }
    let live = g.dots.iter().filter(|d| d.state != State::Deleting).count() as i32;
    // (During an upgrade, a machine more or less than desired is the rollout's surge.)
    if g.id != "other" && !g.from_counts && outdated == 0 && live != g.desired {
        g.rolling.push(format!("scaling to {}", g.desired));
    } else if g.from_counts
        && !g.hibernated
        && let Some(r) = g.ready
        && r != g.desired
    {
        g.rolling.push(if r < g.desired {
            "coming up".to_string()
        } else {
            format!("scaling to {}", g.desired)
        });
    }
    let deleting = g
        .dots
        .iter()
        .filter(|d| d.state == State::Deleting && !d.name.is_empty())
        .count();
    if deleting > 0 {
        g.rolling.push(format!("{deleting} being removed"));
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing.

const WIDTH: i32 = 880;
const MARGIN: i32 = 10;
const PAD: i32 = 12;
const DOT: i32 = 20;
const STEP: i32 = 26;
const HEADER: i32 = 28;
const ZONE_LABEL: i32 = 18;
const GAP: i32 = 12;
const LEGEND: i32 = 30;

/// The columns of a box: (zone label, its squares). Squares without a zone form a column of
/// their own (`no zone`) when the box has zones, else the only column.
fn columns(g: &Group) -> Vec<(Option<String>, Vec<&Dot>)> {
    let mut cols: Vec<(Option<String>, Vec<&Dot>)> = g
        .zones
        .iter()
        .map(|z| (Some(z.clone()), Vec::new()))
        .collect();
    let mut none = Vec::new();
    for d in &g.dots {
        match d
            .zone
            .as_ref()
            .and_then(|z| cols.iter().position(|(c, _)| c.as_ref() == Some(z)))
        {
            Some(i) => cols[i].1.push(d),
            None => none.push(d),
        }
    }
    if !none.is_empty() || cols.is_empty() {
        let label = (!cols.is_empty()).then(|| "no zone".to_string());
        cols.push((label, none));
    }
    cols
}

fn box_height(g: &Group) -> i32 {
    let cols = columns(g);
    let inner = WIDTH - 2 * MARGIN - 2 * PAD;
    let col_w = inner / cols.len().max(1) as i32;
    let per_row = ((col_w - 4) / STEP).max(1) as usize;
    let rows = cols
        .iter()
        .map(|(_, ds)| ds.len().div_ceil(per_row).max(1))
        .max()
        .unwrap_or(1) as i32;
    let labels = if cols.iter().any(|(l, _)| l.is_some()) {
        ZONE_LABEL
    } else {
        0
    };
    HEADER + labels + rows * STEP + PAD / 2
}

/// `2/3 ready`, or the note where the count is not known.
fn count_text(g: &Group) -> String {
    match (&g.note, g.ready) {
        (Some(n), _) => n.clone(),
        (None, Some(r)) => format!("{r}/{} ready", g.desired),
        (None, None) if g.from_counts => format!("{} wanted", g.desired),
        (None, None) if g.dots.len() == 1 => "1 machine".into(),
        (None, None) => format!("{} machines", g.dots.len()),
    }
}

fn group_svg(g: &Group, y: i32) -> Markup {
    let x = MARGIN;
    let w = WIDTH - 2 * MARGIN;
    let h = box_height(g);
    let cols = columns(g);
    let col_w = (w - 2 * PAD) / cols.len().max(1) as i32;
    let per_row = ((col_w - 4) / STEP).max(1) as usize;
    let labels = cols.iter().any(|(l, _)| l.is_some());
    let dots_y = y + HEADER + if labels { ZONE_LABEL } else { 0 };
    let count = count_text(g);
    let rolling = !g.rolling.is_empty();
    html! {
        g class={ "group" @if rolling { " rolling" } @if g.hibernated { " hibernated" } } id={ "picture-" (g.id) } data-desired=(g.desired) {
            rect class="box" x=(x) y=(y) width=(w) height=(h) rx="6" fill=(if g.hibernated { "#eaeef2" } else { "#f6f8fa" }) stroke=(if rolling { "#9a6700" } else if g.hibernated { "#8c959f" } else { "#d0d7de" }) stroke-width=(if rolling { "2" } else { "1" }) stroke-dasharray=(if g.hibernated { "6 4" } else { "none" }) {}
            text class="title" x=(x + PAD) y=(y + 19) font-size="14" font-weight="600" fill=(if g.hibernated { "#59636e" } else { "#1f2328" }) { (g.title) }
            text class="count" x=(x + w - PAD) y=(y + 19) font-size="12" text-anchor="end" fill="#59636e" {
                (count) @if g.from_counts && !g.hibernated { " (from the status; no machines seen)" }
            }
            @if rolling {
                text class="rolling" x=(x + PAD + 8 * g.title.chars().count() as i32 + 16) y=(y + 19) font-size="12" fill="#9a6700" { "↻ " (g.rolling.join(", ")) }
            }
            @for (ci, (label, dots)) in cols.iter().enumerate() {
                @let cx = x + PAD + ci as i32 * col_w;
                @if let Some(l) = label {
                    text class="zone" x=(cx) y=(y + HEADER + 10) font-size="11" fill="#59636e" { (l) }
                }
                @for (i, d) in dots.iter().enumerate() {
                    @let dx = cx + (i % per_row) as i32 * STEP;
                    @let dy = dots_y + (i / per_row) as i32 * STEP;
                    rect class={ "machine " (d.state.class()) @if d.outdated { " outdated" } } data-state=(d.state.as_str()) x=(dx) y=(dy) width=(DOT) height=(DOT) rx="3" fill=(d.state.fill()) stroke=(if d.outdated { "#0b3d63" } else { "none" }) stroke-width="2" stroke-dasharray=(if d.outdated { "4 2" } else { "none" }) {
                        title {
                            @if d.name.is_empty() { "node (from the status' counts)" } @else { "Machine " (d.name) }
                            ": " (d.state.as_str())
                            @if let Some(z) = &d.zone { ", zone " (z) }
                            @if d.outdated { ", old version" }
                        }
                    }
                }
            }
        }
    }
}

impl Picture {
    /// The picture as inline SVG (well-formed XML; every text escaped).
    pub(crate) fn svg(&self) -> Markup {
        let mut y = MARGIN;
        let mut placed = Vec::new();
        let asleep = self.hibernation == Some(Hibernation::Hibernated);
        if !self.rolling.is_empty() || asleep {
            y += 22;
        }
        for g in &self.groups {
            placed.push((g, y));
            y += box_height(g) + GAP;
        }
        let legend_y = y + 4;
        let height = legend_y + LEGEND;
        let label = format!(
            "Cluster {}: {}",
            self.name,
            self.groups
                .iter()
                .map(|g| format!("{} {}", g.title, count_text(g)))
                .collect::<Vec<_>>()
                .join("; ")
        );
        html! {
            svg class="picture" id="picture" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height) role="img" aria-label=(label) font-family="system-ui, sans-serif" {
                title { (label) }
                @if asleep {
                    text class="hibernation" id="picture-hibernation" x=(MARGIN) y=(MARGIN + 14) font-size="13" font-weight="600" fill="#59636e" {
                        "☾ hibernated: no worker nodes; wake it up to run workloads again"
                        @if !self.rolling.is_empty() { " · ↻ " (self.rolling.join(", ")) }
                    }
                } @else if !self.rolling.is_empty() {
                    text class="rolling" id="picture-rolling" x=(MARGIN) y=(MARGIN + 14) font-size="13" font-weight="600" fill="#9a6700" { "↻ " (self.rolling.join(", ")) }
                }
                @for (g, gy) in &placed { (group_svg(g, *gy)) }
                g class="legend" {
                    @for (i, s) in State::ALL.iter().enumerate() {
                        @let lx = MARGIN + i as i32 * 118;
                        rect class={ "machine " (s.class()) } x=(lx) y=(legend_y) width="14" height="14" rx="2" fill=(s.fill()) {}
                        text x=(lx + 20) y=(legend_y + 12) font-size="12" fill="#1f2328" { (s.as_str()) }
                    }
                    @let lx = MARGIN + State::ALL.len() as i32 * 118;
                    rect x=(lx) y=(legend_y) width="14" height="14" rx="2" fill="#ffffff" stroke="#0b3d63" stroke-width="2" stroke-dasharray="4 2" {}
                    text x=(lx + 20) y=(legend_y + 12) font-size="12" fill="#1f2328" { "old version" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal well-formedness check of XML: tags nest and close, attribute values are quoted
    /// and hold no raw `<` or `&` other than entities, text holds no raw `<` or stray `&`.
    fn well_formed(xml: &str) -> Result<usize, String> {
        fn entity_ok(s: &str) -> bool {
            let mut rest = s;
            while let Some(at) = rest.find('&') {
                let tail = &rest[at + 1..];
                let Some(end) = tail.find(';') else {
                    return false;
                };
                let name = &tail[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || name.strip_prefix('#').is_some_and(|n| {
                        n.strip_prefix('x').map_or_else(
                            || n.bytes().all(|b| b.is_ascii_digit()),
                            |h| h.bytes().all(|b| b.is_ascii_hexdigit()),
                        ) && !n.is_empty()
                    });
                if !ok {
                    return false;
                }
                rest = &tail[end + 1..];
            }
            true
        }
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = xml;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            if !entity_ok(text) {
                return Err(format!("bad text {text:?}"));
            }
            let after = &rest[lt + 1..];
            // Find the end of the tag, skipping quoted attribute values.
            let mut quote = None;
            let mut end = None;
            for (i, ch) in after.char_indices() {
                match (quote, ch) {
                    (None, '"' | '\'') => quote = Some(ch),
                    (Some(q), ch) if ch == q => quote = None,
                    (Some(_), '<') => return Err(format!("raw < in an attribute: {after:.60}")),
                    (None, '>') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("unterminated tag")?;
            let tag = &after[..end];
            if !entity_ok(tag) {
                return Err(format!("bad entity in tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("").to_string();
                if name.is_empty() {
                    return Err("empty tag".into());
                }
                stack.push(name);
                elements += 1;
            } else {
                elements += 1;
            }
            rest = &after[end + 1..];
        }
        if !stack.is_empty() {
            return Err(format!("unclosed: {stack:?}"));
        }
        if !entity_ok(rest) {
            return Err("bad trailing text".into());
        }
        Ok(elements)
    }

    fn cluster(v: serde_json::Value) -> Cluster {
        serde_json::from_value(v).unwrap()
    }

    fn fact(name: &str, owner: Owner, zone: &str, version: &str, state: State) -> MachineFact {
        MachineFact {
            name: name.into(),
            owner,
            zone: (!zone.is_empty()).then(|| zone.to_string()),
            version: Some(version.into()),
            state,
        }
    }

    fn upgrading_cluster() -> Cluster {
        cluster(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "web<&>", "namespace": "t", "generation": 2},
            "spec": {"provider": {"name": "dev"}, "controlPlane": {"replicas": 3},
                "workers": [
                    {"name": "w", "count": 3, "zones": ["zone-a", "zone-b"]},
                    {"name": "gpu\"<x>", "count": 1}
                ]},
            "status": {"phase": "Updating", "kubernetesVersion": "v1.35.4", "targetVersion": "v1.36.3",
                "workers": [{"name": "w", "desired": 3, "ready": 2, "version": "v1.35.4"},
                            {"name": "gpu\"<x>", "desired": 1, "ready": 1}],
                "conditions": [{"type": "Ready", "status": "False", "reason": "Updating", "message": "", "lastTransitionTime": "2026-11-29T10:00:00Z"}]}
        }))
    }

    #[test]
    fn machine_states_follow_the_phase_as_diagnose_judges_them() {
        assert_eq!(
            machine_state(Some("Running"), false, false, false),
            State::Running
        );
        assert_eq!(
            machine_state(Some("Running"), false, false, true),
            State::NotReady
        );
        assert_eq!(
            machine_state(Some("Provisioned"), false, false, false),
            State::Provisioning
        );
        assert_eq!(
            machine_state(None, false, false, false),
            State::Provisioning
        );
        assert_eq!(
            machine_state(Some("Running"), false, true, false),
            State::Deleting
        );
        assert_eq!(
            machine_state(Some("Running"), true, true, false),
            State::Failed
        );
        assert_eq!(
            machine_state(Some("Failed"), false, false, false),
            State::Failed
        );
    }

    #[test]
    fn the_picture_has_one_box_per_pool_machines_per_zone_and_an_upgrade_marker() {
        let c = upgrading_cluster();
        let ms = vec![
            fact(
                "cp-1",
                Owner::ControlPlane,
                "zone-a",
                "v1.36.3",
                State::Running,
            ),
            fact(
                "cp-2",
                Owner::ControlPlane,
                "zone-b",
                "v1.35.4",
                State::Running,
            ),
            fact(
                "cp-3",
                Owner::ControlPlane,
                "zone-c",
                "v1.36.3",
                State::Provisioning,
            ),
            fact(
                "w-1",
                Owner::Pool("w".into()),
                "zone-a",
                "v1.35.4",
                State::Running,
            ),
            fact(
                "w-2",
                Owner::Pool("w".into()),
                "zone-b",
                "v1.35.4",
                State::Failed,
            ),
            fact(
                "w-3",
                Owner::Pool("w".into()),
                "zone-b",
                "v1.35.4",
                State::Deleting,
            ),
            fact(
                "w-4",
                Owner::Pool("w".into()),
                "zone-a",
                "v1.36.3",
                State::Provisioning,
            ),
            fact(
                "w-5",
                Owner::Pool("w".into()),
                "zone-a",
                "v1.36.3",
                State::NotReady,
            ),
            fact("odd", Owner::Other, "", "v1.35.4", State::Unknown),
        ];
        let p = Picture::of(
            &c,
            &Observed {
                machines: Some(ms),
                control_plane_replicas: Some(3),
            },
        );
        let ids: Vec<&str> = p.groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["control-plane", "pool-w", "pool-gpu\"<x>", "other"]);
        assert_eq!(p.rolling, ["upgrading to v1.36.3"]);
        let cp = &p.groups[0];
        assert_eq!(cp.zones, ["zone-a", "zone-b", "zone-c"]);
        assert_eq!(cp.ready, Some(2));
        assert!(
            cp.rolling
                .iter()
                .any(|r| r == "upgrading to v1.36.3: 1 on the old version"),
            "{:?}",
            cp.rolling
        );
        let w = &p.groups[1];
        assert_eq!(w.zones, ["zone-a", "zone-b"]);
        assert_eq!(w.dots.len(), 5);
        // More machines than desired while old ones remain: the rollout's surge, not a scale.
        assert!(
            !w.rolling.iter().any(|r| r.starts_with("scaling")),
            "{:?}",
            w.rolling
        );
        assert!(
            w.rolling.iter().any(|r| r == "1 being removed"),
            "{:?}",
            w.rolling
        );
        // No machines visible for the second pool: squares from the status' counts.
        let gpu = &p.groups[2];
        assert!(gpu.from_counts);
        assert_eq!(gpu.dots.len(), 1);

        let svg = p.svg().into_string();
        let elements = well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(elements > 20, "{svg}");
        assert!(svg.starts_with("<svg class=\"picture\""), "{svg}");
        // One box per group.
        assert_eq!(svg.matches("<rect class=\"box\"").count(), 4, "{svg}");
        assert!(svg.contains(r#"id="picture-control-plane""#), "{svg}");
        assert!(svg.contains(r#"id="picture-pool-w""#), "{svg}");
        // Text is escaped, in text and in attributes.
        assert!(
            !svg.contains("web<&>") && svg.contains("web&lt;&amp;&gt;"),
            "{svg}"
        );
        assert!(svg.contains("Pool gpu&quot;&lt;x&gt;"), "{svg}");
        assert!(
            svg.contains(r#"id="picture-pool-gpu&quot;&lt;x&gt;""#),
            "{svg}"
        );
        // A colour per state (class and fill), machines in zone columns, the old version outlined.
        for (state, n) in [
            (State::Running, 3 + 1),
            (State::Failed, 1),
            (State::Deleting, 1),
            (State::Provisioning, 2),
            (State::NotReady, 1),
            (State::Unknown, 1),
        ] {
            let needle = format!("class=\"machine {}", state.class());
            // + 1: the legend.
            assert_eq!(svg.matches(&needle).count(), n + 1, "{state:?}: {svg}");
            assert!(svg.contains(&format!("fill=\"{}\"", state.fill())));
        }
        assert!(
            svg.contains("<title>Machine w-2: failed, zone zone-b, old version</title>"),
            "{svg}"
        );
        assert!(
            svg.contains(">zone-a</text>") && svg.contains(">zone-c</text>"),
            "{svg}"
        );
        assert!(svg.contains("↻ upgrading to v1.36.3</text>"), "{svg}");
        assert!(
            svg.contains(r#"class="group rolling" id="picture-pool-w""#),
            "{svg}"
        );
    }

    #[test]
    fn a_pool_short_of_machines_is_scaling() {
        let c = cluster(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t"},
            "spec": {"provider": {"name": "dev"}, "workers": [{"name": "w", "count": 3}]},
            "status": {"kubernetesVersion": "v1.36.3", "targetVersion": "v1.36.3",
                "workers": [{"name": "w", "desired": 3, "ready": 1}]}
        }));
        let ms = vec![
            fact("cp", Owner::ControlPlane, "", "v1.36.3", State::Running),
            fact(
                "w-1",
                Owner::Pool("w".into()),
                "",
                "v1.36.3",
                State::Running,
            ),
            fact(
                "w-2",
                Owner::Pool("w".into()),
                "",
                "v1.36.3",
                State::Provisioning,
            ),
        ];
        let p = Picture::of(
            &c,
            &Observed {
                machines: Some(ms),
                control_plane_replicas: None,
            },
        );
        assert!(p.rolling.is_empty(), "{:?}", p.rolling);
        assert!(p.groups[0].rolling.is_empty(), "{:?}", p.groups[0]);
        assert_eq!(p.groups[1].rolling, ["scaling to 3"]);
        let svg = p.svg().into_string();
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("↻ scaling to 3</text>"), "{svg}");
    }

    #[test]
    fn without_visible_machines_the_squares_come_from_the_status() {
        let c = cluster(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "t"},
            "spec": {"provider": {"name": "local"}, "workers": [{"name": "default", "count": 3}]},
            "status": {"phase": "Ready", "kubernetesVersion": "v1.36.3", "targetVersion": "v1.36.3",
                "workers": [{"name": "default", "desired": 3, "ready": 3, "version": "v1.36.3"}],
                "conditions": [{"type": "ControlPlaneReady", "status": "True", "reason": "Available", "message": "", "lastTransitionTime": "2026-11-29T10:00:00Z"}]}
        }));
        let p = Picture::of(&c, &Observed::default());
        assert!(p.rolling.is_empty());
        assert_eq!(p.groups.len(), 2);
        assert!(p.groups.iter().all(|g| g.rolling.is_empty()), "{p:?}");
        let svg = p.svg().into_string();
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(svg.matches("class=\"machine m-running\"").count(), 4 + 1);
        assert!(svg.contains("(from the status; no machines seen)"));
        // The provider decides the control plane's replicas: one square, no invented count.
        assert!(svg.contains(">available (from the status"), "{svg}");
        assert!(!svg.contains("↻"));
    }

    #[test]
    fn a_hibernated_cluster_has_empty_greyed_pools() {
        let hibernated = |enabled: bool, reached: bool| {
            cluster(json!({
                "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
                "metadata": {"name": "demo", "namespace": "t", "generation": 3},
                "spec": {"provider": {"name": "local"}, "hibernation": {"enabled": enabled},
                    "workers": [{"name": "default", "count": 3}, {"name": "auto", "minCount": 1, "maxCount": 4}]},
                "status": {"phase": if reached { "Hibernated" } else { "Updating" },
                    "observedGeneration": 3, "kubernetesVersion": "v1.36.3", "targetVersion": "v1.36.3",
                    "workers": [{"name": "default", "desired": 3, "ready": if reached { 0 } else { 3 }},
                                {"name": "auto", "desired": 1, "ready": 0}],
                    "conditions": [
                        {"type": "ControlPlaneReady", "status": "False", "reason": "Hibernated", "message": "", "lastTransitionTime": "2026-11-30T10:00:00Z"},
                        {"type": "Hibernated", "status": if reached { "True" } else { "False" }, "reason": if reached { "Hibernated" } else { "Hibernating" }, "message": "", "lastTransitionTime": "2026-11-30T10:00:00Z"}]}
            }))
        };
        let c = hibernated(true, true);
        assert_eq!(Hibernation::of(&c), Some(Hibernation::Hibernated));
        let p = Picture::of(&c, &Observed::default());
        assert!(p.groups.iter().all(|g| g.hibernated), "{p:?}");
        assert!(p.groups.iter().all(|g| g.dots.is_empty()), "{p:?}");
        assert!(p.groups.iter().all(|g| g.rolling.is_empty()), "{p:?}");
        let svg = p.svg().into_string();
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(
            svg.matches(r#"class="group hibernated""#).count(),
            3,
            "{svg}"
        );
        assert!(svg.contains(">hibernated: 0 nodes</text>"), "{svg}");
        assert!(svg.contains(">stopped (hibernated)</text>"), "{svg}");
        assert!(svg.contains(r#"id="picture-hibernation""#), "{svg}");
        assert!(!svg.contains("↻"), "{svg}");

        // On the way: the squares as the status counts them, and what happens written above.
        let going = hibernated(true, false);
        assert_eq!(Hibernation::of(&going), Some(Hibernation::Hibernating));
        let p = Picture::of(&going, &Observed::default());
        assert!(p.groups.iter().all(|g| !g.hibernated));
        assert_eq!(p.rolling, ["hibernating: every pool going to zero nodes"]);
        // Woken, the status still hibernated: waking up.
        let waking = hibernated(false, true);
        assert_eq!(Hibernation::of(&waking), Some(Hibernation::Waking));
        assert_eq!(
            Picture::of(&waking, &Observed::default()).rolling,
            ["waking up"]
        );
        let mut awake = hibernated(false, false);
        awake.spec.hibernation = None;
        assert_eq!(Hibernation::of(&awake), None);
    }

    #[test]
    fn the_checker_refuses_what_is_not_well_formed() {
        assert!(well_formed("<a><b></b></a>").is_ok());
        assert!(well_formed("<a><b></a>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
        assert!(well_formed("<a t=\"<\"></a>").is_err());
        assert!(well_formed("<a>").is_err());
    }
}
