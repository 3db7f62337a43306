//! Control planes survive the runtime **process**: the runtime runs as a separate process (this
//! test binary re-executed in runtime mode, `Mode::Detached` as in `kaas hosted-runtime`), is
//! SIGKILLed once the control plane is Ready, and the workload API server keeps serving with the
//! same pid; a second runtime process adopts every process, and `stop_all` stops them all.
//! (`harness = false`: `main` is either the test or, with `KAAS_HOSTED_CHILD_STATE` set, the
//! runtime.)

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kaas_api::conditions::is_true;
use kaas_api::hosted::HostedControlPlane;
use kaas_harness::process::pid_alive;
use kaas_harness::{Identity, Plane, PlaneArtifacts, PlaneOptions};
use kaas_hosted::processes::{self, Component};
use kaas_hosted::{Layout, Mode, RuntimeConfig};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "kaas-local-detached";

/// Stops every workload process under the state directory, whatever happened to the test.
struct Cleanup(PathBuf, Option<Child>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(kaas_hosted::stop_all(&dir))
        })
        .join();
    }
}

fn spawn_runtime(
    state: &std::path::Path,
    kubeconfig: &std::path::Path,
    plane_dir: &std::path::Path,
) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .env("KAAS_HOSTED_CHILD_STATE", state)
        .env("KAAS_HOSTED_CHILD_KUBECONFIG", kubeconfig)
        .env("KAAS_PLANE_DIR", plane_dir)
        .spawn()
        .expect("runtime process")
}

async fn child(state: PathBuf) -> anyhow::Result<()> {
    let path = PathBuf::from(std::env::var("KAAS_HOSTED_CHILD_KUBECONFIG")?);
    let kc = kube::config::Kubeconfig::read_from(&path)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = Client::try_from(cfg)?;
    let mut cfg = RuntimeConfig::new(state, PlaneArtifacts::locate(false)?, Mode::Detached);
    cfg.etcd_unsafe_no_fsync = true;
    kaas_hosted::run(client, cfg).await
}

async fn wait_ready(api: &Api<HostedControlPlane>, timeout: Duration) -> HostedControlPlane {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(h) = api.get("d1").await
            && h.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Ready"))
        {
            return h;
        }
        assert!(Instant::now() < deadline, "d1 not Ready after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn test() {
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let client = plane.client();
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = state.path().join("management.kubeconfig");
    plane
        .write_kubeconfig(Identity::Admin, &kubeconfig)
        .unwrap();
    let hosted = state.path().join("hosted");
    let mut guard = Cleanup(hosted.clone(), None);

    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<HostedControlPlane> = Api::namespaced(client.clone(), NS);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "HostedControlPlane",
            "metadata": {"name": "d1", "namespace": NS},
            "spec": {"runtime": "local", "version": "1.36.3", "region": "r",
                     "pools": [{"name": "w", "replicas": 1, "zones": ["a"], "flavor": "f", "cpu": 1, "memory": "1Gi"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();

    guard.1 = Some(spawn_runtime(&hosted, &kubeconfig, plane.artifacts().dir()));
    wait_ready(&api, Duration::from_secs(180)).await;
    let layout = Layout::new(&hosted, NS, "d1");
    let pids: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).unwrap().pid)
        .collect();

    // SIGKILL the runtime process: the control plane keeps running and serving.
    let mut runtime = guard.1.take().unwrap();
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pids.iter().all(|p| pid_alive(*p)),
        "a process died with the runtime"
    );
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
        .get("d1-kubeconfig")
        .await
        .unwrap();
    let wl = kaas_hosted::controller::workload_client(
        std::str::from_utf8(&secret.data.unwrap()["value"].0).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(wl.apiserver_version().await.unwrap().git_version, "v1.36.3");

    // A new runtime process adopts them all.
    guard.1 = Some(spawn_runtime(&hosted, &kubeconfig, plane.artifacts().dir()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_ready(&api, Duration::from_secs(30)).await;
    let again: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).unwrap().pid)
        .collect();
    assert_eq!(pids, again, "the second runtime adopted every process");

    // `kaas dev down`: stop the runtime, then stop_all stops every workload process.
    let mut runtime = guard.1.take().unwrap();
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    let t = Instant::now();
    let stopped = kaas_hosted::stop_all(&hosted).await.unwrap();
    println!(
        "stop_all: {} processes in {:.1} s ({} needed SIGKILL)",
        stopped.len(),
        t.elapsed().as_secs_f64(),
        stopped.iter().filter(|s| s.killed).count()
    );
    let mut got: Vec<i32> = stopped.iter().map(|s| s.pid).collect();
    got.sort();
    let mut want = pids.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(pids.iter().all(|p| !pid_alive(*p)));
    // The data stays for the next `dev up`.
    assert!(layout.etcd_data().is_dir() && layout.pki().join("ca.crt").is_file());
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(state) = std::env::var_os("KAAS_HOSTED_CHILD_STATE") {
        if let Err(e) = rt.block_on(child(PathBuf::from(state))) {
            eprintln!("runtime: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // libtest-style arguments (`--list`, filters) come from cargo; there is one test.
    if std::env::args().any(|a| a == "--list") {
        println!("detached_runtime: test");
        return;
    }
    rt.block_on(test());
    println!("test detached_runtime ... ok");
}
