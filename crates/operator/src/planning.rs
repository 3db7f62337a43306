//! The plan of a reconcile (pure, the clock a parameter): the cluster judged against its
//! provider's offering and the adoption handshake, and the version to roll out now. What follows
//! — render, apply, observe, status — starts from it.

use k8s_openapi::jiff::Timestamp;
use kaas_api::{Cluster, KubeVersion, Provider};
use kaas_validate::Resolved;

use crate::adopt::Location;
use crate::maintenance::{Rollout, decide};
use crate::types::Problem;

/// What a reconcile is to realise.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The cluster resolved against its provider, or why it is not accepted.
    pub validation: Result<Resolved, Problem>,
    /// While accepted: the resolved cluster at the version to roll out now, and why that version
    /// lags the resolved one (a maintenance window, patch updates off), if it does.
    pub rollout: Option<(Resolved, Option<String>)>,
}

/// The plan for `cluster` with its `provider` (or why there is none), its objects at `loc`.
pub fn plan(
    cluster: &Cluster,
    provider: &Result<Provider, Problem>,
    loc: &Location,
    now: Timestamp,
) -> Plan {
    let mut validation = match provider {
        Ok(p) => kaas_validate::validate(cluster, p).map_err(Problem::Invalid),
        Err(problem) => Err(problem.clone()),
    };
    // Adoption counts only when the provider confirmed it.
    if validation.is_ok()
        && let Some(problem) = loc.problem.clone()
    {
        let mut errs = kaas_validate::FieldErrors::default();
        errs.push(kaas_validate::FieldError::new(
            kaas_validate::ErrorKind::Forbidden,
            crate::adopt::ADOPT_FROM_PATH,
            problem,
        ));
        validation = Err(Problem::Invalid(errs));
    }
    let rollout = match (&validation, provider) {
        (Ok(resolved), Ok(p)) => Some(plan_version(cluster, resolved, p, now)),
        _ => None,
    };
    Plan {
        validation,
        rollout,
    }
}

/// `resolved` at the offered version `cur` (its ClusterClass and release), if still offered.
pub(crate) fn hold_at(
    resolved: &Resolved,
    provider: &Provider,
    cur: &KubeVersion,
) -> Option<Resolved> {
    let offer = provider
        .spec
        .kubernetes_versions
        .iter()
        .find(|o| o.version.parse::<KubeVersion>().is_ok_and(|v| v == *cur))?;
    let mut keep = resolved.clone();
    keep.version = Some(cur.clone());
    keep.cluster_class = Some(offer.stack.cluster_class.clone());
    keep.stack_release = offer.stack.release.clone();
    Some(keep)
}

/// The version to roll out now: the resolved one, or the current one while a patch move waits for
/// the maintenance window (or for automatic patch updates to be on), and why.
pub fn plan_version(
    cluster: &Cluster,
    resolved: &Resolved,
    provider: &Provider,
    now: Timestamp,
) -> (Resolved, Option<String>) {
    let current = cluster
        .status
        .as_ref()
        .and_then(|s| s.target_version.as_deref())
        .and_then(|v| v.parse::<KubeVersion>().ok());
    let Some(target) = resolved.version.clone() else {
        return (resolved.clone(), None);
    };
    let spec_version = cluster
        .spec
        .kubernetes
        .as_ref()
        .and_then(|k| k.version.as_deref());
    let rollout = decide(
        current.as_ref(),
        &target,
        spec_version,
        resolved.forced_update,
        cluster.spec.maintenance.as_ref(),
        now,
    );
    if rollout == Rollout::Now {
        return (resolved.clone(), None);
    }
    let cur = current.expect("decide() rolls out now without a current version");
    let Some(keep) = hold_at(resolved, provider, &cur) else {
        return (resolved.clone(), None);
    };
    let why = match rollout {
        Rollout::WaitForWindow => "waits for the maintenance window",
        _ => "waits: automatic patch updates are off (spec.maintenance.autoUpdatePatch)",
    };
    (
        keep,
        Some(format!(
            "running {}; {} {why}",
            cur.release(),
            target.release()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> Cluster {
        serde_yaml::from_str(&format!(
            "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: demo, namespace: t}}\nspec:\n  provider: {{name: dev}}\n  kubernetes: {{version: 1.35.x}}\n  workers: [{{name: default, count: 2}}]\n{extra}"
        ))
        .expect("a cluster")
    }

    fn provider() -> Result<Provider, Problem> {
        Ok(serde_yaml::from_str(include_str!("../../../examples/provider-inmemory.yaml")).unwrap())
    }

    fn here() -> Location {
        Location {
            namespace: "kaas-dev-t".into(),
            name: "demo".into(),
            target: None,
            problem: None,
        }
    }

    /// 2026-11-30 12:00 UTC.
    fn noon() -> Timestamp {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_accepted_cluster_rolls_out_its_resolved_version() {
        let p = plan(&cluster(""), &provider(), &here(), noon());
        let resolved = p.validation.expect("accepted");
        let (now, note) = p.rollout.expect("a rollout");
        assert_eq!(now, resolved);
        assert_eq!(
            now.version.map(|v| v.to_string()).as_deref(),
            Some("v1.35.4")
        );
        assert_eq!(note, None);
    }

    #[test]
    fn no_provider_an_invalid_spec_or_a_refused_adoption_plans_nothing() {
        let missing = Err(Problem::Provider("no provider \"dev\"".into()));
        let p = plan(&cluster(""), &missing, &here(), noon());
        assert_eq!(
            p.validation.unwrap_err(),
            Problem::Provider("no provider \"dev\"".into())
        );
        assert!(p.rollout.is_none());

        let p = plan(
            &cluster("  controlPlane: {flavor: huge}"),
            &provider(),
            &here(),
            noon(),
        );
        assert!(matches!(p.validation, Err(Problem::Invalid(_))));
        assert!(p.rollout.is_none());

        let refused = Location {
            problem: Some("the Cluster API Cluster does not name this cluster back".into()),
            ..here()
        };
        let p = plan(&cluster(""), &provider(), &refused, noon());
        let Err(Problem::Invalid(errs)) = p.validation else {
            panic!("refused: {:?}", p.validation)
        };
        assert!(
            errs.to_string().contains(crate::adopt::ADOPT_FROM_PATH),
            "{errs}"
        );
        assert!(p.rollout.is_none());
    }

    #[test]
    fn a_patch_move_waits_for_the_maintenance_window() {
        let mut c = cluster("  maintenance: {window: {start: \"02:00\", duration: 2h}}");
        c.status = Some(kaas_api::ClusterStatus {
            target_version: Some("v1.35.0".into()),
            ..Default::default()
        });
        let p = plan(&c, &provider(), &here(), noon());
        let resolved = p.validation.expect("accepted");
        assert_eq!(
            resolved.version.map(|v| v.to_string()).as_deref(),
            Some("v1.35.4")
        );
        let (now, note) = p.rollout.expect("a rollout");
        assert_eq!(
            now.version.map(|v| v.to_string()).as_deref(),
            Some("v1.35.0")
        );
        assert_eq!(now.stack_release.as_deref(), Some("in-memory-1-35"));
        let note = note.expect("why it waits");
        assert!(note.contains("waits for the maintenance window"), "{note}");
        // Inside the window it moves.
        let at_three = "2026-11-30T03:00:00Z".parse().unwrap();
        let (now, note) = plan(&c, &provider(), &here(), at_three).rollout.unwrap();
        assert_eq!(
            now.version.map(|v| v.to_string()).as_deref(),
            Some("v1.35.4")
        );
        assert_eq!(note, None);
    }
}
