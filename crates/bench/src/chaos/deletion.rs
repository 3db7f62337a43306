//! A tenant deletes clusters while they are being created (their Cluster API Cluster written,
//! machines provisioning) and while they are being upgraded (the rollout under way). Every
//! deletion must complete with nothing left: no SCS Cluster, no Cluster API Cluster or Machine,
//! and no provider-side namespace for a tenant without clusters; a cluster of the same tenant
//! that is not deleted stays Ready.

use std::time::Instant;

use anyhow::Result;

use super::*;

const CREATING: &str = "chaos-del-create";
const UPGRADING: &str = "chaos-del-upgrade";

fn ready(version: &str, workers: usize) -> Expect {
    Expect::Ready {
        version: version.into(),
        workers,
    }
}

/// Waits until `f` holds for the Machines of every named cluster in `ns`.
async fn until_machines(
    admin: &Client,
    ns: &str,
    names: &[String],
    what: &str,
    timeout: Duration,
    f: impl Fn(&[Machine]) -> bool,
) -> Result<Duration> {
    let api: Api<Machine> = Api::namespaced(admin.clone(), ns);
    let start = Instant::now();
    loop {
        let mut all = true;
        for n in names {
            let ms = api
                .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={n}")))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            all &= f(&ms);
        }
        if all {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Delete);
    let env = Env::start(opts).await?;
    env.tenant(CREATING).await?;
    env.tenant(UPGRADING).await?;
    let _operator = env.operator(&[])?;
    let n_create = (opts.clusters / 2).max(1);
    let n_upgrade = (opts.clusters - opts.clusters / 2).max(1);
    out.figure(
        "clusters",
        format!("{n_create} deleted while being created, {n_upgrade} while being upgraded, 1 kept"),
    );

    // The clusters to upgrade, and one that stays, Ready at 1.35 first.
    let upgrading: Vec<String> = (0..n_upgrade).map(|i| format!("u{i:03}")).collect();
    let mut later = Expected::new();
    for n in upgrading.iter().chain([&"keep".to_string()]) {
        create(&env.admin, &scs_cluster(UPGRADING, n, V1.0, 1)?).await?;
        later.insert((UPGRADING.into(), n.clone()), ready(V1.1, 1));
    }
    let t = converge(&env.admin, &later, opts.converge_timeout).await?;
    say(&format!("{} clusters Ready after {t:.1?}", later.len()));

    // Deleted while being created: as soon as each has its Cluster API Cluster and a Machine.
    let creating: Vec<String> = (0..n_create).map(|i| format!("c{i:03}")).collect();
    for n in &creating {
        create(&env.admin, &scs_cluster(CREATING, n, V1.0, 1)?).await?;
    }
    until_machines(
        &env.admin,
        &capi_namespace(PROVIDER, CREATING),
        &creating,
        "a Machine of every new cluster",
        Duration::from_secs(180),
        |ms| !ms.is_empty(),
    )
    .await?;
    let not_ready = Api::<Cluster>::namespaced(env.admin.clone(), CREATING)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|c| {
            !c.status
                .as_ref()
                .is_some_and(|s| kaas_api::conditions::is_true(&s.conditions, "Ready"))
        })
        .count();
    out.figure("of those, not yet Ready when deleted", not_ready);
    let deleted = Instant::now();
    for n in &creating {
        delete(&env.admin, CREATING, n).await?;
    }
    let mut gone = Expected::new();
    for n in &creating {
        gone.insert((CREATING.into(), n.clone()), Expect::Gone);
    }
    converge(&env.admin, &gone, opts.converge_timeout).await?;
    out.secs(
        "deleted while being created → gone, provider-side namespace included",
        deleted.elapsed(),
    );

    // Deleted while being upgraded: once a Machine of the new version exists.
    for n in &upgrading {
        patch_spec(
            &env.admin,
            UPGRADING,
            n,
            json!({"kubernetes": {"version": V2.0}}),
        )
        .await?;
    }
    let v2 = V2.1.to_string();
    until_machines(
        &env.admin,
        &capi_namespace(PROVIDER, UPGRADING),
        &upgrading,
        "a Machine at the new version in every upgraded cluster",
        Duration::from_secs(300),
        |ms| {
            ms.iter()
                .any(|m| m.spec.version.as_deref() == Some(v2.as_str()))
        },
    )
    .await?;
    let deleted = Instant::now();
    for n in &upgrading {
        delete(&env.admin, UPGRADING, n).await?;
        later.insert((UPGRADING.into(), n.clone()), Expect::Gone);
    }
    converge(&env.admin, &later, opts.converge_timeout).await?;
    out.secs(
        "deleted while being upgraded → gone (the tenant's other cluster still Ready)",
        deleted.elapsed(),
    );
    // Everything at once, one last time.
    gone.extend(later);
    check(&env.admin, &gone)
        .await
        .map_err(|p| anyhow::anyhow!("INVARIANT: {p}"))?;
    out.counters.insert("objects or namespaces left".into(), 0);
    Ok(out)
}
