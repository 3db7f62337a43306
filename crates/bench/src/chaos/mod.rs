//! `chaos`: fault injection on the real plane (etcd, kube-apiserver, kube-controller-manager and
//! the Cluster API managers with the in-memory backend, from `kaas-harness`), with the real
//! `kaas operator` and `kaas serve` binaries as their own processes.
//!
//! Each scenario injects one kind of fault while SCS Clusters are being realised, then checks the
//! invariants tenants rely on — every cluster converges to its spec (`Ready`, its version, its
//! machine count, no error left in its status), nothing is lost, duplicated or orphaned (Cluster
//! API objects, provider-side namespaces) — and reports how long recovery took. A violated
//! invariant or a timeout is an error; the figures are only printed (they go to `RELIABILITY.md`,
//! never into an assertion).

mod apiserver;
mod capi;
mod deletion;
mod etcd;
mod failover;
mod hosted;
mod kills;
mod plane;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kaas_api::{Cluster, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machine::Machine;
use kaas_harness::process::{Mode, Proc, Spec};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kaas_render::{LABEL_CLUSTER, LABEL_PROVIDER, LABEL_TENANT, capi_namespace};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROVIDER_YAML: &str = include_str!("../../../../examples/provider-inmemory.yaml");
const HOSTED_PROVIDER_YAML: &str = include_str!("../../../../examples/provider-local.yaml");
/// The provider every scenario uses (Cluster API, in-memory stack).
pub const PROVIDER: &str = "dev";
/// The initial version of every cluster, and what it resolves to.
pub const V1: (&str, &str) = ("1.35.x", "v1.35.4");
/// The version of upgrades.
pub const V2: (&str, &str) = ("1.36.x", "v1.36.3");
/// The worker pool's name.
pub const POOL: &str = "w";

/// The scenarios, in the order `all` runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// kube-apiserver SIGKILLed while clusters are being created, restarted on the same etcd.
    Apiserver,
    /// etcd paused (SIGSTOP) while clusters are being created and changed, then resumed.
    Etcd,
    /// Clusters deleted by their tenant while being created and while being upgraded.
    Delete,
    /// Clusters created, scaled, upgraded and deleted while the operator process is SIGKILLed
    /// at random moments and restarted.
    Kills,
    /// Two operator replicas with leader election; the leader SIGKILLed.
    Failover,
    /// Two operator replicas with leader election; the leader stopped (SIGSTOP) for longer than
    /// its lease while the standby takes over, then resumed: it must not write again.
    Pause,
    /// The Cluster API core manager SIGKILLed during upgrades, restarted after the fault.
    Capi,
    /// etcd SIGKILLed while clusters are created, kube-controller-manager SIGKILLed while a
    /// tenant's clusters are deleted; both restarted after the fault.
    Plane,
    /// Hosted control planes: the runtime SIGKILLed while creating, workload kube-apiserver and
    /// etcd SIGKILLed while scaling, operator and runtime SIGKILLed together while upgrading.
    Hosted,
    /// Every scenario, one after the other.
    All,
}

impl Scenario {
    /// The scenarios `self` stands for.
    pub fn expand(self) -> Vec<Scenario> {
        match self {
            Scenario::All => vec![
                Scenario::Apiserver,
                Scenario::Etcd,
                Scenario::Delete,
                Scenario::Kills,
                Scenario::Failover,
                Scenario::Pause,
                Scenario::Capi,
                Scenario::Plane,
                Scenario::Hosted,
            ],
            s => vec![s],
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Apiserver => "apiserver",
            Scenario::Etcd => "etcd",
            Scenario::Delete => "delete",
            Scenario::Kills => "kills",
            Scenario::Failover => "failover",
            Scenario::Pause => "pause",
            Scenario::Capi => "capi",
            Scenario::Plane => "plane",
            Scenario::Hosted => "hosted",
            Scenario::All => "all",
        }
    }
}

/// How a scenario runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// SCS Clusters the scenario works with.
    pub clusters: usize,
    /// The `kaas` binary (`kaas operator`, `kaas serve`).
    pub kaas_bin: PathBuf,
    /// How long the fault lasts (kube-apiserver down, etcd stopped, Cluster API core manager
    /// down).
    pub fault: Duration,
    /// Bound of every wait for convergence.
    pub converge_timeout: Duration,
    /// Keep the plane's and daemons' logs in this directory (default: a temporary one, removed).
    pub keep_logs: Option<PathBuf>,
    /// `kills`: how many times the operator is SIGKILLed.
    pub kills: usize,
    /// `kills`: the time between a restart and the next SIGKILL, uniform in this range.
    pub kill_every: (Duration, Duration),
    /// `kills`: the time between a SIGKILL and the restart, uniform in this range.
    pub restart_after: (Duration, Duration),
    /// `kills`: the seed of the random moments (0: from the clock).
    pub seed: u64,
}

impl Options {
    /// Small counts and a short fault, for CI.
    pub fn ci(kaas_bin: PathBuf) -> Self {
        Options {
            clusters: 2,
            kaas_bin,
            fault: Duration::from_secs(5),
            converge_timeout: Duration::from_secs(420),
            keep_logs: None,
            kills: 4,
            kill_every: (Duration::from_secs(2), Duration::from_secs(8)),
            restart_after: (Duration::from_millis(200), Duration::from_secs(2)),
            seed: 0,
        }
    }
}

/// What a scenario measured, in print order.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The scenario.
    pub scenario: String,
    /// (figure, value) pairs.
    pub figures: Vec<(String, String)>,
    /// Invariant counters (all must be 0 for a passed run; a non-zero one is also an error).
    pub counters: BTreeMap<String, usize>,
}

impl Outcome {
    fn new(s: Scenario) -> Self {
        Outcome {
            scenario: s.name().into(),
            ..Default::default()
        }
    }

    fn figure(&mut self, name: &str, value: impl std::fmt::Display) {
        let v = value.to_string();
        say(&format!("FIGURE {name}: {v}"));
        self.figures.push((name.into(), v));
    }

    fn secs(&mut self, name: &str, d: Duration) {
        self.figure(name, format!("{:.1} s", d.as_secs_f64()));
    }

    /// The figures as a markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### chaos {}\n\n| figure | value |\n|---|---|\n",
            self.scenario
        );
        for (k, v) in &self.figures {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        for (k, v) in &self.counters {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out
    }
}

/// Runs one scenario on a plane of its own.
pub async fn run(scenario: Scenario, opts: &Options) -> Result<Outcome> {
    match scenario {
        Scenario::Apiserver => apiserver::run(opts).await,
        Scenario::Etcd => etcd::run(opts).await,
        Scenario::Delete => deletion::run(opts).await,
        Scenario::Kills => kills::run(opts).await,
        Scenario::Failover => failover::run(opts, failover::Fault::Kill).await,
        Scenario::Pause => failover::run(opts, failover::Fault::Pause).await,
        Scenario::Capi => capi::run(opts).await,
        Scenario::Plane => plane::run(opts).await,
        Scenario::Hosted => hosted::run(opts).await,
        Scenario::All => bail!("run each scenario of `all` on its own"),
    }
}

fn say(msg: &str) {
    eprintln!(
        "[chaos {}] {msg}",
        jiff::Timestamp::now().strftime("%H:%M:%S%.3f")
    );
}

/// A `kaas` subcommand as its own process (own process group, SIGKILLed with the plane's
/// children when this process dies).
pub struct Daemon {
    proc_: Proc,
    /// Its first pid (a restart makes a new `Daemon`).
    pub pid: i32,
    /// Its log.
    pub log: PathBuf,
    /// The port it listens on (the operator's metrics, the server's API).
    pub port: u16,
    /// An operator's replica identity (`POD_NAME`, in its Lease and its User-Agent).
    pub identity: String,
}

impl Daemon {
    fn start(
        bin: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
        port: u16,
    ) -> Result<Daemon> {
        let spec = Spec {
            name: args.first().cloned().unwrap_or_default(),
            program: bin.to_path_buf(),
            args: args.iter().map(Into::into).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: log.clone(),
            inherit_fd: None,
        };
        let proc_ = Proc::spawn(&spec, Mode::Attached)?;
        Ok(Daemon {
            pid: proc_.pid,
            proc_,
            log,
            port,
            identity: String::new(),
        })
    }

    /// SIGKILL (the whole process group), then reaped.
    pub fn kill(&mut self) {
        self.proc_.stop(Duration::ZERO);
    }

    /// Fails (with the log's tail) if the process has exited.
    pub fn alive(&mut self) -> Result<()> {
        if let Some(st) = self.proc_.exited() {
            bail!(
                "{} (pid {}) exited ({st}); last lines of {}:\n{}",
                self.proc_.name,
                self.pid,
                self.log.display(),
                kaas_harness::process::tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// Sends a signal to the process (SIGSTOP, SIGCONT, …).
    pub fn signal(&self, sig: i32) -> Result<()> {
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(self.pid, sig) } != 0 {
            bail!(
                "kill({}, {sig}): {}",
                self.pid,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Its exit status once it has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.proc_.exited().map(|s| s.to_string())
    }

    /// Lines of its log containing WARN or ERROR.
    pub fn warnings(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes only (reads would dwarf them), metadata level: who, what, when, the response code.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
";

/// One write the API server answered, from its audit log.
#[derive(Clone, Debug)]
pub struct AuditedWrite {
    /// The client's User-Agent (the operator's names its replica).
    pub user_agent: String,
    /// `create`, `update`, `patch`, …
    pub verb: String,
    /// `resource[/subresource] namespace/name`.
    pub object: String,
    /// When the API server received it.
    pub received: jiff::Timestamp,
    /// The response code.
    pub code: u16,
}

/// Every write in an audit log whose User-Agent contains `agent`.
pub fn audit_writes(log: &Path, agent: &str) -> Result<Vec<AuditedWrite>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("{}", log.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.contains(agent)) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let ua = v["userAgent"].as_str().unwrap_or_default();
        if !ua.contains(agent) || v["stage"] != "ResponseComplete" {
            continue;
        }
        let o = &v["objectRef"];
        let s = |k: &str| o[k].as_str().unwrap_or_default().to_string();
        let sub = s("subresource");
        out.push(AuditedWrite {
            user_agent: ua.into(),
            verb: v["verb"].as_str().unwrap_or_default().into(),
            object: format!(
                "{}{}{} {}/{}",
                s("resource"),
                if sub.is_empty() { "" } else { "/" },
                sub,
                s("namespace"),
                s("name")
            ),
            received: v["requestReceivedTimestamp"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("audit event without a time: {line}"))?,
            code: v["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        });
    }
    Ok(out)
}

/// A plane with kaas installed and the `dev` provider, plus the `kaas` binary to run daemons.
pub struct Env {
    /// The plane.
    pub plane: Plane,
    /// Admin client.
    pub admin: Client,
    /// Admin kubeconfig file (for the daemons).
    pub kubeconfig: PathBuf,
    /// The API server's audit log of writes (JSON lines).
    pub audit_log: PathBuf,
    /// Logs of the daemons.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    bin: PathBuf,
    operators: std::sync::atomic::AtomicUsize,
}

impl Env {
    /// Starts the plane with the Cluster API managers, installs kaas and the `dev` provider
    /// (without addon bundles: the in-memory workload clusters are not the subject here).
    pub async fn start(opts: &Options) -> Result<Env> {
        Env::start_with(opts, false).await
    }

    /// Starts the plane without Cluster API, installs kaas and the hosted provider `local` with
    /// the dev providers' addon bundles (addons/build.sh): the workload clusters are real API
    /// servers, run by `kaas hosted-runtime` ([`Env::runtime`]).
    pub async fn start_hosted(opts: &Options) -> Result<Env> {
        Env::start_with(opts, true).await
    }

    async fn start_with(opts: &Options, hosted: bool) -> Result<Env> {
        if !opts.kaas_bin.is_file() {
            bail!(
                "{} does not exist: build it first (cargo build -p kaas) or pass --kaas-bin",
                opts.kaas_bin.display()
            );
        }
        let (tmp, dir) = match &opts.keep_logs {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("kaas-chaos-").tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        // Every accepted or refused write, with who sent it (`userAgent`), for the invariants
        // about writers (see `audit_writes`).
        let audit_log = dir.join("audit.log");
        let policy = dir.join("audit-policy.yaml");
        std::fs::write(&policy, AUDIT_POLICY)?;
        let mut po = if hosted {
            PlaneOptions::minimal()
        } else {
            PlaneOptions::with_capi()
        }
        .crds(kaas_api::crds());
        po.apiserver_args.extend([
            format!("--audit-policy-file={}", policy.display()),
            format!("--audit-log-path={}", audit_log.display()),
            "--audit-log-format=json".into(),
        ]);
        let t0 = Instant::now();
        let plane = Plane::start(po).await.context("starting the plane")?;
        let admin = plane.client();
        install::install_kaas(&admin).await?;
        if hosted {
            let provider: Provider = serde_yaml::from_str(HOSTED_PROVIDER_YAML)?;
            install::provider(&admin, &provider, "").await?;
            for f in kaas_harness::addon_bundle_files()? {
                install::apply_manifests(
                    &admin,
                    &provider.spec.backend.namespace,
                    &std::fs::read_to_string(&f)?,
                )
                .await?;
            }
        } else {
            let mut provider: Provider = serde_yaml::from_str(PROVIDER_YAML)?;
            for v in &mut provider.spec.kubernetes_versions {
                v.stack.addons = None;
            }
            let class = kaas_harness::in_memory_cluster_class(plane.artifacts())?;
            install::provider(&admin, &provider, &class).await?;
        }
        let kubeconfig = dir.join("admin.kubeconfig");
        plane.write_kubeconfig(Identity::Admin, &kubeconfig)?;
        say(&format!(
            "plane with {} and kaas up in {:.1?} (logs: {})",
            if hosted {
                "the hosted provider"
            } else {
                "Cluster API"
            },
            t0.elapsed(),
            plane.dir().display()
        ));
        Ok(Env {
            plane,
            admin,
            kubeconfig,
            audit_log,
            dir,
            _tmp: tmp,
            bin: opts.kaas_bin.clone(),
            operators: Default::default(),
        })
    }

    /// `kaas operator` as its own process; the orphan collector's grace period is 5 s, so
    /// leftovers are collected within the scenario.
    pub fn operator(&self, extra: &[&str]) -> Result<Daemon> {
        let n = 1 + self
            .operators
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = kaas_harness::process::free_port()?;
        let mut args = vec![
            "operator".to_string(),
            format!("--metrics-addr=127.0.0.1:{port}"),
            "--concurrency=8".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let kc = self.kubeconfig.display().to_string();
        let identity = format!("operator-{n}");
        let mut d = Daemon::start(
            &self.bin,
            &args,
            &[
                ("KUBECONFIG", &kc),
                ("POD_NAME", &identity),
                ("KAAS_LOG", "info,kube=warn"),
                (kaas_operator::orphans::GRACE_ENV, "5"),
            ],
            self.dir.join(format!("operator-{n}.log")),
            port,
        )?;
        d.identity = identity;
        Ok(d)
    }

    /// `kaas hosted-runtime` as its own process, with its state in `state` (its control planes
    /// are detached: they outlive it and are adopted by the next one).
    pub fn runtime(&self, state: &Path) -> Result<Daemon> {
        let n = 1 + self
            .operators
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let args = vec![
            "hosted-runtime".to_string(),
            format!("--state-dir={}", state.display()),
            format!("--kubeconfig={}", self.kubeconfig.display()),
        ];
        Daemon::start(
            &self.bin,
            &args,
            &[("KAAS_LOG", "info,kube=warn")],
            self.dir.join(format!("runtime-{n}.log")),
            0,
        )
    }

    /// `kaas serve` as its own process; returns it and its port.
    pub fn serve(&self) -> Result<(Daemon, u16)> {
        let port = kaas_harness::process::free_port()?;
        let args = vec![
            "serve".to_string(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--kubeconfig={}", self.kubeconfig.display()),
        ];
        let d = Daemon::start(
            &self.bin,
            &args,
            &[("KAAS_LOG", "info,kube=warn")],
            self.dir.join("serve.log"),
            port,
        )?;
        Ok((d, port))
    }

    /// A tenant namespace with a ServiceAccount of the tenant role; returns its token.
    pub async fn tenant(&self, ns: &str) -> Result<String> {
        Ok(install::tenant_service_account(&self.admin, ns, "chaos").await?)
    }
}

/// The SCS Cluster every scenario creates: 1 control-plane node and `workers` workers.
pub fn scs_cluster(ns: &str, name: &str, version: &str, workers: i32) -> Result<Cluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "provider": {"name": PROVIDER},
            "kubernetes": {"version": version},
            "controlPlane": {"replicas": 1},
            "workers": [{"name": POOL, "count": workers}],
        },
    }))?)
}

/// Creates an SCS Cluster (retrying transport errors; an existing one is fine).
pub async fn create(client: &Client, c: &Cluster) -> Result<()> {
    let ns = c.namespace().unwrap_or_default();
    let api: Api<Cluster> = Api::namespaced(client.clone(), &ns);
    retry(&format!("creating {ns}/{}", c.name_any()), || async {
        match api.create(&PostParams::default(), c).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Merge-patches an SCS Cluster's spec (retrying transport errors).
pub async fn patch_spec(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let api: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let patch = json!({ "spec": spec });
    retry(&format!("patching {ns}/{name}"), || async {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    })
    .await
}

/// Deletes an SCS Cluster (retrying transport errors; a missing one is fine).
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<()> {
    let api: Api<Cluster> = Api::namespaced(client.clone(), ns);
    retry(&format!("deleting {ns}/{name}"), || async {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Retries an API call for up to two minutes while it fails (faults make calls fail; the
/// scenario's client keeps trying, as a tenant's would).
async fn retry<F, Fut>(what: &str, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), f()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(kube::Error::Api(e))) if e.code < 500 && e.code != 429 => {
                bail!("{what}: {e}")
            }
            Ok(Err(e)) if start.elapsed() > Duration::from_secs(120) => bail!("{what}: {e}"),
            Err(_) if start.elapsed() > Duration::from_secs(120) => {
                bail!("{what}: no answer within 20 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// What a cluster must end as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Ready with this version (`v1.35.4`) and this many workers (and one control-plane node).
    Ready {
        /// `status.kubernetesVersion`.
        version: String,
        /// Workers.
        workers: usize,
    },
    /// Gone: the SCS Cluster, its Cluster API objects and machines.
    Gone,
}

/// (tenant, name) → what it must end as.
pub type Expected = BTreeMap<(String, String), Expect>;

/// Condition types that must be True on a converged cluster.
const MUST_BE_TRUE: &[&str] = &[
    kaas_api::conditions::SPEC_ACCEPTED,
    kaas_api::conditions::INFRASTRUCTURE_READY,
    kaas_api::conditions::CONTROL_PLANE_READY,
    kaas_api::conditions::WORKERS_READY,
    kaas_api::conditions::VERSION_CURRENT,
    kaas_api::conditions::READY,
];

/// Words of a transport or storage error that must not stay in a converged cluster's status.
pub(crate) const FAULT_WORDS: &[&str] = &[
    "connection refused",
    "connection reset",
    "error trying to connect",
    "timed out",
    "timeout",
    "etcdserver",
    "service unavailable",
    "broken pipe",
];

/// The invariants, checked once; `Err` says what does not hold yet.
pub async fn check(admin: &Client, expected: &Expected) -> Result<(), String> {
    let e = |e: kube::Error| e.to_string();
    let mut problems = Vec::new();
    let capi_all: Vec<CapiCluster> = Api::<CapiCluster>::all(admin.clone())
        .list(&ListParams::default().labels(LABEL_CLUSTER))
        .await
        .map_err(e)?
        .items;
    let machines: Vec<Machine> = Api::<Machine>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .map_err(e)?
        .items;
    let scs_all: Vec<Cluster> = Api::<Cluster>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .map_err(e)?
        .items;
    let tenants: BTreeSet<&String> = expected.keys().map(|(t, _)| t).collect();
    for ((tenant, name), want) in expected {
        let side = capi_namespace(PROVIDER, tenant);
        let scs = scs_all
            .iter()
            .find(|c| c.namespace().as_deref() == Some(tenant.as_str()) && &c.name_any() == name)
            .cloned();
        // Every Cluster API Cluster labelled for this SCS Cluster, wherever it is.
        let capi: Vec<&CapiCluster> = capi_all
            .iter()
            .filter(|c| {
                c.labels().get(LABEL_CLUSTER) == Some(name)
                    && c.labels().get(LABEL_TENANT) == Some(tenant)
            })
            .collect();
        let ms: Vec<&Machine> = machines
            .iter()
            .filter(|m| {
                m.namespace().as_deref() == Some(side.as_str())
                    && m.labels().get("cluster.x-k8s.io/cluster-name") == Some(name)
            })
            .collect();
        let id = format!("{tenant}/{name}");
        match want {
            Expect::Gone => {
                if scs.is_some() {
                    problems.push(format!("{id}: SCS Cluster still exists"));
                }
                if !capi.is_empty() {
                    problems.push(format!("{id}: {} Cluster API Cluster(s) left", capi.len()));
                }
                if !ms.is_empty() {
                    problems.push(format!("{id}: {} Machine(s) left", ms.len()));
                }
            }
            Expect::Ready { version, workers } => {
                let Some(c) = scs else {
                    problems.push(format!("{id}: LOST (no SCS Cluster)"));
                    continue;
                };
                if capi.len() != 1 {
                    problems.push(format!(
                        "{id}: {} Cluster API Clusters (want 1)",
                        capi.len()
                    ));
                } else if capi[0].namespace().as_deref() != Some(side.as_str()) {
                    problems.push(format!(
                        "{id}: Cluster API Cluster in {:?}, not {side}",
                        capi[0].namespace()
                    ));
                }
                let st = c.status.clone().unwrap_or_default();
                if st.observed_generation != c.metadata.generation {
                    problems.push(format!(
                        "{id}: status of generation {:?}, spec at {:?}",
                        st.observed_generation, c.metadata.generation
                    ));
                }
                for t in MUST_BE_TRUE {
                    if !kaas_api::conditions::is_true(&st.conditions, t) {
                        let got = kaas_api::conditions::get(&st.conditions, t)
                            .map(|x| format!("{} {}: {}", x.status, x.reason, x.message))
                            .unwrap_or_else(|| "missing".into());
                        problems.push(format!("{id}: {t} not True ({got})"));
                    }
                }
                for x in &st.conditions {
                    let text = format!("{} {}", x.reason, x.message).to_lowercase();
                    if x.type_ == kaas_api::conditions::STALLED && x.status == "True" {
                        problems.push(format!("{id}: Stalled: {}", x.message));
                    }
                    if let Some(w) = FAULT_WORDS.iter().find(|w| text.contains(*w)) {
                        problems.push(format!(
                            "{id}: condition {} still mentions {w:?}: {}",
                            x.type_, x.message
                        ));
                    }
                }
                if st.phase != Some(kaas_api::cluster::ClusterPhase::Ready) {
                    problems.push(format!("{id}: phase {:?}", st.phase));
                }
                if st.kubernetes_version.as_deref() != Some(version.as_str()) {
                    problems.push(format!(
                        "{id}: version {:?}, want {version}",
                        st.kubernetes_version
                    ));
                }
                let running = |cp: bool| {
                    ms.iter()
                        .filter(|m| m.labels().contains_key("cluster.x-k8s.io/control-plane") == cp)
                        .filter(|m| m.metadata.deletion_timestamp.is_none())
                        .filter(|m| m.spec.version.as_deref() == Some(version.as_str()))
                        .count()
                };
                let (cps, ws) = (running(true), running(false));
                if cps != 1 || ws != *workers || ms.len() != 1 + workers {
                    problems.push(format!(
                        "{id}: machines: {cps} control plane + {ws} workers at {version}, {} in all (want 1 + {workers})",
                        ms.len()
                    ));
                }
            }
        }
    }
    // Orphans: Cluster API Clusters of kaas whose SCS Cluster is not expected to exist.
    for c in &capi_all {
        let key = (
            c.labels().get(LABEL_TENANT).cloned().unwrap_or_default(),
            c.labels().get(LABEL_CLUSTER).cloned().unwrap_or_default(),
        );
        if !matches!(expected.get(&key), Some(Expect::Ready { .. })) && tenants.contains(&key.0) {
            problems.push(format!(
                "ORPHAN Cluster API Cluster {}/{} (for {}/{})",
                c.namespace().unwrap_or_default(),
                c.name_any(),
                key.0,
                key.1
            ));
        }
    }
    // Provider-side namespaces: one per tenant that still has a cluster, none for the others.
    let nss = Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default().labels(&format!("{LABEL_TENANT},{LABEL_PROVIDER}={PROVIDER}")))
        .await
        .map_err(e)?
        .items;
    for t in &tenants {
        let has_cluster = expected
            .iter()
            .any(|((tt, _), w)| tt == *t && matches!(w, Expect::Ready { .. }));
        let side: Vec<&Namespace> = nss
            .iter()
            .filter(|n| n.labels().get(LABEL_TENANT) == Some(*t))
            .collect();
        match (has_cluster, side.len()) {
            (true, 1) | (false, 0) => {}
            (true, n) => {
                problems.push(format!("tenant {t}: {n} provider-side namespaces (want 1)"))
            }
            (false, _) => problems.push(format!(
                "ORPHAN provider-side namespace(s) of tenant {t}: {}",
                side.iter()
                    .map(|n| n.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Polls [`check`] until it holds; returns how long that took. Fails with the last problems
/// after `timeout`.
pub async fn converge(admin: &Client, expected: &Expected, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), check(admin, expected)).await {
            Ok(Ok(())) => return Ok(start.elapsed()),
            Ok(Err(p)) => {
                if p != last {
                    say(&format!("not converged: {}", clip(&p, 600)));
                }
                last = p;
            }
            Err(_) => {
                last = "the checks' reads did not answer within 120 s".into();
                say(&last);
            }
        }
        if start.elapsed() > timeout {
            bail!("INVARIANT: not converged within {timeout:?}: {last}");
        }
        // Each check lists every Cluster API Cluster and Machine: not too often at scale.
        let pause = if expected.len() > 20 { 5 } else { 1 };
        tokio::time::sleep(Duration::from_secs(pause)).await;
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Waits until `n` Cluster API Clusters of kaas exist (the operator is mid-work).
pub async fn until_capi_clusters(admin: &Client, n: usize, timeout: Duration) -> Result<Duration> {
    let api: Api<CapiCluster> = Api::all(admin.clone());
    let start = Instant::now();
    loop {
        if let Ok(l) = api.list(&ListParams::default().labels(LABEL_CLUSTER)).await
            && l.items.len() >= n
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("fewer than {n} Cluster API Clusters after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` on 127.0.0.1:`port` with a bearer token: the status code, None if no answer.
pub async fn http_get(port: u16, path: &str, token: &str) -> Option<u16> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(10), probe)
        .await
        .ok()
        .flatten()
}

/// Polls `GET path` through `kaas serve` until it answers 200; returns how long that took.
pub async fn until_serve_ok(
    port: u16,
    path: &str,
    token: &str,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let last = match http_get(port, path, token).await {
            Some(200) => return Ok(start.elapsed()),
            s => s,
        };
        if start.elapsed() > timeout {
            bail!("kaas serve: GET {path} not 200 within {timeout:?} (last: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the API server until a read succeeds; returns how long that took.
pub async fn until_api(admin: &Client, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let api: Api<Namespace> = Api::all(admin.clone());
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), api.get("default")).await {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("the API server did not answer within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pid of a plane process by name.
pub fn plane_pid(plane: &Plane, name: &str) -> Option<i32> {
    plane
        .pids()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
}

/// Checks that the plane's processes listed at the start are all still the same ones.
pub fn same_processes(plane: &Plane, before: &[(String, i32)], except: &[&str]) -> Result<()> {
    let now = plane.pids();
    for (name, pid) in before {
        if except.contains(&name.as_str()) {
            continue;
        }
        if !now.iter().any(|(n, p)| n == name && p == pid) {
            bail!("INVARIANT: {name} (pid {pid}) is no longer running");
        }
    }
    Ok(())
}
