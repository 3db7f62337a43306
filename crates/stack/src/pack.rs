//! Packing rendered addons into the ConfigMaps of an addon bundle (docs/addons.md), as
//! addons/bundle does for the dev provider: per addon one or more ConfigMaps
//! `<bundle>-<addon>[-<n>]` with the key `manifest.yaml`, split between documents below
//! [`LIMIT`], and the index ConfigMap `<bundle>` (key `bundle.yaml`) last. Pure.

use std::collections::BTreeMap;

use kaas_api::addons::{
    AddonBundle, BUNDLE_INDEX, BUNDLE_LABEL, BundleAddon, CloudCredentials, Stage,
};
use serde_json::json;

use crate::Error;

/// Largest ConfigMap (keys and values, plus [`METADATA`]) a bundle holds.
pub const LIMIT: usize = 900 * 1024;
/// What a ConfigMap's metadata is counted as.
const METADATA: usize = 4 * 1024;
const DATA_KEY: &str = "manifest.yaml";

/// One rendered addon.
pub struct Packed {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SCS hooks.
    pub hooks: Vec<String>,
    /// The Provider extension it serves: the bundle names the addon after it.
    pub extension: Option<String>,
    /// Documents.
    pub documents: Vec<String>,
}

/// One output file: `NN-<configMap>.yaml` and its YAML.
pub struct File {
    /// File name.
    pub name: String,
    /// ConfigMap YAML.
    pub text: String,
    /// Bytes the ConfigMap counts against [`LIMIT`].
    pub size: usize,
}

/// Packs `addons` into bundle `bundle` for namespace `namespace`.
pub fn pack(
    bundle: &str,
    namespace: &str,
    addons: &[Packed],
    cloud_credentials: Option<CloudCredentials>,
) -> Result<Vec<File>, Error> {
    let mut files = Vec::new();
    let mut index = AddonBundle {
        name: bundle.into(),
        addons: Vec::new(),
        cloud_credentials,
    };
    for a in addons {
        let mut chunks: Vec<String> = Vec::new();
        for (i, d) in a.documents.iter().enumerate() {
            if d.len() + DATA_KEY.len() + METADATA > LIMIT {
                return Err(Error::Size(format!(
                    "{}: document {i} is {} KiB; one document must stay below {} KiB to fit a ConfigMap",
                    a.name,
                    d.len() / 1024,
                    (LIMIT - METADATA) / 1024
                )));
            }
            match chunks.last_mut() {
                Some(c) if c.len() + d.len() + DATA_KEY.len() + METADATA <= LIMIT => c.push_str(d),
                _ => chunks.push(d.clone()),
            }
        }
        let names: Vec<String> = if chunks.len() == 1 {
            vec![format!("{bundle}-{}", a.name)]
        } else {
            (1..=chunks.len())
                .map(|n| format!("{bundle}-{}-{n}", a.name))
                .collect()
        };
        for (name, text) in names.iter().zip(&chunks) {
            files.push(config_map(
                files.len() + 1,
                name,
                namespace,
                bundle,
                DATA_KEY,
                text,
            )?);
        }
        index.addons.push(BundleAddon {
            name: a.extension.clone().unwrap_or_else(|| a.name.clone()),
            stage: if a.extension.is_some() {
                Stage::Extension
            } else {
                Stage::Base
            },
            version: a.version.clone(),
            implementation: None,
            manifests: names.iter().map(|n| format!("{n}/{DATA_KEY}")).collect(),
            hooks: a.hooks.clone(),
        });
    }
    let index_yaml = serde_yaml::to_string(&index).map_err(|e| Error::Size(e.to_string()))?;
    let mut last = config_map(99, bundle, namespace, bundle, BUNDLE_INDEX, &index_yaml)?;
    last.name = format!("99-{bundle}.yaml");
    files.push(last);
    Ok(files)
}

fn config_map(
    n: usize,
    name: &str,
    namespace: &str,
    bundle: &str,
    key: &str,
    text: &str,
) -> Result<File, Error> {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {BUNDLE_LABEL: bundle}},
        "data": BTreeMap::from([(key, text)]),
    });
    Ok(File {
        name: format!("{n:02}-{name}.yaml"),
        text: serde_yaml::to_string(&cm).map_err(|e| Error::Size(e.to_string()))?,
        size: key.len() + text.len() + METADATA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addon(name: &str, docs: usize, each: usize) -> Packed {
        Packed {
            name: name.into(),
            version: "1.0".into(),
            hooks: vec!["AfterControlPlaneInitialized".into()],
            extension: (name == "ccm").then(|| "cloud".to_string()),
            documents: (0..docs)
                .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{x: {}}}\n", "a".repeat(each)))
                .collect(),
        }
    }

    #[test]
    fn a_large_addon_is_split_between_documents_and_the_index_lists_every_part_in_order() {
        let files = pack(
            "b",
            "ns",
            &[addon("cni", 5, 300 * 1024), addon("ccm", 1, 10)],
            Some(CloudCredentials {
                namespace: "kube-system".into(),
                name: "cloud-config".into(),
            }),
        )
        .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "01-b-cni-1.yaml",
                "02-b-cni-2.yaml",
                "03-b-cni-3.yaml",
                "04-b-ccm.yaml",
                "99-b.yaml"
            ]
        );
        assert!(files.iter().all(|f| f.size <= LIMIT));
        let cm: serde_json::Value = serde_yaml::from_str(&files[4].text).unwrap();
        let index: AddonBundle =
            serde_yaml::from_str(cm["data"][BUNDLE_INDEX].as_str().unwrap()).unwrap();
        assert_eq!(
            index.addons[0].manifests,
            [
                "b-cni-1/manifest.yaml",
                "b-cni-2/manifest.yaml",
                "b-cni-3/manifest.yaml"
            ]
        );
        assert_eq!(index.addons[0].hooks, ["AfterControlPlaneInitialized"]);
        assert_eq!(
            (index.addons[0].name.as_str(), index.addons[0].stage),
            ("cni", Stage::Base)
        );
        assert_eq!(
            (index.addons[1].name.as_str(), index.addons[1].stage),
            ("cloud", Stage::Extension)
        );
        assert_eq!(index.cloud_credentials.unwrap().name, "cloud-config");
        assert_eq!(cm["metadata"]["labels"][BUNDLE_LABEL], "b");
    }

    #[test]
    fn a_document_too_large_for_a_config_map_is_refused() {
        let e = pack("b", "ns", &[addon("cni", 1, 901 * 1024)], None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cni: document 0 is"), "{e}");
    }
}
