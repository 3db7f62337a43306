//! `node-distribution-check` (scs-0214-v2): topology labels on every node, control plane on more
//! than one host and spread over zones.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use super::{Verdict, preflight};
use crate::Ctx;
use crate::access::{Need, describe_error};

pub(crate) const ZONE: &str = "topology.kubernetes.io/zone";
pub(crate) const REGION: &str = "topology.kubernetes.io/region";
/// SCS label naming the physical host of a (virtual) node.
pub(crate) const HOST_ID: &str = "topology.scs.community/host-id";
pub(crate) const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
const LEGACY_MASTER: &str = "node-role.kubernetes.io/master";

pub(crate) async fn run(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(ctx, &[Need::cluster("list", "", "nodes")]).await {
        return v;
    }
    match list_nodes(ctx).await {
        Ok(nodes) => evaluate(&nodes),
        Err(e) => Verdict::abort(describe_error(&e, "list nodes")),
    }
}

/// The nodes' names and labels: a metadata-only list in pages of 500 (cheap on large clusters).
async fn list_nodes(ctx: &Ctx<'_>) -> Result<Vec<(String, BTreeMap<String, String>)>, kube::Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut lp = ListParams::default().limit(500);
    let mut out = Vec::new();
    loop {
        let page = api.list_metadata(&lp).await?;
        out.extend(page.items.into_iter().map(|n| {
            (
                n.metadata.name.unwrap_or_default(),
                n.metadata.labels.unwrap_or_default(),
            )
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    Ok(out)
}

fn sample(names: &[&str]) -> String {
    const SHOW: usize = 10;
    let mut s = names
        .iter()
        .take(SHOW)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(" and {} more", names.len() - SHOW));
    }
    s
}

/// The verdict for a set of nodes (name, labels).
pub(crate) fn evaluate(nodes: &[(String, BTreeMap<String, String>)]) -> Verdict {
    if nodes.is_empty() {
        return Verdict::abort("the cluster has no nodes (or none visible): nothing to judge");
    }
    let mut details = Vec::new();
    let mut problems = Vec::new();
    let missing = |key: &str| -> Vec<&str> {
        nodes
            .iter()
            .filter(|(_, l)| l.get(key).is_none_or(|v| v.is_empty()))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let (no_zone, no_region) = (missing(ZONE), missing(REGION));
    if !no_zone.is_empty() {
        problems.push(format!(
            "{} of {} node(s) without {ZONE}: {}",
            no_zone.len(),
            nodes.len(),
            sample(&no_zone)
        ));
    }
    if !no_region.is_empty() {
        problems.push(format!(
            "{} of {} node(s) without {REGION}: {}",
            no_region.len(),
            nodes.len(),
            sample(&no_region)
        ));
    }

    // Zone spread of all nodes.
    let mut all_zones: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, l) in nodes {
        *all_zones
            .entry(l.get(ZONE).map(String::as_str).unwrap_or("(none)"))
            .or_default() += 1;
    }
    details.push(format!(
        "{} node(s); zones: {}",
        nodes.len(),
        all_zones
            .iter()
            .map(|(z, n)| format!("{z}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let cp: Vec<&(String, BTreeMap<String, String>)> = nodes
        .iter()
        .filter(|(_, l)| l.contains_key(CONTROL_PLANE) || l.contains_key(LEGACY_MASTER))
        .collect();
    if cp.is_empty() {
        if !problems.is_empty() {
            return Verdict::fail(problems.join("; ")).details(details);
        }
        if nodes.len() == 1 {
            return Verdict::fail(
                "single-node cluster: the control plane cannot be on more than one host",
            )
            .details(details);
        }
        return Verdict::abort(format!(
            "no node carries {CONTROL_PLANE}: the control plane is not visible (managed control plane?), its distribution cannot be checked"
        ))
        .details(details);
    }
    let with_host_id = cp.iter().filter(|(_, l)| l.contains_key(HOST_ID)).count();
    let hosts: BTreeSet<&str> = cp
        .iter()
        .map(|(n, l)| l.get(HOST_ID).map(String::as_str).unwrap_or(n.as_str()))
        .collect();
    let mut cp_zones: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, l) in &cp {
        *cp_zones
            .entry(l.get(ZONE).map(String::as_str).unwrap_or("(none)"))
            .or_default() += 1;
    }
    let spread = cp_zones
        .iter()
        .map(|(z, n)| format!("{z}={n}"))
        .collect::<Vec<_>>()
        .join(", ");
    details.push(format!(
        "control plane: {} node(s) on {} host(s) in {} zone(s) ({spread})",
        cp.len(),
        hosts.len(),
        cp_zones.len()
    ));
    if with_host_id < cp.len() {
        details.push(format!(
            "{} control-plane node(s) without {HOST_ID}: each counted as its own host",
            cp.len() - with_host_id
        ));
    }
    if hosts.len() < 2 {
        problems.push(format!(
            "control plane on {} host(s): it must run on more than one physical machine",
            hosts.len()
        ));
    }
    let real_zones = cp_zones.keys().filter(|z| **z != "(none)").count();
    if hosts.len() >= 2 && real_zones < 2 {
        details.push(
            "control plane in a single failure zone: scs-0214 recommends spreading it over zones (SHOULD)"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Verdict::fail(problems.join("; ")).details(details);
    }
    Verdict::pass(format!(
        "all {} node(s) labelled; control plane on {} hosts over {} zone(s) ({spread})",
        nodes.len(),
        hosts.len(),
        real_zones
    ))
    .details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn node(name: &str, labels: &[(&str, &str)]) -> (String, BTreeMap<String, String>) {
        (
            name.into(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn verdicts() {
        let cp = |n: &str, z: &str| node(n, &[(CONTROL_PLANE, ""), (ZONE, z), (REGION, "r")]);
        let w = |n: &str, z: &str| node(n, &[(ZONE, z), (REGION, "r")]);
        assert_eq!(evaluate(&[]).outcome, Outcome::Abort);
        let good = vec![cp("cp1", "a"), cp("cp2", "b"), cp("cp3", "c"), w("w1", "a")];
        let v = evaluate(&good);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert!(v.summary.contains("3 hosts over 3 zone(s) (a=1, b=1, c=1)"));
        let mut unlabelled = good.clone();
        unlabelled.push(node("w2", &[(REGION, "r")]));
        let v = evaluate(&unlabelled);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.summary.contains("w2"), "{}", v.summary);
        assert_eq!(
            evaluate(&[cp("cp1", "a"), w("w1", "a")]).outcome,
            Outcome::Fail
        );
        assert_eq!(evaluate(&[w("only", "a")]).outcome, Outcome::Fail);
        assert_eq!(
            evaluate(&[w("w1", "a"), w("w2", "b")]).outcome,
            Outcome::Abort
        );
        // Two control-plane VMs on one physical host.
        let same_host = vec![
            node(
                "cp1",
                &[
                    (CONTROL_PLANE, ""),
                    (ZONE, "a"),
                    (REGION, "r"),
                    (HOST_ID, "h1"),
                ],
            ),
            node(
                "cp2",
                &[
                    (CONTROL_PLANE, ""),
                    (ZONE, "a"),
                    (REGION, "r"),
                    (HOST_ID, "h1"),
                ],
            ),
        ];
        assert_eq!(evaluate(&same_host).outcome, Outcome::Fail);
        // One zone only: PASS with a note.
        let v = evaluate(&[cp("cp1", "a"), cp("cp2", "a")]);
        assert_eq!(v.outcome, Outcome::Pass);
        assert!(v.details.iter().any(|d| d.contains("single failure zone")));
    }
}
