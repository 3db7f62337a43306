//! Stack verification and capabilities, on the real plane with the real Cluster API managers and
//! webhooks (Cluster API v1.14, default feature gates):
//!
//! - the dev provider (upstream in-memory ClusterClass): `taints` is unusable for every version
//!   (Cluster API's webhook refuses topology taints while `MachineTaintPropagation` is off), every
//!   other feature usable;
//! - a provider `mini` of the `openstack-scs2` stack family on a ClusterClass of our own (the
//!   in-memory class with the scs2 stack's variables, `oidcConfig` left out): `oidc` unusable
//!   because the class lacks the variable kaas renders;
//! - a Cluster using taints is refused by `kaas_validate::validate` with the field path, and the
//!   operator writes nothing for it (no Cluster API Cluster, no provider-side namespace).

mod common;

use std::time::Duration;

use common::{cluster, condition, create, operator, plane, summary, until};
use k8s_openapi::api::core::v1::Namespace;
use kaas_api::provider::VersionVerification;
use kaas_api::{Cluster, Provider};
use kaas_capi::cluster as capi;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "tenant-verify";

/// The in-memory ClusterClass manifests with the `openstack-scs2` stack's variables defined,
/// except `left_out`.
fn class_with_scs2_variables(in_memory: &str, left_out: &str) -> String {
    let string = json!({"type": "string"});
    let vars = [
        ("controlPlaneFlavor", string.clone()),
        ("workerFlavor", string.clone()),
        (
            "identityRef",
            json!({"type": "object", "properties": {"name": string, "cloudName": string}}),
        ),
        (
            "controlPlaneAvailabilityZones",
            json!({"type": "array", "items": string}),
        ),
        ("nodeCIDR", string.clone()),
        (
            "oidcConfig",
            json!({"type": "object", "required": ["clientID", "issuerURL"], "properties": {
                "clientID": string, "issuerURL": string, "usernameClaim": string,
                "usernamePrefix": string, "groupsClaim": string, "groupsPrefix": string}}),
        ),
        ("apiServerLoadBalancer", string.clone()),
        (
            "apiServerLoadBalancerOctaviaAmphoraAllowedCIDRs",
            json!({"type": "array", "items": string}),
        ),
    ];
    let variables: Vec<serde_json::Value> = vars
        .into_iter()
        .filter(|(n, _)| *n != left_out)
        .map(|(n, s)| json!({"name": n, "required": false, "schema": {"openAPIV3Schema": s}}))
        .collect();
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(in_memory) {
        let mut v: serde_json::Value = serde::Deserialize::deserialize(de).unwrap();
        if v.is_null() {
            continue;
        }
        if v["kind"] == "ClusterClass" {
            v["spec"]["variables"] = json!(variables);
        }
        docs.push(serde_yaml::to_string(&v).unwrap());
    }
    docs.join("---\n")
}

fn mini_provider() -> Provider {
    let mut p: Provider = serde_yaml::from_str(common::PROVIDER).unwrap();
    p.metadata.name = Some("mini".into());
    p.spec.backend.namespace = "kaas-provider-mini".into();
    p.spec.backend.cluster_api.as_mut().unwrap().stack =
        kaas_api::provider::StackKind::OpenStackScs2;
    p.spec.kubernetes_versions.retain(|v| v.version == "1.35.4");
    p.spec.kubernetes_versions[0].stack.addons = None;
    p
}

async fn verified(client: &Client, name: &str, versions: usize) -> Vec<VersionVerification> {
    let api: Api<Provider> = Api::all(client.clone());
    until(
        &format!("provider {name} verified"),
        Duration::from_secs(120),
        || async {
            let p = api.get(name).await.map_err(|e| e.to_string())?;
            let st = p.status.clone().unwrap_or_default();
            let cond = st.conditions.iter().find(|c| c.type_ == "StackVerified");
            if st.versions.len() == versions && cond.is_some() {
                Ok(st.versions)
            } else {
                Err(format!("{st:?}"))
            }
        },
    )
    .await
}

fn features(v: &VersionVerification) -> (Vec<&str>, Vec<&str>) {
    let mut usable: Vec<&str> = v.usable.iter().map(String::as_str).collect();
    usable.sort();
    let mut unusable: Vec<&str> = v.unusable.iter().map(|u| u.feature.as_str()).collect();
    unusable.sort();
    (usable, unusable)
}

#[tokio::test]
async fn verification_finds_what_the_stack_cannot_serve_and_validation_refuses_it_up_front() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, NS, &[])
        .await
        .unwrap();
    let in_memory = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    kaas_operator::install::provider(
        &client,
        &mini_provider(),
        &class_with_scs2_variables(&in_memory, "oidcConfig"),
    )
    .await
    .expect("provider mini installs");
    let _op = operator(client.clone(), &[]);

    // (a) dev: taints unusable for every version (no addon bundles here: extensions unverified).
    let dev = verified(&client, "dev", 4).await;
    for v in &dev {
        let (usable, unusable) = features(v);
        eprintln!(
            "dev {}: usable {usable:?}, unusable {unusable:?}",
            v.version
        );
        assert_eq!(
            usable,
            [
                "apiServerAllowedCIDRs",
                "autoscaling",
                "base",
                "labels",
                "oidc",
                "zones"
            ],
            "{v:?}"
        );
        assert_eq!(unusable, ["taints"], "{v:?}");
        let reason = &v.unusable[0].reason;
        assert!(
            reason.starts_with("Cluster API refused it:")
                && reason.contains("MachineTaintPropagation"),
            "the webhook's message: {reason}"
        );
    }
    let p: Provider = Api::all(client.clone()).get("dev").await.unwrap();
    let cond = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "StackVerified")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "FeaturesUnusable")
    );
    assert!(cond.message.contains("1.35.4: taints"), "{}", cond.message);
    assert!(
        cond.message
            .contains("addon bundle dev-addons-1-35 not found"),
        "{}",
        cond.message
    );

    // (b) mini: its class lacks oidcConfig, which kaas renders for OIDC.
    let mini = verified(&client, "mini", 1).await;
    let (usable, unusable) = features(&mini[0]);
    eprintln!("mini 1.35.4: usable {usable:?}, unusable {unusable:?}");
    assert_eq!(unusable, ["oidc", "taints"], "{mini:?}");
    assert_eq!(
        usable,
        [
            "apiServerAllowedCIDRs",
            "autoscaling",
            "base",
            "labels",
            "zones"
        ]
    );
    let oidc = mini[0]
        .unusable
        .iter()
        .find(|u| u.feature == "oidc")
        .unwrap();
    assert_eq!(
        oidc.reason,
        "ClusterClass in-memory does not define variable oidcConfig (kaas sets it)"
    );

    // Validation refuses a cluster using taints, with the field path and the reason.
    let tainted = cluster(
        "tainted",
        NS,
        "provider: {name: dev}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\nworkers: [{name: plain, count: 1}, {name: gpu, count: 1, taints: [{key: gpu, value: 'true', effect: NoSchedule}]}]",
    );
    let errs = kaas_validate::validate(&tainted, &p).expect_err("taints are refused");
    let text = errs.to_string();
    eprintln!("validate: {text}");
    assert!(
        text.contains(
            "spec.workers[1].taints: provider dev, version 1.35.4: Cluster API refused it:"
        ) && text.contains("MachineTaintPropagation"),
        "{text}"
    );
    assert!(!text.contains("spec.workers[0]"), "{text}");
    // And the same for OIDC on mini.
    let mp: Provider = Api::all(client.clone()).get("mini").await.unwrap();
    let oidc_cluster = cluster(
        "oidc",
        NS,
        "provider: {name: mini}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\naccess: {oidc: {issuerURL: 'https://id.example.com', clientID: k}}",
    );
    let text = kaas_validate::validate(&oidc_cluster, &mp)
        .expect_err("oidc is refused on mini")
        .to_string();
    assert!(
        text.contains("spec.access.oidc: provider mini, version 1.35.4: ClusterClass in-memory does not define variable oidcConfig"),
        "{text}"
    );

    // The operator refuses it too, and writes nothing for it.
    create(&client, &tainted).await;
    let api: Api<Cluster> = Api::namespaced(client.clone(), NS);
    let c = until("refused by validation", Duration::from_secs(60), || async {
        let c = api.get("tainted").await.map_err(|e| e.to_string())?;
        match condition(&c, "SpecAccepted") {
            Some((s, r, _)) if s == "False" && r == "InvalidSpec" => Ok(c),
            _ => Err(summary(&c)),
        }
    })
    .await;
    let (_, _, msg) = condition(&c, "SpecAccepted").unwrap();
    assert!(
        msg.contains("spec.workers[1].taints: provider dev, version 1.35.4"),
        "{msg}"
    );
    // Give a wrongly accepting operator the time to write, then look.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let capi_clusters: Api<capi::Cluster> = Api::all(client.clone());
    let written = capi_clusters
        .list(&ListParams::default().labels(&format!("{}=tainted", kaas_render::LABEL_CLUSTER)))
        .await
        .unwrap();
    assert!(
        written.items.is_empty(),
        "nothing written: {:?}",
        written.items
    );
    let ns = kaas_render::capi_namespace("dev", NS);
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_none(),
        "no provider-side namespace {ns}"
    );

    // A cluster using only usable features is accepted and gets its Cluster API Cluster.
    create(
        &client,
        &cluster(
            "labelled",
            NS,
            "provider: {name: dev}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\nworkers: [{name: a, count: 1, labels: {role: a}, zones: [zone-a]}]",
        ),
    )
    .await;
    until("labelled is written", Duration::from_secs(60), || async {
        let l = capi_clusters
            .list(
                &ListParams::default().labels(&format!("{}=labelled", kaas_render::LABEL_CLUSTER)),
            )
            .await
            .map_err(|e| e.to_string())?;
        if l.items.len() == 1 {
            Ok(())
        } else {
            let c = api.get("labelled").await.map_err(|e| e.to_string())?;
            Err(summary(&c))
        }
    })
    .await;

    // The provider declares what it does not offer: a declaration narrows (labels become
    // unusable), never widens (oidc and taints keep verification's reason), and once every
    // unusable feature is declared StackVerified is True.
    let providers: Api<Provider> = Api::all(client.clone());
    providers
        .patch(
            "mini",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"disabledFeatures": [
                {"name": "oidc"}, {"name": "taints"},
                {"name": "labels", "reason": "no node labels here"}]}})),
        )
        .await
        .unwrap();
    let mp = until("mini narrowed", Duration::from_secs(60), || async {
        let p = providers.get("mini").await.map_err(|e| e.to_string())?;
        let st = p.status.clone().unwrap_or_default();
        let ok = st
            .versions
            .first()
            .is_some_and(|v| v.unusable.iter().any(|u| u.feature == "labels"))
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "StackVerified" && c.status == "True");
        if ok { Ok(p) } else { Err(format!("{st:?}")) }
    })
    .await;
    let v = &mp.status.as_ref().unwrap().versions[0];
    let (usable, unusable) = features(v);
    assert_eq!(unusable, ["labels", "oidc", "taints"], "{v:?}");
    assert!(!usable.contains(&"labels"), "{v:?}");
    let reason = |f: &str| {
        v.unusable
            .iter()
            .find(|u| u.feature == f)
            .unwrap()
            .reason
            .clone()
    };
    assert_eq!(
        reason("labels"),
        "disabled by the provider: no node labels here"
    );
    assert!(reason("oidc").contains("does not define variable oidcConfig"));
    assert!(reason("taints").starts_with("Cluster API refused it:"));
    let cond = mp
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "StackVerified")
        .unwrap();
    assert!(
        cond.message
            .contains("; disabled by the provider: 1.35.4: ")
            && ["labels", "oidc", "taints"]
                .iter()
                .all(|f| cond.message.contains(f)),
        "{}",
        cond.message
    );
    let text = kaas_validate::validate(
        &cluster(
            "labels",
            NS,
            "provider: {name: mini}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\nworkers: [{name: a, count: 1, labels: {role: a}}]",
        ),
        &mp,
    )
    .expect_err("labels are refused on mini now")
    .to_string();
    assert!(text.contains("spec.workers[0].labels: provider mini, version 1.35.4: disabled by the provider: no node labels here"), "{text}");
}
