//! kube-apiserver SIGKILLed while the operator is creating clusters, restarted after the fault
//! with the same flags, port and etcd. The operator and `kaas serve` are not restarted: they must
//! recover on their own; every cluster must then converge with no error left in its status.

use std::time::Instant;

use anyhow::{Result, bail};

use super::*;

/// How long the operator may take to notice a new cluster after the API server is back.
const NOTICE_BOUND: Duration = Duration::from_secs(30);

const TENANT: &str = "chaos-api";

pub(super) async fn run(opts: &Options) -> Result<Outcome> {
    let mut out = Outcome::new(Scenario::Apiserver);
    let env = Env::start(opts).await?;
    let token = env.tenant(TENANT).await?;
    let mut operator = env.operator(&[])?;
    let (mut serve, port) = env.serve()?;
    let path = format!("/api/v1/namespaces/{TENANT}/clusters");
    until_serve_ok(port, &path, &token, Duration::from_secs(60)).await?;
    let before = env.plane.pids();

    let mut expected = Expected::new();
    for i in 0..opts.clusters {
        let name = format!("a{i:03}");
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
    // Mid-reconcile: the operator has written its first Cluster API objects.
    until_capi_clusters(&env.admin, 1, Duration::from_secs(120)).await?;
    say(&format!(
        "first Cluster API Cluster after {:.1?}; SIGKILL kube-apiserver",
        created.elapsed()
    ));
    if !env.plane.kill_apiserver() {
        bail!("kube-apiserver was not running");
    }
    tokio::time::sleep(opts.fault).await;
    let restart = Instant::now();
    env.plane.start_apiserver().await?;
    let up = restart.elapsed();
    let back = Instant::now();
    out.figure("clusters", opts.clusters);
    out.secs("kube-apiserver down (SIGKILL → restart)", opts.fault);
    out.secs("kube-apiserver restart → /readyz ok", up);
    let serve_back = until_serve_ok(port, &path, &token, Duration::from_secs(120)).await?;
    out.secs(
        "kaas serve answers a tenant's list again (after /readyz)",
        serve_back,
    );
    // A cluster created through kaas serve right away must be noticed by the operator (its
    // Cluster API Cluster written) — a liveness bound, thirty times what it takes normally.
    let c = scs_cluster(TENANT, "after", V1.0, 1)?;
    let body = serde_json::to_string(&c)?;
    let status = http_post(port, &path, &token, &body).await;
    if status != Some(201) {
        bail!("INVARIANT: creating a cluster through kaas serve after the restart: {status:?}");
    }
    let posted = Instant::now();
    let capi: Api<CapiCluster> =
        Api::namespaced(env.admin.clone(), &capi_namespace(PROVIDER, TENANT));
    let noticed = loop {
        if let Ok(Some(_)) = capi.get_opt("after").await {
            break posted.elapsed();
        }
        if posted.elapsed() > NOTICE_BOUND {
            bail!(
                "INVARIANT: the operator did not notice a cluster created {NOTICE_BOUND:?} ago, \
                 after the API server was back (it is not reacting to watch events)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    out.secs(
        "a cluster created through kaas serve right after → its Cluster API Cluster written",
        noticed,
    );
    expected.insert(
        (TENANT.into(), "after".into()),
        Expect::Ready {
            version: V1.1.into(),
            workers: 1,
        },
    );
    converge(&env.admin, &expected, opts.converge_timeout).await?;
    out.secs(
        "every cluster Ready, no error in its status (after /readyz)",
        back.elapsed(),
    );
    out.secs("create → all Ready, fault included", created.elapsed());

    // Neither daemon was restarted, and the plane's other processes never died.
    operator.alive()?;
    serve.alive()?;
    same_processes(&env.plane, &before, &["kube-apiserver"])?;
    out.figure("operator warnings/errors logged", operator.warnings());
    out.counters.insert("daemons restarted".into(), 0);
    out.counters.insert("clusters not converged".into(), 0);
    Ok(out)
}

async fn http_post(port: u16, path: &str, token: &str, body: &str) -> Option<u16> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(20), probe)
        .await
        .ok()
        .flatten()
}
