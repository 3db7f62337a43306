//! Two `kaas operator --leader-elect` replicas while clusters are being created; the leader is
//! SIGKILLed (`failover`) or stopped with SIGSTOP for longer than its lease and then resumed
//! (`pause`, the split-brain case: a leader that does not know it lost the lease). The standby
//! must take over (failover time) and there must never be two writers: sampled every 100 ms,
//! never both replicas report leadership (`failover` only: a stopped process reports nothing and a
//! resumed one has not yet noticed), a replica that does not lead never reconciles, in the Lease
//! the new holder acquired it only after the old holder's last renewal had expired, and in the API
//! server's audit log every write of a replica (its User-Agent) falls within its own tenure — none
//! of the old leader's after the new one acquired the Lease, none of the standby's before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use k8s_openapi::api::coordination::v1::Lease;

use super::*;

/// How the leader fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGSTOP for longer than the lease, then SIGCONT.
    Pause,
}

/// The operator's lease duration (`kaas operator`).
const LEASE_SECS: i64 = 15;

const TENANT: &str = "chaos-failover";
const LEASE_NS: &str = "kaas-system";
const LEASE: &str = "kaas-operator";

/// (leader gauge, reconciles so far) of a replica, None when it does not answer.
async fn sample(port: u16) -> Option<(bool, f64)> {
    let text = http_text(port, "/metrics").await?;
    let mut leader = false;
    let mut reconciles = 0.0;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let v: f64 = value.parse().unwrap_or(0.0);
        if series == "kaas_operator_leader" {
            leader = v >= 1.0;
        } else if series.starts_with("kaas_operator_reconciles_total") {
            reconciles += v;
        }
    }
    Some((leader, reconciles))
}

async fn http_text(port: u16, path: &str) -> Option<String> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        Some(text.split_once("\r\n\r\n")?.1.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
}

/// (holder, acquired, renewed, transitions) of the Lease; times in microseconds.
fn lease_times(l: &Lease) -> (Option<String>, i64, i64, i32) {
    let s = l.spec.clone().unwrap_or_default();
    let us = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| {
        t.map(|t| t.0.as_microsecond()).unwrap_or(0)
    };
    (
        s.holder_identity,
        us(s.acquire_time),
        us(s.renew_time),
        s.lease_transitions.unwrap_or(0),
    )
}

/// (writes of `who` other than to the Lease, those of them the API server received outside
/// `[from, until)` (microseconds since the epoch)) — by its User-Agent; the Lease's compare-and-swap
/// is the election itself.
fn writes_outside(log: &Path, who: &str, from: i64, until: i64) -> Result<(usize, Vec<String>)> {
    let agent = format!("({who})");
    // The Lease's own writes are the election, not work: neither counted nor judged.
    let all: Vec<AuditedWrite> = audit_writes(log, &agent)?
        .into_iter()
        .filter(|w| !w.object.starts_with("leases "))
        .collect();
    let total = all.len();
    let outside = all
        .into_iter()
        .filter(|w| {
            let t = w.received.as_microsecond();
            t < from || t >= until
        })
        .map(|w| {
            format!(
                "{who} {} {} at {} → {}",
                w.verb,
                w.object,
                w.received.strftime("%H:%M:%S%.6f"),
                w.code
            )
        })
        .collect();
    Ok((total, outside))
}

pub(super) async fn run(opts: &Options, fault: Fault) -> Result<Outcome> {
    let mut out = Outcome::new(match fault {
        Fault::Kill => Scenario::Failover,
        Fault::Pause => Scenario::Pause,
    });
    let paused = Arc::new(AtomicBool::new(false));
    let env = Env::start(opts).await?;
    env.tenant(TENANT).await?;
    install::namespace(&env.admin, LEASE_NS, &[]).await?;
    let args = ["--leader-elect", "--lease-namespace", LEASE_NS];
    let mut a = env.operator(&args)?;
    // The first one leads before the second starts, so which one leads is known.
    let start = Instant::now();
    while !matches!(sample(a.port).await, Some((true, _))) {
        a.alive()?;
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the first replica did not lead within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut b = env.operator(&args)?;
    let (pa, pb) = (a.port, b.port);

    // The watchdog: both replicas every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let stop = stop.clone();
        let paused = paused.clone();
        tokio::spawn(async move {
            let mut violations = Vec::new();
            let mut samples = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let (sa, sb) = tokio::join!(sample(pa), sample(pb));
                samples += 1;
                if let (Some((true, _)), Some((true, _)), false) =
                    (sa, sb, paused.load(Ordering::SeqCst))
                {
                    violations.push("both replicas report leadership".to_string());
                }
                if let Some((false, r)) = sb
                    && r > 0.0
                {
                    violations.push(format!("the standby reconciled {r} times without leading"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (samples, violations)
        })
    };

    let mut expected = Expected::new();
    for i in 0..opts.clusters {
        let name = format!("f{i:03}");
        create(&env.admin, &scs_cluster(TENANT, &name, V1.0, 1)?).await?;
        expected.insert(
            (TENANT.into(), name),
            Expect::Ready {
                version: V1.1.into(),
                workers: 1,
            },
        );
    }
    until_capi_clusters(&env.admin, 1, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leases: Api<Lease> = Api::namespaced(env.admin.clone(), LEASE_NS);
    let before = lease_times(&leases.get(LEASE).await?);
    if let Some((_, r)) = sample(pb).await
        && r > 0.0
    {
        bail!("INVARIANT: the standby reconciled before the failover");
    }
    let what = match fault {
        Fault::Kill => {
            a.kill();
            say("SIGKILL the leader");
            "SIGKILL"
        }
        Fault::Pause => {
            paused.store(true, Ordering::SeqCst);
            a.signal(libc::SIGSTOP)?;
            say("SIGSTOP the leader");
            "SIGSTOP"
        }
    };
    let killed = Instant::now();
    let took_over = loop {
        b.alive()?;
        if let Some((true, _)) = sample(pb).await {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(120) {
            bail!("INVARIANT: the standby did not take over within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_reconcile = loop {
        if let Some((_, r)) = sample(pb).await
            && r > 0.0
        {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(180) {
            bail!("INVARIANT: the new leader did not reconcile within 180 s of the failover");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = lease_times(&leases.get(LEASE).await?);
    out.figure("clusters", opts.clusters);
    out.secs(
        &format!("{what} of the leader → the standby leads"),
        took_over,
    );
    out.secs(
        &format!("{what} of the leader → the new leader's first reconcile"),
        first_reconcile,
    );
    let mut violations = Vec::new();
    if fault == Fault::Pause {
        // Work for both while the old leader sleeps: every cluster gets a second worker, so the
        // resumed process finds its watches and requeues full of stale work.
        for (ns, name) in expected.keys() {
            patch_spec(
                &env.admin,
                ns,
                name,
                json!({"workers": [{"name": POOL, "count": 2}]}),
            )
            .await?;
        }
        for e in expected.values_mut() {
            if let Expect::Ready { workers, .. } = e {
                *workers = 2;
            }
        }
        let rest = opts.fault.max(Duration::from_secs(LEASE_SECS as u64 + 10));
        tokio::time::sleep(rest.saturating_sub(killed.elapsed())).await;
        a.signal(libc::SIGCONT)?;
        let resumed = Instant::now();
        say("SIGCONT the old leader");
        out.secs("old leader stopped (SIGSTOP → SIGCONT)", killed.elapsed());
        // It must notice that it lost the Lease and step down (exit: its Deployment restarts it).
        let stepped_down = loop {
            if let Some(st) = a.exited() {
                say(&format!("the old leader exited: {st}"));
                break resumed.elapsed();
            }
            if resumed.elapsed() > Duration::from_secs(60) {
                bail!("INVARIANT: the resumed old leader still runs 60 s after SIGCONT");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        paused.store(false, Ordering::SeqCst);
        out.secs("SIGCONT → the old leader steps down (exits)", stepped_down);
    }
    // The Lease: a new holder, one more transition, acquired only once the old renewal expired.
    let duration = LEASE_SECS * 1_000_000;
    if after.0 == before.0 {
        violations.push(format!("the Lease is still held by {:?}", after.0));
    }
    if after.3 != before.3 + 1 {
        violations.push(format!(
            "lease transitions {} → {} (want one)",
            before.3, after.3
        ));
    }
    // Second precision: what the replicas compare.
    if after.1 / 1_000_000 < (before.2 + duration) / 1_000_000 {
        violations.push(format!(
            "acquired at {} while the old holder's renewal at {} was valid until {}",
            after.1,
            before.2,
            before.2 + duration
        ));
    }
    // The failed replica comes back as the standby.
    let a2 = env.operator(&args)?;
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        &format!("{what} of the leader → every cluster Ready"),
        killed.elapsed(),
    );
    stop.store(true, Ordering::SeqCst);
    let (samples, seen) = watchdog.await?;
    violations.extend(seen);
    // The audit log: each replica wrote only while it held the Lease.
    let new_from = after.1;
    let (wa, va) = writes_outside(&env.audit_log, &a.identity, 0, new_from)?;
    let (wb, vb) = writes_outside(&env.audit_log, &b.identity, new_from, i64::MAX)?;
    let (wa2, va2) = writes_outside(&env.audit_log, &a2.identity, i64::MAX, i64::MAX)?;
    out.figure(
        "writes in the audit log, the Lease's excepted: old leader / new leader / restarted standby",
        format!("{wa} / {wb} / {wa2}"),
    );
    if wa == 0 || wb == 0 {
        bail!(
            "the audit log shows no writes of a leader: is it written? ({})",
            env.audit_log.display()
        );
    }
    out.counters.insert(
        "writes outside the writer's tenure".into(),
        va.len() + vb.len() + va2.len(),
    );
    for v in va.iter().chain(&vb).chain(&va2).take(20) {
        violations.push(format!("write outside its tenure: {v}"));
    }
    out.figure("watchdog samples (both replicas, every 100 ms)", samples);
    out.counters
        .insert("two-writer violations".into(), violations.len());
    if !violations.is_empty() {
        bail!("INVARIANT: {}", violations.join("; "));
    }
    b.alive()?;
    Ok(out)
}
