//! The fault-injection scenarios of `kaas-bench chaos` (crates/bench/src/chaos) with small counts
//! and short faults, against the real plane with Cluster API and the real `kaas operator` and
//! `kaas serve` processes. Each asserts the scenario's invariants (every cluster converges to its
//! spec with no error left in its status; nothing lost, duplicated or orphaned; no daemon
//! restarted or crashed); the recovery times it prints go to RELIABILITY.md, never into an
//! assertion. Planes with Cluster API run one at a time (machine-wide lock), so these wait for
//! each other.

use std::path::PathBuf;

use kaas_bench::chaos::{self, Options, Scenario};

fn opts() -> Options {
    Options::ci(PathBuf::from(env!("CARGO_BIN_EXE_kaas")))
}

async fn scenario(s: Scenario) {
    let out = chaos::run(s, &opts())
        .await
        .unwrap_or_else(|e| panic!("chaos {}: {e:#}", s.name()));
    eprintln!("{}", out.markdown());
    for (k, v) in &out.counters {
        assert_eq!(*v, 0, "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_mid_reconcile_operator_and_serve_recover() {
    scenario(Scenario::Apiserver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_and_resumed_loses_no_write() {
    scenario(Scenario::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_deleted_while_created_or_upgraded_leave_nothing() {
    scenario(Scenario::Delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sigkilled_repeatedly_loses_duplicates_and_orphans_nothing() {
    let mut o = opts();
    o.clusters = 8;
    let out = chaos::run(Scenario::Kills, &o)
        .await
        .unwrap_or_else(|e| panic!("chaos kills: {e:#}"));
    eprintln!("{}", out.markdown());
    for (k, v) in &out.counters {
        assert_eq!(*v, 0, "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkilled_standby_takes_over_never_two_writers() {
    scenario(Scenario::Failover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_paused_past_its_lease_never_writes_after_the_takeover() {
    scenario(Scenario::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_core_manager_killed_during_upgrades_upgrades_complete() {
    scenario(Scenario::Capi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_control_planes_survive_runtime_workload_and_combined_kills() {
    scenario(Scenario::Hosted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_and_controller_manager_killed_clusters_converge_namespaces_go() {
    scenario(Scenario::Plane).await;
}
