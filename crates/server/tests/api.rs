//! `kaas serve` against a real API server (Cluster API CRDs installed, its managers not needed):
//! the OpenAPI document matches the served routes, validation errors carry field paths and create
//! nothing, tenants are isolated through REST and GUI, provider credentials never appear in a
//! response, sessions and CSRF protection work, and waits end with a timeout that says so.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kaas_api::Provider;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use reqwest::Method;
use serde_json::json;

const MARKER: &str = "s3cr3t-provider-password-7f1c";

fn cluster(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn openapi_document_matches_the_served_routes() {
    let env = env(false).await;
    let res = env
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert_eq!(doc, kaas_server::openapi::document());
    let parsed: openapiv3::OpenAPI = serde_json::from_value(doc.clone()).expect("OpenAPI 3.0");
    let mut seen = 0;
    for (path, item) in &parsed.paths.paths {
        let item = item.as_item().unwrap();
        for (method, op) in item.iter() {
            seen += 1;
            let concrete = path
                .replace("{namespace}", "tenant-a")
                .replace("{name}", "x")
                .replace("{provider}", "dev");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m == Method::POST || m == Method::PUT).then(|| json!({}));
            let res = env.call(m.clone(), &concrete, None, body).await;
            let id = op.operation_id.as_deref().unwrap();
            if id == "getOpenApi" {
                assert_eq!(res.status, 200);
                continue;
            }
            // Served (not the 404 fallback, not 405) and protected.
            assert_eq!(res.status, 401, "{method} {path}: {}", res.text);
            assert_eq!(res.json()["code"], "Unauthorized");
            // Every documented error response of the operation has the Error schema.
            assert!(
                op.responses
                    .responses
                    .contains_key(&openapiv3::StatusCode::Code(401))
            );
        }
    }
    assert_eq!(seen, kaas_server::openapi::OPERATIONS.len());
    // Undocumented routes are not served.
    for (m, p) in [
        (Method::GET, "/api/v1/namespaces/tenant-a/secrets"),
        (Method::GET, "/api/v1/clusters"),
        (Method::PATCH, "/api/v1/namespaces/tenant-a/clusters/x"),
    ] {
        let res = env.call(m.clone(), p, Some(&env.token_a), None).await;
        assert!(
            res.status == 404 || res.status == 405,
            "{m} {p}: {} {}",
            res.status,
            res.text
        );
    }
}

#[tokio::test]
async fn validation_errors_name_field_paths_and_create_nothing() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    let post = "/api/v1/namespaces/tenant-a/clusters";

    // Offering: a flavor the provider does not offer.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "bad",
                json!({"provider": {"name": "dev"}, "workers": [{"name": "w", "flavor": "m9.huge", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    let body = res.json();
    assert_eq!(body["code"], "Invalid");
    assert_eq!(body["errors"][0]["path"], "spec.workers[0].flavor");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("offered: small, medium, large"),
        "{body}"
    );

    // Schema and CEL: several problems at once, each with its path.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "bad",
                json!({"provider": {"name": "dev"}, "workers": [{"name": "Not_A_Label", "count": -1}], "bogus": 1}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    let paths: Vec<String> = res.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    for p in [
        "spec.workers[0].name",
        "spec.workers[0].count",
        "spec.bogus",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing in {paths:?}");
    }

    // A provider that does not exist.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster("bad", json!({"provider": {"name": "nope"}}))),
        )
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["path"], "spec.provider.name");

    // Malformed JSON and a namespace that contradicts the URL.
    let res = env
        .http
        .post(format!("{}{post}", env.url))
        .bearer_auth(&env.token_a)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let mut other = cluster("bad", json!({"provider": {"name": "dev"}}));
    other["metadata"]["namespace"] = json!("tenant-b");
    let res = env.call(Method::POST, post, a, Some(other)).await;
    assert_eq!(res.json()["errors"][0]["path"], "metadata.namespace");

    // Nothing was created.
    let res = env.call(Method::GET, &format!("{post}/bad"), a, None).await;
    assert_eq!(res.status, 404, "{}", res.text);
    assert_eq!(res.json()["code"], "NotFound");

    // A valid cluster is created; a scale of an unknown pool and a skipped minor are refused.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "good",
                json!({"provider": {"name": "dev"}, "kubernetes": {"version": "1.35.x"}, "workers": [{"name": "w", "flavor": "small", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.json()["metadata"]["namespace"], "tenant-a");
    let res = env
        .call(
            Method::POST,
            &format!("{post}/good/scale"),
            a,
            Some(json!({"pool": "nope", "count": 2})),
        )
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["path"], "pool");
    let res = env
        .call(
            Method::POST,
            &format!("{post}/good/scale"),
            a,
            Some(json!({"pool": "w", "count": 2})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["spec"]["workers"][0]["count"], 2);
    let res = env
        .call(
            Method::POST,
            &format!("{post}/good/upgrade"),
            a,
            Some(json!({"version": "1.34.4"})),
        )
        .await;
    assert_eq!(res.status, 422, "an expired version: {}", res.text);
    assert_eq!(res.json()["errors"][0]["path"], "spec.kubernetes.version");

    // Replace the spec (PUT): validated like a create, controllers' metadata kept.
    let res = env
        .call(
            Method::GET,
            &format!("{post}/good?wait=SpecAccepted&timeout=60s"),
            a,
            None,
        )
        .await;
    let mut current = res.json();
    current["spec"]["workers"][0]["count"] = json!(3);
    current["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    let res = env
        .call(
            Method::PUT,
            &format!("{post}/good"),
            a,
            Some(current.clone()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let replaced = res.json();
    assert_eq!(replaced["spec"]["workers"][0]["count"], 3);
    assert_eq!(
        replaced["metadata"]["finalizers"][0],
        "scs.community/cluster"
    );
    // The same body again carries a stale resourceVersion: a conflict, not a lost update.
    let res = env
        .call(Method::PUT, &format!("{post}/good"), a, Some(current))
        .await;
    assert_eq!(res.status, 409, "{}", res.text);
    let mut bad = replaced.clone();
    bad["spec"]["workers"][0]["flavor"] = json!("m9.huge");
    let res = env
        .call(Method::PUT, &format!("{post}/good"), a, Some(bad))
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["path"], "spec.workers[0].flavor");

    // Waiting: without Cluster API's managers the cluster cannot become Ready, and the wait says so.
    let res = env
        .call(
            Method::GET,
            &format!("{post}/good?wait=Ready&timeout=3s"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 504, "{}", res.text);
    let body = res.json();
    assert_eq!(body["code"], "WaitTimeout");
    assert_eq!(body["cluster"]["metadata"]["name"], "good");
    // But it gets accepted by the operator.
    let res = env
        .call(
            Method::GET,
            &format!("{post}/good?wait=SpecAccepted&timeout=60s"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = env
        .call(Method::GET, &format!("{post}/good?wait=Bogus"), a, None)
        .await;
    assert_eq!(res.status, 400);
}

#[tokio::test]
async fn tenants_are_isolated_and_credentials_never_appear() {
    let env = env(false).await;
    let admin = env.plane.client();
    // The provider gets real-looking credentials; the operator copies them where Cluster API reads
    // them. No response to a tenant may ever contain them.
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("dev-credentials".into()),
            namespace: Some("kaas-provider-dev".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "clouds.yaml".to_string(),
            ByteString(format!("password: {MARKER}").into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), "kaas-provider-dev")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    Api::<Provider>::all(admin.clone())
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"credentialsRef": {"name": "dev-credentials"}}})),
        )
        .await
        .unwrap();

    let (a, b) = (Some(env.token_a.as_str()), Some(env.token_b.as_str()));
    let base = "/api/v1/namespaces/tenant-a/clusters";
    let res = env
        .call(
            Method::POST,
            base,
            a,
            Some(cluster(
                "a1",
                json!({"provider": {"name": "dev"}, "workers": [{"name": "w", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    // For OpenStack stacks the operator copies the credentials into the provider-side namespace,
    // where Cluster API reads them; the in-memory stack needs none, so the copy is made here.
    let capi_ns = kaas_render::capi_namespace("dev", "tenant-a");
    until(
        "the provider-side namespace",
        Duration::from_secs(60),
        || async {
            Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
                .get_opt(&capi_ns)
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let mut copy = secret.clone();
    copy.metadata.name = Some("kaas-provider-credentials".into());
    copy.metadata.namespace = Some(capi_ns.clone());
    Api::<Secret>::namespaced(admin.clone(), &capi_ns)
        .create(&PostParams::default(), &copy)
        .await
        .unwrap();

    let mut answers = Vec::new();
    for path in [
        "/api/v1/whoami".to_string(),
        "/api/v1/providers".to_string(),
        "/api/v1/providers/dev".to_string(),
        base.to_string(),
        format!("{base}/a1"),
        format!("{base}/a1/diagnostics"),
        format!("{base}/a1/kubeconfig"),
        format!("{base}/a1/compliance"),
    ] {
        let res = env.call(Method::GET, &path, a, None).await;
        assert!(res.status < 500, "{path}: {} {}", res.status, res.text);
        answers.push((path, res));
    }
    let who = answers[0].1.json();
    assert_eq!(who["username"], "system:serviceaccount:tenant-a:alice");
    assert_eq!(who["namespace"], "tenant-a");
    assert_eq!(answers[4].1.status, 200);
    let diag = answers[5].1.json();
    assert_eq!(diag["cluster"]["name"], "a1", "{diag}");
    for (path, res) in &answers {
        assert!(
            !res.text.contains(MARKER) && !res.text.contains("dev-credentials"),
            "{path} leaks provider credentials: {}",
            res.text
        );
    }

    // Tenant B: nothing of tenant A, through any route.
    for (m, path, body) in [
        (Method::GET, base.to_string(), None),
        (Method::GET, format!("{base}/a1"), None),
        (Method::GET, format!("{base}/a1/kubeconfig"), None),
        (Method::GET, format!("{base}/a1/diagnostics"), None),
        (Method::GET, format!("{base}/a1/compliance"), None),
        (Method::DELETE, format!("{base}/a1"), None),
        (
            Method::POST,
            format!("{base}/a1/scale"),
            Some(json!({"pool": "w", "count": 3})),
        ),
        (
            Method::POST,
            base.to_string(),
            Some(cluster("intruder", json!({"provider": {"name": "dev"}}))),
        ),
    ] {
        let res = env.call(m.clone(), &path, b, body).await;
        assert!(
            res.status == 403 || res.status == 404,
            "tenant B {m} {path}: {} {}",
            res.status,
            res.text
        );
        assert!(!res.text.contains(MARKER));
    }
    // Tenant A's cluster is untouched.
    let res = env.call(Method::GET, &format!("{base}/a1"), a, None).await;
    assert_eq!(res.json()["spec"]["workers"][0]["count"], 1);

    // A token the API server does not know.
    let res = env
        .call(Method::GET, base, Some("not-a-real-token"), None)
        .await;
    assert_eq!(res.status, 401, "{}", res.text);

    // The GUI: tenant B signs in and sees only its own (empty) namespace; tenant A's cluster page
    // is refused; tenant B cannot sign in to tenant A's namespace.
    let cookie = sign_in(&env, &env.token_b, "").await;
    let page = gui_get(&env, "/ui/", &cookie).await;
    assert_eq!(page.0, 200);
    assert!(page.1.contains("No clusters yet"), "{}", page.1);
    // (not a bare "a1": the page's random CSRF token may contain those characters)
    assert!(!page.1.contains("data-cluster=\"a1\"") && !page.1.contains("/ui/clusters/a1"));
    let res = post_login(&env, &env.token_b, "tenant-a").await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    for (path, res) in &answers {
        assert!(!res.text.contains(&env.token_a), "{path} echoes the token");
    }
}

/// Signs in through the login form; returns the session cookie (`name=value`).
async fn sign_in(env: &Env, token: &str, namespace: &str) -> String {
    let res = post_login(env, token, namespace).await;
    assert_eq!(res.status(), 303, "sign-in redirects");
    let set = res
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains(token), "the cookie is not the token");
    set.split(';').next().unwrap().to_string()
}

async fn gui_get(env: &Env, path: &str, cookie: &str) -> (u16, String) {
    let res = env
        .http
        .get(format!("{}{path}", env.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn gui_sessions_and_csrf() {
    let env = env(false).await;
    // Not signed in: to the sign-in page; a wrong token is refused without a cookie.
    let res = env
        .http
        .get(format!("{}/ui/", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/ui/login");
    let res = post_login(&env, "wrong", "tenant-a").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());

    let cookie = sign_in(&env, &env.token_a, "").await;
    let (status, html) = gui_get(&env, "/ui/new", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains(&env.token_a),
        "the token never reaches a page"
    );
    // The form offers exactly what the provider offers (expired versions left out).
    for offered in [
        "1.36.3",
        "1.35.4",
        "small",
        "medium",
        "zone-a",
        "certManager",
    ] {
        assert!(html.contains(offered), "{offered} missing");
    }
    assert!(!html.contains("1.34.4"), "expired version offered");
    let csrf = csrf_of(&html);
    let form = [
        ("provider", "dev"),
        ("name", "web1"),
        ("region", "local"),
        ("version", "1.35.4"),
        ("cp_replicas", "1"),
        ("cp_flavor", "small"),
        ("pool", "default"),
        ("flavor", "small"),
        ("count", "1"),
    ];
    // Without the CSRF token: refused, nothing created.
    let res = env
        .http
        .post(format!("{}/ui/clusters", env.url))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Cookie-authenticated API writes need the CSRF header too.
    let res = env
        .http
        .post(format!("{}/api/v1/namespaces/tenant-a/clusters", env.url))
        .header("cookie", &cookie)
        .json(&cluster("web1", json!({"provider": {"name": "dev"}})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (status, _) = gui_get(&env, "/ui/clusters/web1", &cookie).await;
    assert_eq!(status, 404, "nothing was created");

    // An invalid form comes back with the field path, the values kept.
    let mut bad = form.to_vec();
    bad.push(("csrf", &csrf));
    bad[7] = ("flavor", "m9.huge");
    let res = env
        .http
        .post(format!("{}/ui/clusters", env.url))
        .header("cookie", &cookie)
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("spec.workers[0].flavor"), "{html}");
    assert!(html.contains("value=\"web1\""), "the name is kept");

    // With it: created, and visible on the list.
    let mut good = form.to_vec();
    good.push(("csrf", &csrf));
    let res = env
        .http
        .post(format!("{}/ui/clusters", env.url))
        .header("cookie", &cookie)
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/ui/clusters/web1");
    let (status, html) = gui_get(&env, "/ui/", &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-cluster=\"web1\""));
    // The API also accepts the cookie with the header.
    let res = env
        .http
        .get(format!(
            "{}/api/v1/namespaces/tenant-a/clusters/web1",
            env.url
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Delete needs the name typed in.
    let res = env
        .http
        .post(format!("{}/ui/clusters/web1/delete", env.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("confirm", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(gui_get(&env, "/ui/clusters/web1", &cookie).await.0, 200);

    // Sign out ends the session on the server.
    let res = env
        .http
        .post(format!("{}/ui/logout", env.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = env
        .http
        .get(format!("{}/ui/", env.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the old cookie no longer works");
    // Security headers on every page.
    let res = env
        .http
        .get(format!("{}/ui/login", env.url))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"));
    assert_eq!(res.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn features_a_provider_disables_are_marked_and_refused() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    // The provider turns taints off everywhere and zones off for 1.35.4.
    let providers = Api::<Provider>::all(env.plane.client());
    let mut versions = providers.get("dev").await.unwrap().spec.kubernetes_versions;
    for v in versions.iter_mut().filter(|v| v.version == "1.35.4") {
        v.disabled_features = vec![kaas_api::provider::DisabledFeature {
            name: "zones".into(),
            reason: None,
        }];
    }
    providers
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "disabledFeatures": [{"name": "taints", "reason": "no taint propagation here"}],
                "kubernetesVersions": versions,
            }})),
        )
        .await
        .unwrap();

    // The offering names them per version.
    let res = env
        .call(Method::GET, "/api/v1/providers/dev", a, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let offer = res.json();
    let unusable = |version: &str| -> Vec<String> {
        offer["kubernetesVersions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == version)
            .unwrap()["unusableFeatures"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|u| u["feature"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(unusable("1.36.3"), ["taints"]);
    assert_eq!(unusable("1.35.4"), ["taints", "zones"]);

    // A cluster using them is refused with the field paths and the provider's reason.
    let post = "/api/v1/namespaces/tenant-a/clusters";
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "tainted",
                json!({"provider": {"name": "dev"}, "kubernetes": {"version": "1.35.x"}, "workers": [{
                    "name": "w", "flavor": "small", "count": 1, "zones": ["zone-a"],
                    "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    let errors = res.json()["errors"].as_array().unwrap().clone();
    let at = |path: &str| {
        errors
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing in {errors:?}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        at("spec.workers[0].taints").contains("no taint propagation here"),
        "{errors:?}"
    );
    assert!(
        at("spec.workers[0].zones").contains("version 1.35.4"),
        "{errors:?}"
    );
    let res = env
        .call(Method::GET, &format!("{post}/tainted"), a, None)
        .await;
    assert_eq!(res.status, 404, "nothing created: {}", res.text);

    // The GUI form marks them: zones not with 1.35.4, versions without taints.
    let cookie = sign_in(&env, &env.token_a, "").await;
    let (status, html) = gui_get(&env, "/ui/new", &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("(not with 1.35.4)"), "{html}");
    assert!(html.contains("without taints, zones"), "{html}");
}

/// A cluster naming no provider is judged against the provider the operator would choose: with
/// one provider that one's offering, with several the operator's own "could be meant" refusal —
/// never a lookup of the provider named "".
#[tokio::test]
async fn a_cluster_naming_no_provider_gets_the_operators_choice() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    let post = "/api/v1/namespaces/tenant-a/clusters";

    // One provider: its offering decides.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "unnamed",
                json!({"workers": [{"name": "w", "flavor": "m9.huge", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(res.json()["errors"][0]["path"], "spec.workers[0].flavor");
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "unnamed",
                json!({"provider": {"providerType": "openstack"}, "workers": [{"name": "w", "flavor": "small", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(
        res.json()["errors"][0]["path"],
        "spec.provider.providerType"
    );
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "unnamed",
                json!({"kubernetes": {"version": "1.35.x"}, "workers": [{"name": "w", "flavor": "small", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    // The operator chose the same provider and accepted it.
    let res = env
        .call(
            Method::GET,
            &format!("{post}/unnamed?wait=SpecAccepted&timeout=60s"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);

    // Several providers of the type: the operator would refuse, and so does the REST API, with the
    // operator's message.
    let providers: Api<Provider> = Api::all(env.plane.client());
    let mut second: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    second.metadata = ObjectMeta {
        name: Some("dev2".into()),
        ..Default::default()
    };
    providers
        .create(&PostParams::default(), &second)
        .await
        .unwrap();
    let all: Vec<Provider> = providers.list(&Default::default()).await.unwrap().items;
    let operator = kaas_validate::admission::choose(&all, None, None)
        .expect_err("the operator cannot choose")
        .to_string();
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "ambiguous",
                json!({"workers": [{"name": "w", "flavor": "small", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    let body = res.json();
    let error = &body["errors"][0];
    assert_eq!(error["path"], "spec.provider.name");
    assert_eq!(
        format!("spec.provider.name: {}", error["message"].as_str().unwrap()),
        operator
    );
    assert!(
        operator.contains("2 providers could be meant (dev, dev2)"),
        "{operator}"
    );
    // Naming one of them is enough.
    let res = env
        .call(
            Method::POST,
            post,
            a,
            Some(cluster(
                "ambiguous",
                json!({"provider": {"name": "dev2"}, "kubernetes": {"version": "1.35.x"}, "workers": [{"name": "w", "flavor": "small", "count": 1}]}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
}

#[tokio::test]
async fn hibernate_and_wake_through_rest_and_gui() {
    let env = env(false).await;
    let (a, b) = (Some(env.token_a.as_str()), Some(env.token_b.as_str()));
    let base = "/api/v1/namespaces/tenant-a/clusters";
    let stored = Api::<kaas_api::Cluster>::namespaced(env.plane.client(), "tenant-a");
    // A schedule that never fires (February 31st), so that only the calls below flip the switch.
    let schedules =
        json!([{"start": "0 3 31 2 *", "end": "0 4 31 2 *", "location": "Europe/Berlin"}]);
    let res = env
        .call(
            Method::POST,
            base,
            a,
            Some(cluster(
                "h1",
                json!({"provider": {"name": "dev"}, "workers": [{"name": "w", "count": 2}],
                    "hibernation": {"schedules": schedules}}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let enabled = || async {
        let c = stored.get("h1").await.unwrap();
        let h = c.spec.hibernation.clone().unwrap_or_default();
        (
            h.enabled,
            serde_json::to_value(&h.schedules).unwrap(),
            c.metadata.generation,
        )
    };
    let (_, _, generation) = enabled().await;

    // Not signed in, or a token the API server does not know: 401 before anything else — even a
    // malformed wait is not looked at — and nothing changes.
    for token in [None, Some("not-a-real-token")] {
        for path in [
            format!("{base}/h1/hibernate"),
            format!("{base}/h1/hibernate?wait=Bogus&timeout=x"),
            format!("{base}/h1/wake"),
        ] {
            let res = env.call(Method::POST, &path, token, None).await;
            assert_eq!(res.status, 401, "{path}: {}", res.text);
            assert_eq!(res.json()["code"], "Unauthorized");
        }
    }
    // Tenant B: not its cluster, whichever namespace it names.
    for path in [
        format!("{base}/h1/hibernate"),
        format!("{base}/h1/wake"),
        "/api/v1/namespaces/tenant-b/clusters/h1/hibernate".to_string(),
    ] {
        let res = env.call(Method::POST, &path, b, None).await;
        assert!(
            res.status == 403 || res.status == 404,
            "tenant B {path}: {} {}",
            res.status,
            res.text
        );
    }
    assert_eq!(enabled().await, (None, schedules.clone(), generation));

    // A wait the change itself makes impossible is refused before anything is written.
    let res = env
        .call(
            Method::POST,
            &format!("{base}/h1/hibernate?wait=Ready"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.text.contains("Hibernated"), "{}", res.text);
    assert_eq!(enabled().await.0, None);
    // A dry run answers what would be written and writes nothing.
    let res = env
        .call(
            Method::POST,
            &format!("{base}/h1/hibernate?dryRun=All"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["spec"]["hibernation"]["enabled"], true);
    assert_eq!(enabled().await.0, None);

    // Hibernate: the switch set, the schedules untouched; the answer is the written cluster.
    let res = env
        .call(Method::POST, &format!("{base}/h1/hibernate"), a, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let c = res.json();
    assert_eq!(c["spec"]["hibernation"]["enabled"], true, "{c}");
    assert_eq!(c["spec"]["hibernation"]["schedules"], schedules);
    assert!(c["metadata"].get("managedFields").is_none());
    assert_eq!(enabled().await.0, Some(true));
    // Waiting for Ready now ends at once with the reason, not at the timeout.
    let started = std::time::Instant::now();
    let res = env
        .call(
            Method::GET,
            &format!("{base}/h1?wait=Ready&timeout=60s"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.text);
    let e = res.json();
    assert_eq!(e["code"], "WaitFailed");
    assert_eq!(
        e["message"],
        "the cluster is asked to hibernate (spec.hibernation.enabled); wake it first"
    );
    assert_eq!(e["cluster"]["metadata"]["name"], "h1");
    assert!(started.elapsed() < Duration::from_secs(20), "ended early");
    // Tenant B cannot wake it.
    let res = env
        .call(Method::POST, &format!("{base}/h1/wake"), b, None)
        .await;
    assert!(res.status == 403 || res.status == 404, "{}", res.text);
    assert_eq!(enabled().await.0, Some(true));
    let res = env
        .call(
            Method::POST,
            &format!("{base}/h1/wake?wait=Hibernated"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);

    // Wake: the switch off, the schedules kept; waiting for Hibernated now ends at once.
    let res = env
        .call(Method::POST, &format!("{base}/h1/wake"), a, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["spec"]["hibernation"]["enabled"], false);
    assert_eq!(enabled().await.0, Some(false));
    assert_eq!(enabled().await.1, schedules);
    let res = env
        .call(
            Method::GET,
            &format!("{base}/h1?wait=Hibernated&timeout=60s"),
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.text);
    assert!(
        res.json()["message"]
            .as_str()
            .unwrap()
            .contains("not asked to hibernate"),
        "{}",
        res.text
    );

    // An imported cluster cannot hibernate: validation refuses it with the field path.
    let provider: Provider = serde_yaml::from_str(common::IMPORTED_PROVIDER).unwrap();
    kaas_operator::install::provider(&env.plane.client(), &provider, "")
        .await
        .unwrap();
    let res = env
        .call(
            Method::POST,
            base,
            a,
            Some(cluster(
                "imp",
                json!({"provider": {"name": "imported"}, "import": {"kubeconfigSecretRef": {"name": "existing"}}}),
            )),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let res = env
        .call(Method::POST, &format!("{base}/imp/hibernate"), a, None)
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    let e = res.json();
    assert_eq!(e["code"], "Invalid");
    assert_eq!(e["errors"][0]["path"], "spec.hibernation", "{e}");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("imports existing clusters"),
        "{e}"
    );
    assert!(stored.get("imp").await.unwrap().spec.hibernation.is_none());

    // The GUI: the cluster page offers Hibernate (it is awake) and shows the schedules.
    let cookie = sign_in(&env, &env.token_a, "").await;
    let (status, html) = gui_get(&env, "/ui/clusters/h1", &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"hibernate\""), "{html}");
    assert!(!html.contains("id=\"wake\""));
    assert!(html.contains("id=\"hibernation-schedules\""), "{html}");
    for s in ["0 3 31 2 *", "0 4 31 2 *", "Europe/Berlin"] {
        assert!(html.contains(s), "{s} missing");
    }
    let csrf = csrf_of(&html);
    let post = |action: &'static str, csrf: String| {
        let env = &env;
        let cookie = cookie.clone();
        async move {
            env.http
                .post(format!("{}/ui/clusters/h1/{action}", env.url))
                .header("cookie", cookie)
                .form(&[("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    // A forged CSRF token, or none: refused, nothing written.
    let res = post("hibernate", "0".repeat(64)).await;
    assert_eq!(res.status(), 403);
    let res = env
        .http
        .post(format!("{}/ui/clusters/h1/hibernate", env.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(enabled().await.0, Some(false));
    // With the session's: hibernated, and the page now offers Wake up.
    let res = post("hibernate", csrf.clone()).await;
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/ui/clusters/h1?done="), "{to}");
    assert_eq!(enabled().await.0, Some(true));
    let (_, html) = gui_get(&env, &to, &cookie).await;
    assert!(html.contains("Hibernation asked"), "{html}");
    assert!(html.contains("id=\"wake\"") && !html.contains("id=\"hibernate\""));
    assert!(
        html.contains("data-hibernation="),
        "a hibernation badge: {html}"
    );
    let (_, list) = gui_get(&env, "/ui/", &cookie).await;
    assert!(list.contains("data-hibernation="), "{list}");
    let res = post("wake", "f".repeat(64)).await;
    assert_eq!(res.status(), 403);
    assert_eq!(enabled().await.0, Some(true));
    let res = post("wake", csrf.clone()).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        enabled().await,
        (Some(false), schedules.clone(), enabled().await.2)
    );
    // The imported cluster's page has no button, and says why.
    let (_, html) = gui_get(&env, "/ui/clusters/imp", &cookie).await;
    assert!(html.contains("cannot hibernate"), "{html}");
    assert!(!html.contains("id=\"hibernate\"") && !html.contains("id=\"wake\""));
    // Tenant B's session cannot reach tenant A's cluster.
    let cookie_b = sign_in(&env, &env.token_b, "").await;
    let (_, html_b) = gui_get(&env, "/ui/", &cookie_b).await;
    let csrf_b = csrf_of(&html_b);
    let res = env
        .http
        .post(format!("{}/ui/clusters/h1/hibernate", env.url))
        .header("cookie", &cookie_b)
        .form(&[("csrf", csrf_b.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == 403 || res.status() == 404,
        "{}",
        res.status()
    );
    assert_eq!(enabled().await.0, Some(false));
}
