//! Stack verification of a `Provider`: for each offered version, what its ClusterClass and
//! Cluster API actually serve — without creating infrastructure — narrowed by what the provider
//! declares disabled. The hosted backend's `local` runtime is judged by what it implements.
//!
//! Per version: the ClusterClass exists and is reconciled (`VariablesReady`, `status.variables`);
//! for each SCS-API feature a probe `Cluster` using just that feature is validated and rendered
//! exactly as for a tenant, the variables kaas renders are checked against the class's variable
//! definitions (defined, compatible schema type), and the rendered Cluster API `Cluster` is created
//! with `dryRun` in the provider namespace so Cluster API's admission (webhooks, feature gates)
//! judges it. Extensions are checked against the version's addon bundle. Admission does not run
//! the class's patches; what Cluster API's topology controller fails on for the provider's existing
//! clusters (`TopologyReconciled=False`) is attributed to the feature whose variables the message
//! names and reported too.
//!
//! The pure parts ([`probes`], [`variable_problems`], [`class_state`], [`bundle_problem`],
//! [`probe_variables`], [`topology_failures`], [`summarize`]) are separated from the client calls ([`verify`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kaas_api::addons::{AddonBundle, BUNDLE_INDEX, BUNDLE_LABEL, Stage};
use kaas_api::provider::{
    BackendType, KubernetesVersion, UnusableFeature, VersionVerification, features,
};
use kaas_api::{Cluster, Provider};
use kaas_capi::cluster as capi;
use kaas_capi::clusterclass::ClusterClass;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Name prefix of the probe clusters (never stored: dry-run only).
pub const PROBE_PREFIX: &str = "kaas-probe";

/// A probe: a cluster that uses exactly one feature (besides the base).
#[derive(Clone, Debug)]
pub struct Probe {
    /// Feature name (see [`features`]).
    pub feature: String,
    /// The SCS cluster.
    pub cluster: Cluster,
}

/// The probe clusters of one offered version (pure). Features the offering cannot express (zones
/// without zones in the first region) get no probe.
pub fn probes(p: &Provider, offer: &KubernetesVersion) -> Vec<Probe> {
    let name = p.metadata.name.clone().unwrap_or_default();
    let cp_flavor = p
        .spec
        .flavors
        .iter()
        .find(|f| f.control_plane != Some(false))
        .map(|f| f.name.clone());
    let worker_flavor = p
        .spec
        .flavors
        .iter()
        .find(|f| f.worker != Some(false))
        .map(|f| f.name.clone());
    let zones: Vec<String> = p
        .spec
        .regions
        .first()
        .map(|r| r.zones.iter().take(2).cloned().collect())
        .unwrap_or_default();
    let base = || {
        json!({
            "provider": {"name": name},
            "kubernetes": {"version": offer.version.trim_start_matches('v')},
            "controlPlane": {"replicas": 1, "flavor": cp_flavor},
            "workers": [{"name": "probe", "count": 1, "flavor": worker_flavor}],
        })
    };
    let mut out: Vec<(String, Value)> = vec![(features::BASE.into(), base())];
    let mut with = |feature: &str, f: &dyn Fn(&mut Value)| {
        let mut spec = base();
        f(&mut spec);
        out.push((feature.to_string(), spec));
    };
    with(features::OIDC, &|s| {
        s["access"]["oidc"] = json!({"issuerURL": "https://issuer.example.com", "clientID": "kaas-probe", "usernameClaim": "email", "groupsClaim": "groups"});
    });
    with(features::ALLOWED_CIDRS, &|s| {
        s["access"]["apiServerAllowedCIDRs"] = json!(["192.0.2.0/24"]);
    });
    with(features::TAINTS, &|s| {
        s["workers"][0]["taints"] =
            json!([{"key": "kaas.scs.community/probe", "value": "true", "effect": "NoSchedule"}]);
    });
    with(features::LABELS, &|s| {
        s["workers"][0]["labels"] = json!({"kaas.scs.community/probe": "true"});
    });
    if !zones.is_empty() {
        let z = zones.clone();
        with(features::ZONES, &move |s| {
            s["workers"][0]["zones"] = json!(z);
            s["controlPlane"]["zones"] = json!(z[..1]);
        });
    }
    with(features::AUTOSCALING, &|s| {
        let w = &mut s["workers"][0];
        w.as_object_mut().unwrap().remove("count");
        w["minCount"] = json!(1);
        w["maxCount"] = json!(3);
    });
    out.into_iter()
        .map(|(feature, spec)| {
            let mut c = Cluster::new(
                &format!("{PROBE_PREFIX}-{}", feature.to_lowercase()),
                serde_json::from_value(spec).expect("probe spec is a ClusterSpec"),
            );
            c.metadata.namespace = Some(format!("{PROBE_PREFIX}-tenant"));
            Probe {
                feature,
                cluster: c,
            }
        })
        .collect()
}

/// The state of a ClusterClass for verification (pure).
#[derive(Clone, Debug, PartialEq)]
pub enum ClassState {
    /// Not reconciled by Cluster API yet (status missing or of an older generation).
    Pending,
    /// Reconciled, but Cluster API reports a problem (`VariablesReady` not True): the reason.
    Broken(String),
    /// Reconciled: the variable definitions by name (the first definition's `openAPIV3Schema`).
    Ready(BTreeMap<String, Value>),
}

/// Reads a ClusterClass's status (pure; the class as JSON).
pub fn class_state(class: &Value) -> ClassState {
    let name = class["metadata"]["name"].as_str().unwrap_or_default();
    let generation = class["metadata"]["generation"].as_i64();
    let status = &class["status"];
    if status.is_null() || status["observedGeneration"].as_i64() != generation {
        return ClassState::Pending;
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if let Some(c) = conditions
        .iter()
        .find(|c| c["type"] == "VariablesReady" && c["status"] != "True")
    {
        return ClassState::Broken(format!(
            "ClusterClass {name}: VariablesReady={} {}: {}",
            c["status"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ));
    }
    let mut vars = BTreeMap::new();
    for v in status["variables"].as_array().into_iter().flatten() {
        let Some(n) = v["name"].as_str() else {
            continue;
        };
        if v["definitionsConflict"].as_bool() == Some(true) {
            vars.insert(n.to_string(), json!({"x-kaas-conflict": true}));
            continue;
        }
        let schema = v["definitions"][0]["schema"]["openAPIV3Schema"].clone();
        vars.insert(n.to_string(), schema);
    }
    ClassState::Ready(vars)
}

/// Problems of the variables a rendered Cluster API cluster sets, against the class's definitions
/// (pure): each undefined variable, each value whose type the schema does not allow, each
/// required property missing and each property the schema does not know.
pub fn variable_problems(
    class: &str,
    cluster: &capi::Cluster,
    defs: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut set: Vec<(String, &Value)> = Vec::new();
    if let Some(t) = &cluster.spec.topology {
        for v in t.variables.iter().flatten() {
            set.push((v.name.clone(), &v.value));
        }
        for md in t
            .workers
            .iter()
            .flat_map(|w| w.machine_deployments.iter().flatten())
        {
            for v in md
                .variables
                .iter()
                .flat_map(|v| v.overrides.iter().flatten())
            {
                set.push((v.name.clone(), &v.value));
            }
        }
    }
    let mut out = Vec::new();
    for (name, value) in set {
        let Some(schema) = defs.get(&name) else {
            let p = format!("ClusterClass {class} does not define variable {name} (kaas sets it)");
            if !out.contains(&p) {
                out.push(p);
            }
            continue;
        };
        if schema.get("x-kaas-conflict").is_some() {
            out.push(format!(
                "ClusterClass {class}: variable {name} has conflicting definitions"
            ));
            continue;
        }
        let mut problems = Vec::new();
        schema_problems(schema, value, &name, &mut problems);
        for p in problems {
            let p = format!("ClusterClass {class}: variable {p}");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn schema_problems(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let actual = json_type(value);
    if let Some(want) = schema["type"].as_str() {
        let ok = want == actual || (want == "number" && actual == "integer");
        if !ok {
            out.push(format!(
                "{path}: kaas sets a {actual}, the class expects a {want}"
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !map.contains_key(r)
                {
                    out.push(format!(
                        "{path}: the class requires {r:?}, which kaas does not set"
                    ));
                }
            }
            let props = schema["properties"].as_object();
            let open = schema["additionalProperties"].is_object()
                || schema["additionalProperties"] == json!(true)
                || schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => schema_problems(sub, v, &format!("{path}.{k}"), out),
                    None if props.is_some() && !open => out.push(format!(
                        "{path}: the class does not know property {k:?}, which kaas sets"
                    )),
                    None => {
                        if schema["additionalProperties"].is_object() {
                            schema_problems(
                                &schema["additionalProperties"],
                                v,
                                &format!("{path}.{k}"),
                                out,
                            );
                        }
                    }
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                schema_problems(&schema["items"], v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether the addon bundle (its index) serves extension `ext` (pure): `None` when it does.
pub fn bundle_problem(bundle: &str, index: Option<&AddonBundle>, ext: &str) -> Option<String> {
    match index {
        None => Some(format!(
            "addon bundle {bundle} not found (a ConfigMap labelled {BUNDLE_LABEL} with {BUNDLE_INDEX})"
        )),
        Some(b)
            if !b
                .addons
                .iter()
                .any(|a| a.name == ext && a.stage == Stage::Extension) =>
        {
            Some(format!(
                "addon bundle {bundle} has no addon for extension {ext}"
            ))
        }
        Some(_) => None,
    }
}

/// The result of verifying one version.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Verified: the entry for `Provider.status.versions`.
    Verified(VersionVerification),
    /// Not verifiable now (class missing or not reconciled yet): why. Nothing is refused for it.
    Pending(String),
}

/// The `StackVerified` condition from the outcomes (pure): status, reason, message. Features the
/// provider declares disabled are intended and do not make it False; they are named apart.
pub fn summarize(
    p: &Provider,
    outcomes: &[Outcome],
) -> (kaas_api::conditions::Status, &'static str, String) {
    use kaas_api::conditions::Status;
    let pending: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Pending(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    // Per version, the unusable features split into unexpected ones and declared ones.
    let mut unusable = Vec::new();
    let mut declared = Vec::new();
    for o in outcomes {
        let Outcome::Verified(v) = o else { continue };
        let disabled = p.disabled_features(&v.version);
        let (off, bad): (Vec<&UnusableFeature>, Vec<&UnusableFeature>) = v
            .unusable
            .iter()
            .partition(|u| disabled.iter().any(|d| d.feature == u.feature));
        let list = |l: &[&UnusableFeature]| {
            l.iter()
                .map(|u| u.feature.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !bad.is_empty() {
            unusable.push(format!("{}: {}", v.version, list(&bad)));
        }
        if !off.is_empty() {
            declared.push(format!("{}: {}", v.version, list(&off)));
        }
    }
    if outcomes.is_empty() {
        return (
            Status::Unknown,
            "NotVerified",
            "nothing was verified".into(),
        );
    }
    let (status, reason, mut msg) = if !unusable.is_empty() {
        let mut msg = format!("features unusable: {}", unusable.join("; "));
        if !pending.is_empty() {
            msg.push_str(&format!("; not verified: {}", pending.join("; ")));
        }
        (Status::False, "FeaturesUnusable", msg)
    } else if !pending.is_empty() {
        (
            Status::Unknown,
            "NotVerified",
            format!("not verified: {}", pending.join("; ")),
        )
    } else if declared.is_empty() {
        (
            Status::True,
            "Verified",
            "every offered version serves every feature".into(),
        )
    } else {
        (
            Status::True,
            "Verified",
            "every offered version serves every feature the provider offers".into(),
        )
    };
    if !declared.is_empty() {
        msg.push_str(&format!(
            "; disabled by the provider: {}",
            declared.join("; ")
        ));
    }
    (status, reason, msg)
}

/// Narrows a verified version by what the provider declares disabled (pure): a declared feature
/// is never usable; what verification found unusable keeps its reason. Never widens.
pub fn narrow(p: &Provider, v: &mut VersionVerification) {
    for d in p.disabled_features(&v.version) {
        v.usable.retain(|f| *f != d.feature);
        if !v.unusable.iter().any(|u| u.feature == d.feature) {
            v.unusable.push(d);
        }
    }
}

/// What the hosted backend's `local` runtime serves, per offered version (pure but for the addon
/// bundles read by the caller): its API servers authenticate OIDC tokens (structured
/// authentication configuration) but have no client address filter,
/// so `apiServerAllowedCIDRs` is unusable; the rest is served (autoscaled pools
/// run at their lower bound, as on every backend until an autoscaler runs). Another runtime is not
/// known to kaas: nothing is claimed for it.
pub fn hosted_capabilities(p: &Provider, bundles: &BTreeMap<String, AddonBundle>) -> Vec<Outcome> {
    let runtime = p
        .spec
        .backend
        .hosted
        .as_ref()
        .map_or(kaas_api::hosted::RUNTIME_LOCAL, |h| h.runtime.as_str());
    if runtime != kaas_api::hosted::RUNTIME_LOCAL {
        return vec![Outcome::Pending(format!(
            "runtime {runtime} is not known to kaas, its features are not verified"
        ))];
    }
    let mut pending = Vec::new();
    let mut out: Vec<Outcome> = p
        .spec
        .kubernetes_versions
        .iter()
        .map(|offer| {
            let mut v = VersionVerification {
                version: offer.version.clone(),
                usable: [
                    features::BASE,
                    features::OIDC,
                    features::TAINTS,
                    features::LABELS,
                    features::ZONES,
                    features::AUTOSCALING,
                ]
                .map(String::from)
                .to_vec(),
                unusable: vec![UnusableFeature {
                    feature: features::ALLOWED_CIDRS.into(),
                    reason: "the local hosted runtime's API servers have no client address filter"
                        .into(),
                }],
                ..Default::default()
            };
            match &offer.stack.addons {
                // As for Cluster API: a missing bundle is reported on each cluster by the addon
                // controller and leaves the extensions unjudged here, never refused.
                Some(bundle) if !bundles.contains_key(bundle) => {
                    pending.push(Outcome::Pending(format!(
                        "{}: addon bundle {bundle} not found, extensions not verified",
                        offer.version
                    )))
                }
                Some(bundle) => {
                    for ext in &p.spec.extensions {
                        let feature = format!("{}{}", features::EXTENSION_PREFIX, ext.name);
                        match bundle_problem(bundle, bundles.get(bundle), &ext.name) {
                            None => v.usable.push(feature),
                            Some(reason) => v.unusable.push(UnusableFeature { feature, reason }),
                        }
                    }
                }
                None => {}
            }
            narrow(p, &mut v);
            Outcome::Verified(v)
        })
        .collect();
    out.extend(pending);
    out
}

/// Verifies every offered version of `p` (Cluster API backends; others: nothing). Client calls:
/// reads the ClusterClasses and addon bundles, creates probe clusters with `dryRun` only.
/// `cached`: the provider's Cluster API Clusters, from a cache (`None`: listed here).
pub async fn verify(
    client: &Client,
    p: &Provider,
    cached: Option<Vec<Arc<capi::Cluster>>>,
) -> Result<Vec<Outcome>, kube::Error> {
    let ns = &p.spec.backend.namespace;
    if p.spec.backend.kind == BackendType::Hosted {
        return Ok(hosted_capabilities(p, &bundles(client, ns).await?));
    }
    if p.spec.backend.kind != BackendType::ClusterAPI || p.spec.backend.cluster_api.is_none() {
        return Ok(Vec::new());
    }
    let classes: Api<ClusterClass> = Api::namespaced(client.clone(), ns);
    let clusters: Api<capi::Cluster> = Api::namespaced(client.clone(), ns);
    let bundles = bundles(client, ns).await?;
    let provider_clusters = match cached {
        Some(c) => c,
        None => Api::<capi::Cluster>::all(client.clone())
            .list(&ListParams::default().labels(&format!(
                "{}={}",
                kaas_render::LABEL_PROVIDER,
                p.metadata.name.as_deref().unwrap_or_default()
            )))
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect(),
    };
    // Only clusters whose topology Cluster API failed to compute can name a feature
    // (`topology_failures`): the others are not turned into JSON (10,000 of them were a
    // gigabyte).
    let existing: Vec<Value> = provider_clusters
        .iter()
        .filter(|c| {
            let conds = c.status.as_ref().and_then(|s| s.conditions.as_ref());
            kaas_capi::conditions::find(conds, kaas_capi::conditions::TOPOLOGY_RECONCILED)
                .is_some_and(|t| t.status == "False")
        })
        .map(|c| serde_json::to_value(&**c).unwrap_or_default())
        .collect();
    drop(provider_clusters);
    // Validate probes against the offering alone: verification decides capabilities, it must
    // not be narrowed by its own earlier result.
    // Lifecycle is not the stack's business: an expired version still runs clusters.
    // Declarations are applied afterwards (`narrow`), so the probes see the stack alone.
    let mut offering = p.clone();
    offering.status = None;
    offering.spec.disabled_features.clear();
    for v in &mut offering.spec.kubernetes_versions {
        v.classification = kaas_api::provider::Classification::Supported;
        v.disabled_features.clear();
    }
    let mut out = Vec::new();
    for offer in &p.spec.kubernetes_versions {
        let class_name = &offer.stack.cluster_class;
        let Some(class) = classes.get_opt(class_name).await? else {
            out.push(Outcome::Pending(format!(
                "{}: ClusterClass {ns}/{class_name} not found",
                offer.version
            )));
            continue;
        };
        let class_json = serde_json::to_value(&class).unwrap_or_default();
        let mut v = VersionVerification {
            version: offer.version.clone(),
            cluster_class: Some(class_name.clone()),
            ..Default::default()
        };
        let defs = match class_state(&class_json) {
            ClassState::Pending => {
                out.push(Outcome::Pending(format!(
                    "{}: ClusterClass {ns}/{class_name} is not reconciled by Cluster API yet",
                    offer.version
                )));
                continue;
            }
            ClassState::Broken(why) => {
                for probe in probes(p, offer) {
                    v.unusable.push(UnusableFeature {
                        feature: probe.feature,
                        reason: why.clone(),
                    });
                }
                narrow(p, &mut v);
                out.push(Outcome::Verified(v));
                continue;
            }
            ClassState::Ready(defs) => defs,
        };
        for probe in probes(p, offer) {
            match judge(&clusters, ns, class_name, &offering, &probe, &defs).await? {
                None => v.usable.push(probe.feature),
                Some(reason) => v.unusable.push(UnusableFeature {
                    feature: probe.feature,
                    reason,
                }),
            }
        }
        if let Some(bundle) = &offer.stack.addons
            && !bundles.contains_key(bundle)
        {
            // Not refused: the addon controller reports a missing bundle on each cluster.
            out.push(Outcome::Pending(format!(
                "{}: addon bundle {bundle} not found in {ns}, extensions not verified",
                offer.version
            )));
        } else if let Some(bundle) = &offer.stack.addons {
            for ext in &p.spec.extensions {
                let feature = format!("{}{}", features::EXTENSION_PREFIX, ext.name);
                match bundle_problem(bundle, bundles.get(bundle), &ext.name) {
                    None => v.usable.push(feature),
                    Some(reason) => v.unusable.push(UnusableFeature { feature, reason }),
                }
            }
        }
        // Topology failures of the provider's existing clusters on this version and class.
        let feature_vars = probe_variables(&offering, offer);
        for (feature, reason) in
            topology_failures(&existing, class_name, &offer.version, &feature_vars)
        {
            v.usable.retain(|f| *f != feature);
            if !v.unusable.iter().any(|u| u.feature == feature) {
                v.unusable.push(UnusableFeature { feature, reason });
            }
        }
        narrow(p, &mut v);
        out.push(Outcome::Verified(v));
    }
    Ok(out)
}

/// Per feature, the variables its probe sets beyond those of the base probe (pure).
pub fn probe_variables(
    offering: &Provider,
    offer: &KubernetesVersion,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for probe in probes(offering, offer) {
        let Ok(r) = kaas_validate::validate(&probe.cluster, offering) else {
            continue;
        };
        let Ok(rendered) = kaas_render::render(&probe.cluster, &r) else {
            continue;
        };
        let mut names = BTreeSet::new();
        if let Some(t) = &rendered.cluster.spec.topology {
            names.extend(t.variables.iter().flatten().map(|v| v.name.clone()));
        }
        all.insert(probe.feature, names);
    }
    let base = all.remove(features::BASE).unwrap_or_default();
    all.into_iter()
        .map(|(f, vars)| (f, vars.difference(&base).cloned().collect()))
        .filter(|(_, vars): &(String, BTreeSet<String>)| !vars.is_empty())
        .collect()
}

/// Features that existing Cluster API clusters of `version` on `class` fail on (pure):
/// `TopologyReconciled=False` whose message names a variable only that feature sets (e.g. a patch
/// of the class that cannot be applied to the value kaas renders for it).
pub fn topology_failures(
    clusters: &[Value],
    class: &str,
    version: &str,
    feature_vars: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<(String, String)> {
    let want = format!("v{}", version.trim_start_matches('v'));
    let mut out: Vec<(String, String)> = Vec::new();
    for c in clusters {
        let topo = &c["spec"]["topology"];
        if topo["version"].as_str() != Some(want.as_str())
            || topo["classRef"]["name"].as_str() != Some(class)
        {
            continue;
        }
        let Some(cond) = c["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["type"] == "TopologyReconciled" && x["status"] == "False")
        else {
            continue;
        };
        let msg = cond["message"].as_str().unwrap_or_default();
        for (feature, vars) in feature_vars {
            let named: Vec<&str> = vars
                .iter()
                .filter(|v| msg.contains(v.as_str()))
                .map(String::as_str)
                .collect();
            if named.is_empty() || out.iter().any(|(f, _)| f == feature) {
                continue;
            }
            // Provider status is readable by every tenant: the reason names neither the
            // cluster nor its values (the message may carry both), only the class's patch and
            // the variables. The full message stays in that cluster's own status and the log.
            tracing::info!(
                cluster = %format!(
                    "{}/{}",
                    c["metadata"]["namespace"].as_str().unwrap_or_default(),
                    c["metadata"]["name"].as_str().unwrap_or_default()
                ),
                %feature, message = %msg, "topology failure attributed to a feature"
            );
            let at = msg
                .split("patch \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .filter(|p| !p.is_empty() && p.len() <= 253)
                .map(|p| format!(" in patch \"{p}\""))
                .unwrap_or_default();
            out.push((
                feature.clone(),
                format!(
                    "an existing cluster of this version fails Cluster API's topology computation{at}: the ClusterClass cannot apply what kaas sets for {}",
                    named.join(", ")
                ),
            ));
        }
    }
    out
}

/// One probe: `None` usable, `Some(reason)` not.
async fn judge(
    clusters: &Api<capi::Cluster>,
    ns: &str,
    class: &str,
    offering: &Provider,
    probe: &Probe,
    defs: &BTreeMap<String, Value>,
) -> Result<Option<String>, kube::Error> {
    let resolved = match kaas_validate::validate(&probe.cluster, offering) {
        Ok(r) => r,
        Err(e) => return Ok(Some(format!("the offering does not admit the probe: {e}"))),
    };
    let mut rendered = match kaas_render::render(&probe.cluster, &resolved) {
        Ok(r) => r.cluster,
        Err(e) => return Ok(Some(format!("kaas cannot render it: {e}"))),
    };
    let problems = variable_problems(class, &rendered, defs);
    if !problems.is_empty() {
        return Ok(Some(problems.join("; ")));
    }
    // Dry-run in the provider namespace (it exists; the tenant's namespace may not).
    rendered.metadata.namespace = Some(ns.to_string());
    rendered.metadata.name = probe.cluster.metadata.name.clone();
    let pp = PostParams {
        dry_run: true,
        field_manager: Some(crate::FIELD_MANAGER.into()),
    };
    match clusters.create(&pp, &rendered).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(ae)) if matches!(ae.code, 400 | 403 | 409 | 422) => {
            Ok(Some(format!("Cluster API refused it: {}", ae.message)))
        }
        Err(e) => Err(e),
    }
}

/// Addon bundle indexes in `ns` by bundle name.
async fn bundles(client: &Client, ns: &str) -> Result<BTreeMap<String, AddonBundle>, kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = cms
        .list(&kube::api::ListParams::default().labels(BUNDLE_LABEL))
        .await?;
    let mut out = BTreeMap::new();
    for cm in list.items {
        let Some(index) = cm.data.as_ref().and_then(|d| d.get(BUNDLE_INDEX)) else {
            continue;
        };
        if let Ok(b) = serde_yaml::from_str::<AddonBundle>(index) {
            let name = cm
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(BUNDLE_LABEL))
                .cloned()
                .unwrap_or_else(|| b.name.clone());
            out.insert(name, b);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        serde_yaml::from_str(include_str!("../../../examples/provider-inmemory.yaml")).unwrap()
    }

    #[test]
    fn every_feature_gets_a_probe_that_validates_against_the_offering() {
        let p = provider();
        let probes = probes(&p, &p.spec.kubernetes_versions[1]);
        let names: Vec<&str> = probes.iter().map(|p| p.feature.as_str()).collect();
        assert_eq!(
            names,
            [
                "base",
                "oidc",
                "apiServerAllowedCIDRs",
                "taints",
                "labels",
                "zones",
                "autoscaling"
            ]
        );
        for probe in &probes {
            let r = kaas_validate::validate(&probe.cluster, &p)
                .unwrap_or_else(|e| panic!("{}: {e}", probe.feature));
            let used: Vec<String> = kaas_validate::offering::used_features(&probe.cluster)
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            if probe.feature == "base" {
                assert!(used.is_empty(), "{used:?}");
            } else {
                assert!(used.contains(&probe.feature), "{}: {used:?}", probe.feature);
            }
            kaas_render::render(&probe.cluster, &r).unwrap();
        }
    }

    #[test]
    fn variables_are_checked_against_the_class_definitions() {
        let defs: BTreeMap<String, Value> = [
            ("flavor".to_string(), json!({"type": "string"})),
            (
                "oidc".to_string(),
                json!({"type": "object", "required": ["issuerURL", "extra"], "properties": {"issuerURL": {"type": "string"}}}),
            ),
        ]
        .into_iter()
        .collect();
        let mut c = capi::Cluster::new("x", Default::default());
        c.spec.topology = Some(capi::ClusterTopology {
            variables: Some(vec![
                capi::ClusterTopologyVariables {
                    name: "flavor".into(),
                    value: json!(3),
                },
                capi::ClusterTopologyVariables {
                    name: "oidc".into(),
                    value: json!({"issuerURL": "https://x", "clientID": "a"}),
                },
                capi::ClusterTopologyVariables {
                    name: "missing".into(),
                    value: json!("a"),
                },
            ]),
            ..Default::default()
        });
        let p = variable_problems("cc", &c, &defs);
        assert_eq!(
            p,
            [
                "ClusterClass cc: variable flavor: kaas sets a integer, the class expects a string",
                "ClusterClass cc: variable oidc: the class requires \"extra\", which kaas does not set",
                "ClusterClass cc: variable oidc: the class does not know property \"clientID\", which kaas sets",
                "ClusterClass cc does not define variable missing (kaas sets it)",
            ]
        );
    }

    #[test]
    fn class_state_needs_a_current_status_and_ready_variables() {
        let mut cc = json!({"metadata": {"name": "cc", "generation": 2}, "status": {"observedGeneration": 1}});
        assert_eq!(class_state(&cc), ClassState::Pending);
        cc["status"] = json!({"observedGeneration": 2, "conditions": [{"type": "VariablesReady", "status": "False", "reason": "VariableDiscoveryFailed", "message": "boom"}]});
        assert_eq!(
            class_state(&cc),
            ClassState::Broken(
                "ClusterClass cc: VariablesReady=False VariableDiscoveryFailed: boom".into()
            )
        );
        cc["status"] = json!({"observedGeneration": 2, "conditions": [{"type": "VariablesReady", "status": "True"}],
            "variables": [{"name": "a", "definitions": [{"from": "inline", "required": false, "schema": {"openAPIV3Schema": {"type": "string"}}}]}]});
        let ClassState::Ready(defs) = class_state(&cc) else {
            panic!("ready")
        };
        assert_eq!(defs["a"], json!({"type": "string"}));
    }

    #[test]
    fn the_condition_names_every_unusable_feature_per_version() {
        use kaas_api::conditions::Status;
        let v = |ver: &str, bad: &[&str]| {
            Outcome::Verified(VersionVerification {
                version: ver.into(),
                unusable: bad
                    .iter()
                    .map(|f| UnusableFeature {
                        feature: f.to_string(),
                        reason: "r".into(),
                    })
                    .collect(),
                ..Default::default()
            })
        };
        let p = provider();
        assert_eq!(summarize(&p, &[v("1.35.4", &[])]).0, Status::True);
        let (s, r, m) = summarize(
            &p,
            &[
                v("1.35.4", &["taints"]),
                v("1.36.3", &["taints", "oidc"]),
                Outcome::Pending("1.34.4: ClusterClass x not found".into()),
            ],
        );
        assert_eq!((s, r), (Status::False, "FeaturesUnusable"));
        assert_eq!(
            m,
            "features unusable: 1.35.4: taints; 1.36.3: taints, oidc; not verified: 1.34.4: ClusterClass x not found"
        );
        assert_eq!(
            summarize(&p, &[Outcome::Pending("p".into())]).0,
            Status::Unknown
        );
    }

    #[test]
    fn declared_features_narrow_and_are_no_failure() {
        use kaas_api::conditions::Status;
        let mut p = provider();
        let ver = p.spec.kubernetes_versions[1].version.clone();
        p.spec.disabled_features = vec![kaas_api::provider::DisabledFeature {
            name: "oidc".into(),
            reason: Some("no issuer".into()),
        }];
        let mut v = VersionVerification {
            version: ver.clone(),
            usable: vec!["base".into(), "oidc".into()],
            unusable: vec![UnusableFeature {
                feature: "taints".into(),
                reason: "gate off".into(),
            }],
            ..Default::default()
        };
        narrow(&p, &mut v);
        assert_eq!(v.usable, ["base"]);
        assert_eq!(
            v.unusable
                .iter()
                .map(|u| (u.feature.as_str(), u.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("taints", "gate off"),
                ("oidc", "disabled by the provider: no issuer")
            ]
        );
        // Only oidc left unusable: declared, so StackVerified stays True and says so.
        v.unusable.remove(0);
        let (s, _, m) = summarize(&p, &[Outcome::Verified(v.clone())]);
        assert_eq!(s, Status::True);
        assert!(
            m.ends_with(&format!("disabled by the provider: {ver}: oidc")),
            "{m}"
        );
        // Declaring a feature verification found unusable keeps verification's reason.
        p.spec.disabled_features[0].name = "taints".into();
        let mut w = VersionVerification {
            version: ver,
            unusable: vec![UnusableFeature {
                feature: "taints".into(),
                reason: "gate off".into(),
            }],
            ..Default::default()
        };
        narrow(&p, &mut w);
        assert_eq!(w.unusable.len(), 1);
        assert_eq!(w.unusable[0].reason, "gate off");
    }

    #[test]
    fn the_local_hosted_runtime_serves_oidc_but_no_address_filter() {
        let mut p: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-local.yaml")).unwrap();
        p.spec.disabled_features.clear();
        let out = hosted_capabilities(&p, &BTreeMap::new());
        let n = p.spec.kubernetes_versions.len();
        assert_eq!(
            out.len(),
            2 * n,
            "a verification and a pending bundle per version"
        );
        let Outcome::Verified(v) = &out[0] else {
            panic!("verified")
        };
        let bad: Vec<&str> = v.unusable.iter().map(|u| u.feature.as_str()).collect();
        assert_eq!(bad, ["apiServerAllowedCIDRs"]);
        for f in ["taints", "oidc"] {
            assert!(v.usable.contains(&f.to_string()), "{f}: {v:?}");
        }
        // No bundle published: extensions are not judged (never refused for it), only pending.
        assert!(
            matches!(&out[n], Outcome::Pending(m) if m.contains("addon bundle dev-addons-1-36 not found")),
            "{out:?}"
        );
        // Undeclared limits make StackVerified False: the provider is told to declare them.
        assert_eq!(summarize(&p, &out).1, "FeaturesUnusable");
        // With the bundles published, extensions are judged by them.
        let bundle = |name: &str| AddonBundle {
            name: name.into(),
            addons: p
                .spec
                .extensions
                .iter()
                .filter(|e| e.name != "certManager")
                .map(|e| kaas_api::addons::BundleAddon {
                    name: e.name.clone(),
                    stage: Stage::Extension,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let bundles = BTreeMap::from([
            ("dev-addons-1-36".to_string(), bundle("dev-addons-1-36")),
            ("dev-addons-1-35".to_string(), bundle("dev-addons-1-35")),
        ]);
        let out = hosted_capabilities(&p, &bundles);
        assert_eq!(out.len(), n);
        let Outcome::Verified(v) = &out[0] else {
            panic!("verified")
        };
        assert!(v.usable.contains(&"extension:metrics".to_string()), "{v:?}");
        assert!(
            v.unusable
                .iter()
                .any(|u| u.feature == "extension:certManager"),
            "{v:?}"
        );
        // Another runtime is unknown: not verified, and StackVerified says so.
        p.spec.backend.hosted = Some(kaas_api::provider::HostedBackend {
            runtime: "elsewhere".into(),
        });
        let out = hosted_capabilities(&p, &BTreeMap::new());
        assert!(matches!(&out[..], [Outcome::Pending(_)]), "{out:?}");
        assert_eq!(summarize(&p, &out).0, kaas_api::conditions::Status::Unknown);
        assert_eq!(summarize(&p, &[]).0, kaas_api::conditions::Status::Unknown);
    }

    #[test]
    fn topology_failures_are_attributed_by_the_variables_a_feature_sets() {
        let scs2: Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-openstack.yaml"))
                .unwrap();
        let mut offering = scs2.clone();
        for v in &mut offering.spec.kubernetes_versions {
            v.classification = kaas_api::provider::Classification::Supported;
        }
        let offer = &offering.spec.kubernetes_versions[1];
        let vars = probe_variables(&offering, offer);
        assert_eq!(
            vars["oidc"].iter().collect::<Vec<_>>(),
            ["oidcConfig"],
            "{vars:?}"
        );
        assert!(!vars.contains_key("taints"), "{vars:?}");
        let cluster = |version: &str, msg: &str| {
            json!({"metadata": {"namespace": "kaas-fra1-t", "name": "c"},
                "spec": {"topology": {"version": version, "classRef": {"name": offer.stack.cluster_class}}},
                "status": {"conditions": [{"type": "TopologyReconciled", "status": "False", "message": msg}]}})
        };
        let broken = cluster(
            "v1.35.4",
            "failed to apply patches: patch oidcConfig: unable to find field extraArgs/oidc-issuer-url",
        );
        let f = topology_failures(
            &[broken.clone(), cluster("v1.36.3", "oidcConfig")],
            &offer.stack.cluster_class,
            &offer.version,
            &vars,
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, "oidc");
        // Tenant-readable: neither the cluster nor the message's values.
        assert!(
            !f[0].1.contains("kaas-fra1-t") && !f[0].1.contains("extraArgs"),
            "{f:?}"
        );
        assert!(
            f[0].1
                .ends_with("cannot apply what kaas sets for oidcConfig"),
            "{f:?}"
        );
        let with_patch = cluster(
            "v1.35.4",
            "failed to apply patches: failed to generate patches for patch \"oidcConfig\": issuer https://secret.example/t1",
        );
        let g = topology_failures(
            &[with_patch],
            &offer.stack.cluster_class,
            &offer.version,
            &vars,
        );
        assert!(g[0].1.contains("in patch \"oidcConfig\""), "{g:?}");
        assert!(!g[0].1.contains("secret.example"), "{g:?}");
        assert!(
            topology_failures(
                &[cluster("v1.35.4", "some other failure")],
                &offer.stack.cluster_class,
                &offer.version,
                &vars
            )
            .is_empty()
        );
    }

    #[test]
    fn extensions_need_an_addon_in_the_bundle() {
        let b = AddonBundle {
            name: "b".into(),
            addons: vec![kaas_api::addons::BundleAddon {
                name: "metrics".into(),
                stage: Stage::Extension,
                version: "1".into(),
                implementation: None,
                manifests: vec![],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(bundle_problem("b", Some(&b), "metrics"), None);
        assert!(
            bundle_problem("b", Some(&b), "flux")
                .unwrap()
                .contains("no addon for extension flux")
        );
        assert!(
            bundle_problem("b", None, "metrics")
                .unwrap()
                .contains("not found")
        );
    }
}
