//! The compliance page: the latest report of the operator's SCS checks as a table — one row per
//! testcase with its standard, the verdict in a colour, why, and what to do — and the report
//! files (JSON, SCS YAML, text) to download as the REST API serves them. The report is read as
//! JSON (`report.json` of the report ConfigMap, the `kaas check -o json` shape); a report that
//! cannot be read so is shown as its text. A testcase whose outcome does not decide the
//! certificate (a scope target other than mandatory, a manual one, or outside the scope) carries
//! its class as a tag, and its FAIL and ABORT show as `WARN` and `INFO`, as `kaas check` says.

use maud::{Markup, html};
use serde_json::Value;

use crate::api::ComplianceReport;

/// The CSS class of a testcase's outcome (`pass`, `fail`, `abort`, `skip`; `unknown` else).
pub(crate) fn outcome_class(outcome: &str) -> &'static str {
    match outcome.to_ascii_uppercase().as_str() {
        "PASS" => "pass",
        "FAIL" => "fail",
        "ABORT" => "abort",
        "SKIP" => "skip",
        _ => "unknown",
    }
}

/// What a verdict means, for its tooltip.
fn verdict_meaning(class: &str) -> &'static str {
    match class {
        "pass" => "requirement met",
        "fail" => "requirement not met",
        "abort" => "could not decide (not a failure)",
        "skip" => "not run (not applicable or not asked for)",
        "warn" => "not met, but it does not decide the certificate",
        "info" => "could not decide; it does not decide the certificate",
        _ => "unknown outcome",
    }
}

/// Where a testcase stands: its class for people (`preview, manual`, `outside`, …; empty for a
/// mandatory automated one) and whether its outcome decides the certificate. From the scope's
/// `target` and `method` where the report has them, else from `scs_testcase`.
fn standing(t: &Value) -> (String, bool) {
    match t["target"].as_str() {
        Some(target) => {
            let manual = t["method"].as_str() == Some("manual");
            let class = match (target, manual) {
                ("mandatory", false) => String::new(),
                (t, true) => format!("{t}, manual"),
                (t, false) => t.to_string(),
            };
            (class, target == "mandatory" && !manual)
        }
        None if t["scs_testcase"].as_bool().unwrap_or(true) => (String::new(), true),
        None => ("advisory".into(), false),
    }
}

/// The verdict shown (text, CSS class): the outcome, except that a FAIL or ABORT that does not
/// decide the certificate is `WARN` or `INFO`. (A report without scope targets keeps its
/// outcomes as they are.)
fn verdict(t: &Value) -> (String, &'static str) {
    let outcome = str_of(t, "outcome");
    let class = outcome_class(outcome);
    let decides = standing(t).1 || t.get("target").is_none();
    match (class, decides) {
        ("fail", false) => ("WARN".into(), "warn"),
        ("abort", false) => ("INFO".into(), "info"),
        _ => (outcome.to_string(), class),
    }
}

/// The content type of a report file by its name.
pub(crate) fn content_type(file: &str) -> &'static str {
    if file.ends_with(".json") {
        "application/json"
    } else if file.ends_with(".yaml") || file.ends_with(".yml") {
        "application/yaml"
    } else {
        "text/plain; charset=utf-8"
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The report of cluster `name` in namespace `ns`: summary, downloads and the table.
pub(crate) fn report_html(ns: &str, name: &str, r: &ComplianceReport) -> Markup {
    let parsed: Option<Value> = r
        .files
        .get("report.json")
        .and_then(|t| serde_json::from_str(t).ok());
    let results = parsed
        .as_ref()
        .and_then(|p| p["results"].as_array())
        .cloned();
    let summary = r.summary.clone().unwrap_or(Value::Null);
    html! {
        p { a href={ "/ui/clusters/" (name) } { "← back to " (name) } }
        @if !summary.is_null() {
            p.summary id="compliance-summary" {
                @let warnings = summary["warnings"].as_i64();
                @if warnings.is_some() { "Deciding the certificate: " }
                span.verdict.pass { (summary["passed"].as_i64().unwrap_or(0)) " passed" } " "
                span.verdict.fail { (summary["failed"].as_i64().unwrap_or(0)) " failed" } " "
                span.verdict.abort { (summary["aborted"].as_i64().unwrap_or(0)) " aborted" }
                @if let Some(w) = warnings { "; not deciding it: " span.verdict.warn { (w) " WARN/INFO" } }
                " — checked " (str_of(&summary, "checkedAt"))
                @if let Some(p) = &parsed {
                    @if let Some(v) = p["kubernetes_version"].as_str() { " on " (v) }
                    @if let Some(d) = p["reference_date"].as_str() { ", judged on " (d) }
                }
            }
        }
        p.downloads id="downloads" {
            "Download: "
            @for f in r.files.keys() {
                a.download href={ "/ui/clusters/" (name) "/compliance/" (f) } download={ (name) "-" (f) } { (f) } " "
            }
            "· " a href={ "/api/v1/namespaces/" (ns) "/clusters/" (name) "/compliance" } { "everything as JSON (REST)" }
        }
        @match &results {
            Some(rows) => {
                table.compliance id="compliance" {
                    thead { tr { th { "Testcase" } th { "Standard" } th { "Verdict" } th { "Why" } th { "What to do" } } }
                    tbody {
                        @for t in rows {
                            @let (text, class) = verdict(t);
                            @let (tag, _) = standing(t);
                            tr class={ "testcase " (class) } data-testcase=(str_of(t, "id")) {
                                td.testcase {
                                    code { (str_of(t, "id")) }
                                    @if !str_of(t, "title").is_empty() { br; small { (str_of(t, "title")) } }
                                }
                                td.standard {
                                    (str_of(t, "standard"))
                                    @if !tag.is_empty() { br; span.tag title="does not decide the SCS-compatible KaaS certificate" { (tag) } }
                                }
                                td.verdict { span class={ "verdict " (class) } title=(verdict_meaning(class)) { (text) } }
                                td.why {
                                    (str_of(t, "summary"))
                                    @if let Some(ds) = t["details"].as_array() {
                                        @if !ds.is_empty() { ul.details { @for d in ds { li { (d.as_str().unwrap_or("")) } } } }
                                    }
                                }
                                td.hint {
                                    @if let Some(h) = t["remediation"].as_str() { (h) }
                                    @else if class == "pass" || class == "skip" { span.hint { "—" } }
                                }
                            }
                        }
                    }
                }
                p.hint { "ABORT is not a failure: the check could not decide. Testcases with a class (preview, advisory, draft, manual, outside) do not decide the certificate: their FAIL shows as WARN, their ABORT as INFO." }
            }
            None => {
                p.hint { "The report is not in the JSON form; here is its text." }
                @if let Some(t) = r.files.get("report.txt") { pre { (t) } }
                @else { @for (k, v) in &r.files { h2 { (k) } pre { (v) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn report() -> ComplianceReport {
        let json = json!({
            "subject": "c", "checked_at": "2026-11-29T10:00:00Z", "reference_date": "2026-11-29",
            "kubernetes_version": "v1.36.3",
            "results": [
                {"id": "version-policy-check", "standard": "scs-0210-v2", "scs_testcase": true,
                 "title": "Kubernetes version policy", "kind": "static", "outcome": "PASS",
                 "summary": "v1.36.3 is current", "duration_ms": 3},
                {"id": "default-storage-class-check", "standard": "scs-0211", "scs_testcase": false,
                 "title": "a default StorageClass", "kind": "static", "outcome": "FAIL",
                 "summary": "no default StorageClass <none>", "details": ["classes: 0"],
                 "remediation": "install a CSI driver & mark its class default", "duration_ms": 2},
                {"id": "node-distribution-check", "standard": "scs-0214-v2", "scs_testcase": true,
                 "title": "nodes spread", "kind": "static", "outcome": "ABORT",
                 "summary": "no control-plane nodes", "remediation": "see docs/compliance.md", "duration_ms": 1},
                {"id": "apiserver-settings-check", "standard": "scs-0217", "scs_testcase": true,
                 "title": "API server flags", "kind": "static", "outcome": "SKIP",
                 "summary": "not visible", "duration_ms": 0}
            ]
        });
        ComplianceReport {
            summary: Some(
                json!({"checkedAt": "2026-11-29T10:00:00Z", "passed": 1, "failed": 1, "aborted": 1, "reportConfigMap": "c-compliance"}),
            ),
            files: BTreeMap::from([
                ("report.json".to_string(), json.to_string()),
                ("report.txt".to_string(), "table".to_string()),
                ("scs.yaml".to_string(), "spec: {}".to_string()),
            ]),
        }
    }

    #[test]
    fn every_testcase_is_a_row_with_standard_coloured_verdict_and_hint() {
        let html = report_html("t", "c", &report()).into_string();
        assert_eq!(html.matches("<tr class=\"testcase ").count(), 4, "{html}");
        assert!(
            html.contains(r#"<tr class="testcase pass" data-testcase="version-policy-check">"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<tr class="testcase fail" data-testcase="default-storage-class-check">"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"<td class="standard">scs-0210-v2</td>"#),
            "{html}"
        );
        for (class, outcome) in [
            ("pass", "PASS"),
            ("fail", "FAIL"),
            ("abort", "ABORT"),
            ("skip", "SKIP"),
        ] {
            assert!(
                html.contains(&format!(
                    r#"<td class="verdict"><span class="verdict {class}" title=""#
                )) && html.contains(&format!("\">{outcome}</span></td>")),
                "{class}: {html}"
            );
        }
        // The hint per testcase, escaped; a testcase outside the SCS scope is advisory.
        assert!(
            html.contains(
                r#"<td class="hint">install a CSI driver &amp; mark its class default</td>"#
            ),
            "{html}"
        );
        assert!(
            html.contains("no default StorageClass &lt;none&gt;"),
            "{html}"
        );
        assert_eq!(html.matches("<span class=\"tag\"").count(), 1, "{html}");
        assert!(html.contains(">advisory</span>"), "{html}");
        assert!(html.contains("<li>classes: 0</li>"), "{html}");
        // Downloads: each file as served, and the REST answer.
        for f in ["report.json", "report.txt", "scs.yaml"] {
            assert!(
                html.contains(&format!(
                    r#"href="/ui/clusters/c/compliance/{f}" download="c-{f}""#
                )),
                "{html}"
            );
        }
        assert!(
            html.contains(r#"href="/api/v1/namespaces/t/clusters/c/compliance""#),
            "{html}"
        );
        assert!(
            html.contains("1 passed") && html.contains("1 failed") && html.contains("1 aborted")
        );
        assert!(!html.contains("<pre>"), "no text dump: {html}");
    }

    #[test]
    fn testcases_that_do_not_decide_the_certificate_warn_and_carry_their_class() {
        let mut r = report();
        let mut v: Value = serde_json::from_str(&r.files["report.json"]).unwrap();
        v["results"][0]["target"] = json!("mandatory");
        v["results"][0]["method"] = json!("automated");
        v["results"][1]["target"] = json!("outside");
        v["results"][2]["target"] = json!("preview");
        v["results"][2]["method"] = json!("manual");
        v["results"][3]["target"] = json!("draft");
        r.files.insert("report.json".into(), v.to_string());
        r.summary.as_mut().unwrap()["warnings"] = json!(2);
        let html = report_html("t", "c", &r).into_string();
        assert!(html.contains("Deciding the certificate: "), "{html}");
        assert!(
            html.contains(r#"<span class="verdict warn">2 WARN/INFO</span>"#),
            "{html}"
        );
        for (class, id) in [
            ("pass", "version-policy-check"),
            ("warn", "default-storage-class-check"),
            ("info", "node-distribution-check"),
            ("skip", "apiserver-settings-check"),
        ] {
            let row = format!(r#"<tr class="testcase {class}" data-testcase="{id}">"#);
            assert!(html.contains(&row), "{row}: {html}");
        }
        assert!(
            html.contains("\">WARN</span>") && html.contains("\">INFO</span>"),
            "{html}"
        );
        for tag in ["outside", "preview, manual", "draft"] {
            assert!(html.contains(&format!(">{tag}</span>")), "{tag}: {html}");
        }
        assert_eq!(html.matches("<span class=\"tag\"").count(), 3, "{html}");
    }

    #[test]
    fn a_report_without_json_is_shown_as_text() {
        let mut r = report();
        r.files.remove("report.json");
        let html = report_html("t", "c", &r).into_string();
        assert!(html.contains("<pre>table</pre>"), "{html}");
        assert!(!html.contains("<table"), "{html}");
    }

    #[test]
    fn content_types_of_report_files() {
        assert_eq!(content_type("report.json"), "application/json");
        assert_eq!(content_type("scs.yaml"), "application/yaml");
        assert_eq!(content_type("report.txt"), "text/plain; charset=utf-8");
        assert_eq!(outcome_class("pass"), "pass");
        assert_eq!(outcome_class("weird"), "unknown");
    }
}
