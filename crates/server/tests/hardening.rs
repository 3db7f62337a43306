//! The public endpoint under attack (issue 13), through the real server against a real API
//! server: oversized input is refused before any expensive work and without stalling other
//! requests, slow clients are cut off, odd names never reach the API server, tokens with control
//! characters are refused without a panic, sign-in needs the sign-in page's CSRF token, `dryRun`
//! is honoured, and malformed requests and errors answer in the error format of their part (JSON
//! under `/api`, an HTML page with the status kept and a link back under `/ui`).

mod common;

use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use common::*;
use kaas_api::Cluster;
use kube::Api;
use reqwest::Method;
use serde_json::json;

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic of the process (the server runs in it) next to the default report.
fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(info.to_string());
            default(info);
        }));
    });
}

/// Panics that did not come from a test assertion.
fn server_panics() -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|p| p.contains("crates/server/src") || p.contains("kube") || p.contains("hyper"))
        .cloned()
        .collect()
}

fn pools(n: usize) -> serde_json::Value {
    let workers: Vec<_> = (0..n)
        .map(|i| json!({"name": format!("w{i}"), "count": 1}))
        .collect();
    let additional: Vec<_> = (0..n).map(|i| json!({"name": format!("e{i}")})).collect();
    json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "metadata": {"name": "dos"},
        "spec": {"provider": {"name": "dev"}, "workers": workers, "extensions": {"additional": additional}}})
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Posts `body` and returns (status, milliseconds).
async fn timed_post(http: &reqwest::Client, url: &str, token: &str, body: &str) -> (u16, f64) {
    let start = Instant::now();
    let res = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    (res.map(|r| r.status().as_u16()).unwrap_or(0), ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_input_is_refused_fast_and_healthz_stays_responsive() {
    let env = env(false).await;
    let url = format!("{}/api/v1/namespaces/tenant-a/clusters", env.url);
    let body = pools(10_000).to_string();
    // A new connection per request: an early refusal does not read the body, and the server then
    // closes that connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    println!(
        "DoS body: 10,000 pools and 10,000 extensions, {} bytes",
        body.len()
    );
    // Warm up (first connection, first token review).
    let _ = timed_post(&http, &url, "warm-up-not-a-token", "{}").await;
    let _ = timed_post(&http, &url, &env.token_a, &pools(40).to_string()).await;

    // One at a time: 401 with any string as token, 422 with a valid one.
    let mut unauth = Vec::new();
    let mut invalid = Vec::new();
    for i in 0..5 {
        let (s, ms) = timed_post(&http, &url, &format!("bogus-token-{i}"), &body).await;
        assert_eq!(s, 401, "a made-up token is refused before validation");
        unauth.push(ms);
        let (s, ms) = timed_post(&http, &url, &env.token_a, &body).await;
        assert_eq!(s, 422, "the tenant's oversized cluster is invalid");
        invalid.push(ms);
    }
    println!("401 (made-up token), ms: {unauth:.1?}");
    println!("422 (valid token), ms: {invalid:.1?}");
    // The figures are measured (printed here, recorded in BENCHMARKS.md); the bounds only catch
    // validation before authentication or without limits coming back (before: 54 s of CPU for
    // this body). Debug build on 2 cores shared with another test binary (hack/run-tests.py):
    // parsing the 440 kB body alone takes 50-150 ms there.
    for v in [&mut unauth, &mut invalid] {
        let (median, max) = (percentile(v, 0.5), percentile(v, 1.0));
        assert!(median < 1000.0, "answers within 1 s: median {median:.1} ms");
        assert!(max < 3000.0, "no answer over 3 s: {max:.1} ms");
    }

    // Meanwhile: 4 attackers (half without a valid token) send the body over and over, while
    // /healthz is measured.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for i in 0..4 {
        let (http, url, body, stop) = (http.clone(), url.clone(), body.clone(), stop.clone());
        let token = if i % 2 == 0 {
            format!("bogus-{i}")
        } else {
            env.token_a.clone()
        };
        attackers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                answers.push(timed_post(&http, &url, &token, &body).await);
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut health = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let res = env
            .http
            .get(format!("{}/healthz", env.url))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("healthz answers");
        assert_eq!(res.status(), 200);
        health.push(start.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut under_load = Vec::new();
    for a in attackers {
        for (s, ms) in a.await.unwrap() {
            assert!(s == 401 || s == 422, "attack answered {s} after {ms:.1} ms");
            under_load.push(ms);
        }
    }
    let n = under_load.len();
    let (h50, h95, hmax) = (
        percentile(&mut health, 0.5),
        percentile(&mut health, 0.95),
        percentile(&mut health, 1.0),
    );
    let (a50, a95) = (
        percentile(&mut under_load, 0.5),
        percentile(&mut under_load, 0.95),
    );
    println!(
        "under attack (4 clients, {n} requests): answers p50 {a50:.1} ms p95 {a95:.1} ms; /healthz p50 {h50:.1} ms p95 {h95:.1} ms max {hmax:.1} ms"
    );
    // As above: a stall (the attack starving the server) is seconds; the bounds leave room for
    // the other test binary on the same 2 cores.
    assert!(
        h95 < 500.0,
        "/healthz p95 under 500 ms during the attack: {h95:.1} ms"
    );
    assert!(hmax < 2000.0, "/healthz never stalls: {hmax:.1} ms");
    assert!(n >= 16, "the attack ran ({n} requests)");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = env(false).await;
    let addr = env
        .url
        .trim_start_matches("http://")
        .replace("localhost", "127.0.0.1");
    // Partial headers, then one more header byte every second: never a complete request.
    let start = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // And a connection that sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let closed = tokio::time::timeout(
        Duration::from_secs(kaas_server::HEADER_TIMEOUT.as_secs() + 10),
        async {
            let mut buf = [0u8; 1024];
            loop {
                if slow.write_all(b"a").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {} // e.g. a 408 before closing
                    Err(_) => {}
                }
            }
        },
    )
    .await;
    let after = start.elapsed();
    println!("slow client cut off after {:.1} s", after.as_secs_f64());
    assert!(
        closed.is_ok(),
        "the slow client is still connected after {after:?}"
    );
    assert!(after >= kaas_server::HEADER_TIMEOUT - Duration::from_secs(1));
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent connection is closed too")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The server still answers.
    let res = env.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn waits_are_capped_per_identity() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    let res = env
        .call(
            Method::POST,
            "/api/v1/namespaces/tenant-a/clusters",
            a,
            Some(json!({"metadata": {"name": "w1"}, "spec": {"provider": {"name": "dev"}, "workers": [{"name": "w", "count": 1}]}})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let mut waits = Vec::new();
    for _ in 0..kaas_server::MAX_WAITS_PER_IDENTITY {
        let (http, url, token) = (env.http.clone(), env.url.clone(), env.token_a.clone());
        waits.push(tokio::spawn(async move {
            http.get(format!(
                "{url}/api/v1/namespaces/tenant-a/clusters/w1?wait=Ready&timeout=15s"
            ))
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let res = env
        .call(
            Method::GET,
            "/api/v1/namespaces/tenant-a/clusters/w1?wait=Ready&timeout=15s",
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 429, "{}", res.text);
    assert_eq!(res.json()["code"], "TooManyRequests");
    // Another identity is not affected, and plain reads still work.
    let res = env
        .call(
            Method::GET,
            "/api/v1/namespaces/tenant-a/clusters/w1",
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 200);
    for w in waits {
        assert_eq!(
            w.await.unwrap().unwrap(),
            504,
            "the waits end with their timeout"
        );
    }
}

#[tokio::test]
async fn odd_names_get_4xx_and_never_reach_the_api_server() {
    watch_panics();
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    let base = "/api/v1/namespaces/tenant-a/clusters";
    let res = env
        .call(
            Method::POST,
            base,
            a,
            Some(json!({"metadata": {"name": "c1"}, "spec": {"provider": {"name": "dev"}, "kubernetes": {"version": "1.35.x"}, "workers": [{"name": "w", "count": 1}]}})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let clusters = Api::<Cluster>::namespaced(env.plane.client(), "tenant-a");
    let before = clusters.get("c1").await.unwrap();

    let long = "a".repeat(64);
    let odd = [
        "c1%23x",
        "c1%3Fx=y",
        "c1%0D%0AX-Injected:%20yes",
        "c1%22%3B%20filename%3Devil",
        "C1",
        "c1%2Fscale",
        "c1.x",
        "c1%00",
        long.as_str(),
    ];
    for name in odd {
        for (m, suffix, body) in [
            (Method::GET, "", None),
            (
                Method::PUT,
                "",
                Some(json!({"spec": {"provider": {"name": "dev"}}})),
            ),
            (Method::DELETE, "", None),
            (
                Method::POST,
                "/scale",
                Some(json!({"pool": "w", "count": 3})),
            ),
            (Method::POST, "/upgrade", Some(json!({"version": "1.36.x"}))),
            (Method::POST, "/hibernate", None),
            (Method::POST, "/wake", None),
            (Method::GET, "/kubeconfig", None),
            (Method::GET, "/diagnostics", None),
            (Method::GET, "/compliance", None),
        ] {
            let path = format!("{base}/{name}{suffix}");
            let res = env.call(m.clone(), &path, a, body).await;
            assert!(
                (400..500).contains(&res.status) && res.status != 404,
                "{m} {path}: {} {}",
                res.status,
                res.text
            );
            assert!(
                res.headers.get("x-injected").is_none()
                    && res
                        .headers
                        .get("content-disposition")
                        .is_none_or(|v| !v.to_str().unwrap_or("").contains("evil")),
                "{m} {path}: header injection"
            );
            if res.status == 400 {
                let body = res.json();
                assert_eq!(body["code"], "BadRequest", "{m} {path}: {body}");
                assert_eq!(
                    body["errors"][0]["path"], "metadata.name",
                    "{m} {path}: {body}"
                );
            }
        }
    }
    // Odd namespaces and providers too.
    for path in [
        "/api/v1/namespaces/tenant-a%23/clusters",
        "/api/v1/namespaces/Tenant-A/clusters/c1",
        "/api/v1/providers/dev%3Fx",
        "/api/v1/providers/dev%0D%0A",
    ] {
        let res = env.call(Method::GET, path, a, None).await;
        assert_eq!(res.status, 400, "{path}: {}", res.text);
    }

    // The GUI: the upgrade form of a name with CR/LF answers 4xx and writes nothing.
    let res = post_login(&env, &env.token_a, "").await;
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = env
        .http
        .get(format!("{}/ui/clusters/c1", env.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    let csrf = html[at..at + 64].to_string();
    for name in ["c1%0D%0ALocation:%20x", "c1%23", "c1%3F"] {
        for action in ["upgrade", "scale", "delete", "hibernate", "wake"] {
            let res = env
                .http
                .post(format!("{}/ui/clusters/{name}/{action}", env.url))
                .header("cookie", &cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("version", "1.36.x"),
                    ("pool", "w"),
                    ("count", "5"),
                    ("confirm", "c1"),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert!((400..500).contains(&status), "{action} {name}: {status}");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "GUI errors are pages"
            );
        }
    }
    let after = clusters.get("c1").await.unwrap();
    // (The operator writes c1's status meanwhile; the spec and its generation are the clients'.)
    assert_eq!(
        before.metadata.generation, after.metadata.generation,
        "c1's spec was never written"
    );
    assert_eq!(before.spec, after.spec);
    assert!(after.metadata.deletion_timestamp.is_none());
    assert!(server_panics().is_empty(), "{:?}", server_panics());
}

#[tokio::test]
async fn control_character_tokens_get_401_without_a_panic() {
    watch_panics();
    let env = env(false).await;
    for token in [
        "abc\u{1}def",
        "abc\ndef",
        "abc\r\nX-A: b",
        "abc\u{7f}",
        "ab c",
        "tök",
    ] {
        let res = post_login(&env, token, "tenant-a").await;
        assert_eq!(res.status(), 401, "sign-in with {token:?}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // Bearer tokens with control characters: refused by the HTTP parser (400) or by us (401).
    for token in ["abc\u{1}def", "abc\tdef", "abc\u{7f}", "t\u{e4}"] {
        let mut req = b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ".to_vec();
        req.extend_from_slice(token.as_bytes());
        req.extend_from_slice(b"\r\n\r\n");
        let status = raw(&env.url, &req, Duration::from_secs(5)).await;
        assert!(
            matches!(status, Some(400 | 401)),
            "bearer {token:?}: {status:?}"
        );
    }
    let res = env.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(res.status, 200);
    assert!(server_panics().is_empty(), "{:?}", server_panics());
}

#[tokio::test]
async fn sign_in_needs_the_sign_in_pages_csrf_token() {
    let env = env(false).await;
    // A cross-site form posting the attacker's own token (login CSRF): no pre-session token.
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .header("origin", "https://evil.example")
        .form(&[("token", env.token_a.as_str()), ("namespace", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("kaas_session="))
    );
    // A field without its cookie, and a cookie with another field, are refused as well.
    let (cookie, csrf) = login_csrf(&env).await;
    assert!(
        !cookie.is_empty() && csrf.len() == 64,
        "the sign-in page sets the pair"
    );
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .form(&[
            ("token", env.token_a.as_str()),
            ("login_csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (cookie2, _) = login_csrf(&env).await;
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .header("cookie", &cookie2)
        .form(&[
            ("token", env.token_a.as_str()),
            ("login_csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The sign-in page's own pair works.
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .header("cookie", &cookie)
        .form(&[
            ("token", env.token_a.as_str()),
            ("login_csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn dry_run_is_honoured() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    let base = "/api/v1/namespaces/tenant-a/clusters";
    let body = json!({"metadata": {"name": "dry"}, "spec": {"provider": {"name": "dev"}, "kubernetes": {"version": "1.35.x"}, "workers": [{"name": "w", "count": 1}]}});
    let res = env
        .call(
            Method::POST,
            &format!("{base}?dryRun=All"),
            a,
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.json()["metadata"]["name"], "dry");
    let res = env.call(Method::GET, &format!("{base}/dry"), a, None).await;
    assert_eq!(res.status, 404, "a dry run creates nothing");

    let res = env.call(Method::POST, base, a, Some(body)).await;
    assert_eq!(res.status, 201);
    for (m, suffix, body) in [
        (
            Method::POST,
            "/scale",
            Some(json!({"pool": "w", "count": 3})),
        ),
        (Method::POST, "/upgrade", Some(json!({"version": "1.36.x"}))),
        (Method::POST, "/hibernate", None),
        (Method::DELETE, "", None),
    ] {
        let res = env
            .call(
                m.clone(),
                &format!("{base}/dry{suffix}?dryRun=All"),
                a,
                body,
            )
            .await;
        assert!(
            (200..300).contains(&res.status),
            "{m} {suffix}: {} {}",
            res.status,
            res.text
        );
    }
    let res = env.call(Method::GET, &format!("{base}/dry"), a, None).await;
    assert_eq!(res.status, 200);
    let c = res.json();
    // (The operator may have written the status meanwhile; the spec is the client's.)
    assert_eq!(c["spec"]["workers"][0]["count"], 1, "not scaled");
    assert_eq!(c["spec"]["kubernetes"]["version"], "1.35.x", "not upgraded");
    assert!(
        c["spec"].get("hibernation").is_none(),
        "not hibernated: {c}"
    );
    assert_eq!(
        c["metadata"]["generation"], 1,
        "the spec was never written: {c}"
    );
    assert!(c["metadata"].get("deletionTimestamp").is_none());
    // Anything but `All` is refused, as the API server does.
    let res = env
        .call(Method::DELETE, &format!("{base}/dry?dryRun=Yes"), a, None)
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.json()["code"], "BadRequest");
}

#[tokio::test]
async fn malformed_requests_answer_json_under_api_and_html_under_ui() {
    let env = env(false).await;
    let a = Some(env.token_a.as_str());
    // Duplicate query parameters.
    let res = env
        .call(
            Method::GET,
            "/api/v1/namespaces/tenant-a/clusters/x?wait=Ready&wait=Deleted",
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.json()["code"], "BadRequest");
    // Wrong content type, method not allowed, body over the limit: JSON as well.
    let res = env
        .http
        .post(format!(
            "{}/api/v1/namespaces/tenant-a/clusters/x/scale",
            env.url
        ))
        .bearer_auth(&env.token_a)
        .header("content-type", "text/plain")
        .body("pool=w")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert_eq!(body["code"], "UnsupportedMediaType");
    let res = env
        .call(
            Method::PATCH,
            "/api/v1/namespaces/tenant-a/clusters/x",
            a,
            None,
        )
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.json()["code"], "MethodNotAllowed");
    let big = "x".repeat(3 << 20);
    let res = env
        .http
        .post(format!("{}/api/v1/namespaces/tenant-a/clusters", env.url))
        .bearer_auth(&env.token_a)
        .header("content-type", "application/json")
        .body(format!("{{\"a\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert_eq!(body["code"], "PayloadTooLarge");

    // GUI forms with missing fields: an HTML page.
    let cookie = session_cookie(&env, &env.token_a, "").await;
    let res = env
        .http
        .post(format!("{}/ui/clusters/x/scale", env.url))
        .header("cookie", &cookie)
        .form(&[("pool", "w")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .body("token=%")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn gui_errors_are_pages_with_their_status_and_a_way_back_while_the_api_stays_json() {
    let env = env(false).await;
    let page = |res: &Res, status: u16| {
        assert_eq!(res.status, status, "{}", res.text);
        let ctype = res.headers["content-type"].to_str().unwrap();
        assert!(ctype.starts_with("text/html"), "{ctype}: {}", res.text);
        assert!(res.text.starts_with("<!DOCTYPE html>"), "{}", res.text);
        assert!(
            res.text.contains(r#"href="/ui/" id="back""#),
            "{}",
            res.text
        );
    };
    // Pages that do not exist, signed in or not.
    let res = env.call(Method::GET, "/ui/no-such-page", None, None).await;
    page(&res, 404);
    assert!(
        res.text.contains("There is no page at /ui/no-such-page."),
        "{}",
        res.text
    );
    assert!(res.text.contains(r#"data-status="404""#), "{}", res.text);
    let res = env
        .call(Method::GET, "/ui/clusters/x/nope", None, None)
        .await;
    page(&res, 404);
    let res = env.call(Method::DELETE, "/ui/", None, None).await;
    page(&res, 405);
    let cookie = session_cookie(&env, &env.token_a, "").await;
    let res = env.page("/ui/nothing/here", &cookie).await;
    page(&res, 404);
    // Errors of a signed-in page keep the API server's status.
    let res = env.page("/ui/clusters/missing", &cookie).await;
    page(&res, 404);
    assert!(res.text.contains("missing"), "{}", res.text);
    for path in [
        "/ui/clusters/missing/compliance",
        "/ui/clusters/missing/compliance/report.json",
        "/ui/new?provider=nope",
    ] {
        page(&env.page(path, &cookie).await, 404);
    }
    // The REST API is unaffected: JSON errors.
    let a = Some(env.token_a.as_str());
    for (path, code) in [
        ("/api/v1/no-such-route", "NotFound"),
        ("/api/v1/namespaces/tenant-a/clusters/missing", "NotFound"),
        (
            "/api/v1/namespaces/tenant-a/clusters/missing/compliance",
            "NotFound",
        ),
    ] {
        let res = env.call(Method::GET, path, a, None).await;
        assert_eq!(res.status, 404, "{path}: {}", res.text);
        assert!(
            res.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        assert_eq!(res.json()["code"], code, "{path}");
    }
}
