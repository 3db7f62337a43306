//! The scs-0217 (cluster hardening, draft) subset: Pod Security labels, a server-side dry-run of a
//! privileged pod, kube-apiserver settings where visible, and port probes when asked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

use super::{Verdict, preflight};
use crate::Ctx;
use crate::access::{Need, describe_error};
use crate::behaviour::{in_temp_namespace, labels};

pub(crate) const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

pub(crate) async fn labels_check(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(ctx, &[Need::cluster("list", "", "namespaces")]).await {
        return v;
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut lp = ListParams::default().limit(500);
    let mut all = Vec::new();
    loop {
        match api.list_metadata(&lp).await {
            Ok(page) => {
                all.extend(page.items.into_iter().map(|n| {
                    (
                        n.metadata.name.unwrap_or_default(),
                        n.metadata.labels.unwrap_or_default(),
                        n.metadata.annotations.unwrap_or_default(),
                    )
                }));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(c) => lp = lp.continue_token(&c),
                    None => break,
                }
            }
            Err(e) => return Verdict::abort(describe_error(&e, "list namespaces")),
        }
    }
    evaluate_labels(&all, &ctx.opts.psa_exempt_namespaces)
}

type Meta = (String, BTreeMap<String, String>, BTreeMap<String, String>);

/// The verdict for namespaces (name, labels, annotations).
pub(crate) fn evaluate_labels(namespaces: &[Meta], exempt: &[String]) -> Verdict {
    let mut ok = Vec::new();
    let (mut unlabelled, mut annotated_only, mut weak) = (Vec::new(), Vec::new(), Vec::new());
    let mut exempted = Vec::new();
    for (name, labels, annotations) in namespaces {
        if exempt.contains(name) {
            exempted.push(format!(
                "{name} ({})",
                labels
                    .get(ENFORCE)
                    .map(String::as_str)
                    .unwrap_or("unlabelled")
            ));
            continue;
        }
        match labels.get(ENFORCE).map(String::as_str) {
            Some("baseline" | "restricted") => ok.push(name.as_str()),
            Some(level) => weak.push(format!("{name} (enforce={level})")),
            None if annotations.contains_key(ENFORCE) => annotated_only.push(name.as_str()),
            None => unlabelled.push(name.as_str()),
        }
    }
    let mut details = vec![format!(
        "{} namespace(s) with enforce=baseline/restricted",
        ok.len()
    )];
    if !exempted.is_empty() {
        details.push(format!("exempt: {}", exempted.join(", ")));
    }
    let mut problems = Vec::new();
    if !unlabelled.is_empty() {
        problems.push(format!(
            "without {ENFORCE} label: {}",
            unlabelled.join(", ")
        ));
    }
    if !annotated_only.is_empty() {
        problems.push(format!(
            "{ENFORCE} set as an annotation, which Pod Security admission ignores (must be a label): {}",
            annotated_only.join(", ")
        ));
    }
    if !weak.is_empty() {
        problems.push(format!("below baseline: {}", weak.join(", ")));
    }
    if problems.is_empty() {
        Verdict::pass(format!(
            "all {} non-exempt namespace(s) enforce baseline or restricted",
            ok.len()
        ))
        .details(details)
    } else {
        Verdict::fail(format!(
            "Pod Security labels missing or too weak: {}",
            problems.join("; ")
        ))
        .details(details)
    }
}

const PROBE_NS: &str = "kaas-check";

pub(crate) async fn admission_check(ctx: &Ctx<'_>) -> Verdict {
    let needs = [
        Need::cluster("create", "", "namespaces"),
        Need::cluster("delete", "", "namespaces"),
        Need::namespaced("create", "", "pods", PROBE_NS),
    ];
    if let Some(v) = preflight(ctx, &needs).await {
        return v;
    }
    in_temp_namespace(
        ctx,
        "psa",
        &[
            (ENFORCE, "baseline"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
        ],
        |ns| async move { dry_run_privileged(ctx, &ns).await },
    )
    .await
}

async fn dry_run_privileged(ctx: &Ctx<'_>, ns: &str) -> Verdict {
    // The ServiceAccount admission plugin rejects pods until `default` exists; wait for it so its
    // rejection is not mistaken for Pod Security's.
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = sas.get_opt("default").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-privileged", "labels": labels(&[]) },
        "spec": {
            "containers": [{
                "name": "privileged",
                "image": ctx.opts.image,
                "command": ["sleep", "1"],
                "securityContext": { "privileged": true }
            }]
        }
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.create(&pp, &pod).await {
        Ok(_) => Verdict::fail(format!(
            "a privileged pod was admitted (server-side dry-run) in namespace {ns} labelled {ENFORCE}=baseline: Pod Security admission is not enforcing"
        )),
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("PodSecurity") => {
            Verdict::pass("privileged pod rejected by Pod Security admission (enforce=baseline)")
                .details([format!("API server: {}", s.message)])
        }
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("privileged") => {
            Verdict::pass(
                "privileged pod rejected (by an admission policy other than Pod Security)",
            )
            .details([format!("API server: {}", s.message)])
        }
        Err(e) => Verdict::abort(format!(
            "the dry-run was rejected for another reason, so Pod Security cannot be judged: {}",
            describe_error(&e, "create a pod (dry-run)")
        )),
    }
}

/// Flags of a kube-apiserver command line: `--k=v`, `--k v` and bare `--k` (true).
pub(crate) fn parse_flags(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(f) = args[i].strip_prefix("--") {
            if let Some((k, v)) = f.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                out.insert(f.to_string(), args[i + 1].clone());
                i += 1;
            } else {
                out.insert(f.to_string(), "true".to_string());
            }
        }
        i += 1;
    }
    out
}

/// Checks of one kube-apiserver's flags: (problems, notes).
pub(crate) fn evaluate_apiserver(flags: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let list = |k: &str| -> BTreeSet<String> {
        flags
            .get(k)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let has = |k: &str| flags.get(k).is_some_and(|v| !v.is_empty());
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    let authz = list("authorization-mode");
    if !has("authorization-config") {
        let modes = if authz.is_empty() {
            "AlwaysAllow (default)".to_string()
        } else {
            authz.iter().cloned().collect::<Vec<_>>().join(",")
        };
        if !authz.contains("Node")
            || !["RBAC", "ABAC", "Webhook"]
                .iter()
                .any(|m| authz.contains(*m))
        {
            problems.push(format!(
                "--authorization-mode={modes}: needs Node and one of RBAC, ABAC, Webhook"
            ));
        } else {
            notes.push(format!("authorization: {modes}"));
        }
    } else {
        notes.push("authorization via --authorization-config (structured; not inspected)".into());
    }

    let sa = has("service-account-key-file") || has("service-account-issuer");
    let others: Vec<&str> = [
        ("client-ca-file", "client certificates"),
        ("oidc-issuer-url", "OIDC"),
        ("authentication-config", "structured authentication (JWT)"),
        ("authentication-token-webhook-config-file", "token webhook"),
        ("token-auth-file", "static tokens"),
    ]
    .iter()
    .filter(|(k, _)| has(k))
    .map(|(_, n)| *n)
    .collect();
    if !sa {
        problems.push("service-account tokens not configured (--service-account-key-file/--service-account-issuer)".into());
    }
    if others.is_empty() {
        problems.push("no authentication method besides service-account tokens".into());
    } else {
        notes.push(format!(
            "authentication: service-account tokens{}, {}",
            if sa { "" } else { " (missing)" },
            others.join(", ")
        ));
    }

    let enabled = list("enable-admission-plugins");
    let disabled = list("disable-admission-plugins");
    if !enabled.contains("NodeRestriction") {
        problems.push(
            "NodeRestriction admission plugin not enabled (--enable-admission-plugins)".into(),
        );
    }
    if disabled.contains("PodSecurity") {
        problems.push("PodSecurity admission plugin disabled".into());
    }
    if flags.get("anonymous-auth").is_some_and(|v| v == "true") {
        notes.push(
            "--anonymous-auth=true (anonymous requests allowed; RBAC must not grant them anything)"
                .into(),
        );
    }

    let etcd = flags.get("etcd-servers").cloned().unwrap_or_default();
    let plain: Vec<&str> = etcd
        .split(',')
        .filter(|s| !s.is_empty() && !s.starts_with("https://"))
        .collect();
    if !plain.is_empty() {
        problems.push(format!("etcd without TLS: {}", plain.join(", ")));
    } else if !etcd.is_empty() {
        let certs: Vec<&str> = ["etcd-cafile", "etcd-certfile", "etcd-keyfile"]
            .into_iter()
            .filter(|k| !has(k))
            .collect();
        if certs.is_empty() {
            notes.push("etcd over TLS with client certificates".into());
        } else {
            problems.push(format!("etcd TLS incomplete: {} not set", certs.join(", ")));
        }
    }
    // scs-0215 (robustness, draft): informational.
    for k in [
        "max-requests-inflight",
        "max-mutating-requests-inflight",
        "min-request-timeout",
    ] {
        if !has(k) {
            notes.push(format!(
                "scs-0215 (draft, informational): --{k} not set (default)"
            ));
        }
    }
    if !enabled.contains("EventRateLimit") {
        notes.push("scs-0215 (draft, informational): EventRateLimit admission not enabled".into());
    }
    (problems, notes)
}

pub(crate) async fn apiserver_check(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(ctx, &[Need::namespaced("list", "", "pods", "kube-system")]).await {
        return v;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), "kube-system");
    let pods = match api
        .list(&ListParams::default().labels("component=kube-apiserver"))
        .await
    {
        Ok(l) => l.items,
        Err(e) => return Verdict::abort(describe_error(&e, "list pods in kube-system")),
    };
    if pods.is_empty() {
        return Verdict::skip(
            "not applicable: no kube-apiserver pod in kube-system (managed or hidden control plane); its flags are not visible",
        );
    }
    let mut details = Vec::new();
    let mut failed = Vec::new();
    for p in &pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let Some(c) = p.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == "kube-apiserver")
                .or(s.containers.first())
        }) else {
            continue;
        };
        let args: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .cloned()
            .collect();
        let (problems, notes) = evaluate_apiserver(&parse_flags(&args));
        for n in notes {
            details.push(format!("{name}: {n}"));
        }
        for pr in &problems {
            details.push(format!("{name}: PROBLEM: {pr}"));
        }
        if !problems.is_empty() {
            failed.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    if failed.is_empty() {
        Verdict::pass(format!(
            "{} kube-apiserver pod(s) meet the scs-0217 settings",
            pods.len()
        ))
        .details(details)
    } else {
        Verdict::fail(failed.join(" | ")).details(details)
    }
}

pub(crate) async fn port_probe_check(ctx: &Ctx<'_>) -> Verdict {
    let mut hosts: Vec<String> = ctx.opts.probe_hosts.clone();
    let mut details = Vec::new();
    if preflight(ctx, &[Need::cluster("list", "", "nodes")])
        .await
        .is_none()
    {
        let api: Api<Node> = Api::all(ctx.client.clone());
        match api.list(&ListParams::default().limit(500)).await {
            Ok(list) => {
                // Control-plane nodes first, then at most 10 others: probing is bounded.
                let mut nodes = list.items;
                nodes.sort_by_key(|n| {
                    !n.metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.contains_key(super::nodes::CONTROL_PLANE))
                });
                let mut workers = 0;
                for n in nodes {
                    let cp = n
                        .metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.contains_key(super::nodes::CONTROL_PLANE));
                    if !cp {
                        if workers >= 10 {
                            continue;
                        }
                        workers += 1;
                    }
                    let addrs = n.status.and_then(|s| s.addresses).unwrap_or_default();
                    let pick = addrs
                        .iter()
                        .find(|a| a.type_ == "ExternalIP")
                        .or_else(|| addrs.iter().find(|a| a.type_ == "InternalIP"));
                    if let Some(a) = pick {
                        hosts.push(a.address.clone());
                    }
                }
            }
            Err(e) => details.push(describe_error(&e, "list nodes")),
        }
    } else {
        details.push("nodes not listable: probing only the given hosts".into());
    }
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        return Verdict::abort("no address to probe (no node addresses visible, no hosts given)")
            .details(details);
    }
    let targets: Vec<(String, u16)> = hosts
        .iter()
        .flat_map(|h| ctx.opts.probe_ports.iter().map(move |p| (h.clone(), *p)))
        .collect();
    ctx.say(&format!(
        "probing {} host(s) x {} port(s)",
        hosts.len(),
        ctx.opts.probe_ports.len()
    ));
    let timeout = ctx.opts.timeouts.probe;
    let open: Vec<String> = futures::stream::iter(targets)
        .map(|(h, p)| async move {
            let addr = if h.contains(':') {
                format!("[{h}]:{p}")
            } else {
                format!("{h}:{p}")
            };
            let ok = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await,
                Ok(Ok(_))
            );
            ok.then_some(addr)
        })
        .buffer_unordered(32)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    details.push(format!(
        "probed {} on ports {}",
        hosts.join(", "),
        ctx.opts
            .probe_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    if open.is_empty() {
        Verdict::pass("no etcd, kubelet, controller-manager or scheduler port reachable from here")
            .details(details)
    } else {
        let mut open = open;
        open.sort();
        Verdict::fail(format!("reachable from here: {}", open.join(", "))).details(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn kubeadm_like_apiserver_passes() {
        let f = parse_flags(&args(
            "kube-apiserver --advertise-address=10.0.0.1 --authorization-mode=Node,RBAC --client-ca-file=/etc/kubernetes/pki/ca.crt \
             --enable-admission-plugins=NodeRestriction --etcd-servers=https://127.0.0.1:2379 --etcd-cafile=/a --etcd-certfile=/b --etcd-keyfile=/c \
             --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=/sa.pub --anonymous-auth",
        ));
        assert_eq!(f.get("anonymous-auth").map(String::as_str), Some("true"));
        let (problems, _) = evaluate_apiserver(&f);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn weak_apiserver_fails() {
        let f = parse_flags(&args(
            "kube-apiserver --authorization-mode AlwaysAllow --etcd-servers=http://127.0.0.1:2379 --disable-admission-plugins=PodSecurity",
        ));
        let (problems, _) = evaluate_apiserver(&f);
        let all = problems.join("\n");
        for want in [
            "authorization-mode=AlwaysAllow",
            "service-account tokens not configured",
            "no authentication method",
            "NodeRestriction",
            "PodSecurity admission plugin disabled",
            "etcd without TLS",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
    }

    #[test]
    fn namespace_labels() {
        let ns = |n: &str, l: &[(&str, &str)], a: &[(&str, &str)]| -> Meta {
            let m = |x: &[(&str, &str)]| {
                x.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            (n.into(), m(l), m(a))
        };
        let exempt = vec!["kube-system".to_string()];
        let good = vec![
            ns("kube-system", &[], &[]),
            ns("a", &[(ENFORCE, "baseline")], &[]),
            ns("b", &[(ENFORCE, "restricted")], &[]),
        ];
        assert_eq!(evaluate_labels(&good, &exempt).outcome, Outcome::Pass);
        let mut bad = good.clone();
        bad.push(ns("c", &[], &[]));
        bad.push(ns("d", &[], &[(ENFORCE, "baseline")]));
        bad.push(ns("e", &[(ENFORCE, "privileged")], &[]));
        let v = evaluate_labels(&bad, &exempt);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.summary.contains("label: c"), "{}", v.summary);
        assert!(v.summary.contains("annotation"), "{}", v.summary);
        assert!(
            v.summary.contains("e (enforce=privileged)"),
            "{}",
            v.summary
        );
    }
}
