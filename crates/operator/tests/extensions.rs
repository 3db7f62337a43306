//! Extensions on an imported cluster, against two real API servers: the management plane and a
//! second kube-apiserver as the workload cluster. Every addon object is created there, status
//! per extension and `ExtensionsReady` are reported; objects removed from the bundle are pruned,
//! a disabled optional extension is removed, a broken manifest is reported without touching what
//! its addon had, and the rest of the cluster's handling goes on. Every Namespace kaas applies
//! carries Pod Security labels that the SCS pod-security check accepts.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "tenant-imp";
const PROVIDER_NS: &str = "kaas-provider-imported";

fn provider() -> Provider {
    serde_yaml::from_str(
        "apiVersion: scs.community/v1alpha1
kind: Provider
metadata: {name: imported}
spec:
  providerType: static
  backend: {type: Static, namespace: kaas-provider-imported}
  regions: [{name: onprem}]
  flavors: [{name: any, cpu: 1, memory: 1Gi}]
  kubernetesVersions:
  - {version: 1.36.3, classification: supported, stack: {clusterClass: none, addons: bundle-a}}
  extensions:
  - {name: metrics, version: '0.8', default: true}
  - {name: ingress, version: '1.13', default: true, implementations: [nginx]}
  - {name: certManager, version: '1.19'}
",
    )
    .unwrap()
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(PROVIDER_NS.into()),
            labels: Some(BTreeMap::from([(
                "scs.community/addon-bundle".to_string(),
                "bundle-a".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

const INDEX: &str = "name: bundle-a
addons:
- {name: cni, stage: base, version: '1.0', manifests: [cni.yaml]}
- {name: metrics, stage: extension, version: '0.8', manifests: [bundle-a-metrics/manifest.yaml]}
- {name: ingress, stage: extension, version: '1.13', implementation: nginx, manifests: [ingress.yaml]}
- {name: certManager, stage: extension, version: '1.19', manifests: [cm.yaml]}
";
const CNI: &str = "apiVersion: v1
kind: Namespace
metadata: {name: kaas-system}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: networks.cni.example.org}
spec:
  group: cni.example.org
  names: {kind: Network, plural: networks}
  scope: Cluster
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
---
apiVersion: cni.example.org/v1
kind: Network
metadata: {name: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cni-config, namespace: kube-system}
data: {mtu: '1450'}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cni-legacy, namespace: kube-system}
data: {old: 'true'}
";
const METRICS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: metrics}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: metrics-server, namespace: metrics}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: metrics-server, namespace: metrics}
spec:
  replicas: 1
  selector: {matchLabels: {app: metrics-server}}
  template:
    metadata: {labels: {app: metrics-server}}
    spec: {containers: [{name: m, image: registry.example/metrics-server:v0.8}]}
";
const INGRESS: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx, namespace: kube-system}
data: {class: nginx}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ingress-nginx
  labels: {app.kubernetes.io/name: ingress-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: ingress-nginx}
spec:
  replicas: 1
  selector: {matchLabels: {app: controller}}
  template:
    metadata: {labels: {app: controller}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: controller
        image: registry.example/ingress-nginx:v1.13
        securityContext: {allowPrivilegeEscalation: false, runAsUser: 101, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: chosen-by-the-bundle
  labels: {pod-security.kubernetes.io/enforce: baseline}
";

/// Every Namespace kaas applied (it carries the addon label) has the Pod Security labels, with
/// the expected enforce level, and the SCS pod-security check passes on them.
async fn assert_pod_security(workload: &kube::Client, want: &[(&str, &str)]) {
    use k8s_openapi::api::core::v1::Namespace;
    let applied = Api::<Namespace>::all(workload.clone())
        .list(&kube::api::ListParams::default().labels("scs.community/addon"))
        .await
        .unwrap();
    let mut seen: Vec<(String, String)> = Vec::new();
    for ns in &applied.items {
        let name = ns.metadata.name.clone().unwrap();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        let enforce = labels
            .get("pod-security.kubernetes.io/enforce")
            .unwrap_or_else(|| panic!("namespace {name} without enforce label: {labels:?}"))
            .clone();
        for l in ["audit", "warn"] {
            assert_eq!(
                labels.get(&format!("pod-security.kubernetes.io/{l}")),
                Some(&enforce),
                "{name}: {l} follows enforce"
            );
        }
        seen.push((name, enforce));
    }
    seen.sort();
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(n, l)| (n.to_string(), l.to_string()))
        .collect();
    want.sort();
    assert_eq!(seen, want);
    // The compliance check accepts them (`default` belongs to the test API server, not to kaas).
    let mut opts = kaas_check::CheckOptions::default();
    opts.psa_exempt_namespaces.push("default".into());
    let report = kaas_check::run_static(workload.clone(), &opts).await;
    let psa = report
        .results
        .iter()
        .find(|r| r.id == "pod-security-labels-check")
        .expect("the pod-security labels check ran");
    assert_eq!(
        psa.outcome,
        kaas_check::Outcome::Pass,
        "{}: {:?}",
        psa.summary,
        psa
    );
}
const CERT_MANAGER: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: cert-manager, namespace: kube-system}
data: {enabled: 'true'}
";

/// Waits (bounded) until the ConfigMap is present or absent in the workload cluster.
async fn until_configmap(workload: &kube::Client, ns: &str, name: &str, present: bool, what: &str) {
    until(what, Duration::from_secs(60), || async {
        if exists(workload, ns, name).await == present {
            Ok(())
        } else {
            Err(format!("{ns}/{name} present: {}", !present))
        }
    })
    .await;
}

async fn exists(workload: &kube::Client, ns: &str, name: &str) -> bool {
    Api::<ConfigMap>::namespaced(workload.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn extensions_on_an_imported_cluster_are_applied_pruned_and_reported() {
    let mgmt = plane(false).await;
    let admin = mgmt.client();
    let workload_plane = Plane::start(PlaneOptions::minimal())
        .await
        .expect("workload API server");
    let workload = workload_plane.client();

    kaas_operator::install::provider(&admin, &provider(), "")
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), PROVIDER_NS);
    let pp = PatchParams::apply("test").force();
    cms.patch(
        "bundle-a",
        &pp,
        &Patch::Apply(cm(
            "bundle-a",
            &[
                ("bundle.yaml", INDEX),
                ("cni.yaml", CNI),
                ("ingress.yaml", INGRESS),
                ("cm.yaml", CERT_MANAGER),
            ],
        )),
    )
    .await
    .unwrap();
    cms.patch(
        "bundle-a-metrics",
        &pp,
        &Patch::Apply(cm("bundle-a-metrics", &[("manifest.yaml", METRICS)])),
    )
    .await
    .unwrap();

    kaas_operator::install::namespace(&admin, NS, &[])
        .await
        .unwrap();
    let kubeconfig = workload_plane.kubeconfig_yaml(Identity::Admin).unwrap();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("existing".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "value".to_string(),
            ByteString(kubeconfig.into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The provider's release-data ConfigMap: current data (listed up to today), in which v1.36.3
    // is the newest patch of its branch.
    let today = k8s_openapi::jiff::Zoned::now().date().to_string();
    let release_data = format!(
        "source: test data\nreleases_as_of: {today}\ncves_as_of: {today}\nbranches:\n  - branch: \"1.36\"\n    end_of_life: 2027-06-28\n    patches: [[1.36.0, 2026-04-22], [1.36.3, 2026-07-15]]\n"
    );
    kaas_operator::install::namespace(&admin, "kaas-system", &[])
        .await
        .unwrap();
    let system_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "kaas-system");
    let mut data_cm = cm(
        "kaas-release-data",
        &[(kaas_operator::compliance::RELEASE_DATA_KEY, &release_data)],
    );
    data_cm.metadata.namespace = Some("kaas-system".into());
    system_cms
        .patch("kaas-release-data", &pp, &Patch::Apply(data_cm))
        .await
        .unwrap();
    let _op = tokio::spawn(kaas_operator::run(
        admin.clone(),
        kaas_operator::Config {
            concurrency: 8,
            release_data: Some("kaas-system/kaas-release-data".parse().unwrap()),
            ..Default::default()
        },
    ));

    create(
        &admin,
        &cluster(
            "imp",
            NS,
            "provider: {name: imported}\nimport: {kubeconfigSecretRef: {name: existing}}",
        ),
    )
    .await;
    let api: Api<Cluster> = Api::namespaced(admin.clone(), NS);
    let c = until(
        "Ready and ExtensionsReady",
        Duration::from_secs(90),
        || async {
            let c = api.get("imp").await.map_err(|e| e.to_string())?;
            let ok = |t| condition(&c, t).is_some_and(|x| x.0 == "True");
            if ok("Ready") && ok("ExtensionsReady") {
                Ok(c)
            } else {
                Err(summary(&c))
            }
        },
    )
    .await;
    let st = c.status.unwrap();
    assert_eq!(st.kubernetes_version.as_deref(), Some("v1.36.3"));
    let names: Vec<&str> = st.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["cni", "metrics", "ingress"],
        "base first; certManager is not enabled"
    );
    assert!(st.extensions.iter().all(|e| e.applied));
    let metrics = st.extensions.iter().find(|e| e.name == "metrics").unwrap();
    assert_eq!(metrics.objects, 3);
    assert_eq!(
        metrics.workloads_available,
        Some(false),
        "no kubelet in the test cluster: the Deployment cannot be available"
    );
    // Every addon object exists in the workload cluster, with its addon label.
    for (ns, name) in [
        ("kube-system", "cni-config"),
        ("kube-system", "cni-legacy"),
        ("kube-system", "ingress-nginx"),
    ] {
        assert!(exists(&workload, ns, name).await, "{ns}/{name}");
    }
    let dep =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(workload.clone(), "metrics")
            .get("metrics-server")
            .await
            .unwrap();
    assert_eq!(
        dep.metadata.labels.unwrap()["scs.community/addon"],
        "metrics"
    );
    let nets = Api::<kube::api::DynamicObject>::all_with(
        workload.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("cni.example.org", "v1", "Network"),
            "networks",
        ),
    );
    assert!(
        nets.get_opt("default").await.unwrap().is_some(),
        "a custom resource right after its CRD"
    );
    assert!(!exists(&workload, "kube-system", "cert-manager").await);
    // Pod Security labels on every Namespace kaas applied: restricted where no workload or only
    // hardened ones run, baseline for the plain metrics-server Deployment, the bundle's own kept.
    assert_pod_security(
        &workload,
        &[
            ("kaas-system", "restricted"),
            ("metrics", "baseline"),
            ("ingress-nginx", "restricted"),
            ("chosen-by-the-bundle", "baseline"),
        ],
    )
    .await;

    // Continuous compliance: the static SCS checks ran against the imported cluster, judged
    // with the release data of the provider's ConfigMap. Its version is current, so the one
    // mandatory static testcase passes; no default StorageClass (scs-0211, outside the scope) and
    // no nodes (node distribution: manual, preview) are named but fail nothing.
    let (status, reason, message) =
        until("Compliant condition", Duration::from_secs(60), || async {
            let c = api.get("imp").await.map_err(|e| e.to_string())?;
            condition(&c, "Compliant").ok_or_else(|| summary(&c))
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ChecksPassed"),
        "{message}"
    );
    assert!(
        message.contains("not part of the certificate: ")
            && message.contains("default-storage-class-check WARN (outside)"),
        "{message}"
    );
    assert!(
        message.contains("release data: ConfigMap kaas-system/kaas-release-data (test data)"),
        "{message}"
    );
    let c = api.get("imp").await.unwrap();
    let compliance = c.status.unwrap().compliance.unwrap();
    assert_eq!(
        (compliance.passed, compliance.failed, compliance.aborted),
        (1, 0, 0),
        "{compliance:?}"
    );
    assert!(compliance.warnings >= 1, "{compliance:?}");
    assert_eq!(
        compliance.release_data_source.as_deref(),
        Some("ConfigMap kaas-system/kaas-release-data (test data)")
    );
    assert_eq!(
        compliance.release_data_as_of.as_deref(),
        Some(today.as_str())
    );
    assert!(
        compliance
            .release_data_age_days
            .is_some_and(|d| (0..=1).contains(&d)),
        "{compliance:?}"
    );
    let report = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .get(&compliance.report_config_map)
        .await
        .unwrap();
    let data = report.data.unwrap();
    assert!(data["scs.yaml"].contains("1fffebe6-fd4b-44d3-a36c-fc58b4bb0180"));
    assert!(data["report.txt"].contains("default-storage-class-check"));
    assert!(data["report.txt"].contains("Release data: ConfigMap kaas-system/kaas-release-data"));

    // The provider removes its ConfigMap: the next check (after the next spec change) falls back
    // to the bundled data, which is too old today — an explicit stale-data verdict that says
    // what to refresh.
    system_cms
        .delete("kaas-release-data", &Default::default())
        .await
        .unwrap();

    // The bundle drops an object: it is pruned.
    cms.patch("bundle-a", &pp, &Patch::Apply(cm("bundle-a", &[("bundle.yaml", INDEX), ("cni.yaml", &CNI.replace("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cni-legacy, namespace: kube-system}\ndata: {old: 'true'}\n", "")), ("ingress.yaml", INGRESS), ("cm.yaml", CERT_MANAGER)]))).await.unwrap();
    until_configmap(
        &workload,
        "kube-system",
        "cni-legacy",
        false,
        "removed object pruned",
    )
    .await;
    assert!(exists(&workload, "kube-system", "cni-config").await);

    // Enabling an optional extension installs it; disabling removes its objects.
    patch_spec(
        &admin,
        NS,
        "imp",
        json!({"extensions": {"certManager": {"enabled": true}}}),
    )
    .await;
    until_configmap(
        &workload,
        "kube-system",
        "cert-manager",
        true,
        "cert-manager installed",
    )
    .await;
    let (status, _, message) = until(
        "Compliant=Unknown for stale release data",
        Duration::from_secs(60),
        || async {
            let c = api.get("imp").await.map_err(|e| e.to_string())?;
            match condition(&c, "Compliant") {
                Some(x) if x.1 == "StaleReleaseData" => Ok(x),
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
    assert_eq!(status, "Unknown", "{message}");
    assert!(
        message.contains("version-policy-check (release data is ")
            && message.contains("ConfigMap kaas-system/kaas-release-data not found")
            && message.contains(
                "into key kubernetes-releases.yaml of ConfigMap kaas-system/kaas-release-data"
            ),
        "{message}"
    );
    let compliance = api
        .get("imp")
        .await
        .unwrap()
        .status
        .unwrap()
        .compliance
        .unwrap();
    assert!(
        compliance.release_data_age_days.is_some_and(|d| d > 190),
        "{compliance:?}"
    );
    assert!(
        compliance
            .release_data_source
            .as_deref()
            .is_some_and(|s| s.starts_with("bundled")),
        "{compliance:?}"
    );
    patch_spec(
        &admin,
        NS,
        "imp",
        json!({"extensions": {"certManager": {"enabled": false}}}),
    )
    .await;
    until_configmap(
        &workload,
        "kube-system",
        "cert-manager",
        false,
        "cert-manager removed",
    )
    .await;

    // A broken manifest: reported, nothing of that addon changes, the rest goes on.
    cms.patch(
        "bundle-a",
        &pp,
        &Patch::Apply(cm(
            "bundle-a",
            &[
                ("bundle.yaml", INDEX),
                ("cni.yaml", CNI),
                (
                    "ingress.yaml",
                    "kind: ConfigMap\nmetadata: {namespace: x}\n: broken",
                ),
                ("cm.yaml", CERT_MANAGER),
            ],
        )),
    )
    .await
    .unwrap();
    let (_, reason, message) = until(
        "ExtensionsReady=False naming the broken addon",
        Duration::from_secs(60),
        || async {
            let c = api.get("imp").await.map_err(|e| e.to_string())?;
            match condition(&c, "ExtensionsReady") {
                Some(x) if x.0 == "False" => Ok(x),
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
    assert_eq!(reason, "ApplyFailed");
    assert!(
        message.starts_with("ingress: not applied: manifest 0"),
        "{message}"
    );
    assert!(
        exists(&workload, "kube-system", "ingress-nginx").await,
        "the broken addon's objects stay as they were"
    );
    let c = api.get("imp").await.unwrap();
    assert_eq!(
        condition(&c, "Ready").unwrap().0,
        "True",
        "an addon problem does not block the cluster"
    );
    // The rest of the lifecycle proceeds: enabling cert-manager still works.
    patch_spec(
        &admin,
        NS,
        "imp",
        json!({"extensions": {"certManager": {"enabled": true}}}),
    )
    .await;
    until_configmap(
        &workload,
        "kube-system",
        "cert-manager",
        true,
        "cert-manager installed despite the broken ingress manifest",
    )
    .await;
}
