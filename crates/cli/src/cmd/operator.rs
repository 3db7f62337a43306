//! `kaas operator`: runs the controllers against the cluster of the current kubeconfig.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use kaas_operator::leader::LeaseConfig;

/// Flags of `kaas operator`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Handle only clusters of these providers (comma-separated); empty: all. Run one instance
    /// per set to shard the work.
    #[arg(long, value_delimiter = ',', env = "KAAS_PROVIDERS")]
    pub providers: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "KAAS_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader with a Lease so replicas never both write.
    #[arg(long, default_value_t = false, env = "KAAS_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, default_value = "kaas-system", env = "POD_NAMESPACE")]
    pub lease_namespace: String,
    /// Clusters reconciled in parallel.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// The ConfigMap (NAMESPACE/NAME) with current Kubernetes release and CVE data for the
    /// compliance checks, key `kubernetes-releases.yaml` (docs/compliance.md); default
    /// `kaas-release-data` in the operator's namespace; `none`: the bundled data only. A missing,
    /// invalid or older ConfigMap falls back to the bundled data, and the status says so.
    #[arg(long, env = "KAAS_RELEASE_DATA_CONFIGMAP")]
    pub release_data_configmap: Option<String>,
}

/// Runs until SIGTERM/SIGINT or loss of leadership.
pub async fn run(args: Args) -> Result<()> {
    let mut config = kube::Config::infer()
        .await
        .context("reading the kubeconfig of the management cluster")?;
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    // Which replica wrote what shows in the API server's audit log.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&user_agent(&identity))
            .context("the replica's identity (POD_NAME) is not a valid header value")?,
    ));
    // With leader election every write passes the lease's fence (kaas_operator::leader): a
    // replica stopped past its lease and resumed writes nothing before it has stepped down.
    let fence = kaas_operator::leader::Fence::default();
    let builder = kube::client::ClientBuilder::try_from(config)
        .context("connecting to the management cluster")?;
    let client = if args.leader_elect {
        builder.with_layer(&fence.layer()).build()
    } else {
        builder.build()
    };
    let providers: BTreeSet<String> = args
        .providers
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let lease = args.leader_elect.then(|| LeaseConfig {
        namespace: args.lease_namespace.clone(),
        // One lease per shard, so shards do not contend.
        name: if providers.is_empty() {
            "kaas-operator".into()
        } else {
            kaas_render::names::label(
                &[
                    "kaas-operator",
                    &providers.iter().cloned().collect::<Vec<_>>().join("-"),
                ],
                63,
            )
        },
        identity,
        fence,
        duration: Duration::from_secs(15),
    });
    let release_data = match args.release_data_configmap.as_deref() {
        Some("none") => None,
        Some(s) => Some(s.parse().map_err(anyhow::Error::msg)?),
        None => Some(kaas_operator::compliance::ReleaseDataSource {
            namespace: args.lease_namespace.clone(),
            name: kaas_operator::compliance::RELEASE_DATA_CONFIGMAP.into(),
        }),
    };
    kaas_operator::run(
        client,
        kaas_operator::Config {
            providers,
            metrics_addr: Some(args.metrics_addr),
            lease,
            concurrency: args.concurrency,
            release_data,
            settled_requeue: None,
        },
    )
    .await
}

/// `kaas-operator/<version> (<identity>)`: the User-Agent of every request of this replica.
pub fn user_agent(identity: &str) -> String {
    format!("kaas-operator/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kaas".into())
}
