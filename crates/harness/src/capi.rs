//! Cluster API in the plane: the four managers, their CRDs rendered the way kustomize would
//! (contract labels, conversion-webhook patches) with conversion pointed at `127.0.0.1`, and their
//! admission webhook configurations rewritten from in-cluster Services to local URLs.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::locate::PlaneArtifacts;

/// One Cluster API manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manager {
    /// Process (and log) name.
    pub name: &'static str,
    /// Binary in the plane's `bin/`.
    pub binary: &'static str,
    /// Folder of its CRDs (`crds/<component>`) and webhook manifest (`webhooks/<component>.yaml`).
    pub component: &'static str,
}

/// The managers, in start order.
pub const MANAGERS: [Manager; 4] = [
    Manager {
        name: "capi-core",
        binary: "capi-manager",
        component: "core",
    },
    Manager {
        name: "capi-kubeadm-bootstrap",
        binary: "capi-kubeadm-bootstrap-manager",
        component: "bootstrap-kubeadm",
    },
    Manager {
        name: "capi-kubeadm-control-plane",
        binary: "capi-kubeadm-control-plane-manager",
        component: "controlplane-kubeadm",
    },
    Manager {
        name: "capd-in-memory",
        binary: "capd-manager",
        component: "docker",
    },
];

/// Local ports of one manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerPorts {
    /// [`Manager::name`].
    pub name: String,
    /// Webhook server (TLS, serves conversion, defaulting and validation).
    pub webhook: u16,
    /// Health probes (`/healthz`, `/readyz`).
    pub health: u16,
    /// Diagnostics (metrics, plain HTTP).
    pub metrics: u16,
}

/// Parses every YAML document of a text (skipping empty ones).
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(de)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn read_documents(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    yaml_documents(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Strategic merge of maps as kustomize applies these patches (maps merge, the rest replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if v.is_object() && slot.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Replaces a `clientConfig.service` with a URL on 127.0.0.1 and sets the CA bundle.
fn localize_client_config(cc: &mut Value, port: u16, ca_b64: &str) {
    let path = cc
        .get("service")
        .and_then(|s| s.get("path"))
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string();
    *cc = json!({ "url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_b64 });
}

/// The CRDs of one component as `kustomize build config/crd` renders them (resources, `labels`,
/// `commonLabels`, strategic-merge `patches`), with the conversion webhook served by the manager
/// on `127.0.0.1:<webhook_port>` and trusted through `ca_pem`.
pub fn component_crds(
    artifacts: &PlaneArtifacts,
    component: &str,
    webhook_port: u16,
    ca_pem: &str,
) -> Result<Vec<CustomResourceDefinition>> {
    let dir = artifacts.crd_dir(component);
    let kustomization: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml"))
            .with_context(|| format!("reading {}/kustomization.yaml", dir.display()))?,
    )?;
    let strings = |key: &str| -> Vec<String> {
        kustomization[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v.as_str()
                    .or_else(|| v["path"].as_str())
                    .map(str::to_string)
            })
            .collect()
    };
    let mut labels = serde_json::Map::new();
    for l in kustomization["labels"].as_array().into_iter().flatten() {
        if let Some(pairs) = l["pairs"].as_object() {
            labels.extend(pairs.clone());
        }
    }
    if let Some(common) = kustomization["commonLabels"].as_object() {
        labels.extend(common.clone());
    }
    let mut patches = Vec::new();
    for p in strings("patches")
        .into_iter()
        .chain(strings("patchesStrategicMerge"))
    {
        patches.extend(read_documents(&dir.join(p))?);
    }
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);

    let mut out = Vec::new();
    for resource in strings("resources") {
        for mut doc in read_documents(&dir.join(&resource))? {
            if doc["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let name = doc["metadata"]["name"].clone();
            for p in patches.iter().filter(|p| {
                p["kind"] == "CustomResourceDefinition" && p["metadata"]["name"] == name
            }) {
                merge(&mut doc, p);
            }
            if !labels.is_empty() {
                let meta = doc["metadata"]
                    .as_object_mut()
                    .context("CRD without metadata")?;
                let l = meta.entry("labels").or_insert_with(|| json!({}));
                for (k, v) in &labels {
                    l[k] = v.clone();
                }
            }
            if let Some(cc) = doc.pointer_mut("/spec/conversion/webhook/clientConfig") {
                localize_client_config(cc, webhook_port, &ca_b64);
            }
            let crd: CustomResourceDefinition =
                serde_json::from_value(doc).with_context(|| format!("CRD in {resource}"))?;
            out.push(crd);
        }
    }
    if out.is_empty() {
        bail!("no CRDs found for {component} in {}", dir.display());
    }
    Ok(out)
}

/// The admission webhook configurations of one component (`config/webhook/manifests.yaml`),
/// renamed `kaas-<component>-<name>` and pointed at `127.0.0.1:<webhook_port>`.
/// Each value is a complete `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
pub fn component_webhooks(
    artifacts: &PlaneArtifacts,
    component: &str,
    webhook_port: u16,
    ca_pem: &str,
) -> Result<Vec<Value>> {
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut out = Vec::new();
    for mut doc in read_documents(&artifacts.webhook_manifest(component))? {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "MutatingWebhookConfiguration" && kind != "ValidatingWebhookConfiguration" {
            continue;
        }
        let name = format!(
            "kaas-{component}-{}",
            doc["metadata"]["name"]
                .as_str()
                .unwrap_or("webhook-configuration")
        );
        doc["metadata"] =
            json!({ "name": name, "labels": { "app.kubernetes.io/managed-by": "kaas-harness" } });
        for wh in doc["webhooks"].as_array_mut().into_iter().flatten() {
            localize_client_config(&mut wh["clientConfig"], webhook_port, &ca_b64);
        }
        out.push(doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_maps_replace_scalars() {
        let mut base = json!({"spec": {"a": 1, "conversion": {"strategy": "None"}}, "x": [1]});
        merge(
            &mut base,
            &json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {"y": 1}}}, "x": [2]}),
        );
        assert_eq!(
            base,
            json!({"spec": {"a": 1, "conversion": {"strategy": "Webhook", "webhook": {"y": 1}}}, "x": [2]})
        );
    }

    #[test]
    fn client_config_points_at_localhost() {
        let mut cc = json!({"service": {"name": "webhook-service", "namespace": "system", "path": "/convert"}});
        localize_client_config(&mut cc, 9443, "Q0E=");
        assert_eq!(
            cc,
            json!({"url": "https://127.0.0.1:9443/convert", "caBundle": "Q0E="})
        );
    }
}
