//! Never silent: what the management cluster refuses to store for a valid spec reaches the
//! `Cluster`'s status within one reconcile, with the full message, phase `Failed`, `Stalled` and a
//! Warning event — and the cluster recovers once the refusal is gone. The refusal here is an
//! admission policy of the provider that freezes one tenant's Cluster API objects (a refusal
//! nothing can predict; what Cluster API's webhooks refuse for a version is found up front by the
//! stack verification, `tests/verify.rs`). Real plane with the real Cluster API managers.

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

    // The provider freezes this tenant's Cluster API objects (its provider-side namespaces carry
    // the tenant label); the stack verification's probes in the provider namespace pass.
    kaas_harness::apply_yaml(
        &client,
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: freeze}}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - {{apiGroups: [cluster.x-k8s.io], apiVersions: ['*'], operations: [CREATE, UPDATE], resources: [clusters]}}\n  validations:\n  - {{expression: 'false', message: 'clusters of {NS} are frozen by the provider'}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: freeze}}\nspec:\n  policyName: freeze\n  validationActions: [Deny]\n  matchResources:\n    namespaceSelector: {{matchLabels: {{scs.community/tenant: {NS}}}}}\n"
        ),
        "default",
    )
    .await
    .unwrap();
    // The policy takes effect once the API server has loaded it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    create(
        &client,
        &cluster(
            "tainted",
            NS,
            "provider: {name: dev}\nkubernetes: {version: 1.35.x}\ncontrolPlane: {replicas: 1}\nworkers: [{name: gpu, count: 1}]",
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
        msg.starts_with("an admission policy of the management cluster refused")
            && msg.contains("frozen by the provider"),
        "the full message of the policy: {msg}"
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
            .is_some_and(|m| m.contains("frozen by the provider"))
    );

    // Without the policy the same cluster is accepted (the refusal is retried with back-off).
    kaas_harness::dynamic_api(
        &client,
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        None,
    )
    .delete("freeze", &Default::default())
    .await
    .unwrap();
    until(
        "accepted after the fix",
        Duration::from_secs(90),
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
