//! The plane: etcd, kube-apiserver, kube-controller-manager and (optionally) the Cluster API
//! managers, on free ports in one directory.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client, Config};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::apply::{FIELD_MANAGER, install_crds};
use crate::capi::{MANAGERS, ManagerPorts, component_crds, component_webhooks};
use crate::certs::{CertPair, Pki, service_account_keys};
use crate::locate::PlaneArtifacts;
use crate::process::{
    InMemoryLock, Mode, Proc, Spec, free_port, http_status, port_is_free, tail, tcp_open,
};

/// A user of the static token file (`--token-auth-file`), fixed at start.
#[derive(Clone, Debug)]
pub struct TokenUser {
    /// The bearer token.
    pub token: String,
    /// User name.
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct PlaneOptions {
    /// Install the Cluster API CRDs and webhook configurations.
    pub capi_crds: bool,
    /// Start the Cluster API managers (implies `capi_crds`).
    pub capi_managers: bool,
    /// Extra CRDs to install at start (e.g. `kaas_api::crds()`).
    pub crds: Vec<CustomResourceDefinition>,
    /// Static token users.
    pub token_users: Vec<TokenUser>,
    /// Use this build directory instead of locating one.
    pub plane_dir: Option<PathBuf>,
    /// Run `plane/build.sh` if the build is missing (long); otherwise fail with instructions.
    pub build_if_missing: bool,
    /// Bound of each readiness wait of etcd, kube-apiserver and kube-controller-manager.
    pub startup_timeout: Duration,
    /// Bound of the Cluster API managers' readiness wait.
    pub capi_startup_timeout: Duration,
    /// How long to wait for another plane's in-memory backend to go away (see [`Plane::start_capi`]).
    pub capi_lock_timeout: Duration,
    /// kube-controller-manager `--controllers`.
    pub controllers: Vec<String>,
    /// `--feature-gates` of the Cluster API managers.
    pub capi_feature_gates: String,
    /// Extra kube-apiserver flags.
    pub apiserver_args: Vec<String>,
}

impl Default for PlaneOptions {
    fn default() -> Self {
        Self {
            capi_crds: false,
            capi_managers: false,
            crds: Vec::new(),
            token_users: Vec::new(),
            plane_dir: None,
            build_if_missing: false,
            startup_timeout: Duration::from_secs(90),
            capi_startup_timeout: Duration::from_secs(180),
            capi_lock_timeout: Duration::from_secs(20 * 60),
            controllers: [
                "serviceaccount-token-controller",
                "serviceaccount-controller",
                "garbage-collector-controller",
                "namespace-controller",
                "root-ca-certificate-publisher-controller",
                "clusterrole-aggregation-controller",
            ]
            .map(String::from)
            .to_vec(),
            capi_feature_gates: "ClusterTopology=true".into(),
            apiserver_args: Vec::new(),
        }
    }
}

impl PlaneOptions {
    /// etcd, kube-apiserver and kube-controller-manager only (fast; for CRD tests).
    pub fn minimal() -> Self {
        Self::default()
    }

    /// Everything, with the Cluster API managers running.
    pub fn with_capi() -> Self {
        Self {
            capi_crds: true,
            capi_managers: true,
            ..Self::default()
        }
    }

    /// Cluster API CRDs and webhook configurations, managers not started
    /// ([`Plane::start_capi`] starts them later).
    pub fn capi_crds_only() -> Self {
        Self {
            capi_crds: true,
            ..Self::default()
        }
    }

    /// Adds CRDs to install at start.
    pub fn crds(mut self, crds: impl IntoIterator<Item = CustomResourceDefinition>) -> Self {
        self.crds.extend(crds);
        self
    }

    /// Adds a static token user.
    pub fn token_user(mut self, token: &str, name: &str, groups: &[&str]) -> Self {
        self.token_users.push(TokenUser {
            token: token.into(),
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        self
    }
}

/// Who a client or kubeconfig acts as.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    /// `kaas-admin` in `system:masters` (client certificate).
    Admin,
    /// A bearer token (static token user or ServiceAccount token).
    Token(&'a str),
    /// A client certificate for any user name and groups, signed by the plane's client CA.
    User {
        /// User name (certificate CN).
        name: &'a str,
        /// Groups (certificate O).
        groups: &'a [&'a str],
    },
}

/// The ports of a plane, all on 127.0.0.1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanePorts {
    /// etcd client URL port.
    pub etcd: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// kube-controller-manager secure port.
    pub controller_manager: u16,
    /// The Cluster API managers.
    pub managers: Vec<ManagerPorts>,
}

impl PlanePorts {
    fn allocate() -> Result<Self> {
        Ok(Self {
            etcd: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            controller_manager: free_port()?,
            managers: MANAGERS
                .iter()
                .map(|m| {
                    Ok(ManagerPorts {
                        name: m.name.into(),
                        webhook: free_port()?,
                        health: free_port()?,
                        metrics: free_port()?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    fn all(&self) -> Vec<u16> {
        let mut v = vec![
            self.etcd,
            self.etcd_peer,
            self.apiserver,
            self.controller_manager,
        ];
        for m in &self.managers {
            v.extend([m.webhook, m.health, m.metrics]);
        }
        v
    }

    fn manager(&self, name: &str) -> &ManagerPorts {
        self.managers
            .iter()
            .find(|m| m.name == name)
            .expect("ports of every manager")
    }
}

/// Where and how a plane runs.
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub tmp: Option<tempfile::TempDir>,
    pub mode: Mode,
    /// Reuse the CA, ServiceAccount key, etcd data and (if free) ports of an earlier run.
    pub persistent: bool,
}

/// A running plane. Dropping it kills every process it started (unless it was started detached
/// by [`crate::dev_up`]) and removes its temporary directory (kept if `KAAS_KEEP_PLANE=1`); if the
/// thread is panicking, the tails of all logs are printed first.
pub struct Plane {
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    mode: Mode,
    artifacts: PlaneArtifacts,
    pki: Pki,
    ports: PlanePorts,
    admin: CertPair,
    admin_token: String,
    opts: PlaneOptions,
    core: Mutex<Vec<Proc>>,
    capi: Mutex<Vec<Proc>>,
    capi_installed: AtomicBool,
    /// The machine-wide claim on the in-memory backend's ports, held from the first
    /// [`Plane::start_capi`] until the plane is dropped (the docker manager holds it too).
    capi_lock: tokio::sync::Mutex<Option<InMemoryLock>>,
    /// Each core process's binary and flags, for [`Plane::start_core`].
    core_args: Mutex<std::collections::BTreeMap<String, (String, Vec<String>)>>,
    startup: Duration,
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plane")
            .field("dir", &self.dir)
            .field("server", &self.server_url())
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(b64.trim())?)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn write(path: &Path, contents: &str) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

impl Plane {
    /// Starts a plane in a fresh temporary directory: etcd (`--unsafe-no-fsync`), kube-apiserver,
    /// kube-controller-manager, then the CRDs and, if asked, Cluster API. Every wait is bounded;
    /// errors carry the failing component's log tail.
    ///
    /// Ports are chosen free but not held until the component binds them, so a process of
    /// another test may take one in between ("address already in use"): such a start is
    /// retried with fresh ports, at most [`PORT_RETRIES`] times.
    pub async fn start(opts: PlaneOptions) -> Result<Plane> {
        let mut attempt = 1;
        loop {
            let tmp = tempfile::Builder::new().prefix("kaas-plane-").tempdir()?;
            let layout = Layout {
                dir: tmp.path().to_path_buf(),
                tmp: Some(tmp),
                mode: Mode::Attached,
                persistent: false,
            };
            match Self::launch(opts.clone(), layout).await {
                Err(e) if attempt < PORT_RETRIES && port_taken(&e) => {
                    eprintln!(
                        "[kaas-harness] a port was taken while the plane started, retrying with fresh ports: {e:#}"
                    );
                    attempt += 1;
                }
                res => return res,
            }
        }
    }

    pub(crate) async fn launch(mut opts: PlaneOptions, layout: Layout) -> Result<Plane> {
        let t0 = Instant::now();
        if opts.capi_managers {
            opts.capi_crds = true;
        }
        let artifacts = match &opts.plane_dir {
            Some(d) => PlaneArtifacts::at(d.clone())?,
            None => PlaneArtifacts::locate(opts.build_if_missing)?,
        };
        let dir = layout.dir.clone();
        std::fs::create_dir_all(dir.join("logs"))?;
        let pki_dir = dir.join("pki");

        // PKI: the CA and the ServiceAccount key survive restarts of a persistent plane.
        let pki = match (
            layout.persistent,
            std::fs::read_to_string(pki_dir.join("ca.crt")),
            std::fs::read_to_string(pki_dir.join("ca.key")),
        ) {
            (true, Ok(cert), Ok(key)) => Pki::load(cert, &key)?,
            _ => {
                let pki = Pki::generate()?;
                write(&pki_dir.join("ca.crt"), pki.ca_pem())?;
                write_private(&pki_dir.join("ca.key"), &pki.ca_key_pem())?;
                pki
            }
        };
        if !(layout.persistent
            && pki_dir.join("sa.key").is_file()
            && pki_dir.join("sa.pub").is_file())
        {
            let (key, public) = service_account_keys()?;
            write_private(&pki_dir.join("sa.key"), &key)?;
            write(&pki_dir.join("sa.pub"), &public)?;
        }
        let serving = pki.serving_cert(
            "kube-apiserver",
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )?;
        write(&pki_dir.join("apiserver.crt"), &serving.cert_pem)?;
        write_private(&pki_dir.join("apiserver.key"), &serving.key_pem)?;
        let webhook = pki.serving_cert("kaas-webhooks", &[])?;
        write(&pki_dir.join("webhook/tls.crt"), &webhook.cert_pem)?;
        write_private(&pki_dir.join("webhook/tls.key"), &webhook.key_pem)?;
        let admin = pki.client_cert("kaas-admin", &["system:masters"])?;
        let admin_token = random_hex(24)?;
        let mut tokens = format!("{admin_token},kaas-admin,kaas-admin,\"system:masters\"\n");
        for (i, u) in opts.token_users.iter().enumerate() {
            tokens.push_str(&format!(
                "{},{},kaas-user-{i},\"{}\"\n",
                u.token,
                u.name,
                u.groups.join(",")
            ));
        }
        write_private(&pki_dir.join("tokens.csv"), &tokens)?;

        // Ports: a persistent plane keeps its ports (and so its kubeconfig) when they are free.
        let ports_file = dir.join("ports.json");
        let ports = match std::fs::read(&ports_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<PlanePorts>(&b).ok())
        {
            Some(p) if layout.persistent && p.all().iter().all(|port| port_is_free(*port)) => p,
            _ => PlanePorts::allocate()?,
        };
        write(&ports_file, &serde_json::to_string_pretty(&ports)?)?;

        let mut plane = Plane {
            dir,
            tmp: layout.tmp,
            mode: layout.mode,
            artifacts,
            pki,
            ports,
            admin,
            admin_token,
            opts,
            core: Mutex::new(Vec::new()),
            capi: Mutex::new(Vec::new()),
            capi_installed: AtomicBool::new(false),
            capi_lock: tokio::sync::Mutex::new(None),
            core_args: Mutex::new(Default::default()),
            startup: Duration::ZERO,
        };
        write_private(
            &plane.kubeconfig_path(),
            &plane.kubeconfig_yaml(Identity::Admin)?,
        )?;
        match plane.boot(layout.persistent, t0).await {
            Ok(startup) => {
                plane.startup = startup;
                Ok(plane)
            }
            Err(e) => {
                // Stop what started (detached ones too) and keep the logs of the failed start.
                plane.kill_all();
                if let Some(tmp) = plane.tmp.take() {
                    let _ = std::fs::remove_dir_all(tmp.path().join("etcd"));
                    let _ = tmp.keep();
                }
                Err(e.context(format!(
                    "starting the management plane (logs kept in {}/logs)",
                    plane.dir.display()
                )))
            }
        }
    }

    async fn boot(&self, persistent: bool, t0: Instant) -> Result<Duration> {
        let o = &self.opts;
        let p = &self.ports;
        let pki = self.dir.join("pki");
        let pki_file = |f: &str| pki.join(f).display().to_string();

        // etcd
        let mut etcd_args = vec![
            "--name=default".to_string(),
            format!("--data-dir={}", self.dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{}", p.etcd),
            format!("--advertise-client-urls=http://127.0.0.1:{}", p.etcd),
            format!("--listen-peer-urls=http://127.0.0.1:{}", p.etcd_peer),
            format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                p.etcd_peer
            ),
            format!("--initial-cluster=default=http://127.0.0.1:{}", p.etcd_peer),
            "--log-level=warn".into(),
            "--quota-backend-bytes=8589934592".into(),
        ];
        if !persistent {
            etcd_args.push("--unsafe-no-fsync=true".into());
        }
        self.spawn_core("etcd", "etcd", etcd_args, vec![])?;
        let etcd_port = p.etcd;
        self.wait_for(
            "etcd /health",
            o.startup_timeout,
            &["etcd"],
            || async move {
                match http_status(etcd_port, "/health").await {
                    Some(200) => Ok(true),
                    s => Err(format!("GET /health: {s:?}")),
                }
            },
        )
        .await?;

        // kube-apiserver
        let mut api_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", p.etcd),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", p.apiserver),
            format!("--cert-dir={}", self.dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki_file("apiserver.crt")),
            format!("--tls-private-key-file={}", pki_file("apiserver.key")),
            format!("--client-ca-file={}", pki_file("ca.crt")),
            format!("--token-auth-file={}", pki_file("tokens.csv")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki_file("sa.pub")),
            format!("--service-account-signing-key-file={}", pki_file("sa.key")),
            "--authorization-mode=Node,RBAC".into(),
            "--allow-privileged=true".into(),
            // 127.0.0.1 cannot be an endpoint of the `kubernetes` Service.
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
        ];
        api_args.extend(o.apiserver_args.iter().cloned());
        self.spawn_core("kube-apiserver", "kube-apiserver", api_args, vec![])?;
        self.wait_apiserver_ready().await?;
        let client = self.client();

        // kube-controller-manager (its readiness is awaited after the CRDs are in).
        let kubeconfig = self.kubeconfig_path().display().to_string();
        let kcm_args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            format!("--controllers={}", o.controllers.join(",")),
            format!("--service-account-private-key-file={}", pki_file("sa.key")),
            format!("--root-ca-file={}", pki_file("ca.crt")),
            "--use-service-account-credentials=false".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", p.controller_manager),
            format!("--cert-dir={}", self.dir.join("kcm-certs").display()),
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
        ];
        self.spawn_core(
            "kube-controller-manager",
            "kube-controller-manager",
            kcm_args,
            vec![],
        )?;

        if !o.crds.is_empty() {
            install_crds(&client, &o.crds, o.startup_timeout).await?;
        }
        if o.capi_crds {
            self.install_capi().await?;
        }
        if o.capi_managers {
            self.start_capi().await?;
        }

        let kcm_port = p.controller_manager;
        if o.controllers
            .iter()
            .any(|c| c == "serviceaccount-controller")
        {
            // Functional readiness: the ServiceAccount controller made `default/default`.
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
            self.wait_for(
                "kube-controller-manager (default ServiceAccount)",
                o.startup_timeout,
                &["kube-controller-manager"],
                || {
                    let sas = sas.clone();
                    async move {
                        match sas.get_opt("default").await {
                            Ok(Some(_)) => Ok(true),
                            Ok(None) => Err("no ServiceAccount default/default yet".into()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                },
            )
            .await?;
        } else {
            self.wait_for(
                "kube-controller-manager port",
                o.startup_timeout,
                &["kube-controller-manager"],
                || async move { Ok(tcp_open(kcm_port).await) },
            )
            .await?;
        }
        Ok(t0.elapsed())
    }

    fn spawn(
        &self,
        name: &str,
        binary: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        inherit_fd: Option<i32>,
    ) -> Result<Proc> {
        let spec = Spec {
            name: name.into(),
            program: self.artifacts.bin(binary),
            args: args.into_iter().map(Into::into).collect(),
            env,
            log: self.dir.join("logs").join(format!("{name}.log")),
            inherit_fd,
        };
        let proc_ = Proc::spawn(&spec, self.mode)?;
        if self.mode == Mode::Detached {
            write(
                &self.dir.join("pids").join(format!("{name}.pid")),
                &format!("{}\n", proc_.pid),
            )?;
        }
        Ok(proc_)
    }

    fn spawn_core(
        &self,
        name: &str,
        binary: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<()> {
        if env.is_empty() {
            self.core_args
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.into(), (binary.into(), args.clone()));
        }
        let p = self.spawn(name, binary, args, env, None)?;
        self.core.lock().unwrap_or_else(|e| e.into_inner()).push(p);
        Ok(())
    }

    async fn wait_apiserver_ready(&self) -> Result<()> {
        let client = self.client();
        self.wait_for(
            "kube-apiserver /readyz",
            self.opts.startup_timeout,
            &["etcd", "kube-apiserver"],
            || {
                let client = client.clone();
                async move {
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .expect("request");
                    match client.request_text(req).await {
                        Ok(body) if body.trim() == "ok" => Ok(true),
                        Ok(body) => Err(body),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await
    }

    /// SIGKILLs kube-apiserver, leaving etcd and every other process running (fault injection).
    /// Returns whether it was running.
    pub fn kill_apiserver(&self) -> bool {
        self.kill_core("kube-apiserver")
    }

    /// Starts kube-apiserver again (after [`Plane::kill_apiserver`]) with the flags, port, and
    /// etcd of the first start, and waits until its `/readyz` answers `ok`.
    pub async fn start_apiserver(&self) -> Result<()> {
        self.start_core("kube-apiserver").await
    }

    /// SIGKILLs one core process (`etcd`, `kube-apiserver`, `kube-controller-manager`), leaving
    /// the others running (fault injection). Returns whether it was running.
    pub fn kill_core(&self, name: &str) -> bool {
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = core.iter().position(|p| p.name == name) else {
            return false;
        };
        let mut p = core.remove(i);
        let running = p.exited().is_none();
        p.stop(Duration::ZERO);
        running
    }

    /// Starts a core process again (after [`Plane::kill_core`]) with the flags, ports and data of
    /// its first start, and waits until it serves: etcd's `/health`, kube-apiserver's `/readyz`,
    /// kube-controller-manager's port.
    pub async fn start_core(&self, name: &str) -> Result<()> {
        let Some((binary, args)) = self
            .core_args
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
        else {
            bail!("{name} was never started by this plane");
        };
        if self
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|p| p.name == name)
        {
            bail!("{name} is running; kill it first");
        }
        self.spawn_core(name, &binary, args, vec![])?;
        let timeout = self.opts.startup_timeout;
        match name {
            "kube-apiserver" => self.wait_apiserver_ready().await,
            "etcd" => {
                let port = self.ports.etcd;
                self.wait_for("etcd /health", timeout, &["etcd"], || async move {
                    match http_status(port, "/health").await {
                        Some(200) => Ok(true),
                        s => Err(format!("GET /health: {s:?}")),
                    }
                })
                .await
            }
            _ => {
                let port = self.ports.controller_manager;
                self.wait_for(&format!("{name} port"), timeout, &[name], || async move {
                    Ok(tcp_open(port).await)
                })
                .await
            }
        }
    }

    /// Fails if one of the named processes has exited.
    fn check_alive(&self, names: &[&str]) -> Result<()> {
        for list in [&self.core, &self.capi] {
            let mut procs = list.lock().unwrap_or_else(|e| e.into_inner());
            for p in procs
                .iter_mut()
                .filter(|p| names.contains(&p.name.as_str()))
            {
                p.check_running()?;
            }
        }
        Ok(())
    }

    /// Polls `probe` until it reports ready, a watched process exits, or `timeout` passes.
    async fn wait_for<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        watch: &[&str],
        mut probe: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, String>>,
    {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        loop {
            self.check_alive(watch)
                .with_context(|| format!("waiting for {what}"))?;
            match probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e,
            }
            if start.elapsed() >= timeout {
                let mut msg = format!("{what}: not ready after {timeout:?} (last: {last})");
                for name in watch {
                    let log = self.dir.join("logs").join(format!("{name}.log"));
                    msg.push_str(&format!(
                        "\n--- last lines of {} ---\n{}",
                        log.display(),
                        tail(&log, 30)
                    ));
                }
                bail!(msg);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Installs the Cluster API CRDs (conversion pointed at the managers' ports) and the admission
    /// webhook configurations. Idempotent; [`Plane::start_capi`] calls it when needed.
    pub async fn install_capi(&self) -> Result<()> {
        let client = self.client();
        let mut crds = Vec::new();
        for m in &MANAGERS {
            let port = self.ports.manager(m.name).webhook;
            crds.extend(component_crds(
                &self.artifacts,
                m.component,
                port,
                self.pki.ca_pem(),
            )?);
        }
        install_crds(&client, &crds, self.opts.startup_timeout).await?;
        self.install_capi_webhooks().await?;
        self.capi_installed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// (Re)creates the Cluster API admission webhook configurations.
    pub async fn install_capi_webhooks(&self) -> Result<()> {
        let client = self.client();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for m in &MANAGERS {
            let port = self.ports.manager(m.name).webhook;
            for doc in component_webhooks(&self.artifacts, m.component, port, self.pki.ca_pem())? {
                let name = doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if doc["kind"] == "MutatingWebhookConfiguration" {
                    let obj: MutatingWebhookConfiguration = serde_json::from_value(doc)?;
                    Api::<MutatingWebhookConfiguration>::all(client.clone())
                        .patch(&name, &pp, &Patch::Apply(&obj))
                        .await?;
                } else {
                    let obj: ValidatingWebhookConfiguration = serde_json::from_value(doc)?;
                    Api::<ValidatingWebhookConfiguration>::all(client.clone())
                        .patch(&name, &pp, &Patch::Apply(&obj))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the Cluster API admission webhook configurations, so Cluster API objects can be
    /// written without validation/defaulting while the managers are stopped.
    pub async fn remove_capi_webhooks(&self) -> Result<()> {
        let client = self.client();
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=kaas-harness");
        let dp = DeleteParams::default();
        let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        m.delete_collection(&dp, &lp).await?;
        let v: Api<ValidatingWebhookConfiguration> = Api::all(client);
        v.delete_collection(&dp, &lp).await?;
        Ok(())
    }

    /// Starts the Cluster API managers (installing CRDs and webhooks first if needed) and waits
    /// until each one's `/readyz` (which includes its webhook server) answers.
    ///
    /// The Docker provider's in-memory backend listens on the fixed ports 19000 and 20000+, so only
    /// one plane per machine can run it: this waits (up to `capi_lock_timeout`) for a machine-wide
    /// lock, which the plane then keeps until it is dropped (across [`Plane::stop_capi`]) and the
    /// docker manager process keeps while it lives (so a detached dev plane holds it too).
    pub async fn start_capi(&self) -> Result<()> {
        if self.capi_running() {
            return Ok(());
        }
        if !self.capi_installed.load(Ordering::SeqCst) {
            self.install_capi().await?;
        }
        let mut lock = self.capi_lock.lock().await;
        if lock.is_none() {
            *lock = Some(InMemoryLock::acquire(self.opts.capi_lock_timeout).await?);
        }
        let lock_fd = lock.as_ref().map(InMemoryLock::raw_fd);
        {
            let mut capi = self.capi.lock().unwrap_or_else(|e| e.into_inner());
            capi.clear();
            for m in &MANAGERS {
                capi.push(self.spawn_manager(m, lock_fd)?);
            }
        }
        drop(lock);
        for m in &MANAGERS {
            self.wait_manager_ready(m).await?;
        }
        Ok(())
    }

    fn spawn_manager(&self, m: &crate::capi::Manager, lock_fd: Option<i32>) -> Result<Proc> {
        let kubeconfig = self.kubeconfig_path().display().to_string();
        let cert_dir = self.dir.join("pki/webhook").display().to_string();
        let ports = self.ports.manager(m.name);
        let args = vec![
            format!("--kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            format!("--webhook-port={}", ports.webhook),
            format!("--webhook-cert-dir={cert_dir}"),
            format!("--health-addr=127.0.0.1:{}", ports.health),
            format!("--diagnostics-address=127.0.0.1:{}", ports.metrics),
            "--insecure-diagnostics=true".into(),
            format!("--feature-gates={}", self.opts.capi_feature_gates),
        ];
        let mut env = vec![];
        let mut fd = None;
        if m.component == "docker" {
            env.push(("POD_IP".to_string(), "127.0.0.1".to_string()));
            fd = lock_fd;
        }
        self.spawn(m.name, m.binary, args, env, fd)
    }

    async fn wait_manager_ready(&self, m: &crate::capi::Manager) -> Result<()> {
        let health = self.ports.manager(m.name).health;
        self.wait_for(
            &format!("{} /readyz", m.name),
            self.opts.capi_startup_timeout,
            &[m.name],
            || async move {
                match http_status(health, "/readyz").await {
                    Some(200) => Ok(true),
                    s => Err(format!("GET /readyz: {s:?}")),
                }
            },
        )
        .await
    }

    /// SIGKILLs one Cluster API manager (`capi-core`, `capi-kubeadm-bootstrap`,
    /// `capi-kubeadm-control-plane`; not the in-memory backend, which holds the machine-wide
    /// lock), leaving the others running (fault injection). Returns whether it was running.
    pub fn kill_capi_manager(&self, name: &str) -> Result<bool> {
        if name == "capd-in-memory" {
            bail!("the in-memory backend's manager cannot be restarted on its own");
        }
        let mut capi = self.capi.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = capi.iter().position(|p| p.name == name) else {
            return Ok(false);
        };
        let mut p = capi.remove(i);
        let running = p.exited().is_none();
        p.stop(Duration::ZERO);
        Ok(running)
    }

    /// Starts a manager stopped by [`Plane::kill_capi_manager`] again with the same flags and
    /// ports, and waits until its `/readyz` answers.
    pub async fn start_capi_manager(&self, name: &str) -> Result<()> {
        let m = MANAGERS
            .iter()
            .find(|m| m.name == name && m.component != "docker")
            .with_context(|| format!("no restartable Cluster API manager {name:?}"))?;
        {
            let mut capi = self.capi.lock().unwrap_or_else(|e| e.into_inner());
            if capi.iter().any(|p| p.name == name) {
                bail!("{name} is running; kill it first");
            }
            capi.push(self.spawn_manager(m, None)?);
        }
        self.wait_manager_ready(m).await
    }

    /// Stops the Cluster API managers (the API server keeps running; their webhook
    /// configurations stay, see [`Plane::remove_capi_webhooks`]).
    pub fn stop_capi(&self) {
        let mut capi = self.capi.lock().unwrap_or_else(|e| e.into_inner());
        for p in capi.iter_mut().rev() {
            p.stop(Duration::from_secs(5));
            let _ = std::fs::remove_file(self.dir.join("pids").join(format!("{}.pid", p.name)));
        }
        capi.clear();
    }

    /// Whether all Cluster API managers run.
    pub fn capi_running(&self) -> bool {
        let mut capi = self.capi.lock().unwrap_or_else(|e| e.into_inner());
        capi.len() == MANAGERS.len() && capi.iter_mut().all(|p| p.exited().is_none())
    }

    /// The plane's directory (`logs/`, `pki/`, `kubeconfig`, `etcd/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The build used (binaries, CRDs, templates).
    pub fn artifacts(&self) -> &PlaneArtifacts {
        &self.artifacts
    }

    /// The ports.
    pub fn ports(&self) -> &PlanePorts {
        &self.ports
    }

    /// How long [`Plane::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }

    /// The CA (PEM) that signed the API server's and webhooks' serving certificates and that
    /// the API server trusts for client certificates.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// A static admin bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kubeconfig (YAML, credentials embedded) for an identity.
    pub fn kubeconfig_yaml(&self, who: Identity<'_>) -> Result<String> {
        let user = match who {
            Identity::Admin => json!({
                "client-certificate-data": b64(&self.admin.cert_pem),
                "client-key-data": b64(&self.admin.key_pem),
            }),
            Identity::Token(t) => json!({ "token": t }),
            Identity::User { name, groups } => {
                let c = self.pki.client_cert(name, groups)?;
                json!({ "client-certificate-data": b64(&c.cert_pem), "client-key-data": b64(&c.key_pem) })
            }
        };
        let kc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "kaas-local", "cluster": {
                "server": self.server_url(),
                "certificate-authority-data": b64(self.pki.ca_pem()),
            }}],
            "users": [{ "name": "kaas-user", "user": user }],
            "contexts": [{ "name": "kaas-local", "context": { "cluster": "kaas-local", "user": "kaas-user" } }],
            "current-context": "kaas-local",
        });
        Ok(serde_yaml::to_string(&kc)?)
    }

    /// Writes a kubeconfig for an identity to `path` (mode 0600).
    pub fn write_kubeconfig(&self, who: Identity<'_>, path: &Path) -> Result<()> {
        write_private(path, &self.kubeconfig_yaml(who)?)
    }

    /// A `kube::Config` for an identity (built from the same kubeconfig, without I/O).
    pub fn kube_config(&self, who: Identity<'_>) -> Result<Config> {
        let kc = Kubeconfig::from_yaml(&self.kubeconfig_yaml(who)?)?;
        let auth = kc
            .auth_infos
            .into_iter()
            .next()
            .and_then(|a| a.auth_info)
            .unwrap_or_default();
        let mut cfg = Config::new(self.server_url().parse()?);
        cfg.root_cert = Some(vec![pem_to_der(self.pki.ca_pem())?]);
        cfg.auth_info = auth;
        Ok(cfg)
    }

    /// A client for an identity.
    pub fn client_as(&self, who: Identity<'_>) -> Result<Client> {
        Ok(Client::try_from(self.kube_config(who)?)?)
    }

    /// An admin client. Each call makes a new client, so it is bound to the calling runtime.
    pub fn client(&self) -> Client {
        self.client_as(Identity::Admin)
            .expect("admin client for the plane")
    }

    /// A client with a bearer token.
    pub fn client_for_token(&self, token: &str) -> Result<Client> {
        self.client_as(Identity::Token(token))
    }

    /// A client with a client certificate for `name` in `groups`.
    pub fn client_for_user(&self, name: &str, groups: &[&str]) -> Result<Client> {
        self.client_as(Identity::User { name, groups })
    }

    /// A token of a ServiceAccount (created if missing), valid for an hour.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let sa =
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name } });
        sas.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&sa))
            .await?;
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let tr = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await?;
        tr.status
            .map(|s| s.token)
            .context("TokenRequest without status")
    }

    /// A client acting as a ServiceAccount (created if missing).
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        let token = self.service_account_token(namespace, name).await?;
        self.client_for_token(&token)
    }

    /// Names and pids of the running processes (e.g. for RSS measurements).
    pub fn pids(&self) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for list in [&self.core, &self.capi] {
            let mut procs = list.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                procs
                    .iter_mut()
                    .filter_map(|p| p.exited().is_none().then(|| (p.name.clone(), p.pid))),
            );
        }
        out
    }

    /// The last `lines` lines of every component's log.
    pub fn dump_logs(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("logs"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                log.display(),
                tail(&log, lines)
            ));
        }
        out
    }

    /// Stops everything now (what dropping does).
    pub fn stop(self) {}

    /// Kills every process at once (SIGKILL): managers first, then in reverse start order.
    fn kill_all(&self) {
        for list in [&self.capi, &self.core] {
            let mut procs = list.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(mut p) = procs.pop() {
                p.stop(Duration::ZERO);
                let _ = std::fs::remove_file(self.dir.join("pids").join(format!("{}.pid", p.name)));
            }
        }
    }
}

/// Starts of a plane tried before a port collision is an error.
pub const PORT_RETRIES: u32 = 3;

/// Whether a failed start failed because a port was taken by someone else.
fn port_taken(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("address already in use")
}

impl Drop for Plane {
    fn drop(&mut self) {
        if self.mode == Mode::Detached {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "[kaas-harness] a test failed; logs of the plane in {}:\n{}",
                self.dir.display(),
                self.dump_logs(40)
            );
        }
        // The data is thrown away, so nothing needs a graceful shutdown.
        self.kill_all();
        if let Some(tmp) = self.tmp.take()
            && std::env::var("KAAS_KEEP_PLANE").is_ok_and(|v| v == "1")
        {
            eprintln!("[kaas-harness] keeping {}", tmp.keep().display());
        }
    }
}
