//! `kaas validate`: the admission layer (schema + CEL from the CRDs) for every document, and for
//! each `Cluster` the offering of the provider the operator would choose among the given ones
//! ([`kaas_validate::admission::admit`]).

use std::path::PathBuf;

use anyhow::Result;
use kaas_api::Provider;
use kaas_validate::admission::{self, Providers, Stage};
use kaas_validate::schema::{admit, crd_schema};
use kaas_validate::{ErrorKind, FieldError};
use kube::CustomResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::OutputFormat;
use crate::docs::{self, Doc};

/// Result for one document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// File.
    pub file: String,
    /// Document index in the file.
    pub document: usize,
    /// Kind.
    pub kind: String,
    /// `namespace/name`.
    pub name: String,
    /// No errors.
    pub valid: bool,
    /// Errors with field paths.
    pub errors: Vec<FieldError>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// What was checked: `schema`, `offering`.
    pub checked: Vec<&'static str>,
    /// Provider the cluster was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Validates the documents of `files`; `providers` are extra files with `Provider` objects.
/// Returns whether everything is valid.
pub fn run(files: &[PathBuf], providers: &[PathBuf], output: OutputFormat) -> Result<bool> {
    let docs = docs::read(files)?;
    let provider_docs = docs::read(providers)?;
    let reports = check(&docs, &provider_docs);
    let valid = reports.iter().all(|r| r.valid);
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        _ => print_text(&reports),
    }
    Ok(valid)
}

fn print_text(reports: &[Report]) {
    for r in reports {
        let what = format!("{}: {} {}", r.file, r.kind, r.name);
        for w in &r.warnings {
            eprintln!("{what}: warning: {w}");
        }
        if r.valid {
            let against = r
                .provider
                .as_ref()
                .map(|p| format!(" against provider {p:?}"))
                .unwrap_or_default();
            println!("{what}: valid ({}{against})", r.checked.join(" + "));
        } else {
            for e in &r.errors {
                eprintln!("{what}: {e}");
            }
        }
    }
}

/// Checks documents; `extra_providers` only provide offerings (they are checked too).
pub fn check(docs: &[Doc], extra_providers: &[Doc]) -> Vec<Report> {
    let provider_schema = crd_schema(&Provider::crd());
    let mut providers: Vec<Provider> = Vec::new();
    let mut reports = Vec::new();
    // Providers first, so clusters in the same file can be checked against them.
    let all: Vec<&Doc> = extra_providers.iter().chain(docs.iter()).collect();
    let (provs, others): (Vec<&Doc>, Vec<&Doc>) =
        all.into_iter().partition(|d| d.kind() == "Provider");
    for d in provs {
        let mut r = report(d);
        admit_doc(d, &provider_schema, &mut r);
        if r.valid {
            match serde_json::from_value::<Provider>(d.value.clone().unwrap_or_default()) {
                Ok(p) => providers.push(p),
                Err(e) => fail(
                    &mut r,
                    FieldError::new(ErrorKind::Invalid, "", e.to_string()),
                ),
            }
        }
        reports.push(r);
    }
    for d in others {
        let mut r = report(d);
        match d.kind() {
            "Cluster" => cluster(d, &providers, &mut r),
            _ if d.value.is_err() => {}
            other => fail(
                &mut r,
                FieldError::new(
                    ErrorKind::NotSupported,
                    "kind",
                    format!("{other:?} is not an SCS-API kind")
                        .trim()
                        .to_string(),
                )
                .allowed(["Cluster", "Provider"]),
            ),
        }
        reports.push(r);
    }
    reports.sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
    reports
}

fn report(d: &Doc) -> Report {
    let mut r = Report {
        file: d.file.display().to_string(),
        document: d.index,
        kind: d.kind().to_string(),
        name: d.name(),
        valid: true,
        errors: Vec::new(),
        warnings: Vec::new(),
        checked: Vec::new(),
        provider: None,
    };
    if let Err(e) = &d.value {
        fail(&mut r, FieldError::new(ErrorKind::Invalid, "", e.clone()));
    }
    r
}

fn fail(r: &mut Report, e: FieldError) {
    r.valid = false;
    r.errors.push(e);
}

fn admit_doc(d: &Doc, schema: &Value, r: &mut Report) {
    let Ok(v) = &d.value else { return };
    if !api_version(v, r) {
        return;
    }
    r.checked.push("schema");
    for e in admit(schema, v, None).0 {
        fail(r, e);
    }
}

/// Whether the document is of the SCS-API version kaas serves (an error when not).
fn api_version(v: &Value, r: &mut Report) -> bool {
    let want = format!("{}/{}", kaas_api::GROUP, kaas_api::VERSION);
    if v.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return true;
    }
    fail(
        r,
        FieldError::new(
            ErrorKind::NotSupported,
            "apiVersion",
            "unsupported apiVersion",
        )
        .allowed([want]),
    );
    false
}

/// A `Cluster` through the admission the API server, the REST API, GitSource and the operator
/// apply ([`admission::admit`]): schema + CEL, then the provider the operator would choose among
/// the given ones, and its offering. Without any `--provider`, the schema only.
fn cluster(d: &Doc, providers: &[Provider], r: &mut Report) {
    let Ok(v) = &d.value else { return };
    if !api_version(v, r) {
        return;
    }
    r.checked.push("schema");
    let visible = if providers.is_empty() {
        Providers::Unreadable
    } else {
        Providers::All(providers)
    };
    match admission::admit(v, None, visible) {
        Ok(a) => match (a.provider, a.resolved) {
            (Some(p), Some(resolved)) => {
                r.checked.push("offering");
                r.provider = p.metadata.name;
                r.warnings.extend(resolved.warnings);
            }
            _ => r
                .warnings
                .push("no Provider given (--provider): checked against the CRD only".into()),
        },
        Err(rejected) => {
            if rejected.stage == Stage::Offering {
                r.checked.push("offering");
                r.provider = rejected.provider;
            }
            for e in rejected.errors.0 {
                fail(r, e);
            }
        }
    }
}
