//! The version policies: `version-policy-check` (scs-0210-v2) and the drafts
//! `version-policy-v3-check` (scs-0210-v3) and `node-software-recency-check` (scs-0220-v1), all
//! judged against the release data.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use super::{VERSION_POLICY, Verdict, finish, preflight};
use crate::Ctx;
use crate::access::{Need, describe_error};
use crate::report::{Outcome, REASON_STALE_DATA, TestResult};
use crate::version::{
    KubeVersion, Policy, PolicyVerdict, SCS_0210_V2, SCS_0210_V3_DRAFT, evaluate_policy,
};

/// A policy verdict as a check's verdict: stale data is ABORT with reason
/// [`REASON_STALE_DATA`] and the refresh hint as remediation.
fn verdict_of(ctx: &Ctx<'_>, p: PolicyVerdict) -> Verdict {
    let mut details = p.details;
    details.push(format!("release data: {}", ctx.data.describe()));
    let remediation = if p.stale_data {
        Some(ctx.opts.refresh_hint.clone())
    } else if p.outcome == Outcome::Abort {
        Some("Load release data that covers this branch (see the refresh hint in the documentation), or judge on an earlier --reference-date.".to_string())
    } else {
        None
    };
    Verdict {
        outcome: p.outcome,
        summary: p.summary,
        details,
        remediation,
        reason: p.stale_data.then(|| REASON_STALE_DATA.to_string()),
    }
}

/// `/version` judged by a policy; also the `gitVersion`.
async fn judge_apiserver(ctx: &Ctx<'_>, policy: &Policy) -> (Verdict, Option<String>) {
    // `/version` needs no rights beyond authentication (system:public-info-viewer).
    match ctx.client.apiserver_version().await {
        Err(e) => (Verdict::abort(describe_error(&e, "read /version")), None),
        Ok(info) => {
            let git = info.git_version.clone();
            let v = match KubeVersion::parse(&git) {
                Err(e) => Verdict::abort(format!(
                    "cannot parse the version {git:?} reported by /version: {e}"
                )),
                Ok(v) => verdict_of(
                    ctx,
                    evaluate_policy(&v, ctx.reference_date, ctx.data, policy),
                ),
            };
            (v, Some(git))
        }
    }
}

/// Runs `version-policy-check`; also returns the cluster's `gitVersion` for the report.
pub(crate) async fn run(ctx: &Ctx<'_>) -> (TestResult, Option<String>) {
    let t = Instant::now();
    ctx.say(&format!("{}: running", VERSION_POLICY.id));
    let (verdict, git) = judge_apiserver(ctx, &SCS_0210_V2).await;
    let r = finish(&VERSION_POLICY, verdict, t);
    ctx.say(&format!(
        "{}: {} ({:.1} s) {}",
        r.id,
        r.outcome,
        r.duration_ms as f64 / 1000.0,
        r.summary
    ));
    (r, git)
}

/// `version-policy-v3-check`: the same with the draft's windows.
pub(crate) async fn v3_check(ctx: &Ctx<'_>) -> Verdict {
    judge_apiserver(ctx, &SCS_0210_V3_DRAFT).await.0
}

/// `node-software-recency-check` (scs-0220-v1, draft): every node's kubelet is a patch release
/// that is current by the scs-0210-v2 windows (node images rebuilt for each patch release).
/// Security fixes of the node OS cannot be seen from the API: the images are listed as details.
pub(crate) async fn node_recency_check(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(ctx, &[Need::cluster("list", "", "nodes")]).await {
        return v;
    }
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut lp = ListParams::default().limit(500);
    // kubelet version -> node names; OS image/kernel/runtime -> count.
    let mut kubelets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut images: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let page = match api.list(&lp).await {
            Ok(p) => p,
            Err(e) => return Verdict::abort(describe_error(&e, "list nodes")),
        };
        for n in page.items {
            let name = n.metadata.name.unwrap_or_default();
            let info = n.status.and_then(|s| s.node_info);
            let (kubelet, image) = match info {
                Some(i) => (
                    i.kubelet_version,
                    format!(
                        "{}, kernel {}, {}",
                        i.os_image, i.kernel_version, i.container_runtime_version
                    ),
                ),
                None => (String::new(), "(no node info)".to_string()),
            };
            kubelets.entry(kubelet).or_default().push(name);
            *images.entry(image).or_default() += 1;
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    if kubelets.is_empty() {
        return Verdict::skip(
            "no nodes (nothing to judge; with a hosted control plane the node pools are where scs-0220 applies)",
        );
    }
    let mut details: Vec<String> = images
        .iter()
        .map(|(i, n)| {
            format!("{n} node(s) run {i} (OS security fixes are not visible through the API)")
        })
        .collect();
    let (mut fail, mut abort, mut stale) = (Vec::new(), Vec::new(), false);
    for (kubelet, nodes) in &kubelets {
        let who = format!(
            "{} node(s) ({})",
            nodes.len(),
            nodes.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        match KubeVersion::parse(kubelet) {
            Err(_) => abort.push(format!(
                "kubelet version {kubelet:?} of {who} is not a Kubernetes version"
            )),
            Ok(v) => {
                let p = evaluate_policy(&v, ctx.reference_date, ctx.data, &SCS_0210_V2);
                details.push(format!(
                    "kubelet {kubelet} on {who}: {} {}",
                    p.outcome, p.summary
                ));
                match p.outcome {
                    Outcome::Fail => {
                        fail.push(format!("kubelet {kubelet} on {who}: {}", p.summary))
                    }
                    Outcome::Abort => {
                        stale |= p.stale_data;
                        abort.push(format!("kubelet {kubelet}: {}", p.summary))
                    }
                    _ => {}
                }
            }
        }
    }
    details.push(format!("release data: {}", ctx.data.describe()));
    if !fail.is_empty() {
        Verdict::fail(fail.join("; ")).details(details)
    } else if !abort.is_empty() {
        let mut v = Verdict::abort(abort.join("; ")).details(details);
        if stale {
            v.reason = Some(REASON_STALE_DATA.to_string());
            v = v.remediation(ctx.opts.refresh_hint.clone());
        }
        v
    } else {
        Verdict::pass(format!(
            "every node's kubelet is a current patch ({})",
            kubelets.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .details(details)
    }
}
