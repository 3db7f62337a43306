//! `operator-scale`: the kaas operator at N clusters against a real plane.
//!
//! 1. A plane with the Cluster API CRDs but not its managers (webhooks removed: nothing reconciles
//!    Cluster API objects), kaas and the `dev` provider installed, tenant namespaces.
//! 2. The real `kaas operator` binary as a child process; N SCS Clusters created at once; watches
//!    time every Cluster API Cluster's appearance and every status; `/proc` gives RSS and CPU;
//!    then a quiet window (steady-state cost) and spec changes at a fixed pace (latency to the
//!    topology change).
//! 3. The baseline: a bare client writes the very objects the operator writes (rendered
//!    beforehand) for N clusters in fresh tenants, with the operator's concurrency.
//! 4. Optionally the Cluster API managers at the same count, for their memory.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kaas_api::cluster::ClusterStatus;
use kaas_api::conditions as c;
use kaas_api::{Cluster, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_harness::{Plane, PlaneOptions};
use kaas_operator::install;
use kaas_render::{LABEL_CLUSTER, LABEL_TENANT, capi_namespace};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::probe::{self, Sampler};
use crate::report::{Baseline, CapiRun, Idle, Latency, OperatorRun, Report, mib};

pub(crate) const PROVIDER_YAML: &str = include_str!("../../../examples/provider-inmemory.yaml");
pub(crate) const PROVIDER: &str = "dev";
const POOL: &str = "w";
const INITIAL_COUNT: i32 = 2;
const CHANGED_COUNT: i32 = 3;
const BASELINE_MANAGER: &str = "kaas-bench-baseline";

/// Flags of `operator-scale`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// SCS Clusters to create.
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// Tenants (namespaces) they are spread over.
    #[arg(long, default_value_t = 10)]
    pub tenants: usize,
    /// `kaas operator --concurrency`; also the baseline's requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// SCS Cluster creations in flight.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Spec changes for the latency measurement (0: skip).
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    /// Milliseconds between two spec changes.
    #[arg(long, default_value_t = 200)]
    pub latency_interval_ms: u64,
    /// How long to wait for the last spec change's topology change, seconds.
    #[arg(long, default_value_t = 120)]
    pub latency_wait_secs: u64,
    /// Quiet window after convergence to measure the steady-state cost, seconds (0: skip).
    #[arg(long, default_value_t = 30)]
    pub idle_secs: u64,
    /// Also start the Cluster API managers at the same count and sample their memory.
    #[arg(long)]
    pub with_capi: bool,
    /// How long the Cluster API managers run (after they are ready), seconds.
    #[arg(long, default_value_t = 120)]
    pub capi_secs: u64,
    /// The `kaas` binary (default: target/release/kaas of this workspace).
    #[arg(long)]
    pub kaas_bin: Option<PathBuf>,
    /// Bound of the whole run, seconds; on expiry everything is stopped and the partial figures
    /// are printed.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Also print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Leaves out the admission policy that sets kaas' finalizer when a Cluster is created (as on
    /// Kubernetes before 1.36): the operator then adds it with a PATCH per new cluster.
    #[arg(long)]
    pub without_finalizer_policy: bool,
}

pub(crate) type Key = (String, String);

pub(crate) fn say(t0: Instant, msg: impl AsRef<str>) {
    eprintln!(
        "[kaas-bench {:>7.1}s] {}",
        t0.elapsed().as_secs_f64(),
        msg.as_ref()
    );
}

fn update(report: &Arc<Mutex<Report>>, f: impl FnOnce(&mut Report)) {
    f(&mut report.lock().unwrap_or_else(|e| e.into_inner()));
}

/// The `kaas` binary: `given`, else target/release/kaas of this workspace.
pub(crate) fn kaas_bin(given: Option<&PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .or_else(|| kaas_harness::repo_root().map(|r| r.join("target")))
                .context("cannot find the workspace; pass --kaas-bin")?;
            target.join("release/kaas")
        }
    };
    if !path.is_file() {
        bail!(
            "{} does not exist: build the operator first (cargo build --release -p kaas) or pass --kaas-bin",
            path.display()
        );
    }
    Ok(path)
}

fn scs_cluster(name: &str, ns: &str, count: i32) -> Result<Cluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"provider": {"name": PROVIDER}, "workers": [{"name": POOL, "count": count}]},
    }))?)
}

/// `prefix-t00`…; clusters `c0000`… spread round-robin.
pub(crate) fn layout(prefix: &str, tenants: usize, clusters: usize) -> Vec<Key> {
    let width = clusters.saturating_sub(1).to_string().len().max(4);
    (0..clusters)
        .map(|i| {
            (
                format!("{prefix}-t{:02}", i % tenants),
                format!("c{i:0width$}"),
            )
        })
        .collect()
}

/// Polls `check` every 100 ms until it returns `Some`, or fails at `deadline`.
async fn until<T>(
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not reached before the deadline");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the watch on Cluster API Clusters saw.
#[derive(Default)]
struct CapiSeen {
    first: HashMap<Key, Instant>,
    replicas: HashMap<Key, i32>,
    /// Spec changes waiting for their topology change: target replicas, time of the patch.
    pending: HashMap<Key, (i32, Instant)>,
    latencies: Vec<Duration>,
}

fn worker_replicas(c: &CapiCluster) -> i32 {
    c.spec
        .topology
        .as_ref()
        .and_then(|t| t.workers.as_ref())
        .and_then(|w| w.machine_deployments.as_ref())
        .map(|mds| mds.iter().filter_map(|m| m.replicas).sum())
        .unwrap_or(0)
}

/// What the watch on SCS Clusters saw.
#[derive(Default)]
struct ScsSeen {
    done: HashMap<Key, Instant>,
    rejected: BTreeSet<Key>,
}

fn watch_capi(
    client: Client,
    prefix: String,
    seen: Arc<Mutex<CapiSeen>>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let api: Api<CapiCluster> = Api::all(client);
        let mut stream =
            pin!(watcher(api, watcher::Config::default().labels(LABEL_CLUSTER)).default_backoff());
        let mut tx = Some(tx);
        while let Some(ev) = stream.next().await {
            let obj = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                _ => continue,
            };
            let now = Instant::now();
            let labels = obj.labels();
            let (Some(tenant), Some(name)) = (labels.get(LABEL_TENANT), labels.get(LABEL_CLUSTER))
            else {
                continue;
            };
            if !tenant.starts_with(&prefix) {
                continue;
            }
            let key = (tenant.clone(), name.clone());
            let replicas = worker_replicas(&obj);
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            s.first.entry(key.clone()).or_insert(now);
            s.replicas.insert(key.clone(), replicas);
            if let Some((target, sent)) = s.pending.get(&key).copied()
                && replicas == target
            {
                s.pending.remove(&key);
                s.latencies.push(now.duration_since(sent));
            }
        }
    });
    (task, rx)
}

fn watch_scs(
    client: Client,
    prefix: String,
    seen: Arc<Mutex<ScsSeen>>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let api: Api<Cluster> = Api::all(client);
        let mut stream = pin!(watcher(api, watcher::Config::default()).default_backoff());
        let mut tx = Some(tx);
        while let Some(ev) = stream.next().await {
            let obj = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                _ => continue,
            };
            let now = Instant::now();
            let ns = obj.namespace().unwrap_or_default();
            if !ns.starts_with(&prefix) {
                continue;
            }
            let Some(st) = obj.status.as_ref() else {
                continue;
            };
            if st.observed_generation != obj.metadata.generation {
                continue;
            }
            let key = (ns, obj.name_any());
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            match c::get(&st.conditions, c::SPEC_ACCEPTED).map(|x| x.status.as_str()) {
                Some("True") => {
                    s.done.entry(key).or_insert(now);
                }
                Some(_) => {
                    s.rejected.insert(key);
                }
                None => {}
            }
        }
    });
    (task, rx)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The operator as a child process.
pub(crate) struct Operator {
    child: tokio::process::Child,
    pub(crate) pid: i32,
    pub(crate) port: u16,
    log: PathBuf,
}

impl Operator {
    pub(crate) fn spawn(
        bin: &PathBuf,
        kubeconfig: &std::path::Path,
        concurrency: u16,
        log: PathBuf,
    ) -> Result<Self> {
        let port = free_port()?;
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args([
            "operator".to_string(),
            format!("--metrics-addr=127.0.0.1:{port}"),
            format!("--concurrency={concurrency}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("KAAS_LOG", "info,kube=warn")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; the child dies with this process's thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("operator exited at once")? as i32;
        Ok(Operator {
            child,
            pid,
            port,
            log,
        })
    }

    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "the operator exited ({st}); log {}:\n{}",
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if probe::http_get(self.port, "/readyz").await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("the operator's /readyz did not answer within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (ok, error) reconciles so far.
    async fn reconciles(&self) -> Result<(f64, f64)> {
        let text = probe::http_get(self.port, "/metrics").await?;
        let name = "kaas_operator_reconciles_total";
        Ok((
            probe::counter(&text, name, &[("result", "ok")]),
            probe::counter(&text, name, &[("result", "error")]),
        ))
    }

    /// The operator's own API requests without WATCH (`kaas_api_requests_total`) and the sum and
    /// count of its requests per reconcile; `None` for an operator without those metrics.
    async fn api_requests(&self) -> Option<(f64, f64, f64)> {
        let text = probe::http_get(self.port, "/metrics").await.ok()?;
        if !text.contains("kaas_api_requests_total") {
            return None;
        }
        let name = "kaas_api_requests_total";
        let all = probe::counter(&text, name, &[]);
        let watch = probe::counter(&text, name, &[("verb", "WATCH")]);
        Some((
            all - watch,
            probe::counter(&text, "kaas_api_requests_per_reconcile_sum", &[]),
            probe::counter(&text, "kaas_api_requests_per_reconcile_count", &[]),
        ))
    }

    pub(crate) fn alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!("the operator exited ({st}); see {}", self.log.display());
        }
        Ok(())
    }

    pub(crate) async fn stop(mut self) {
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub(crate) fn log_warnings(log: &std::path::Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    let mut samples: Vec<String> = Vec::new();
    for l in &lines {
        // Drop the timestamp so repeated messages collapse.
        let body: String = l
            .split_once("Z ")
            .map_or(*l, |(_, b)| b)
            .chars()
            .take(300)
            .collect();
        let head: String = body.chars().take(60).collect();
        if samples.len() < 5 && !samples.iter().any(|s| s.starts_with(&head)) {
            samples.push(body);
        }
    }
    (lines.len(), samples)
}

async fn create_all(client: &Client, keys: &[Key], in_flight: usize) -> Result<()> {
    futures::stream::iter(keys.iter().cloned())
        .map(|(ns, name)| {
            let client = client.clone();
            async move {
                let c = scs_cluster(&name, &ns, INITIAL_COUNT)?;
                Api::<Cluster>::namespaced(client, &ns)
                    .create(&PostParams::default(), &c)
                    .await
                    .with_context(|| format!("creating {ns}/{name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

pub(crate) async fn tenants(client: &Client, prefix: &str, n: usize) -> Result<()> {
    for t in 0..n {
        install::namespace(
            client,
            &format!("{prefix}-t{t:02}"),
            &[("scs.community/tenant", "true")],
        )
        .await?;
    }
    Ok(())
}

/// Runs the benchmark, filling `report` as the phases complete.
pub async fn run(args: Args, report: Arc<Mutex<Report>>) -> Result<()> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout_secs);
    let remaining = || deadline.saturating_duration_since(Instant::now());
    anyhow::ensure!(
        args.clusters > 0 && args.tenants > 0,
        "--clusters and --tenants must be > 0"
    );
    let bin = kaas_bin(args.kaas_bin.as_ref())?;
    let logs = std::env::temp_dir().join(format!("kaas-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;

    // 1. The plane.
    say(t0, "starting the plane (Cluster API CRDs, no managers)");
    let mut opts = PlaneOptions::capi_crds_only().crds(kaas_api::crds());
    opts.capi_lock_timeout = Duration::from_secs(300).min(remaining());
    let plane = Plane::start(opts).await?;
    plane.remove_capi_webhooks().await?;
    let client = plane.client();
    install::install_kaas(&client).await?;
    if args.without_finalizer_policy {
        without_finalizer_policy(&client).await?;
    }
    let provider: Provider = serde_yaml::from_str(PROVIDER_YAML)?;
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts())?;
    install::provider(&client, &provider, &class).await?;
    tenants(&client, "op", args.tenants).await?;
    let plane_secs = t0.elapsed().as_secs_f64();
    update(&report, |r| r.plane_start_secs = plane_secs);
    say(t0, format!("plane ready ({})", plane.dir().display()));

    // 2. The operator run.
    let capi_seen = Arc::new(Mutex::new(CapiSeen::default()));
    let scs_seen = Arc::new(Mutex::new(ScsSeen::default()));
    let (capi_watch, capi_ready) = watch_capi(client.clone(), "op-".into(), capi_seen.clone());
    let (scs_watch, scs_ready) = watch_scs(client.clone(), "op-".into(), scs_seen.clone());
    tokio::time::timeout(Duration::from_secs(60), async {
        let _ = capi_ready.await;
        let _ = scs_ready.await;
    })
    .await
    .context("watches did not start")?;

    let log = logs.join(format!("operator-{}.log", args.clusters));
    let mut op = Operator::spawn(
        &bin,
        &plane.kubeconfig_path(),
        args.concurrency,
        log.clone(),
    )?;
    op.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sampler = Sampler::start(op.pid, Duration::from_millis(250));
    let idle = sampler.now();
    let mut run = OperatorRun {
        log: log.display().to_string(),
        rss_idle_mib: mib(idle.rss),
        ..Default::default()
    };
    say(
        t0,
        format!(
            "operator pid {} running (RSS {:.0} MiB); creating {} clusters in {} tenants",
            op.pid, run.rss_idle_mib, args.clusters, args.tenants
        ),
    );
    let keys = layout("op", args.tenants, args.clusters);
    let n = keys.len();
    let req0 = probe::apiserver_requests(&client).await?;
    let own0 = op.api_requests().await;
    let start = Instant::now();
    create_all(&client, &keys, args.in_flight).await?;
    run.create_secs = start.elapsed().as_secs_f64();
    say(
        t0,
        format!("created {n} SCS Clusters in {:.1} s", run.create_secs),
    );
    update(&report, |r| r.operator = Some(run.clone()));

    let progress = |what: &str| {
        let (w, s, rej) = {
            let c = capi_seen.lock().unwrap_or_else(|e| e.into_inner());
            let sc = scs_seen.lock().unwrap_or_else(|e| e.into_inner());
            (c.first.len(), sc.done.len(), sc.rejected.len())
        };
        format!("{what}: {w}/{n} Cluster API Clusters, {s}/{n} statuses, {rej} rejected")
    };
    let mut last_say = Instant::now();
    let written = until(deadline, "all Cluster API Clusters written", || {
        if last_say.elapsed() > Duration::from_secs(10) {
            say(t0, progress("waiting"));
            last_say = Instant::now();
        }
        let s = capi_seen.lock().unwrap_or_else(|e| e.into_inner());
        (s.first.len() >= n).then(|| s.first.values().max().copied())?
    })
    .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            run.written = capi_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first
                .len();
            update(&report, |r| r.operator = Some(run.clone()));
            return Err(e);
        }
    };
    run.all_written_secs = Some(written.duration_since(start).as_secs_f64());
    run.written = n;
    say(
        t0,
        format!(
            "all Cluster API Clusters written after {:.1} s",
            run.all_written_secs.unwrap_or_default()
        ),
    );
    update(&report, |r| r.operator = Some(run.clone()));
    let status_done = until(deadline, "all statuses written", || {
        if last_say.elapsed() > Duration::from_secs(10) {
            say(t0, progress("waiting"));
            last_say = Instant::now();
        }
        let s = scs_seen.lock().unwrap_or_else(|e| e.into_inner());
        (s.done.len() >= n).then(|| s.done.values().max().copied())?
    })
    .await;
    let at_status = sampler.now();
    let reconciles = op.reconciles().await.ok();
    let req1 = probe::apiserver_requests(&client).await?;
    let own1 = op.api_requests().await;
    {
        let s = scs_seen.lock().unwrap_or_else(|e| e.into_inner());
        run.with_status = s.done.len();
        run.rejected = s.rejected.len();
    }
    let status_done = match status_done {
        Ok(t) => t,
        Err(e) => {
            update(&report, |r| r.operator = Some(run.clone()));
            return Err(e);
        }
    };
    run.all_status_secs = Some(status_done.duration_since(start).as_secs_f64());
    run.cpu_to_status_secs = Some(at_status.cpu);
    run.rss_at_status_mib = Some(mib(at_status.rss));
    run.reconciles_to_status = reconciles;
    run.requests_to_status = probe::delta(&req0, &req1);
    if let (Some(a), Some(b)) = (own0, own1) {
        let reconciles = (b.2 - a.2).max(1.0);
        run.operator_requests_to_status = Some((b.0 - a.0, (b.1 - a.1) / reconciles));
    }
    say(
        t0,
        format!(
            "all statuses written after {:.1} s; operator RSS {:.0} MiB, CPU {:.1} s, reconciles {:?}",
            run.all_status_secs.unwrap_or_default(),
            mib(at_status.rss),
            at_status.cpu,
            reconciles
        ),
    );
    update(&report, |r| r.operator = Some(run.clone()));

    // Steady state: nothing changes; whatever the operator does now is its fixed cost.
    if args.idle_secs > 0 {
        let secs = Duration::from_secs(args.idle_secs).min(remaining());
        say(t0, format!("steady state for {} s", secs.as_secs()));
        let (r0, s0, q0) = (
            op.reconciles().await?,
            sampler.now(),
            probe::apiserver_requests(&client).await?,
        );
        let own0 = op.api_requests().await;
        let w0 = Instant::now();
        tokio::time::sleep(secs).await;
        let (r1, s1, q1) = (
            op.reconciles().await?,
            sampler.now(),
            probe::apiserver_requests(&client).await?,
        );
        let own1 = op.api_requests().await;
        let dt = w0.elapsed().as_secs_f64();
        let per_sec = probe::delta(&q0, &q1)
            .into_iter()
            .map(|(k, v)| (k, v / dt))
            .collect();
        let idle = Idle {
            secs: dt,
            reconciles_per_sec: (r1.0 + r1.1 - r0.0 - r0.1) / dt,
            cpu_percent: (s1.cpu - s0.cpu) / dt * 100.0,
            requests_per_sec: per_sec,
            operator_requests_per_sec: own0.zip(own1).map(|(a, b)| (b.0 - a.0) / dt),
            clusters: n,
        };
        say(
            t0,
            format!(
                "steady state: {:.1} reconciles/s, operator CPU {:.0} %",
                idle.reconciles_per_sec, idle.cpu_percent
            ),
        );
        run.idle = Some(idle);
        update(&report, |r| r.operator = Some(run.clone()));
    }

    // Spec-change latency: one patch at a time at a fixed pace, timed to the topology change.
    let m = args.latency_samples.min(n);
    if m > 0 {
        say(
            t0,
            format!(
                "spec changes: {m}, one every {} ms",
                args.latency_interval_ms
            ),
        );
        let r0 = op.reconciles().await?;
        let interval = Duration::from_millis(args.latency_interval_ms.max(1));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let body = json!({"spec": {"workers": [{"name": POOL, "count": CHANGED_COUNT}]}});
        for i in 0..m {
            tick.tick().await;
            let (ns, name) = keys[i * n / m].clone();
            capi_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending
                .insert((ns.clone(), name.clone()), (CHANGED_COUNT, Instant::now()));
            Api::<Cluster>::namespaced(client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .with_context(|| format!("patching {ns}/{name}"))?;
        }
        let wait = Duration::from_secs(args.latency_wait_secs).min(remaining());
        let _ = until(Instant::now() + wait, "topology changes", || {
            capi_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending
                .is_empty()
                .then_some(())
        })
        .await;
        let r1 = op.reconciles().await?;
        let mut ms: Vec<f64> = capi_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let lat = Latency {
            sent: m,
            observed: ms.len(),
            interval_ms: interval.as_millis() as u64,
            p50_ms: probe::percentile(&ms, 50.0),
            p95_ms: probe::percentile(&ms, 95.0),
            p99_ms: probe::percentile(&ms, 99.0),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
            reconciles: r1.0 + r1.1 - r0.0 - r0.1,
        };
        say(
            t0,
            format!(
                "latency: {}/{} observed, p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                lat.observed, lat.sent, lat.p50_ms, lat.p95_ms, lat.p99_ms, lat.max_ms
            ),
        );
        run.latency = Some(lat);
    }
    op.alive()?;
    let end = sampler.now();
    run.peak_rss_mib = mib(end.hwm);
    run.cpu_total_secs = end.cpu;
    run.reconciles_total = op.reconciles().await.unwrap_or_default();
    for (name, pid) in plane.pids() {
        if let Some(s) = probe::sample(pid) {
            run.plane.insert(name, (mib(s.hwm), mib(s.rss), s.cpu));
        }
    }
    drop(sampler);
    op.stop().await;
    capi_watch.abort();
    scs_watch.abort();
    let mut written: HashMap<Key, ClusterStatus> = Api::<Cluster>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| Some(((c.namespace()?, c.name_any()), c.status?)))
        .collect();
    let statuses: Vec<Option<ClusterStatus>> = keys.iter().map(|k| written.remove(k)).collect();
    (run.log_warnings, run.log_samples) = log_warnings(&log);
    say(
        t0,
        format!(
            "operator stopped: peak RSS {:.0} MiB, CPU {:.1} s, {} WARN/ERROR log lines",
            run.peak_rss_mib, run.cpu_total_secs, run.log_warnings
        ),
    );
    update(&report, |r| r.operator = Some(run.clone()));

    // 3. The baseline: the same objects written by a bare client.
    let baseline = baseline(&client, &args, &statuses, t0).await?;
    update(&report, |r| r.baseline = Some(baseline));

    // 4. Cluster API at the same count.
    if args.with_capi {
        let capi = cluster_api(&plane, &client, &args, t0, deadline).await?;
        update(&report, |r| r.capi = Some(capi));
    }
    say(t0, "done");
    Ok(())
}

/// Deletes the binding of the policy that sets kaas' finalizer at creation and waits until the API
/// server no longer applies it.
async fn without_finalizer_policy(client: &Client) -> Result<()> {
    let probe = scs_cluster("finalizer-probe", "default", INITIAL_COUNT)?;
    if !install::without_finalizer_at_creation(client, &probe).await? {
        bail!("the finalizer policy was still applied 30 s after its binding was deleted");
    }
    Ok(())
}

/// The baseline: render beforehand, then time only the writes (namespace + Cluster API Cluster
/// server-side applies, then the status), `--concurrency` requests in flight.
async fn baseline(
    client: &Client,
    args: &Args,
    statuses: &[Option<ClusterStatus>],
    t0: Instant,
) -> Result<Baseline> {
    say(t0, "baseline: bare client, same objects, fresh tenants");
    // No operator runs now to release a finalizer, and `--with-capi` deletes the baseline's
    // namespaces: its Clusters are created without one, as a bare client writes them.
    if !args.without_finalizer_policy {
        without_finalizer_policy(client).await?;
    }
    tenants(client, "base", args.tenants).await?;
    let keys = layout("base", args.tenants, args.clusters);
    let mut b = Baseline::default();
    let start = Instant::now();
    create_all(client, &keys, args.in_flight).await?;
    b.create_secs = start.elapsed().as_secs_f64();

    let provider: Provider = Api::all(client.clone()).get(PROVIDER).await?;
    let mut created = Vec::with_capacity(keys.len());
    for (ns, name) in &keys {
        created.push(
            Api::<Cluster>::namespaced(client.clone(), ns)
                .get(name)
                .await?,
        );
    }
    let start = Instant::now();
    let mut objects = Vec::with_capacity(created.len());
    for (i, cluster) in created.iter().enumerate() {
        let resolved = kaas_validate::validate(cluster, &provider)
            .map_err(|e| anyhow::anyhow!("baseline cluster invalid: {e}"))?;
        let rendered = kaas_render::render(cluster, &resolved)?;
        // The very status the operator wrote for the cluster at the same position, for this
        // cluster's generation.
        let mut st = statuses
            .get(i)
            .cloned()
            .flatten()
            .context("the operator run left no status to copy")?;
        let generation = cluster.metadata.generation;
        st.observed_generation = generation;
        for cond in &mut st.conditions {
            cond.observed_generation = generation;
        }
        let body = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "status": st});
        objects.push((
            cluster.namespace().unwrap_or_default(),
            cluster.name_any(),
            rendered,
            body,
        ));
    }
    b.render_secs = start.elapsed().as_secs_f64();

    let pp = PatchParams::apply(BASELINE_MANAGER).force();
    let c = usize::from(args.concurrency.max(1));
    let start = Instant::now();
    futures::stream::iter(objects.iter())
        .map(|(_, _, rendered, _)| {
            let (client, pp) = (client.clone(), pp.clone());
            async move {
                Api::<Namespace>::all(client.clone())
                    .patch(
                        &rendered.namespace.name_any(),
                        &pp,
                        &Patch::Apply(&rendered.namespace),
                    )
                    .await?;
                let capi = &rendered.cluster;
                Api::<CapiCluster>::namespaced(client, &capi.namespace().unwrap_or_default())
                    .patch(&capi.name_any(), &pp, &Patch::Apply(capi))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(c)
        .try_collect::<Vec<_>>()
        .await?;
    b.written_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    futures::stream::iter(objects.iter())
        .map(|(ns, name, _, body)| {
            let (client, pp) = (client.clone(), pp.clone());
            async move {
                Api::<Cluster>::namespaced(client, ns)
                    .patch_status(name, &pp, &Patch::Apply(body))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(c)
        .try_collect::<Vec<_>>()
        .await?;
    b.status_secs = start.elapsed().as_secs_f64();
    b.writes_secs = b.written_secs + b.status_secs;
    say(
        t0,
        format!(
            "baseline: create {:.1} s, render {:.3} s, ns+CAPI SSA {:.1} s, status {:.1} s",
            b.create_secs, b.render_secs, b.written_secs, b.status_secs
        ),
    );
    Ok(b)
}

/// The Cluster API managers at the same count: the baseline's objects are deleted first, then
/// the managers run for `--capi-secs` and their memory is sampled.
/// Retries a request that failed on the transport (the API server under the Cluster API managers'
/// load may drop a connection: "connection closed before message completed").
async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(e)) => return Err(anyhow::anyhow!("{what}: {e}")),
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("{what}: {e}; retrying ({attempt}/5)");
                tokio::time::sleep(Duration::from_secs(2 * attempt)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{what}: {e}")),
        }
    }
}

async fn cluster_api(
    plane: &Plane,
    client: &Client,
    args: &Args,
    t0: Instant,
    deadline: Instant,
) -> Result<CapiRun> {
    let mut out = CapiRun::default();
    say(
        t0,
        "Cluster API: deleting the baseline's namespaces (to keep N clusters)",
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut gone: Vec<String> = Vec::new();
    for t in 0..args.tenants {
        let tenant = format!("base-t{t:02}");
        for ns in [capi_namespace(PROVIDER, &tenant), tenant] {
            let _ = nss.delete(&ns, &DeleteParams::background()).await;
            gone.push(ns);
        }
    }
    let wait_until = Instant::now() + Duration::from_secs(600);
    loop {
        let mut left = 0;
        for ns in &gone {
            if retry("reading a namespace", || nss.get_opt(ns))
                .await?
                .is_some()
            {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() > wait_until.min(deadline) {
            out.note = Some(format!("{left} baseline namespaces were still terminating"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    say(
        t0,
        "Cluster API: starting the managers (webhooks reinstalled)",
    );
    plane.install_capi_webhooks().await?;
    let start = Instant::now();
    plane.start_capi().await?;
    out.start_secs = start.elapsed().as_secs_f64();
    let managers: Vec<(String, i32)> = plane
        .pids()
        .into_iter()
        .filter(|(n, _)| n.starts_with("capi") || n.starts_with("capd"))
        .collect();
    let samplers: Vec<(String, Sampler)> = managers
        .iter()
        .map(|(n, pid)| (n.clone(), Sampler::start(*pid, Duration::from_millis(500))))
        .collect();
    let run_for = Duration::from_secs(args.capi_secs).min(
        deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_secs(30)),
    );
    say(
        t0,
        format!("Cluster API: running for {} s", run_for.as_secs()),
    );
    let started = Instant::now();
    let mut last_say = Instant::now();
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if last_say.elapsed() > Duration::from_secs(30) {
            let core = samplers
                .iter()
                .find(|(n, _)| n == "capi-core")
                .map(|(_, s)| s.now());
            say(
                t0,
                format!(
                    "Cluster API: core RSS {:.0} MiB",
                    core.map_or(0.0, |s| mib(s.rss))
                ),
            );
            last_say = Instant::now();
        }
    }
    out.ran_secs = started.elapsed().as_secs_f64();
    for (name, s) in &samplers {
        let v = s.now();
        out.managers
            .insert(name.clone(), (mib(v.hwm), mib(v.rss), v.cpu));
    }
    drop(samplers);
    // Stop the managers before reading their results: under their load the API server answers a
    // list of N Cluster API Clusters slower than its own request timeout (60 s).
    plane.stop_capi();
    let capi_clusters = Api::<CapiCluster>::all(client.clone());
    let by_label = ListParams::default().labels(LABEL_CLUSTER).limit(10_000);
    let clusters = retry("listing Cluster API Clusters", || {
        capi_clusters.list(&by_label)
    })
    .await?
    .items;
    out.clusters = clusters.len();
    let conds = |c: &CapiCluster| {
        c.status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    out.with_status = clusters.iter().filter(|c| !conds(c).is_empty()).count();
    out.topology_reconciled = clusters
        .iter()
        .filter(|c| {
            conds(c)
                .iter()
                .any(|x| x.type_ == "TopologyReconciled" && x.status == "True")
        })
        .count();
    let mds = Api::<MachineDeployment>::all(client.clone());
    let all = ListParams::default();
    out.machine_deployments = retry("listing MachineDeployments", || mds.list(&all))
        .await?
        .items
        .len();
    say(
        t0,
        format!(
            "Cluster API: {} clusters, {} with conditions, {} topology reconciled, {} MachineDeployments; core {:?}",
            out.clusters,
            out.with_status,
            out.topology_reconciled,
            out.machine_deployments,
            out.managers.get("capi-core")
        ),
    );
    Ok(out)
}
