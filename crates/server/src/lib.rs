//! `kaas serve`: the provider's endpoint for its customers — a REST API under `/api/v1` with an
//! OpenAPI document, and a web GUI under `/ui` — in front of the management cluster.
//!
//! The server has no Kubernetes identity of its own. It reads only the address and CA of the
//! management cluster from a kubeconfig and makes every call with the caller's bearer token (from
//! the `Authorization` header, or from the GUI session the user signed in to with that token), so
//! Kubernetes RBAC decides what each user may see and do. Validation runs before writing, with the
//! same functions as `kaas validate`, and errors carry field paths.

pub mod api;
pub mod error;
pub mod openapi;
pub mod session;
mod tls;
mod ui;
mod wait;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use kube::Client;
use kube::config::AuthInfo;

use error::ApiError;

pub use tls::TlsFiles;

/// How long a user's client is reused before it is built anew.
const CLIENT_TTL: Duration = Duration::from_secs(300);
/// At most this many cached user clients.
const CLIENT_CACHE: usize = 1024;

/// Settings of the server.
pub struct Settings {
    /// The management cluster: address, CA, timeouts. Its credentials are removed.
    pub upstream: kube::Config,
    /// Mark cookies `Secure` (on unless the GUI is served over plain HTTP on loopback).
    pub secure_cookies: bool,
    /// Lifetime of a GUI session.
    pub session_ttl: Duration,
}

impl Settings {
    /// Settings from a kubeconfig: only the cluster's address and CA are kept.
    pub fn from_kube_config(mut upstream: kube::Config) -> Self {
        upstream.auth_info = AuthInfo::default();
        upstream.headers.clear();
        Settings {
            upstream,
            secure_cookies: true,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

struct Inner {
    upstream: kube::Config,
    clients: Mutex<HashMap<String, (Client, Instant)>>,
    sessions: session::Store,
    secure_cookies: bool,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State for these settings.
    pub fn new(settings: Settings) -> Self {
        AppState(Arc::new(Inner {
            upstream: settings.upstream,
            clients: Mutex::new(HashMap::new()),
            sessions: session::Store::new(settings.session_ttl),
            secure_cookies: settings.secure_cookies,
        }))
    }

    /// A client of the management cluster that authenticates with `token`.
    pub(crate) fn client_for(&self, token: &str) -> Result<Client, ApiError> {
        let now = Instant::now();
        {
            let map = self.0.clients.lock().expect("client cache lock");
            if let Some((c, at)) = map.get(token)
                && now.duration_since(*at) < CLIENT_TTL
            {
                return Ok(c.clone());
            }
        }
        let mut cfg = self.0.upstream.clone();
        cfg.auth_info = AuthInfo {
            token: Some(token.to_string().into()),
            ..AuthInfo::default()
        };
        let client = Client::try_from(cfg).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "Unavailable",
                format!("cannot build a client of the management cluster: {e}"),
            )
        })?;
        let mut map = self.0.clients.lock().expect("client cache lock");
        map.retain(|_, (_, at)| now.duration_since(*at) < CLIENT_TTL);
        if map.len() >= CLIENT_CACHE {
            map.clear();
        }
        map.insert(token.to_string(), (client.clone(), now));
        Ok(client)
    }

    pub(crate) fn sessions(&self) -> &session::Store {
        &self.0.sessions
    }

    pub(crate) fn secure_cookies(&self) -> bool {
        self.0.secure_cookies
    }
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The caller of an API request, with a client acting as them.
pub struct Caller {
    /// Acts with the caller's own token.
    pub client: Client,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
            let token = v
                .strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?;
            return Ok(Caller {
                client: state.client_for(token)?,
            });
        }
        if let Some(id) = cookie(&parts.headers, session::COOKIE)
            && let Some(s) = state.sessions().get(&id)
        {
            // Cookies are sent by the browser on its own; a state-changing request must prove
            // it comes from our pages by echoing the session's CSRF token.
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
                let sent = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !session::constant_time_eq(sent, &s.csrf) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "CsrfRejected",
                        "missing or wrong X-CSRF-Token for a cookie-authenticated request",
                    ));
                }
            }
            return Ok(Caller {
                client: state.client_for(&s.token)?,
            });
        }
        Err(ApiError::unauthorized(
            "send `Authorization: Bearer <token>` with a token of the management cluster",
        ))
    }
}

/// The whole application: REST API, OpenAPI document and GUI.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers on every response: no caching of tenant data, no framing, a strict CSP (our pages
/// load nothing from elsewhere and run only our own script file).
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Access log: method, path and status only — never headers (tokens, cookies) or queries.
    let (method, path, start) = (
        req.method().clone(),
        req.uri().path().to_string(),
        std::time::Instant::now(),
    );
    let mut res = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = res.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    let h = res.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    res
}

/// Serves until `shutdown` completes; over TLS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(state).into_make_service();
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Into::into),
        Some(files) => {
            let listener = tls::TlsListener::new(listener, &files)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(Into::into)
        }
    }
}
