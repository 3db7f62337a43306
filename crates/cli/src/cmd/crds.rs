//! `kaas crds`: print every CRD of the SCS-API.

use anyhow::Result;

use crate::OutputFormat;

/// Prints the CRDs as YAML (multi-document) or as a JSON list.
pub fn run(output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&kaas_api::crds())?),
        _ => print!("{}", kaas_api::crds_yaml()),
    }
    Ok(())
}
