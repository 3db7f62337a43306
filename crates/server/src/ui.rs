//! The web GUI: server-rendered HTML (maud escapes everything it prints) with one small script
//! that refreshes live parts of a page. Users sign in with a token of the management cluster; the
//! session cookie is HttpOnly and SameSite=Strict, every form carries the session's CSRF token,
//! and every read and write is made with the user's own token. The cluster page draws the
//! cluster as inline SVG (`picture`) and lists its events (`events`); the compliance report is a
//! table (`compliance`). Every error under `/ui` is a page with its status and a link back.

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kaas_api::{Cluster, Provider};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{self, ScaleRequest};
use crate::error::{ApiError, FieldProblem};
use crate::session::{self, Session};
use crate::{AppState, cookie};

mod compliance;
mod cost;
mod events;
mod picture;
mod preview;

const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// GUI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/static/app.js", get(script))
        .route("/ui/static/style.css", get(style))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/", get(clusters_page))
        .route("/ui/new", get(new_page))
        .route("/ui/clusters", post(create))
        .route("/ui/clusters/{name}", get(cluster_page))
        .route("/ui/clusters/{name}/scale", post(scale))
        .route("/ui/clusters/{name}/upgrade", post(upgrade))
        .route("/ui/clusters/{name}/preview", post(preview::preview))
        .route("/ui/clusters/{name}/apply", post(preview::apply))
        .route("/ui/clusters/{name}/delete", post(delete))
        .route("/ui/clusters/{name}/hibernate", post(hibernate))
        .route("/ui/clusters/{name}/wake", post(wake))
        .route("/ui/clusters/{name}/kubeconfig", post(kubeconfig_request))
        .route("/ui/clusters/{name}/compliance", get(compliance_page))
        .route(
            "/ui/clusters/{name}/compliance/{file}",
            get(compliance_file),
        )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// A signed-in user of the GUI.
pub struct User {
    session: Session,
    client: Client,
}

/// Not signed in: to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(s) =
            cookie(&parts.headers, session::COOKIE).and_then(|id| state.sessions().get(&id))
        else {
            return Err(SignIn.into_response());
        };
        let (client, _) = state
            .authenticate(&s.token)
            .await
            .map_err(|e| error_page(e.status, &e.body.message))?;
        Ok(User { session: s, client })
    }
}

impl User {
    /// Refuses a form whose CSRF token is not the session's.
    fn check(&self, csrf: &str) -> Result<(), CsrfRefused> {
        if session::constant_time_eq(csrf, &self.session.csrf) {
            Ok(())
        } else {
            Err(CsrfRefused)
        }
    }
}

/// A form without the session's CSRF token.
pub struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                None,
                html! { p.error { "This form is outdated or did not come from this site (CSRF check). Reload the page and try again." } },
            ),
        )
            .into_response()
    }
}

fn page(title: &str, user: Option<&User>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(u) = user { meta name="csrf-token" content=(u.session.csrf); }
                title { (title) " · kaas" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui/" { "kaas" }
                    @if let Some(u) = user {
                        span.who { (u.session.user) " · namespace " strong { (u.session.namespace) } }
                        form.inline method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(u.session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// An error page for a request the GUI cannot serve (outside a signed-in page): the status
/// code is kept, the page says what went wrong and links back.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            status.canonical_reason().unwrap_or("Error"),
            None,
            html! {
                div.error role="alert" id="error" data-status=(status.as_u16()) {
                    p { (message) }
                    p.hint { "HTTP " (status.as_u16()) }
                }
                p { a.button href="/ui/" id="back" { "← Back to your clusters" } }
            },
        ),
    )
        .into_response()
}

/// A signed-in page that failed as a whole (the cluster is gone, a read was refused): the
/// API's status code, its message and a link back.
fn failure_page(user: &User, title: &str, e: &ApiError) -> Response {
    (
        e.status,
        page(
            title,
            Some(user),
            html! {
                (api_error_box(e))
                p { a.button href="/ui/" id="back" { "← Back to your clusters" } }
            },
        ),
    )
        .into_response()
}

fn errors_box(message: &str, errors: &[FieldProblem]) -> Markup {
    html! {
        div.error role="alert" id="errors" {
            p { (message) }
            @if !errors.is_empty() {
                ul { @for e in errors { li { @if !e.path.is_empty() { code { (e.path) } ": " } (e.message) } } }
            }
        }
    }
}

fn api_error_box(e: &ApiError) -> Markup {
    errors_box(&e.body.message, &e.body.errors)
}

// ---------------------------------------------------------------------------------------------
// Sign in and out.

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    namespace: String,
    /// The sign-in page's pre-session CSRF token (equal to the `kaas_login` cookie).
    #[serde(default)]
    login_csrf: String,
}

/// Cookie of the sign-in page's pre-session CSRF token: sign-in needs it echoed in the form, so
/// another site cannot sign a browser in to the attacker's account (login CSRF).
const LOGIN_COOKIE: &str = "kaas_login";

async fn login_page(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let (csrf, fresh) = login_token(&headers);
    let mut res = login_form(None, &csrf).into_response();
    if fresh {
        set_login_cookie(&state, &mut res, &csrf);
    }
    res
}

/// The browser's pre-session token, or a new one (then `true`: it must be set).
fn login_token(headers: &axum::http::HeaderMap) -> (String, bool) {
    match cookie(headers, LOGIN_COOKIE) {
        Some(c) if c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => (c, false),
        _ => (session::random_id(), true),
    }
}

fn set_login_cookie(state: &AppState, res: &mut Response, csrf: &str) {
    let mut c =
        format!("{LOGIN_COOKIE}={csrf}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if state.secure_cookies() {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn login_form(error: Option<&str>, csrf: &str) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { div.error role="alert" { p { (e) } } }
            form method="post" action="/ui/login" autocomplete="off" {
                input type="hidden" name="login_csrf" value=(csrf);
                label { "Token" input type="password" name="token" id="token" required; }
                label { "Namespace (your tenant; optional for service account tokens)" input type="text" name="namespace" id="namespace"; }
                button type="submit" id="signin" { "Sign in" }
            }
            p.hint { "Use a token of the management cluster, e.g. the one `kaas dev up` prints for the demo tenant. It is kept in server memory for this session only." }
        },
    )
}

async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    // Login CSRF: only a form from our own sign-in page (its cookie and field agree).
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.len() != 64 || !session::constant_time_eq(&f.login_csrf, &expected) {
        let (csrf, fresh) = login_token(&headers);
        let mut res = (
            StatusCode::FORBIDDEN,
            login_form(
                Some("This sign-in form did not come from this site, or it is outdated (CSRF check). Sign in again."),
                &csrf,
            ),
        )
            .into_response();
        if fresh {
            set_login_cookie(&state, &mut res, &csrf);
        }
        return res;
    }
    let form = |msg: &str| login_form(Some(msg), &expected);
    let token = f.token.trim().to_string();
    if token.is_empty() {
        return (StatusCode::UNAUTHORIZED, form("Enter a token.")).into_response();
    }
    let (client, who) = match state.authenticate(&token).await {
        Ok(x) => x,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return (
                StatusCode::UNAUTHORIZED,
                form("The management cluster does not accept this token."),
            )
                .into_response();
        }
        Err(e) => return (e.status, form(&e.body.message)).into_response(),
    };
    let namespace = match (f.namespace.trim(), &who.namespace) {
        ("", Some(ns)) => ns.clone(),
        ("", None) => {
            return (
                StatusCode::BAD_REQUEST,
                form("Say which namespace (tenant) to work in."),
            )
                .into_response();
        }
        (ns, _) if !crate::edge::dns1123_label(ns) => {
            return (
                StatusCode::BAD_REQUEST,
                form("A namespace is a DNS-1123 label (lower-case letters, digits and '-')."),
            )
                .into_response();
        }
        (ns, _) => ns.to_string(),
    };
    // Only namespaces the user may list clusters in.
    if let Err(e) = Api::<Cluster>::namespaced(client, &namespace)
        .list(&ListParams::default().limit(1))
        .await
    {
        let e = ApiError::from(e);
        return (
            StatusCode::FORBIDDEN,
            form(&format!(
                "{} may not use namespace {namespace}: {}",
                who.username, e.body.message
            )),
        )
            .into_response();
    }
    let (id, _) = state.sessions().create(token, who.username, namespace);
    let mut cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        state.sessions().ttl().as_secs()
    );
    if state.secure_cookies() {
        cookie.push_str("; Secure");
    }
    let mut res = Redirect::to("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    user: User,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    if let Some(id) = cookie(&headers, session::COOKIE) {
        state.sessions().remove(&id);
    }
    let mut res = Redirect::to("/ui/login").into_response();
    let mut c = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    if state.secure_cookies() {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

// ---------------------------------------------------------------------------------------------
// Clusters at a glance.

fn ready(c: &Cluster) -> (String, String) {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|x| x.type_ == "Ready"))
        .map(|x| (x.status.clone(), x.reason.clone()))
        .unwrap_or_else(|| ("Unknown".into(), "NotObserved".into()))
}

/// The CSS class of a verdict (`ok`, `progressing`, `degraded`, `failed`).
fn verdict_class(v: kaas_diagnose::Verdict) -> &'static str {
    match v {
        kaas_diagnose::Verdict::Healthy => "ok",
        kaas_diagnose::Verdict::Progressing => "progressing",
        kaas_diagnose::Verdict::Degraded => "degraded",
        kaas_diagnose::Verdict::Failed => "failed",
    }
}

/// The state of a cluster from its status (`kaas_diagnose::cluster_verdict`): Ready but with
/// failing extensions or compliance is degraded, never failed.
fn state_class(c: &Cluster) -> &'static str {
    verdict_class(kaas_diagnose::cluster_verdict(c))
}

/// The verdict as a badge (`span.badge.<class>`, text: the verdict).
fn verdict_badge(v: kaas_diagnose::Verdict) -> Markup {
    html! { span class={ "badge " (verdict_class(v)) } data-verdict=(v.as_str()) { (v.as_str()) } }
}

/// A badge when the cluster hibernates, is on its way or wakes up (`span.badge.hibernated`, …);
/// nothing for an awake cluster.
fn hibernation_badge(c: &Cluster) -> Markup {
    match picture::Hibernation::of(c) {
        Some(h) => {
            html! { " " span class={ "badge " (h.class()) } data-hibernation=(h.class()) { "☾ " (h.as_str()) } }
        }
        None => html! {},
    }
}

/// The hibernation section of the cluster page: where it stands, the schedules, and the one
/// button that changes it (hibernate or wake up, posted with the session's CSRF token).
fn hibernation_section(user: &User, c: &Cluster, name: &str, imported: bool) -> Markup {
    let spec = c.spec.hibernation.clone().unwrap_or_default();
    let asked = spec.asked();
    let schedules = spec.schedules.clone().unwrap_or_default();
    let state = picture::Hibernation::of(c);
    html! {
        section id="hibernation" {
            h2 { "Hibernation" }
            p id="hibernation-state" {
                @match state {
                    Some(picture::Hibernation::Hibernated) => { "Hibernated: no worker nodes run (a hosted control plane is stopped with its data kept). Wake it up to run workloads again." }
                    Some(picture::Hibernation::Hibernating) => { "Hibernating: every worker pool is going to zero nodes." }
                    Some(picture::Hibernation::Waking) => { "Waking up: the pools come back to their sizes (autoscaled pools to their minimum)." }
                    None => { "Awake." }
                }
            }
            @if !schedules.is_empty() {
                table.schedules id="hibernation-schedules" {
                    thead { tr { th { "Hibernate at" } th { "Wake at" } th { "Time zone" } } }
                    tbody { @for s in &schedules {
                        tr {
                            td { @if let Some(x) = &s.start { code { (x) } } @else { "–" } }
                            td { @if let Some(x) = &s.end { code { (x) } } @else { "–" } }
                            td { (s.location.clone().unwrap_or_else(|| "UTC".into())) }
                        }
                    } }
                }
                p.hint { "Schedules set the switch at their times (cron, minute hour day-of-month month day-of-week); a change by hand holds until the next one." }
            }
            @if imported {
                p.hint { "An imported cluster cannot hibernate: kaas runs neither its nodes nor its control plane." }
            } @else if asked {
                form.inline method="post" action={ "/ui/clusters/" (name) "/wake" } {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    button type="submit" id="wake" { "Wake up" }
                    small { " Every pool comes back to its size; autoscaled pools to their minimum." }
                }
            } @else {
                form.inline method="post" action={ "/ui/clusters/" (name) "/hibernate" } data-confirm={ "Hibernate cluster " (name) "? Every worker pool goes to zero nodes; workloads stop until it is woken up." } {
                    input type="hidden" name="csrf" value=(user.session.csrf);
                    button.secondary type="submit" id="hibernate" { "Hibernate" }
                    small { " Every worker pool goes to zero nodes (a hosted control plane stops, its data kept) until you wake it up." }
                }
            }
        }
    }
}

async fn clusters_page(user: User) -> Response {
    let list = Api::<Cluster>::namespaced(user.client.clone(), &user.session.namespace)
        .list(&ListParams::default())
        .await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return failure_page(&user, "Clusters", &ApiError::from(e)),
    };
    let body = html! {
        p { a.button href="/ui/new" id="new-cluster" { "Create cluster" } }
        div id="clusters" data-refresh="5000" {
            @if list.items.is_empty() { p { "No clusters yet." } }
            @else {
                table {
                    thead { tr { th { "Name" } th { "Provider" } th { "Version" } th { "Phase" } th { "Ready" } th { "State" } th { "Workers" } } }
                    tbody {
                        @for c in &list.items {
                            @let (r, reason) = ready(c);
                            @let st = c.status.clone().unwrap_or_default();
                            tr data-cluster=(c.name_any()) class=(state_class(c)) {
                                td { a href={ "/ui/clusters/" (c.name_any()) } { (c.name_any()) } }
                                td { (c.spec.provider.as_ref().and_then(|p| p.name.clone()).unwrap_or_default()) }
                                td { (st.kubernetes_version.clone().or(st.target_version.clone()).unwrap_or_else(|| "–".into())) }
                                td.phase { (st.phase.map(|p| p.to_string()).unwrap_or_else(|| "Pending".into())) (hibernation_badge(c)) }
                                td.ready { (r) " " small { (reason) } }
                                td.state { (verdict_badge(kaas_diagnose::cluster_verdict(c))) }
                                td { @for w in &st.workers { (w.name) " " (w.ready) "/" (w.desired) " " } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Clusters", Some(&user), body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Create.

#[derive(Deserialize, Default)]
struct NewQuery {
    provider: Option<String>,
}

async fn providers(client: &Client) -> Result<Vec<Provider>, ApiError> {
    Ok(Api::<Provider>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items)
}

async fn new_page(user: User, Query(q): Query<NewQuery>) -> Response {
    let all = match providers(&user.client).await {
        Ok(p) => p,
        Err(e) => return failure_page(&user, "Create cluster", &e),
    };
    let chosen = match q.provider {
        Some(name) => all.into_iter().find(|p| p.name_any() == name),
        None if all.len() == 1 => all.into_iter().next(),
        None => {
            return page(
                "Create cluster",
                Some(&user),
                html! {
                    p { "Choose a provider:" }
                    ul { @for p in &all { li { a href={ "/ui/new?provider=" (p.name_any()) } { (p.spec.display_name.clone().unwrap_or_else(|| p.name_any())) " (" (p.name_any()) ")" } } } }
                },
            )
            .into_response();
        }
    };
    let Some(p) = chosen else {
        return failure_page(
            &user,
            "Create cluster",
            &ApiError::not_found("No such provider."),
        );
    };
    page(
        "Create cluster",
        Some(&user),
        create_form(&user, &p, &CreateForm::defaults(&p), None, None),
    )
    .into_response()
}

/// The create form's fields (names as in the HTML form).
#[derive(Deserialize, Default, Debug, Clone)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    provider: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cp_replicas: String,
    #[serde(default)]
    cp_flavor: String,
    #[serde(default)]
    pool: String,
    #[serde(default)]
    flavor: String,
    #[serde(default)]
    count: String,
    /// Autoscaling bounds of the pool (both empty: the fixed `count`).
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    /// `preview`: show the cost and the plan, write nothing.
    #[serde(default)]
    action: Option<String>,
    /// Repeated checkbox fields arrive as one comma-joined string (see `parse_form`).
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    extensions: Vec<String>,
    #[serde(default)]
    protect: Option<String>,
    /// Set by the form when it showed the extension checkboxes: then an unchecked default-on
    /// extension means off (a post without it keeps the provider's defaults).
    #[serde(default)]
    extensions_shown: Option<String>,
}

impl CreateForm {
    fn defaults(p: &Provider) -> Self {
        let d = p.spec.defaults.clone().unwrap_or_default();
        CreateForm {
            provider: p.name_any(),
            region: p
                .spec
                .regions
                .first()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            version: p
                .status
                .as_ref()
                .and_then(|s| s.default_version.clone())
                .unwrap_or_default(),
            cp_replicas: d.control_plane_replicas.unwrap_or(1).to_string(),
            cp_flavor: d.control_plane_flavor.clone().unwrap_or_default(),
            pool: "default".into(),
            flavor: d.worker_flavor.clone().unwrap_or_default(),
            count: "1".into(),
            extensions: p
                .spec
                .extensions
                .iter()
                .filter(|e| e.default)
                .map(|e| e.name.clone())
                .collect(),
            ..Default::default()
        }
    }

    /// The SCS Cluster the form describes. Numbers that do not parse are left to validation
    /// (which then names the field). `default_on`: extensions the provider enables unless a
    /// cluster says otherwise — left unchecked they are switched off explicitly.
    fn to_object(
        &self,
        namespace: &str,
        default_on: &[String],
    ) -> Result<Value, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut int = |v: &str, path: &str| -> Option<i64> {
            match v.trim().parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(FieldProblem {
                        path: path.into(),
                        message: format!("{v:?} is not a whole number"),
                    });
                    None
                }
            }
        };
        let replicas = int(&self.cp_replicas, "spec.controlPlane.replicas");
        let autoscaled = !self.min.trim().is_empty() || !self.max.trim().is_empty();
        let (count, min, max) = if autoscaled {
            (
                None,
                int(&self.min, "spec.workers[0].minCount"),
                int(&self.max, "spec.workers[0].maxCount"),
            )
        } else {
            (int(&self.count, "spec.workers[0].count"), None, None)
        };
        if !crate::edge::dns1123_label(self.name.trim()) {
            problems.push(FieldProblem {
                path: "metadata.name".into(),
                message: format!(
                    "{:?} is not a valid name: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
                    self.name.trim()
                ),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut ext = serde_json::Map::new();
        let mut additional = Vec::new();
        let off = default_on.iter().filter(|d| {
            self.extensions_shown.is_some() && *d != "metrics" && !self.extensions.contains(d)
        });
        let wanted = self.extensions.iter().map(|e| (e, true));
        for (e, on) in wanted.chain(off.map(|e| (e, false))) {
            match e.as_str() {
                "metrics" | "ingress" | "gatewayAPI" | "certManager" | "flux" | "harbor" => {
                    ext.insert(e.clone(), json!({"enabled": on}));
                }
                other => additional.push(json!({"name": other, "enabled": on})),
            }
        }
        if !additional.is_empty() {
            ext.insert("additional".into(), Value::from(additional));
        }
        let mut pool = if autoscaled {
            json!({"name": self.pool.trim(), "flavor": self.flavor, "minCount": min, "maxCount": max})
        } else {
            json!({"name": self.pool.trim(), "flavor": self.flavor, "count": count})
        };
        if !self.zones.is_empty() {
            pool["zones"] = json!(self.zones);
        }
        let mut spec = json!({
            "provider": {"name": self.provider, "region": self.region},
            "kubernetes": {"version": self.version},
            "controlPlane": {"replicas": replicas, "flavor": self.cp_flavor},
            "workers": [pool],
            "extensions": ext,
        });
        if self.protect.is_some() {
            spec["deletionProtection"] = json!(true);
        }
        Ok(json!({
            "apiVersion": "scs.community/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": self.name.trim(), "namespace": namespace},
            "spec": spec,
        }))
    }
}

fn create_form(
    user: &User,
    p: &Provider,
    f: &CreateForm,
    error: Option<Markup>,
    plan: Option<&kaas_render::plan::Plan>,
) -> Markup {
    let versions: Vec<_> = p
        .spec
        .kubernetes_versions
        .iter()
        .filter(|v| {
            !matches!(
                v.classification,
                kaas_api::provider::Classification::Expired
            )
        })
        .collect();
    let zones: Vec<(String, String)> = p
        .spec
        .regions
        .iter()
        .flat_map(|r| r.zones.iter().map(move |z| (r.name.clone(), z.clone())))
        .collect();
    let offered: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    let zones_use = feature_use(p, &offered, kaas_api::provider::features::ZONES);
    html! {
        @if let Some(e) = error { (e) }
        form method="post" action="/ui/clusters" id="create" {
            input type="hidden" name="csrf" value=(user.session.csrf);
            input type="hidden" name="provider" value=(p.name_any());
            p { "Provider " strong { (p.spec.display_name.clone().unwrap_or_else(|| p.name_any())) } }
            label { "Name" input type="text" name="name" id="name" value=(f.name) required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" maxlength="40"; }
            label { "Region"
                select name="region" id="region" { @for r in &p.spec.regions { option value=(r.name) selected[r.name == f.region] { (r.name) } } }
            }
            label { "Kubernetes version"
                select name="version" id="version" {
                    @for v in &versions {
                        @let off: Vec<String> = p.unusable_features(&v.version).into_iter().map(|u| u.feature).collect();
                        option value=(v.version) selected[v.version == f.version] { (v.version) " (" (format!("{:?}", v.classification).to_lowercase()) ")" @if !off.is_empty() { " — without " (off.join(", ")) } }
                    }
                }
            }
            fieldset {
                legend { "Control plane" }
                label { "Nodes" select name="cp_replicas" id="cp_replicas" { @for n in ["1", "3", "5"] { option value=(n) selected[n == f.cp_replicas] { (n) } } } }
                label { "Flavor" select name="cp_flavor" id="cp_flavor" {
                    @for fl in p.spec.flavors.iter().filter(|x| x.control_plane != Some(false)) {
                        option value=(fl.name) selected[fl.name == f.cp_flavor] { (fl.name) " — " (fl.cpu) " vCPU, " (fl.memory) }
                    }
                } }
            }
            fieldset {
                legend { "Worker pool" }
                label { "Pool name" input type="text" name="pool" id="pool" value=(f.pool) required; }
                label { "Flavor" select name="flavor" id="flavor" {
                    @for fl in p.spec.flavors.iter().filter(|x| x.worker != Some(false)) {
                        option value=(fl.name) selected[fl.name == f.flavor] { (fl.name) " — " (fl.cpu) " vCPU, " (fl.memory) }
                    }
                } }
                label { "Nodes" input type="number" name="count" id="count" min="0" value=(f.count); }
                div.autoscale {
                    span { "or autoscale between " small.hint { "(both set: the autoscaler sizes the pool; empty: the fixed node count)" } }
                    label { "Min" input type="number" name="min" id="min" min="0" value=(f.min); }
                    label { "Max" input type="number" name="max" id="max" min="0" value=(f.max); }
                }
                div.checks { "Zones (none: spread by the provider)" (zones_use.note())
                    @for (r, z) in &zones { label.check { input type="checkbox" name="zones" value=(z) checked[f.zones.contains(z) && !zones_use.nowhere()] disabled[zones_use.nowhere()]; " " (z) " " small { "(" (r) ")" } } }
                }
            }
            fieldset {
                legend { "Extensions" }
                input type="hidden" name="extensions_shown" value="1";
                @for e in &p.spec.extensions {
                    @if e.name == "metrics" {
                        label.check { input type="checkbox" checked disabled; " metrics " small { "(always on)" } }
                    } @else {
                        @let used = feature_use(p, &offered, &format!("{}{}", kaas_api::provider::features::EXTENSION_PREFIX, e.name));
                        label.check { input type="checkbox" name="extensions" value=(e.name) id={ "ext-" (e.name) } checked[f.extensions.contains(&e.name) && !used.nowhere()] disabled[used.nowhere()]; " " (e.name) @if let Some(v) = &e.version { " " small { (v) } } (used.note()) }
                    }
                }
            }
            label.check { input type="checkbox" name="protect" value="on" checked[f.protect.is_some()]; " Deletion protection" }
            @match form_cost(f, p, &user.session.namespace) {
                Some(c) => { (cost::html(&c, None)) },
                None => { section.cost id="cost" { h2 { "What it costs" } p.hint { "Enter whole numbers of nodes to see the cost." } } },
            }
            div.actions {
                button.secondary type="submit" name="action" value="preview" id="preview-submit" formnovalidate { "Preview cost and plan" }
                button type="submit" name="action" value="create" id="create-submit" { "Create" }
            }
        }
        @if let Some(plan) = plan { (preview::plan_html(plan)) }
    }
}

/// The cost of what the form describes (`None` while a number does not parse).
fn form_cost(f: &CreateForm, p: &Provider, ns: &str) -> Option<cost::Cost> {
    let mut g = f.clone();
    if g.name.trim().is_empty() || !crate::edge::dns1123_label(g.name.trim()) {
        g.name = "preview".into();
    }
    let v = g.to_object(ns, &[]).ok()?;
    let c: Cluster = serde_json::from_value(v).ok()?;
    Some(cost::Cost::of(&c.spec, p))
}

/// Where the create form offers one feature: the offered versions that cannot serve it, with
/// the reason (stack verification or the provider's declaration).
struct FeatureUse {
    offered: usize,
    unusable: Vec<(String, String)>,
}

impl FeatureUse {
    /// No offered version serves it: the form disables the option.
    fn nowhere(&self) -> bool {
        self.offered > 0 && self.unusable.len() == self.offered
    }

    /// A marker next to the option: why, and with which versions (empty when every version
    /// serves it).
    fn note(&self) -> Markup {
        if self.unusable.is_empty() {
            return html! {};
        }
        let why: Vec<String> = self
            .unusable
            .iter()
            .map(|(v, r)| format!("{v}: {r}"))
            .collect();
        let text = if self.nowhere() {
            "unavailable".to_string()
        } else {
            format!(
                "not with {}",
                self.unusable
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        html! { " " small.unusable title=(why.join("\n")) { "(" (text) ")" } }
    }
}

fn feature_use(p: &Provider, offered: &[&str], feature: &str) -> FeatureUse {
    FeatureUse {
        offered: offered.len(),
        unusable: offered
            .iter()
            .filter_map(|v| {
                p.unusable_features(v)
                    .into_iter()
                    .find(|u| u.feature == feature)
                    .map(|u| (v.to_string(), u.reason))
            })
            .collect(),
    }
}

/// Parses an urlencoded form where checkboxes repeat a name (`zones=a&zones=b`).
fn parse_form(body: &str) -> Result<CreateForm, String> {
    let mut map = serde_json::Map::new();
    for (k, v) in url_pairs(body) {
        let list = matches!(k.as_str(), "zones" | "extensions");
        match map.get_mut(&k) {
            Some(Value::Array(a)) if list => a.push(Value::from(v)),
            _ if list => {
                map.insert(k, Value::from(vec![Value::from(v)]));
            }
            _ => {
                map.insert(k, Value::from(v));
            }
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

fn url_pairs(body: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The lifetimes the GUI offers for a short-lived kubeconfig (the provider's cap applies).
const KUBECONFIG_LIFETIMES: [&str; 4] = ["1h", "8h", "24h", "30m"];

/// `POST /ui/clusters/{name}/kubeconfig`: a short-lived kubeconfig in the user's own name (the
/// REST `POST …/kubeconfig`, with the session's CSRF check), answered as a download; a refusal is
/// an HTML page with the reason.
async fn kubeconfig_request(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let pairs = url_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Err(r) = user.check(&get("csrf")) {
        return r.into_response();
    }
    let expiration = get("expiration");
    if !KUBECONFIG_LIFETIMES.contains(&expiration.as_str()) {
        return failure_page(
            &user,
            "Kubeconfig",
            &ApiError::invalid(
                "the request is invalid",
                vec![FieldProblem {
                    path: "expiration".into(),
                    message: format!("must be one of {}", KUBECONFIG_LIFETIMES.join(", ")),
                }],
            ),
        );
    }
    let role = match get("role").as_str() {
        "admin" => kaas_api::kubeconfig::KubeconfigRole::Admin,
        "viewer" => kaas_api::kubeconfig::KubeconfigRole::Viewer,
        _ => {
            return failure_page(
                &user,
                "Kubeconfig",
                &ApiError::invalid(
                    "the request is invalid",
                    vec![FieldProblem {
                        path: "role".into(),
                        message: "must be admin or viewer".into(),
                    }],
                ),
            );
        }
    };
    let _slot = match state.wait_slot(&user.session.user) {
        Ok(s) => s,
        Err(e) => return failure_page(&user, "Kubeconfig", &e),
    };
    match api::issue_kubeconfig(
        &user.client,
        &user.session.namespace,
        &name,
        &expiration,
        role,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => failure_page(&user, "Kubeconfig", &e),
    }
}

async fn create(user: User, body: String) -> Response {
    let f = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                page("Create cluster", Some(&user), errors_box(&e, &[])),
            )
                .into_response();
        }
    };
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let provider = match Api::<Provider>::all(user.client.clone())
        .get(&f.provider)
        .await
    {
        Ok(p) => p,
        Err(e) => return failure_page(&user, "Create cluster", &e.into()),
    };
    let ns = user.session.namespace.clone();
    let default_on: Vec<String> = provider
        .spec
        .extensions
        .iter()
        .filter(|e| e.default)
        .map(|e| e.name.clone())
        .collect();
    if f.action.as_deref() == Some("preview") {
        return create_preview(&user, &provider, &f, &ns, &default_on).await;
    }
    let result = async {
        let object = f
            .to_object(&ns, &default_on)
            .map_err(|errs| ApiError::invalid("the cluster is invalid", errs))?;
        let cluster = api::prevalidate(&user.client, object, None).await?;
        let pp = PostParams {
            field_manager: Some(api::FIELD_MANAGER.into()),
            ..Default::default()
        };
        Api::<Cluster>::namespaced(user.client.clone(), &ns)
            .create(&pp, &cluster)
            .await
            .map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(c) => Redirect::to(&format!("/ui/clusters/{}", c.name_any())).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Create cluster",
                Some(&user),
                create_form(&user, &provider, &f, Some(api_error_box(&e)), None),
            ),
        )
            .into_response(),
    }
}

/// The create form again with its cost and the plan of the new cluster
/// ([`kaas_render::plan::plan_create`]); nothing is written.
async fn create_preview(
    user: &User,
    provider: &Provider,
    f: &CreateForm,
    ns: &str,
    default_on: &[String],
) -> Response {
    let problem = |e: ApiError| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Create cluster",
                Some(user),
                create_form(user, provider, f, Some(api_error_box(&e)), None),
            ),
        )
            .into_response()
    };
    let object = match f.to_object(ns, default_on) {
        Ok(o) => o,
        Err(errs) => return problem(ApiError::invalid("the cluster is invalid", errs)),
    };
    let cluster: Cluster = match serde_json::from_value(object) {
        Ok(c) => c,
        Err(e) => return problem(ApiError::bad_request(format!("not a cluster: {e}"))),
    };
    let p = provider.clone();
    let plan =
        match preview::plan_blocking(move || kaas_render::plan::plan_create(&cluster, &p)).await {
            Ok(p) => p,
            Err(e) => return problem(e),
        };
    let status = if plan.refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        page(
            "Create cluster",
            Some(user),
            create_form(user, provider, f, None, Some(&plan)),
        ),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// One cluster.

#[derive(Deserialize, Default)]
struct Flash {
    done: Option<String>,
}

async fn cluster_page(
    user: User,
    Path(name): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    cluster_view(&user, &name, flash.done.as_deref(), None).await
}

async fn cluster_view(
    user: &User,
    name: &str,
    done: Option<&str>,
    error: Option<ApiError>,
) -> Response {
    let ns = &user.session.namespace;
    let c = match Api::<Cluster>::namespaced(user.client.clone(), ns)
        .get(name)
        .await
    {
        Ok(c) => c,
        Err(e) => return failure_page(user, name, &ApiError::from(e)),
    };
    let provider_name = c
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.name.clone())
        .unwrap_or_default();
    let provider = Api::<Provider>::all(user.client.clone())
        .get(&provider_name)
        .await
        .ok();
    // One read of what the diagnosis looks at: the diagnosis, and the machines of the picture.
    let (diagnosis, observed) = match api::diagnosis_inputs(&user.client, ns, name).await {
        Ok(i) => (Ok(kaas_diagnose::analyze(&i)), picture::observed(&i)),
        Err(e) => (Err(e), picture::Observed::default()),
    };
    let picture = picture::Picture::of(&c, &observed);
    let st = c.status.clone().unwrap_or_default();
    let (r, reason) = ready(&c);
    // The diagnosis' verdict also judges the tree (a failed machine); without one, the status'.
    let verdict = diagnosis
        .as_ref()
        .map(|d| d.verdict)
        .unwrap_or_else(|_| kaas_diagnose::cluster_verdict(&c));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let imported = provider
        .as_ref()
        .is_some_and(|p| p.spec.backend.kind == kaas_api::provider::BackendType::Static);
    let upgrade_targets: Vec<String> = provider
        .as_ref()
        .map(|p| {
            p.spec
                .kubernetes_versions
                .iter()
                .filter(|v| {
                    !matches!(
                        v.classification,
                        kaas_api::provider::Classification::Expired
                    )
                })
                .map(|v| v.version.clone())
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        @if let Some(d) = done { div.notice role="status" { (d) } }
        @if let Some(e) = &error { (api_error_box(e)) }
        section id="summary" data-refresh="4000" {
            dl.summary {
                dt { "State" } dd id="state" class=(verdict_class(verdict)) { (st.phase.map(|p| p.to_string()).unwrap_or_else(|| "Pending".into())) " — Ready " (r) " (" (reason) ") " (verdict_badge(verdict)) (hibernation_badge(&c)) }
                dt { "Provider" } dd { (provider_name) }
                dt { "Kubernetes" } dd id="version" { (st.kubernetes_version.clone().unwrap_or_else(|| "–".into())) @if let Some(t) = &st.target_version { " (target " (t) ")" } }
                dt { "API endpoint" } dd { (st.api_endpoint.clone().unwrap_or_else(|| "–".into())) }
                dt { "Workers" } dd { @for w in &st.workers { (w.name) ": " (w.ready) "/" (w.desired) " ready " } }
            }
            (picture.svg())
            h2 { "Conditions" }
            table.conditions {
                thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } } }
                tbody { @for x in &st.conditions { tr class=(if x.status == "True" { "ok" } else { "progressing" }) { td { (x.type_) } td { (x.status) } td { (x.reason) } td { (x.message) } } } }
            }
            @match &diagnosis {
                Ok(d) => {
                    h2 { "Diagnostics" }
                    (PreEscaped(diagnosis_html(d)))
                }
                Err(e) => { p.hint { "Diagnostics unavailable: " (e.body.message) } }
            }
            h2 { "Events" }
            @match &diagnosis {
                Ok(d) => { (events::timeline(&d.events)) }
                Err(_) => { p.hint id="events" { "Events unavailable." } }
            }
        h2 { "Kubeconfig" }
        @if st.kubeconfig_secret_ref.is_some() {
            p { a.button href={ "/api/v1/namespaces/" (ns) "/clusters/" (name) "/kubeconfig" } download={ (name) ".kubeconfig" } id="kubeconfig" { "Download kubeconfig" } }
        } @else { p.hint { "Available once the control plane is up." } }
        form.inline method="post" action={ "/ui/clusters/" (name) "/kubeconfig" } {
            input type="hidden" name="csrf" value=(user.session.csrf);
            label { "Short-lived, valid for " select name="expiration" id="kubeconfig-expiration" {
                @for e in KUBECONFIG_LIFETIMES { option value=(e) { (e) } }
            } }
            label { " as " select name="role" id="kubeconfig-role" {
                option value="admin" { "admin" } option value="viewer" { "viewer (read only)" }
            } }
            button type="submit" id="kubeconfig-request" { "Get a short-lived kubeconfig" }
            small { " Issued in your name, recorded as an event; the provider caps the lifetime." }
        }
        h2 { "Compliance" }
        @if let Some(cm) = &st.compliance {
            p { (cm.passed) " passed, " (cm.failed) " failed, " (cm.aborted) " aborted (checked " (cm.checked_at) ") — " a href={ "/ui/clusters/" (name) "/compliance" } { "report" } }
        } @else { p.hint { "Not checked yet." } }
        }
        @if let Some(p) = &provider { (cost::html(&cost::Cost::of(&c.spec, p), None)) }
        (hibernation_section(user, &c, name, imported))
        h2 { "Scale" }
        p.hint { "Each change is previewed first: its plan and cost, then you confirm." }
        @for w in c.spec.workers.clone().unwrap_or_default() {
            @let auto = w.count.is_none() && (w.min_count.is_some() || w.max_count.is_some());
            form.inline method="post" action={ "/ui/clusters/" (name) "/preview" } {
                input type="hidden" name="csrf" value=(user.session.csrf);
                input type="hidden" name="change" value="scale";
                input type="hidden" name="pool" value=(w.name);
                label { "Pool " strong { (w.name) } " nodes " input type="number" min="0" name="count" id={ "count-" (w.name) } value=[if auto { None } else { Some(w.count.unwrap_or(1)) }]; }
                label { "or min " input type="number" min="0" name="min" id={ "min-" (w.name) } value=[w.min_count.filter(|_| auto)]; }
                label { "max " input type="number" min="0" name="max" id={ "max-" (w.name) } value=[w.max_count.filter(|_| auto)]; }
                button type="submit" id={ "scale-" (w.name) } { "Preview scale" }
            }
        }
        h2 { "Upgrade" }
        form.inline method="post" action={ "/ui/clusters/" (name) "/preview" } {
            input type="hidden" name="csrf" value=(user.session.csrf);
            input type="hidden" name="change" value="upgrade";
            label { "Version " select name="version" id="upgrade-version" { @for v in &upgrade_targets { option value=(v) { (v) } } } }
            button type="submit" id="upgrade" { "Preview upgrade" }
            small { " One minor at a time; never down." }
        }
        h2 { "Edit" }
        details id="edit" {
            summary { "Edit the spec (YAML) — previewed before it is applied" }
            form method="post" action={ "/ui/clusters/" (name) "/preview" } {
                input type="hidden" name="csrf" value=(user.session.csrf);
                input type="hidden" name="change" value="edit";
                textarea name="spec" id="spec" rows="16" spellcheck="false" { (preview::spec_yaml(&c)) }
                p { button type="submit" id="edit-preview" { "Preview change" } }
            }
        }
        h2 { "Delete" }
        form.inline method="post" action={ "/ui/clusters/" (name) "/delete" } data-confirm={ "Delete cluster " (name) "? This removes all its machines." } {
            input type="hidden" name="csrf" value=(user.session.csrf);
            label { "Type the name to confirm " input type="text" name="confirm" id="confirm" autocomplete="off"; }
            button.danger type="submit" id="delete" { "Delete" }
        }
    };
    (status, page(name, Some(user), body)).into_response()
}

/// The diagnosis as nested lists (everything escaped by maud).
fn diagnosis_html(d: &kaas_diagnose::Diagnosis) -> String {
    let v = serde_json::to_value(d).unwrap_or_default();
    fn node(n: &Value) -> Markup {
        let status = n["status"].as_str().unwrap_or("unknown");
        html! {
            li class=(status) {
                strong { (n["kind"].as_str().unwrap_or("")) " " (n["name"].as_str().unwrap_or("")) }
                " — " (status)
                @if let Some(s) = n["summary"].as_str() { ": " (s) }
                @if let Some(children) = n["children"].as_array() {
                    @if !children.is_empty() { ul { @for c in children { (node(c)) } } }
                }
            }
        }
    }
    let hint = |code: &str| -> Option<String> {
        d.hints
            .iter()
            .find(|h| h.code == code)
            .map(|h| h.message.clone())
    };
    let m = html! {
        p id="verdict" { strong { "Verdict: " } (verdict_badge(d.verdict)) }
        @if !d.degraded.is_empty() {
            div.degraded id="degraded" {
                p { "Ready and usable, but these fail (they do not block the cluster):" }
                ul { @for a in &d.degraded {
                    li data-aspect=(a.aspect) {
                        strong { (a.aspect) }
                        @if let Some(c) = &a.condition { " (" (c) "=False" @if let Some(r) = &a.reason { ", " (r) } ")" }
                        ": " (a.message)
                        @for h in a.hints.iter().filter_map(|c| hint(c)) { br; small.hint { "What to do: " (h) } }
                    }
                } }
            }
        }
        @if let Some(w) = v["waitingFor"].as_str() { p id="waiting-for" { strong { "Waiting for: " } (w) } }
        @if let Some(hints) = v["hints"].as_array() {
            @if !hints.is_empty() {
                ul.hints { @for h in hints { li { (h["message"].as_str().unwrap_or("")) @if let Some(f) = h["fields"].as_array() { @for x in f { " " code { (x.as_str().unwrap_or("")) } } } } } }
            }
        }
        @if let Some(t) = v.get("tree") {
            ul.tree { @if t.is_array() { @for n in t.as_array().into_iter().flatten() { (node(n)) } } @else { (node(t)) } }
        }
    };
    m.into_string()
}

#[derive(Deserialize)]
struct ScaleForm {
    csrf: String,
    pool: String,
    count: String,
}

async fn scale(user: User, Path(name): Path<String>, Form(f): Form<ScaleForm>) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let count = match f.count.trim().parse::<i32>() {
        Ok(n) => n,
        Err(_) => {
            let e = ApiError::invalid(
                "the scale request is invalid",
                vec![FieldProblem {
                    path: "count".into(),
                    message: format!("{:?} is not a whole number", f.count),
                }],
            );
            return cluster_view(&user, &name, None, Some(e)).await;
        }
    };
    let req = ScaleRequest {
        pool: f.pool.clone(),
        count: Some(count),
        min_count: None,
        max_count: None,
    };
    let r = api::modify(&user.client, &user.session.namespace, &name, false, |c| {
        api::scale(c, &req)
    })
    .await;
    match r {
        Ok(_) => Redirect::to(&format!(
            "/ui/clusters/{name}?done={}",
            enc(&format!("Pool {} scaled to {count}.", f.pool))
        ))
        .into_response(),
        Err(e) => cluster_view(&user, &name, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct UpgradeForm {
    csrf: String,
    version: String,
}

async fn upgrade(user: User, Path(name): Path<String>, Form(f): Form<UpgradeForm>) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let r = api::modify(&user.client, &user.session.namespace, &name, false, |c| {
        c.spec
            .kubernetes
            .get_or_insert_with(Default::default)
            .version = Some(f.version.clone());
        Ok(())
    })
    .await;
    match r {
        Ok(_) => Redirect::to(&format!(
            "/ui/clusters/{name}?done={}",
            enc(&format!("Upgrade to {} started.", f.version))
        ))
        .into_response(),
        Err(e) => cluster_view(&user, &name, None, Some(e)).await,
    }
}

async fn hibernate(user: User, Path(name): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    set_hibernation(user, name, f, true).await
}

async fn wake(user: User, Path(name): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    set_hibernation(user, name, f, false).await
}

/// `POST /ui/clusters/{name}/hibernate` and `…/wake`: the REST change (`spec.hibernation.enabled`,
/// validated first, with the user's token) behind the session's CSRF check; posted directly — it
/// changes one switch and is undone with the other button. A refusal (an imported cluster) shows
/// on the cluster page with its field path.
async fn set_hibernation(user: User, name: String, f: CsrfForm, hibernate: bool) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    let r = api::modify(&user.client, &user.session.namespace, &name, false, |c| {
        api::set_hibernation_enabled(c, hibernate);
        Ok(())
    })
    .await;
    let done = if hibernate {
        "Hibernation asked: every worker pool goes to zero nodes."
    } else {
        "Waking up: the pools come back."
    };
    match r {
        Ok(_) => Redirect::to(&format!("/ui/clusters/{name}?done={}", enc(done))).into_response(),
        Err(e) => cluster_view(&user, &name, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

async fn delete(user: User, Path(name): Path<String>, Form(f): Form<DeleteForm>) -> Response {
    if let Err(r) = user.check(&f.csrf) {
        return r.into_response();
    }
    if f.confirm.trim() != name {
        let e = ApiError::invalid(
            "not deleted",
            vec![FieldProblem {
                path: "confirm".into(),
                message: format!("type the cluster's name {name:?} to confirm"),
            }],
        );
        return cluster_view(&user, &name, None, Some(e)).await;
    }
    match Api::<Cluster>::namespaced(user.client.clone(), &user.session.namespace)
        .delete(&name, &DeleteParams::foreground())
        .await
    {
        Ok(_) => Redirect::to("/ui/").into_response(),
        Err(e) => cluster_view(&user, &name, None, Some(e.into())).await,
    }
}

async fn compliance_page(user: User, Path(name): Path<String>) -> Response {
    let ns = &user.session.namespace;
    match api::compliance(&user.client, ns, &name).await {
        Ok(r) => page(
            &format!("Compliance of {name}"),
            Some(&user),
            compliance::report_html(ns, &name, &r),
        )
        .into_response(),
        Err(e) => failure_page(&user, &format!("Compliance of {name}"), &e),
    }
}

/// One file of the compliance report (`report.json`, `scs.yaml`, `report.txt`) as a download,
/// exactly as stored in the report ConfigMap.
async fn compliance_file(user: User, Path((name, file)): Path<(String, String)>) -> Response {
    let mut r = match api::compliance(&user.client, &user.session.namespace, &name).await {
        Ok(r) => r,
        Err(e) => return failure_page(&user, &format!("Compliance of {name}"), &e),
    };
    let Some(text) = r.files.remove(&file) else {
        let e = ApiError::not_found(format!(
            "the report of {name} has no file {file:?} (it has: {})",
            r.files.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        return failure_page(&user, &format!("Compliance of {name}"), &e);
    };
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file.as_str(), "txt"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(compliance::content_type(&file)),
            ),
            (
                header::CONTENT_DISPOSITION,
                crate::edge::attachment(&format!("{name}-{stem}"), ext),
            ),
        ],
        text,
    )
        .into_response()
}

/// Percent-encodes for a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_checkboxes_and_escapes() {
        let f = parse_form(
            "csrf=x&provider=dev&name=my+c%C3%BCster&zones=zone-a&zones=zone-b&extensions=ingress&count=3&cp_replicas=1",
        )
        .unwrap();
        assert_eq!(f.name, "my cüster");
        assert_eq!(f.zones, ["zone-a", "zone-b"]);
        assert_eq!(f.extensions, ["ingress"]);
        let f = parse_form("csrf=x&provider=dev&name=%zz&count=%").unwrap();
        assert_eq!(f.name, "%zz");
        assert_eq!(f.count, "%");
        let f = parse_form("csrf=x&provider=dev&name=%é%C3").unwrap();
        assert!(f.name.starts_with('%'));
    }

    #[test]
    fn the_form_becomes_a_cluster() {
        let f = parse_form(
            "csrf=x&provider=dev&name=a&region=local&version=1.35.4&cp_replicas=1&cp_flavor=small&pool=default&flavor=small&count=2&extensions_shown=1&extensions=ingress&extensions=foo&protect=on",
        )
        .unwrap();
        let v = f
            .to_object("t", &["gatewayAPI".into(), "metrics".into()])
            .unwrap();
        assert_eq!(v["metadata"]["namespace"], "t");
        assert_eq!(v["spec"]["workers"][0]["count"], 2);
        assert_eq!(v["spec"]["extensions"]["ingress"]["enabled"], true);
        // A default-on extension left unchecked is switched off; metrics never.
        assert_eq!(v["spec"]["extensions"]["gatewayAPI"]["enabled"], false);
        assert!(v["spec"]["extensions"].get("metrics").is_none());
        // A post that never showed the checkboxes keeps the provider's defaults.
        let mut g = f.clone();
        g.extensions_shown = None;
        let w = g.to_object("t", &["gatewayAPI".into()]).unwrap();
        assert!(w["spec"]["extensions"].get("gatewayAPI").is_none(), "{w}");
        assert_eq!(v["spec"]["extensions"]["additional"][0]["name"], "foo");
        assert_eq!(v["spec"]["deletionProtection"], true);
        let bad = parse_form("csrf=x&provider=dev&name=a&cp_replicas=x&count=2").unwrap();
        let errs = bad.to_object("t", &[]).unwrap_err();
        assert_eq!(errs[0].path, "spec.controlPlane.replicas");
    }

    fn ready_cluster(extra: serde_json::Value) -> Cluster {
        let mut conditions = vec![
            json!({"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-11-29T10:00:00Z"}),
            json!({"type": "ExtensionsReady", "status": "True", "reason": "Applied", "message": "", "lastTransitionTime": "2026-11-29T10:00:00Z"}),
        ];
        if !extra.is_null() {
            conditions.retain(|c| c["type"] != extra["type"]);
            conditions.push(extra);
        }
        serde_json::from_value(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t", "generation": 1},
            "spec": {"provider": {"name": "dev"}},
            "status": {"phase": "Ready", "observedGeneration": 1, "conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn a_ready_cluster_with_failing_compliance_is_shown_degraded() {
        let compliant_false = json!({"type": "Compliant", "status": "False", "reason": "ChecksFailed",
            "message": "1 failed: pod-security-labels-check (without label: kaas-system) (report: ConfigMap c-compliance)",
            "lastTransitionTime": "2026-11-29T10:00:00Z"});
        let c = ready_cluster(compliant_false);
        assert_eq!(state_class(&c), "degraded");
        assert_eq!(state_class(&ready_cluster(serde_json::Value::Null)), "ok");
        let ext_false = json!({"type": "ExtensionsReady", "status": "False", "reason": "ApplyFailed",
            "message": "ingress: timeout", "lastTransitionTime": "2026-11-29T10:00:00Z"});
        assert_eq!(state_class(&ready_cluster(ext_false)), "degraded");
        // The badge, and the diagnosis section with the aspect and what to do.
        let badge = verdict_badge(kaas_diagnose::Verdict::Degraded).into_string();
        assert_eq!(
            badge,
            r#"<span class="badge degraded" data-verdict="degraded">degraded</span>"#
        );
        let d = kaas_diagnose::analyze(&kaas_diagnose::Inputs::new(
            c,
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        ));
        let html = diagnosis_html(&d);
        assert!(html.contains(&badge), "{html}");
        assert!(html.contains(r#"<li data-aspect="compliance"><strong>compliance</strong> (Compliant=False, ChecksFailed): 1 failed: pod-security-labels-check"#), "{html}");
        assert!(
            html.contains("What to do: compliance checks failed: pod-security-labels-check"),
            "{html}"
        );
        assert!(
            !html.contains("failed</span>") && !html.contains(r#"class="failed""#),
            "{html}"
        );
    }

    #[test]
    fn query_encoding() {
        assert_eq!(enc("a b/é"), "a%20b%2F%C3%A9");
    }
}
