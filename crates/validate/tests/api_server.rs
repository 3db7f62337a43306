//! The admission layer against a real kube-apiserver: the same fixtures through the API server
//! (with the CRDs kaas installs) and through `kaas validate`'s client-side evaluation must get the
//! same verdict and name the same field; rendered Cluster API objects of both stacks are accepted
//! by the upstream Cluster API CRDs.

use k8s_openapi::api::core::v1::Namespace;
use kaas_harness::{Plane, PlaneOptions};
use kaas_validate::schema::{admit, crd_schema};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn api_server_and_kaas_validate_agree_on_schema_and_cel_rules() {
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane");
    let client = plane.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "t"}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "t",
        &ApiResource::erase::<kaas_api::Cluster>(&()),
    );
    let schema = crd_schema(&kaas_api::Cluster::crd());
    let spec_of =
        |file: &str| serde_yaml::from_str::<Value>(&example(file)).unwrap()["spec"].clone();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("2022-proposal", spec_of("cluster-2022-proposal.yaml"), None),
        ("full", spec_of("cluster-full.yaml"), None),
        ("empty", json!({}), None),
        (
            "replicas",
            json!({"controlPlane": {"replicas": 2}}),
            Some("spec.controlPlane.replicas"),
        ),
        (
            "dup-pools",
            json!({"workers": [{"name": "a"}, {"name": "a"}]}),
            Some("spec.workers"),
        ),
        (
            "pool-name",
            json!({"workers": [{"name": "Bad_Name"}]}),
            Some("spec.workers[0].name"),
        ),
        (
            "count-and-min",
            json!({"workers": [{"name": "a", "count": 2, "minCount": 1, "maxCount": 3}]}),
            Some("spec.workers[0]"),
        ),
        (
            "min-gt-max",
            json!({"workers": [{"name": "a", "minCount": 4, "maxCount": 3}]}),
            Some("spec.workers[0].minCount"),
        ),
        (
            "count-zero",
            json!({"workers": [{"name": "a", "count": 0}]}),
            Some("spec.workers[0].count"),
        ),
        (
            "metrics-off",
            json!({"extensions": {"metrics": {"enabled": false}}}),
            Some("spec.extensions.metrics.enabled"),
        ),
        (
            "version",
            json!({"kubernetes": {"version": "1.35"}}),
            Some("spec.kubernetes.version"),
        ),
        (
            "cidr",
            json!({"network": {"pods": ["10.0.0.0"]}}),
            Some("spec.network.pods[0]"),
        ),
        (
            "oidc-http",
            json!({"access": {"oidc": {"issuerURL": "http://x", "clientID": "k"}}}),
            Some("spec.access.oidc.issuerURL"),
        ),
        (
            "window",
            json!({"maintenance": {"window": {"start": "01:00", "duration": "10m"}}}),
            Some("spec.maintenance.window.duration"),
        ),
        (
            "zones-set",
            json!({"controlPlane": {"zones": ["a", "a"]}}),
            Some("spec.controlPlane.zones[1]"),
        ),
    ];
    for (i, (name, spec, want)) in cases.into_iter().enumerate() {
        let obj = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "metadata": {"name": format!("c{i}"), "namespace": "t"}, "spec": spec});
        let local = admit(&schema, &obj, None);
        let server = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj).unwrap(),
            )
            .await;
        match (want, server) {
            (None, Ok(_)) => assert!(
                local.is_empty(),
                "{name}: the API server accepted it, kaas validate did not: {local}"
            ),
            (None, Err(e)) => panic!("{name}: the API server rejected a valid object: {e}"),
            (Some(path), Ok(_)) => {
                panic!("{name}: the API server accepted it; expected a rejection at {path}")
            }
            (Some(path), Err(kube::Error::Api(e))) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(
                    e.message.contains(path),
                    "{name}: the API server's message {:?} does not name {path}",
                    e.message
                );
                assert!(
                    local.paths().contains(&path),
                    "{name}: kaas validate reported {:?}, not {path}",
                    local.paths()
                );
            }
            (Some(_), Err(e)) => panic!("{name}: {e}"),
        }
    }
    // A name longer than a label (63) could never be rendered (labels, Cluster API names): both
    // refuse it at metadata.name; 63 characters are fine.
    for (len, refused) in [(64, true), (63, false)] {
        let obj = json!({"apiVersion": "scs.community/v1alpha1", "kind": "Cluster", "metadata": {"name": "n".repeat(len), "namespace": "t"}, "spec": {}});
        let local = admit(&schema, &obj, None);
        let server = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj).unwrap(),
            )
            .await;
        if refused {
            match server {
                Err(kube::Error::Api(e)) => {
                    assert_eq!(e.code, 422, "{e:?}");
                    assert!(e.message.contains("metadata.name"), "{}", e.message);
                }
                other => panic!("the API server accepted a {len}-character name: {other:?}"),
            }
            assert_eq!(local.paths(), ["metadata.name"], "{local}");
        } else {
            server.expect("a 63-character name is accepted");
            assert!(local.is_empty(), "{local}");
        }
    }
    // A transition rule: provider.name is immutable.
    let mut c = api.get("c1").await.unwrap();
    c.data["spec"]["provider"]["name"] = json!("elsewhere");
    let err = api
        .replace("c1", &PostParams::default(), &c)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("provider.name is immutable"),
        "{err}"
    );
}

#[tokio::test]
async fn rendered_cluster_api_objects_are_accepted_by_the_upstream_crds() {
    let plane = Plane::start(PlaneOptions::capi_crds_only())
        .await
        .expect("plane");
    // Only the CRD schemas judge here (no managers, so no webhooks).
    plane.remove_capi_webhooks().await.unwrap();
    let client = plane.client();
    for (cluster, provider) in [
        ("cluster-full.yaml", "provider-openstack.yaml"),
        ("cluster-2022-proposal.yaml", "provider-openstack.yaml"),
        ("cluster-demo.yaml", "provider-inmemory.yaml"),
    ] {
        let c: kaas_api::Cluster = serde_yaml::from_str(&example(cluster)).unwrap();
        let p: kaas_api::Provider = serde_yaml::from_str(&example(provider)).unwrap();
        let r = kaas_validate::validate(&c, &p).unwrap();
        let rendered = kaas_render::render(&c, &r).unwrap();
        let pp = PatchParams::apply("test").force();
        Api::<Namespace>::all(client.clone())
            .patch(
                &rendered.namespace.metadata.name.clone().unwrap(),
                &pp,
                &Patch::Apply(&rendered.namespace),
            )
            .await
            .unwrap();
        let capi: Api<kaas_capi::cluster::Cluster> = Api::namespaced(
            client.clone(),
            rendered.cluster.metadata.namespace.as_deref().unwrap(),
        );
        let stored = capi
            .patch(
                rendered.cluster.metadata.name.as_deref().unwrap(),
                &pp,
                &Patch::Apply(&rendered.cluster),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("{cluster}: the Cluster API CRD rejected the rendered Cluster: {e}")
            });
        assert_eq!(
            stored.spec.topology, rendered.cluster.spec.topology,
            "{cluster}: stored as rendered"
        );
    }
}
