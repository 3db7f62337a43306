//! What every request passes before a handler: names in the path checked as Kubernetes checks
//! them (so no `#`, `?`, `/`, CR/LF or anything else can change which object the API server is
//! asked for, or end up in a header), a deadline, a panic guard, and the error format of the part
//! a request is for (JSON under `/api`, a page under `/ui`) for answers the framework makes itself
//! (rejected query strings, forms or bodies, 405, 413) and for paths no route serves.

use std::panic::AssertUnwindSafe;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use crate::error::{ApiError, FieldProblem};

/// DNS-1123 label: at most 63 of `a-z`, `0-9` and `-`, starting and ending alphanumeric
/// (namespaces; cluster names, which also become label values of Cluster API objects).
pub fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels (cluster-scoped
/// objects such as Providers).
pub fn dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(dns1123_label)
}

/// The problem with path parameter `key` = `value`, if any.
fn name_problem(key: &str, value: &str) -> Option<FieldProblem> {
    let (path, ok, rule) = match key {
        "namespace" => (
            "metadata.namespace",
            dns1123_label(value),
            "a DNS-1123 label",
        ),
        "name" => ("metadata.name", dns1123_label(value), "a DNS-1123 label"),
        "provider" => (
            "spec.provider.name",
            dns1123_subdomain(value),
            "a DNS-1123 subdomain",
        ),
        _ => return None,
    };
    (!ok).then(|| FieldProblem {
        path: path.into(),
        message: format!(
            "{value:?} is not a valid name: must be {rule} (lower-case letters, digits and '-', starting and ending with a letter or digit, at most {} characters)",
            if key == "provider" { 253 } else { 63 }
        ),
    })
}

fn is_ui(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// What no route serves: a page under `/ui` (with a link back), the JSON error elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if is_ui(uri.path()) {
        crate::ui::error_page(
            StatusCode::NOT_FOUND,
            &format!("There is no page at {}.", uri.path()),
        )
    } else {
        ApiError::not_found("no such route").into_response()
    }
}

/// Refuses a request whose path parameters are not valid Kubernetes names, before any handler
/// (and so before any call to the API server) runs.
pub async fn names(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    {
        let problems = match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(params) => params
                .iter()
                .filter_map(|(k, v)| name_problem(k, v))
                .collect::<Vec<_>>(),
            Err(RawPathParamsRejection::InvalidUtf8InPathParam(_)) => vec![FieldProblem {
                path: "metadata.name".into(),
                message: "the path is not valid UTF-8".into(),
            }],
            // A route without parameters.
            Err(_) => Vec::new(),
        };
        if !problems.is_empty() {
            let mut e = ApiError::bad_request("invalid name in the path");
            e.body.errors = problems;
            if is_ui(parts.uri.path()) {
                let text = e
                    .body
                    .errors
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                return crate::ui::error_page(StatusCode::BAD_REQUEST, &text);
            }
            return e.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Whether the query asks to wait (`wait=` with a value).
fn waits(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("wait=").is_some_and(|v| !v.is_empty()))
    })
}

/// Every request ends: within [`crate::REQUEST_TIMEOUT`], or for a `?wait=` within the longest
/// wait plus a minute (the wait itself ends with 504 `WaitTimeout` at its own timeout). A panic
/// in a handler becomes a 500 instead of a dropped connection.
pub async fn deadline(req: Request, next: Next) -> Response {
    let limit = if waits(req.uri().query()) {
        crate::api::MAX_WAIT + std::time::Duration::from_secs(60)
    } else {
        crate::REQUEST_TIMEOUT
    };
    let ui = is_ui(req.uri().path());
    let e = match tokio::time::timeout(limit, AssertUnwindSafe(next.run(req)).catch_unwind()).await
    {
        Ok(Ok(res)) => return res,
        Ok(Err(_)) => {
            tracing::error!("a handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error",
            )
        }
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("no answer within {} s", limit.as_secs()),
        ),
    };
    if ui {
        crate::ui::error_page(e.status, &e.body.message)
    } else {
        e.into_response()
    }
}

fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::NOT_ACCEPTABLE => "NotAcceptable",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::LENGTH_REQUIRED => "LengthRequired",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::BAD_GATEWAY => "Unavailable",
        StatusCode::GATEWAY_TIMEOUT => "Timeout",
        _ => "Error",
    }
}

/// Error answers the framework makes itself (plain text, or none) get the format of their part:
/// the JSON error under `/api`, a page under `/ui`.
pub async fn error_format(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let ctype = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let api = path.starts_with("/api/");
    let ui = is_ui(&path);
    if (api && ctype.starts_with("application/json"))
        || (ui && ctype.starts_with("text/html"))
        || !(api || ui)
    {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    // Under `/ui`, a JSON error of ours shows its message, not its JSON.
    let json_message = serde_json::from_str::<crate::error::ErrorBody>(&text)
        .ok()
        .map(|b| b.message);
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string()
    } else {
        json_message.unwrap_or(text)
    };
    let mut out = if ui {
        crate::ui::error_page(status, &message)
    } else {
        ApiError::new(status, code_of(status), message).into_response()
    };
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

/// `Content-Disposition` of a download named after `name` (already a DNS-1123 label; anything
/// else is replaced, so the value can never carry quotes, parameters or line breaks).
pub fn attachment(name: &str, ext: &str) -> header::HeaderValue {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(253)
        .collect();
    header::HeaderValue::from_str(&format!("attachment; filename=\"{safe}.{ext}\""))
        .unwrap_or_else(|_| header::HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_kubernetes_checks_them() {
        for ok in ["a", "c1", "my-cluster", &"a".repeat(63)] {
            assert!(dns1123_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a#b",
            "a?b",
            "a\r\nb",
            "a/b",
            "a.b",
            "..",
            "a\0",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!dns1123_label(bad), "{bad:?}");
        }
        assert!(dns1123_subdomain("dev.example.com"));
        assert!(!dns1123_subdomain("dev..x"));
        assert!(!dns1123_subdomain("dev?"));
        assert!(name_problem("name", "x#").is_some());
        assert!(name_problem("other", "x#").is_none());
    }

    #[test]
    fn attachment_header_is_always_safe() {
        assert_eq!(
            attachment("web", "kubeconfig"),
            "attachment; filename=\"web.kubeconfig\""
        );
        let v = attachment("a\"; filename=evil\r\n", "kubeconfig");
        let s = v.to_str().unwrap();
        assert!(
            !s.contains("evil\"") && !s.contains('\r') && s.matches('"').count() == 2,
            "{s}"
        );
    }

    #[test]
    fn wait_queries() {
        assert!(waits(Some("wait=Ready&timeout=10s")));
        assert!(waits(Some("x=1&wait=Deleted")));
        assert!(!waits(Some("wait=")));
        assert!(!waits(None));
    }
}
