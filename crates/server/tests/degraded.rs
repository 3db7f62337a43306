//! A Ready cluster whose compliance fails is shown as degraded — never failed — through the REST
//! API's diagnostics and the GUI; the GUI's compliance page shows the real report as a table
//! (one row per testcase, the verdict coloured, the testcase's class, what to do) with its files
//! to download, and the cluster page its picture and events. Real components: the plane with the
//! operator, and a second real kube-apiserver as an imported workload cluster, which the
//! operator's compliance checks find not compliant (by the provider's release data its v1.36.3
//! is an overdue patch; no default StorageClass and no nodes are warnings outside the
//! certificate). Screenshots of the cluster and compliance pages in headless Chromium are saved
//! as test artifacts (`gui-cluster-imported.png`, `gui-compliance.png`).

mod common;
mod webdriver;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use reqwest::Method;
use serde_json::json;

const BASE: &str = "/api/v1/namespaces/tenant-a/clusters";

/// Signs in through the GUI's form (with the sign-in page's CSRF pair where it has one); returns
/// the session cookie (`name=value`).
async fn sign_in(env: &Env, token: &str) -> String {
    let page = env
        .http
        .get(format!("{}/ui/login", env.url))
        .send()
        .await
        .unwrap();
    let login_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kaas_login="))
        .map(|v| v.split(';').next().unwrap().to_string());
    let html = page.text().await.unwrap();
    let field = "name=\"login_csrf\" value=\"";
    let csrf = html
        .find(field)
        .map(|at| {
            let rest = &html[at + field.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .unwrap_or_default();
    let mut req = env.http.post(format!("{}/ui/login", env.url)).form(&[
        ("token", token),
        ("namespace", ""),
        ("login_csrf", &csrf),
    ]);
    if let Some(c) = login_cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kaas_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no session cookie: {}", res.status()))
}

async fn gui_get(env: &Env, path: &str, cookie: &str) -> String {
    let res = env
        .http
        .get(format!("{}{path}", env.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

/// The plane with the operator and the server, a second real API server, the `imported`
/// provider and tenant A's cluster `imp` importing it (created through the REST API).
async fn imported_cluster() -> (Env, Plane) {
    let env = env(false).await;
    let admin = env.plane.client();
    let workload = Plane::start(PlaneOptions::minimal())
        .await
        .expect("workload API server");
    let provider: Provider = serde_yaml::from_str(common::IMPORTED_PROVIDER).unwrap();
    kaas_operator::install::provider(&admin, &provider, "")
        .await
        .unwrap();
    let kubeconfig = workload.kubeconfig_yaml(Identity::Admin).unwrap();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("existing".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "value".to_string(),
            ByteString(kubeconfig.into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), "tenant-a")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The provider's current release data (listed up to today): v1.36.4 came out on 2026-07-01,
    // so the workload's v1.36.3 is overdue and the mandatory version-policy-check fails. (With
    // the bundled data, months old, the check could not decide: Compliant=Unknown.)
    let today = k8s_openapi::jiff::Zoned::now().date().to_string();
    let data = format!(
        "source: test data\nreleases_as_of: {today}\ncves_as_of: {today}\nbranches:\n  - branch: \"1.36\"\n    end_of_life: 2027-06-28\n    patches: [[1.36.0, 2026-04-22], [1.36.3, 2026-06-10], [1.36.4, 2026-07-01]]\n"
    );
    kaas_operator::install::namespace(&admin, "kaas-system", &[])
        .await
        .unwrap();
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kaas-release-data", "namespace": "kaas-system"},
        "data": {"kubernetes-releases.yaml": data}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), "kaas-system")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    // The tenant creates it through the REST API.
    let a = Some(env.token_a.as_str());
    let body = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "imp"},
        "spec": {"provider": {"name": "imported"}, "import": {"kubeconfigSecretRef": {"name": "existing"}}}});
    let res = env.call(Method::POST, BASE, a, Some(body)).await;
    assert!(res.status < 300, "{} {}", res.status, res.text);
    (env, workload)
}

#[tokio::test]
async fn a_ready_cluster_failing_compliance_is_degraded_in_rest_and_gui() {
    let (env, _workload) = imported_cluster().await;
    let admin = env.plane.client();
    let base = BASE;
    let a = Some(env.token_a.as_str());

    let api: Api<Cluster> = Api::namespaced(admin.clone(), "tenant-a");
    until(
        "Ready=True and Compliant=False",
        Duration::from_secs(120),
        || async {
            let c = api.get("imp").await.map_err(|e| e.to_string())?;
            let st = c.status.clone().unwrap_or_default();
            let is = |t: &str, s: &str| st.conditions.iter().any(|x| x.type_ == t && x.status == s);
            if is("Ready", "True") && is("Compliant", "False") {
                Ok(())
            } else {
                Err(format!("{:?}", st.conditions))
            }
        },
    )
    .await;

    // REST: the verdict, the aspect with its hint; nothing says failed.
    let res = env
        .call(Method::GET, &format!("{base}/imp/diagnostics"), a, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let d = res.json();
    assert_eq!(d["cluster"]["ready"], true, "{d}");
    assert_eq!(d["verdict"], "degraded", "{d}");
    assert_eq!(d["tree"]["status"], "degraded", "{d}");
    let aspects = d["degraded"].as_array().unwrap();
    assert_eq!(aspects.len(), 1, "{d}");
    assert_eq!(aspects[0]["aspect"], "compliance");
    assert_eq!(aspects[0]["condition"], "Compliant");
    assert_eq!(aspects[0]["reason"], "ChecksFailed");
    assert!(
        aspects[0]["message"]
            .as_str()
            .unwrap()
            .contains("default-storage-class-check"),
        "{d}"
    );
    assert!(
        aspects[0]["message"].as_str().unwrap().starts_with(
            "1 mandatory failed: version-policy-check (v1.36.4 was released on 2026-07-01"
        ),
        "{d}"
    );
    assert_eq!(aspects[0]["hints"], json!(["ComplianceFailed"]));
    assert!(
        d["hints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["code"] == "ComplianceFailed"),
        "{d}"
    );
    assert!(!res.text.contains("\"failed\""), "{d}");

    // GUI: the list's row and badge, the cluster page's badge and the failing aspect.
    let cookie = sign_in(&env, &env.token_a).await;
    let list = gui_get(&env, "/ui/", &cookie).await;
    assert!(
        list.contains(r#"<tr data-cluster="imp" class="degraded">"#),
        "{list}"
    );
    assert!(
        list.contains(r#"<span class="badge degraded" data-verdict="degraded">degraded</span>"#),
        "{list}"
    );
    let page = gui_get(&env, "/ui/clusters/imp", &cookie).await;
    assert!(
        page.contains(r#"<dd id="state" class="degraded">"#),
        "{page}"
    );
    assert!(page.contains(r#"<li data-aspect="compliance">"#), "{page}");
    assert!(
        page.contains("What to do: compliance checks failed:"),
        "{page}"
    );
    assert!(!page.contains(r#"class="badge failed""#), "{page}");
}

#[tokio::test]
async fn the_gui_shows_the_real_compliance_report_as_a_table_and_the_cluster_as_a_picture() {
    let (env, _workload) = imported_cluster().await;
    let api: Api<Cluster> = Api::namespaced(env.plane.client(), "tenant-a");
    until("a compliance report", Duration::from_secs(120), || async {
        let c = api.get("imp").await.map_err(|e| e.to_string())?;
        let st = c.status.clone().unwrap_or_default();
        match st.compliance {
            Some(_)
                if st
                    .conditions
                    .iter()
                    .any(|x| x.type_ == "Ready" && x.status == "True") =>
            {
                Ok(())
            }
            _ => Err(format!("{:?}", st.conditions)),
        }
    })
    .await;
    let cookie = sign_in(&env, &env.token_a).await;
    let page = gui_get(&env, "/ui/clusters/imp", &cookie).await;
    // The picture (an imported cluster: no machines, the control plane from its condition) and
    // the events timeline.
    assert!(
        page.contains(r#"<svg class="picture" id="picture""#),
        "{page}"
    );
    assert!(page.contains(r#"id="picture-control-plane""#), "{page}");
    assert!(
        page.contains(r#"<ol class="timeline" id="events">"#)
            || page.contains(r#"<p class="hint" id="events">"#),
        "{page}"
    );

    // The compliance page: a row per testcase of the real report, coloured verdicts, hints.
    let report = gui_get(&env, "/ui/clusters/imp/compliance", &cookie).await;
    assert!(
        report.contains(r#"<table class="compliance" id="compliance">"#),
        "{report}"
    );
    // (scs-0211 is outside the scope: its FAIL shows as WARN, with its class.)
    assert!(
        report
            .contains(r#"<tr class="testcase warn" data-testcase="default-storage-class-check">"#),
        "{report}"
    );
    assert!(
        report.contains(r#"<td class="verdict"><span class="verdict warn""#),
        "{report}"
    );
    assert!(report.contains(r#">outside</span>"#), "{report}");
    assert!(report.contains(r#"<td class="hint">"#), "{report}");
    assert!(
        !report.contains("<pre>"),
        "a table, not a text dump: {report}"
    );
    // Its files to download, as stored.
    for (file, ctype) in [
        ("report.json", "application/json"),
        ("scs.yaml", "application/yaml"),
    ] {
        let res = env
            .http
            .get(format!("{}/ui/clusters/imp/compliance/{file}", env.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(res.headers()["content-type"], ctype, "{file}");
        let disposition = res.headers()["content-disposition"].to_str().unwrap();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        let text = res.text().await.unwrap();
        assert!(report.contains(&format!(r#"href="/ui/clusters/imp/compliance/{file}""#)));
        if file == "report.json" {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let rows = v["results"].as_array().unwrap().len();
            assert_eq!(
                report.matches("<tr class=\"testcase ").count(),
                rows,
                "one row per testcase"
            );
        } else {
            let _: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        }
    }

    // Screenshots of both pages.
    let browser = webdriver::Browser::start().await;
    browser.sign_in(&env.url, &env.token_a).await;
    browser.goto(&format!("{}/ui/clusters/imp", env.url)).await;
    browser.find("#picture").await;
    browser.shot("gui-cluster-imported.png").await;
    browser
        .goto(&format!("{}/ui/clusters/imp/compliance", env.url))
        .await;
    browser.find("#compliance").await;
    browser.shot("gui-compliance.png").await;
}
