//! The stack layout, as SCS cluster-stacks lay out their `cluster-addon` directory: a
//! `clusteraddon.yaml` naming the addons per lifecycle hook, and one wrapper chart directory per
//! addon (`Chart.yaml` whose dependency is the upstream chart, `values.yaml`, `overwrite.yaml`).
//! Reading and checking it is pure apart from reading the files; every error names its file and
//! field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kaas_api::addons::{CloudCredentials, hooks, placeholders};
use serde::Deserialize;

use crate::Error;

/// `clusteraddon.yaml`.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterAddon {
    #[serde(default)]
    addon_stages: BTreeMap<String, Vec<StageEntry>>,
    /// kaas' own additions (the cluster-stack-operator has no notion of them).
    #[serde(default)]
    kaas: KaasSettings,
}

#[derive(Deserialize, Debug)]
struct StageEntry {
    name: String,
    #[serde(default = "apply")]
    action: String,
}

fn apply() -> String {
    "apply".into()
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct KaasSettings {
    /// Release namespace per addon (default `kube-system`, as the SCS stacks install them).
    #[serde(default)]
    namespaces: BTreeMap<String, String>,
    #[serde(default)]
    cloud_credentials: Option<CloudCredentials>,
    /// Addons that serve an extension of the Provider (`metrics-server: metrics`): in the bundle
    /// they are that extension, applied when a Cluster enables it.
    #[serde(default)]
    extensions: BTreeMap<String, String>,
}

/// A wrapper chart's `Chart.yaml` (only what the build reads).
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChartMeta {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

/// A dependency of a wrapper chart: the upstream chart.
#[derive(Deserialize, Debug)]
pub(crate) struct Dependency {
    pub name: String,
    pub version: String,
}

/// One addon of the layout.
#[derive(Debug)]
pub struct Addon {
    /// Name (its directory).
    pub name: String,
    /// The wrapper chart's directory.
    pub dir: PathBuf,
    /// Release namespace.
    pub namespace: String,
    /// Hooks it is named in, in [`hooks::ALL`]'s order.
    pub hooks: Vec<String>,
    /// Placeholders its `overwrite.yaml` uses.
    pub placeholders: Vec<String>,
    /// Whether it has an `overwrite.yaml`.
    pub overwrite: bool,
    /// The Provider extension it serves, if any.
    pub extension: Option<String>,
    pub(crate) chart: ChartMeta,
}

/// A checked layout.
#[derive(Debug)]
pub struct Layout {
    /// Addons in apply order (the order of `AfterControlPlaneInitialized`).
    pub addons: Vec<Addon>,
    /// Where the Provider's credentials go in the workload cluster.
    pub cloud_credentials: Option<CloudCredentials>,
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::Io(path.display().to_string(), e))
}

fn invalid(path: &Path, msg: impl Into<String>) -> Error {
    Error::Layout(path.display().to_string(), msg.into())
}

/// Reads and checks the layout in `dir`.
pub fn read_layout(dir: &Path) -> Result<Layout, Error> {
    let file = dir.join("clusteraddon.yaml");
    let ca: ClusterAddon =
        serde_yaml::from_str(&read(&file)?).map_err(|e| invalid(&file, e.to_string()))?;
    for hook in ca.addon_stages.keys() {
        if !hooks::ALL.contains(&hook.as_str()) {
            return Err(invalid(
                &file,
                format!(
                    "addonStages.{hook}: not a hook kaas maps to its lifecycle; known: {}",
                    hooks::ALL.join(", ")
                ),
            ));
        }
    }
    for (hook, entries) in &ca.addon_stages {
        for (i, e) in entries.iter().enumerate() {
            if e.action != "apply" {
                return Err(invalid(
                    &file,
                    format!(
                        "addonStages.{hook}[{i}].action: {:?} is not supported; kaas applies addons (and prunes what a bundle no longer has)",
                        e.action
                    ),
                ));
            }
        }
    }
    let first = ca
        .addon_stages
        .get(hooks::AFTER_CONTROL_PLANE_INITIALIZED)
        .ok_or_else(|| {
            invalid(
                &file,
                format!(
                    "addonStages.{}: missing; it names the addons and their order",
                    hooks::AFTER_CONTROL_PLANE_INITIALIZED
                ),
            )
        })?;
    for (hook, entries) in &ca.addon_stages {
        for (i, e) in entries.iter().enumerate() {
            if !first.iter().any(|f| f.name == e.name) {
                return Err(invalid(
                    &file,
                    format!(
                        "addonStages.{hook}[{i}].name: {:?} is not in {}; kaas installs every addon of a stack when the control plane is initialised",
                        e.name,
                        hooks::AFTER_CONTROL_PLANE_INITIALIZED
                    ),
                ));
            }
        }
    }
    let mut addons = Vec::new();
    for (i, e) in first.iter().enumerate() {
        let field = format!(
            "addonStages.{}[{i}].name",
            hooks::AFTER_CONTROL_PLANE_INITIALIZED
        );
        if !is_dns_label(&e.name) {
            return Err(invalid(
                &file,
                format!(
                    "{field}: {:?} must be a DNS label (it names ConfigMaps)",
                    e.name
                ),
            ));
        }
        if addons.iter().any(|a: &Addon| a.name == e.name) {
            return Err(invalid(
                &file,
                format!("{field}: {:?} is named twice", e.name),
            ));
        }
        addons.push(read_addon(dir, &e.name, &ca)?);
    }
    for (field, names) in [
        ("namespaces", ca.kaas.namespaces.keys()),
        ("extensions", ca.kaas.extensions.keys()),
    ] {
        for name in names {
            if !addons.iter().any(|a| &a.name == name) {
                return Err(invalid(
                    &file,
                    format!("kaas.{field}.{name}: no such addon"),
                ));
            }
        }
    }
    if let Some(c) = &ca.kaas.cloud_credentials
        && (!is_dns_label(&c.namespace) || c.name.is_empty())
    {
        return Err(invalid(
            &file,
            "kaas.cloudCredentials: namespace (a DNS label) and name are required",
        ));
    }
    Ok(Layout {
        addons,
        cloud_credentials: ca.kaas.cloud_credentials,
    })
}

fn read_addon(root: &Path, name: &str, ca: &ClusterAddon) -> Result<Addon, Error> {
    let dir = root.join(name);
    let chart_file = dir.join("Chart.yaml");
    let chart: ChartMeta = serde_yaml::from_str(&read(&chart_file)?)
        .map_err(|e| invalid(&chart_file, e.to_string()))?;
    if !dir.join("values.yaml").is_file() {
        return Err(invalid(&dir, "values.yaml: missing"));
    }
    let overwrite_file = dir.join("overwrite.yaml");
    let overwrite = overwrite_file.is_file();
    let placeholders = if overwrite {
        used_placeholders(&overwrite_file, &read(&overwrite_file)?)?
    } else {
        Vec::new()
    };
    let hooks = hooks::ALL
        .iter()
        .filter(|h| {
            ca.addon_stages
                .get(**h)
                .is_some_and(|es| es.iter().any(|e| e.name == name))
        })
        .map(|h| h.to_string())
        .collect();
    Ok(Addon {
        name: name.into(),
        namespace: ca
            .kaas
            .namespaces
            .get(name)
            .cloned()
            .unwrap_or_else(|| "kube-system".into()),
        dir,
        hooks,
        placeholders,
        overwrite,
        extension: ca.kaas.extensions.get(name).cloned(),
        chart,
    })
}

/// The placeholders `text` uses; an unknown one is an error with its line.
fn used_placeholders(file: &Path, text: &str) -> Result<Vec<String>, Error> {
    let mut used = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(placeholders::PREFIX) {
            let tail = &rest[at..];
            let end = tail.find('}').map_or(tail.len(), |e| e + 1);
            let p = &tail[..end];
            if !placeholders::ALL.contains(&p) {
                return Err(invalid(
                    file,
                    format!(
                        "line {}: unknown placeholder {p:?}; known: {}",
                        n + 1,
                        placeholders::ALL.join(", ")
                    ),
                ));
            }
            if !used.iter().any(|u| u == p) {
                used.push(p.to_string());
            }
            rest = &tail[end..];
        }
    }
    Ok(used)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Layout, Error>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let l = read_layout(dir.path());
        (dir, l)
    }

    const CHART: &str = "apiVersion: v2\nname: cni\nversion: v1\ndependencies:\n- {name: cilium, version: 1.20.2, alias: cilium}\n";

    #[test]
    fn addons_keep_the_order_of_after_control_plane_initialized_and_record_their_hooks() {
        let (_d, l) = layout(&[
            (
                "clusteraddon.yaml",
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni, action: apply}, {name: ccm, action: apply}]\n  BeforeClusterUpgrade: [{name: ccm, action: apply}]\nkaas:\n  namespaces: {ccm: openstack}\n  extensions: {cni: network}\n  cloudCredentials: {namespace: kube-system, name: cloud-config}\n",
            ),
            ("cni/Chart.yaml", CHART),
            ("cni/values.yaml", "{}"),
            ("ccm/Chart.yaml", CHART),
            ("ccm/values.yaml", "{}"),
            (
                "ccm/overwrite.yaml",
                "x:\n  cluster: ${cluster.name}\n  cidr: [\"${cluster.podCIDR}\"]\n",
            ),
        ]);
        let l = l.unwrap();
        let names: Vec<_> = l.addons.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["cni", "ccm"]);
        assert_eq!(l.addons[0].hooks, ["AfterControlPlaneInitialized"]);
        assert_eq!(
            l.addons[1].hooks,
            ["AfterControlPlaneInitialized", "BeforeClusterUpgrade"]
        );
        assert_eq!(l.addons[1].namespace, "openstack");
        assert_eq!(l.addons[0].namespace, "kube-system");
        assert_eq!(
            l.addons[1].placeholders,
            ["${cluster.name}", "${cluster.podCIDR}"]
        );
        assert_eq!(l.cloud_credentials.unwrap().name, "cloud-config");
        assert_eq!(l.addons[0].extension.as_deref(), Some("network"));
        assert_eq!(l.addons[1].extension, None);
    }

    #[test]
    fn bad_layouts_are_refused_with_file_and_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni}]\n  BeforeNodeUpgrade: [{name: cni}]\n",
                "",
                "addonStages.BeforeNodeUpgrade: not a hook",
            ),
            (
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni, action: delete}]\n",
                "",
                "addonStages.AfterControlPlaneInitialized[0].action: \"delete\" is not supported",
            ),
            (
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni}]\n  BeforeClusterUpgrade: [{name: csi}]\n",
                "",
                "addonStages.BeforeClusterUpgrade[0].name: \"csi\" is not in AfterControlPlaneInitialized",
            ),
            (
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni}]\n",
                "a: ${cluster.uid}\n",
                "overwrite.yaml: line 1: unknown placeholder \"${cluster.uid}\"",
            ),
            (
                "addonStages:\n  AfterControlPlaneInitialized: [{name: cni}]\nkaas: {namespaces: {csi: x}}\n",
                "",
                "kaas.namespaces.csi: no such addon",
            ),
        ];
        for (ca, overwrite, want) in cases {
            let mut files = vec![
                ("clusteraddon.yaml", *ca),
                ("cni/Chart.yaml", CHART),
                ("cni/values.yaml", "{}"),
            ];
            if !overwrite.is_empty() {
                files.push(("cni/overwrite.yaml", overwrite));
            }
            let (_d, l) = layout(&files);
            let e = l.expect_err(want).to_string();
            assert!(e.contains(want), "{e}\nwant: {want}");
        }
    }
}
