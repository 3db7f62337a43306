//! The `GitSource` controller (built-in GitOps) lives in the `kaas-gitsource` crate
//! ([`kaas_gitsource`]); the operator starts it with its own client and event recorder.

use std::sync::Arc;

pub use kaas_gitsource::{ALLOW_FILE_ENV, CACHE_ENV, ENABLE_ENV, enabled};

use crate::Context;

/// Runs the GitSource controller until `shutdown` completes (when `enabled` is false, just waits).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    enabled: bool,
) {
    kaas_gitsource::run(
        ctx.client.clone(),
        kube::runtime::events::Recorder::new(ctx.client.clone(), ctx.recorder.reporter().clone()),
        shutdown,
        enabled,
    )
    .await;
}
