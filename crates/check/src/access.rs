//! Preflight with SelfSubjectAccessReview: a check whose rights are missing ends in ABORT naming the
//! missing verb and resource, never in FAIL.

use std::collections::HashMap;
use std::fmt;

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::Mutex;

/// A permission a check needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Need {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    /// `None`: cluster-wide (or all namespaces).
    pub namespace: Option<String>,
}

impl Need {
    pub fn cluster(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            group,
            resource,
            subresource: None,
            namespace: None,
        }
    }

    pub fn namespaced(
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
        namespace: &str,
    ) -> Self {
        Self {
            namespace: Some(namespace.into()),
            ..Self::cluster(verb, group, resource)
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(s) = self.subresource {
            write!(f, "/{s}")?;
        }
        if !self.group.is_empty() {
            write!(f, " ({})", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " (cluster-wide)"),
        }
    }
}

#[derive(Clone, Debug)]
enum Decision {
    Allowed,
    Denied(String),
    /// The review itself failed; the check runs and maps API errors to ABORT.
    Unknown,
}

/// Cached access reviews for one identity.
pub(crate) struct Access {
    client: Client,
    cache: Mutex<HashMap<Need, Decision>>,
}

impl Access {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn review(&self, need: &Need) -> Decision {
        if let Some(d) = self.cache.lock().await.get(need) {
            return d.clone();
        }
        let ssar = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(need.verb.into()),
                    group: Some(need.group.into()),
                    resource: Some(need.resource.into()),
                    subresource: need.subresource.map(Into::into),
                    namespace: need.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let d = match api.create(&PostParams::default(), &ssar).await {
            Ok(r) => match r.status {
                Some(s) if s.allowed => Decision::Allowed,
                Some(s) => Decision::Denied(
                    s.reason
                        .filter(|r| !r.is_empty())
                        .or(s.evaluation_error)
                        .unwrap_or_default(),
                ),
                None => Decision::Unknown,
            },
            Err(e) => {
                tracing::debug!("SelfSubjectAccessReview for {need} failed: {e}");
                Decision::Unknown
            }
        };
        self.cache.lock().await.insert(need.clone(), d.clone());
        d
    }

    /// The needs that are denied, as "list nodes (cluster-wide)" strings.
    pub async fn missing(&self, needs: &[Need]) -> Vec<String> {
        let decisions = join_all(needs.iter().map(|n| self.review(n))).await;
        needs
            .iter()
            .zip(decisions)
            .filter_map(|(n, d)| match d {
                Decision::Denied(r) if !r.is_empty() => Some(format!("{n} [{r}]")),
                Decision::Denied(_) => Some(n.to_string()),
                Decision::Allowed | Decision::Unknown => None,
            })
            .collect()
    }
}

/// Describes an API error; 403 answers name what was forbidden.
pub(crate) fn describe_error(e: &kube::Error, what: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!("forbidden to {what}: {}", s.message)
        }
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        other => format!("{what}: {other}"),
    }
}
