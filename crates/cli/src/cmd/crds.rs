//! `kaas crds`: print every CRD of the SCS-API.

use anyhow::Result;

use crate::OutputFormat;

/// Prints the CRDs (and, as YAML, the deletion-protection admission policy) or a JSON list of CRDs.
pub fn run(output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&kaas_api::crds())?),
        _ => print!(
            "{}---\n{}",
            kaas_api::crds_yaml(),
            kaas_api::policy::policies_yaml()
        ),
    }
    Ok(())
}
