//! N clusters created, scaled, upgraded and deleted while the `kaas operator` process is
//! SIGKILLed at random moments and started again each time. Afterwards every cluster must
//! converge to its spec, with nothing lost, duplicated or orphaned (Cluster API objects,
//! provider-side namespaces); the figure is the time to converge after the last restart.

use std::time::Instant;

use anyhow::Result;

use super::*;

/// Tenant whose clusters are all deleted (its provider-side namespace must go too).
const GONE: &str = "chaos-kill-gone";

/// xorshift64*: reproducible randomness from `--seed`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next() % span)
    }
}

/// What happens to a cluster after its creation.
#[derive(Clone, Copy, Debug)]
enum Op {
    Keep,
    Scale,
    Upgrade,
    Delete,
}

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Kills);
    let env = Env::start(opts).await?;
    let seed = match opts.seed {
        0 => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            .max(1),
        s => s,
    };
    let mut rng = Rng(seed);
    let n = opts.clusters;
    let tenants = n.div_ceil(10).clamp(1, 10);
    // Cluster i: op by i % 4; the deleted ones in a tenant of their own.
    let mut plan: Vec<(String, String, Op)> = Vec::new();
    for i in 0..n {
        let op = [Op::Delete, Op::Scale, Op::Upgrade, Op::Keep][i % 4];
        let tenant = match op {
            Op::Delete => GONE.to_string(),
            _ => format!("chaos-kill-t{:02}", i % tenants),
        };
        plan.push((tenant, format!("k{i:03}"), op));
    }
    let names: BTreeSet<&String> = plan.iter().map(|(t, _, _)| t).collect();
    for t in &names {
        env.tenant(t).await?;
    }
    out.figure("clusters", n);
    out.figure(
        "kills",
        format!(
            "{} SIGKILLs, {:.0}–{:.0} s apart, restart after {:.1}–{:.1} s (seed {seed})",
            opts.kills,
            opts.kill_every.0.as_secs_f64(),
            opts.kill_every.1.as_secs_f64(),
            opts.restart_after.0.as_secs_f64(),
            opts.restart_after.1.as_secs_f64()
        ),
    );

    // The operations, at random moments spread over the kills' window.
    let window = opts.kill_every.1 * opts.kills as u32 / 2;
    let mut ops: Vec<(Duration, usize)> = (0..n)
        .map(|i| {
            (
                rng.between(Duration::ZERO, window.max(Duration::from_secs(1))),
                i,
            )
        })
        .collect();
    ops.sort();
    let mut kill_at = Vec::new();
    for _ in 0..opts.kills {
        kill_at.push(rng.between(opts.kill_every.0, opts.kill_every.1));
    }
    let mut restart_after = Vec::new();
    for _ in 0..opts.kills {
        restart_after.push(rng.between(opts.restart_after.0, opts.restart_after.1));
    }

    let mut operator = env.operator(&[])?;
    let started = Instant::now();
    for (t, name, _) in &plan {
        create(&env.admin, &scs_cluster(t, name, V1.0, 1)?).await?;
    }
    say(&format!(
        "{n} clusters created in {:.1?}",
        started.elapsed()
    ));

    let admin = env.admin.clone();
    let plan_ref = &plan;
    let changes = async move {
        let t0 = Instant::now();
        for (at, i) in ops {
            tokio::time::sleep(at.saturating_sub(t0.elapsed())).await;
            let (t, name, op) = &plan_ref[i];
            match op {
                Op::Keep => {}
                Op::Scale => {
                    patch_spec(
                        &admin,
                        t,
                        name,
                        json!({"workers": [{"name": POOL, "count": 2}]}),
                    )
                    .await?
                }
                Op::Upgrade => {
                    patch_spec(&admin, t, name, json!({"kubernetes": {"version": V2.0}})).await?
                }
                Op::Delete => delete(&admin, t, name).await?,
            }
        }
        anyhow::Ok(())
    };
    let env_ref = &env;
    let kills = async move {
        let mut last_restart = Instant::now();
        for k in 0..opts.kills {
            tokio::time::sleep(kill_at[k]).await;
            operator.alive()?;
            operator.kill();
            say(&format!("SIGKILL operator ({}/{})", k + 1, opts.kills));
            tokio::time::sleep(restart_after[k]).await;
            operator = env_ref.operator(&[])?;
            last_restart = Instant::now();
        }
        anyhow::Ok((operator, last_restart))
    };
    let (changed, killed) = tokio::join!(changes, kills);
    changed?;
    let (mut operator, last_restart) = killed?;

    let mut expected = Expected::new();
    for (t, name, op) in &plan {
        let want = match op {
            Op::Keep => Expect::Ready {
                version: V1.1.into(),
                workers: 1,
            },
            Op::Scale => Expect::Ready {
                version: V1.1.into(),
                workers: 2,
            },
            Op::Upgrade => Expect::Ready {
                version: V2.1.into(),
                workers: 1,
            },
            Op::Delete => Expect::Gone,
        };
        expected.insert((t.clone(), name.clone()), want);
    }
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "last restart → every cluster at its spec, nothing lost, duplicated or orphaned",
        last_restart.elapsed(),
    );
    out.secs(
        "first create → converged, kills included",
        started.elapsed(),
    );
    operator.alive()?;
    for c in [
        "lost clusters",
        "duplicate Cluster API objects",
        "orphaned Cluster API objects or namespaces",
    ] {
        out.counters.insert(c.into(), 0);
    }
    Ok(out)
}
