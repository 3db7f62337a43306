//! The handshake: the SCS Cluster (tenant-writable) names the Cluster API Cluster in
//! [`ANNOTATION_ADOPT_FROM`]; that Cluster API Cluster (in a namespace only the provider admin
//! writes) names the SCS Cluster back in [`ANNOTATION_ADOPTED_BY`]. Only when both agree does the
//! operator manage it ([`confirm`], [`locate`]).

use kaas_api::{ANNOTATION_ADOPT_FROM, ANNOTATION_ADOPTED_BY, Cluster};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_render::{Target, capi_namespace};
use kube::{Api, Client, ResourceExt};

/// `<namespace>/<name>` → its parts, when both are non-empty and there is exactly one `/`.
pub fn parse_ref(s: &str) -> Option<(String, String)> {
    let (ns, name) = s.trim().split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (ns.to_string(), name.to_string()))
}

/// Where the operator manages the Cluster API objects of an SCS Cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Namespace of the Cluster API Cluster.
    pub namespace: String,
    /// Name of the Cluster API Cluster.
    pub name: String,
    /// Set for a confirmed adoption.
    pub target: Option<Target>,
    /// Why a requested adoption is not confirmed; the location is then the derived one (the
    /// tenant's own), and the operator does not apply anything.
    pub problem: Option<String>,
}

/// The handshake, pure: `Ok(None)` when `cluster` asks for no adoption, `Ok(Some(target))` when
/// `capi` (the Cluster API Cluster its `adopt-from` names, if it exists) names it back, otherwise
/// why not.
pub fn confirm(cluster: &Cluster, capi: Option<&CapiCluster>) -> Result<Option<Target>, String> {
    let Some(raw) = cluster.annotations().get(ANNOTATION_ADOPT_FROM) else {
        return Ok(None);
    };
    let Some((ns, name)) = parse_ref(raw) else {
        return Err(format!(
            "annotation {ANNOTATION_ADOPT_FROM}: expected <namespace>/<name> of a Cluster API Cluster, got {raw:?}"
        ));
    };
    let me = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    // One answer for every unconfirmed case — the Cluster API Cluster does not exist, has no
    // `adopted-by`, or is adopted by another SCS Cluster: the tenant may name any namespace,
    // and what the operator finds there (with its own privileges) must not leak to the tenant
    // (`docs/adoption.md`, "The handshake").
    let unconfirmed = || {
        Err(format!(
            "adoption not confirmed by the provider: no Cluster API Cluster {ns}/{name} carries the annotation {ANNOTATION_ADOPTED_BY}: {me} (the provider adopts a cluster with `kaas adopt`)"
        ))
    };
    let Some(capi) = capi else {
        return unconfirmed();
    };
    match capi.annotations().get(ANNOTATION_ADOPTED_BY) {
        Some(by) if by.trim() == me => {}
        _ => return unconfirmed(),
    }
    Ok(Some(Target {
        namespace: ns,
        name,
        class_ref: capi
            .spec
            .topology
            .as_ref()
            .map(|t| (t.class_ref.name.clone(), t.class_ref.namespace.clone())),
    }))
}

/// Where the Cluster API objects of `cluster` (of `provider`) are: the derived
/// [`capi_namespace`]`/<name>`, or the adopted Cluster API Cluster when the handshake holds.
pub async fn locate(
    client: &Client,
    cluster: &Cluster,
    provider: &str,
) -> Result<Location, kube::Error> {
    let tenant = cluster.namespace().unwrap_or_default();
    let mut loc = Location {
        namespace: capi_namespace(provider, &tenant),
        name: cluster.name_any(),
        target: None,
        problem: None,
    };
    let Some(raw) = cluster.annotations().get(ANNOTATION_ADOPT_FROM) else {
        return Ok(loc);
    };
    let capi = match parse_ref(raw) {
        Some((ns, name)) => {
            Api::<CapiCluster>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await?
        }
        None => None,
    };
    match confirm(cluster, capi.as_ref()) {
        Ok(Some(t)) => {
            loc.namespace = t.namespace.clone();
            loc.name = t.name.clone();
            loc.target = Some(t);
        }
        Ok(None) => {}
        Err(p) => loc.problem = Some(p),
    }
    Ok(loc)
}
