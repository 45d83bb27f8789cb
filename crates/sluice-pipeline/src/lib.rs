//! One pipeline, end to end: reconcile the sources with the ledger, run the stages on what
//! changed, and commit the result as one dataset version.
//!
//! [`Engine`] owns the model, the chunker and the stores of one pipeline. A run is synchronous
//! and CPU-bound; the daemon calls it from a blocking thread. Runs of one engine are serialised
//! (one version is written at a time); searches run alongside them.

mod access;
mod ahead;
mod audit_queue;
mod error;
mod evaluate;
mod failpoint;
mod meter;
mod models;
mod names;
mod node;
mod observer;
mod operations;
mod parsers;
mod prepare;
mod run;
mod sandbox;
mod scan;
mod shared;
mod source;
mod summary;
mod text;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sluice_config::{HistoryAccess, PiiPolicyPlan, PipelinePlan};
use sluice_core::{Fingerprint, ReadAccess, SearchFilter, Version};
use sluice_embed::{EmbedOptions, Embedder};
use sluice_store::{
    AuditEvent, Catalog, PastAccess, SearchHit, SearchMode, SearchRequest, StageFingerprints, Store, VersionState,
};
use tracing::info;

pub use access::{
    ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_READ, ACL_USER, ACL_USER_OBJ, AccessResolver, AclEntry,
    encode_posix_acl, parse_posix_acl, posix_readers,
};
pub use error::PipelineError;
pub use evaluate::{DocumentKey, EvalOptions, EvalReport};
pub use node::{Membership, Report};
pub use observer::{Observer, Outcome, Quiet};
pub use operations::{Admin, Operations};
pub use parsers::serve_worker;
pub use scan::{Root, is_ignored_name};
pub use summary::RunSummary;
pub use text::{TextSettings, TextStage};

/// What a run looks at.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every file under every source root (start-up and periodic reconcile, `sluice ingest`).
    All,
    /// Only these paths (files or folders), e.g. from file-system events.
    Paths(Vec<PathBuf>),
}

/// How long a search at a version this node has not applied yet waits for it.
pub const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Engine {
    plan: PipelinePlan,
    roots: Vec<Root>,
    store: Store,
    /// The model runs embed with.
    embedder: Arc<Embedder>,
    /// The model of each version, for its queries (an earlier one after a model change).
    query_models: models::QueryModels,
    /// Per stage: what decides a document's text, chunks and vectors.
    stages: StageFingerprints,
    fingerprint: Fingerprint,
    run_lock: Mutex<()>,
    stop_requested: AtomicBool,
    /// Threads that read files and wait for their parsers, apart from the global rayon pool
    /// that the CPU encoder's matrix products use.
    prepare_threads: usize,
    /// What the text stage needs, for worker processes.
    text_settings: TextSettings,
    parsers: parsers::Parsers,
    /// Resolves each file's readers from the share and the `[access]` rules.
    access: AccessResolver,
    /// Search audit entries on their way to the catalog.
    search_audit: audit_queue::AuditQueue,
    /// The data directory: the node's identity on a shared catalog.
    data_dir: PathBuf,
    /// This process as a node of the catalog, once it joined (`Engine::join_catalog`).
    membership: Mutex<Option<node::Membership>>,
}

/// A search as callers ask for it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Search {
    pub query: String,
    /// `None`: the version `live` points at.
    pub version: Option<Version>,
    pub k: usize,
    pub mode: SearchMode,
    pub filter: SearchFilter,
}

/// A search's answer: the version it ran against, the model that embedded the query, and the
/// hits.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SearchResponse {
    /// `None` when nothing has been committed yet.
    pub version: Option<Version>,
    /// Fingerprint of the model that embedded the query (the version's own); `None` for a
    /// lexical search.
    #[serde(default)]
    pub model: Option<String>,
    pub hits: Vec<SearchHit>,
}

impl Engine {
    /// Loads the model (fetching it on first use), then opens the stores, which rolls back a
    /// version a crash left pending. Source roots must exist.
    pub fn open(plan: PipelinePlan, data_dir: &Path, models_dir: &Path) -> Result<Self, PipelineError> {
        let files = sluice_embed::ensure_model(models_dir, &plan.embed.model)?;
        let options = EmbedOptions { device: plan.embed.device, precision: plan.embed.precision };
        let embedder = Arc::new(Embedder::load_with(&files, options)?);
        let tokenizer_path = files.path("tokenizer.json");
        let tokenizer_json = std::fs::read(&tokenizer_path).map_err(PipelineError::io(&tokenizer_path))?;
        let text_settings = text_settings(&plan, tokenizer_path, &tokenizer_json);
        let text_stage = TextStage::with_tokenizer(&text_settings, &tokenizer_json).map_err(PipelineError::Invalid)?;
        let roots = plan
            .sources
            .iter()
            .map(|source| Root::new(&source.path).map_err(PipelineError::io(&source.path)))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store::open(data_dir, &plan.name, &plan.store)?;
        store.catalog().set_audit_key(audit_key(&plan, data_dir)?);
        check_audit_keying(store.catalog(), &plan)?;
        let stages = StageFingerprints {
            extract: Fingerprint::of(
                "extract",
                &format!("extractor={} clean={}", sluice_extract::EXTRACTOR_VERSION, sluice_transform::CLEAN_VERSION),
            ),
            // The PII policy changes chunk text (masking) and which chunks exist (dropping);
            // enrichment, what the chunks carry (their language).
            chunk: Fingerprint::combine(&[
                text_stage.chunker().fingerprint(),
                Fingerprint::of("pii", &pii_settings(&plan).to_string()),
                Fingerprint::of("enrich", sluice_transform::enrich::ENRICH_VERSION),
                Fingerprint::of("context", sluice_core::embedding_input::CONTEXT_VERSION),
            ]),
            model: embedder.fingerprint(),
        };
        record_stage_settings(&store, &stages, &plan, &embedder)?;
        audit_pipeline_change(&store, &plan)?;
        let fingerprint = Fingerprint::combine(&[stages.extract, stages.chunk, stages.model]);
        info!(pipeline = %plan.name, fingerprint = %fingerprint, roots = roots.len(), "pipeline ready");
        let access = AccessResolver::new(plan.access.clone());
        let rotation = audit_queue::Rotation {
            after_entries: plan.audit.rotate_after_entries,
            keep_segment_days: plan.audit.keep_segment_days,
        };
        let search_audit = audit_queue::AuditQueue::start(store.shared_catalog(), rotation)?;
        let query_models = models::QueryModels::new(embedder.clone(), models_dir.to_owned(), plan.embed.device);
        Ok(Self {
            plan,
            roots,
            store,
            query_models,
            embedder,
            stages,
            fingerprint,
            run_lock: Mutex::new(()),
            stop_requested: AtomicBool::new(false),
            prepare_threads: std::thread::available_parallelism().map_or(1, usize::from),
            text_settings,
            parsers: parsers::Parsers::InProcess(Box::new(text_stage)),
            access,
            data_dir: data_dir.to_owned(),
            membership: Mutex::new(None),
            search_audit,
        })
    }

    /// Runs parsers in worker processes of `executable` (the `sluice` binary, which answers in
    /// its `parse-worker` mode), unless the pipeline file turned isolation off. Without this,
    /// parsers run in this process: a panic still costs one document, but a crash, a runaway
    /// allocation or a hang is not contained.
    pub fn isolate_parsers(&mut self, executable: PathBuf) {
        let limits = &self.plan.limits;
        if limits.isolate_parsers {
            self.parsers = parsers::Parsers::Workers(Box::new(parsers::WorkerPool::new(
                executable,
                self.text_settings.clone(),
                limits.parser_memory_bytes,
                limits.parse_timeout,
            )));
        }
    }

    pub fn plan(&self) -> &PipelinePlan {
        &self.plan
    }

    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Fingerprint of every stage's settings and code version; recorded with each version.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The stage fingerprints documents are written under now.
    pub fn stage_fingerprints(&self) -> StageFingerprints {
        self.stages
    }

    /// Asks a run in progress to stop at the next batch boundary. It commits what it has done;
    /// the files it did not reach are left for the next run. Later runs stop at once.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// Reconciles `scope` and commits what changed as one version.
    pub fn run(&self, scope: &Scope, observer: &dyn Observer) -> Result<RunSummary, PipelineError> {
        let _one_run_at_a_time = self.run_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.shares_catalog() { shared::run(self, scope, observer) } else { run::run(self, scope, observer) }
    }

    /// Whether other sluice processes may write this pipeline (see [`Store::shares_catalog`]).
    pub fn shares_catalog(&self) -> bool {
        self.store.shares_catalog()
    }

    /// Registers this process as a node of its catalog (heartbeating until it leaves or the
    /// engine drops), with its HTTP `address` (empty without one) and `stats`, its counters for
    /// the heartbeat. Returns its node id; once joined, the same id.
    pub fn join_catalog(
        &self,
        role: sluice_store::NodeRole,
        address: &str,
        stats: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    ) -> Result<String, PipelineError> {
        let mut membership = self.membership.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(joined) = membership.as_ref() {
            return Ok(joined.id().to_owned());
        }
        let node = sluice_store::NodeRecord::this_process(&self.plan.name, role, address, &self.data_dir)?;
        let applied = self.store.applied_version_handle();
        let report: Arc<node::Report> = Arc::new(move || (applied.load(std::sync::atomic::Ordering::Relaxed), stats()));
        let settings = self.plan.store.catalog.node_settings();
        let timing = (settings.heartbeat, settings.lease);
        let joined = node::Membership::join(self.store.shared_catalog(), node, report, timing)?;
        let id = joined.id().to_owned();
        *membership = Some(joined);
        Ok(id)
    }

    /// Applies the versions other nodes committed to this node's indexes (a node on a shared
    /// catalog calls it every second; runs do it too). Returns the versions applied.
    ///
    /// Not behind this node's run lock: a run busy extracting and embedding its claimed files
    /// must not keep the node's searches behind the other writers. The pipeline's lock orders
    /// a catch-up with the run's own write, which is the only part that touches the indexes.
    pub fn follow(&self) -> Result<usize, PipelineError> {
        if !self.shares_catalog() {
            return Ok(0);
        }
        shared::catch_up(self)
    }

    /// On a shared catalog, a version this node's indexes do not hold yet is waited for (the
    /// follower applies it within a second or so), up to [`APPLY_WAIT`]; then the search fails
    /// as unavailable, naming the version this node holds.
    fn wait_until_applied(&self, version: Version) -> Result<(), PipelineError> {
        if !self.shares_catalog() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + APPLY_WAIT;
        while self.store.applied_version() < version {
            if std::time::Instant::now() >= deadline {
                return Err(sluice_store::StoreError::Unavailable(format!(
                    "version {version} is not on this node yet: it has applied version {}; try again shortly",
                    self.store.applied_version()
                ))
                .into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// Leaves the catalog's nodes (a clean stop): its claims return to the pool at once.
    pub fn leave_catalog(&self) {
        self.membership.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    }

    /// Builds the vector index after a commit, on half the cores (at least one), so searches
    /// stay responsive meanwhile. Until a segment is big enough, search is exact and this is quick.
    pub fn optimize_vectors(&self) -> Result<bool, PipelineError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(self.store.vectors().optimize(cores.div_ceil(2))?)
    }

    /// Tokens per forward pass: the pipeline file's `embed.batch_tokens`, else the device's own.
    pub(crate) fn batch_tokens(&self) -> usize {
        self.plan.embed.batch_tokens.unwrap_or_else(|| self.embedder.default_batch_tokens())
    }

    /// The operator actions on this pipeline, with its stores open.
    pub fn operations(&self) -> Operations<'_> {
        Operations::new(&self.plan, self.store.catalog(), Some(&self.store), &self.run_lock)
    }

    /// Documents `access` may not see at the `requested` version although that version's
    /// readers allowed them (`Operations::hidden_at`; the HTTP layer refused earlier versions
    /// to readers under `history = "operators"` already). `live`, also what `None` asks for,
    /// hides nothing.
    fn revoked_at(&self, requested: Option<Version>, access: &ReadAccess) -> Result<Vec<String>, PipelineError> {
        match requested {
            Some(version) => self.operations().hidden_at(version, access, true),
            None => Ok(Vec::new()),
        }
    }

    /// Hybrid (or lexical-only, or dense-only) search at `version`, or at `live` when `None`,
    /// over the chunks `access` may read; audited with `principal`, the query and the hits.
    pub fn search(
        &self,
        query: &str,
        version: Option<Version>,
        k: usize,
        mode: SearchMode,
        access: &ReadAccess,
        principal: &str,
    ) -> Result<SearchResponse, PipelineError> {
        let search = Search { query: query.to_owned(), version, k, mode, filter: SearchFilter::default() };
        self.search_filtered(&search, access, principal)
    }

    /// [`Engine::search`] narrowed by a filter (language, format, place, source, authors,
    /// dates, headings), which both retrievers apply before ranking.
    pub fn search_filtered(
        &self,
        search: &Search,
        access: &ReadAccess,
        principal: &str,
    ) -> Result<SearchResponse, PipelineError> {
        let response = self.search_unaudited(search, access)?;
        if let Some(version) = response.version {
            self.search_audit.record(search_event(&self.plan.name, principal, search, version, &response.hits))?;
        }
        Ok(response)
    }

    /// A search as [`Engine::search_filtered`], without its audit entry (evaluation runs are
    /// audited whole).
    pub(crate) fn search_unaudited(
        &self,
        search: &Search,
        access: &ReadAccess,
    ) -> Result<SearchResponse, PipelineError> {
        let Search { query, version, k, mode, filter } = search;
        let (query, version, k, mode) = (query.as_str(), *version, *k, *mode);
        let filter = filter.normalized().map_err(PipelineError::Invalid)?;
        let catalog = self.store.catalog();
        let requested = version;
        let version = match requested {
            Some(version) => match catalog.version_state(&self.plan.name, version)? {
                Some(VersionState::Committed) => version,
                Some(state) => {
                    return Err(PipelineError::Conflict(format!("version {version} is {state:?}, not committed")));
                }
                None => {
                    return Err(PipelineError::NotFound(format!("version {version} does not exist")));
                }
            },
            None => match self.store.live_version()? {
                Some(version) => version,
                None => {
                    return Ok(SearchResponse { version: None, model: None, hits: Vec::new() });
                }
            },
        };
        self.wait_until_applied(version)?;
        let (vector, model) = match mode {
            SearchMode::Lexical => (None, None),
            SearchMode::Hybrid | SearchMode::Dense => {
                let embedder = self.query_models.for_version(&self.store, version)?;
                let vector = embedder.embed(&[query], embedder.default_batch_tokens())?.into_iter().next();
                (vector, Some(embedder.fingerprint().to_hex()))
            }
        };
        let settings = &self.plan.search;
        let hidden_docs = self.revoked_at(requested, access)?;
        let hits = self.store.search(&SearchRequest {
            query,
            vector: vector.as_deref(),
            model: model.as_deref().unwrap_or_default(),
            version,
            k,
            mode,
            lexical_candidates: settings.lexical_candidates,
            dense_candidates: settings.dense_candidates,
            rrf_k: settings.rrf_k,
            fusion: settings.fusion,
            lexical_weight: settings.lexical_weight,
            dense_weight: settings.dense_weight,
            hnsw_ef: settings.hnsw_ef,
            access,
            hidden_docs: &hidden_docs,
            filter: &filter,
        })?;
        Ok(SearchResponse { version: Some(version), model, hits })
    }
}

/// What a caller sees of what is no longer live under the pipeline's `[access] history`.
pub fn past_access(history: HistoryAccess, operator: bool) -> PastAccess {
    match history {
        HistoryAccess::Current => PastAccess::Today,
        HistoryAccess::Operators if operator => PastAccess::AsCommitted,
        HistoryAccess::Operators => PastAccess::Hidden,
        HistoryAccess::AsCommitted => PastAccess::AsCommitted,
    }
}

/// Characters of a query kept in its audit entry (its length and hash are kept too).
const AUDITED_QUERY_CHARS: usize = 1_000;
/// Chunk ids kept in a search's audit entry (the hit count is kept too).
const AUDITED_CHUNK_IDS: usize = 100;

/// A search's audit entry, of bounded size whatever the query and `k`.
fn search_event(pipeline: &str, principal: &str, search: &Search, version: Version, hits: &[SearchHit]) -> AuditEvent {
    let (query, mode, k) = (search.query.as_str(), search.mode, search.k);
    let chunk_ids: Vec<String> = hits.iter().take(AUDITED_CHUNK_IDS).map(|hit| hit.chunk_id.to_hex()).collect();
    let query_chars = query.chars().count();
    let mut detail =
        serde_json::json!({"version": version, "mode": mode, "k": k, "hits": hits.len(), "chunk_ids": chunk_ids});
    if !search.filter.is_empty() {
        detail["filter"] = serde_json::json!(search.filter);
    }
    let subject = if query_chars > AUDITED_QUERY_CHARS {
        detail["query_chars"] = query_chars.into();
        detail["query_blake3"] = blake3::hash(query.as_bytes()).to_hex().to_string().into();
        query.chars().take(AUDITED_QUERY_CHARS).collect()
    } else {
        query.to_owned()
    };
    AuditEvent::new(pipeline, principal, "search", subject, detail)
}

/// Records what each stage fingerprint stands for, so lineage can show the settings.
fn record_stage_settings(
    store: &Store,
    stages: &StageFingerprints,
    plan: &PipelinePlan,
    embedder: &Embedder,
) -> Result<(), PipelineError> {
    let spec = embedder.spec();
    let records = [
        (
            stages.extract,
            "extract",
            serde_json::json!({
                "extractor": {"name": "sluice-extract", "version": sluice_extract::EXTRACTOR_VERSION},
                "cleaning": {"version": sluice_transform::CLEAN_VERSION, "steps": sluice_transform::CLEAN_STEPS},
            }),
        ),
        (
            stages.chunk,
            "chunk",
            serde_json::json!({
                "chunker_version": sluice_transform::chunk::CHUNKER_VERSION,
                "max_tokens": plan.chunk.max_tokens,
                "overlap_tokens": plan.chunk.overlap_tokens,
                "tokenizer": format!("{} tokenizer.json", spec.name),
                "pii": pii_settings(plan),
                "enrich": {"version": sluice_transform::enrich::ENRICH_VERSION, "language": "whatlang"},
                "embedded_context": sluice_core::embedding_input::CONTEXT_VERSION,
            }),
        ),
        (
            stages.model,
            "embed",
            serde_json::json!({
                "model": spec.name,
                "architecture": spec.architecture,
                "dimension": spec.output_dimension(),
                "truncate_dim": spec.truncate_dim,
                "weights_sha256": spec.files.get("model.safetensors"),
                "pooling": format!("{:?}", spec.pooling).to_lowercase(),
                "normalize": spec.normalize,
                "precision": embedder.precision().to_string(),
            }),
        ),
    ];
    for (fingerprint, stage, settings) in records {
        store.catalog().put_fingerprint(fingerprint, stage, &settings.to_string())?;
    }
    Ok(())
}

/// What the PII stage does, as recorded with the chunk fingerprint.
fn pii_settings(plan: &PipelinePlan) -> serde_json::Value {
    serde_json::json!({
        "version": sluice_transform::pii::PII_VERSION,
        "policy": plan.pii.policy.as_str(),
        "patterns": plan.pii.patterns,
    })
}

/// The audit key the pipeline names (`[audit] key_file` or `key_env`), if any.
pub fn audit_key(plan: &PipelinePlan, data_dir: &Path) -> Result<Option<sluice_store::AuditKey>, PipelineError> {
    use sluice_config::AuditKeySource;
    Ok(match &plan.audit.key {
        None => None,
        Some(AuditKeySource::File(path)) => Some(sluice_store::AuditKey::from_file(path, data_dir)?),
        Some(AuditKeySource::Env(name)) => Some(sluice_store::AuditKey::from_env(name)?),
    })
}

/// A keyed log needs its key, and a key needs a keyed log: the engine refuses to open on a
/// mismatch rather than write entries nobody can verify.
fn check_audit_keying(catalog: &dyn Catalog, plan: &PipelinePlan) -> Result<(), PipelineError> {
    let keyed = catalog.audit_is_keyed()?;
    match (keyed, plan.audit.key.is_some()) {
        (Some(false), true) => Err(PipelineError::Invalid(
            "the audit log was written without a key and [audit] now names one: check it with `sluice audit verify`, \
             then key it with `sluice audit rekey`"
                .into(),
        )),
        (Some(true), false) => Err(PipelineError::Invalid(
            "the audit log is keyed: set [audit] key_file or key_env to the key it was written with".into(),
        )),
        _ => Ok(()),
    }
}

/// The text stage's settings from the plan; the tokenizer by path and hash.
impl TextStage {
    /// The text stage `plan` runs (extract to enrich), in this process, with the tokenizer of its
    /// model from `models_dir` (fetched if missing): for tools and tests that need a pipeline's
    /// chunks without its stores or its model's weights.
    pub fn for_plan(plan: &PipelinePlan, models_dir: &Path) -> Result<Self, PipelineError> {
        let files = sluice_embed::ensure_model(models_dir, &plan.embed.model)?;
        let tokenizer_path = files.path("tokenizer.json");
        let tokenizer_json = std::fs::read(&tokenizer_path).map_err(PipelineError::io(&tokenizer_path))?;
        let settings = text_settings(plan, tokenizer_path, &tokenizer_json);
        TextStage::with_tokenizer(&settings, &tokenizer_json).map_err(PipelineError::Invalid)
    }
}

fn text_settings(plan: &PipelinePlan, tokenizer: PathBuf, tokenizer_json: &[u8]) -> TextSettings {
    let quality = &plan.quality;
    TextSettings {
        limits: extract_limits(plan),
        tokenizer,
        tokenizer_blake3: blake3::hash(tokenizer_json).to_hex().to_string(),
        max_tokens: plan.chunk.max_tokens,
        overlap_tokens: plan.chunk.overlap_tokens,
        quality: sluice_transform::QualityThresholds {
            min_chars_per_page: quality.min_chars_per_page,
            max_replacement_ratio: quality.max_replacement_ratio,
            max_control_ratio: quality.max_control_ratio,
            min_readable_ratio: quality.min_readable_ratio,
        },
        pii: (plan.pii.policy != PiiPolicyPlan::Off)
            .then(|| (plan.pii.policy.as_str().to_owned(), plan.pii.patterns.clone())),
    }
}

/// Audits a pipeline file that differs from the one this data directory last ran with.
fn audit_pipeline_change(store: &Store, plan: &PipelinePlan) -> Result<(), PipelineError> {
    let fingerprint = Fingerprint::of("pipeline file", &format!("{plan:?}")).to_hex();
    let catalog = store.catalog();
    let key = format!("pipeline_plan:{}", plan.name);
    if catalog.meta(&key)?.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let event = AuditEvent::new(
        &plan.name,
        "pipeline",
        "pipeline_changed",
        plan.name.clone(),
        serde_json::json!({"fingerprint": fingerprint, "pii_policy": plan.pii.policy.as_str(),
            "access_source": format!("{:?}", plan.access.source).to_lowercase(),
            "access_rules": plan.access.rules.len()}),
    );
    catalog.audit(&[event])?;
    catalog.set_meta(&key, &fingerprint)?;
    Ok(())
}

fn extract_limits(plan: &PipelinePlan) -> sluice_extract::Limits {
    sluice_extract::Limits {
        max_pages: plan.limits.max_pages,
        max_decompressed_bytes: plan.limits.max_decompressed_bytes,
        max_xml_depth: plan.limits.max_xml_depth,
        max_children: plan.limits.max_children,
        max_child_depth: plan.limits.max_child_depth,
        max_text_chars: plan.limits.max_text_chars,
    }
}
