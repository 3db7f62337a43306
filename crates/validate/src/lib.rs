//! Validation of SCS-API objects, in two layers:
//!
//! 1. [`schema::admit`] — what the API server enforces at admission (OpenAPI schema + CEL), run
//!    client-side from the CRD kaas installs, so `kaas validate` and the API server agree.
//! 2. [`offering::validate`] — a `Cluster` against its `Provider` offering (versions, flavors,
//!    zones, extensions, limits, upgrade rules, and [`network`] ranges). The operator calls the
//!    same function.
//!
//! Both return every error with its field path. [`admission::admit`] runs them in order for a
//! `Cluster` being written (schema, the stored cluster's status, the provider's choice, the
//! offering): `kaas validate`, the REST API and GitSource call it; the operator uses its provider
//! choice, [`admission::choose`].

pub mod admission;
pub mod autoscaling;
pub mod error;
pub mod network;
pub mod offering;
pub mod schema;

pub use error::{ErrorKind, FieldError, FieldErrors};
pub use offering::{Resolved, validate};
