//! The second layer: a `Cluster` against the `Provider` offering it names. Pure: no client, no
//! clock. Returns every error with its field path and what would be valid, or the cluster with
//! every default and `x` resolved — the input of rendering.

use std::collections::BTreeMap;

use kaas_api::cluster::{AccessSpec, IpFamily, Taint};
use kaas_api::legacy::{extension_requests, names};
use kaas_api::provider::{BackendType, Classification, Flavor, KubernetesVersion, StackKind};
use kaas_api::version::Patch;
use kaas_api::{Cluster, KubeVersion, Provider};
use serde::Serialize;

use crate::error::{ErrorKind, FieldError, FieldErrors};
use crate::network;

/// A cluster with everything resolved against its provider.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resolved {
    /// Provider name.
    pub provider: String,
    /// Backend of the provider.
    pub backend: BackendType,
    /// Stack family (Cluster API backends).
    pub stack: Option<StackKind>,
    /// Runtime of the control planes (hosted backends).
    pub hosted_runtime: Option<String>,
    /// Provider namespace holding ClusterClasses and credentials (Cluster API backends).
    pub provider_namespace: Option<String>,
    /// Region.
    pub region: String,
    /// Exact version to run (Cluster API backends).
    pub version: Option<KubeVersion>,
    /// Classification of that version in the offering.
    pub classification: Option<Classification>,
    /// True when the spec's version is expired and kaas moves the cluster to the newest patch of
    /// the branch (inside the maintenance window).
    pub forced_update: bool,
    /// ClusterClass realising the version.
    pub cluster_class: Option<String>,
    /// Stack release, for status.
    pub stack_release: Option<String>,
    /// Control plane.
    pub control_plane: ControlPlane,
    /// Worker pools, in spec order.
    pub pools: Vec<Pool>,
    /// Network.
    pub network: Network,
    /// Extensions to install, by name.
    pub extensions: BTreeMap<String, Extension>,
    /// Access settings, as in the spec.
    pub access: AccessSpec,
    /// Things the user should know; not errors.
    pub warnings: Vec<String>,
    /// Hibernation asked for (`spec.hibernation.enabled`): every pool is rendered at zero nodes
    /// (their sizes and autoscaler bounds stay here, for waking), no autoscaler runs, and a hosted
    /// control plane is stopped with its data.
    pub hibernated: bool,
    /// The cluster-autoscaler image kaas runs for this cluster: a pool autoscales, the backend is
    /// Cluster API and the provider names an image for the version's minor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler_image: Option<String>,
}

impl Resolved {
    /// The size `pool` is rendered at now: its spec'd size, or zero nodes while the cluster
    /// hibernates (the spec'd size stays in `pool.size`, for waking and for status).
    pub fn size_now(&self, pool: &Pool) -> Size {
        if self.hibernated {
            Size::Fixed(0)
        } else {
            pool.size
        }
    }
}

/// Resolved control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControlPlane {
    /// 1, 3 or 5.
    pub replicas: i32,
    /// Flavor name.
    pub flavor: String,
    /// Zones (may be empty: provider decides).
    pub zones: Vec<String>,
    /// Spread over hosts.
    pub anti_affinity: bool,
}

/// Size of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Size {
    /// Fixed node count.
    Fixed(i32),
    /// Autoscaled between min and max.
    Autoscale {
        /// Lower bound.
        min: i32,
        /// Upper bound.
        max: i32,
    },
}

/// Resolved worker pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    /// Name (DNS label).
    pub name: String,
    /// Flavor name.
    pub flavor: String,
    /// Size.
    pub size: Size,
    /// Zones (may be empty: provider decides).
    pub zones: Vec<String>,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// The flavor as the offering describes it (`None` when the flavor is not offered): the
    /// node size of hosted pools and of the autoscaler's scale from zero.
    pub offered: Option<Flavor>,
}

/// Resolved network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    /// IP family.
    pub ip_family: IpFamily,
    /// Pod CIDRs.
    pub pods: Vec<String>,
    /// Service CIDRs.
    pub services: Vec<String>,
    /// Node CIDRs.
    pub nodes: Vec<String>,
}

/// Resolved extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Version offered.
    pub version: Option<String>,
    /// Implementation chosen.
    pub implementation: Option<String>,
}

/// Default pod CIDR when neither cluster nor provider says.
pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
/// Default service CIDR when neither cluster nor provider says.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// Checks `cluster` against `provider`. The cluster's status (the version it runs now) decides
/// whether a version change is an allowed upgrade.
///
/// The checks run in the order of the spec (provider and region, version, control plane, pools,
/// extensions, network, access, hibernation, autoscaler, capabilities), each a step below that
/// reads the shared [`Checking`] and collects its errors and warnings; every error is reported,
/// not only the first.
pub fn validate(cluster: &Cluster, provider: &Provider) -> Result<Resolved, FieldErrors> {
    let mut cx = Checking::new(cluster, provider);
    cx.check_provider_ref();
    let region = cx.region();
    let picked = cx.version();
    let control_plane = cx.control_plane(region);
    let pools = cx.pools(region);
    let extensions = resolve_extensions(cluster, provider, &mut cx.errs, &mut cx.warnings);
    let network = cx.network(control_plane.replicas, &pools);
    cx.check_issuer_ca();
    let hibernated = cx.hibernation();
    let autoscaler_image = if cx.is_capi {
        crate::autoscaling::image(
            provider,
            picked.version.as_ref(),
            &pools,
            &mut cx.errs,
            &mut cx.warnings,
        )
    } else {
        None
    };
    // Capabilities: features the version's stack cannot serve (per stack verification).
    if let Some(v) = &picked.version {
        check_capabilities(cluster, provider, v, &extensions, &mut cx.errs);
    }

    if !cx.errs.is_empty() {
        return Err(cx.errs);
    }
    let p = &provider.spec;
    let capi = p.backend.cluster_api.as_ref().filter(|_| cx.is_capi);
    Ok(Resolved {
        provider: cx.name,
        backend: p.backend.kind,
        stack: capi.map(|c| c.stack),
        hosted_runtime: (p.backend.kind == BackendType::Hosted).then(|| {
            p.backend.hosted.as_ref().map_or_else(
                || kaas_api::hosted::RUNTIME_LOCAL.to_string(),
                |h| h.runtime.clone(),
            )
        }),
        provider_namespace: Some(p.backend.namespace.clone()),
        region: region.map(|r| r.name.clone()).unwrap_or_default(),
        version: picked.version,
        classification: picked.classification,
        forced_update: picked.forced_update,
        cluster_class: picked.stack.as_ref().map(|s| s.cluster_class.clone()),
        stack_release: picked.stack.and_then(|s| s.release),
        control_plane,
        pools,
        network,
        extensions,
        access: cluster.spec.access.clone().unwrap_or_default(),
        warnings: cx.warnings,
        hibernated,
        autoscaler_image,
    })
}

/// What the steps of [`validate`] read, and what they collect.
struct Checking<'a> {
    cluster: &'a Cluster,
    provider: &'a Provider,
    /// The provider's name (in messages).
    name: String,
    /// Cluster API and hosted backends provision clusters; a static backend imports them.
    provisions: bool,
    is_capi: bool,
    defaults: kaas_api::provider::ProviderDefaults,
    errs: FieldErrors,
    warnings: Vec<String>,
}

/// The version chosen from the offering, with what comes with it.
#[derive(Default)]
struct Picked {
    version: Option<KubeVersion>,
    classification: Option<Classification>,
    forced_update: bool,
    stack: Option<kaas_api::provider::StackRef>,
}

impl<'a> Checking<'a> {
    fn new(cluster: &'a Cluster, provider: &'a Provider) -> Self {
        let p = &provider.spec;
        Checking {
            cluster,
            provider,
            name: provider.metadata.name.clone().unwrap_or_default(),
            provisions: p.backend.kind != BackendType::Static,
            is_capi: p.backend.kind == BackendType::ClusterAPI,
            defaults: p.defaults.clone().unwrap_or_default(),
            errs: FieldErrors::default(),
            warnings: Vec::new(),
        }
    }

    /// `spec.provider.name` and `.providerType` name this provider.
    fn check_provider_ref(&mut self) {
        let pref = self.cluster.spec.provider.clone().unwrap_or_default();
        let provider_name = &self.name;
        if let Some(name) = &pref.name
            && name != provider_name
        {
            self.errs.push(FieldError::new(
                ErrorKind::Invalid,
                "spec.provider.name",
                format!("{name:?} does not name provider {provider_name:?}"),
            ));
        }
        let offered = &self.provider.spec.provider_type;
        if let Some(t) = &pref.provider_type
            && t != offered
        {
            self.errs.push(
                FieldError::new(
                    ErrorKind::NotSupported,
                    "spec.provider.providerType",
                    format!("{t:?} does not match provider {provider_name:?}"),
                )
                .allowed([offered.clone()]),
            );
        }
    }

    /// The region asked for (`spec.provider.region`), else the provider's first.
    fn region(&mut self) -> Option<&'a kaas_api::provider::Region> {
        let regions = &self.provider.spec.regions;
        let asked = self
            .cluster
            .spec
            .provider
            .as_ref()
            .and_then(|p| p.region.as_ref());
        let Some(r) = asked else {
            return regions.first();
        };
        let found = regions.iter().find(|x| x.name == *r);
        if found.is_none() {
            self.errs.push(
                FieldError::new(
                    ErrorKind::NotSupported,
                    "spec.provider.region",
                    format!("{r:?} is not a region of provider {:?}", self.name),
                )
                .allowed(regions.iter().map(|r| r.name.clone())),
            );
        }
        found
    }

    /// Every zone of `zones` (at `path`) is one of the region's.
    fn check_zones(
        &mut self,
        region: Option<&kaas_api::provider::Region>,
        zones: &[String],
        path: &str,
    ) {
        let Some(region) = region else { return };
        for (i, z) in zones.iter().enumerate() {
            if !region.zones.contains(z) {
                self.errs.push(
                    FieldError::new(
                        ErrorKind::NotSupported,
                        format!("{path}[{i}]"),
                        format!("{z:?} is not a zone of region {:?}", region.name),
                    )
                    .allowed(region.zones.clone()),
                );
            }
        }
    }

    /// The Kubernetes version, judged against the one the cluster runs (its status).
    fn version(&mut self) -> Picked {
        if !self.provisions {
            return Picked::default();
        }
        let current = self
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.target_version.as_deref())
            .and_then(|v| v.parse::<KubeVersion>().ok());
        match resolve_version(
            self.cluster,
            self.provider,
            current.as_ref(),
            &mut self.warnings,
        ) {
            Ok(r) => Picked {
                version: Some(r.version),
                classification: Some(r.offer.classification),
                forced_update: r.forced,
                stack: Some(r.offer.stack.clone()),
            },
            Err(e) => {
                self.errs.push(e);
                Picked::default()
            }
        }
    }

    /// The control plane with the provider's defaults; for a static provider, the import
    /// instead, and warnings for what it ignores.
    fn control_plane(&mut self, region: Option<&kaas_api::provider::Region>) -> ControlPlane {
        let spec = &self.cluster.spec;
        let cp = spec.control_plane.clone().unwrap_or_default();
        let flavor = cp
            .flavor
            .clone()
            .or(self.defaults.control_plane_flavor.clone());
        let replicas = cp
            .replicas
            .or(self.defaults.control_plane_replicas)
            .unwrap_or(3);
        let zones = cp.zones.clone().unwrap_or_default();
        if self.provisions {
            check_flavor(
                flavor.as_deref(),
                "spec.controlPlane.flavor",
                true,
                &self.name,
                &self.provider.spec.flavors,
                &mut self.errs,
            );
            self.check_zones(region, &zones, "spec.controlPlane.zones");
        } else if spec.import.is_none() {
            self.errs.push(FieldError::new(
                ErrorKind::Required,
                "spec.import.kubeconfigSecretRef",
                format!(
                    "provider {:?} imports existing clusters: name the Secret with the cluster's kubeconfig",
                    self.name
                ),
            ));
        }
        if !self.provisions && spec.control_plane.is_some() {
            self.warnings
                .push("spec.controlPlane is ignored: a static provider provisions nothing".into());
        }
        if !self.provisions
            && spec
                .access
                .as_ref()
                .is_some_and(|a| a.oidc.is_some() || a.api_server_allowed_cidrs.is_some())
        {
            self.warnings.push(
                "spec.access is ignored: kaas does not configure the API server of an imported cluster (set OIDC and address filters on the cluster itself)"
                    .into(),
            );
        }
        ControlPlane {
            replicas,
            flavor: flavor.unwrap_or_default(),
            zones,
            anti_affinity: cp.anti_affinity.unwrap_or(true),
        }
    }

    /// The worker pools, each against the flavors, zones and limits; and the cluster's total
    /// against the provider's node limit.
    fn pools(&mut self, region: Option<&kaas_api::provider::Region>) -> Vec<Pool> {
        let workers = self.cluster.spec.workers.clone().unwrap_or_default();
        if !self.provisions && !workers.is_empty() {
            self.warnings
                .push("spec.workers is ignored: a static provider provisions nothing".into());
        }
        let limits = self.provider.spec.limits.clone().unwrap_or_default();
        if let Some(max) = limits.max_worker_pools
            && self.provisions
            && workers.len() as i32 > max
        {
            self.errs.push(FieldError::new(
                ErrorKind::Invalid,
                "spec.workers",
                format!(
                    "{} worker pools; provider {:?} allows at most {max}",
                    workers.len(),
                    self.name
                ),
            ));
        }
        let mut total_nodes = 0i64;
        let mut pools = Vec::new();
        for (i, w) in workers.iter().enumerate() {
            let (pool, biggest) = self.pool(i, w, region, &limits);
            total_nodes += i64::from(biggest);
            pools.push(pool);
        }
        if let Some(max) = limits.max_nodes_per_cluster
            && self.provisions
            && total_nodes > i64::from(max)
        {
            self.errs.push(FieldError::new(
                ErrorKind::Invalid,
                "spec.workers",
                format!(
                    "{total_nodes} worker nodes in all; provider {:?} allows at most {max}",
                    self.name
                ),
            ));
        }
        pools
    }

    /// One pool (`spec.workers[i]`), and the most nodes it may have.
    fn pool(
        &mut self,
        i: usize,
        w: &kaas_api::cluster::WorkerPool,
        region: Option<&kaas_api::provider::Region>,
        limits: &kaas_api::provider::Limits,
    ) -> (Pool, i32) {
        let path = format!("spec.workers[{i}]");
        let flavor = w.flavor.clone().or(self.defaults.worker_flavor.clone());
        let size = match (w.count, w.min_count, w.max_count) {
            (Some(c), _, _) => Size::Fixed(c),
            (None, Some(min), Some(max)) => Size::Autoscale { min, max },
            _ => Size::Fixed(1),
        };
        let biggest = match size {
            Size::Fixed(c) => c,
            Size::Autoscale { max, .. } => max,
        };
        let flavors = &self.provider.spec.flavors;
        if self.provisions {
            check_flavor(
                flavor.as_deref(),
                &format!("{path}.flavor"),
                false,
                &self.name,
                flavors,
                &mut self.errs,
            );
            self.check_zones(
                region,
                w.zones.as_deref().unwrap_or_default(),
                &format!("{path}.zones"),
            );
            if let Some(max) = limits.max_nodes_per_pool
                && biggest > max
            {
                let field = if w.count.is_some() {
                    "count"
                } else {
                    "maxCount"
                };
                self.errs.push(FieldError::new(
                    ErrorKind::Invalid,
                    format!("{path}.{field}"),
                    format!(
                        "{biggest} nodes; provider {:?} allows at most {max} per pool",
                        self.name
                    ),
                ));
            }
        }
        let offered = flavor
            .as_deref()
            .and_then(|f| flavors.iter().find(|o| o.name == f))
            .cloned();
        if self.provisions
            && let Some(o) = &offered
        {
            crate::autoscaling::check_scale_from_zero(
                &path,
                size,
                w.zones.as_deref().unwrap_or_default().len(),
                o,
                &self.name,
                &mut self.errs,
            );
        }
        let pool = Pool {
            offered,
            name: w.name.clone(),
            flavor: flavor.unwrap_or_default(),
            size,
            zones: w.zones.clone().unwrap_or_default(),
            labels: w.labels.clone().unwrap_or_default(),
            taints: w.taints.clone().unwrap_or_default(),
        };
        (pool, biggest)
    }

    /// Pod, service and node networks with the provider's defaults, checked against each other,
    /// the nodes they must hold and the provider's reserved networks.
    fn network(&mut self, cp_replicas: i32, pools: &[Pool]) -> Network {
        let spec_net = self.cluster.spec.network.as_ref();
        let net = spec_net.cloned().unwrap_or_default();
        let d = &self.defaults;
        let network = Network {
            ip_family: net.ip_family.unwrap_or_default(),
            pods: net.pods.unwrap_or_else(|| {
                vec![
                    d.pod_cidr
                        .clone()
                        .unwrap_or_else(|| DEFAULT_POD_CIDR.into()),
                ]
            }),
            services: net.services.unwrap_or_else(|| {
                vec![
                    d.service_cidr
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SERVICE_CIDR.into()),
                ]
            }),
            nodes: net
                .nodes
                .unwrap_or_else(|| d.node_cidr.clone().into_iter().collect()),
        };
        if self.provisions {
            // Hosted control planes run on the management side: no control-plane nodes.
            let nodes = network::Nodes::new(if self.is_capi { cp_replicas } else { 0 }, pools);
            network::check(
                spec_net,
                &network,
                nodes,
                &self.name,
                &self.provider.spec.reserved_networks,
                &mut self.errs,
                &mut self.warnings,
            );
        }
        network
    }

    /// An issuer CA needs an API server configuration kaas writes itself: the Cluster API stacks
    /// take OIDC settings through the SCS stacks' `oidcConfig`, which has no place for one.
    fn check_issuer_ca(&mut self) {
        if self.is_capi
            && self
                .cluster
                .spec
                .access
                .as_ref()
                .and_then(|a| a.oidc.as_ref())
                .is_some_and(|o| o.certificate_authority.is_some())
        {
            self.errs.push(FieldError::new(
                ErrorKind::Forbidden,
                "spec.access.oidc.certificateAuthority",
                format!(
                    "provider {:?} runs Cluster API stacks, whose OIDC settings take no \
                     issuer CA: use an issuer with a publicly trusted certificate",
                    self.name
                ),
            ));
        }
    }

    /// Hibernation: schedules must parse; an imported cluster's nodes are not kaas's to stop.
    /// Whether the cluster is to hibernate now.
    fn hibernation(&mut self) -> bool {
        let hibernation = self.cluster.spec.hibernation.clone().unwrap_or_default();
        if let Err(problems) = kaas_api::hibernation::parse(&hibernation) {
            for p in problems {
                self.errs.push(FieldError::new(
                    ErrorKind::Invalid,
                    format!("spec.hibernation.{}", p.path),
                    p.message,
                ));
            }
        }
        if !self.provisions && (hibernation.asked() || hibernation.schedules.is_some()) {
            self.errs.push(FieldError::new(
                ErrorKind::Forbidden,
                "spec.hibernation",
                format!(
                    "provider {:?} imports existing clusters: kaas runs neither their \
                     nodes nor their control plane, so it cannot hibernate them",
                    self.name
                ),
            ));
        }
        self.provisions && hibernation.asked()
    }
}

fn check_flavor(
    flavor: Option<&str>,
    path: &str,
    control_plane: bool,
    provider: &str,
    flavors: &[Flavor],
    errs: &mut FieldErrors,
) {
    let usable = |f: &&Flavor| {
        if control_plane {
            f.control_plane.unwrap_or(true)
        } else {
            f.worker.unwrap_or(true)
        }
    };
    let offered: Vec<String> = flavors
        .iter()
        .filter(usable)
        .map(|f| f.name.clone())
        .collect();
    let role = if control_plane {
        "control-plane nodes"
    } else {
        "worker nodes"
    };
    match flavor {
        None => errs.push(
            FieldError::new(
                ErrorKind::Required,
                path,
                format!("no flavor given and provider {provider:?} has no default for {role}"),
            )
            .allowed(offered),
        ),
        Some(f) if !offered.iter().any(|o| o == f) => {
            let msg = if flavors.iter().any(|x| x.name == f) {
                format!("{f:?} is not offered by provider {provider:?} for {role}")
            } else {
                format!("{f:?} is not offered by provider {provider:?}")
            };
            errs.push(FieldError::new(ErrorKind::NotSupported, path, msg).allowed(offered))
        }
        Some(_) => {}
    }
}

struct VersionChoice<'a> {
    version: KubeVersion,
    offer: &'a KubernetesVersion,
    forced: bool,
}

fn parsed_offers(provider: &Provider) -> Vec<(KubeVersion, &KubernetesVersion)> {
    let mut v: Vec<_> = provider
        .spec
        .kubernetes_versions
        .iter()
        .filter_map(|o| o.version.parse::<KubeVersion>().ok().map(|v| (v, o)))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0));
    v
}

/// The version a cluster without one gets: the newest `supported` one.
pub fn default_version(provider: &Provider) -> Option<KubeVersion> {
    parsed_offers(provider)
        .into_iter()
        .find(|(_, o)| o.classification == Classification::Supported)
        .map(|(v, _)| v)
}

fn resolve_version<'a>(
    cluster: &Cluster,
    provider: &'a Provider,
    current: Option<&KubeVersion>,
    warnings: &mut Vec<String>,
) -> Result<VersionChoice<'a>, FieldError> {
    const PATH: &str = "spec.kubernetes.version";
    let offers = parsed_offers(provider);
    let name = provider.metadata.name.clone().unwrap_or_default();
    let usable = |o: &KubernetesVersion| {
        matches!(
            o.classification,
            Classification::Supported | Classification::Deprecated
        )
    };
    let offered_list = || -> Vec<String> {
        offers
            .iter()
            .filter(|(_, o)| o.classification != Classification::Expired)
            .map(|(v, o)| {
                format!(
                    "{} ({})",
                    v.release().trim_start_matches('v'),
                    o.classification
                )
            })
            .collect()
    };
    let requested = cluster
        .spec
        .kubernetes
        .as_ref()
        .and_then(|k| k.version.clone());
    let Some(requested) = requested else {
        let (v, o) = offers
            .iter()
            .find(|(_, o)| o.classification == Classification::Supported)
            .ok_or_else(|| {
                FieldError::new(
                    ErrorKind::Required,
                    PATH,
                    format!("no version given and provider {name:?} offers no supported version"),
                )
            })?;
        return check_upgrade(
            current,
            VersionChoice {
                version: v.clone(),
                offer: o,
                forced: false,
            },
        );
    };
    let want: KubeVersion = requested
        .parse()
        .map_err(|e: kaas_api::version::VersionError| {
            FieldError::new(ErrorKind::Invalid, PATH, e.to_string())
        })?;
    let newest_in_branch = || {
        offers
            .iter()
            .find(|(v, o)| v.branch() == want.branch() && usable(o))
    };
    let choice = match want.patch {
        Patch::Latest => {
            let (v, o) = newest_in_branch().ok_or_else(|| {
                FieldError::new(
                    ErrorKind::NotSupported,
                    PATH,
                    format!(
                        "provider {name:?} offers no supported patch of {}.{}",
                        want.major, want.minor
                    ),
                )
                .allowed(offered_list())
            })?;
            VersionChoice {
                version: v.clone(),
                offer: o,
                forced: false,
            }
        }
        Patch::Exact(_) => {
            let (v, o) = offers
                .iter()
                .find(|(v, _)| want.matches(v))
                .ok_or_else(|| {
                    FieldError::new(
                        ErrorKind::NotSupported,
                        PATH,
                        format!("{requested:?} is not offered by provider {name:?}"),
                    )
                    .allowed(offered_list())
                })?;
            match o.classification {
                Classification::Expired => {
                    let running = current.is_some_and(|c| c.branch() == v.branch());
                    match newest_in_branch() {
                        Some((nv, no)) if running => {
                            warnings.push(format!(
                                "{PATH}: {requested} is expired; the cluster is moved to {} in its maintenance window",
                                nv.release()
                            ));
                            VersionChoice {
                                version: nv.clone(),
                                offer: no,
                                forced: true,
                            }
                        }
                        _ => {
                            return Err(FieldError::new(
                                ErrorKind::NotSupported,
                                PATH,
                                format!("{requested:?} is expired at provider {name:?}"),
                            )
                            .allowed(offered_list()));
                        }
                    }
                }
                Classification::Deprecated => {
                    warnings.push(format!(
                        "{PATH}: {requested} is deprecated at provider {name:?}"
                    ));
                    VersionChoice {
                        version: v.clone(),
                        offer: o,
                        forced: false,
                    }
                }
                _ => VersionChoice {
                    version: v.clone(),
                    offer: o,
                    forced: false,
                },
            }
        }
    };
    check_upgrade(current, choice)
}

fn check_upgrade<'a>(
    current: Option<&KubeVersion>,
    choice: VersionChoice<'a>,
) -> Result<VersionChoice<'a>, FieldError> {
    const PATH: &str = "spec.kubernetes.version";
    let Some(cur) = current else {
        return Ok(choice);
    };
    let (cmaj, cmin) = cur.branch();
    let (nmaj, nmin) = choice.version.branch();
    if (nmaj, nmin) < (cmaj, cmin) || ((nmaj, nmin) == (cmaj, cmin) && choice.version < *cur) {
        return Err(FieldError::new(
            ErrorKind::Forbidden,
            PATH,
            format!(
                "downgrade from {} to {} is not supported",
                cur.release(),
                choice.version.release()
            ),
        ));
    }
    if nmaj != cmaj || nmin > cmin + 1 {
        return Err(FieldError::new(
            ErrorKind::Forbidden,
            PATH,
            format!(
                "upgrade from {} to {} skips a minor version; upgrade one minor at a time (next: {}.{}.x)",
                cur.release(),
                choice.version.release(),
                cmaj,
                cmin + 1
            ),
        ));
    }
    Ok(choice)
}

fn resolve_extensions(
    cluster: &Cluster,
    provider: &Provider,
    errs: &mut FieldErrors,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, Extension> {
    let name = provider.metadata.name.clone().unwrap_or_default();
    let requests = extension_requests(&cluster.spec);
    warnings.extend(requests.warnings.iter().cloned());
    let offered = &provider.spec.extensions;
    let offered_names = || offered.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    let mut out = BTreeMap::new();
    for o in offered {
        let req = requests.by_name.get(&o.name);
        let on = o.name == names::METRICS || req.and_then(|r| r.enabled).unwrap_or(o.default);
        if !on {
            continue;
        }
        let implementation = match req.and_then(|r| r.implementation.clone()) {
            Some(i) if !o.implementations.is_empty() && !o.implementations.contains(&i) => {
                errs.push(
                    FieldError::new(
                        ErrorKind::NotSupported,
                        format!(
                            "{}.implementation",
                            req.map(|r| r.path.as_str()).unwrap_or_default()
                        ),
                        format!("{i:?} is not offered for {} by provider {name:?}", o.name),
                    )
                    .allowed(o.implementations.clone()),
                );
                None
            }
            Some(i) => Some(i),
            None => o.implementations.first().cloned(),
        };
        out.insert(
            o.name.clone(),
            Extension {
                version: o.version.clone(),
                implementation,
            },
        );
    }
    for (ext, req) in &requests.by_name {
        if req.enabled == Some(true) && !offered.iter().any(|o| o.name == *ext) {
            errs.push(
                FieldError::new(
                    ErrorKind::NotSupported,
                    req.path.clone(),
                    format!("extension {ext:?} is not offered by provider {name:?}"),
                )
                .allowed(offered_names()),
            );
        }
    }
    // Ingress or Gateway API is mandatory: one of them always runs.
    if !out.contains_key(names::INGRESS) && !out.contains_key(names::GATEWAY_API) {
        let explicit_off = [names::INGRESS, names::GATEWAY_API].iter().any(|n| {
            requests
                .by_name
                .get(*n)
                .is_some_and(|r| r.path.starts_with("spec.extensions") && r.enabled == Some(false))
        });
        let fallback = offered
            .iter()
            .find(|o| o.name == names::INGRESS || o.name == names::GATEWAY_API);
        match (explicit_off, fallback) {
            (false, Some(o)) => {
                if requests.by_name.contains_key(names::INGRESS) {
                    warnings.push(format!(
                        "spec.addons.nginxIngress.enabled: false is ignored: ingress or Gateway API is mandatory; {} stays enabled",
                        o.name
                    ));
                }
                out.insert(
                    o.name.clone(),
                    Extension {
                        version: o.version.clone(),
                        implementation: o.implementations.first().cloned(),
                    },
                );
            }
            _ => errs.push(FieldError::new(
                ErrorKind::Required,
                "spec.extensions",
                "ingress or gatewayAPI must be enabled: one of them is a mandatory extension",
            )),
        }
    }
    out
}

// ---- Capabilities (stack verification) -------------------------------------------------------

/// The SCS-API features `cluster` uses, each with the field path that uses it (pure).
pub fn used_features(cluster: &Cluster) -> Vec<(String, String)> {
    use kaas_api::provider::features as f;
    let spec = &cluster.spec;
    let mut out = Vec::new();
    let mut push = |feature: &str, path: String| out.push((feature.to_string(), path));
    if let Some(access) = &spec.access {
        if access.oidc.is_some() {
            push(f::OIDC, "spec.access.oidc".into());
        }
        if access
            .api_server_allowed_cidrs
            .as_ref()
            .is_some_and(|c| !c.is_empty())
        {
            push(f::ALLOWED_CIDRS, "spec.access.apiServerAllowedCIDRs".into());
        }
    }
    if let Some(cp) = &spec.control_plane
        && cp.zones.as_ref().is_some_and(|z| !z.is_empty())
    {
        push(f::ZONES, "spec.controlPlane.zones".into());
    }
    for (i, w) in spec.workers.iter().flatten().enumerate() {
        let path = format!("spec.workers[{i}]");
        if w.taints.as_ref().is_some_and(|t| !t.is_empty()) {
            push(f::TAINTS, format!("{path}.taints"));
        }
        if w.labels.as_ref().is_some_and(|l| !l.is_empty()) {
            push(f::LABELS, format!("{path}.labels"));
        }
        if w.zones.as_ref().is_some_and(|z| !z.is_empty()) {
            push(f::ZONES, format!("{path}.zones"));
        }
        if w.count.is_none() && w.min_count.is_some() && w.max_count.is_some() {
            push(f::AUTOSCALING, format!("{path}.minCount"));
        }
    }
    out
}

/// Refuses features version `v` cannot serve: those stack verification reported unusable
/// (`status.versions`; a version not verified yet refuses nothing of its own) and those the
/// provider declares disabled (`spec.disabledFeatures`, per version too).
fn check_capabilities(
    cluster: &Cluster,
    provider: &Provider,
    v: &KubeVersion,
    extensions: &BTreeMap<String, Extension>,
    errs: &mut FieldErrors,
) {
    let unusable = provider.unusable_features(&v.release());
    if unusable.is_empty() {
        return;
    }
    let name = provider.metadata.name.clone().unwrap_or_default();
    let mut used = used_features(cluster);
    let requests = extension_requests(&cluster.spec);
    for ext in extensions.keys() {
        let path = requests
            .by_name
            .get(ext)
            .map_or_else(|| format!("spec.extensions.{ext}"), |r| r.path.clone());
        used.push((
            format!("{}{ext}", kaas_api::provider::features::EXTENSION_PREFIX),
            path,
        ));
    }
    for (feature, path) in used {
        if let Some(u) = unusable.iter().find(|u| u.feature == feature) {
            errs.push(FieldError::new(
                ErrorKind::Forbidden,
                path,
                format!(
                    "provider {name}, version {}: {} (feature {feature})",
                    v.release().trim_start_matches('v'),
                    u.reason
                ),
            ));
        }
    }
}
