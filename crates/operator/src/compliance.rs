//! Continuous compliance: the static SCS checks (`kaas_check::run_static`, which create nothing)
//! run against every reachable managed cluster after changes and on a schedule; the `Compliant`
//! condition carries the summary and a ConfigMap in the tenant's namespace the full report.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kaas_api::Cluster;
use kaas_api::cluster::ComplianceStatus;
use kaas_check::report::{Format, Outcome};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use crate::{Context, Error, FIELD_MANAGER};

/// How often a settled cluster is checked again.
pub const INTERVAL: Duration = Duration::from_secs(3600);
/// Bound of one run.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Name of the report ConfigMap.
pub fn report_name(cluster: &str) -> String {
    format!("{cluster}-compliance")
}

/// Whether a check is due: never ran, ran for an older generation, or longer ago than [`INTERVAL`].
pub fn due(cluster: &Cluster, now: Timestamp) -> bool {
    let Some(c) = cluster.status.as_ref().and_then(|s| s.compliance.as_ref()) else {
        return true;
    };
    if c.generation != cluster.metadata.generation {
        return true;
    }
    match c.checked_at.parse::<Timestamp>() {
        Ok(t) => now.as_second() - t.as_second() >= INTERVAL.as_secs() as i64,
        Err(_) => true,
    }
}

/// The result for status: summary and the condition's (status, reason, message).
pub struct Checked {
    /// Summary.
    pub summary: ComplianceStatus,
    /// `Some(true)` all passed, `Some(false)` something failed, `None` undecided (only aborts).
    pub compliant: Option<bool>,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// Runs the static checks against `workload` and writes the report next to the cluster.
pub async fn check(
    ctx: &Context,
    cluster: &Cluster,
    workload: kube::Client,
    now: Timestamp,
) -> Result<Checked, Error> {
    let opts = kaas_check::CheckOptions {
        subject: format!(
            "{}/{}",
            cluster.namespace().unwrap_or_default(),
            cluster.name_any()
        ),
        argv: vec!["kaas-operator".into(), "continuous-compliance".into()],
        ..Default::default()
    };
    let report = match tokio::time::timeout(TIMEOUT, kaas_check::run_static(workload, &opts)).await
    {
        Ok(r) => r,
        Err(_) => {
            return Err(Error::Other(format!(
                "compliance check took longer than {} s",
                TIMEOUT.as_secs()
            )));
        }
    };
    let name = report_name(&cluster.name_any());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: cluster.namespace(),
            labels: Some(BTreeMap::from([(
                kaas_render::LABEL_CLUSTER.to_string(),
                cluster.name_any(),
            )])),
            owner_references: cluster.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("report.txt".to_string(), report.render(Format::Table)),
            ("report.json".to_string(), report.render(Format::Json)),
            ("scs.yaml".to_string(), report.render(Format::ScsYaml)),
        ])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await?;
    let count = |o: Outcome| report.results.iter().filter(|r| r.outcome == o).count() as i32;
    let list = |o: Outcome| {
        report
            .results
            .iter()
            .filter(|r| r.outcome == o)
            .map(|r| format!("{} ({})", r.id, r.summary))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (passed, failed, aborted) = (
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::Abort),
    );
    let (compliant, reason, message) = if failed > 0 {
        (
            Some(false),
            "ChecksFailed",
            format!("{failed} failed: {}", list(Outcome::Fail)),
        )
    } else if aborted > 0 {
        (
            None,
            "Undecided",
            format!(
                "{passed} passed, {aborted} could not decide: {}",
                list(Outcome::Abort)
            ),
        )
    } else {
        (
            Some(true),
            "ChecksPassed",
            format!("{passed} static SCS checks passed"),
        )
    };
    Ok(Checked {
        summary: ComplianceStatus {
            checked_at: now.to_string(),
            generation: cluster.metadata.generation,
            passed,
            failed,
            aborted,
            report_config_map: name,
        },
        compliant,
        reason: reason.into(),
        message: format!(
            "{message} (report: ConfigMap {})",
            report_name(&cluster.name_any())
        ),
    })
}
