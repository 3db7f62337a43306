//! `kaas doctor`: a management cluster's prerequisites, each with the fix — Cluster API's CRDs
//! (served versions, contract labels), whether topology Clusters are admitted (ClusterTopology),
//! kaas' CRDs and admission policies, per Provider its ClusterClasses, credentials Secret (only
//! whether it exists; never its content), addon bundles and stack verification, and the
//! operator's leader Lease.
//!
//! [`diagnose`] makes the (read-only, dry-run) calls; [`judge_crds`], [`judge_leases`],
//! [`exit_code`] and [`table`] are pure.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kaas_api::Provider;
use kaas_api::provider::BackendType;
use kaas_capi::cluster as capi;
use kaas_capi::clusterclass::ClusterClass;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but something is limited (e.g. features a version cannot serve).
    Warn,
    /// Broken: the fix says what to do.
    Problem,
    /// Could not be checked (the API server refused or failed the read).
    Unknown,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`capi-crds`, `kaas-crds`, `provider/dev/cluster-class`, …).
    pub check: String,
    /// Outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do (empty when nothing).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    fn new(check: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Self {
        Finding {
            check: check.into(),
            verdict,
            detail: detail.into(),
            fix: String::new(),
        }
    }
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// Settings of the checks.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace of the operator's leader Lease.
    pub lease_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease_namespace: "kaas-system".into(),
        }
    }
}

/// Exit code: 0 everything ok (warnings allowed), 1 a problem, 2 something could not be checked
/// (and nothing is known to be broken).
pub fn exit_code(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.verdict == Verdict::Problem) {
        1
    } else if findings.iter().any(|f| f.verdict == Verdict::Unknown) {
        2
    } else {
        0
    }
}

/// The report as a table for people.
pub fn table(findings: &[Finding]) -> String {
    let w = findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<w$}  {:<7}  DETAIL / FIX\n", "CHECK", "RESULT");
    for f in findings {
        let v = match f.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Problem => "PROBLEM",
            Verdict::Unknown => "UNKNOWN",
        };
        out.push_str(&format!("{:<w$}  {v:<7}  {}\n", f.check, f.detail));
        if !f.fix.is_empty() {
            out.push_str(&format!("{:<w$}  {:<7}  fix: {}\n", "", "", f.fix));
        }
    }
    out
}

/// Cluster API CRDs kaas needs (core and kubeadm providers).
pub const CAPI_CRDS: &[&str] = &[
    "clusters.cluster.x-k8s.io",
    "clusterclasses.cluster.x-k8s.io",
    "machinedeployments.cluster.x-k8s.io",
    "machines.cluster.x-k8s.io",
    "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
    "kubeadmcontrolplanetemplates.controlplane.cluster.x-k8s.io",
    "kubeadmconfigtemplates.bootstrap.cluster.x-k8s.io",
];

/// The API version of Cluster API kaas reads and writes.
pub const CAPI_VERSION: &str = "v1beta2";

fn served(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.clone())
        .collect()
}

/// Judges Cluster API's CRDs (pure): the ones kaas needs are there and serve `v1beta2`; every
/// provider CRD (infrastructure, control plane, bootstrap) carries a contract label.
pub fn judge_crds(crds: &[CustomResourceDefinition]) -> Vec<Finding> {
    let mut out = Vec::new();
    let by_name = |n: &str| crds.iter().find(|c| c.name_any() == n);
    let mut missing = Vec::new();
    let mut unserved = Vec::new();
    for n in CAPI_CRDS {
        match by_name(n) {
            None => missing.push(n.to_string()),
            Some(c) if !served(c).iter().any(|v| v == CAPI_VERSION) => {
                unserved.push(format!("{n} (serves {})", served(c).join(", ")))
            }
            Some(_) => {}
        }
    }
    let core_versions = by_name("clusters.cluster.x-k8s.io")
        .map(|c| served(c).join(", "))
        .unwrap_or_default();
    if missing.is_empty() && unserved.is_empty() {
        out.push(Finding::new(
            "capi-crds",
            Verdict::Ok,
            format!("Cluster API CRDs served (clusters.cluster.x-k8s.io: {core_versions})"),
        ));
    }
    if !missing.is_empty() {
        out.push(
            Finding::new(
                "capi-crds",
                Verdict::Problem,
                format!("missing: {}", missing.join(", ")),
            )
            .fix("install Cluster API v1.14 with the kubeadm providers (clusterctl init)"),
        );
    }
    if !unserved.is_empty() {
        out.push(
            Finding::new(
                "capi-crds",
                Verdict::Problem,
                format!("not serving {CAPI_VERSION}: {}", unserved.join("; ")),
            )
            .fix("upgrade Cluster API to v1.14 (kaas uses the v1beta2 API)"),
        );
    }
    let mut unlabelled = Vec::new();
    for c in crds {
        let group = &c.spec.group;
        let provider_group = ["infrastructure.", "controlplane.", "bootstrap."]
            .iter()
            .any(|p| group.starts_with(p))
            && group.ends_with(".cluster.x-k8s.io");
        if !provider_group {
            continue;
        }
        let has_contract = c
            .labels()
            .keys()
            .any(|k| k.starts_with("cluster.x-k8s.io/v1beta"));
        if !has_contract {
            unlabelled.push(c.name_any());
        }
    }
    if unlabelled.is_empty() {
        out.push(Finding::new(
            "capi-contract-labels",
            Verdict::Ok,
            "every provider CRD names its contract",
        ));
    } else {
        unlabelled.sort();
        out.push(
            Finding::new(
                "capi-contract-labels",
                Verdict::Problem,
                format!("without a contract label: {}", unlabelled.join(", ")),
            )
            .fix("label each CRD with its contract, e.g. `kubectl label crd NAME cluster.x-k8s.io/v1beta2=v1beta2` (or v1beta1=<served version>)"),
        );
    }
    out
}

/// Judges the operator's leader Leases (pure): some `kaas-operator*` Lease is held and current.
pub fn judge_leases(leases: &[Lease], namespace: &str, now: Timestamp) -> Finding {
    let mut active = Vec::new();
    let mut stale = Vec::new();
    for l in leases
        .iter()
        .filter(|l| l.name_any().starts_with("kaas-operator"))
    {
        let Some(spec) = &l.spec else { continue };
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let current = spec.renew_time.as_ref().is_some_and(|t| {
            t.0.as_second() + i64::from(spec.lease_duration_seconds.unwrap_or(15))
                >= now.as_second()
        });
        if current && !holder.is_empty() {
            active.push(format!("{} held by {holder}", l.name_any()));
        } else {
            stale.push(l.name_any());
        }
    }
    if !active.is_empty() {
        Finding::new(
            "operator",
            Verdict::Ok,
            format!("leading: {}", active.join(", ")),
        )
    } else if !stale.is_empty() {
        Finding::new(
            "operator",
            Verdict::Problem,
            format!(
                "Lease(s) {} in {namespace} not renewed: no operator is leading",
                stale.join(", ")
            ),
        )
        .fix(
            "check the operator's pods and logs (kubectl -n kaas-system logs deploy/kaas-operator)",
        )
    } else {
        Finding::new(
            "operator",
            Verdict::Problem,
            format!("no kaas-operator Lease in {namespace}: the operator is not running with leader election"),
        )
        .fix("install the operator (helm install kaas deploy/helm/kaas) or run `kaas operator --leader-elect --lease-namespace NS`")
    }
}

fn unknown(check: &str, e: &kube::Error) -> Finding {
    Finding::new(check, Verdict::Unknown, format!("could not check: {e}"))
        .fix("give this identity read access (get/list) to it")
}

/// Runs every check against the management cluster of `client`.
pub async fn diagnose(client: &Client, opts: &Options) -> Vec<Finding> {
    let mut out = Vec::new();

    // Cluster API.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let all_crds = match crds.list(&ListParams::default()).await {
        Ok(l) => Some(l.items),
        Err(e) => {
            out.push(unknown("crds", &e));
            None
        }
    };
    if let Some(all) = &all_crds {
        out.extend(judge_crds(all));
    }
    if all_crds.as_ref().is_some_and(|all| {
        all.iter()
            .any(|c| c.name_any() == "clusters.cluster.x-k8s.io")
    }) {
        out.push(topology_probe(client).await);
    }

    // kaas CRDs and admission policies.
    if let Some(all) = &all_crds {
        let mut missing = Vec::new();
        for want in kaas_api::crds() {
            let name = want.name_any();
            match all.iter().find(|c| c.name_any() == name) {
                None => missing.push(name),
                Some(have) => {
                    let want_v: BTreeSet<String> = served(&want).into_iter().collect();
                    let have_v: BTreeSet<String> = served(have).into_iter().collect();
                    if !want_v.is_subset(&have_v) {
                        missing.push(format!("{name} (serves {have_v:?}, kaas needs {want_v:?})"));
                    }
                }
            }
        }
        out.push(if missing.is_empty() {
            Finding::new("kaas-crds", Verdict::Ok, "Cluster, Provider, GitSource, HostedControlPlane installed")
        } else {
            Finding::new("kaas-crds", Verdict::Problem, format!("missing: {}", missing.join(", ")))
                .fix("kaas crds | kubectl apply --server-side -f -   (or install the Helm chart deploy/helm/kaas)")
        });
    }
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let mut missing = Vec::new();
    let mut failed = None;
    for (p, b) in kaas_api::policy::policies() {
        for (kind, name, r) in [
            (
                "ValidatingAdmissionPolicy",
                p.name_any(),
                vaps.get_opt(&p.name_any()).await.map(|x| x.is_some()),
            ),
            (
                "ValidatingAdmissionPolicyBinding",
                b.name_any(),
                bindings.get_opt(&b.name_any()).await.map(|x| x.is_some()),
            ),
        ] {
            match r {
                Ok(true) => {}
                Ok(false) => missing.push(format!("{kind} {name}")),
                Err(e) => failed = Some(e),
            }
        }
    }
    out.push(match (failed, missing.is_empty()) {
        (Some(e), _) => unknown("kaas-admission", &e),
        (None, true) => Finding::new(
            "kaas-admission",
            Verdict::Ok,
            "deletion and finalizer protection policies installed",
        ),
        (None, false) => Finding::new(
            "kaas-admission",
            Verdict::Problem,
            format!("missing: {}", missing.join(", ")),
        )
        .fix("kaas crds | kubectl apply --server-side -f -   (the policies come with the CRDs)"),
    });
    out.push(finalizer_at_creation(client).await);

    // Providers.
    match Api::<Provider>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Err(e) => out.push(unknown("providers", &e)),
        Ok(l) if l.items.is_empty() => out.push(
            Finding::new(
                "providers",
                Verdict::Problem,
                "no Provider: tenants have nothing to ask for",
            )
            .fix("apply a Provider offering (see examples/provider-openstack.yaml)"),
        ),
        Ok(l) => {
            for p in &l.items {
                out.extend(provider_checks(client, p).await);
            }
        }
    }

    // The operator.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &opts.lease_namespace);
    out.push(match leases.list(&ListParams::default()).await {
        Ok(l) => judge_leases(&l.items, &opts.lease_namespace, Timestamp::now()),
        Err(e) => unknown("operator", &e),
    });
    out
}

/// Whether Cluster API admits a topology Cluster (ClusterTopology on, webhooks answering): a
/// dry-run create of one on a class that does not exist.
async fn topology_probe(client: &Client) -> Finding {
    let api: Api<capi::Cluster> = Api::namespaced(client.clone(), "default");
    let mut c = capi::Cluster::new(
        "kaas-doctor-probe",
        capi::ClusterSpec {
            topology: Some(capi::ClusterTopology {
                class_ref: capi::ClusterTopologyClassRef {
                    name: "kaas-doctor-probe".into(),
                    namespace: None,
                },
                version: "v1.35.4".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("default".into());
    let pp = PostParams {
        dry_run: true,
        field_manager: Some("kaas-doctor".into()),
    };
    match api.create(&pp, &c).await {
        Ok(_) => Finding::new("capi-topology", Verdict::Ok, "topology Clusters admitted (dry-run)"),
        Err(kube::Error::Api(ae)) if ae.message.contains("ClusterTopology") => Finding::new(
            "capi-topology",
            Verdict::Problem,
            format!("Cluster API refuses topologies: {}", ae.message),
        )
        .fix("enable the feature gate: CLUSTER_TOPOLOGY=true clusterctl init, or --feature-gates=ClusterTopology=true on capi-controller-manager"),
        Err(kube::Error::Api(ae)) if ae.message.contains("failed calling webhook") => Finding::new(
            "capi-topology",
            Verdict::Problem,
            format!("Cluster API's webhook does not answer: {}", ae.message),
        )
        .fix("check capi-controller-manager (pods, webhook Service and certificate)"),
        // Anything else is about the made-up class, which means the topology itself is admitted.
        Err(kube::Error::Api(ae)) => Finding::new(
            "capi-topology",
            Verdict::Ok,
            format!("topology Clusters admitted (dry-run answered: {})", ae.message),
        ),
        Err(e) => unknown("capi-topology", &e),
    }
}

async fn provider_checks(client: &Client, p: &Provider) -> Vec<Finding> {
    let name = p.name_any();
    let ns = &p.spec.backend.namespace;
    let mut out = Vec::new();
    if p.spec.backend.kind == BackendType::ClusterAPI {
        let classes: Api<ClusterClass> = Api::namespaced(client.clone(), ns);
        let mut names: Vec<&str> = p
            .spec
            .kubernetes_versions
            .iter()
            .map(|v| v.stack.cluster_class.as_str())
            .collect();
        names.sort();
        names.dedup();
        let mut missing = Vec::new();
        for n in &names {
            match classes.get_opt(n).await {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(*n),
                Err(e) => {
                    out.push(unknown(&format!("provider/{name}/cluster-classes"), &e));
                    return out;
                }
            }
        }
        out.push(if missing.is_empty() {
            Finding::new(format!("provider/{name}/cluster-classes"), Verdict::Ok, format!("{} present in {ns}", names.join(", ")))
        } else {
            let versions: Vec<&str> = p
                .spec
                .kubernetes_versions
                .iter()
                .filter(|v| missing.contains(&v.stack.cluster_class.as_str()))
                .map(|v| v.version.as_str())
                .collect();
            Finding::new(
                format!("provider/{name}/cluster-classes"),
                Verdict::Problem,
                format!("missing in {ns}: {} (versions {})", missing.join(", "), versions.join(", ")),
            )
            .fix(format!("apply the stack's ClusterClass manifests into namespace {ns}, or remove those versions from the Provider"))
        });
    }
    if let Some(cr) = &p.spec.credentials_ref {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        // Only metadata is looked at and nothing of the Secret is printed.
        out.push(match secrets.get_metadata_opt(&cr.name).await {
            Ok(Some(_)) => Finding::new(
                format!("provider/{name}/credentials"),
                Verdict::Ok,
                format!("Secret {ns}/{} present", cr.name),
            ),
            Ok(None) => Finding::new(
                format!("provider/{name}/credentials"),
                Verdict::Problem,
                format!("Secret {ns}/{} not found", cr.name),
            )
            .fix(format!(
                "create the Secret {} in {ns} with the infrastructure credentials (clouds.yaml)",
                cr.name
            )),
            Err(e) => unknown(&format!("provider/{name}/credentials"), &e),
        });
    }
    let wanted: BTreeSet<&str> = p
        .spec
        .kubernetes_versions
        .iter()
        .filter_map(|v| v.stack.addons.as_deref())
        .collect();
    if !wanted.is_empty() {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        match cms
            .list_metadata(&ListParams::default().labels(kaas_api::addons::BUNDLE_LABEL))
            .await
        {
            Err(e) => out.push(unknown(&format!("provider/{name}/addon-bundles"), &e)),
            Ok(l) => {
                let have: BTreeSet<String> = l
                    .items
                    .iter()
                    .filter_map(|m| m.labels().get(kaas_api::addons::BUNDLE_LABEL).cloned())
                    .collect();
                let missing: Vec<&str> = wanted
                    .iter()
                    .copied()
                    .filter(|w| !have.contains(*w))
                    .collect();
                out.push(if missing.is_empty() {
                    Finding::new(
                        format!("provider/{name}/addon-bundles"),
                        Verdict::Ok,
                        format!(
                            "{} present",
                            wanted.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    )
                } else {
                    Finding::new(
                        format!("provider/{name}/addon-bundles"),
                        Verdict::Problem,
                        format!("missing in {ns}: {}", missing.join(", ")),
                    )
                    .fix(format!(
                        "apply the bundle ConfigMaps (labelled {}) into {ns} (see docs/addons.md)",
                        kaas_api::addons::BUNDLE_LABEL
                    ))
                });
            }
        }
    }
    if let Some(c) = p.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == kaas_api::provider::STACK_VERIFIED)
    }) {
        out.push(
            Finding::new(
                format!("provider/{name}/stack"),
                if c.status == "True" { Verdict::Ok } else { Verdict::Warn },
                format!("StackVerified={} {}: {}", c.status, c.reason, c.message),
            )
            .fix(if c.status == "True" {
                String::new()
            } else {
                "see `kubectl get provider NAME -o yaml` status.versions: enable what Cluster API refused (feature gates) or fix the ClusterClass".into()
            }),
        );
    }
    out
}

/// Whether the mutating policy that sets kaas' finalizer on new Clusters is installed with its
/// binding. Without it everything works; the operator then adds the finalizer with one more write
/// per new cluster.
async fn finalizer_at_creation(client: &Client) -> Finding {
    const CHECK: &str = "kaas-finalizer-at-creation";
    const GROUP_VERSION: &str = "admissionregistration.k8s.io/v1";
    let served = match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(l) => l
            .resources
            .iter()
            .any(|r| r.name == "mutatingadmissionpolicies"),
        Err(e) => return unknown(CHECK, &e),
    };
    if !served {
        return Finding::new(
            CHECK,
            Verdict::Ok,
            "the API server (before Kubernetes 1.36) serves no mutating admission policies: the \
             operator adds kaas' finalizer with one write per new cluster",
        );
    }
    let mut missing = Vec::new();
    for (kind, binding) in [
        ("MutatingAdmissionPolicy", false),
        ("MutatingAdmissionPolicyBinding", true),
    ] {
        match crate::install::mutating_policy_api(client, binding)
            .get_opt(kaas_api::policy::FINALIZER_AT_CREATION)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(kind),
            Err(e) => return unknown(CHECK, &e),
        }
    }
    if missing.is_empty() {
        Finding::new(
            CHECK,
            Verdict::Ok,
            "new Clusters get kaas' finalizer at creation (mutating admission policy)",
        )
    } else {
        Finding::new(
            CHECK,
            Verdict::Warn,
            format!(
                "missing: {}: the operator adds kaas' finalizer with one more write per new cluster \
                 (expected where operator instances are limited to providers)",
                missing.join(", ")
            ),
        )
        .fix("where one operator instance handles every provider: kaas crds --finalizer-policy | kubectl apply --server-side -f -")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn crd(name: &str, versions: &[&str], labels: &[(&str, &str)]) -> CustomResourceDefinition {
        let group = name.split_once('.').unwrap().1;
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_,_>>()},
            "spec": {"group": group, "names": {"plural": "x", "kind": "X"}, "scope": "Namespaced",
                "versions": versions.iter().map(|v| serde_json::json!({"name": v, "served": true, "storage": true})).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    #[test]
    fn crds_need_v1beta2_and_contract_labels() {
        let mut all: Vec<CustomResourceDefinition> = CAPI_CRDS
            .iter()
            .map(|n| {
                crd(
                    n,
                    &["v1beta1", "v1beta2"],
                    &[("cluster.x-k8s.io/v1beta2", "v1beta2")],
                )
            })
            .collect();
        assert!(judge_crds(&all).iter().all(|f| f.verdict == Verdict::Ok));
        all.push(crd(
            "openstackclusters.infrastructure.cluster.x-k8s.io",
            &["v1beta1"],
            &[],
        ));
        all.remove(0);
        let f = judge_crds(&all);
        let problems: Vec<&Finding> = f.iter().filter(|f| f.verdict == Verdict::Problem).collect();
        assert_eq!(problems.len(), 2, "{f:?}");
        assert!(problems[0].detail.contains("clusters.cluster.x-k8s.io"));
        assert!(
            problems[1]
                .detail
                .contains("openstackclusters.infrastructure.cluster.x-k8s.io")
        );
        assert!(problems[1].fix.contains("kubectl label crd"));
        assert_eq!(exit_code(&f), 1);
    }

    #[test]
    fn a_current_held_lease_means_leading() {
        let now = Timestamp::now();
        let lease = |renew: Timestamp| Lease {
            metadata: kube::api::ObjectMeta {
                name: Some("kaas-operator".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("pod-1".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renew)),
                ..Default::default()
            }),
        };
        assert_eq!(judge_leases(&[lease(now)], "ns", now).verdict, Verdict::Ok);
        let stale = judge_leases(
            &[lease(now - std::time::Duration::from_secs(60))],
            "ns",
            now,
        );
        assert_eq!(stale.verdict, Verdict::Problem);
        assert!(stale.detail.contains("not renewed"));
        assert_eq!(judge_leases(&[], "ns", now).verdict, Verdict::Problem);
    }

    #[test]
    fn exit_codes_and_table() {
        let ok = Finding::new("a", Verdict::Ok, "fine");
        let warn = Finding::new("b", Verdict::Warn, "limited");
        let unknown = Finding::new("c", Verdict::Unknown, "?");
        let bad = Finding::new("d", Verdict::Problem, "broken").fix("do this");
        assert_eq!(exit_code(&[ok.clone(), warn.clone()]), 0);
        assert_eq!(exit_code(&[ok.clone(), unknown.clone()]), 2);
        assert_eq!(exit_code(&[unknown, bad.clone()]), 1);
        let t = table(&[ok, bad]);
        assert!(
            t.contains("PROBLEM  broken") && t.contains("fix: do this"),
            "{t}"
        );
    }
}
