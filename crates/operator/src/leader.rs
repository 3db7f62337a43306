//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas never both write.
//! Optimistic concurrency (resourceVersion) decides races; a leader that cannot renew within the
//! lease duration stops leading (the caller exits, and its Deployment restarts it).

use std::time::Duration;

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
    /// Tries once; `Ok(true)` when this replica now holds the lease.
    async fn try_acquire(&self) -> Result<bool, kube::Error> {
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
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(retry).await;
                match leader.try_acquire().await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => {
                        warn!("leader election: another replica took the lease");
                        return;
                    }
                    Err(e) => warn!(error = %e, "leader election: renewal failed"),
                }
                if last_ok.elapsed() > leader.cfg.duration {
                    warn!("leader election: could not renew within the lease duration");
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
}
