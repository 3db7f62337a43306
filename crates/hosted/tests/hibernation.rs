//! Hibernation with the real binaries: a Ready control plane with a ConfigMap in its workload
//! cluster is hibernated (`spec.hibernated: true`, pools at 0 as the operator writes it) → phase
//! `Hibernated`, `Ready`/`ControlPlaneAvailable` False with reason `Hibernated`, every process
//! gone, nothing answers at the endpoint, its ports held by the runtime (no other socket can bind
//! them, although a watch and a connection kept open through the hibernation were closed by the
//! API server and left its port in FIN_WAIT2/TIME_WAIT), etcd's data, the PKI and the kubeconfig
//! Secret kept; a restarted runtime starts nothing and refuses an etcd operation with a clear
//! message; woken (`hibernated: false`) → Ready at the same endpoint with the same kubeconfig and
//! the ConfigMap still there; hibernated again and deleted → gone without starting anything.

mod common;

use std::time::{Duration, Instant};

use common::wait_for;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kaas_api::conditions::{get, is_true};
use kaas_api::hosted::HostedControlPlane;
use kaas_harness::process::{pid_alive, port_is_free};
use kaas_harness::{Plane, PlaneOptions};
use kaas_hosted::processes::{self, Component};
use kaas_hosted::state::Ports;
use kaas_hosted::{Layout, Mode, RuntimeConfig, StopAllOnDrop};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "kaas-local-hibernate";

async fn current(api: &Api<HostedControlPlane>, name: &str) -> Option<HostedControlPlane> {
    let h = api.get_opt(name).await.ok()??;
    (h.status.as_ref()?.observed_generation == h.metadata.generation).then_some(h)
}

async fn ready(api: &Api<HostedControlPlane>, name: &str) -> Option<HostedControlPlane> {
    let h = current(api, name).await?;
    is_true(&h.status.as_ref()?.conditions, "Ready").then_some(h)
}

async fn hibernated(api: &Api<HostedControlPlane>, name: &str) -> Option<HostedControlPlane> {
    let h = current(api, name).await?;
    (h.status.as_ref()?.phase.as_deref() == Some("Hibernated")).then_some(h)
}

async fn kubeconfig(client: &Client, name: &str) -> String {
    let s = Api::<Secret>::namespaced(client.clone(), NS)
        .get(&format!("{name}-kubeconfig"))
        .await
        .expect("the kubeconfig Secret");
    String::from_utf8(s.data.unwrap()["value"].0.clone()).unwrap()
}

/// Sets `spec.hibernated` and the pool's replicas together, as the operator's hosted backend does.
async fn set_hibernated(api: &Api<HostedControlPlane>, name: &str, on: bool, replicas: i32) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "add", "path": "/spec/hibernated", "value": on},
                {"op": "replace", "path": "/spec/pools/0/replicas", "value": replicas}
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// Sockets on 127.0.0.1:`port` in a state left by closing first (FIN_WAIT1/2, TIME_WAIT,
/// CLOSING): connections the server at that port closed.
fn closed_by_server(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[1] == format!("0100007F:{port:04X}")
                && matches!(f[3], "04" | "05" | "06" | "0B")
        })
        .count()
}

/// What proves a hibernated control plane is at rest: no recorded or unrecorded process, nothing
/// at its ports and the ports held (no other socket can bind them), its data and credentials in
/// place.
fn assert_at_rest(layout: &Layout, pids: &[i32], port: u16) {
    for p in pids {
        assert!(!pid_alive(*p), "pid {p} still alive while hibernated");
    }
    assert!(
        processes::observe(layout).is_empty(),
        "running while hibernated: {:?}",
        processes::observe(layout)
    );
    assert!(
        processes::strays(&layout.dir, &[]).is_empty(),
        "unrecorded processes while hibernated"
    );
    assert!(!answers(port), "the API server port {port} still answers");
    let ports = Ports::load(layout).expect("the persisted ports");
    assert_eq!(ports.apiserver, port);
    for (what, p) in [
        ("etcd", ports.etcd),
        ("etcd peer", ports.etcd_peer),
        ("API server", ports.apiserver),
    ] {
        assert!(
            !port_is_free(p),
            "the {what} port {p} is not held while hibernated: another socket can bind it"
        );
    }
    assert!(kaas_hosted::hibernation::is_reserved(layout));
    assert!(
        layout.etcd_data().join("member").is_dir(),
        "etcd's data directory was kept"
    );
    assert!(layout.pki().join("ca.crt").is_file(), "the PKI was kept");
    assert!(layout.kubeconfig("admin").is_file(), "kubeconfigs kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hibernate_wake_and_delete() {
    let t = Instant::now();
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let client = plane.client();
    let state = tempfile::tempdir().unwrap();
    let _stop = StopAllOnDrop(state.path().to_path_buf());
    let mut cfg = RuntimeConfig::new(
        state.path().to_path_buf(),
        plane.artifacts().clone(),
        Mode::Attached,
    );
    cfg.etcd_unsafe_no_fsync = true;
    let version = cfg
        .artifacts
        .workload_versions()
        .last()
        .cloned()
        .expect("a built workload version");

    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    let mut runtime = tokio::spawn(kaas_hosted::run(client.clone(), cfg.clone()));
    let api: Api<HostedControlPlane> = Api::namespaced(client.clone(), NS);
    let h: HostedControlPlane = serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "HostedControlPlane",
        "metadata": {"name": "h1", "namespace": NS},
        "spec": {
            "runtime": "local",
            "version": version,
            "region": "de-1",
            "pools": [{
                "name": "w", "replicas": 1, "zones": ["a"],
                "flavor": "SCS-2V-4", "cpu": 2, "memory": "4Gi"
            }]
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &h).await.unwrap();
    let h = wait_for("h1 Ready", Duration::from_secs(180), || ready(&api, "h1")).await;
    let st = h.status.unwrap();
    let endpoint = st.endpoint.clone().expect("an endpoint");
    let port = port_of(&endpoint);
    let layout = Layout::new(state.path(), NS, "h1");
    let kubeconfig_before = kubeconfig(&client, "h1").await;

    // The workload cluster gets an object to survive the hibernation.
    let wl = kaas_hosted::controller::workload_client(&kubeconfig_before)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(wl.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "before-hibernation"},
            "data": {"written": "before"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pids: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).expect("a record").pid)
        .collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    assert!(answers(port));

    // Connections kept open through the hibernation: the stopping API server closes them first,
    // which leaves the port with connections in FIN_WAIT2/TIME_WAIT for a minute; holding the
    // port must not fail because of them. A watch (its client may also end it first once the
    // server ends the response) and a plain connection that only the server closes.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut watch = cms
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .expect("a watch on the workload cluster")
        .boxed();
    let watch = tokio::spawn(async move { while watch.next().await.is_some() {} });

    // Hibernate.
    let t1 = Instant::now();
    set_hibernated(&api, "h1", true, 0).await;
    let h = wait_for("h1 Hibernated", Duration::from_secs(90), || {
        hibernated(&api, "h1")
    })
    .await;
    println!("hibernated in {:.1} s", t1.elapsed().as_secs_f64());
    tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the API server ended the watch when it stopped")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        std::io::Read::read(&mut idle, &mut [0u8; 1]).ok(),
        Some(0),
        "the API server closed the idle connection"
    );
    assert!(
        closed_by_server(port) > 0,
        "no connection at the API server port {port} was closed by the server"
    );
    drop(idle);
    let st = h.status.unwrap();
    for c in ["Ready", "ControlPlaneAvailable"] {
        let cond = get(&st.conditions, c).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "Hibernated"),
            "{c}"
        );
        assert!(cond.message.contains("data kept"), "{}", cond.message);
        assert_eq!(cond.observed_generation, h.metadata.generation);
    }
    assert_eq!(st.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(st.kubeconfig_secret.as_deref(), Some("h1-kubeconfig"));
    assert_eq!(
        (st.pools[0].desired, st.pools[0].current, st.pools[0].ready),
        (0, 0, 0)
    );
    assert_at_rest(&layout, &pids, port);
    assert!(
        wl.apiserver_version().await.is_err(),
        "the workload API server still serves"
    );
    assert_eq!(
        kubeconfig(&client, "h1").await,
        kubeconfig_before,
        "the kubeconfig Secret was kept"
    );

    // A restarted runtime starts nothing; an etcd operation is refused with a reason, not left
    // hanging (its report also proves the new runtime has been through this object).
    runtime.abort();
    let _ = runtime.await;
    runtime = tokio::spawn(kaas_hosted::run(client.clone(), cfg.clone()));
    api.patch(
        "h1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"etcdOperation": {
            "id": "snap-while-asleep", "kind": "Snapshot", "secretName": "no-such-secret"
        }}})),
    )
    .await
    .unwrap();
    let report = wait_for(
        "the etcd operation refused",
        Duration::from_secs(60),
        || async {
            let h = api.get("h1").await.ok()?;
            h.status?
                .etcd_operation
                .filter(|r| r.id == "snap-while-asleep")
        },
    )
    .await;
    assert_eq!(report.phase, "Failed");
    let msg = report.message.unwrap_or_default();
    assert!(msg.contains("hibernated: wake it first"), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_at_rest(&layout, &pids, port);
    assert_eq!(
        hibernated(&api, "h1").await.and_then(|h| h.status?.phase),
        Some("Hibernated".into())
    );

    // Wake: same endpoint, same credentials, the data is back.
    let t2 = Instant::now();
    set_hibernated(&api, "h1", false, 1).await;
    let h = wait_for("h1 Ready after waking", Duration::from_secs(180), || {
        ready(&api, "h1")
    })
    .await;
    println!("woken and Ready in {:.1} s", t2.elapsed().as_secs_f64());
    let st = h.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(st.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(
        (st.pools[0].desired, st.pools[0].current, st.pools[0].ready),
        (1, 1, 1)
    );
    assert_eq!(kubeconfig(&client, "h1").await, kubeconfig_before);
    let woken: Vec<i32> = Component::ALL
        .iter()
        .map(|c| processes::read_record(&layout, *c).expect("a record").pid)
        .collect();
    assert!(woken.iter().all(|p| pid_alive(*p) && !pids.contains(p)));
    let cm = cms
        .get("before-hibernation")
        .await
        .expect("the ConfigMap survived the hibernation");
    assert_eq!(cm.data.unwrap()["written"], "before");

    // Hibernated again, then deleted: nothing has to run for the cleanup.
    set_hibernated(&api, "h1", true, 0).await;
    wait_for("h1 Hibernated again", Duration::from_secs(90), || {
        hibernated(&api, "h1")
    })
    .await;
    assert_at_rest(&layout, &woken, port);
    api.delete("h1", &DeleteParams::default()).await.unwrap();
    wait_for("h1 gone", Duration::from_secs(60), || async {
        api.get_opt("h1").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!layout.dir.exists(), "the state directory was removed");
    assert!(processes::strays(&state.path().join(NS), &[]).is_empty());
    assert!(!kaas_hosted::hibernation::is_reserved(&layout));
    runtime.abort();
    println!("whole test {:.1} s", t.elapsed().as_secs_f64());
}
