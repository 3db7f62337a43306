//! The stack contract: what a stack renders into topology variables, adoption reads back
//! ([`Stack::absorb`]) — for every stack kaas renders.

use std::collections::BTreeMap;

use kaas_api::provider::StackKind;
use kaas_api::{Cluster, Provider};
use kaas_render::stacks::{Variables, for_kind};
use serde_json::{Value, json};

fn example<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("an example")
}

/// Variables by name.
type Vars = BTreeMap<String, Value>;

/// The rendered topology's variables: cluster-wide, and per MachineDeployment its overrides.
fn variables(c: &kaas_capi::cluster::Cluster) -> (Vars, Vec<(String, Vars)>) {
    let topo = c.spec.topology.as_ref().expect("a topology");
    let cluster = topo
        .variables
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let pools = topo
        .workers
        .iter()
        .flat_map(|w| w.machine_deployments.iter().flatten())
        .map(|md| {
            let o = md
                .variables
                .iter()
                .flat_map(|v| v.overrides.iter().flatten())
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect();
            (md.name.clone(), o)
        })
        .collect();
    (cluster, pools)
}

/// The cluster as adoption starts it: one pool per MachineDeployment, by its name, and nothing
/// the variables carry.
fn bare(full: &Cluster, pools: &[(String, Vars)]) -> Cluster {
    let mut c = full.clone();
    c.spec.control_plane.as_mut().unwrap().flavor = None;
    c.spec.control_plane.as_mut().unwrap().zones = None;
    c.spec.network.as_mut().unwrap().nodes = None;
    c.spec.access = None;
    c.spec.workers = Some(
        pools
            .iter()
            .map(|(name, _)| serde_json::from_value(json!({"name": name})).unwrap())
            .collect(),
    );
    c
}

#[test]
fn openstack_scs2_reads_back_what_it_renders() {
    let provider: Provider = example(include_str!("../../../examples/provider-openstack.yaml"));
    let full: Cluster = example(include_str!("../../../examples/cluster-full.yaml"));
    let resolved = kaas_validate::validate(&full, &provider).expect("the full example is valid");
    assert_eq!(resolved.stack, Some(StackKind::OpenStackScs2));
    let rendered = kaas_render::render(&full, &resolved).expect("it renders");
    let (cluster, pools) = variables(&rendered.cluster);
    assert!(cluster.contains_key("oidcConfig") && cluster.contains_key("nodeCIDR"));

    let mut back = bare(&full, &pools);
    let mut refusals = Vec::new();
    let stack = for_kind(StackKind::OpenStackScs2);
    let vars = Variables {
        cluster: &cluster,
        pools: &pools,
    };
    stack.absorb(vars, &mut back, &mut refusals);
    assert_eq!(refusals, Vec::<String>::new());
    let (want, got) = (full.spec.clone(), back.spec.clone());
    assert_eq!(got.control_plane, want.control_plane);
    assert_eq!(
        got.network.as_ref().unwrap().nodes,
        want.network.as_ref().unwrap().nodes
    );
    // Each MachineDeployment (`<pool>-<zone>`) gets its pool's flavor back.
    let flavors: Vec<Option<String>> = got
        .workers
        .iter()
        .flatten()
        .map(|w| w.flavor.clone())
        .collect();
    let wanted: Vec<Option<String>> = pools
        .iter()
        .map(|(md, _)| {
            let pool = want
                .workers
                .iter()
                .flatten()
                .find(|w| md.starts_with(&format!("{}-", w.name)));
            pool.and_then(|w| w.flavor.clone())
        })
        .collect();
    assert_eq!(pools.len(), 4, "three zones of one pool, one of the other");
    assert_eq!(flavors, wanted);
    let (wa, ga) = (want.access.unwrap(), got.access.unwrap());
    assert_eq!(ga.api_server_allowed_cidrs, wa.api_server_allowed_cidrs);
    assert_eq!(
        serde_json::to_value(&ga.oidc).unwrap(),
        serde_json::to_value(&wa.oidc).unwrap()
    );
    assert!(stack.copies_credentials() && !stack.simulated());

    // A variable it does not render, and a per-pool override other than the flavor: refused, by path.
    let mut more = cluster.clone();
    more.insert("imageName".into(), json!("ubuntu"));
    let mut pools_more = pools.clone();
    pools_more[0].1.insert("serverGroupID".into(), json!("x"));
    let mut refusals = Vec::new();
    let vars = Variables {
        cluster: &more,
        pools: &pools_more,
    };
    stack.absorb(vars, &mut bare(&full, &pools), &mut refusals);
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[0].starts_with("spec.topology.variables[imageName]: not a variable"));
    assert!(
        refusals[1].contains("machineDeployments[")
            && refusals[1].contains("overrides[serverGroupID]")
    );
}

#[test]
fn in_memory_renders_no_variables_and_takes_none() {
    let stack = for_kind(StackKind::InMemory);
    assert!(stack.simulated() && !stack.copies_credentials());
    let provider: Provider = example(include_str!("../../../examples/provider-inmemory.yaml"));
    let mut c: Cluster = example(include_str!("../../../examples/cluster-demo.yaml"));
    let resolved = kaas_validate::validate(&c, &provider).expect("the demo is valid");
    let rendered = kaas_render::render(&c, &resolved).expect("it renders");
    let (cluster, pools) = variables(&rendered.cluster);
    assert!(cluster.is_empty() && pools.iter().all(|(_, o)| o.is_empty()));
    let before = c.clone();
    let mut refusals = Vec::new();
    let one = BTreeMap::from([("x".to_string(), json!(1))]);
    let vars = Variables {
        cluster: &one,
        pools: &[("md-0".to_string(), one.clone())],
    };
    stack.absorb(vars, &mut c, &mut refusals);
    assert_eq!(c, before, "nothing is taken");
    assert_eq!(
        refusals,
        [
            "spec.topology.variables[x]: the in-memory stack renders no variables",
            "spec.topology.workers.machineDeployments[md-0].variables.overrides[x]: the in-memory stack renders no variables"
        ]
    );
}
