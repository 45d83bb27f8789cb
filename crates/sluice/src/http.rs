//! The HTTP API (axum): health, search, versions, quarantine, audit, tokens, metrics.
//!
//! Every `/v1` route needs a bearer token whose role is at least its group's (`auth.rs`);
//! `/healthz` and `/metrics` (which carry no document content) do not. Every answer that is
//! not a success is `application/problem+json` (`problem.rs`). Limits: the request head's
//! size and time and the connection count (`server.rs`); the body's size, the query string's
//! length, the time a request may take, requests in flight per token and searches running at
//! once (here).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_config::{HistoryAccess, ServerPlan};
use sluice_core::{ChunkId, SearchFilter, Version};
use sluice_pipeline::{Engine, PipelineError, Search};
use sluice_store::{ExportFormat, Role, SearchMode};
use tokio::sync::{Semaphore, mpsc};

use crate::auth::{self, Caller, Gate, Required};
use crate::metrics::{Metrics, ModeLabels};
use crate::problem::{self, Problem};

const MAX_K: usize = 1000;
/// Export, verify, gc and audit verification may take this many times `request_timeout`.
const LONG_REQUEST_FACTOR: u32 = 10;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Quarantined paths to process again, for the scheduler (which serialises them with runs).
    pub retries: mpsc::Sender<(String, String)>,
    pub gate: Gate,
    /// Searches running at once (each holds up to `k` hits).
    pub searches: Arc<Semaphore>,
    /// Where the HTTP export writes its temporary file (the data directory).
    pub data_dir: std::path::PathBuf,
}

pub fn router(state: AppState) -> Router {
    let server = state.engine.plan().server.clone();
    let requiring = |role: Role, anonymous: bool| {
        let required = Required { gate: state.gate.clone(), role, anonymous };
        middleware::from_fn_with_state(required, auth::require)
    };
    let timed = |routes: Router<AppState>, factor: u32| {
        routes.layer(middleware::from_fn_with_state(server.request_timeout * factor, time_limit))
    };
    let search_routes =
        Router::new().route("/v1/search", get(search).post(search_body)).layer(requiring(Role::Reader, true));
    let reader = Router::new()
        .route("/v1/versions", get(versions))
        .route("/v1/versions/{version}", get(version_info))
        .route("/v1/chunks/{chunk_id}/lineage", get(lineage))
        .layer(requiring(Role::Reader, false));
    let operator = Router::new()
        .route("/v1/versions/{version}/promote", post(promote))
        .route("/v1/versions/{version}/pin", post(pin).delete(unpin))
        .route("/v1/rollback", post(rollback))
        .route("/v1/diff", get(diff))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/nodes", get(nodes))
        .route("/v1/quarantine/retry", post(retry_quarantined))
        .layer(requiring(Role::Operator, false));
    let operator_long = Router::new()
        .route("/v1/gc", post(collect_garbage))
        .route("/v1/verify", get(verify))
        .layer(requiring(Role::Operator, false));
    let admin = Router::new()
        .route("/v1/audit", get(audit))
        .route("/v1/audit/head", get(audit_head))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .layer(requiring(Role::Admin, false));
    let admin_long = Router::new()
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/export", get(export))
        .layer(requiring(Role::Admin, false));
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .merge(timed(search_routes, 1))
        .merge(timed(reader, 1))
        .merge(timed(operator, 1))
        .merge(timed(operator_long, LONG_REQUEST_FACTOR))
        .merge(timed(admin, 1))
        .merge(timed(admin_long, LONG_REQUEST_FACTOR))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(middleware::from_fn_with_state(server, query_limit))
        .layer(middleware::from_fn(problem::problems))
        .with_state(state)
}

/// A request (its body included) that takes longer than its group allows is answered 408;
/// work already handed to a blocking thread finishes there, unseen.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            Problem::new(StatusCode::REQUEST_TIMEOUT, format!("the request took longer than {limit:?}")).into_response()
        }
    }
}

/// Query strings are bounded before anything parses them.
async fn query_limit(State(server): State<ServerPlan>, request: Request, next: Next) -> Response {
    // Percent-encoding takes up to 3 bytes per byte, and a character up to 4 bytes.
    let max_bytes = server.max_query_chars * 12 + 1024;
    let length = request.uri().query().map_or(0, str::len);
    if length > max_bytes {
        let detail = format!("the query string is {length} bytes, over {max_bytes} (server.max_query_chars)");
        return Problem::new(StatusCode::URI_TOO_LONG, detail).into_response();
    }
    next.run(request).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f).await.map_err(Problem::internal)?.map_err(Problem::from)
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    let engine = state.engine.clone();
    let (live, vectors) = blocking(move || {
        let store = engine.store();
        Ok((store.live_version()?, (store.vectors().describe(), store.vectors().health())))
    })
    .await?;
    // A vector store on another machine may be down: lexical search still answers.
    let (index, health) = vectors;
    let (status, vectors) = match health {
        Ok(()) => ("ok", json!({ "index": index, "status": "ok" })),
        Err(err) => ("degraded", json!({ "index": index, "status": "unavailable", "error": err.to_string() })),
    };
    Ok(Json(
        json!({ "status": status, "pipeline": state.engine.plan().name, "live_version": live, "vectors": vectors }),
    ))
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

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<SearchParams>,
) -> Result<Response, Problem> {
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(Problem::bad_request("missing query parameter `q`"));
    }
    let search = Search {
        query,
        version: params.version,
        k: params.k.unwrap_or(DEFAULT_K),
        mode: params.mode.unwrap_or_default(),
        filter: SearchFilter::default(),
    };
    run_search(state, caller, search).await
}

/// `POST /v1/search`: the search as a JSON body, with a filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    query: String,
    k: Option<usize>,
    version: Option<Version>,
    mode: Option<SearchMode>,
    #[serde(default)]
    filter: SearchFilter,
}

async fn search_body(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<SearchBody>,
) -> Result<Response, Problem> {
    if body.query.trim().is_empty() {
        return Err(Problem::bad_request("`query` is empty"));
    }
    body.filter.normalized().map_err(|reason| Problem::bad_request(format!("bad `filter`: {reason}")))?;
    let search = Search {
        query: body.query,
        version: body.version,
        k: body.k.unwrap_or(DEFAULT_K),
        mode: body.mode.unwrap_or_default(),
        filter: body.filter,
    };
    run_search(state, caller, search).await
}

/// Hits a search returns when `k` is not given.
const DEFAULT_K: usize = 10;

async fn run_search(state: AppState, caller: Caller, search: Search) -> Result<Response, Problem> {
    let max_chars = state.engine.plan().server.max_query_chars;
    if search.query.chars().count() > max_chars {
        return Err(Problem::bad_request(format!("the query is over {max_chars} characters (server.max_query_chars)")));
    }
    if !(1..=MAX_K).contains(&search.k) {
        return Err(Problem::bad_request(format!("`k` must be between 1 and {MAX_K}")));
    }
    may_time_travel(&state, &caller, search.version).await?;
    let mode = search.mode;
    let started = Instant::now();
    // Searches hold their hits in memory: a bounded number run at once, the rest wait.
    let _running = state.searches.acquire().await.map_err(Problem::internal)?;
    let engine = state.engine.clone();
    let response = blocking(move || engine.search_filtered(&search, &caller.access, &caller.principal)).await?;
    let label = match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::Lexical => "lexical",
        SearchMode::Dense => "dense",
    };
    state.metrics.search_duration.get_or_create(&ModeLabels { mode: label }).observe(started.elapsed().as_secs_f64());
    Ok(Json(response).into_response())
}

/// With `[access] history = "operators"`, only operators and admins search earlier versions.
async fn may_time_travel(state: &AppState, caller: &Caller, version: Option<Version>) -> Result<(), Problem> {
    let history = state.engine.plan().access.history;
    let Some(version) = version else { return Ok(()) };
    if history != HistoryAccess::Operators || caller.role >= Role::Operator {
        return Ok(());
    }
    let engine = state.engine.clone();
    let live = blocking(move || Ok(engine.store().live_version()?)).await?;
    if live == Some(version) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "earlier versions are searched by operators only ([access] history = \"operators\")",
    ))
}

async fn versions(State(state): State<AppState>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let versions = blocking(move || engine.operations().versions()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "versions": versions })).into_response())
}

async fn version_info(State(state): State<AppState>, Path(version): Path<Version>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let info = blocking(move || engine.operations().versions()).await?.into_iter().find(|info| info.version == version);
    match info {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(Problem::not_found(format!("version {version} does not exist"))),
    }
}

#[derive(Deserialize)]
struct PromoteParams {
    /// Promote a version the evaluation gate held.
    #[serde(default)]
    force: bool,
}

async fn promote(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
    Query(params): Query<PromoteParams>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    blocking(move || engine.operations().promote(version, &caller.principal, params.force)).await?;
    Ok(Json(json!({ "live": version })).into_response())
}

async fn rollback(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let live = blocking(move || engine.operations().roll_back_live(&caller.principal)).await?;
    Ok(Json(json!({ "live": live })).into_response())
}

async fn pin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
) -> Result<Response, Problem> {
    set_pinned(state, caller, version, true).await
}

async fn unpin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
) -> Result<Response, Problem> {
    set_pinned(state, caller, version, false).await
}

async fn set_pinned(state: AppState, caller: Caller, version: Version, pinned: bool) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    blocking(move || engine.operations().pin(version, pinned, &caller.principal)).await?;
    Ok(Json(json!({ "version": version, "pinned": pinned })).into_response())
}

async fn collect_garbage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.operations().collect_garbage(&caller.principal)).await?).into_response())
}

#[derive(Deserialize)]
struct VerifyParams {
    version: Option<Version>,
}

async fn verify(State(state): State<AppState>, Query(params): Query<VerifyParams>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.operations().verify(params.version)).await?).into_response())
}

#[derive(Deserialize)]
struct DiffParams {
    from: Version,
    to: Version,
}

async fn diff(State(state): State<AppState>, Query(params): Query<DiffParams>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.operations().diff(params.from, params.to)).await?).into_response())
}

async fn lineage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(chunk_id): Path<String>,
) -> Result<Response, Problem> {
    let Some(id) = ChunkId::parse(&chunk_id) else {
        return Err(Problem::bad_request(format!("{chunk_id:?} is not a chunk id (64 hex digits)")));
    };
    let engine = state.engine.clone();
    let operator = caller.role >= Role::Operator;
    match blocking(move || engine.operations().lineage(id, &caller.access, operator)).await? {
        Some(lineage) => Ok(Json(lineage).into_response()),
        None => Err(Problem::not_found(format!("no chunk {chunk_id}"))),
    }
}

async fn quarantine(State(state): State<AppState>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let entries = blocking(move || engine.operations().quarantine()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "quarantined": entries })).into_response())
}

/// The nodes sharing the pipeline's catalog (`sluice nodes`).
async fn nodes(State(state): State<AppState>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let nodes = blocking(move || engine.operations().nodes()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "nodes": nodes })).into_response())
}

#[derive(Deserialize)]
struct RetryRequest {
    path: String,
}

/// Queues a quarantined file for the next run: 202 once queued, 404 if it is not in quarantine.
async fn retry_quarantined(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<RetryRequest>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let path = request.path.clone();
    let entry = blocking(move || engine.operations().quarantine_entry(&path)).await?;
    if entry.is_none() {
        return Err(Problem::not_found(format!("{} is not in quarantine", request.path)));
    }
    // The scheduler forgets the file and audits it (as `caller`) between runs.
    state
        .retries
        .send((request.path.clone(), caller.principal))
        .await
        .map_err(|_| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down"))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": request.path }))).into_response())
}

#[derive(Deserialize)]
struct AuditParams {
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Entries after this sequence number (paging).
    after: Option<i64>,
    limit: Option<usize>,
}

/// `GET /v1/audit`: entries oldest first, a page at a time (`after` = the last `seq` seen).
async fn audit(State(state): State<AppState>, Query(params): Query<AuditParams>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let limit = params.limit.unwrap_or(1000).clamp(1, 10_000);
    let entries =
        blocking(move || Ok(engine.store().catalog().audit_entries(params.since, params.after.unwrap_or(0), limit)?))
            .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(Deserialize)]
struct AuditVerifyParams {
    /// A head (`SEQ:HASH`) kept elsewhere: it must still be in the chain.
    expect_head: Option<String>,
}

async fn audit_verify(
    State(state): State<AppState>,
    Query(params): Query<AuditVerifyParams>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let expect = params.expect_head;
    Ok(Json(blocking(move || Ok(engine.store().catalog().verify_audit(expect.as_deref())?)).await?).into_response())
}

/// `GET /v1/audit/head`: the newest entry's `seq:hash`, for an external witness to keep.
async fn audit_head(State(state): State<AppState>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let head = blocking(move || Ok(engine.store().catalog().audit_head()?)).await?;
    Ok(Json(json!({ "head": head })).into_response())
}

async fn list_tokens(State(state): State<AppState>) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let tokens = blocking(move || engine.operations().tokens()).await?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

#[derive(Deserialize)]
struct TokenRequest {
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    role: Role,
}

/// `POST /v1/tokens`: the answer holds the secret, the only time it is shown.
async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<TokenRequest>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let (info, token) = blocking(move || {
        engine.operations().create_token(&request.user, &request.groups, request.role, &caller.principal)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "info": info }))).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let token_id = id.clone();
    blocking(move || engine.operations().revoke_token(&token_id, &caller.principal)).await?;
    Ok(Json(json!({ "revoked": id })).into_response())
}

#[derive(Deserialize)]
struct ExportParams {
    version: Option<Version>,
    format: Option<String>,
    #[serde(default)]
    vectors: bool,
}

/// `GET /v1/export`: the chunks of a version the caller may read, as JSONL or Parquet. The file
/// is written into the data directory (owner-only), opened, unlinked and streamed from the open
/// descriptor: nobody else can read it, and the daemon never holds it in memory.
async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<ExportParams>,
) -> Result<Response, Problem> {
    let format = match params.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => ExportFormat::Jsonl,
        "parquet" => ExportFormat::Parquet,
        other => return Err(Problem::bad_request(format!("unknown format {other:?} (jsonl, parquet)"))),
    };
    let engine = state.engine.clone();
    let data_dir = state.data_dir.clone();
    let file = blocking(move || {
        let path = export_path(&data_dir, &engine)?;
        let operator = caller.role >= Role::Operator;
        let (access, principal) = (&caller.access, &caller.principal);
        let exported =
            engine.operations().export(params.version, access, operator, format, params.vectors, &path, principal);
        let opened = std::fs::File::open(&path);
        let _ = std::fs::remove_file(&path);
        exported?;
        opened.map_err(PipelineError::io(&path))
    })
    .await?;
    let content_type =
        if format == ExportFormat::Jsonl { "application/x-ndjson" } else { "application/vnd.apache.parquet" };
    Ok(([(header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(read_chunks(file))).into_response())
}

/// The bytes of an open file, 256 KiB at a time.
fn read_chunks(file: std::fs::File) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> {
    futures_util::stream::unfold(tokio::fs::File::from_std(file), |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 256 << 10];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(axum::body::Bytes::from(buffer)), file))
            }
            Err(err) => Some((Err(err), file)),
        }
    })
}

/// A fresh path for an export in the data directory (which only the daemon's user can enter).
fn export_path(data_dir: &std::path::Path, engine: &Engine) -> Result<std::path::PathBuf, PipelineError> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|err| PipelineError::Invalid(err.to_string()))?;
    Ok(data_dir.join(format!(".export-{}-{}", engine.plan().name, hex::encode(random))))
}
