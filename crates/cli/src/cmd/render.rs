//! `kaas render`: the Cluster API objects kaas would write for a cluster at a provider.

use std::path::PathBuf;

use anyhow::{Result, bail};
use kaas_api::{Cluster, Provider};

use crate::OutputFormat;
use crate::cmd::validate;
use crate::docs;

/// Validates, then prints the rendered objects. Returns false when validation failed.
pub fn run(files: &[PathBuf], providers: &[PathBuf], output: OutputFormat) -> Result<bool> {
    let docs = docs::read(files)?;
    let provider_docs = docs::read(providers)?;
    let reports = validate::check(&docs, &provider_docs);
    let mut ok = true;
    for r in reports.iter().filter(|r| !r.valid) {
        for e in &r.errors {
            eprintln!("{}: {} {}: {e}", r.file, r.kind, r.name);
        }
        ok = false;
    }
    if !ok {
        return Ok(false);
    }
    let providers: Vec<Provider> = provider_docs
        .iter()
        .chain(docs.iter())
        .filter(|d| d.kind() == "Provider")
        .filter_map(|d| d.value.clone().ok())
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()?;
    let mut objects = Vec::new();
    for (d, r) in docs
        .iter()
        .zip(reports.iter())
        .filter(|(d, _)| d.kind() == "Cluster")
    {
        let cluster: Cluster = serde_json::from_value(d.value.clone().unwrap_or_default())?;
        let Some(provider) = providers.iter().find(|p| p.metadata.name == r.provider) else {
            bail!(
                "{}: Cluster {}: no Provider to render for (pass --provider FILE)",
                r.file,
                r.name
            );
        };
        for w in &r.warnings {
            eprintln!("{}: Cluster {}: warning: {w}", r.file, r.name);
        }
        let resolved =
            kaas_validate::validate(&cluster, provider).map_err(|e| anyhow::anyhow!("{e}"))?;
        let rendered = kaas_render::render(&cluster, &resolved)?;
        objects.extend(rendered.objects());
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&objects)?),
        _ => {
            let docs: Vec<String> = objects
                .iter()
                .map(serde_yaml::to_string)
                .collect::<Result<_, _>>()?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(true)
}
