//! Stack verification of the real SCS cluster stack `openstack/scs2` (ClusterClass
//! `openstack-scs2-1-35-v5`, cluster.x-k8s.io/v1beta1, from `../shared/data/upstream/`) with the
//! Cluster API Provider OpenStack CRDs (served and stored as v1beta1 only, as their README says:
//! without CAPO's conversion webhook), on the real plane with the real Cluster API managers. No
//! OpenStack: verification creates nothing but dry-runs. Admission accepts every feature but
//! taints; a real cluster using OIDC then shows the stack's v1beta1-shaped OIDC patch failing in
//! Cluster API's topology controller, which verification aggregates onto the Provider: OIDC
//! becomes unusable for the version and is refused up front.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{operator, plane, until};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_api::Provider;
use kaas_api::provider::VersionVerification;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn upstream() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/upstream")
}

/// A CAPO CRD served and stored as v1beta1 only, with the contract label upstream adds.
fn v1beta1_only(text: &str) -> CustomResourceDefinition {
    let mut v: serde_json::Value = serde_yaml::from_str(text).unwrap();
    let versions: Vec<serde_json::Value> = v["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "v1beta1")
        .cloned()
        .map(|mut x| {
            x["served"] = json!(true);
            x["storage"] = json!(true);
            x
        })
        .collect();
    assert_eq!(versions.len(), 1);
    v["spec"]["versions"] = json!(versions);
    v["spec"].as_object_mut().unwrap().remove("conversion");
    v["metadata"]["labels"] = json!({"cluster.x-k8s.io/v1beta1": "v1beta1"});
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn the_scs2_stack_is_verified_per_feature() {
    let dir = upstream();
    if !dir.exists() {
        panic!("{} is missing", dir.display());
    }
    let plane = plane(true).await;
    let client = plane.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for e in std::fs::read_dir(dir.join("capo-crds")).unwrap() {
        let crd = v1beta1_only(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("kaas-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::conditions::is_crd_established(),
        )
        .await
        .unwrap();
    }
    let mut provider: Provider =
        serde_yaml::from_str(include_str!("../../../examples/provider-openstack.yaml")).unwrap();
    provider
        .spec
        .kubernetes_versions
        .retain(|v| v.version == "1.35.4");
    let class = std::fs::read_to_string(dir.join("scs2/openstack-scs2-1-35-v5.yaml")).unwrap();
    // The manifests need the provider namespace first; the class's templates exist before it.
    let mut installed = false;
    for _ in 0..20 {
        match kaas_operator::install::provider(&client, &provider, &class).await {
            Ok(()) => {
                installed = true;
                break;
            }
            Err(e) => {
                eprintln!("installing fra1: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    assert!(installed, "provider fra1 installs");
    let _op = operator(client.clone(), &["fra1"]);

    let api: Api<Provider> = Api::all(client.clone());
    let v: VersionVerification = until("fra1 verified", Duration::from_secs(180), || async {
        let p = api.get("fra1").await.map_err(|e| e.to_string())?;
        let st = p.status.clone().unwrap_or_default();
        st.versions
            .first()
            .cloned()
            .ok_or_else(|| format!("{:?}", st.conditions))
    })
    .await;
    eprintln!("scs2 1.35.4 usable: {:?}", v.usable);
    for u in &v.unusable {
        eprintln!("scs2 1.35.4 unusable {}: {}", u.feature, u.reason);
    }
    // Exactly taints (Cluster API's feature gate) is unusable before any cluster exists:
    // admission does not run the class's patches.
    let mut usable = v.usable.clone();
    usable.sort();
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
    assert_eq!(v.unusable.len(), 1, "{v:?}");
    let taints = v
        .unusable
        .iter()
        .find(|u| u.feature == "taints")
        .expect("taints unusable");
    assert!(
        taints.reason.contains("MachineTaintPropagation"),
        "{taints:?}"
    );
    for f in [
        "oidc",
        "apiServerAllowedCIDRs",
        "labels",
        "zones",
        "autoscaling",
    ] {
        assert!(
            v.usable.iter().any(|x| x == f) || v.unusable.iter().any(|u| u.feature == f),
            "{f} judged: {v:?}"
        );
    }

    // A real cluster using OIDC: Cluster API admits it, then its topology controller has to run
    // the class's patches. What it reports is aggregated onto the Provider.
    let p = api.get("fra1").await.unwrap();
    let scs = common::cluster(
        "with-oidc",
        "tenant-a",
        "provider: {name: fra1}\nkubernetes: {version: 1.35.4}\ncontrolPlane: {replicas: 1}\nworkers: [{name: a, count: 1}]\naccess: {oidc: {issuerURL: 'https://id.example.com', clientID: kubectl}}",
    );
    let resolved =
        kaas_validate::validate(&scs, &p).expect("oidc passes validation when verified usable");
    let rendered = kaas_render::render(&scs, &resolved).unwrap();
    let capi_ns = rendered.namespace.metadata.name.clone().unwrap();
    kaas_operator::install::namespace(&client, &capi_ns, &[])
        .await
        .unwrap();
    let clusters: Api<kaas_capi::cluster::Cluster> = Api::namespaced(client.clone(), &capi_ns);
    clusters
        .create(&kube::api::PostParams::default(), &rendered.cluster)
        .await
        .expect("Cluster API admits the OIDC topology");
    let msg = until("TopologyReconciled", Duration::from_secs(120), || async {
        let c = clusters.get("with-oidc").await.map_err(|e| e.to_string())?;
        let v = serde_json::to_value(&c).unwrap();
        let cond = v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["type"] == "TopologyReconciled")
            .cloned();
        match cond {
            Some(x) if x["status"] == "False" && x["reason"] != "ClusterClassNotReconciled" => {
                Ok(x["message"].as_str().unwrap_or_default().to_string())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("scs2 with OIDC: TopologyReconciled=False: {msg}");
    // Any change of the Provider re-verifies at once.
    api.patch(
        "fra1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"kaas.scs.community/reverify": "1"}}})),
    )
    .await
    .unwrap();
    let oidc = until(
        "oidc reported unusable",
        Duration::from_secs(60),
        || async {
            let p = api.get("fra1").await.map_err(|e| e.to_string())?;
            let st = p.status.clone().unwrap_or_default();
            st.versions
                .first()
                .and_then(|v| v.unusable.iter().find(|u| u.feature == "oidc").cloned())
                .ok_or_else(|| format!("{:?}", st.versions))
        },
    )
    .await;
    eprintln!("scs2 oidc unusable: {}", oidc.reason);
    let now = api.get("fra1").await.unwrap().status.unwrap().versions[0].clone();
    let mut unusable: Vec<&str> = now.unusable.iter().map(|u| u.feature.as_str()).collect();
    unusable.sort();
    assert_eq!(unusable, ["oidc", "taints"], "{now:?}");
    assert!(oidc.reason.contains("patch \"oidcConfig\""), "{oidc:?}");
    assert!(
        oidc.reason
            .contains("fails Cluster API's topology computation")
            && !oidc.reason.contains("tenant-a"),
        "{oidc:?}"
    );
    let p = api.get("fra1").await.unwrap();
    let again = common::cluster(
        "again",
        "tenant-a",
        "provider: {name: fra1}\nkubernetes: {version: 1.35.4}\naccess: {oidc: {issuerURL: 'https://id.example.com', clientID: kubectl}}",
    );
    let text = kaas_validate::validate(&again, &p)
        .expect_err("now refused up front")
        .to_string();
    assert!(
        text.contains("spec.access.oidc: provider fra1, version 1.35.4"),
        "{text}"
    );
}
