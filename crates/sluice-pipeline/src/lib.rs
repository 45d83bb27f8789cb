//! One pipeline, end to end: reconcile the sources with the ledger, run the stages on what
//! changed, and commit the result as one dataset version.
//!
//! [`Engine`] owns the model, the chunker and the stores of one pipeline. A run is synchronous
//! and CPU-bound; the daemon calls it from a blocking thread. Runs of one engine are serialised
//! (one version is written at a time); searches run alongside them.

mod access;
mod error;
mod evaluate;
mod meter;
mod observer;
mod parsers;
mod prepare;
mod run;
mod scan;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_config::{PiiPolicyPlan, PipelinePlan};
use sluice_core::{ChunkId, Fingerprint, ReadAccess, Version};
use sluice_embed::{EmbedOptions, Embedder};
use sluice_store::{
    AuditEvent, ExportFormat, ExportSummary, GcReport, LedgerChange, Lineage, QuarantineEntry, SearchHit, SearchMode,
    SearchRequest, StageFingerprints, Store, VerifyReport, VersionDiff, VersionInfo, VersionState,
};
use sluice_transform::Chunker;
use sluice_transform::pii::{PiiDetector, PiiPolicy};
use tracing::info;

pub use access::{
    ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_READ, ACL_USER, ACL_USER_OBJ, AccessResolver, AclEntry,
    encode_posix_acl, parse_posix_acl, posix_readers,
};
pub use error::PipelineError;
pub use evaluate::{DocumentKey, EvalOptions, EvalReport};
pub use observer::{Observer, Outcome, Quiet};
pub use parsers::serve_worker;
pub use scan::{Root, is_ignored_name};
pub use summary::RunSummary;

/// What a run looks at.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every file under every source root (start-up and periodic reconcile, `sluice ingest`).
    All,
    /// Only these paths (files or folders), e.g. from file-system events.
    Paths(Vec<PathBuf>),
}

pub struct Engine {
    plan: PipelinePlan,
    roots: Vec<Root>,
    store: Store,
    embedder: Embedder,
    chunker: Chunker,
    /// Per stage: what decides a document's text, chunks and vectors.
    stages: StageFingerprints,
    fingerprint: Fingerprint,
    run_lock: Mutex<()>,
    stop_requested: AtomicBool,
    /// Threads for reading, extracting and chunking documents, apart from the global rayon pool
    /// that the CPU encoder's matrix products use.
    prepare_pool: rayon::ThreadPool,
    parsers: parsers::Parsers,
    quality: sluice_transform::QualityThresholds,
    /// Resolves each file's readers from the share and the `[access]` rules.
    access: AccessResolver,
    /// The PII stage; `None` when `pii.policy = "off"`.
    pii: Option<(PiiDetector, PiiPolicy)>,
}

/// A search's answer: the version it ran against and the hits.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SearchResponse {
    /// `None` when nothing has been committed yet.
    pub version: Option<Version>,
    pub hits: Vec<SearchHit>,
}

impl Engine {
    /// Loads the model (fetching it on first use), then opens the stores, which rolls back a
    /// version a crash left pending. Source roots must exist.
    pub fn open(plan: PipelinePlan, data_dir: &Path, models_dir: &Path) -> Result<Self, PipelineError> {
        let files = sluice_embed::ensure_model(models_dir, &plan.embed.model)?;
        let options = EmbedOptions { device: plan.embed.device, precision: plan.embed.precision };
        let embedder = Embedder::load_with(&files, options)?;
        let tokenizer_path = files.path("tokenizer.json");
        let tokenizer_json = std::fs::read(&tokenizer_path).map_err(PipelineError::io(&tokenizer_path))?;
        let chunker = Chunker::new(&tokenizer_json, plan.chunk.max_tokens, plan.chunk.overlap_tokens)?;
        let roots = plan
            .sources
            .iter()
            .map(|source| Root::new(&source.path).map_err(PipelineError::io(&source.path)))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store::open(data_dir, &plan.name, embedder.dimension())?;
        let pii = pii_stage(&plan)?;
        let stages = StageFingerprints {
            extract: Fingerprint::of(
                "extract",
                &format!("extractor={} clean={}", sluice_extract::EXTRACTOR_VERSION, sluice_transform::CLEAN_VERSION),
            ),
            // The PII policy changes chunk text (masking) and which chunks exist (dropping).
            chunk: Fingerprint::combine(&[
                chunker.fingerprint(),
                Fingerprint::of("pii", &pii_settings(&plan).to_string()),
            ]),
            model: embedder.fingerprint(),
        };
        record_stage_settings(&store, &stages, &plan, &embedder)?;
        audit_pipeline_change(&store, &plan)?;
        let fingerprint = Fingerprint::combine(&[stages.extract, stages.chunk, stages.model]);
        info!(pipeline = %plan.name, fingerprint = %fingerprint, roots = roots.len(), "pipeline ready");
        let quality = sluice_transform::QualityThresholds {
            min_chars_per_page: plan.quality.min_chars_per_page,
            max_replacement_ratio: plan.quality.max_replacement_ratio,
            max_control_ratio: plan.quality.max_control_ratio,
            min_readable_ratio: plan.quality.min_readable_ratio,
        };
        let parsers = parsers::Parsers::InProcess { limits: extract_limits(&plan) };
        let access = AccessResolver::new(plan.access.clone());
        Ok(Self {
            plan,
            roots,
            store,
            embedder,
            chunker,
            stages,
            fingerprint,
            run_lock: Mutex::new(()),
            stop_requested: AtomicBool::new(false),
            prepare_pool: rayon::ThreadPoolBuilder::new()
                .thread_name(|index| format!("sluice-prepare-{index}"))
                .build()?,
            parsers,
            quality,
            access,
            pii,
        })
    }

    /// Runs parsers in worker processes of `executable` (the `sluice` binary, which answers in
    /// its `parse-worker` mode), unless the pipeline file turned isolation off. Without this,
    /// parsers run in this process: a panic still costs one document, but a crash, a runaway
    /// allocation or a hang is not contained.
    pub fn isolate_parsers(&mut self, executable: PathBuf) {
        let limits = &self.plan.limits;
        if limits.isolate_parsers {
            self.parsers = parsers::Parsers::Workers(parsers::WorkerPool::new(
                executable,
                extract_limits(&self.plan),
                limits.parser_memory_bytes,
                limits.parse_timeout,
            ));
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
        run::run(self, scope, observer)
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

    pub fn versions(&self) -> Result<Vec<VersionInfo>, PipelineError> {
        Ok(self.store.catalog().versions(&self.plan.name)?)
    }

    /// Documents that failed a stage, files and embedded files, by path.
    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>, PipelineError> {
        Ok(self.store.catalog().quarantine(&self.plan.name)?)
    }

    /// The quarantine entry at `path`: its own path, or that of the file holding it (the first
    /// such entry, for a file with several quarantined embedded files).
    pub fn quarantine_entry(&self, path: &str) -> Result<Option<QuarantineEntry>, PipelineError> {
        Ok(self.quarantine()?.into_iter().find(|entry| entry.matches(path)))
    }

    /// Makes the next run that covers the quarantined file at `path` process it again, as if
    /// new (a fixed parser, a raised limit); returns its on-disk path. Only the ledger entry is
    /// dropped: the file's live documents stay until that run replaces them, so a crash in
    /// between loses nothing.
    pub fn requeue_quarantined(&self, path: &str) -> Result<PathBuf, PipelineError> {
        let _between_runs = self.run_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = self
            .quarantine_entry(path)?
            .ok_or_else(|| PipelineError::Invalid(format!("{path} is not in quarantine")))?;
        let file = Path::new(&entry.root).join(&entry.rel_path);
        if !file.exists() {
            return Err(PipelineError::Invalid(format!("{} no longer exists", file.display())));
        }
        let forget = LedgerChange::Remove { root: entry.root, rel_path: entry.rel_path };
        self.store.catalog().update_ledger(&self.plan.name, &[forget])?;
        Ok(file)
    }

    /// Where a chunk came from and what made it; `None` also when `access` may not read it.
    pub fn lineage(&self, chunk_id: ChunkId, access: &ReadAccess) -> Result<Option<Lineage>, PipelineError> {
        Ok(self.store.catalog().lineage(&self.plan.name, chunk_id, access)?)
    }

    /// Chunks added and retired from version `from` to `to`, with reasons.
    pub fn diff(&self, from: Version, to: Version) -> Result<VersionDiff, PipelineError> {
        Ok(self.store.catalog().diff(&self.plan.name, from, to)?)
    }

    /// Writes the chunks visible at `version` (default: live) to `out`.
    pub fn export(
        &self,
        version: Option<Version>,
        access: &ReadAccess,
        format: ExportFormat,
        with_vectors: bool,
        out: &Path,
    ) -> Result<ExportSummary, PipelineError> {
        let version = self.version_or_live(version)?;
        Ok(self.store.catalog().export(&self.plan.name, version, access, format, with_vectors, out)?)
    }

    /// Records an action taken on this pipeline by `principal` (a token's user, or
    /// `local:<user>` for the command line).
    pub fn audit(
        &self,
        principal: &str,
        action: &str,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Result<(), PipelineError> {
        let event = AuditEvent::new(&self.plan.name, principal, action, subject, detail);
        Ok(self.store.catalog().audit(&[event])?)
    }

    /// Points `live` at committed version N; `force` overrides a hold by the evaluation gate.
    pub fn promote(&self, version: Version, principal: &str, force: bool) -> Result<(), PipelineError> {
        let before = self.store.live_version()?;
        let gate = self.store.catalog().gate(&self.plan.name, version)?;
        self.store.promote(version, force)?;
        info!(pipeline = %self.plan.name, version, force, "promoted to live");
        let detail = serde_json::json!({"version": version, "previous_live": before, "gate": gate, "force": force});
        self.audit(principal, "promoted", format!("version {version}"), detail)
    }

    /// Moves `live` back to the newest committed version before it; returns that version.
    pub fn roll_back_live(&self, principal: &str) -> Result<Version, PipelineError> {
        let before = self.store.live_version()?;
        let version = self.store.roll_back_live()?;
        info!(pipeline = %self.plan.name, version, "live rolled back");
        let detail = serde_json::json!({"version": version, "previous_live": before});
        self.audit(principal, "rolled_back", format!("version {version}"), detail)?;
        Ok(version)
    }

    /// Pins or unpins a version: a pinned version is kept by retention whatever its age.
    pub fn pin(&self, version: Version, pinned: bool, principal: &str) -> Result<(), PipelineError> {
        self.store.catalog().set_pinned(&self.plan.name, version, pinned)?;
        let action = if pinned { "pinned" } else { "unpinned" };
        self.audit(principal, action, format!("version {version}"), serde_json::json!({"version": version}))
    }

    /// Applies retention now (it also runs after every committed run), between runs.
    pub fn collect_garbage(&self, principal: &str) -> Result<GcReport, PipelineError> {
        let _between_runs = self.run_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let report = self.store.collect_garbage(self.plan.retention.keep_versions)?;
        let detail = serde_json::to_value(&report).unwrap_or_default();
        self.audit(principal, "garbage_collected", "retention", detail)?;
        Ok(report)
    }

    /// Compares catalog, Qdrant and Tantivy (between runs, so no version is half written).
    pub fn verify(&self, version: Option<Version>) -> Result<VerifyReport, PipelineError> {
        let _between_runs = self.run_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(self.store.verify(version)?)
    }

    /// `version` if given, else the one `live` points at.
    fn version_or_live(&self, version: Option<Version>) -> Result<Version, PipelineError> {
        match version {
            Some(version) => Ok(version),
            None => self.store.live_version()?.ok_or_else(|| PipelineError::Invalid("nothing is live yet".into())),
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
        let response = self.search_unaudited(query, version, k, mode, access)?;
        if let Some(version) = response.version {
            let chunk_ids: Vec<String> = response.hits.iter().map(|hit| hit.chunk_id.to_hex()).collect();
            let detail = serde_json::json!({"version": version, "mode": mode, "k": k, "chunk_ids": chunk_ids});
            self.audit(principal, "search", query, detail)?;
        }
        Ok(response)
    }

    /// A search as [`Engine::search`], without its audit entry (evaluation runs are audited whole).
    pub(crate) fn search_unaudited(
        &self,
        query: &str,
        version: Option<Version>,
        k: usize,
        mode: SearchMode,
        access: &ReadAccess,
    ) -> Result<SearchResponse, PipelineError> {
        let catalog = self.store.catalog();
        let version = match version {
            Some(version) => match catalog.version_state(&self.plan.name, version)? {
                Some(VersionState::Committed) => version,
                Some(state) => {
                    return Err(PipelineError::Invalid(format!("version {version} is {state:?}, not committed")));
                }
                None => {
                    return Err(PipelineError::Invalid(format!("version {version} does not exist")));
                }
            },
            None => match self.store.live_version()? {
                Some(version) => version,
                None => {
                    return Ok(SearchResponse { version: None, hits: Vec::new() });
                }
            },
        };
        let vector = match mode {
            SearchMode::Lexical => None,
            SearchMode::Hybrid | SearchMode::Dense => {
                self.embedder.embed(&[query], self.batch_tokens())?.into_iter().next()
            }
        };
        let search = &self.plan.search;
        let hits = self.store.search(&SearchRequest {
            query,
            vector: vector.as_deref(),
            version,
            k,
            mode,
            lexical_candidates: search.lexical_candidates,
            dense_candidates: search.dense_candidates,
            rrf_k: search.rrf_k,
            lexical_weight: search.lexical_weight,
            dense_weight: search.dense_weight,
            hnsw_ef: search.hnsw_ef,
            access,
        })?;
        Ok(SearchResponse { version: Some(version), hits })
    }
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
            }),
        ),
        (
            stages.model,
            "embed",
            serde_json::json!({
                "model": spec.name,
                "architecture": spec.architecture,
                "dimension": spec.dimension,
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

fn pii_stage(plan: &PipelinePlan) -> Result<Option<(PiiDetector, PiiPolicy)>, PipelineError> {
    let policy = match plan.pii.policy {
        PiiPolicyPlan::Off => return Ok(None),
        PiiPolicyPlan::Tag => PiiPolicy::Tag,
        PiiPolicyPlan::Mask => PiiPolicy::Mask,
        PiiPolicyPlan::DropChunk => PiiPolicy::DropChunk,
    };
    let detector = PiiDetector::new(&plan.pii.patterns).map_err(|err| PipelineError::Invalid(err.to_string()))?;
    Ok(Some((detector, policy)))
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
    }
}
