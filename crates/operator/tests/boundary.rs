//! The tenant boundary on the management cluster, against the real API server (Cluster API CRDs
//! installed, its managers not needed) with tenants as real RBAC identities:
//! - a tenant cannot remove kaas' finalizer from its `Cluster` (admission policy), while the
//!   operator — with exactly the Helm chart's ClusterRole — still completes a deletion;
//! - provider-side objects whose SCS `Cluster` is gone are garbage-collected after a grace
//!   period (metric, Warning event on the Provider), adopted ones and live ones are not;
//! - adoption answers do not tell a tenant whether a Cluster API cluster exists elsewhere.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use kaas_api::Cluster;
use kaas_capi::cluster::Cluster as CapiCluster;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Grace period of the orphan collector in these tests (the default is 10 minutes).
fn short_grace() {
    // SAFETY: every test of this binary sets the same value before it starts an operator.
    unsafe { std::env::set_var("KAAS_ORPHAN_GRACE_SECONDS", "3") };
}

/// An operator with exactly the chart's operator ClusterRole (ServiceAccount kaas-system/kaas-operator).
async fn chart_operator_client(plane: &kaas_harness::Plane) -> Client {
    let admin = plane.client();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/helm/kaas/templates/operator-rbac.yaml"
    ))
    .unwrap();
    let chunk = text
        .split("\n---\n")
        .find(|c| c.lines().any(|l| l == "kind: ClusterRole"))
        .expect("the operator's ClusterRole");
    let plain: String = chunk
        .lines()
        .filter(|l| !l.contains("{{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut role: ClusterRole = serde_yaml::from_str(&plain).unwrap();
    role.metadata.name = Some("kaas-operator-chart".into());
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    kaas_operator::install::namespace(&admin, "kaas-system", &[])
        .await
        .unwrap();
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("kaas-operator-chart".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "kaas-operator-chart".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "kaas-operator".into(),
            namespace: Some("kaas-system".into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let token = plane
        .service_account_token("kaas-system", "kaas-operator")
        .await
        .unwrap();
    plane.client_for_token(&token).unwrap()
}

async fn wait_for_capi(client: &Client, ns: &str, name: &str) -> CapiCluster {
    until(
        &format!("Cluster API Cluster {ns}/{name}"),
        Duration::from_secs(60),
        || async {
            Api::<CapiCluster>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await
}

async fn wait_for_finalizer(client: &Client, ns: &str, name: &str) {
    until("kaas' finalizer", Duration::from_secs(60), || async {
        let c = Api::<Cluster>::namespaced(client.clone(), ns)
            .get(name)
            .await
            .map_err(|e| e.to_string())?;
        if c.finalizers().iter().any(|f| f == kaas_operator::FINALIZER) {
            Ok(())
        } else {
            Err(format!("finalizers {:?}", c.finalizers()))
        }
    })
    .await;
}

#[tokio::test]
async fn a_tenant_cannot_drop_the_finalizer_but_the_chart_operator_still_deletes() {
    short_grace();
    let plane = plane(false).await;
    let admin = plane.client();
    let token = kaas_operator::install::tenant_service_account(&admin, "tenant-f", "frank")
        .await
        .unwrap();
    let frank = plane.client_for_token(&token).unwrap();
    // The chart's operator role adds the finalizer itself (as where no admission policy sets it
    // at creation) and removes it.
    without_finalizer_at_creation(&admin).await;
    let op = chart_operator_client(&plane).await;
    let _op = operator(op, &[]);
    create(
        &frank,
        &cluster("keep", "tenant-f", "provider: {name: dev}"),
    )
    .await;
    wait_for_finalizer(&frank, "tenant-f", "keep").await;
    let side = kaas_render::capi_namespace("dev", "tenant-f");
    wait_for_capi(&admin, &side, "keep").await;

    let api: Api<Cluster> = Api::namespaced(frank.clone(), "tenant-f");
    // Every way of writing the finalizer list without kaas' finalizer is refused.
    let merge = api
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    // A merge patch replacing the list with another finalizer only.
    let other = api
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/other"]}})),
        )
        .await;
    // An update races with the operator's own status writes: a 409 (stale resourceVersion) is
    // read again and retried, until the API server answers the update itself.
    let mut attempts = 0;
    let replace = loop {
        let mut c = api.get("keep").await.unwrap();
        c.metadata.finalizers = Some(vec![]);
        let r = api.replace("keep", &PostParams::default(), &c).await;
        attempts += 1;
        match &r {
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 20 => continue,
            _ => break r,
        }
    };
    for (how, r) in [
        ("merge patch", merge),
        ("other finalizer", other),
        ("update", replace),
    ] {
        match r {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 403, "{how}: {e:?}");
                assert!(
                    e.message.contains("metadata.finalizers")
                        && e.message.contains(kaas_operator::FINALIZER),
                    "{how}: {}",
                    e.message
                );
            }
            other => panic!("{how}: the tenant removed kaas' finalizer: {other:?}"),
        }
    }
    // Other writes of the tenant still work, and the finalizer is still there.
    api.patch(
        "keep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
    )
    .await
    .expect("a tenant may still label its cluster");
    let c = api.get("keep").await.unwrap();
    assert!(c.finalizers().iter().any(|f| f == kaas_operator::FINALIZER));

    // A deletion by the tenant completes: the operator (chart role) deletes the Cluster API
    // cluster and removes the finalizer.
    api.delete("keep", &DeleteParams::default()).await.unwrap();
    until(
        "the deletion completes",
        Duration::from_secs(60),
        || async {
            match api.get_opt("keep").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(c) => Err(summary(&c)),
            }
        },
    )
    .await;
    assert!(
        Api::<CapiCluster>::namespaced(admin.clone(), &side)
            .get_opt("keep")
            .await
            .unwrap()
            .is_none(),
        "the Cluster API cluster went with it"
    );
}

/// Creates an SCS Cluster, waits for its Cluster API Cluster, and orphans it the way the attack
/// did (finalizer dropped, Cluster deleted) — as admin, with the operator stopped.
async fn provisioned(admin: &Client, ns: &str, name: &str) -> CapiCluster {
    create(admin, &cluster(name, ns, "provider: {name: dev}")).await;
    wait_for_finalizer(admin, ns, name).await;
    wait_for_capi(admin, &kaas_render::capi_namespace("dev", ns), name).await
}

async fn orphan(admin: &Client, ns: &str, name: &str) {
    let api: Api<Cluster> = Api::namespaced(admin.clone(), ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("an admin may drop the finalizer");
    api.delete(name, &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt(name).await.unwrap().is_none());
}

#[tokio::test]
async fn orphaned_provider_side_objects_are_collected() {
    short_grace();
    let plane = plane(false).await;
    let admin = plane.client();
    for t in ["tenant-o", "tenant-p"] {
        kaas_operator::install::namespace(&admin, t, &[("scs.community/tenant", "true")])
            .await
            .unwrap();
    }
    let op = operator(admin.clone(), &[]);
    let o_side = kaas_render::capi_namespace("dev", "tenant-o");
    let p_side = kaas_render::capi_namespace("dev", "tenant-p");
    provisioned(&admin, "tenant-o", "alive").await;
    let ghost = provisioned(&admin, "tenant-o", "ghost").await;
    provisioned(&admin, "tenant-p", "lone").await;
    op.abort();
    let _ = op.await;

    orphan(&admin, "tenant-o", "ghost").await;
    orphan(&admin, "tenant-p", "lone").await;
    // An adopted Cluster API cluster (a provider admin's namespace) whose SCS Cluster is gone is
    // not kaas' to collect: removing `adopted-by` is how a provider gives it back.
    kaas_operator::install::namespace(&admin, "legacy", &[])
        .await
        .unwrap();
    let mut adopted = CapiCluster::new("old", ghost.spec.clone());
    adopted.metadata.namespace = Some("legacy".into());
    adopted.metadata.labels = Some(BTreeMap::from([
        (kaas_render::LABEL_CLUSTER.to_string(), "gone".to_string()),
        (
            kaas_render::LABEL_TENANT.to_string(),
            "tenant-o".to_string(),
        ),
        (kaas_render::LABEL_PROVIDER.to_string(), "dev".to_string()),
    ]));
    adopted.metadata.annotations = Some(BTreeMap::from([(
        kaas_api::ANNOTATION_ADOPTED_BY.to_string(),
        "tenant-o/gone".to_string(),
    )]));
    Api::<CapiCluster>::namespaced(admin.clone(), "legacy")
        .create(&PostParams::default(), &adopted)
        .await
        .unwrap();

    // A HostedControlPlane (hosted backend) whose SCS Cluster is gone, in tenant-o's namespace.
    let hosted = kube::api::ApiResource {
        group: "scs.community".into(),
        version: "v1alpha1".into(),
        api_version: "scs.community/v1alpha1".into(),
        kind: "HostedControlPlane".into(),
        plural: "hostedcontrolplanes".into(),
    };
    let hcps: Api<kube::api::DynamicObject> = Api::namespaced_with(admin.clone(), &o_side, &hosted);
    let hcp: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "HostedControlPlane",
        "metadata": {"name": "hghost", "labels": {
            kaas_render::LABEL_CLUSTER: "hghost",
            kaas_render::LABEL_TENANT: "tenant-o",
            kaas_render::LABEL_PROVIDER: "dev",
        }},
        "spec": {"runtime": "local", "version": "1.36.3", "region": "dev"},
    }))
    .unwrap();
    hcps.create(&PostParams::default(), &hcp)
        .await
        .expect("a HostedControlPlane (the CRD is installed with kaas)");

    let port = free_port();
    let cfg = kaas_operator::Config {
        providers: Default::default(),
        metrics_addr: Some(([127, 0, 0, 1], port).into()),
        lease: None,
        concurrency: 4,
        release_data: None,
        settled_requeue: None,
    };
    let _op = tokio::spawn(kaas_operator::run(admin.clone(), cfg));

    let capi_o: Api<CapiCluster> = Api::namespaced(admin.clone(), &o_side);
    until(
        "the orphan is collected",
        Duration::from_secs(60),
        || async {
            match capi_o.get_opt("ghost").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".into()),
            }
        },
    )
    .await;
    until(
        "the orphaned HostedControlPlane is collected",
        Duration::from_secs(60),
        || async {
            match hcps.get_opt("hghost").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".into()),
            }
        },
    )
    .await;
    // The provider-side namespace of a tenant with no cluster left goes too, once empty.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    until(
        "the empty provider-side namespace is collected",
        Duration::from_secs(60),
        || async {
            match namespaces
                .get_opt(&p_side)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(()),
                Some(_) => Err("still there".into()),
            }
        },
    )
    .await;
    let metrics = until(
        "the metric counts them",
        Duration::from_secs(30),
        || async {
            let m = scrape(port).await;
            let want = [
                r#"kaas_operator_orphans_collected_total{kind="Cluster",provider="dev"} 2"#,
                r#"kaas_operator_orphans_collected_total{kind="Namespace",provider="dev"} 1"#,
                r#"kaas_operator_orphans_collected_total{kind="HostedControlPlane",provider="dev"} 1"#,
            ];
            if want.iter().all(|w| m.contains(w)) {
                Ok(m)
            } else {
                Err(m
                    .lines()
                    .filter(|l| l.contains("orphan"))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        },
    )
    .await;
    assert!(metrics.contains("kaas_operator_orphans_collected_total"));
    // A Warning event on the Provider names each collected object.
    let events = until(
        "events on the Provider",
        Duration::from_secs(30),
        || async {
            let list = Api::<k8s_openapi::api::events::v1::Event>::all(admin.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some("Provider") && r.name.as_deref() == Some("dev")
                    }) && e.reason.as_deref() == Some("OrphanCollected")
                        && e.type_.as_deref() == Some("Warning")
                })
                .filter_map(|e| e.note)
                .collect();
            let want = [
                format!("{o_side}/ghost"),
                format!("{p_side}/lone"),
                format!("Namespace {p_side}"),
                format!("HostedControlPlane {o_side}/hghost"),
            ];
            if want
                .iter()
                .all(|w| notes.iter().any(|n| n.contains(w.as_str())))
            {
                Ok(notes)
            } else {
                Err(format!("{notes:?}"))
            }
        },
    )
    .await;
    assert!(
        events.iter().any(|n| n.contains("tenant-o/ghost")),
        "the event names the SCS Cluster that is gone: {events:?}"
    );
    // What is not orphaned stays: the live cluster, its namespace, the adopted one.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(capi_o.get_opt("alive").await.unwrap().is_some());
    assert!(
        namespaces
            .get_opt(&o_side)
            .await
            .unwrap()
            .is_some_and(|n| n.metadata.deletion_timestamp.is_none())
    );
    assert!(
        Api::<CapiCluster>::namespaced(admin.clone(), "legacy")
            .get_opt("old")
            .await
            .unwrap()
            .is_some(),
        "an adopted cluster is never collected"
    );
    let c = Api::<Cluster>::namespaced(admin.clone(), "tenant-o")
        .get("alive")
        .await
        .unwrap();
    assert!(c.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn adoption_answers_do_not_tell_what_exists_in_another_tenants_namespace() {
    short_grace();
    let plane = plane(false).await;
    let admin = plane.client();
    let token_a = kaas_operator::install::tenant_service_account(&admin, "tenant-a", "alice")
        .await
        .unwrap();
    let token_b = kaas_operator::install::tenant_service_account(&admin, "tenant-b", "bob")
        .await
        .unwrap();
    let a = plane.client_for_token(&token_a).unwrap();
    let b = plane.client_for_token(&token_b).unwrap();
    let _op = operator(admin.clone(), &[]);
    let b_side = kaas_render::capi_namespace("dev", "tenant-b");
    // B's clusters: one plain, one a provider admin has adopted for some other SCS Cluster.
    create(&b, &cluster("theirs", "tenant-b", "provider: {name: dev}")).await;
    create(&b, &cluster("taken", "tenant-b", "provider: {name: dev}")).await;
    wait_for_capi(&admin, &b_side, "theirs").await;
    wait_for_capi(&admin, &b_side, "taken").await;
    Api::<CapiCluster>::namespaced(admin.clone(), &b_side)
        .patch(
            "taken",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                kaas_api::ANNOTATION_ADOPTED_BY: "tenant-b/taken"
            }}})),
        )
        .await
        .unwrap();

    // A probes: exists (no adopted-by), exists (adopted by someone else), does not exist, and a
    // namespace that does not exist.
    let probes = [
        ("p-exists", format!("{b_side}/theirs")),
        ("p-taken", format!("{b_side}/taken")),
        ("p-missing", format!("{b_side}/nothing")),
        ("p-no-ns", "kaas-dev-nobody-0000000000/theirs".to_string()),
    ];
    for (name, target) in &probes {
        let mut c = cluster(name, "tenant-a", "provider: {name: dev}");
        c.metadata.annotations = Some(BTreeMap::from([(
            kaas_api::ANNOTATION_ADOPT_FROM.to_string(),
            target.clone(),
        )]));
        create(&a, &c).await;
    }
    let api: Api<Cluster> = Api::namespaced(a.clone(), "tenant-a");
    let mut answers = Vec::new();
    for (name, target) in &probes {
        let (status, reason, message) = until(
            &format!("{name}: SpecAccepted=False"),
            Duration::from_secs(60),
            || async {
                let c = api.get(name).await.map_err(|e| e.to_string())?;
                match condition(&c, "SpecAccepted") {
                    Some(x) if x.0 == "False" => Ok(x),
                    _ => Err(summary(&c)),
                }
            },
        )
        .await;
        let c = api.get(name).await.unwrap();
        let phase = c.status.as_ref().and_then(|s| s.phase);
        // The answer may echo what the tenant wrote, nothing else may differ.
        let message = message
            .replace(target.as_str(), "<ref>")
            .replace(name, "<me>");
        answers.push((*name, status, reason, message, phase));
    }
    eprintln!("{answers:#?}");
    let first = &answers[0];
    assert!(
        first
            .3
            .contains("metadata.annotations[scs.community/adopt-from]")
            && first.3.contains("adoption not confirmed by the provider"),
        "{first:?}"
    );
    for other in &answers[1..] {
        assert_eq!(
            (&other.1, &other.2, &other.3, &other.4),
            (&first.1, &first.2, &first.3, &first.4),
            "{} and {} answer differently: a tenant learns what exists in another tenant's namespace",
            first.0,
            other.0
        );
    }
    // The events a tenant reads carry the same.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(a.clone(), "tenant-a")
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut notes: Vec<String> = Vec::new();
    for (name, target) in &probes {
        let note = events
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(*name))
            .filter_map(|e| e.note.clone())
            .find(|n| n.contains("adopt"))
            .unwrap_or_default()
            .replace(target.as_str(), "<ref>")
            .replace(name, "<me>");
        notes.push(note);
    }
    assert!(
        notes.windows(2).all(|w| w[0] == w[1]),
        "events differ: {notes:#?}"
    );
    // Nothing of B's was touched.
    for n in ["theirs", "taken"] {
        let capi = Api::<CapiCluster>::namespaced(admin.clone(), &b_side)
            .get(n)
            .await
            .unwrap();
        assert_eq!(
            capi.labels()
                .get(kaas_render::LABEL_TENANT)
                .map(String::as_str),
            Some("tenant-b")
        );
    }
}
