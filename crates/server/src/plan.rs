//! `POST /api/v1/namespaces/{namespace}/clusters/{name}/plan`: what a proposed change to a stored
//! cluster will do ([`kaas_render::plan`]), read with the caller's own credentials: the stored
//! cluster (its status says what it runs) and the Provider. Nothing is written. A cluster the
//! caller may not read answers 403 or 404 as `GET` of it does; a refused change is a plan with
//! `refused: true` and its field errors.

use axum::Json;
use axum::extract::Path;
use k8s_openapi::jiff::Timestamp;
use kaas_api::{Cluster, Provider};
use kaas_render::plan::Plan;
use kube::Api;
use serde_json::Value;

use crate::Caller;
use crate::api::JsonBody;
use crate::error::{ApiError, ApiResult, FieldProblem};

fn mismatch(path: &str, message: String) -> ApiError {
    ApiError::invalid(
        "the cluster is invalid: 1 problem(s)",
        vec![FieldProblem {
            path: path.into(),
            message,
        }],
    )
}

/// The proposed cluster of the body, its name and namespace those of the URL.
fn proposed(ns: &str, name: &str, mut body: Value) -> ApiResult<Cluster> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object (a Cluster)"))?;
    obj.remove("status");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for (key, want) in [("namespace", ns), ("name", name)] {
        match meta.get(key).and_then(Value::as_str) {
            Some(v) if v != want => {
                return Err(mismatch(
                    &format!("metadata.{key}"),
                    format!("{v:?} differs from the {key} of the URL {want:?}"),
                ));
            }
            _ => {
                meta.insert(key.into(), Value::from(want));
            }
        }
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a Cluster: {e}")))
}

/// The handler of `planCluster`.
pub(crate) async fn plan_cluster(
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Plan>> {
    let proposed = proposed(&ns, &name, body)?;
    let current = Api::<Cluster>::namespaced(caller.client.clone(), &ns)
        .get(&name)
        .await?;
    let provider_name = current
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.name.clone())
        .or_else(|| proposed.spec.provider.as_ref().and_then(|p| p.name.clone()))
        .ok_or_else(|| {
            mismatch(
                "spec.provider.name",
                "the cluster names no provider to plan against".into(),
            )
        })?;
    let provider: Provider = Api::<Provider>::all(caller.client)
        .get(&provider_name)
        .await?;
    // Validation and rendering are CPU-bound: off the async workers.
    let plan = tokio::task::spawn_blocking(move || {
        kaas_render::plan::plan(&current, &proposed, &provider, Timestamp::now())
    })
    .await
    .map_err(|_| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "planning failed unexpectedly",
        )
    })?;
    Ok(Json(plan))
}
