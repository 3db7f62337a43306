//! Against the real API server (Cluster API CRDs installed, its managers not needed): invalid
//! specs create nothing and recover when fixed; tenants reach only their own clusters, kubeconfigs
//! and (read-only) Cluster API objects, never another tenant's objects, Secrets of the provider
//! side or provider credentials; an operator killed mid-creation converges without duplicates.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kaas_api::Cluster;
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machine::Machine;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::json;

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
}

#[tokio::test]
async fn invalid_specs_create_nothing_and_recover_when_fixed() {
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, "tenant-x", &[])
        .await
        .unwrap();
    // Without the policy that sets kaas' finalizer at creation (as before Kubernetes 1.36), the
    // operator adds it itself.
    without_finalizer_at_creation(&client).await;
    let _op = operator(client.clone(), &[]);
    let api: Api<Cluster> = Api::namespaced(client.clone(), "tenant-x");
    // Another controller's finalizer (a GitOps tool's, say) is kept when kaas adds its own.
    let mut bad = cluster(
        "bad",
        "tenant-x",
        "provider: {name: dev}\nworkers: [{name: a, flavor: m9.huge}]",
    );
    bad.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    create(&client, &bad).await;
    let (_, _, msg) = until(
        "SpecAccepted=False with the field path",
        Duration::from_secs(60),
        || async {
            let c = api.get("bad").await.map_err(|e| e.to_string())?;
            match condition(&c, "SpecAccepted") {
                Some(x) if x.0 == "False" => Ok(x),
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
    assert!(msg.contains(r#"spec.workers[0].flavor: "m9.huge" is not offered by provider "dev" (offered: small, medium, large)"#), "{msg}");
    let capi: Api<CapiCluster> = Api::namespaced(
        client.clone(),
        &kaas_render::capi_namespace("dev", "tenant-x"),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        capi.get_opt("bad").await.unwrap().is_none(),
        "nothing is created for an invalid spec"
    );
    let c = api.get("bad").await.unwrap();
    assert_eq!(
        c.metadata.finalizers.as_deref().unwrap_or_default(),
        ["example.com/keep", kaas_operator::FINALIZER],
        "kaas adds its finalizer beside the others"
    );
    assert_eq!(
        c.status.unwrap().phase,
        Some(kaas_api::cluster::ClusterPhase::Invalid)
    );

    patch_spec(
        &client,
        "tenant-x",
        "bad",
        json!({"workers": [{"name": "a", "flavor": "medium"}]}),
    )
    .await;
    until("fixed spec proceeds", Duration::from_secs(60), || async {
        let c = api.get("bad").await.map_err(|e| e.to_string())?;
        let accepted = condition(&c, "SpecAccepted").is_some_and(|x| x.0 == "True");
        let exists = capi
            .get_opt("bad")
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if accepted && exists {
            Ok(())
        } else {
            Err(summary(&c))
        }
    })
    .await;
}

#[tokio::test]
async fn tenants_see_only_their_own_clusters_and_kubeconfigs() {
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

    // Provider credentials, as a provider would store them.
    let creds = Secret {
        metadata: ObjectMeta {
            name: Some("openstack-credentials".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "clouds.yaml".to_string(),
            ByteString(b"password: s3cret".to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), "kaas-provider-dev")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();

    // Tenant A creates a cluster with its own identity and reads it back.
    create(
        &a,
        &cluster(
            "mine",
            "tenant-a",
            "provider: {name: dev}\nworkers: [{name: w, count: 1}]",
        ),
    )
    .await;
    let a_clusters: Api<Cluster> = Api::namespaced(a.clone(), "tenant-a");
    assert_eq!(
        a_clusters
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // A kubeconfig in tenant A's namespace (as the operator copies it) is readable by A.
    let kc = Secret {
        metadata: ObjectMeta {
            name: Some("mine-kubeconfig".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "value".to_string(),
            ByteString(b"kubeconfig".to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), "tenant-a")
        .create(&PostParams::default(), &kc)
        .await
        .unwrap();
    assert!(
        Api::<Secret>::namespaced(a.clone(), "tenant-a")
            .get("mine-kubeconfig")
            .await
            .is_ok()
    );
    // Offerings are discoverable.
    assert!(
        Api::<kaas_api::Provider>::all(a.clone())
            .get("dev")
            .await
            .is_ok()
    );

    // Tenant B: no access to A's clusters or kubeconfigs.
    assert!(forbidden(
        Api::<Cluster>::namespaced(b.clone(), "tenant-a")
            .get("mine")
            .await
    ));
    assert!(forbidden(
        Api::<Cluster>::namespaced(b.clone(), "tenant-a")
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(b.clone(), "tenant-a")
            .get("mine-kubeconfig")
            .await
    ));
    assert!(forbidden(
        Api::<Cluster>::all(b.clone())
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(create_as(&b, "tenant-a").await));
    // Neither tenant reaches provider credentials, Secrets of the provider side or Cluster API
    // objects outside its own provider-side namespace.
    let a_side = kaas_render::capi_namespace("dev", "tenant-a");
    let b_side = kaas_render::capi_namespace("dev", "tenant-b");
    for t in [&a, &b] {
        assert!(forbidden(
            Api::<Secret>::namespaced(t.clone(), "kaas-provider-dev")
                .get("openstack-credentials")
                .await
        ));
        assert!(forbidden(
            Api::<Secret>::namespaced(t.clone(), "kaas-provider-dev")
                .list(&ListParams::default())
                .await
        ));
        assert!(forbidden(
            Api::<CapiCluster>::namespaced(t.clone(), "kaas-provider-dev")
                .list(&ListParams::default())
                .await
        ));
        assert!(forbidden(
            Api::<Secret>::namespaced(t.clone(), &a_side)
                .list(&ListParams::default())
                .await
        ));
        assert!(forbidden(
            Api::<Secret>::all(t.clone())
                .list(&ListParams::default())
                .await
        ));
        assert!(forbidden(
            Api::<CapiCluster>::all(t.clone())
                .list(&ListParams::default())
                .await
        ));
    }
    assert!(forbidden(
        Api::<CapiCluster>::namespaced(b.clone(), &a_side)
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<Machine>::namespaced(b.clone(), &a_side)
            .list(&ListParams::default())
            .await
    ));
    // The operator realised A's cluster on the provider side.
    until(
        "Cluster API object in the provider-side namespace",
        Duration::from_secs(60),
        || async {
            Api::<CapiCluster>::namespaced(admin.clone(), &a_side)
                .get_opt("mine")
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    // A reads its own Cluster API objects there (RoleBinding kaas-tenant-capi-viewer, kept by
    // the operator from A's kaas-tenant RoleBinding) ...
    let names = until(
        "tenant A lists its Cluster API Clusters",
        Duration::from_secs(60),
        || async {
            Api::<CapiCluster>::namespaced(a.clone(), &a_side)
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|c| c.metadata.name.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(names, ["mine"]);
    Api::<Machine>::namespaced(a.clone(), &a_side)
        .list(&ListParams::default())
        .await
        .expect("tenant A lists its Machines");
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(a.clone(), &a_side)
        .list(&ListParams::default())
        .await
        .expect("tenant A lists events of its provider-side namespace");
    // ... but still no Secret or ConfigMap there, and nothing that can carry file contents.
    assert!(forbidden(
        Api::<Secret>::namespaced(a.clone(), &a_side)
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(a.clone(), &a_side)
            .get("mine-kubeconfig")
            .await
    ));
    assert!(forbidden(
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(a.clone(), &a_side)
            .list(&ListParams::default())
            .await
    ));
    let kubeadm_configs = kube::api::ApiResource {
        group: "bootstrap.cluster.x-k8s.io".into(),
        version: "v1beta2".into(),
        api_version: "bootstrap.cluster.x-k8s.io/v1beta2".into(),
        kind: "KubeadmConfig".into(),
        plural: "kubeadmconfigs".into(),
    };
    assert!(forbidden(
        Api::<kube::api::DynamicObject>::namespaced_with(a.clone(), &a_side, &kubeadm_configs)
            .list(&ListParams::default())
            .await
    ));
    // B's cluster: B reads its provider-side namespace, A does not.
    create(
        &b,
        &cluster(
            "theirs",
            "tenant-b",
            "provider: {name: dev}\nworkers: [{name: w, count: 1}]",
        ),
    )
    .await;
    until(
        "tenant B lists its Cluster API Clusters",
        Duration::from_secs(60),
        || async {
            let items = Api::<CapiCluster>::namespaced(b.clone(), &b_side)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            if items.is_empty() {
                Err("none yet".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert!(forbidden(
        Api::<CapiCluster>::namespaced(a.clone(), &b_side)
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<Machine>::namespaced(a.clone(), &b_side)
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(b.clone(), &b_side)
            .list(&ListParams::default())
            .await
    ));
    // No status, event or message in the tenant's namespace carries the credentials.
    let c = a_clusters.get("mine").await.unwrap();
    assert!(!serde_json::to_string(&c).unwrap().contains("s3cret"));
}

/// The operator with exactly the Helm chart's ClusterRole (not as admin) keeps the tenant's
/// viewer binding: `bind` on `kaas-capi-viewer` is enough, it needs none of the role's rules.
#[tokio::test]
async fn the_charts_operator_role_keeps_the_viewer_binding() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
    let plane = plane(false).await;
    let admin = plane.client();
    // The chart's operator ClusterRole: its rules are literal YAML, only metadata is templated.
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
    let op_token = plane
        .service_account_token("kaas-system", "kaas-operator")
        .await
        .unwrap();
    let op = plane.client_for_token(&op_token).unwrap();
    let token = kaas_operator::install::tenant_service_account(&admin, "tenant-c", "carol")
        .await
        .unwrap();
    let carol = plane.client_for_token(&token).unwrap();
    let _op = operator(op, &[]);
    create(&carol, &cluster("c1", "tenant-c", "provider: {name: dev}")).await;
    let side = kaas_render::capi_namespace("dev", "tenant-c");
    until(
        "carol lists her Cluster API Cluster",
        Duration::from_secs(60),
        || async {
            let l = Api::<CapiCluster>::namespaced(carol.clone(), &side)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            if l.items.is_empty() {
                Err("none yet".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let rb = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &side)
        .get(kaas_operator::install::CAPI_VIEWER_BINDING)
        .await
        .unwrap();
    let subjects: Vec<(String, String, Option<String>)> = rb
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.kind, s.name, s.namespace))
        .collect();
    assert_eq!(
        subjects,
        [(
            "ServiceAccount".to_string(),
            "carol".to_string(),
            Some("tenant-c".to_string())
        )]
    );
}

async fn create_as(client: &kube::Client, ns: &str) -> Result<Cluster, kube::Error> {
    Api::<Cluster>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cluster("intruder", ns, "{}"))
        .await
}

#[tokio::test]
async fn an_operator_killed_mid_creation_converges_without_duplicates() {
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, "tenant-r", &[])
        .await
        .unwrap();
    for i in 0..20 {
        create(
            &client,
            &cluster(
                &format!("c{i}"),
                "tenant-r",
                "provider: {name: dev}\nworkers: [{name: w, count: 2}]",
            ),
        )
        .await;
    }
    let first = operator(client.clone(), &[]);
    // Kill it as soon as it has started writing.
    let capi: Api<CapiCluster> = Api::namespaced(
        client.clone(),
        &kaas_render::capi_namespace("dev", "tenant-r"),
    );
    until(
        "first Cluster API object written",
        Duration::from_secs(60),
        || async {
            let n = capi
                .list(&ListParams::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            if n > 0 { Ok(n) } else { Err("none yet".into()) }
        },
    )
    .await;
    first.abort();
    let _ = first.await;
    let second = operator(client.clone(), &[]);
    let api: Api<Cluster> = Api::namespaced(client.clone(), "tenant-r");
    until(
        "every cluster realised once and its status written",
        Duration::from_secs(120),
        || async {
            let items = capi
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let scs = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let with_status = scs
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.observed_generation == c.metadata.generation)
                })
                .count();
            if items.len() == 20 && with_status == 20 {
                Ok(())
            } else {
                Err(format!("capi={} statuses={with_status}", items.len()))
            }
        },
    )
    .await;
    let mut names: Vec<String> = capi
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20, "no duplicates");
    second.abort();
}

#[tokio::test]
async fn an_instance_limited_to_other_providers_leaves_the_cluster_alone() {
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, "tenant-s", &[])
        .await
        .unwrap();
    let _other = operator(client.clone(), &["fra1"]);
    let created = create(&client, &cluster("s", "tenant-s", "provider: {name: dev}")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = Api::<Cluster>::namespaced(client.clone(), "tenant-s")
        .get("s")
        .await
        .unwrap();
    assert!(
        c.status.is_none() && c.metadata.resource_version == created.metadata.resource_version,
        "a shard for fra1 must not touch dev's clusters"
    );
    let _dev = operator(client.clone(), &["dev"]);
    until(
        "the dev shard takes it",
        Duration::from_secs(60),
        || async {
            let c = Api::<Cluster>::namespaced(client.clone(), "tenant-s")
                .get("s")
                .await
                .map_err(|e| e.to_string())?;
            if c.status.is_some() {
                Ok(())
            } else {
                Err("no status".into())
            }
        },
    )
    .await;
}

/// The conditions a new cluster's first status sets are one event, not one per condition; an
/// event published again continues its series (one object, `series.count`), and one whose first
/// event is gone starts a new one.
#[tokio::test]
async fn a_status_write_is_one_event_and_a_repeat_continues_its_series() {
    use k8s_openapi::api::events::v1::Event;
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, "tenant-e", &[])
        .await
        .unwrap();
    let _op = operator(client.clone(), &[]);
    let c = create(&client, &cluster("e", "tenant-e", "provider: {name: dev}")).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "tenant-e");
    let ours = || async {
        events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| {
                        e.reporting_controller.as_deref() == Some("kaas-operator")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("e")
                    })
                    .collect::<Vec<_>>()
            })
    };
    let first = until(
        "the first status's event",
        Duration::from_secs(60),
        || async {
            let evs = ours().await?;
            evs.iter()
                .find(|e| {
                    e.note.as_deref().is_some_and(|n| {
                        n.contains("Ready=False") && n.contains("SpecAccepted=True")
                    })
                })
                .cloned()
                .ok_or_else(|| format!("{:?}", evs.iter().map(|e| &e.note).collect::<Vec<_>>()))
        },
    )
    .await;
    assert_eq!(first.type_.as_deref(), Some("Normal"));
    assert!(
        first
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Ready")),
        "{first:?}"
    );
    let with_spec_accepted = ours()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.note
                .as_deref()
                .is_some_and(|n| n.contains("SpecAccepted"))
        })
        .count();
    assert_eq!(with_spec_accepted, 1, "SpecAccepted is told once");

    let publisher = kaas_operator::events::Publisher::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "kaas-test".into(),
            instance: None,
        },
    );
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "Tested".into(),
        note: Some("again".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&c, &());
    let tested = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("kaas-test"))
            .collect::<Vec<_>>()
    };
    for _ in 0..3 {
        publisher.publish(&ev, &reference).await.unwrap();
    }
    let series = tested().await;
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(publisher.remembered(), 1);
    events
        .delete(
            series[0].metadata.name.as_deref().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    publisher.publish(&ev, &reference).await.unwrap();
    let again = tested().await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0].metadata.name, series[0].metadata.name);
    assert!(again[0].series.is_none());
    // The same event about another related object is another event.
    let related = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "Tested".into(),
        note: Some("again".into()),
        action: "Test".into(),
        secondary: Some(k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("Namespace".into()),
            name: Some("elsewhere".into()),
            ..Default::default()
        }),
    };
    publisher.publish(&related, &reference).await.unwrap();
    assert_eq!(tested().await.len(), 2);
    assert_eq!(publisher.remembered(), 2);
}

/// A new Cluster carries kaas' finalizer from its creation (the mutating admission policy), beside
/// any other: the operator needs no write for it. The API server attributes the finalizer to no
/// field manager, so a server-side apply of the same manifest again keeps it, and the operator,
/// finding it, writes no finalizer of its own.
#[tokio::test]
async fn a_new_cluster_carries_the_finalizer_from_creation() {
    let plane = plane(false).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, "tenant-f", &[])
        .await
        .unwrap();
    let api: Api<Cluster> = Api::namespaced(client.clone(), "tenant-f");
    // The API server applies a new policy once its cache has it (within about a second).
    let probe = cluster("probe", "tenant-f", "provider: {name: dev}");
    until("the policy is applied", Duration::from_secs(30), || async {
        match kaas_operator::install::finalizer_set_at_creation(&client, &probe).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("a dry-run create gets no finalizer".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let mut other = cluster("other", "tenant-f", "provider: {name: dev}");
    other.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    let created = create(&client, &other).await;
    assert_eq!(
        created.metadata.finalizers.as_deref().unwrap_or_default(),
        ["example.com/keep", kaas_operator::FINALIZER],
        "kaas' finalizer is added beside the others at creation"
    );

    // Server-side apply, as a GitOps tool writes: created, then applied again with a change.
    let pp = kube::api::PatchParams::apply("gitops-tool");
    let manifest = |workers: u32| {
        json!({
            "apiVersion": "scs.community/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "applied", "namespace": "tenant-f"},
            "spec": {"provider": {"name": "dev"}, "workers": [{"name": "a", "count": workers}]},
        })
    };
    let first = api
        .patch("applied", &pp, &kube::api::Patch::Apply(manifest(1)))
        .await
        .unwrap();
    assert_eq!(
        first.metadata.finalizers.as_deref().unwrap_or_default(),
        [kaas_operator::FINALIZER],
        "a server-side apply that creates a Cluster gets the finalizer too"
    );
    let again = api
        .patch("applied", &pp, &kube::api::Patch::Apply(manifest(2)))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.finalizers.as_deref().unwrap_or_default(),
        [kaas_operator::FINALIZER],
        "applying the same manifest again (without the finalizer) keeps it"
    );

    let _op = operator(client.clone(), &[]);
    until(
        "the operator's first status",
        Duration::from_secs(60),
        || async {
            let c = api.get("applied").await.map_err(|e| e.to_string())?;
            c.status.as_ref().map(|_| ()).ok_or_else(|| summary(&c))
        },
    )
    .await;
    let c = api.get("applied").await.unwrap();
    assert_eq!(
        c.metadata.finalizers.as_deref().unwrap_or_default(),
        [kaas_operator::FINALIZER]
    );
    // Nobody owns the finalizer: not the GitOps tool (so its next apply cannot drop it), and not
    // the operator (it wrote none).
    let owners: Vec<&str> = c
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:metadata"].get("f:finalizers").is_some())
        })
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert!(owners.is_empty(), "finalizers owned by {owners:?}");
}
