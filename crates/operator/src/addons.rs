//! Addons and extensions in workload clusters: the provider's bundle for the running version,
//! applied in stages (base addons, then extensions) with server-side apply and an inventory, so
//! objects that leave the bundle or belong to a disabled extension are pruned. Every call is
//! bounded; an addon whose manifests are broken is reported and not applied at all (its earlier
//! objects stay), and nothing here ever blocks the cluster's other operations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use kaas_api::addons::{AddonBundle, BUNDLE_INDEX, Stage};
use kaas_api::cluster::ExtensionStatus;
use kaas_validate::offering::Extension;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

/// Field manager of addon objects in workload clusters.
pub const MANAGER: &str = "kaas-addons";
/// Label on every addon object: the addon's name.
pub const LABEL_ADDON: &str = "scs.community/addon";
/// Bound of every call to a workload cluster.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// One addon to install, its manifests parsed.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Name.
    pub name: String,
    /// Stage.
    pub stage: Stage,
    /// Version.
    pub version: String,
    /// Objects, or why the manifests cannot be used.
    pub objects: Result<Vec<DynamicObject>, String>,
}

/// A reference to an applied object (inventory entry).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Addon it belongs to.
    pub addon: String,
    /// apiVersion.
    pub api_version: String,
    /// kind.
    pub kind: String,
    /// Namespace, if namespaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// What kaas has applied to one workload cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Bundle last applied.
    #[serde(default)]
    pub bundle: String,
    /// Objects.
    pub objects: BTreeSet<ObjectRef>,
}

fn object_ref(addon: &str, o: &DynamicObject) -> ObjectRef {
    let types = o.types.clone().unwrap_or_default();
    ObjectRef {
        addon: addon.into(),
        api_version: types.api_version,
        kind: types.kind,
        namespace: o.metadata.namespace.clone(),
        name: o.metadata.name.clone().unwrap_or_default(),
    }
}

/// Parses a manifest stream into objects labelled with their addon (pure).
pub fn parse(addon: &str, texts: &[String]) -> Result<Vec<DynamicObject>, String> {
    let mut out = Vec::new();
    for (t, text) in texts.iter().enumerate() {
        for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let doc = serde_json::Value::deserialize(de)
                .map_err(|e| format!("manifest {t}, document {i}: not YAML: {e}"))?;
            if doc.is_null() {
                continue;
            }
            let mut o: DynamicObject = serde_json::from_value(doc)
                .map_err(|e| format!("manifest {t}, document {i}: {e}"))?;
            let ok = o
                .types
                .as_ref()
                .is_some_and(|t| !t.api_version.is_empty() && !t.kind.is_empty());
            if !ok || o.metadata.name.as_deref().unwrap_or("").is_empty() {
                return Err(format!(
                    "manifest {t}, document {i}: apiVersion, kind and metadata.name are required"
                ));
            }
            o.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(LABEL_ADDON.into(), addon.into());
            out.push(o);
        }
    }
    // CRDs first, then Namespaces, then the rest (stable otherwise).
    out.sort_by_key(|o| match o.types.as_ref().map(|t| t.kind.as_str()) {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    });
    Ok(out)
}

/// Pod Security admission's namespace labels.
pub const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The audit level label.
pub const PSA_AUDIT: &str = "pod-security.kubernetes.io/audit";
/// The warn level label.
pub const PSA_WARN: &str = "pod-security.kubernetes.io/warn";

/// A Pod Security Standards level, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodSecurityLevel {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practice.
    Restricted,
}

impl PodSecurityLevel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// The pod spec a workload object runs (`Pod`, the controllers' templates, `CronJob`).
fn pod_spec(o: &DynamicObject) -> Option<&serde_json::Value> {
    let kind = o.types.as_ref()?.kind.as_str();
    let spec = o.data.get("spec")?;
    match kind {
        "Pod" => Some(spec),
        "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => spec.get("template")?.get("spec"),
        "CronJob" => spec
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec"),
        _ => None,
    }
}

/// The strictest Pod Security Standards level (v1.35 definitions,
/// <https://kubernetes.io/docs/concepts/security/pod-security-standards/>) a pod spec complies
/// with (pure).
pub fn pod_security_level(spec: &serde_json::Value) -> PodSecurityLevel {
    use serde_json::Value;
    const BASELINE_CAPS: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    const SAFE_SYSCTLS: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];
    const RESTRICTED_VOLUMES: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let truthy = |v: &Value| v.as_bool() == Some(true);
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let pod_sc = spec.get("securityContext").cloned().unwrap_or(Value::Null);
    let containers: Vec<&Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();

    // Baseline.
    let seccomp_unconfined = |sc: &Value| sc["seccompProfile"]["type"] == "Unconfined";
    let apparmor_unconfined = |sc: &Value| sc["appArmorProfile"]["type"] == "Unconfined";
    let selinux_bad = |sc: &Value| {
        let o = &sc["seLinuxOptions"];
        let t = str_of(&o["type"]);
        !(t.is_empty() || t == "container_t" || t == "container_init_t" || t == "container_kvm_t")
            || !str_of(&o["user"]).is_empty()
            || !str_of(&o["role"]).is_empty()
    };
    let baseline_violation = truthy(&spec["hostNetwork"])
        || truthy(&spec["hostPID"])
        || truthy(&spec["hostIPC"])
        || truthy(&pod_sc["windowsOptions"]["hostProcess"])
        || seccomp_unconfined(&pod_sc)
        || apparmor_unconfined(&pod_sc)
        || selinux_bad(&pod_sc)
        || pod_sc["sysctls"].as_array().is_some_and(|l| {
            l.iter()
                .any(|s| !SAFE_SYSCTLS.contains(&str_of(&s["name"]).as_str()))
        })
        || volumes.iter().any(|v| v.get("hostPath").is_some())
        || containers.iter().any(|c| {
            let sc = &c["securityContext"];
            truthy(&sc["privileged"])
                || truthy(&sc["windowsOptions"]["hostProcess"])
                || seccomp_unconfined(sc)
                || apparmor_unconfined(sc)
                || selinux_bad(sc)
                || sc["procMount"].as_str().is_some_and(|p| p != "Default")
                || sc["capabilities"]["add"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|x| !BASELINE_CAPS.contains(&str_of(x).as_str()))
                })
                || c["ports"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|p| p["hostPort"].as_i64().is_some_and(|h| h != 0))
                })
        });
    if baseline_violation {
        return PodSecurityLevel::Privileged;
    }

    // Restricted.
    let restricted_ok = volumes.iter().all(|v| {
        v.as_object().is_some_and(|o| {
            o.keys()
                .filter(|k| *k != "name")
                .all(|k| RESTRICTED_VOLUMES.contains(&k.as_str()))
        })
    }) && containers.iter().all(|c| {
        let sc = &c["securityContext"];
        let non_root = match sc["runAsNonRoot"].as_bool() {
            Some(b) => b,
            None => truthy(&pod_sc["runAsNonRoot"]),
        };
        let user_ok = sc["runAsUser"].as_i64().or(pod_sc["runAsUser"].as_i64()) != Some(0);
        let seccomp = match sc["seccompProfile"]["type"].as_str() {
            Some(t) => t.to_string(),
            None => str_of(&pod_sc["seccompProfile"]["type"]),
        };
        let drops_all = sc["capabilities"]["drop"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x == "ALL"));
        let adds_ok = sc["capabilities"]["add"]
            .as_array()
            .is_none_or(|l| l.iter().all(|x| x == "NET_BIND_SERVICE"));
        sc["allowPrivilegeEscalation"].as_bool() == Some(false)
            && non_root
            && user_ok
            && (seccomp == "RuntimeDefault" || seccomp == "Localhost")
            && drops_all
            && adds_ok
    }) && pod_sc["runAsUser"].as_i64() != Some(0);
    if restricted_ok {
        PodSecurityLevel::Restricted
    } else {
        PodSecurityLevel::Baseline
    }
}

/// Gives every `Namespace` among `objects` Pod Security labels (pure): `enforce`, `audit` and
/// `warn`. A label the manifest already sets is kept; a missing one gets the strictest level that
/// every workload of `objects` in that namespace complies with — `restricted` for a namespace
/// without workloads — so kaas' own labels never stop a bundle's workloads from running. A
/// missing `audit` or `warn` follows `enforce`. Returns each namespace's `enforce` level.
pub fn label_pod_security<'a>(
    objects: impl IntoIterator<Item = &'a mut DynamicObject>,
) -> BTreeMap<String, String> {
    let mut objects: Vec<&mut DynamicObject> = objects.into_iter().collect();
    let mut needed: BTreeMap<String, PodSecurityLevel> = BTreeMap::new();
    for o in objects.iter() {
        if let (Some(ns), Some(spec)) = (o.metadata.namespace.as_ref(), pod_spec(o)) {
            let level = pod_security_level(spec);
            needed
                .entry(ns.clone())
                .and_modify(|l| *l = (*l).min(level))
                .or_insert(level);
        }
    }
    let mut given = BTreeMap::new();
    for o in objects.iter_mut() {
        if o.types.as_ref().map(|t| t.kind.as_str()) != Some("Namespace") {
            continue;
        }
        let name = o.metadata.name.clone().unwrap_or_default();
        let level = needed
            .get(&name)
            .copied()
            .unwrap_or(PodSecurityLevel::Restricted);
        let labels = o.metadata.labels.get_or_insert_with(Default::default);
        let enforce = labels
            .entry(PSA_ENFORCE.into())
            .or_insert_with(|| level.as_str().into())
            .clone();
        for l in [PSA_AUDIT, PSA_WARN] {
            labels.entry(l.into()).or_insert_with(|| enforce.clone());
        }
        given.insert(name, enforce);
    }
    given
}

/// The addons to install (pure): every base addon, and the extensions that are enabled (with a
/// matching implementation, where the bundle names one). `manifests` maps manifest references
/// (`key` or `configMap/key`) to their text; a missing reference makes that addon fail.
pub fn plan(
    bundle: &AddonBundle,
    manifests: &BTreeMap<String, String>,
    enabled: &BTreeMap<String, Extension>,
) -> Vec<Planned> {
    let mut out: Vec<Planned> = bundle
        .addons
        .iter()
        .filter(|a| match a.stage {
            Stage::Base => true,
            Stage::Extension => enabled.get(&a.name).is_some_and(|e| {
                a.implementation.is_none()
                    || e.implementation.is_none()
                    || a.implementation == e.implementation
            }),
        })
        .map(|a| {
            let texts: Result<Vec<String>, String> = a
                .manifests
                .iter()
                .map(|m| {
                    manifests.get(m).cloned().ok_or_else(|| {
                        format!("manifest {m:?} is missing from bundle {:?}", bundle.name)
                    })
                })
                .collect();
            Planned {
                name: a.name.clone(),
                stage: a.stage,
                version: a.version.clone(),
                objects: texts.and_then(|t| parse(&a.name, &t)),
            }
        })
        .collect();
    out.sort_by_key(|p| p.stage);
    // Pod Security labels on every Namespace, judged by the workloads of every planned addon (an
    // extension may run in a namespace a base addon creates).
    label_pod_security(
        out.iter_mut()
            .filter_map(|p| p.objects.as_mut().ok())
            .flatten(),
    );
    out
}

/// This cluster's values of the bundle's placeholders (pure): its name and namespace, the first
/// pod and service CIDR, and the Kubernetes version the bundle is applied for (`1.35.4`).
pub fn cluster_values(
    cluster: &kaas_api::Cluster,
    network: &kaas_validate::offering::Network,
    version: &kaas_api::KubeVersion,
) -> BTreeMap<&'static str, String> {
    use kaas_api::addons::placeholders as p;
    use kube::ResourceExt;
    let mut v = BTreeMap::from([
        (p::CLUSTER_NAME, cluster.name_any()),
        (
            p::CLUSTER_NAMESPACE,
            cluster.namespace().unwrap_or_default(),
        ),
        (
            p::KUBERNETES_VERSION,
            version.release().trim_start_matches('v').to_string(),
        ),
    ]);
    if let Some(c) = network.pods.first() {
        v.insert(p::POD_CIDR, c.clone());
    }
    if let Some(c) = network.services.first() {
        v.insert(p::SERVICE_CIDR, c.clone());
    }
    v
}

/// Replaces the bundle's placeholders (`${cluster.name}`, …; [`kaas_api::addons::placeholders`])
/// with this cluster's `values` in every string of every planned object (pure). Only string
/// values are touched, after parsing: a value can never change an object's structure. An addon
/// left with a placeholder that has no value (e.g. no pod CIDR known) is not applied and says
/// which.
pub fn resolve_placeholders(planned: &mut [Planned], values: &BTreeMap<&str, String>) {
    for p in planned.iter_mut() {
        let Ok(objects) = &mut p.objects else {
            continue;
        };
        let mut missing = BTreeSet::new();
        for o in objects.iter_mut() {
            let mut v = serde_json::to_value(&*o).expect("serialises");
            if !replace_strings(&mut v, values, &mut missing) {
                continue;
            }
            match serde_json::from_value(v) {
                Ok(new) => *o = new,
                Err(e) => {
                    missing.insert(format!("(object {:?}: {e})", o.metadata.name));
                }
            }
        }
        if !missing.is_empty() {
            p.objects = Err(format!(
                "no value for {} in this cluster",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

/// Replaces placeholders in every string of `v`; returns whether anything changed.
fn replace_strings(
    v: &mut serde_json::Value,
    values: &BTreeMap<&str, String>,
    missing: &mut BTreeSet<String>,
) -> bool {
    use kaas_api::addons::placeholders;
    match v {
        serde_json::Value::String(s) if s.contains(placeholders::PREFIX) => {
            let mut out = s.clone();
            for p in placeholders::ALL {
                if out.contains(p) {
                    match values.get(p) {
                        Some(x) => out = out.replace(p, x),
                        None => {
                            missing.insert(p.to_string());
                        }
                    }
                }
            }
            let changed = out != *s;
            *s = out;
            changed
        }
        serde_json::Value::Array(a) => a
            .iter_mut()
            .fold(false, |c, x| replace_strings(x, values, missing) | c),
        serde_json::Value::Object(m) => m
            .values_mut()
            .fold(false, |c, x| replace_strings(x, values, missing) | c),
        _ => false,
    }
}

/// Reads a bundle and its manifests from the provider namespace.
pub async fn load_bundle(
    mgmt: &Client,
    namespace: &str,
    name: &str,
) -> Result<(AddonBundle, BTreeMap<String, String>), String> {
    let cms: Api<ConfigMap> = Api::namespaced(mgmt.clone(), namespace);
    let index = cms
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("addon bundle ConfigMap {namespace}/{name} not found"))?;
    let data = index.data.clone().unwrap_or_default();
    let bundle: AddonBundle = serde_yaml::from_str(
        data.get(BUNDLE_INDEX)
            .ok_or_else(|| format!("{namespace}/{name} has no key {BUNDLE_INDEX}"))?,
    )
    .map_err(|e| format!("{namespace}/{name}: {BUNDLE_INDEX}: {e}"))?;
    let mut manifests = BTreeMap::new();
    for r in bundle.addons.iter().flat_map(|a| a.manifests.iter()) {
        let text = match r.split_once('/') {
            None => data.get(r).cloned(),
            Some((cm, key)) => cms
                .get_opt(cm)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|c| c.data)
                .and_then(|d| d.get(key).cloned()),
        };
        if let Some(t) = text {
            manifests.insert(r.clone(), t);
        }
    }
    Ok((bundle, manifests))
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

fn api_for(
    client: &Client,
    discovery: &Discovery,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
) -> Result<Api<DynamicObject>, String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| format!("{NOT_SERVED} {api_version} {kind}"))?;
    Ok(match (caps.scope, ns) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    })
}

/// Discovers only the API groups the addons use (`groups`): an unrelated aggregated API that is
/// unavailable (e.g. `metrics.k8s.io` while metrics-server has no endpoints) must not keep every
/// addon from being applied, and fewer groups are fewer requests.
async fn discover(client: &Client, groups: &BTreeSet<String>) -> Result<Discovery, String> {
    let allow: Vec<&str> = groups.iter().map(String::as_str).collect();
    bounded(
        "discovery",
        Discovery::new(client.clone()).filter(&allow).run(),
    )
    .await
}

/// The API groups of the planned objects and of the inventory (`""` is the core group). Pure.
pub fn groups_used(planned: &[Planned], old: &Inventory) -> BTreeSet<String> {
    let group = |api_version: &str| {
        api_version
            .split_once('/')
            .map_or(String::new(), |(g, _)| g.to_string())
    };
    let mut groups: BTreeSet<String> = old.objects.iter().map(|r| group(&r.api_version)).collect();
    for p in planned {
        if let Ok(objects) = &p.objects {
            groups.extend(
                objects
                    .iter()
                    .filter_map(|o| o.types.as_ref())
                    .map(|t| group(&t.api_version)),
            );
        }
    }
    // CRDs of a bundle need their own group to be resolvable after they are applied.
    groups.insert("apiextensions.k8s.io".into());
    groups.insert(String::new());
    groups
}

/// Marker of the error when the cluster does not serve a kind.
const NOT_SERVED: &str = "the cluster does not serve";

/// Applies `planned` to the workload cluster and prunes what the inventory has and the plan no
/// longer wants. Returns the status per addon and the new inventory. With `simulated` (Cluster
/// API's in-memory backend, whose fake API server serves only a few kinds and no server-side
/// apply), objects of kinds it does not serve are skipped and listed in the status instead of
/// failing the addon, objects are created or replaced, and workloads are not looked at (none
/// runs); never for any other cluster.
pub async fn apply(
    workload: &Client,
    bundle: &str,
    planned: &[Planned],
    old: &Inventory,
    simulated: bool,
) -> (Vec<ExtensionStatus>, Inventory) {
    let mut statuses = Vec::new();
    let mut inventory = Inventory {
        bundle: bundle.into(),
        objects: BTreeSet::new(),
    };
    let groups = groups_used(planned, old);
    let mut discovery = discover(workload, &groups).await;
    let pp = PatchParams::apply(MANAGER).force();
    for p in planned {
        let mut st = ExtensionStatus {
            name: p.name.clone(),
            stage: match p.stage {
                Stage::Base => "base".into(),
                Stage::Extension => "extension".into(),
            },
            version: Some(p.version.clone()),
            ..Default::default()
        };
        let objects = match (&p.objects, &discovery) {
            (Err(e), _) => {
                // Broken manifests: apply nothing of this addon, keep what it had.
                st.message = Some(format!("not applied: {e}"));
                inventory
                    .objects
                    .extend(old.objects.iter().filter(|r| r.addon == p.name).cloned());
                statuses.push(st);
                continue;
            }
            (_, Err(e)) => {
                st.message = Some(format!("workload cluster unreachable: {e}"));
                inventory
                    .objects
                    .extend(old.objects.iter().filter(|r| r.addon == p.name).cloned());
                statuses.push(st);
                continue;
            }
            (Ok(o), Ok(_)) => o,
        };
        st.objects = objects.len() as i32;
        let mut applied = 0;
        let mut error = None;
        let mut crds_applied = false;
        let mut skipped: Vec<String> = Vec::new();
        for o in objects {
            let r = object_ref(&p.name, o);
            let is_crd = r.kind == "CustomResourceDefinition";
            if !is_crd && crds_applied {
                // New kinds become resolvable once their CRDs are served.
                crds_applied = false;
                tokio::time::sleep(Duration::from_millis(500)).await;
                discovery = discover(workload, &groups).await;
            }
            let result = match &discovery {
                Ok(d) => {
                    match api_for(workload, d, &r.api_version, &r.kind, r.namespace.as_deref()) {
                        Ok(api) => upsert(&api, &r, o, &pp, simulated).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.clone()),
            };
            match result {
                Ok(()) => {
                    applied += 1;
                    crds_applied |= is_crd;
                    inventory.objects.insert(r);
                }
                Err(e) if simulated && e.starts_with(NOT_SERVED) => {
                    skipped.push(format!("{} {}", r.kind, r.name))
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            // Partially applied: keep every object it may own in the inventory, say so, retry later.
            inventory
                .objects
                .extend(old.objects.iter().filter(|r| r.addon == p.name).cloned());
            st.message = Some(format!(
                "{applied} of {} objects applied; retrying: {e}",
                objects.len()
            ));
        } else {
            st.applied = true;
            // No pod ever runs on a simulated cluster's fake nodes: whether its workloads are
            // available is unknown there, not "not yet".
            st.workloads_available = if simulated {
                None
            } else {
                workloads_available(workload, objects).await
            };
            if !skipped.is_empty() {
                st.message = Some(format!(
                    "applied; {} object(s) skipped, their kinds are not served by the simulated API server of the in-memory stack: {}",
                    skipped.len(),
                    skipped.join(", ")
                ));
            } else if st.workloads_available == Some(false) {
                st.message = Some("applied; workloads not available yet".into());
            }
        }
        statuses.push(st);
    }
    // Prune: what the old inventory has and the new one does not (never objects of addons whose
    // manifests were broken or whose apply failed — those entries were carried over above).
    if let Ok(d) = &discovery {
        let mut gone: Vec<ObjectRef> = old
            .objects
            .difference(&inventory.objects)
            .cloned()
            .collect();
        gone.sort_by_key(|r| match r.kind.as_str() {
            "CustomResourceDefinition" => 2,
            "Namespace" => 1,
            _ => 0,
        });
        for r in &gone {
            let deleted =
                match api_for(workload, d, &r.api_version, &r.kind, r.namespace.as_deref()) {
                    Ok(api) => bounded(
                        &format!("delete {} {}", r.kind, r.name),
                        api.delete(&r.name, &DeleteParams::background()),
                    )
                    .await
                    .map(|_| ())
                    .or_else(|e| {
                        if e.contains("NotFound") || e.contains("not found") {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }),
                    // The kind is no longer served (e.g. its CRD went first): nothing left to delete.
                    Err(_) => Ok(()),
                };
            if let Err(e) = deleted {
                inventory.objects.insert(r.clone());
                if let Some(s) = statuses.iter_mut().find(|s| s.name == r.addon) {
                    s.message = Some(format!("pruning {} {}: {e}", r.kind, r.name));
                }
            }
        }
    }
    (statuses, inventory)
}

/// Server-side apply. Only on the `simulated` API server of Cluster API's in-memory stack, which
/// has no server-side apply (HTTP 415), create or replace instead; every real API server gets
/// server-side apply and nothing else.
async fn upsert(
    api: &Api<DynamicObject>,
    r: &ObjectRef,
    o: &DynamicObject,
    pp: &PatchParams,
    simulated: bool,
) -> Result<(), String> {
    let what = format!("{} {}", r.kind, r.name);
    match tokio::time::timeout(CALL_TIMEOUT, api.patch(&r.name, pp, &Patch::Apply(o))).await {
        Ok(Ok(_)) => Ok(()),
        // 415, or an empty error body (how kube reports the fake server's plain-text 415).
        Ok(Err(kube::Error::Api(e)))
            if simulated && (e.code == 415 || (e.code == 0 && e.message.is_empty())) =>
        {
            // Create first (the fake server answers a GET of a missing object without a Status).
            match tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), o)).await {
                Ok(Ok(_)) => Ok(()),
                // 409 — which the fake server sends in a body kube cannot read (code 0).
                Ok(Err(kube::Error::Api(e)))
                    if e.code == 409 || e.reason == "AlreadyExists" || e.code == 0 =>
                {
                    let existing = bounded(&what, api.get(&r.name)).await?;
                    let mut o = o.clone();
                    o.metadata.resource_version = existing.metadata.resource_version;
                    bounded(&what, api.replace(&r.name, &PostParams::default(), &o))
                        .await
                        .map(|_| ())
                }
                Ok(Err(e)) => Err(format!("{what}: create: {e}")),
                Err(_) => Err(format!(
                    "{what}: no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                )),
            }
        }
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

async fn workloads_available(workload: &Client, objects: &[DynamicObject]) -> Option<bool> {
    let mut any = false;
    for o in objects {
        let kind = o
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or_default();
        let (Some(ns), Some(name)) = (o.metadata.namespace.as_deref(), o.metadata.name.as_deref())
        else {
            continue;
        };
        let ok = match kind {
            "Deployment" => {
                any = true;
                let d = bounded(
                    "deployment",
                    Api::<Deployment>::namespaced(workload.clone(), ns).get(name),
                )
                .await
                .ok()?;
                let want = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= want
            }
            "DaemonSet" => {
                any = true;
                let d = bounded(
                    "daemonset",
                    Api::<DaemonSet>::namespaced(workload.clone(), ns).get(name),
                )
                .await
                .ok()?;
                let s = d.status.unwrap_or_default();
                s.desired_number_scheduled > 0
                    && s.number_available.unwrap_or(0) >= s.desired_number_scheduled
            }
            _ => continue,
        };
        if !ok {
            return Some(false);
        }
    }
    any.then_some(true)
}

/// Name of the inventory ConfigMap of a cluster (in its provider-side namespace).
pub fn inventory_name(cluster: &str) -> String {
    format!("{cluster}-addons")
}

/// Reads the inventory from the management cluster.
pub async fn load_inventory(
    mgmt: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Inventory, kube::Error> {
    let cm = Api::<ConfigMap>::namespaced(mgmt.clone(), namespace)
        .get_opt(&inventory_name(cluster))
        .await?;
    Ok(cm
        .and_then(|c| c.data)
        .and_then(|d| {
            d.get("inventory.json")
                .and_then(|j| serde_json::from_str(j).ok())
        })
        .unwrap_or_default())
}

/// Writes the inventory to the management cluster.
pub async fn save_inventory(
    mgmt: &Client,
    namespace: &str,
    cluster: &str,
    inv: &Inventory,
) -> Result<(), kube::Error> {
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(inventory_name(cluster)),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                kaas_render::LABEL_CLUSTER.to_string(),
                cluster.to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "inventory.json".to_string(),
            serde_json::to_string(inv).expect("serialises"),
        )])),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(mgmt.clone(), namespace);
    api.patch(
        &inventory_name(cluster),
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> AddonBundle {
        serde_yaml::from_str(
            "name: b1\naddons:\n- {name: cni, stage: base, version: '1', manifests: [cni.yaml]}\n- {name: metrics, stage: extension, version: '2', manifests: [m.yaml]}\n- {name: ingress, stage: extension, version: '3', implementation: nginx, manifests: [i.yaml]}\n- {name: flux, stage: extension, version: '4', manifests: [missing.yaml]}\n",
        )
        .unwrap()
    }

    fn manifests() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cni.yaml".into(), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cni, namespace: kube-system}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: x.y}\n".into()),
            ("m.yaml".into(), "apiVersion: v1\nkind: Namespace\nmetadata: {name: metrics}\n".into()),
            ("i.yaml".into(), "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n".into()),
        ])
    }

    fn ext(names: &[(&str, Option<&str>)]) -> BTreeMap<String, Extension> {
        names
            .iter()
            .map(|(n, i)| {
                (
                    n.to_string(),
                    Extension {
                        version: None,
                        implementation: i.map(String::from),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn placeholders_are_replaced_in_string_values_only_and_a_missing_value_stops_the_addon() {
        let mut m = manifests();
        m.insert(
            "cni.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cni, namespace: kube-system, labels: {cluster: '${cluster.name}'}}\ndata: {cidr: '${cluster.podCIDR}', args: '--cluster=${cluster.name} --v=2'}\n".into(),
        );
        m.insert(
            "m.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m, namespace: kube-system}\ndata: {svc: '${cluster.serviceCIDR}'}\n".into(),
        );
        let mut p = plan(&bundle(), &m, &ext(&[("metrics", None)]));
        // A tenant-chosen value with YAML syntax stays one string.
        let values = BTreeMap::from([
            ("${cluster.name}", "c1\nkind: Secret".to_string()),
            ("${cluster.podCIDR}", "10.96.0.0/12".to_string()),
        ]);
        resolve_placeholders(&mut p, &values);
        let cni = p[0].objects.as_ref().unwrap();
        let cm = cni
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some("cni"))
            .unwrap();
        assert_eq!(cm.types.as_ref().unwrap().kind, "ConfigMap");
        assert_eq!(cm.data["data"]["cidr"], "10.96.0.0/12");
        assert_eq!(cm.data["data"]["args"], "--cluster=c1\nkind: Secret --v=2");
        assert_eq!(
            cm.metadata.labels.as_ref().unwrap()["cluster"],
            "c1\nkind: Secret"
        );
        let metrics = p.iter().find(|p| p.name == "metrics").unwrap();
        assert_eq!(
            metrics.objects.as_ref().unwrap_err(),
            "no value for ${cluster.serviceCIDR} in this cluster"
        );
    }

    #[test]
    fn discovery_asks_only_for_the_groups_the_addons_and_the_inventory_use() {
        let mut m = manifests();
        m.insert(
            "m.yaml".into(),
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\n".into(),
        );
        let p = plan(&bundle(), &m, &ext(&[("metrics", None)]));
        let old = Inventory {
            bundle: "b0".into(),
            objects: BTreeSet::from([ObjectRef {
                addon: "gw".into(),
                api_version: "gateway.networking.k8s.io/v1".into(),
                kind: "GatewayClass".into(),
                namespace: None,
                name: "gc".into(),
            }]),
        };
        let groups = groups_used(&p, &old);
        assert_eq!(
            groups.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "",
                "apiextensions.k8s.io",
                "apiregistration.k8s.io",
                "gateway.networking.k8s.io"
            ]
        );
        // The aggregated group the APIService registers is never queried.
        assert!(!groups.contains("metrics.k8s.io"));
    }

    #[test]
    fn base_addons_always_extensions_when_enabled_crds_first() {
        let p = plan(&bundle(), &manifests(), &ext(&[("metrics", None)]));
        assert_eq!(
            p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["cni", "metrics"]
        );
        let cni = p[0].objects.as_ref().unwrap();
        assert_eq!(
            cni[0].types.as_ref().unwrap().kind,
            "CustomResourceDefinition"
        );
        assert_eq!(cni[1].metadata.labels.as_ref().unwrap()[LABEL_ADDON], "cni");
    }

    #[test]
    fn broken_or_missing_manifests_fail_only_their_addon() {
        let p = plan(
            &bundle(),
            &manifests(),
            &ext(&[("ingress", Some("nginx")), ("flux", None)]),
        );
        let by: BTreeMap<_, _> = p
            .iter()
            .map(|p| (p.name.as_str(), p.objects.as_ref().err().cloned()))
            .collect();
        assert!(by["cni"].is_none());
        assert!(
            by["ingress"]
                .as_ref()
                .unwrap()
                .contains("metadata.name are required")
        );
        assert!(
            by["flux"]
                .as_ref()
                .unwrap()
                .contains("\"missing.yaml\" is missing")
        );
    }

    fn labels(o: &DynamicObject) -> Vec<(String, String)> {
        o.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.starts_with("pod-security.kubernetes.io/"))
            .collect()
    }

    fn psa(level: &str) -> Vec<(String, String)> {
        vec![
            (PSA_AUDIT.into(), level.into()),
            (PSA_ENFORCE.into(), level.into()),
            (PSA_WARN.into(), level.into()),
        ]
    }

    /// A hardened container (as ingress-nginx' controller and cert-manager ship theirs).
    const RESTRICTED_POD: &str = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: c
        image: x
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}, runAsUser: 101}
      volumes: [{name: v, secret: {secretName: s}}]";

    #[test]
    fn every_namespace_gets_pod_security_labels_from_its_workloads() {
        let text = format!(
            "apiVersion: v1
kind: Namespace
metadata: {{name: empty}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: hardened}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d, namespace: hardened}}
spec:
  template:
    spec:
      {RESTRICTED_POD}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: j, namespace: hardened}}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
          containers: [{{name: j, image: x, securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}}}]
---
apiVersion: v1
kind: Namespace
metadata: {{name: plain}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d, namespace: plain}}
spec:
  template:
    spec: {{containers: [{{name: c, image: x}}]}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: node-agent}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: a, namespace: node-agent}}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{{name: a, image: x}}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: chosen
  labels: {{pod-security.kubernetes.io/enforce: baseline, pod-security.kubernetes.io/warn: restricted}}
"
        );
        let mut objects = parse("a", &[text]).unwrap();
        let given = label_pod_security(objects.iter_mut());
        let by: BTreeMap<String, &DynamicObject> = objects
            .iter()
            .filter(|o| o.types.as_ref().unwrap().kind == "Namespace")
            .map(|o| (o.metadata.name.clone().unwrap(), o))
            .collect();
        assert_eq!(by.len(), 5);
        // No workloads, or only hardened ones: restricted.
        assert_eq!(labels(by["empty"]), psa("restricted"));
        assert_eq!(labels(by["hardened"]), psa("restricted"));
        // A container without a security context: baseline (the floor the SCS check accepts).
        assert_eq!(labels(by["plain"]), psa("baseline"));
        // Host networking needs privileged: kaas never breaks the bundle's workloads.
        assert_eq!(labels(by["node-agent"]), psa("privileged"));
        // What the bundle sets is kept; a missing one follows enforce.
        assert_eq!(
            labels(by["chosen"]),
            vec![
                (PSA_AUDIT.to_string(), "baseline".to_string()),
                (PSA_ENFORCE.to_string(), "baseline".to_string()),
                (PSA_WARN.to_string(), "restricted".to_string()),
            ]
        );
        assert_eq!(given["chosen"], "baseline");
        assert_eq!(given["empty"], "restricted");
        // Other objects are untouched.
        let dep = objects
            .iter()
            .find(|o| o.types.as_ref().unwrap().kind == "Deployment")
            .unwrap();
        assert!(labels(dep).is_empty());
    }

    #[test]
    fn plan_labels_namespaces_across_addons() {
        // The base addon creates the namespace, an extension runs a plain workload in it.
        let b: AddonBundle = serde_yaml::from_str(
            "name: b\naddons:\n- {name: base, stage: base, version: '1', manifests: [ns.yaml]}\n- {name: agent, stage: extension, version: '1', manifests: [agent.yaml]}\n",
        )
        .unwrap();
        let m = BTreeMap::from([
            (
                "ns.yaml".to_string(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: kaas-system}\n".to_string(),
            ),
            (
                "agent.yaml".to_string(),
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: kaas-system}\nspec: {template: {spec: {containers: [{name: a, image: x}]}}}\n".to_string(),
            ),
        ]);
        let ns_labels = |p: &[Planned]| labels(&p[0].objects.as_ref().unwrap()[0]);
        assert_eq!(ns_labels(&plan(&b, &m, &ext(&[]))), psa("restricted"));
        assert_eq!(
            ns_labels(&plan(&b, &m, &ext(&[("agent", None)]))),
            psa("baseline")
        );
    }

    #[test]
    fn pod_security_levels() {
        let level = |y: &str| pod_security_level(&serde_yaml::from_str(y).unwrap());
        let restricted = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: c, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]";
        assert_eq!(level(restricted), PodSecurityLevel::Restricted);
        for (what, y) in [
            (
                "escalation allowed",
                restricted.replace(
                    "allowPrivilegeEscalation: false",
                    "allowPrivilegeEscalation: true",
                ),
            ),
            (
                "root allowed",
                restricted.replace("runAsNonRoot: true", "runAsNonRoot: false"),
            ),
            (
                "runs as uid 0",
                restricted.replace("runAsNonRoot: true", "runAsNonRoot: true, runAsUser: 0"),
            ),
            (
                "no seccomp profile",
                restricted.replace(", seccompProfile: {type: RuntimeDefault}", ""),
            ),
            (
                "capabilities kept",
                restricted.replace("drop: [ALL]", "drop: [NET_RAW]"),
            ),
            (
                "a baseline capability added",
                restricted.replace("drop: [ALL]", "drop: [ALL], add: [CHOWN]"),
            ),
            (
                "a hostPath-free but non-restricted volume",
                format!("{restricted}\nvolumes: [{{name: v, nfs: {{server: s, path: /}}}}]"),
            ),
            (
                "an init container without context",
                format!("{restricted}\ninitContainers: [{{name: i}}]"),
            ),
        ] {
            assert_eq!(level(&y), PodSecurityLevel::Baseline, "{what}");
        }
        for (what, y) in [
            ("host network", format!("{restricted}\nhostNetwork: true")),
            ("host PID", format!("{restricted}\nhostPID: true")),
            ("host path", format!("{restricted}\nvolumes: [{{name: v, hostPath: {{path: /}}}}]")),
            ("privileged", "containers: [{name: c, securityContext: {privileged: true}}]".into()),
            ("SYS_ADMIN", "containers: [{name: c, securityContext: {capabilities: {add: [SYS_ADMIN]}}}]".into()),
            ("host port", "containers: [{name: c, ports: [{containerPort: 80, hostPort: 80}]}]".into()),
            ("unconfined seccomp", "securityContext: {seccompProfile: {type: Unconfined}}\ncontainers: [{name: c}]".into()),
            ("unsafe sysctl", "securityContext: {sysctls: [{name: kernel.msgmax, value: '1'}]}\ncontainers: [{name: c}]".into()),
        ] {
            assert_eq!(level(&y), PodSecurityLevel::Privileged, "{what}");
        }
        assert_eq!(
            level("containers: [{name: c, ports: [{containerPort: 80}]}]"),
            PodSecurityLevel::Baseline
        );
    }

    #[test]
    fn implementations_must_match() {
        let p = plan(
            &bundle(),
            &manifests(),
            &ext(&[("ingress", Some("traefik"))]),
        );
        assert!(!p.iter().any(|p| p.name == "ingress"));
    }
}

/// Result of one addon reconcile, for status.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Per addon.
    pub statuses: Vec<ExtensionStatus>,
    /// `ExtensionsReady`: true/false/unknown.
    pub ready: Option<bool>,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

impl Outcome {
    /// An outcome without per-addon results.
    pub fn waiting(ready: Option<bool>, reason: &str, message: impl Into<String>) -> Self {
        Outcome {
            statuses: Vec::new(),
            ready,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Summarises per-addon results.
    pub fn from_statuses(bundle: &str, statuses: Vec<ExtensionStatus>) -> Self {
        let failed: Vec<String> = statuses
            .iter()
            .filter(|s| !s.applied)
            .map(|s| format!("{}: {}", s.name, s.message.clone().unwrap_or_default()))
            .collect();
        if failed.is_empty() {
            let waiting = statuses
                .iter()
                .filter(|s| s.workloads_available == Some(false))
                .count();
            let msg = format!(
                "{} addon(s) of bundle {bundle} applied{}",
                statuses.len(),
                if waiting > 0 {
                    format!("; {waiting} with workloads not yet available")
                } else {
                    String::new()
                }
            );
            Outcome {
                statuses,
                ready: Some(true),
                reason: "Applied".into(),
                message: msg,
            }
        } else {
            Outcome {
                statuses,
                ready: Some(false),
                reason: "ApplyFailed".into(),
                message: failed.join("; "),
            }
        }
    }
}
