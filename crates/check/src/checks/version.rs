//! `version-policy-check` (scs-0210-v2): `/version` against the release data.

use std::time::Instant;

use super::{VERSION_POLICY, Verdict, finish};
use crate::Ctx;
use crate::report::TestResult;
use crate::version::{KubeVersion, evaluate};

/// Runs the check; also returns the cluster's `gitVersion` for the report.
pub(crate) async fn run(ctx: &Ctx<'_>) -> (TestResult, Option<String>) {
    let t = Instant::now();
    ctx.say(&format!("{}: running", VERSION_POLICY.id));
    // `/version` needs no rights beyond authentication (system:public-info-viewer).
    let (verdict, git) = match ctx.client.apiserver_version().await {
        Err(e) => (
            Verdict::abort(crate::access::describe_error(&e, "read /version")),
            None,
        ),
        Ok(info) => {
            let git = info.git_version.clone();
            let v = match KubeVersion::parse(&git) {
                Err(e) => Verdict::abort(format!(
                    "cannot parse the version {git:?} reported by /version: {e}"
                )),
                Ok(v) => {
                    let p = evaluate(&v, ctx.reference_date, ctx.data);
                    let mut details = p.details;
                    details.push(format!("release data: {}", ctx.data.describe()));
                    let remediation = (p.outcome == crate::Outcome::Abort).then(|| {
                        "Refresh the release data (kaas check --refresh-data; needs api.github.com, raw.githubusercontent.com and kubernetes.io) or load a current data file; or judge on an earlier --reference-date.".to_string()
                    });
                    Verdict {
                        outcome: p.outcome,
                        summary: p.summary,
                        details,
                        remediation,
                    }
                }
            };
            (v, Some(git))
        }
    };
    let r = finish(&VERSION_POLICY, verdict, t);
    ctx.say(&format!(
        "{}: {} ({:.1} s) {}",
        r.id,
        r.outcome,
        r.duration_ms as f64 / 1000.0,
        r.summary
    ));
    (r, git)
}
