//! Shared setup of the server's integration tests: a real plane with kaas, the `dev` provider and
//! the operator running in-process, two tenants with service-account tokens, and `kaas serve`
//! (the library) listening on a free loopback port.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use kaas_api::Provider;
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;

pub const PROVIDER: &str = include_str!("../../../../examples/provider-inmemory.yaml");

/// An imported-cluster provider (nothing of its clusters is kaas's to stop).
pub const IMPORTED_PROVIDER: &str = "apiVersion: scs.community/v1alpha1
kind: Provider
metadata: {name: imported}
spec:
  providerType: static
  backend: {type: Static, namespace: kaas-provider-imported}
  regions: [{name: onprem}]
  flavors: [{name: any, cpu: 1, memory: 1Gi}]
  kubernetesVersions:
  - {version: 1.36.3, classification: supported, stack: {clusterClass: none}}
  extensions:
  - {name: metrics, version: '0.8', default: true}
  - {name: ingress, version: '1.13', default: true, implementations: [nginx]}
";

pub struct Env {
    pub plane: Plane,
    /// `http://localhost:PORT`
    pub url: String,
    pub token_a: String,
    pub token_b: String,
    pub http: reqwest::Client,
    _operator: tokio::task::JoinHandle<anyhow::Result<()>>,
    _server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn env(cluster_api: bool) -> Env {
    let opts = if cluster_api {
        PlaneOptions::with_capi()
    } else {
        PlaneOptions::capi_crds_only()
    };
    let plane = Plane::start(opts.crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    if !cluster_api {
        plane
            .remove_capi_webhooks()
            .await
            .expect("webhooks removed");
    }
    let admin = plane.client();
    install::install_kaas(&admin).await.expect("kaas installs");
    let provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    install::provider(&admin, &provider, &class)
        .await
        .expect("provider installs");
    for ns in ["tenant-a", "tenant-b"] {
        install::namespace(&admin, ns, &[]).await.unwrap();
    }
    let token_a = install::tenant_service_account(&admin, "tenant-a", "alice")
        .await
        .unwrap();
    let token_b = install::tenant_service_account(&admin, "tenant-b", "bob")
        .await
        .unwrap();
    let cfg = kaas_operator::Config {
        providers: Default::default(),
        metrics_addr: None,
        lease: None,
        concurrency: 8,
        // Absent unless a test writes it: then the bundled release data (and the status says so).
        release_data: Some(
            "kaas-system/kaas-release-data"
                .parse()
                .expect("NAMESPACE/NAME"),
        ),
        settled_requeue: None,
    };
    let operator = tokio::spawn(kaas_operator::run(admin.clone(), cfg));

    // The server gets the admin kubeconfig and must drop its credentials.
    let upstream = plane.kube_config(Identity::Admin).unwrap();
    let settings = kaas_server::Settings::from_kube_config(upstream);
    let state = kaas_server::AppState::new(settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(kaas_server::serve(
        listener,
        state,
        None,
        std::future::pending(),
    ));
    Env {
        plane,
        url: format!("http://localhost:{port}"),
        token_a,
        token_b,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _operator: operator,
        _server: server,
    }
}

/// Polls `check` until it returns Ok, or panics with the last error after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}: {last}");
}

/// A response: status, headers, body text.
pub struct Res {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Res {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

impl Env {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        Res {
            status,
            headers,
            text: res.text().await.unwrap_or_default(),
        }
    }
}

/// The sign-in page's pre-session CSRF pair: the `kaas_login` cookie (`name=value`) and the
/// token of its hidden form field.
pub async fn login_csrf(env: &Env) -> (String, String) {
    let res = env
        .http
        .get(format!("{}/ui/login", env.url))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kaas_login="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_default();
    let html = res.text().await.unwrap();
    let needle = "name=\"login_csrf\" value=\"";
    let token = html
        .find(needle)
        .map(|at| html[at + needle.len()..at + needle.len() + 64].to_string())
        .unwrap_or_default();
    (cookie, token)
}

/// Posts the sign-in form as the sign-in page would (with its pre-session CSRF pair).
pub async fn post_login(env: &Env, token: &str, namespace: &str) -> reqwest::Response {
    let (cookie, csrf) = login_csrf(env).await;
    env.http
        .post(format!("{}/ui/login", env.url))
        .header("cookie", cookie)
        .form(&[
            ("token", token),
            ("namespace", namespace),
            ("login_csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the GUI's form (see [`post_login`]); the session cookie as `name=value`.
pub async fn session_cookie(env: &Env, token: &str, namespace: &str) -> String {
    let res = post_login(env, token, namespace).await;
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kaas_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no session cookie: {}", res.status()))
}

impl Env {
    /// A GUI page, signed in with the session `cookie` (`name=value`).
    pub async fn page(&self, path: &str, cookie: &str) -> Res {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .expect("the server answers");
        Res {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            text: res.text().await.unwrap_or_default(),
        }
    }
}

/// One raw HTTP/1.1 exchange over a fresh connection: the status code of the answer (`None`
/// when the server closed the connection without one).
pub async fn raw(url: &str, request: &[u8], timeout: Duration) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .replace("localhost", "127.0.0.1");
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    if s.write_all(request).await.is_err() {
        return None;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(timeout, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&buf);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}
