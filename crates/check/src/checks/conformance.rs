//! `cncf-k8s-conformance` (scs-0201-v1): drives Hydrophone or Sonobuoy when one is on `PATH` and
//! parses the e2e JUnit results minus an allowed-failures list; ABORT saying why otherwise.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{Verdict, preflight};
use crate::access::Need;
use crate::{ConformanceMode, Ctx};

/// Results of a JUnit file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Junit {
    pub passed: usize,
    pub skipped: usize,
    pub failed: Vec<String>,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut from = 0;
    while let Some(i) = tag[from..].find(&needle) {
        let at = from + i;
        // Whole attribute name only (not `classname` for `name`).
        let ok = at == 0 || tag[..at].ends_with(|c: char| c.is_whitespace());
        let start = at + needle.len();
        if ok {
            let end = tag[start..].find('"')? + start;
            return Some(unescape(&tag[start..end]));
        }
        from = start;
    }
    None
}

/// Parses JUnit XML as written by the Kubernetes e2e suite (`junit_01.xml`).
pub(crate) fn parse_junit(xml: &str) -> Junit {
    let mut out = Junit::default();
    let mut rest = xml;
    while let Some(i) = rest.find("<testcase") {
        rest = &rest[i + "<testcase".len()..];
        if !rest.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            continue;
        }
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        let name = attr(tag, "name").unwrap_or_default();
        let (body, after) = if tag.ends_with('/') {
            ("", &rest[end + 1..])
        } else {
            match rest[end + 1..].find("</testcase>") {
                Some(j) => (&rest[end + 1..end + 1 + j], &rest[end + 1 + j..]),
                None => (&rest[end + 1..], ""),
            }
        };
        if body.contains("<failure") || body.contains("<error") {
            out.failed.push(name);
        } else if body.contains("<skipped") {
            out.skipped += 1;
        } else {
            out.passed += 1;
        }
        rest = after;
    }
    out
}

/// The verdict for parsed results.
pub(crate) fn judge(j: &Junit, allowed: &[String], quick: bool) -> Verdict {
    let (allowed_failed, failed): (Vec<&String>, Vec<&String>) = j.failed.iter().partition(|t| {
        allowed
            .iter()
            .any(|a| !a.is_empty() && t.contains(a.as_str()))
    });
    let mut details = vec![format!(
        "{} passed, {} failed ({} of them allowed), {} skipped",
        j.passed,
        j.failed.len(),
        allowed_failed.len(),
        j.skipped
    )];
    details.extend(
        allowed_failed
            .iter()
            .map(|t| format!("allowed failure: {t}")),
    );
    if j.passed + j.failed.len() == 0 {
        return Verdict::abort("the results contain no executed test").details(details);
    }
    if !failed.is_empty() {
        let shown: Vec<&str> = failed.iter().take(10).map(|s| s.as_str()).collect();
        return Verdict::fail(format!(
            "{} conformance test(s) failed: {}{}",
            failed.len(),
            shown.join("; "),
            if failed.len() > 10 { "; ..." } else { "" }
        ))
        .details(details);
    }
    if quick {
        return Verdict::abort(
            "quick mode passed: the conformance tooling works, but only the full suite decides conformance",
        )
        .details(details)
        .remediation("Run the full suite (conformance mode certified); it takes one to two hours.");
    }
    Verdict::pass(format!(
        "conformance suite passed: {} test(s){}",
        j.passed,
        if allowed_failed.is_empty() {
            String::new()
        } else {
            format!(", {} allowed failure(s)", allowed_failed.len())
        }
    ))
    .details(details)
}

/// `junit_01.xml` (or any `junit*.xml`) at or below `path`.
fn find_junit(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let mut stack = vec![path.to_path_buf()];
    let mut fallback = None;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name == "junit_01.xml" {
                return Some(p);
            } else if name.starts_with("junit") && name.ends_with(".xml") {
                fallback.get_or_insert(p);
            }
        }
    }
    fallback
}

fn judge_path(path: &Path, allowed: &[String], quick: bool) -> Verdict {
    let Some(file) = find_junit(path) else {
        return Verdict::abort(format!("no junit_01.xml found in {}", path.display()));
    };
    match std::fs::read_to_string(&file) {
        Ok(xml) => judge(&parse_junit(&xml), allowed, quick)
            .details([format!("results: {}", file.display())]),
        Err(e) => Verdict::abort(format!("reading {}: {e}", file.display())),
    }
}

fn which(name: &str, search: Option<&OsString>) -> Option<PathBuf> {
    let path = search.cloned().or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

async fn exec(ctx: &Ctx<'_>, program: &Path, args: &[String]) -> Result<String, String> {
    ctx.say(&format!("running {} {}", program.display(), args.join(" ")));
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    let out = tokio::time::timeout(ctx.opts.timeouts.conformance, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "{} did not finish within {} s",
                program.display(),
                ctx.opts.timeouts.conformance.as_secs()
            )
        })?
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        Err(format!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Verdict {
    let o = ctx.opts;
    let quick = match &o.conformance {
        ConformanceMode::Skip => return Verdict::skip("conformance run not requested"),
        ConformanceMode::Results(p) => return judge_path(p, &o.allowed_failures, false),
        ConformanceMode::Quick => true,
        ConformanceMode::Certified => false,
    };
    let search = o.tool_search_path.as_ref();
    let tool = which("hydrophone", search)
        .map(|p| ("hydrophone", p))
        .or_else(|| which("sonobuoy", search).map(|p| ("sonobuoy", p)));
    let Some((kind, program)) = tool else {
        return Verdict::abort(
            "neither hydrophone nor sonobuoy found on PATH: the conformance suite cannot be run",
        )
        .remediation("Install Hydrophone (go install sigs.k8s.io/hydrophone@latest) or Sonobuoy, or pass the results of an earlier run.");
    };
    let Some(kubeconfig) = &o.kubeconfig else {
        return Verdict::abort(format!(
            "{kind} needs a kubeconfig file, and none was given"
        ));
    };
    if let Some(v) = preflight(ctx, &[Need::cluster("*", "*", "*")]).await {
        return Verdict {
            summary: format!("the conformance suite needs cluster-admin: {}", v.summary),
            ..v
        };
    }
    let out_dir =
        std::env::temp_dir().join(format!("kaas-check-conformance-{}", crate::random_uuid()));
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        return Verdict::abort(format!("creating {}: {e}", out_dir.display()));
    }
    let kc = kubeconfig.display().to_string();
    let out = out_dir.display().to_string();
    let result = if kind == "hydrophone" {
        let mut args = vec![
            "--kubeconfig".into(),
            kc.clone(),
            "--output-dir".into(),
            out.clone(),
        ];
        if quick {
            args.extend([
                "--focus".into(),
                "Pods should be submitted and removed".into(),
            ]);
        } else {
            args.push("--conformance".into());
        }
        let r = exec(ctx, &program, &args).await;
        // Hydrophone leaves its namespace behind on errors; clean up either way.
        let _ = exec(
            ctx,
            &program,
            &["--kubeconfig".into(), kc, "--cleanup".into()],
        )
        .await;
        r
    } else {
        let mode = if quick {
            "quick"
        } else {
            "certified-conformance"
        };
        let wait = (o.timeouts.conformance.as_secs() / 60).max(1);
        let mut r = exec(
            ctx,
            &program,
            &[
                "run".into(),
                "--kubeconfig".into(),
                kc.clone(),
                "--mode".into(),
                mode.into(),
                format!("--wait={wait}"),
            ],
        )
        .await;
        if r.is_ok() {
            r = exec(
                ctx,
                &program,
                &[
                    "retrieve".into(),
                    out.clone(),
                    "--kubeconfig".into(),
                    kc.clone(),
                    "--extract".into(),
                ],
            )
            .await;
        }
        let _ = exec(
            ctx,
            &program,
            &["delete".into(), "--kubeconfig".into(), kc, "--wait".into()],
        )
        .await;
        r
    };
    let verdict = judge_path(&out_dir, &o.allowed_failures, quick);
    match result {
        // A failing run without results is not a verdict on the cluster.
        Err(e) if verdict.outcome == crate::Outcome::Abort => {
            Verdict::abort(format!("{kind} failed: {e}")).details(verdict.details)
        }
        _ => verdict.details([format!("tool: {kind} ({})", program.display())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4">
  <testsuite name="Kubernetes e2e suite" tests="4">
    <testcase name="[sig-node] Pods should be submitted and removed [Conformance]" classname="Kubernetes e2e suite" time="5"></testcase>
    <testcase name="[sig-storage] NFS works &amp; stuff [Conformance]" classname="x" time="1">
      <failure type="Failure">boom</failure>
    </testcase>
    <testcase name="[sig-apps] skipped one" classname="x" time="0"><skipped message="skip"/></testcase>
    <testcase name="[sig-network] DNS [Conformance]" classname="x" time="2"/>
  </testsuite>
</testsuites>"#;

    #[test]
    fn parses_e2e_junit() {
        let j = parse_junit(XML);
        assert_eq!(j.passed, 2);
        assert_eq!(j.skipped, 1);
        assert_eq!(
            j.failed,
            vec!["[sig-storage] NFS works & stuff [Conformance]".to_string()]
        );
    }

    #[test]
    fn allowed_failures_and_modes() {
        let j = parse_junit(XML);
        assert_eq!(judge(&j, &[], false).outcome, Outcome::Fail);
        let allowed = vec!["NFS works".to_string()];
        let v = judge(&j, &allowed, false);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert!(v.summary.contains("1 allowed failure"));
        assert_eq!(judge(&j, &allowed, true).outcome, Outcome::Abort);
        assert_eq!(judge(&Junit::default(), &[], false).outcome, Outcome::Abort);
    }
}
