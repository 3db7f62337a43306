//! Hibernation of one control plane (`spec.hibernated`): every process stops gracefully (kwok,
//! scheduler, controller manager, API server, then etcd) and nothing starts again while the spec
//! says so — neither the supervisor's next pass nor a restarted runtime. etcd's data directory,
//! the PKI, the kubeconfigs (and the kubeconfig and CA Secrets) and the persisted ports stay.
//!
//! While it sleeps the runtime holds the control plane's ports bound (never listening): nothing
//! answers at the endpoint, and no other program of this machine can take the ports, so the
//! control plane wakes at the same endpoint. The reservation lives as long as the runtime; a
//! restarted runtime takes it again at its first pass.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use kaas_api::backup::{EtcdOperation, EtcdOperationStatus, PHASE_FAILED};

use crate::processes;
use crate::state::{Layout, Ports};

/// Why an etcd operation asked of a hibernated control plane is refused.
pub const ETCD_OPERATION_REFUSED: &str =
    "the control plane is hibernated: wake it first (spec.hibernated: false), then ask again";

/// The report refusing an etcd operation while hibernated (the operator shows it as failed; the
/// tenant asks again once the cluster is awake).
pub fn refuse(op: &EtcdOperation, now: &str) -> EtcdOperationStatus {
    EtcdOperationStatus {
        id: op.id.clone(),
        phase: PHASE_FAILED.into(),
        message: Some(ETCD_OPERATION_REFUSED.into()),
        started_at: Some(now.into()),
        finished_at: Some(now.into()),
        ..EtcdOperationStatus::default()
    }
}

/// Stops every process of the control plane (graceful: SIGTERM, SIGKILL only after the grace
/// period), keeps every file, and reserves its ports. Returns what it stopped.
pub async fn stop(layout: &Layout) -> Vec<(processes::Component, i32, bool)> {
    let stopped = processes::stop_control_plane(layout).await;
    if let Some(p) = Ports::load(layout) {
        reserve(layout, p);
    }
    stopped
}

fn reserved() -> &'static Mutex<HashMap<PathBuf, Vec<OwnedFd>>> {
    static RESERVED: OnceLock<Mutex<HashMap<PathBuf, Vec<OwnedFd>>>> = OnceLock::new();
    RESERVED.get_or_init(Default::default)
}

/// A TCP socket bound to `127.0.0.1:port` that never listens: connections are refused, and
/// (without `SO_REUSEADDR`) no other socket can bind the port.
fn bind_only(port: u16) -> Option<OwnedFd> {
    // SAFETY: a fresh socket owned at once by an OwnedFd; bind(2) with a valid sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let ok = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) == 0;
        ok.then_some(fd)
    }
}

/// Holds the control plane's ports (those still free) until [`release`]. Already held: kept.
pub fn reserve(layout: &Layout, ports: Ports) {
    let mut map = reserved().lock().unwrap_or_else(|e| e.into_inner());
    if map.contains_key(&layout.dir) {
        return;
    }
    let mut held = Vec::new();
    for port in [ports.etcd, ports.etcd_peer, ports.apiserver] {
        match bind_only(port) {
            Some(fd) => held.push(fd),
            None => {
                tracing::warn!(dir = %layout.dir.display(), port, "cannot reserve a port of the hibernated control plane (taken); it moves on waking")
            }
        }
    }
    map.insert(layout.dir.clone(), held);
}

/// Gives the reserved ports back (before the control plane starts, or when it is removed).
pub fn release(layout: &Layout) {
    reserved()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&layout.dir);
}

/// Whether the runtime holds the ports of this control plane.
pub fn is_reserved(layout: &Layout) -> bool {
    reserved()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&layout.dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaas_harness::process::{free_port, port_is_free};

    #[test]
    fn reserved_ports_refuse_connections_and_cannot_be_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "c");
        let p = Ports {
            etcd: free_port().unwrap(),
            etcd_peer: free_port().unwrap(),
            apiserver: free_port().unwrap(),
        };
        reserve(&layout, p);
        assert!(is_reserved(&layout));
        for port in [p.etcd, p.etcd_peer, p.apiserver] {
            assert!(!port_is_free(port), "port {port} reserved");
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "nothing answers at {port}"
            );
        }
        release(&layout);
        assert!(!is_reserved(&layout));
        for port in [p.etcd, p.etcd_peer, p.apiserver] {
            assert!(port_is_free(port), "port {port} given back");
        }
    }

    #[test]
    fn a_refusal_names_the_operation_and_says_why() {
        let op = EtcdOperation {
            id: "u1".into(),
            kind: kaas_api::backup::EtcdOperationKind::Restore,
            secret_name: "s".into(),
        };
        let r = refuse(&op, "2026-01-01T00:00:00Z");
        assert_eq!((r.id.as_str(), r.phase.as_str()), ("u1", "Failed"));
        assert!(r.message.unwrap().contains("hibernated: wake it first"));
    }
}
