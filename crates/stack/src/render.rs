//! Rendering one addon with Helm's own engine: the wrapper chart is copied into a scratch
//! directory with the upstream chart under `charts/` (as `helm dependency build` would unpack
//! it), then `helm template --kube-version <version> --include-crds` with `values.yaml` and
//! `overwrite.yaml`. The output is checked and completed for kaas: every document an object,
//! namespaced objects in the release namespace, and every placeholder `overwrite.yaml` uses
//! still present (a chart that transformed a placeholder would install a wrong value).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::layout::Addon;

/// Kinds that are cluster-scoped (a namespaced object without a namespace gets the release
/// namespace; a kind kaas does not know is left as the chart wrote it).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "GatewayClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeSnapshotClass",
    "CiliumClusterwideNetworkPolicy",
    "CiliumLoadBalancerIPPool",
    "CiliumBGPClusterConfig",
];

/// A rendered addon.
#[derive(Debug)]
pub struct Rendered {
    /// The YAML documents, each one object.
    pub documents: Vec<String>,
    /// What the addon installs: the upstream chart's appVersion, else its version.
    pub version: String,
}

/// Renders `addon` with the upstream chart sources `charts` (dependency name → directory).
pub fn render(
    helm: &Path,
    addon: &Addon,
    charts: &BTreeMap<String, PathBuf>,
    kube_version: &str,
    scratch: &Path,
) -> Result<Rendered, Error> {
    let work = scratch.join(&addon.name);
    copy_dir(&addon.dir, &work)?;
    let mut version = addon.chart.version.clone();
    for (i, dep) in addon.chart.dependencies.iter().enumerate() {
        let field = format!("{}/Chart.yaml: dependencies[{i}]", addon.name);
        let src = charts.get(&dep.name).ok_or_else(|| {
            Error::Chart(format!(
                "{field}: no source for chart {:?}; pass --chart {}=DIR",
                dep.name, dep.name
            ))
        })?;
        let meta_file = src.join("Chart.yaml");
        let meta: crate::layout::ChartMeta = serde_yaml::from_str(
            &std::fs::read_to_string(&meta_file)
                .map_err(|e| Error::Io(meta_file.display().to_string(), e))?,
        )
        .map_err(|e| Error::Chart(format!("{}: {e}", meta_file.display())))?;
        if meta.name != dep.name
            || meta.version.trim_start_matches('v') != dep.version.trim_start_matches('v')
        {
            return Err(Error::Chart(format!(
                "{field}: wants chart {} {}, but {} is {} {}",
                dep.name,
                dep.version,
                src.display(),
                meta.name,
                meta.version
            )));
        }
        copy_dir(src, &work.join("charts").join(&dep.name))?;
        if i == 0 {
            version = meta.app_version.unwrap_or(meta.version);
        }
    }
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg(&addon.name)
        .arg(&work)
        .arg("--namespace")
        .arg(&addon.namespace)
        .arg("--kube-version")
        .arg(kube_version)
        .arg("--include-crds")
        .arg("--skip-tests")
        .arg("--values")
        .arg(work.join("values.yaml"));
    if addon.overwrite {
        cmd.arg("--values").arg(work.join("overwrite.yaml"));
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Helm(format!("running {}: {e}", helm.display())))?;
    if !out.status.success() {
        return Err(Error::Helm(format!(
            "{}: helm template failed: {}",
            addon.name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|e| Error::Helm(format!("{}: output is not UTF-8: {e}", addon.name)))?;
    let documents = objects(&addon.name, &addon.namespace, &text)?;
    let joined = documents.concat();
    for p in &addon.placeholders {
        if !joined.contains(p.as_str()) {
            return Err(Error::Chart(format!(
                "{}/overwrite.yaml: placeholder {p} does not reach the rendered manifests unchanged (the chart transforms or drops that value); use it only for values a chart passes through",
                addon.name
            )));
        }
    }
    Ok(Rendered { documents, version })
}

/// Splits Helm's output into one YAML text per object (pure): empty documents are dropped,
/// every other must have apiVersion, kind and metadata.name; namespaced objects without a
/// namespace get `namespace`.
pub fn objects(addon: &str, namespace: &str, text: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut doc = serde_yaml::Value::deserialize(de)
            .map_err(|e| Error::Chart(format!("{addon}: document {i}: {e}")))?;
        if doc.is_null() {
            continue;
        }
        let kind = doc
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let ok = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .is_some_and(|v| !v.is_empty())
            && !kind.is_empty()
            && doc
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .is_some_and(|n| !n.is_empty());
        if !ok {
            return Err(Error::Chart(format!(
                "{addon}: document {i}: apiVersion, kind and metadata.name are required"
            )));
        }
        octal_modes(&mut doc);
        if !CLUSTER_SCOPED.contains(&kind.as_str())
            && let Some(meta) = doc.get_mut("metadata").and_then(|m| m.as_mapping_mut())
            && !meta.contains_key("namespace")
        {
            meta.insert("namespace".into(), namespace.into());
        }
        let yaml = serde_yaml::to_string(&doc)
            .map_err(|e| Error::Chart(format!("{addon}: document {i}: {e}")))?;
        out.push(format!("---\n{yaml}"));
    }
    Ok(out)
}

use serde::Deserialize as _;

/// File modes as Kubernetes reads them: charts write `defaultMode: 0400`, which YAML 1.1 (the
/// Go YAML libraries of helm, kubectl and the API machinery) reads as the octal 256, while the
/// YAML 1.2 reader here keeps a number with a leading zero as the string "0400" — which the API
/// server refuses. Every `defaultMode`/`mode` that is such a string becomes the octal number.
fn octal_modes(v: &mut serde_yaml::Value) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                let is_mode = matches!(k.as_str(), Some("defaultMode" | "mode"));
                if is_mode
                    && let Some(s) = x.as_str()
                    && s.len() > 1
                    && s.starts_with('0')
                    && let Ok(n) = u32::from_str_radix(s, 8)
                {
                    *x = serde_yaml::Value::Number(n.into());
                } else {
                    octal_modes(x);
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |p: &Path, e| Error::Io(p.display().to_string(), e);
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| io(&path, e))?;
            // Module cache files are read-only; the scratch copy is ours.
            let mut perm = std::fs::metadata(&target)
                .map_err(|e| io(&target, e))?
                .permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&target, perm).map_err(|e| io(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_objects_get_the_release_namespace_and_cluster_scoped_ones_do_not() {
        let docs = objects(
            "cni",
            "kube-system",
            "---\n# comment only\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[0].contains("namespace: kube-system"), "{}", docs[0]);
        assert!(!docs[1].contains("namespace"), "{}", docs[1]);
        assert!(docs[2].contains("namespace: other"), "{}", docs[2]);
    }

    #[test]
    fn octal_file_modes_become_the_numbers_kubernetes_reads() {
        let docs = objects(
            "cni",
            "kube-system",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - name: a\n    projected:\n      defaultMode: 0400\n      sources: [{secret: {name: s, items: [{key: k, path: p, mode: 0755}]}}]\n  - name: b\n    secret: {secretName: s, defaultMode: 420}\n",
        )
        .unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&docs[0]).unwrap();
        let vols = &v["spec"]["volumes"];
        assert_eq!(vols[0]["projected"]["defaultMode"].as_u64(), Some(0o400));
        assert_eq!(
            vols[0]["projected"]["sources"][0]["secret"]["items"][0]["mode"].as_u64(),
            Some(0o755)
        );
        assert_eq!(vols[1]["secret"]["defaultMode"].as_u64(), Some(420));
    }

    #[test]
    fn a_document_without_a_name_is_refused() {
        let e = objects(
            "cni",
            "kube-system",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cni: document 0: apiVersion, kind and metadata.name are required"),
            "{e}"
        );
    }
}
