//! `kaas dev up | down | env`: a local KaaS on this machine — the real management plane (etcd,
//! kube-apiserver, controller-manager, Cluster API with the in-memory backend), kaas installed,
//! the operator and the local control-plane runtime running, the hosted provider `local` and the
//! Cluster API provider `dev`, a demo tenant and a demo cluster (hosted: a real API server).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kaas_api::{Cluster, Provider};
use kaas_harness::{DevOptions, PlaneArtifacts, PlaneOptions};
use kaas_operator::install;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

const DEV_PROVIDER: &str = include_str!("../../../../examples/provider-inmemory.yaml");
const LOCAL_PROVIDER: &str = include_str!("../../../../examples/provider-local.yaml");
const DEMO_CLUSTER: &str = include_str!("../../../../examples/cluster-local.yaml");
const DEMO_TENANT: &str = "tenant-demo";
const DEMO_USER: &str = "demo";
const OPERATOR: &str = "kaas-operator";
const SERVE: &str = "kaas-serve";
const RUNTIME: &str = "kaas-hosted-runtime";

/// `kaas dev` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Dev {
    /// Start the local management plane, kaas and a demo cluster (idempotent).
    Up {
        /// Directory of the plane (default: $KAAS_DEV_DIR or ~/.local/state/kaas/dev).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Do not create the demo cluster.
        #[arg(long)]
        no_demo: bool,
        /// How long to wait for the demo cluster to become Ready.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
        /// Address of `kaas serve` (REST API and GUI).
        #[arg(long, default_value = "127.0.0.1:8443")]
        serve_addr: std::net::SocketAddr,
    },
    /// Stop everything `kaas dev up` started (data is kept).
    Down {
        /// Directory of the plane.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the shell lines to use the local plane (`eval "$(kaas dev env)"`).
    Env {
        /// Directory of the plane.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Act as the demo tenant instead of the admin.
        #[arg(long)]
        tenant: bool,
    },
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// Runs a `kaas dev` subcommand.
pub async fn run(cmd: Dev) -> Result<()> {
    match cmd {
        Dev::Up {
            dir,
            no_demo,
            timeout_seconds,
            serve_addr,
        } => {
            up(
                dir.unwrap_or_else(kaas_harness::default_dev_dir),
                !no_demo,
                Duration::from_secs(timeout_seconds),
                serve_addr,
            )
            .await
        }
        Dev::Down { dir } => {
            let dir = dir.unwrap_or_else(kaas_harness::default_dev_dir);
            stop_daemon(&dir, SERVE, "serve");
            stop_daemon(&dir, OPERATOR, "operator");
            stop_daemon(&dir, RUNTIME, "hosted-runtime");
            let workloads = kaas_hosted::stop_all(&hosted_dir(&dir)).await?;
            if !workloads.is_empty() {
                eprintln!(
                    "stopped: {} workload control-plane process(es)",
                    workloads.len()
                );
            }
            let stopped = kaas_harness::dev_down(&dir)?;
            eprintln!(
                "stopped: {}",
                if stopped.is_empty() {
                    "nothing was running".into()
                } else {
                    stopped.join(", ")
                }
            );
            Ok(())
        }
        Dev::Env { dir, tenant } => {
            let dir = dir.unwrap_or_else(kaas_harness::default_dev_dir);
            if tenant {
                let kc = dir.join("tenant-demo.kubeconfig");
                if !kc.is_file() {
                    bail!("no demo tenant in {} (run `kaas dev up`)", dir.display());
                }
                println!("export KUBECONFIG={}", kc.display());
            } else {
                print!("{}", kaas_harness::dev_env(&dir)?);
            }
            Ok(())
        }
    }
}

async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

async fn up(
    dir: PathBuf,
    demo: bool,
    timeout: Duration,
    serve_addr: std::net::SocketAddr,
) -> Result<()> {
    let t0 = Instant::now();
    step(
        "management plane: etcd, kube-apiserver, kube-controller-manager, Cluster API (in-memory backend)",
    );
    let status = kaas_harness::dev_up(DevOptions {
        dir: Some(dir.clone()),
        plane: PlaneOptions {
            build_if_missing: true,
            ..PlaneOptions::with_capi()
        }
        .crds(kaas_api::crds()),
    })
    .await
    .context("starting the management plane")?;
    if status.already_running {
        eprintln!("    already running ({})", status.server);
    } else {
        eprintln!(
            "    up in {:.1} s at {}",
            status.startup_ms as f64 / 1000.0,
            status.server
        );
    }
    let admin = client(&status.kubeconfig).await?;

    step("kaas: CRDs, deletion-protection policy, tenant roles");
    install::install_kaas(&admin).await?;
    step("provider `local`: hosted control planes (real API servers), simulated nodes (kwok)");
    let local: Provider = serde_yaml::from_str(LOCAL_PROVIDER)?;
    install::provider(&admin, &local, "").await?;
    step("provider `dev`: Cluster API with the upstream in-memory ClusterClass");
    let dev: Provider = serde_yaml::from_str(DEV_PROVIDER)?;
    let artifacts = PlaneArtifacts::locate(true)?;
    install::provider(
        &admin,
        &dev,
        &kaas_harness::in_memory_cluster_class(&artifacts)?,
    )
    .await?;
    step(
        "addon bundles of both providers (addons/build.sh: metrics-server, Gateway API with Envoy Gateway, ingress-nginx, cert-manager)",
    );
    match kaas_harness::addon_bundle_files() {
        Ok(files) => {
            for f in &files {
                let manifest = std::fs::read_to_string(f)?;
                for p in [&local, &dev] {
                    install::apply_manifests(&admin, &p.spec.backend.namespace, &manifest).await?;
                }
            }
            eprintln!("    {} ConfigMap(s) published per provider", files.len());
        }
        Err(e) => {
            eprintln!("    skipped: {e:#} (clusters get no extensions; ExtensionsReady says so)")
        }
    }
    step("tenant `tenant-demo` with ServiceAccount `demo`");
    let token = install::tenant_service_account(&admin, DEMO_TENANT, DEMO_USER).await?;
    let tenant_kubeconfig = dir.join("tenant-demo.kubeconfig");
    write_token_kubeconfig(&status.kubeconfig, &tenant_kubeconfig, &token)?;

    step("control-plane runtime `local` (kaas hosted-runtime)");
    let state = hosted_dir(&dir);
    let state_arg = state.to_string_lossy().into_owned();
    if let Some(pid) = start_daemon(
        &dir,
        RUNTIME,
        &["hosted-runtime", "--state-dir", &state_arg],
        &status.kubeconfig,
    )? {
        eprintln!("    pid {pid} (control planes in {state_arg})");
    }
    step("operator");
    if let Some(pid) = start_daemon(
        &dir,
        OPERATOR,
        &["operator", "--metrics-addr", "127.0.0.1:9090"],
        &status.kubeconfig,
    )? {
        eprintln!("    pid {pid} (metrics on 127.0.0.1:9090)");
    }
    step("kaas serve: REST API and web GUI (acting with each user's own token)");
    let serve_addr = serve_addr.to_string();
    if let Some(pid) = start_daemon(
        &dir,
        SERVE,
        &["serve", "--listen", &serve_addr],
        &status.kubeconfig,
    )? {
        eprintln!("    pid {pid} on {serve_addr}");
    }
    let token_file = dir.join("tenant-demo.token");
    std::fs::write(&token_file, &token)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))?;
    }

    if demo {
        step("demo cluster tenant-demo/demo on provider `local` (created as the tenant)");
        let tenant = client(&tenant_kubeconfig).await?;
        let api: Api<Cluster> = Api::namespaced(tenant, DEMO_TENANT);
        let cluster: Cluster = serde_yaml::from_str(DEMO_CLUSTER)?;
        if api.get_opt("demo").await?.is_none() {
            api.create(&PostParams::default(), &cluster).await?;
        }
        crate::wait::ready(&api, "demo", timeout).await?;
    }
    eprintln!("\nkaas is up in {:.0} s.\n", t0.elapsed().as_secs_f64());
    println!("# admin of the management cluster:");
    print!("{}", kaas_harness::dev_env(&dir)?);
    println!("# or act as the demo tenant (its RBAC: own clusters and kubeconfigs only):");
    println!("#   export KUBECONFIG={}", tenant_kubeconfig.display());
    println!("#   kubectl get clusters.scs.community -n {DEMO_TENANT}");
    println!("#   kubectl get providers");
    println!("# web GUI: http://{serve_addr}/ui/  (sign in with the demo tenant's token below)");
    println!("# REST API: http://{serve_addr}/api/v1  (OpenAPI: /api/v1/openapi.json)");
    println!(
        "#   curl -H \"Authorization: Bearer $(cat {})\" http://{serve_addr}/api/v1/namespaces/{DEMO_TENANT}/clusters",
        token_file.display()
    );
    println!("# demo tenant token ({}):", token_file.display());
    println!("#   {token}");
    println!(
        "# the demo cluster itself: kubectl get secret demo-kubeconfig -n {DEMO_TENANT} -o jsonpath='{{.data.value}}' | base64 -d > demo.kubeconfig"
    );
    println!(
        "# logs: {}, {} and {}",
        dir.join("logs/kaas-operator.log").display(),
        dir.join("logs/kaas-serve.log").display(),
        dir.join("logs/kaas-hosted-runtime.log").display()
    );
    println!("# stop: kaas dev down");
    Ok(())
}

fn write_token_kubeconfig(admin: &Path, out: &Path, token: &str) -> Result<()> {
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(admin)?)?;
    kc["users"][0]["user"] = serde_yaml::to_value(serde_json::json!({ "token": token }))?;
    std::fs::write(out, serde_yaml::to_string(&kc)?)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// State of the local control-plane runtime: one directory per hosted cluster.
fn hosted_dir(dir: &Path) -> PathBuf {
    dir.join("hosted")
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("pids").join(format!("{name}.pid"))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The pid of our daemon `name` (a `kaas <subcommand>` process), if it runs.
fn running(dir: &Path, name: &str, subcommand: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(dir, name))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (alive(pid) && String::from_utf8_lossy(&cmdline).contains(subcommand)).then_some(pid)
}

/// Starts `kaas <args>` detached from this command, logging to `logs/<name>.log`.
fn start_daemon(dir: &Path, name: &str, args: &[&str], kubeconfig: &Path) -> Result<Option<u32>> {
    if let Some(pid) = running(dir, name, args[0]) {
        eprintln!("    already running (pid {pid})");
        return Ok(None);
    }
    std::fs::create_dir_all(dir.join("pids"))?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("logs/{name}.log")))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon outlives this command.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting kaas {}", args[0]))?;
    std::fs::write(pid_file(dir, name), child.id().to_string())?;
    Ok(Some(child.id()))
}

fn stop_daemon(dir: &Path, name: &str, subcommand: &str) {
    if let Some(pid) = running(dir, name, subcommand) {
        // SAFETY: plain signal delivery to our own daemon process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        for _ in 0..100 {
            if !alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            // SAFETY: as above; it did not end within 10 s of SIGTERM.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        eprintln!("stopped: {name}");
    }
    let _ = std::fs::remove_file(pid_file(dir, name));
}
