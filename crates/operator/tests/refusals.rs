//! Never silent: what the management cluster refuses to store for a valid spec (here Cluster API's
//! own admission webhook: topology taints while the `MachineTaintPropagation` feature gate is off,
//! the default of Cluster API v1.14) reaches the `Cluster`'s status within one reconcile, with the
//! full message, phase `Failed`, `Stalled` and a Warning event — and the cluster recovers once
//! the spec no longer asks for it. Real plane with the real Cluster API managers and webhooks.

mod common;

use std::time::Duration;

use common::{cluster, condition, create, operator, plane, summary, until};
use k8s_openapi::api::core::v1::Event;
use kaas_api::Cluster;
use kaas_api::cluster::ClusterPhase;
use kube::Api;
use kube::api::ListParams;

const NS: &str = "tenant-refused";

#[tokio::test]
async fn a_topology_cluster_api_refuses_is_reported_and_recovers_when_the_spec_changes() {
    let plane = plane(true).await;
    let client = plane.client();
    kaas_operator::install::namespace(&client, NS, &[])
        .await
        .unwrap();
    let _op = operator(client.clone(), &[]);
    let api: Api<Cluster> = Api::namespaced(client.clone(), NS);

    create(
        &client,
        &cluster(
            "tainted",
            NS,
            "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: gpu, count: 1, taints: [{key: gpu, value: 'true', effect: NoSchedule}]}]",
        ),
    )
    .await;
    let c = until("refusal in the status", Duration::from_secs(60), || async {
        let c = api.get("tainted").await.map_err(|e| e.to_string())?;
        match condition(&c, "SpecAccepted") {
            Some((s, r, _)) if s == "False" && r == "BackendRefused" => Ok(c),
            _ => Err(summary(&c)),
        }
    })
    .await;
    let (_, _, msg) = condition(&c, "SpecAccepted").unwrap();
    assert!(
        msg.contains("admission webhook") && msg.contains("MachineTaintPropagation"),
        "the full message of Cluster API's webhook: {msg}"
    );
    let st = c.status.clone().unwrap();
    assert_eq!(st.phase, Some(ClusterPhase::Failed));
    assert_eq!(st.observed_generation, c.metadata.generation);
    assert_eq!(
        condition(&c, "Stalled").map(|x| x.0).as_deref(),
        Some("True")
    );
    assert_eq!(
        condition(&c, "Ready").map(|x| x.0).as_deref(),
        Some("False")
    );
    let events = until("a Warning event", Duration::from_secs(30), || async {
        let evs = Api::<Event>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let found: Vec<Event> = evs
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some("tainted")
                    && e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("SpecAcceptedBackendRefused")
            })
            .collect();
        if found.is_empty() {
            Err("no event yet".into())
        } else {
            Ok(found)
        }
    })
    .await;
    assert!(
        events[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("MachineTaintPropagation"))
    );

    // Without the taint the same cluster is accepted and Cluster API gets its topology.
    common::patch_spec(
        &client,
        NS,
        "tainted",
        serde_json::json!({"workers": [{"name": "gpu", "count": 1}]}),
    )
    .await;
    until(
        "accepted after the fix",
        Duration::from_secs(60),
        || async {
            let c = api.get("tainted").await.map_err(|e| e.to_string())?;
            match condition(&c, "SpecAccepted") {
                Some((s, _, _))
                    if s == "True"
                        && c.status.as_ref().and_then(|s| s.observed_generation)
                            == c.metadata.generation
                        && c.status.as_ref().and_then(|s| s.phase)
                            != Some(ClusterPhase::Failed) =>
                {
                    Ok(())
                }
                _ => Err(summary(&c)),
            }
        },
    )
    .await;
}
