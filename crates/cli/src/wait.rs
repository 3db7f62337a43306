//! Waiting for a cluster's condition with progress output (each change of phase or of the
//! condition that keeps it from being Ready is printed once).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kaas_api::Cluster;
use kaas_api::conditions as c;
use kube::Api;

/// Waits until `name` is Ready, printing progress to stderr.
pub async fn ready(api: &Api<Cluster>, name: &str, timeout: Duration) -> Result<Cluster> {
    condition(api, name, c::READY, timeout).await
}

/// Waits until the condition `type_` of `name` is True.
pub async fn condition(
    api: &Api<Cluster>,
    name: &str,
    type_: &str,
    timeout: Duration,
) -> Result<Cluster> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let cluster = api.get(name).await?;
        let status = cluster.status.clone().unwrap_or_default();
        let current = c::get(&status.conditions, type_);
        if current.is_some_and(|x| x.status == "True")
            && status.observed_generation == cluster.metadata.generation
        {
            eprintln!(
                "    [{:>4.0}s] {name}: {type_}",
                start.elapsed().as_secs_f64()
            );
            return Ok(cluster);
        }
        let line = match current {
            Some(x) => format!(
                "{} — {}: {}",
                status.phase.map(|p| p.to_string()).unwrap_or_default(),
                x.reason,
                x.message
            ),
            None => "waiting for the operator".to_string(),
        };
        if line != last {
            eprintln!(
                "    [{:>4.0}s] {name}: {line}",
                start.elapsed().as_secs_f64()
            );
            last = line;
        }
        if start.elapsed() > timeout {
            bail!(
                "{name} not {type_} after {} s; last: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
