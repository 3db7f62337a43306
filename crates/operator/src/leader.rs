//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas never both write.
//! Optimistic concurrency (resourceVersion) decides races; a leader that cannot renew within the
//! lease duration stops leading (the caller exits, and its Deployment restarts it).
//!
//! Stepping down is not enough on its own: a leader stopped for longer than its lease (SIGSTOP, a
//! long stall) resumes with its requeues due and its watches full, and its reconciles would write
//! before its renewal loop notices the loss. So every write of the operator — to the management
//! cluster and to workload clusters — passes a [`Fence`] in its clients ([`FenceLayer`]): allowed
//! only until the lease it last renewed would expire (on the monotonic clock, which runs on while
//! the process is stopped), minus a margin for the other replicas' second-precision comparison and
//! clock skew, checked when the request is made and again before each step of sending it. The
//! Lease's own writes are exempt — its compare-and-swap is the election. Not covered: a VM paused
//! by its hypervisor, whose monotonic clock may stand still (its fence stays open until the next
//! renewal fails), and a write already sent that the network delays past the margin.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{info, warn};

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease (one per shard).
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// Opened while this replica surely holds the lease; its client's writes pass it.
    pub fence: Fence,
}

/// A write fence shared by the election and the client (see the module's documentation).
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: closed (not leading).
    until: Arc<Mutex<Option<Instant>>>,
}

/// How much earlier than the lease's expiry the fence closes: the other replicas compare in whole
/// seconds, and their clocks may differ from ours.
const FENCE_MARGIN: Duration = Duration::from_secs(2);

/// A write refused by the [`Fence`].
#[derive(Debug, thiserror::Error)]
#[error("not writing: this replica does not surely hold the leader lease (stopped, or lost it)")]
pub struct NotLeading;

impl Fence {
    /// Whether a write may be sent now.
    pub fn allows_writes(&self) -> bool {
        self.until
            .lock()
            .map(|u| u.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    /// A lease renewed with a request sent at `sent`, valid for `duration`.
    fn renewed(&self, sent: Instant, duration: Duration) {
        if let Ok(mut u) = self.until.lock() {
            *u = Some(sent + duration.saturating_sub(FENCE_MARGIN));
        }
    }

    /// Leadership lost.
    pub fn close(&self) {
        if let Ok(mut u) = self.until.lock() {
            *u = None;
        }
    }

    /// The client layer that holds writes to this fence.
    pub fn layer(&self) -> FenceLayer {
        FenceLayer(self.clone())
    }
}

/// Refuses the writes (every method but GET, HEAD and OPTIONS) of a client while its [`Fence`] is
/// closed, the Lease's own excepted.
#[derive(Clone, Debug)]
pub struct FenceLayer(Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// A client service behind a [`Fence`].
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a request must pass the fence.
fn fenced(method: &http::Method, path: &str) -> bool {
    let read = matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    !read && !path.starts_with("/apis/coordination.k8s.io/")
}

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let write = fenced(req.method(), req.uri().path());
        if write && !self.fence.allows_writes() {
            return Box::pin(std::future::ready(Err(Box::new(NotLeading) as BoxError)));
        }
        let f = self.inner.call(req);
        if !write {
            return Box::pin(async move { f.await.map_err(Into::into) });
        }
        // Checked again before every poll: a write held up (connecting, or the process stopped
        // between the check and the send) is dropped once the fence has closed, not sent late.
        let fence = self.fence.clone();
        Box::pin(async move {
            let mut f = std::pin::pin!(f);
            std::future::poll_fn(move |cx| {
                if !fence.allows_writes() {
                    return Poll::Ready(Err(Box::new(NotLeading) as BoxError));
                }
                f.as_mut().poll(cx).map_err(Into::into)
            })
            .await
        })
    }
}

/// Holds the lease once acquired.
pub struct Leader {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renew)) = spec.renew_time else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renew.as_second() + secs < now.as_second()
}

impl Leader {
    /// Tries once; `Ok(true)` when this replica now holds the lease (and the fence is open until
    /// it would expire).
    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let sent = Instant::now();
        let held = self.try_acquire_once().await;
        match held {
            Ok(true) => self.cfg.fence.renewed(sent, self.cfg.duration),
            Ok(false) => self.cfg.fence.close(),
            Err(_) => {}
        }
        held
    }

    async fn try_acquire_once(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let mine = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.duration.as_secs() as i32),
            acquire_time: acquire.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        match self.api.get_opt(&self.cfg.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(mine(0, None)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let held_by_me = spec.holder_identity.as_deref() == Some(&self.cfg.identity);
                if !held_by_me && !expired(&spec, now) {
                    return Ok(false);
                }
                let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
                lease.spec = Some(mine(
                    transitions,
                    if held_by_me { spec.acquire_time } else { None },
                ));
                // resourceVersion from the read makes this a compare-and-swap.
                match self
                    .api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica leads, then keeps renewing in the background. The returned future
    /// resolves when leadership is lost.
    pub async fn acquire(
        client: Client,
        cfg: LeaseConfig,
    ) -> impl std::future::Future<Output = ()> {
        let leader = Leader {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        };
        let retry = leader.cfg.duration / 3;
        loop {
            match leader.try_acquire().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election: cannot read or write the lease"),
            }
            tokio::time::sleep(retry).await;
        }
        info!(lease = %leader.cfg.name, identity = %leader.cfg.identity, "leading");
        async move {
            // When the last successful renewal was *sent* (what the lease's renewTime says).
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(retry).await;
                let sent = tokio::time::Instant::now();
                // A renewal that hangs must not hold up stepping down.
                match tokio::time::timeout(retry, leader.try_acquire()).await {
                    Ok(Ok(true)) => last_ok = sent,
                    Ok(Ok(false)) => {
                        warn!("leader election: another replica took the lease");
                        return;
                    }
                    Ok(Err(e)) => warn!(error = %e, "leader election: renewal failed"),
                    Err(_) => warn!(timeout = ?retry, "leader election: renewal timed out"),
                }
                // The fence closes `FENCE_MARGIN` before the lease expires; a leader that cannot
                // write steps down then, instead of holding the lease it cannot use.
                if last_ok.elapsed() > leader.cfg.duration.saturating_sub(FENCE_MARGIN) {
                    warn!("leader election: could not renew within the lease duration");
                    leader.cfg.fence.close();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(t(100))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&spec, t(110)));
        assert!(!expired(&spec, t(115)));
        assert!(expired(&spec, t(116)));
        assert!(expired(&LeaseSpec::default(), t(0)));
    }

    #[test]
    fn the_fence_holds_writes_but_not_reads_or_the_lease() {
        let f = Fence::default();
        assert!(!f.allows_writes(), "closed until the lease is held");
        f.renewed(Instant::now(), Duration::from_secs(15));
        assert!(f.allows_writes());
        // Renewed long ago (a process stopped past its lease): closed.
        f.renewed(
            Instant::now() - Duration::from_secs(14),
            Duration::from_secs(15),
        );
        assert!(
            !f.allows_writes(),
            "the margin closes it before the lease expires"
        );
        f.renewed(Instant::now(), Duration::from_secs(15));
        f.close();
        assert!(!f.allows_writes());
        let p = "/apis/scs.community/v1alpha1/namespaces/t/clusters/a";
        assert!(fenced(&http::Method::PATCH, p));
        assert!(fenced(&http::Method::POST, "/api/v1/namespaces/t/events"));
        assert!(fenced(&http::Method::DELETE, p));
        assert!(!fenced(&http::Method::GET, p));
        assert!(!fenced(
            &http::Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kaas-system/leases/kaas-operator"
        ));
    }
}
