//! The hosted backend under faults: hosted clusters (real workload kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler and kwok nodes, run by `kaas hosted-runtime`) are
//! created, scaled, upgraded and deleted while
//! 1. the runtime is SIGKILLed as soon as it has its first control plane and restarted after the
//!    fault (its control planes are detached: the new runtime must adopt, not duplicate them);
//! 2. once they are Ready and being scaled, a workload kube-apiserver and a workload etcd are
//!    SIGKILLed (the runtime must restart them, and the clusters' status must return to Ready);
//! 3. while they are upgraded, the operator and the runtime are SIGKILLed together (a combined
//!    fault) and restarted after the fault.
//!
//! After each, every cluster converges: `Ready` for its generation, its version on the workload
//! API server, as many kwok nodes as workers, no error left in its status, exactly one of each
//! process per cluster. After deletion nothing is left: no HostedControlPlane, no process, no
//! data on disk, no provider-side namespace.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Node, Secret};
use kaas_api::HostedControlPlane;

use super::*;

const TENANT: &str = "chaos-hosted";
/// The hosted provider of `examples/provider-local.yaml`.
const LOCAL: &str = "local";
/// Versions of the local provider.
const H1: (&str, &str) = ("1.35.4", "v1.35.4");
const H2: (&str, &str) = ("1.36.3", "v1.36.3");
/// The processes of one hosted control plane (and its simulated nodes).
const COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

fn hosted_cluster(name: &str, version: &str, workers: i32) -> Result<Cluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "scs.community/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": TENANT},
        "spec": {
            "provider": {"name": LOCAL},
            "kubernetes": {"version": version},
            "workers": [{"name": POOL, "count": workers}],
        },
    }))?)
}

/// The workload processes of one cluster: (binary, pid) of every process whose command line
/// names the cluster's state directory.
fn processes(state: &Path, name: &str) -> Vec<(String, i32)> {
    let dir = state
        .join(capi_namespace(LOCAL, TENANT))
        .join(name)
        .display()
        .to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(program) = args.first() else {
            continue;
        };
        let bin = program.rsplit('/').next().unwrap_or_default().to_string();
        let mine = args[1..]
            .iter()
            .any(|a| a.contains(&format!("{dir}/")) || a.ends_with(&dir));
        if mine && bin != "kaas" {
            found.push((bin, pid));
        }
    }
    found.sort();
    found
}

/// (binary → count) of [`processes`].
fn counts(procs: &[(String, i32)]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (b, _) in procs {
        *m.entry(b.clone()).or_insert(0) += 1;
    }
    m
}

/// The workload cluster's nodes and version, through the kubeconfig kaas gives the tenant.
async fn workload(admin: &Client, name: &str) -> Result<(usize, String)> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), TENANT);
    let s = secrets.get(&format!("{name}-kubeconfig")).await?;
    let bytes = s
        .data
        .and_then(|d| d.get("value").cloned())
        .ok_or_else(|| anyhow::anyhow!("{name}-kubeconfig has no value"))?;
    let kc = kube::config::Kubeconfig::from_yaml(std::str::from_utf8(&bytes.0)?)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.connect_timeout = Some(Duration::from_secs(3));
    cfg.read_timeout = Some(Duration::from_secs(10));
    let w = Client::try_from(cfg)?;
    let nodes = Api::<Node>::all(w.clone())
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let v = w.apiserver_version().await?.git_version;
    Ok((nodes, v))
}

/// What is wrong with the hosted clusters now (empty: converged). `expected`: name → (version,
/// workers).
async fn check_hosted(
    admin: &Client,
    state: &Path,
    expected: &BTreeMap<String, (String, usize)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let api: Api<Cluster> = Api::namespaced(admin.clone(), TENANT);
    let hcps: Api<HostedControlPlane> =
        Api::namespaced(admin.clone(), &capi_namespace(LOCAL, TENANT));
    let hcp_names: Vec<String> = match hcps.list(&ListParams::default()).await {
        Ok(l) => l.items.iter().map(|h| h.name_any()).collect(),
        Err(e) => return vec![format!("listing HostedControlPlanes: {e}")],
    };
    for (name, (version, workers)) in expected {
        let c = match api.get_opt(name).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                problems.push(format!("{name}: LOST (no SCS Cluster)"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let st = c.status.clone().unwrap_or_default();
        let ready = st.observed_generation == c.metadata.generation
            && st
                .conditions
                .iter()
                .any(|x| x.type_ == "Ready" && x.status == "True");
        if !ready {
            let conds: Vec<String> = st
                .conditions
                .iter()
                .filter(|x| x.status != "True")
                .map(|x| {
                    format!(
                        "{}={} {}: {}",
                        x.type_,
                        x.status,
                        x.reason,
                        clip(&x.message, 160)
                    )
                })
                .collect();
            problems.push(format!("{name}: not Ready: {}", conds.join("; ")));
        }
        for x in &st.conditions {
            let text = format!("{} {}", x.reason, x.message).to_lowercase();
            if let Some(w) = FAULT_WORDS.iter().find(|w| text.contains(*w)) {
                problems.push(format!(
                    "{name}: condition {} still mentions {w:?}: {}",
                    x.type_,
                    clip(&x.message, 160)
                ));
            }
        }
        if st.kubernetes_version.as_deref() != Some(version.as_str()) {
            problems.push(format!(
                "{name}: version {:?}, want {version}",
                st.kubernetes_version
            ));
        }
        if hcp_names.iter().filter(|h| *h == name).count() != 1 {
            problems.push(format!("{name}: no HostedControlPlane"));
        }
        let n = counts(&processes(state, name));
        for c in COMPONENTS {
            let k = n.get(*c).copied().unwrap_or(0);
            if k != 1 {
                problems.push(format!("{name}: {k} {c} processes (want exactly 1): {n:?}"));
            }
        }
        match tokio::time::timeout(Duration::from_secs(20), workload(admin, name)).await {
            Ok(Ok((nodes, v))) => {
                if nodes != *workers {
                    problems.push(format!("{name}: {nodes} nodes, want {workers}"));
                }
                if v != *version {
                    problems.push(format!(
                        "{name}: workload API server is {v}, want {version}"
                    ));
                }
            }
            Ok(Err(e)) => problems.push(format!("{name}: workload API server: {e}")),
            Err(_) => problems.push(format!("{name}: workload API server: no answer in 20 s")),
        }
    }
    // Nothing of a cluster that is not expected: HostedControlPlanes, processes, data.
    for h in &hcp_names {
        if !expected.contains_key(h) {
            problems.push(format!("ORPHAN HostedControlPlane {h}"));
        }
    }
    let ns_dir = state.join(capi_namespace(LOCAL, TENANT));
    if let Ok(entries) = std::fs::read_dir(&ns_dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !expected.contains_key(&name) {
                let p = processes(state, &name);
                problems.push(format!(
                    "ORPHAN state directory {} ({} processes)",
                    e.path().display(),
                    p.len()
                ));
            }
        }
    }
    problems
}

async fn converge_hosted(
    admin: &Client,
    state: &Path,
    expected: &BTreeMap<String, (String, usize)>,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < timeout {
        last = check_hosted(admin, state, expected).await;
        if last.is_empty() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "INVARIANT: not converged within {timeout:?}:\n  {}",
        last.join("\n  ")
    )
}

/// Waits until `pid` is gone and a new process of `bin` runs for the cluster; returns its pid.
async fn restarted(state: &Path, name: &str, bin: &str, old: i32, bound: Duration) -> Result<i32> {
    let start = Instant::now();
    loop {
        if let Some((_, p)) = processes(state, name)
            .into_iter()
            .find(|(b, p)| b == bin && *p != old)
        {
            return Ok(p);
        }
        if start.elapsed() > bound {
            bail!("INVARIANT: {name}'s {bin} (pid {old}) not restarted within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Hosted);
    let env = Env::start_hosted(opts).await?;
    env.tenant(TENANT).await?;
    let state = env.dir.join("hosted");
    let _cleanup = kaas_hosted::StopAllOnDrop(state.clone());
    let mut runtime = env.runtime(&state)?;
    // As a provider runs it: with leader election, so every write — to the management cluster
    // and to the workload clusters (addon bundles) — passes the lease's fence, and the operator
    // restarted after the combined kill waits for the dead one's lease to expire.
    install::namespace(&env.admin, "kaas-system", &[]).await?;
    let op_args = [
        "--providers",
        LOCAL,
        "--leader-elect",
        "--lease-namespace",
        "kaas-system",
    ];
    let mut operator = env.operator(&op_args)?;
    out.figure("clusters", opts.clusters);

    // 1. Create; SIGKILL the runtime at its first control plane, restart after the fault.
    let mut expected: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let created = Instant::now();
    for i in 0..opts.clusters {
        let name = format!("h{i:03}");
        create(&env.admin, &hosted_cluster(&name, H1.0, 1)?).await?;
        expected.insert(name, (H1.1.to_string(), 1));
    }
    let first = expected.keys().next().cloned().unwrap_or_default();
    let start = Instant::now();
    while processes(&state, &first).is_empty() {
        runtime.alive()?;
        if start.elapsed() > Duration::from_secs(120) {
            bail!("no workload process within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runtime.kill();
    say(&format!(
        "first workload process after {:.1?}; SIGKILL the runtime",
        created.elapsed()
    ));
    tokio::time::sleep(opts.fault).await;
    let mut runtime = env.runtime(&state)?;
    let back = Instant::now();
    let t = converge_hosted(&env.admin, &state, &expected, opts.converge_timeout).await?;
    out.secs("runtime SIGKILLed while creating: restart → all Ready", t);
    out.secs("create → all Ready, fault included", created.elapsed());
    let _ = back;

    // 2. Scale every cluster 1→2 and SIGKILL a workload kube-apiserver and a workload etcd.
    for (name, e) in expected.iter_mut() {
        patch_spec(
            &env.admin,
            TENANT,
            name,
            json!({"workers": [{"name": POOL, "count": 2}]}),
        )
        .await?;
        e.1 = 2;
    }
    let names: Vec<String> = expected.keys().cloned().collect();
    let victims = [
        (names[0].clone(), "kube-apiserver"),
        (names[names.len() - 1].clone(), "etcd"),
    ];
    let killed = Instant::now();
    let mut old = Vec::new();
    for (name, bin) in &victims {
        let Some((_, pid)) = processes(&state, name).into_iter().find(|(b, _)| b == bin) else {
            bail!("{name} has no {bin} process");
        };
        // SAFETY: plain kill(2).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        say(&format!("SIGKILL {name}'s {bin} (pid {pid})"));
        old.push((name.clone(), *bin, pid));
    }
    // Never silent: the outage shows in the cluster's status while it lasts, if anyone looks —
    // reported, not asserted (the runtime may restart it before a status is written).
    let api: Api<Cluster> = Api::namespaced(env.admin.clone(), TENANT);
    let mut seen_not_ready = None;
    for (name, bin, pid) in &old {
        let p = restarted(&state, name, bin, *pid, Duration::from_secs(120)).await?;
        out.secs(
            &format!("workload {bin} SIGKILLed → running again (new pid)"),
            killed.elapsed(),
        );
        let _ = p;
        if seen_not_ready.is_none()
            && let Ok(c) = api.get(name).await
            && c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|x| x.type_ == "Ready" && x.status != "True")
            })
        {
            seen_not_ready = Some(killed.elapsed());
        }
    }
    let t = converge_hosted(&env.admin, &state, &expected, opts.converge_timeout).await?;
    out.secs(
        "workload kube-apiserver and etcd SIGKILLed while scaling → all Ready with 2 nodes",
        killed.elapsed(),
    );
    let _ = t;
    out.figure(
        "a killed cluster seen not Ready meanwhile",
        seen_not_ready.map_or("not sampled".to_string(), |d| {
            format!("yes, {:.1} s after the kill", d.as_secs_f64())
        }),
    );

    // 3. Upgrade every cluster; SIGKILL the operator and the runtime together.
    for (name, e) in expected.iter_mut() {
        patch_spec(
            &env.admin,
            TENANT,
            name,
            json!({"kubernetes": {"version": H2.0}}),
        )
        .await?;
        e.0 = H2.1.to_string();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.kill();
    runtime.kill();
    let both = Instant::now();
    say("SIGKILL the operator and the runtime while upgrading");
    tokio::time::sleep(opts.fault).await;
    let mut runtime = env.runtime(&state)?;
    let mut operator = env.operator(&op_args)?;
    converge_hosted(&env.admin, &state, &expected, opts.converge_timeout).await?;
    out.secs(
        "operator and runtime SIGKILLed while upgrading → all Ready at the new version",
        both.elapsed(),
    );

    // 4. Delete: nothing left.
    let deleted = Instant::now();
    for name in expected.keys() {
        delete(&env.admin, TENANT, name).await?;
    }
    let gone = BTreeMap::new();
    let start = Instant::now();
    loop {
        let mut left = check_hosted(&env.admin, &state, &gone).await;
        let clusters = api.list(&ListParams::default()).await?.items.len();
        if clusters > 0 {
            left.push(format!("{clusters} SCS Clusters still there"));
        }
        for name in &names {
            let p = processes(&state, name);
            if !p.is_empty() {
                left.push(format!("{name}: processes left: {p:?}"));
            }
        }
        let ns: Api<Namespace> = Api::all(env.admin.clone());
        if ns.get_opt(&capi_namespace(LOCAL, TENANT)).await?.is_some() {
            left.push("the provider-side namespace is still there".into());
        }
        if left.is_empty() {
            break;
        }
        if start.elapsed() > opts.converge_timeout {
            bail!("INVARIANT: after deletion: {}", left.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out.secs(
        "delete → no cluster, process, data or namespace left",
        deleted.elapsed(),
    );

    operator.alive()?;
    runtime.alive()?;
    out.figure("runtime warnings/errors logged", runtime.warnings());
    out.counters
        .insert("clusters lost, duplicated or orphaned".into(), 0);
    Ok(out)
}
