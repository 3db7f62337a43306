//! Short-lived kubeconfigs (`KubeconfigRequest`, issue #19) on the hosted backend with real API
//! servers: a real management plane, `kaas hosted-runtime` and `kaas operator` as their own
//! processes, a hosted workload cluster, and `kaas kubeconfig` run as the tenant. An admin
//! credential works and stops working at its expiry (the workload API server refuses the expired
//! certificate); a viewer lists but cannot create; another tenant can neither request in the
//! owner's namespace nor name its cluster from its own; a lifetime over the Provider's cap is
//! refused with a condition; the Provider can withdraw the long-lived admin kubeconfig. OIDC end
//! to end: the cluster's `access.oidc` names a real issuer started by the test (its own CA); the
//! workload API server takes that issuer's tokens for the client id with the configured claims
//! and prefixes, refuses a wrong audience, a forged signature and an expired token, and follows a
//! change of the settings.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, until};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use kaas_api::cluster::{AccessSpec, OidcSpec};
use kaas_api::kubeconfig::{KubeconfigRequest, KubeconfigRequestSpec, KubeconfigRole};
use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

const PROVIDER: &str = include_str!("../../../examples/provider-local.yaml");
const TENANT_A: &str = "tenant-ka";
const TENANT_B: &str = "tenant-kb";

/// `kaas kubeconfig …` as the identity of `kubeconfig`: (success, stdout, stderr).
fn kaas_kubeconfig(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kaas"))
        .arg("kubeconfig")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("running kaas kubeconfig");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn client_of(yaml: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.connect_timeout = Some(Duration::from_secs(5));
    cfg.read_timeout = Some(Duration::from_secs(10));
    Client::try_from(cfg).unwrap()
}

fn request(cluster: &str, expiration: &str, role: KubeconfigRole, user: &str) -> KubeconfigRequest {
    let mut r = KubeconfigRequest::new(
        "",
        KubeconfigRequestSpec {
            cluster: cluster.into(),
            expiration: expiration.into(),
            role,
            user: user.into(),
        },
    );
    r.metadata.name = None;
    r.metadata.generate_name = Some("r-".into());
    r
}

/// Waits for the request's `Issued` condition to leave Unknown: (status, reason, message).
async fn verdict(api: &Api<KubeconfigRequest>, name: &str) -> (String, String, String) {
    until(
        &format!("a verdict on {name}"),
        Duration::from_secs(120),
        || async {
            let r = api.get(name).await.map_err(|e| e.to_string())?;
            let st = r.status.unwrap_or_default();
            match st.conditions.iter().find(|c| c.type_ == "Issued") {
                Some(c) if c.status != "Unknown" => {
                    Ok((c.status.clone(), c.reason.clone(), c.message.clone()))
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// A client of the workload API server in `kubeconfig_yaml` that sends `token` instead.
async fn client_with_token(kubeconfig_yaml: &str, token: &str) -> Client {
    let mut v: serde_yaml::Value = serde_yaml::from_str(kubeconfig_yaml).unwrap();
    v["users"][0]["user"] = serde_yaml::to_value(serde_json::json!({ "token": token })).unwrap();
    client_of(&serde_yaml::to_string(&v).unwrap()).await
}

/// Who the API server takes the client for, or the HTTP status it refused it with (0: no answer).
async fn authenticated_as(c: &Client) -> Result<(String, Vec<String>), u16> {
    match Api::<SelfSubjectReview>::all(c.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => {
            let u = r.status.unwrap().user_info.unwrap();
            Ok((u.username.unwrap(), u.groups.unwrap_or_default()))
        }
        Err(kube::Error::Api(e)) => Err(e.code),
        Err(_) => Err(0),
    }
}

async fn whoami(c: &Client) -> (String, Vec<String>) {
    let r = Api::<SelfSubjectReview>::all(c.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let u = r.status.unwrap().user_info.unwrap();
    (u.username.unwrap(), u.groups.unwrap_or_default())
}

/// A plain HTTP/1.1 POST with a bearer token: (status, body).
async fn http_post(port: u16, path: &str, token: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let (code, _, body) = http(
        port,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    (code, body)
}

/// A plain HTTP/1.1 request with extra headers: (status, head, body).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(150), s.read_to_end(&mut out))
        .await
        .expect("the server answers")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let rest = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (code, head.to_string(), rest)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"a": "b"}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_kubeconfigs_on_a_hosted_cluster() {
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let admin = plane.client();
    install::install_kaas(&admin).await.unwrap();
    let mut provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    // The cap: one hour.
    provider.spec.access = Some(kaas_api::provider::ProviderAccess {
        max_kubeconfig_lifetime: Some("1h".into()),
        admin_kubeconfig_secret: None,
    });
    install::provider(&admin, &provider, "").await.unwrap();
    let token_a = install::tenant_service_account(&admin, TENANT_A, "anna")
        .await
        .unwrap();
    let token_b = install::tenant_service_account(&admin, TENANT_B, "bert")
        .await
        .unwrap();
    let tenant_a = plane.client_for_token(&token_a).unwrap();
    let tenant_b = plane.client_for_token(&token_b).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let admin_kc = dir.path().join("admin.kubeconfig");
    plane.write_kubeconfig(Identity::Admin, &admin_kc).unwrap();
    let kc_a = dir.path().join("a.kubeconfig");
    plane
        .write_kubeconfig(Identity::Token(&token_a), &kc_a)
        .unwrap();
    let state = dir.path().join("hosted");
    let _cleanup = kaas_hosted::StopAllOnDrop(state.clone());
    let state_arg = state.to_string_lossy().into_owned();
    let _runtime = Daemon::start(
        &["hosted-runtime", "--state-dir", &state_arg],
        &admin_kc,
        dir.path().join("runtime.log"),
        &[("RUST_LOG", "info")],
    );
    let operator = Daemon::start(
        &["operator", "--providers", "local"],
        &admin_kc,
        dir.path().join("operator.log"),
        &[("RUST_LOG", "info")],
    );

    let issuer = kaas_harness::oidc::TestIssuer::start().await.unwrap();
    let clusters: Api<Cluster> = Api::namespaced(tenant_a.clone(), TENANT_A);
    let mut c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: k1, namespace: {TENANT_A}}}\nspec:\n  provider: {{name: local}}\n  kubernetes: {{version: 1.35.x}}\n  workers: [{{name: default, count: 1}}]\n"
    ))
    .unwrap();
    c.status = None;
    c.spec.access = Some(AccessSpec {
        oidc: Some(OidcSpec {
            issuer_url: issuer.url().into(),
            client_id: "kaas".into(),
            certificate_authority: Some(issuer.ca_pem().into()),
            ..OidcSpec::default()
        }),
        ..AccessSpec::default()
    });
    clusters.create(&PostParams::default(), &c).await.unwrap();

    // 1. A short-lived admin credential, through the CLI as tenant A.
    let (ok, yaml, err) = kaas_kubeconfig(
        &kc_a,
        &[
            "k1",
            "--expiration",
            "25s",
            "-n",
            TENANT_A,
            "--timeout",
            "240s",
        ],
    );
    assert!(
        ok,
        "kaas kubeconfig failed: {err}\noperator:\n{}",
        operator.tail()
    );
    assert!(err.contains("waiting for the operator"), "progress: {err}");
    let issued_at = Instant::now();
    let w = client_of(&yaml).await;
    let (user, groups) = whoami(&w).await;
    assert_eq!(user, format!("system:serviceaccount:{TENANT_A}:anna"));
    assert!(groups.contains(&"kaas:admins".to_string()), "{groups:?}");
    Api::<Namespace>::all(w.clone())
        .list(&ListParams::default())
        .await
        .expect("the admin credential lists namespaces");
    Api::<ConfigMap>::namespaced(w.clone(), "default")
        .create(&PostParams::default(), &config_map("by-admin"))
        .await
        .expect("the admin credential creates");
    // Status, Secret (owned by the request) and the Event on the Cluster; no key anywhere.
    let reqs_a: Api<KubeconfigRequest> = Api::namespaced(tenant_a.clone(), TENANT_A);
    let all = reqs_a.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 1);
    let r = &all[0];
    let st = r.status.clone().unwrap();
    let expires = st.expires_at.clone().expect("expiresAt");
    let secret_name = st.secret_name.clone().expect("secretName");
    assert!(!serde_json::to_string(&st).unwrap().contains("PRIVATE KEY"));
    let s = Api::<Secret>::namespaced(tenant_a.clone(), TENANT_A)
        .get(&secret_name)
        .await
        .unwrap();
    let owner = &s.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("KubeconfigRequest", r.metadata.name.as_deref().unwrap())
    );
    let events = until(
        "the KubeconfigIssued event",
        Duration::from_secs(30),
        || async {
            let evs = Api::<Event>::namespaced(tenant_a.clone(), TENANT_A)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let mine: Vec<Event> = evs
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("KubeconfigIssued"))
                .collect();
            if mine.is_empty() {
                Err("none yet".into())
            } else {
                Ok(mine)
            }
        },
    )
    .await;
    let note = events[0].message.clone().unwrap_or_default();
    assert_eq!(events[0].involved_object.kind.as_deref(), Some("Cluster"));
    assert_eq!(events[0].involved_object.name.as_deref(), Some("k1"));
    assert!(
        note.contains("admin") && note.contains(&user) && note.contains(&expires),
        "{note}"
    );
    assert!(
        !note.contains("PRIVATE KEY") && !note.contains("BEGIN"),
        "{note}"
    );
    let op_log = operator.text();
    assert!(!op_log.contains("PRIVATE KEY"), "the operator logged a key");

    // 2. A viewer lists but cannot create.
    let (ok, vyaml, err) = kaas_kubeconfig(
        &kc_a,
        &["k1", "--viewer", "--expiration", "10m", "-n", TENANT_A],
    );
    assert!(ok, "viewer: {err}");
    let v = client_of(&vyaml).await;
    assert!(whoami(&v).await.1.contains(&"kaas:viewers".to_string()));
    let cms: Api<ConfigMap> = Api::namespaced(v.clone(), "default");
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("by-admin")),
        "the viewer sees what the admin created"
    );
    match cms
        .create(&PostParams::default(), &config_map("by-viewer"))
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("a viewer created a ConfigMap: {other:?}"),
    }

    // REST: `POST …/clusters/{name}/kubeconfig` through `kaas serve`, with the tenant's token.
    let upstream = plane.kube_config(Identity::Admin).unwrap();
    let server_state =
        kaas_server::AppState::new(kaas_server::Settings::from_kube_config(upstream));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(kaas_server::serve(
        listener,
        server_state,
        None,
        std::future::pending(),
    ));
    let path = format!("/api/v1/namespaces/{TENANT_A}/clusters/k1/kubeconfig");
    let (code, body) = http_post(
        port,
        &path,
        &token_a,
        r#"{"expiration":"5m","role":"viewer"}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let rv = client_of(&body).await;
    let (ruser, rgroups) = whoami(&rv).await;
    assert_eq!(ruser, user);
    assert!(rgroups.contains(&"kaas:viewers".to_string()), "{rgroups:?}");
    let (code, body) = http_post(port, &path, &token_a, r#"{"expiration":"3h"}"#).await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("LifetimeExceedsPolicy"), "{body}");
    let (code, body) = http_post(port, &path, &token_b, r#"{"expiration":"5m"}"#).await;
    assert_eq!(code, 403, "tenant B through REST: {body}");

    // The GUI: signed in as tenant A, the cluster page's button gets a short-lived viewer
    // kubeconfig as a download; a form without the session's CSRF token is refused.
    let login = "0123456789abcdef".repeat(4);
    let form = "application/x-www-form-urlencoded";
    let (code, head, _) = http(
        port,
        "POST",
        "/ui/login",
        &[
            ("Content-Type", form),
            ("Cookie", &format!("kaas_login={login}")),
        ],
        &format!("token={token_a}&namespace={TENANT_A}&login_csrf={login}"),
    )
    .await;
    assert!(code == 303 || code == 302, "sign-in: {code} {head}");
    let session = head
        .lines()
        .find_map(|l| l.split_once("kaas_session=").map(|(_, v)| v))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let cookie = format!("kaas_session={session}");
    let (code, _, page) = http(port, "GET", "/ui/clusters/k1", &[("Cookie", &cookie)], "").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("kubeconfig-request"),
        "the button on the cluster page"
    );
    let csrf = page
        .split_once(r#"name="csrf-token" content=""#)
        .and_then(|(_, r)| r.split('"').next())
        .expect("the page's CSRF token")
        .to_string();
    let (code, head, gui_yaml) = http(
        port,
        "POST",
        "/ui/clusters/k1/kubeconfig",
        &[("Content-Type", form), ("Cookie", &cookie)],
        &format!("csrf={csrf}&expiration=30m&role=viewer"),
    )
    .await;
    assert_eq!(code, 201, "{head}\n{gui_yaml}");
    assert!(
        head.to_ascii_lowercase().contains("attachment"),
        "a download: {head}"
    );
    let g = client_of(&gui_yaml).await;
    let (guser, ggroups) = whoami(&g).await;
    assert_eq!(guser, user, "issued in the signed-in user's name");
    assert!(ggroups.contains(&"kaas:viewers".to_string()), "{ggroups:?}");
    let (code, _, _) = http(
        port,
        "POST",
        "/ui/clusters/k1/kubeconfig",
        &[("Content-Type", form), ("Cookie", &cookie)],
        "csrf=forged&expiration=30m&role=admin",
    )
    .await;
    assert_eq!(code, 403, "a forged CSRF token");

    // 3. Tenant B: no request in A's namespace (RBAC), none in its own naming A's cluster, none in
    //    anyone else's name (admission policy).
    let in_a: Api<KubeconfigRequest> = Api::namespaced(tenant_b.clone(), TENANT_A);
    match in_a
        .create(
            &PostParams::default(),
            &request(
                "k1",
                "10m",
                KubeconfigRole::Admin,
                &format!("system:serviceaccount:{TENANT_B}:bert"),
            ),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("tenant B created a request in A's namespace: {other:?}"),
    }
    let reqs_b: Api<KubeconfigRequest> = Api::namespaced(tenant_b.clone(), TENANT_B);
    match reqs_b
        .create(
            &PostParams::default(),
            &request("k1", "10m", KubeconfigRole::Admin, &user),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert!(
                e.message.contains("spec.user must be your own user name"),
                "{e:?}"
            )
        }
        other => panic!("tenant B requested in A's name: {other:?}"),
    }
    let b_req = reqs_b
        .create(
            &PostParams::default(),
            &request(
                "k1",
                "10m",
                KubeconfigRole::Admin,
                &format!("system:serviceaccount:{TENANT_B}:bert"),
            ),
        )
        .await
        .unwrap();
    let (status, reason, message) = verdict(&reqs_b, b_req.metadata.name.as_deref().unwrap()).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ClusterNotFound"),
        "{message}"
    );
    assert!(message.contains(TENANT_B), "{message}");
    assert!(
        Api::<Secret>::namespaced(admin.clone(), TENANT_B)
            .list(&ListParams::default().labels("scs.community/kubeconfig-request"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing issued to tenant B"
    );

    // 4. Over the Provider's cap: refused, not capped.
    let (ok, _, err) = kaas_kubeconfig(&kc_a, &["k1", "--expiration", "2h", "-n", TENANT_A]);
    assert!(!ok);
    assert!(
        err.contains("LifetimeExceedsPolicy") && err.contains("maxKubeconfigLifetime"),
        "{err}"
    );

    // 5. The admin credential stops working at its expiry (the workload API server refuses it).
    let left = Duration::from_secs(27).saturating_sub(issued_at.elapsed());
    tokio::time::sleep(left).await;
    let expired = client_of(&yaml).await;
    match Api::<Namespace>::all(expired)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 401, "{e:?}"),
        other => panic!("an expired credential still works: {other:?}"),
    }
    let name = r.metadata.name.clone().unwrap();
    let (status, reason, _) = until("Expired", Duration::from_secs(30), || async {
        let r = reqs_a.get(&name).await.map_err(|e| e.to_string())?;
        let c = r.status.unwrap_or_default().conditions;
        match c.iter().find(|c| c.type_ == "Issued") {
            Some(c) if c.reason == "Expired" => {
                Ok((c.status.clone(), c.reason.clone(), c.message.clone()))
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Expired"));
    // The viewer's credential still works meanwhile.
    Api::<ConfigMap>::namespaced(client_of(&vyaml).await, "default")
        .list(&ListParams::default())
        .await
        .expect("the 10-minute viewer credential still works");

    // 6. The Provider withdraws the long-lived admin kubeconfig: the tenant's copy goes.
    let secrets_a: Api<Secret> = Api::namespaced(admin.clone(), TENANT_A);
    until(
        "the long-lived kubeconfig copied",
        Duration::from_secs(60),
        || async {
            match secrets_a.get_opt("k1-kubeconfig").await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    Api::<Provider>::all(admin.clone())
        .patch(
            "local",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"access": {"adminKubeconfigSecret": false}}}),
            ),
        )
        .await
        .unwrap();
    until(
        "the long-lived kubeconfig removed",
        Duration::from_secs(90),
        || async {
            match secrets_a.get_opt("k1-kubeconfig").await {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|s| s.map(|s| s.metadata.name)))),
            }
        },
    )
    .await;

    // Deleting a request deletes its Secret (owner reference; the plane runs the garbage collector).
    reqs_a.delete(&name, &Default::default()).await.unwrap();
    until(
        "the issued Secret deleted with its request",
        Duration::from_secs(60),
        || async {
            match Api::<Secret>::namespaced(admin.clone(), TENANT_A)
                .get_opt(&secret_name)
                .await
            {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|s| s.is_some()))),
            }
        },
    )
    .await;
    // 7. OIDC: a token of the cluster's issuer for its client id authenticates, with the SCS
    //    stacks' defaults (claim `preferred_username`, prefix `oidc:` for users and groups).
    let as_token = |t: String| {
        let y = yaml.clone();
        async move { authenticated_as(&client_with_token(&y, &t).await).await }
    };
    let hour = Duration::from_secs(3600);
    let alice = issuer.id_token("kaas", "alice", &["dev"], hour).unwrap();
    let (who, groups) = as_token(alice.clone())
        .await
        .expect("the issuer's token is taken");
    assert_eq!(who, "oidc:alice");
    assert!(groups.contains(&"oidc:dev".to_string()), "{groups:?}");
    assert!(
        issuer.requests() >= 2,
        "the API server fetched discovery and keys"
    );
    // Authenticated is not authorised: RBAC in the workload cluster decides what alice may do.
    match Api::<Namespace>::all(client_with_token(&yaml, &alice).await)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("an OIDC user without a binding listed namespaces: {other:?}"),
    }
    // Another audience, a forged signature, an expired token: 401.
    let other_aud = issuer.id_token("not-kaas", "alice", &[], hour).unwrap();
    assert_eq!(as_token(other_aud).await, Err(401), "a wrong audience");
    let forged = issuer
        .sign_with_unknown_key(&issuer.claims("kaas", "mallory", &[], hour))
        .unwrap();
    assert_eq!(
        as_token(forged).await,
        Err(401),
        "a key the issuer does not publish"
    );
    let mut old = issuer.claims("kaas", "alice", &[], hour);
    let now = old["iat"].as_u64().unwrap();
    (old["iat"], old["nbf"], old["exp"]) = (
        (now - 7200).into(),
        (now - 7200).into(),
        (now - 3600).into(),
    );
    assert_eq!(
        as_token(issuer.sign(&old).unwrap()).await,
        Err(401),
        "an expired token"
    );
    // The tenant changes the prefix; the workload API server follows.
    clusters
        .patch(
            "k1",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"access": {"oidc": {"usernamePrefix": "corp:"}}}}),
            ),
        )
        .await
        .unwrap();
    until(
        "the new prefix on the workload API server",
        Duration::from_secs(180),
        || async {
            match as_token(alice.clone()).await {
                Ok((who, _)) if who == "corp:alice" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}
