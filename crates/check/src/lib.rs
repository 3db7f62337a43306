//! `kaas check`: black-box compliance checks of a Kubernetes cluster against the SCS KaaS
//! standards, needing nothing but API access (a `kube::Client`, i.e. a kubeconfig), with reports
//! in the SCS formats.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! use kaas_check::{CheckOptions, Format};
//! let opts = CheckOptions::default();
//! let report = kaas_check::run(client, &opts, &|line: &str| eprintln!("{line}")).await;
//! print!("{}", report.render(Format::Table));
//! std::process::exit(report.exit_code().into());
//! # }
//! ```
//!
//! # Testcases
//!
//! Every testcase carries what the certification scope "SCS-compatible KaaS" v1 says about it
//! (state of 2026-08): its scope module (none outside the scope), its [`Target`] and its
//! [`Method`]. Only mandatory, automated testcases decide the certificate (exit code, SCS results,
//! the operator's `Compliant` condition); the others are reported as WARN (a FAIL) or INFO (an
//! ABORT) and never fail it. The table is pinned by a unit test of `checks`.
//!
//! | id | standard | module · target · method | kind | what |
//! |---|---|---|---|---|
//! | `version-policy-check` | scs-0210-v2 | `scs-0210-v2` · mandatory · automated | static | `/version`: branch not past upstream end of life; no newer patch on the branch out for more than 31 days (14 if the running version has a CVE with CVSS ≥ 8) |
//! | `version-policy-v3-check` | scs-0210-v3 (draft) | — · draft | static | the same with 14 days, 3 with a CVE of CVSS ≥ 7 |
//! | `node-distribution-check` | scs-0214-v2 | `scs-0214-v2-manual` · preview · **manual** | static | every node has `topology.kubernetes.io/zone` and `/region`; control-plane nodes on more than one host, spread over zones (evidence for the manual review) |
//! | `node-software-recency-check` | scs-0220-v1 (draft) | — · draft | static | every node's kubelet is a current patch (scs-0210-v2 windows); node OS images listed |
//! | `default-storage-class-check` | scs-0211-v1 | — · outside | static | exactly one default StorageClass; provisioner not `kubernetes.io/no-provisioner` (nor a known node-local one) |
//! | `default-storage-class-volume-check` | scs-0211-v1 | — · outside | behavioural | 1 Gi RWO PVC without class + pod: bound, running, PV RWO, not pinned to one node, not local/hostPath |
//! | `networkpolicy-api-check` | scs-0219-v1 | — · advisory | static | `networking.k8s.io/v1` NetworkPolicy served (precondition of `kaas-networking-check`) |
//! | `kaas-networking-check` | scs-0219-v1 | `scs-0219-v1` · mandatory · automated | behavioural | server pod + client Jobs: connect without policy, blocked by default-deny, allowed by an allow rule, other pods still blocked (results from Job status, no `pods/exec`) |
//! | `admin-network-policy-check` | scs-0219-v1 SHOULD | — · advisory | static | AdminNetworkPolicy and BaselineAdminNetworkPolicy served |
//! | `default-ingress-class-check` | scs-0219-v1 SHOULD | — · advisory | static | exactly one default IngressClass |
//! | `gateway-api-check` | scs-0219-v2 (draft) | — · draft | static | GatewayClass, Gateway, HTTPRoute served; a GatewayClass exists |
//! | `pod-security-labels-check` | scs-0217 (draft) | — · draft | static | every namespace (except kube-system, kube-public, kube-node-lease) has the **label** `pod-security.kubernetes.io/enforce` = baseline or restricted |
//! | `pod-security-admission-check` | scs-0217 (draft) | — · draft | behavioural | server-side dry-run of a privileged pod in a temporary namespace with `enforce=baseline` is rejected |
//! | `apiserver-settings-check` | scs-0217 (draft) | — · draft | static | kube-apiserver flags of self-hosted control planes (kube-system static pods): authorization `Node`+RBAC/ABAC/Webhook, ≥ 2 authentication methods incl. service-account tokens, `NodeRestriction`, PodSecurity not disabled, etcd over TLS; SKIP ("not applicable") where not visible |
//! | `port-probe-check` | scs-0217 (draft) | — · draft | probe | only with `port_probes`: etcd, kubelet (incl. read-only 10255), controller-manager and scheduler ports closed from here |
//! | `cncf-k8s-conformance` | scs-0201-v1 | `cncf-k8s-conformance` · mandatory · automated | conformance | Hydrophone or Sonobuoy on `PATH`: run the conformance suite and parse `junit_01.xml` minus allowed failures; ABORT saying why otherwise |
//!
//! [`run_static`] runs the static testcases only: they create nothing and are what the operator
//! runs continuously. [`run`] adds the behavioural ones (if [`CheckOptions::behavioural`]), the
//! port probes (if [`CheckOptions::port_probes`]) and conformance (per [`ConformanceMode`]);
//! testcases not run are reported as SKIP.
//!
//! # Outcomes
//!
//! PASS, FAIL, ABORT (could not decide: missing rights — found with SelfSubjectAccessReview before
//! a check, naming verb and resource —, missing data, or a cluster that cannot run test pods) and
//! SKIP (not run or not applicable). ABORT is never a FAIL, and no behavioural check reports PASS
//! or FAIL unless its pods actually ran. Behavioural checks create their objects in a temporary
//! namespace `kaas-check-<purpose>-xxxxx` that is deleted afterwards, also on errors; every wait is
//! bounded ([`Timeouts`]).
//!
//! # Exit codes ([`Report::exit_code`])
//!
//! From the mandatory (certificate) testcases only:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every mandatory testcase that ran passed (SKIPs allowed) |
//! | 1 | at least one mandatory FAIL |
//! | 2 | no mandatory FAIL, but a mandatory ABORT, no mandatory PASS, or a requested refresh of the release data failed; the CLI also uses 2 for usage and I/O errors (no report then) |
//!
//! # Release data
//!
//! The version policies need upstream release dates, end-of-life dates and CVEs. They are bundled
//! ([`ReleaseData::bundled`]; the file says where each fact comes from and up to which date it is
//! complete), can be loaded from a file or given by the caller (the operator reads a ConfigMap),
//! and are refreshed from upstream when [`CheckOptions::refresh_data`] is set and the sources are
//! reachable ([`upstream::fetch`]: timeouts, size limits, a clear error offline). The report always
//! names the data used, its dates and its age ([`DataInfo`]). When the data is too old for the
//! reference date to rule out an overdue patch, the check ABORTs with reason
//! [`report::REASON_STALE_DATA`] ("release data is N days old …; refresh the release data") and
//! [`CheckOptions::refresh_hint`] as remediation, instead of guessing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use kube::Client;

mod access;
mod behaviour;
mod checks;
pub mod cvss;
pub mod data;
pub mod report;
pub mod upstream;
pub mod version;

pub use checks::{TESTCASES, Testcase};
pub use data::{ReleaseData, parse_date};
pub use report::{
    CheckKind, Counts, DataInfo, Format, Method, Outcome, Report, SCS_SCOPE_UUID, Target,
    TestResult,
};
pub use version::{KubeVersion, PolicyVerdict};

/// Bounds of every wait.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// A test pod must be scheduled (bound to a node) within this.
    pub schedule: Duration,
    /// A scheduled pod must run within this (image pull included).
    pub start: Duration,
    /// A client Job must give its verdict within this after its pod started.
    pub job: Duration,
    /// Waiting for a PVC to be bound.
    pub bind: Duration,
    /// Waiting for a temporary namespace to disappear (deletion is always requested).
    pub cleanup: Duration,
    /// Poll interval.
    pub poll: Duration,
    /// TCP connect timeout of a port probe.
    pub probe: Duration,
    /// Bound of a conformance run.
    pub conformance: Duration,
    /// Bound of fetching upstream release data.
    pub refresh: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            schedule: Duration::from_secs(60),
            start: Duration::from_secs(180),
            job: Duration::from_secs(120),
            bind: Duration::from_secs(180),
            cleanup: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            probe: Duration::from_secs(2),
            conformance: Duration::from_secs(3 * 3600),
            refresh: Duration::from_secs(20),
        }
    }
}

/// Whether and how to run `cncf-k8s-conformance`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ConformanceMode {
    /// Not run (reported as SKIP).
    #[default]
    Skip,
    /// A single conformance test (Sonobuoy `--mode quick`, Hydrophone with a focus): proves the
    /// tooling works, not conformance.
    Quick,
    /// The full conformance suite (takes one to two hours).
    Certified,
    /// Parse the results of an earlier run: a `junit_01.xml` or a directory containing one.
    Results(PathBuf),
}

/// What to check and how.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The day to judge on (`None`: today, UTC). Reports always carry it.
    pub reference_date: Option<Date>,
    /// Run the behavioural testcases in [`run`] (they create objects in temporary namespaces).
    pub behavioural: bool,
    /// Probe node ports from here in [`run`].
    pub port_probes: bool,
    /// Conformance in [`run`].
    pub conformance: ConformanceMode,
    /// Release and CVE data (bundled by default).
    pub data: ReleaseData,
    /// Try to refresh [`CheckOptions::data`] from upstream first (falls back, and says so).
    pub refresh_data: bool,
    /// What to do when the release data is too old: the remediation of a stale-data verdict
    /// (the CLI's default names `--refresh-data`; the operator names its ConfigMap).
    pub refresh_hint: String,
    /// The name of the checked cluster in reports.
    pub subject: String,
    /// The command line, for the SCS report.
    pub argv: Vec<String>,
    /// Kubeconfig file for external tools (Sonobuoy, Hydrophone).
    pub kubeconfig: Option<PathBuf>,
    /// Image of test pods; needs `sh`, `wget`, `httpd` (busybox).
    pub image: String,
    /// Bounds of waits.
    pub timeouts: Timeouts,
    /// Namespaces `pod-security-labels-check` does not require labels on.
    pub psa_exempt_namespaces: Vec<String>,
    /// Conformance tests allowed to fail (substring of the test name).
    pub allowed_failures: Vec<String>,
    /// Where to look for `hydrophone`/`sonobuoy` (default `$PATH`).
    pub tool_search_path: Option<OsString>,
    /// Ports `port-probe-check` expects closed.
    pub probe_ports: Vec<u16>,
    /// Extra hosts to probe (e.g. the API server's host); node addresses are always probed.
    pub probe_hosts: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            reference_date: None,
            behavioural: true,
            port_probes: false,
            conformance: ConformanceMode::Skip,
            data: ReleaseData::bundled(),
            refresh_data: false,
            refresh_hint: REFRESH_HINT.into(),
            subject: "kubernetes".into(),
            argv: vec!["kaas".into(), "check".into()],
            kubeconfig: None,
            image: "registry.k8s.io/e2e-test-images/busybox:1.36.1-1".into(),
            timeouts: Timeouts::default(),
            psa_exempt_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            allowed_failures: Vec::new(),
            tool_search_path: None,
            probe_ports: vec![2379, 2380, 10250, 10255, 10257, 10259],
            probe_hosts: Vec::new(),
        }
    }
}

/// The default remediation of stale release data.
pub const REFRESH_HINT: &str = "Refresh the release data: kaas check --refresh-data (needs api.github.com, raw.githubusercontent.com and kubernetes.io), or kaas check --data FILE with a file written by kaas check --refresh-data --save-data FILE elsewhere; for the operator, update its release-data ConfigMap (docs/compliance.md).";

/// Progress callback type: receives one line per step of a run.
pub type Progress<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// What every check gets.
pub(crate) struct Ctx<'a> {
    pub client: Client,
    pub opts: &'a CheckOptions,
    pub reference_date: Date,
    pub data: &'a ReleaseData,
    pub access: access::Access,
    pub progress: &'a Progress<'a>,
}

impl Ctx<'_> {
    pub fn say(&self, msg: &str) {
        (self.progress)(msg);
    }
}

/// Runs every requested testcase: static, then (per options) behavioural, port probes and
/// conformance. `progress` receives a line per step of long runs.
pub async fn run(client: Client, opts: &CheckOptions, progress: &Progress<'_>) -> Report {
    execute(client, opts, progress, true).await
}

/// Runs the static testcases only: they read and create nothing (the operator's continuous
/// compliance).
pub async fn run_static(client: Client, opts: &CheckOptions) -> Report {
    execute(client, opts, &|_: &str| {}, false).await
}

/// The day (UTC) of a point in time.
pub fn utc_date(t: Timestamp) -> Date {
    t.to_zoned(TimeZone::UTC).date()
}

/// Today (UTC): the default reference date.
pub fn today_utc() -> Date {
    utc_date(Timestamp::now())
}

pub(crate) fn random_uuid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if ok.is_err() {
        // Not cryptographic; only an identifier.
        let seed = Timestamp::now().as_nanosecond() as u128 ^ ((std::process::id() as u128) << 64);
        b = seed.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn execute(
    client: Client,
    opts: &CheckOptions,
    progress: &Progress<'_>,
    full: bool,
) -> Report {
    let started = Instant::now();
    let checked_at = Timestamp::now();
    let reference_date = opts.reference_date.unwrap_or_else(|| utc_date(checked_at));

    let (data, refresh_error) = if opts.refresh_data {
        progress("refreshing release and CVE data from upstream");
        match upstream::fetch(&opts.data, opts.timeouts.refresh).await {
            Ok(d) => (d, None),
            Err(e) => {
                progress(&format!("refresh failed, using {}: {e}", opts.data.source));
                (opts.data.clone(), Some(e))
            }
        }
    } else {
        (opts.data.clone(), None)
    };
    let ctx = Ctx {
        access: access::Access::new(client.clone()),
        client,
        opts,
        reference_date,
        data: &data,
        progress,
    };

    let (results, kubernetes_version) = checks::run_all(&ctx, full).await;

    Report {
        subject: opts.subject.clone(),
        checked_at,
        reference_date,
        kubernetes_version,
        data: DataInfo {
            source: data.source.clone(),
            releases_as_of: data.releases_as_of,
            cves_as_of: data.cves_as_of,
            refresh_requested: opts.refresh_data,
            refresh_error,
            age_days: version::days_between(data.releases_as_of, reference_date),
            cves_age_days: version::days_between(data.cves_as_of, reference_date),
        },
        argv: opts.argv.clone(),
        run_uuid: random_uuid(),
        invocation_uuid: random_uuid(),
        duration_ms: started.elapsed().as_millis() as u64,
        results,
    }
}

#[cfg(test)]
mod tests {
    /// The operator spawns these futures on a multi-threaded runtime: they must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(client: kube::Client, opts: &super::CheckOptions) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&super::run_static(client.clone(), opts));
        is_send(&super::run(client, opts, &|_: &str| {}));
    }

    #[test]
    fn uuids_are_v4() {
        let u = super::random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, super::random_uuid());
    }
}
