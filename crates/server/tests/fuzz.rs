//! Property test of the HTTP layer through the real server against a real API server: random
//! methods, paths (real routes with odd parameters, and nonsense), query strings, headers
//! (tokens with control characters, cookies, content types) and bodies, sent as raw HTTP/1.1.
//! Whatever arrives, the server answers without a 5xx other than 502/504 (the management
//! cluster's), nothing panics, and `/healthz` still answers afterwards.

mod common;

use std::sync::{Mutex, Once};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

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

const ROUTES: &[&str] = &[
    "/api/v1/openapi.json",
    "/api/v1/whoami",
    "/api/v1/providers",
    "/api/v1/providers/{p}",
    "/api/v1/namespaces/{ns}/clusters",
    "/api/v1/namespaces/{ns}/clusters/{n}",
    "/api/v1/namespaces/{ns}/clusters/{n}/scale",
    "/api/v1/namespaces/{ns}/clusters/{n}/upgrade",
    "/api/v1/namespaces/{ns}/clusters/{n}/hibernate",
    "/api/v1/namespaces/{ns}/clusters/{n}/wake",
    "/api/v1/namespaces/{ns}/clusters/{n}/kubeconfig",
    "/api/v1/namespaces/{ns}/clusters/{n}/diagnostics",
    "/api/v1/namespaces/{ns}/clusters/{n}/compliance",
    "/ui/",
    "/ui/login",
    "/ui/logout",
    "/ui/new",
    "/ui/clusters",
    "/ui/clusters/{n}",
    "/ui/clusters/{n}/scale",
    "/ui/clusters/{n}/upgrade",
    "/ui/clusters/{n}/preview",
    "/ui/clusters/{n}/apply",
    "/ui/clusters/{n}/delete",
    "/ui/clusters/{n}/hibernate",
    "/ui/clusters/{n}/wake",
    "/ui/clusters/{n}/kubeconfig",
    "/ui/clusters/{n}/compliance",
    "/ui/static/app.js",
    "/healthz",
    "/",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["tenant-a", "tenant-b", "dev", "c1", "x"]).prop_map(String::from),
        3 => prop::sample::select(vec![
            "A", "a.b", "..", ".", "%00", "%23", "%3F", "%0D%0A", "%ZZ", "%C3%28", "%2F", "%20",
            "a%23b", "-a", "%E2%80%AE", "",
        ])
        .prop_map(String::from),
        2 => "[a-z0-9-]{1,70}",
        1 => "[a-zA-Z0-9%._~!$&'()*+,;=:@-]{0,30}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(ROUTES), segment(), segment(), segment()).prop_map(
            |(r, a, b, c)| r.replace("{p}", &a).replace("{ns}", &b).replace("{n}", &c)
        ),
        1 => prop::collection::vec(segment(), 0..7).prop_map(|s| format!("/{}", s.join("/"))),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        3 => prop::collection::vec(
            prop::sample::select(vec![
                "wait=Ready&timeout=1", "wait=Deleted&timeout=1s", "wait=Bogus", "wait=",
                "timeout=1", "timeout=99999999999999999999999s", "timeout=-1", "dryRun=All",
                "dryRun=x", "dryRun=All&dryRun=All", "provider=dev", "provider=%0D%0A",
                "done=%3Cscript%3E", "wait=Ready&wait=Ready", "%ZZ=%ZZ", "a", "&&&", "=",
            ]),
            1..4
        )
        .prop_map(|q| q.join("&")),
        1 => "[ -~]{0,40}".prop_map(|q| q.replace([' ', '#'], "%20")),
    ]
}

/// A header value: printable, or with control characters and non-ASCII bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[ -~]{0,60}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|v| v.into_iter().filter(|b| *b != b'\r' && *b != b'\n').collect()),
    ]
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Valid,
    Token(Vec<u8>),
    Cookie(Vec<u8>),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        Just(Auth::Valid),
        value().prop_map(Auth::Token),
        value().prop_map(Auth::Cookie),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::sample::select(vec![
            "{}", "[]", "null", "{\"metadata\": {\"name\": \"c1\"}}",
            "{\"metadata\": {\"name\": \"c1\"}, \"spec\": {\"provider\": {\"name\": \"dev\"}, \"workers\": [{\"name\": \"w\", \"count\": 1}]}}",
            "{\"metadata\": {\"name\": \"C1#\"}, \"spec\": {\"provider\": {\"name\": \"dev\"}}}",
            "{\"pool\": \"w\", \"count\": 3}", "{\"pool\": \"w\", \"count\": 99999999999}",
            "{\"version\": \"1.36.x\"}", "{\"version\": \"\\u0000\"}", "{\"spec\": {\"workers\": {}}}",
            "token=abc%01def&namespace=tenant-a&login_csrf=x", "csrf=x&pool=w&count=%",
            "{\"metadata\": {\"name\": \"c1\", \"namespace\": \"tenant-b\"}}", "{\"a\":",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..600),
        1 => "[ -~]{0,200}".prop_map(String::into_bytes),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/merge-patch+json",
        "multipart/form-data; boundary=x",
        "application/json; charset=\u{1}",
    ]))
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_break_the_server() {
    watch_panics();
    let env = env(false).await;
    let handle = tokio::runtime::Handle::current();
    let cases = std::env::var("KAAS_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let strategy = (
        method(),
        path(),
        query(),
        auth(),
        content_type(),
        body(),
        prop::collection::vec(("[A-Za-z-]{1,20}", value()), 0..3),
        any::<bool>(),
    );
    let (url, token) = (env.url.clone(), env.token_a.clone());
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<String, usize>::new());
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(m, p, q, a, ct, b, extra, length)| {
                let mut req = Vec::new();
                let target = if q.is_empty() {
                    p.clone()
                } else {
                    format!("{p}?{q}")
                };
                req.extend_from_slice(
                    format!("{m} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n")
                        .as_bytes(),
                );
                match &a {
                    Auth::None => {}
                    Auth::Valid => req
                        .extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes()),
                    Auth::Token(t) => {
                        req.extend_from_slice(b"Authorization: Bearer ");
                        req.extend_from_slice(t);
                        req.extend_from_slice(b"\r\n");
                    }
                    Auth::Cookie(c) => {
                        req.extend_from_slice(b"Cookie: kaas_session=");
                        req.extend_from_slice(c);
                        req.extend_from_slice(b"; kaas_login=");
                        req.extend_from_slice(c);
                        req.extend_from_slice(b"\r\n");
                    }
                }
                if let Some(ct) = ct {
                    req.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                }
                for (k, v) in &extra {
                    req.extend_from_slice(format!("{k}: ").as_bytes());
                    req.extend_from_slice(v);
                    req.extend_from_slice(b"\r\n");
                }
                if length || !b.is_empty() {
                    req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
                }
                req.extend_from_slice(b"\r\n");
                req.extend_from_slice(&b);
                let status = handle.block_on(raw(&url, &req, Duration::from_secs(20)));
                let key = status.map_or("none".to_string(), |s| s.to_string());
                if std::env::var_os("KAAS_FUZZ_VERBOSE").is_some() {
                    println!("{key} {m} {target} {a:?} {ct:?} extra={extra:?}");
                }
                *seen.borrow_mut().entry(key).or_default() += 1;
                match status {
                    Some(s) if s >= 500 && s != 502 && s != 504 => Err(TestCaseError::fail(
                        format!("{m} {target} ({a:?}, {ct:?}) answered {s}"),
                    )),
                    _ => Ok(()),
                }
            })
            .map_err(|e| e.to_string())
    });
    let seen = seen.into_inner();
    println!("statuses of {cases} random requests: {seen:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    let res = env.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(res.status, 200, "the server still answers");
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(panics.is_empty(), "panics: {panics:?}");
    assert!(
        seen.keys().filter(|k| k.as_str() != "none").count() >= 5,
        "the cases reach different answers: {seen:?}"
    );
}
