//! A small OpenID Connect issuer for tests: serves its discovery document and its signing keys
//! over HTTPS on 127.0.0.1 (certificate from its own CA, given to the API server as the issuer's
//! `certificateAuthority`) and signs ID tokens (ES256) with whatever claims a test asks for —
//! a real issuer for a real kube-apiserver to fetch keys from and verify tokens against.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let issuer = kaas_harness::oidc::TestIssuer::start().await?;
//! let token = issuer.id_token("kaas", "alice", &["dev"], std::time::Duration::from_secs(600))?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::certs::Pki;

/// The key id of the issuer's signing key in its JWKS.
const KID: &str = "kaas-test-1";

/// A running test issuer; stops when dropped.
pub struct TestIssuer {
    url: String,
    ca_pem: String,
    key: EcdsaKeyPair,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn new_key() -> Result<EcdsaKeyPair> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow!("generating an ECDSA key"))?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("loading the ECDSA key"))
}

fn jwk(key: &EcdsaKeyPair) -> Value {
    // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
    let p = key.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
        "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65]),
    })
}

fn sign(key: &EcdsaKeyPair, claims: &Value) -> Result<String> {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(&header)?),
        B64.encode(serde_json::to_vec(claims)?)
    );
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|_| anyhow!("signing a token"))?;
    Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TestIssuer {
    /// Starts an issuer on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let pki = Pki::generate()?;
        let serving = pki.serving_cert("kaas-test-issuer", &[])?;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .context("parsing the issuer's certificate")?;
        let private = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
            .context("parsing the issuer's key")?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, private)?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let key = new_key()?;
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/keys"),
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        })
        .to_string();
        let jwks = json!({"keys": [jwk(&key)]}).to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, discovery, jwks, counter) = (
                    acceptor.clone(),
                    discovery.clone(),
                    jwks.clone(),
                    counter.clone(),
                );
                tokio::spawn(async move {
                    let serve = async {
                        let mut s = acceptor.accept(tcp).await.ok()?;
                        let mut buf = Vec::with_capacity(1024);
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                            let n = s.read(&mut chunk).await.ok()?;
                            if n == 0 {
                                return None;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        let line = String::from_utf8_lossy(&buf);
                        let path = line.split_whitespace().nth(1).unwrap_or("/");
                        let (status, body) = match path {
                            "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                            "/keys" => ("200 OK", jwks.as_str()),
                            _ => ("404 Not Found", "{}"),
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        s.write_all(resp.as_bytes()).await.ok()?;
                        s.shutdown().await.ok()
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(10), serve).await;
                });
            }
        });
        Ok(Self {
            url,
            ca_pem: pki.ca_pem().to_string(),
            key,
            requests,
            task,
        })
    }

    /// The issuer URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate (PEM) the issuer's serving certificate is signed by.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// How many HTTP requests the issuer has answered (discovery and keys).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// A token with exactly these claims, signed with the issuer's key.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        sign(&self.key, claims)
    }

    /// A token with these claims signed with a key the issuer does not publish (a forgery).
    pub fn sign_with_unknown_key(&self, claims: &Value) -> Result<String> {
        sign(&new_key()?, claims)
    }

    /// The claims of an ID token for `audience` and user `name` (`sub` and
    /// `preferred_username`) in `groups`, valid from now for `lifetime`.
    pub fn claims(&self, audience: &str, name: &str, groups: &[&str], lifetime: Duration) -> Value {
        let now = now();
        json!({
            "iss": self.url, "aud": audience, "sub": name, "preferred_username": name,
            "groups": groups, "iat": now, "nbf": now, "exp": now + lifetime.as_secs(),
        })
    }

    /// An ID token for `audience` and user `name` in `groups`, valid for `lifetime`.
    pub fn id_token(
        &self,
        audience: &str,
        name: &str,
        groups: &[&str],
        lifetime: Duration,
    ) -> Result<String> {
        self.sign(&self.claims(audience, name, groups, lifetime))
    }
}
