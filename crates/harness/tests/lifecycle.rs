//! No stray processes: a test that panics prints the plane's logs and kills it; a test process
//! that dies without unwinding (abort) takes its plane with it (PR_SET_PDEATHSIG). The persistent
//! dev plane survives its starter, keeps its data across down/up, and `dev_down` stops it.
//!
//! The first two run this test binary again as a child (`KAAS_HARNESS_CHILD`), whose only job is
//! to start a plane, report its pids on stderr and then fail.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kaas_harness::{DevOptions, Plane, PlaneOptions, dev_down, dev_env, dev_status, dev_up};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

fn wait_dead(pids: &[i32]) -> Vec<i32> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if pids.iter().all(|p| !alive(*p)) {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pids.iter().copied().filter(|p| alive(*p)).collect()
}

/// The child: starts a plane, prints `PIDS <pid> <pid> …`, then panics or aborts.
#[tokio::test]
async fn child_plane_then_fail() {
    let Ok(how) = std::env::var("KAAS_HARNESS_CHILD") else {
        return;
    };
    let plane = Plane::start(PlaneOptions::minimal())
        .await
        .expect("plane starts");
    let pids: Vec<String> = plane.pids().iter().map(|(_, p)| p.to_string()).collect();
    eprintln!("PIDS {}", pids.join(" "));
    eprintln!("DIR {}", plane.dir().display());
    if how == "abort" {
        std::process::abort();
    }
    panic!("deliberate failure with a running plane");
}

fn run_child(how: &str) -> (String, Vec<i32>) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_plane_then_fail",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KAAS_HARNESS_CHILD", how)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child fails");
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let pids = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PIDS "))
        .unwrap_or_else(|| panic!("child printed no pids:\n{stderr}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (stderr, pids)
}

#[test]
fn a_panicking_test_prints_logs_and_leaves_nothing_running() {
    if std::env::var("KAAS_HARNESS_CHILD").is_ok() {
        return;
    }
    let (stderr, pids) = run_child("panic");
    assert_eq!(pids.len(), 3);
    assert!(
        stderr.contains("logs of the plane"),
        "logs printed on panic:\n{stderr}"
    );
    assert!(stderr.contains("kube-apiserver.log"), "{stderr}");
    assert_eq!(
        wait_dead(&pids),
        Vec::<i32>::new(),
        "processes left after a panic"
    );
    let dir = stderr.lines().find_map(|l| l.strip_prefix("DIR ")).unwrap();
    assert!(
        !std::path::Path::new(dir).exists(),
        "temporary directory removed"
    );
}

#[test]
fn an_aborted_test_process_takes_its_plane_along() {
    if std::env::var("KAAS_HARNESS_CHILD").is_ok() {
        return;
    }
    let (stderr, pids) = run_child("abort");
    assert_eq!(pids.len(), 3);
    assert_eq!(
        wait_dead(&pids),
        Vec::<i32>::new(),
        "processes left after abort"
    );
    // Nothing ran to remove its temporary directory.
    let dir = stderr.lines().find_map(|l| l.strip_prefix("DIR ")).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn dev_plane_is_persistent_and_stops() {
    if std::env::var("KAAS_HARNESS_CHILD").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let opts = DevOptions {
        dir: Some(dir.clone()),
        plane: PlaneOptions::minimal(),
    };

    let up = dev_up(opts.clone()).await.expect("dev up");
    assert!(!up.already_running);
    assert_eq!(up.processes.len(), 3, "{up:?}");
    eprintln!("dev plane up in {} ms", up.startup_ms);
    assert_eq!(
        dev_env(&dir).unwrap(),
        format!("export KUBECONFIG={}\n", dir.join("kubeconfig").display())
    );

    // It outlives the handle, and a kubeconfig from the directory reaches it.
    let kubeconfig = kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "kept" } })).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    // A second `up` finds it running.
    let again = dev_up(opts.clone()).await.unwrap();
    assert!(again.already_running);
    assert_eq!(again.processes, up.processes);

    // Down stops every process; up again keeps the data.
    let stopped = dev_down(&dir).unwrap();
    assert_eq!(stopped.len(), 3, "{stopped:?}");
    let pids: Vec<i32> = up.processes.iter().map(|(_, p)| *p).collect();
    assert_eq!(wait_dead(&pids), Vec::<i32>::new());
    assert!(dev_status(&dir).unwrap().is_none());

    let up2 = dev_up(opts).await.expect("dev up again");
    assert!(!up2.already_running);
    let kubeconfig = kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    assert!(
        cms.get_opt("kept").await.unwrap().is_some(),
        "etcd data kept across down/up"
    );
    dev_down(&dir).unwrap();
    let pids: Vec<i32> = up2.processes.iter().map(|(_, p)| *p).collect();
    assert_eq!(wait_dead(&pids), Vec::<i32>::new());
}
