//! One run: reconcile, retire, prepare, dedup, embed, write, commit (DESIGN.md §3).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use sluice_config::{NearDuplicates, PiiPolicyPlan};
use sluice_core::embedding_input::embedding_input;
use sluice_core::records::MinHash;
use sluice_core::{Acl, ChunkId, ContentHash, DocumentId, DocumentMetadata, Stage, StageFailure, TextHash};
use sluice_store::{
    ChangeReason, DocumentCost, DocumentWrite, FileStatus, LedgerChange, LedgerEntry, NewChunk, NewDocument,
    QuarantineEntry, StageCost, VersionWriter, join_path, now_ms,
};
use sluice_transform::near_dup::Signature;
use tracing::{debug, info, warn};

use crate::ahead::{Budget, prepare_in_order};
use crate::meter::Meter;
use crate::prepare::{
    PrepareContext, PrepareInput, PrepareOutcome, Prepared, PreparedDocument, PreparedEmbedded, prepare,
};
use crate::scan::{DiskFile, FileChange, Root, reconcile, relative, stat_with_readers};
use crate::{Engine, Observer, Outcome, PipelineError, RunSummary, Scope};

/// Documents dedup'd, embedded and written per step (fewer when the memory budget is spent).
const BATCH_DOCUMENTS: usize = 32;
/// Distinct chunk texts given to the model per call: what the tokenizer and the vectors of one
/// call hold stays bounded however large a document is.
const EMBED_SLICE_TEXTS: usize = 1024;
/// The content hash recorded for a file whose bytes were never read.
const NEVER_READ: ContentHash = ContentHash::from_bytes([0; 32]);

/// A file to extract and index in this run, and why.
struct Task {
    root: Root,
    rel_path: String,
    disk: DiskFile,
    reason: ChangeReason,
    /// Quarantine it without reading: it was in the daemon's hands when the daemon stopped.
    verdict: Option<StageFailure>,
}

impl Task {
    fn new(root: &Root, rel_path: String, disk: DiskFile, reason: ChangeReason) -> Self {
        Self { root: root.clone(), rel_path, disk, reason, verdict: None }
    }
}

/// Everything a run decides that the commit records.
#[derive(Default)]
struct Decisions {
    ledger: Vec<LedgerChange>,
    quarantined: Vec<QuarantineEntry>,
    cleared_quarantine: Vec<(String, String)>,
    /// In-flight records a crash left, for files this run quarantined.
    cleared_in_flight: Vec<(String, String)>,
}

pub(crate) fn run(engine: &Engine, scope: &Scope, observer: &dyn Observer) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let pipeline = engine.plan.name.as_str();
    let catalog = engine.store.catalog();
    // After a model change the first run covers every source, so that no version holds
    // chunks of two models (a query is embedded by its version's one model).
    let scope = match scope {
        Scope::Paths(_) if catalog.has_live_documents_of_other_models(pipeline, engine.stages.model)? => {
            info!(pipeline, "the model changed: this run re-embeds every source");
            &Scope::All
        }
        scope => scope,
    };
    // Versions a crash left between commit and evaluation are judged first.
    if engine.gate_blocks() {
        for version in catalog.ungated_versions(pipeline)? {
            engine.judge(version)?;
        }
    }
    let Planned { mut summary, mut decisions, mut tasks, deletions } = plan(engine, scope)?;
    judge_crashed_files(engine, &mut tasks, &mut decisions)?;

    if tasks.is_empty() && deletions.is_empty() {
        catalog.update_ledger(pipeline, &decisions.ledger)?;
        summary.elapsed_seconds = started.elapsed().as_secs_f64();
        debug!(pipeline, unchanged = summary.unchanged, touched = summary.touched, "nothing changed");
        return Ok(summary);
    }

    let mut writer = engine.store.begin(engine.fingerprint, &new_run_id(pipeline))?;
    info!(
        pipeline,
        version = writer.version(),
        new = summary.new,
        changed = summary.changed,
        deleted = summary.deleted,
        "writing version"
    );

    // Retire what was deleted or changed; a duplicate whose original goes away is indexed now.
    let mut retired = Vec::new();
    for (root, rel_path) in &deletions {
        retired.extend(retire_path(engine, &mut writer, &root.key, rel_path, ChangeReason::Deleted, &mut summary)?);
        decisions.ledger.push(LedgerChange::Remove { root: root.key.clone(), rel_path: rel_path.clone() });
        decisions.cleared_quarantine.push((root.key.clone(), rel_path.clone()));
        observer.document(Outcome::Deleted);
    }
    for task in &mut tasks {
        let live = catalog.live_documents_of_file(pipeline, &task.root.key, &task.rel_path)?;
        // A file the ledger forgot (`quarantine retry`) while its documents stay live.
        if task.reason == ChangeReason::New && !live.is_empty() {
            task.reason = ChangeReason::Reprocessed;
        }
        retired.extend(retire(&mut writer, live, task.reason, &mut summary)?);
    }
    tasks.extend(orphaned_duplicates(engine, &mut writer, retired, &tasks, &deletions, &mut summary)?);

    observer.started(tasks.len());
    let run_id = writer.run_id().to_owned();
    let budget = Budget::new(engine.plan.limits.max_buffered_bytes, engine.plan.embed.prepare_ahead);
    let context = prepare_context(engine, &budget, &run_id);
    let prepare_task = |index: usize| prepare_at(&context, &tasks, index);
    // Preparation (read, extract, clean, chunk) runs on its own threads while this one dedups,
    // embeds and writes what is ready, so the model rarely waits for documents; the budget
    // bounds what waits.
    let threads = if engine.plan.embed.prepare_ahead { engine.prepare_threads } else { 0 };
    let stop = || engine.stop_requested();
    let mut consume = |range: std::ops::Range<usize>, prepared: Vec<Prepared>| -> Result<bool, PipelineError> {
        let batch = &tasks[range];
        process_batch(engine, &mut writer, batch, prepared, observer, &mut summary, &mut decisions)?;
        Ok(true)
    };
    let consumed =
        prepare_in_order(tasks.len(), threads, BATCH_DOCUMENTS, &budget, &stop, &prepare_task, &mut consume)?;
    if consumed < tasks.len() {
        // Stop requested. Forget the files not reached, so the next run sees them as new: some
        // lost their old version above (changed files, orphaned duplicates) without getting a
        // new one.
        summary.stopped_early = true;
        for task in &tasks[consumed..] {
            decisions
                .ledger
                .push(LedgerChange::Remove { root: task.root.key.clone(), rel_path: task.rel_path.clone() });
        }
        warn!(pipeline, "stop requested: committing the documents processed so far");
    }

    summary.finish_cache_ratio();
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    let version = writer.version();
    summary.version = Some(version);
    let record = serde_json::to_value(&summary).unwrap_or_default();
    let promote = !engine.gate_blocks();
    crate::failpoint::pause("before_commit", pipeline);
    let version = writer.commit(
        &decisions.ledger,
        &decisions.quarantined,
        &decisions.cleared_quarantine,
        &decisions.cleared_in_flight,
        &record,
        promote,
    )?;
    // Retention after every commit: versions past `keep_versions` expire and what only they
    // could see is removed. A failure here loses nothing; the next commit or start finishes it.
    if let Err(err) = engine.store.collect_garbage(engine.plan.retention.keep_versions, "pipeline") {
        warn!(pipeline, error = %err, "retention failed; finished at the next start");
    }
    let audit = &engine.plan.audit;
    if let Err(err) = engine.store.catalog().rotate_audit(audit.rotate_after_entries, audit.keep_segment_days) {
        warn!(pipeline, error = %err, "audit rotation failed; tried again after the next commit");
    }
    // The evaluation gate: `live` moves to the version only if it passes (when it blocks).
    summary.gate = engine.judge(version)?.map(str::to_owned);
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    info!(
        pipeline,
        version,
        indexed = summary.indexed,
        quarantined = summary.quarantined_total(),
        chunks_added = summary.chunks_added,
        embedded = summary.embeddings_computed,
        cache_hits = summary.embedding_cache_hits,
        seconds = summary.elapsed_seconds,
        "run committed"
    );
    Ok(summary)
}

/// What a scan found to do: files to process, files deleted, and ledger-only changes.
pub(crate) struct Planned {
    pub summary: RunSummary,
    decisions: Decisions,
    tasks: Vec<Task>,
    deletions: Vec<(Root, String)>,
}

impl Planned {
    /// Every file the plan touches, as (root key, relative path), with its absolute path.
    pub fn files(&self) -> Vec<(sluice_store::FileKey, PathBuf)> {
        let touched = self.decisions.ledger.iter().filter_map(|change| match change {
            LedgerChange::Upsert(entry) => Some((entry.root.clone(), entry.rel_path.clone())),
            LedgerChange::Remove { .. } => None,
        });
        self.tasks
            .iter()
            .map(|task| (task.root.key.clone(), task.rel_path.clone()))
            .chain(self.deletions.iter().map(|(root, rel)| (root.key.clone(), rel.clone())))
            .chain(touched)
            .map(|(root, rel)| {
                let path = PathBuf::from(&root).join(&rel);
                ((root, rel), path)
            })
            .collect()
    }
}

/// Scans the scope against the ledger: what changed, what is stale, what is gone.
pub(crate) fn plan(engine: &Engine, scope: &Scope) -> Result<Planned, PipelineError> {
    let pipeline = engine.plan.name.as_str();
    let catalog = engine.store.catalog();
    let mut summary = RunSummary::default();
    let mut decisions = Decisions::default();
    let mut tasks = Vec::new();
    let mut deletions = Vec::new();
    for (root, only) in scoped_roots(&engine.roots, scope) {
        let ledger = catalog.ledger(pipeline, &root.key)?;
        let changes = reconcile(&root, &ledger, only.as_deref(), &engine.access);
        summary.unchanged += changes.unchanged;
        for (rel_path, change) in changes.changes {
            match change {
                FileChange::New { disk } => {
                    summary.new += 1;
                    tasks.push(Task::new(&root, rel_path, disk, ChangeReason::New));
                }
                FileChange::Changed { disk } => {
                    summary.changed += 1;
                    tasks.push(Task::new(&root, rel_path, disk, ChangeReason::DocumentChanged));
                }
                FileChange::Touched { disk, content_hash } => {
                    summary.touched += 1;
                    let status = ledger.get(&rel_path).map_or(FileStatus::Indexed, |entry| entry.status);
                    decisions.ledger.push(LedgerChange::Upsert(LedgerEntry {
                        root: root.key.clone(),
                        rel_path,
                        size: disk.size(),
                        mtime_ns: disk.mtime_ns(),
                        content_hash,
                        status,
                        readers: Some(disk.readers),
                    }));
                }
                FileChange::AccessChanged { disk } => {
                    summary.access_changed += 1;
                    match ledger.get(&rel_path) {
                        // No documents to update: the file is read again when its bytes change.
                        Some(entry) if entry.status == FileStatus::Quarantined => {
                            decisions.ledger.push(LedgerChange::Upsert(LedgerEntry {
                                size: disk.size(),
                                mtime_ns: disk.mtime_ns(),
                                readers: Some(disk.readers),
                                ..entry.clone()
                            }));
                        }
                        _ => tasks.push(Task::new(&root, rel_path, disk, ChangeReason::AccessChanged)),
                    }
                }
                FileChange::Deleted => {
                    summary.deleted += 1;
                    deletions.push((root.clone(), rel_path));
                }
            }
        }
        tasks.extend(stale_files(engine, &root, only.as_deref(), &tasks, &deletions, &mut summary)?);
    }
    summary.files_seen = summary.new + summary.changed + summary.touched + summary.unchanged + summary.access_changed;
    Ok(Planned { summary, decisions, tasks, deletions })
}

/// What [`warm`] embedded: texts, their tokens, and the seconds it took.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Warmed {
    pub texts: usize,
    pub tokens: usize,
    pub seconds: f64,
}

/// Prepares the planned files and embeds the chunk texts the cache lacks, writing no version:
/// the expensive part of a run, which nodes sharing a catalog do side by side before each
/// writes its version in turn (`shared.rs`).
pub(crate) fn warm(engine: &Engine, planned: &Planned) -> Result<Warmed, PipelineError> {
    let started = Instant::now();
    let pipeline = engine.plan.name.as_str();
    let tasks = &planned.tasks;
    let run_id = new_run_id(pipeline);
    let budget = Budget::new(engine.plan.limits.max_buffered_bytes, engine.plan.embed.prepare_ahead);
    let context = prepare_context(engine, &budget, &run_id);
    let prepare_task = |index: usize| prepare_at(&context, tasks, index);
    let mut warmed = Warmed::default();
    let mut consume = |_: std::ops::Range<usize>, prepared: Vec<Prepared>| -> Result<bool, PipelineError> {
        let mut chunks = Vec::new();
        for file in &prepared {
            let documents = match &file.outcome {
                PrepareOutcome::Ready(document) => Some(document.as_ref()),
                _ => None,
            };
            let embedded = file.embedded.iter().filter_map(|e| e.result.as_ref().ok());
            for document in documents.into_iter().chain(embedded) {
                chunks.extend(document.chunks.iter().map(|chunk| (document.title.clone(), chunk)));
            }
        }
        let (texts, tokens) = cache_missing(engine, &chunks)?;
        warmed.texts += texts;
        warmed.tokens += tokens;
        Ok(true)
    };
    let threads = if engine.plan.embed.prepare_ahead { engine.prepare_threads } else { 0 };
    let stop = || engine.stop_requested();
    let outcome = prepare_in_order(tasks.len(), threads, BATCH_DOCUMENTS, &budget, &stop, &prepare_task, &mut consume);
    // Large files were recorded in flight while in hand; the writing run records them again.
    engine.store.catalog().clear_in_flight_of_run(pipeline, &run_id)?;
    outcome?;
    warmed.seconds = started.elapsed().as_secs_f64();
    Ok(warmed)
}

/// What preparing a run's files needs from the engine.
fn prepare_context<'a>(engine: &'a Engine, budget: &'a Budget, run_id: &'a str) -> PrepareContext<'a> {
    PrepareContext {
        pipeline: &engine.plan.name,
        catalog: engine.store.catalog(),
        fingerprints: &engine.stages,
        max_file_bytes: engine.plan.limits.max_file_bytes,
        parsers: &engine.parsers,
        access: &engine.access,
        budget,
        run_id,
    }
}

/// Prepares (reads, extracts, cleans, chunks) task `index` of `tasks`.
fn prepare_at(context: &PrepareContext<'_>, tasks: &[Task], index: usize) -> Prepared {
    let task = &tasks[index];
    let input = PrepareInput {
        index,
        root: &task.root,
        rel_path: &task.rel_path,
        disk: &task.disk,
        verdict: task.verdict.as_ref(),
    };
    prepare(context, &input)
}

/// Embeds what the cache lacks of these chunks (each with its document's title) and caches
/// the vectors; returns how many, and their tokens.
fn cache_missing(
    engine: &Engine,
    chunks: &[(Option<String>, &sluice_core::Chunk)],
) -> Result<(usize, usize), PipelineError> {
    let catalog = engine.store.catalog();
    let model = engine.embedder.fingerprint();
    let inputs: Vec<(TextHash, Cow<'_, str>, u32)> = chunks
        .iter()
        .map(|(title, chunk)| {
            let (key, input) = embedding_input(title.as_deref(), &chunk.heading_path, &chunk.text, chunk.text_hash);
            (key, input, chunk.token_count)
        })
        .collect();
    let hashes: Vec<TextHash> = inputs.iter().map(|(key, _, _)| *key).collect();
    let cached = catalog.cached_embeddings(model, &hashes)?;
    let mut queued = HashSet::new();
    let missing: Vec<&(TextHash, Cow<'_, str>, u32)> =
        inputs.iter().filter(|(key, _, _)| !cached.contains_key(key) && queued.insert(*key)).collect();
    for slice in missing.chunks(EMBED_SLICE_TEXTS) {
        let texts: Vec<&str> = slice.iter().map(|(_, input, _)| input.as_ref()).collect();
        let computed = engine.embedder.embed(&texts, engine.batch_tokens())?;
        let entries: Vec<(TextHash, &[f32])> =
            slice.iter().zip(&computed).map(|((key, _, _), vector)| (*key, vector.as_slice())).collect();
        catalog.put_embeddings(model, &entries)?;
    }
    Ok((missing.len(), missing.iter().map(|(_, _, tokens)| *tokens as usize).sum()))
}

/// The roots a scope touches, each with the relative paths to look at (`None`: all).
fn scoped_roots(roots: &[Root], scope: &Scope) -> Vec<(Root, Option<Vec<String>>)> {
    match scope {
        Scope::All => roots.iter().map(|root| (root.clone(), None)).collect(),
        Scope::Paths(paths) => {
            // `None` for a root named itself: everything under it.
            let mut by_root: BTreeMap<usize, Option<Vec<String>>> = BTreeMap::new();
            for path in paths {
                // Events name paths as the watcher saw them; compare canonical forms where the
                // path still exists, and the plain form for deleted paths.
                let path = canonical(path);
                if let Some(index) = roots.iter().position(|root| root.path == path) {
                    by_root.insert(index, None);
                    continue;
                }
                let under_root = roots.iter().enumerate().find_map(|(i, root)| Some((i, relative(&root.path, &path)?)));
                if let Some((index, rel)) = under_root
                    && let Some(rels) = by_root.entry(index).or_insert_with(|| Some(Vec::new()))
                {
                    rels.push(rel);
                }
            }
            by_root.into_iter().map(|(index, rels)| (roots[index].clone(), rels)).collect()
        }
    }
}

/// The canonical form of a path from a file event. A deleted file has none, so its parent's
/// canonical form (the root may sit behind a symbolic link) is joined with its name.
fn canonical(path: &std::path::Path) -> PathBuf {
    if let Ok(path) = std::fs::canonicalize(path) {
        return path;
    }
    match (path.parent().and_then(|parent| std::fs::canonicalize(parent).ok()), path.file_name()) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path.to_owned(),
    }
}

/// A run's id: unique per run, recorded with its version (lineage names it).
fn new_run_id(pipeline: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("sluice run id v1");
    hasher.update(pipeline.as_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.update(&nanos.to_le_bytes());
    hasher.finalize().to_hex()[..32].to_owned()
}

/// Files under `root` (within `only`, if given) whose live documents were written under other
/// stage fingerprints (a new extractor, chunker settings or model): processed again, unless
/// the run already handles them.
fn stale_files(
    engine: &Engine,
    root: &Root,
    only: Option<&[String]>,
    tasks: &[Task],
    deletions: &[(Root, String)],
    summary: &mut RunSummary,
) -> Result<Vec<Task>, PipelineError> {
    let stale = engine.store.catalog().stale_files(&engine.plan.name, &root.key, &engine.stages)?;
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let handled: HashSet<&str> = tasks
        .iter()
        .filter(|task| task.root.key == root.key)
        .map(|task| task.rel_path.as_str())
        .chain(deletions.iter().filter(|(r, _)| r.key == root.key).map(|(_, rel)| rel.as_str()))
        .collect();
    let in_scope = |rel: &str| {
        only.is_none_or(|paths| {
            paths
                .iter()
                .any(|p| rel.strip_prefix(p.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
        })
    };
    let mut requeued = Vec::new();
    for (rel_path, reason) in stale {
        if handled.contains(rel_path.as_str()) || !in_scope(&rel_path) {
            continue;
        }
        // Gone from disk: the reconcile that covers it retires it as deleted.
        let Some(disk) = stat_with_readers(&engine.access, root, &rel_path) else { continue };
        summary.reprocessed += 1;
        requeued.push(Task::new(root, rel_path, disk, reason));
    }
    Ok(requeued)
}

/// Retires the live documents of the file at this path (its own and its embedded files');
/// returns their ids.
fn retire_path(
    engine: &Engine,
    writer: &mut VersionWriter<'_>,
    root_key: &str,
    rel_path: &str,
    reason: ChangeReason,
    summary: &mut RunSummary,
) -> Result<Vec<DocumentId>, PipelineError> {
    let live = engine.store.catalog().live_documents_of_file(&engine.plan.name, root_key, rel_path)?;
    retire(writer, live, reason, summary)
}

/// Retires these live documents; returns their ids.
fn retire(
    writer: &mut VersionWriter<'_>,
    live: Vec<sluice_store::LiveDocument>,
    reason: ChangeReason,
    summary: &mut RunSummary,
) -> Result<Vec<DocumentId>, PipelineError> {
    for document in &live {
        summary.chunks_retired += writer.retire(document, reason)?;
    }
    Ok(live.into_iter().map(|document| document.doc_id).collect())
}

/// Live duplicates of documents retired in this run lose their original: retire the file that
/// holds the duplicate (all its documents, as any re-indexed file) and index it again. Its own
/// retired documents may be originals of further duplicates, hence the work list.
fn orphaned_duplicates(
    engine: &Engine,
    writer: &mut VersionWriter<'_>,
    retired: Vec<DocumentId>,
    tasks: &[Task],
    deletions: &[(Root, String)],
    summary: &mut RunSummary,
) -> Result<Vec<Task>, PipelineError> {
    let mut handled: HashSet<(String, String)> = tasks
        .iter()
        .map(|t| (t.root.key.clone(), t.rel_path.clone()))
        .chain(deletions.iter().map(|(root, rel)| (root.key.clone(), rel.clone())))
        .collect();
    let mut originals = retired;
    let mut requeued = Vec::new();
    while let Some(original) = originals.pop() {
        for duplicate in engine.store.catalog().live_duplicates_of(&engine.plan.name, original)? {
            if !handled.insert((duplicate.root.clone(), duplicate.rel_path.clone())) {
                continue;
            }
            let reason = ChangeReason::OriginalRetired;
            originals.extend(retire_path(engine, writer, &duplicate.root, &duplicate.rel_path, reason, summary)?);
            let root = Root { path: PathBuf::from(&duplicate.root), key: duplicate.root.clone() };
            let Some(disk) = stat_with_readers(&engine.access, &root, &duplicate.rel_path) else {
                continue;
            };
            requeued.push(Task::new(&root, duplicate.rel_path, disk, reason));
        }
    }
    Ok(requeued)
}

fn process_batch(
    engine: &Engine,
    writer: &mut VersionWriter<'_>,
    batch: &[Task],
    prepared: Vec<Prepared>,
    observer: &dyn Observer,
    summary: &mut RunSummary,
    decisions: &mut Decisions,
) -> Result<(), PipelineError> {
    let pipeline = engine.plan.name.as_str();
    // Dedup, in path order so the first of several identical documents is the one indexed.
    let dedup = Meter::thread();
    let mut admission =
        Admission { engine, written_texts: HashMap::new(), written_bands: HashMap::new(), pending: Vec::new() };
    let mut costs = Vec::with_capacity(batch.len());
    // Which file each pending document belongs to, to share the batch stages' cost.
    let mut pending_file = Vec::new();
    // Files taken on under an in-flight record: cleared once written.
    let mut in_flight = Vec::new();
    for (task, prepared) in batch.iter().zip(prepared) {
        let file_id = DocumentId::new(pipeline, &task.root.key, &task.rel_path);
        if let PrepareOutcome::Changed(why) = &prepared.outcome {
            requeue(task, why, summary, decisions);
            observer.document(Outcome::Requeued);
            continue;
        }
        if prepared.in_flight {
            in_flight.push((task.root.key.clone(), task.rel_path.clone()));
        }
        // The readers of the descriptor the bytes came from, when they were read.
        let readers = prepared.readers.as_ref().unwrap_or(&task.disk.readers);
        let mut cost = DocumentCost {
            doc_id: file_id,
            root: task.root.key.clone(),
            rel_path: task.rel_path.clone(),
            outcome: "quarantined",
            bytes: task.disk.size(),
            pages: 0,
            tokens: 0,
            stages: BTreeMap::new(),
        };
        let times = &prepared.times;
        for (stage, spent) in [
            (Stage::Read, times.read),
            (Stage::Extract, times.extract),
            (Stage::Clean, times.clean),
            (Stage::Chunk, times.chunk),
            (Stage::Enrich, times.enrich),
        ] {
            if spent.wall > 0.0 {
                summary.add_stage_time(stage, spent.wall);
                observer.stage(stage, spent.wall);
                cost.stages.insert(stage.as_str(), spent);
            }
        }
        let document = match prepared.outcome {
            PrepareOutcome::Ready(document) => *document,
            PrepareOutcome::Failed(content_hash, failure) => {
                // A failed file is remembered in the ledger as quarantined, so it is not retried
                // until it changes; one never read (too large, unreadable) by size and time only.
                let hash = content_hash.unwrap_or(NEVER_READ);
                decisions.ledger.push(ledger_entry(task, readers, hash, FileStatus::Quarantined));
                quarantine(task, "", content_hash, &failure, writer, summary, decisions);
                observer.document(Outcome::Quarantined { reason: &failure.reason });
                costs.push(cost);
                continue;
            }
            PrepareOutcome::Changed(_) => unreachable!("handled above"),
        };
        let content_hash = document.content_hash;
        cost.pages = document.page_count.map_or(0, u64::from);
        let tokens = chunk_tokens(&document);
        let placement = Placement { task, readers, doc_id: file_id, member: String::new(), parent: None };
        // Dedup (the exact lookup and the near-duplicate search) is a cost stage of its own.
        let meter = Meter::thread();
        let status = admission.admit(writer, placement, document, summary, |outcome| observer.document(outcome))?;
        let dedup = meter.stop();
        summary.add_stage_time(Stage::Dedup, dedup.wall);
        observer.stage(Stage::Dedup, dedup.wall);
        cost.stages.entry(Stage::Dedup.as_str()).or_default().add(dedup);
        cost.outcome = status.as_str();
        if status == FileStatus::Indexed {
            cost.tokens += tokens;
        }
        decisions.ledger.push(ledger_entry(task, readers, content_hash, status));
        decisions.cleared_quarantine.push((task.root.key.clone(), task.rel_path.clone()));
        for PreparedEmbedded { member, content_hash, result } in prepared.embedded {
            summary.embedded += 1;
            match result {
                Ok(document) => {
                    let parent_member = member.rsplit_once('/').map_or("", |(parent, _)| parent);
                    let placement = Placement {
                        task,
                        readers,
                        doc_id: file_id.member(&member),
                        parent: Some(file_id.member(parent_member)),
                        member,
                    };
                    let tokens = chunk_tokens(&document);
                    let status =
                        admission.admit(writer, placement, document, summary, |outcome| observer.embedded(outcome))?;
                    if status == FileStatus::Indexed {
                        cost.tokens += tokens;
                    }
                }
                Err(failure) => {
                    quarantine(task, &member, Some(content_hash), &failure, writer, summary, decisions);
                    observer.embedded(Outcome::Quarantined { reason: &failure.reason });
                }
            }
        }
        pending_file.resize(admission.pending.len(), costs.len());
        costs.push(cost);
    }
    let pending = admission.pending;
    let dedup = dedup.stop();
    summary.add_stage_time(Stage::Dedup, dedup.wall);
    observer.stage(Stage::Dedup, dedup.wall);
    share(&mut costs, Stage::Dedup, dedup, &vec![1.0; batch.len()]);

    // Each file's share of the embed and write stages: its chunks' tokens, and its chunks.
    let mut tokens = vec![0.0; costs.len()];
    let mut chunks = vec![0.0; costs.len()];
    for ((_, document_chunks), &file) in pending.iter().zip(&pending_file) {
        tokens[file] += document_chunks.iter().map(|chunk| f64::from(chunk.token_count)).sum::<f64>();
        chunks[file] += document_chunks.len() as f64;
    }

    let meter = Meter::pool();
    let writes = embed(engine, pending, observer, summary)?;
    let mut spent = meter.stop();
    if !engine.embedder.runs_on_cpu() {
        // The forward pass is synchronous: its wall time is the GPU's time.
        spent.gpu = spent.wall;
    }
    summary.add_stage_time(Stage::Embed, spent.wall);
    observer.stage(Stage::Embed, spent.wall);
    share(&mut costs, Stage::Embed, spent, &tokens);

    let meter = Meter::thread();
    writer.write(&writes)?;
    summary.chunks_added += writes.iter().map(|write| write.chunks.len()).sum::<usize>();
    for (root, rel_path) in &in_flight {
        engine.store.catalog().clear_in_flight(pipeline, root, rel_path)?;
    }
    let spent = meter.stop();
    summary.add_stage_time(Stage::Write, spent.wall);
    observer.stage(Stage::Write, spent.wall);
    share(&mut costs, Stage::Write, spent, &chunks);

    for cost in costs {
        observer.cost(&cost);
        writer.record_cost(cost);
    }
    Ok(())
}

/// Tokens of a prepared document's chunks.
fn chunk_tokens(document: &PreparedDocument) -> u64 {
    document.chunks.iter().map(|chunk| u64::from(chunk.token_count)).sum()
}

/// Shares a batch stage's cost among its files by `weights` (evenly when they are all zero),
/// so the files' costs add up to the batch's.
fn share(costs: &mut [DocumentCost], stage: Stage, spent: StageCost, weights: &[f64]) {
    let total: f64 = weights.iter().sum();
    for (cost, weight) in costs.iter_mut().zip(weights) {
        let part = if total > 0.0 { weight / total } else { 1.0 / weights.len() as f64 };
        if part > 0.0 {
            cost.stages.entry(stage.as_str()).or_default().add(spent.scaled(part));
        }
    }
}

/// Where a document sits: the source file, and the embedded file inside it, if any.
struct Placement<'t> {
    task: &'t Task,
    /// Who may read it (the file's readers, as read with its bytes).
    readers: &'t Acl,
    doc_id: DocumentId,
    member: String,
    parent: Option<DocumentId>,
}

/// Exact and near dedup of one batch's documents, and the documents it lets through to
/// embedding.
struct Admission<'e> {
    engine: &'e Engine,
    /// Texts written earlier in this batch, by readers, with their document.
    written_texts: HashMap<(TextHash, Acl), DocumentId>,
    /// LSH band keys of the originals written earlier in this batch, by readers: each with its
    /// documents and their signatures.
    written_bands: HashMap<(i64, Acl), Vec<(DocumentId, Signature)>>,
    pending: Vec<(NewDocument, Vec<sluice_core::Chunk>)>,
}

impl Admission<'_> {
    /// Indexes a document, or records it as a duplicate of a live one with the same text. A
    /// container with no text of its own (a mailbox) duplicates nothing.
    fn admit(
        &mut self,
        writer: &mut VersionWriter<'_>,
        placement: Placement<'_>,
        document: PreparedDocument,
        summary: &mut RunSummary,
        report: impl Fn(Outcome<'_>),
    ) -> Result<FileStatus, PipelineError> {
        let pipeline = self.engine.plan.name.as_str();
        let readers = placement.readers;
        let text_key = (document.text_hash, readers.clone());
        let original = match self.written_texts.get(&text_key) {
            _ if document.chunks.is_empty() => None,
            Some(original) => Some(*original),
            None => self
                .engine
                .store
                .catalog()
                .live_document_with_text(pipeline, document.text_hash, readers)?
                .map(|live| live.doc_id)
                .filter(|original| *original != placement.doc_id),
        };
        let signature = document.minhash.as_deref().and_then(Signature::from_bytes);
        let near = match (&signature, self.engine.plan.dedup.near_duplicates) {
            (Some(signature), NearDuplicates::Link | NearDuplicates::Skip) if original.is_none() => {
                self.near_original(signature, readers, placement.doc_id)?
            }
            _ => None,
        };
        let mut new_document = new_document(self.engine, placement, &document, original);
        new_document.minhash = signature
            .as_ref()
            .map(|signature| MinHash { signature: signature.to_bytes(), bands: signature.band_keys() });
        let path = new_document.path();
        if let Some((near, similarity)) = near {
            summary.near_duplicates += 1;
            new_document.duplicate_of = Some(near);
            new_document.similarity = Some(similarity);
            let detail = json!({"doc_id": new_document.doc_id, "duplicate_of": near, "similarity": similarity});
            writer.record("near_duplicate", path.clone(), detail);
            if self.engine.plan.dedup.near_duplicates == NearDuplicates::Skip {
                summary.duplicates += 1;
                report(Outcome::Duplicate);
                self.pending.push((new_document, Vec::new()));
                return Ok(FileStatus::Duplicate);
            }
        }
        if let Some(original) = original {
            summary.duplicates += 1;
            report(Outcome::Duplicate);
            writer.record("duplicate", path, json!({"doc_id": new_document.doc_id, "duplicate_of": original}));
            self.pending.push((new_document, Vec::new()));
            return Ok(FileStatus::Duplicate);
        }
        if !document.chunks.is_empty() {
            self.written_texts.insert(text_key, new_document.doc_id);
            if let Some(signature) = signature.filter(|_| near.is_none()) {
                for key in signature.band_keys() {
                    let documents = self.written_bands.entry((key, readers.clone())).or_default();
                    documents.push((new_document.doc_id, signature.clone()));
                }
            }
        }
        let action = match new_document.added_reason {
            ChangeReason::New => "ingested",
            _ => "updated",
        };
        let detail = json!({
            "doc_id": new_document.doc_id,
            "reason": new_document.added_reason,
            "chunks": document.chunks.len(),
            "readers": new_document.readers,
        });
        writer.record(action, path.clone(), detail);
        if !document.pii.is_empty() {
            let policy = self.engine.plan.pii.policy;
            let action = if policy == PiiPolicyPlan::Tag { "pii_tagged" } else { "redacted" };
            // Counts only: the values never leave the chunk text the policy allows.
            writer.record(action, path, json!({"policy": policy.as_str(), "counts": document.pii}));
        }
        summary.indexed += 1;
        if document.reused {
            summary.chunks_reused += document.chunks.len();
        }
        report(Outcome::Indexed { chunks: document.chunks.len() });
        self.pending.push((new_document, document.chunks));
        Ok(FileStatus::Indexed)
    }
}

impl Admission<'_> {
    /// The live original (same readers, not a duplicate itself) that `signature`'s document
    /// nearly repeats, with the estimated similarity: the most similar at or above the
    /// pipeline's threshold, among the documents sharing an LSH band with it, in the catalog and
    /// earlier in this batch; equal similarity goes to the smaller document id.
    fn near_original(
        &self,
        signature: &Signature,
        readers: &Acl,
        itself: DocumentId,
    ) -> Result<Option<(DocumentId, f64)>, PipelineError> {
        let bands = signature.band_keys();
        let stored = self.engine.store.catalog().near_duplicate_candidates(&self.engine.plan.name, &bands, readers)?;
        let stored = stored.into_iter().filter_map(|(id, bytes)| Some((id, Signature::from_bytes(&bytes)?)));
        let batch = bands
            .iter()
            .filter_map(|key| self.written_bands.get(&(*key, readers.clone())))
            .flatten()
            .map(|(id, signature)| (*id, signature.clone()));
        let threshold = self.engine.plan.dedup.near_threshold;
        Ok(stored
            .chain(batch)
            .filter(|(id, _)| *id != itself)
            .map(|(id, candidate)| (id, signature.similarity(&candidate)))
            .filter(|(_, similarity)| *similarity >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0))))
    }
}

fn new_document(
    engine: &Engine,
    placement: Placement<'_>,
    document: &PreparedDocument,
    duplicate_of: Option<DocumentId>,
) -> NewDocument {
    NewDocument {
        doc_id: placement.doc_id,
        root: placement.task.root.key.clone(),
        rel_path: placement.task.rel_path.clone(),
        member: placement.member,
        parent: placement.parent,
        embedded_files: document.embedded_files,
        content_hash: document.content_hash,
        text_hash: document.text_hash,
        format: document.format.clone(),
        title: document.title.clone(),
        page_count: document.page_count,
        byte_size: document.byte_size,
        fingerprints: engine.stages,
        duplicate_of,
        added_reason: placement.task.reason,
        readers: placement.readers.clone(),
        pii: document.pii.clone(),
        language: document.language.clone(),
        similarity: None,
        minhash: None,
        metadata: DocumentMetadata {
            file_modified: Some(DocumentMetadata::format_file_time(placement.task.disk.mtime_ns())),
            ..document.metadata.clone()
        },
    }
}

/// What the ledger remembers of a processed file: its size, time and bytes, and how it ended.
fn ledger_entry(task: &Task, readers: &Acl, content_hash: ContentHash, status: FileStatus) -> LedgerChange {
    LedgerChange::Upsert(LedgerEntry {
        root: task.root.key.clone(),
        rel_path: task.rel_path.clone(),
        size: task.disk.size(),
        mtime_ns: task.disk.mtime_ns(),
        content_hash,
        status,
        readers: Some(readers.clone()),
    })
}

/// A file that was not what the scan saw by the time it was read: nothing of it is used, and
/// the ledger forgets it, so the next run (which the daemon schedules for it) looks again.
fn requeue(task: &Task, why: &str, summary: &mut RunSummary, decisions: &mut Decisions) {
    warn!(path = %join_path(&task.root.key, &task.rel_path, ""), why, "file changed between scan and read; looked at again next run");
    summary.requeued += 1;
    summary.requeued_paths.push(task.root.path.join(crate::names::decode_path(&task.rel_path)));
    decisions.ledger.push(LedgerChange::Remove { root: task.root.key.clone(), rel_path: task.rel_path.clone() });
}

/// Files a crash left in flight (see `sluice_store::InFlight`), if still the same bytes, are
/// quarantined by this run without being read again.
fn judge_crashed_files(engine: &Engine, tasks: &mut [Task], decisions: &mut Decisions) -> Result<(), PipelineError> {
    let records = engine.store.catalog().in_flight(&engine.plan.name)?;
    for record in records {
        let Some(task) = tasks.iter_mut().find(|task| task.root.key == record.root && task.rel_path == record.rel_path)
        else {
            continue;
        };
        decisions.cleared_in_flight.push((record.root.clone(), record.rel_path.clone()));
        if task.disk.size() != record.size || task.disk.mtime_ns() != record.mtime_ns {
            continue; // changed since: this is another file now
        }
        let detail = format!(
            "the daemon stopped while it had this file in hand ({} chunks, {} bytes of parsed text); quarantined \
             so that it cannot stop the daemon again; `sluice quarantine retry` processes it again",
            record.chunks, record.answer_bytes
        );
        task.verdict = Some(StageFailure::new(Stage::Extract, "crashed_run", detail));
    }
    Ok(())
}

/// Records a failed file (`member` empty) or embedded file for the quarantine list.
fn quarantine(
    task: &Task,
    member: &str,
    content_hash: Option<ContentHash>,
    failure: &StageFailure,
    writer: &mut VersionWriter<'_>,
    summary: &mut RunSummary,
    decisions: &mut Decisions,
) {
    let version = writer.version();
    let path = join_path(&task.root.key, &task.rel_path, member);
    warn!(path, stage = %failure.stage, reason = %failure.reason, detail = %failure.detail, "document quarantined");
    let detail = json!({"stage": failure.stage.as_str(), "reason": failure.reason, "detail": failure.detail});
    writer.record("quarantined", path.clone(), detail);
    *summary.quarantined.entry(failure.reason.clone()).or_default() += 1;
    let content_hash = content_hash.unwrap_or(NEVER_READ);
    decisions.quarantined.push(QuarantineEntry {
        path,
        root: task.root.key.clone(),
        rel_path: task.rel_path.clone(),
        member: member.to_owned(),
        content_hash,
        stage: failure.stage.as_str().to_owned(),
        reason: failure.reason.clone(),
        detail: failure.detail.clone(),
        version,
        at: now_ms(),
    });
}

/// Attaches a vector to every chunk: from the cache when this model already embedded the same
/// text, from the model otherwise (each distinct text once), and caches the new ones.
fn embed(
    engine: &Engine,
    pending: Vec<(NewDocument, Vec<sluice_core::Chunk>)>,
    observer: &dyn Observer,
    summary: &mut RunSummary,
) -> Result<Vec<DocumentWrite>, PipelineError> {
    let catalog = engine.store.catalog();
    let model = engine.embedder.fingerprint();
    // What the model embeds for each chunk (its text after its title and headings), keyed by
    // the hash of that input.
    let inputs: Vec<Vec<(TextHash, Cow<'_, str>)>> = pending
        .iter()
        .map(|(document, chunks)| {
            chunks
                .iter()
                .map(|chunk| {
                    embedding_input(document.title.as_deref(), &chunk.heading_path, &chunk.text, chunk.text_hash)
                })
                .collect()
        })
        .collect();
    let hashes: Vec<TextHash> = inputs.iter().flatten().map(|(key, _)| *key).collect();
    let mut vectors = catalog.cached_embeddings(model, &hashes)?;
    let hits = hashes.iter().filter(|hash| vectors.contains_key(hash)).count();

    let mut missing: Vec<(TextHash, &str, u32)> = Vec::new();
    let mut queued = HashSet::new();
    let chunks = pending.iter().flat_map(|(_, chunks)| chunks);
    for (chunk, (key, input)) in chunks.zip(inputs.iter().flatten()) {
        if !vectors.contains_key(key) && queued.insert(*key) {
            missing.push((*key, input, chunk.token_count));
        }
    }
    // In slices, so that a document of tens of thousands of chunks is tokenized and embedded a
    // bounded piece at a time.
    for slice in missing.chunks(EMBED_SLICE_TEXTS) {
        let texts: Vec<&str> = slice.iter().map(|(_, text, _)| *text).collect();
        let computed = engine.embedder.embed(&texts, engine.batch_tokens())?;
        let entries: Vec<(TextHash, &[f32])> =
            slice.iter().zip(&computed).map(|((hash, _, _), vector)| (*hash, vector.as_slice())).collect();
        catalog.put_embeddings(model, &entries)?;
        summary.tokens_embedded += slice.iter().map(|(_, _, tokens)| *tokens as usize).sum::<usize>();
        for ((hash, _, _), vector) in slice.iter().zip(computed) {
            vectors.insert(*hash, vector);
        }
    }
    summary.embeddings_computed += queued.len();
    summary.embedding_cache_hits += hits;
    observer.embeddings(queued.len(), hits);

    let chunk_identity = engine.stages.chunk_identity();
    let keys: Vec<Vec<TextHash>> = inputs.iter().map(|inputs| inputs.iter().map(|(key, _)| *key).collect()).collect();
    drop(inputs);
    Ok(pending
        .into_iter()
        .zip(keys)
        .map(|((document, chunks), keys)| {
            let chunks = chunks
                .into_iter()
                .zip(keys)
                .map(|(chunk, key)| NewChunk {
                    id: ChunkId::new(document.doc_id, document.content_hash, chunk_identity, chunk.ordinal),
                    vector: vectors.get(&key).cloned().unwrap_or_default(),
                    chunk,
                })
                .collect();
            DocumentWrite { document, chunks }
        })
        .collect())
}
