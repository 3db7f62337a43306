//! kaas-hosted: the **local-process runtime** of hosted control planes.
//!
//! The kaas operator's hosted backend writes one `HostedControlPlane` (crates/api, `hosted.rs`) per
//! SCS Cluster; this crate realises those whose `spec.runtime` is `local` on the machine it runs
//! on: per object its own PKI, etcd, kube-apiserver, kube-controller-manager and kube-scheduler of
//! the requested Kubernetes version (the pinned builds of `plane/build.sh`), and kwok simulating
//! the worker nodes of every pool. It writes the admin kubeconfig Secret and the object's status.
//!
//! The split keeps a future *pods runtime* (control planes as Deployments in a seed cluster) to
//! replacing the process part only:
//!
//! * [`plan`]: pure: what runs vs. what the object asks for → which processes to (re)start, which
//!   nodes to create, drain or roll to a new version.
//! * [`nodes`]: pure builders of the simulated `Node` objects, and applying a node plan.
//! * [`status`]: pure: what was observed → the object's status.
//! * [`processes`]: supervision of local processes that outlive the runtime (pid records,
//!   adoption by `/proc/<pid>/cmdline`, [`stop_all`]).
//! * [`authn`]: pure: `spec.oidc` → the API server's structured authentication configuration.
//! * [`etcd_ops`]: etcd snapshots and restores the operator asks for (`spec.etcdOperation`).
//! * [`hibernation`]: `spec.hibernated`: everything stopped, data, certificates and ports kept.
//! * [`pki`], [`state`]: certificates, ports and files of one control plane on disk.
//! * [`controller`]: the kube-rs controller tying them together ([`run`]).

pub mod authn;
pub mod controller;
pub mod etcd_ops;
pub mod hibernation;
pub mod nodes;
pub mod pki;
pub mod plan;
pub mod processes;
pub mod state;
pub mod status;

pub use controller::{FIELD_MANAGER, RuntimeConfig, run};
pub use kaas_harness::process::Mode;
pub use processes::{Component, StopAllOnDrop, Stopped, stop_all};
pub use state::Layout;
