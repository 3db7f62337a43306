//! The testcases.

use std::future::Future;
use std::time::Instant;

use crate::Ctx;
use crate::access::Need;
use crate::report::{CheckKind, Method, Outcome, Target, TestResult};

pub(crate) mod conformance;
pub(crate) mod hardening;
pub(crate) mod network;
pub(crate) mod nodes;
pub(crate) mod storage;
pub(crate) mod version;

/// A testcase's identity and its generic remediation hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Testcase {
    /// Id (the SCS id where SCS has one).
    pub id: &'static str,
    /// SCS standard.
    pub standard: &'static str,
    /// An SCS-compatible KaaS scope testcase.
    pub scs_testcase: bool,
    /// The scope module it belongs to; `None` outside the scope.
    pub module: Option<&'static str>,
    /// The class: only [`Target::Mandatory`] decides the certificate.
    pub target: Target,
    /// Automated or manual, as the scope says.
    pub method: Method,
    /// Static, behavioural, probe or conformance.
    pub kind: CheckKind,
    /// Short title.
    pub title: &'static str,
    /// What to do when it fails.
    pub remediation: &'static str,
}

macro_rules! testcase {
    ($name:ident, $id:literal, $std:literal, $module:expr, $target:ident, $method:ident, $kind:ident, $title:literal, $rem:literal) => {
        pub(crate) const $name: Testcase = Testcase {
            id: $id,
            standard: $std,
            scs_testcase: {
                let m: Option<&'static str> = $module;
                m.is_some()
            },
            module: $module,
            target: Target::$target,
            method: Method::$method,
            kind: CheckKind::$kind,
            title: $title,
            remediation: $rem,
        };
    };
}

testcase!(
    VERSION_POLICY,
    "version-policy-check",
    "scs-0210-v2",
    Some("scs-0210-v2"),
    Mandatory,
    Automated,
    Static,
    "Kubernetes version within the upstream support and patch windows",
    "Upgrade to the newest patch of a supported branch (within 31 days of its release, 14 days for critical CVEs); move off branches past end of life."
);
testcase!(
    NODE_DISTRIBUTION,
    "node-distribution-check",
    "scs-0214-v2",
    Some("scs-0214-v2-manual"),
    Preview,
    Manual,
    Static,
    "Node topology labels and control-plane distribution",
    "Label every node with topology.kubernetes.io/zone and topology.kubernetes.io/region (the cloud controller manager usually does), and run the control plane on at least two hosts (three for etcd quorum) spread over failure zones."
);
testcase!(
    DEFAULT_STORAGE_CLASS,
    "default-storage-class-check",
    "scs-0211-v1",
    None,
    Outside,
    Automated,
    Static,
    "Exactly one default StorageClass with a dynamic, non-local provisioner",
    "Annotate exactly one StorageClass with storageclass.kubernetes.io/is-default-class=\"true\" whose provisioner creates network-attached RWO volumes (e.g. the Cinder CSI driver)."
);
testcase!(
    DEFAULT_STORAGE_VOLUME,
    "default-storage-class-volume-check",
    "scs-0211-v1",
    None,
    Outside,
    Automated,
    Behavioural,
    "A PVC without class gets a bound RWO volume usable by a pod, not pinned to one node",
    "Make the default StorageClass provision ReadWriteOnce volumes that are not node-local (no local/hostPath volumes, no node affinity to a single host)."
);
testcase!(
    NETWORKPOLICY_API,
    "networkpolicy-api-check",
    "scs-0219-v1",
    None,
    Advisory,
    Automated,
    Static,
    "NetworkPolicy API served",
    "Install a network plugin that implements networking.k8s.io/v1 NetworkPolicy (e.g. Cilium or Calico)."
);
testcase!(
    KAAS_NETWORKING,
    "kaas-networking-check",
    "scs-0219-v1",
    Some("scs-0219-v1"),
    Mandatory,
    Automated,
    Behavioural,
    "NetworkPolicy enforced: default-deny blocks, allow rules allow",
    "Use a network plugin that enforces NetworkPolicy (Cilium, Calico); plugins such as flannel alone accept policies but do not enforce them."
);
testcase!(
    PSA_LABELS,
    "pod-security-labels-check",
    "scs-0217-v1 (draft)",
    None,
    Draft,
    Automated,
    Static,
    "Pod Security admission labels (enforce >= baseline) on namespaces",
    "Label every workload namespace with pod-security.kubernetes.io/enforce=baseline or restricted (a label, not an annotation): kubectl label ns <name> pod-security.kubernetes.io/enforce=baseline."
);
testcase!(
    PSA_ADMISSION,
    "pod-security-admission-check",
    "scs-0217-v1 (draft)",
    None,
    Draft,
    Automated,
    Behavioural,
    "Privileged pods are rejected where enforce=baseline",
    "Enable the PodSecurity admission plugin (do not list it in --disable-admission-plugins) and do not exempt ordinary users or namespaces."
);
testcase!(
    APISERVER_SETTINGS,
    "apiserver-settings-check",
    "scs-0217-v1 (draft)",
    None,
    Draft,
    Automated,
    Static,
    "kube-apiserver authentication, authorization, admission and etcd TLS settings",
    "Run kube-apiserver with --authorization-mode=Node,RBAC, service-account tokens plus another authentication method, --enable-admission-plugins including NodeRestriction, PodSecurity enabled, and etcd over TLS with client certificates."
);
testcase!(
    PORT_PROBES,
    "port-probe-check",
    "scs-0217-v1 (draft)",
    None,
    Draft,
    Automated,
    Probe,
    "Only the API server and NodePorts reachable from outside",
    "Close etcd (2379/2380), kubelet (10250, read-only 10255 off via readOnlyPort: 0), controller-manager (10257) and scheduler (10259) ports to the outside with security groups."
);
testcase!(
    CONFORMANCE,
    "cncf-k8s-conformance",
    "scs-0201-v1",
    Some("cncf-k8s-conformance"),
    Mandatory,
    Automated,
    Conformance,
    "CNCF Kubernetes conformance suite",
    "Investigate the failed conformance tests (e2e.log, junit_01.xml) and fix the cluster, or add genuinely inapplicable tests to the allowed failures."
);

testcase!(
    ADMIN_NETWORK_POLICY,
    "admin-network-policy-check",
    "scs-0219-v1 (SHOULD)",
    None,
    Advisory,
    Automated,
    Static,
    "AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io) served",
    "Use a network plugin that implements AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io), e.g. recent Cilium, Calico, OVN-Kubernetes or kube-network-policies, and install their CRDs."
);
testcase!(
    DEFAULT_INGRESS_CLASS,
    "default-ingress-class-check",
    "scs-0219-v1 (SHOULD)",
    None,
    Advisory,
    Automated,
    Static,
    "A managed ingress controller with a default IngressClass",
    "Offer a managed ingress controller and annotate its IngressClass with ingressclass.kubernetes.io/is-default-class=\"true\"."
);
testcase!(
    GATEWAY_API,
    "gateway-api-check",
    "scs-0219-v2 (draft)",
    None,
    Draft,
    Automated,
    Static,
    "Gateway API (GatewayClass, Gateway, HTTPRoute) served, with a GatewayClass",
    "Install the Gateway API CRDs (gateway.networking.k8s.io/v1) and an implementation that provides a GatewayClass."
);
testcase!(
    VERSION_POLICY_V3,
    "version-policy-v3-check",
    "scs-0210-v3 (draft)",
    None,
    Draft,
    Automated,
    Static,
    "Kubernetes patches within 2 weeks, faster for CVSS >= 7 (draft)",
    "Offer new patch releases within two weeks, and fixes of high and critical CVEs (CVSS >= 7) within days."
);
testcase!(
    NODE_SOFTWARE_RECENCY,
    "node-software-recency-check",
    "scs-0220-v1 (draft)",
    None,
    Draft,
    Automated,
    Static,
    "Node images rebuilt for each Kubernetes patch release (kubelet versions current)",
    "Rebuild node images for each Kubernetes patch release and with current security fixes, and roll them out (e.g. by a rolling node update)."
);

/// Every testcase, in report order.
pub const TESTCASES: &[Testcase] = &[
    VERSION_POLICY,
    VERSION_POLICY_V3,
    NODE_DISTRIBUTION,
    NODE_SOFTWARE_RECENCY,
    DEFAULT_STORAGE_CLASS,
    DEFAULT_STORAGE_VOLUME,
    NETWORKPOLICY_API,
    KAAS_NETWORKING,
    ADMIN_NETWORK_POLICY,
    DEFAULT_INGRESS_CLASS,
    GATEWAY_API,
    PSA_LABELS,
    PSA_ADMISSION,
    APISERVER_SETTINGS,
    PORT_PROBES,
    CONFORMANCE,
];

/// A check's finding, before timing and identity are attached.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    pub outcome: Outcome,
    pub summary: String,
    pub details: Vec<String>,
    pub remediation: Option<String>,
    pub reason: Option<String>,
}

impl Verdict {
    fn new(outcome: Outcome, summary: impl Into<String>) -> Self {
        Self {
            outcome,
            summary: summary.into(),
            details: Vec::new(),
            remediation: None,
            reason: None,
        }
    }
    pub fn pass(s: impl Into<String>) -> Self {
        Self::new(Outcome::Pass, s)
    }
    pub fn fail(s: impl Into<String>) -> Self {
        Self::new(Outcome::Fail, s)
    }
    pub fn abort(s: impl Into<String>) -> Self {
        Self::new(Outcome::Abort, s)
    }
    pub fn skip(s: impl Into<String>) -> Self {
        Self::new(Outcome::Skip, s)
    }
    pub fn details(mut self, d: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(d);
        self
    }
    pub fn remediation(mut self, r: impl Into<String>) -> Self {
        self.remediation = Some(r.into());
        self
    }
}

pub(crate) fn finish(tc: &Testcase, v: Verdict, started: Instant) -> TestResult {
    let remediation = match v.outcome {
        Outcome::Fail => v.remediation.or_else(|| Some(tc.remediation.into())),
        Outcome::Abort => v.remediation.or_else(|| {
            Some("Resolve the reason above (rights, data, a cluster that can run pods) and run the check again.".into())
        }),
        Outcome::Pass | Outcome::Skip => v.remediation,
    };
    TestResult {
        id: tc.id.into(),
        standard: tc.standard.into(),
        scs_testcase: tc.scs_testcase,
        module: tc.module.map(Into::into),
        target: tc.target,
        method: tc.method,
        title: tc.title.into(),
        kind: tc.kind,
        outcome: v.outcome,
        summary: v.summary,
        details: v.details,
        remediation,
        reason: v.reason,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// Runs a check with progress lines and timing.
pub(crate) async fn timed<F>(ctx: &Ctx<'_>, tc: &Testcase, f: F) -> TestResult
where
    F: Future<Output = Verdict>,
{
    let t = Instant::now();
    ctx.say(&format!("{}: running", tc.id));
    let r = finish(tc, f.await, t);
    ctx.say(&format!(
        "{}: {} ({:.1} s) {}",
        tc.id,
        r.outcome,
        r.duration_ms as f64 / 1000.0,
        r.summary
    ));
    r
}

/// ABORT naming the missing permissions, if any.
pub(crate) async fn preflight(ctx: &Ctx<'_>, needs: &[Need]) -> Option<Verdict> {
    let missing = ctx.access.missing(needs).await;
    if missing.is_empty() {
        return None;
    }
    Some(
        Verdict::abort(format!("missing permission: {}", missing.join("; ")))
            .details(
                missing
                    .iter()
                    .map(|m| format!("SelfSubjectAccessReview denied: {m}")),
            )
            .remediation(format!(
                "Run the check with an identity allowed to {} (e.g. a cluster-admin kubeconfig), or accept that this testcase cannot be decided.",
                missing.join(", ")
            )),
    )
}

fn skipped(tc: &Testcase, why: &str) -> TestResult {
    finish(tc, Verdict::skip(why), Instant::now())
}

/// Runs the static testcases (concurrently) and, if `full`, the others per options.
pub(crate) async fn run_all(ctx: &Ctx<'_>, full: bool) -> (Vec<TestResult>, Option<String>) {
    let (
        (version, kubernetes_version),
        version_v3,
        nodes,
        recency,
        storage,
        (np_api, anp, ingress, gateway),
        psa_labels,
        apiserver,
    ) = futures::join!(
        version::run(ctx),
        timed(ctx, &VERSION_POLICY_V3, version::v3_check(ctx)),
        timed(ctx, &NODE_DISTRIBUTION, nodes::run(ctx)),
        timed(
            ctx,
            &NODE_SOFTWARE_RECENCY,
            version::node_recency_check(ctx)
        ),
        timed(ctx, &DEFAULT_STORAGE_CLASS, storage::static_check(ctx)),
        async {
            futures::join!(
                timed(ctx, &NETWORKPOLICY_API, network::api_check(ctx)),
                timed(ctx, &ADMIN_NETWORK_POLICY, network::anp_check(ctx)),
                timed(
                    ctx,
                    &DEFAULT_INGRESS_CLASS,
                    network::ingress_class_check(ctx)
                ),
                timed(ctx, &GATEWAY_API, network::gateway_check(ctx)),
            )
        },
        timed(ctx, &PSA_LABELS, hardening::labels_check(ctx)),
        timed(ctx, &APISERVER_SETTINGS, hardening::apiserver_check(ctx)),
    );
    let mut by_id = vec![
        version, version_v3, nodes, recency, storage, np_api, anp, ingress, gateway, psa_labels,
        apiserver,
    ];
    if full {
        let o = ctx.opts;
        let behavioural = if o.behavioural {
            vec![
                timed(ctx, &DEFAULT_STORAGE_VOLUME, storage::volume_check(ctx)).await,
                timed(ctx, &KAAS_NETWORKING, network::behaviour_check(ctx)).await,
                timed(ctx, &PSA_ADMISSION, hardening::admission_check(ctx)).await,
            ]
        } else {
            let why = "behavioural checks not requested";
            vec![
                skipped(&DEFAULT_STORAGE_VOLUME, why),
                skipped(&KAAS_NETWORKING, why),
                skipped(&PSA_ADMISSION, why),
            ]
        };
        by_id.extend(behavioural);
        by_id.push(if o.port_probes {
            timed(ctx, &PORT_PROBES, hardening::port_probe_check(ctx)).await
        } else {
            skipped(&PORT_PROBES, "port probes not requested")
        });
        by_id.push(match &o.conformance {
            crate::ConformanceMode::Skip => skipped(&CONFORMANCE, "conformance run not requested"),
            _ => timed(ctx, &CONFORMANCE, conformance::run(ctx)).await,
        });
    }
    // Report order = registry order.
    by_id.sort_by_key(|r| TESTCASES.iter().position(|t| t.id == r.id));
    (by_id, kubernetes_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certification scope "SCS-compatible KaaS" v1 as `shared/docs/standards.md` gives it
    /// (state of 2026-08): every testcase kaas check runs, with its standard, the scope module it
    /// belongs to, its target and whether the scope decides it automated or manually. Changing
    /// the scope is a deliberate edit of this table.
    #[test]
    fn the_scope_table_is_pinned() {
        use Method::*;
        use Target::*;
        let want: &[(&str, &str, Option<&str>, Target, Method)] = &[
            (
                "version-policy-check",
                "scs-0210-v2",
                Some("scs-0210-v2"),
                Mandatory,
                Automated,
            ),
            (
                "version-policy-v3-check",
                "scs-0210-v3 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "node-distribution-check",
                "scs-0214-v2",
                Some("scs-0214-v2-manual"),
                Preview,
                Manual,
            ),
            (
                "node-software-recency-check",
                "scs-0220-v1 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "default-storage-class-check",
                "scs-0211-v1",
                None,
                Outside,
                Automated,
            ),
            (
                "default-storage-class-volume-check",
                "scs-0211-v1",
                None,
                Outside,
                Automated,
            ),
            (
                "networkpolicy-api-check",
                "scs-0219-v1",
                None,
                Advisory,
                Automated,
            ),
            (
                "kaas-networking-check",
                "scs-0219-v1",
                Some("scs-0219-v1"),
                Mandatory,
                Automated,
            ),
            (
                "admin-network-policy-check",
                "scs-0219-v1 (SHOULD)",
                None,
                Advisory,
                Automated,
            ),
            (
                "default-ingress-class-check",
                "scs-0219-v1 (SHOULD)",
                None,
                Advisory,
                Automated,
            ),
            (
                "gateway-api-check",
                "scs-0219-v2 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "pod-security-labels-check",
                "scs-0217-v1 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "pod-security-admission-check",
                "scs-0217-v1 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "apiserver-settings-check",
                "scs-0217-v1 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "port-probe-check",
                "scs-0217-v1 (draft)",
                None,
                Draft,
                Automated,
            ),
            (
                "cncf-k8s-conformance",
                "scs-0201-v1",
                Some("cncf-k8s-conformance"),
                Mandatory,
                Automated,
            ),
        ];
        let got: Vec<_> = TESTCASES
            .iter()
            .map(|t| (t.id, t.standard, t.module, t.target, t.method))
            .collect();
        assert_eq!(got, want);
        // The scope's testcases are exactly the four of v1: three mandatory and automated, the
        // node distribution manual and preview only. scs-0211 is outside the scope.
        let scope: Vec<_> = TESTCASES
            .iter()
            .filter(|t| t.scs_testcase)
            .map(|t| t.id)
            .collect();
        assert_eq!(
            scope,
            [
                "version-policy-check",
                "node-distribution-check",
                "kaas-networking-check",
                "cncf-k8s-conformance"
            ]
        );
        for t in TESTCASES {
            assert_eq!(t.scs_testcase, t.module.is_some(), "{}", t.id);
            assert_eq!(
                t.target == Mandatory,
                t.module.is_some() && t.method == Automated,
                "{}: only automated scope testcases of the main target decide",
                t.id
            );
        }
    }
}
