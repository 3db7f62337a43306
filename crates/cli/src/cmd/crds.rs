//! `kaas crds`: print every CRD of the SCS-API.

use anyhow::Result;

use crate::OutputFormat;

/// Prints the CRDs (and, as YAML, the validating admission policies, and with `finalizer_policy`
/// the mutating one that sets kaas' finalizer at creation) or a JSON list of CRDs.
///
/// The mutating policy is left out by default: it is served from Kubernetes 1.36 on (`kubectl
/// apply` of it fails before), and it belongs only where one operator instance handles every
/// provider — a Cluster that no instance handles would keep the finalizer, and could not be deleted.
pub fn run(output: OutputFormat, finalizer_policy: bool) -> Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&kaas_api::crds())?),
        _ => {
            print!(
                "{}---\n{}",
                kaas_api::crds_yaml(),
                kaas_api::policy::policies_yaml()
            );
            if finalizer_policy {
                print!("---\n{}", kaas_api::policy::finalizer_at_creation_yaml());
            }
        }
    }
    Ok(())
}
