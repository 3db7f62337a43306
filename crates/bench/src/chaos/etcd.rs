//! etcd stopped (SIGSTOP) while clusters are being created and scaled, then resumed (SIGCONT).
//! Nothing may crash; no acknowledged write may be lost: a writer bumps a counter in a ConfigMap
//! all along (the stored value must lie between the last acknowledged and the last attempted
//! one), and every scale acknowledged before or during the pause must be realised.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;

use super::*;

const TENANT: &str = "chaos-etcd";
const COUNTER: &str = "chaos-counter";

/// SIGCONT on drop, so a failing scenario never leaves etcd stopped.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Etcd);
    let env = Env::start(opts).await?;
    let token = env.tenant(TENANT).await?;
    let mut operator = env.operator(&[])?;
    let (mut serve, port) = env.serve()?;
    let path = format!("/api/v1/namespaces/{TENANT}/clusters");
    until_serve_ok(port, &path, &token, Duration::from_secs(60)).await?;
    let before = env.plane.pids();
    let etcd = plane_pid(&env.plane, "etcd").context("no etcd process")?;

    // The counter writer: one write at a time, each bounded by 15 s.
    let cms: Api<ConfigMap> = Api::namespaced(env.admin.clone(), TENANT);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": COUNTER}, "data": {"n": "0"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cms, acked, attempted, stop) =
            (cms.clone(), acked.clone(), attempted.clone(), stop.clone());
        tokio::spawn(async move {
            let mut failed = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let n = attempted.fetch_add(1, Ordering::SeqCst) + 1;
                let patch = json!({"data": {"n": n.to_string()}});
                let (pp, merge) = (PatchParams::default(), Patch::Merge(&patch));
                let w = cms.patch(COUNTER, &pp, &merge);
                match tokio::time::timeout(Duration::from_secs(15), w).await {
                    Ok(Ok(_)) => acked.store(n, Ordering::SeqCst),
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failed
        })
    };

    let mut expected = Expected::new();
    for i in 0..opts.clusters {
        let name = format!("e{i:03}");
        create(&env.admin, &scs_cluster(TENANT, &name, V1.0, 1)?).await?;
        expected.insert(
            (TENANT.into(), name),
            Expect::Ready {
                version: V1.1.into(),
                workers: 1,
            },
        );
    }
    let created = Instant::now();
    until_capi_clusters(&env.admin, 1, Duration::from_secs(120)).await?;
    // Half the clusters are scaled just before the pause, the other half during it.
    let keys: Vec<(String, String)> = expected.keys().cloned().collect();
    let (early, late) = keys.split_at(keys.len() / 2);
    for (t, n) in early {
        patch_spec(
            &env.admin,
            t,
            n,
            json!({"workers": [{"name": POOL, "count": 2}]}),
        )
        .await?;
    }
    say(&format!(
        "first Cluster API Cluster after {:.1?}; SIGSTOP etcd (pid {etcd})",
        created.elapsed()
    ));
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(etcd, libc::SIGSTOP) } != 0 {
        bail!("SIGSTOP etcd: {}", std::io::Error::last_os_error());
    }
    let resume = Resume(etcd);
    let paused = Instant::now();
    // Scale the others during the pause; each call keeps retrying (as a tenant's client would)
    // and is acknowledged only after etcd is back.
    let late_writes = {
        let (admin, late) = (env.admin.clone(), late.to_vec());
        tokio::spawn(async move {
            for (t, n) in &late {
                patch_spec(
                    &admin,
                    t,
                    n,
                    json!({"workers": [{"name": POOL, "count": 2}]}),
                )
                .await?;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(opts.fault.saturating_sub(paused.elapsed())).await;
    let acked_at_resume = acked.load(Ordering::SeqCst);
    drop(resume);
    let resumed = Instant::now();
    say("SIGCONT etcd");
    out.figure("clusters", opts.clusters);
    out.secs("etcd stopped (SIGSTOP → SIGCONT)", opts.fault);
    let api_back = until_api(&env.admin, Duration::from_secs(120)).await?;
    out.secs("SIGCONT → the API server answers a read", api_back);
    // The first counter write acknowledged after the resume.
    let first_write = loop {
        if acked.load(Ordering::SeqCst) > acked_at_resume {
            break resumed.elapsed();
        }
        if resumed.elapsed() > Duration::from_secs(120) {
            bail!("INVARIANT: no write acknowledged within 120 s of SIGCONT");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    out.secs("SIGCONT → first acknowledged write", first_write);
    until_serve_ok(port, &path, &token, Duration::from_secs(120)).await?;
    out.secs(
        "SIGCONT → kaas serve answers a tenant's list",
        resumed.elapsed(),
    );
    late_writes.await??;
    for (_, w) in expected.iter_mut() {
        *w = Expect::Ready {
            version: V1.1.into(),
            workers: 2,
        };
    }
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "SIGCONT → every cluster Ready at its new size, no error in its status",
        resumed.elapsed(),
    );

    // Let the writer go on a little after the recovery, then stop it and compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let failed = writer.await?;
    let (last_acked, last_attempted) = (
        acked.load(Ordering::SeqCst),
        attempted.load(Ordering::SeqCst),
    );
    let stored: u64 = cms
        .get(COUNTER)
        .await?
        .data
        .and_then(|d| d.get("n").cloned())
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    out.figure(
        "counter writes acknowledged / attempted / failed or timed out",
        format!("{last_acked} / {last_attempted} / {failed}"),
    );
    let lost = usize::from(stored < last_acked || stored > last_attempted);
    out.counters.insert("acknowledged writes lost".into(), lost);
    if lost > 0 {
        bail!(
            "INVARIANT: counter stored {stored}, last acknowledged {last_acked}, last attempted {last_attempted}"
        );
    }
    operator.alive()?;
    serve.alive()?;
    same_processes(&env.plane, &before, &[])?;
    out.counters.insert("processes crashed".into(), 0);
    out.counters.insert("clusters not converged".into(), 0);
    out.figure("operator warnings/errors logged", operator.warnings());
    Ok(out)
}
