//! The checks against real API servers (kaas-harness planes: etcd, kube-apiserver,
//! kube-controller-manager; no kubelet, no scheduler) with crafted objects: expected PASS/FAIL per
//! check, ABORT where the cluster cannot run pods or the identity lacks rights.

use std::time::Duration;

use jiff::civil::Date;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kaas_check::{CheckOptions, ConformanceMode, Format, Outcome, ReleaseData, Report, Timeouts};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

async fn plane() -> Plane {
    Plane::start(PlaneOptions::minimal())
        .await
        .expect("plane starts (plane/build.sh builds the binaries)")
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

/// Options with a fixed reference date and short waits.
fn opts() -> CheckOptions {
    CheckOptions {
        reference_date: Some(date("2026-05-20")),
        subject: "harness".into(),
        timeouts: Timeouts {
            schedule: Duration::from_secs(3),
            start: Duration::from_secs(3),
            job: Duration::from_secs(3),
            bind: Duration::from_secs(3),
            // Namespaces with a PVC stay terminating here (no pvc-protection controller in the
            // plane): do not wait the production minute for them.
            cleanup: Duration::from_secs(15),
            poll: Duration::from_millis(200),
            probe: Duration::from_millis(500),
            ..Timeouts::default()
        },
        ..CheckOptions::default()
    }
}

async fn create<K>(client: &Client, v: Value) -> K
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).unwrap();
    Api::<K>::all(client.clone())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

async fn create_pod(client: &Client, namespace: &str, v: Value) -> Pod {
    let obj: Pod = serde_json::from_value(v).unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

#[track_caller]
fn expect(report: &Report, id: &str, outcome: Outcome, needle: &str) {
    let r = report
        .result(id)
        .unwrap_or_else(|| panic!("{id} missing in\n{}", report.table()));
    assert!(
        r.outcome == outcome && r.summary.contains(needle),
        "{id}: want {outcome} containing {needle:?}, got {} {:?}\n{}",
        r.outcome,
        r.summary,
        report.table()
    );
}

fn node(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({ "metadata": { "name": name, "labels": labels } })
}

const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
const CP: &str = "node-role.kubernetes.io/control-plane";
const DEFAULT_SC: &str = "storageclass.kubernetes.io/is-default-class";
const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

#[tokio::test]
async fn static_checks_on_crafted_objects() {
    let plane = plane().await;
    let client = plane.client();
    let o = opts();

    // An empty cluster.
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(&r, "node-distribution-check", Outcome::Abort, "no nodes");
    expect(
        &r,
        "default-storage-class-check",
        Outcome::Fail,
        "no default StorageClass",
    );
    expect(
        &r,
        "pod-security-labels-check",
        Outcome::Fail,
        "label: default",
    );
    expect(
        &r,
        "apiserver-settings-check",
        Outcome::Skip,
        "not applicable",
    );
    expect(&r, "networkpolicy-api-check", Outcome::Pass, "served");
    assert_eq!(r.kubernetes_version.as_deref(), Some("v1.36.3"));
    // The SHOULDs of scs-0219-v1 and the draft scs-0219-v2 are not met by a bare API server.
    expect(
        &r,
        "admin-network-policy-check",
        Outcome::Fail,
        "not served (SHOULD)",
    );
    expect(
        &r,
        "default-ingress-class-check",
        Outcome::Fail,
        "no default IngressClass",
    );
    expect(
        &r,
        "gateway-api-check",
        Outcome::Fail,
        "does not serve gatewayclasses, gateways, httproutes",
    );
    // The draft's 3-day limit for fixes of CVSS >= 7 needs data newer than a week-old bundle.
    expect(
        &r,
        "version-policy-v3-check",
        Outcome::Abort,
        "release data is 7 days old",
    );
    expect(&r, "node-software-recency-check", Outcome::Skip, "no nodes");
    assert_eq!(
        r.results.len(),
        11,
        "run_static runs the static checks only"
    );
    // Only the mandatory version-policy-check decides (and passes): the failures above are of
    // other classes (advisory, draft, outside the scope) and never fail the certificate.
    assert_eq!(r.exit_code(), 0, "{}", r.table());
    assert_eq!(r.certificate_counts().pass, 1);
    assert!(
        r.table().contains("WARN   default-storage-class-check"),
        "{}",
        r.table()
    );
    let class = |id: &str| r.result(id).unwrap().class();
    assert_eq!(class("node-distribution-check"), "preview, manual");
    assert_eq!(class("default-storage-class-check"), "outside");
    assert_eq!(class("gateway-api-check"), "draft");

    // Judged today, the bundled release data is too old: an explicit stale-data verdict with
    // its age and what to do, and the report says how old the data is.
    let today = kaas_check::run_static(
        client.clone(),
        &CheckOptions {
            reference_date: None,
            ..opts()
        },
    )
    .await;
    let v = today.result("version-policy-check").unwrap();
    assert_eq!(v.outcome, Outcome::Abort);
    assert_eq!(
        v.reason.as_deref(),
        Some(kaas_check::report::REASON_STALE_DATA)
    );
    assert!(v.summary.starts_with("release data is "), "{}", v.summary);
    assert!(v.remediation.as_deref().unwrap().contains("--refresh-data"));
    assert!(today.data.age_days > 190, "{:?}", today.data);
    assert_eq!(today.exit_code(), 2);
    let json: Value = serde_json::from_str(&today.render(Format::Json)).unwrap();
    assert_eq!(json["data"]["age_days"], today.data.age_days);
    assert!(
        today
            .table()
            .contains(&format!("{} days old", today.data.age_days))
    );

    // A default IngressClass meets that SHOULD.
    let _: k8s_openapi::api::networking::v1::IngressClass = create(
        &client,
        json!({
            "metadata": { "name": "nginx", "annotations": { "ingressclass.kubernetes.io/is-default-class": "true" } },
            "spec": { "controller": "k8s.io/ingress-nginx" }
        }),
    )
    .await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "default-ingress-class-check",
        Outcome::Pass,
        "default IngressClass nginx (controller k8s.io/ingress-nginx)",
    );

    // Nodes: three control-plane nodes in three zones and two workers, all labelled.
    for (n, z) in [("cp-1", "zone-a"), ("cp-2", "zone-b"), ("cp-3", "zone-c")] {
        let _: Node = create(&client, node(n, &[(CP, ""), (ZONE, z), (REGION, "r1")])).await;
    }
    for (n, z) in [("worker-1", "zone-a"), ("worker-2", "zone-b")] {
        let _: Node = create(&client, node(n, &[(ZONE, z), (REGION, "r1")])).await;
    }
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "node-distribution-check",
        Outcome::Pass,
        "control plane on 3 hosts over 3 zone(s) (zone-a=1, zone-b=1, zone-c=1)",
    );
    // A worker without zone label.
    let _: Node = create(&client, node("worker-3", &[(REGION, "r1")])).await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "node-distribution-check",
        Outcome::Fail,
        "1 of 6 node(s) without topology.kubernetes.io/zone: worker-3",
    );

    // Storage classes: zero (above), one, two defaults; a default without provisioner.
    let sc = |name: &str, provisioner: &str, default: bool| {
        json!({
            "metadata": { "name": name, "annotations": { DEFAULT_SC: default.to_string() } },
            "provisioner": provisioner
        })
    };
    let _: StorageClass = create(&client, sc("standard", "cinder.csi.openstack.org", true)).await;
    let _: StorageClass = create(&client, sc("slow", "cinder.csi.openstack.org", false)).await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "default-storage-class-check",
        Outcome::Pass,
        "one default StorageClass standard (provisioner cinder.csi.openstack.org)",
    );
    let _: StorageClass = create(&client, sc("fast", "cinder.csi.openstack.org", true)).await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "default-storage-class-check",
        Outcome::Fail,
        "2 default StorageClasses (fast, standard)",
    );
    let scs: Api<StorageClass> = Api::all(client.clone());
    for n in ["standard", "fast"] {
        scs.delete(n, &DeleteParams::default()).await.unwrap();
    }
    let _: StorageClass = create(&client, sc("local", "kubernetes.io/no-provisioner", true)).await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "default-storage-class-check",
        Outcome::Fail,
        "has provisioner kubernetes.io/no-provisioner",
    );

    // Namespaces with and without Pod Security labels.
    let ns = |name: &str, labels: Value, annotations: Value| json!({ "metadata": { "name": name, "labels": labels, "annotations": annotations } });
    let _: Namespace = create(
        &client,
        ns("team-a", json!({ ENFORCE: "baseline" }), json!({})),
    )
    .await;
    let _: Namespace = create(&client, ns("team-b", json!({}), json!({}))).await;
    let _: Namespace = create(
        &client,
        ns("team-c", json!({}), json!({ ENFORCE: "restricted" })),
    )
    .await;
    let _: Namespace = create(
        &client,
        ns("team-d", json!({ ENFORCE: "privileged" }), json!({})),
    )
    .await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    let psa = r.result("pod-security-labels-check").unwrap();
    assert_eq!(psa.outcome, Outcome::Fail, "{}", r.table());
    for want in [
        "label: default, team-b",
        "annotation",
        "team-c",
        "team-d (enforce=privileged)",
    ] {
        assert!(psa.summary.contains(want), "{want} not in {}", psa.summary);
    }
    assert!(!psa.summary.contains("team-a"), "{}", psa.summary);
    let nss: Api<Namespace> = Api::all(client.clone());
    for n in ["default", "team-b", "team-c", "team-d"] {
        nss.patch(
            n,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { ENFORCE: "restricted" } } })),
        )
        .await
        .unwrap();
    }
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "pod-security-labels-check",
        Outcome::Pass,
        "all 5 non-exempt namespace(s) enforce baseline or restricted",
    );

    // kube-apiserver static pods (as kubeadm writes them) become visible: good flags, then bad.
    let apiserver_pod = |name: &str, command: &[&str]| {
        json!({
            "metadata": { "name": name, "labels": { "component": "kube-apiserver", "tier": "control-plane" } },
            "spec": { "containers": [{ "name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.36.3", "command": command }] }
        })
    };
    let good = [
        "kube-apiserver",
        "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--etcd-servers=https://127.0.0.1:2379",
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
    ];
    let _: Pod = create_pod(
        &client,
        "kube-system",
        apiserver_pod("kube-apiserver-cp-1", &good),
    )
    .await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "apiserver-settings-check",
        Outcome::Pass,
        "1 kube-apiserver pod(s) meet",
    );
    let bad = [
        "kube-apiserver",
        "--authorization-mode=AlwaysAllow",
        "--etcd-servers=http://127.0.0.1:2379",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
    ];
    let _: Pod = create_pod(
        &client,
        "kube-system",
        apiserver_pod("kube-apiserver-cp-2", &bad),
    )
    .await;
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "apiserver-settings-check",
        Outcome::Fail,
        "kube-apiserver-cp-2: --authorization-mode=AlwaysAllow",
    );
    let a = r.result("apiserver-settings-check").unwrap();
    assert!(
        a.summary.contains("NodeRestriction") && a.summary.contains("etcd without TLS"),
        "{}",
        a.summary
    );
    assert!(!a.summary.contains("cp-1"), "{}", a.summary);
}

#[tokio::test]
async fn version_policy_against_the_api_server() {
    let plane = plane().await;
    let client = plane.client();
    // Bundled data judged today: too old to decide; the report says which data it used.
    let o = CheckOptions {
        reference_date: None,
        ..opts()
    };
    let r = kaas_check::run_static(client.clone(), &o).await;
    assert_eq!(
        r.reference_date,
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
    );
    expect(
        &r,
        "version-policy-check",
        Outcome::Abort,
        "days old (releases as of 2026-05-13, bundled",
    );
    assert!(r.data.source.starts_with("bundled"), "{:?}", r.data);
    assert_eq!(r.data.releases_as_of, date("2026-05-13"));
    assert_eq!(r.data.cves_as_of, date("2026-03-19"));
    let v = r.result("version-policy-check").unwrap();
    assert!(v.remediation.as_deref().unwrap().contains("--refresh-data"));

    // Crafted data in which the plane's v1.36.3 was followed by v1.36.4 on 2026-08-12.
    let data = ReleaseData::from_yaml(
        "releases_as_of: 2026-09-01\ncves_as_of: 2026-09-01\nbranches:\n  - branch: \"1.36\"\n    end_of_life: 2027-06-28\n    patches: [[1.36.0, 2026-04-22], [1.36.3, 2026-07-22], [1.36.4, 2026-08-12]]\n",
    )
    .unwrap();
    let o = CheckOptions {
        data,
        reference_date: Some(date("2026-09-01")),
        ..opts()
    };
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "version-policy-check",
        Outcome::Pass,
        "newer v1.36.4 is 20 days old (limit 31)",
    );
    assert_eq!(r.data.source, "file");
    let o = CheckOptions {
        reference_date: Some(date("2026-09-13")),
        ..o
    };
    let r = kaas_check::run_static(client.clone(), &o).await;
    expect(
        &r,
        "version-policy-check",
        Outcome::Fail,
        "v1.36.4 was released on 2026-08-12, 32 days before 2026-09-13",
    );
    // Refresh asked for, upstream unreachable from here: the given data is used and the report
    // says why.
    let o = CheckOptions {
        refresh_data: true,
        timeouts: Timeouts {
            refresh: Duration::from_secs(3),
            ..opts().timeouts
        },
        ..o
    };
    let r = kaas_check::run_static(client.clone(), &o).await;
    if r.data.refresh_error.is_some() {
        assert_eq!(r.data.source, "file");
        expect(&r, "version-policy-check", Outcome::Fail, "32 days before");
    } else {
        assert!(r.data.source.starts_with("upstream"), "{:?}", r.data);
    }
}

#[tokio::test]
async fn missing_rights_abort_naming_the_permission() {
    let plane = plane().await;
    let admin = plane.client();
    let nobody = plane.client_for_user("auditor", &["auditors"]).unwrap();
    let o = CheckOptions {
        behavioural: true,
        ..opts()
    };
    let r = kaas_check::run(nobody.clone(), &o, &|_: &str| {}).await;
    expect(
        &r,
        "node-distribution-check",
        Outcome::Abort,
        "missing permission: list nodes (cluster-wide)",
    );
    expect(
        &r,
        "default-storage-class-check",
        Outcome::Abort,
        "missing permission: list storageclasses (storage.k8s.io) (cluster-wide)",
    );
    expect(
        &r,
        "pod-security-labels-check",
        Outcome::Abort,
        "missing permission: list namespaces",
    );
    expect(
        &r,
        "apiserver-settings-check",
        Outcome::Abort,
        "missing permission: list pods in namespace kube-system",
    );
    for id in [
        "default-storage-class-volume-check",
        "kaas-networking-check",
        "pod-security-admission-check",
    ] {
        expect(
            &r,
            id,
            Outcome::Abort,
            "missing permission: create namespaces (cluster-wide)",
        );
    }
    // /version and discovery need no rights beyond authentication.
    expect(&r, "version-policy-check", Outcome::Pass, "supported");
    expect(&r, "networkpolicy-api-check", Outcome::Pass, "served");
    assert!(
        r.results
            .iter()
            .filter(|x| x.counts_for_certificate())
            .all(|x| x.outcome != Outcome::Fail),
        "{}",
        r.table()
    );
    assert_eq!(r.exit_code(), 2);

    // Granting `list nodes` lets that check run (and judge), the others still abort.
    let _: ClusterRole = create(
        &admin,
        json!({ "metadata": { "name": "node-reader" }, "rules": [{ "apiGroups": [""], "resources": ["nodes"], "verbs": ["list"] }] }),
    )
    .await;
    let _: ClusterRoleBinding = create(
        &admin,
        json!({
            "metadata": { "name": "auditor-node-reader" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "auditors" }]
        }),
    )
    .await;
    let _: Node = create(&admin, node("single", &[(ZONE, "a"), (REGION, "r")])).await;
    let r = kaas_check::run_static(nobody, &o).await;
    expect(
        &r,
        "node-distribution-check",
        Outcome::Fail,
        "single-node cluster",
    );
    expect(
        &r,
        "pod-security-labels-check",
        Outcome::Abort,
        "missing permission",
    );
}

async fn managed_namespaces(client: &Client) -> Vec<String> {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kaas-check"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| n.metadata.name)
        .collect()
}

#[tokio::test]
async fn behavioural_checks_abort_without_kubelet() {
    let plane = plane().await;
    let client = plane.client();
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
    let o = opts();

    // No node at all.
    let r = kaas_check::run(client.clone(), &o, &progress).await;
    for id in [
        "default-storage-class-volume-check",
        "kaas-networking-check",
    ] {
        expect(&r, id, Outcome::Abort, "no schedulable node: 0 node(s)");
    }
    // The dry-run needs no node: Pod Security admission rejects the privileged pod.
    expect(
        &r,
        "pod-security-admission-check",
        Outcome::Pass,
        "rejected by Pod Security admission",
    );
    expect(&r, "port-probe-check", Outcome::Skip, "not requested");
    expect(&r, "cncf-k8s-conformance", Outcome::Skip, "not requested");
    let psa = r.result("pod-security-admission-check").unwrap();
    assert!(
        psa.details
            .iter()
            .any(|d| d.contains("violates PodSecurity \"baseline:latest\"")),
        "{psa:?}"
    );
    assert!(
        psa.details
            .iter()
            .any(|d| d.contains("temporary namespace kaas-check-psa-")),
        "{psa:?}"
    );
    assert!(managed_namespaces(&client).await.is_empty());
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("kaas-networking-check: ABORT"))
    );

    // A node that looks Ready (no kubelet behind it, no scheduler in the plane) and a default
    // StorageClass that binds on first consumer: the pods are never scheduled.
    let _: Node = create(&client, node("fake-ready", &[(ZONE, "a"), (REGION, "r")])).await;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "fake-ready",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "taints": null } })),
        )
        .await
        .unwrap();
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    nodes
        .patch_status(
            "fake-ready",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {
                "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "crafted", "lastHeartbeatTime": now, "lastTransitionTime": now }],
                "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }]
            } })),
        )
        .await
        .unwrap();
    let _: StorageClass = create(
        &client,
        json!({
            "metadata": { "name": "wffc", "annotations": { DEFAULT_SC: "true" } },
            "provisioner": "example.com/csi",
            "volumeBindingMode": "WaitForFirstConsumer"
        }),
    )
    .await;
    // Port probes: one port open on the node's address, one closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = CheckOptions {
        port_probes: true,
        probe_ports: vec![open, closed],
        ..opts()
    };
    let r = kaas_check::run(client.clone(), &o, &progress).await;
    expect(
        &r,
        "default-storage-class-volume-check",
        Outcome::Abort,
        "volume test pod not scheduled within 3 s",
    );
    expect(
        &r,
        "kaas-networking-check",
        Outcome::Abort,
        "server pod not scheduled within 3 s",
    );
    expect(
        &r,
        "port-probe-check",
        Outcome::Fail,
        &format!("reachable from here: 127.0.0.1:{open}"),
    );
    let probe = r.result("port-probe-check").unwrap();
    assert!(
        !probe.summary.contains(&closed.to_string()),
        "{}",
        probe.summary
    );
    let storage = r.result("default-storage-class-volume-check").unwrap();
    assert!(
        storage
            .details
            .iter()
            .any(|d| d.contains("PVC kaas-check-volume got StorageClass wffc"))
    );
    assert!(
        storage
            .details
            .iter()
            .any(|d| d.contains("deleted") || d.contains("being deleted"))
    );
    assert!(r.results.iter().all(|x| x.outcome != Outcome::Pass
        || x.kind != kaas_check::CheckKind::Behavioural
        || x.id == "pod-security-admission-check"));
    drop(listener);
    let o = CheckOptions {
        behavioural: false,
        port_probes: true,
        probe_ports: vec![closed],
        ..opts()
    };
    let r = kaas_check::run(client.clone(), &o, &progress).await;
    expect(&r, "port-probe-check", Outcome::Pass, "no etcd, kubelet");

    // Every temporary namespace is gone (or terminating).
    assert!(managed_namespaces(&client).await.is_empty());
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kaas-check"))
        .await
        .unwrap();
    assert!(
        pods.items
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_some()),
        "test pods left behind"
    );
}

#[tokio::test]
async fn conformance_tools_and_reports() {
    let plane = plane().await;
    let client = plane.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    plane
        .write_kubeconfig(Identity::Admin, &kubeconfig)
        .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let behavioural_off = CheckOptions {
        behavioural: false,
        kubeconfig: Some(kubeconfig.clone()),
        tool_search_path: Some(bin.clone().into_os_string()),
        conformance: ConformanceMode::Certified,
        argv: vec![
            "kaas".into(),
            "check".into(),
            "--conformance".into(),
            "certified".into(),
        ],
        ..opts()
    };

    // No tool on the search path.
    let r = kaas_check::run(client.clone(), &behavioural_off, &|_: &str| {}).await;
    expect(
        &r,
        "cncf-k8s-conformance",
        Outcome::Abort,
        "neither hydrophone nor sonobuoy found on PATH",
    );
    expect(&r, "kaas-networking-check", Outcome::Skip, "not requested");

    // A stand-in hydrophone that writes e2e-style results.
    let script = r#"#!/bin/sh
out=""
while [ $# -gt 0 ]; do
  case "$1" in --output-dir) out="$2"; shift ;; esac
  shift
done
[ -n "$out" ] || exit 0
cat > "$out/junit_01.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite" tests="3">
<testcase name="[sig-node] Pods should be submitted and removed [Conformance]" classname="Kubernetes e2e suite" time="3"></testcase>
<testcase name="[sig-storage] In-tree NFS volume [Conformance]" classname="Kubernetes e2e suite" time="1"><failure type="Failure">no NFS</failure></testcase>
<testcase name="[sig-apps] skipped" classname="Kubernetes e2e suite" time="0"><skipped/></testcase>
</testsuite></testsuites>
EOF
"#;
    let tool = bin.join("hydrophone");
    std::fs::write(&tool, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = kaas_check::run(client.clone(), &behavioural_off, &|_: &str| {}).await;
    expect(
        &r,
        "cncf-k8s-conformance",
        Outcome::Fail,
        "1 conformance test(s) failed: [sig-storage] In-tree NFS volume",
    );
    let allowed = CheckOptions {
        allowed_failures: vec!["In-tree NFS".into()],
        ..behavioural_off.clone()
    };
    let r = kaas_check::run(client.clone(), &allowed, &|_: &str| {}).await;
    expect(
        &r,
        "cncf-k8s-conformance",
        Outcome::Pass,
        "conformance suite passed: 1 test(s), 1 allowed failure(s)",
    );

    // The renderings of this real report.
    let scs: serde_yaml::Value = serde_yaml::from_str(&r.render(Format::ScsYaml)).unwrap();
    assert_eq!(
        scs["spec"]["uuid"].as_str(),
        Some(kaas_check::SCS_SCOPE_UUID)
    );
    assert_eq!(scs["subject"].as_str(), Some("harness"));
    assert_eq!(scs["reference_date"].as_str(), Some("2026-05-20"));
    let inv = &scs["run"]["invocations"][r.invocation_uuid.as_str()];
    assert_eq!(inv["results"]["cncf-k8s-conformance"].as_i64(), Some(1));
    assert_eq!(inv["results"]["version-policy-check"].as_i64(), Some(1));
    // A manual testcase (node distribution) and testcases outside the scope are not SCS results;
    // kaas check's finding on it is in the diagnostics.
    assert!(inv["results"].get("node-distribution-check").is_none());
    assert!(inv["results"].get("default-storage-class-check").is_none());
    assert!(
        inv["stderr"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains(
                "node-distribution-check (manual testcase of module scs-0214-v2-manual, preview"
            )),
        "{inv:?}"
    );
    assert!(
        inv["results"].get("kaas-networking-check").is_none(),
        "skipped = missing"
    );
    assert_eq!(
        inv["cmd"].as_str(),
        Some("kaas check --conformance certified")
    );
    let lines = r.render(Format::ScsLines);
    assert!(lines.contains("cncf-k8s-conformance: PASS\n"));
    assert!(!lines.contains("node-distribution-check"), "{lines}");
    let junit = r.render(Format::Junit);
    assert!(junit.contains("name=\"cncf-k8s-conformance\""));
    let json: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
    assert_eq!(json["data"]["releases_as_of"], "2026-05-13");
    let table = r.render(Format::Table);
    assert!(table.contains("What to do:"), "{table}");

    // Results of an earlier run.
    let results = CheckOptions {
        conformance: ConformanceMode::Results(dir.path().join("missing")),
        ..behavioural_off
    };
    let r = kaas_check::run(client, &results, &|_: &str| {}).await;
    expect(
        &r,
        "cncf-k8s-conformance",
        Outcome::Abort,
        "no junit_01.xml found",
    );
}
