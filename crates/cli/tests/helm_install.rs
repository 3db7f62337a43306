//! The Helm chart installed for real: `helm install` of `deploy/helm/kaas` (helm v4, built by
//! `addons/build.sh`) into a real kube-apiserver and etcd (the harness's plain plane; the chart
//! needs no Cluster API), every rendered object accepted and present, the RBAC of the operator's
//! and the REST server's ServiceAccounts checked with SubjectAccessReviews against what the code
//! calls — allowed where needed, denied where not — then `helm upgrade` with changed values and
//! `helm uninstall`, after which the CRDs (and so every Cluster) and the tenant namespaces stay.
//!
//! What the operator needs is taken from its Kubernetes API calls (`crates/operator/src`, the
//! file named beside each check); `docs/install.md` explains what uninstalling keeps.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_harness::{Plane, PlaneOptions};
use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};

const RELEASE: &str = "kaas";
const NS: &str = "kaas-system";
/// The operator's ServiceAccount: the chart's full name, which is the release name here.
const OPERATOR_SA: &str = "kaas";
const SERVE_SA: &str = "kaas-serve";
const TENANT: &str = "tenant-a";
const TENANT_GROUP: &str = "oidc:tenant-a";
/// A provider namespace (`Provider.spec.backend.namespace`) and a provider-side namespace
/// (`kaas_render::capi_namespace`).
const PROVIDER_NS: &str = "kaas-provider-dev";
const CAPI_NS: &str = "kaas-dev-tenant-a-0123456789";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/kaas")
}

/// helm with its own configuration, cache and data directories and the plane's kubeconfig.
struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Helm {
    fn run(&self, args: &[&str]) -> String {
        let home = self.home.path();
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .expect("running helm");
        assert!(
            out.status.success(),
            "helm {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("helm prints UTF-8")
    }

    fn values_file(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, yaml).expect("writing values");
        path
    }

    /// The objects of the release's current revision.
    fn manifest(&self) -> Vec<Value> {
        let text = self.run(&["get", "manifest", RELEASE, "--namespace", NS]);
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).expect("helm's manifest is YAML"))
            .filter(|v| !v.is_null())
            .collect()
    }
}

fn id(o: &Value) -> String {
    format!(
        "{} {}/{}",
        o["kind"].as_str().unwrap_or_default(),
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The live object of a rendered one (kind resolved through discovery), if it exists.
async fn live(client: &Client, o: &Value) -> Option<DynamicObject> {
    let (group, version) = match o["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .split_once('/')
    {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            o["apiVersion"].as_str().unwrap_or_default().to_string(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, o["kind"].as_str().expect("kind"));
    let (ar, caps) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{}: the API server does not serve it: {e}", id(o)));
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            o["metadata"]["namespace"].as_str().unwrap_or(NS),
            &ar,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    };
    api.get_opt(o["metadata"]["name"].as_str().expect("name"))
        .await
        .unwrap_or_else(|e| panic!("reading {}: {e}", id(o)))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// One access check: `verb group/resource[/subresource]`, in a namespace ("" cluster-wide) and on
/// a name ("" any).
type Access = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

async fn allowed(client: &Client, user: &str, groups: &[&str], a: Access) -> bool {
    let (verb, group, resource, namespace, name) = a;
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: (!namespace.is_empty()).then(|| namespace.into()),
                name: (!name.is_empty()).then(|| name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.expect("a review has a status").allowed
}

/// Checks every access of `want` for a user; a list of the wrong answers.
async fn check(
    client: &Client,
    user: &str,
    groups: &[&str],
    want: bool,
    accesses: &[Access],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for &a in accesses {
        if allowed(client, user, groups, a).await != want {
            let (verb, group, resource, ns, name) = a;
            wrong.push(format!(
                "{user} {} {verb} {group}/{resource} namespace={ns:?} name={name:?}",
                if want { "cannot" } else { "can" }
            ));
        }
    }
    wrong
}

fn service_account(name: &str) -> (String, [&'static str; 3]) {
    (
        format!("system:serviceaccount:{NS}:{name}"),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:kaas-system",
            "system:authenticated",
        ],
    )
}

/// What the operator calls (file of the call in `crates/operator/src`).
#[rustfmt::skip]
const OPERATOR_NEEDS: &[Access] = &[
    // controller.rs: the watches of SCS Clusters, Cluster API Clusters and their
    // MachineDeployments, hosted control planes, Providers (also gitsource.rs, orphans.rs) and
    // addon-bundle ConfigMaps, cluster-wide.
    ("list", "scs.community", "clusters", "", ""),
    ("watch", "scs.community", "clusters", "", ""),
    ("list", "cluster.x-k8s.io", "clusters", "", ""),
    ("watch", "cluster.x-k8s.io", "clusters", "", ""),
    ("list", "cluster.x-k8s.io", "machinedeployments", "", ""),
    ("watch", "cluster.x-k8s.io", "machinedeployments", "", ""),
    // controller.rs: metadata of the provider-side namespaces (written only when missing or
    // changed; the orphan collector reads them there).
    ("watch", "", "namespaces", "", ""),
    ("list", "scs.community", "hostedcontrolplanes", "", ""),
    ("watch", "scs.community", "hostedcontrolplanes", "", ""),
    ("list", "scs.community", "providers", "", ""),
    // controller.rs: RoleBinding metadata cluster-wide (a tenant's change reaches its settled
    // clusters' viewer binding at once).
    ("list", "rbac.authorization.k8s.io", "rolebindings", "", ""),
    ("watch", "rbac.authorization.k8s.io", "rolebindings", "", ""),
    ("watch", "scs.community", "providers", "", ""),
    ("list", "", "configmaps", "", ""),
    ("watch", "", "configmaps", "", ""),
    // controller.rs: finalizer (merge patch) and status (server-side apply).
    ("patch", "scs.community", "clusters", TENANT, "c1"),
    ("patch", "scs.community", "clusters/status", TENANT, "c1"),
    // gitsource.rs, which starts crates/gitsource: the GitSource controller, its status, its
    // Secret, the Clusters it applies (server-side apply: create and patch) and prunes in its own
    // namespace.
    ("list", "scs.community", "gitsources", "", ""),
    ("watch", "scs.community", "gitsources", "", ""),
    ("patch", "scs.community", "gitsources/status", TENANT, "g1"),
    ("get", "", "secrets", TENANT, "git-credentials"),
    ("create", "scs.community", "clusters", TENANT, ""),
    ("delete", "scs.community", "clusters", TENANT, "c1"),
    // orphans.rs: is the SCS Cluster still there, its Provider; provider-side namespaces.
    ("get", "scs.community", "clusters", TENANT, "c1"),
    ("get", "scs.community", "providers", "", "dev"),
    ("list", "", "namespaces", "", ""),
    ("delete", "", "namespaces", "", CAPI_NS),
    // provider.rs, verify.rs: ClusterClasses, bundles, dry-run probe Clusters, Provider status.
    ("get", "cluster.x-k8s.io", "clusterclasses", PROVIDER_NS, "in-memory"),
    ("list", "", "configmaps", PROVIDER_NS, ""),
    ("create", "cluster.x-k8s.io", "clusters", PROVIDER_NS, ""),
    ("patch", "scs.community", "providers/status", "", "dev"),
    // backend/capi.rs, hosted.rs, imported.rs: the provider-side namespace and the objects in it
    // (server-side apply), worker status, deletion.
    ("create", "", "namespaces", "", ""),
    ("patch", "", "namespaces", "", CAPI_NS),
    ("get", "cluster.x-k8s.io", "clusters", CAPI_NS, "c1"),
    ("create", "cluster.x-k8s.io", "clusters", CAPI_NS, ""),
    ("patch", "cluster.x-k8s.io", "clusters", CAPI_NS, "c1"),
    ("delete", "cluster.x-k8s.io", "clusters", CAPI_NS, "c1"),
    ("list", "cluster.x-k8s.io", "machinedeployments", CAPI_NS, ""),
    ("list", "cluster.x-k8s.io", "machines", CAPI_NS, ""),
    ("get", "scs.community", "hostedcontrolplanes", CAPI_NS, "c1"),
    ("create", "scs.community", "hostedcontrolplanes", CAPI_NS, ""),
    ("patch", "scs.community", "hostedcontrolplanes", CAPI_NS, "c1"),
    ("delete", "scs.community", "hostedcontrolplanes", CAPI_NS, "c1"),
    // backend/capi.rs: the provider credentials copied into the provider-side namespace, and
    // the tenants' viewer RoleBinding there (subjects from the tenant namespace's bindings).
    ("get", "", "secrets", PROVIDER_NS, "cloud-credentials"),
    ("create", "", "secrets", CAPI_NS, ""),
    ("patch", "", "secrets", CAPI_NS, "kaas-provider-credentials"),
    ("list", "rbac.authorization.k8s.io", "rolebindings", TENANT, ""),
    ("get", "rbac.authorization.k8s.io", "rolebindings", CAPI_NS, "kaas-tenant-capi-viewer"),
    ("create", "rbac.authorization.k8s.io", "rolebindings", CAPI_NS, ""),
    ("patch", "rbac.authorization.k8s.io", "rolebindings", CAPI_NS, "kaas-tenant-capi-viewer"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "kaas-capi-viewer"),
    // backend/autoscaler.rs: the cluster-autoscaler of a cluster with autoscaled pools.
    ("get", "", "serviceaccounts", CAPI_NS, "c1-autoscaler"),
    ("create", "", "serviceaccounts", CAPI_NS, ""),
    ("patch", "", "serviceaccounts", CAPI_NS, "c1-autoscaler"),
    ("delete", "", "serviceaccounts", CAPI_NS, "c1-autoscaler"),
    ("create", "apps", "deployments", CAPI_NS, ""),
    ("patch", "apps", "deployments", CAPI_NS, "c1-autoscaler"),
    ("delete", "apps", "deployments", CAPI_NS, "c1-autoscaler"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "kaas-cluster-autoscaler"),
    // backend/mod.rs, imported.rs: kubeconfigs read in the provider-side namespace (or the
    // tenant's, imported clusters) and copied into the tenant namespace.
    ("get", "", "secrets", CAPI_NS, "c1-kubeconfig"),
    ("get", "", "secrets", TENANT, "c1-kubeconfig"),
    ("create", "", "secrets", TENANT, ""),
    ("patch", "", "secrets", TENANT, "c1-kubeconfig"),
    // backend/mod.rs: a Provider with `access.adminKubeconfigSecret: false` removes the tenant's
    // long-lived copy (KubeconfigRequests issue short-lived ones instead).
    ("delete", "", "secrets", TENANT, "c1-kubeconfig"),
    // addons.rs: bundles by name, the per-cluster inventory; compliance.rs: the report.
    ("get", "", "configmaps", PROVIDER_NS, "dev-addons-1-35"),
    ("get", "", "configmaps", CAPI_NS, "c1-addons"),
    ("create", "", "configmaps", CAPI_NS, ""),
    ("patch", "", "configmaps", CAPI_NS, "c1-addons"),
    ("patch", "", "configmaps", TENANT, "c1-compliance"),
    // kube-runtime's event recorder (events.k8s.io/v1): create, then patch repeats.
    ("create", "events.k8s.io", "events", TENANT, ""),
    ("patch", "events.k8s.io", "events", TENANT, "c1.1"),
    // leader.rs: the Lease in the release namespace.
    ("get", "coordination.k8s.io", "leases", NS, "kaas-operator"),
    ("create", "coordination.k8s.io", "leases", NS, ""),
    ("update", "coordination.k8s.io", "leases", NS, "kaas-operator"),
];

/// What the operator never calls and must not be able to do.
#[rustfmt::skip]
const OPERATOR_MUST_NOT: &[Access] = &[
    // Secrets only by name: no listing or watching (every tenant's kubeconfigs).
    ("list", "", "secrets", "", ""),
    ("list", "", "secrets", TENANT, ""),
    ("watch", "", "secrets", "", ""),
    ("update", "", "secrets", TENANT, "c1-kubeconfig"),
    // Tenant-owned and provider-owned specs: the operator writes status only.
    ("create", "scs.community", "providers", "", ""),
    ("patch", "scs.community", "providers", "", "dev"),
    ("delete", "scs.community", "providers", "", "dev"),
    ("create", "scs.community", "gitsources", TENANT, ""),
    ("patch", "scs.community", "gitsources", TENANT, "g1"),
    ("delete", "scs.community", "gitsources", TENANT, "g1"),
    ("deletecollection", "scs.community", "clusters", TENANT, ""),
    // Addon bundles are the provider's.
    ("delete", "", "configmaps", PROVIDER_NS, "dev-addons-1-35"),
    // The CRDs and the deletion protection stay out of its reach.
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""),
    ("delete", "apiextensions.k8s.io", "customresourcedefinitions", "", "clusters.scs.community"),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions", "", "clusters.scs.community"),
    ("delete", "admissionregistration.k8s.io", "validatingadmissionpolicies", "", "clusters.scs.community-deletion-protection"),
    ("patch", "admissionregistration.k8s.io", "validatingadmissionpolicybindings", "", "clusters.scs.community-finalizer-protection"),
    // No escalation: binding only kaas-capi-viewer and kaas-cluster-autoscaler, no (Cluster)Roles, no impersonation, no tokens.
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "kaas-tenant"),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    ("create", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
    ("delete", "rbac.authorization.k8s.io", "rolebindings", TENANT, "kaas-tenant"),
    ("impersonate", "", "users", "", ""),
    ("impersonate", "", "serviceaccounts", NS, "kaas"),
    ("create", "", "serviceaccounts/token", NS, OPERATOR_SA),
    // No workloads, no nodes, no bootstrap data (KubeadmConfigs can carry file contents).
    ("create", "", "pods", NS, ""),
    ("create", "", "pods/exec", NS, "x"),
    // (Deployments: RBAC allows them for the cluster-autoscalers; the policy
    // kaas-operator-workloads confines them to provider-side namespaces.)
    ("list", "", "nodes", "", ""),
    ("get", "bootstrap.cluster.x-k8s.io", "kubeadmconfigs", CAPI_NS, "c1"),
    // Leases only in its own namespace, and never deleted.
    ("update", "coordination.k8s.io", "leases", "kube-system", "kube-controller-manager"),
    ("delete", "coordination.k8s.io", "leases", NS, "kaas-operator"),
];

/// `kaas serve` acts with each caller's token only: its ServiceAccount may do nothing.
#[rustfmt::skip]
const SERVE_MUST_NOT: &[Access] = &[
    ("list", "scs.community", "clusters", "", ""),
    ("get", "scs.community", "clusters", TENANT, "c1"),
    ("create", "scs.community", "clusters", TENANT, ""),
    ("list", "scs.community", "providers", "", ""),
    ("get", "", "secrets", TENANT, "c1-kubeconfig"),
    ("list", "", "secrets", "", ""),
    ("list", "", "namespaces", "", ""),
    ("list", "cluster.x-k8s.io", "clusters", "", ""),
    ("get", "", "configmaps", NS, "kube-root-ca.crt"),
    ("create", "authentication.k8s.io", "tokenreviews", "", ""),
    ("create", "", "serviceaccounts/token", NS, SERVE_SA),
    ("impersonate", "", "users", "", ""),
];

/// A tenant onboarded through `tenants.namespaces`.
#[rustfmt::skip]
const TENANT_CAN: &[Access] = &[
    ("create", "scs.community", "clusters", TENANT, ""),
    ("delete", "scs.community", "clusters", TENANT, "c1"),
    ("get", "", "secrets", TENANT, "c1-kubeconfig"),
    ("list", "scs.community", "providers", "", ""),
];
#[rustfmt::skip]
const TENANT_CANNOT: &[Access] = &[
    ("create", "scs.community", "clusters", "default", ""),
    ("patch", "scs.community", "clusters/status", TENANT, "c1"),
    ("get", "", "secrets", CAPI_NS, "c1-kubeconfig"),
    ("patch", "scs.community", "providers", "", "dev"),
];

const INSTALL_VALUES: &str = r#"
image:
  repository: registry.example.org/kaas/kaas
  tag: "0.1.0"
serve:
  enabled: true
tenants:
  namespaces:
    - name: tenant-a
      subjects:
        - kind: Group
          apiGroup: rbac.authorization.k8s.io
          name: "oidc:tenant-a"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn chart_installs_upgrades_and_uninstalls_on_a_real_api_server() {
    let t0 = std::time::Instant::now();
    let bin = kaas_harness::helm_binary().expect("helm from addons/build.sh");
    let plane = Plane::start(PlaneOptions::minimal())
        .await
        .expect("the plane starts");
    let client = plane.client();
    let helm = Helm {
        bin,
        home: tempfile::tempdir().expect("helm home"),
        kubeconfig: plane.kubeconfig_path(),
    };
    let chart = chart();
    let chart = chart.to_str().expect("UTF-8 path");

    // Install, into a namespace that enforces the restricted Pod Security Standard.
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }))
    .expect("a Namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("creating the release namespace");
    let values = helm.values_file("install.yaml", INSTALL_VALUES);
    let values = values.to_str().expect("UTF-8 path");
    helm.run(&[
        "install",
        RELEASE,
        chart,
        "--namespace",
        NS,
        "--values",
        values,
    ]);
    let status: Value = serde_json::from_str(&helm.run(&[
        "status",
        RELEASE,
        "--namespace",
        NS,
        "--output",
        "json",
    ]))
    .expect("helm status -o json");
    assert_eq!(
        status["info"]["status"].as_str(),
        Some("deployed"),
        "{status}"
    );

    // Every CRD of crds/ is there and served.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let chart_crds: Vec<String> = std::fs::read_dir(Path::new(chart).join("crds"))
        .expect("crds/")
        .map(|e| {
            e.expect("entry")
                .path()
                .file_stem()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(chart_crds.len() >= 4, "CRDs of the chart: {chart_crds:?}");
    for name in &chart_crds {
        let crd = crds
            .get_opt(name)
            .await
            .expect("reading a CRD")
            .unwrap_or_else(|| panic!("CRD {name} is not installed"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not Established");
    }

    // Every object of the release was accepted and is there.
    let objects = helm.manifest();
    for o in &objects {
        assert!(live(&client, o).await.is_some(), "{} is missing", id(o));
    }
    for (kind, name) in [
        ("Deployment", "kaas"),
        ("Deployment", "kaas-serve"),
        ("ServiceAccount", OPERATOR_SA),
        ("ServiceAccount", SERVE_SA),
        ("ClusterRole", "kaas-operator"),
        ("ClusterRoleBinding", "kaas-operator"),
        ("Role", "kaas-leader-election"),
        ("ClusterRole", "kaas-tenant"),
        ("ClusterRole", "kaas-capi-viewer"),
        ("ClusterRole", "kaas-cluster-autoscaler"),
        ("ValidatingAdmissionPolicy", "kaas-operator-workloads"),
        ("ValidatingAdmissionPolicy", "kaas-operator-namespaces"),
        ("RoleBinding", "kaas-tenant"),
        ("Namespace", TENANT),
        (
            "ValidatingAdmissionPolicy",
            "clusters.scs.community-deletion-protection",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "clusters.scs.community-finalizer-protection",
        ),
        // One instance handles every provider, and the API server (1.36) serves the API.
        (
            "MutatingAdmissionPolicy",
            kaas_api::policy::FINALIZER_AT_CREATION,
        ),
        (
            "MutatingAdmissionPolicyBinding",
            kaas_api::policy::FINALIZER_AT_CREATION,
        ),
        ("PodDisruptionBudget", "kaas"),
        ("Service", "kaas-metrics"),
    ] {
        assert!(
            find(&objects, kind, name).is_some(),
            "the release has no {kind} {name}"
        );
    }
    // The server's pod has its own ServiceAccount and no token of it; the operator's has one.
    let serve_pod =
        &find(&objects, "Deployment", "kaas-serve").expect("serve")["spec"]["template"]["spec"];
    assert_eq!(serve_pod["serviceAccountName"].as_str(), Some(SERVE_SA));
    assert_eq!(
        serve_pod["automountServiceAccountToken"].as_bool(),
        Some(false)
    );
    let operator_pod =
        &find(&objects, "Deployment", "kaas").expect("operator")["spec"]["template"]["spec"];
    assert_eq!(
        operator_pod["serviceAccountName"].as_str(),
        Some(OPERATOR_SA)
    );
    assert_eq!(
        operator_pod["automountServiceAccountToken"].as_bool(),
        Some(true)
    );

    // The pods the Deployments would create pass the restricted Pod Security Standard (dry run:
    // this plane runs no Deployment controller), as the image's non-root user.
    for name in ["kaas", "kaas-serve"] {
        let template =
            &find(&objects, "Deployment", name).expect("a Deployment")["spec"]["template"];
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("{name}-dry-run"), "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }))
        .expect("a Pod from the template");
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let admitted = Api::<Pod>::namespaced(client.clone(), NS)
            .create(&dry_run, &pod)
            .await
            .unwrap_or_else(|e| panic!("a pod of Deployment {name} is refused: {e}"));
        let user = admitted
            .spec
            .and_then(|s| s.security_context)
            .and_then(|c| c.run_as_user);
        assert_eq!(
            user,
            Some(65532),
            "{name}: the image's user (Containerfile)"
        );
    }

    // RBAC, as the API server decides it.
    let (operator, operator_groups) = service_account(OPERATOR_SA);
    let (serve, serve_groups) = service_account(SERVE_SA);
    let tenant_groups = [TENANT_GROUP, "system:authenticated"];
    let mut wrong = Vec::new();
    wrong.extend(check(&client, &operator, &operator_groups, true, OPERATOR_NEEDS).await);
    wrong.extend(
        check(
            &client,
            &operator,
            &operator_groups,
            false,
            OPERATOR_MUST_NOT,
        )
        .await,
    );
    wrong.extend(check(&client, &serve, &serve_groups, false, SERVE_MUST_NOT).await);
    wrong.extend(check(&client, "alice", &tenant_groups, true, TENANT_CAN).await);
    wrong.extend(check(&client, "alice", &tenant_groups, false, TENANT_CANNOT).await);
    // The default offering-reader group reads the offerings and nothing else.
    let reader = ["kaas:tenants", "system:authenticated"];
    wrong.extend(
        check(
            &client,
            "bob",
            &reader,
            true,
            &[("list", "scs.community", "providers", "", "")],
        )
        .await,
    );
    wrong.extend(
        check(
            &client,
            "bob",
            &reader,
            false,
            &[("create", "scs.community", "clusters", TENANT, "")],
        )
        .await,
    );
    assert!(
        wrong.is_empty(),
        "RBAC differs from what the code needs:\n{}",
        wrong.join("\n")
    );

    // Upgrade with changed values: more replicas, another concurrency, the server switched off,
    // the operator limited to one provider (so no policy may give every Cluster its finalizer: a
    // Cluster of another provider would keep it).
    helm.run(&[
        "upgrade",
        RELEASE,
        chart,
        "--namespace",
        NS,
        "--values",
        values,
        "--set",
        "replicas=3",
        "--set",
        "concurrency=4",
        "--set",
        "serve.enabled=false",
        "--set",
        "providers={dev}",
    ]);
    let upgraded = helm.manifest();
    let deployment = live(
        &client,
        find(&upgraded, "Deployment", "kaas").expect("the operator's Deployment"),
    )
    .await
    .expect("the operator's Deployment after the upgrade");
    assert_eq!(deployment.data["spec"]["replicas"].as_i64(), Some(3));
    let args = &deployment.data["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .is_some_and(|a| a.iter().any(|x| x == "--concurrency=4")),
        "args after the upgrade: {args}"
    );
    let mut gone_after_upgrade = vec![
        ("Deployment", "kaas-serve"),
        ("ServiceAccount", "kaas-serve"),
        ("Service", "kaas-serve"),
    ];
    for kind in ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"] {
        gone_after_upgrade.push((kind, kaas_api::policy::FINALIZER_AT_CREATION));
    }
    for (gone, name) in gone_after_upgrade {
        assert!(find(&upgraded, gone, name).is_none());
        let was = find(&objects, gone, name).expect("installed before");
        assert!(
            live(&client, was).await.is_none(),
            "{} is left after the upgrade switched serve off and limited the providers",
            id(was)
        );
    }
    let history: Value = serde_json::from_str(&helm.run(&[
        "history",
        RELEASE,
        "--namespace",
        NS,
        "--output",
        "json",
    ]))
    .expect("helm history -o json");
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");

    // Uninstall: the release's objects go; the CRDs (and with them every Cluster and Provider)
    // and the tenant namespaces stay.
    helm.run(&["uninstall", RELEASE, "--namespace", NS, "--wait"]);
    for o in &upgraded {
        let stays = o["kind"] == "Namespace";
        let found = live(&client, o).await;
        if stays {
            assert!(found.is_some(), "{} was deleted by helm uninstall", id(o));
        } else {
            // Namespaced objects may still be terminating; gone or going is fine.
            let going = found
                .as_ref()
                .is_none_or(|f| f.metadata.deletion_timestamp.is_some());
            assert!(going, "{} is left after helm uninstall", id(o));
        }
    }
    for name in &chart_crds {
        assert!(
            crds.get_opt(name).await.expect("reading a CRD").is_some(),
            "helm uninstall deleted CRD {name}: every Cluster would have gone with it"
        );
    }
    eprintln!(
        "helm install, upgrade and uninstall checked in {:?}",
        t0.elapsed()
    );
}
