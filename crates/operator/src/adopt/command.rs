//! What `kaas adopt` reads and writes: [`plan`] (the verdict for a request) and [`apply`] (the
//! SCS Cluster created and both annotations written), and [`release_fields`] (the hand-over of the
//! topology's fields to the operator).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kaas_api::{ANNOTATION_ADOPTED_BY, Cluster, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::machinedeployment::MachineDeployment;
use kaas_render::{LABEL_CLUSTER, LABEL_PROVIDER, LABEL_TENANT};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::FIELD_MANAGER;

use super::*;

/// The managed fields of an adopted Cluster API Cluster with every other field manager's
/// ownership of `spec.topology` and the cluster network CIDRs removed, so the operator becomes
/// their only owner (otherwise a pool the tenant removes would stay, still owned by whoever
/// created the cluster). Fields kaas does not write are left without an owner: they stay as
/// they are. Entries that own nothing any more are dropped. Pure.
pub fn release_fields(entries: &[ManagedFieldsEntry]) -> Vec<ManagedFieldsEntry> {
    let mut out = Vec::new();
    for e in entries {
        let mut e = e.clone();
        if e.manager.as_deref() != Some(FIELD_MANAGER)
            && e.subresource.as_deref().is_none_or(str::is_empty)
            && let Some(FieldsV1(fields)) = e.fields_v1.as_mut()
        {
            if let Some(spec) = fields.get_mut("f:spec").and_then(Value::as_object_mut) {
                spec.remove("f:topology");
                if let Some(net) = spec
                    .get_mut("f:clusterNetwork")
                    .and_then(Value::as_object_mut)
                {
                    net.remove("f:pods");
                    net.remove("f:services");
                    if net.keys().all(|k| k == ".") {
                        spec.remove("f:clusterNetwork");
                    }
                }
                if spec.keys().all(|k| k == ".") {
                    fields.as_object_mut().map(|f| f.remove("f:spec"));
                }
            }
            if fields.as_object().is_some_and(|f| f.is_empty()) {
                continue;
            }
        }
        out.push(e);
    }
    out
}

/// What `kaas adopt` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Namespace of the Cluster API Cluster.
    pub namespace: String,
    /// Name of the Cluster API Cluster.
    pub name: String,
    /// Provider offering the SCS Cluster uses.
    pub provider: String,
    /// Tenant namespace the SCS Cluster goes into.
    pub tenant: String,
    /// Name of the SCS Cluster (default: the Cluster API Cluster's).
    pub scs_name: Option<String>,
}

impl Request {
    /// The SCS Cluster's name.
    pub fn scs_name(&self) -> &str {
        self.scs_name.as_deref().unwrap_or(&self.name)
    }
}

/// Reads everything [`express`] needs and runs it; also refuses when the tenant namespace is
/// missing or the SCS Cluster exists already. Writes nothing.
pub async fn plan(client: &Client, req: &Request) -> anyhow::Result<Verdict> {
    let capi = Api::<CapiCluster>::namespaced(client.clone(), &req.namespace)
        .get_opt(&req.name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Cluster API Cluster {}/{} not found",
                req.namespace,
                req.name
            )
        })?;
    let provider = Api::<Provider>::all(client.clone())
        .get_opt(&req.provider)
        .await?
        .ok_or_else(|| anyhow::anyhow!("provider {:?} not found", req.provider))?;
    let selector = format!("cluster.x-k8s.io/cluster-name={}", req.name);
    let mut standalone = Vec::new();
    for md in Api::<MachineDeployment>::namespaced(client.clone(), &req.namespace)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        if !md.labels().contains_key("topology.cluster.x-k8s.io/owned") {
            standalone.push(format!("MachineDeployment {}", md.name_any()));
        }
    }
    let pools = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &req.namespace,
        &kube::api::ApiResource {
            group: "cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "MachinePool".into(),
            plural: "machinepools".into(),
        },
    );
    // MachinePools are optional in Cluster API (a feature gate): no such resource, none to see.
    if let Ok(list) = pools.list(&ListParams::default().labels(&selector)).await {
        for mp in list.items {
            standalone.push(format!("MachinePool {}", mp.name_any()));
        }
    }
    let mut v = express(&capi, &provider, &req.tenant, req.scs_name(), &standalone);
    if Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(&req.tenant)
        .await?
        .is_none()
    {
        v.refusals
            .push(format!("tenant namespace {:?} does not exist", req.tenant));
    }
    if Api::<Cluster>::namespaced(client.clone(), &req.tenant)
        .get_opt(req.scs_name())
        .await?
        .is_some()
    {
        v.refusals.push(format!(
            "SCS Cluster {}/{} exists already",
            req.tenant,
            req.scs_name()
        ));
    }
    Ok(v)
}

/// Adopts: confirms the adoption on the Cluster API Cluster (annotation [`ANNOTATION_ADOPTED_BY`]
/// and kaas' labels, as [`ADOPT_MANAGER`]), creates the SCS Cluster of `verdict`, and hands the
/// ownership of the topology to the operator ([`release_fields`]). Refuses (writing nothing)
/// when `verdict` has refusals. If the SCS Cluster cannot be created, the confirmation is
/// taken back.
pub async fn apply(client: &Client, req: &Request, verdict: &Verdict) -> anyhow::Result<Cluster> {
    if !verdict.ok() {
        anyhow::bail!(
            "cannot adopt {}/{}: {}",
            req.namespace,
            req.name,
            verdict.refusals.join("; ")
        );
    }
    let capis = Api::<CapiCluster>::namespaced(client.clone(), &req.namespace);
    let pp = PatchParams {
        field_manager: Some(ADOPT_MANAGER.into()),
        ..Default::default()
    };
    let by = format!("{}/{}", req.tenant, req.scs_name());
    capis
        .patch(
            &req.name,
            &pp,
            &Patch::Merge(json!({"metadata": {
                "annotations": {ANNOTATION_ADOPTED_BY: by},
                "labels": {
                    LABEL_CLUSTER: req.scs_name(),
                    LABEL_TENANT: req.tenant,
                    LABEL_PROVIDER: req.provider,
                },
            }})),
        )
        .await?;
    let created = Api::<Cluster>::namespaced(client.clone(), &req.tenant)
        .create(
            &PostParams {
                field_manager: Some(ADOPT_MANAGER.into()),
                ..Default::default()
            },
            &verdict.cluster,
        )
        .await;
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            let undo = capis
                .patch(
                    &req.name,
                    &pp,
                    &Patch::Merge(json!({"metadata": {
                        "annotations": {ANNOTATION_ADOPTED_BY: null},
                        "labels": {LABEL_CLUSTER: null, LABEL_TENANT: null, LABEL_PROVIDER: null},
                    }})),
                )
                .await;
            if let Err(u) = undo {
                anyhow::bail!(
                    "creating SCS Cluster {by}: {e}; and taking back the confirmation on {}/{} failed: {u}",
                    req.namespace,
                    req.name
                );
            }
            anyhow::bail!("creating SCS Cluster {by}: {e} (nothing adopted)");
        }
    };
    // Hand the topology's fields to the operator (retried on a concurrent write).
    let mut last = None;
    for _ in 0..5 {
        let now = capis.get(&req.name).await?;
        let entries = now.metadata.managed_fields.clone().unwrap_or_default();
        let released = release_fields(&entries);
        if released == entries {
            last = None;
            break;
        }
        let patch = json!({"metadata": {
            "managedFields": released,
            "resourceVersion": now.resource_version(),
        }});
        match capis
            .patch(&req.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                last = None;
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => last = Some(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = last {
        anyhow::bail!(
            "adopted as {by}, but the topology's field ownership could not be handed to the operator: {e}"
        );
    }
    Ok(created)
}
