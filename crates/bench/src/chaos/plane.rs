//! The management plane's own processes SIGKILLed and restarted: etcd while clusters are being
//! created (kube-apiserver, the Cluster API managers, the operator and `kaas serve` keep running
//! and must ride it out), then kube-controller-manager while one tenant's clusters are deleted (the
//! provider-side namespace of a tenant without clusters is deleted by kaas and finalised by the
//! namespace controller in kube-controller-manager; garbage collection waits for it too).

use std::time::Instant;

use anyhow::{Result, bail};

use super::*;

/// Keeps its clusters.
const KEEP: &str = "chaos-plane-a";
/// Deletes its clusters while kube-controller-manager is down.
const GO: &str = "chaos-plane-b";

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Plane);
    let env = Env::start(opts).await?;
    env.tenant(KEEP).await?;
    env.tenant(GO).await?;
    let mut operator = env.operator(&[])?;
    let (mut serve, _port) = env.serve()?;
    let before = env.plane.pids();
    out.figure("clusters", opts.clusters.max(2));

    // 1. etcd SIGKILLed once the first Cluster API Cluster is written.
    let mut expected = Expected::new();
    let created = Instant::now();
    for i in 0..opts.clusters.max(2) {
        let tenant = if i % 2 == 0 { KEEP } else { GO };
        let name = format!("p{i:03}");
        create(&env.admin, &scs_cluster(tenant, &name, V1.0, 1)?).await?;
        expected.insert(
            (tenant.into(), name),
            Expect::Ready {
                version: V1.1.into(),
                workers: 1,
            },
        );
    }
    until_capi_clusters(&env.admin, 1, Duration::from_secs(120)).await?;
    say(&format!(
        "first Cluster API Cluster after {:.1?}; SIGKILL etcd",
        created.elapsed()
    ));
    if !env.plane.kill_core("etcd") {
        bail!("etcd was not running");
    }
    tokio::time::sleep(opts.fault).await;
    let restart = Instant::now();
    env.plane.start_core("etcd").await?;
    out.secs("etcd down (SIGKILL → restart)", opts.fault);
    out.secs("etcd restart → /health ok", restart.elapsed());
    let t = until_api(&env.admin, Duration::from_secs(120)).await?;
    out.secs(
        "etcd restart → kube-apiserver answers again",
        restart.elapsed().max(t),
    );
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "etcd restart → every cluster Ready, no error in its status",
        restart.elapsed(),
    );
    out.secs("create → all Ready, fault included", created.elapsed());

    // 2. kube-controller-manager SIGKILLed as one tenant's clusters are deleted.
    let deleted = Instant::now();
    for ((t, n), e) in expected.iter_mut() {
        if t == GO {
            delete(&env.admin, t, n).await?;
            *e = Expect::Gone;
        }
    }
    if !env.plane.kill_core("kube-controller-manager") {
        bail!("kube-controller-manager was not running");
    }
    say("clusters of one tenant deleted; SIGKILL kube-controller-manager");
    tokio::time::sleep(opts.fault).await;
    let restart = Instant::now();
    env.plane.start_core("kube-controller-manager").await?;
    out.secs(
        "kube-controller-manager down (SIGKILL → restart)",
        opts.fault,
    );
    // `converge` also requires that the deleted tenant's provider-side namespace is gone.
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "kube-controller-manager restart → deleted clusters and their namespace gone, the rest Ready",
        restart.elapsed(),
    );
    out.secs("delete → all gone, fault included", deleted.elapsed());

    operator.alive()?;
    serve.alive()?;
    same_processes(&env.plane, &before, &["etcd", "kube-controller-manager"])?;
    out.counters.insert("daemons restarted".into(), 0);
    out.counters.insert("clusters not converged".into(), 0);
    Ok(out)
}
