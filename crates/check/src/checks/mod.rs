//! The testcases.

use std::future::Future;
use std::time::Instant;

use crate::Ctx;
use crate::access::Need;
use crate::report::{CheckKind, Outcome, TestResult};

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
    /// Static, behavioural, probe or conformance.
    pub kind: CheckKind,
    /// Short title.
    pub title: &'static str,
    /// What to do when it fails.
    pub remediation: &'static str,
}

macro_rules! testcase {
    ($name:ident, $id:literal, $std:literal, $scs:literal, $kind:ident, $title:literal, $rem:literal) => {
        pub(crate) const $name: Testcase = Testcase {
            id: $id,
            standard: $std,
            scs_testcase: $scs,
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
    true,
    Static,
    "Kubernetes version within the upstream support and patch windows",
    "Upgrade to the newest patch of a supported branch (within 31 days of its release, 14 days for critical CVEs); move off branches past end of life."
);
testcase!(
    NODE_DISTRIBUTION,
    "node-distribution-check",
    "scs-0214-v2",
    true,
    Static,
    "Node topology labels and control-plane distribution",
    "Label every node with topology.kubernetes.io/zone and topology.kubernetes.io/region (the cloud controller manager usually does), and run the control plane on at least two hosts (three for etcd quorum) spread over failure zones."
);
testcase!(
    DEFAULT_STORAGE_CLASS,
    "default-storage-class-check",
    "scs-0211-v1",
    false,
    Static,
    "Exactly one default StorageClass with a dynamic, non-local provisioner",
    "Annotate exactly one StorageClass with storageclass.kubernetes.io/is-default-class=\"true\" whose provisioner creates network-attached RWO volumes (e.g. the Cinder CSI driver)."
);
testcase!(
    DEFAULT_STORAGE_VOLUME,
    "default-storage-class-volume-check",
    "scs-0211-v1",
    false,
    Behavioural,
    "A PVC without class gets a bound RWO volume usable by a pod, not pinned to one node",
    "Make the default StorageClass provision ReadWriteOnce volumes that are not node-local (no local/hostPath volumes, no node affinity to a single host)."
);
testcase!(
    NETWORKPOLICY_API,
    "networkpolicy-api-check",
    "scs-0219-v1",
    false,
    Static,
    "NetworkPolicy API served",
    "Install a network plugin that implements networking.k8s.io/v1 NetworkPolicy (e.g. Cilium or Calico)."
);
testcase!(
    KAAS_NETWORKING,
    "kaas-networking-check",
    "scs-0219-v1",
    true,
    Behavioural,
    "NetworkPolicy enforced: default-deny blocks, allow rules allow",
    "Use a network plugin that enforces NetworkPolicy (Cilium, Calico); plugins such as flannel alone accept policies but do not enforce them."
);
testcase!(
    PSA_LABELS,
    "pod-security-labels-check",
    "scs-0217-v1 (draft)",
    false,
    Static,
    "Pod Security admission labels (enforce >= baseline) on namespaces",
    "Label every workload namespace with pod-security.kubernetes.io/enforce=baseline or restricted (a label, not an annotation): kubectl label ns <name> pod-security.kubernetes.io/enforce=baseline."
);
testcase!(
    PSA_ADMISSION,
    "pod-security-admission-check",
    "scs-0217-v1 (draft)",
    false,
    Behavioural,
    "Privileged pods are rejected where enforce=baseline",
    "Enable the PodSecurity admission plugin (do not list it in --disable-admission-plugins) and do not exempt ordinary users or namespaces."
);
testcase!(
    APISERVER_SETTINGS,
    "apiserver-settings-check",
    "scs-0217-v1 (draft)",
    false,
    Static,
    "kube-apiserver authentication, authorization, admission and etcd TLS settings",
    "Run kube-apiserver with --authorization-mode=Node,RBAC, service-account tokens plus another authentication method, --enable-admission-plugins including NodeRestriction, PodSecurity enabled, and etcd over TLS with client certificates."
);
testcase!(
    PORT_PROBES,
    "port-probe-check",
    "scs-0217-v1 (draft)",
    false,
    Probe,
    "Only the API server and NodePorts reachable from outside",
    "Close etcd (2379/2380), kubelet (10250, read-only 10255 off via readOnlyPort: 0), controller-manager (10257) and scheduler (10259) ports to the outside with security groups."
);
testcase!(
    CONFORMANCE,
    "cncf-k8s-conformance",
    "scs-0201-v1",
    true,
    Conformance,
    "CNCF Kubernetes conformance suite",
    "Investigate the failed conformance tests (e2e.log, junit_01.xml) and fix the cluster, or add genuinely inapplicable tests to the allowed failures."
);

/// Every testcase, in report order.
pub const TESTCASES: &[Testcase] = &[
    VERSION_POLICY,
    NODE_DISTRIBUTION,
    DEFAULT_STORAGE_CLASS,
    DEFAULT_STORAGE_VOLUME,
    NETWORKPOLICY_API,
    KAAS_NETWORKING,
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
}

impl Verdict {
    fn new(outcome: Outcome, summary: impl Into<String>) -> Self {
        Self {
            outcome,
            summary: summary.into(),
            details: Vec::new(),
            remediation: None,
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
        title: tc.title.into(),
        kind: tc.kind,
        outcome: v.outcome,
        summary: v.summary,
        details: v.details,
        remediation,
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
    let ((version, kubernetes_version), nodes, storage, np_api, psa_labels, apiserver) = futures::join!(
        version::run(ctx),
        timed(ctx, &NODE_DISTRIBUTION, nodes::run(ctx)),
        timed(ctx, &DEFAULT_STORAGE_CLASS, storage::static_check(ctx)),
        timed(ctx, &NETWORKPOLICY_API, network::api_check(ctx)),
        timed(ctx, &PSA_LABELS, hardening::labels_check(ctx)),
        timed(ctx, &APISERVER_SETTINGS, hardening::apiserver_check(ctx)),
    );
    let mut by_id = vec![version, nodes, storage, np_api, psa_labels, apiserver];
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
