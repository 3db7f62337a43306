//! `kaas serve`: the REST API and web GUI for the provider's customers (see `kaas-server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Flags of `kaas serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8443", env = "KAAS_SERVE_LISTEN")]
    pub listen: SocketAddr,
    /// Kubeconfig naming the management cluster; only its server address and CA are used,
    /// never its credentials (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, conflicts_with = "server")]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the management cluster's API server, instead of a kubeconfig (e.g.
    /// `https://kubernetes.default.svc` in a pod that mounts no service account token).
    #[arg(
        long,
        requires = "certificate_authority",
        env = "KAAS_SERVE_API_SERVER"
    )]
    pub server: Option<String>,
    /// CA bundle (PEM) of --server.
    #[arg(long, env = "KAAS_SERVE_CA_FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Serving certificate (PEM); with --tls-key the server speaks HTTPS.
    #[arg(long, requires = "tls_key", env = "KAAS_SERVE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Key of the serving certificate (PEM).
    #[arg(long, requires = "tls_cert", env = "KAAS_SERVE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long)]
    pub behind_tls_proxy: bool,
    /// Lifetime of a GUI session in hours.
    #[arg(long, default_value_t = 8)]
    pub session_hours: u64,
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<()> {
    let cfg = match (&args.kubeconfig, &args.server, &args.certificate_authority) {
        (Some(path), _, _) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        (None, Some(server), Some(ca)) => {
            let url: http::Uri = server
                .parse()
                .with_context(|| format!("--server {server:?} is not a URL"))?;
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let mut cfg = kube::Config::new(url);
            cfg.root_cert = Some(pem_certificates(&pem)?);
            cfg
        }
        _ => kube::Config::infer()
            .await
            .context("finding the management cluster (kubeconfig or in-cluster)")?,
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(kaas_server::TlsFiles { cert, key }),
        _ => None,
    };
    let loopback = args.listen.ip().is_loopback();
    if tls.is_none() && !loopback && !args.behind_tls_proxy {
        bail!(
            "refusing to serve plain HTTP on {}: give --tls-cert/--tls-key, listen on loopback, or say --behind-tls-proxy",
            args.listen
        );
    }
    let mut settings = kaas_server::Settings::from_kube_config(cfg);
    // Browsers send `Secure` cookies only over HTTPS (and to localhost); plain HTTP on loopback
    // is for local use.
    settings.secure_cookies = tls.is_some() || !loopback;
    settings.session_ttl = Duration::from_secs(args.session_hours.max(1) * 3600);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %listener.local_addr()?, "serving the kaas API and GUI");
    eprintln!(
        "kaas serve: GUI {scheme}://{0}/ui/  API {scheme}://{0}/api/v1  OpenAPI {scheme}://{0}/api/v1/openapi.json",
        listener.local_addr()?
    );
    let state = kaas_server::AppState::new(settings);
    kaas_server::serve(listener, state, tls, shutdown()).await
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).context("the CA file is not PEM text")?;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (line, &mut body) {
            ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                out.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(b.as_bytes())
                        .context("a certificate in the CA file is not base64")?,
                );
                body = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    if out.is_empty() {
        bail!("the CA file holds no certificate");
    }
    Ok(out)
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
