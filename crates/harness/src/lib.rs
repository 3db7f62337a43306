//! A real management plane on this machine: etcd, kube-apiserver, kube-controller-manager and
//! the Cluster API managers (core, kubeadm bootstrap, kubeadm control plane, and the Docker
//! provider with its in-memory backend), built from the pinned Go modules by `plane/build.sh`.
//!
//! * Tests: [`Plane::start`] starts a plane on free ports in a temporary directory; dropping it
//!   (or the test process dying) kills every process.
//! * `kaas dev up/down/env`: [`dev_up`], [`dev_down`], [`dev_env`] run a persistent, detached plane
//!   in a fixed directory.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kaas_harness::{Plane, PlaneOptions};
//! let plane = Plane::start(PlaneOptions::minimal()).await?;
//! let client = plane.client();
//! # Ok(()) }
//! ```

pub mod apply;
pub mod capi;
pub mod certs;
pub mod dev;
pub mod locate;
pub mod oidc;
mod plane;
pub mod process;
pub mod s3;

pub use apply::{apply_object, apply_yaml, dynamic_api, envsubst, install_crds};
pub use dev::{DevOptions, DevStatus, default_dev_dir, dev_down, dev_env, dev_status, dev_up};
pub use locate::{PlaneArtifacts, Versions, repo_root, versions};
pub use plane::{Identity, Plane, PlaneOptions, PlanePorts, TokenUser};

/// The upstream in-memory ClusterClass and its templates (`clusterclass-in-memory.yaml`).
pub fn in_memory_cluster_class(artifacts: &PlaneArtifacts) -> anyhow::Result<String> {
    let path = artifacts.template("clusterclass-in-memory.yaml");
    std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
}

/// The upstream in-memory Cluster template (`cluster-template-in-memory.yaml`) rendered for a
/// cluster on the `in-memory` ClusterClass in the same namespace.
pub fn in_memory_cluster(
    artifacts: &PlaneArtifacts,
    name: &str,
    namespace: &str,
    kubernetes_version: &str,
    control_plane_replicas: u32,
    worker_replicas: u32,
) -> anyhow::Result<String> {
    let path = artifacts.template("cluster-template-in-memory.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let (cp, workers) = (
        control_plane_replicas.to_string(),
        worker_replicas.to_string(),
    );
    envsubst(
        &text,
        &[
            ("CLUSTER_NAME", name),
            ("NAMESPACE", namespace),
            ("KUBERNETES_VERSION", kubernetes_version),
            ("CONTROL_PLANE_MACHINE_COUNT", &cp),
            ("WORKER_MACHINE_COUNT", &workers),
        ],
    )
}

/// An addon bundle ConfigMap `name` in `namespace` for the `dev` provider (base, metrics, ingress
/// and Gateway API addons) of kinds the in-memory backend's fake workload API server serves (it
/// has no server-side apply: kaas falls back to create/replace there); its base addon writes the
/// ConfigMap `kube-system/kaas-stack` naming the bundle.
pub fn in_memory_addon_bundle(
    name: &str,
    namespace: &str,
) -> k8s_openapi::api::core::v1::ConfigMap {
    let index = format!(
        "name: {name}\naddons:\n- {{name: kaas-base, stage: base, version: '1', manifests: [base.yaml]}}\n- {{name: metrics, stage: extension, version: '0.8', manifests: [metrics.yaml]}}\n- {{name: ingress, stage: extension, version: '1.13', implementation: nginx, manifests: [ingress.yaml]}}\n- {{name: gatewayAPI, stage: extension, version: '1.5.1', implementation: envoy-gateway, manifests: [gateway.yaml]}}\n"
    );
    let base = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kaas-stack, namespace: kube-system}}\ndata: {{bundle: {name}}}\n"
    );
    let metrics = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: metrics-server, namespace: kube-system}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: metrics-server, namespace: kube-system}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: metrics-server}}\n  template:\n    metadata: {labels: {app: metrics-server}}\n    spec: {containers: [{name: m, image: registry.example/metrics-server:v0.8}]}\n";
    let ingress = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-nginx, namespace: kube-system}\ndata: {class: nginx}\n";
    // The dev provider's default edge extension (Envoy Gateway in the real bundles).
    let gateway = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: envoy-gateway, namespace: kube-system}\ndata: {class: eg}\n";
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"scs.community/addon-bundle": name}},
        "data": {"bundle.yaml": index, "base.yaml": base, "metrics.yaml": metrics, "ingress.yaml": ingress, "gateway.yaml": gateway},
    }))
    .expect("a ConfigMap")
}

/// The cache directory of `addons/build.sh` (run first; it builds only what its cache lacks):
/// the bundles, and the tools it built (`bin/helm`, `bin/bundle`).
pub fn addons_dir() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let root = repo_root().context("the kaas repository (for addons/build.sh) is not found")?;
    let out = std::process::Command::new("bash")
        .arg(root.join("addons/build.sh"))
        .arg("--print-dir")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running addons/build.sh")?;
    if !out.status.success() {
        anyhow::bail!("addons/build.sh failed ({})", out.status);
    }
    Ok(std::path::PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim(),
    ))
}

/// helm (v4, `HELM_VERSION` of `addons/versions.env`), built from its Go module by
/// `addons/build.sh` into its cache directory.
pub fn helm_binary() -> anyhow::Result<std::path::PathBuf> {
    let helm = addons_dir()?.join("bin/helm");
    if !helm.is_file() {
        anyhow::bail!(
            "{} is missing: addons/build.sh builds helm only while CERT_MANAGER_VERSION or ENVOY_GATEWAY_VERSION is pinned",
            helm.display()
        );
    }
    Ok(helm)
}

/// The addon-bundle ConfigMap manifests of the development providers, built by `addons/build.sh`
/// (run first; it builds only what its cache lacks), sorted by path.
pub fn addon_bundle_files() -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context as _;
    let dir = addons_dir()?.join("bundles");
    let mut files = Vec::new();
    for bundle in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        for f in std::fs::read_dir(bundle?.path())? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "yaml") {
                files.push(f);
            }
        }
    }
    files.sort();
    Ok(files)
}
