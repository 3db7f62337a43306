//! `operator-settled`: what idle Ready clusters cost the operator.
//!
//! 1. A plane WITH the Cluster API managers and the in-memory infrastructure provider (one per
//!    machine: the harness waits for the machine-wide lock), kaas installed, the `dev` provider with
//!    the upstream in-memory ClusterClass and the addon bundles the operator's lifecycle test
//!    installs, tenant namespaces.
//! 2. The real `kaas operator` binary as a child process with its `/metrics`; N SCS Clusters
//!    (1 control plane, 1 worker, Kubernetes 1.35.x, like the lifecycle test) created at once and
//!    awaited until every one is `Ready=True`.
//! 3. A settle time, then a window (by default longer than the 5-minute requeue of settled
//!    clusters) in which nothing changes: the operator's own requests (`kaas_api_requests_total`,
//!    by verb and resource), its reconciles (all, and settled ones when the binary counts them),
//!    its CPU and memory, and every client's requests as the API server counts them (the Cluster
//!    API managers' included).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kaas_api::{Cluster, Provider};
use kaas_harness::{Plane, PlaneOptions};
use kaas_operator::install;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::probe::{self, Sampler};
use crate::report::mib;
use crate::scale::{self, Key, Operator, PROVIDER_YAML, say};

const PREFIX: &str = "idle";
const BUNDLES: [(&str, &str); 2] = [("1.35.4", "dev-addons-1-35"), ("1.36.3", "dev-addons-1-36")];

/// Flags of `operator-settled`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// SCS Clusters to create (1 control plane, 1 worker each).
    #[arg(long, default_value_t = 20)]
    pub clusters: usize,
    /// Tenants (namespaces) they are spread over.
    #[arg(long, default_value_t = 4)]
    pub tenants: usize,
    /// `kaas operator --concurrency`.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Bound of the wait until every cluster is Ready, seconds.
    #[arg(long, default_value_t = 1200)]
    pub ready_timeout_secs: u64,
    /// Time between all Ready and the window, seconds.
    #[arg(long, default_value_t = 60)]
    pub settle_secs: u64,
    /// The measured window, seconds (default: longer than the 5-minute settled requeue).
    #[arg(long, default_value_t = 330)]
    pub window_secs: u64,
    /// The `kaas` binary (default: target/release/kaas of this workspace).
    #[arg(long)]
    pub kaas_bin: Option<PathBuf>,
    /// Bound of the whole run, seconds; on expiry everything is stopped.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Also print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub kaas_bin: String,
    pub clusters: usize,
    pub tenants: usize,
    pub started: String,
    /// `/proc/loadavg` at the start of the run, at the window's start and at its end.
    pub loadavg_start: String,
    pub loadavg_window_start: String,
    pub loadavg_window_end: String,
    pub plane_start_secs: f64,
    pub create_secs: f64,
    /// From the first creation to the last cluster seen Ready (polled every 5 s).
    pub all_ready_secs: Option<f64>,
    /// The operator's own requests (no WATCH) and reconciles from the first creation to all Ready.
    pub to_ready_operator_requests: Option<f64>,
    pub to_ready_reconciles: f64,
    /// The same during the settle time (the first full passes after Ready).
    pub settle_secs: f64,
    pub settle_operator_requests: Option<f64>,
    pub settle_reconciles: f64,
    pub settle_settled_reconciles: Option<f64>,
    pub window: Option<Window>,
    /// Clusters Ready=True after the window.
    pub ready_after_window: usize,
    pub operator_log: String,
    pub log_warnings: usize,
    pub log_samples: Vec<String>,
    pub incomplete: Option<String>,
}

/// What the quiet window cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    pub secs: f64,
    /// The operator's own requests (no WATCH), all and by `VERB resource`.
    pub operator_requests: Option<f64>,
    pub operator_requests_by: BTreeMap<String, f64>,
    /// Per cluster per 5 minutes.
    pub operator_per_cluster_per_5min: Option<f64>,
    pub reconciles_ok: f64,
    pub reconciles_error: f64,
    /// `kaas_operator_reconciles_settled_total`; `None` for a binary without it.
    pub settled_reconciles: Option<f64>,
    /// Mean requests of the reconciles that were not settled ones (`None` without any).
    pub requests_per_full_reconcile: Option<f64>,
    /// Every client's requests (no WATCH) as the API server counts them, by `VERB resource`.
    pub all_clients_by: BTreeMap<String, f64>,
    pub all_clients_per_cluster_per_5min: f64,
    pub operator_cpu_secs: f64,
    pub operator_cpu_percent: f64,
    pub operator_rss_mib: f64,
    pub operator_peak_rss_mib: f64,
}

/// The operator's `/metrics` at one moment.
struct Scrape {
    text: String,
}

impl Scrape {
    async fn of(op: &Operator) -> Result<Scrape> {
        Ok(Scrape {
            text: probe::http_get(op.port, "/metrics").await?,
        })
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        probe::counter(&self.text, name, labels)
    }

    fn has(&self, name: &str) -> bool {
        self.text.contains(name)
    }

    /// Own requests without WATCH; `None` for a binary that does not count them.
    fn requests(&self) -> Option<f64> {
        const NAME: &str = "kaas_api_requests_total";
        self.has(NAME)
            .then(|| self.counter(NAME, &[]) - self.counter(NAME, &[("verb", "WATCH")]))
    }

    fn requests_by(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for l in self.text.lines() {
            let Some(rest) = l.strip_prefix("kaas_api_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let ls = probe::parse_labels(labels);
            let verb = ls.get("verb").cloned().unwrap_or_default();
            if verb == "WATCH" {
                continue;
            }
            let resource = ls.get("resource").cloned().unwrap_or_default();
            *out.entry(format!("{verb} {resource}")).or_default() +=
                value.trim().parse::<f64>().unwrap_or(0.0);
        }
        out
    }

    fn reconciles(&self) -> (f64, f64) {
        const NAME: &str = "kaas_operator_reconciles_total";
        (
            self.counter(NAME, &[("result", "ok")]),
            self.counter(NAME, &[("result", "error")]),
        )
    }

    fn settled(&self) -> Option<f64> {
        const NAME: &str = "kaas_operator_reconciles_settled_total";
        self.has(NAME).then(|| self.counter(NAME, &[]))
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn sub(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v >= 0.5)
        .collect()
}

fn is_ready(c: &Cluster) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|x| x.type_ == "Ready" && x.status == "True")
    })
}

/// Clusters of this run Ready=True, of those listed.
async fn ready(client: &Client) -> Result<(usize, usize)> {
    let all = Api::<Cluster>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let ours: Vec<&Cluster> = all
        .iter()
        .filter(|c| c.namespace().is_some_and(|n| n.starts_with(PREFIX)))
        .collect();
    Ok((ours.iter().filter(|c| is_ready(c)).count(), ours.len()))
}

/// Runs the benchmark, filling `report` as the phases complete.
pub async fn run(args: Args, report: &std::sync::Mutex<Report>) -> Result<()> {
    let update = |f: &dyn Fn(&mut Report)| f(&mut report.lock().unwrap_or_else(|e| e.into_inner()));
    let t0 = Instant::now();
    anyhow::ensure!(
        args.clusters > 0 && args.tenants > 0,
        "--clusters and --tenants must be > 0"
    );
    let bin = scale::kaas_bin(args.kaas_bin.as_ref())?;
    let logs = std::env::temp_dir().join(format!("kaas-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    update(&|r| {
        r.kaas_bin = bin.display().to_string();
        r.clusters = args.clusters;
        r.tenants = args.tenants;
        r.started = jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        r.loadavg_start = loadavg();
    });

    // 1. The plane, with the Cluster API managers.
    say(
        t0,
        "starting the plane (Cluster API managers, in-memory infrastructure)",
    );
    let mut opts = PlaneOptions::with_capi().crds(kaas_api::crds());
    opts.capi_lock_timeout = Duration::from_secs(600);
    let plane = Plane::start(opts).await?;
    let client = plane.client();
    install::install_kaas(&client).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kaas-provider-dev");
    let mut provider: Provider = serde_yaml::from_str(PROVIDER_YAML)?;
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts())?;
    // The provider's namespace exists once the provider is installed; the bundles go there, and
    // only the versions with a bundle name it (as in the lifecycle test).
    for v in &mut provider.spec.kubernetes_versions {
        v.stack.addons = BUNDLES
            .iter()
            .find(|(version, _)| *version == v.version)
            .map(|(_, b)| b.to_string());
    }
    install::provider(&client, &provider, &class).await?;
    for (_, b) in BUNDLES {
        cms.patch(
            b,
            &PatchParams::apply("kaas-bench").force(),
            &Patch::Apply(kaas_harness::in_memory_addon_bundle(b, "kaas-provider-dev")),
        )
        .await
        .with_context(|| format!("installing the addon bundle {b}"))?;
    }
    scale::tenants(&client, PREFIX, args.tenants).await?;
    let plane_secs = t0.elapsed().as_secs_f64();
    update(&|r| r.plane_start_secs = plane_secs);
    say(t0, format!("plane ready ({})", plane.dir().display()));

    // 2. The operator; N clusters until Ready.
    let log = logs.join(format!("operator-settled-{}.log", args.clusters));
    let mut op = Operator::spawn(
        &bin,
        &plane.kubeconfig_path(),
        args.concurrency,
        log.clone(),
    )?;
    update(&|r| r.operator_log = log.display().to_string());
    op.wait_ready(Duration::from_secs(60)).await?;
    let sampler = Sampler::start(op.pid, Duration::from_millis(500));
    let keys: Vec<Key> = scale::layout(PREFIX, args.tenants, args.clusters);
    let n = keys.len();
    say(
        t0,
        format!(
            "operator pid {} running; creating {n} clusters in {} tenants",
            op.pid, args.tenants
        ),
    );
    let m0 = Scrape::of(&op).await?;
    let start = Instant::now();
    futures::stream::iter(keys.iter().cloned())
        .map(|(ns, name)| {
            let client = client.clone();
            async move {
                Api::<Cluster>::namespaced(client, &ns)
                    .create(
                        &PostParams::default(),
                        &kaas_bench::chaos::scs_cluster(&ns, &name, "1.35.x", 1)?,
                    )
                    .await
                    .with_context(|| format!("creating {ns}/{name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    update(&|r| r.create_secs = create_secs);
    say(
        t0,
        format!("created {n} SCS Clusters in {create_secs:.1} s"),
    );

    let ready_deadline = Instant::now() + Duration::from_secs(args.ready_timeout_secs);
    let mut last_say = Instant::now();
    loop {
        op.alive()?;
        let (r, listed) = ready(&client).await?;
        if r >= n {
            break;
        }
        if last_say.elapsed() >= Duration::from_secs(30) {
            let s = sampler.now();
            say(
                t0,
                format!(
                    "waiting: {r}/{listed} Ready after {:.0} s; operator RSS {:.0} MiB, CPU {:.1} s",
                    start.elapsed().as_secs_f64(),
                    mib(s.rss),
                    s.cpu
                ),
            );
            last_say = Instant::now();
        }
        anyhow::ensure!(
            Instant::now() < ready_deadline,
            "only {r}/{n} clusters Ready after {} s (--ready-timeout-secs)",
            args.ready_timeout_secs
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let all_ready = start.elapsed().as_secs_f64();
    let m1 = Scrape::of(&op).await?;
    let (ok0, err0) = m0.reconciles();
    let (ok1, err1) = m1.reconciles();
    update(&|r| {
        r.all_ready_secs = Some(all_ready);
        r.to_ready_operator_requests = m0.requests().zip(m1.requests()).map(|(a, b)| b - a);
        r.to_ready_reconciles = ok1 + err1 - ok0 - err0;
    });
    say(t0, format!("all {n} clusters Ready after {all_ready:.1} s"));

    // 3. Settle, then the window.
    say(t0, format!("settling for {} s", args.settle_secs));
    let settle = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    op.alive()?;
    let w0 = Scrape::of(&op).await?;
    let q0 = probe::apiserver_requests(&client).await?;
    let s0 = sampler.now();
    let (sok, serr) = w0.reconciles();
    let settle_secs = settle.elapsed().as_secs_f64();
    update(&|r| {
        r.settle_secs = settle_secs;
        r.settle_operator_requests = m1.requests().zip(w0.requests()).map(|(a, b)| b - a);
        r.settle_reconciles = sok + serr - ok1 - err1;
        r.settle_settled_reconciles = m1.settled().zip(w0.settled()).map(|(a, b)| b - a);
        r.loadavg_window_start = loadavg();
    });
    say(
        t0,
        format!(
            "window of {} s: nothing changes; the operator's requests are counted",
            args.window_secs
        ),
    );
    let window = Duration::from_secs(args.window_secs);
    let wstart = Instant::now();
    while wstart.elapsed() < window {
        tokio::time::sleep((window - wstart.elapsed().min(window)).min(Duration::from_secs(30)))
            .await;
        op.alive()?;
        let m = Scrape::of(&op).await?;
        let (ok, err) = m.reconciles();
        say(
            t0,
            format!(
                "window {:.0}/{} s: operator requests {:?}, reconciles {}, settled {:?}",
                wstart.elapsed().as_secs_f64(),
                args.window_secs,
                w0.requests().zip(m.requests()).map(|(a, b)| b - a),
                ok + err - sok - serr,
                w0.settled().zip(m.settled()).map(|(a, b)| b - a),
            ),
        );
    }
    let w1 = Scrape::of(&op).await?;
    let q1 = probe::apiserver_requests(&client).await?;
    let s1 = sampler.now();
    let dt = wstart.elapsed().as_secs_f64();
    let (eok, eerr) = w1.reconciles();
    let own = w0.requests().zip(w1.requests()).map(|(a, b)| b - a);
    let settled = w0.settled().zip(w1.settled()).map(|(a, b)| b - a);
    let reconciles = eok + eerr - sok - serr;
    let full = reconciles - settled.unwrap_or(0.0);
    let all_clients_by = probe::delta(&q0, &q1);
    let all_clients: f64 = all_clients_by.values().sum();
    let per_5min = |count: f64| count / n as f64 / dt * 300.0;
    let win = Window {
        secs: dt,
        operator_requests: own,
        operator_requests_by: sub(&w0.requests_by(), &w1.requests_by()),
        operator_per_cluster_per_5min: own.map(per_5min),
        reconciles_ok: eok - sok,
        reconciles_error: eerr - serr,
        settled_reconciles: settled,
        requests_per_full_reconcile: own.filter(|_| full >= 1.0).map(|o| o / full),
        all_clients_per_cluster_per_5min: per_5min(all_clients),
        all_clients_by,
        operator_cpu_secs: s1.cpu - s0.cpu,
        operator_cpu_percent: (s1.cpu - s0.cpu) / dt * 100.0,
        operator_rss_mib: mib(s1.rss),
        operator_peak_rss_mib: mib(s1.hwm),
    };
    say(
        t0,
        format!(
            "window done: operator {:?} requests ({:?} per cluster per 5 min), {reconciles} reconciles, {settled:?} settled",
            win.operator_requests, win.operator_per_cluster_per_5min
        ),
    );
    update(&|r| {
        r.window = Some(win.clone());
        r.loadavg_window_end = loadavg();
    });
    let (r, _) = ready(&client).await?;
    update(&|rep| rep.ready_after_window = r);

    drop(sampler);
    op.stop().await;
    let (warnings, samples) = scale::log_warnings(&log);
    update(&|r| {
        r.log_warnings = warnings;
        r.log_samples = samples.clone();
    });
    say(t0, "operator stopped; stopping the plane");
    plane.stop_capi();
    drop(plane);
    say(t0, "done");
    Ok(())
}

fn top(by: &BTreeMap<String, f64>, k: usize) -> String {
    let mut v: Vec<(&String, &f64)> = by.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let mut s: Vec<String> = v
        .iter()
        .take(k)
        .map(|(name, c)| format!("{name} {c:.0}"))
        .collect();
    if v.len() > k {
        let rest: f64 = v.iter().skip(k).map(|(_, c)| **c).sum();
        s.push(format!("others {rest:.0}"));
    }
    if s.is_empty() {
        "none".into()
    } else {
        s.join(", ")
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.prec$}"))
}

impl Report {
    /// The figures as text.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(format!(
            "operator-settled --clusters {} --tenants {} (started {}, load {})",
            self.clusters, self.tenants, self.started, self.loadavg_start
        ));
        line(format!("kaas binary: {}", self.kaas_bin));
        if let Some(why) = &self.incomplete {
            line(format!("INCOMPLETE: {why}"));
        }
        line(format!(
            "plane start {:.1} s; create {:.1} s; all Ready after {} s; operator requests to all Ready {} ({} reconciles)",
            self.plane_start_secs,
            self.create_secs,
            opt(self.all_ready_secs, 1),
            opt(self.to_ready_operator_requests, 0),
            self.to_ready_reconciles
        ));
        line(format!(
            "settle {:.0} s: operator requests {}, reconciles {}, settled reconciles {}",
            self.settle_secs,
            opt(self.settle_operator_requests, 0),
            self.settle_reconciles,
            opt(self.settle_settled_reconciles, 0)
        ));
        if let Some(w) = &self.window {
            line(format!(
                "window {:.0} s (load {} → {}):",
                w.secs, self.loadavg_window_start, self.loadavg_window_end
            ));
            line(format!(
                "  operator requests: {} = {} per cluster per 5 min",
                opt(w.operator_requests, 0),
                opt(w.operator_per_cluster_per_5min, 2)
            ));
            line(format!(
                "  operator requests by verb/resource: {}",
                top(&w.operator_requests_by, 6)
            ));
            line(format!(
                "  reconciles: {} ok, {} error; settled (no request): {}; requests per other reconcile: {}",
                w.reconciles_ok,
                w.reconciles_error,
                opt(w.settled_reconciles, 0),
                opt(w.requests_per_full_reconcile, 2)
            ));
            line(format!(
                "  operator CPU {:.2} s ({:.2} % of a core), RSS {:.0} MiB (peak {:.0} MiB)",
                w.operator_cpu_secs,
                w.operator_cpu_percent,
                w.operator_rss_mib,
                w.operator_peak_rss_mib
            ));
            line(format!(
                "  all clients (API server count, Cluster API managers included): {:.1} per cluster per 5 min; {}",
                w.all_clients_per_cluster_per_5min,
                top(&w.all_clients_by, 8)
            ));
        }
        line(format!(
            "Ready after the window: {}/{}; operator log {} ({} WARN/ERROR lines)",
            self.ready_after_window, self.clusters, self.operator_log, self.log_warnings
        ));
        for s in &self.log_samples {
            line(format!("  {s}"));
        }
        o
    }
}
