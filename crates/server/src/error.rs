//! Errors of the REST API: JSON bodies with a machine-readable `code`, a message for people and,
//! for invalid input, every problem with its field path.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldProblem {
    /// JSON path of the field, e.g. `spec.workers[0].flavor`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// `Unauthorized`, `Forbidden`, `NotFound`, `Invalid`, `Conflict`, `WaitTimeout`,
    /// `WaitFailed`, `BadRequest`, `Unavailable`, or the Kubernetes reason.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// For `Invalid`: every problem found, with its field path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// For `WaitTimeout`/`WaitFailed`: the cluster as it was when the wait ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub cluster: Option<serde_json::Value>,
}

/// An error answer: HTTP status and body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error without field problems.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
                errors: Vec::new(),
                cluster: None,
            },
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401: no or an unusable credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 502: the management cluster cannot be reached or used.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "Unavailable", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 422 with every field problem.
    pub fn invalid(message: impl Into<String>, errors: Vec<FieldProblem>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
        e.body.errors = errors;
        e
    }

    /// From the validation crate's field errors.
    pub fn from_field_errors(what: &str, errs: &kaas_validate::FieldErrors) -> Self {
        Self::invalid(
            format!("{what} is invalid: {} problem(s)", errs.0.len()),
            errs.0
                .iter()
                .map(|e| {
                    let mut message = e.message.clone();
                    if !e.allowed.is_empty() {
                        message.push_str(&format!(" (offered: {})", e.allowed.join(", ")));
                    }
                    FieldProblem {
                        path: e.path.clone(),
                        message,
                    }
                })
                .collect(),
        )
    }
}

impl From<kube::Error> for ApiError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let status =
                    StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let code = match status {
                    StatusCode::UNAUTHORIZED => "Unauthorized".to_string(),
                    StatusCode::FORBIDDEN => "Forbidden".to_string(),
                    StatusCode::NOT_FOUND => "NotFound".to_string(),
                    StatusCode::CONFLICT => "Conflict".to_string(),
                    StatusCode::UNPROCESSABLE_ENTITY => "Invalid".to_string(),
                    _ if !s.reason.is_empty() => s.reason.clone(),
                    _ => "Error".to_string(),
                };
                let errors = s
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| FieldProblem {
                                path: c.field.clone(),
                                message: c.message.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ApiError {
                    status,
                    body: ErrorBody {
                        code,
                        message: s.message.clone(),
                        errors,
                        cluster: None,
                    },
                }
            }
            // Transport problems reaching the management cluster. The message of a kube
            // error never carries the caller's token.
            other => Self::new(
                StatusCode::BAD_GATEWAY,
                "Unavailable",
                format!("the management cluster could not be reached: {other}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
