//! The hosted backend end to end, as a tenant, with the real binaries: a real management plane,
//! `kaas hosted-runtime` and `kaas operator` as their own processes, the provider `local` with the
//! dev providers' real addon bundles (addons/build.sh). A cluster is created (the operator is
//! SIGKILLed in the middle and started again), its extensions running on the simulated nodes (the
//! default Gateway API with Envoy Gateway and its GatewayClass, metrics-server, the optional
//! ingress-nginx with the default IngressClass), scaled 1→3 over three zones, upgraded 1.35→1.36
//! (the workload API server's `/version` changes), hibernated and woken by spec and by schedule
//! (every control-plane process stopped, a ConfigMap written before still there after waking, the
//! extensions Ready again) and deleted while hibernated (processes and data gone).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, StateDir, until, workload};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::networking::v1::IngressClass;
use kaas_api::{Cluster, HostedControlPlane, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client, ResourceExt};

const PROVIDER: &str = include_str!("../../../examples/provider-local.yaml");
const TENANT: &str = "tenant-h";

fn summary(c: &Cluster) -> String {
    let s = c.status.clone().unwrap_or_default();
    format!(
        "phase={:?} version={:?} conditions={:?}",
        s.phase,
        s.kubernetes_version,
        s.conditions
            .iter()
            .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
            .collect::<Vec<_>>()
    )
}

fn is_true(c: &Cluster, t: &str) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.observed_generation == c.metadata.generation
            && s.conditions
                .iter()
                .any(|x| x.type_ == t && x.status == "True")
    })
}

async fn ready(api: &Api<Cluster>, name: &str, what: &str, timeout: Duration) -> Cluster {
    until(what, timeout, || async {
        let c = api.get(name).await.map_err(|e| e.to_string())?;
        if is_true(&c, "Ready") {
            Ok(c)
        } else {
            Err(summary(&c))
        }
    })
    .await
}

/// Pids of processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // The workload processes, not the runtime (`kaas hosted-runtime --state-dir …`) itself.
        if cmd.contains(needle) && !cmd.starts_with(env!("CARGO_BIN_EXE_kaas")) {
            found.push((pid, cmd));
        }
    }
    found
}

fn binary_counts(procs: &[(i32, String)]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, cmd) in procs {
        let bin = cmd.split_whitespace().next().unwrap_or_default();
        let bin = bin.rsplit('/').next().unwrap_or_default().to_string();
        *counts.entry(bin).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_cluster_lives_its_whole_life_on_real_api_servers() {
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let admin = plane.client();
    install::install_kaas(&admin).await.unwrap();
    let provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    install::provider(&admin, &provider, "").await.unwrap();
    let bundles = kaas_harness::addon_bundle_files().expect("addons/build.sh builds the bundles");
    for f in &bundles {
        install::apply_manifests(
            &admin,
            &provider.spec.backend.namespace,
            &std::fs::read_to_string(f).unwrap(),
        )
        .await
        .unwrap();
    }
    let token = install::tenant_service_account(&admin, TENANT, "hanna")
        .await
        .unwrap();
    let tenant = plane.client_for_token(&token).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let admin_kc = dir.path().join("admin.kubeconfig");
    plane.write_kubeconfig(Identity::Admin, &admin_kc).unwrap();
    let state = dir.path().join("hosted");
    let _cleanup = StateDir(state.clone());
    let state_arg = state.to_string_lossy().into_owned();
    let mut runtime = Daemon::start(
        &["hosted-runtime", "--state-dir", &state_arg],
        &admin_kc,
        dir.path().join("runtime.log"),
        &[("RUST_LOG", "info")],
    );
    let operator_args = ["operator", "--providers", "local"];
    let mut operator = Daemon::start(
        &operator_args,
        &admin_kc,
        dir.path().join("operator.log"),
        &[("RUST_LOG", "info")],
    );

    // Create as the tenant; kill the operator as soon as it has written the control plane.
    let api: Api<Cluster> = Api::namespaced(tenant.clone(), TENANT);
    let mut c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: h1, namespace: {TENANT}}}\nspec:\n  provider: {{name: local}}\n  kubernetes: {{version: 1.35.x}}\n  workers: [{{name: default, count: 1, zones: [zone-a, zone-b, zone-c]}}]\n  extensions: {{ingress: {{enabled: true}}}}\n"
    ))
    .unwrap();
    c.status = None;
    let created = Instant::now();
    api.create(&PostParams::default(), &c).await.unwrap();
    let hcps: Api<HostedControlPlane> = Api::all(admin.clone());
    until(
        "HostedControlPlane written",
        Duration::from_secs(60),
        || async {
            let list = hcps
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            if list.items.is_empty() {
                Err(format!("none yet; operator log:\n{}", operator.tail()))
            } else {
                Ok(())
            }
        },
    )
    .await;
    operator.kill();
    eprintln!("operator SIGKILLed {:.1?} after create", created.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut operator = Daemon::start(
        &operator_args,
        &admin_kc,
        dir.path().join("operator.log"),
        &[("RUST_LOG", "info")],
    );

    let ready_c = ready(&api, "h1", "Ready after create", Duration::from_secs(180)).await;
    let to_ready = created.elapsed();
    eprintln!("FIGURE create→Ready (operator killed once): {to_ready:.1?}");
    let endpoint = ready_c
        .status
        .clone()
        .unwrap()
        .api_endpoint
        .unwrap_or_default();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");

    // Exactly one control plane: one HostedControlPlane and one of each process.
    assert_eq!(
        hcps.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let procs = processes_with(&state_arg);
    let counts = binary_counts(&procs);
    for bin in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        assert_eq!(
            counts.get(bin).copied(),
            Some(1),
            "exactly one {bin} for the cluster: {counts:?}"
        );
    }

    // The workload cluster is real: /version, nodes, extensions applied with server-side apply.
    let w = workload(&tenant, TENANT, "h1").await;
    let v = w.apiserver_version().await.unwrap();
    assert_eq!(v.git_version, "v1.35.4");
    let ext = until("extensions Ready", Duration::from_secs(180), || async {
        let c = api.get("h1").await.map_err(|e| e.to_string())?;
        if is_true(&c, "ExtensionsReady") {
            Ok(c)
        } else {
            Err(format!(
                "{} extensions={:?}",
                summary(&c),
                c.status.as_ref().map(|s| &s.extensions)
            ))
        }
    })
    .await;
    let st = ext.status.unwrap();
    assert!(
        !format!("{:?}", st.extensions).contains("skipped"),
        "nothing skipped on a real API server: {:?}",
        st.extensions
    );
    // metrics-server and the default Gateway API implementation, Envoy Gateway, are Available on
    // the simulated nodes; the asked-for ingress-nginx is there too.
    for (ns, name) in [
        ("kube-system", "metrics-server"),
        ("envoy-gateway-system", "envoy-gateway"),
        ("ingress-nginx", "ingress-nginx-controller"),
    ] {
        deployment_available(&w, ns, name).await;
    }
    // The default GatewayClass, served by the Gateway API CRDs of the same addon.
    let classes: Api<DynamicObject> = Api::all_with(w.clone(), &gateway_class());
    let eg = classes.get("eg").await.expect("the GatewayClass eg");
    assert_eq!(
        eg.data["spec"]["controllerName"],
        "gateway.envoyproxy.io/gatewayclass-controller"
    );
    // The ingress extension's IngressClass is the default one (scs-0219).
    let nginx = Api::<IngressClass>::all(w.clone())
        .get("nginx")
        .await
        .expect("the IngressClass nginx");
    assert_eq!(
        nginx
            .annotations()
            .get("ingressclass.kubernetes.io/is-default-class")
            .map(String::as_str),
        Some("true")
    );
    // Every namespace in the workload cluster but kube-* (kaas' bundles', and `default`, labelled by
    // the runtime) has Pod Security labels.
    for ns in Api::<Namespace>::all(w.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = ns.name_any();
        if ["kube-system", "kube-public", "kube-node-lease"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            ns.labels()
                .contains_key("pod-security.kubernetes.io/enforce"),
            "namespace {name} has no Pod Security label: {:?}",
            ns.labels()
        );
    }

    // Envoy Gateway's controller and certgen Job are hardened: its namespace is restricted.
    let egns = Api::<Namespace>::all(w.clone())
        .get("envoy-gateway-system")
        .await
        .unwrap();
    assert_eq!(
        egns.labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );

    // Scale 1→3: three nodes in three zones.
    api.patch(
        "h1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"workers": [{"name": "default", "count": 3, "zones": ["zone-a", "zone-b", "zone-c"]}]}})),
    )
    .await
    .unwrap();
    let t = Instant::now();
    ready(
        &api,
        "h1",
        "Ready after scale 1→3",
        Duration::from_secs(120),
    )
    .await;
    eprintln!("FIGURE scale 1→3 → Ready: {:.1?}", t.elapsed());
    let nodes = Api::<Node>::all(w.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        nodes.len(),
        3,
        "{:?}",
        nodes.iter().map(|n| n.name_any()).collect::<Vec<_>>()
    );
    let mut zones: Vec<String> = nodes
        .iter()
        .map(|n| {
            n.labels()
                .get("topology.kubernetes.io/zone")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    zones.sort();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
    assert!(nodes.iter().all(|n| {
        n.labels()
            .get("topology.kubernetes.io/region")
            .map(String::as_str)
            == Some("local")
    }));

    // Upgrade 1.35 → 1.36: the workload API server really changes.
    api.patch(
        "h1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"kubernetes": {"version": "1.36.3"}}})),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let up = ready(
        &api,
        "h1",
        "Ready after upgrade to 1.36.3",
        Duration::from_secs(180),
    )
    .await;
    eprintln!("FIGURE upgrade 1.35→1.36 → Ready: {:.1?}", t.elapsed());
    assert_eq!(
        up.status.unwrap().kubernetes_version.as_deref(),
        Some("v1.36.3")
    );
    let w = workload(&tenant, TENANT, "h1").await;
    assert_eq!(w.apiserver_version().await.unwrap().git_version, "v1.36.3");
    // The 1.36 bundle is applied over the 1.35 one, with metrics-server's aggregated API
    // registered but without endpoints (simulated pods): discovery must not trip over it.
    until(
        "extensions Ready on 1.36",
        Duration::from_secs(120),
        || async {
            let c = api.get("h1").await.map_err(|e| e.to_string())?;
            let bundle = c
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|x| x.type_ == "ExtensionsReady"))
                .map(|x| x.message.clone())
                .unwrap_or_default();
            if is_true(&c, "ExtensionsReady") && bundle.contains("dev-addons-1-36") {
                Ok(())
            } else {
                Err(format!(
                    "{} extensions={:?}",
                    summary(&c),
                    c.status.as_ref().map(|s| &s.extensions)
                ))
            }
        },
    )
    .await;
    let kubelets: Vec<String> = Api::<Node>::all(w.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.status.clone().unwrap().node_info.unwrap().kubelet_version)
        .collect();
    assert_eq!(kubelets, ["v1.36.3"; 3]);

    // Hibernate by spec: every process of the control plane and the nodes stop, the data stays;
    // waking brings the same cluster back (a ConfigMap written before is still there) with its
    // nodes and its extensions.
    let marker = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(w.clone(), "default");
    marker
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                serde_json::json!({"metadata": {"name": "before-sleep"}, "data": {"k": "v"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let hibernate = |on: bool| {
        let api = api.clone();
        async move {
            api.patch(
                "h1",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"hibernation": {"enabled": on}}})),
            )
            .await
            .unwrap();
        }
    };
    hibernate(true).await;
    let t = Instant::now();
    hibernated(&api, "Hibernated by spec", &runtime).await;
    eprintln!("FIGURE hibernate → Hibernated: {:.1?}", t.elapsed());
    let c = api.get("h1").await.unwrap();
    let ext = c
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|x| x.type_ == "ExtensionsReady")
        .unwrap();
    assert_eq!(
        (ext.status.as_str(), ext.reason.as_str()),
        ("Unknown", "Hibernated")
    );
    let asleep = binary_counts(&processes_with(&state_arg));
    assert!(asleep.is_empty(), "processes while hibernated: {asleep:?}");
    hibernate(false).await;
    let t = Instant::now();
    awake(&api, "Ready and extensions Ready after waking", &runtime).await;
    eprintln!("FIGURE wake → Ready with extensions: {:.1?}", t.elapsed());
    let w = workload(&tenant, TENANT, "h1").await;
    let kept = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(w.clone(), "default")
        .get("before-sleep")
        .await
        .unwrap();
    assert_eq!(kept.data.unwrap().get("k").map(String::as_str), Some("v"));

    // By schedule: a start in the coming minute hibernates it, an end in the next one wakes it.
    let start = next_minute();
    let cron = |t: k8s_openapi::jiff::Timestamp| {
        let z = t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
        format!("{} {} {} {} *", z.minute(), z.hour(), z.day(), z.month())
    };
    let schedule = |s: serde_json::Value| {
        let api = api.clone();
        async move {
            api.patch(
                "h1",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"hibernation": {"schedules": [s]}}})),
            )
            .await
            .unwrap();
        }
    };
    schedule(serde_json::json!({"start": cron(start)})).await;
    hibernated(&api, "Hibernated by schedule", &runtime).await;
    assert!(k8s_openapi::jiff::Timestamp::now() >= start);
    let end = next_minute();
    schedule(serde_json::json!({"start": cron(start), "end": cron(end)})).await;
    awake(&api, "Ready by schedule", &runtime).await;
    assert!(k8s_openapi::jiff::Timestamp::now() >= end);

    // Hibernated once more, then deleted: deletion needs nothing running.
    hibernate(true).await;
    hibernated(&api, "Hibernated before deletion", &runtime).await;

    // Delete: processes and data gone, nothing left on the provider side.
    api.delete("h1", &DeleteParams::default()).await.unwrap();
    let t = Instant::now();
    until("Cluster deleted", Duration::from_secs(120), || async {
        match api.get_opt("h1").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(format!("{}\nruntime log:\n{}", summary(&c), runtime.tail())),
        }
    })
    .await;
    eprintln!("FIGURE delete → gone: {:.1?}", t.elapsed());
    assert!(
        hcps.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Both kubeconfig Secrets go with their owners (the SCS Cluster, the HostedControlPlane).
    let provider_ns = kaas_render::capi_namespace("local", TENANT);
    for (ns, what) in [(TENANT, "tenant copy"), (provider_ns.as_str(), "runtime's")] {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), ns);
        until(
            &format!("the {what} kubeconfig Secret removed"),
            Duration::from_secs(60),
            || async {
                match secrets
                    .get_opt("h1-kubeconfig")
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok(()),
                    Some(_) => Err("still there".to_string()),
                }
            },
        )
        .await;
    }
    let left = processes_with(&state_arg);
    assert!(left.is_empty(), "processes left: {left:?}");
    // Cluster data lives in `<state>/<namespace>/<name>/`; the runtime's own lock file stays.
    let leftover: Vec<_> = std::fs::read_dir(&state)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    let files = leftover.iter().flat_map(|p| walk(p)).collect::<Vec<_>>();
    assert!(files.is_empty(), "data left on disk: {files:?}");
    operator.kill();
    runtime.kill();
}

/// The start of a minute at least 40 s ahead (so a schedule is written before it begins).
fn next_minute() -> k8s_openapi::jiff::Timestamp {
    let s = k8s_openapi::jiff::Timestamp::now().as_second() + 40;
    k8s_openapi::jiff::Timestamp::from_second((s / 60 + 1) * 60).unwrap()
}

async fn hibernated(api: &Api<Cluster>, what: &str, runtime: &Daemon) {
    until(what, Duration::from_secs(180), || async {
        let c = api.get("h1").await.map_err(|e| e.to_string())?;
        let phase = c.status.as_ref().and_then(|s| s.phase);
        if phase == Some(kaas_api::cluster::ClusterPhase::Hibernated) && is_true(&c, "Hibernated") {
            Ok(())
        } else {
            Err(format!("{}\nruntime log:\n{}", summary(&c), runtime.tail()))
        }
    })
    .await;
}

async fn awake(api: &Api<Cluster>, what: &str, runtime: &Daemon) {
    until(what, Duration::from_secs(180), || async {
        let c = api.get("h1").await.map_err(|e| e.to_string())?;
        // ExtensionsReady is Unknown while hibernated: True again means checked after waking.
        if is_true(&c, "Ready") && is_true(&c, "ExtensionsReady") {
            Ok(())
        } else {
            Err(format!("{}\nruntime log:\n{}", summary(&c), runtime.tail()))
        }
    })
    .await;
}

fn gateway_class() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "GatewayClass",
    ))
}

/// Waits until Deployment `ns/name` of the workload cluster is Available.
async fn deployment_available(w: &Client, ns: &str, name: &str) {
    let deploys: Api<Deployment> = Api::namespaced(w.clone(), ns);
    until(
        &format!("Deployment {ns}/{name} Available"),
        Duration::from_secs(120),
        || async {
            let d = deploys
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such Deployment yet")?;
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                });
            if available {
                Ok(())
            } else {
                Err(format!("{:?}", d.status))
            }
        },
    )
    .await;
}

fn walk(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.flatten().flat_map(|e| walk(&e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![p.to_path_buf()]
    }
}
