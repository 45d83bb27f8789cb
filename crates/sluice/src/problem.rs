//! Every error the API answers is `application/problem+json` (RFC 9457): `type`, `title`,
//! `status`, `detail`, and the request's id.
//!
//! Handlers answer with [`Problem`]; the outermost middleware ([`problems`]) gives every
//! request an id (`x-request-id`), turns any other error response into a problem — the
//! framework's own rejections (a query string that does not parse, a wrong method, a body over
//! the limit, a timeout) answer in plain text — and logs internal errors with the request id,
//! answering without their detail: a file path or an SQL message never reaches a client.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_core::ErrorKind;
use sluice_pipeline::PipelineError;
use tracing::error;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Bytes of an error body read back to rewrite it (error bodies are short).
const MAX_ERROR_BODY: usize = 64 << 10;

/// An error answer.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds after which trying again makes sense (429, 503).
    pub retry_after: Option<u64>,
    /// The internal error behind a 500, for the log only.
    pub internal: Option<String>,
}

/// An internal error's text, carried from the handler to the logging middleware.
#[derive(Clone)]
struct InternalError(String);

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), retry_after: None, internal: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// A server-side failure: logged with the request id, answered without its text.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        let mut problem =
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; the daemon's log has the details");
        problem.internal = Some(error.to_string());
        problem
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// The problem document for `status`: `type` names the kind of problem, `title` says it for
/// people.
fn document(status: StatusCode, detail: &str) -> serde_json::Value {
    let title = status.canonical_reason().unwrap_or("Error");
    let kind: String = title.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    json!({"type": format!("urn:sluice:problem:{kind}"), "title": title, "status": status.as_u16(), "detail": detail})
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, [(header::CONTENT_TYPE, PROBLEM_JSON)], document(self.status, &self.detail).to_string())
                .into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(internal) = self.internal {
            response.extensions_mut().insert(InternalError(internal));
        }
        response
    }
}

/// Every error's status, by its kind: the one place errors become HTTP answers.
impl From<PipelineError> for Problem {
    fn from(err: PipelineError) -> Self {
        match err.kind() {
            ErrorKind::NotFound => Problem::not_found(err.to_string()),
            ErrorKind::Conflict => Problem::new(StatusCode::CONFLICT, err.to_string()),
            ErrorKind::Invalid => Problem::bad_request(err.to_string()),
            ErrorKind::Forbidden => Problem::new(StatusCode::FORBIDDEN, err.to_string()),
            // Busy, stopping, or a store on another machine down: the client may try again.
            ErrorKind::Unavailable => {
                let wait = if matches!(err, PipelineError::Busy(_)) { 1 } else { 5 };
                let detail = match err {
                    PipelineError::Stopped => "the daemon is shutting down".to_owned(),
                    other => other.to_string(),
                };
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail).retry_after(wait)
            }
            ErrorKind::Corrupt | ErrorKind::Internal => Problem::internal(err),
        }
    }
}

/// A fresh request id: 64 random bits.
fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .to_le_bytes();
    }
    hex::encode(bytes)
}

/// The outermost middleware: request ids, problems for every error, internal errors logged.
pub async fn problems(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if let Some(InternalError(internal)) = response.extensions_mut().remove::<InternalError>() {
        error!(request_id = %id, %method, path, error = %internal, "request failed");
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|value| value == PROBLEM_JSON);
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let mut problem = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) if is_problem && value.is_object() => value,
        _ => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let detail = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
            document(status, &detail)
        }
    };
    problem["request_id"] = json!(id);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(problem.to_string()))
}
