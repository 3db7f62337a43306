//! A stack built the SCS way and applied at its lifecycle hooks, end to end on real API servers:
//! `kaas stack build` renders the example layout `examples/stack-openstack` (Cilium's and
//! metrics-server's real charts from their Go modules, CCM and Cinder CSI stand-in charts written
//! for this test) with helm into the bundles of 1.35.4 and 1.36.3; the hosted backend runs the
//! workload API servers. On create every object is accepted (CRDs first) with a status per addon
//! and the cluster's values resolved; the tenant's cloud credentials (the provider's Secret
//! for the tenant — never the Provider's Cluster API identity, which must not reach any
//! workload cluster) arrive in the workload cluster's kube-system and nowhere a tenant can read on
//! the management side (checked with the tenant's token, and in status, events and the operator's
//! log); rotating that Secret updates them; an upgrade is held until the new version's BeforeClusterUpgrade addons are applied;
//! deleting the cluster removes them with its control plane.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, StateDir, until, workload};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client, ResourceExt};

const PROVIDER: &str = include_str!("../../../examples/provider-local.yaml");
const TENANT: &str = "tenant-st";
/// The tenant's cloud credential Secret in the provider namespace (the name the operator looks for).
const TENANT_CREDENTIALS: &str = "workload-credentials-tenant-st";
/// Upstream charts: (module, version, chart path in the module). The versions are the example
/// layout's dependency pins (its Chart.yaml files).
const CILIUM: (&str, &str, &str) = (
    "github.com/cilium/cilium",
    "v1.20.2",
    "install/kubernetes/cilium",
);
const GATEWAY_API: (&str, &str, &str) =
    ("sigs.k8s.io/gateway-api", "v1.5.1", "config/crd/standard");
const METRICS_SERVER: (&str, &str, &str) = (
    "sigs.k8s.io/metrics-server",
    "v0.9.0",
    "charts/metrics-server",
);

fn conditions(c: &Cluster) -> String {
    let s = c.status.clone().unwrap_or_default();
    format!(
        "version={:?} conditions={:?} extensions={:?}",
        s.kubernetes_version,
        s.conditions
            .iter()
            .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
            .collect::<Vec<_>>(),
        s.extensions
    )
}

fn condition<'a>(c: &'a Cluster, t: &str) -> Option<&'a str> {
    c.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|x| x.type_ == t && s.observed_generation == c.metadata.generation)
            .map(|x| x.status.as_str())
    })
}

/// The directory of a Go module version, downloaded through the module proxy into the Go module
/// cache (the cache keyed by module@version: a second run downloads nothing).
fn module_dir(module: &str, version: &str) -> PathBuf {
    let out = Command::new("go")
        .args(["mod", "download", "-json", &format!("{module}@{version}")])
        .output()
        .expect("go");
    assert!(
        out.status.success(),
        "go mod download {module}@{version}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(info["Dir"].as_str().unwrap())
}

/// The example layout plus a marker for this test: the CCM's pods carry the Kubernetes version
/// the bundle was applied for, which shows when the 1.36 addons arrived.
fn layout(dir: &Path) -> PathBuf {
    let root = repo_root();
    let to = dir.join("stack-openstack");
    let out = Command::new("cp")
        .arg("-r")
        .arg(root.join("examples/stack-openstack"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(out.success());
    let ow = to.join("ccm/overwrite.yaml");
    let mut text = std::fs::read_to_string(&ow).unwrap();
    text.push_str(
        "  podAnnotations:\n    test.kaas/kubernetes-version: ${cluster.kubernetesVersion}\n",
    );
    std::fs::write(ow, text).unwrap();
    to
}

/// The chart the example layout's gateway-api addon depends on, as a provider assembles it:
/// upstream's standard-channel YAML in the crds/ of a chart `gateway-api-crds`.
fn gateway_api_chart(dir: &Path) -> PathBuf {
    let (m, v, p) = GATEWAY_API;
    let chart = dir.join("gateway-api-crds");
    std::fs::create_dir_all(chart.join("crds")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: gateway-api-crds\nversion: {}\n",
            v.trim_start_matches('v')
        ),
    )
    .unwrap();
    for f in std::fs::read_dir(module_dir(m, v).join(p)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, chart.join("crds").join(f.file_name().unwrap())).unwrap();
    }
    chart
}

fn stack_build(layout: &Path, bundle: &str, ns: &str, version: &str, out: &Path) -> Vec<PathBuf> {
    let root = repo_root();
    let charts = root.join("crates/cli/tests/stack/charts");
    let chart = |name: &str, dir: PathBuf| format!("{name}={}", dir.display());
    let (cm, cv, cp) = CILIUM;
    let (mm, mv, mp) = METRICS_SERVER;
    let t = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_kaas"))
        .args(["stack", "build", "--dir"])
        .arg(layout)
        .args([
            "--bundle",
            bundle,
            "--namespace",
            ns,
            "--kube-version",
            version,
        ])
        .arg("--helm")
        .arg(kaas_harness::helm_binary().expect("addons/build.sh builds helm"))
        .args(["--chart", &chart("cilium", module_dir(cm, cv).join(cp))])
        .args([
            "--chart",
            &chart("metrics-server", module_dir(mm, mv).join(mp)),
        ])
        .args([
            "--chart",
            &chart("gateway-api-crds", gateway_api_chart(out.parent().unwrap())),
        ])
        .args([
            "--chart",
            &chart(
                "openstack-cloud-controller-manager",
                charts.join("openstack-cloud-controller-manager"),
            ),
        ])
        .args([
            "--chart",
            &chart("openstack-cinder-csi", charts.join("openstack-cinder-csi")),
        ])
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "kaas stack build {bundle}");
    eprintln!("FIGURE kaas stack build {bundle}: {:.1?}", t.elapsed());
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

async fn publish(admin: &Client, ns: &str, files: &[PathBuf]) {
    for f in files {
        install::apply_manifests(admin, ns, &std::fs::read_to_string(f).unwrap())
            .await
            .unwrap();
    }
}

fn clouds_yaml(secret: &str) -> String {
    format!(
        "clouds:\n  openstack:\n    auth:\n      auth_url: https://keystone.example:5000/v3\n      application_credential_id: 4f1e\n      application_credential_secret: {secret}\n    region_name: fra1\n    auth_type: v3applicationcredential\n"
    )
}

async fn workload_credentials(w: &Client) -> Result<String, String> {
    let s = Api::<Secret>::namespaced(w.clone(), "kube-system")
        .get_opt("cloud-config")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no Secret kube-system/cloud-config")?;
    let d = s.data.unwrap_or_default();
    let v = d.get("clouds.yaml").ok_or("no key clouds.yaml")?;
    Ok(String::from_utf8(v.0.clone()).unwrap())
}

/// Every place on the management side a tenant's token can read, as text: the secrets and
/// config maps of the tenant's namespace and of its provider-side namespace (where allowed), its
/// Cluster (status included) and its events. Forbidden reads are skipped; none may hold `needle`.
async fn tenant_readable_text(tenant: &Client, provider_side: &str) -> String {
    let mut text = String::new();
    for ns in [TENANT, provider_side] {
        if let Ok(l) = Api::<Secret>::namespaced(tenant.clone(), ns)
            .list(&ListParams::default())
            .await
        {
            for s in l.items {
                for v in s.data.unwrap_or_default().values() {
                    text.push_str(&String::from_utf8_lossy(&v.0));
                }
                text.push_str(&serde_json::to_string(&s.metadata).unwrap());
            }
        }
        if let Ok(l) = Api::<ConfigMap>::namespaced(tenant.clone(), ns)
            .list(&ListParams::default())
            .await
        {
            text.push_str(&serde_json::to_string(&l.items).unwrap());
        }
        if let Ok(l) = Api::<k8s_openapi::api::events::v1::Event>::namespaced(tenant.clone(), ns)
            .list(&ListParams::default())
            .await
        {
            text.push_str(&serde_json::to_string(&l.items).unwrap());
        }
    }
    let clusters = Api::<Cluster>::namespaced(tenant.clone(), TENANT)
        .list(&ListParams::default())
        .await
        .unwrap();
    text.push_str(&serde_json::to_string(&clusters.items).unwrap());
    text
}

fn vsc() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotClass",
    ))
}

fn ccm_version_annotation(d: &DaemonSet) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("test.kaas/kubernetes-version")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_built_from_charts_is_applied_at_its_hooks_with_the_providers_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let pns = provider.spec.backend.namespace.clone();
    // The bundles: built with `kaas stack build` from the example layout.
    let layout = layout(dir.path());
    let b135 = stack_build(
        &layout,
        "stack-1-35",
        &pns,
        "1.35.4",
        &dir.path().join("b135"),
    );
    let b136 = stack_build(
        &layout,
        "stack-1-36",
        &pns,
        "1.36.3",
        &dir.path().join("b136"),
    );
    for v in provider.spec.kubernetes_versions.iter_mut() {
        v.stack.addons = Some(if v.version.starts_with("1.35") {
            "stack-1-35".into()
        } else {
            "stack-1-36".into()
        });
    }
    // The stack serves the extensions metrics (metrics-server) and gatewayAPI (its CRDs); the
    // others are off by default.
    for e in provider.spec.extensions.iter_mut() {
        e.default = e.name == "metrics" || e.name == "gatewayAPI";
    }
    provider.spec.credentials_ref = Some(kaas_api::provider::CredentialsRef {
        name: "openstack-credentials".into(),
    });

    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let admin = plane.client();
    install::install_kaas(&admin).await.unwrap();
    install::provider(&admin, &provider, "").await.unwrap();
    let first = "app-cred-7c1d0e55-first";
    let identity = "provider-identity-every-tenant";
    let creds: Api<Secret> = Api::namespaced(admin.clone(), &pns);
    // The Provider's Cluster API identity (reaches every tenant's resources: never delivered)…
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("openstack-credentials".into()),
            ..Default::default()
        },
        string_data: Some([("clouds.yaml".to_string(), clouds_yaml(identity))].into()),
        ..Default::default()
    };
    creds.create(&PostParams::default(), &secret).await.unwrap();
    // …and the tenant's own application credential, made by the provider's tooling.
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(TENANT_CREDENTIALS.into()),
            ..Default::default()
        },
        string_data: Some([("clouds.yaml".to_string(), clouds_yaml(first))].into()),
        ..Default::default()
    };
    creds.create(&PostParams::default(), &secret).await.unwrap();
    publish(&admin, &pns, &b135).await;
    // 1.36's bundle without its CNI manifests for now: the upgrade must wait for them.
    let cni136 = b136
        .iter()
        .find(|f| f.to_string_lossy().ends_with("-stack-1-36-cni.yaml"))
        .expect("the 1.36 cni ConfigMap")
        .clone();
    let rest: Vec<PathBuf> = b136.iter().filter(|f| **f != cni136).cloned().collect();
    publish(&admin, &pns, &rest).await;

    let token = install::tenant_service_account(&admin, TENANT, "stella")
        .await
        .unwrap();
    let tenant = plane.client_for_token(&token).unwrap();
    let admin_kc = dir.path().join("admin.kubeconfig");
    plane.write_kubeconfig(Identity::Admin, &admin_kc).unwrap();
    let state = dir.path().join("hosted");
    let _cleanup = StateDir(state.clone());
    let state_arg = state.to_string_lossy().into_owned();
    let _runtime = Daemon::start(
        &["hosted-runtime", "--state-dir", &state_arg],
        &admin_kc,
        dir.path().join("runtime.log"),
        &[],
    );
    let operator = Daemon::start(
        &["operator", "--providers", "local"],
        &admin_kc,
        dir.path().join("operator.log"),
        &[("KAAS_LOG", "debug,kube=info,hyper=info,tower=info")],
    );

    // Create: every addon applied once the API server answers, the credentials first.
    let api: Api<Cluster> = Api::namespaced(tenant.clone(), TENANT);
    let mut c: Cluster = serde_yaml::from_str(&format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: s1, namespace: {TENANT}}}\nspec:\n  provider: {{name: local}}\n  kubernetes: {{version: 1.35.4}}\n  workers: [{{name: default, count: 1, zones: [zone-a]}}]\n"
    ))
    .unwrap();
    c.status = None;
    let created = Instant::now();
    api.create(&PostParams::default(), &c).await.unwrap();
    let ready = until(
        "Ready and ExtensionsReady",
        Duration::from_secs(240),
        || async {
            let c = api.get("s1").await.map_err(|e| e.to_string())?;
            if condition(&c, "Ready") == Some("True")
                && condition(&c, "ExtensionsReady") == Some("True")
            {
                Ok(c)
            } else {
                Err(conditions(&c))
            }
        },
    )
    .await;
    eprintln!("FIGURE create → addons applied: {:.1?}", created.elapsed());
    let st = ready.status.clone().unwrap();
    let names: Vec<(&str, bool)> = st
        .extensions
        .iter()
        .map(|e| (e.name.as_str(), e.applied))
        .collect();
    assert_eq!(
        names,
        [
            ("cloud-credentials", true),
            ("cni", true),
            ("ccm", true),
            ("csi", true),
            ("metrics", true),
            ("gatewayAPI", true)
        ],
        "{:?}",
        st.extensions
    );
    let cni = st.extensions.iter().find(|e| e.name == "cni").unwrap();
    assert_eq!(cni.version.as_deref(), Some("1.20.2"));
    assert!(cni.objects > 20, "Cilium's chart: {cni:?}");

    let w = workload(&tenant, TENANT, "s1").await;
    assert_eq!(w.apiserver_version().await.unwrap().git_version, "v1.35.4");
    // Cilium from its own chart.
    Api::<DaemonSet>::namespaced(w.clone(), "kube-system")
        .get("cilium")
        .await
        .expect("Cilium's agent DaemonSet");
    Api::<Deployment>::namespaced(w.clone(), "kube-system")
        .get("cilium-operator")
        .await
        .expect("Cilium's operator");
    // The CSI's CRD went first, then its object; its StorageClass is the default.
    Api::<CustomResourceDefinition>::all(w.clone())
        .get("volumesnapshotclasses.snapshot.storage.k8s.io")
        .await
        .expect("the CSI's CRD");
    Api::<DynamicObject>::all_with(w.clone(), &vsc())
        .get("csi-cinder-snapclass")
        .await
        .expect("an object of the CSI's CRD");
    let sc = Api::<StorageClass>::all(w.clone())
        .get("csi-cinder-sc-delete")
        .await
        .unwrap();
    assert_eq!(
        sc.annotations()
            .get("storageclass.kubernetes.io/is-default-class")
            .map(String::as_str),
        Some("true")
    );
    // The cluster's values, resolved per cluster from overwrite.yaml's placeholders.
    let ccm = Api::<DaemonSet>::namespaced(w.clone(), "kube-system")
        .get("openstack-cloud-controller-manager")
        .await
        .unwrap();
    let args = ccm
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.contains(&"--cluster-name=s1".to_string()), "{args:?}");
    assert_eq!(ccm_version_annotation(&ccm).as_deref(), Some("1.35.4"));
    let ms = Api::<Deployment>::namespaced(w.clone(), "kube-system")
        .get("metrics-server")
        .await
        .expect("metrics-server from its chart");
    assert_eq!(
        ms.labels().get("scs.community/cluster").map(String::as_str),
        Some("s1")
    );

    // The tenant's credentials: in the workload cluster's kube-system, byte for byte; the
    // provider's identity nowhere in it.
    assert_eq!(workload_credentials(&w).await.unwrap(), clouds_yaml(first));
    let secrets = Api::<Secret>::all(w.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        secrets.len() > 1
            && !secrets
                .iter()
                .flat_map(|s| s.data.iter().flat_map(|d| d.values()))
                .any(|b| String::from_utf8_lossy(&b.0).contains(identity)),
        "the provider's Cluster API identity reached a workload cluster"
    );
    // Not for the tenant on the management side: not the Provider's Secret, and nowhere the
    // tenant's token reads (secrets, config maps, events of its namespaces; its Cluster's status).
    let denied = Api::<Secret>::namespaced(tenant.clone(), &pns)
        .get("openstack-credentials")
        .await
        .expect_err("the tenant must not read the Provider's credentials");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied:?}"
    );
    let provider_side = kaas_render::capi_namespace("local", TENANT);
    let readable = tenant_readable_text(&tenant, &provider_side).await;
    assert!(
        readable.contains("s1"),
        "the walk reads the tenant's objects"
    );
    assert!(
        !readable.contains(first),
        "the credentials are readable by the tenant"
    );
    assert!(
        !operator.text().contains(first),
        "the credentials are in the operator's log"
    );

    // Rotation: the tenant's Secret changes (and the rotation tooling annotates the Provider).
    let second = "app-cred-7c1d0e55-second";
    creds
        .patch(
            TENANT_CREDENTIALS,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&serde_json::json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"clouds.yaml": clouds_yaml(second)}})),
        )
        .await
        .unwrap();
    Api::<Provider>::all(admin.clone())
        .patch(
            "local",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"scs.community/credentials-rotated": "1"}}})),
        )
        .await
        .unwrap();
    let t = Instant::now();
    until(
        "rotated credentials in the workload cluster",
        Duration::from_secs(60),
        || async {
            match workload_credentials(&w).await? {
                c if c == clouds_yaml(second) => Ok(()),
                _ => Err("still the first credentials".into()),
            }
        },
    )
    .await;
    eprintln!(
        "FIGURE rotation → workload Secret updated: {:.1?}",
        t.elapsed()
    );
    let readable = tenant_readable_text(&tenant, &provider_side).await;
    assert!(!readable.contains(second) && !operator.text().contains(second));

    // Upgrade to 1.36.3: held while the 1.36 bundle's BeforeClusterUpgrade addons cannot all be
    // applied (its cni manifests are not published yet), the others already applied for 1.36.3.
    api.patch(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"kubernetes": {"version": "1.36.3"}}})),
    )
    .await
    .unwrap();
    let held = until("upgrade held", Duration::from_secs(60), || async {
        let c = api.get("s1").await.map_err(|e| e.to_string())?;
        let s = conditions(&c);
        if s.contains("waits for the BeforeClusterUpgrade addons of bundle stack-1-36")
            && s.contains("cni:")
        {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await;
    eprintln!("held: {held}");
    until("an UpgradeHeld event", Duration::from_secs(30), || async {
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(tenant.clone(), TENANT)
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        events
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("UpgradeHeld"))
            .map(|_| ())
            .ok_or_else(|| format!("{} events, none UpgradeHeld", events.items.len()))
    })
    .await;
    until(
        "1.36's ccm applied before the upgrade",
        Duration::from_secs(60),
        || async {
            let d = Api::<DaemonSet>::namespaced(w.clone(), "kube-system")
                .get("openstack-cloud-controller-manager")
                .await
                .map_err(|e| e.to_string())?;
            match ccm_version_annotation(&d) {
                Some(v) if v == "1.36.3" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        w.apiserver_version().await.unwrap().git_version,
        "v1.35.4",
        "the control plane waits for the hook"
    );
    // Published: the hook completes and the upgrade proceeds.
    publish(&admin, &pns, std::slice::from_ref(&cni136)).await;
    let t = Instant::now();
    until(
        "upgraded with the 1.36 bundle",
        Duration::from_secs(240),
        || async {
            let c = api.get("s1").await.map_err(|e| e.to_string())?;
            let s = conditions(&c);
            if c.status
                .as_ref()
                .and_then(|s| s.kubernetes_version.as_deref())
                == Some("v1.36.3")
                && condition(&c, "Ready") == Some("True")
                && condition(&c, "ExtensionsReady") == Some("True")
                && s.contains("bundle stack-1-36 applied")
            {
                Ok(())
            } else {
                Err(s)
            }
        },
    )
    .await;
    eprintln!(
        "FIGURE hook released → upgraded and addons applied: {:.1?}",
        t.elapsed()
    );
    let w = workload(&tenant, TENANT, "s1").await;
    assert_eq!(w.apiserver_version().await.unwrap().git_version, "v1.36.3");
    assert_eq!(workload_credentials(&w).await.unwrap(), clouds_yaml(second));

    // Delete: the credentials go with the workload cluster's control plane and its data.
    api.delete("s1", &DeleteParams::default()).await.unwrap();
    until("Cluster deleted", Duration::from_secs(120), || async {
        match api.get_opt("s1").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(conditions(&c)),
        }
    })
    .await;
    assert!(
        workload_credentials(&w).await.is_err(),
        "the workload API server is gone"
    );
    let leftover: Vec<PathBuf> = walk(&state);
    assert!(
        leftover
            .iter()
            .all(|p| !p.to_string_lossy().contains("/s1")),
        "data of s1 left on disk: {leftover:?}"
    );
    assert!(!operator.text().contains(first) && !operator.text().contains(second));
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
