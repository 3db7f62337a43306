//! The preview step of the GUI: a scale, upgrade or spec edit of a cluster first posts to
//! `/ui/clusters/{name}/preview`, which shows the plan of the change — the same pure
//! [`kaas_render::plan::plan`] the CLI's `kaas plan` and the REST API's `POST …/plan` use — and
//! what it costs in nodes before and after. Nothing is written then. The page's confirm button
//! posts the previewed spec with the stored cluster's `resourceVersion` to
//! `/ui/clusters/{name}/apply`: it is applied only when the cluster is still the one previewed
//! (else a clear refusal and a fresh preview), with the user's own credentials and the session's
//! CSRF token as every GUI form. "Still the one previewed": the same resourceVersion — or, since
//! the operator writes the status all the time, the same generation (no spec change in between)
//! and the very same plan (digest) planned again now; the write itself carries the
//! resourceVersion it was judged against, so the API server refuses one that lands in between.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use k8s_openapi::jiff::Timestamp;
use kaas_api::{Cluster, ClusterSpec, Provider};
use kaas_render::plan::{Action, Change, Decision, Part, Plan};
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{User, api_error_box, cluster_view, cost, enc, page};
use crate::api::{self, ScaleRequest};
use crate::error::{ApiError, FieldProblem};

/// A value of a plan for people (JSON, strings without quotes when simple).
fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// What happens to a part's machines, as `kaas plan` says it.
pub(crate) fn rollout_text(r: &kaas_render::plan::RolloutStep) -> String {
    match r.change {
        Change::Roll => format!("rolls all {} machines", r.machines),
        Change::Scale if r.machines >= 0 => format!(
            "adds {} machines ({} → {}), none rolls",
            r.machines, r.machines_before, r.machines_after
        ),
        Change::Scale => format!(
            "removes {} machines ({} → {}), none rolls",
            -r.machines, r.machines_before, r.machines_after
        ),
        Change::InPlace => "updated in place, none rolls".into(),
        Change::Create => format!("created with {} machines", r.machines),
        Change::Delete => format!("deleted with its {} machines", -r.machines),
    }
}

fn change_class(c: Change) -> &'static str {
    match c {
        Change::Roll => "roll",
        Change::Scale => "scale",
        Change::InPlace => "in-place",
        Change::Create => "create",
        Change::Delete => "delete",
    }
}

/// The plan as HTML (`#plan`): refusals with field paths, warnings, the spec diff, the version
/// change and its steps, when it rolls, what rolls in order, the objects that change.
pub(crate) fn plan_html(plan: &Plan) -> Markup {
    html! {
        section.plan id="plan" data-refused=(plan.refused) data-no-change=(plan.no_change) {
            h2 { "Plan" }
            @if plan.refused {
                div.error role="alert" id="plan-refused" {
                    p { strong { "Refused:" } " the change would not be admitted." }
                    ul { @for e in &plan.errors {
                        li data-path=(e.path) { code { (e.path) } ": " (e.message)
                            @if !e.allowed.is_empty() { " " small.hint { "(offered: " (e.allowed.join(", ")) ")" } } }
                    } }
                }
            } @else if plan.no_change {
                p.notice id="plan-no-change" { "No change: nothing is written, nothing rolls." }
            }
            @if !plan.warnings.is_empty() {
                ul.warnings id="plan-warnings" { @for w in &plan.warnings { li { "⚠ " (w) } } }
            }
            @if !plan.spec_changes.is_empty() {
                h3 { "Spec changes" }
                table.plan id="plan-spec" {
                    thead { tr { th { "Field" } th { "Now" } th {} th { "After" } } }
                    tbody { @for c in &plan.spec_changes {
                        tr data-path=(c.path) { td { code { (c.path) } } td.old { (show(c.old.as_ref())) } td.arrow { "→" } td.new { (show(c.new.as_ref())) } }
                    } }
                }
            }
            @if let Some(v) = &plan.version {
                h3 { "Version" }
                p id="plan-version" { strong { (v.from) " → " (v.to) }
                    @if let Some(r) = &v.running { @if *r != v.from { " " small.hint { "(running " (r) ")" } } } }
                @if v.steps.len() > 1 { p.hint { (v.steps.len()) " steps, one minor at a time: apply each, wait for Ready, then the next." } }
                ol id="plan-steps" { @for s in &v.steps { li { (s.from) " → " (s.to) ": " (s.order.join(", then ")) } } }
            }
            @if !plan.refused && !plan.no_change {
                p id="plan-when" data-decision=(match plan.when.decision { Decision::Now => "now", Decision::WaitForWindow => "waitForWindow", Decision::Hold => "hold" }) {
                    strong { "When: " }
                    @match plan.when.decision {
                        Decision::Now => { "now" },
                        Decision::WaitForWindow => { "waits for the maintenance window" @if let Some(w) = &plan.when.window { " (" (w) " UTC)" } },
                        Decision::Hold => { "held" },
                    }
                    @if let Some(m) = &plan.when.message { br; small.hint { (m) } }
                }
            }
            @if !plan.rollout.is_empty() {
                h3 { "Rollout, in this order" }
                ol.rollout id="plan-rollout" { @for r in &plan.rollout {
                    li class=(change_class(r.change)) data-part=(match r.part { Part::ControlPlane => "controlPlane", Part::Pool => "pool" }) data-name=(r.name) data-machines=(r.machines) {
                        strong { @match r.part { Part::ControlPlane => { "control plane" }, Part::Pool => { "pool " (r.name) } } }
                        ": " span.change { (rollout_text(r)) }
                        @if !r.reasons.is_empty() { " " small.hint { "(" (r.reasons.join(", ")) ")" } }
                        @if r.change == Change::Roll && r.part == Part::Pool {
                            br; small.hint { "rolling update maxSurge " (r.max_surge.as_deref().unwrap_or("1 (Cluster API default)")) ", maxUnavailable " (r.max_unavailable.as_deref().unwrap_or("0 (Cluster API default)")) }
                        }
                    }
                } }
            }
            @if !plan.objects.is_empty() {
                h3 { "Objects" }
                table.plan id="plan-objects" {
                    thead { tr { th { "Action" } th { "Kind" } th { "Name" } th { "Fields" } } }
                    tbody { @for o in &plan.objects {
                        @let action = match o.action { Action::Created => "create", Action::Changed => "change", Action::Deleted => "delete" };
                        tr class=(action) data-kind=(o.kind) {
                            td { span class={ "tag " (action) } { (action) } }
                            td { (o.kind) small.hint { " " (o.api_version) } }
                            td { @if let Some(ns) = &o.namespace { (ns) "/" } (o.name) }
                            td { @if !o.fields.is_empty() { ul.fields { @for f in &o.fields {
                                li { code { (f.path) } ": " (show(f.old.as_ref())) " → " (show(f.new.as_ref())) }
                            } } } }
                        }
                    } }
                }
            }
        }
    }
}

/// The preview form's fields: which change and its inputs.
#[derive(Deserialize, Default)]
pub(crate) struct PreviewForm {
    csrf: String,
    /// `scale`, `upgrade` or `edit`.
    change: String,
    #[serde(default)]
    pool: String,
    #[serde(default)]
    count: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    version: String,
    /// The spec as YAML (`edit`).
    #[serde(default)]
    spec: String,
}

fn field(path: &str, message: String) -> FieldProblem {
    FieldProblem {
        path: path.into(),
        message,
    }
}

/// The whole number of a form field (empty: `None`), or the field's problem.
fn number(v: &str, path: &str, problems: &mut Vec<FieldProblem>) -> Option<i32> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    match v.parse::<i32>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push(field(path, format!("{v:?} is not a whole number")));
            None
        }
    }
}

/// The cluster the form proposes, from the stored one.
fn proposed(current: &Cluster, f: &PreviewForm) -> Result<Cluster, ApiError> {
    let mut next = current.clone();
    match f.change.as_str() {
        "scale" => {
            let mut problems = Vec::new();
            let count = number(&f.count, "count", &mut problems);
            let min = number(&f.min, "minCount", &mut problems);
            let max = number(&f.max, "maxCount", &mut problems);
            if problems.is_empty() && count.is_none() && min.is_none() && max.is_none() {
                problems.push(field(
                    "count",
                    "give a node count, or the autoscaling bounds (min and max)".into(),
                ));
            }
            if !problems.is_empty() {
                return Err(ApiError::invalid("the scale request is invalid", problems));
            }
            let req = ScaleRequest {
                pool: f.pool.clone(),
                count: if min.is_some() || max.is_some() {
                    None
                } else {
                    count
                },
                min_count: min,
                max_count: max,
            };
            api::scale(&mut next, &req)?;
        }
        "upgrade" => {
            if f.version.trim().is_empty() {
                return Err(ApiError::invalid(
                    "the upgrade request is invalid",
                    vec![field("version", "choose a version".into())],
                ));
            }
            next.spec
                .kubernetes
                .get_or_insert_with(Default::default)
                .version = Some(f.version.trim().to_string());
        }
        "edit" => {
            let spec: ClusterSpec = serde_yaml::from_str(&f.spec).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                    .unwrap_or_default();
                ApiError::invalid(
                    "the spec is not valid YAML of a cluster spec",
                    vec![field("spec", format!("{e}{at}"))],
                )
            })?;
            next.spec = spec;
        }
        other => {
            return Err(ApiError::invalid(
                "unknown change",
                vec![field(
                    "change",
                    format!("{other:?} is not one of scale, upgrade, edit"),
                )],
            ));
        }
    }
    Ok(next)
}

/// The provider a cluster names, read with the user's credentials.
async fn provider_of(user: &User, c: &Cluster) -> Result<Provider, ApiError> {
    let name = c
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.name.clone())
        .unwrap_or_default();
    Ok(Api::<Provider>::all(user.client.clone()).get(&name).await?)
}

/// Plans off the async workers (validation and rendering are CPU-bound).
pub(crate) async fn plan_blocking(
    f: impl FnOnce() -> Plan + Send + 'static,
) -> Result<Plan, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "planning failed unexpectedly",
        )
    })
}

fn what(f_change: &str) -> &'static str {
    match f_change {
        "scale" => "Scale",
        "upgrade" => "Upgrade",
        _ => "Change",
    }
}

/// `POST /ui/clusters/{name}/preview`.
pub(crate) async fn preview(
    user: User,
    Path(name): Path<String>,
    Form(f): Form<PreviewForm>,
) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let ns = user.session.namespace.clone();
    let current = match Api::<Cluster>::namespaced(user.client.clone(), &ns)
        .get(&name)
        .await
    {
        Ok(c) => c,
        Err(e) => return super::failure_page(&user, &name, &ApiError::from(e)),
    };
    let next = match proposed(&current, &f) {
        Ok(n) => n,
        Err(e) => return cluster_view(&user, &name, None, Some(e)).await,
    };
    let provider = match provider_of(&user, &current).await {
        Ok(p) => p,
        Err(e) => return cluster_view(&user, &name, None, Some(e)).await,
    };
    preview_page(
        &user,
        &name,
        what(&f.change),
        &current,
        next,
        &provider,
        None,
    )
    .await
}

/// The preview page: the plan, the cost before and after, and — unless refused or empty — the
/// confirm form with the previewed spec and the stored cluster's resourceVersion.
async fn preview_page(
    user: &User,
    name: &str,
    what: &str,
    current: &Cluster,
    next: Cluster,
    provider: &Provider,
    notice: Option<Markup>,
) -> Response {
    let (c, n, p) = (current.clone(), next.clone(), provider.clone());
    let plan =
        match plan_blocking(move || kaas_render::plan::plan(&c, &n, &p, Timestamp::now())).await {
            Ok(p) => p,
            Err(e) => return cluster_view(user, name, None, Some(e)).await,
        };
    let before = cost::Cost::of(&current.spec, provider);
    let after = cost::Cost::of(&next.spec, provider);
    let spec_json = serde_json::to_string(&next.spec).unwrap_or_default();
    let rv = current.resource_version().unwrap_or_default();
    let generation = current.metadata.generation.unwrap_or_default().to_string();
    let digest = plan_digest(&plan);
    let status = if plan.refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = html! {
        @if let Some(n) = notice { (n) }
        p.hint { "Preview of a change to cluster " strong { (name) } " at provider " (plan.provider)
            ". Nothing has been written yet; the plan is what " code { "kaas plan" } " and " code { "POST …/plan" } " say." }
        (cost::html(&after, Some(&before)))
        (plan_html(&plan))
        div.actions {
            @if !plan.refused && !plan.no_change {
                form.inline method="post" action={ "/ui/clusters/" (name) "/apply" } id="confirm-form" {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    input type="hidden" name="resource_version" value=(rv);
                    input type="hidden" name="generation" value=(generation);
                    input type="hidden" name="plan" value=(digest);
                    input type="hidden" name="what" value=(what);
                    input type="hidden" name="spec" value=(spec_json);
                    button type="submit" id="confirm" { "Apply this change" }
                }
            }
            a.button.secondary href={ "/ui/clusters/" (name) } id="cancel" { @if plan.refused || plan.no_change { "← Back to the cluster" } @else { "Cancel" } }
        }
    };
    (
        status,
        page(&format!("{what} {name}: preview"), Some(user), body),
    )
        .into_response()
}

/// The confirm form: the previewed spec and the resourceVersion it was planned against.
#[derive(Deserialize)]
pub(crate) struct ApplyForm {
    csrf: String,
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    generation: String,
    /// [`plan_digest`] of the previewed plan.
    #[serde(default)]
    plan: String,
    #[serde(default)]
    what: String,
    spec: String,
}

/// `POST /ui/clusters/{name}/apply`: writes exactly the previewed spec, only onto the
/// resourceVersion it was planned against.
pub(crate) async fn apply(
    user: User,
    Path(name): Path<String>,
    Form(f): Form<ApplyForm>,
) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let ns = user.session.namespace.clone();
    let api = Api::<Cluster>::namespaced(user.client.clone(), &ns);
    let spec: ClusterSpec = match serde_json::from_str(&f.spec) {
        Ok(s) => s,
        Err(e) => {
            let e = ApiError::invalid(
                "the confirmed change is not a cluster spec",
                vec![field("spec", e.to_string())],
            );
            return cluster_view(&user, &name, None, Some(e)).await;
        }
    };
    let current = match api.get(&name).await {
        Ok(c) => c,
        Err(e) => return super::failure_page(&user, &name, &ApiError::from(e)),
    };
    let what = match f.what.as_str() {
        "Scale" | "Upgrade" => f.what.as_str(),
        _ => "Change",
    };
    let stored_rv = current.resource_version().unwrap_or_default();
    let mut next = current.clone();
    next.spec = spec;
    if f.resource_version.is_empty() {
        return stale(&user, &name, what, &current, next.spec, &f.resource_version).await;
    }
    if f.resource_version != stored_rv {
        // Written since the preview. Only the status (the operator reports all the time) and
        // the plan is still exactly the previewed one: go on; else refuse.
        let same_generation =
            f.generation == current.metadata.generation.unwrap_or_default().to_string();
        let same_plan = match provider_of(&user, &current).await {
            Ok(p) if same_generation => {
                let (c, n) = (current.clone(), next.clone());
                plan_blocking(move || kaas_render::plan::plan(&c, &n, &p, Timestamp::now()))
                    .await
                    .is_ok_and(|plan| !plan.refused && plan_digest(&plan) == f.plan)
            }
            _ => false,
        };
        if !same_plan {
            return stale(&user, &name, what, &current, next.spec, &f.resource_version).await;
        }
    }
    next.status = None;
    next.metadata.managed_fields = None;
    // The API server checks the resourceVersion too: a write in between is a 409, not lost.
    next.metadata.resource_version = Some(stored_rv.clone());
    let object = serde_json::to_value(&next).unwrap_or_default();
    let result = async {
        api::prevalidate(&user.client, object, Some(&current)).await?;
        let pp = PostParams {
            field_manager: Some(api::FIELD_MANAGER.into()),
            dry_run: false,
        };
        api.replace(&name, &pp, &next).await.map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(_) => Redirect::to(&format!(
            "/ui/clusters/{name}?done={}",
            enc(&format!(
                "{what} applied as previewed (the operator rolls it out now)."
            ))
        ))
        .into_response(),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let current = api.get(&name).await.unwrap_or(current);
            let previewed = next.spec.clone();
            stale(&user, &name, what, &current, previewed, &f.resource_version).await
        }
        Err(e) => cluster_view(&user, &name, None, Some(e)).await,
    }
}

/// A digest of a plan (SHA-256 of its JSON, hex): the confirm form's proof of what was shown.
fn plan_digest(plan: &Plan) -> String {
    let json = serde_json::to_vec(plan).unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, &json)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cluster changed since the preview: nothing is written; the same change is previewed
/// again against the cluster as it is now (409).
async fn stale(
    user: &User,
    name: &str,
    what: &str,
    current: &Cluster,
    previewed: ClusterSpec,
    previewed_rv: &str,
) -> Response {
    let msg = format!(
        "Not applied: cluster {name} changed since the preview (previewed at resourceVersion {}, it is now {}). \
         Someone or something else wrote it in between; applying the preview would overwrite that. \
         Below is the plan of the same change against the cluster as it is now — check it and confirm again.",
        if previewed_rv.is_empty() {
            "(none)"
        } else {
            previewed_rv
        },
        current.resource_version().unwrap_or_default()
    );
    let notice = html! { div.error role="alert" id="stale" data-status="409" { p { (msg) } } };
    let provider = match provider_of(user, current).await {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::CONFLICT,
                page(name, Some(user), html! { (notice) (api_error_box(&e)) }),
            )
                .into_response();
        }
    };
    let mut next = current.clone();
    next.spec = previewed;
    let mut res = preview_page(user, name, what, current, next, &provider, Some(notice)).await;
    *res.status_mut() = StatusCode::CONFLICT;
    res
}

/// The cluster's spec as YAML for the edit form.
pub(crate) fn spec_yaml(c: &Cluster) -> String {
    serde_yaml::to_string(&c.spec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t", "resourceVersion": "7"},
            "spec": {"provider": {"name": "dev"}, "kubernetes": {"version": "1.35.x"},
                     "workers": [{"name": "w", "count": 1}]},
        }))
        .unwrap()
    }

    fn form(change: &str, pairs: &[(&str, &str)]) -> PreviewForm {
        let mut f = PreviewForm {
            change: change.into(),
            ..Default::default()
        };
        for (k, v) in pairs {
            let v = v.to_string();
            match *k {
                "pool" => f.pool = v,
                "count" => f.count = v,
                "min" => f.min = v,
                "max" => f.max = v,
                "version" => f.version = v,
                "spec" => f.spec = v,
                _ => unreachable!(),
            }
        }
        f
    }

    #[test]
    fn bad_input_names_the_field() {
        let c = cluster();
        let e = proposed(&c, &form("scale", &[("pool", "w"), ("count", "three")])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "count");
        let e = proposed(&c, &form("scale", &[("pool", "w")])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "count");
        let e = proposed(&c, &form("scale", &[("pool", "x"), ("count", "2")])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "pool");
        let e = proposed(
            &c,
            &form("scale", &[("pool", "w"), ("min", "1"), ("max", "x")]),
        )
        .unwrap_err();
        assert_eq!(e.body.errors[0].path, "maxCount");
        let e = proposed(&c, &form("upgrade", &[])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "version");
        let e = proposed(&c, &form("edit", &[("spec", "workers: 3")])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "spec");
        let e = proposed(&c, &form("delete", &[])).unwrap_err();
        assert_eq!(e.body.errors[0].path, "change");
        // Autoscaling bounds replace the count.
        let n = proposed(
            &c,
            &form("scale", &[("pool", "w"), ("min", "1"), ("max", "4")]),
        )
        .unwrap();
        let w = &n.spec.workers.as_ref().unwrap()[0];
        assert_eq!(
            (w.count, w.min_count, w.max_count),
            (None, Some(1), Some(4))
        );
        let n = proposed(&c, &form("upgrade", &[("version", "1.36.x")])).unwrap();
        assert_eq!(
            n.spec.kubernetes.unwrap().version.as_deref(),
            Some("1.36.x")
        );
    }

    #[test]
    fn the_plan_of_a_new_cluster_creates_its_machines_and_objects() {
        let p: Provider =
            serde_yaml::from_str(include_str!("../../../../examples/provider-inmemory.yaml"))
                .unwrap();
        let mut c = cluster();
        c.spec.control_plane =
            Some(serde_json::from_value(serde_json::json!({"replicas": 3})).unwrap());
        let plan = kaas_render::plan::plan_create(&c, &p);
        assert!(!plan.refused && !plan.no_change, "{plan:?}");
        let h = plan_html(&plan).into_string();
        assert!(h.contains("created with 3 machines"), "{h}");
        assert!(h.contains("created with 1 machines"), "{h}");
        assert!(
            plan.objects.iter().all(|o| o.action == Action::Created),
            "{plan:?}"
        );
        assert!(plan.objects.iter().any(|o| o.kind == "Cluster"), "{plan:?}");
        // Refused: field paths, nothing planned.
        c.spec.control_plane =
            Some(serde_json::from_value(serde_json::json!({"replicas": 2})).unwrap());
        let plan = kaas_render::plan::plan_create(&c, &p);
        assert!(plan.refused, "{plan:?}");
        assert!(
            plan.errors
                .iter()
                .any(|e| e.path == "spec.controlPlane.replicas"),
            "{plan:?}"
        );
        assert!(plan.rollout.is_empty() && plan.objects.is_empty());
    }

    #[test]
    fn a_refused_plan_shows_field_paths_and_a_scale_its_machines() {
        let p: Provider =
            serde_yaml::from_str(include_str!("../../../../examples/provider-inmemory.yaml"))
                .unwrap();
        let mut c = cluster();
        c.status = Some(
            serde_json::from_value(
                serde_json::json!({"targetVersion": "v1.35.4", "kubernetesVersion": "v1.35.4"}),
            )
            .unwrap(),
        );
        let n = proposed(&c, &form("scale", &[("pool", "w"), ("count", "3")])).unwrap();
        let plan = kaas_render::plan::plan(&c, &n, &p, Timestamp::now());
        let h = plan_html(&plan).into_string();
        assert!(h.contains("adds 2 machines (1 → 3), none rolls"), "{h}");
        assert!(
            h.contains(r#"data-path="spec.workers[name=w].count""#),
            "{h}"
        );
        let n = proposed(&c, &form("edit", &[("spec", "provider: {name: dev}\nkubernetes: {version: 1.35.x}\nworkers: [{name: w, count: 1, flavor: m9.huge}]")])).unwrap();
        let plan = kaas_render::plan::plan(&c, &n, &p, Timestamp::now());
        assert!(plan.refused);
        let h = plan_html(&plan).into_string();
        assert!(
            h.contains(
                r#"<li data-path="spec.workers[0].flavor"><code>spec.workers[0].flavor</code>"#
            ),
            "{h}"
        );
        assert!(!h.contains("plan-rollout"), "{h}");
    }
}
