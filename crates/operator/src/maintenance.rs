//! Maintenance windows and the rollout decision for version changes: the pure functions live in
//! [`kaas_render::maintenance`] (`kaas plan` and the REST API's plan share them with the
//! operator).

pub use kaas_render::maintenance::*;
