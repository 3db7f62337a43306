//! `kaas doctor` against the real plane (real Cluster API managers and webhooks): everything in
//! place is ok (exit 0); then one prerequisite removed at a time — a Provider's ClusterClass, its
//! addon bundle, its credentials Secret, an admission policy, the operator's lease, a kaas CRD —
//! is each reported as the one problem, with its fix, and exit code 1.

mod common;

use std::time::Duration;

use common::{plane, until};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_api::Provider;
use kaas_capi::clusterclass::ClusterClass;
use kaas_operator::doctor::{self, Finding, Options, Verdict};
use kaas_operator::leader::LeaseConfig;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const PROVIDER_NS: &str = "kaas-provider-dev";
const LEASE_NS: &str = "kaas-system";

fn bundle(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {kaas_api::addons::BUNDLE_LABEL: name}},
        "data": {kaas_api::addons::BUNDLE_INDEX: format!("name: {name}\naddons:\n- {{name: metrics, stage: extension, version: '0.9.0', manifests: []}}\n")}
    }))
    .unwrap()
}

async fn run(client: &Client) -> (Vec<Finding>, u8) {
    let f = doctor::diagnose(
        client,
        &Options {
            lease_namespace: LEASE_NS.into(),
        },
    )
    .await;
    eprintln!("{}", doctor::table(&f));
    let code = doctor::exit_code(&f);
    (f, code)
}

/// Waits until exactly `check` is the problem (exit 1) and returns it.
async fn only_problem(client: &Client, check: &str) -> Finding {
    until(
        &format!("doctor reports {check}"),
        Duration::from_secs(60),
        || async {
            let (f, code) = run(client).await;
            let problems: Vec<&Finding> =
                f.iter().filter(|x| x.verdict == Verdict::Problem).collect();
            match problems.as_slice() {
                [one] if one.check == check && code == 1 => Ok((*one).clone()),
                _ => Err(format!("exit {code}, problems {problems:?}")),
            }
        },
    )
    .await
}

async fn all_ok(client: &Client) {
    until("doctor: all ok", Duration::from_secs(60), || async {
        let (f, code) = run(client).await;
        if code == 0 {
            Ok(())
        } else {
            Err(format!("exit {code}: {f:?}"))
        }
    })
    .await
}

#[tokio::test]
async fn doctor_reports_each_missing_prerequisite_with_its_fix() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, LEASE_NS, &[])
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), PROVIDER_NS);
    for b in ["dev-addons-1-35", "dev-addons-1-36"] {
        cms.create(&PostParams::default(), &bundle(b))
            .await
            .unwrap();
    }
    // The operator runs on its own runtime (with its own client), so stopping it stops everything
    // it spawned, the lease renewal included.
    let start_operator = || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let op_client = {
            let _guard = rt.enter();
            plane.client()
        };
        let cfg = kaas_operator::Config {
            providers: Default::default(),
            metrics_addr: None,
            lease: Some(LeaseConfig {
                namespace: LEASE_NS.into(),
                name: "kaas-operator".into(),
                identity: "doctor-test".into(),
                duration: Duration::from_secs(5),
                fence: Default::default(),
            }),
            concurrency: 2,
            release_data: None,
            settled_requeue: None,
        };
        rt.spawn(kaas_operator::run(op_client, cfg));
        rt
    };
    let op = start_operator();

    all_ok(&client).await;
    let (f, _) = run(&client).await;
    for check in [
        "capi-crds",
        "capi-contract-labels",
        "capi-topology",
        "kaas-crds",
        "kaas-admission",
        "kaas-finalizer-at-creation",
        "provider/dev/cluster-classes",
        "provider/dev/addon-bundles",
        "operator",
    ] {
        assert!(
            f.iter()
                .any(|x| x.check == check && x.verdict == Verdict::Ok),
            "{check} ok: {f:?}"
        );
    }

    // 1. The Provider's ClusterClass.
    let classes: Api<ClusterClass> = Api::namespaced(client.clone(), PROVIDER_NS);
    classes
        .delete("in-memory", &DeleteParams::default())
        .await
        .unwrap();
    let p = only_problem(&client, "provider/dev/cluster-classes").await;
    assert!(
        p.detail.contains("in-memory") && p.detail.contains("1.35.4"),
        "{p:?}"
    );
    assert!(p.fix.contains(PROVIDER_NS), "{p:?}");
    let provider: Provider = serde_yaml::from_str(common::PROVIDER).unwrap();
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    kaas_operator::install::provider(&client, &provider, &class)
        .await
        .unwrap();
    all_ok(&client).await;

    // 2. An addon bundle.
    cms.delete("dev-addons-1-36", &DeleteParams::default())
        .await
        .unwrap();
    let p = only_problem(&client, "provider/dev/addon-bundles").await;
    assert!(
        p.detail.contains("dev-addons-1-36") && !p.detail.contains("dev-addons-1-35"),
        "{p:?}"
    );
    cms.create(&PostParams::default(), &bundle("dev-addons-1-36"))
        .await
        .unwrap();
    all_ok(&client).await;

    // 3. The credentials Secret (never printed).
    let providers: Api<Provider> = Api::all(client.clone());
    providers
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"credentialsRef": {"name": "dev-cloud"}}})),
        )
        .await
        .unwrap();
    let p = only_problem(&client, "provider/dev/credentials").await;
    assert!(
        p.detail.contains("dev-cloud") && p.fix.contains("clouds.yaml"),
        "{p:?}"
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "dev-cloud"}, "stringData": {"clouds.yaml": "very-secret-value"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), PROVIDER_NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    all_ok(&client).await;
    let (f, _) = run(&client).await;
    let text = format!(
        "{}{}",
        doctor::table(&f),
        serde_json::to_string(&f).unwrap()
    );
    assert!(!text.contains("very-secret-value"), "{text}");

    // 4. An admission policy.
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    vaps.delete(
        kaas_api::policy::DELETION_PROTECTION,
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    let p = only_problem(&client, "kaas-admission").await;
    assert!(
        p.detail.contains(kaas_api::policy::DELETION_PROTECTION),
        "{p:?}"
    );
    assert!(p.fix.contains("kaas crds"), "{p:?}");
    kaas_operator::install::install_kaas(&client).await.unwrap();
    all_ok(&client).await;

    // 5. The operator: stopped, its lease is no longer renewed.
    op.shutdown_background();
    let p = only_problem(&client, "operator").await;
    assert!(p.detail.contains("not renewed"), "{p:?}");
    let op = start_operator();
    all_ok(&client).await;
    op.shutdown_background();

    // 6. A kaas CRD.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("gitsources.scs.community", &DeleteParams::default())
        .await
        .unwrap();
    // The operator is stopped too now: two problems, each with its fix.
    until(
        "doctor reports the CRD",
        Duration::from_secs(60),
        || async {
            let (f, code) = run(&client).await;
            let crd = f
                .iter()
                .find(|x| x.check == "kaas-crds" && x.verdict == Verdict::Problem);
            match crd {
                Some(x)
                    if code == 1
                        && x.detail.contains("gitsources.scs.community")
                        && x.fix.contains("kaas crds") =>
                {
                    Ok(())
                }
                _ => Err(format!("exit {code}: {f:?}")),
            }
        },
    )
    .await;
}
