//! A small S3 client for the backup store: AWS Signature Version 4 by hand (ring's HMAC-SHA256
//! and SHA-256), path-style URLs, reqwest. Just what backups need: presigned PUT/GET URLs for
//! the runtime (one object, minutes), listing, getting, putting and deleting objects.
//! The secret key never leaves this struct (its `Debug` leaves it out).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::jiff::Timestamp;
use ring::{digest, hmac};

/// Payload hash of presigned requests.
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// One bucket of an S3-compatible store.
#[derive(Clone)]
pub struct Bucket {
    /// `http(s)://host[:port]`, no trailing slash.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Signing region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request signed with SigV4: URL and headers to send.
#[derive(Debug)]
struct Signed {
    url: String,
    headers: Vec<(String, String)>,
}

impl Bucket {
    /// A bucket of the store at `endpoint`.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: Option<&str>,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        Bucket {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            region: region.unwrap_or("us-east-1").to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
        }
    }

    /// The Host header as the HTTP client sends it: a scheme's default port is left out (an
    /// endpoint written `https://s3.example.org:443` would otherwise be signed for another host).
    fn host(&self) -> &str {
        let (scheme, host) = self
            .endpoint
            .split_once("://")
            .unwrap_or(("https", &self.endpoint));
        match (scheme, host.rsplit_once(':')) {
            ("https", Some((h, "443"))) | ("http", Some((h, "80"))) => h,
            _ => host,
        }
    }

    fn signing_key(&self, date: &str) -> Vec<u8> {
        let k = hmac_sha256(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k = hmac_sha256(&k, self.region.as_bytes());
        let k = hmac_sha256(&k, b"s3");
        hmac_sha256(&k, b"aws4_request")
    }

    /// Signs `method` on `/<bucket>/<key>` with `query` (unencoded pairs). With `presign_for`, the
    /// signature goes into the query (a URL valid that long); else into headers.
    fn sign(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        payload: &[u8],
        presign_for: Option<Duration>,
        now: Timestamp,
    ) -> Signed {
        let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let path = if key.is_empty() {
            format!("/{}", uri_encode(&self.bucket, false))
        } else {
            format!(
                "/{}/{}",
                uri_encode(&self.bucket, false),
                uri_encode(key, true)
            )
        };
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        let (payload_hash, mut headers) = match presign_for {
            Some(ttl) => {
                q.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
                q.push((
                    "X-Amz-Credential".into(),
                    uri_encode(&format!("{}/{scope}", self.access_key), false),
                ));
                q.push(("X-Amz-Date".into(), amz_date.clone()));
                q.push(("X-Amz-Expires".into(), ttl.as_secs().to_string()));
                q.push(("X-Amz-SignedHeaders".into(), "host".into()));
                (UNSIGNED.to_string(), vec![])
            }
            None => {
                let h = sha256_hex(payload);
                (
                    h.clone(),
                    vec![
                        ("x-amz-content-sha256".to_string(), h),
                        ("x-amz-date".to_string(), amz_date.clone()),
                    ],
                )
            }
        };
        q.sort();
        let canonical_query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut signed_headers = vec![("host".to_string(), self.host().to_string())];
        signed_headers.extend(headers.iter().cloned());
        signed_headers.sort();
        let canonical_headers: String = signed_headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let names = signed_headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{names}\n{payload_hash}"
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let signature = hex(&hmac_sha256(&self.signing_key(date), to_sign.as_bytes()));
        let mut url = format!("{}{path}", self.endpoint);
        match presign_for {
            Some(_) => {
                url.push('?');
                url.push_str(&canonical_query);
                url.push_str(&format!("&X-Amz-Signature={signature}"));
            }
            None => {
                if !canonical_query.is_empty() {
                    url.push('?');
                    url.push_str(&canonical_query);
                }
                headers.push((
                    "authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
                        self.access_key
                    ),
                ));
            }
        }
        Signed { url, headers }
    }

    /// A URL that lets its holder `method` (`GET` or `PUT`) exactly `key` for `ttl`.
    pub fn presign(&self, method: &str, key: &str, ttl: Duration) -> String {
        self.sign(method, key, &[], b"", Some(ttl), Timestamp::now())
            .url
    }

    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>)> {
        let s = self.sign(method.as_str(), key, query, &body, None, Timestamp::now());
        let mut req = http_client()?.request(method.clone(), &s.url);
        for (k, v) in &s.headers {
            req = req.header(k, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .with_context(|| format!("{method} {}/{key}", self.bucket))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.context("reading the store's answer")?;
        Ok((status, bytes.to_vec()))
    }

    /// Puts an object.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<()> {
        match self.send(reqwest::Method::PUT, key, &[], body).await? {
            (200..=299, _) => Ok(()),
            (s, b) => bail!("PUT {key}: HTTP {s}: {}", error_code(&b)),
        }
    }

    /// Gets an object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.send(reqwest::Method::GET, key, &[], vec![]).await? {
            (200..=299, b) => Ok(Some(b)),
            (404, _) => Ok(None),
            (s, b) => bail!("GET {key}: HTTP {s}: {}", error_code(&b)),
        }
    }

    /// Deletes an object (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.send(reqwest::Method::DELETE, key, &[], vec![]).await? {
            (200..=299 | 404, _) => Ok(()),
            (s, b) => bail!("DELETE {key}: HTTP {s}: {}", error_code(&b)),
        }
    }

    /// Keys under `prefix` (ListObjectsV2, following continuation tokens).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let (status, body) = self.send(reqwest::Method::GET, "", &q, vec![]).await?;
            if !(200..=299).contains(&status) {
                bail!("listing {prefix}: HTTP {status}: {}", error_code(&body));
            }
            let text = String::from_utf8_lossy(&body);
            keys.extend(xml_values(&text, "Key"));
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return Ok(keys);
            }
        }
    }
}

/// A reqwest client with timeouts; HTTPS through the process-wide rustls provider (ring, the
/// one kube uses).
pub fn http_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .context("building the HTTP client")
}

/// The `<Code>` of an S3 error document, or the start of the body.
fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    xml_values(&text, "Code")
        .into_iter()
        .next()
        .unwrap_or_else(|| text.chars().take(200).collect())
}

/// The texts of every `<tag>…</tag>` (no nesting, entities of keys decoded).
fn xml_values(text: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_signed_is_the_host_sent() {
        let b = |e: &str| Bucket::new(e, "b", None, "k", "s");
        assert_eq!(b("https://s3.example.org:443").host(), "s3.example.org");
        assert_eq!(b("http://s3.example.org:80/").host(), "s3.example.org");
        assert_eq!(
            b("https://s3.example.org:9000").host(),
            "s3.example.org:9000"
        );
        assert_eq!(b("http://127.0.0.1:7070").host(), "127.0.0.1:7070");
    }

    /// AWS's documented presigned-URL example (GET /test.txt, 86400 s, virtual-host bucket):
    /// signature aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404.
    #[test]
    fn presigned_signature_matches_the_aws_documentation_example() {
        let mut b = Bucket::new(
            "https://examplebucket.s3.amazonaws.com",
            "x",
            Some("us-east-1"),
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        // The documented example is virtual-host style (path `/test.txt`): an empty bucket name
        // yields `//test.txt`, so sign through a bucket named like the path's first segment.
        b.bucket = "test.txt".into();
        let now: Timestamp = "2013-05-24T00:00:00Z".parse().unwrap();
        let s = b.sign("GET", "", &[], b"", Some(Duration::from_secs(86400)), now);
        assert!(
            s.url.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{}",
            s.url
        );
        assert!(
            !format!("{b:?}").contains("wJalr"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn keys_are_encoded_per_segment() {
        assert_eq!(uri_encode("a b/c+d", true), "a%20b/c%2Bd");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(
            xml_values("<Key>a&amp;b</Key><Key>c</Key>", "Key"),
            ["a&b", "c"]
        );
    }
}
