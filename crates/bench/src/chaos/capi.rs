//! The Cluster API core manager SIGKILLed while clusters are being upgraded, started again after
//! the fault. Every upgrade must complete (all machines at the new version, the cluster Ready)
//! with no stuck condition.

use std::time::Instant;

use anyhow::{Result, bail};

use super::*;

const TENANT: &str = "chaos-capi";
const CORE: &str = "capi-core";

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Capi);
    let env = Env::start(opts).await?;
    env.tenant(TENANT).await?;
    let mut operator = env.operator(&[])?;
    let mut expected = Expected::new();
    for i in 0..opts.clusters {
        let name = format!("m{i:03}");
        create(&env.admin, &scs_cluster(TENANT, &name, V1.0, 1)?).await?;
        expected.insert(
            (TENANT.into(), name),
            Expect::Ready {
                version: V1.1.into(),
                workers: 1,
            },
        );
    }
    let t = converge(&env.admin, &expected, opts.converge_timeout).await?;
    say(&format!("{} clusters Ready after {t:.1?}", opts.clusters));

    let upgrade = Instant::now();
    for ((t, n), w) in expected.iter_mut() {
        patch_spec(&env.admin, t, n, json!({"kubernetes": {"version": V2.0}})).await?;
        *w = Expect::Ready {
            version: V2.1.into(),
            workers: 1,
        };
    }
    // The rollout is under way: a Machine of the new version exists.
    let machines: Api<Machine> =
        Api::namespaced(env.admin.clone(), &capi_namespace(PROVIDER, TENANT));
    loop {
        let l = machines.list(&ListParams::default()).await?;
        if l.items
            .iter()
            .any(|m| m.spec.version.as_deref() == Some(V2.1))
        {
            break;
        }
        if upgrade.elapsed() > Duration::from_secs(300) {
            bail!("no Machine of {} within 300 s of the upgrade", V2.1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(&format!(
        "rollout under way after {:.1?}; SIGKILL {CORE}",
        upgrade.elapsed()
    ));
    if !env.plane.kill_capi_manager(CORE)? {
        bail!("{CORE} was not running");
    }
    tokio::time::sleep(opts.fault).await;
    let restart = Instant::now();
    env.plane.start_capi_manager(CORE).await?;
    out.figure("clusters", opts.clusters);
    out.secs(&format!("{CORE} down (SIGKILL → restart)"), opts.fault);
    out.secs(&format!("{CORE} restart → /readyz ok"), restart.elapsed());
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        &format!("{CORE} restart → every upgrade complete, cluster Ready, nothing stuck"),
        restart.elapsed(),
    );
    out.secs("upgrade → all complete, fault included", upgrade.elapsed());
    operator.alive()?;
    out.counters.insert("upgrades not completed".into(), 0);
    Ok(out)
}
