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
use crate::adopt::Location;
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

/// The `BeforeClusterUpgrade` addons of `target`'s bundle, planned for `target` (placeholders
/// resolved for it, the cloud credentials first if the bundle delivers them): the bundle's name
/// and the addons, `None` when the bundle has no such addon, or why the bundle cannot be read.
pub async fn planned(
    ctx: &Context,
    cluster: &Cluster,
    resolved: &Resolved,
    provider: &Provider,
    target: &KubeVersion,
) -> Result<Option<(String, Vec<addons::Planned>)>, String> {
    let Some(bundle) = bundle_for(provider, target) else {
        return Ok(None);
    };
    // A bundle that is not published has no hook to run: the upgrade proceeds, and the addon
    // stage reports the missing bundle on the Cluster as it does for any version (2723500: every
    // upgrade to a version without a bundle was held for good). Only a bundle that exists but
    // cannot be read holds the upgrade (its hooks are unknown).
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(ctx.client.clone(), &provider.spec.backend.namespace);
    match tokio::time::timeout(addons::CALL_TIMEOUT, cms.get_metadata_opt(&bundle)).await {
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(_))) => {}
        Ok(Err(e)) => return Err(format!("reading the bundle: {e}")),
        Err(_) => return Err("reading the bundle: no answer".into()),
    }
    let (index, manifests) =
        addons::load_bundle(&ctx.client, &provider.spec.backend.namespace, &bundle).await?;
    let mut subset = index.clone();
    subset
        .addons
        .retain(|a| a.hooks.iter().any(|h| h == hooks::BEFORE_CLUSTER_UPGRADE));
    if subset.addons.is_empty() {
        return Ok(None);
    }
    let mut planned = addons::plan(&subset, &manifests, &resolved.extensions);
    addons::resolve_placeholders(
        &mut planned,
        &addons::cluster_values(cluster, &resolved.network, target),
    );
    if let Some(t) = &index.cloud_credentials {
        let creds = crate::credentials::planned(&ctx.client, provider, cluster, t).await;
        planned.insert(0, creds);
    }
    Ok(Some((bundle, planned)))
}

/// While a cluster moves to `target` (held or rolling out), the addons of the running version's
/// bundle that the new version's `BeforeClusterUpgrade` hook already applied stay at the new
/// version: `planned` (the running bundle's) gets the hook's entries in their place (pure).
pub fn keep_upgraded(planned: &mut Vec<addons::Planned>, hook: Vec<addons::Planned>) {
    for h in hook {
        match planned.iter_mut().find(|p| p.name == h.name) {
            Some(p) => *p = h,
            None => planned.push(h),
        }
    }
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
    loc: &Location,
    (current, target): (&KubeVersion, &KubeVersion),
) -> Result<Option<String>, Error> {
    let held = |bundle: &str, why: String| {
        Ok(Some(format!(
            "running {}; {} waits for the {} addons of bundle {bundle}: {why}",
            current.release(),
            target.release(),
            hooks::BEFORE_CLUSTER_UPGRADE
        )))
    };
    let (bundle, planned) = match planned(ctx, cluster, resolved, provider, target).await {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(None),
        Err(e) => {
            let b = bundle_for(provider, target).unwrap_or_default();
            return held(&b, e);
        }
    };
    // Never a reconcile ended by a log line: whatever fails here holds the upgrade with the reason
    // in the Cluster's status (and an event), and is tried again at the next reconcile.
    let unreachable = || "the workload cluster's API server cannot be reached".to_string();
    let workload = match backend.workload(ctx, cluster, resolved, loc).await {
        Ok(Some(w)) => w,
        Ok(None) => return held(&bundle, unreachable()),
        Err(e) => {
            tracing::warn!(error = %e, "the workload cluster for the upgrade hook");
            return held(&bundle, unreachable());
        }
    };
    let old = match addons::load_inventory(&ctx.client, &loc.namespace, &loc.name).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "reading the addon inventory for the upgrade hook");
            return held(&bundle, "the addon inventory cannot be read now".into());
        }
    };
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
    if inventory != old
        && let Err(e) =
            addons::save_inventory(&ctx.client, &loc.namespace, &loc.name, &inventory).await
    {
        tracing::warn!(error = %e, "saving the addon inventory after the upgrade hook");
        return held(&bundle, "the addon inventory cannot be saved now".into());
    }
    let failed: Vec<String> = statuses
        .iter()
        .filter(|s| !s.applied)
        .map(|s| format!("{}: {}", s.name, s.message.clone().unwrap_or_default()))
        .collect();
    if failed.is_empty() {
        Ok(None)
    } else {
        held(&bundle, failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaas_api::addons::Stage;

    fn planned(name: &str, version: &str) -> addons::Planned {
        addons::Planned {
            name: name.into(),
            stage: Stage::Base,
            version: version.into(),
            objects: Ok(vec![]),
        }
    }

    #[test]
    fn the_hooks_addons_replace_the_running_bundles_during_an_upgrade() {
        let mut p = vec![
            planned("cni", "1"),
            planned("ccm", "1"),
            planned("csi", "1"),
        ];
        keep_upgraded(
            &mut p,
            vec![planned("cloud-credentials", "s"), planned("ccm", "2")],
        );
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("cni", "1"),
                ("ccm", "2"),
                ("csi", "1"),
                ("cloud-credentials", "s")
            ]
        );
    }

    #[test]
    fn the_bundle_of_a_version_is_its_exact_patch_else_the_newest_of_its_minor() {
        let p: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-local.yaml")).unwrap();
        let v = |s: &str| s.parse::<KubeVersion>().unwrap();
        assert_eq!(
            bundle_for(&p, &v("1.35.4")).as_deref(),
            Some("dev-addons-1-35")
        );
        assert_eq!(
            bundle_for(&p, &v("1.36.1")).as_deref(),
            Some("dev-addons-1-36")
        );
        assert_eq!(bundle_for(&p, &v("1.30.1")), None);
    }
}
