//! The `BeforeClusterUpgrade` hook of stacks built with `kaas stack build`: before a cluster's
//! control plane moves to another Kubernetes version, the new version's bundle's addons marked
//! `BeforeClusterUpgrade` (the CNI, the cloud integration) are applied to the running workload
//! cluster, and the upgrade is held at the current version until every one of them is applied.
//! A hold is never silent and never a wait without a reason: the Cluster's version note says
//! which addon failed and why, each attempt is bounded (every call to the workload cluster
//! times out after 15 s), and it is retried at every reconcile until it succeeds or the tenant
//! changes the version back.

use kaas_api::addons::hooks;
use kaas_api::{Cluster, KubeVersion, Provider};
use kaas_validate::Resolved;

use crate::addons;
use crate::backend::Backend;
use crate::{Context, Error};

/// The bundle of the offered version `v` (pure): its exact patch if offered, else the newest
/// offered patch of its minor.
pub fn bundle_for(provider: &Provider, v: &KubeVersion) -> Option<String> {
    let mut offers: Vec<(KubeVersion, Option<String>)> = provider
        .spec
        .kubernetes_versions
        .iter()
        .filter_map(|o| {
            o.version
                .parse::<KubeVersion>()
                .ok()
                .map(|x| (x, o.stack.addons.clone()))
        })
        .filter(|(x, _)| x.branch() == v.branch())
        .collect();
    offers.sort_by(|a, b| b.0.cmp(&a.0));
    offers
        .iter()
        .find(|(x, _)| x.patch_number() == v.patch_number())
        .or(offers.first())
        .and_then(|(_, b)| b.clone())
}

/// Applies the `BeforeClusterUpgrade` addons of `target`'s bundle to the workload cluster that
/// runs `current`. `Ok(None)`: the upgrade may proceed (applied, or nothing to apply); `Ok(Some)`:
/// why it is held.
pub async fn before_upgrade(
    ctx: &Context,
    backend: &dyn Backend,
    cluster: &Cluster,
    resolved: &Resolved,
    provider: &Provider,
    current: &KubeVersion,
    target: &KubeVersion,
) -> Result<Option<String>, Error> {
    let Some(bundle) = bundle_for(provider, target) else {
        return Ok(None);
    };
    let held = |why: String| {
        Ok(Some(format!(
            "running {}; {} waits for the {} addons of bundle {bundle}: {why}",
            current.release(),
            target.release(),
            hooks::BEFORE_CLUSTER_UPGRADE
        )))
    };
    // A bundle that is not published has no hook to run: the upgrade proceeds, and the addon
    // stage reports the missing bundle on the Cluster as it does for any version. Only a bundle
    // that exists but cannot be read holds the upgrade (its hooks are unknown).
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(ctx.client.clone(), &provider.spec.backend.namespace);
    match tokio::time::timeout(addons::CALL_TIMEOUT, cms.get_metadata_opt(&bundle)).await {
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(_))) => {}
        Ok(Err(e)) => return held(format!("reading the bundle: {e}")),
        Err(_) => return held("reading the bundle: no answer".into()),
    }
    let (index, manifests) =
        match addons::load_bundle(&ctx.client, &provider.spec.backend.namespace, &bundle).await {
            Ok(b) => b,
            Err(e) => return held(e),
        };
    let mut subset = index.clone();
    subset
        .addons
        .retain(|a| a.hooks.iter().any(|h| h == hooks::BEFORE_CLUSTER_UPGRADE));
    if subset.addons.is_empty() {
        return Ok(None);
    }
    let Some(workload) = backend.workload(ctx, cluster, resolved).await? else {
        return held("the workload cluster's API server cannot be reached".into());
    };
    let mut planned = addons::plan(&subset, &manifests, &resolved.extensions);
    addons::resolve_placeholders(
        &mut planned,
        &addons::cluster_values(cluster, &resolved.network, target),
    );
    if let Some(t) = &index.cloud_credentials {
        let creds =
            crate::credentials::planned(&ctx.client, provider, &provider.spec.backend.namespace, t)
                .await;
        planned.insert(0, creds);
    }
    let loc = crate::adopt::locate(&ctx.client, cluster, &resolved.provider).await?;
    let old = addons::load_inventory(&ctx.client, &loc.namespace, &loc.name).await?;
    // Only these addons' part of the inventory: the others are neither applied nor pruned.
    let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
    let (mine, others): (std::collections::BTreeSet<_>, _) = old
        .objects
        .iter()
        .cloned()
        .partition(|r| names.contains(&r.addon.as_str()));
    let part = addons::Inventory {
        bundle: old.bundle.clone(),
        objects: mine,
    };
    let (statuses, applied) = addons::apply(&workload, &bundle, &planned, &part, false).await;
    let mut inventory = addons::Inventory {
        bundle: old.bundle.clone(),
        objects: others,
    };
    inventory.objects.extend(applied.objects);
    if inventory != old {
        addons::save_inventory(&ctx.client, &loc.namespace, &loc.name, &inventory).await?;
    }
    let failed: Vec<String> = statuses
        .iter()
        .filter(|s| !s.applied)
        .map(|s| format!("{}: {}", s.name, s.message.clone().unwrap_or_default()))
        .collect();
    if failed.is_empty() {
        Ok(None)
    } else {
        held(failed.join("; "))
    }
}
