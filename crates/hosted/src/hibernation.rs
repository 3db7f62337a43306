//! Hibernation of one control plane (`spec.hibernated`): every process stops gracefully (kwok,
//! scheduler, controller manager, API server, then etcd) and nothing starts again while the spec
//! says so — neither the supervisor's next pass nor a restarted runtime. etcd's data directory,
//! the PKI, the kubeconfigs (and the kubeconfig and CA Secrets) and the persisted ports stay.
//!
//! While it sleeps the runtime holds the control plane's ports bound (never listening): nothing
//! answers at the endpoint, and no other program of this machine can take the ports, so the
//! control plane wakes at the same endpoint. The reservation lives as long as the runtime; a
//! restarted runtime takes it again at its first pass. A port that cannot be held (another
//! program took it) is retried at every pass while the control plane sleeps, logged, and named
//! in the status (`Ready`'s message): the endpoint moves on waking if it is still taken then.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use kaas_api::backup::{EtcdOperation, EtcdOperationStatus, PHASE_FAILED};
use socket2::{Domain, Socket, Type};

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

/// A port of a hibernated control plane the runtime cannot hold (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotHeld {
    /// What the port is for: `etcd`, `etcd peer`, `API server`.
    pub what: &'static str,
    pub port: u16,
    /// Why the bind failed.
    pub error: String,
}

impl std::fmt::Display for NotHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} port {} ({})", self.what, self.port, self.error)
    }
}

/// What putting a control plane to rest did.
#[derive(Debug, Default)]
pub struct Rest {
    /// The processes stopped: component, pid, whether it had to be killed.
    pub stopped: Vec<(processes::Component, i32, bool)>,
    /// The ports not held (retried at the next pass).
    pub not_held: Vec<NotHeld>,
}

/// Stops every process of the control plane (graceful: SIGTERM, SIGKILL only after the grace
/// period), keeps every file, and reserves its ports (retrying those not held yet).
pub async fn stop(layout: &Layout) -> Rest {
    let stopped = processes::stop_control_plane(layout).await;
    let not_held = match Ports::load(layout) {
        Some(p) => reserve(layout, p),
        None => Vec::new(),
    };
    Rest { stopped, not_held }
}

/// The ports of one control plane and the sockets holding them (by port; some may be missing).
struct Hold {
    ports: Ports,
    sockets: BTreeMap<u16, Socket>,
}

impl Hold {
    fn complete(&self) -> bool {
        named(self.ports)
            .iter()
            .all(|(_, p)| self.sockets.contains_key(p))
    }
}

/// The holds per control plane (state directory).
fn reserved() -> &'static Mutex<HashMap<PathBuf, Hold>> {
    static RESERVED: OnceLock<Mutex<HashMap<PathBuf, Hold>>> = OnceLock::new();
    RESERVED.get_or_init(Default::default)
}

/// The ports of a control plane with what they are for.
fn named(p: Ports) -> [(&'static str, u16); 3] {
    [
        ("etcd", p.etcd),
        ("etcd peer", p.etcd_peer),
        ("API server", p.apiserver),
    ]
}

/// A TCP socket bound to `127.0.0.1:port` that never listens: connections are refused, and no
/// other socket can bind the port.
///
/// The bind asks for `SO_REUSEADDR`: without it, connections of the stopped process still in
/// TIME_WAIT (every one the server closed first, a watch for instance) make it fail for a minute.
/// The option is cleared right after the bind: a bound socket that is not listening and keeps it
/// lets every other socket asking for it (Go's and Rust's listeners do) bind and even listen on
/// the same port. A probe asking for `SO_REUSEADDR` then proves the port is taken for everyone.
fn bind_only(port: u16) -> std::io::Result<Socket> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr)?;
    socket.set_reuse_address(false)?;
    let probe = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    if probe.bind(&addr).is_ok() {
        return Err(std::io::Error::other(
            "bound, but other sockets can still bind it",
        ));
    }
    Ok(socket)
}

/// Holds the control plane's ports until [`release`]; ports already held are kept, the others
/// bound now. Returns those it cannot hold (logged; [`is_reserved`] is false until every port is
/// held, and the next call tries them again).
pub fn reserve(layout: &Layout, ports: Ports) -> Vec<NotHeld> {
    let mut map = reserved().lock().unwrap_or_else(|e| e.into_inner());
    let mut held = map
        .remove(&layout.dir)
        .map(|h| h.sockets)
        .unwrap_or_default();
    held.retain(|port, _| named(ports).iter().any(|(_, p)| p == port));
    let mut not_held = Vec::new();
    for (what, port) in named(ports) {
        if held.contains_key(&port) {
            continue;
        }
        match bind_only(port) {
            Ok(socket) => {
                held.insert(port, socket);
            }
            Err(e) => {
                tracing::warn!(dir = %layout.dir.display(), what, port, error = %e, "cannot hold a port of the hibernated control plane; retried at the next pass (the endpoint moves on waking if it is still taken then)");
                not_held.push(NotHeld {
                    what,
                    port,
                    error: e.to_string(),
                });
            }
        }
    }
    map.insert(
        layout.dir.clone(),
        Hold {
            ports,
            sockets: held,
        },
    );
    not_held
}

/// Gives the reserved ports back (before the control plane starts, or when it is removed).
pub fn release(layout: &Layout) {
    reserved()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&layout.dir);
}

/// Whether the runtime holds every port of this control plane.
pub fn is_reserved(layout: &Layout) -> bool {
    reserved()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&layout.dir)
        .is_some_and(Hold::complete)
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
        assert_eq!(reserve(&layout, p), Vec::new());
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

    /// A port whose server closed a connection first: the connection stays in TIME_WAIT.
    fn port_in_time_wait() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        drop(server_side);
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(client);
        drop(listener);
        port
    }

    #[test]
    fn a_port_with_a_connection_in_time_wait_is_held_for_everyone() {
        let port = port_in_time_wait();
        // What failed before: a bind without SO_REUSEADDR.
        let plain = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(
            plain
                .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
                .is_err(),
            "the port {port} has a connection in TIME_WAIT"
        );
        drop(plain);
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "tw");
        let p = Ports {
            etcd: free_port().unwrap(),
            etcd_peer: free_port().unwrap(),
            apiserver: port,
        };
        assert_eq!(reserve(&layout, p), Vec::new());
        assert!(is_reserved(&layout));
        // Neither a listener asking for SO_REUSEADDR (std's, Go's) nor one without takes it.
        assert!(!port_is_free(port));
        assert!(bind_only(port).is_err());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        release(&layout);
        assert!(port_is_free(port));
    }

    #[test]
    fn a_taken_port_is_named_and_tried_again() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "taken");
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = Ports {
            etcd: free_port().unwrap(),
            etcd_peer: free_port().unwrap(),
            apiserver: other.local_addr().unwrap().port(),
        };
        let not_held = reserve(&layout, p);
        assert_eq!(not_held.len(), 1, "{not_held:?}");
        assert_eq!(
            (not_held[0].what, not_held[0].port),
            ("API server", p.apiserver)
        );
        let text = not_held[0].to_string();
        assert!(
            text.starts_with(&format!("the API server port {} (", p.apiserver)),
            "{text}"
        );
        assert!(!is_reserved(&layout), "not every port is held");
        // The ports it has are held meanwhile.
        assert!(!port_is_free(p.etcd) && !port_is_free(p.etcd_peer));
        // The next pass takes the port once the other program gave it back.
        drop(other);
        assert_eq!(reserve(&layout, p), Vec::new());
        assert!(is_reserved(&layout));
        assert!(!port_is_free(p.apiserver));
        release(&layout);
        assert!(port_is_free(p.etcd) && port_is_free(p.apiserver));
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
