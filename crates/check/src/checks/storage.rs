//! scs-0211 default storage class: the static `default-storage-class-check` and the behavioural
//! `default-storage-class-volume-check` (PVC without class + pod).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

use super::{Verdict, preflight};
use crate::Ctx;
use crate::access::{Need, describe_error};
use crate::behaviour::{
    PodWait, in_temp_namespace, labels, require_schedulable, restricted_container, wait_pod_running,
};

pub(crate) const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// Provisioners whose volumes live on one node's disk (bound to the node's lifecycle).
const NODE_LOCAL_PROVISIONERS: &[&str] = &[
    NO_PROVISIONER,
    "kubernetes.io/host-path",
    "rancher.io/local-path",
    "openebs.io/local",
    "k8s.io/minikube-hostpath",
    "microk8s.io/hostpath",
    "hostpath.csi.k8s.io",
    "local.csi.openebs.io",
    "topolvm.io",
    "lvm.csi.metal-stack.io",
];

fn is_default(sc: &StorageClass) -> bool {
    sc.metadata.annotations.as_ref().is_some_and(|a| {
        [DEFAULT_ANNOTATION, BETA_DEFAULT_ANNOTATION]
            .iter()
            .any(|k| a.get(*k).is_some_and(|v| v == "true"))
    })
}

pub(crate) async fn static_check(ctx: &Ctx<'_>) -> Verdict {
    if let Some(v) = preflight(
        ctx,
        &[Need::cluster("list", "storage.k8s.io", "storageclasses")],
    )
    .await
    {
        return v;
    }
    let api: Api<StorageClass> = Api::all(ctx.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => evaluate(&list.items),
        Err(e) => Verdict::abort(describe_error(&e, "list storageclasses")),
    }
}

/// The static verdict for a set of StorageClasses.
pub(crate) fn evaluate(classes: &[StorageClass]) -> Verdict {
    let name = |sc: &StorageClass| sc.metadata.name.clone().unwrap_or_default();
    let defaults: Vec<&StorageClass> = classes.iter().filter(|sc| is_default(sc)).collect();
    let all = classes
        .iter()
        .map(|sc| {
            format!(
                "{} ({}{})",
                name(sc),
                sc.provisioner,
                if is_default(sc) { ", default" } else { "" }
            )
        })
        .collect::<Vec<_>>();
    let details = vec![if all.is_empty() {
        "no StorageClass".to_string()
    } else {
        format!("StorageClasses: {}", all.join(", "))
    }];
    match defaults.as_slice() {
        [] => Verdict::fail(format!(
            "no default StorageClass ({} StorageClass(es), none annotated {DEFAULT_ANNOTATION}=\"true\")",
            classes.len()
        ))
        .details(details),
        [sc] => {
            let mut d = details;
            let mode = sc.volume_binding_mode.as_deref().unwrap_or("Immediate");
            d.push(format!(
                "default {}: provisioner {}, volumeBindingMode {mode}, reclaimPolicy {}",
                name(sc),
                sc.provisioner,
                sc.reclaim_policy.as_deref().unwrap_or("Delete")
            ));
            if sc.provisioner == NO_PROVISIONER {
                Verdict::fail(format!(
                    "default StorageClass {} has provisioner {NO_PROVISIONER}: PVCs are not provisioned dynamically",
                    name(sc)
                ))
                .details(d)
            } else if NODE_LOCAL_PROVISIONERS.contains(&sc.provisioner.as_str()) {
                Verdict::fail(format!(
                    "default StorageClass {} uses the node-local provisioner {}: volumes are bound to a node's lifecycle",
                    name(sc),
                    sc.provisioner
                ))
                .details(d)
            } else {
                Verdict::pass(format!(
                    "one default StorageClass {} (provisioner {})",
                    name(sc),
                    sc.provisioner
                ))
                .details(d)
            }
        }
        many => Verdict::fail(format!(
            "{} default StorageClasses ({}): exactly one is required",
            many.len(),
            many.iter().map(|sc| name(sc)).collect::<Vec<_>>().join(", ")
        ))
        .details(details),
    }
}

const PROBE_NS: &str = "kaas-check";

pub(crate) async fn volume_check(ctx: &Ctx<'_>) -> Verdict {
    let needs = [
        Need::cluster("create", "", "namespaces"),
        Need::cluster("delete", "", "namespaces"),
        Need::cluster("list", "", "nodes"),
        Need::cluster("get", "", "persistentvolumes"),
        Need::cluster("get", "storage.k8s.io", "storageclasses"),
        Need::namespaced("create", "", "persistentvolumeclaims", PROBE_NS),
        Need::namespaced("get", "", "persistentvolumeclaims", PROBE_NS),
        Need::namespaced("create", "", "pods", PROBE_NS),
        Need::namespaced("get", "", "pods", PROBE_NS),
    ];
    if let Some(v) = preflight(ctx, &needs).await {
        return v;
    }
    if let Some(v) = require_schedulable(ctx).await {
        return v;
    }
    in_temp_namespace(
        ctx,
        "storage",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
        |ns| async move { volume_in(ctx, &ns).await },
    )
    .await
}

async fn volume_in(ctx: &Ctx<'_>, ns: &str) -> Verdict {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-volume", "labels": labels(&[]) },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": "1Gi" } }
        }
    }))
    .expect("pvc");
    let pvc = match pvcs.create(&PostParams::default(), &pvc).await {
        Ok(p) => p,
        Err(e) => return Verdict::abort(describe_error(&e, "create a PersistentVolumeClaim")),
    };
    let Some(class) = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()) else {
        return Verdict::fail(
            "a PVC without storageClassName got no StorageClass: there is no default StorageClass (or the DefaultStorageClass admission plugin is off)",
        );
    };
    let mut details = vec![format!("PVC kaas-check-volume got StorageClass {class}")];
    let binding_mode = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(&class)
        .await
        .ok()
        .flatten()
        .and_then(|sc| sc.volume_binding_mode)
        .unwrap_or_else(|| "Immediate".into());

    if binding_mode == "Immediate" {
        // Immediate binding provisions before any pod exists: wait for it (bounded).
        let start = std::time::Instant::now();
        loop {
            let phase = pvcs
                .get_opt("kaas-check-volume")
                .await
                .ok()
                .flatten()
                .and_then(|p| p.status)
                .and_then(|s| s.phase);
            if phase.as_deref() == Some("Bound") {
                details.push(format!(
                    "PVC bound after {} s (Immediate binding)",
                    start.elapsed().as_secs()
                ));
                break;
            }
            if start.elapsed() >= ctx.opts.timeouts.bind {
                return Verdict::fail(format!(
                    "PVC not bound within {} s (StorageClass {class}, Immediate binding): the provisioner did not create a volume",
                    ctx.opts.timeouts.bind.as_secs()
                ))
                .details(details);
            }
            tokio::time::sleep(ctx.opts.timeouts.poll).await;
        }
    }
    let mut container = restricted_container(
        "volume",
        &ctx.opts.image,
        "echo kaas-check > /data/probe && cat /data/probe && exec sleep 3600",
    );
    container["volumeMounts"] = json!([{ "name": "data", "mountPath": "/data" }]);
    container["readinessProbe"] = json!({
        "exec": { "command": ["cat", "/data/probe"] },
        "periodSeconds": 2
    });
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "kaas-check-volume", "labels": labels(&[]) },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "securityContext": { "fsGroup": 65534, "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [container],
            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "kaas-check-volume" } }]
        }
    }))
    .expect("pod");
    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        return Verdict::abort(describe_error(&e, "create the volume test pod"));
    }
    let waited = match wait_pod_running(ctx, &pods, "kaas-check-volume").await {
        Ok(w) => w,
        Err(e) => return Verdict::abort(describe_error(&e, "watch the volume test pod")),
    };
    let pvc_now = pvcs.get_opt("kaas-check-volume").await.ok().flatten();
    let bound = pvc_now
        .as_ref()
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        == Some("Bound");
    match waited {
        PodWait::Running(_) => {}
        PodWait::NotScheduled(m) => {
            // With WaitForFirstConsumer nothing is provisioned before the pod has a node: the
            // cluster could not place the pod, which says nothing about storage.
            return Verdict::abort(format!("volume test pod {m}")).details(details);
        }
        PodWait::NotStarted(m) => {
            if m.contains("ImagePull") || m.contains("ErrImage") || m.contains("InvalidImage") {
                return Verdict::abort(format!(
                    "volume test pod {m}: image {} not available",
                    ctx.opts.image
                ))
                .details(details);
            }
            if !bound {
                return Verdict::fail(format!(
                    "volume not provisioned: PVC still unbound while the pod was {m}"
                ))
                .details(details);
            }
            return Verdict::fail(format!(
                "PVC bound but the pod did not start ({m}): attaching or mounting the volume failed?"
            ))
            .details(details);
        }
        PodWait::Ended(m) => {
            return Verdict::fail(format!("writing to the volume failed: {m}")).details(details);
        }
    }

    // Inspect the volume.
    let Some(pv_name) = pvc_now
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
    else {
        return Verdict::abort("pod runs but the PVC names no volume").details(details);
    };
    let pv = match Api::<PersistentVolume>::all(ctx.client.clone())
        .get(&pv_name)
        .await
    {
        Ok(pv) => pv,
        Err(e) => {
            return Verdict::abort(describe_error(&e, "read the provisioned PersistentVolume"))
                .details(details);
        }
    };
    let spec = pv.spec.unwrap_or_default();
    let modes = spec.access_modes.clone().unwrap_or_default();
    details.push(format!(
        "PV {pv_name}: access modes {}, capacity {}",
        modes.join(","),
        spec.capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    ));
    let mut problems = Vec::new();
    if !modes.iter().any(|m| m == "ReadWriteOnce") {
        problems.push("the volume does not support ReadWriteOnce".to_string());
    }
    if spec.local.is_some() || spec.host_path.is_some() {
        problems.push("the volume is local/hostPath (bound to one node's disk)".to_string());
    }
    let pinned: Vec<String> = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .map(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .filter(|e| e.key == "kubernetes.io/hostname")
                .flat_map(|e| e.values.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    if !pinned.is_empty() {
        problems.push(format!(
            "the volume's node affinity pins it to node(s) {}",
            pinned.join(", ")
        ));
    } else if spec.node_affinity.is_some() {
        details.push("node affinity present but not to a single host (zone topology)".into());
    }
    if !problems.is_empty() {
        return Verdict::fail(problems.join("; ")).details(details);
    }
    Verdict::pass(format!(
        "PVC bound to {pv_name} (StorageClass {class}, RWO), pod running, not pinned to a node"
    ))
    .details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn sc(name: &str, provisioner: &str, default: bool) -> StorageClass {
        let mut v = json!({ "metadata": { "name": name }, "provisioner": provisioner });
        if default {
            v["metadata"]["annotations"] = json!({ DEFAULT_ANNOTATION: "true" });
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn static_verdicts() {
        assert_eq!(evaluate(&[]).outcome, Outcome::Fail);
        assert_eq!(
            evaluate(&[sc("a", "cinder.csi.openstack.org", false)]).outcome,
            Outcome::Fail
        );
        let v = evaluate(&[
            sc("a", "cinder.csi.openstack.org", true),
            sc("b", "x", false),
        ]);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        let v = evaluate(&[sc("a", "x", true), sc("b", "y", true)]);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.summary.starts_with("2 default StorageClasses (a, b)"));
        assert_eq!(
            evaluate(&[sc("a", NO_PROVISIONER, true)]).outcome,
            Outcome::Fail
        );
        assert_eq!(
            evaluate(&[sc("a", "rancher.io/local-path", true)]).outcome,
            Outcome::Fail
        );
    }
}
