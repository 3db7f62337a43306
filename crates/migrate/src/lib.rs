//! Migration from the script-based SCS KaaS v1 ([k8s-cluster-api-provider]) to an SCS-API
//! `Cluster`: [`migrate`] reads a v1 cluster's settings (`~/CLUSTER/clusterctl.yaml`, a flat map of
//! `KEY: value`) and produces the `Cluster` plus a [`Report`] saying for every key whether it was
//! mapped (to which field), is derived by the provider now, has no equivalent (why), is a secret
//! (never copied; its value appears nowhere) or is unknown.
//!
//! Pure: no I/O, no clock; the same input gives the same output. Bad input gives an [`Error`]
//! naming each offending key, never a panic. `docs/migration.md` has the mapping table.
//!
//! [k8s-cluster-api-provider]: https://github.com/SovereignCloudStack/k8s-cluster-api-provider

pub mod keys;
pub mod report;

use std::collections::HashMap;
use std::net::IpAddr;

use kaas_api::cluster::{
    AccessSpec, ControlPlaneSpec, ExtensionToggle, Extensions, KubernetesSpec, NetworkSpec,
    ProviderRef, WorkerPool,
};
use kaas_api::version::Patch;
use kaas_api::{Cluster, ClusterSpec, KubeVersion};
use serde_json::{Value as Json, json};
use serde_yaml::Value;

pub use report::{Entry, Kind, Report};

/// Name of the one worker pool a v1 cluster has (v1 named its MachineDeployment `…-md-0-…`).
pub const POOL_NAME: &str = "md-0";
/// `spec.provider.providerType` of every migrated cluster: KaaS v1 ran on OpenStack only.
pub const PROVIDER_TYPE: &str = "openstack";
/// Implementation of the v1 ingress controller.
pub const INGRESS_IMPLEMENTATION: &str = "nginx";

/// What the settings do not say: where the cluster goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `metadata.name`; overrides a `CLUSTER_NAME` key.
    pub name: Option<String>,
    /// Name used when neither `name` nor a `CLUSTER_NAME` key gives one (the CLI passes the name
    /// found in the file's path, `~/NAME/clusterctl.yaml` or `clusterctl-NAME.yaml`).
    pub default_name: Option<String>,
    /// `metadata.namespace`: the tenant's namespace. Empty: left to `kubectl -n`.
    pub namespace: Option<String>,
    /// `spec.provider.name`: the `Provider` offering.
    pub provider: Option<String>,
    /// `spec.provider.region`. Empty: the provider's first region.
    pub region: Option<String>,
    /// Keep the exact patch of `KUBERNETES_VERSION` (`1.28.11`) instead of `1.28.x`.
    pub keep_patch: bool,
}

/// The result: the cluster and what became of each key.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// The SCS `Cluster`.
    pub cluster: Cluster,
    /// What became of every key of the settings.
    pub report: Report,
}

/// One problem with one key (or option).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct KeyError {
    /// The v1 key, or the option (`--name`, …).
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Why the settings cannot be migrated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not YAML at all.
    #[error("the settings are not YAML: {0}")]
    Yaml(String),
    /// YAML, but not a map of keys.
    #[error("the settings must be a map of KEY: value (a KaaS v1 clusterctl.yaml); found {0}")]
    NotAMap(&'static str),
    /// Values that cannot be translated, each with its key.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<KeyError>),
}

/// Translates v1 settings into an SCS `Cluster` and a report.
pub fn migrate(settings_yaml: &str, opts: &Options) -> Result<Migration, Error> {
    let doc: Value =
        serde_yaml::from_str(settings_yaml).map_err(|e| Error::Yaml(redact(&e.to_string())))?;
    let map = match untag(doc) {
        Value::Mapping(m) => m,
        Value::Null => return Err(Error::NotAMap("an empty document")),
        Value::Sequence(_) => return Err(Error::NotAMap("a list")),
        _ => return Err(Error::NotAMap("a single value")),
    };
    let mut m = Migrator {
        opts,
        settings: Vec::new(),
        entries: HashMap::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        spec: ClusterSpec::default(),
    };
    for (k, v) in map {
        match untag(k) {
            Value::String(key) => m.settings.push((key, untag(v))),
            other => m.errors.push(KeyError {
                key: original(&other),
                message: "keys must be strings (KEY: value)".into(),
            }),
        }
    }
    let name = m.name();
    m.provider();
    m.version();
    m.control_plane();
    m.workers();
    m.network();
    m.access();
    m.extensions();
    let entries = m.remaining();
    if !m.errors.is_empty() {
        return Err(Error::Invalid(m.errors));
    }
    let mut cluster = Cluster::new(&name.unwrap_or_default(), m.spec);
    cluster.metadata.namespace = opts.namespace.clone();
    Ok(Migration {
        cluster,
        report: Report {
            entries,
            warnings: m.warnings,
            notes: m.notes,
        },
    })
}

impl Migration {
    /// The cluster as YAML, after a comment block with the whole report: what `kaas migrate`
    /// prints, so the review notes travel with the file.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# SCS Cluster migrated by `kaas migrate` from KaaS v1 (k8s-cluster-api-provider) settings.\n\
             # Review it, check it against the provider's offering, then apply it:\n\
             #   kaas validate -f cluster.yaml -p provider.yaml && kubectl apply -f cluster.yaml\n#\n",
        );
        for line in self.report.lines() {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str(&format!("# {line}\n"));
            }
        }
        out.push_str(&self.cluster_yaml());
        out
    }

    /// The cluster alone, as YAML.
    pub fn cluster_yaml(&self) -> String {
        serde_yaml::to_string(&self.cluster).expect("a Cluster serialises to YAML")
    }

    /// `{cluster, report}` as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&json!({"cluster": self.cluster, "report": self.report}))
            .expect("a Cluster and a report serialise to JSON")
    }
}

struct Migrator<'a> {
    opts: &'a Options,
    settings: Vec<(String, Value)>,
    entries: HashMap<String, Entry>,
    errors: Vec<KeyError>,
    warnings: Vec<String>,
    notes: Vec<String>,
    spec: ClusterSpec,
}

/// A switch of v1 that may also pin a version (`true`, `false`, `v1.9.6`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Toggle {
    on: bool,
    pinned: Option<String>,
}

impl Migrator<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn present(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(KeyError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The value as one trimmed string: `None` when absent, null or empty; an error for lists
    /// and maps.
    fn scalar(&mut self, key: &str) -> Option<String> {
        let text = match self.get(key)? {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_string(),
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                self.error(key, "expected a single value, found a list or map");
                return None;
            }
        };
        (!text.is_empty()).then_some(text)
    }

    fn record(
        &mut self,
        key: &str,
        kind: Kind,
        field: Option<&str>,
        value: Option<Json>,
        note: String,
    ) {
        let original = self
            .get(key)
            .filter(|_| keys::value_shown(key, kind))
            .map(original);
        self.entries.insert(
            key.to_string(),
            Entry {
                key: key.to_string(),
                kind,
                field: field.map(str::to_string),
                value,
                original,
                note,
            },
        );
    }

    fn mapped(&mut self, key: &str, field: &str, value: Json, note: impl Into<String>) {
        self.record(key, Kind::Mapped, Some(field), Some(value), note.into());
    }

    /// A mapped key whose value is empty: the field is left to the provider.
    fn mapped_empty(&mut self, key: &str, field: &str) {
        if self.present(key) {
            self.mapped(
                key,
                field,
                Json::Null,
                "empty in v1: the provider's default applies",
            );
        }
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        let raw = self.scalar(key)?;
        match raw.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.error(key, format!("expected true or false, found {raw:?}"));
                None
            }
        }
    }

    fn toggle(&mut self, key: &str) -> Option<Toggle> {
        let raw = self.scalar(key)?;
        match raw.to_ascii_lowercase().as_str() {
            "true" => Some(Toggle {
                on: true,
                pinned: None,
            }),
            "false" => Some(Toggle {
                on: false,
                pinned: None,
            }),
            _ if is_pinned_version(&raw) => Some(Toggle {
                on: true,
                pinned: Some(raw),
            }),
            _ => {
                self.error(
                    key,
                    format!("expected true, false or a version such as v1.2.3, found {raw:?}"),
                );
                None
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        const KEY: &str = "CLUSTER_NAME";
        let from_key = self.scalar(KEY);
        let (name, source) = match (&self.opts.name, &from_key, &self.opts.default_name) {
            (Some(n), _, _) => (n.clone(), "--name"),
            (None, Some(n), _) => (n.clone(), KEY),
            (None, None, Some(n)) => (n.clone(), "--name"),
            (None, None, None) => {
                self.error(
                    "--name",
                    "no cluster name: pass --name (v1 settings carry the name only in their path, ~/NAME/clusterctl.yaml)",
                );
                return None;
            }
        };
        if let Err(e) = dns_label(&name, 63) {
            let what = if source == KEY {
                KEY.to_string()
            } else {
                "--name (metadata.name)".to_string()
            };
            self.error(&what, format!("{name:?} {e}"));
            return None;
        }
        if self.present(KEY) {
            let note = match &from_key {
                Some(k) if *k != name => format!("overridden by --name (v1 name {k:?})"),
                _ => "the cluster's name".into(),
            };
            self.mapped(KEY, "metadata.name", json!(name), note);
        }
        Some(name)
    }

    fn provider(&mut self) {
        let o = self.opts;
        if let Some(ns) = &o.namespace {
            if let Err(e) = dns_label(ns, 63) {
                self.error("--namespace (metadata.namespace)", format!("{ns:?} {e}"));
            } else if ns.starts_with("kaas-") {
                self.error(
                    "--namespace (metadata.namespace)",
                    format!(
                        "{ns:?}: tenant namespaces must not start with kaas- (docs/tenancy.md)"
                    ),
                );
            }
        } else {
            self.notes.push("metadata.namespace is not set: apply into the tenant's namespace (kubectl -n TENANT apply -f …) or pass --namespace".into());
        }
        if let Some(p) = &o.provider {
            let ok = !p.is_empty()
                && p.len() <= 253
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                self.error(
                    "--provider (spec.provider.name)",
                    format!(
                        "{p:?} is not a Provider name (lower-case letters, digits, '-' and '.')"
                    ),
                );
            }
        } else {
            self.notes.push("spec.provider.name is not set: pass --provider (kubectl get providers.scs.community) or set it before applying".into());
        }
        if let Some(r) = &o.region {
            if r.is_empty() || r.len() > 63 {
                self.error(
                    "--region (spec.provider.region)",
                    format!("{r:?} must be 1 to 63 characters"),
                );
            }
        } else {
            self.notes.push(
                "spec.provider.region is not set: the provider's first region applies (--region)"
                    .into(),
            );
        }
        self.notes.push(format!(
            "spec.provider.providerType is {PROVIDER_TYPE}: KaaS v1 ran on OpenStack only"
        ));
        self.spec.provider = Some(ProviderRef {
            name: o.provider.clone(),
            provider_type: Some(PROVIDER_TYPE.into()),
            region: o.region.clone(),
        });
    }

    fn version(&mut self) {
        const KEY: &str = "KUBERNETES_VERSION";
        const FIELD: &str = "spec.kubernetes.version";
        let Some(raw) = self.scalar(KEY) else {
            self.mapped_empty(KEY, FIELD);
            self.notes.push(format!(
                "{FIELD} is not set: the provider's default (its newest supported version) applies"
            ));
            return;
        };
        let v: KubeVersion = match raw.parse() {
            Ok(v) => v,
            Err(_) => {
                return self.error(
                    KEY,
                    format!("{raw:?} is not a Kubernetes version (expected vMAJOR.MINOR.PATCH or vMAJOR.MINOR.x)"),
                );
            }
        };
        let branch = format!("{}.{}", v.major, v.minor);
        let (version, note) = match (v.patch, self.opts.keep_patch) {
            (Patch::Latest, _) => (
                format!("{branch}.x"),
                format!("the newest patch of {branch} the provider offers, as .x meant in v1"),
            ),
            (Patch::Exact(_), true) => {
                let exact = v.to_string().trim_start_matches('v').to_string();
                (
                    exact.clone(),
                    format!("exactly {exact} (--keep-patch): the provider must offer this patch"),
                )
            }
            (Patch::Exact(p), false) => (
                format!("{branch}.x"),
                format!(
                    "v1 ran {raw}; {branch}.x follows the newest patch of {branch} the provider offers (--keep-patch requests exactly {branch}.{p})"
                ),
            ),
        };
        if version.len() > 64 {
            return self.error(KEY, format!("{raw:?} is longer than 64 characters"));
        }
        self.mapped(KEY, FIELD, json!(version), note);
        self.spec.kubernetes = Some(KubernetesSpec {
            version: Some(version),
        });
    }

    fn control_plane(&mut self) {
        let mut cp = ControlPlaneSpec::default();
        const COUNT: &str = "CONTROL_PLANE_MACHINE_COUNT";
        match self.scalar(COUNT).map(|raw| (integer(&raw), raw)) {
            Some((Ok(n @ (1 | 3 | 5)), _)) => {
                cp.replicas = Some(n as i32);
                self.mapped(COUNT, "spec.controlPlane.replicas", json!(n), "control-plane nodes");
            }
            Some((Ok(0), _)) => self.error(
                COUNT,
                "0 control-plane nodes (v1: do not create the cluster) cannot be migrated: an SCS cluster has 1, 3 or 5",
            ),
            Some((Ok(n), _)) => self.error(
                COUNT,
                format!("{n} control-plane nodes: an SCS cluster has 1, 3 or 5 (etcd needs an odd number); choose one of them"),
            ),
            Some((Err(e), raw)) => self.error(COUNT, format!("{raw:?} {e}")),
            None => {
                self.mapped_empty(COUNT, "spec.controlPlane.replicas");
                self.notes.push("spec.controlPlane.replicas is not set: the provider's default applies".into());
            }
        }

        const FLAVOR: &str = "OPENSTACK_CONTROL_PLANE_MACHINE_FLAVOR";
        match self.scalar(FLAVOR) {
            Some(f) => {
                self.mapped(
                    FLAVOR,
                    "spec.controlPlane.flavor",
                    json!(f),
                    "must be a flavor the provider offers for control-plane nodes",
                );
                cp.flavor = Some(f);
            }
            None => {
                self.mapped_empty(FLAVOR, "spec.controlPlane.flavor");
                self.notes.push(
                    "spec.controlPlane.flavor is not set: the provider's default applies".into(),
                );
            }
        }

        const AA: &str = "OPENSTACK_ANTI_AFFINITY";
        const AA_OLD: &str = "OPENSTACK_ANTIAFFINITY";
        const FIELD: &str = "spec.controlPlane.antiAffinity";
        const NOTE: &str = "control-plane nodes on distinct hosts; v1 also put workers into a soft anti-affinity group: worker placement is the provider's now";
        let new = self.bool(AA);
        let old = self.bool(AA_OLD);
        if let Some(on) = new {
            self.mapped(AA, FIELD, json!(on), NOTE);
            if old.is_some() {
                self.mapped(
                    AA_OLD,
                    FIELD,
                    json!(on),
                    format!("older spelling of {AA}, which wins"),
                );
            }
        } else if let Some(on) = old {
            self.mapped(
                AA_OLD,
                FIELD,
                json!(on),
                format!("older spelling of {AA}; {NOTE}"),
            );
        }
        for key in [AA, AA_OLD] {
            if !self.entries.contains_key(key) {
                self.mapped_empty(key, FIELD);
            }
        }
        cp.anti_affinity = new.or(old);

        if cp != ControlPlaneSpec::default() {
            self.spec.control_plane = Some(cp);
        }
    }

    fn workers(&mut self) {
        const COUNT: &str = "WORKER_MACHINE_COUNT";
        const FLAVOR: &str = "OPENSTACK_NODE_MACHINE_FLAVOR";
        const ZONE: &str = "OPENSTACK_FAILURE_DOMAIN";
        let count = match self.scalar(COUNT).map(|raw| (integer(&raw), raw)) {
            Some((Ok(n), _)) if (0..=1000).contains(&n) => Some(n as i32),
            Some((Ok(n), _)) => {
                self.error(
                    COUNT,
                    format!("{n} worker nodes: an SCS worker pool has 1 to 1000 (0: no pool)"),
                );
                None
            }
            Some((Err(e), raw)) => {
                self.error(COUNT, format!("{raw:?} {e}"));
                None
            }
            None => None,
        };
        let flavor = self.scalar(FLAVOR);
        let zone = self.scalar(ZONE);
        if let Some(z) = &zone {
            if z.contains(',') || z.contains(char::is_whitespace) {
                self.error(
                    ZONE,
                    format!("{z:?} names several zones, but v1 places its one worker MachineDeployment into one availability zone; give that zone here, and spread the pool later with spec.workers[0].zones"),
                );
            } else if z.len() > 63 {
                self.error(ZONE, format!("{z:?} is longer than 63 characters"));
            }
        }

        if count == Some(0) {
            self.mapped(
                COUNT,
                "spec.workers",
                json!([]),
                "0 workers: no worker pool",
            );
            for key in [FLAVOR, ZONE] {
                if self.present(key) {
                    self.record(
                        key,
                        Kind::NoEquivalent,
                        None,
                        None,
                        format!("no worker pool ({COUNT} is 0)"),
                    );
                }
            }
            self.spec.workers = Some(Vec::new());
            return;
        }
        let path = String::from("spec.workers[0]");
        match count {
            Some(n) => self.mapped(
                COUNT,
                &format!("{path}.count"),
                json!(n),
                format!("the one worker pool of v1, named {POOL_NAME}"),
            ),
            None => {
                self.mapped_empty(COUNT, &format!("{path}.count"));
                self.notes.push(format!(
                    "{path}.count is not set: pool {POOL_NAME} gets 1 node"
                ));
            }
        }
        match &flavor {
            Some(f) => self.mapped(
                FLAVOR,
                &format!("{path}.flavor"),
                json!(f),
                "must be a flavor the provider offers for worker nodes",
            ),
            None => {
                self.mapped_empty(FLAVOR, &format!("{path}.flavor"));
                self.notes.push(format!(
                    "{path}.flavor is not set: the provider's default applies"
                ));
            }
        }
        match &zone {
            Some(z) => self.mapped(ZONE, &format!("{path}.zones"), json!([z]), "the worker pool's zone, as in v1; control-plane nodes were spread over the cloud's zones by OpenStack: spec.controlPlane.zones is left to the provider"),
            None => self.mapped_empty(ZONE, &format!("{path}.zones")),
        }
        self.spec.workers = Some(vec![WorkerPool {
            name: POOL_NAME.into(),
            flavor,
            count,
            zones: zone.map(|z| vec![z]),
            ..WorkerPool::default()
        }]);
    }

    fn network(&mut self) {
        let mut net = NetworkSpec::default();
        for (key, field, note) in [
            ("NODE_CIDR", "spec.network.nodes", "the nodes' network"),
            (
                "SERVICE_CIDR",
                "spec.network.services",
                "the Services' network",
            ),
            ("POD_CIDR", "spec.network.pods", "the Pods' network"),
        ] {
            let Some(raw) = self.scalar(key) else {
                self.mapped_empty(key, field);
                continue;
            };
            match cidr(&raw) {
                Ok(c) => {
                    self.mapped(key, field, json!([c]), note);
                    let slot = match key {
                        "NODE_CIDR" => &mut net.nodes,
                        "SERVICE_CIDR" => &mut net.services,
                        _ => &mut net.pods,
                    };
                    *slot = Some(vec![c]);
                }
                Err(e) => self.error(key, format!("{raw:?} {e}")),
            }
        }
        if net != NetworkSpec::default() {
            self.spec.network = Some(net);
        }
    }

    fn access(&mut self) {
        const KEY: &str = "RESTRICT_KUBEAPI";
        const FIELD: &str = "spec.access.apiServerAllowedCIDRs";
        let items: Vec<String> = match self.get(KEY).cloned() {
            None => return,
            Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => match list_items(&s) {
                Ok(items) => items,
                Err(e) => return self.error(KEY, format!("{s:?} {e}")),
            },
            Some(Value::Sequence(seq)) => {
                let mut items = Vec::new();
                for (i, v) in seq.into_iter().enumerate() {
                    match untag(v) {
                        Value::String(s) => items.push(s.trim().to_string()),
                        _ => return self.error(KEY, format!("item {} is not a string", i + 1)),
                    }
                }
                items
            }
            Some(_) => {
                return self.error(KEY, "expected a list of CIDRs such as [ 203.0.113.0/24 ]");
            }
        };
        let none = items.iter().any(|i| i == "none");
        let mut cidrs = Vec::new();
        let mut widened = Vec::new();
        for (i, item) in items.iter().enumerate().filter(|(_, i)| *i != "none") {
            let parsed = if item.contains('/') {
                cidr(item)
            } else {
                match item.parse::<IpAddr>() {
                    Ok(ip) => {
                        widened.push(item.clone());
                        Ok(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
                    }
                    Err(_) => Err("is not an IP address or CIDR".to_string()),
                }
            };
            match parsed {
                Ok(c) => cidrs.push(c),
                Err(e) => self.error(KEY, format!("item {} {item:?} {e}", i + 1)),
            }
        }
        if cidrs.len() > 64 {
            return self.error(KEY, format!("{} CIDRs: at most 64", cidrs.len()));
        }
        if cidrs.is_empty() && none {
            self.record(KEY, Kind::NoEquivalent, Some(FIELD), None, format!("`none` (the API server reachable only from inside the cloud) cannot be expressed: an empty {FIELD} means reachable from everywhere"));
            self.warnings.push(format!("{KEY} [none]: the v1 API server was reachable only from inside the cloud; the migrated cluster's API server is reachable from everywhere until you set {FIELD}"));
            return;
        }
        if cidrs.is_empty() {
            self.mapped(
                KEY,
                FIELD,
                Json::Null,
                "empty: the API server is reachable from everywhere, as in v1",
            );
            return;
        }
        let mut note = "v1 also always allowed its management server: make sure the provider's management plane may reach the API server (ask the provider), or kaas cannot manage the cluster".to_string();
        if !widened.is_empty() {
            note.push_str(&format!(
                "; single addresses became /32 (/128) CIDRs as in v1: {}",
                widened.join(", ")
            ));
        }
        if none {
            note.push_str("; `none` next to CIDRs is ignored, as in v1");
        }
        self.mapped(KEY, FIELD, json!(cidrs), note);
        self.spec.access = Some(AccessSpec {
            api_server_allowed_cidrs: Some(cidrs),
            ..AccessSpec::default()
        });
    }

    fn extensions(&mut self) {
        let mut ext = Extensions::default();
        let on = |enabled: bool| ExtensionToggle {
            enabled: Some(enabled),
            implementation: None,
        };
        let pin_note = |base: &str, t: &Toggle| match &t.pinned {
            Some(v) => format!(
                "{base}; the pinned version {v} is dropped: the provider's offered version runs"
            ),
            None => base.to_string(),
        };

        const METRICS: &str = "DEPLOY_METRICS";
        match self.bool(METRICS) {
            Some(true) => {
                self.mapped(
                    METRICS,
                    "spec.extensions.metrics",
                    json!({"enabled": true}),
                    "metrics-server",
                );
                ext.metrics = Some(on(true));
            }
            Some(false) => {
                self.record(
                    METRICS,
                    Kind::NoEquivalent,
                    Some("spec.extensions.metrics"),
                    None,
                    "metrics is a mandatory SCS extension and cannot be switched off".into(),
                );
                self.warnings.push(format!("{METRICS}=false: metrics (metrics-server) is mandatory in SCS and runs in the migrated cluster"));
            }
            None => self.mapped_empty(METRICS, "spec.extensions.metrics"),
        }

        // v1 installs Gateway API only together with Cilium.
        let cilium = self.get("USE_CILIUM").is_some_and(|v| {
            let t = original(v).to_ascii_lowercase();
            t == "true" || is_pinned_version(&t)
        });
        const INGRESS: &str = "DEPLOY_NGINX_INGRESS";
        const GATEWAY: &str = "DEPLOY_GATEWAY_API";
        let ingress = self.toggle(INGRESS);
        let gateway = self.bool(GATEWAY);
        let gateway_effective = gateway.map(|g| g && cilium);
        if gateway == Some(true) && !cilium {
            self.warnings.push(format!("{GATEWAY}=true had no effect in v1 without Cilium (USE_CILIUM): mapped as off; enable spec.extensions.gatewayAPI if you want it now"));
        }
        if ingress.as_ref().is_some_and(|t| !t.on) && gateway_effective != Some(true) {
            let note = "v1 ran neither nginx ingress nor Gateway API; SCS requires one of them: left to the provider's default";
            self.mapped(INGRESS, "spec.extensions.ingress", Json::Null, note);
            if gateway.is_some() {
                self.mapped(GATEWAY, "spec.extensions.gatewayAPI", Json::Null, note);
            }
            self.warnings.push("neither ingress nor Gateway API ran in v1: one of them is mandatory in SCS, the provider's default one runs in the migrated cluster".into());
        } else {
            match &ingress {
                Some(t) => {
                    let toggle = ExtensionToggle {
                        enabled: Some(t.on),
                        implementation: t.on.then(|| INGRESS_IMPLEMENTATION.to_string()),
                    };
                    self.mapped(
                        INGRESS,
                        "spec.extensions.ingress",
                        serde_json::to_value(&toggle).unwrap_or_default(),
                        pin_note("the nginx ingress controller", t),
                    );
                    ext.ingress = Some(toggle);
                }
                None => self.mapped_empty(INGRESS, "spec.extensions.ingress"),
            }
            match gateway_effective {
                Some(g) => {
                    let note = if gateway == Some(true) && !cilium {
                        "no effect in v1 without Cilium"
                    } else {
                        "Gateway API with the provider's implementation (v1: Cilium's)"
                    };
                    self.mapped(
                        GATEWAY,
                        "spec.extensions.gatewayAPI",
                        json!({"enabled": g}),
                        note,
                    );
                    ext.gateway_api = Some(on(g));
                }
                None => self.mapped_empty(GATEWAY, "spec.extensions.gatewayAPI"),
            }
        }

        for (key, field, what) in [
            (
                "DEPLOY_CERT_MANAGER",
                "spec.extensions.certManager",
                "cert-manager; must be offered by the provider when on",
            ),
            (
                "DEPLOY_FLUX",
                "spec.extensions.flux",
                "Flux; must be offered by the provider when on",
            ),
        ] {
            match self.toggle(key) {
                Some(t) => {
                    self.mapped(key, field, json!({"enabled": t.on}), pin_note(what, &t));
                    let slot = if key == "DEPLOY_FLUX" {
                        &mut ext.flux
                    } else {
                        &mut ext.cert_manager
                    };
                    *slot = Some(on(t.on));
                }
                None => self.mapped_empty(key, field),
            }
        }
        const HARBOR: &str = "DEPLOY_HARBOR";
        match self.bool(HARBOR) {
            Some(h) => {
                self.mapped(HARBOR, "spec.extensions.harbor", json!({"enabled": h}), "Harbor (a harbor-settings key in v1); must be offered by the provider when on; harbor_config is not migrated");
                ext.harbor = Some(on(h));
            }
            None => self.mapped_empty(HARBOR, "spec.extensions.harbor"),
        }
        if ext != Extensions::default() {
            self.spec.extensions = Some(ext);
        }
    }

    /// Entries for every key, in file order: the mapped ones recorded above, the others from the
    /// tables.
    fn remaining(&mut self) -> Vec<Entry> {
        let settings = std::mem::take(&mut self.settings);
        let mut out = Vec::new();
        for (key, value) in &settings {
            if let Some(e) = self.entries.remove(key) {
                out.push(e);
                continue;
            }
            if let Some((_, field)) = keys::MAPPED.iter().find(|(k, _)| k == key) {
                // A mapped key without a usable value (e.g. empty).
                out.push(Entry {
                    key: key.clone(),
                    kind: Kind::Mapped,
                    field: Some(field.to_string()),
                    value: Some(Json::Null),
                    original: Some(original(value)),
                    note: "empty in v1: the provider's default applies".into(),
                });
                continue;
            }
            let (kind, mut note) = match keys::OTHERS.iter().find(|(k, _, _)| k == key) {
                Some((_, kind, note)) => (*kind, note.to_string()),
                None => keys::classify_unknown(key),
            };
            if let Some(extra) = extra_note(key, value, &settings) {
                note.push_str("; ");
                note.push_str(&extra);
            }
            out.push(Entry {
                key: key.clone(),
                kind,
                field: None,
                value: None,
                original: keys::value_shown(key, kind).then(|| original(value)),
                note,
            });
        }
        self.settings = settings;
        out
    }
}

/// Hints for derived and dropped keys whose v1 value matters to the reviewer.
fn extra_note(key: &str, value: &Value, settings: &[(String, Value)]) -> Option<String> {
    let text = original(value);
    let lower = text.to_ascii_lowercase();
    match key {
        "USE_CILIUM" if !(lower == "true" || is_pinned_version(&lower)) => Some(
            "v1 used Calico: network policies and CNI behaviour follow the provider's stack now"
                .into(),
        ),
        "USE_CILIUM" if is_pinned_version(&lower) => {
            Some(format!("the pinned Cilium {text} is dropped"))
        }
        "DEPLOY_OCCM" | "DEPLOY_CINDERCSI" if lower == "false" => {
            Some("switched off in v1, but part of the stack now".into())
        }
        "ETCD_UNSAFE_FS" if lower == "true" => {
            Some("v1 used it: expect the provider's (safe) etcd storage settings".into())
        }
        "OPENSTACK_IMAGE_NAME" => {
            let version = settings
                .iter()
                .find(|(k, _)| k == "KUBERNETES_VERSION")
                .map(|(_, v)| original(v))
                .unwrap_or_default();
            (text != format!("ubuntu-capi-image-{version}"))
                .then(|| format!("the custom image {text:?} is not carried over"))
        }
        _ => None,
    }
}

/// A YAML error message without the values it quotes (`invalid type: integer `…``): the value
/// might be a credential.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    out.push('…');
                    quote = Some(c);
                }
            }
        }
    }
    out
}

fn untag(v: Value) -> Value {
    match v {
        Value::Tagged(t) => untag(t.value),
        other => other,
    }
}

/// The value as written, for reports: scalars as text, lists and maps as JSON.
fn original(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        Value::Tagged(t) => original(&t.value),
        other => serde_json::to_string(other).unwrap_or_else(|_| "(a structured value)".into()),
    }
}

fn integer(raw: &str) -> Result<i64, String> {
    if raw.is_empty()
        || !raw
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err("is not a whole number".into());
    }
    raw.parse().map_err(|_| "is not a whole number".into())
}

/// `v1.9.6`, `v2.2`: how v1 switches pin a version.
fn is_pinned_version(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
    })
}

fn dns_label(s: &str, max: usize) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is not a DNS label (lower-case letters, digits and '-', at most {max} characters)"
        ))
    }
}

/// A CIDR `ADDRESS/PREFIX` (IPv4 or IPv6), in canonical text.
fn cidr(s: &str) -> Result<String, String> {
    const WHAT: &str = "is not a CIDR such as 10.8.0.0/20";
    let (addr, len) = s.split_once('/').ok_or_else(|| WHAT.to_string())?;
    let ip: IpAddr = addr.parse().map_err(|_| WHAT.to_string())?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return Err(WHAT.into());
    }
    let len: u8 = len.parse().map_err(|_| WHAT.to_string())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("has a prefix longer than {max} bits"));
    }
    Ok(format!("{ip}/{len}"))
}

/// Items of a v1 list written as a string, `"[ a, b, ]"` (as the v1 template renders
/// `RESTRICT_KUBEAPI`) or `a, b`.
fn list_items(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    let inner = match (t.strip_prefix('['), t.ends_with(']')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) => t,
        _ => return Err("has unbalanced brackets".into()),
    };
    Ok(inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|i| i.trim_matches(|c| c == '"' || c == '\''))
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_checked() {
        assert_eq!(cidr("10.8.0.0/20").unwrap(), "10.8.0.0/20");
        assert_eq!(cidr("fd00::/64").unwrap(), "fd00::/64");
        for bad in [
            "10.8.0.0",
            "10.8.0.0/33",
            "10.8.0/20",
            "x/1",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
        ] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v1_lists_are_split_like_the_v1_scripts() {
        assert_eq!(list_items("[  ]").unwrap(), Vec::<String>::new());
        assert_eq!(
            list_items("[  10.0.0.0/8,  \"192.0.2.1\", ]").unwrap(),
            vec!["10.0.0.0/8", "192.0.2.1"]
        );
        assert_eq!(list_items("a b").unwrap(), vec!["a", "b"]);
        assert!(list_items("[ a").is_err());
    }

    #[test]
    fn yaml_errors_do_not_quote_values() {
        let e = migrate("A: 99999999999999999999\n", &Options::default()).unwrap_err();
        assert!(!e.to_string().contains("9999"), "{e}");
        assert_eq!(
            redact("bad `x` and \"y\" at line 1"),
            "bad `…` and \"…\" at line 1"
        );
    }

    #[test]
    fn pinned_versions() {
        assert!(is_pinned_version("v1.9.6"));
        assert!(is_pinned_version("v2"));
        assert!(!is_pinned_version("v"));
        assert!(!is_pinned_version("yes"));
        assert!(!is_pinned_version("vx"));
    }
}
