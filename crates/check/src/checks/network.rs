//! scs-0219 networking: the static `networkpolicy-api-check` and the behavioural
//! `kaas-networking-check` (server pod, client Jobs; verdicts from Job status only).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use super::{Verdict, preflight};
use crate::Ctx;
use crate::access::{Need, describe_error};
use crate::behaviour::{
    JobWait, PodWait, in_temp_namespace, labels, require_schedulable, restricted_container,
    run_job, wait_pod_running,
};

async fn group_serves(ctx: &Ctx<'_>, group_version: &str, resource: &str) -> Result<bool, String> {
    match ctx.client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(describe_error(&e, &format!("discover {group_version}"))),
    }
}

pub(crate) async fn api_check(ctx: &Ctx<'_>) -> Verdict {
    // Discovery is readable by every authenticated user (system:discovery).
    let np = match group_serves(ctx, "networking.k8s.io/v1", "networkpolicies").await {
        Ok(b) => b,
        Err(e) => return Verdict::abort(e),
    };
    if !np {
        return Verdict::fail("networking.k8s.io/v1 NetworkPolicy is not served");
    }
    Verdict::pass("NetworkPolicy API (networking.k8s.io/v1) served").details([
        "networking.k8s.io/v1 networkpolicies served; whether they are enforced is the mandatory kaas-networking-check (behavioural)".to_string(),
    ])
}

/// The versions of an API group the server serves (empty if the group is unknown).
async fn group_versions(ctx: &Ctx<'_>, group: &str) -> Result<Vec<String>, String> {
    let groups = ctx
        .client
        .list_api_groups()
        .await
        .map_err(|e| describe_error(&e, "discover API groups"))?;
    Ok(groups
        .groups
        .iter()
        .filter(|g| g.name == group)
        .flat_map(|g| g.versions.iter().map(|v| v.group_version.clone()))
        .collect())
}

/// Which of `resources` some served version of `group` has.
async fn served(ctx: &Ctx<'_>, group: &str, resources: &[&str]) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for gv in group_versions(ctx, group).await? {
        for r in resources {
            if !found.iter().any(|f: &String| f.ends_with(&format!(" {r}")))
                && group_serves(ctx, &gv, r).await?
            {
                found.push(format!("{gv} {r}"));
            }
        }
    }
    Ok(found)
}

/// scs-0219-v1 SHOULD: AdminNetworkPolicy and BaselineAdminNetworkPolicy.
pub(crate) async fn anp_check(ctx: &Ctx<'_>) -> Verdict {
    let want = ["adminnetworkpolicies", "baselineadminnetworkpolicies"];
    match served(ctx, "policy.networking.k8s.io", &want).await {
        Err(e) => Verdict::abort(e),
        Ok(found) if found.len() == want.len() => {
            Verdict::pass("AdminNetworkPolicy and BaselineAdminNetworkPolicy served").details(found)
        }
        Ok(found) if found.is_empty() => {
            Verdict::fail("policy.networking.k8s.io AdminNetworkPolicy is not served (SHOULD)")
        }
        Ok(found) => Verdict::fail(format!(
            "only {} of policy.networking.k8s.io served (SHOULD: both kinds)",
            found.join(", ")
        )),
    }
}

/// scs-0219-v1 SHOULD: a managed ingress controller with a default IngressClass.
pub(crate) async fn ingress_class_check(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(
        ctx,
        &[Need::cluster("list", "networking.k8s.io", "ingressclasses")],
    )
    .await
    {
        return v;
    }
    let ic: Api<IngressClass> = Api::all(ctx.client.clone());
    match ic.list(&ListParams::default()).await {
        Err(e) => Verdict::abort(describe_error(&e, "list ingressclasses")),
        Ok(list) => {
            let default: Vec<String> = list
                .items
                .iter()
                .filter(|c| {
                    c.metadata.annotations.as_ref().is_some_and(|a| {
                        a.get("ingressclass.kubernetes.io/is-default-class")
                            .is_some_and(|v| v == "true")
                    })
                })
                .map(|c| {
                    format!(
                        "{} (controller {})",
                        c.metadata.name.clone().unwrap_or_default(),
                        c.spec
                            .as_ref()
                            .and_then(|s| s.controller.clone())
                            .unwrap_or_default()
                    )
                })
                .collect();
            match default.as_slice() {
                [] => Verdict::fail(format!(
                    "no default IngressClass ({} IngressClass(es)) (SHOULD)",
                    list.items.len()
                )),
                [one] => Verdict::pass(format!("default IngressClass {one}")),
                more => Verdict::fail(format!(
                    "{} IngressClasses are marked default: {}",
                    more.len(),
                    more.join(", ")
                )),
            }
        }
    }
}

/// scs-0219-v2 (draft) SHOULD: the Gateway API with a GatewayClass.
pub(crate) async fn gateway_check(ctx: &Ctx<'_>) -> Verdict {
    let want = ["gatewayclasses", "gateways", "httproutes"];
    let found = match served(ctx, "gateway.networking.k8s.io", &want).await {
        Err(e) => return Verdict::abort(e),
        Ok(f) => f,
    };
    if found.len() < want.len() {
        let missing: Vec<&str> = want
            .iter()
            .filter(|w| !found.iter().any(|f| f.ends_with(&format!(" {w}"))))
            .copied()
            .collect();
        return Verdict::fail(format!(
            "gateway.networking.k8s.io does not serve {} (draft SHOULD)",
            missing.join(", ")
        ))
        .details(found);
    }
    // A GatewayClass someone can use: listed as a dynamic object (its types are CRDs).
    let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GatewayClass");
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, "gatewayclasses");
    let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) if list.items.is_empty() => {
            Verdict::fail("the Gateway API is served but there is no GatewayClass").details(found)
        }
        Ok(list) => Verdict::pass(format!(
            "Gateway API served; GatewayClass(es): {}",
            list.items
                .iter()
                .filter_map(|g| g.metadata.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .details(found),
        Err(e) => Verdict::abort(describe_error(&e, "list gatewayclasses")).details(found),
    }
}

const PROBE_NS: &str = "kaas-check";
const PORT: u16 = 8080;

fn client_job(
    ctx: &Ctx<'_>,
    name: &str,
    target: &str,
    expect_allow: bool,
    client_role: bool,
) -> Value {
    let url = format!("http://{target}:{PORT}/");
    // Allowed: succeed on the first answer (policies take a moment to propagate).
    // Denied: three failed attempts in a row; an answer in between resets the count.
    let script = if expect_allow {
        format!(
            "i=0; while [ $i -lt 15 ]; do if wget -q -T 3 -O /dev/null {url}; then echo connected; exit 0; fi; i=$((i+1)); sleep 2; done; echo 'no connection'; exit 1"
        )
    } else {
        format!(
            "i=0; n=0; while [ $i -lt 15 ]; do if wget -q -T 3 -O /dev/null {url}; then n=0; echo connected; else n=$((n+1)); if [ $n -ge 3 ]; then echo blocked; exit 0; fi; fi; i=$((i+1)); sleep 2; done; exit 1"
        )
    };
    let mut pod_labels = vec![("app.kubernetes.io/name", "kaas-check-client")];
    if client_role {
        pod_labels.push(("kaas-check/role", "client"));
    }
    json!({
        "metadata": { "name": name, "labels": labels(&[]) },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": (ctx.opts.timeouts.start + ctx.opts.timeouts.job).as_secs(),
            "template": {
                "metadata": { "labels": labels(&pod_labels) },
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "automountServiceAccountToken": false,
                    "containers": [restricted_container("client", &ctx.opts.image, &script)]
                }
            }
        }
    })
}

pub(crate) async fn behaviour_check(ctx: &Ctx<'_>) -> Verdict {
    let needs = [
        Need::cluster("create", "", "namespaces"),
        Need::cluster("delete", "", "namespaces"),
        Need::cluster("list", "", "nodes"),
        Need::namespaced("create", "", "pods", PROBE_NS),
        Need::namespaced("get", "", "pods", PROBE_NS),
        Need::namespaced("list", "", "pods", PROBE_NS),
        Need::namespaced("create", "batch", "jobs", PROBE_NS),
        Need::namespaced("get", "batch", "jobs", PROBE_NS),
        Need::namespaced("create", "networking.k8s.io", "networkpolicies", PROBE_NS),
    ];
    if let Some(v) = preflight(ctx, &needs).await {
        return v;
    }
    if let Some(v) = require_schedulable(ctx).await {
        return v;
    }
    in_temp_namespace(
        ctx,
        "network",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
        |ns| async move { networking_in(ctx, &ns).await },
    )
    .await
}

async fn networking_in(ctx: &Ctx<'_>, ns: &str) -> Verdict {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    let mut server = restricted_container(
        "server",
        &ctx.opts.image,
        &format!(
            "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p {PORT} -h /tmp/www"
        ),
    );
    server["ports"] = json!([{ "containerPort": PORT }]);
    server["readinessProbe"] = json!({ "tcpSocket": { "port": PORT }, "periodSeconds": 2 });
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-server", "labels": labels(&[("app.kubernetes.io/name", "kaas-check-server")]) },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "containers": [server]
        }
    }))
    .expect("pod");
    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        return Verdict::abort(describe_error(&e, "create the server pod"));
    }
    let ip = match wait_pod_running(ctx, &pods, "kaas-check-server").await {
        Ok(PodWait::Running(p)) => p.status.and_then(|s| s.pod_ip).unwrap_or_default(),
        Ok(w) => return Verdict::abort(format!("server pod {}", w.message())),
        Err(e) => return Verdict::abort(describe_error(&e, "watch the server pod")),
    };
    if ip.is_empty() {
        return Verdict::abort("server pod runs without an IP");
    }
    let mut details = vec![format!("server pod kaas-check-server at {ip}:{PORT}")];

    // The pod IP is used directly: no dependency on DNS or kube-proxy, only on the pod network.
    let step =
        |name: &'static str, allow: bool, role: bool| client_job(ctx, name, &ip, allow, role);
    macro_rules! job {
        ($job:expr) => {
            match run_job(ctx, ns, $job).await {
                Ok(w) => w,
                Err(e) => {
                    return Verdict::abort(describe_error(&e, "run a client Job")).details(details)
                }
            }
        };
    }

    match job!(step("kaas-check-baseline", true, true)) {
        JobWait::Succeeded => details.push("1. no policy: client connects".into()),
        JobWait::Failed(m) => {
            return Verdict::abort(format!(
                "without any NetworkPolicy the client cannot reach the server ({m}): pod networking itself is broken here, so policy enforcement cannot be judged"
            ))
            .details(details);
        }
        JobWait::CouldNotRun(m) => return Verdict::abort(m).details(details),
    }

    let deny: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-default-deny", "labels": labels(&[]) },
        "spec": { "podSelector": {}, "policyTypes": ["Ingress"] }
    }))
    .expect("policy");
    if let Err(e) = policies.create(&PostParams::default(), &deny).await {
        return Verdict::abort(describe_error(&e, "create a NetworkPolicy")).details(details);
    }
    match job!(step("kaas-check-deny", false, true)) {
        JobWait::Succeeded => details.push("2. default-deny ingress: client blocked".into()),
        JobWait::Failed(_) => {
            return Verdict::fail(
                "a default-deny ingress NetworkPolicy is not enforced: the client still reaches the server",
            )
            .details(details);
        }
        JobWait::CouldNotRun(m) => return Verdict::abort(m).details(details),
    }

    let allow: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-allow-client", "labels": labels(&[]) },
        "spec": {
            "podSelector": { "matchLabels": { "app.kubernetes.io/name": "kaas-check-server" } },
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{ "podSelector": { "matchLabels": { "kaas-check/role": "client" } } }],
                "ports": [{ "protocol": "TCP", "port": PORT }]
            }]
        }
    }))
    .expect("policy");
    if let Err(e) = policies.create(&PostParams::default(), &allow).await {
        return Verdict::abort(describe_error(&e, "create a NetworkPolicy")).details(details);
    }
    match job!(step("kaas-check-allow", true, true)) {
        JobWait::Succeeded => details.push("3. allow rule for role=client: client connects".into()),
        JobWait::Failed(_) => {
            return Verdict::fail(
                "an allow rule is not honoured: the selected client cannot reach the server",
            )
            .details(details);
        }
        JobWait::CouldNotRun(m) => return Verdict::abort(m).details(details),
    }
    match job!(step("kaas-check-other", false, false)) {
        JobWait::Succeeded => details.push("4. a pod without role=client: still blocked".into()),
        JobWait::Failed(_) => {
            return Verdict::fail(
                "the allow rule lets in pods it does not select: a client without the label reaches the server",
            )
            .details(details);
        }
        JobWait::CouldNotRun(m) => return Verdict::abort(m).details(details),
    }
    Verdict::pass("NetworkPolicy enforced: default-deny blocks, an allow rule admits only the pods it selects")
        .details(details)
}
