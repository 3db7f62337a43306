//! The compliance page: the latest report of the operator's SCS checks as a table — one row per
//! testcase with its standard, the verdict in a colour, why, and what to do — and the report
//! files (JSON, SCS YAML, text) to download as the REST API serves them. The report is read as
//! JSON (`report.json` of the report ConfigMap, the `kaas check -o json` shape); a report that
//! cannot be read so is shown as its text.

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

/// What an outcome means, for the verdict's tooltip.
fn outcome_meaning(class: &str) -> &'static str {
    match class {
        "pass" => "requirement met",
        "fail" => "requirement not met",
        "abort" => "could not decide (not a failure)",
        "skip" => "not run (not applicable or not asked for)",
        _ => "unknown outcome",
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
                span.verdict.pass { (summary["passed"].as_i64().unwrap_or(0)) " passed" } " "
                span.verdict.fail { (summary["failed"].as_i64().unwrap_or(0)) " failed" } " "
                span.verdict.abort { (summary["aborted"].as_i64().unwrap_or(0)) " aborted" }
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
                            @let class = outcome_class(str_of(t, "outcome"));
                            @let scope = t["scs_testcase"].as_bool().unwrap_or(true);
                            tr class={ "testcase " (class) } data-testcase=(str_of(t, "id")) {
                                td.testcase {
                                    code { (str_of(t, "id")) }
                                    @if !str_of(t, "title").is_empty() { br; small { (str_of(t, "title")) } }
                                }
                                td.standard {
                                    (str_of(t, "standard"))
                                    @if !scope { br; span.tag.advisory title="not a testcase of the SCS-compatible KaaS scope: advisory" { "advisory" } }
                                }
                                td.verdict { span class={ "verdict " (class) } title=(outcome_meaning(class)) { (str_of(t, "outcome")) } }
                                td.why {
                                    (str_of(t, "summary"))
                                    @if let Some(ds) = t["details"].as_array() {
                                        @if !ds.is_empty() { ul.details { @for d in ds { li { (d.as_str().unwrap_or("")) } } } }
                                    }
                                }
                                td.hint {
                                    @if let Some(h) = t["remediation"].as_str() { (h) }
                                    @else if class == "pass" { span.hint { "—" } }
                                }
                            }
                        }
                    }
                }
                p.hint { "ABORT is not a failure: the check could not decide. Advisory testcases are not part of the SCS-compatible KaaS scope." }
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
        assert_eq!(
            html.matches("span class=\"tag advisory\"").count(),
            1,
            "{html}"
        );
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
