//! Results and their renderings: SCS lines, the SCS report YAML, JSON, JUnit XML and a table for
//! people with a remediation hint per failed check.

use std::fmt::Write as _;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// The scope uuid of the SCS certification scope "SCS-compatible KaaS".
pub const SCS_SCOPE_UUID: &str = "1fffebe6-fd4b-44d3-a36c-fc58b4bb0180";
/// Its name.
pub const SCS_SCOPE_NAME: &str = "SCS-compatible KaaS";
/// Its specification.
pub const SCS_SCOPE_URL: &str = "https://raw.githubusercontent.com/SovereignCloudStack/standards/main/Tests/scs-compatible-kaas.yaml";

/// The result of one testcase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Requirement met.
    Pass,
    /// Requirement not met.
    Fail,
    /// Could not decide (no access, no data, the cluster cannot run the test). Not a failure.
    Abort,
    /// Not run (not requested, or not applicable to this cluster). Not part of SCS results.
    Skip,
}

impl Outcome {
    /// `PASS`, `FAIL`, `ABORT`, `SKIP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Abort => "ABORT",
            Outcome::Skip => "SKIP",
        }
    }

    /// The value in SCS reports: 1 PASS, -1 FAIL, 0 ABORT; SKIP has none (a missing result).
    pub fn scs_value(self) -> Option<i64> {
        match self {
            Outcome::Pass => Some(1),
            Outcome::Fail => Some(-1),
            Outcome::Abort => Some(0),
            Outcome::Skip => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a testcase does to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// Reads only (the operator runs these continuously).
    Static,
    /// Creates objects in a temporary namespace that is deleted afterwards.
    Behavioural,
    /// Opens TCP connections to node addresses (only when asked).
    Probe,
    /// Runs the upstream conformance suite through Sonobuoy or Hydrophone.
    Conformance,
}

/// Where a testcase stands in the certification scope "SCS-compatible KaaS" v1
/// (`Tests/scs-compatible-kaas.yaml`, state of 2026-08): only [`Target::Mandatory`] testcases
/// decide the certificate; every other class is reported and never fails it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A testcase of the scope's `main` target (tag `mandatory`): decides the certificate.
    Mandatory,
    /// A testcase of the scope's `preview` target: reported, not part of the certificate yet.
    Preview,
    /// Not a scope testcase: a SHOULD of a standard in the scope, or kaas's own static
    /// precondition of a mandatory testcase.
    Advisory,
    /// A draft standard or draft version (open upstream pull request or `Draft` status).
    Draft,
    /// A stable standard the scope does not list (e.g. scs-0211).
    Outside,
}

impl Target {
    /// `mandatory`, `preview`, `advisory`, `draft`, `outside`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Mandatory => "mandatory",
            Target::Preview => "preview",
            Target::Advisory => "advisory",
            Target::Draft => "draft",
            Target::Outside => "outside",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the scope decides a testcase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// By a script (here: by kaas check).
    Automated,
    /// By a person reviewing evidence: kaas check's result is evidence, not the testcase's result.
    Manual,
}

impl Method {
    /// `automated` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Automated => "automated",
            Method::Manual => "manual",
        }
    }
}

fn default_target() -> Target {
    Target::Advisory
}

fn default_method() -> Method {
    Method::Automated
}

/// Machine-readable reason of a verdict, where there is one beyond the outcome.
pub const REASON_STALE_DATA: &str = "StaleReleaseData";

/// The result of one testcase with everything a reader needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Testcase id (the SCS id where SCS has one).
    pub id: String,
    /// The SCS standard, e.g. `scs-0210-v2`.
    pub standard: String,
    /// Whether `id` is a testcase of the SCS-compatible KaaS scope.
    pub scs_testcase: bool,
    /// The scope module the testcase belongs to (`scs-0214-v2-manual`); `None` outside the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Mandatory, preview, advisory, draft or outside (only mandatory decides the certificate).
    #[serde(default = "default_target")]
    pub target: Target,
    /// Automated or manual, as the scope says.
    #[serde(default = "default_method")]
    pub method: Method,
    /// What is checked, in a few words.
    pub title: String,
    /// Static, behavioural, probe or conformance.
    pub kind: CheckKind,
    /// PASS, FAIL, ABORT or SKIP.
    pub outcome: Outcome,
    /// One sentence: why this outcome.
    pub summary: String,
    /// Supporting facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What to do about a FAIL or ABORT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Machine-readable reason, e.g. [`REASON_STALE_DATA`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

impl TestResult {
    /// Whether the outcome decides the certificate: a mandatory, automated scope testcase.
    pub fn counts_for_certificate(&self) -> bool {
        self.target == Target::Mandatory && self.method == Method::Automated
    }

    /// The class shown to people: `mandatory`, `preview, manual`, `draft`, ...
    pub fn class(&self) -> String {
        match self.method {
            Method::Automated => self.target.as_str().to_string(),
            Method::Manual => format!("{}, manual", self.target),
        }
    }

    /// The outcome as shown to people: a FAIL or ABORT that does not decide the certificate is
    /// `WARN` (FAIL) or `INFO` (ABORT), as kube-bench does.
    pub fn verdict(&self) -> &'static str {
        match (self.outcome, self.counts_for_certificate()) {
            (o, true) => o.as_str(),
            (Outcome::Fail, false) => "WARN",
            (Outcome::Abort, false) => "INFO",
            (o, false) => o.as_str(),
        }
    }
}

/// Which release data the version check used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Bundled, a file, or upstream (with fetch date).
    pub source: String,
    /// Patch releases known up to this date.
    pub releases_as_of: Date,
    /// CVEs known up to this date.
    pub cves_as_of: Date,
    /// Whether a refresh from upstream was asked for.
    pub refresh_requested: bool,
    /// Why the refresh failed (the bundled data was used then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_error: Option<String>,
    /// Days from `releases_as_of` to the reference date.
    #[serde(default)]
    pub age_days: i64,
    /// Days from `cves_as_of` to the reference date.
    #[serde(default)]
    pub cves_age_days: i64,
}

impl DataInfo {
    /// One line: source, dates and ages.
    pub fn describe(&self) -> String {
        format!(
            "{} (releases as of {}, {} days old; CVEs as of {}, {} days old){}",
            self.source,
            self.releases_as_of,
            self.age_days,
            self.cves_as_of,
            self.cves_age_days,
            match &self.refresh_error {
                Some(e) => format!("; refresh failed: {e}"),
                None => String::new(),
            }
        )
    }
}

/// Counts per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// PASS.
    pub pass: usize,
    /// FAIL.
    pub fail: usize,
    /// ABORT.
    pub abort: usize,
    /// SKIP.
    pub skip: usize,
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The cluster checked (a name chosen by the caller).
    pub subject: String,
    /// When the run started (JSON: RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits).
    #[serde(with = "rfc3339")]
    pub checked_at: Timestamp,
    /// The day the cluster is judged on.
    pub reference_date: Date,
    /// `/version` gitVersion, if readable.
    pub kubernetes_version: Option<String>,
    /// Release data used by the version check.
    pub data: DataInfo,
    /// The command line (for the SCS report).
    pub argv: Vec<String>,
    /// Run uuid (SCS report).
    pub run_uuid: String,
    /// Invocation uuid (SCS report).
    pub invocation_uuid: String,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// One entry per testcase, in a fixed order.
    pub results: Vec<TestResult>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Table for people with remediation hints.
    Table,
    /// `<id>: PASS|FAIL|ABORT` lines (SCS test script output).
    ScsLines,
    /// SCS report YAML.
    ScsYaml,
    /// JSON of [`Report`].
    Json,
    /// JUnit XML.
    Junit,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "table" | "text" => Format::Table,
            "scs" | "lines" => Format::ScsLines,
            "scs-yaml" | "yaml" | "report" => Format::ScsYaml,
            "json" => Format::Json,
            "junit" | "xml" => Format::Junit,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (table, scs, scs-yaml, json, junit)"
                ));
            }
        })
    }
}

impl Report {
    /// The result of a testcase.
    pub fn result(&self, id: &str) -> Option<&TestResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// Counts per outcome.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.results {
            match r.outcome {
                Outcome::Pass => c.pass += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Abort => c.abort += 1,
                Outcome::Skip => c.skip += 1,
            }
        }
        c
    }

    /// Counts per outcome of the testcases that decide the certificate (mandatory, automated).
    pub fn certificate_counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in self.results.iter().filter(|r| r.counts_for_certificate()) {
            match r.outcome {
                Outcome::Pass => c.pass += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Abort => c.abort += 1,
                Outcome::Skip => c.skip += 1,
            }
        }
        c
    }

    /// The process exit code (see the crate documentation), from the testcases that decide the
    /// certificate only: 1 at least one of them FAILed; 2 none failed but one ABORTed, none
    /// passed, or a requested refresh of the release data failed; 0 otherwise. Preview, advisory,
    /// draft and out-of-scope results never change it.
    pub fn exit_code(&self) -> u8 {
        let c = self.certificate_counts();
        if c.fail > 0 {
            1
        } else if c.abort > 0 || c.pass == 0 || self.data.refresh_error.is_some() {
            2
        } else {
            0
        }
    }

    /// The results of one testcase of the stale-release-data kind, if any.
    pub fn stale_data(&self) -> impl Iterator<Item = &TestResult> {
        self.results
            .iter()
            .filter(|r| r.reason.as_deref() == Some(REASON_STALE_DATA))
    }

    /// Renders in a format.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::ScsLines => self.scs_lines(),
            Format::ScsYaml => self.scs_yaml(),
            Format::Json => self.json(),
            Format::Junit => self.junit(),
        }
    }

    /// `<id>: PASS|FAIL|ABORT`, one line per testcase that ran (SKIP is not printed: SCS treats a
    /// missing line as a missing result).
    ///
    /// Only the scope's automated testcases are printed: a manual testcase's result comes from a
    /// reviewer (kaas check's finding is evidence, in the diagnostics), and testcases outside the
    /// scope are not the scope's results.
    pub fn scs_lines(&self) -> String {
        let mut out = String::new();
        for r in self.scs_results() {
            let _ = writeln!(out, "{}: {}", r.id, r.outcome);
        }
        out
    }

    /// The results that belong in the SCS formats: automated testcases of the scope that ran.
    fn scs_results(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| {
            r.module.is_some() && r.method == Method::Automated && r.outcome != Outcome::Skip
        })
    }

    /// Diagnostic lines in the SCS convention: `ERROR:` per FAIL and `WARNING:` per ABORT of a
    /// mandatory testcase, `WARNING:` per FAIL of any other class (named), `INFO:` otherwise.
    fn scs_stderr(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "INFO: reference date {}; release data: {}",
            self.reference_date,
            self.data.describe()
        )];
        for r in &self.results {
            let scope = match (&r.module, r.method) {
                (Some(m), Method::Manual) => {
                    format!(
                        " (manual testcase of module {m}, {}; kaas check's finding is evidence for the review)",
                        r.target
                    )
                }
                (Some(m), Method::Automated) if r.target != Target::Mandatory => {
                    format!(" (module {m}, {}; not part of the certificate)", r.target)
                }
                (Some(_), Method::Automated) => String::new(),
                (None, _) => format!(
                    " ({} {}, not a testcase of the scope)",
                    r.target, r.standard
                ),
            };
            match (r.outcome, r.counts_for_certificate()) {
                (Outcome::Fail, true) => lines.push(format!("ERROR: {}: {}", r.id, r.summary)),
                (Outcome::Abort, true) => lines.push(format!("WARNING: {}: {}", r.id, r.summary)),
                (Outcome::Fail, false) => {
                    lines.push(format!("WARNING: {}{scope}: FAIL: {}", r.id, r.summary))
                }
                (Outcome::Skip, _) => {
                    lines.push(format!("INFO: {}{scope} skipped: {}", r.id, r.summary))
                }
                (o, false) => lines.push(format!("INFO: {}{scope}: {o}: {}", r.id, r.summary)),
                (Outcome::Pass, true) => {}
            }
        }
        lines
    }

    /// The SCS report YAML: `spec`, `checked_at`, `reference_date`, `subject`, `run` with one
    /// invocation whose `results` map testcase ids to 1 (PASS), -1 (FAIL), 0 (ABORT); skipped
    /// testcases are absent (SCS then calls the verdict tentative). `counts` counts the
    /// `critical`/`error`/`warning`/`info` lines of `stderr` as the SCS runner does.
    pub fn scs_yaml(&self) -> String {
        let s = |x: &str| Value::String(x.to_string());
        let mut spec = Mapping::new();
        spec.insert(s("uuid"), s(SCS_SCOPE_UUID));
        spec.insert(s("name"), s(SCS_SCOPE_NAME));
        spec.insert(s("url"), s(SCS_SCOPE_URL));

        let mut results = Mapping::new();
        for r in self.scs_results() {
            if let Some(v) = r.outcome.scs_value() {
                results.insert(s(&r.id), Value::Number(v.into()));
            }
        }
        let stderr = self.scs_stderr();
        let count = |prefix: &str| {
            Value::Number((stderr.iter().filter(|l| l.starts_with(prefix)).count() as u64).into())
        };
        let mut counts = Mapping::new();
        counts.insert(s("critical"), count("CRITICAL:"));
        counts.insert(s("error"), count("ERROR:"));
        counts.insert(s("warning"), count("WARNING:"));
        counts.insert(s("info"), count("INFO:"));
        let lines = |text: String| {
            Value::Sequence(text.lines().map(|l| Value::String(l.to_string())).collect())
        };
        let mut inv = Mapping::new();
        inv.insert(s("id"), s(&self.invocation_uuid));
        inv.insert(s("cmd"), s(&self.argv.join(" ")));
        inv.insert(s("results"), Value::Mapping(results));
        inv.insert(s("rc"), Value::Number(u64::from(self.exit_code()).into()));
        inv.insert(s("stdout"), lines(self.scs_lines()));
        inv.insert(s("stderr"), lines(stderr.join("\n")));
        inv.insert(s("counts"), Value::Mapping(counts));
        let mut invocations = Mapping::new();
        invocations.insert(s(&self.invocation_uuid), Value::Mapping(inv));

        let mut run = Mapping::new();
        run.insert(s("uuid"), s(&self.run_uuid));
        run.insert(
            s("argv"),
            Value::Sequence(self.argv.iter().map(|a| s(a)).collect()),
        );
        let mut assignment = Mapping::new();
        assignment.insert(s("subject"), s(&self.subject));
        run.insert(s("assignment"), Value::Mapping(assignment));
        run.insert(s("sections"), Value::Null);
        run.insert(s("invocations"), Value::Mapping(invocations));

        let mut root = Mapping::new();
        root.insert(s("spec"), Value::Mapping(spec));
        root.insert(s("checked_at"), s(&rfc3339_secs(self.checked_at)));
        root.insert(s("reference_date"), s(&self.reference_date.to_string()));
        root.insert(s("subject"), s(&self.subject));
        root.insert(s("run"), Value::Mapping(run));
        serde_yaml::to_string(&Value::Mapping(root)).expect("report serialises")
    }

    /// The whole report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// JUnit XML: one testcase per result; FAIL as `<failure>`, ABORT as `<error>`, SKIP as
    /// `<skipped>`; details and remediation in the element text.
    pub fn junit(&self) -> String {
        let c = self.counts();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let _ = writeln!(
            x,
            "<testsuites name=\"kaas-check\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
            self.results.len(),
            c.fail,
            c.abort,
            c.skip,
            secs(self.duration_ms)
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
            xml_escape(&format!("kaas-check {}", self.subject)),
            self.results.len(),
            c.fail,
            c.abort,
            c.skip,
            secs(self.duration_ms),
            rfc3339_secs(self.checked_at)
        );
        x.push_str("    <properties>\n");
        for (k, v) in [
            ("subject", self.subject.clone()),
            ("reference_date", self.reference_date.to_string()),
            (
                "kubernetes_version",
                self.kubernetes_version.clone().unwrap_or_default(),
            ),
            ("release_data", self.data.source.clone()),
            ("releases_as_of", self.data.releases_as_of.to_string()),
            ("cves_as_of", self.data.cves_as_of.to_string()),
            ("release_data_age_days", self.data.age_days.to_string()),
        ] {
            let _ = writeln!(
                x,
                "      <property name=\"{k}\" value=\"{}\"/>",
                xml_escape(&v)
            );
        }
        x.push_str("    </properties>\n");
        for r in &self.results {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
                xml_escape(&r.standard),
                xml_escape(&r.id),
                secs(r.duration_ms)
            );
            let body = {
                let mut b = r.details.join("\n");
                if let Some(rem) = &r.remediation {
                    if !b.is_empty() {
                        b.push('\n');
                    }
                    b.push_str("remediation: ");
                    b.push_str(rem);
                }
                b
            };
            let body = format!(
                "scope: {}{}\n{body}",
                r.class(),
                r.module
                    .as_deref()
                    .map(|m| format!(" (module {m})"))
                    .unwrap_or_default()
            );
            // Results that do not decide the certificate are never JUnit failures or errors.
            let tag = match (r.outcome, r.counts_for_certificate()) {
                (Outcome::Pass, _) => None,
                (Outcome::Fail, true) => Some("failure"),
                (Outcome::Abort, true) => Some("error"),
                (Outcome::Skip, _) => Some("skipped"),
                (_, false) => None,
            };
            match tag {
                None => {
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml_escape(&body)
                    );
                }
                Some(tag) => {
                    let _ = writeln!(
                        x,
                        ">\n      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>\n    </testcase>",
                        xml_escape(&r.summary),
                        r.outcome,
                        xml_escape(&body)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }

    /// A table for people, then a remediation hint per FAIL and ABORT.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "kaas check: {}", self.subject);
        let _ = writeln!(
            out,
            "Kubernetes {} · reference date {} · checked at {}",
            self.kubernetes_version.as_deref().unwrap_or("(unknown)"),
            self.reference_date,
            rfc3339_secs(self.checked_at)
        );
        let _ = writeln!(out, "Release data: {}", self.data.describe());
        let _ = writeln!(
            out,
            "Scope: {SCS_SCOPE_NAME} v1 ({SCS_SCOPE_UUID}); only mandatory testcases decide the certificate (WARN/INFO: a FAIL/ABORT of another class)"
        );
        out.push('\n');
        let width = |f: &dyn Fn(&TestResult) -> usize, min: usize| {
            self.results.iter().map(f).max().unwrap_or(min).max(min)
        };
        let w_id = width(&|r| r.id.len(), 8);
        let w_std = width(&|r| r.standard.len(), 8);
        let w_class = width(&|r| r.class().len(), 5);
        let _ = writeln!(
            out,
            "{:<6} {:<w_id$} {:<w_std$} {:<w_class$} SUMMARY",
            "RESULT", "TESTCASE", "STANDARD", "CLASS"
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "{:<6} {:<w_id$} {:<w_std$} {:<w_class$} {}",
                r.verdict(),
                r.id,
                r.standard,
                r.class(),
                r.summary
            );
        }
        let c = self.certificate_counts();
        let all = self.counts();
        let _ = writeln!(
            out,
            "\ncertificate (mandatory): {} PASS, {} FAIL, {} ABORT, {} SKIP; all testcases: {} PASS, {} FAIL, {} ABORT, {} SKIP (exit code {}) in {:.1} s",
            c.pass,
            c.fail,
            c.abort,
            c.skip,
            all.pass,
            all.fail,
            all.abort,
            all.skip,
            self.exit_code(),
            self.duration_ms as f64 / 1000.0
        );
        let todo: Vec<_> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Abort))
            .collect();
        if !todo.is_empty() {
            out.push_str("\nWhat to do:\n");
            for r in todo {
                let _ = writeln!(
                    out,
                    "\n{} {} ({}): {}",
                    r.verdict(),
                    r.id,
                    r.class(),
                    r.summary
                );
                for d in &r.details {
                    let _ = writeln!(out, "    - {d}");
                }
                if let Some(rem) = &r.remediation {
                    let _ = writeln!(out, "    → {rem}");
                }
            }
        }
        out
    }
}

/// Escapes text for XML attributes and element content.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `2026-05-20T10:11:12Z`: RFC 3339 in UTC, whole seconds (the reports' `checked_at`).
pub fn rfc3339_secs(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `checked_at` in JSON: RFC 3339 in UTC with as many fractional digits as needed in groups of
/// three (none, milliseconds, microseconds or nanoseconds), as reports have always been written;
/// any RFC 3339 time is read.
mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let ns = t.subsec_nanosecond();
        let fmt = if ns == 0 {
            "%Y-%m-%dT%H:%M:%SZ"
        } else if ns % 1_000_000 == 0 {
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        } else if ns % 1_000 == 0 {
            "%Y-%m-%dT%H:%M:%S%.6fZ"
        } else {
            "%Y-%m-%dT%H:%M:%S%.9fZ"
        };
        s.collect_str(&t.strftime(fmt))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, outcome: Outcome) -> TestResult {
        TestResult {
            id: id.into(),
            standard: "scs-0000-v1".into(),
            scs_testcase: true,
            module: Some("scs-0000-v1".into()),
            target: Target::Mandatory,
            method: Method::Automated,
            reason: None,
            title: "t".into(),
            kind: CheckKind::Static,
            outcome,
            summary: format!("{id} <&> \"x\""),
            details: vec!["d1".into()],
            remediation: Some("fix it".into()),
            duration_ms: 1500,
        }
    }

    fn report(outcomes: &[Outcome]) -> Report {
        Report {
            subject: "demo".into(),
            checked_at: "2026-05-20T10:00:00Z".parse().unwrap(),
            reference_date: jiff::civil::date(2026, 5, 20),
            kubernetes_version: Some("v1.35.5".into()),
            data: DataInfo {
                source: "bundled".into(),
                releases_as_of: jiff::civil::date(2026, 5, 13),
                cves_as_of: jiff::civil::date(2026, 3, 19),
                refresh_requested: false,
                refresh_error: None,
                age_days: 7,
                cves_age_days: 62,
            },
            argv: vec!["kaas".into(), "check".into()],
            run_uuid: "run-uuid".into(),
            invocation_uuid: "inv-uuid".into(),
            duration_ms: 4000,
            results: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| result(&format!("t{i}"), *o))
                .collect(),
        }
    }

    #[test]
    fn exit_codes() {
        use Outcome::*;
        assert_eq!(report(&[Pass, Pass, Skip]).exit_code(), 0);
        assert_eq!(report(&[Pass, Fail, Abort]).exit_code(), 1);
        assert_eq!(report(&[Pass, Abort]).exit_code(), 2);
        assert_eq!(report(&[Skip]).exit_code(), 2);
        assert_eq!(report(&[]).exit_code(), 2);
    }

    #[test]
    fn scs_renderings() {
        use Outcome::*;
        let r = report(&[Pass, Fail, Abort, Skip]);
        assert_eq!(r.scs_lines(), "t0: PASS\nt1: FAIL\nt2: ABORT\n");
        let y: serde_yaml::Value = serde_yaml::from_str(&r.scs_yaml()).unwrap();
        assert_eq!(y["spec"]["uuid"].as_str(), Some(SCS_SCOPE_UUID));
        assert_eq!(y["reference_date"].as_str(), Some("2026-05-20"));
        assert_eq!(y["checked_at"].as_str(), Some("2026-05-20T10:00:00Z"));
        assert_eq!(y["subject"].as_str(), Some("demo"));
        let inv = &y["run"]["invocations"]["inv-uuid"];
        assert_eq!(inv["id"].as_str(), Some("inv-uuid"));
        assert_eq!(inv["cmd"].as_str(), Some("kaas check"));
        assert_eq!(inv["rc"].as_u64(), Some(1));
        assert_eq!(inv["results"]["t0"].as_i64(), Some(1));
        assert_eq!(inv["results"]["t1"].as_i64(), Some(-1));
        assert_eq!(inv["results"]["t2"].as_i64(), Some(0));
        assert!(
            inv["results"].get("t3").is_none(),
            "SKIP is a missing result"
        );
        assert_eq!(inv["stdout"][1].as_str(), Some("t1: FAIL"));
        assert_eq!(inv["counts"]["error"].as_u64(), Some(1));
        assert_eq!(inv["counts"]["warning"].as_u64(), Some(1));
        assert_eq!(y["run"]["argv"][1].as_str(), Some("check"));
    }

    #[test]
    fn junit_json_table() {
        use Outcome::*;
        let r = report(&[Pass, Fail, Abort, Skip]);
        let x = r.junit();
        assert!(x.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""));
        assert!(x.contains("<failure message=\"t1 &lt;&amp;&gt; &quot;x&quot;\" type=\"FAIL\">"));
        assert!(x.contains("<error message="));
        assert!(x.contains("<skipped message="));
        assert!(x.contains("remediation: fix it"));
        let back: Report = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(back, r);
        let t = r.table();
        assert!(t.contains("FAIL   t1"));
        assert!(t.contains("→ fix it"));
        assert!(t.contains("exit code 1"));
        assert!(t.contains("releases as of 2026-05-13, 7 days old"));
    }

    #[test]
    fn only_mandatory_automated_testcases_decide() {
        use Outcome::*;
        let mut r = report(&[Pass, Fail, Abort, Fail]);
        // t1: preview, manual; t2: draft; t3: outside the scope.
        r.results[1].module = Some("scs-0214-v2-manual".into());
        r.results[1].target = Target::Preview;
        r.results[1].method = Method::Manual;
        r.results[2].module = None;
        r.results[2].target = Target::Draft;
        r.results[3].module = None;
        r.results[3].target = Target::Outside;
        assert_eq!(r.exit_code(), 0, "only t0 counts, and it passed");
        assert_eq!(r.certificate_counts().pass, 1);
        assert_eq!(r.results[1].verdict(), "WARN");
        assert_eq!(r.results[2].verdict(), "INFO");
        assert_eq!(
            r.scs_lines(),
            "t0: PASS\n",
            "manual and out-of-scope results are not SCS results"
        );
        let y: serde_yaml::Value = serde_yaml::from_str(&r.scs_yaml()).unwrap();
        let inv = &y["run"]["invocations"]["inv-uuid"];
        assert!(inv["results"].get("t1").is_none());
        assert_eq!(inv["counts"]["error"].as_u64(), Some(0));
        assert!(inv["stderr"].as_sequence().unwrap().iter().any(|l| {
            l.as_str()
                .unwrap()
                .starts_with("WARNING: t1 (manual testcase of module scs-0214-v2-manual, preview")
        }));
        let x = r.junit();
        assert!(!x.contains("<failure"), "{x}");
        let t = r.table();
        assert!(t.contains("WARN   t1"), "{t}");
        assert!(t.contains("preview, manual"), "{t}");
        // A mandatory FAIL decides; a failed refresh that was asked for is never exit code 0.
        r.results[0].outcome = Fail;
        assert_eq!(r.exit_code(), 1);
        r.results[0].outcome = Pass;
        r.data.refresh_error = Some("offline".into());
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn checked_at_is_written_with_digits_in_groups_of_three() {
        for (t, json) in [
            ("2026-05-20T10:00:00Z", "2026-05-20T10:00:00Z"),
            ("2026-05-20T10:00:00.12Z", "2026-05-20T10:00:00.120Z"),
            ("2026-05-20T10:00:00.1234Z", "2026-05-20T10:00:00.123400Z"),
            (
                "2026-05-20T10:00:00.1234567Z",
                "2026-05-20T10:00:00.123456700Z",
            ),
            ("2026-05-20T12:00:00.5+02:00", "2026-05-20T10:00:00.500Z"),
        ] {
            let mut r = report(&[]);
            r.checked_at = t.parse().unwrap();
            let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
            assert_eq!(v["checked_at"], json, "{t}");
            assert_eq!(serde_json::from_str::<Report>(&r.json()).unwrap(), r);
            assert!(r.table().contains("checked at 2026-05-20T10:00:00Z"), "{t}");
        }
    }
}
