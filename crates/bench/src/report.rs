//! The figures of one `operator-scale` run, as Markdown and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::probe::Requests;
use crate::scale::Args;

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// One run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// UTC date and time of the run.
    pub date: String,
    /// CPU, cores, memory.
    pub machine: String,
    /// kaas (git), Kubernetes, etcd, Cluster API.
    pub versions: BTreeMap<String, String>,
    /// SCS Clusters.
    pub clusters: usize,
    /// Tenants they are spread over.
    pub tenants: usize,
    /// `kaas operator --concurrency` (and the baseline's requests in flight).
    pub concurrency: u16,
    /// SCS Cluster creations in flight.
    pub in_flight: usize,
    /// Whether the admission policy set kaas' finalizer at creation (else the operator wrote it).
    pub finalizer_at_creation: bool,
    /// Plane start (etcd, kube-apiserver, kube-controller-manager, CRDs), seconds.
    pub plane_start_secs: f64,
    /// The operator run.
    pub operator: Option<OperatorRun>,
    /// The bare-client baseline.
    pub baseline: Option<Baseline>,
    /// The Cluster API managers at the same count.
    pub capi: Option<CapiRun>,
    /// Why the run stopped early, if it did.
    pub incomplete: Option<String>,
}

/// The operator run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OperatorRun {
    /// Operator log.
    pub log: String,
    /// Operator RSS before any cluster existed, MiB.
    pub rss_idle_mib: f64,
    /// Creating the N SCS Clusters (the benchmark's own writes), seconds from t0.
    pub create_secs: f64,
    /// Every Cluster API Cluster seen by the watch, seconds from t0.
    pub all_written_secs: Option<f64>,
    /// Every SCS Cluster with `observedGeneration == generation` and `SpecAccepted=True`.
    pub all_status_secs: Option<f64>,
    /// Cluster API Clusters seen (of N).
    pub written: usize,
    /// SCS Clusters with their status (of N).
    pub with_status: usize,
    /// SCS Clusters with `SpecAccepted=False` (should be 0).
    pub rejected: usize,
    /// Operator CPU seconds from its start until all status was written.
    pub cpu_to_status_secs: Option<f64>,
    /// Operator RSS when all status was written, MiB.
    pub rss_at_status_mib: Option<f64>,
    /// Reconciles (ok, error) until all status was written.
    pub reconciles_to_status: Option<(f64, f64)>,
    /// API server requests (all clients, without WATCH) from t0 until all status was written.
    pub requests_to_status: Requests,
    /// The operator's own requests (without WATCH) from t0 until all status was written, and its
    /// mean requests per reconcile meanwhile (`None`: an operator without those metrics).
    pub operator_requests_to_status: Option<(f64, f64)>,
    /// The steady state after convergence.
    pub idle: Option<Idle>,
    /// Spec-change latency.
    pub latency: Option<Latency>,
    /// Operator peak RSS (VmHWM) over the whole run, MiB.
    pub peak_rss_mib: f64,
    /// Operator CPU seconds over the whole run.
    pub cpu_total_secs: f64,
    /// Reconciles (ok, error) over the whole run.
    pub reconciles_total: (f64, f64),
    /// Plane processes at the end of the operator run: peak RSS (MiB), RSS (MiB), CPU seconds.
    pub plane: BTreeMap<String, (f64, f64, f64)>,
    /// WARN/ERROR lines in the operator log, and the first few distinct ones.
    pub log_warnings: usize,
    /// Samples of those lines.
    pub log_samples: Vec<String>,
}

/// The steady state after convergence (no writes by the benchmark).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Idle {
    /// Window, seconds.
    pub secs: f64,
    /// Operator reconciles per second.
    pub reconciles_per_sec: f64,
    /// Operator CPU, percent of one core.
    pub cpu_percent: f64,
    /// API server requests per second (all clients, without WATCH).
    pub requests_per_sec: Requests,
    /// The operator's own requests per second (without WATCH), from its `kaas_api_requests_total`
    /// (`None`: an operator without that metric).
    pub operator_requests_per_sec: Option<f64>,
    /// SCS Clusters (to express the rates per cluster).
    pub clusters: usize,
}

/// Delay from a spec patch to the Cluster API topology change.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Patches sent.
    pub sent: usize,
    /// Topology changes observed.
    pub observed: usize,
    /// Pace, milliseconds between patches.
    pub interval_ms: u64,
    /// Percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th.
    pub p95_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Operator reconciles during the phase.
    pub reconciles: f64,
}

/// The bare-client baseline (no operator).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Baseline {
    /// Creating the N SCS Clusters (as in the operator run), seconds.
    pub create_secs: f64,
    /// Validating and rendering N clusters (not part of the timed writes), seconds.
    pub render_secs: f64,
    /// Namespace + Cluster API Cluster server-side applies for N clusters, seconds.
    pub written_secs: f64,
    /// The N status server-side applies, seconds.
    pub status_secs: f64,
    /// `written_secs + status_secs`.
    pub writes_secs: f64,
}

/// The Cluster API managers at the same count.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CapiRun {
    /// How long the managers ran (after they were ready), seconds.
    pub ran_secs: f64,
    /// Starting them until ready, seconds.
    pub start_secs: f64,
    /// Per manager: peak RSS (MiB), RSS at the end (MiB), CPU seconds.
    pub managers: BTreeMap<String, (f64, f64, f64)>,
    /// Cluster API Clusters present.
    pub clusters: usize,
    /// Of them, with conditions written by Cluster API.
    pub with_status: usize,
    /// Of them, `TopologyReconciled=True`.
    pub topology_reconciled: usize,
    /// MachineDeployments created by the topology controller.
    pub machine_deployments: usize,
    /// Anything worth knowing.
    pub note: Option<String>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| format!("{s:.1} s"))
}

impl Report {
    /// An empty report for `args`, with date, machine and versions.
    pub fn new(args: &Args) -> Self {
        let v = kaas_harness::versions();
        let git = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(kaas_harness::repo_root().unwrap_or_else(|| ".".into()))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let versions = BTreeMap::from([
            (
                "kaas".to_string(),
                format!("{} ({git})", env!("CARGO_PKG_VERSION")),
            ),
            ("kubernetes".to_string(), v.kubernetes),
            ("etcd".to_string(), v.etcd),
            ("cluster-api".to_string(), v.cluster_api),
        ]);
        Report {
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
            machine: machine(),
            versions,
            clusters: args.clusters,
            tenants: args.tenants,
            concurrency: args.concurrency,
            in_flight: args.in_flight,
            finalizer_at_creation: !args.without_finalizer_policy,
            ..Default::default()
        }
    }

    /// Operator time-to-all-status over the baseline's writes.
    pub fn ratio(&self) -> Option<f64> {
        let op = self.operator.as_ref()?.all_status_secs?;
        let b = self.baseline.as_ref()?.writes_secs;
        (b > 0.0).then(|| op / b)
    }

    /// One row for the cross-N table, and the details below it.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let op = self.operator.as_ref();
        let lat = op.and_then(|o| o.latency.as_ref());
        let _ = writeln!(
            s,
            "| N | op: all CAPI written | op: all status | baseline writes (+create) | ratio | op peak RSS | op CPU to status (total) | idle reconciles/s | spec→topology p50 / p95 / p99 / max | CAPI core RSS |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        let capi = self.capi.as_ref().map_or("–".to_string(), |c| {
            let core = c.managers.get("capi-core");
            format!(
                "{} after {:.0} s ({}/{} clusters with status)",
                core.map_or("–".into(), |m| format!("{:.0} MiB", m.0)),
                c.ran_secs,
                c.with_status,
                c.clusters
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.clusters,
            secs(op.and_then(|o| o.all_written_secs)),
            secs(op.and_then(|o| o.all_status_secs)),
            self.baseline.as_ref().map_or("–".into(), |b| format!(
                "{:.1} s (+{:.1} s)",
                b.writes_secs, b.create_secs
            )),
            self.ratio().map_or("–".into(), |r| format!("{r:.1}×")),
            op.map_or("–".into(), |o| format!("{:.0} MiB", o.peak_rss_mib)),
            op.map_or("–".into(), |o| format!(
                "{} ({:.1} s)",
                secs(o.cpu_to_status_secs),
                o.cpu_total_secs
            )),
            op.and_then(|o| o.idle.as_ref())
                .map_or("–".into(), |i| format!("{:.1}", i.reconciles_per_sec)),
            lat.map_or("–".into(), |l| format!(
                "{:.0} / {:.0} / {:.0} / {:.0} ms",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            )),
            capi,
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "- {} · {} · {} · {} clusters in {} tenants, operator --concurrency {}, {} creations in flight, finalizer set by {}; plane started in {:.1} s",
            self.date,
            self.machine,
            self.versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.clusters,
            self.tenants,
            self.concurrency,
            self.in_flight,
            if self.finalizer_at_creation {
                "the admission policy at creation"
            } else {
                "the operator"
            },
            self.plane_start_secs
        );
        if let Some(o) = op {
            let n = self.clusters.max(1) as f64;
            let _ = writeln!(
                s,
                "- operator: created the SCS Clusters in {:.1} s; {}/{} Cluster API Clusters written, {}/{} statuses ({} rejected); RSS {:.0} MiB idle, {} at all-status, peak {:.0} MiB; reconciles to all-status {}; whole run {:.0} ok / {:.0} error; {} WARN/ERROR log lines; log {}",
                o.create_secs,
                o.written,
                self.clusters,
                o.with_status,
                self.clusters,
                o.rejected,
                o.rss_idle_mib,
                o.rss_at_status_mib
                    .map_or("–".into(), |m| format!("{m:.0} MiB")),
                o.peak_rss_mib,
                o.reconciles_to_status
                    .map_or("–".into(), |(ok, err)| format!(
                        "{ok:.0} ok / {err:.0} error ({:.2} per cluster)",
                        (ok + err) / n
                    )),
                o.reconciles_total.0,
                o.reconciles_total.1,
                o.log_warnings,
                o.log
            );
            if !o.requests_to_status.is_empty() {
                let _ = writeln!(
                    s,
                    "- API requests from t0 to all-status (all clients incl. the benchmark's creates), per cluster: {}",
                    top(&o.requests_to_status, n, 12)
                );
            }
            if let Some(i) = &o.idle {
                let _ = writeln!(
                    s,
                    "- steady state ({:.0} s, nothing changing): {:.1} reconciles/s, operator CPU {:.0} % of a core; API requests/s: {}",
                    i.secs,
                    i.reconciles_per_sec,
                    i.cpu_percent,
                    top(&i.requests_per_sec, 1.0, 12)
                );
                let all: f64 = i.requests_per_sec.values().sum();
                let per5 = |r: f64| r * 300.0 / i.clusters.max(1) as f64;
                let _ = writeln!(
                    s,
                    "- steady state per cluster and 5 minutes: {:.1} API requests (all clients), {}",
                    per5(all),
                    i.operator_requests_per_sec.map_or(
                        "the operator's own: not reported".into(),
                        |r| format!(
                            "{:.2} by the operator (its kaas_api_requests_total)",
                            per5(r)
                        )
                    )
                );
            }
            if let Some((req, per)) = o.operator_requests_to_status {
                let _ = writeln!(
                    s,
                    "- the operator's own API requests from t0 to all-status: {req:.0} ({:.2} per cluster), {per:.2} per reconcile",
                    req / n
                );
            }
            if let Some(l) = lat {
                let _ = writeln!(
                    s,
                    "- spec change → topology replicas: {}/{} observed, one patch every {} ms, {:.0} reconciles meanwhile",
                    l.observed, l.sent, l.interval_ms, l.reconciles
                );
            }
            if !o.plane.is_empty() {
                let _ = writeln!(
                    s,
                    "- plane at the end of the operator run: {}",
                    o.plane
                        .iter()
                        .map(|(k, (peak, now, cpu))| format!(
                            "{k} peak {peak:.0} MiB / now {now:.0} MiB / {cpu:.0} CPU s"
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for w in &o.log_samples {
                let _ = writeln!(s, "  - log: `{w}`");
            }
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                s,
                "- baseline (bare client, no operator): create {:.1} s; validate+render {:.3} s (untimed); namespace+CAPI Cluster SSA {:.1} s; status SSA {:.1} s",
                b.create_secs, b.render_secs, b.written_secs, b.status_secs
            );
        }
        if let Some(c) = &self.capi {
            let _ = writeln!(
                s,
                "- Cluster API managers: ready after {:.1} s, ran {:.0} s; {} clusters, {} with conditions, {} TopologyReconciled=True, {} MachineDeployments; {}",
                c.start_secs,
                c.ran_secs,
                c.clusters,
                c.with_status,
                c.topology_reconciled,
                c.machine_deployments,
                c.managers
                    .iter()
                    .map(|(k, (peak, end, cpu))| format!(
                        "{k} peak {peak:.0} MiB / end {end:.0} MiB / {cpu:.0} CPU s"
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(n) = &c.note {
                let _ = writeln!(s, "  - {n}");
            }
        }
        if let Some(why) = &self.incomplete {
            let _ = writeln!(s, "- INCOMPLETE: {why}");
        }
        s
    }
}

fn top(r: &Requests, per: f64, n: usize) -> String {
    let mut v: Vec<(&String, &f64)> = r.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter()
        .take(n)
        .map(|(k, c)| format!("{k} {:.2}", *c / per))
        .collect::<Vec<_>>()
        .join(", ")
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {mem:.0} GiB, {cpu}")
}
