//! The local runtime against a real management plane, with real workload control planes: create →
//! Ready with a kubeconfig Secret, `/version`, a Deployment Available on kwok nodes, scale 1→3 over
//! three zones and back to 2, upgrade 1.35.4→1.36.3 (binaries swapped, node versions rolled),
//! runtime restart (processes adopted, not restarted), a SIGKILLed etcd started again on its data,
//! a version that is not built, delete (processes gone, state removed, finalizer released), and an
//! orphaned state directory swept at start.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::wait_for;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use kaas_api::conditions::{get, is_true};
use kaas_api::hosted::{HostedControlPlane, RUNTIME_FINALIZER};
use kaas_harness::process::pid_alive;
use kaas_harness::{Plane, PlaneOptions};
use kaas_hosted::processes::{self, Component};
use kaas_hosted::{Layout, Mode, RuntimeConfig};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "kaas-local-t1";

fn hcp(name: &str, version: &str, replicas: i32) -> HostedControlPlane {
    serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "HostedControlPlane",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "runtime": "local",
            "version": version,
            "region": "de-1",
            "pools": [{
                "name": "w", "replicas": replicas, "zones": ["a", "b", "c"],
                "flavor": "SCS-2V-4", "cpu": 2, "memory": "4Gi",
                "labels": {"team": "t1"}
            }]
        }
    }))
    .expect("a HostedControlPlane")
}

async fn ready(api: &Api<HostedControlPlane>, name: &str) -> Option<HostedControlPlane> {
    let h = api.get_opt(name).await.ok()??;
    let st = h.status.as_ref()?;
    (is_true(&st.conditions, "Ready") && st.observed_generation == h.metadata.generation)
        .then_some(h)
}

async fn workload(client: &Client, name: &str) -> Client {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let s = secrets.get(&format!("{name}-kubeconfig")).await.unwrap();
    let bytes = &s.data.as_ref().unwrap()["value"].0;
    kaas_hosted::controller::workload_client(std::str::from_utf8(bytes).unwrap())
        .await
        .unwrap()
}

fn spawn_runtime(
    client: &Client,
    cfg: &RuntimeConfig,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(kaas_hosted::run(client.clone(), cfg.clone()))
}

fn rss_report(layout: &Layout, label: &str) -> u64 {
    let parts = processes::rss(layout);
    let total: u64 = parts.iter().map(|(_, _, b)| b).sum();
    let detail: Vec<String> = parts
        .iter()
        .map(|(c, _, b)| format!("{} {} MiB", c.name(), b >> 20))
        .collect();
    println!(
        "RSS {label}: {} MiB total ({})",
        total >> 20,
        detail.join(", ")
    );
    total
}

async fn nodes(c: &Client) -> Vec<Node> {
    Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn label(n: &Node, k: &str) -> String {
    n.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(k))
        .cloned()
        .unwrap_or_default()
}

fn kubelet(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_runtime_lifecycle() {
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let client = plane.client();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = RuntimeConfig::new(
        state.path().to_path_buf(),
        plane.artifacts().clone(),
        Mode::Attached,
    );
    cfg.etcd_unsafe_no_fsync = true;
    assert!(
        cfg.artifacts
            .workload_versions()
            .iter()
            .any(|v| v == "v1.35.4")
            && cfg
                .artifacts
                .workload_versions()
                .iter()
                .any(|v| v == "v1.36.3"),
        "the plane build lacks the workload versions: {:?}",
        cfg.artifacts.workload_versions()
    );

    // An orphan: a state directory whose object does not exist, with a live process recorded.
    let orphan = Layout::new(state.path(), NS, "gone");
    let sleeper = processes::start(
        &orphan,
        &processes::Launch {
            component: Component::Kwok,
            program: "/bin/sleep".into(),
            args: vec!["600".into()],
            version: None,
        },
        Mode::Attached,
    )
    .unwrap();
    std::fs::write(orphan.uid_file(), "no-such-uid").unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    let mut runtime = spawn_runtime(&client, &cfg);
    let api: Api<HostedControlPlane> = Api::namespaced(client.clone(), NS);

    wait_for("the orphan swept", Duration::from_secs(30), || async {
        (!orphan.dir.exists() && !pid_alive(sleeper.pid)).then_some(())
    })
    .await;

    // Create → Ready.
    let t0 = Instant::now();
    api.create(&PostParams::default(), &hcp("c1", "1.35.4", 1))
        .await
        .unwrap();
    let h = wait_for("c1 Ready", Duration::from_secs(180), || ready(&api, "c1")).await;
    println!("c1 Ready after {:.1} s", t0.elapsed().as_secs_f64());
    let st = h.status.clone().unwrap();
    assert_eq!(st.version.as_deref(), Some("v1.35.4"));
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(st.kubeconfig_secret.as_deref(), Some("c1-kubeconfig"));
    assert!(
        st.endpoint
            .as_deref()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert_eq!(st.conditions[0].type_, "Ready");
    for t in ["ControlPlaneAvailable", "WorkersAvailable"] {
        assert!(is_true(&st.conditions, t), "{t}: {:?}", st.conditions);
    }
    assert_eq!(
        (st.pools[0].desired, st.pools[0].current, st.pools[0].ready),
        (1, 1, 1)
    );
    assert!(
        h.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .iter()
            .any(|f| f == RUNTIME_FINALIZER)
    );
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("c1-kubeconfig")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("HostedControlPlane", "c1")
    );

    // The workload API server is real: /version, RBAC, server-side apply, Deployments.
    let wl = workload(&client, "c1").await;
    assert_eq!(wl.apiserver_version().await.unwrap().git_version, "v1.35.4");
    let n = nodes(&wl).await;
    assert_eq!(n.len(), 1);
    assert_eq!(label(&n[0], "scs.community/pool"), "w");
    assert_eq!(label(&n[0], "topology.kubernetes.io/region"), "de-1");
    assert_eq!(label(&n[0], "team"), "t1");
    assert_eq!(kubelet(&n[0]), "v1.35.4");
    let layout = Layout::new(state.path(), NS, "c1");
    rss_report(&layout, "c1 idle, 1 node");

    wait_for(
        "default ServiceAccount",
        Duration::from_secs(60),
        || async {
            Api::<ServiceAccount>::namespaced(wl.clone(), "default")
                .get_opt("default")
                .await
                .ok()?
        },
    )
    .await;
    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(wl.clone(), "default");
    deployments
        .patch(
            "web",
            &PatchParams::apply("kaas-test").force(),
            &Patch::Apply(&deploy),
        )
        .await
        .expect("server-side apply on the workload API server");
    let t1 = Instant::now();
    wait_for(
        "Deployment web Available",
        Duration::from_secs(120),
        || async {
            let d = deployments.get("web").await.ok()?;
            let st = d.status?;
            let available = st
                .conditions?
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            (available && st.available_replicas == Some(2)).then_some(())
        },
    )
    .await;
    println!(
        "Deployment Available after {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    let pods = Api::<Pod>::namespaced(wl.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    for p in &pods {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st.pod_ip.is_some(), "kwok gives pods an IP");
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("w-0"));
    }

    // Scale 1 → 3: three nodes, three zones, distinct hosts.
    let t2 = Instant::now();
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/pools/0/replicas", "value": 3}
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    let h = wait_for("c1 Ready with 3 nodes", Duration::from_secs(60), || {
        ready(&api, "c1")
    })
    .await;
    println!("scaled to 3 in {:.1} s", t2.elapsed().as_secs_f64());
    assert_eq!(h.status.unwrap().pools[0].current, 3);
    let n = nodes(&wl).await;
    assert_eq!(n.len(), 3);
    let zones: BTreeSet<String> = n
        .iter()
        .map(|n| label(n, "topology.kubernetes.io/zone"))
        .collect();
    assert_eq!(zones, BTreeSet::from(["a".into(), "b".into(), "c".into()]));
    let hosts: BTreeSet<String> = n
        .iter()
        .map(|n| label(n, kaas_api::hosted::LABEL_HOST))
        .collect();
    assert_eq!(
        hosts.len(),
        3,
        "{:?}",
        n.iter()
            .map(|n| n.metadata.labels.clone())
            .collect::<Vec<_>>()
    );
    rss_report(&layout, "c1, 3 nodes, 2 pods");

    // Scale 3 → 2: the highest index goes.
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/pools/0/replicas", "value": 2}
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    wait_for("c1 Ready with 2 nodes", Duration::from_secs(60), || {
        ready(&api, "c1")
    })
    .await;
    let names: BTreeSet<String> = nodes(&wl)
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(names, BTreeSet::from(["w-0".into(), "w-1".into()]));

    // Upgrade 1.35.4 → 1.36.3: new binaries, same etcd and endpoint, then node versions.
    let endpoint = st.endpoint.clone();
    let etcd_pid = processes::read_record(&layout, Component::Etcd)
        .unwrap()
        .pid;
    let old_api_pid = processes::read_record(&layout, Component::ApiServer)
        .unwrap()
        .pid;
    let t3 = Instant::now();
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": "1.36.3"}})),
    )
    .await
    .unwrap();
    let h = wait_for("c1 Ready at 1.36.3", Duration::from_secs(180), || {
        ready(&api, "c1")
    })
    .await;
    println!("upgraded to 1.36.3 in {:.1} s", t3.elapsed().as_secs_f64());
    let st = h.status.clone().unwrap();
    assert_eq!(st.version.as_deref(), Some("v1.36.3"));
    assert_eq!(st.endpoint, endpoint);
    assert_eq!(st.pools[0].versions, ["v1.36.3"]);
    let wl = workload(&client, "c1").await;
    assert_eq!(wl.apiserver_version().await.unwrap().git_version, "v1.36.3");
    let api_rec = processes::read_record(&layout, Component::ApiServer).unwrap();
    assert_ne!(api_rec.pid, old_api_pid);
    assert!(api_rec.program.ends_with("workload/v1.36.3/kube-apiserver"));
    assert!(!pid_alive(old_api_pid));
    assert_eq!(
        processes::read_record(&layout, Component::Etcd)
            .unwrap()
            .pid,
        etcd_pid
    );
    // The Deployment survived (same etcd), and kwok keeps the rolled kubelet versions.
    assert!(deployments.get("web").await.is_ok());
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in nodes(&wl).await {
        assert_eq!(kubelet(&n), "v1.36.3", "{:?}", n.metadata.name);
    }

    // Restart the runtime: nothing restarts, the API server keeps serving.
    let pids: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).unwrap().pid)
        .collect();
    runtime.abort();
    let _ = runtime.await;
    assert_eq!(wl.apiserver_version().await.unwrap().git_version, "v1.36.3");
    runtime = spawn_runtime(&client, &cfg);
    tokio::time::sleep(Duration::from_secs(6)).await;
    wait_for(
        "c1 Ready after the runtime restart",
        Duration::from_secs(30),
        || ready(&api, "c1"),
    )
    .await;
    let after: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).unwrap().pid)
        .collect();
    assert_eq!(pids, after, "the new runtime adopted every process");
    assert!(pids.iter().all(|p| pid_alive(*p)));
    assert_eq!(wl.apiserver_version().await.unwrap().git_version, "v1.36.3");

    // A dead etcd is started again on its data: the Deployment is still there.
    let _ = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status();
    let t4 = Instant::now();
    let new_etcd = wait_for("etcd restarted", Duration::from_secs(60), || async {
        let r = processes::read_record(&layout, Component::Etcd)?;
        (r.pid != pids[0] && pid_alive(r.pid)).then_some(r.pid)
    })
    .await;
    wait_for(
        "c1 Ready after etcd restart",
        Duration::from_secs(60),
        || ready(&api, "c1"),
    )
    .await;
    println!(
        "etcd SIGKILLed: restarted and Ready in {:.1} s",
        t4.elapsed().as_secs_f64()
    );
    assert!(!pid_alive(pids[0]));
    assert_eq!(
        processes::read_record(&layout, Component::ApiServer)
            .unwrap()
            .pid,
        pids[1],
        "the API server reconnects, it is not restarted"
    );
    assert!(deployments.get("web").await.is_ok(), "etcd kept its data");
    let mut pids = pids;
    pids.push(new_etcd);

    // A version that is not built: a condition naming the built ones, the control plane stays.
    api.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": "1.37.0"}})),
    )
    .await
    .unwrap();
    let st = wait_for("VersionNotAvailable", Duration::from_secs(30), || async {
        let h = api.get("c1").await.ok()?;
        let st = h.status?;
        let c = get(&st.conditions, "Ready")?;
        (c.reason == "VersionNotAvailable").then_some(st)
    })
    .await;
    let msg = &get(&st.conditions, "ControlPlaneAvailable")
        .unwrap()
        .message;
    assert!(
        msg.contains("v1.37.0") && msg.contains("v1.35.4, v1.36.3"),
        "{msg}"
    );
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    assert!(pid_alive(pids[1]), "the serving API server was not stopped");

    // Delete: processes gone, state removed, finalizer released.
    api.delete("c1", &DeleteParams::default()).await.unwrap();
    wait_for("c1 gone", Duration::from_secs(60), || async {
        api.get_opt("c1").await.ok()?.is_none().then_some(())
    })
    .await;
    for p in &pids {
        assert!(!pid_alive(*p), "pid {p} still alive");
    }
    assert!(!layout.dir.exists());
    assert!(!Path::new(&state.path().join(NS).join("c1")).exists());
    runtime.abort();
}
