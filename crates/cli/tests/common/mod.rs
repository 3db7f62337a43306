//! What the end-to-end tests of the `kaas` binary share: `kaas` daemons as their own processes,
//! the hosted runtime's state directory cleaned up also when a test fails, polling with a
//! deadline, and the workload cluster's client from the tenant's kubeconfig copy.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A `kaas` subcommand running as its own process; SIGKILLed when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `kaas ARGS` with `kubeconfig`, its output appended to `log`; `env` is added to
    /// its environment.
    pub fn start(args: &[&str], kubeconfig: &Path, log: PathBuf, env: &[(&str, &str)]) -> Daemon {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kaas"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting kaas");
        Daemon { child, log }
    }

    /// SIGKILLs it and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its whole log.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of its log.
    pub fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stops every workload process of the runtime's state directory, also when the test fails.
pub struct StateDir(pub PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let dir = self.0.clone();
        // Drop runs inside the test's runtime: stop on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(kaas_hosted::stop_all(&dir))
        })
        .join();
    }
}

/// Polls `check` every 300 ms until it is `Ok`; fails the test with the last `Err` after
/// `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => {
                eprintln!("{what}: after {:.1?}", start.elapsed());
                return v;
            }
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The workload cluster's admin client, from the kubeconfig kaas copied to the tenant's
/// namespace `ns`.
pub async fn workload(tenant: &Client, ns: &str, name: &str) -> Client {
    let s = Api::<Secret>::namespaced(tenant.clone(), ns)
        .get(&format!("{name}-kubeconfig"))
        .await
        .expect("the tenant reads its kubeconfig");
    let bytes = s.data.unwrap()["value"].0.clone();
    let kc = kube::config::Kubeconfig::from_yaml(std::str::from_utf8(&bytes).unwrap()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}
