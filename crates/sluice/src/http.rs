//! The HTTP API (axum): health, search, versions, quarantine, metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::Version;
use sluice_pipeline::{Engine, PipelineError};
use sluice_store::SearchMode;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, ModeLabels};

const MAX_K: usize = 1000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Quarantined paths to process again, for the scheduler (which serialises them with runs).
    pub retries: mpsc::Sender<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/search", get(search))
        .route("/v1/versions", get(versions))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/quarantine/retry", post(retry_quarantined))
        .with_state(state)
}

/// An error as the API reports it: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Invalid(message) => ApiError(StatusCode::NOT_FOUND, message),
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("request task failed: {err}")))?
        .map_err(ApiError::from)
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine.clone();
    let live = blocking(move || Ok(engine.store().live_version()?)).await?;
    Ok(Json(json!({ "status": "ok", "pipeline": state.engine.plan().name, "live_version": live })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    k: Option<usize>,
    version: Option<Version>,
    mode: Option<SearchMode>,
}

async fn search(State(state): State<AppState>, Query(params): Query<SearchParams>) -> Result<Response, ApiError> {
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "missing query parameter `q`".into()));
    }
    let k = params.k.unwrap_or(10);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`k` must be between 1 and {MAX_K}")));
    }
    let mode = params.mode.unwrap_or_default();
    let started = Instant::now();
    let engine = state.engine.clone();
    let response = blocking(move || engine.search(&query, params.version, k, mode)).await?;
    let label = match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::Lexical => "lexical",
        SearchMode::Dense => "dense",
    };
    state.metrics.search_duration.get_or_create(&ModeLabels { mode: label }).observe(started.elapsed().as_secs_f64());
    Ok(Json(response).into_response())
}

async fn versions(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let versions = blocking(move || engine.versions()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "versions": versions })).into_response())
}

async fn quarantine(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let entries = blocking(move || engine.quarantine()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "quarantined": entries })).into_response())
}

#[derive(Deserialize)]
struct RetryRequest {
    path: String,
}

/// Queues a quarantined file for the next run: 202 once queued, 404 if it is not in quarantine.
async fn retry_quarantined(
    State(state): State<AppState>,
    Json(request): Json<RetryRequest>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let path = request.path.clone();
    let entry = blocking(move || engine.quarantine_entry(&path)).await?;
    if entry.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("{} is not in quarantine", request.path)));
    }
    state
        .retries
        .send(request.path.clone())
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down".into()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": request.path }))).into_response())
}
