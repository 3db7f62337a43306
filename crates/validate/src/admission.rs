//! The one admission sequence of a `Cluster`, used by every writer — `kaas validate`, the REST
//! API, GitSource — and, for its provider choice, by the operator:
//!
//! 1. schema + CEL ([`crate::schema::admit`]), transition rules against the stored cluster;
//! 2. the stored cluster's status, so a version change is judged against what runs;
//! 3. the provider: the one named by `spec.provider.name`, or without a name the only provider
//!    of the requested `providerType` ([`choose`], the operator's choice);
//! 4. the offering ([`crate::offering::validate`]).
//!
//! Pure: the caller reads the stored cluster and the providers it may see.

use std::borrow::Borrow;
use std::fmt;
use std::sync::OnceLock;

use kaas_api::{Cluster, Provider};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::error::{ErrorKind, FieldError, FieldErrors};
use crate::offering::{self, Resolved};
use crate::schema;

/// The providers visible to the caller.
#[derive(Clone, Copy, Debug)]
pub enum Providers<'a> {
    /// Every provider there is, as far as the caller can tell: a cluster whose provider cannot be
    /// chosen among them is refused (`spec.provider.name`/`providerType` errors).
    All(&'a [Provider]),
    /// Providers the caller knows, which need not be all of them (GitSource: a Cluster may be
    /// committed before its Provider exists): when the cluster's provider cannot be chosen among
    /// them only the schema is judged, and the operator reports the rest in the status.
    Known(&'a [Provider]),
    /// The caller cannot read providers (the REST API acting with a user's credentials that lack
    /// the permission, `kaas validate` without `--provider`): only the schema is judged, and the
    /// operator judges the offering later.
    Unreadable,
}

/// A cluster that passed every stage that ran.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The cluster, as sent (its status as in the object, not the stored one).
    pub cluster: Cluster,
    /// The provider it was judged against; `None` when the offering was not judged.
    pub provider: Option<Provider>,
    /// The cluster resolved against that provider (defaults, warnings).
    pub resolved: Option<Resolved>,
}

/// The stage that refused a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Schema and CEL rules (or the object is no `Cluster`).
    Schema,
    /// No provider could be chosen.
    Provider,
    /// The provider's offering.
    Offering,
}

/// Why a cluster is not admitted: every error of the stage that refused it, with field paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The stage.
    pub stage: Stage,
    /// The provider judged against ([`Stage::Offering`]).
    pub provider: Option<String>,
    /// The errors.
    pub errors: FieldErrors,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.errors.fmt(f)
    }
}

impl std::error::Error for Rejected {}

impl From<Rejected> for FieldErrors {
    fn from(r: Rejected) -> Self {
        r.errors
    }
}

/// Why no provider can be chosen for a cluster. `Display` is the operator's message (what users
/// see in the status), [`NoProvider::field_error`] the same as a field error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoProvider {
    /// `spec.provider.name` names a provider that does not exist.
    Missing {
        /// The name.
        name: String,
        /// The providers there are, by name.
        available: Vec<String>,
    },
    /// No name, and no provider of the requested `providerType`.
    NoneOfType {
        /// The type.
        provider_type: String,
        /// The types there are.
        available: Vec<String>,
    },
    /// No name, no type, and no provider at all.
    NoneAtAll,
    /// No name, and more than one provider (of the type) could be meant: their names.
    Ambiguous(Vec<String>),
}

impl NoProvider {
    /// As a field error (path, message, what would be valid).
    pub fn field_error(&self) -> FieldError {
        match self {
            NoProvider::Missing { name, available } => FieldError::new(
                ErrorKind::NotSupported,
                "spec.provider.name",
                format!("provider {name:?} does not exist"),
            )
            .allowed(available.clone()),
            NoProvider::NoneOfType {
                provider_type,
                available,
            } => FieldError::new(
                ErrorKind::NotSupported,
                "spec.provider.providerType",
                format!("no provider of type {provider_type:?} exists"),
            )
            .allowed(available.clone()),
            NoProvider::NoneAtAll => FieldError::new(
                ErrorKind::Required,
                "spec.provider.name",
                "no provider exists",
            ),
            NoProvider::Ambiguous(names) => FieldError::new(
                ErrorKind::Required,
                "spec.provider.name",
                format!(
                    "required, {} providers could be meant ({})",
                    names.len(),
                    names.join(", ")
                ),
            ),
        }
    }
}

impl fmt::Display for NoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoProvider::Missing { name, .. } => write!(
                f,
                "spec.provider.name: provider {name:?} does not exist (kubectl get providers lists the offerings)"
            ),
            other => {
                let e = other.field_error();
                write!(f, "{}: {}", e.path, e.message)
            }
        }
    }
}

impl std::error::Error for NoProvider {}

fn name_of(p: &Provider) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

/// Chooses the provider of a cluster among `providers` (pure): the one `name`d; without a name,
/// the only provider of `provider_type` (or the only provider at all, without a type).
pub fn choose<'a, P: Borrow<Provider>>(
    providers: &'a [P],
    name: Option<&str>,
    provider_type: Option<&str>,
) -> Result<&'a P, NoProvider> {
    let names = |of: &dyn Fn(&Provider) -> bool| {
        let mut v: Vec<String> = providers
            .iter()
            .map(Borrow::borrow)
            .filter(|p| of(p))
            .map(|p| name_of(p).to_string())
            .collect();
        v.sort();
        v
    };
    if let Some(name) = name {
        return providers
            .iter()
            .find(|p| name_of((*p).borrow()) == name)
            .ok_or_else(|| NoProvider::Missing {
                name: name.to_string(),
                available: names(&|_| true),
            });
    }
    let of_type = |p: &Provider| provider_type.is_none_or(|t| p.spec.provider_type == t);
    let mut candidates = providers.iter().filter(|p| of_type((*p).borrow()));
    match (candidates.next(), candidates.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(match provider_type {
            Some(t) => {
                let mut available: Vec<String> = providers
                    .iter()
                    .map(|p| p.borrow().spec.provider_type.clone())
                    .collect();
                available.sort();
                available.dedup();
                NoProvider::NoneOfType {
                    provider_type: t.to_string(),
                    available,
                }
            }
            None => NoProvider::NoneAtAll,
        }),
        (Some(_), Some(_)) => Err(NoProvider::Ambiguous(names(&of_type))),
    }
}

/// [`choose`] for `cluster`'s `spec.provider`.
pub fn choose_for<'a, P: Borrow<Provider>>(
    providers: &'a [P],
    cluster: &Cluster,
) -> Result<&'a P, NoProvider> {
    let pref = cluster.spec.provider.as_ref();
    choose(
        providers,
        pref.and_then(|p| p.name.as_deref()),
        pref.and_then(|p| p.provider_type.as_deref()),
    )
}

/// The `openAPIV3Schema` of the installed `Cluster` CRD, as JSON.
pub fn cluster_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schema::crd_schema(&Cluster::crd()))
}

/// Admits `object` (a whole `Cluster` as JSON) written over `old` (the stored cluster, if any),
/// judged with the providers the caller can see. Every error of the first stage that fails.
pub fn admit(
    object: &Value,
    old: Option<&Cluster>,
    providers: Providers<'_>,
) -> Result<Admitted, Rejected> {
    let schema_failed = |errors: FieldErrors| Rejected {
        stage: Stage::Schema,
        provider: None,
        errors,
    };
    let old_value = old.and_then(|o| serde_json::to_value(o).ok());
    let errors = schema::admit(cluster_schema(), object, old_value.as_ref());
    if !errors.is_empty() {
        return Err(schema_failed(errors));
    }
    let mut cluster: Cluster = serde_json::from_value(object.clone()).map_err(|e| {
        let mut errors = FieldErrors::default();
        errors.push(FieldError::new(ErrorKind::Invalid, "", e.to_string()));
        schema_failed(errors)
    })?;
    let (list, must_choose) = match providers {
        Providers::All(list) => (list, true),
        Providers::Known(list) => (list, false),
        Providers::Unreadable => (&[][..], false),
    };
    let provider = match choose_for(list, &cluster) {
        Ok(p) => p.clone(),
        Err(no) if must_choose => {
            let mut errors = FieldErrors::default();
            errors.push(no.field_error());
            return Err(Rejected {
                stage: Stage::Provider,
                provider: None,
                errors,
            });
        }
        Err(_) => {
            return Ok(Admitted {
                cluster,
                provider: None,
                resolved: None,
            });
        }
    };
    // The version check compares with what the cluster runs now.
    let sent = std::mem::replace(&mut cluster.status, old.and_then(|o| o.status.clone()));
    let judged = offering::validate(&cluster, &provider);
    cluster.status = sent;
    match judged {
        Ok(resolved) => Ok(Admitted {
            cluster,
            provider: Some(provider),
            resolved: Some(resolved),
        }),
        Err(errors) => Err(Rejected {
            stage: Stage::Offering,
            provider: provider.metadata.name.clone(),
            errors,
        }),
    }
}

#[cfg(test)]
mod tests {
    use kaas_api::ClusterStatus;
    use serde_json::json;

    use super::*;

    const OPENSTACK: &str = include_str!("../../../examples/provider-openstack.yaml");

    fn provider(name: &str, provider_type: &str) -> Provider {
        let mut p: Provider = serde_yaml::from_str(OPENSTACK).unwrap();
        p.metadata.name = Some(name.into());
        p.spec.provider_type = provider_type.into();
        p
    }

    fn object(provider: Value, version: &str) -> Value {
        json!({
            "apiVersion": "scs.community/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t"},
            "spec": {
                "provider": provider,
                "kubernetes": {"version": version},
                "workers": [{"name": "w", "flavor": "SCS-2V-4", "count": 1}],
            },
        })
    }

    fn rejected(r: Result<Admitted, Rejected>) -> Rejected {
        r.expect_err("refused")
    }

    fn chosen(r: Result<Admitted, Rejected>) -> String {
        let a = r.expect("admitted");
        assert_eq!(
            a.resolved.as_ref().map(|r| r.provider.as_str()),
            a.provider.as_ref().and_then(|p| p.metadata.name.as_deref())
        );
        a.resolved.expect("offering judged").provider
    }

    #[test]
    fn a_named_provider_is_that_one_or_does_not_exist() {
        let all = [provider("fra1", "openstack"), provider("fra2", "openstack")];
        let named = |n: &str| object(json!({"name": n}), "1.35.x");
        assert_eq!(
            chosen(admit(&named("fra2"), None, Providers::All(&all))),
            "fra2"
        );
        let r = rejected(admit(&named("nope"), None, Providers::All(&all)));
        assert_eq!(r.stage, Stage::Provider);
        assert_eq!(
            r.to_string(),
            r#"spec.provider.name: provider "nope" does not exist (offered: fra1, fra2)"#
        );
        // The operator's message, as users see it in the status.
        assert_eq!(
            choose(&all, Some("nope"), None).unwrap_err().to_string(),
            r#"spec.provider.name: provider "nope" does not exist (kubectl get providers lists the offerings)"#
        );
    }

    #[test]
    fn without_a_name_the_only_provider_of_the_type_is_chosen() {
        let one = [provider("fra1", "openstack")];
        let unnamed = object(json!({}), "1.35.x");
        assert_eq!(chosen(admit(&unnamed, None, Providers::All(&one))), "fra1");

        let two = [provider("fra1", "openstack"), provider("dev", "inmemory")];
        let r = rejected(admit(&unnamed, None, Providers::All(&two)));
        assert_eq!(r.stage, Stage::Provider);
        assert_eq!(
            r.to_string(),
            "spec.provider.name: required, 2 providers could be meant (dev, fra1)"
        );
        assert_eq!(
            choose(&two, None, None).unwrap_err().to_string(),
            r.to_string()
        );
        let typed = object(json!({"providerType": "openstack"}), "1.35.x");
        assert_eq!(chosen(admit(&typed, None, Providers::All(&two))), "fra1");
        let other = object(json!({"providerType": "gardener"}), "1.35.x");
        let r = rejected(admit(&other, None, Providers::All(&two)));
        assert_eq!(
            r.to_string(),
            r#"spec.provider.providerType: no provider of type "gardener" exists (offered: inmemory, openstack)"#
        );
        assert_eq!(
            choose(&two, None, Some("gardener"))
                .unwrap_err()
                .to_string(),
            r#"spec.provider.providerType: no provider of type "gardener" exists"#
        );
        let r = rejected(admit(&unnamed, None, Providers::All(&[])));
        assert_eq!(r.to_string(), "spec.provider.name: no provider exists");
    }

    #[test]
    fn unreadable_or_unknown_providers_leave_the_offering_to_the_operator() {
        // An offering error that is not judged.
        let mut bogus = object(json!({"name": "nope"}), "1.35.x");
        bogus["spec"]["workers"][0]["flavor"] = json!("m9.huge");
        let a = admit(&bogus, None, Providers::Unreadable).unwrap();
        assert!(a.provider.is_none() && a.resolved.is_none());
        assert_eq!(a.cluster.metadata.name.as_deref(), Some("c"));
        let known = [provider("fra1", "openstack")];
        let a = admit(&bogus, None, Providers::Known(&known)).unwrap();
        assert!(a.provider.is_none());
        // Known and chosen: judged.
        bogus["spec"]["provider"]["name"] = json!("fra1");
        let r = rejected(admit(&bogus, None, Providers::Known(&known)));
        assert_eq!(r.stage, Stage::Offering);
        assert_eq!(r.provider.as_deref(), Some("fra1"));
        assert_eq!(r.errors.paths(), ["spec.workers[0].flavor"]);
        // The schema is always judged.
        bogus["spec"]["bogus"] = json!(1);
        let r = rejected(admit(&bogus, None, Providers::Unreadable));
        assert_eq!(r.stage, Stage::Schema);
        assert_eq!(r.errors.paths(), ["spec.bogus"]);
    }

    #[test]
    fn version_changes_are_judged_against_the_stored_clusters_status() {
        let all = [provider("fra1", "openstack")];
        let new = object(json!({"name": "fra1"}), "1.36.x");
        // New: any offered version.
        let a = admit(&new, None, Providers::All(&all)).unwrap();
        assert!(a.cluster.status.is_none());
        // Over a cluster that runs v1.34.4: 1.36 skips a minor.
        let mut old: Cluster =
            serde_json::from_value(object(json!({"name": "fra1"}), "1.34.4")).unwrap();
        old.status = Some(ClusterStatus {
            target_version: Some("v1.34.4".into()),
            ..Default::default()
        });
        let r = rejected(admit(&new, Some(&old), Providers::All(&all)));
        assert_eq!(r.stage, Stage::Offering);
        assert_eq!(r.errors.paths(), ["spec.kubernetes.version"]);
        assert!(r.to_string().contains("skips a minor version"), "{r}");
        // One minor at a time is fine, and the admitted cluster keeps the status it was sent with.
        let next = object(json!({"name": "fra1"}), "1.35.x");
        let a = admit(&next, Some(&old), Providers::All(&all)).unwrap();
        assert!(a.cluster.status.is_none());
    }
}
