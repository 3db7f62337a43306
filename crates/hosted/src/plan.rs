//! Pure decisions of the runtime: from a `HostedControlPlane`, the built versions and what runs,
//! which binary version to run, how each process is launched, which processes to start or
//! restart (an upgrade is a restart with other binaries), and which nodes to create, drain and
//! delete, or roll to a new kubelet version. No I/O here: everything is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kaas_api::hosted::{HostedControlPlaneSpec, HostedPool};

use crate::processes::{Component, Launch, Record};
use crate::state::{Layout, Ports};

/// Service CIDR when the spec names none.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// Pod CIDR when the spec names none.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// Addresses kwok gives simulated pods and nodes, whatever the spec's pod CIDR says: loopback, so
/// that nothing on this machine ever dials a private or public address when the workload API
/// server calls a webhook, an aggregated API or a kubelet of a simulated node (nothing listens;
/// such calls fail fast on loopback).
pub const SIMULATED_POD_CIDR: &str = "127.128.0.0/16";
/// Address of every simulated node (see [`SIMULATED_POD_CIDR`]).
pub const SIMULATED_NODE_IP: &str = "127.0.0.1";

/// `v1.35.4` for `1.35.4` or `v1.35.4`.
pub fn normalize(version: &str) -> String {
    format!("v{}", version.trim().trim_start_matches('v'))
}

/// Which control-plane version to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The version whose binaries run (`v1.36.3`).
    pub version: Option<String>,
    /// Why the desired version cannot run, naming the built ones (condition `VersionNotAvailable`).
    pub unavailable: Option<String>,
}

/// The desired version if it is built; otherwise the one already running (never stop a serving
/// control plane because its upgrade target is missing), with the reason.
pub fn target(desired: &str, built: &[String], running: Option<&str>) -> Target {
    let want = normalize(desired);
    if built.contains(&want) {
        return Target {
            version: Some(want),
            unavailable: None,
        };
    }
    let message = format!(
        "Kubernetes {want} is not built for the local runtime (built: {}); add it to WORKLOAD_KUBERNETES_VERSIONS in plane/versions.env and run plane/build.sh",
        if built.is_empty() {
            "none".to_string()
        } else {
            built.join(", ")
        }
    );
    Target {
        version: running.map(normalize),
        unavailable: Some(message),
    }
}

/// Binaries and files a control plane's launches refer to.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The object's name (etcd member and cluster name).
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a HostedControlPlaneSpec,
    /// Its files.
    pub layout: &'a Layout,
    /// Its ports.
    pub ports: Ports,
    /// Version of the control-plane binaries below.
    pub version: &'a str,
    /// kube-apiserver of that version.
    pub apiserver: PathBuf,
    /// kube-controller-manager of that version.
    pub controller_manager: PathBuf,
    /// kube-scheduler of that version.
    pub scheduler: PathBuf,
    /// etcd.
    pub etcd: PathBuf,
    /// kwok.
    pub kwok: PathBuf,
    /// kwok's stages (`--config`).
    pub kwok_stages: PathBuf,
    /// The API server's structured authentication configuration (`spec.oidc`), written.
    pub authentication_config: Option<PathBuf>,
    /// etcd `--unsafe-no-fsync` (tests).
    pub etcd_unsafe_no_fsync: bool,
}

/// How every component is launched, in start order.
pub fn launches(i: &Inputs<'_>) -> Vec<Launch> {
    let p = |s: PathBuf| s.display().to_string();
    let pki = |f: &str| p(i.layout.pki().join(f));
    let service_cidr = i
        .spec
        .service_cidr
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVICE_CIDR.into());
    let pod_cidr = i
        .spec
        .pod_cidr
        .clone()
        .unwrap_or_else(|| DEFAULT_POD_CIDR.into());
    let peer = format!("http://127.0.0.1:{}", i.ports.etcd_peer);
    let client = format!("http://127.0.0.1:{}", i.ports.etcd);
    let mut etcd = vec![
        "--name=etcd".to_string(),
        format!("--data-dir={}", p(i.layout.etcd_data())),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=etcd={peer}"),
        "--log-level=warn".into(),
        // A hosted workload cluster is small: keep etcd's memory small too.
        "--quota-backend-bytes=2147483648".into(),
        "--snapshot-count=10000".into(),
    ];
    if i.etcd_unsafe_no_fsync {
        etcd.push("--unsafe-no-fsync".into());
    }
    let mut apiserver = vec![
        format!("--etcd-servers={client}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", i.ports.apiserver),
        format!("--cert-dir={}", p(i.layout.dir.join("apiserver-certs"))),
        format!("--tls-cert-file={}", pki("apiserver.crt")),
        format!("--tls-private-key-file={}", pki("apiserver.key")),
        format!("--client-ca-file={}", pki("ca.crt")),
        format!("--service-cluster-ip-range={service_cidr}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", pki("sa.pub")),
        format!("--service-account-signing-key-file={}", pki("sa.key")),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        // Webhooks and aggregated APIs are reached at their endpoints (pod IPs, loopback here),
        // never at a Service's cluster IP.
        "--enable-aggregator-routing=true".into(),
        "--allow-privileged=true".into(),
        format!(
            "--requestheader-client-ca-file={}",
            pki("front-proxy-ca.crt")
        ),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!("--proxy-client-cert-file={}", pki("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", pki("front-proxy-client.key")),
        "--profiling=false".into(),
    ];
    if let Some(f) = &i.authentication_config {
        apiserver.push(format!("--authentication-config={}", p(f.clone())));
    }
    let controller_manager = vec![
        format!(
            "--kubeconfig={}",
            p(i.layout.kubeconfig("kube-controller-manager"))
        ),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--controllers=*".into(),
        "--use-service-account-credentials=true".into(),
        format!("--service-account-private-key-file={}", pki("sa.key")),
        format!("--root-ca-file={}", pki("ca.crt")),
        format!("--cluster-signing-cert-file={}", pki("ca.crt")),
        format!("--cluster-signing-key-file={}", pki("ca.key")),
        format!("--cluster-name={}", i.name),
        format!("--service-cluster-ip-range={service_cidr}"),
        format!("--cluster-cidr={pod_cidr}"),
        "--profiling=false".into(),
    ];
    let scheduler = vec![
        format!("--kubeconfig={}", p(i.layout.kubeconfig("kube-scheduler"))),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--profiling=false".into(),
    ];
    let kwok = vec![
        format!("--kubeconfig={}", p(i.layout.kubeconfig("kwok"))),
        format!("--config={}", p(i.kwok_stages.clone())),
        "--manage-all-nodes=true".into(),
        format!("--cidr={SIMULATED_POD_CIDR}"),
        format!("--node-ip={SIMULATED_NODE_IP}"),
        "--node-lease-duration-seconds=40".into(),
    ];
    let v = Some(i.version.to_string());
    vec![
        Launch {
            component: Component::Etcd,
            program: i.etcd.clone(),
            args: etcd,
            version: None,
        },
        Launch {
            component: Component::ApiServer,
            program: i.apiserver.clone(),
            args: apiserver,
            version: v.clone(),
        },
        Launch {
            component: Component::ControllerManager,
            program: i.controller_manager.clone(),
            args: controller_manager,
            version: v.clone(),
        },
        Launch {
            component: Component::Scheduler,
            program: i.scheduler.clone(),
            args: scheduler,
            version: v,
        },
        Launch {
            component: Component::Kwok,
            program: i.kwok.clone(),
            args: kwok,
            version: None,
        },
    ]
}

/// One process action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not running: start it.
    Start(Component),
    /// Running with another binary or other arguments: stop it, start the launch.
    Restart(Component),
}

/// What to do so that exactly `desired` runs, in start order (etcd, API server, then its clients):
/// an upgrade restarts the API server before the controller-manager and scheduler.
///
/// Whenever the API server is (re)started, a running kwok is restarted after it: kwok's watches do
/// not always recover from their API server dying (seen in the `hosted` fault scenario — a node
/// created right after the restart stayed NotReady for good), while the controller-manager and the
/// scheduler do, and a kwok restart costs only a skipped heartbeat.
pub fn process_steps(desired: &[Launch], running: &BTreeMap<Component, Record>) -> Vec<Step> {
    let mut steps = Vec::new();
    for l in desired {
        match running.get(&l.component) {
            None => steps.push(Step::Start(l.component)),
            Some(r) if !r.matches(l) => steps.push(Step::Restart(l.component)),
            Some(_) => {}
        }
    }
    let api_starts = steps.iter().any(|s| {
        matches!(
            s,
            Step::Start(Component::ApiServer) | Step::Restart(Component::ApiServer)
        )
    });
    let kwok_untouched = !steps.iter().any(|s| {
        matches!(
            s,
            Step::Start(Component::Kwok) | Step::Restart(Component::Kwok)
        )
    });
    if api_starts && kwok_untouched && running.contains_key(&Component::Kwok) {
        steps.push(Step::Restart(Component::Kwok));
    }
    steps.sort_by_key(|s| match s {
        Step::Start(c) | Step::Restart(c) => *c,
    });
    steps
}

/// A node of the workload cluster as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingNode {
    /// Node name.
    pub name: String,
    /// Its `scs.community/pool` label.
    pub pool: Option<String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
}

/// A node to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNode {
    /// Index of the pool in the spec.
    pub pool: usize,
    /// Index of the node in the pool.
    pub index: usize,
    /// Its name.
    pub name: String,
}

/// What to do with the nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// Create these (at the control plane's version).
    pub create: Vec<NewNode>,
    /// Drain and delete these, in this order (highest index of each pool first).
    pub remove: Vec<String>,
    /// Set these nodes' kubelet version to `version` (one pool per pass).
    pub upgrade: Vec<String>,
    /// The version for `create` and `upgrade`.
    pub version: String,
}

impl NodePlan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.remove.is_empty() && self.upgrade.is_empty()
    }
}

/// Node name of a pool's `index`th worker.
pub fn node_name(pool: &str, index: usize) -> String {
    format!("{pool}-{index}")
}

fn index_of(pool: &str, node: &str) -> Option<usize> {
    node.strip_prefix(pool)?.strip_prefix('-')?.parse().ok()
}

/// Plans the nodes. `cp_version` is what the API server reports; nodes never run newer than it.
/// Versions roll only once the control plane reports the desired version, one pool per call, in
/// the order of the spec.
pub fn plan_nodes(
    spec: &HostedControlPlaneSpec,
    existing: &[ExistingNode],
    cp_version: &str,
) -> NodePlan {
    let desired_version = normalize(&spec.version);
    let cp_version = normalize(cp_version);
    let mut plan = NodePlan {
        version: cp_version.clone(),
        ..NodePlan::default()
    };
    let pools: BTreeMap<&str, &HostedPool> =
        spec.pools.iter().map(|p| (p.name.as_str(), p)).collect();
    let names: BTreeSet<&str> = existing.iter().map(|n| n.name.as_str()).collect();
    // Removals: nodes of pools that are gone, or beyond the pool's size (or not named by it).
    let mut remove: Vec<(String, Option<usize>, String)> = existing
        .iter()
        .filter_map(|n| {
            let pool = n.pool.as_deref()?;
            let keep = pools.get(pool).is_some_and(|p| {
                index_of(pool, &n.name).is_some_and(|i| i < p.replicas.max(0) as usize)
            });
            (!keep).then(|| (pool.to_string(), index_of(pool, &n.name), n.name.clone()))
        })
        .collect();
    remove.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    plan.remove = remove.into_iter().map(|(_, _, n)| n).collect();
    for (pi, pool) in spec.pools.iter().enumerate() {
        for index in 0..pool.replicas.max(0) as usize {
            let name = node_name(&pool.name, index);
            if !names.contains(name.as_str()) {
                plan.create.push(NewNode {
                    pool: pi,
                    index,
                    name,
                });
            }
        }
    }
    if cp_version == desired_version {
        let removed: BTreeSet<&str> = plan.remove.iter().map(String::as_str).collect();
        for pool in &spec.pools {
            let behind: Vec<String> = existing
                .iter()
                .filter(|n| n.pool.as_deref() == Some(pool.name.as_str()))
                .filter(|n| !removed.contains(n.name.as_str()))
                .filter(|n| n.kubelet_version.as_deref().map(normalize) != Some(cp_version.clone()))
                .map(|n| n.name.clone())
                .collect();
            if !behind.is_empty() {
                plan.upgrade = behind;
                break;
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(version: &str, pools: &[(&str, i32)]) -> HostedControlPlaneSpec {
        HostedControlPlaneSpec {
            runtime: "local".into(),
            version: version.into(),
            replicas: 1,
            region: "r1".into(),
            pools: pools
                .iter()
                .map(|(n, r)| HostedPool {
                    name: n.to_string(),
                    replicas: *r,
                    zones: vec!["a".into(), "b".into(), "c".into()],
                    flavor: "f".into(),
                    cpu: 2,
                    memory: "4Gi".into(),
                    ..HostedPool::default()
                })
                .collect(),
            ..HostedControlPlaneSpec::default()
        }
    }

    fn node(name: &str, pool: &str, v: &str) -> ExistingNode {
        ExistingNode {
            name: name.into(),
            pool: Some(pool.into()),
            kubelet_version: Some(v.into()),
        }
    }

    #[test]
    fn target_version() {
        let built = vec!["v1.35.4".to_string(), "v1.36.3".to_string()];
        assert_eq!(
            target("1.36.3", &built, None),
            Target {
                version: Some("v1.36.3".into()),
                unavailable: None
            }
        );
        let t = target("1.37.0", &built, Some("v1.36.3"));
        assert_eq!(t.version.as_deref(), Some("v1.36.3"));
        let msg = t.unavailable.unwrap();
        assert!(
            msg.contains("v1.37.0") && msg.contains("v1.35.4, v1.36.3"),
            "{msg}"
        );
        let t = target("1.37.0", &[], None);
        assert_eq!(t.version, None);
        assert!(t.unavailable.unwrap().contains("built: none"));
    }

    fn inputs<'a>(s: &'a HostedControlPlaneSpec, l: &'a Layout, v: &'a str) -> Inputs<'a> {
        Inputs {
            name: "c1",
            spec: s,
            layout: l,
            ports: Ports {
                etcd: 1,
                etcd_peer: 2,
                apiserver: 3,
            },
            version: v,
            apiserver: format!("/b/{v}/kube-apiserver").into(),
            controller_manager: format!("/b/{v}/kube-controller-manager").into(),
            scheduler: format!("/b/{v}/kube-scheduler").into(),
            etcd: "/b/etcd".into(),
            kwok: "/b/kwok".into(),
            kwok_stages: "/k/stages.yaml".into(),
            authentication_config: None,
            etcd_unsafe_no_fsync: false,
        }
    }

    fn record(l: &Launch) -> Record {
        Record {
            pid: 1,
            program: l.program.clone(),
            args: l.args.clone(),
            version: l.version.clone(),
        }
    }

    #[test]
    fn launches_carry_the_contract_flags() {
        let s = spec("1.35.4", &[]);
        let l = Layout::new("/s".as_ref(), "ns", "c1");
        let ls = launches(&inputs(&s, &l, "v1.35.4"));
        assert_eq!(
            ls.iter().map(|l| l.component).collect::<Vec<_>>(),
            Component::ALL
        );
        let api = &ls[1].args;
        for f in [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--secure-port=3",
            "--etcd-servers=http://127.0.0.1:1",
        ] {
            assert!(api.iter().any(|a| a == f), "{f} in {api:?}");
        }
        assert!(ls[2].args.iter().any(|a| a == "--leader-elect=false"));
        assert!(ls[3].args.iter().any(|a| a == "--leader-elect=false"));
        // Simulated pods and nodes live on loopback, whatever the spec's pod CIDR.
        assert!(ls[4].args.iter().any(|a| a == "--cidr=127.128.0.0/16"));
        assert!(ls[4].args.iter().any(|a| a == "--node-ip=127.0.0.1"));
        assert!(api.iter().any(|a| a == "--enable-aggregator-routing=true"));
        assert!(ls[0].args.iter().any(|a| a == "--data-dir=/s/ns/c1/etcd"));
    }

    #[test]
    fn steps_start_adopt_and_upgrade() {
        let s = spec("1.35.4", &[]);
        let l = Layout::new("/s".as_ref(), "ns", "c1");
        let old = launches(&inputs(&s, &l, "v1.35.4"));
        // Nothing runs: start everything in order.
        assert_eq!(
            process_steps(&old, &BTreeMap::new()),
            Component::ALL.map(Step::Start).to_vec()
        );
        // Everything runs as wanted: nothing to do (adoption).
        let running: BTreeMap<_, _> = old.iter().map(|l| (l.component, record(l))).collect();
        assert!(process_steps(&old, &running).is_empty());
        // A dead scheduler is started again.
        let mut some = running.clone();
        some.remove(&Component::Scheduler);
        assert_eq!(
            process_steps(&old, &some),
            [Step::Start(Component::Scheduler)]
        );
        // A dead API server is started again, and kwok restarted after it.
        let mut no_api = running.clone();
        no_api.remove(&Component::ApiServer);
        assert_eq!(
            process_steps(&old, &no_api),
            [
                Step::Start(Component::ApiServer),
                Step::Restart(Component::Kwok)
            ]
        );
        // Both dead: both started, once.
        no_api.remove(&Component::Kwok);
        assert_eq!(
            process_steps(&old, &no_api),
            [
                Step::Start(Component::ApiServer),
                Step::Start(Component::Kwok)
            ]
        );
        // Upgrade: the API server first, then its controllers, then kwok; etcd stays.
        let new = launches(&inputs(&s, &l, "v1.36.3"));
        assert_eq!(
            process_steps(&new, &running),
            [
                Step::Restart(Component::ApiServer),
                Step::Restart(Component::ControllerManager),
                Step::Restart(Component::Scheduler),
                Step::Restart(Component::Kwok)
            ]
        );
        // A new etcd port restarts etcd and the API server (and kwok after it).
        let mut i = inputs(&s, &l, "v1.35.4");
        i.ports.etcd = 9;
        assert_eq!(
            process_steps(&launches(&i), &running),
            [
                Step::Restart(Component::Etcd),
                Step::Restart(Component::ApiServer),
                Step::Restart(Component::Kwok)
            ]
        );
    }

    #[test]
    fn nodes_scale_up_and_down() {
        let s = spec("1.35.4", &[("w", 3)]);
        let p = plan_nodes(&s, &[node("w-0", "w", "v1.35.4")], "v1.35.4");
        assert_eq!(
            p.create.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["w-1", "w-2"]
        );
        assert!(p.remove.is_empty() && p.upgrade.is_empty());
        let s = spec("1.35.4", &[("w", 1)]);
        let existing = [
            node("w-0", "w", "v1.35.4"),
            node("w-2", "w", "v1.35.4"),
            node("w-1", "w", "v1.35.4"),
            node("gone-0", "gone", "v1.35.4"),
        ];
        let p = plan_nodes(&s, &existing, "v1.35.4");
        assert!(p.create.is_empty());
        assert_eq!(p.remove, ["gone-0", "w-2", "w-1"]);
        // Nodes not labelled with a pool are not ours.
        let foreign = ExistingNode {
            name: "x".into(),
            pool: None,
            kubelet_version: None,
        };
        assert!(plan_nodes(&s, &[node("w-0", "w", "v1.35.4"), foreign], "v1.35.4").is_empty());
    }

    #[test]
    fn versions_roll_after_the_control_plane_pool_by_pool() {
        let s = spec("1.36.3", &[("a", 2), ("b", 1)]);
        let existing = [
            node("a-0", "a", "v1.35.4"),
            node("a-1", "a", "v1.35.4"),
            node("b-0", "b", "v1.35.4"),
        ];
        // Control plane still old: nothing rolls.
        let p = plan_nodes(&s, &existing, "v1.35.4");
        assert!(p.is_empty(), "{p:?}");
        let p = plan_nodes(&s, &existing, "v1.36.3");
        assert_eq!(p.upgrade, ["a-0", "a-1"]);
        assert_eq!(p.version, "v1.36.3");
        let existing = [
            node("a-0", "a", "v1.36.3"),
            node("a-1", "a", "v1.36.3"),
            node("b-0", "b", "v1.35.4"),
        ];
        assert_eq!(plan_nodes(&s, &existing, "v1.36.3").upgrade, ["b-0"]);
        // New nodes during an upgrade join at the control plane's version.
        let s = spec("1.36.3", &[("a", 3)]);
        let p = plan_nodes(&s, &existing[..2], "v1.35.4");
        assert_eq!(p.create.len(), 1);
        assert_eq!(p.version, "v1.35.4");
    }
}
