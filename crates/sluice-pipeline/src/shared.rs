//! A run on a catalog other sluice processes share (`[store] catalog = "postgres"`, DESIGN.md
//! §9). Every writer node scans the same sources; each claims a share of the changed files
//! (up to `[store.postgres] claim_batch`, leases in the catalog, so no file is processed by two
//! nodes and a dead node's files return to the pool), then does the expensive part beside the
//! others — extraction and embedding into the shared cache, no version — and last writes its
//! files as one version under the pipeline's lock: a normal run of just those paths, whose
//! vectors are all in the cache by then. Versions stay global, monotonic and atomic, and the
//! gate, retention and garbage collection run inside that lock, once per version. Files other
//! nodes hold are handed back to the caller (`held_paths`) to look at again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_core::Stage;

use sluice_store::{FileKey, NodeRole};
use tracing::{debug, info, warn};

use crate::run::{self, plan, warm};
use crate::{Engine, Observer, Outcome, PipelineError, RunSummary, Scope};

pub(crate) fn run(engine: &Engine, scope: &Scope, observer: &dyn Observer) -> Result<RunSummary, PipelineError> {
    let pipeline = engine.plan.name.as_str();
    let catalog = engine.store.catalog();
    let node = engine.join_catalog(NodeRole::Writer, "", Arc::new(|| serde_json::json!({})))?;
    let planned = plan(engine, scope)?;
    let files = planned.files();
    if files.is_empty() {
        catch_up(engine)?;
        return Ok(planned.summary);
    }
    let keys: Vec<FileKey> = files.iter().map(|(key, _)| key.clone()).collect();
    let settings = engine.plan.store.catalog.node_settings();
    let (lease_ms, claim_batch) = (settings.lease.as_millis() as i64, settings.claim_batch);
    let claimed = catalog.claim_files(pipeline, &node, &keys, lease_ms, claim_batch)?;
    if claimed.is_empty() {
        debug!(pipeline, files = files.len(), "other nodes hold every changed file");
        catch_up(engine)?;
        let mut summary = planned.summary;
        summary.held_elsewhere = files.len();
        summary.held_paths = files.into_iter().map(|(_, path)| path).collect();
        return Ok(summary);
    }
    let mine: HashSet<&FileKey> = claimed.iter().collect();
    let paths: Vec<PathBuf> =
        files.iter().filter(|(key, _)| mine.contains(key)).map(|(_, path)| path.clone()).collect();
    let scope = Scope::Paths(paths);
    let written = warm(engine, &plan(engine, &scope)?).and_then(|warmed| {
        info!(
            pipeline,
            files = claimed.len(),
            embedded = warmed.texts,
            "claimed files embedded; waiting to write them"
        );
        let one_writer = catalog.lock_pipeline(pipeline)?;
        // Versions other nodes wrote meanwhile reach this node's lexical index first.
        engine.store.catch_up(&one_writer)?;
        let reporting = WarmedObserver { inner: observer, left: AtomicUsize::new(warmed.texts) };
        observer.stage(Stage::Embed, warmed.seconds);
        run::run(engine, &scope, &reporting).map(|summary| (summary, warmed))
    });
    // Written or not (a failed run rolls its version back), the files go back to the pool; if
    // that fails, their leases run out on their own.
    if let Err(err) = catalog.release_claims(pipeline, &node, &claimed) {
        warn!(pipeline, error = %err, "cannot give the claims back; they expire with their lease");
    }
    let (mut summary, warmed) = written?;
    // The write found in the cache what the warm pass embedded: count it as embedded.
    let moved = warmed.texts.min(summary.embedding_cache_hits);
    summary.embeddings_computed += moved;
    summary.embedding_cache_hits -= moved;
    summary.tokens_embedded += warmed.tokens;
    // The warm pass's seconds are not in the version's cost ledger (it runs before the version
    // exists), so they stay out of its stage times too; the log and the metrics have them.
    info!(pipeline, seconds = warmed.seconds, "time spent embedding before the write");
    summary.finish_cache_ratio();
    // What the full scan found unchanged belongs to this run's report too.
    summary.unchanged += planned.summary.unchanged;
    summary.files_seen = summary.files_seen.max(planned.summary.files_seen);
    // Claiming stopped at a full share: what it did not reach is this node's to take next.
    // Otherwise every file it did not get is held by another node.
    let others = files.into_iter().filter(|(key, _)| !mine.contains(key)).map(|(_, path)| path);
    if claimed.len() == claim_batch {
        summary.requeued_paths.extend(others);
    } else {
        summary.held_paths.extend(others);
        summary.held_elsewhere = summary.held_paths.len();
    }
    Ok(summary)
}

/// Applies the versions other nodes committed to this node's indexes, when there are any (a
/// read, and the pipeline's lock only then).
pub(crate) fn catch_up(engine: &Engine) -> Result<usize, PipelineError> {
    let store = &engine.store;
    if store.newest_committed()? <= store.applied_version() {
        return Ok(0);
    }
    let no_writer = store.catalog().lock_pipeline(&engine.plan.name)?;
    Ok(store.catch_up(&no_writer)?)
}

/// Passes a run's progress on, reporting the cache hits on texts the warm pass had just
/// embedded as what they are: computed by this run.
struct WarmedObserver<'a> {
    inner: &'a dyn Observer,
    /// Texts the warm pass embedded that no hit has been moved back for yet.
    left: AtomicUsize,
}

impl Observer for WarmedObserver<'_> {
    fn started(&self, documents: usize) {
        self.inner.started(documents);
    }

    fn document(&self, outcome: Outcome<'_>) {
        self.inner.document(outcome);
    }

    fn embedded(&self, outcome: Outcome<'_>) {
        self.inner.embedded(outcome);
    }

    fn stage(&self, stage: Stage, seconds: f64) {
        self.inner.stage(stage, seconds);
    }

    fn embeddings(&self, computed: usize, cache_hits: usize) {
        let moved = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| Some(left - left.min(cache_hits)))
            .map_or(0, |left| left.min(cache_hits));
        self.inner.embeddings(computed + moved, cache_hits - moved);
    }

    fn cost(&self, cost: &sluice_store::DocumentCost) {
        self.inner.cost(cost);
    }
}
