//! Two `kaas operator --leader-elect` replicas while clusters are being created; the leader is
//! SIGKILLed. The standby must take over (failover time) and there must never be two writers:
//! sampled every 100 ms, never both replicas report leadership, a replica that does not lead
//! never reconciles, and in the Lease the new holder acquired it only after the old holder's
//! last renewal had expired.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use k8s_openapi::api::coordination::v1::Lease;

use super::*;

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

fn lease_times(l: &Lease) -> (Option<String>, i64, i64, i32) {
    let s = l.spec.clone().unwrap_or_default();
    (
        s.holder_identity,
        s.acquire_time.map(|t| t.0.as_second()).unwrap_or(0),
        s.renew_time.map(|t| t.0.as_second()).unwrap_or(0),
        s.lease_transitions.unwrap_or(0),
    )
}

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Failover);
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
        tokio::spawn(async move {
            let mut violations = Vec::new();
            let mut samples = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let (sa, sb) = tokio::join!(sample(pa), sample(pb));
                samples += 1;
                if let (Some((true, _)), Some((true, _))) = (sa, sb) {
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
    a.kill();
    let killed = Instant::now();
    say("SIGKILL the leader");
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
    out.secs("SIGKILL of the leader → the standby leads", took_over);
    out.secs(
        "SIGKILL of the leader → its first reconcile",
        first_reconcile,
    );
    // The Lease: a new holder, one more transition, acquired only once the old renewal expired.
    let duration = 15;
    let mut violations = Vec::new();
    if after.0 == before.0 {
        violations.push(format!("the Lease is still held by {:?}", after.0));
    }
    if after.3 != before.3 + 1 {
        violations.push(format!(
            "lease transitions {} → {} (want one)",
            before.3, after.3
        ));
    }
    if after.1 < before.2 + duration {
        violations.push(format!(
            "acquired at {} while the old holder's renewal at {} was valid until {}",
            after.1,
            before.2,
            before.2 + duration
        ));
    }
    // The killed replica comes back as the standby.
    let _a2 = env.operator(&args)?;
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "SIGKILL of the leader → every cluster Ready",
        killed.elapsed(),
    );
    stop.store(true, Ordering::SeqCst);
    let (samples, seen) = watchdog.await?;
    violations.extend(seen);
    out.figure("watchdog samples (both replicas, every 100 ms)", samples);
    out.counters
        .insert("moments with two writers".into(), violations.len());
    if !violations.is_empty() {
        bail!("INVARIANT: {}", violations.join("; "));
    }
    b.alive()?;
    Ok(out)
}
