//! `kaas serve`: the provider's endpoint for its customers — a REST API under `/api/v1` with an
//! OpenAPI document, and a web GUI under `/ui` — in front of the management cluster.
//!
//! The server has no Kubernetes identity of its own. It reads only the address and CA of the
//! management cluster from a kubeconfig and makes every call with the caller's bearer token (from
//! the `Authorization` header, or from the GUI session the user signed in to with that token), so
//! Kubernetes RBAC decides what each user may see and do. Validation runs before writing, with the
//! same functions as `kaas validate`, and errors carry field paths.

pub mod api;
mod edge;
pub mod error;
pub mod openapi;
mod plan;
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
use axum::http::{HeaderMap, Method, StatusCode, header};
use kube::Client;
use kube::config::AuthInfo;

use error::ApiError;

pub use tls::TlsFiles;

/// How long a token's identity (and its client) is reused before the API server is asked again.
const AUTH_TTL: Duration = Duration::from_secs(60);
/// At most this many cached identities (clients) in all.
const CLIENT_CACHE: usize = 4096;
/// At most this many cached clients (distinct tokens) of one identity.
pub const MAX_CLIENTS_PER_IDENTITY: usize = 16;
/// Token reviews of new tokens running at once (each is one call to the API server).
const AUTH_CONCURRENCY: usize = 32;
/// How long a token review may take.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send a request's whole head within this time (also the idle keep-alive time).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent `?wait=` requests of one identity.
pub const MAX_WAITS_PER_IDENTITY: usize = 8;
/// A request (other than a `?wait=`, bounded by its own timeout) must be answered within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request body on any route.
pub const BODY_LIMIT: usize = 1 << 20;
/// Largest request head (request line and headers).
pub const HEADER_LIMIT: usize = 32 << 10;
/// Default cap of open connections.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest bearer token accepted.
const MAX_TOKEN: usize = 16 << 10;

/// Settings of the server.
pub struct Settings {
    /// The management cluster: address, CA, timeouts. Its credentials are removed.
    pub upstream: kube::Config,
    /// Mark cookies `Secure` (on unless the GUI is served over plain HTTP on loopback).
    pub secure_cookies: bool,
    /// Lifetime of a GUI session.
    pub session_ttl: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
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
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// A token the API server accepted, and who it belongs to.
#[derive(Clone)]
struct Known {
    client: Client,
    who: api::WhoAmI,
    at: Instant,
}

struct Inner {
    upstream: kube::Config,
    /// By SHA-256 of the token: the token itself is never a key, never logged.
    identities: Mutex<HashMap<[u8; 32], Known>>,
    reviews: tokio::sync::Semaphore,
    waits: Mutex<HashMap<String, usize>>,
    sessions: session::Store,
    secure_cookies: bool,
    max_connections: usize,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// Whether `token` can be a bearer token at all: visible ASCII only (RFC 6750 `b64token` and
/// then some), bounded. Anything else is refused before it reaches a header.
pub fn plausible_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AppState {
    /// State for these settings.
    pub fn new(settings: Settings) -> Self {
        AppState(Arc::new(Inner {
            upstream: settings.upstream,
            identities: Mutex::new(HashMap::new()),
            reviews: tokio::sync::Semaphore::new(AUTH_CONCURRENCY),
            waits: Mutex::new(HashMap::new()),
            sessions: session::Store::new(settings.session_ttl),
            secure_cookies: settings.secure_cookies,
            max_connections: settings.max_connections.max(1),
        }))
    }

    /// Authenticates `token` with the management cluster (a SelfSubjectReview, remembered for
    /// [`AUTH_TTL`] by the token's hash) and returns a client acting with it and who it is.
    /// Nothing else is done for a request before this succeeded.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
    ) -> Result<(Client, api::WhoAmI), ApiError> {
        if !plausible_token(token) {
            return Err(ApiError::unauthorized(
                "the token is not a bearer token (visible ASCII characters only)",
            ));
        }
        let key = digest(token);
        if let Some(k) = self.known(&key) {
            return Ok((k.client, k.who));
        }
        let _permit = self
            .0
            .reviews
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        if let Some(k) = self.known(&key) {
            return Ok((k.client, k.who));
        }
        let mut cfg = self.0.upstream.clone();
        cfg.auth_info = AuthInfo {
            token: Some(token.to_string().into()),
            ..AuthInfo::default()
        };
        let client = Client::try_from(cfg).map_err(|e| {
            ApiError::unavailable(format!(
                "cannot build a client of the management cluster: {e}"
            ))
        })?;
        let who = tokio::time::timeout(AUTH_TIMEOUT, api::whoami(&client))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    "the management cluster did not review the token in time",
                )
            })??;
        if who.username.is_empty() {
            return Err(ApiError::unauthorized("the token belongs to no user"));
        }
        let now = Instant::now();
        let mut map = self.0.identities.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| now.duration_since(k.at) < AUTH_TTL);
        // Bounded per identity (many tokens of one user) and in all: the oldest go first.
        let mut same: Vec<([u8; 32], Instant)> = map
            .iter()
            .filter(|(_, k)| k.who.username == who.username)
            .map(|(h, k)| (*h, k.at))
            .collect();
        same.sort_by_key(|(_, at)| *at);
        while same.len() >= MAX_CLIENTS_PER_IDENTITY {
            map.remove(&same.remove(0).0);
        }
        if map.len() >= CLIENT_CACHE
            && let Some(oldest) = map.iter().min_by_key(|(_, k)| k.at).map(|(h, _)| *h)
        {
            map.remove(&oldest);
        }
        map.insert(
            key,
            Known {
                client: client.clone(),
                who: who.clone(),
                at: now,
            },
        );
        Ok((client, who))
    }

    fn known(&self, key: &[u8; 32]) -> Option<Known> {
        let map = self.0.identities.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|k| k.at.elapsed() < AUTH_TTL).cloned()
    }

    /// A slot for one more `?wait=` of `user`, or 429 when they have [`MAX_WAITS_PER_IDENTITY`].
    pub(crate) fn wait_slot(&self, user: &str) -> Result<WaitSlot, ApiError> {
        let mut map = self.0.waits.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.to_string()).or_default();
        if *n >= MAX_WAITS_PER_IDENTITY {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "at most {MAX_WAITS_PER_IDENTITY} waiting requests per identity; wait for one to end"
                ),
            ));
        }
        *n += 1;
        Ok(WaitSlot {
            state: self.clone(),
            user: user.to_string(),
        })
    }

    pub(crate) fn sessions(&self) -> &session::Store {
        &self.0.sessions
    }

    pub(crate) fn secure_cookies(&self) -> bool {
        self.0.secure_cookies
    }
}

/// One running `?wait=`; released when dropped.
pub(crate) struct WaitSlot {
    state: AppState,
    user: String,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut map = self.state.0.waits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
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

/// The caller of an API request, authenticated, with a client acting as them.
pub struct Caller {
    /// Acts with the caller's own token.
    pub client: Client,
    /// Who the API server says the caller is.
    pub user: String,
    state: AppState,
}

impl Caller {
    /// A slot for a `?wait=` of this caller (429 beyond [`MAX_WAITS_PER_IDENTITY`]).
    pub(crate) fn wait_slot(&self) -> Result<WaitSlot, ApiError> {
        self.state.wait_slot(&self.user)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
            v.strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?
                .to_string()
        } else if let Some(id) = cookie(&parts.headers, session::COOKIE)
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
                        StatusCode::FORBIDDEN,
                        "CsrfRejected",
                        "missing or wrong X-CSRF-Token for a cookie-authenticated request",
                    ));
                }
            }
            s.token
        } else {
            return Err(ApiError::unauthorized(
                "send `Authorization: Bearer <token>` with a token of the management cluster",
            ));
        };
        let (client, who) = state.authenticate(&token).await?;
        Ok(Caller {
            client,
            user: who.username,
            state: state.clone(),
        })
    }
}

/// The whole application: REST API, OpenAPI document and GUI.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        // Run after routing: the matched route's path parameters are known.
        .layer(axum::middleware::from_fn(edge::names))
        .layer(axum::middleware::from_fn(edge::error_format))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(edge::deadline))
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

/// Serves until `shutdown` completes; over TLS when `tls` is given. Every connection must send
/// each request head within [`HEADER_TIMEOUT`] (idle keep-alive connections are closed after
/// it too), at most `max_connections` are open at once, and every request ends within
/// [`REQUEST_TIMEOUT`] (a `?wait=` within its own bounded timeout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let max = state.0.max_connections;
    let app = router(state);
    match tls {
        None => run(listener, app, max, shutdown).await,
        Some(files) => run(tls::TlsListener::new(listener, &files)?, app, max, shutdown).await,
    }
}

async fn run<L>(
    mut listener: L,
    app: Router,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Beyond the cap, new clients wait in the kernel's listen backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s?,
            _ = &mut shutdown => break,
        };
        let (io, _peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_header_size(HEADER_LIMIT)
            .keep_alive(true);
        let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing");
    }
    Ok(())
}
