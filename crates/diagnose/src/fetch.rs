//! Reading what [`analyze`](crate::analyze) needs, with whatever identity the client has: a
//! refused read (403) is recorded as [`Fetched::Forbidden`], never an error of the whole call.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kaas_api::provider::BackendType;
use kaas_api::{Cluster, Provider};
use kaas_capi::cluster::Cluster as CapiCluster;
use kaas_capi::kubeadmcontrolplane::KubeadmControlPlane;
use kaas_capi::machine::Machine;
use kaas_capi::machinedeployment::MachineDeployment;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::{Diagnosis, Error, Fetched, Inputs, analyze};

fn classify<T>(r: Result<T, kube::Error>) -> Fetched<T> {
    match r {
        Ok(v) => Fetched::Ok(v),
        Err(kube::Error::Api(e)) if e.code == 403 => Fetched::Forbidden,
        Err(e) => Fetched::Failed(e.to_string()),
    }
}

async fn get<K>(api: Api<K>, name: &str) -> Fetched<Option<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    classify(api.get_opt(name).await)
}

async fn list<K>(api: Api<K>, lp: ListParams) -> Fetched<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    classify(api.list(&lp).await.map(|l| l.items))
}

/// The provider kaas uses for `cluster`: the named one, else the only one (of the legacy
/// `providerType`); the same choice as the operator. `None` when it cannot be told (or read).
async fn provider(client: &Client, cluster: &Cluster) -> (Option<String>, Option<Provider>) {
    let api: Api<Provider> = Api::all(client.clone());
    let pref = cluster.spec.provider.clone().unwrap_or_default();
    if let Some(name) = pref.name {
        let p = api.get_opt(&name).await.ok().flatten();
        return (Some(name), p);
    }
    let Ok(all) = api.list(&ListParams::default()).await else {
        return (None, None);
    };
    let mut candidates: Vec<Provider> = all
        .items
        .into_iter()
        .filter(|p| {
            pref.provider_type
                .as_deref()
                .is_none_or(|t| p.spec.provider_type == t)
        })
        .collect();
    if candidates.len() == 1 {
        let p = candidates.remove(0);
        (Some(p.name_any()), Some(p))
    } else {
        (None, None)
    }
}

async fn infrastructure(
    client: &Client,
    ns: &str,
    group: &str,
    kind: &str,
    name: &str,
) -> Fetched<Option<DynamicObject>> {
    let g = match kube::discovery::group(client, group).await {
        Ok(g) => g,
        Err(e) => return classify(Err(e)),
    };
    let Some((ar, _)) = g.recommended_kind(kind) else {
        return Fetched::Failed(format!("the API server does not serve {kind}.{group}"));
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    get(api, name).await
}

/// Reads everything [`analyze`] needs. Fails only when the SCS `Cluster` itself cannot be read.
pub async fn fetch(client: &Client, namespace: &str, name: &str) -> Result<Inputs, Error> {
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), namespace);
    let cluster = match clusters.get(name).await {
        Ok(c) => c,
        Err(kube::Error::Api(e)) if e.code == 404 => {
            return Err(Error::NotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Err(Error::Forbidden {
                namespace: namespace.into(),
                name: name.into(),
                message: e.message.clone(),
            });
        }
        Err(source) => {
            return Err(Error::Kube {
                namespace: namespace.into(),
                name: name.into(),
                source,
            });
        }
    };
    let mut i = Inputs::new(cluster.clone(), Timestamp::now());
    let (provider_name, provider) = provider(client, &cluster).await;
    i.provider = provider_name.clone();
    i.imported = provider
        .as_ref()
        .is_some_and(|p| p.spec.backend.kind == BackendType::Static);
    i.capi_namespace = provider_name
        .as_deref()
        .map(|p| kaas_render::capi_namespace(p, namespace));

    let tenant_events = list(
        Api::<Event>::namespaced(client.clone(), namespace),
        ListParams::default().fields(&format!(
            "involvedObject.kind=Cluster,involvedObject.name={name}"
        )),
    );
    let Some(cns) = i.capi_namespace.clone().filter(|_| !i.imported) else {
        i.tenant_events = tenant_events.await;
        return Ok(i);
    };

    // An adopted cluster (`kaas adopt`, docs/adoption.md) stays where it was; follow the
    // annotation only when the Cluster API Cluster confirms it, as the operator does.
    let (cns, capi_name) = match adopted_location(client, &cluster).await {
        Some((ns, n)) => {
            i.capi_namespace = Some(ns.clone());
            (ns, n)
        }
        None => (cns, name.to_string()),
    };
    let name = capi_name.as_str();
    let selector = ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={name}"));
    let (capi_cluster, mds, machines, capi_events, tenant_events) = futures::join!(
        get(Api::<CapiCluster>::namespaced(client.clone(), &cns), name),
        list(
            Api::<MachineDeployment>::namespaced(client.clone(), &cns),
            selector.clone()
        ),
        list(Api::<Machine>::namespaced(client.clone(), &cns), selector),
        list(
            Api::<Event>::namespaced(client.clone(), &cns),
            ListParams::default()
        ),
        tenant_events,
    );
    i.tenant_events = tenant_events;
    i.capi_events = capi_events;
    i.machine_deployments = mds;
    i.machines = machines;

    let capi = capi_cluster.ok().and_then(|c| c.as_ref());
    let cp_ref = capi.and_then(|c| c.spec.control_plane_ref.clone());
    let infra_ref = capi.and_then(|c| c.spec.infrastructure_ref.clone());
    let control_plane = async {
        match &cp_ref {
            Some(r) if r.kind == "KubeadmControlPlane" => {
                get(
                    Api::<KubeadmControlPlane>::namespaced(client.clone(), &cns),
                    &r.name,
                )
                .await
            }
            _ => Fetched::NotRead,
        }
    };
    let infra = async {
        match &infra_ref {
            Some(r) => infrastructure(client, &cns, &r.api_group, &r.kind, &r.name).await,
            None => Fetched::NotRead,
        }
    };
    let (control_plane, infra) = futures::join!(control_plane, infra);
    i.control_plane = control_plane;
    i.infrastructure = infra;
    i.capi_cluster = capi_cluster;
    Ok(i)
}

/// Reads and analyses one SCS `Cluster` with the client's identity. What the identity may not
/// read shows as `hidden` in the tree; only an unreadable SCS `Cluster` is an error
/// ([`Error::NotFound`] for 404, [`Error::Forbidden`] for 403).
pub async fn diagnose(client: &Client, namespace: &str, name: &str) -> Result<Diagnosis, Error> {
    Ok(analyze(&fetch(client, namespace, name).await?))
}

/// Where an adopted cluster's Cluster API objects are: the SCS Cluster's `adopt-from`
/// annotation, if the Cluster API Cluster there names this SCS Cluster back (and the identity may
/// read it).
async fn adopted_location(client: &Client, cluster: &Cluster) -> Option<(String, String)> {
    let from = cluster
        .annotations()
        .get(kaas_api::ANNOTATION_ADOPT_FROM)?
        .clone();
    let (ns, n) = from.split_once('/')?;
    let capi = Api::<CapiCluster>::namespaced(client.clone(), ns)
        .get_opt(n)
        .await
        .ok()??;
    let me = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    (capi.annotations().get(kaas_api::ANNOTATION_ADOPTED_BY) == Some(&me))
        .then(|| (ns.to_string(), n.to_string()))
}
