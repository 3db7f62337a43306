//! The cluster-autoscaler kaas runs per cluster with an autoscaled pool, on the real API server
//! with the operator in-process (Cluster API's CRDs, not its managers). What is proven is the
//! wiring, not the autoscaler's decisions: the upstream binary does not run here (its Go module
//! is refused by the module proxy of this machine and no container runtime runs). The objects are
//! accepted by the API server; the Deployment is added, follows the cluster's minor on upgrade, is
//! removed when no pool autoscales and when the cluster is deleted; and what the autoscaler's
//! ServiceAccount may do is asked of the API server's authorizer with SubjectAccessReviews:
//! exactly what the Cluster API provider of cluster-autoscaler needs, in its cluster's namespace.

mod common;

use std::time::Duration;

use common::{cluster, create, operator, patch_spec, plane, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kaas_api::Cluster;
use kaas_capi::machinedeployment::MachineDeployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

const NS: &str = "tenant-autoscale";
const OTHER: &str = "tenant-other";
const WAIT: Duration = Duration::from_secs(60);

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// The Deployment `name` in `ns` once `ok` holds for it (`None`: once it is gone).
async fn deployment_when(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(Option<&Deployment>) -> bool,
) -> Option<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(what, WAIT, || async {
        let d = api.get_opt(name).await.map_err(|e| e.to_string())?;
        if ok(d.as_ref()) {
            Ok(d)
        } else {
            Err(format!("{:?}", d.as_ref().map(image)))
        }
    })
    .await
}

/// Whether the autoscaler's ServiceAccount `sa` of namespace `sa_ns` may `verb` the `resource`
/// (`name/sub` for a subresource) of `group` in `ns` (`""`: cluster-wide).
async fn may(
    client: &Client,
    sa_ns: &str,
    sa: &str,
    (verb, group, resource, ns): (&str, &str, &str, &str),
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{sa_ns}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{sa_ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: (!ns.is_empty()).then(|| ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .expect("a review has a status")
        .allowed
}

/// The accesses of `want` the ServiceAccount gets wrong.
async fn wrong(
    client: &Client,
    sa_ns: &str,
    sa: &str,
    want: bool,
    accesses: &[(&str, &str, &str, &str)],
) -> Vec<String> {
    let mut out = Vec::new();
    for a in accesses {
        if may(client, sa_ns, sa, *a).await != want {
            out.push(format!("{a:?}"));
        }
    }
    out
}

#[tokio::test]
async fn the_autoscaler_is_added_follows_upgrades_and_goes_with_autoscaling_and_the_cluster() {
    let plane = plane(false).await;
    let client = plane.client();
    for ns in [NS, OTHER] {
        kaas_operator::install::namespace(&client, ns, &[])
            .await
            .unwrap();
    }
    let _op = operator(client.clone(), &[]);
    let capi_ns = kaas_render::capi_namespace("dev", NS);
    let other_capi_ns = kaas_render::capi_namespace("dev", OTHER);
    let sa = "elastic-autoscaler";

    // Added: a pool from 0 to 3 nodes.
    create(
        &client,
        &cluster(
            "elastic",
            NS,
            "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: w, minCount: 0, maxCount: 3}, {name: fixed, count: 1}]",
        ),
    )
    .await;
    let d = deployment_when(&client, &capi_ns, sa, "the autoscaler added", |d| {
        d.is_some()
    })
    .await
    .unwrap();
    assert_eq!(
        image(&d),
        "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0"
    );
    let pod = d.spec.clone().unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap_or_default();
    for flag in [
        "--cloud-provider=clusterapi".to_string(),
        "--clusterapi-cloud-config-authoritative".to_string(),
        "--kubeconfig=/etc/kubernetes/workload/value".to_string(),
        format!("--node-group-auto-discovery=clusterapi:namespace={capi_ns},clusterName=elastic"),
    ] {
        assert!(args.contains(&flag), "{flag} in {args:?}");
    }
    assert_eq!(pod.service_account_name.as_deref(), Some(sa));
    let secret = pod.volumes.unwrap()[0].secret.clone().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("elastic-kubeconfig"));
    let owner = d.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.kind == "Cluster" && o.name == "elastic"),
        "owned by the Cluster API Cluster: {owner:?}"
    );
    Api::<ServiceAccount>::namespaced(client.clone(), &capi_ns)
        .get(sa)
        .await
        .expect("its ServiceAccount");
    let rb = Api::<RoleBinding>::namespaced(client.clone(), &capi_ns)
        .get(sa)
        .await
        .expect("its RoleBinding");
    assert_eq!(rb.role_ref.name, kaas_render::autoscaler::CLUSTER_ROLE);

    // What its Cluster API provider needs, in its namespace.
    let capi = "cluster.x-k8s.io";
    let infra = "infrastructure.cluster.x-k8s.io";
    let needed: Vec<(&str, &str, &str, &str)> = [
        ("list", capi, "machinedeployments"),
        ("watch", capi, "machinedeployments"),
        ("get", capi, "machinedeployments"),
        ("list", capi, "machinesets"),
        ("watch", capi, "machinesets"),
        ("list", capi, "machines"),
        ("watch", capi, "machines"),
        ("update", capi, "machines"),
        ("patch", capi, "machines"),
        ("list", capi, "machinepools"),
        ("watch", capi, "machinepools"),
        ("get", capi, "machinedeployments/scale"),
        ("update", capi, "machinedeployments/scale"),
        ("patch", capi, "machinedeployments/scale"),
        ("update", capi, "machinesets/scale"),
        ("update", capi, "machinepools/scale"),
        ("get", infra, "devmachinetemplates"),
        ("list", infra, "devmachinetemplates"),
        ("watch", infra, "devmachinetemplates"),
    ]
    .into_iter()
    .map(|(v, g, r)| (v, g, r, capi_ns.as_str()))
    .collect();
    let missing = until("the autoscaler's rights", WAIT, || async {
        let w = wrong(&client, &capi_ns, sa, true, &needed).await;
        if w.is_empty() {
            Ok(w)
        } else {
            Err(w.join(", "))
        }
    })
    .await;
    assert!(missing.is_empty());
    // And nothing else: no Secrets anywhere (the kubeconfig is mounted), nothing outside its
    // namespace, no other verbs or kinds.
    let denied: Vec<(&str, &str, &str, &str)> = vec![
        ("get", "", "secrets", &capi_ns),
        ("list", "", "secrets", &capi_ns),
        ("watch", "", "secrets", &capi_ns),
        ("get", "", "secrets", &other_capi_ns),
        ("get", "", "secrets", "kaas-provider-dev"),
        ("get", "", "secrets", NS),
        ("list", "", "secrets", ""),
        ("list", capi, "machinedeployments", &other_capi_ns),
        ("update", capi, "machinedeployments/scale", &other_capi_ns),
        ("list", capi, "machinedeployments", ""),
        ("list", capi, "machines", "kaas-provider-dev"),
        ("create", capi, "machinedeployments", &capi_ns),
        ("delete", capi, "machinedeployments", &capi_ns),
        ("delete", capi, "machines", &capi_ns),
        ("update", capi, "machinedeployments", &capi_ns),
        ("update", capi, "clusters", &capi_ns),
        ("get", capi, "clusters", &capi_ns),
        ("update", infra, "devmachinetemplates", &capi_ns),
        ("create", "", "pods", &capi_ns),
        ("get", "", "configmaps", &capi_ns),
        ("patch", "apps", "deployments", &capi_ns),
        (
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            &capi_ns,
        ),
    ];
    let granted = wrong(&client, &capi_ns, sa, false, &denied).await;
    assert!(granted.is_empty(), "granted beyond need: {granted:?}");

    // Status per pool: the bounds, and what the autoscaler publishes in the workload cluster.
    // The management API server stands in for the workload cluster (a real API server: the
    // kubeconfig Secret Cluster API would write points at it), with a MachineDeployment of the
    // pool as Cluster API's topology controller would write it.
    report_of_the_autoscaler_reaches_the_pool_status(&plane, &client, &capi_ns).await;

    // The image follows the minor.
    patch_spec(
        &client,
        NS,
        "elastic",
        serde_json::json!({"kubernetes": {"version": "1.36.x"}}),
    )
    .await;
    deployment_when(&client, &capi_ns, sa, "the 1.36 image", |d| {
        d.is_some_and(|d| image(d) == "registry.k8s.io/autoscaling/cluster-autoscaler:v1.36.0")
    })
    .await;

    // No pool autoscales: it goes, with its ServiceAccount and RoleBinding.
    patch_spec(
        &client,
        NS,
        "elastic",
        serde_json::json!({"workers": [{"name": "w", "count": 2}, {"name": "fixed", "count": 1}]}),
    )
    .await;
    deployment_when(&client, &capi_ns, sa, "the autoscaler removed", |d| {
        d.is_none()
    })
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &capi_ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &capi_ns);
    assert!(
        sas.get_opt(sa).await.unwrap().is_none(),
        "ServiceAccount left"
    );
    // The RoleBinding is owned by the ServiceAccount: the garbage collector removes it.
    until(
        "the RoleBinding gone with the ServiceAccount",
        WAIT,
        || async {
            match rbs.get_opt(sa).await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    until("its rights gone with the RoleBinding", WAIT, || async {
        if may(&client, &capi_ns, sa, ("list", capi, "machines", &capi_ns)).await {
            Err("still allowed".to_string())
        } else {
            Ok(())
        }
    })
    .await;

    // Autoscaled again, then the cluster is deleted: it goes with the cluster.
    patch_spec(
        &client,
        NS,
        "elastic",
        serde_json::json!({"workers": [{"name": "w", "minCount": 1, "maxCount": 3}]}),
    )
    .await;
    deployment_when(&client, &capi_ns, sa, "the autoscaler back", |d| {
        d.is_some()
    })
    .await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
    clusters
        .delete("elastic", &Default::default())
        .await
        .unwrap();
    until("the cluster deleted", WAIT, || async {
        match clusters.get_opt("elastic").await {
            Ok(None) => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|c| c.map(|c| c.metadata.finalizers))
            )),
        }
    })
    .await;
    let gone = Api::<Deployment>::namespaced(client.clone(), &capi_ns)
        .get_opt(sa)
        .await
        .unwrap();
    assert!(gone.is_none(), "the autoscaler outlived its cluster");
    assert!(
        sas.get_opt(sa).await.unwrap().is_none(),
        "ServiceAccount left"
    );
    // The RoleBinding is owned by the ServiceAccount: the garbage collector removes it.
    until(
        "the RoleBinding gone with the ServiceAccount",
        WAIT,
        || async {
            match rbs.get_opt(sa).await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

async fn report_of_the_autoscaler_reaches_the_pool_status(
    plane: &kaas_harness::Plane,
    client: &Client,
    capi_ns: &str,
) {
    let kubeconfig = plane
        .kubeconfig_yaml(kaas_harness::Identity::Admin)
        .expect("the plane's kubeconfig");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "elastic-kubeconfig", "namespace": capi_ns},
        "type": "cluster.x-k8s.io/secret",
        "stringData": {"value": kubeconfig},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), capi_ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let md: MachineDeployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
        "metadata": {"name": "elastic-w-x7k2p", "namespace": capi_ns, "labels": {
            "cluster.x-k8s.io/cluster-name": "elastic", "scs.community/pool": "w"}},
        "spec": {"clusterName": "elastic", "replicas": 1,
            "selector": {"matchLabels": {"pool": "w"}},
            "template": {"metadata": {"labels": {"pool": "w"}}, "spec": {
                "clusterName": "elastic", "bootstrap": {"dataSecretName": "none"},
                "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                    "kind": "DevMachineTemplate", "name": "t"}}}},
    }))
    .unwrap();
    Api::<MachineDeployment>::namespaced(client.clone(), capi_ns)
        .create(&PostParams::default(), &md)
        .await
        .unwrap();
    let status = format!(
        "time: 2026-11-30 03:50:00.000000 +0000 UTC\nautoscalerStatus: Running\nclusterWide:\n  health: {{status: Healthy}}\nnodeGroups:\n- name: MachineDeployment/{capi_ns}/elastic-w-x7k2p\n  health: {{status: Healthy, nodeCounts: {{registered: {{total: 1, ready: 1}}}}, cloudProviderTarget: 2, minSize: 0, maxSize: 3}}\n  scaleUp:\n    status: Backoff\n    backoffInfo: {{errorCode: OutOfResource, errorMessage: quota of the project exceeded}}\n    lastTransitionTime: \"2026-11-30T03:40:00Z\"\n  scaleDown: {{status: NoCandidates, lastTransitionTime: \"2026-11-30T03:30:00Z\"}}\n"
    );
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
        "data": {"status": status},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    // A change of the Cluster makes the operator look again at once.
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
    clusters
        .patch(
            "elastic",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"test/poke": "1"}}})),
        )
        .await
        .unwrap();
    let pool = until(
        "the autoscaler's report in the pool status",
        WAIT,
        || async {
            let c = clusters.get("elastic").await.map_err(|e| e.to_string())?;
            let workers = c.status.clone().unwrap_or_default().workers;
            match workers.iter().find(|w| w.name == "w") {
                Some(w) if w.autoscaler.is_some() => Ok(w.clone()),
                _ => Err(format!("{workers:?}")),
            }
        },
    )
    .await;
    assert_eq!((pool.min, pool.max, pool.desired), (Some(0), Some(3), 1));
    let a = pool.autoscaler.unwrap();
    assert_eq!(a.target, Some(2));
    assert_eq!(a.health.as_deref(), Some("Healthy"));
    assert_eq!(a.scale_up.as_deref(), Some("Backoff"));
    assert_eq!(a.scale_down.as_deref(), Some("NoCandidates"));
    assert_eq!(a.last_activity.as_deref(), Some("2026-11-30T03:40:00Z"));
    assert_eq!(
        a.cannot_scale.as_deref(),
        Some("OutOfResource: quota of the project exceeded")
    );
    let c = clusters.get("elastic").await.unwrap();
    let fixed = c.status.unwrap().workers;
    let fixed = fixed.iter().find(|w| w.name == "fixed");
    assert!(
        fixed.is_none_or(|f| f.min.is_none() && f.autoscaler.is_none()),
        "a fixed pool has no bounds and no report: {fixed:?}"
    );
}

/// The chart's policy `kaas-operator-workloads` (templates/operator-policy.yaml, its two template
/// expressions filled in as Helm would for release namespace `kaas-system` and ServiceAccount
/// `kaas`): RBAC lets the operator write Deployments anywhere, the policy lets through only the
/// autoscalers in provider-side namespaces; others' Deployments are not its business.
#[tokio::test]
async fn the_operators_deployments_are_confined_to_autoscalers_in_provider_side_namespaces() {
    let plane = plane(false).await;
    let admin = plane.client();
    let template = include_str!("../../../deploy/helm/kaas/templates/operator-policy.yaml");
    let policy: String = template
        .lines()
        .filter(|l| !l.contains("kaas.labels") && l.trim() != "labels:")
        .map(|l| {
            l.replace("{{ .Release.Namespace }}", "kaas-system")
                .replace(r#"{{ include "kaas.serviceAccountName" . }}"#, "kaas")
                + "\n"
        })
        .collect();
    assert!(
        !policy.contains("{{"),
        "every template expression filled: {policy}"
    );
    kaas_harness::apply_yaml(&admin, &policy, "default")
        .await
        .unwrap();
    let provider_side = kaas_render::capi_namespace("dev", NS);
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": provider_side, "labels": {
            "scs.community/provider": "dev", "scs.community/tenant": NS,
            "app.kubernetes.io/managed-by": "kaas",
            "pod-security.kubernetes.io/enforce": "restricted"}},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // The operator: its ServiceAccount's name, with every right (RBAC is not what is tested).
    let operator = plane
        .client_for_user(
            "system:serviceaccount:kaas-system:kaas",
            &["system:masters"],
        )
        .unwrap();
    let c = cluster(
        "elastic",
        NS,
        "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: w, minCount: 0, maxCount: 3}]",
    );
    let provider: kaas_api::Provider = serde_yaml::from_str(common::PROVIDER).unwrap();
    let resolved = kaas_validate::validate(&c, &provider).unwrap();
    let at = kaas_render::autoscaler::Placement {
        namespace: &provider_side,
        capi_cluster: "elastic",
        kubeconfig_secret: "elastic-kubeconfig",
    };
    let autoscaler = kaas_render::autoscaler::render_autoscaler(&c, &resolved, &at)
        .unwrap()
        .unwrap()
        .deployment;
    let write = |client: Client, mut d: Deployment, ns: &str| {
        d.metadata.namespace = Some(ns.to_string());
        let ns = ns.to_string();
        async move {
            Api::<Deployment>::namespaced(client, &ns)
                .patch(
                    &d.metadata.name.clone().unwrap(),
                    &PatchParams::apply("test").force(),
                    &Patch::Apply(&d),
                )
                .await
        }
    };
    // The policy takes effect once the API server has loaded it.
    until("the policy in force", WAIT, || async {
        match write(operator.clone(), autoscaler.clone(), "default").await {
            Err(kube::Error::Api(s)) if s.message.contains("provider-side namespaces") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    write(operator.clone(), autoscaler.clone(), &provider_side)
        .await
        .expect("an autoscaler in a provider-side namespace is the operator's to write");

    // Namespaces (kaas-operator-namespaces): the operator cannot make another namespace look
    // provider-side (and so open it to its Deployments), create one that is not kaas' own and
    // held to Pod Security restricted, or delete one it does not manage.
    type Ns = k8s_openapi::api::core::v1::Namespace;
    let namespaces = Api::<Ns>::all(operator.clone());
    let labels = serde_json::json!({"metadata": {"labels": {
        "scs.community/provider": "dev", "app.kubernetes.io/managed-by": "kaas",
        "pod-security.kubernetes.io/enforce": "restricted"}}});
    // Loaded by the API server a moment after the first policy, maybe.
    until("the namespace policy in force", WAIT, || async {
        match namespaces
            .patch(
                "kube-system",
                &PatchParams::default(),
                &Patch::Merge(&labels),
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.message.contains("only its own namespaces") => Ok(()),
            other => Err(format!("the operator labelled kube-system: {other:?}")),
        }
    })
    .await;
    let bare: Ns =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "kaas-bare"}})).unwrap();
    let refused = namespaces.create(&PostParams::default(), &bare).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("Pod Security restricted")),
        "a namespace without kaas' labels: {refused:?}"
    );
    let tenant: Ns =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "tenant-victim"}})).unwrap();
    Api::<Ns>::all(admin.clone())
        .create(&PostParams::default(), &tenant)
        .await
        .unwrap();
    let refused = namespaces
        .delete("tenant-victim", &Default::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("only its own namespaces")),
        "the operator deleted a tenant's namespace: {refused:?}"
    );
    let mut own: Ns = serde_json::from_value(labels.clone()).unwrap();
    own.metadata.name = Some("kaas-dev-own".into());
    namespaces
        .create(&PostParams::default(), &own)
        .await
        .expect("a namespace of kaas' own");
    namespaces
        .delete("kaas-dev-own", &Default::default())
        .await
        .expect("which it may delete");
    let mut other = autoscaler.clone();
    other
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .name = "miner".into();
    let refused = write(operator.clone(), other.clone(), &provider_side).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("cluster-autoscalers")),
        "any other workload is refused: {refused:?}"
    );
    write(admin.clone(), other, "default")
        .await
        .expect("others' Deployments are not the policy's business");
    let refused = Api::<Deployment>::namespaced(operator.clone(), "default")
        .delete("elastic-autoscaler", &Default::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("provider-side namespaces")),
        "nor does it delete Deployments elsewhere: {refused:?}"
    );
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "x-autoscaler"}})).unwrap();
    let refused = Api::<ServiceAccount>::namespaced(operator.clone(), "kube-system")
        .create(&PostParams::default(), &sa)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("provider-side namespaces")),
        "nor ServiceAccounts elsewhere: {refused:?}"
    );
    Api::<ServiceAccount>::namespaced(operator.clone(), &provider_side)
        .create(&PostParams::default(), &sa)
        .await
        .expect("its ServiceAccounts in provider-side namespaces");
    Api::<Deployment>::namespaced(operator, &provider_side)
        .delete("elastic-autoscaler", &Default::default())
        .await
        .expect("and their removal");
}

/// Never silent: when the management cluster refuses the autoscaler (here an admission policy of
/// the provider that allows no Deployments in one tenant's provider-side namespaces), the
/// cluster says so — `SpecAccepted=False` (`BackendRefused`) with the policy's message and a
/// Warning event — and the autoscaler is there once the refusal is gone.
#[tokio::test]
async fn a_refused_autoscaler_is_reported_and_recovers() {
    const REFUSED: &str = "tenant-no-workloads";
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, REFUSED, &[])
        .await
        .unwrap();
    kaas_harness::apply_yaml(
        &client,
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: no-workloads}}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - {{apiGroups: [apps], apiVersions: ['*'], operations: [CREATE, UPDATE], resources: [deployments]}}\n  validations:\n  - {{expression: 'false', message: 'no workloads for {REFUSED}'}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: no-workloads}}\nspec:\n  policyName: no-workloads\n  validationActions: [Deny]\n  matchResources:\n    namespaceSelector: {{matchLabels: {{scs.community/tenant: {REFUSED}}}}}\n"
        ),
        "default",
    )
    .await
    .unwrap();
    // The policy takes effect once the API server has loaded it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _op = operator(client.clone(), &[]);
    create(
        &client,
        &cluster(
            "elastic",
            REFUSED,
            "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: w, minCount: 0, maxCount: 3}]",
        ),
    )
    .await;
    let api: Api<Cluster> = Api::namespaced(client.clone(), REFUSED);
    let msg = until("the refusal in the status", WAIT, || async {
        let c = api.get("elastic").await.map_err(|e| e.to_string())?;
        match common::condition(&c, "SpecAccepted") {
            Some((s, r, m)) if s == "False" && r == "BackendRefused" => Ok(m),
            _ => Err(common::summary(&c)),
        }
    })
    .await;
    assert!(
        msg.contains("elastic-autoscaler") && msg.contains(&format!("no workloads for {REFUSED}")),
        "names the autoscaler and the policy's message: {msg}"
    );
    until("a Warning event", WAIT, || async {
        let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), REFUSED)
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        events
            .items
            .iter()
            .find(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("elastic-autoscaler"))
            })
            .map(|_| ())
            .ok_or_else(|| "no event yet".to_string())
    })
    .await;

    kaas_harness::dynamic_api(
        &client,
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        None,
    )
    .delete("no-workloads", &Default::default())
    .await
    .unwrap();
    let capi_ns = kaas_render::capi_namespace("dev", REFUSED);
    // Retried with back-off after a refusal; a change of the spec is looked at at once.
    patch_spec(
        &client,
        REFUSED,
        "elastic",
        serde_json::json!({"workers": [{"name": "w", "minCount": 0, "maxCount": 4}]}),
    )
    .await;
    deployment_when(
        &client,
        &capi_ns,
        "elastic-autoscaler",
        "the autoscaler after the fix",
        |d| d.is_some(),
    )
    .await;
    until("accepted again", WAIT, || async {
        let c = api.get("elastic").await.map_err(|e| e.to_string())?;
        match common::condition(&c, "SpecAccepted") {
            Some((s, _, _)) if s == "True" => Ok(()),
            _ => Err(common::summary(&c)),
        }
    })
    .await;
}
