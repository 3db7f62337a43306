//! `kaas describe cluster` and `kaas diagnose` against a real plane (kube-apiserver and etcd, the
//! Cluster API CRDs, no Cluster API managers) with the operator running in-process, using a
//! tenant's kubeconfig: output formats, field paths, exit codes.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kube::Api;
use kube::api::PostParams;

const PROVIDER: &str = include_str!("../../../examples/provider-inmemory.yaml");

fn kaas(args: &[&str], kubeconfig: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaas"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("running kaas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_diagnose_a_cluster_as_its_tenant() {
    let plane = Plane::start(PlaneOptions::capi_crds_only().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    plane
        .remove_capi_webhooks()
        .await
        .expect("webhooks removed");
    let admin = plane.client();
    install::install_kaas(&admin).await.unwrap();
    let provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let class = kaas_harness::in_memory_cluster_class(plane.artifacts()).unwrap();
    install::provider(&admin, &provider, &class).await.unwrap();
    let token = install::tenant_service_account(&admin, "tenant-a", "alice")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("alice.kubeconfig");
    plane
        .write_kubeconfig(Identity::Token(&token), &kubeconfig)
        .unwrap();
    let _op = tokio::spawn(kaas_operator::run(
        admin.clone(),
        kaas_operator::Config {
            concurrency: 2,
            release_data: None,
            ..Default::default()
        },
    ));

    let mut bad: Cluster = serde_yaml::from_str(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: bad, namespace: tenant-a}\nspec: {provider: {name: dev}, workers: [{name: w, flavor: m9.huge}]}",
    )
    .unwrap();
    bad.status = None;
    let api: Api<Cluster> = Api::namespaced(plane.client_for_token(&token).unwrap(), "tenant-a");
    api.create(&PostParams::default(), &bad).await.unwrap();
    let start = Instant::now();
    loop {
        let c = api.get("bad").await.unwrap();
        let refused = c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|x| x.type_ == "SpecAccepted" && x.status == "False")
        });
        if refused {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "SpecAccepted=False not reported: {:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // diagnose: what needs attention, exit 1.
    let out = kaas(&["diagnose", "bad", "-n", "tenant-a"], &kubeconfig);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Waiting for: the spec is not accepted"),
        "{stdout}"
    );
    assert!(stdout.contains("spec.workers[0].flavor"), "{stdout}");
    assert!(stdout.contains("Failing:"), "{stdout}");
    assert!(stdout.contains("not Ready  failed"), "{stdout}");

    // describe: the tree as text, and the full diagnosis as JSON and YAML.
    let out = kaas(
        &["describe", "cluster", "bad", "-n", "tenant-a"],
        &kubeconfig,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("Cluster/bad (SCS)"), "{stdout}");
    assert!(stdout.contains("Hints:"), "{stdout}");
    let out = kaas(
        &["describe", "cluster", "bad", "-n", "tenant-a", "-o", "json"],
        &kubeconfig,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let d: kaas_diagnose::Diagnosis = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d.cluster.name, "bad");
    assert_eq!(
        d.verdict,
        kaas_diagnose::Verdict::Failed,
        "not Ready because the spec is refused"
    );
    assert!(
        d.hints
            .iter()
            .any(|h| h.fields == ["spec.workers[0].flavor"]),
        "{:?}",
        d.hints
    );
    let out = kaas(
        &["describe", "cluster", "bad", "-n", "tenant-a", "-o", "yaml"],
        &kubeconfig,
    );
    let y: kaas_diagnose::Diagnosis = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(y.cluster.namespace, "tenant-a");

    // Errors: exit 2 with the reason on stderr.
    let out = kaas(
        &["describe", "cluster", "nope", "-n", "tenant-a"],
        &kubeconfig,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    let out = kaas(&["diagnose", "bad", "-n", "kube-system"], &kubeconfig);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not allowed"),
        "{}",
        text(&out.stderr)
    );
}
