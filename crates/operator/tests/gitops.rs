//! GitOps against the real API server (Cluster API CRDs installed, its managers not needed) with the
//! operator running: a real git repository served by `git daemon`, a tenant's `GitSource`, and what
//! the built-in controller does with each commit — create, change, refuse an invalid revision as a
//! whole, prune, keep protected clusters. Also: a settled Cluster's status and a synced GitSource's
//! status do not churn, and the Argo CD health check (Lua) judges Clusters as documented.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use kaas_api::Cluster;
use kaas_api::gitsource::{GitSource, SOURCE_LABEL};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

const NS: &str = "tenant-git";
const STEP: Duration = Duration::from_secs(90);

/// A git repository in a tempdir, served read-only by `git daemon` on a free local port.
struct Repo {
    dir: tempfile::TempDir,
    daemon: Child,
    port: u16,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `git daemon` would run `git-daemon` as a child that outlives a killed `git`: start the
        // daemon itself, so that dropping the repository stops it.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git is installed");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let daemon = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--export-all",
                "--reuseaddr",
                &format!("--base-path={}", dir.path().display()),
                &format!("--port={port}"),
                "--listen=127.0.0.1",
            ])
            .stdout(Stdio::null())
            // Quiet: upload-pack complains when a test ends in the middle of a fetch.
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts (is git installed?)");
        let repo = Repo { dir, daemon, port };
        repo.git(&["init", "-q", "-b", "main"]);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return repo;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("git daemon does not listen on {port}");
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo", self.port)
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=kaas test",
                "-c",
                "user.email=test@kaas.invalid",
            ])
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn write(&self, file: &str, text: &str) {
        let p = self.path().join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.path().join(file)).unwrap();
    }

    /// Commits everything; returns the commit id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Smart HTTPS for the repositories under `root` (`git http-backend` as CGI behind rustls, with a
/// certificate of a fresh CA for 127.0.0.1) on a free local port, answering only requests with
/// HTTP basic auth `user:password` (401 otherwise). Returns the port and the CA (PEM). Serves
/// until the test process ends.
fn https_git(root: std::path::PathBuf, user: &str, password: &str) -> (u16, String) {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pki = kaas_harness::certs::Pki::generate().unwrap();
    let serving = pki.serving_cert("git", &[]).unwrap();
    let certs = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (config, root, expected) = (config.clone(), root.clone(), expected.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let _ = serve_cgi(&mut tls, &root, &expected);
                tls.conn.send_close_notify();
                let _ = std::io::Write::flush(&mut tls);
            });
        }
    });
    (port, pki.ca_pem().to_string())
}

/// One request, one response (`Connection: close`).
fn serve_cgi<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    root: &Path,
    expected_auth: &str,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let (method, target, headers, body) = {
        let mut r = BufReader::new(&mut *stream);
        let mut line = String::new();
        r.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        (method, target, headers, body)
    };
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if header("authorization").as_deref() != Some(expected_auth) {
        stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return stream.flush();
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env("REMOTE_USER", "test")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = header("git-protocol") {
        cmd.env("HTTP_GIT_PROTOCOL", p);
    }
    if let Some(e) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", e);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((0, 0));
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).to_string();
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for h in head.lines().filter(|l| !l.is_empty()) {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            _ => response.push_str(&format!("{h}\r\n")),
        }
    }
    let content = &out.stdout[split.1..];
    stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
            content.len()
        )
        .as_bytes(),
    )?;
    stream.write_all(content)?;
    stream.flush()
}

fn cluster_yaml(name: &str, count: i32, extra: &str) -> String {
    format!(
        "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: {{name: dev}}\n  workers:\n    - {{name: pool, flavor: small, count: {count}}}\n{extra}"
    )
}

fn gitsource(name: &str, url: &str, prune: bool) -> GitSource {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "url": url,
            "ref": {"branch": "main"},
            "path": "clusters",
            "interval": "2s",
            "prune": prune,
        },
    }))
    .unwrap()
}

fn ready(s: &GitSource) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn describe(s: &GitSource) -> String {
    format!("{:?}", s.status)
}

/// Waits until the GitSource reports `reason` for `revision` (`lastAttemptedRevision`).
async fn wait_source(api: &Api<GitSource>, name: &str, reason: &str, revision: &str) -> GitSource {
    until(
        &format!("GitSource {name}: {reason} at {revision}"),
        STEP,
        || async {
            let s = api.get(name).await.map_err(|e| e.to_string())?;
            let attempted = s
                .status
                .as_ref()
                .and_then(|st| st.last_attempted_revision.as_deref());
            match ready(&s) {
                Some((_, r, _)) if r == reason && attempted == Some(revision) => Ok(s),
                _ => Err(describe(&s)),
            }
        },
    )
    .await
}

async fn tenant_client(plane: &kaas_harness::Plane, admin: &Client) -> Client {
    let token = kaas_operator::install::tenant_service_account(admin, NS, "gitops")
        .await
        .unwrap();
    plane.client_for_token(&token).unwrap()
}

#[tokio::test]
async fn a_git_source_applies_changes_refuses_invalid_revisions_whole_and_prunes() {
    let plane = plane(false).await;
    let admin = plane.client();
    let tenant = tenant_client(&plane, &admin).await;
    let _op = operator(admin.clone(), &[]);
    let repo = Repo::new();
    repo.write("README.md", "Clusters of tenant-git\n");
    repo.write("clusters/a.yaml", &cluster_yaml("a", 1, ""));
    repo.write(
        "clusters/more/b.yml",
        &format!("# b\n---\n{}", cluster_yaml("b", 1, "")),
    );
    repo.write("other/ignored.yaml", "not: [a cluster\n");
    let first = repo.commit("a and b");

    // The tenant writes the GitSource (its role grants it) and reads the result.
    let sources: Api<GitSource> = Api::namespaced(tenant.clone(), NS);
    let clusters: Api<Cluster> = Api::namespaced(tenant.clone(), NS);
    sources
        .create(
            &PostParams::default(),
            &gitsource("fleet", &repo.url(), true),
        )
        .await
        .expect("the tenant may create a GitSource");

    // 1. Both clusters appear, labelled, and the operator accepts them.
    let s = wait_source(&sources, "fleet", "Synced", &first).await;
    let st = s.status.clone().unwrap();
    assert_eq!(st.last_applied_revision.as_deref(), Some(first.as_str()));
    assert_eq!(st.clusters, ["a", "b"]);
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(st.observed_generation, s.metadata.generation);
    for n in ["a", "b"] {
        until(&format!("Cluster {n} SpecAccepted=True"), STEP, || async {
            let c = clusters.get(n).await.map_err(|e| e.to_string())?;
            match condition(&c, "SpecAccepted") {
                Some(x) if x.0 == "True" => Ok(()),
                _ => Err(summary(&c)),
            }
        })
        .await;
        let c = clusters.get(n).await.unwrap();
        assert_eq!(
            c.labels().get(SOURCE_LABEL).map(String::as_str),
            Some("fleet")
        );
        let managers: Vec<String> = c
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(
            managers.iter().any(|m| m == "kaas-gitsource"),
            "{managers:?}"
        );
    }

    // 2. A commit changing a worker count changes the Cluster's spec.
    repo.write("clusters/more/b.yml", &cluster_yaml("b", 3, ""));
    let second = repo.commit("b: 3 workers");
    wait_source(&sources, "fleet", "Synced", &second).await;
    let b = clusters.get("b").await.unwrap();
    assert_eq!(b.spec.workers.as_ref().unwrap()[0].count, Some(3));

    // 3. A revision with an invalid cluster (and a change to a valid one) is refused as a whole.
    let before: Vec<Cluster> = vec![clusters.get("a").await.unwrap(), b];
    repo.write("clusters/a.yaml", &cluster_yaml("a", 5, ""));
    repo.write(
        "clusters/c.yaml",
        &cluster_yaml("c", 1, "").replace("flavor: small", "flavor: m9.huge"),
    );
    let third = repo.commit("a: 5 workers, c: an unknown flavor");
    let s = wait_source(&sources, "fleet", "ValidationFailed", &third).await;
    let st = s.status.clone().unwrap();
    let (status, _, message) = ready(&s).unwrap();
    assert_eq!(status, "False");
    assert_eq!(st.last_applied_revision.as_deref(), Some(second.as_str()));
    assert!(
        st.errors.iter().any(|e| e.file == "clusters/c.yaml"
            && e.path == "spec.workers[0].flavor"
            && e.message.contains("m9.huge")),
        "{:?}",
        st.errors
    );
    assert!(
        message.contains("clusters/c.yaml: spec.workers[0].flavor"),
        "{message}"
    );
    // Another round of the interval changes nothing either.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        clusters.get_opt("c").await.unwrap().is_none(),
        "c was not created"
    );
    for old in &before {
        let now = clusters.get(&old.name_any()).await.unwrap();
        assert_eq!(now.spec, old.spec, "{} untouched", old.name_any());
        assert_eq!(now.metadata.generation, old.metadata.generation);
    }

    // 4. Fixing the revision and removing b (prune: true) deletes b.
    repo.remove("clusters/c.yaml");
    repo.remove("clusters/more/b.yml");
    let fourth = repo.commit("drop b and c");
    let s = wait_source(&sources, "fleet", "Synced", &fourth).await;
    assert_eq!(s.status.as_ref().unwrap().clusters, ["a"]);
    assert_eq!(
        clusters.get("a").await.unwrap().spec.workers.unwrap()[0].count,
        Some(5)
    );
    until("b is deleted", STEP, || async {
        match clusters.get_opt("b").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(format!(
                "still there (deletionTimestamp {:?}): {}",
                c.metadata.deletion_timestamp,
                summary(&c)
            )),
        }
    })
    .await;

    // 5. A protected cluster that leaves git stays, and the status says why.
    repo.write(
        "clusters/a.yaml",
        &cluster_yaml("a", 5, "  deletionProtection: true\n"),
    );
    let fifth = repo.commit("protect a");
    wait_source(&sources, "fleet", "Synced", &fifth).await;
    repo.remove("clusters/a.yaml");
    repo.write("clusters/.keep.yaml", "# no clusters\n");
    let sixth = repo.commit("drop a");
    let s = wait_source(&sources, "fleet", "Synced", &sixth).await;
    let st = s.status.unwrap();
    assert!(st.clusters.is_empty(), "{:?}", st.clusters);
    assert_eq!(st.not_pruned.len(), 1, "{:?}", st.not_pruned);
    assert_eq!(st.not_pruned[0].name, "a");
    assert!(
        st.not_pruned[0].reason.contains("deletionProtection"),
        "{:?}",
        st.not_pruned
    );
    let a = clusters.get("a").await.unwrap();
    assert!(a.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn a_git_source_never_takes_over_or_writes_outside_its_namespace() {
    let plane = plane(false).await;
    let admin = plane.client();
    let tenant = tenant_client(&plane, &admin).await;
    let _op = operator(admin.clone(), &[]);
    // A cluster the tenant created by hand.
    create(
        &admin,
        &cluster(
            "manual",
            NS,
            "provider: {name: dev}\nworkers: [{name: pool, flavor: small, count: 1}]",
        ),
    )
    .await;
    let repo = Repo::new();
    repo.write("clusters/manual.yaml", &cluster_yaml("manual", 4, ""));
    repo.write(
        "clusters/elsewhere.yaml",
        &cluster_yaml("elsewhere", 1, "").replace(
            "  name: elsewhere\n",
            "  name: elsewhere\n  namespace: kube-system\n",
        ),
    );
    repo.write(
        "clusters/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let rev = repo.commit("three bad documents");
    let sources: Api<GitSource> = Api::namespaced(tenant.clone(), NS);
    sources
        .create(
            &PostParams::default(),
            &gitsource("fleet", &repo.url(), false),
        )
        .await
        .unwrap();
    let s = wait_source(&sources, "fleet", "ValidationFailed", &rev).await;
    let errors = s.status.unwrap().errors;
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.file.as_str(), e.path.as_str()))
        .collect();
    for want in [
        ("clusters/manual.yaml", "metadata.name"),
        ("clusters/elsewhere.yaml", "metadata.namespace"),
        ("clusters/cm.yaml", "kind"),
    ] {
        assert!(got.contains(&want), "{want:?} not in {errors:?}");
    }
    let manual = Api::<Cluster>::namespaced(admin.clone(), NS)
        .get("manual")
        .await
        .unwrap();
    assert_eq!(manual.spec.workers.as_ref().unwrap()[0].count, Some(1));
    assert!(manual.labels().get(SOURCE_LABEL).is_none());
    assert!(
        Api::<Cluster>::namespaced(admin.clone(), "kube-system")
            .get_opt("elsewhere")
            .await
            .unwrap()
            .is_none()
    );

    // The CRD refuses malformed GitSources (schema and CEL rules) with the field path.
    for (patch, field, message) in [
        (
            serde_json::json!({"ref": {"branch": "main", "tag": "v1"}}),
            "spec.ref",
            "exactly one of branch, tag, commit",
        ),
        (
            serde_json::json!({"interval": "1s"}),
            "spec.interval",
            "at least 2s",
        ),
        (
            serde_json::json!({"url": "https://user:pass@example.invalid/r"}),
            "spec.url",
            "secretRef",
        ),
        (
            serde_json::json!({"path": "a/../../etc"}),
            "spec.path",
            "inside the repository",
        ),
        (
            serde_json::json!({"url": "ssh://example.invalid/r"}),
            "spec.url",
            "should match",
        ),
    ] {
        let mut bad = serde_json::to_value(gitsource("bad", &repo.url(), false)).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            bad["spec"][k] = v.clone();
        }
        let bad: GitSource = serde_json::from_value(bad).unwrap();
        match sources.create(&PostParams::default(), &bad).await {
            Err(kube::Error::Api(s)) if s.code == 422 => assert!(
                s.message.contains(field) && s.message.contains(message),
                "{patch}: {}",
                s.message
            ),
            other => panic!("{patch}: expected 422, got {other:?}"),
        }
    }

    // Over HTTPS with basic auth and a CA from a Secret: a missing Secret, a wrong password and a
    // CA that is not trusted are fetch failures; the right Secret syncs. No credential value ever
    // shows in status or events, and credentials are never sent over plain http.
    repo.write("http/ok.yaml", &cluster_yaml("via-https", 1, ""));
    let rev = repo.commit("via-https");
    let (port, ca) = https_git(repo.dir.path().to_path_buf(), "robot", "s3cr3t-T0ken");
    let mut private = gitsource("private", &format!("https://127.0.0.1:{port}/repo"), false);
    private.spec.path = Some("http".into());
    private.spec.secret_ref = Some(kaas_api::gitsource::LocalSecretRef {
        name: "git-credentials".into(),
    });
    sources
        .create(&PostParams::default(), &private)
        .await
        .unwrap();
    let fetch_failed = |source: &'static str, needle: &'static str| {
        let sources = sources.clone();
        async move {
            until(
                &format!("{source}: FetchFailed ({needle})"),
                STEP,
                || async {
                    let s = sources.get(source).await.map_err(|e| e.to_string())?;
                    match ready(&s) {
                        Some((_, r, m)) if r == "FetchFailed" && m.contains(needle) => Ok(s),
                        _ => Err(describe(&s)),
                    }
                },
            )
            .await
        }
    };
    fetch_failed("private", "spec.secretRef").await;
    let secret = |password: &str, ca: &str| k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("git-credentials".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("username".to_string(), "robot".to_string()),
                ("password".to_string(), password.to_string()),
                ("ca.crt".to_string(), ca.to_string()),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        ),
        ..Default::default()
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), NS);
    // The right password, but the server's CA is not trusted.
    secrets
        .create(&PostParams::default(), &secret("s3cr3t-T0ken", ""))
        .await
        .unwrap();
    let untrusted = fetch_failed("private", "spec.url").await;
    // Trusted, but the wrong password.
    secrets
        .replace(
            "git-credentials",
            &PostParams::default(),
            &secret("wr0ng-Passw0rd", &ca),
        )
        .await
        .unwrap();
    let refused = until(
        "private: FetchFailed after the CA is trusted",
        STEP,
        || async {
            let s = sources.get("private").await.map_err(|e| e.to_string())?;
            match ready(&s) {
                Some((_, r, m)) if r == "FetchFailed" && m != ready(&untrusted).unwrap().2 => Ok(s),
                _ => Err(describe(&s)),
            }
        },
    )
    .await;
    secrets
        .replace(
            "git-credentials",
            &PostParams::default(),
            &secret("s3cr3t-T0ken", &ca),
        )
        .await
        .unwrap();
    let synced = wait_source(&sources, "private", "Synced", &rev).await;
    assert!(
        Api::<Cluster>::namespaced(admin.clone(), NS)
            .get_opt("via-https")
            .await
            .unwrap()
            .is_some()
    );
    // The same credentials with an http:// URL are refused before anything is sent.
    let mut plain = private.clone();
    plain.metadata.name = Some("plain".into());
    plain.spec.url = format!("http://127.0.0.1:{port}/repo");
    sources
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();
    let plain = fetch_failed("plain", "https only").await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap();
    let seen = format!(
        "{}\n{}\n{}\n{}\n{}",
        serde_json::to_string(&untrusted.status).unwrap(),
        serde_json::to_string(&refused.status).unwrap(),
        serde_json::to_string(&synced.status).unwrap(),
        serde_json::to_string(&plain.status).unwrap(),
        serde_json::to_string(&events.items).unwrap()
    );
    eprintln!("untrusted CA: {:?}", ready(&untrusted).unwrap().2);
    eprintln!("wrong password: {:?}", ready(&refused).unwrap().2);
    assert!(seen.contains("FetchFailed"), "events and status were read");
    for secret in ["s3cr3t-T0ken", "wr0ng-Passw0rd", "robot"] {
        assert!(!seen.contains(secret), "{secret} shows in status or events");
    }
}

/// With the Cluster API managers, so the clusters become Ready: one from git, one written directly.
#[tokio::test]
async fn ready_clusters_and_synced_sources_do_not_churn() {
    let plane = plane(true).await;
    let admin = plane.client();
    kaas_operator::install::namespace(&admin, NS, &[("scs.community/tenant", "true")])
        .await
        .unwrap();
    let _op = operator(admin.clone(), &[]);
    let repo = Repo::new();
    repo.write("clusters/a.yaml", &cluster_yaml("a", 1, ""));
    let rev = repo.commit("a");
    let sources: Api<GitSource> = Api::namespaced(admin.clone(), NS);
    sources
        .create(
            &PostParams::default(),
            &gitsource("fleet", &repo.url(), false),
        )
        .await
        .unwrap();
    create(
        &admin,
        &cluster(
            "direct",
            NS,
            "provider: {name: dev}\nworkers: [{name: pool, flavor: small, count: 1}]",
        ),
    )
    .await;
    wait_source(&sources, "fleet", "Synced", &rev).await;
    let clusters: Api<Cluster> = Api::namespaced(admin.clone(), NS);
    for n in ["a", "direct"] {
        until(
            &format!("{n} is Ready"),
            Duration::from_secs(300),
            || async {
                let c = clusters.get(n).await.map_err(|e| e.to_string())?;
                let st = c.status.clone().unwrap_or_default();
                if st.observed_generation == c.metadata.generation
                    && condition(&c, "Ready").is_some_and(|x| x.0 == "True")
                {
                    Ok(())
                } else {
                    Err(summary(&c))
                }
            },
        )
        .await;
    }
    // Let in-flight reconciles finish, then watch for 20 s (the GitSource syncs every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before_a = clusters.get("a").await.unwrap();
    let before_direct = clusters.get("direct").await.unwrap();
    let before_src = sources.get("fleet").await.unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after_a = clusters.get("a").await.unwrap();
    let after_direct = clusters.get("direct").await.unwrap();
    let after_src = sources.get("fleet").await.unwrap();
    let show = |c: &Cluster| serde_json::to_string(&c.status).unwrap();
    for (what, b, a, bs, as_) in [
        (
            "Cluster a",
            before_a.rv(),
            after_a.rv(),
            show(&before_a),
            show(&after_a),
        ),
        (
            "Cluster direct",
            before_direct.rv(),
            after_direct.rv(),
            show(&before_direct),
            show(&after_direct),
        ),
        (
            "GitSource fleet",
            before_src.rv(),
            after_src.rv(),
            describe(&before_src),
            describe(&after_src),
        ),
    ] {
        assert_eq!(b, a, "{what} churns:\nbefore: {bs}\nafter:  {as_}");
    }
}

trait ResourceVersioned {
    fn rv(&self) -> Option<String>;
}

impl<K: kube::Resource> ResourceVersioned for K {
    fn rv(&self) -> Option<String> {
        self.meta().resource_version.clone()
    }
}

/// The Argo CD health check of `deploy/argocd/cluster-health.lua`, run by a real Lua 5.1 (the
/// language of Argo CD's gopher-lua) on Cluster objects.
#[test]
fn argocd_health_check_judges_clusters() {
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/argocd/cluster-health.lua"),
    )
    .unwrap();
    // docs/gitops.md shows the same script (without its header comment) in the argocd-cm example.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gitops.md"))
            .unwrap();
    let body: String = script
        .lines()
        .skip_while(|l| l.starts_with("--"))
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        doc.contains(&body),
        "docs/gitops.md and deploy/argocd/cluster-health.lua differ"
    );
    let health = |obj: serde_json::Value| -> (String, String) {
        let lua = mlua::Lua::new();
        let value = mlua::LuaSerdeExt::to_value(&lua, &obj).unwrap();
        lua.globals().set("obj", value).unwrap();
        let hs: mlua::Table = lua.load(&script).eval().unwrap();
        (
            hs.get::<String>("status").unwrap(),
            hs.get::<Option<String>>("message")
                .unwrap()
                .unwrap_or_default(),
        )
    };
    let cond = |t: &str, s: &str, r: &str, m: &str| serde_json::json!({"type": t, "status": s, "reason": r, "message": m});
    let obj = |generation: i64, observed: Option<i64>, conds: Vec<serde_json::Value>| {
        let mut status = serde_json::json!({"conditions": conds});
        if let Some(o) = observed {
            status["observedGeneration"] = o.into();
        }
        serde_json::json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "x", "generation": generation},
            "status": status,
        })
    };
    assert_eq!(
        health(serde_json::json!({"metadata": {"generation": 1}})).0,
        "Progressing"
    );
    assert_eq!(
        health(obj(2, Some(1), vec![cond("Ready", "True", "Ready", "")])).0,
        "Progressing"
    );
    assert_eq!(
        health(obj(2, Some(2), vec![cond("Ready", "True", "Ready", "ok")])).0,
        "Healthy"
    );
    let (s, m) = health(obj(
        2,
        Some(2),
        vec![
            cond("Ready", "False", "InvalidSpec", "invalid"),
            cond(
                "SpecAccepted",
                "False",
                "InvalidSpec",
                "spec.workers[0].flavor: not offered",
            ),
        ],
    ));
    assert_eq!(s, "Degraded");
    assert!(m.contains("spec.workers[0].flavor"), "{m}");
    assert_eq!(
        health(obj(
            2,
            Some(2),
            vec![cond(
                "Ready",
                "False",
                "Provisioning",
                "waiting for the control plane"
            )]
        ))
        .0,
        "Progressing"
    );
    assert_eq!(
        health(obj(
            2,
            Some(2),
            vec![
                cond("Ready", "False", "Deleting", ""),
                cond("Deleting", "True", "WaitingForBackend", "machines")
            ]
        ))
        .0,
        "Progressing"
    );
    let (s, m) = health(obj(
        2,
        Some(2),
        vec![
            cond("Ready", "False", "Deleting", ""),
            cond(
                "Deleting",
                "False",
                "DeletionProtected",
                "spec.deletionProtection is true",
            ),
        ],
    ));
    assert_eq!(s, "Degraded");
    assert!(m.contains("deletionProtection"), "{m}");
    assert_eq!(
        health(obj(
            2,
            Some(2),
            vec![cond("Ready", "False", "Failed", "boom")]
        ))
        .0,
        "Degraded"
    );
}
