//! The GUI's preview step against a real API server with the operator running: the create form's
//! cost and plan (nothing written), a scale previewed (the plan of `kaas plan`) and confirmed
//! (applied on the API server), bad input answered with field paths, a stale preview refused with
//! a clear message (nothing applied), CSRF kept; then the same in a real headless Chromium with
//! screenshots (`target/test-artifacts/gui-create-preview.png`, `gui-scale-preview.png`,
//! `gui-scale-applied.png`).

mod common;
mod webdriver;

use std::time::Duration;

use common::*;
use kaas_api::Cluster;
use kube::Api;
use reqwest::Method;
use serde_json::json;

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of the first `<input … name="NAME" value="…">` of a page.
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no field {name}: {html}"))
        + needle.len();
    let end = html[at..].find('"').unwrap() + at;
    unescape(&html[at..end])
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    html[at..at + 64].to_string()
}

async fn post_form(env: &Env, path: &str, cookie: &str, form: &[(&str, &str)]) -> Res {
    let res = env
        .http
        .post(format!("{}{path}", env.url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    Res {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap_or_default(),
    }
}

/// Creates `name` through the REST API (one pool `w` of `count`) and waits until the operator
/// recorded the version it rolls out (the plan judges changes against it).
async fn cluster_with_status(env: &Env, name: &str, count: i32) -> Cluster {
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters",
            Some(&env.token_a),
            Some(json!({"metadata": {"name": name}, "spec": {
                "provider": {"name": "dev"},
                "kubernetes": {"version": "1.35.x"},
                "workers": [{"name": "w", "flavor": "small", "count": count}]
            }})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let admin = env.plane.client();
    until("status.targetVersion", Duration::from_secs(90), || {
        let api = Api::<Cluster>::namespaced(admin.clone(), "tenant-a");
        async move {
            let c = api.get(name).await.map_err(|e| e.to_string())?;
            c.status
                .as_ref()
                .and_then(|s| s.target_version.as_ref())
                .map(|_| c.clone())
                .ok_or_else(|| "not yet".to_string())
        }
    })
    .await
}

async fn stored(env: &Env, name: &str) -> Cluster {
    Api::<Cluster>::namespaced(env.plane.client(), "tenant-a")
        .get(name)
        .await
        .unwrap()
}

fn count_of(c: &Cluster) -> Option<i32> {
    c.spec.workers.as_ref().unwrap()[0].count
}

#[tokio::test]
async fn the_gui_previews_every_change_and_applies_exactly_the_previewed_one() {
    let env = env(false).await;
    let cookie = session_cookie(&env, &env.token_a, "").await;
    let new = env.page("/ui/new", &cookie).await;
    assert_eq!(new.status, 200);
    let csrf = csrf_of(&new.text);
    // The form shows the cost of its defaults: 1 control-plane node + 1 worker, small (2 vCPU, 4Gi).
    assert!(new.text.contains(r#"id="cost-nodes">2<"#), "{}", new.text);
    assert!(new.text.contains(r#"id="cost-cpu">4<"#));
    assert!(new.text.contains(r#"id="cost-memory">8 GiB<"#));

    // Create: preview with 3 control-plane nodes and a pool autoscaling 2..5 of medium.
    let form = |name: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let mut f = vec![
            ("provider", "dev"),
            ("name", name),
            ("region", "local"),
            ("version", "1.35.4"),
            ("cp_replicas", "3"),
            ("cp_flavor", "small"),
            ("pool", "default"),
            ("flavor", "medium"),
            ("count", "1"),
            ("min", "2"),
            ("max", "5"),
        ];
        f.extend(extra);
        f
    };
    let mut f = form("pv1", vec![("action", "preview")]);
    f.push(("csrf", &csrf));
    let res = post_form(&env, "/ui/clusters", &cookie, &f).await;
    assert_eq!(res.status, 200, "{}", res.text);
    // 3 + 2..5 nodes; 3×2 + 2..5×4 vCPU; 3×4 + 2..5×8 GiB.
    assert!(res.text.contains(r#"id="cost-nodes">5–8<"#), "{}", res.text);
    assert!(res.text.contains(r#"id="cost-cpu">14–26<"#), "{}", res.text);
    assert!(res.text.contains(r#"id="cost-memory">28 GiB–52 GiB<"#));
    assert!(res.text.contains("(autoscaled)"));
    assert!(res.text.contains(r#"id="plan""#), "{}", res.text);
    assert!(res.text.contains("created with 3 machines"), "{}", res.text);
    assert!(res.text.contains("created with 2 machines"), "{}", res.text);
    assert!(res.text.contains("new pool of 2..5 (autoscaled) medium"));
    assert!(res.text.contains(r#"value="pv1""#), "the form is kept");
    let res = env.page("/ui/clusters/pv1", &cookie).await;
    assert_eq!(res.status, 404, "a preview writes nothing");
    // A refused create preview: the field path; a number that does not parse: its path.
    let mut f = form("pv1", vec![("action", "preview")]);
    f.push(("csrf", &csrf));
    f[7] = ("flavor", "m9.huge");
    let res = post_form(&env, "/ui/clusters", &cookie, &f).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(
        res.text.contains(r#"data-path="spec.workers[0].flavor""#),
        "{}",
        res.text
    );
    assert!(
        res.text.contains("does not describe m9.huge"),
        "{}",
        res.text
    );
    let mut f = form("pv1", vec![("action", "preview")]);
    f.push(("csrf", &csrf));
    f[10] = ("max", "lots");
    let res = post_form(&env, "/ui/clusters", &cookie, &f).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(
        res.text.contains("spec.workers[0].maxCount"),
        "{}",
        res.text
    );
    // Without the CSRF token even a preview is refused.
    let f = form("pv1", vec![("action", "preview")]);
    let res = post_form(&env, "/ui/clusters", &cookie, &f).await;
    assert_eq!(res.status, 403);

    // Scale: preview 1 → 3.
    let c = cluster_with_status(&env, "pv2", 1).await;
    let page = env.page("/ui/clusters/pv2", &cookie).await;
    assert!(page.text.contains(r#"action="/ui/clusters/pv2/preview""#));
    let scale = |count: &'static str| {
        vec![
            ("csrf", csrf.as_str()),
            ("change", "scale"),
            ("pool", "w"),
            ("count", count),
        ]
    };
    let res = post_form(&env, "/ui/clusters/pv2/preview", &cookie, &scale("3")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.text.contains("adds 2 machines (1 → 3), none rolls"),
        "{}",
        res.text
    );
    assert!(
        res.text
            .contains(r#"data-path="spec.workers[name=w].count""#)
    );
    assert!(res.text.contains("Now <strong>2 nodes · 4 vCPU · 8 GiB</strong> → after the change <strong>4 nodes · 8 vCPU · 16 GiB</strong>"), "{}", res.text);
    let rv = hidden(&res.text, "resource_version");
    let spec = hidden(&res.text, "spec");
    let preview_html = res.text.clone();
    assert_eq!(rv, c.metadata.resource_version.clone().unwrap());
    assert_eq!(
        count_of(&stored(&env, "pv2").await),
        Some(1),
        "nothing written"
    );

    // Bad input: field paths.
    let res = post_form(&env, "/ui/clusters/pv2/preview", &cookie, &scale("three")).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(res.text.contains("<code>count</code>"), "{}", res.text);
    let mut s = scale("2");
    s[2] = ("pool", "nope");
    let res = post_form(&env, "/ui/clusters/pv2/preview", &cookie, &s).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(res.text.contains("<code>pool</code>"), "{}", res.text);
    // An edit the offering refuses: the plan's field path, no confirm button.
    let res = post_form(
        &env,
        "/ui/clusters/pv2/preview",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("change", "edit"),
            (
                "spec",
                "provider: {name: dev}\nkubernetes: {version: 1.35.x}\nworkers: [{name: w, flavor: m9.huge, count: 1}]\n",
            ),
        ],
    )
    .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(res.text.contains(r#"id="plan-refused""#), "{}", res.text);
    assert!(res.text.contains(r#"data-path="spec.workers[0].flavor""#));
    assert!(!res.text.contains(r#"id="confirm""#));
    // Upgrade one minor: the version steps, control plane first.
    let res = post_form(
        &env,
        "/ui/clusters/pv2/preview",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("change", "upgrade"),
            ("version", "1.36.x"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains("v1.35.4 → v1.36.3"), "{}", res.text);
    assert!(
        res.text.contains("control plane, then pool w"),
        "{}",
        res.text
    );
    // Without the session's CSRF token: refused.
    let res = post_form(
        &env,
        "/ui/clusters/pv2/apply",
        &cookie,
        &[
            ("csrf", "forged"),
            ("resource_version", rv.as_str()),
            ("spec", spec.as_str()),
        ],
    )
    .await;
    assert_eq!(res.status, 403);
    assert!(res.text.contains("CSRF"), "{}", res.text);
    assert_eq!(count_of(&stored(&env, "pv2").await), Some(1));

    // Someone else scales to 2 in between: the stale confirm is refused, nothing applied, and
    // the same change is previewed against the cluster as it is now.
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters/pv2/scale",
            Some(&env.token_a),
            Some(json!({"pool": "w", "count": 2})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let confirm = |html: &str, rv: String| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("resource_version".to_string(), rv),
            ("generation".to_string(), hidden(html, "generation")),
            ("plan".to_string(), hidden(html, "plan")),
            ("what".to_string(), "Scale".to_string()),
            ("spec".to_string(), hidden(html, "spec")),
        ]
    };
    let res = env
        .http
        .post(format!("{}/ui/clusters/pv2/apply", env.url))
        .header("cookie", &cookie)
        .form(&confirm(&preview_html, rv.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="stale""#), "{html}");
    assert!(
        html.contains(&format!(
            "Not applied: cluster pv2 changed since the preview (previewed at resourceVersion {rv}"
        )),
        "{html}"
    );
    assert!(html.contains("adds 1 machines (2 → 3)"), "{html}");
    assert_eq!(count_of(&stored(&env, "pv2").await), Some(2), "not applied");
    // Confirming the fresh preview applies it.
    let rv2 = hidden(&html, "resource_version");
    assert_ne!(rv2, rv);
    let res = env
        .http
        .post(format!("{}/ui/clusters/pv2/apply", env.url))
        .header("cookie", &cookie)
        .form(&confirm(&html, rv2))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/clusters/pv2?done=Scale%20applied")
    );
    assert_eq!(count_of(&stored(&env, "pv2").await), Some(3), "applied");
    // Only the status was written since the preview (as the operator does all the time): the
    // same generation and the same plan, so the confirm goes through. First the operator takes in
    // the scale just applied: its status for it may change the plan (and a confirm of a plan that
    // changed is refused, rightly), which under load made this step flaky.
    let admin = env.plane.client();
    until(
        "the operator observed the scale",
        Duration::from_secs(90),
        || {
            let api = Api::<Cluster>::namespaced(admin.clone(), "tenant-a");
            async move {
                let c = api.get("pv2").await.map_err(|e| e.to_string())?;
                let seen = c.status.as_ref().and_then(|s| s.observed_generation);
                if seen.is_some() && seen == c.metadata.generation {
                    Ok(())
                } else {
                    Err(format!("observed {seen:?} of {:?}", c.metadata.generation))
                }
            }
        },
    )
    .await;
    // The operator keeps writing too (the Provider's verification, the cluster's status): a
    // write of its that changes the plan rightly refuses the confirm. So a few attempts, each a
    // fresh preview, a status-only write by the test and the confirm; the first that nothing
    // else got in between must be applied (a broken fallback refuses them all).
    let mut refused = Vec::new();
    for attempt in 1..=4 {
        let res = post_form(&env, "/ui/clusters/pv2/preview", &cookie, &scale("4")).await;
        assert_eq!(res.status, 200, "{}", res.text);
        let before = stored(&env, "pv2").await;
        let rv3 = hidden(&res.text, "resource_version");
        let bumped = Api::<Cluster>::namespaced(env.plane.client(), "tenant-a")
            .patch_status(
                "pv2",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"status": {"apiEndpoint": format!("https://status-only-{attempt}.example:6443")}}),
                ),
            )
            .await
            .unwrap();
        assert_ne!(
            bumped.metadata.resource_version.as_deref(),
            Some(rv3.as_str())
        );
        assert_eq!(bumped.metadata.generation, before.metadata.generation);
        let res = env
            .http
            .post(format!("{}/ui/clusters/pv2/apply", env.url))
            .header("cookie", &cookie)
            .form(&confirm(&res.text, rv3))
            .send()
            .await
            .unwrap();
        let code = res.status();
        if code == 303 {
            break;
        }
        refused.push(format!("attempt {attempt}: {code}"));
        assert!(
            attempt < 4,
            "a confirm after status-only writes was refused every time: {refused:?}\n{}",
            res.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if !refused.is_empty() {
        eprintln!("status-only confirm: refused first ({refused:?}), then applied");
    }
    assert_eq!(count_of(&stored(&env, "pv2").await), Some(4), "applied");
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters/pv2/scale",
            Some(&env.token_a),
            Some(json!({"pool": "w", "count": 3})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);

    // Tenant B cannot preview or apply tenant A's cluster (its own namespace has no pv2).
    let cookie_b = session_cookie(&env, &env.token_b, "").await;
    let csrf_b = csrf_of(&env.page("/ui/new", &cookie_b).await.text);
    let res = post_form(
        &env,
        "/ui/clusters/pv2/preview",
        &cookie_b,
        &[
            ("csrf", &csrf_b),
            ("change", "scale"),
            ("pool", "w"),
            ("count", "9"),
        ],
    )
    .await;
    assert_eq!(res.status, 404, "{}", res.text);

    // The same in a real browser.
    let browser = webdriver::Browser::start().await;
    browser.sign_in(&env.url, &env.token_a).await;
    browser.goto(&format!("{}/ui/new", env.url)).await;
    browser.type_into("#name", "pv3").await;
    browser.click("#cp_replicas option[value='3']").await;
    browser.type_into("#count", "2").await;
    browser.click("#preview-submit").await;
    browser.find("#plan").await;
    // 3 small control-plane nodes + 2 small workers.
    assert_eq!(browser.text("#cost-nodes").await, "5");
    assert_eq!(browser.text("#cost-cpu").await, "10");
    assert_eq!(browser.text("#cost-memory").await, "20 GiB");
    let rollout = browser.text("#plan-rollout").await;
    assert!(
        rollout.contains("control plane: created with 3 machines"),
        "{rollout}"
    );
    assert!(
        rollout.contains("pool default: created with 2 machines"),
        "{rollout}"
    );
    browser.scroll_to("#cost").await;
    browser.shot("gui-create-preview.png").await;
    browser.click("#create-submit").await;
    browser.find("#picture-control-plane").await;
    let pv3 = stored(&env, "pv3").await;
    assert_eq!(pv3.spec.control_plane.as_ref().unwrap().replicas, Some(3));
    assert_eq!(count_of(&pv3), Some(2));

    // Scale pv2 3 → 5 with a preview, then confirm.
    browser.goto(&format!("{}/ui/clusters/pv2", env.url)).await;
    browser.scroll_to("#cost").await;
    browser.shot("gui-cluster-actions.png").await;
    browser.type_into("#count-w", "5").await;
    browser.click("#scale-w").await;
    browser.find("#plan-rollout").await;
    let rollout = browser.text("#plan-rollout").await;
    assert!(
        rollout.contains("pool w: adds 2 machines (3 → 5), none rolls"),
        "{rollout}"
    );
    let summary = browser.text("#cost-summary").await;
    assert!(
        summary.contains(
            "Now 4 nodes · 8 vCPU · 16 GiB → after the change 6 nodes · 12 vCPU · 24 GiB"
        ),
        "{summary}"
    );
    assert!(
        browser
            .text("#plan-spec")
            .await
            .contains("spec.workers[name=w].count")
    );
    browser.shot("gui-scale-preview.png").await;
    assert_eq!(count_of(&stored(&env, "pv2").await), Some(3), "not yet");
    browser.click("#confirm").await;
    browser.find(".notice").await;
    assert!(
        browser
            .text(".notice")
            .await
            .contains("Scale applied as previewed")
    );
    browser.shot("gui-scale-applied.png").await;
    assert_eq!(
        count_of(&stored(&env, "pv2").await),
        Some(5),
        "applied on the API server"
    );
}
