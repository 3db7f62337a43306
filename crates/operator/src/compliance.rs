//! Continuous compliance: the static SCS checks (`kaas_check::run_static`, which create nothing)
//! run against every reachable managed cluster after changes and on a schedule; the `Compliant`
//! condition carries the summary and a ConfigMap in the tenant's namespace the full report.
//!
//! Only the mandatory testcases of the SCS-compatible KaaS scope decide the condition; preview,
//! advisory, draft and out-of-scope results are named in its message and the report, never a
//! failure. The release and CVE data come from a ConfigMap the provider refreshes
//! ([`ReleaseDataSource`], key [`RELEASE_DATA_KEY`], the format of `kaas check --save-data`),
//! falling back to the data bundled with kaas; status and report say which and how old.

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

/// The key of the release-data ConfigMap holding the data (the format of
/// `crates/check/data/kubernetes-releases.yaml`, as `kaas check --refresh-data --save-data` writes it).
pub const RELEASE_DATA_KEY: &str = "kubernetes-releases.yaml";
/// The default name of the release-data ConfigMap (in the operator's namespace).
pub const RELEASE_DATA_CONFIGMAP: &str = "kaas-release-data";

/// The ConfigMap with current release and CVE data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseDataSource {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ReleaseDataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfigMap {}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for ReleaseDataSource {
    type Err = String;
    /// `NAMESPACE/NAME`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self {
                    namespace: ns.into(),
                    name: name.into(),
                })
            }
            _ => Err(format!("{s:?}: expected NAMESPACE/NAME")),
        }
    }
}

/// The release data to judge with: the ConfigMap's when it is readable, valid and not older
/// than the bundled data; the bundled data otherwise, its `source` saying why.
pub async fn release_data(
    client: &kube::Client,
    src: Option<&ReleaseDataSource>,
) -> kaas_check::ReleaseData {
    let bundled = kaas_check::ReleaseData::bundled();
    let Some(src) = src else {
        return bundled;
    };
    let api = Api::<ConfigMap>::namespaced(client.clone(), &src.namespace);
    let why = match api.get_opt(&src.name).await {
        Ok(None) => format!("{src} not found"),
        Err(e) => format!("{src} not readable: {e}"),
        Ok(Some(cm)) => match cm.data.as_ref().and_then(|d| d.get(RELEASE_DATA_KEY)) {
            None => format!("{src} has no key {RELEASE_DATA_KEY}"),
            Some(text) => match kaas_check::ReleaseData::from_yaml(text) {
                Err(e) => format!("{src} is invalid: {e}"),
                Ok(d) if d.releases_as_of < bundled.releases_as_of => format!(
                    "{src} is older (releases as of {}) than the bundled data",
                    d.releases_as_of
                ),
                Ok(mut d) => {
                    d.source = format!("{src} ({})", d.source);
                    return d;
                }
            },
        },
    };
    let mut d = bundled;
    d.source = format!("{}; {why}", d.source);
    d
}

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
    let data = release_data(&ctx.client, ctx.release_data.as_ref()).await;
    let refresh_hint = match &ctx.release_data {
        Some(src) => format!(
            "The provider refreshes the release data: write current data (kaas check --refresh-data --data-only --save-data FILE) into key {RELEASE_DATA_KEY} of {src} (docs/compliance.md)."
        ),
        None => "The operator runs without a release-data ConfigMap (--release-data-configmap): update kaas, or configure one (docs/compliance.md).".to_string(),
    };
    let opts = kaas_check::CheckOptions {
        data,
        refresh_hint,
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
    let (compliant, reason, message) = verdict(&report);
    let count = |o: Outcome| {
        report
            .results
            .iter()
            .filter(|r| r.counts_for_certificate() && r.outcome == o)
            .count() as i32
    };
    let (passed, failed, aborted) = (
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::Abort),
    );
    Ok(Checked {
        summary: ComplianceStatus {
            checked_at: now.to_string(),
            generation: cluster.metadata.generation,
            passed,
            failed,
            aborted,
            warnings: report
                .results
                .iter()
                .filter(|r| {
                    !r.counts_for_certificate()
                        && matches!(r.outcome, Outcome::Fail | Outcome::Abort)
                })
                .count() as i32,
            report_config_map: name,
            release_data_source: Some(report.data.source.clone()),
            release_data_as_of: Some(report.data.releases_as_of.to_string()),
            release_data_age_days: Some(report.data.age_days),
        },
        compliant,
        reason: reason.into(),
        message: format!(
            "{message} (report: ConfigMap {})",
            report_name(&cluster.name_any())
        ),
    })
}

/// The condition from a report: (status, reason, message). Only the mandatory (certificate)
/// testcases decide it: `False`/`ChecksFailed` if one failed, `Unknown`/`StaleReleaseData` if
/// they could not decide only because the release data is too old, `Unknown`/`Undecided` for other
/// aborts, `True`/`ChecksPassed` otherwise. Results of other classes are named, never decisive.
pub fn verdict(report: &kaas_check::Report) -> (Option<bool>, &'static str, String) {
    let list = |it: &mut dyn Iterator<Item = &kaas_check::TestResult>| {
        it.map(|r| format!("{} ({})", r.id, r.summary))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let cert = |o: Outcome| {
        report
            .results
            .iter()
            .filter(move |r| r.counts_for_certificate() && r.outcome == o)
    };
    let c = report.certificate_counts();
    let others: Vec<String> = report
        .results
        .iter()
        .filter(|r| {
            !r.counts_for_certificate() && matches!(r.outcome, Outcome::Fail | Outcome::Abort)
        })
        .map(|r| format!("{} {} ({})", r.id, r.verdict(), r.class()))
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("; not part of the certificate: {}", others.join(", "))
    };
    let data = format!("; release data: {}", report.data.describe());
    if c.fail > 0 {
        (
            Some(false),
            "ChecksFailed",
            format!(
                "{} mandatory failed: {}{others}",
                c.fail,
                list(&mut cert(Outcome::Fail))
            ),
        )
    } else if c.abort > 0 {
        let stale = cert(Outcome::Abort)
            .all(|r| r.reason.as_deref() == Some(kaas_check::report::REASON_STALE_DATA));
        let hint = if stale {
            cert(Outcome::Abort)
                .find_map(|r| r.remediation.clone())
                .map(|h| format!(" {h}"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        (
            None,
            if stale {
                "StaleReleaseData"
            } else {
                "Undecided"
            },
            format!(
                "{} mandatory passed, {} could not decide: {}{hint}{others}{data}",
                c.pass,
                c.abort,
                list(&mut cert(Outcome::Abort))
            ),
        )
    } else {
        (
            Some(true),
            "ChecksPassed",
            format!(
                "{} mandatory static SCS checks passed{others}{data}",
                c.pass
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(results: serde_json::Value) -> kaas_check::Report {
        serde_json::from_value(serde_json::json!({
            "subject": "t/c", "checked_at": "2026-11-30T00:00:00Z", "reference_date": "2026-11-30",
            "kubernetes_version": "v1.36.3",
            "data": {"source": "bundled", "releases_as_of": "2026-05-13", "cves_as_of": "2026-03-19",
                     "refresh_requested": false, "age_days": 201, "cves_age_days": 256},
            "argv": [], "run_uuid": "r", "invocation_uuid": "i", "duration_ms": 1,
            "results": results,
        }))
        .unwrap()
    }

    fn result(id: &str, target: &str, outcome: &str, reason: Option<&str>) -> serde_json::Value {
        serde_json::json!({"id": id, "standard": "s", "scs_testcase": target == "mandatory",
            "module": (target == "mandatory").then_some("m"), "target": target, "method": "automated",
            "title": "t", "kind": "static", "outcome": outcome, "summary": format!("{id} said so"),
            "remediation": "Refresh it.", "reason": reason, "duration_ms": 1})
    }

    #[test]
    fn only_mandatory_testcases_decide_the_condition() {
        let warn = result("default-storage-class-check", "outside", "FAIL", None);
        let pass = report(serde_json::json!([
            result("version-policy-check", "mandatory", "PASS", None),
            warn.clone()
        ]));
        let (c, reason, msg) = verdict(&pass);
        assert_eq!((c, reason), (Some(true), "ChecksPassed"));
        assert!(
            msg.starts_with("1 mandatory static SCS checks passed; not part of the certificate: default-storage-class-check WARN (outside); release data: bundled (releases as of 2026-05-13, 201 days old"),
            "{msg}"
        );
        let stale = report(serde_json::json!([
            result(
                "version-policy-check",
                "mandatory",
                "ABORT",
                Some("StaleReleaseData")
            ),
            warn.clone()
        ]));
        let (c, reason, msg) = verdict(&stale);
        assert_eq!((c, reason), (None, "StaleReleaseData"));
        assert!(
            msg.contains(
                "could not decide: version-policy-check (version-policy-check said so) Refresh it."
            ),
            "{msg}"
        );
        let undecided = report(serde_json::json!([result(
            "version-policy-check",
            "mandatory",
            "ABORT",
            None
        ),]));
        assert_eq!(verdict(&undecided).1, "Undecided");
        let failed = report(serde_json::json!([
            result("version-policy-check", "mandatory", "FAIL", None),
            warn
        ]));
        let (c, reason, msg) = verdict(&failed);
        assert_eq!((c, reason), (Some(false), "ChecksFailed"));
        assert!(
            msg.starts_with("1 mandatory failed: version-policy-check"),
            "{msg}"
        );
    }

    #[test]
    fn release_data_source_parses() {
        let s: ReleaseDataSource = "kaas-system/kaas-release-data".parse().unwrap();
        assert_eq!(s.to_string(), "ConfigMap kaas-system/kaas-release-data");
        for bad in ["", "x", "/x", "x/", "a/b/c"] {
            assert!(bad.parse::<ReleaseDataSource>().is_err(), "{bad}");
        }
    }
}
