//! Applying manifests (server-side apply of arbitrary YAML) and rendering upstream templates.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};

use crate::capi::yaml_documents;

/// Field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "kaas-harness";

/// Server-side applies every document of a multi-document YAML text (forcing conflicts).
/// Namespaced objects without a namespace go to `namespace`. Returns the applied objects.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    namespace: &str,
) -> Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    for doc in yaml_documents(yaml)? {
        let obj: DynamicObject =
            serde_json::from_value(doc).context("a YAML document is not a Kubernetes object")?;
        out.push(apply_object(client, &obj, namespace).await?);
    }
    Ok(out)
}

/// Server-side applies one object (kind resolved through discovery).
pub async fn apply_object(
    client: &Client,
    obj: &DynamicObject,
    namespace: &str,
) -> Result<DynamicObject> {
    let types = obj
        .types
        .as_ref()
        .context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(types)?;
    let name = obj
        .metadata
        .name
        .clone()
        .context("object without metadata.name")?;
    let (ar, caps) = pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("resolving {}/{} {}", gvk.group, gvk.version, gvk.kind))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = obj.metadata.namespace.as_deref().unwrap_or(namespace);
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .with_context(|| format!("applying {} {name}", gvk.kind))
}

/// An `Api<DynamicObject>` for a group/version/kind with an explicit plural (no discovery).
pub fn dynamic_api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Server-side applies CRDs and waits (up to `timeout`) until each is `Established`.
pub async fn install_crds(
    client: &Client,
    crds: &[CustomResourceDefinition],
    timeout: Duration,
) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd.metadata.name.as_deref().context("CRD without name")?;
        api.patch(name, &pp, &Patch::Apply(crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    let deadline = Instant::now() + timeout;
    for crd in crds {
        let name = crd.metadata.name.as_deref().unwrap_or_default();
        loop {
            let established = api
                .get_opt(name)
                .await?
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() >= deadline {
                bail!("CRD {name} not Established after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Renders a clusterctl-style template: `${VAR}`, `${VAR:=default}`, `${VAR:-default}` and
/// `${VAR=default}`. A variable without value or default is an error.
pub fn envsubst(text: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .with_context(|| format!("unclosed ${{ in template near {:?}", &rest[start..]))?;
        let expr = &after[..end];
        let (name, default) = match expr.find([':', '=', '-']) {
            Some(i) => {
                let op_len = if expr[i..].starts_with(":=") || expr[i..].starts_with(":-") {
                    2
                } else {
                    1
                };
                (&expr[..i], Some(&expr[i + op_len..]))
            }
            None => (expr, None),
        };
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .or(default)
            .with_context(|| format!("template variable {name} has no value"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envsubst_forms() {
        let t = "a: ${A}\nb: ${B:=[\"10.0.0.0/8\"]}\nc: ${C:-x}\nd: ${D=y}\n";
        assert_eq!(
            envsubst(t, &[("A", "1"), ("C", "3")]).unwrap(),
            "a: 1\nb: [\"10.0.0.0/8\"]\nc: 3\nd: y\n"
        );
        assert!(envsubst("${MISSING}", &[]).is_err());
    }
}
