//! The `Provider` controller: keeps each offering's status current — the default version,
//! whether every ClusterClass its versions name exists, and what each version's stack serves
//! (stack verification, [`crate::verify`]) — so tenants see a usable offering.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaas_api::conditions::{self as c, Status};
use kaas_api::provider::BackendType;
use kaas_api::{Provider, ProviderStatus};
use kaas_capi::clusterclass::ClusterClass;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::{Context, Error, FIELD_MANAGER};

/// Computes the status of an offering given which of its ClusterClasses are missing (pure).
pub fn status(p: &Provider, missing: &[String], now: &Time) -> ProviderStatus {
    let old = p.status.clone().unwrap_or_default();
    let mut s = ProviderStatus {
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let generation = p.metadata.generation;
    s.observed_generation = generation;
    s.default_version = kaas_validate::offering::default_version(p).map(|v| v.release());
    let (st, reason, msg) = if !missing.is_empty() {
        (
            Status::False,
            "ClusterClassMissing",
            format!(
                "ClusterClass(es) not found in the provider namespace: {}",
                missing.join(", ")
            ),
        )
    } else if s.default_version.is_none() {
        (
            Status::False,
            "NoSupportedVersion",
            "no version is classified supported".to_string(),
        )
    } else {
        (
            Status::True,
            "Ready",
            "every offered version has its ClusterClass".to_string(),
        )
    };
    c::set(
        &mut s.conditions,
        c::READY,
        st,
        reason,
        msg,
        generation,
        now,
    );
    s
}

/// Reconciles one provider's status.
pub async fn reconcile(p: Arc<Provider>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.handles(&p.name_any()) {
        return Ok(Action::await_change());
    }
    let mut missing = Vec::new();
    if p.spec.backend.kind == BackendType::ClusterAPI {
        let ns = &p.spec.backend.namespace;
        let classes: Api<ClusterClass> = Api::namespaced(ctx.client.clone(), ns);
        let mut names: Vec<String> = p
            .spec
            .kubernetes_versions
            .iter()
            .map(|v| v.stack.cluster_class.clone())
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            if classes.get_opt(&n).await?.is_none() {
                missing.push(format!("{ns}/{n}"));
            }
        }
    }
    let now = Time(Timestamp::now());
    let mut new = status(&p, &missing, &now);
    let clusters = ctx.capi.of_provider(&p.name_any()).await;
    let outcomes = crate::verify::verify(&ctx.client, &p, clusters).await?;
    let pending = outcomes
        .iter()
        .any(|o| matches!(o, crate::verify::Outcome::Pending(_)));
    if matches!(
        p.spec.backend.kind,
        BackendType::ClusterAPI | BackendType::Hosted
    ) {
        with_verification(&mut new, &p, &outcomes, &now);
    }
    if p.status.as_ref() != Some(&new) {
        let body =
            json!({"apiVersion": "scs.community/v1alpha1", "kind": "Provider", "status": new});
        Api::<Provider>::all(ctx.client.clone())
            .patch_status(
                &p.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(
        if !missing.is_empty() {
            30
        } else if pending {
            10
        } else {
            300
        },
    )))
}

/// Adds stack verification to a status (pure): the verified versions and `StackVerified`.
pub fn with_verification(
    s: &mut ProviderStatus,
    p: &Provider,
    outcomes: &[crate::verify::Outcome],
    now: &Time,
) {
    let generation = p.metadata.generation;
    s.versions = outcomes
        .iter()
        .filter_map(|o| match o {
            crate::verify::Outcome::Verified(v) => Some(v.clone()),
            crate::verify::Outcome::Pending(_) => None,
        })
        .collect();
    let (st, reason, msg) = crate::verify::summarize(p, outcomes);
    c::set(
        &mut s.conditions,
        kaas_api::provider::STACK_VERIFIED,
        st,
        reason,
        msg,
        generation,
        now,
    );
}
