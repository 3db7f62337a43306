//! The `GitSource` controller: built-in GitOps for SCS `Cluster`s. Each reconcile of a GitSource
//!
//! 1. fetches its repository with a git client library (gitoxide; `git://`, `http(s)://` with
//!    rustls, and `file://` where allowed) into a cache keyed by the GitSource's uid — never by
//!    running `git`;
//! 2. reads every `*.yaml` / `*.yml` under `spec.path` (multi-document);
//! 3. [`plan`]s the revision (pure): every document must be an `scs.community/v1alpha1` `Cluster`
//!    for the GitSource's own namespace and pass the admission every writer applies
//!    ([`kaas_validate::admission::admit`]): the CRD's schema and CEL rules and, when its Provider
//!    can be chosen, the offering; a Cluster of the same name that this source did not create is
//!    never taken over;
//! 4. all or nothing: with any error nothing is applied or deleted; otherwise every Cluster is
//!    server-side applied (first all as a dry run, so the API server's own admission is part of
//!    the all-or-nothing), with field manager [`FIELD_MANAGER`] and the label [`SOURCE_LABEL`];
//! 5. prunes Clusters of this source that left git when `spec.prune` is set (never protected ones);
//! 6. writes status (only when it changed) and events.
//!
//! Deleting a GitSource leaves its Clusters (no owner references, no cascade).
//!
//! The operator runs it ([`run`], in the instance [`enabled`] chooses) with its own client and
//! event recorder; this crate does not depend on the operator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaas_api::conditions::{self as c, Status};
use kaas_api::gitsource::{
    DEFAULT_INTERVAL, FIELD_MANAGER, GitRef, GitSource, GitSourceStatus, NotPruned, SOURCE_LABEL,
    SourceError, reasons,
};
use kaas_api::{Cluster, Provider};
use kaas_validate::admission::Providers;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

/// Errors of one reconcile; all are retried (what is wrong with a revision is its status, not an
/// error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// `KAAS_GITSOURCES`: `true` / `false` runs / does not run the GitSource controller in this
/// operator instance. Unset: it runs in the instance that handles all providers (no `--providers`),
/// so that exactly one leader reconciles GitSources in a sharded installation.
pub const ENABLE_ENV: &str = "KAAS_GITSOURCES";
/// `KAAS_GITSOURCE_CACHE`: directory of the repository caches (default `$TMPDIR/kaas-gitsource`).
pub const CACHE_ENV: &str = "KAAS_GITSOURCE_CACHE";
/// `KAAS_GITSOURCE_ALLOW_FILE=true` allows `file://` URLs (tests, development). Off by default: a
/// tenant must not read the operator's file system.
pub const ALLOW_FILE_ENV: &str = "KAAS_GITSOURCE_ALLOW_FILE";

/// Longest a fetch may take before it is interrupted.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Retry of transient failures (fetch, apply) when the interval is longer.
const RETRY: Duration = Duration::from_secs(30);
/// At most this many YAML files, and this many bytes of them, are read from a revision.
const MAX_FILES: usize = 1000;
const MAX_BYTES: usize = 16 << 20;
/// Cache directories of deleted GitSources are removed at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Whether this operator instance runs the GitSource controller.
pub fn enabled(handles_all_providers: bool) -> bool {
    match std::env::var(ENABLE_ENV).ok().as_deref() {
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        _ => handles_all_providers,
    }
}

fn env_true(name: &str) -> bool {
    matches!(std::env::var(name).ok().as_deref(), Some("true" | "1"))
}

/// State of the GitSource controller.
pub struct GitContext {
    /// Client with the operator's identity.
    pub client: kube::Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Where repositories are cached (one directory per GitSource uid).
    pub cache_dir: PathBuf,
    /// Whether `file://` URLs are allowed.
    pub allow_file: bool,
    store: Store<GitSource>,
    /// Per uid: the generation and time of the last fetch (status writes must not cause fetches).
    last: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    swept: Mutex<Option<Instant>>,
}

/// Runs the GitSource controller until `shutdown` completes (when `enabled` is false, just waits),
/// with the operator's `client` and event `recorder`.
pub async fn run(
    client: kube::Client,
    recorder: Recorder,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    enabled: bool,
) {
    if !enabled {
        shutdown.await;
        return;
    }
    // reqwest (HTTPS fetches) uses the process-wide rustls provider: ring, the one kube uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cache_dir = std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kaas-gitsource"));
    let api: Api<GitSource> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let gctx = Arc::new(GitContext {
        client,
        recorder,
        cache_dir: cache_dir.clone(),
        allow_file: env_true(ALLOW_FILE_ENV),
        store: controller.store(),
        last: Mutex::new(HashMap::new()),
        swept: Mutex::new(None),
    });
    info!(cache = %cache_dir.display(), "GitSource controller running");
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(4))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, gctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "GitSource reconcile failed");
            }
        })
        .await;
}

fn error_policy(src: Arc<GitSource>, err: &Error, _ctx: Arc<GitContext>) -> Action {
    warn!(gitsource = %src.name_any(), namespace = ?src.namespace(), error = %err, "GitSource reconcile error; retrying");
    Action::requeue(RETRY)
}

/// Parses `spec.interval` (`1h30m`, `90s`, `1m`): whole hours, minutes, seconds; at least 2s.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut last_unit = 0;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let (rank, secs) = match ch {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => {
                return Err(format!(
                    "spec.interval: {s:?}: unknown unit {ch:?} (h, m, s)"
                ));
            }
        };
        if num.is_empty() || rank <= last_unit {
            return Err(format!(
                "spec.interval: {s:?} is not a duration such as 1m, 30s or 1h30m"
            ));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("spec.interval: {s:?} is too large"))?;
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("spec.interval: {s:?} is too large"))?;
        num.clear();
        last_unit = rank;
    }
    if !num.is_empty() || last_unit == 0 {
        return Err(format!(
            "spec.interval: {s:?} is not a duration such as 1m, 30s or 1h30m"
        ));
    }
    if total < 2 {
        return Err(format!("spec.interval: {s:?} is shorter than 2s"));
    }
    Ok(Duration::from_secs(total))
}

// ---------------------------------------------------------------------------------------------
// Pure part: documents and the plan of one revision.

/// One `Cluster` document of the revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// File, relative to the repository root.
    pub file: String,
    /// Index of the document in its file (0-based).
    pub index: usize,
    /// `metadata.name`.
    pub name: String,
    /// The document as written.
    pub value: Value,
}

fn error(file: &str, path: &str, message: impl Into<String>) -> SourceError {
    SourceError {
        file: file.into(),
        path: path.into(),
        message: message.into(),
    }
}

fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Parses the files of a revision into `Cluster` documents for `namespace`; every document that is
/// not one (YAML errors, other kinds, another namespace, no name, a name defined twice) is an error
/// naming the file and the field.
pub fn parse_documents(
    files: &[(String, Vec<u8>)],
    namespace: &str,
) -> (Vec<Document>, Vec<SourceError>) {
    let want_api = format!("{}/{}", kaas_api::GROUP, kaas_api::VERSION);
    let mut docs: Vec<Document> = Vec::new();
    let mut errors = Vec::new();
    for (file, bytes) in files {
        let Ok(text) = std::str::from_utf8(bytes) else {
            errors.push(error(file, "", "not UTF-8 text"));
            continue;
        };
        // A broken stream yields its error again and again: stop at the first one.
        let mut parsed: Vec<(usize, Result<Value, String>)> = Vec::new();
        for (i, d) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let v = Value::deserialize(d).map_err(|e| e.to_string());
            let stop = v.is_err();
            parsed.push((i, v));
            if stop {
                break;
            }
        }
        let many = parsed.len() > 1;
        for (index, value) in parsed {
            let at = |m: String| {
                if many {
                    format!("document {}: {m}", index + 1)
                } else {
                    m
                }
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    errors.push(error(file, "", at(format!("invalid YAML: {e}"))));
                    // The rest of a broken stream cannot be trusted.
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            if !value.is_object() {
                errors.push(error(
                    file,
                    "",
                    at("a document must be a mapping (an object)".into()),
                ));
                continue;
            }
            let api = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            if api != want_api || kind != "Cluster" {
                let (path, what) = if kind != "Cluster" {
                    ("kind", format!("kind {kind:?}"))
                } else {
                    ("apiVersion", format!("apiVersion {api:?}"))
                };
                errors.push(error(
                    file,
                    path,
                    at(format!(
                        "{what} is not supported: a GitSource applies only {want_api} Cluster"
                    )),
                ));
                continue;
            }
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !dns_subdomain(name) {
                errors.push(error(
                    file,
                    "metadata.name",
                    at(if name.is_empty() {
                        "required".into()
                    } else {
                        format!("{name:?} is not a DNS subdomain (lower case, digits, '-', '.')")
                    }),
                ));
                continue;
            }
            if let Some(ns) = value.pointer("/metadata/namespace") {
                let ns = ns.as_str().unwrap_or("");
                if !ns.is_empty() && ns != namespace {
                    errors.push(error(
                        file,
                        "metadata.namespace",
                        at(format!(
                            "{ns:?}: a GitSource writes only into its own namespace {namespace:?} (leave it empty or set it to {namespace:?})"
                        )),
                    ));
                    continue;
                }
            }
            if let Some(first) = docs.iter().find(|d| d.name == name) {
                errors.push(error(
                    file,
                    "metadata.name",
                    at(format!(
                        "Cluster {name:?} is defined twice (also in {})",
                        first.file
                    )),
                ));
                continue;
            }
            docs.push(Document {
                file: file.clone(),
                index,
                name: name.to_string(),
                value,
            });
        }
    }
    (docs, errors)
}

/// What one revision does to the namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Documents to apply (empty when there are errors).
    pub apply: Vec<Document>,
    /// Clusters of this source to delete (empty when there are errors).
    pub prune: Vec<String>,
    /// Clusters of this source no longer in git that stay, and why.
    pub keep: Vec<NotPruned>,
    /// Every problem; when not empty nothing is applied or deleted.
    pub errors: Vec<SourceError>,
}

/// Whether `cluster` was created by the GitSource `source`.
pub fn owned_by(cluster: &Cluster, source: &str) -> bool {
    cluster.labels().get(SOURCE_LABEL).map(String::as_str) == Some(source)
}

/// Plans a revision (pure): validates every document — against the existing Cluster of the same
/// name (ownership, transition rules, the version it runs), the CRD's schema and, when its Provider
/// is among `providers`, the offering ([`kaas_validate::admission::admit`]) — and decides what to
/// prune. All or nothing: any error empties `apply` and `prune`.
pub fn plan(
    source: &str,
    prune: bool,
    docs: Vec<Document>,
    parse_errors: Vec<SourceError>,
    existing: &[Cluster],
    providers: &[Provider],
) -> Plan {
    let mut errors = parse_errors;
    for d in &docs {
        let current = existing.iter().find(|c| c.name_any() == d.name);
        if let Some(cur) = current
            && !owned_by(cur, source)
        {
            let by = match cur.labels().get(SOURCE_LABEL) {
                Some(other) => format!("it belongs to GitSource {other:?}"),
                None => "it was not created by a GitSource".into(),
            };
            errors.push(error(
                &d.file,
                "metadata.name",
                format!(
                    "Cluster {:?} already exists and {by}: a GitSource never takes over a Cluster (rename it in git, or delete the existing one)",
                    d.name
                ),
            ));
            continue;
        }
        // Schema + CEL (transition rules against the existing Cluster), the version it runs, and
        // the offering of its provider when that is among `providers` (the operator reports the
        // rest).
        if let Err(rejected) =
            kaas_validate::admission::admit(&d.value, current, Providers::Known(providers))
        {
            errors.extend(
                rejected
                    .errors
                    .0
                    .iter()
                    .map(|e| error(&d.file, &e.path, e.to_string_without_path())),
            );
        }
    }
    if !errors.is_empty() {
        return Plan {
            errors,
            ..Default::default()
        };
    }
    let wanted: BTreeSet<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    let mut out = Plan::default();
    for c in existing {
        let name = c.name_any();
        if !owned_by(c, source)
            || wanted.contains(name.as_str())
            || c.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        if c.spec.deletion_protection == Some(true) {
            out.keep.push(NotPruned {
                name,
                reason: "spec.deletionProtection is true".into(),
            });
        } else if !prune {
            out.keep.push(NotPruned {
                name,
                reason: "spec.prune of the GitSource is false".into(),
            });
        } else {
            out.prune.push(name);
        }
    }
    out.apply = docs;
    out
}

trait WithoutPath {
    fn to_string_without_path(&self) -> String;
}

impl WithoutPath for kaas_validate::FieldError {
    fn to_string_without_path(&self) -> String {
        let mut e = self.clone();
        e.path.clear();
        e.to_string()
    }
}

/// The object applied for a document: apiVersion, kind, name, namespace, labels (with the source
/// label), annotations and spec — nothing else of what git holds (no status, finalizers, owners).
pub fn desired_object(doc: &Document, source: &str, namespace: &str) -> Value {
    let mut labels = doc
        .value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(SOURCE_LABEL.into(), Value::String(source.into()));
    let mut meta = json!({"name": doc.name, "namespace": namespace, "labels": labels});
    if let Some(a) = doc.value.pointer("/metadata/annotations")
        && a.is_object()
    {
        meta["annotations"] = a.clone();
    }
    json!({
        "apiVersion": format!("{}/{}", kaas_api::GROUP, kaas_api::VERSION),
        "kind": "Cluster",
        "metadata": meta,
        "spec": doc.value.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

// ---------------------------------------------------------------------------------------------
// Fetching (blocking; runs on a blocking thread).

/// What the GitSource's Secret holds: HTTP basic-auth credentials (`username`, `password`) and/or
/// a CA bundle to trust for HTTPS in addition to the system's roots (`ca.crt`, PEM). Never printed.
#[derive(Clone, Default)]
pub struct Credentials {
    basic: Option<(String, String)>,
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// Basic-auth credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            basic: Some((username.into(), password.into())),
            ca_pem: None,
        }
    }

    /// From the data of a Secret: `username` and `password` (both or neither), `ca.crt`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Credentials, &'static str> {
        let text = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|v| !v.is_empty())
        };
        let basic = match (text("username"), text("password")) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err("needs both keys username and password, or neither"),
        };
        let ca_pem = data.get("ca.crt").filter(|v| !v.is_empty()).cloned();
        if basic.is_none() && ca_pem.is_none() {
            return Err("has none of the keys username/password and ca.crt");
        }
        Ok(Credentials { basic, ca_pem })
    }

    /// Removes the credential values from a message (values shorter than 4 characters are no
    /// secret worth mangling every message for).
    fn scrub(&self, msg: String) -> String {
        let mut msg = msg;
        if let Some((user, password)) = &self.basic {
            for v in [password, user] {
                if v.chars().count() >= 4 {
                    msg = msg.replace(v.as_str(), "<redacted>");
                }
            }
        }
        msg
    }
}

/// A fetched revision: its commit id and the YAML files under the path.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Commit id.
    pub revision: String,
    /// (file relative to the repository root, content), sorted by file.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A fetch failure: the field it concerns (`spec.url`, `spec.ref`, `spec.path`, `spec.secretRef`
/// or empty) and what happened.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchError {
    /// Field path.
    pub path: &'static str,
    /// Message.
    pub message: String,
}

fn fe(path: &'static str, message: impl Into<String>) -> FetchError {
    FetchError {
        path,
        message: message.into(),
    }
}

/// The error and its causes, joined.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

fn describe(r: &GitRef) -> String {
    match (&r.branch, &r.tag, &r.commit) {
        (Some(b), _, _) => format!("branch {b:?}"),
        (_, Some(t), _) => format!("tag {t:?}"),
        (_, _, Some(c)) => format!("commit {c}"),
        _ => "no ref".into(),
    }
}

fn cache_locks() -> &'static Mutex<HashMap<PathBuf, Arc<Mutex<()>>>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(Default::default)
}

/// Fetches `r` of `url` (into the cache directory `cache`, except for `file://`, which is read in
/// place) and reads the YAML files under `path`.
pub fn fetch(
    cache: &Path,
    url: &str,
    r: &GitRef,
    path: &str,
    auth: Option<&Credentials>,
    allow_file: bool,
    interrupt: &AtomicBool,
) -> Result<Snapshot, FetchError> {
    let res = fetch_inner(cache, url, r, path, auth, allow_file, interrupt);
    match auth {
        Some(a) => res.map_err(|e| FetchError {
            path: e.path,
            message: a.scrub(e.message),
        }),
        None => res,
    }
}

fn fetch_inner(
    cache: &Path,
    url: &str,
    r: &GitRef,
    path: &str,
    auth: Option<&Credentials>,
    allow_file: bool,
    interrupt: &AtomicBool,
) -> Result<Snapshot, FetchError> {
    let parsed = gix::url::parse(gix::bstr::BStr::new(url))
        .map_err(|e| fe("spec.url", format!("not a git URL: {}", chain(&e))))?;
    let commit;
    let repo = match parsed.scheme {
        gix::url::Scheme::File => {
            if !allow_file {
                return Err(fe(
                    "spec.url",
                    format!("file:// URLs are not allowed by this operator ({ALLOW_FILE_ENV})"),
                ));
            }
            let dir = PathBuf::from(parsed.path.to_string());
            let repo = gix::open_opts(&dir, gix::open::Options::isolated())
                .map_err(|e| fe("spec.url", format!("not a git repository: {}", chain(&e))))?;
            commit = resolve_local(&repo, r)?;
            repo
        }
        gix::url::Scheme::Git | gix::url::Scheme::Http | gix::url::Scheme::Https => {
            if parsed.scheme != gix::url::Scheme::Https && auth.is_some_and(|a| a.basic.is_some()) {
                return Err(fe(
                    "spec.url",
                    "credentials are sent over https only: use an https:// URL with spec.secretRef",
                ));
            }
            let lock = cache_locks()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(cache.to_path_buf())
                .or_default()
                .clone();
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let repo = open_cache(cache, url)?;
            commit = fetch_remote(&repo, url, r, auth, interrupt)?;
            repo
        }
        other => {
            return Err(fe(
                "spec.url",
                format!(
                    "scheme {:?} is not supported (https, http, git)",
                    other.as_str()
                ),
            ));
        }
    };
    let files = read_tree(&repo, commit, path)?;
    Ok(Snapshot {
        revision: commit.to_string(),
        files,
    })
}

const URL_FILE: &str = "kaas-source-url";

fn open_cache(cache: &Path, url: &str) -> Result<gix::Repository, FetchError> {
    let io = |e: std::io::Error| fe("", format!("repository cache {}: {e}", cache.display()));
    // A cache is for one URL: objects of another repository must not satisfy a commit ref.
    let same_url = std::fs::read_to_string(cache.join(URL_FILE)).is_ok_and(|u| u == url);
    if same_url
        && cache.join("HEAD").is_file()
        && let Ok(repo) = gix::open_opts(cache, gix::open::Options::isolated())
    {
        return Ok(repo);
    }
    if cache.exists() {
        std::fs::remove_dir_all(cache).map_err(io)?;
    }
    std::fs::create_dir_all(cache).map_err(io)?;
    let repo: gix::Repository = gix::ThreadSafeRepository::init_opts(
        cache,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        gix::open::Options::isolated(),
    )
    .map_err(|e| {
        fe(
            "",
            format!("initialising the repository cache: {}", chain(&e)),
        )
    })?
    .into();
    std::fs::write(cache.join(URL_FILE), url).map_err(io)?;
    Ok(repo)
}

const LOCAL_REF: &str = "refs/kaas/source";

fn fetch_remote(
    repo: &gix::Repository,
    url: &str,
    r: &GitRef,
    auth: Option<&Credentials>,
    interrupt: &AtomicBool,
) -> Result<gix::ObjectId, FetchError> {
    let specs: Vec<String> = match (&r.branch, &r.tag, &r.commit) {
        (Some(b), _, _) => vec![format!("+refs/heads/{b}:{LOCAL_REF}")],
        (_, Some(t), _) => vec![format!("+refs/tags/{t}:{LOCAL_REF}")],
        (_, _, Some(_)) => vec![
            "+refs/heads/*:refs/kaas/heads/*".into(),
            "+refs/tags/*:refs/kaas/tags/*".into(),
        ],
        _ => return Err(fe("spec.ref", "set exactly one of branch, tag, commit")),
    };
    let remote = repo
        .remote_at_without_url_rewrite(url)
        .map_err(|e| fe("spec.url", chain(&e)))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            specs.iter().map(String::as_str),
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| fe("spec.ref", format!("{}: {}", describe(r), chain(&e))))?;
    let account = auth
        .and_then(|a| a.basic.clone())
        .map(|(username, password)| gix::sec::identity::Account {
            username,
            password,
            oauth_refresh_token: None,
        });
    let mut conn = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fe("spec.url", format!("cannot connect: {}", chain(&e))))?;
    if url.starts_with("http") {
        conn.set_transport_options(Box::new(http_options(auth.and_then(|a| a.ca_pem.clone()))?));
    }
    // Only the GitSource's Secret answers authentication: never credential helpers or prompts.
    let conn = conn.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            Ok(account
                .clone()
                .map(|identity| gix::credentials::protocol::Outcome {
                    identity,
                    next: ctx.into(),
                }))
        }
        _ => Ok(None),
    });
    conn.prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fe("spec.url", chain(&e)))?
        .receive(gix::progress::Discard, interrupt)
        .map_err(|e| {
            let m = chain(&e);
            if m.contains("matched any of") {
                fe(
                    "spec.ref",
                    format!("{} does not exist in the repository", describe(r)),
                )
            } else {
                fe("spec.url", format!("fetching: {m}"))
            }
        })?;
    match &r.commit {
        Some(c) if r.branch.is_none() && r.tag.is_none() => commit_by_id(repo, c),
        _ => commit_of_ref(repo, LOCAL_REF, r),
    }
}

/// HTTP transport settings: no repository or system git configuration, a connect timeout, and the
/// Secret's CA bundle trusted in addition to the system roots.
fn http_options(
    ca_pem: Option<Vec<u8>>,
) -> Result<gix::protocol::transport::client::blocking_io::http::Options, FetchError> {
    use gix::protocol::transport::client::blocking_io::http;
    let extra = match ca_pem {
        Some(pem) => reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            fe(
                "spec.secretRef",
                format!("ca.crt is not a PEM certificate bundle: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |b: reqwest::blocking::ClientBuilder| {
            Ok(b.tls_certs_merge(extra.clone()))
        })),
        configure_request: None,
    };
    Ok(http::Options {
        connect_timeout: Some(Duration::from_secs(20)),
        user_agent: Some(format!("kaas-gitsource/{}", env!("CARGO_PKG_VERSION"))),
        backend: Some(Arc::new(Mutex::new(backend))),
        ..Default::default()
    })
}

fn commit_by_id(repo: &gix::Repository, c: &str) -> Result<gix::ObjectId, FetchError> {
    let id = gix::ObjectId::from_hex(c.as_bytes())
        .map_err(|e| fe("spec.ref.commit", format!("{c:?}: {}", chain(&e))))?;
    repo.find_commit(id).map(|c| c.id).map_err(|_| {
        fe(
            "spec.ref.commit",
            format!("{c} is not a commit reachable from a branch or tag of the repository"),
        )
    })
}

/// The commit the reference `name` (standing for `r`) points at.
fn commit_of_ref(
    repo: &gix::Repository,
    name: &str,
    r: &GitRef,
) -> Result<gix::ObjectId, FetchError> {
    let mut reference = repo.find_reference(name).map_err(|_| {
        fe(
            "spec.ref",
            format!("{} does not exist in the repository", describe(r)),
        )
    })?;
    reference.peel_to_commit().map(|c| c.id).map_err(|e| {
        fe(
            "spec.ref",
            format!("{} is not a commit: {}", describe(r), chain(&e)),
        )
    })
}

fn resolve_local(repo: &gix::Repository, r: &GitRef) -> Result<gix::ObjectId, FetchError> {
    let name = match (&r.branch, &r.tag, &r.commit) {
        (Some(b), _, _) => format!("refs/heads/{b}"),
        (_, Some(t), _) => format!("refs/tags/{t}"),
        (_, _, Some(c)) => return commit_by_id(repo, c),
        _ => return Err(fe("spec.ref", "set exactly one of branch, tag, commit")),
    };
    commit_of_ref(repo, &name, r)
}

/// Normalises `spec.path` to a relative directory ("" for the root); refuses `..`.
pub fn normalise_path(path: &str) -> Result<String, FetchError> {
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(fe("spec.path", "must stay inside the repository (no '..')")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn read_tree(
    repo: &gix::Repository,
    commit: gix::ObjectId,
    path: &str,
) -> Result<Vec<(String, Vec<u8>)>, FetchError> {
    let broken = |e: &(dyn std::error::Error + 'static)| {
        fe("", format!("reading the revision {commit}: {}", chain(e)))
    };
    let prefix = normalise_path(path)?;
    let commit_obj = repo.find_commit(commit).map_err(|e| broken(&e))?;
    let mut tree = commit_obj.tree().map_err(|e| broken(&e))?;
    if !prefix.is_empty() {
        let entry = tree
            .lookup_entry_by_path(&prefix)
            .map_err(|e| broken(&e))?
            .ok_or_else(|| {
                fe(
                    "spec.path",
                    format!("{prefix:?} does not exist in revision {commit}"),
                )
            })?;
        if !entry.mode().is_tree() {
            return Err(fe("spec.path", format!("{prefix:?} is not a directory")));
        }
        tree = repo.find_tree(entry.object_id()).map_err(|e| broken(&e))?;
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut stack = vec![(prefix, tree.id)];
    while let Some((dir, id)) = stack.pop() {
        let tree = repo.find_tree(id).map_err(|e| broken(&e))?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| broken(&e))?;
            let name = entry.filename().to_string();
            let full = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let mode = entry.mode();
            // Symbolic links and submodules are not followed.
            if mode.is_tree() {
                stack.push((full, entry.object_id()));
            } else if mode.is_blob() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
                let blob = repo.find_blob(entry.object_id()).map_err(|e| broken(&e))?;
                bytes += blob.data.len();
                if out.len() >= MAX_FILES || bytes > MAX_BYTES {
                    return Err(fe(
                        "spec.path",
                        format!(
                            "more than {MAX_FILES} YAML files or {} MiB under the path",
                            MAX_BYTES >> 20
                        ),
                    ));
                }
                out.push((full, blob.data.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Reconcile.

/// The outcome of one attempt, before it becomes status.
enum Outcome {
    Fetch(FetchError),
    Invalid(String, Vec<SourceError>),
    ApplyFailed(String, Vec<SourceError>),
    Synced {
        revision: String,
        clusters: Vec<String>,
        keep: Vec<NotPruned>,
        changed: Vec<String>,
        pruned: Vec<String>,
    },
}

async fn credentials(
    client: &kube::Client,
    src: &GitSource,
) -> Result<Option<Credentials>, FetchError> {
    let Some(r) = &src.spec.secret_ref else {
        return Ok(None);
    };
    let ns = src.namespace().unwrap_or_default();
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&r.name)
        .await
        .map_err(|e| fe("spec.secretRef", format!("Secret {:?}: {e}", r.name)))?
        .ok_or_else(|| {
            fe(
                "spec.secretRef",
                format!("Secret {:?} does not exist", r.name),
            )
        })?;
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Credentials::from_secret_data(&data)
        .map(Some)
        .map_err(|why| fe("spec.secretRef", format!("Secret {:?} {why}", r.name)))
}

/// The field path of an API server refusal, and its messages.
fn api_errors(file: &str, e: &kube::Error) -> Vec<SourceError> {
    if let kube::Error::Api(s) = e {
        let causes: Vec<SourceError> = s
            .details
            .iter()
            .flat_map(|d| d.causes.iter())
            .map(|c| error(file, &c.field, c.message.clone()))
            .collect();
        if !causes.is_empty() {
            return causes;
        }
        return vec![error(file, "", s.message.clone())];
    }
    vec![error(file, "", e.to_string())]
}

async fn attempt(src: &GitSource, gctx: &GitContext) -> Result<Outcome, Error> {
    let client = &gctx.client;
    let ns = src.namespace().unwrap_or_default();
    let name = src.name_any();
    let auth = match credentials(client, src).await {
        Ok(a) => a,
        Err(e) => return Ok(Outcome::Fetch(e)),
    };
    let cache = gctx
        .cache_dir
        .join(src.uid().unwrap_or_else(|| format!("{ns}.{name}")));
    let (url, r, path) = (
        src.spec.url.clone(),
        src.spec.git_ref.clone(),
        src.spec.path.clone().unwrap_or_default(),
    );
    let allow_file = gctx.allow_file;
    let interrupt = Arc::new(AtomicBool::new(false));
    let stop = interrupt.clone();
    let task = tokio::task::spawn_blocking(move || {
        fetch(&cache, &url, &r, &path, auth.as_ref(), allow_file, &stop)
    });
    let snapshot = match tokio::time::timeout(FETCH_TIMEOUT, task).await {
        Ok(Ok(Ok(s))) => s,
        Ok(Ok(Err(e))) => return Ok(Outcome::Fetch(e)),
        Ok(Err(join)) => return Ok(Outcome::Fetch(fe("", format!("fetch failed: {join}")))),
        Err(_) => {
            interrupt.store(true, Ordering::Relaxed);
            return Ok(Outcome::Fetch(fe(
                "spec.url",
                format!("fetch did not finish within {FETCH_TIMEOUT:?}"),
            )));
        }
    };
    let revision = snapshot.revision.clone();
    let (docs, parse_errors) = parse_documents(&snapshot.files, &ns);
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns);
    let existing = clusters.list(&ListParams::default()).await?.items;
    let providers = Api::<Provider>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let planned = plan(
        &name,
        src.spec.prune == Some(true),
        docs,
        parse_errors,
        &existing,
        &providers,
    );
    if !planned.errors.is_empty() {
        return Ok(Outcome::Invalid(revision, planned.errors));
    }
    // The API server's own admission (and anything client-side validation cannot see) is part of
    // the all-or-nothing: a dry run of every apply first.
    let objects: Vec<(&Document, Value)> = planned
        .apply
        .iter()
        .map(|d| (d, desired_object(d, &name, &ns)))
        .collect();
    let mut refused = Vec::new();
    for (d, obj) in &objects {
        let pp = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        if let Err(e) = clusters.patch(&d.name, &pp, &Patch::Apply(obj)).await {
            refused.extend(api_errors(&d.file, &e));
        }
    }
    if !refused.is_empty() {
        return Ok(Outcome::Invalid(revision, refused));
    }
    let mut changed = Vec::new();
    let mut failed = Vec::new();
    for (d, obj) in &objects {
        let before = existing
            .iter()
            .find(|c| c.name_any() == d.name)
            .and_then(|c| c.resource_version());
        match clusters
            .patch(
                &d.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
        {
            Ok(after) => {
                if after.resource_version() != before {
                    changed.push(d.name.clone());
                }
            }
            Err(e) => failed.extend(api_errors(&d.file, &e)),
        }
    }
    let mut keep = planned.keep.clone();
    let mut pruned = Vec::new();
    if failed.is_empty() {
        for p in &planned.prune {
            match clusters.delete(p, &DeleteParams::default()).await {
                Ok(_) => pruned.push(p.clone()),
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => {
                    let why = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        other => other.to_string(),
                    };
                    keep.push(NotPruned {
                        name: p.clone(),
                        reason: format!("deletion refused: {why}"),
                    });
                }
            }
        }
    }
    if !failed.is_empty() {
        return Ok(Outcome::ApplyFailed(revision, failed));
    }
    let mut names: Vec<String> = planned.apply.iter().map(|d| d.name.clone()).collect();
    names.sort();
    keep.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Outcome::Synced {
        revision,
        clusters: names,
        keep,
        changed,
        pruned,
    })
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

fn summarise(errors: &[SourceError]) -> String {
    const SHOWN: usize = 5;
    let mut m = errors
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > SHOWN {
        m.push_str(&format!(
            "; and {} more (status.errors)",
            errors.len() - SHOWN
        ));
    }
    m
}

/// The new status for an outcome (pure, given `now`).
fn next_status(src: &GitSource, outcome: &Outcome, now: &Time) -> GitSourceStatus {
    let mut s = src.status.clone().unwrap_or_default();
    let generation = src.metadata.generation;
    s.observed_generation = generation;
    let (status, reason, message) = match outcome {
        Outcome::Fetch(e) => {
            s.errors = vec![error("", e.path, e.message.clone())];
            let msg = if e.path.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.path, e.message)
            };
            (Status::False, reasons::FETCH_FAILED, msg)
        }
        Outcome::Invalid(rev, errors) => {
            s.last_attempted_revision = Some(rev.clone());
            s.errors = errors.clone();
            (
                Status::False,
                reasons::VALIDATION_FAILED,
                format!(
                    "revision {} is invalid, nothing of it was applied (still at {}): {}",
                    short(rev),
                    s.last_applied_revision
                        .as_deref()
                        .map(short)
                        .unwrap_or("no revision"),
                    summarise(errors)
                ),
            )
        }
        Outcome::ApplyFailed(rev, errors) => {
            s.last_attempted_revision = Some(rev.clone());
            s.errors = errors.clone();
            (
                Status::False,
                reasons::APPLY_FAILED,
                format!(
                    "revision {}: the API server refused: {}",
                    short(rev),
                    summarise(errors)
                ),
            )
        }
        Outcome::Synced {
            revision,
            clusters,
            keep,
            changed,
            pruned,
        } => {
            if s.last_applied_revision.as_ref() != Some(revision)
                || !changed.is_empty()
                || !pruned.is_empty()
                || s.last_sync_time.is_none()
            {
                s.last_sync_time = Some(now.clone());
            }
            s.last_attempted_revision = Some(revision.clone());
            s.last_applied_revision = Some(revision.clone());
            s.errors.clear();
            s.clusters = clusters.clone();
            s.not_pruned = keep.clone();
            let mut msg = format!(
                "revision {} applied: {} cluster(s)",
                short(revision),
                clusters.len()
            );
            if !keep.is_empty() {
                msg.push_str(&format!("; {} not pruned (status.notPruned)", keep.len()));
            }
            (Status::True, reasons::SYNCED, msg)
        }
    };
    c::set(
        &mut s.conditions,
        c::READY,
        status,
        reason,
        message,
        generation,
        now,
    );
    s
}

async fn write_status(
    src: &GitSource,
    gctx: &GitContext,
    new: GitSourceStatus,
) -> Result<(), Error> {
    if src.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let api: Api<GitSource> =
        Api::namespaced(gctx.client.clone(), &src.namespace().unwrap_or_default());
    let body = json!({"apiVersion": "scs.community/v1alpha1", "kind": "GitSource", "status": new});
    api.patch_status(
        &src.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    publish(src, gctx, &new).await;
    Ok(())
}

async fn publish(src: &GitSource, gctx: &GitContext, new: &GitSourceStatus) {
    let old = src.status.clone().unwrap_or_default();
    let (Some(n), o) = (
        c::get(&new.conditions, c::READY),
        c::get(&old.conditions, c::READY),
    ) else {
        return;
    };
    let same = o.is_some_and(|o| o.status == n.status && o.reason == n.reason);
    let new_revision = new.last_applied_revision != old.last_applied_revision
        || (n.status == "False" && new.last_attempted_revision != old.last_attempted_revision);
    if same && !new_revision {
        return;
    }
    let ev = Event {
        type_: if n.status == "False" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason.clone(),
        note: Some(n.message.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = gctx.recorder.publish(&ev, &src.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

fn sweep(gctx: &GitContext) {
    {
        let mut swept = gctx.swept.lock().unwrap_or_else(|p| p.into_inner());
        if swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        *swept = Some(Instant::now());
    }
    let live: BTreeSet<String> = gctx.store.state().iter().filter_map(|s| s.uid()).collect();
    gctx.last
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|uid, _| live.contains(uid));
    if live.is_empty() {
        // The store may not be synced yet; never wipe everything on that basis.
        return;
    }
    let Ok(entries) = std::fs::read_dir(&gctx.cache_dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !live.contains(&n) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn reconcile(src: Arc<GitSource>, gctx: Arc<GitContext>) -> Result<Action, Error> {
    let now = Time(Timestamp::now());
    let generation = src.metadata.generation;
    let interval = parse_interval(src.spec.interval.as_deref().unwrap_or(DEFAULT_INTERVAL))
        .unwrap_or(Duration::from_secs(60));
    if src.spec.suspend == Some(true) {
        let mut s = src.status.clone().unwrap_or_default();
        s.observed_generation = generation;
        let before = c::get(&s.conditions, c::READY)
            .map(|r| match r.status.as_str() {
                "True" => Status::True,
                "False" => Status::False,
                _ => Status::Unknown,
            })
            .unwrap_or(Status::Unknown);
        c::set(
            &mut s.conditions,
            c::READY,
            before,
            reasons::SUSPENDED,
            format!(
                "suspended (spec.suspend): nothing is fetched or applied; the Clusters stay at {}",
                s.last_applied_revision
                    .as_deref()
                    .map(short)
                    .unwrap_or("no revision")
            ),
            generation,
            &now,
        );
        write_status(&src, &gctx, s).await?;
        return Ok(Action::await_change());
    }
    // Our own status writes come back as watch events: do not fetch again for those.
    let uid = src.uid().unwrap_or_default();
    if let Some((g, at)) = gctx
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .copied()
        && g == generation
        && at.elapsed() < interval
    {
        return Ok(Action::requeue(interval - at.elapsed()));
    }
    sweep(&gctx);
    let outcome = attempt(&src, &gctx).await?;
    let retry = match &outcome {
        Outcome::Fetch(_) | Outcome::ApplyFailed(..) => interval.min(RETRY),
        _ => interval,
    };
    match &outcome {
        Outcome::Synced {
            revision,
            changed,
            pruned,
            ..
        } if !changed.is_empty() || !pruned.is_empty() => {
            info!(gitsource = %src.name_any(), namespace = ?src.namespace(), revision = %short(revision), ?changed, ?pruned, "applied");
        }
        Outcome::Fetch(e) => {
            warn!(gitsource = %src.name_any(), namespace = ?src.namespace(), path = e.path, error = %e.message, "fetch failed");
        }
        _ => {}
    }
    let new = next_status(&src, &outcome, &now);
    write_status(&src, &gctx, new).await?;
    gctx.last
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(uid, (generation, Instant::now()));
    Ok(Action::requeue(retry))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = include_str!("../../../examples/provider-inmemory.yaml");

    fn provider() -> Provider {
        serde_yaml::from_str(PROVIDER).unwrap()
    }

    fn file(name: &str, text: &str) -> (String, Vec<u8>) {
        (name.to_string(), text.as_bytes().to_vec())
    }

    fn cluster_yaml(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  provider: {{name: dev}}\n  workers: [{{name: a, flavor: small, count: 1}}]\n{extra}"
        )
    }

    fn existing(name: &str, source: Option<&str>, protected: bool) -> Cluster {
        let mut c: Cluster = serde_yaml::from_str(&cluster_yaml(name, "")).unwrap();
        c.metadata.namespace = Some("t".into());
        if let Some(s) = source {
            c.metadata.labels = Some([(SOURCE_LABEL.to_string(), s.to_string())].into());
        }
        if protected {
            c.spec.deletion_protection = Some(true);
        }
        c
    }

    fn run_plan(files: &[(String, Vec<u8>)], existing: &[Cluster], prune: bool) -> Plan {
        let (docs, errs) = parse_documents(files, "t");
        plan("src", prune, docs, errs, existing, &[provider()])
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        for bad in [
            "",
            "1",
            "1s1m",
            "m",
            "1d",
            "1s",
            "99999999999999999999h",
            "1m1m",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_stay_inside_the_repository() {
        assert_eq!(normalise_path("./clusters/").unwrap(), "clusters");
        assert_eq!(normalise_path("/").unwrap(), "");
        assert_eq!(normalise_path("a//b").unwrap(), "a/b");
        assert!(normalise_path("a/../../etc").is_err());
    }

    #[test]
    fn documents_of_other_kinds_namespaces_and_broken_yaml_are_errors_with_file_and_path() {
        let files = [
            file(
                "a.yaml",
                &format!(
                    "{}---\n# only a comment\n---\n{}",
                    cluster_yaml("one", ""),
                    cluster_yaml("two", "")
                ),
            ),
            file(
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            ),
            file(
                "other.yml",
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: y, namespace: other}\n",
            ),
            file("broken.yaml", "a: [\n"),
            file("dup.yaml", &cluster_yaml("one", "")),
            file(
                "noname.yaml",
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nspec: {}\n",
            ),
            file("list.yaml", "- 1\n"),
            file(
                "old.yaml",
                "apiVersion: scs.community/v1beta9\nkind: Cluster\nmetadata: {name: z}\n",
            ),
        ];
        let (docs, errs) = parse_documents(&files, "t");
        assert_eq!(
            docs.iter()
                .map(|d| (d.file.as_str(), d.index, d.name.as_str()))
                .collect::<Vec<_>>(),
            [("a.yaml", 0, "one"), ("a.yaml", 2, "two")]
        );
        let got: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.file.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("cm.yaml", "kind"),
                ("other.yml", "metadata.namespace"),
                ("broken.yaml", ""),
                ("dup.yaml", "metadata.name"),
                ("noname.yaml", "metadata.name"),
                ("list.yaml", ""),
                ("old.yaml", "apiVersion"),
            ]
        );
        assert!(
            errs[1].message.contains("its own namespace \"t\""),
            "{}",
            errs[1]
        );
        assert!(errs[3].message.contains("also in a.yaml"), "{}", errs[3]);
    }

    #[test]
    fn a_valid_revision_applies_everything_and_prunes_only_when_asked() {
        let files = [
            file("c/a.yaml", &cluster_yaml("a", "")),
            file("c/b.yaml", &cluster_yaml("b", "")),
        ];
        let old = [
            existing("a", Some("src"), false),
            existing("gone", Some("src"), false),
            existing("kept", Some("src"), true),
            existing("foreign", None, false),
            existing("sibling", Some("other-src"), false),
        ];
        let p = run_plan(&files, &old, true);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.apply.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(p.prune, ["gone"]);
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.keep[0].name, "kept");
        assert!(p.keep[0].reason.contains("deletionProtection"));

        let p = run_plan(&files, &old, false);
        assert!(p.prune.is_empty());
        assert_eq!(
            p.keep.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            ["gone", "kept"]
        );
    }

    #[test]
    fn one_invalid_document_means_nothing_is_applied_or_pruned() {
        let files = [
            file("ok.yaml", &cluster_yaml("a", "")),
            file(
                "bad.yaml",
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: b}\nspec:\n  provider: {name: dev}\n  workers: [{name: a, flavor: m9.huge}]\n",
            ),
            file(
                "schema.yaml",
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  controlPlane: {replicas: 2}\n",
            ),
        ];
        let old = [existing("gone", Some("src"), false)];
        let p = run_plan(&files, &old, true);
        assert!(
            p.apply.is_empty() && p.prune.is_empty() && p.keep.is_empty(),
            "{p:?}"
        );
        let got: Vec<(&str, &str)> = p
            .errors
            .iter()
            .map(|e| (e.file.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bad.yaml", "spec.workers[0].flavor"),
                ("schema.yaml", "spec.controlPlane.replicas")
            ]
        );
        assert!(p.errors[0].message.contains("m9.huge"), "{}", p.errors[0]);
    }

    #[test]
    fn a_cluster_not_created_by_this_source_is_never_taken_over() {
        let files = [
            file("a.yaml", &cluster_yaml("mine", "")),
            file("b.yaml", &cluster_yaml("theirs", "")),
        ];
        for owner in [None, Some("other-src")] {
            let p = run_plan(&files, &[existing("theirs", owner, false)], true);
            assert!(p.apply.is_empty());
            assert_eq!(p.errors.len(), 1);
            assert_eq!(
                (p.errors[0].file.as_str(), p.errors[0].path.as_str()),
                ("b.yaml", "metadata.name")
            );
            assert!(
                p.errors[0].message.contains("never takes over"),
                "{}",
                p.errors[0]
            );
        }
    }

    #[test]
    fn transition_rules_see_the_existing_cluster() {
        let mut old = existing("a", Some("src"), false);
        old.spec.provider.as_mut().unwrap().region = Some("elsewhere".into());
        let p = run_plan(&[file("a.yaml", &cluster_yaml("a", ""))], &[old], false);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!(p.errors[0].path, "spec.provider.region");
    }

    #[test]
    fn a_cluster_of_an_unknown_provider_is_only_schema_checked() {
        let text = "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {name: nowhere}\n  workers: [{name: a, flavor: anything}]\n";
        let p = run_plan(&[file("a.yaml", text)], &[], false);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
    }

    #[test]
    fn the_applied_object_carries_the_source_label_and_nothing_of_status() {
        let text = format!(
            "{}status: {{phase: Ready}}\n",
            cluster_yaml("a", "")
        )
        .replace("metadata:\n  name: a\n", "metadata:\n  name: a\n  labels: {team: x}\n  finalizers: [f]\n  annotations: {note: y}\n");
        let (docs, errs) = parse_documents(&[file("a.yaml", &text)], "t");
        assert!(errs.is_empty(), "{errs:?}");
        let o = desired_object(&docs[0], "src", "t");
        assert_eq!(o["metadata"]["labels"][SOURCE_LABEL], "src");
        assert_eq!(o["metadata"]["labels"]["team"], "x");
        assert_eq!(o["metadata"]["annotations"]["note"], "y");
        assert_eq!(o["metadata"]["namespace"], "t");
        assert!(o.get("status").is_none() && o["metadata"].get("finalizers").is_none());
        assert_eq!(o["spec"]["workers"][0]["flavor"], "small");
    }

    #[test]
    fn credentials_are_never_printed_or_reported() {
        let c = Credentials::basic("robot", "hunter22");
        assert!(!format!("{c:?}").contains("hunter22"));
        assert_eq!(
            c.scrub("auth for robot with hunter22 failed".into()),
            "auth for <redacted> with <redacted> failed"
        );
        let data = |kv: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        assert!(Credentials::from_secret_data(&data(&[("username", "u")])).is_err());
        assert!(Credentials::from_secret_data(&data(&[("token", "t")])).is_err());
        let ca = Credentials::from_secret_data(&data(&[("ca.crt", "pem")])).unwrap();
        assert!(ca.basic.is_none() && ca.ca_pem.is_some());
        let both =
            Credentials::from_secret_data(&data(&[("username", "bot"), ("password", "pass-word")]))
                .unwrap();
        assert_eq!(both.basic, Some(("bot".into(), "pass-word".into())));
        // Credentials never go over plain http (or git://).
        let stop = AtomicBool::new(false);
        let r = GitRef {
            branch: Some("main".into()),
            ..Default::default()
        };
        let dir = std::env::temp_dir().join("kaas-gitsource-unit-never-used");
        for url in ["http://127.0.0.1:1/repo", "git://127.0.0.1:1/repo"] {
            let e = fetch(&dir, url, &r, "", Some(&both), false, &stop).unwrap_err();
            assert_eq!(e.path, "spec.url");
            assert!(e.message.contains("https only"), "{}", e.message);
        }
        assert!(!dir.exists());
    }

    /// A repository made with the git CLI (tests only), read through `file://` by gitoxide.
    #[test]
    fn file_urls_are_read_in_place_and_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@kaas.invalid"])
                .args(args)
                .current_dir(dir.path())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(dir.path().join("c/sub")).unwrap();
        std::fs::write(dir.path().join("c/a.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("c/sub/b.yml"), "b: 1\n").unwrap();
        std::fs::write(dir.path().join("c/notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join("top.yaml"), "t: 1\n").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "one"]);
        git(&["tag", "-a", "v1", "-m", "v1"]);
        let first = git(&["rev-parse", "HEAD"]);
        std::fs::write(dir.path().join("c/a.yaml"), "a: 2\n").unwrap();
        git(&["commit", "-q", "-am", "two"]);
        let second = git(&["rev-parse", "HEAD"]);

        let url = format!("file://{}", dir.path().display());
        let stop = AtomicBool::new(false);
        let cache = dir.path().join("unused-cache");
        let get =
            |r: GitRef, path: &str, allow: bool| fetch(&cache, &url, &r, path, None, allow, &stop);
        let branch = GitRef {
            branch: Some("main".into()),
            ..Default::default()
        };
        let s = get(branch.clone(), "c", true).unwrap();
        assert_eq!(s.revision, second);
        assert_eq!(
            s.files,
            [
                ("c/a.yaml".to_string(), b"a: 2\n".to_vec()),
                ("c/sub/b.yml".to_string(), b"b: 1\n".to_vec())
            ]
        );
        assert_eq!(get(branch.clone(), "", true).unwrap().files.len(), 3);
        let tag = GitRef {
            tag: Some("v1".into()),
            ..Default::default()
        };
        let s = get(tag, "./c/", true).unwrap();
        assert_eq!(
            s.revision, first,
            "an annotated tag is peeled to its commit"
        );
        assert_eq!(s.files[0].1, b"a: 1\n");
        let commit = GitRef {
            commit: Some(first.clone()),
            ..Default::default()
        };
        assert_eq!(get(commit, "c", true).unwrap().revision, first);

        let e = get(branch.clone(), "c", false).unwrap_err();
        assert_eq!(e.path, "spec.url");
        let e = get(branch.clone(), "nowhere", true).unwrap_err();
        assert_eq!(e.path, "spec.path");
        let e = get(branch.clone(), "top.yaml", true).unwrap_err();
        assert!(e.message.contains("not a directory"), "{}", e.message);
        let missing = GitRef {
            branch: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(get(missing, "", true).unwrap_err().path, "spec.ref");
        let unknown = GitRef {
            commit: Some("0".repeat(40)),
            ..Default::default()
        };
        assert_eq!(get(unknown, "", true).unwrap_err().path, "spec.ref.commit");
        assert!(!cache.exists(), "file:// is read in place");
        let e = fetch(
            &cache,
            "ssh://example.invalid/r",
            &branch,
            "",
            None,
            true,
            &stop,
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.url");
    }

    #[test]
    fn validation_failure_keeps_the_applied_revision() {
        let mut src: GitSource = serde_json::from_value(json!({
            "apiVersion": "scs.community/v1alpha1", "kind": "GitSource",
            "metadata": {"name": "s", "namespace": "t", "generation": 3},
            "spec": {"url": "git://h/r", "ref": {"branch": "main"}},
        }))
        .unwrap();
        let now = Time(Timestamp::from_second(100).unwrap());
        let synced = Outcome::Synced {
            revision: "a".repeat(40),
            clusters: vec!["x".into()],
            keep: vec![],
            changed: vec!["x".into()],
            pruned: vec![],
        };
        src.status = Some(next_status(&src, &synced, &now));
        let later = Time(Timestamp::from_second(200).unwrap());
        let invalid = Outcome::Invalid(
            "b".repeat(40),
            vec![error("f.yaml", "spec.workers[0].count", "must be ≥ 1")],
        );
        let s = next_status(&src, &invalid, &later);
        assert_eq!(s.last_applied_revision, Some("a".repeat(40)));
        assert_eq!(s.last_attempted_revision, Some("b".repeat(40)));
        assert_eq!(s.clusters, ["x"]);
        assert_eq!(s.last_sync_time, Some(now.clone()));
        let ready = c::get(&s.conditions, c::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ValidationFailed")
        );
        assert!(
            ready
                .message
                .contains("f.yaml: spec.workers[0].count: must be ≥ 1"),
            "{}",
            ready.message
        );
        // A second sync of the same revision with no change leaves the sync time alone.
        let unchanged = Outcome::Synced {
            revision: "a".repeat(40),
            clusters: vec!["x".into()],
            keep: vec![],
            changed: vec![],
            pruned: vec![],
        };
        let s = next_status(&src, &unchanged, &later);
        assert_eq!(s.last_sync_time, Some(now));
        assert_eq!(Some(&s), src.status.as_ref());
    }
}
