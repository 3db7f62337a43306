//! etcd backup and restore (issue #19) end to end on the hosted backend with real components: a
//! real management plane, `kaas hosted-runtime` (with the pinned `etcdutl`) and `kaas operator` as
//! their own processes, a real S3-compatible store (versitygw, posix backend; `kaas_harness::s3`)
//! and a hosted workload cluster. A backup, then a namespace deleted and another created in the
//! workload cluster, then a restore: the deleted namespace is back, the new one is gone, the
//! cluster is Ready; the same backup restored into a new cluster of the tenant brings k1's
//! namespace there. The stored object is sealed (not an etcd snapshot without the key); the
//! store's credentials are unreadable for the tenant and appear in no status, event or log; a
//! restore naming another tenant's backup is refused with a condition; a schedule of every minute
//! with retention 2 keeps exactly two scheduled objects in the store; a malformed schedule is
//! refused with its field path; while the cluster hibernates the schedule creates nothing (one
//! `BackupSkipped` event) and a backup asked for is refused with the reason.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kaas_api::backup::{
    BackupSchedule, BackupStore, ClusterBackup, ClusterBackupSpec, ClusterRestore,
    ClusterRestoreSpec, ProviderBackup, SecretRef,
};
use kaas_api::hosted::HostedControlPlane;
use kaas_api::{Cluster, Provider};
use kaas_harness::{Identity, Plane, PlaneOptions};
use kaas_operator::install;
use kaas_operator::s3::Bucket;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use common::{Daemon, StateDir, until, workload as workload_client};

const PROVIDER: &str = include_str!("../../../examples/provider-local.yaml");
const PROVIDER_CAPI: &str = include_str!("../../../examples/provider-inmemory.yaml");
const TENANT_A: &str = "tenant-ba";
const TENANT_B: &str = "tenant-bb";

fn secret(ns: &str, name: &str, data: &[(&str, Vec<u8>)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Waits until the request's phase is final: (phase, Ready reason, Ready message, status).
async fn final_status<K>(
    api: &Api<K>,
    name: &str,
) -> (String, String, String, kaas_api::backup::BackupStatus)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    until(
        &format!("a final phase of {name}"),
        Duration::from_secs(240),
        || async {
            let o = api.get(name).await.map_err(|e| e.to_string())?;
            let v = serde_json::to_value(&o).unwrap();
            let st: kaas_api::backup::BackupStatus =
                serde_json::from_value(v["status"].clone()).unwrap_or_default();
            match st.phase.as_deref() {
                Some("Succeeded" | "Failed") => {
                    let c = st.conditions.first().cloned().unwrap();
                    assert_eq!(c.type_, "Ready", "Ready comes first");
                    Ok((st.phase.clone().unwrap(), c.reason, c.message, st))
                }
                _ => Err(format!("{st:?}")),
            }
        },
    )
    .await
}

async fn namespaces(c: &Client) -> Vec<String> {
    Api::<Namespace>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_a_hosted_cluster_through_a_real_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = kaas_harness::s3::TestStore::start(&dir.path().join("s3"), "kaas-backups")
        .await
        .expect("versitygw starts");
    let etcdutl = kaas_harness::s3::etcdutl().unwrap();
    let plane = Plane::start(PlaneOptions::minimal().crds(kaas_api::crds()))
        .await
        .expect("plane starts");
    let admin = plane.client();
    install::install_kaas(&admin).await.unwrap();
    let mut provider: Provider = serde_yaml::from_str(PROVIDER).unwrap();
    let pns = provider.spec.backend.namespace.clone();
    provider.spec.backup = Some(ProviderBackup {
        store: BackupStore {
            endpoint: store.endpoint().into(),
            bucket: store.bucket.clone(),
            region: None,
            credentials_secret_ref: SecretRef {
                name: "backup-store".into(),
            },
            encryption_key_secret_ref: SecretRef {
                name: "backup-key".into(),
            },
        },
    });
    install::provider(&admin, &provider, "").await.unwrap();
    // A Cluster API provider (no Cluster API controllers run: only its refusal is checked).
    let capi: Provider = serde_yaml::from_str(PROVIDER_CAPI).unwrap();
    install::provider(&admin, &capi, "").await.unwrap();
    let master = [0x5au8; 32];
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &pns);
    secrets
        .create(
            &PostParams::default(),
            &secret(
                &pns,
                "backup-store",
                &[
                    ("accessKeyID", store.access_key.clone().into_bytes()),
                    ("secretAccessKey", store.secret_key.clone().into_bytes()),
                ],
            ),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret(&pns, "backup-key", &[("key", master.to_vec())]),
        )
        .await
        .unwrap();
    let token_a = install::tenant_service_account(&admin, TENANT_A, "anna")
        .await
        .unwrap();
    let token_b = install::tenant_service_account(&admin, TENANT_B, "bert")
        .await
        .unwrap();
    let tenant_a = plane.client_for_token(&token_a).unwrap();
    let tenant_b = plane.client_for_token(&token_b).unwrap();

    let admin_kc = dir.path().join("admin.kubeconfig");
    plane.write_kubeconfig(Identity::Admin, &admin_kc).unwrap();
    let state = dir.path().join("hosted");
    let _cleanup = StateDir(state.clone());
    let state_arg = state.to_string_lossy().into_owned();
    let etcdutl_arg = etcdutl.to_string_lossy().into_owned();
    let runtime = Daemon::start(
        &[
            "hosted-runtime",
            "--state-dir",
            &state_arg,
            "--etcdutl",
            &etcdutl_arg,
        ],
        &admin_kc,
        dir.path().join("runtime.log"),
        &[("RUST_LOG", "info")],
    );
    let operator = Daemon::start(
        &["operator", "--providers", "local,dev"],
        &admin_kc,
        dir.path().join("operator.log"),
        &[("RUST_LOG", "info")],
    );

    // A malformed schedule is refused by the API server with its field path.
    let clusters: Api<Cluster> = Api::namespaced(tenant_a.clone(), TENANT_A);
    let yaml = |name: &str| {
        format!(
            "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}, namespace: {TENANT_A}}}\nspec:\n  provider: {{name: local}}\n  kubernetes: {{version: 1.35.x}}\n  workers: [{{name: default, count: 1}}]\n"
        )
    };
    let mut bad: Cluster = serde_yaml::from_str(&yaml("bad")).unwrap();
    bad.status = None;
    bad.spec.backup = Some(BackupSchedule {
        schedule: "every day".into(),
        retention: 2,
    });
    match clusters.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(e.message.contains("spec.backup.schedule"), "{}", e.message);
        }
        other => panic!("a malformed schedule was accepted: {other:?}"),
    }

    // The cluster, backed up every minute, two scheduled backups kept.
    let mut c: Cluster = serde_yaml::from_str(&yaml("k1")).unwrap();
    c.status = None;
    c.spec.backup = Some(BackupSchedule {
        schedule: "* * * * *".into(),
        retention: 2,
    });
    clusters.create(&PostParams::default(), &c).await.unwrap();
    until("cluster k1 Ready", Duration::from_secs(300), || async {
        let c = clusters.get("k1").await.map_err(|e| e.to_string())?;
        let st = c.status.clone().unwrap_or_default();
        kaas_api::conditions::is_true(&st.conditions, "Ready")
            .then_some(())
            .ok_or(format!("{:?}", st.conditions))
    })
    .await;
    let workload = workload_client(&tenant_a, TENANT_A, "k1").await;
    let ns_api: Api<Namespace> = Api::all(workload.clone());
    let ns = |name: &str| Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    ns_api
        .create(&PostParams::default(), &ns("before"))
        .await
        .unwrap();

    // 1. A one-off backup, as the tenant.
    let backups_a: Api<ClusterBackup> = Api::namespaced(tenant_a.clone(), TENANT_A);
    backups_a
        .create(
            &PostParams::default(),
            &ClusterBackup::new(
                "b1",
                ClusterBackupSpec {
                    cluster: "k1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, st) = final_status(&backups_a, "b1").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Succeeded", "Succeeded"),
        "{msg}\noperator:\n{}\nruntime:\n{}",
        operator.tail(),
        runtime.tail()
    );
    let key = st.object_key.clone().unwrap();
    let size = st.size.unwrap();
    let revision = st.revision.unwrap();
    assert!(size > 1000 && revision > 1, "{st:?}");
    assert!(st.duration_seconds.is_some() && st.started_at.is_some() && st.finished_at.is_some());
    eprintln!(
        "backup b1: {size} bytes, revision {revision}, {:?} s, {key}",
        st.duration_seconds
    );

    // A Cluster API cluster's backup is refused with a condition that says how it would be done.
    let mut capi_cluster: Cluster = serde_yaml::from_str(&yaml("capi1")).unwrap();
    capi_cluster.status = None;
    capi_cluster.spec.provider.as_mut().unwrap().name = Some("dev".into());
    // Scheduled too: where no backup can be taken, the schedule creates nothing (a Failed
    // ClusterBackup a minute would pile up) and says why once.
    capi_cluster.spec.backup = Some(BackupSchedule {
        schedule: "* * * * *".into(),
        retention: 2,
    });
    clusters
        .create(&PostParams::default(), &capi_cluster)
        .await
        .unwrap();
    backups_a
        .create(
            &PostParams::default(),
            &ClusterBackup::new(
                "capi-b",
                ClusterBackupSpec {
                    cluster: "capi1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, _) = final_status(&backups_a, "capi-b").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Failed", "NotSupported"),
        "{msg}"
    );
    assert!(
        msg.contains("control-plane node") && msg.contains("etcdctl snapshot save"),
        "{msg}"
    );
    backups_a
        .delete("capi-b", &Default::default())
        .await
        .unwrap();
    let why = until(
        "the unusable schedule reported on capi1",
        Duration::from_secs(60),
        || async {
            let evs = Api::<Event>::namespaced(tenant_a.clone(), TENANT_A)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            evs.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("BackupScheduleUnusable")
                        && e.involved_object.name.as_deref() == Some("capi1")
                })
                .and_then(|e| e.message)
                .ok_or_else(|| "no event yet".to_string())
        },
    )
    .await;
    assert!(why.contains("hosted backend only"), "{why}");
    let scheduled = backups_a
        .list(&ListParams::default().labels("scs.community/scheduled-backup-of=capi1"))
        .await
        .unwrap();
    assert!(
        scheduled.items.is_empty(),
        "scheduled backups of a Cluster API cluster: {:?}",
        scheduled
            .items
            .iter()
            .map(|b| b.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    clusters.delete("capi1", &Default::default()).await.unwrap();

    // 2. The stored object is sealed: not an etcd snapshot without the key.
    let bucket = Bucket::new(
        store.endpoint(),
        &store.bucket,
        None,
        &store.access_key,
        &store.secret_key,
    );
    let sealed = bucket.get(&key).await.unwrap().expect("the object exists");
    assert_eq!(sealed.len() as i64, size);
    assert!(sealed.starts_with(b"KAASETC1"));
    let raw = dir.path().join("raw.db");
    std::fs::write(&raw, &sealed).unwrap();
    let status_of = |f: &Path| {
        Command::new(&etcdutl)
            .args(["snapshot", "status", "-w", "json"])
            .arg(f)
            .output()
            .unwrap()
    };
    assert!(
        !status_of(&raw).status.success(),
        "etcdutl reads the stored object without the key"
    );
    let derived = kaas_operator::backup::object_key_secret(&master, &key);
    let plain = kaas_hosted::etcd_ops::open(&derived, &sealed).unwrap();
    let opened = dir.path().join("opened.db");
    std::fs::write(&opened, &plain).unwrap();
    let out = status_of(&opened);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kaas_hosted::etcd_ops::open(&[0u8; 32], &sealed).is_err());

    // 3. Changes after the backup.
    ns_api.delete("before", &Default::default()).await.unwrap();
    ns_api
        .create(&PostParams::default(), &ns("after"))
        .await
        .unwrap();
    until("namespace before gone", Duration::from_secs(60), || async {
        let all = namespaces(&workload).await;
        if all.contains(&"before".to_string()) {
            Err(format!("{all:?}"))
        } else {
            Ok(())
        }
    })
    .await;

    // 4. Restore, as the tenant.
    let restores_a: Api<ClusterRestore> = Api::namespaced(tenant_a.clone(), TENANT_A);
    let t_restore = Instant::now();
    restores_a
        .create(
            &PostParams::default(),
            &ClusterRestore::new(
                "r1",
                ClusterRestoreSpec {
                    cluster: "k1".into(),
                    backup: "b1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, rst) = final_status(&restores_a, "r1").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Succeeded", "Restored"),
        "{msg}\noperator:\n{}\nruntime:\n{}",
        operator.tail(),
        runtime.tail()
    );
    assert_eq!(rst.revision, Some(revision));
    eprintln!("restore r1: {:.1?}", t_restore.elapsed());
    let workload = workload_client(&tenant_a, TENANT_A, "k1").await;
    let all = until(
        "the workload API server answers",
        Duration::from_secs(60),
        || async {
            let all = namespaces(&workload).await;
            if all.is_empty() {
                Err("no answer".into())
            } else {
                Ok(all)
            }
        },
    )
    .await;
    assert!(all.contains(&"before".to_string()), "restored: {all:?}");
    assert!(
        !all.contains(&"after".to_string()),
        "created after the backup: {all:?}"
    );
    until(
        "cluster k1 Ready after the restore",
        Duration::from_secs(120),
        || async {
            let c = clusters.get("k1").await.map_err(|e| e.to_string())?;
            let st = c.status.unwrap_or_default();
            kaas_api::conditions::is_true(&st.conditions, "Ready")
                .then_some(())
                .ok_or(format!("{:?}", st.conditions))
        },
    )
    .await;

    // The same backup into a new cluster of the tenant: its workload cluster gets k1's objects.
    let mut k2: Cluster = serde_yaml::from_str(&yaml("k2")).unwrap();
    k2.status = None;
    clusters.create(&PostParams::default(), &k2).await.unwrap();
    until("cluster k2 Ready", Duration::from_secs(300), || async {
        let c = clusters.get("k2").await.map_err(|e| e.to_string())?;
        let st = c.status.unwrap_or_default();
        kaas_api::conditions::is_true(&st.conditions, "Ready")
            .then_some(())
            .ok_or(format!("{:?}", st.conditions))
    })
    .await;
    let w2 = workload_client(&tenant_a, TENANT_A, "k2").await;
    assert!(!namespaces(&w2).await.contains(&"before".to_string()));
    restores_a
        .create(
            &PostParams::default(),
            &ClusterRestore::new(
                "into-k2",
                ClusterRestoreSpec {
                    cluster: "k2".into(),
                    backup: "b1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, _) = final_status(&restores_a, "into-k2").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Succeeded", "Restored"),
        "{msg}\noperator:\n{}\nruntime:\n{}",
        operator.tail(),
        runtime.tail()
    );
    let w2 = workload_client(&tenant_a, TENANT_A, "k2").await;
    let all = until(
        "k2's API server answers",
        Duration::from_secs(60),
        || async {
            let all = namespaces(&w2).await;
            if all.is_empty() {
                Err("no answer".into())
            } else {
                Ok(all)
            }
        },
    )
    .await;
    assert!(
        all.contains(&"before".to_string()),
        "k2 after the restore: {all:?}"
    );
    clusters.delete("k2", &Default::default()).await.unwrap();

    // 5. Tenant B cannot restore from tenant A's backup, nor read it.
    let restores_b: Api<ClusterRestore> = Api::namespaced(tenant_b.clone(), TENANT_B);
    restores_b
        .create(
            &PostParams::default(),
            &ClusterRestore::new(
                "steal",
                ClusterRestoreSpec {
                    cluster: "k1".into(),
                    backup: "b1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, _) = final_status(&restores_b, "steal").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Failed", "BackupNotFound"),
        "{msg}"
    );
    assert!(msg.contains("spec.backup"), "{msg}");
    match Api::<ClusterBackup>::namespaced(tenant_b.clone(), TENANT_A)
        .get("b1")
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("tenant B read tenant A's backup: {other:?}"),
    }

    // 6. The store's credentials: unreadable for the tenant, and nowhere it can read.
    for name in ["backup-store", "backup-key"] {
        match Api::<Secret>::namespaced(tenant_a.clone(), &pns)
            .get(name)
            .await
        {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{name}"),
            other => panic!("the tenant read {name}: {other:?}"),
        }
    }
    let side_ns = kaas_render::capi_namespace("local", TENANT_A);
    let hcp = Api::<HostedControlPlane>::namespaced(tenant_a.clone(), &side_ns)
        .get("k1")
        .await
        .expect("the tenant reads its HostedControlPlane");
    let events = Api::<Event>::namespaced(tenant_a.clone(), TENANT_A)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("BackupSucceeded")),
        "a BackupSucceeded event"
    );
    let readable = format!(
        "{}{}{}{}",
        serde_json::to_string(&hcp).unwrap(),
        serde_json::to_string(&events).unwrap(),
        serde_json::to_string(&backups_a.list(&ListParams::default()).await.unwrap()).unwrap(),
        serde_json::to_string(&restores_a.list(&ListParams::default()).await.unwrap()).unwrap(),
    );
    for (what, s) in [
        ("the secret key", store.secret_key.as_str()),
        ("the access key", store.access_key.as_str()),
        ("a presigned URL", "X-Amz-Signature"),
    ] {
        assert!(!readable.contains(s), "{what} is readable by the tenant");
        assert!(!operator.text().contains(s), "{what} in the operator's log");
        assert!(!runtime.text().contains(s), "{what} in the runtime's log");
    }

    // 7. Retention: scheduled backups every minute, the newest two kept in the store.
    let t_retention = Instant::now();
    until(
        "retention prunes scheduled backups",
        Duration::from_secs(330),
        || async {
            let evs = Api::<Event>::namespaced(tenant_a.clone(), TENANT_A)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let pruned = evs
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("BackupPruned"))
                .count();
            let objects = bucket
                .list(&format!("{TENANT_A}/k1/"))
                .await
                .map_err(|e| e.to_string())?;
            let scheduled: Vec<&String> = objects
                .iter()
                .filter(|k| k.starts_with(&format!("{TENANT_A}/k1/k1-")))
                .collect();
            if pruned >= 1 && scheduled.len() == 2 && objects.contains(&key) {
                Ok(())
            } else {
                Err(format!("pruned {pruned}, objects {objects:?}"))
            }
        },
    )
    .await;
    eprintln!("retention observed after {:.1?}", t_retention.elapsed());
    let left = backups_a
        .list(&ListParams::default().labels("scs.community/scheduled-backup-of=k1"))
        .await
        .unwrap();
    let live: Vec<_> = left
        .items
        .iter()
        .filter(|b| {
            b.metadata.deletion_timestamp.is_none()
                && b.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
        })
        .collect();
    assert!(
        live.len() <= 2,
        "{} succeeded scheduled backups kept",
        live.len()
    );

    // Deleting the one-off backup deletes its object.
    backups_a.delete("b1", &Default::default()).await.unwrap();
    until("b1's object deleted", Duration::from_secs(60), || async {
        match bucket.get(&key).await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|o| o.map(|b| b.len())))),
        }
    })
    .await;

    // 8. Hibernated: the schedule (every minute) creates nothing and says so once; a backup the
    // tenant asks for is refused with the reason.
    clusters
        .patch(
            "k1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hibernation": {"enabled": true}}})),
        )
        .await
        .unwrap();
    until("k1 Hibernated", Duration::from_secs(120), || async {
        let c = clusters.get("k1").await.map_err(|e| e.to_string())?;
        let phase = c.status.and_then(|s| s.phase);
        (phase == Some(kaas_api::cluster::ClusterPhase::Hibernated))
            .then_some(())
            .ok_or(format!("{phase:?}"))
    })
    .await;
    let asleep = k8s_openapi::jiff::Timestamp::now();
    let skipped = || async {
        let evs = Api::<Event>::namespaced(tenant_a.clone(), TENANT_A)
            .list(&ListParams::default())
            .await
            .unwrap();
        evs.items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("BackupSkipped"))
            .filter(|e| e.involved_object.name.as_deref() == Some("k1"))
            // Repeats of an event may be one object with a count.
            .map(|e| {
                e.series
                    .as_ref()
                    .and_then(|s| s.count)
                    .unwrap_or(0)
                    .max(e.count.unwrap_or(1))
            })
            .sum::<i32>()
    };
    until("BackupSkipped on k1", Duration::from_secs(90), || async {
        (skipped().await > 0)
            .then_some(())
            .ok_or("no event".to_string())
    })
    .await;
    backups_a
        .create(
            &PostParams::default(),
            &ClusterBackup::new(
                "asleep",
                ClusterBackupSpec {
                    cluster: "k1".into(),
                },
            ),
        )
        .await
        .unwrap();
    let (phase, reason, msg, _) = final_status(&backups_a, "asleep").await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Failed", "Hibernated"),
        "{msg}"
    );
    assert!(
        msg.contains("hibernates") && msg.contains("wake it first"),
        "{msg}"
    );
    // Another due minute: still one event, and no scheduled backup created while asleep.
    tokio::time::sleep(Duration::from_secs(65)).await;
    assert_eq!(skipped().await, 1, "BackupSkipped once per hibernation");
    let created_asleep: Vec<String> = backups_a
        .list(&ListParams::default().labels("scs.community/scheduled-backup-of=k1"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|b| {
            b.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0 > asleep)
        })
        .map(|b| b.metadata.name.unwrap_or_default())
        .collect();
    assert!(
        created_asleep.is_empty(),
        "scheduled while hibernated: {created_asleep:?}"
    );
}
