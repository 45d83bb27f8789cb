//! Storage for one pipeline: the catalog (source of truth; SQLite), a dense index per
//! embedding model (Qdrant Edge or a Qdrant server) and the lexical index (Tantivy), each
//! behind a trait (`catalog/`, `vectors/`, `lexical/`), kept consistent by the versioned commit
//! protocol of DESIGN.md §3.
//!
//! Protocol for version N: (1) `begin` records N as pending; (2) every retirement and addition
//! is written to the catalog and applied to both indexes, each step idempotent; (3) `commit`
//! makes both indexes durable, then commits N, the ledger and the `live` alias in one SQLite
//! transaction. Every query filters on `valid_from ≤ v < valid_to` for a committed v, so a
//! half-written N is invisible. On open, a pending N left by a crash is rolled back in all three
//! stores; its number is never reused, and the next run redoes the work (the embedding cache
//! makes that cheap).

mod audit;
mod audit_segments;
mod catalog;
mod cluster;
mod cost;
mod diff;
mod error;
mod export;
mod in_flight;
mod lexical;
mod lineage;
mod lock;
mod retention;
mod search;
mod time_travel;
mod tokens;
mod types;
mod vectors;
mod verify;

/// The storage traits, for calling their methods on `&dyn Catalog` and the indexes.
pub mod prelude {
    pub use crate::catalog::{
        AccessHistory, Aliases, AuditArchive, AuditLog, Catalog, ChunkLineage, Cluster, CostLedger, Documents,
        EmbeddingCache, Exports, InFlightLog, QuarantineLog, Retention, TokenStore, VersionDiffs, VersionLog,
    };
    pub use crate::lexical::LexicalIndex;
    pub use crate::vectors::VectorIndex;
}

use std::path::{Path, PathBuf};

use sluice_config::{StorePlan, VectorsPlan};
use sluice_core::{ChunkId, DocumentFacets, Fingerprint, PointKey, VERSION_OPEN, Version};
use tracing::{info, warn};

pub use audit::{Actor, AuditEntry, AuditEvent, AuditKey, AuditProblem, AuditVerification};
pub use catalog::{
    AccessHistory, Aliases, AuditArchive, AuditLog, CATALOG_FILE, Catalog, ChunkLineage, Cluster, CostLedger,
    Documents, EmbeddingCache, Exports, InFlightLog, QuarantineLog, Retention, SqlCatalog, TokenStore, VersionDiffs,
    VersionLog, catalog_exists, now_ms, open_catalog,
};
pub use cluster::{FileKey, NODE_ID_FILE, NodeRecord, NodeRole, NodeStatus, PipelineLock};
pub use cost::{CostReport, DocumentCost, Quantiles, SourceCost, StageCost, StageReport, VersionCost};
pub use diff::{DiffCount, DiffEntry, VersionDiff};
pub use error::{Result, StoreError};
pub use export::{ExportFormat, ExportRow, ExportSummary};
pub use in_flight::InFlight;
pub use lexical::{LexicalAppearance, LexicalDoc, LexicalHit, LexicalIndex, TantivyIndex};
pub use lineage::{Appearance, Lineage, file_uri};
pub use lock::{DataDirLock, create_private_dir};
pub use retention::GcReport;
pub use search::{SearchMode, SearchRequest};
pub use time_travel::{PastAccess, Readable};
pub use tokens::{Role, TokenInfo};
pub use types::*;
pub use vectors::{
    DenseHit, DenseQuery, EdgeVectors, ModelIndexes, PointPayload, ScrollVisitor, ServerConnection, ServerVectors,
    StoredPoint, VectorIndex, VectorPoint,
};
pub use verify::VerifyReport;

/// The three stores of one pipeline.
pub struct Store {
    pipeline: String,
    /// Shared with the search audit writer (`sluice-pipeline`), which outlives no store.
    catalog: std::sync::Arc<dyn Catalog>,
    vectors: ModelIndexes,
    lexical: Box<dyn LexicalIndex>,
    /// The newest committed version this node's indexes hold: found at open, then each commit
    /// and catch-up (shared with the node's heartbeat).
    applied: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Other processes write the catalog (PostgreSQL): versions this node did not write are
    /// applied to its lexical index by [`Store::catch_up`], and the applied version is kept in
    /// `applied_file` beside the index.
    shares_catalog: bool,
    applied_file: PathBuf,
    /// The vectors are in a Qdrant server every node writes (else in this node's Edge index).
    shares_vectors: bool,
    /// How long a rollback of a dead node's version waits for its last writes to the shared
    /// vector store to land (see [`Store::recover`]): a heartbeat.
    takeover_grace: std::time::Duration,
    /// Versions the catalog listed as expired at the last catch-up (`usize::MAX` before the
    /// first): when it changes, retention ran somewhere, and this node forgets what it removed.
    expired_seen: std::sync::atomic::AtomicUsize,
}

/// Where each store of a pipeline lives under the data directory.
pub fn store_paths(data_dir: &Path, pipeline: &str) -> (PathBuf, PathBuf, PathBuf) {
    (data_dir.join(CATALOG_FILE), data_dir.join("qdrant").join(pipeline), data_dir.join("tantivy").join(pipeline))
}

impl Store {
    /// Opens (or creates) the stores of `pipeline`, with its catalog and vectors where `plan` says, and
    /// rolls back any version a crash left pending. The caller holds the data directory's
    /// [`DataDirLock`]. A vector store on another machine that cannot be reached does not stop
    /// the open: the store serves what it can, and the next run waits for the server.
    pub fn open(data_dir: &Path, pipeline: &str, plan: &StorePlan) -> Result<Self> {
        crate::lock::create_private_dir(data_dir)
            .map_err(|source| StoreError::Io { path: data_dir.to_owned(), source })?;
        let (_, vectors_path, lexical_path) = store_paths(data_dir, pipeline);
        let (lexical, lexical_outdated) = TantivyIndex::open(&lexical_path)?;
        let lexical: Box<dyn LexicalIndex> = Box::new(lexical);
        let catalog = open_catalog(data_dir, &plan.catalog)?;
        let vectors = ModelIndexes::new(&vectors_path, &plan.vectors, catalog.clone(), pipeline)?;
        let store = Self {
            pipeline: pipeline.to_owned(),
            catalog,
            vectors,
            lexical,
            applied: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0)),
            expired_seen: std::sync::atomic::AtomicUsize::new(usize::MAX),
            takeover_grace: plan.catalog.node_settings().heartbeat,
            shares_catalog: matches!(plan.catalog, sluice_config::CatalogPlan::Postgres(_)),
            applied_file: lexical_path.join("applied-version"),
            shares_vectors: matches!(plan.vectors, VectorsPlan::Qdrant(_)),
        };
        if store.shares_catalog {
            store.open_shared(lexical_outdated)?;
            return Ok(store);
        }
        if lexical_outdated {
            let rebuilt = store.rebuild_lexical()?;
            warn!(pipeline, chunks = rebuilt, "lexical index had an older schema; rebuilt it from the catalog");
        }
        // Each step is idempotent, and `begin` repeats the first two before every run: a vector
        // store that goes away meanwhile leaves them for then.
        let prepared = store.prepare_vectors().and_then(|()| store.recover());
        match prepared.and_then(|()| store.finish_garbage_collection()) {
            Ok(0) => {}
            Ok(leftovers) => {
                warn!(pipeline, chunks = leftovers, "finished a garbage collection an interruption left behind");
            }
            Err(StoreError::Unavailable(reason)) => {
                warn!(pipeline, %reason, "vector index unavailable; lexical search works, runs wait for it");
            }
            Err(err) => return Err(err),
        }
        // One writer: recovery left the index holding every committed version.
        store.applied.store(store.newest_committed()?, std::sync::atomic::Ordering::Relaxed);
        Ok(store)
    }

    /// Opening on a catalog other nodes write: the vector index's check (and refill), recovery
    /// and the lexical index's catch-up run under the pipeline's lock, when no other node is
    /// writing, so a pending version found is a dead node's (rolled back) and no half-written
    /// version reaches this node's index.
    fn open_shared(&self, lexical_outdated: bool) -> Result<()> {
        let pipeline = self.pipeline.as_str();
        let held = self.catalog.lock_pipeline(pipeline)?;
        // Under the lock too: a refill of a shared collection that found it short while another
        // node was writing (or collecting garbage) would put back points that node just removed.
        if let Err(err) = self.prepare_vectors() {
            match err {
                StoreError::Unavailable(reason) => {
                    warn!(pipeline, %reason, "vector index unavailable; lexical search works, runs wait for it")
                }
                err => return Err(err),
            }
        }
        match self.recover() {
            Err(StoreError::Unavailable(reason)) => {
                warn!(pipeline, %reason, "cannot roll back a dead node's version yet; the next run does")
            }
            other => other?,
        }
        if lexical_outdated {
            let rebuilt = self.rebuild_lexical()?;
            warn!(pipeline, chunks = rebuilt, "lexical index had an older schema; rebuilt it from the catalog");
            self.set_applied(self.newest_committed()?)?;
        } else {
            self.applied.store(read_applied(&self.applied_file), std::sync::atomic::Ordering::Relaxed);
            self.catch_up(&held)?;
        }
        let leftovers = self.finish_garbage_collection()?;
        if leftovers > 0 {
            warn!(pipeline, chunks = leftovers, "finished a garbage collection an interruption left behind");
        }
        Ok(())
    }

    /// Applies to this node's lexical index (and its Edge vectors, when the vectors are not in a
    /// shared server) what other nodes did to the catalog since it last looked: the versions
    /// they committed, in order, each version's added and retired chunks as the catalog has
    /// them now (an upsert by key, so applying one twice changes nothing); the versions they
    /// rolled back (`undo_here`); and what their retention removed. The catalog is the
    /// log; nothing is shipped between nodes. The caller holds the pipeline's lock, so no
    /// version is being written meanwhile. Returns the versions applied.
    ///
    /// The log is complete only from a retained version on: once the version this node holds
    /// has expired, retention may have removed rows whose retirement this node never saw, and
    /// the node resyncs with the catalog instead (`resync`).
    pub fn catch_up(&self, _no_writer: &PipelineLock) -> Result<usize> {
        let applied = self.applied_version();
        let versions = self.catalog.versions(&self.pipeline)?;
        if versions.iter().any(|info| info.version == applied && info.state == VersionState::Expired) {
            let newest = versions
                .iter()
                .filter(|info| info.state == VersionState::Committed)
                .map(|info| info.version)
                .max()
                .unwrap_or(applied);
            let fixed = self.resync()?;
            self.expired_seen.store(
                versions.iter().filter(|info| info.state == VersionState::Expired).count(),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.set_applied(newest)?;
            warn!(pipeline = %self.pipeline, applied, newest, fixed,
                "this node's indexes fell behind retention; made them equal to the catalog");
            let committed = |info: &&VersionInfo| matches!(info.state, VersionState::Committed | VersionState::Expired);
            return Ok(versions.iter().filter(|info| info.version > applied).filter(committed).count());
        }
        let aborted: Vec<Version> = versions
            .iter()
            .filter(|info| info.version > applied && info.state == VersionState::Aborted)
            .map(|info| info.version)
            .collect();
        let newer: Vec<Version> = versions
            .iter()
            .filter(|info| {
                info.version > applied && matches!(info.state, VersionState::Committed | VersionState::Expired)
            })
            .map(|info| info.version)
            .collect();
        let expired = versions.iter().filter(|info| info.state == VersionState::Expired).count();
        let retention_moved = self.expired_seen.load(std::sync::atomic::Ordering::Relaxed) != expired;
        if aborted.is_empty() && newer.is_empty() && !retention_moved {
            return Ok(0);
        }
        for &version in &aborted {
            self.undo_here(version)?;
        }
        if !newer.is_empty() {
            // Versions may bring a model (or a collection) this node has not opened yet: the
            // first version another node wrote, or a model change.
            match self.prepare_vectors() {
                Err(StoreError::Unavailable(reason)) => {
                    warn!(pipeline = %self.pipeline, %reason, "vector index unavailable; the lexical index catches up alone")
                }
                other => other?,
            }
        }
        for &version in &newer {
            let mut chunks = self.catalog.chunks_added_at(&self.pipeline, version)?;
            chunks.extend(self.catalog.chunks_retired_at(&self.pipeline, version)?);
            let docs: Vec<LexicalDoc<'_>> = chunks.iter().map(|chunk| lexical_doc(chunk, chunk.valid_to)).collect();
            self.lexical.put(&docs)?;
            // Vectors in this node's own Edge index follow the same way; a Qdrant server is shared.
            if !self.shares_vectors {
                for batch in chunks.chunk_by(|a, b| a.model == b.model) {
                    self.with_cached_points(batch, &mut |points| self.vectors.upsert(points))?;
                }
            }
        }
        let removed = if retention_moved {
            let retained: Vec<Version> =
                versions.iter().filter(|info| info.state == VersionState::Committed).map(|info| info.version).collect();
            self.forget_unreachable(&retained)?
        } else {
            0
        };
        self.lexical.commit()?;
        self.vectors.flush()?;
        self.expired_seen.store(expired, std::sync::atomic::Ordering::Relaxed);
        if let Some(&newest) = newer.last() {
            self.set_applied(newest)?;
            info!(pipeline = %self.pipeline, versions = newer.len(), newest, removed, "indexes caught up with the catalog");
        }
        Ok(newer.len())
    }

    /// Makes this node's indexes hold what the catalog holds: every appearance as the catalog
    /// has it now, and none it no longer has. Returns how many were removed.
    fn resync(&self) -> Result<usize> {
        let held = self.lexical.appearances()?;
        let catalog = self.catalog.all_chunk_appearances(&self.pipeline)?;
        let current: std::collections::HashSet<PointKey> = catalog.iter().map(StoredChunk::key).collect();
        let stale: Vec<PointKey> = held
            .into_iter()
            .map(|held| PointKey { chunk: held.chunk_id, valid_from: held.valid_from })
            .filter(|key| !current.contains(key))
            .collect();
        self.lexical.delete(&stale);
        let docs: Vec<LexicalDoc<'_>> = catalog.iter().map(|chunk| lexical_doc(chunk, chunk.valid_to)).collect();
        self.lexical.put(&docs)?;
        self.lexical.commit()?;
        if !self.shares_vectors {
            self.vectors.delete_everywhere(&stale)?;
            for batch in catalog.chunk_by(|a, b| a.model == b.model) {
                self.with_cached_points(batch, &mut |points| self.vectors.upsert(points))?;
            }
            self.vectors.flush()?;
        }
        Ok(stale.len())
    }

    /// Removes from this node's indexes the chunk appearances no retained version can see:
    /// another node's retention removed them from the catalog (and the shared vector store),
    /// and only this node knows its own indexes. Takes effect at the next commit.
    fn forget_unreachable(&self, retained: &[Version]) -> Result<usize> {
        let keys = self.lexical.unreachable(retained)?;
        if !keys.is_empty() {
            self.lexical.delete(&keys);
            if !self.shares_vectors {
                self.vectors.delete_everywhere(&keys)?;
            }
        }
        Ok(keys.len())
    }

    /// Undoes in this node's own indexes what they may hold of `version`, which another node
    /// rolled back in the catalog: the version this node was writing when it died, found
    /// pending by another node first (`recover` never sees it here then). Its chunks go; the
    /// chunks it retired are written again as the catalog has them now (or deleted, where
    /// retention has removed them since). Takes effect at the next commit.
    fn undo_here(&self, version: Version) -> Result<()> {
        let retired = self.lexical.retired_at(version)?;
        self.lexical.delete_added_at(version);
        let (mut reopened, mut gone) = (Vec::new(), Vec::new());
        for keys in retired.chunk_by(|a, b| a.valid_from == b.valid_from) {
            let wanted: std::collections::HashSet<ChunkId> = keys.iter().map(|key| key.chunk).collect();
            let mut found: Vec<StoredChunk> = self.catalog.chunks_added_at(&self.pipeline, keys[0].valid_from)?;
            found.retain(|chunk| wanted.contains(&chunk.chunk_id));
            gone.extend(keys.iter().filter(|key| !found.iter().any(|chunk| chunk.chunk_id == key.chunk)).copied());
            reopened.extend(found);
        }
        let docs: Vec<LexicalDoc<'_>> = reopened.iter().map(|chunk| lexical_doc(chunk, chunk.valid_to)).collect();
        self.lexical.put(&docs)?;
        self.lexical.delete(&gone);
        if !self.shares_vectors {
            self.vectors.roll_back(version)?;
        }
        if !retired.is_empty() {
            info!(pipeline = %self.pipeline, version, reopened = docs.len(), "undid a version another node rolled back");
        }
        Ok(())
    }

    /// Records that this node's indexes hold every committed version up to `version`.
    fn set_applied(&self, version: Version) -> Result<()> {
        self.applied.fetch_max(version, std::sync::atomic::Ordering::Relaxed);
        if self.shares_catalog {
            let text = self.applied_version().to_string();
            let partial = self.applied_file.with_extension("partial");
            std::fs::write(&partial, text).map_err(|source| StoreError::Io { path: partial.clone(), source })?;
            std::fs::rename(&partial, &self.applied_file)
                .map_err(|source| StoreError::Io { path: self.applied_file.clone(), source })?;
        }
        Ok(())
    }

    /// The newest committed version in the catalog (0: none yet).
    pub fn newest_committed(&self) -> Result<Version> {
        Ok(self.catalog.committed_versions(&self.pipeline)?.last().copied().unwrap_or(0))
    }

    /// Whether other processes write this catalog (PostgreSQL), so runs claim their files, write
    /// under the pipeline's lock, and this node's indexes follow the catalog.
    pub fn shares_catalog(&self) -> bool {
        self.shares_catalog
    }

    /// The newest committed version this node's indexes hold.
    pub fn applied_version(&self) -> Version {
        self.applied.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`Store::applied_version`], as a value that outlives a borrow of the store.
    pub fn applied_version_handle(&self) -> std::sync::Arc<std::sync::atomic::AtomicI64> {
        self.applied.clone()
    }

    /// Makes the index of every model with chunks ready. An index found holding fewer points
    /// than the catalog has appearances of its model (a new server or backend, a lost collection
    /// or shard, a refill a crash interrupted) is refilled from the catalog and its embedding
    /// cache, without re-embedding; a version left pending is rolled back afterwards as usual.
    /// Then the server's alias is pointed at `live`'s model.
    fn prepare_vectors(&self) -> Result<()> {
        for model in self.catalog.models_with_chunks(&self.pipeline)? {
            let Some((index, _)) = self.vectors.index(&model, None)? else {
                // Neither cached vectors nor an index: only a version a crash left pending
                // can hold such chunks (vectors are cached before points are written), and
                // its rollback removes them.
                warn!(pipeline = %self.pipeline, model, "chunks of a model with no vectors anywhere");
                continue;
            };
            if !index.prepare()? {
                continue;
            }
            // Counted only for an index that became ready just now: not on every run.
            let (held, expected) = (index.point_count()?, self.catalog.appearance_count(&self.pipeline, &model)?);
            if held < expected {
                warn!(pipeline = %self.pipeline, held, expected, index = %index.describe(),
                    "vector index holds fewer points than the catalog; refilling it from the catalog");
                self.refill_vectors(&model, index.as_ref())?;
            }
        }
        self.publish_live()
    }

    /// Points the vector store's public name at the index of `live`'s model (a Qdrant alias;
    /// nothing on Edge).
    fn publish_live(&self) -> Result<()> {
        let Some(live) = self.live_version()? else { return Ok(()) };
        match self.catalog.models_at(&self.pipeline, live)?.first() {
            Some(model) => self.vectors.publish_live(model),
            None => Ok(()),
        }
    }

    /// [`Store::publish_live`] after `live` moved. The move is committed in the catalog already,
    /// so a server that cannot be reached now only delays the alias to the next run.
    fn republish_live(&self) {
        if let Err(err) = self.publish_live() {
            warn!(pipeline = %self.pipeline, error = %err, "could not point the vector store's alias at live's model");
        }
    }

    /// Points `live` at committed version N (audited in the same transaction); `force`
    /// overrides a hold by the evaluation gate.
    pub fn promote(&self, version: Version, force: bool, principal: &str) -> Result<()> {
        self.catalog.promote(version, force, &Actor { pipeline: &self.pipeline, principal })?;
        self.republish_live();
        Ok(())
    }

    /// Moves `live` back to the newest committed version before it; returns that version.
    pub fn roll_back_live(&self, principal: &str) -> Result<Version> {
        let version = self.catalog.roll_back_live(&Actor { pipeline: &self.pipeline, principal })?;
        self.republish_live();
        Ok(version)
    }

    /// Records the evaluation gate's verdict on version N, and moves `live` to it when
    /// `promote` (one transaction with the audit entry).
    pub fn record_gate(
        &self,
        version: Version,
        verdict: &str,
        evaluation: &serde_json::Value,
        promote: bool,
        audit: AuditEvent,
    ) -> Result<()> {
        self.catalog.record_gate(&self.pipeline, version, verdict, evaluation, promote, audit)?;
        if promote {
            self.republish_live();
        }
        Ok(())
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    /// The catalog, for a thread of its own (the search audit writer).
    pub fn shared_catalog(&self) -> std::sync::Arc<dyn Catalog> {
        self.catalog.clone()
    }

    pub fn vectors(&self) -> &ModelIndexes {
        &self.vectors
    }

    pub fn lexical(&self) -> &dyn LexicalIndex {
        self.lexical.as_ref()
    }

    /// The version retrieval gets by default.
    pub fn live_version(&self) -> Result<Option<Version>> {
        self.catalog.alias(&self.pipeline, "live")
    }

    /// Starts version N (pending until [`VersionWriter::commit`]). A version an earlier run
    /// could not roll back (its commit and its rollback both failed, say on a full disk) is
    /// rolled back first: a new version never builds on a half-written one.
    pub fn begin(&self, pipeline_fingerprint: Fingerprint, run_id: &str) -> Result<VersionWriter<'_>> {
        self.prepare_vectors()?;
        self.recover()?;
        let version = self.catalog.next_version(&self.pipeline)?;
        self.catalog.begin_version(&self.pipeline, version, pipeline_fingerprint, run_id)?;
        Ok(VersionWriter {
            store: self,
            version,
            run_id: run_id.to_owned(),
            finished: false,
            audit: Vec::new(),
            costs: Vec::new(),
        })
    }

    /// Rolls back every version left pending in this data directory, in all three stores.
    ///
    /// With a vector store other nodes share, a pending version found under the pipeline's
    /// lock is a dead node's, and requests it sent just before it died may still be on their
    /// way to the server: the rollback waits for them (`takeover_grace`), so that none lands
    /// after it and puts back what it removed.
    pub fn recover(&self) -> Result<()> {
        let pending = self.catalog.pending_versions(&self.pipeline)?;
        if !pending.is_empty() && self.shares_catalog && self.shares_vectors {
            std::thread::sleep(self.takeover_grace);
        }
        for version in pending {
            warn!(pipeline = %self.pipeline, version, "rolling back a version left pending by an interrupted run");
            self.roll_back(version)?;
        }
        Ok(())
    }

    /// Writes every chunk appearance the catalog holds into the (empty) lexical index.
    fn rebuild_lexical(&self) -> Result<usize> {
        let chunks = self.catalog.all_chunk_appearances(&self.pipeline)?;
        let docs: Vec<LexicalDoc<'_>> = chunks.iter().map(|chunk| lexical_doc(chunk, chunk.valid_to)).collect();
        self.lexical.put(&docs)?;
        self.lexical.commit()?;
        Ok(docs.len())
    }

    /// Writes every appearance of `model`'s chunks the catalog holds into its (empty) index,
    /// with the vectors of the embedding cache.
    fn refill_vectors(&self, model: &str, index: &dyn VectorIndex) -> Result<usize> {
        let mut chunks = self.catalog.all_chunk_appearances(&self.pipeline)?;
        chunks.retain(|chunk| chunk.model == model);
        let mut written = 0;
        for batch in chunks.chunks(1024) {
            written += self.with_cached_points(batch, &mut |points| index.upsert(points))?;
        }
        index.flush()?;
        Ok(written)
    }

    /// Calls `write` on the points of `chunks` (each one model's), with the embedding cache's
    /// vectors; returns how many.
    fn with_cached_points(
        &self,
        chunks: &[StoredChunk],
        write: &mut dyn FnMut(&[VectorPoint<'_>]) -> Result<()>,
    ) -> Result<usize> {
        let cached = self.catalog.cached_embeddings_by_model(
            &chunks.iter().map(|chunk| (chunk.model.as_str(), chunk.embedding_key())).collect::<Vec<_>>(),
        )?;
        let uris: Vec<String> = chunks.iter().map(|chunk| file_uri(&chunk.path)).collect();
        let mut points = Vec::with_capacity(chunks.len());
        for (chunk, uri) in chunks.iter().zip(uris) {
            let vector = cached.get(&(chunk.model.clone(), chunk.embedding_key())).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "chunk {} has no cached vector to write to the vector index",
                    chunk.chunk_id
                ))
            })?;
            points.push(VectorPoint { key: chunk.key(), vector, payload: stored_payload(chunk, uri) });
        }
        write(&points)?;
        Ok(points.len())
    }

    /// Removes every trace of pending version N from the three stores.
    fn roll_back(&self, version: Version) -> Result<()> {
        let reopened = self.catalog.chunks_retired_at(&self.pipeline, version)?;
        // A failed commit can leave the index writer holding unsaved changes: drop them first.
        self.lexical.discard_uncommitted()?;
        self.lexical.delete_added_at(version);
        let docs: Vec<LexicalDoc<'_>> = reopened.iter().map(|chunk| lexical_doc(chunk, VERSION_OPEN)).collect();
        self.lexical.put(&docs)?;
        self.lexical.commit()?;
        self.vectors.roll_back(version)?;
        self.vectors.flush()?;
        self.catalog.abort_version(&self.pipeline, version)?;
        info!(pipeline = %self.pipeline, version, reopened = reopened.len(), "version rolled back");
        Ok(())
    }

    /// Chunk ids visible at `version` according to the catalog, Qdrant and Tantivy, each sorted.
    /// They are equal unless something is broken.
    pub fn chunk_ids_visible_at(&self, version: Version) -> Result<[Vec<ChunkId>; 3]> {
        let catalog =
            self.catalog.chunks_visible_at(&self.pipeline, version)?.into_iter().map(|c| c.chunk_id).collect();
        Ok([catalog, self.vectors.chunk_ids_visible_at(version)?, self.lexical.chunk_ids_visible_at(version)?])
    }
}

/// A stored chunk appearance's vector payload.
fn stored_payload(chunk: &StoredChunk, uri: String) -> PointPayload<'_> {
    PointPayload {
        chunk_id: chunk.chunk_id.to_hex(),
        doc_id: chunk.doc_id.to_hex(),
        valid_from: chunk.valid_from,
        valid_to: chunk.valid_to,
        readers: chunk.readers.keys(),
        text: &chunk.text,
        title: chunk.title.as_deref(),
        path: &chunk.path,
        uri,
        page: chunk.page,
        char_start: chunk.char_start,
        char_end: chunk.char_end,
        heading_path: &chunk.heading_path,
        content_hash: chunk.content_hash.to_hex(),
        text_hash: chunk.text_hash.to_hex(),
        model: chunk.model.clone(),
        language: chunk.language.as_deref(),
        metadata: &chunk.metadata,
        facets: facets_of(chunk),
    }
}

/// The version a lexical index last recorded as applied (0: none, or unreadable).
fn read_applied(file: &Path) -> Version {
    std::fs::read_to_string(file).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0)
}

fn lexical_doc(chunk: &StoredChunk, valid_to: Version) -> LexicalDoc<'_> {
    LexicalDoc {
        key: chunk.key(),
        valid_to,
        doc_id: chunk.doc_id.to_hex(),
        path: &chunk.path,
        title: chunk.title.as_deref(),
        text: &chunk.text,
        headings: &chunk.heading_path,
        readers: chunk.readers.keys(),
        language: chunk.language.as_deref(),
        facets: facets_of(chunk),
    }
}

fn facets_of(chunk: &StoredChunk) -> DocumentFacets {
    DocumentFacets::new(&chunk.format, &chunk.metadata, &chunk.source, &chunk.path)
}

/// Writes one version. Dropping it without `commit` rolls the version back.
pub struct VersionWriter<'s> {
    store: &'s Store,
    version: Version,
    run_id: String,
    finished: bool,
    /// The version's decisions, audited in the commit's transaction (so an aborted version
    /// leaves no entries).
    audit: Vec<AuditEvent>,
    /// What each processed file cost, stored with the commit.
    costs: Vec<DocumentCost>,
}

impl VersionWriter<'_> {
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Records what one file cost (written when the version commits).
    pub fn record_cost(&mut self, cost: DocumentCost) {
        self.costs.push(cost);
    }

    /// Records a pipeline decision for the audit log (written when the version commits).
    pub fn record(&mut self, action: &str, subject: impl Into<String>, detail: serde_json::Value) {
        let event = AuditEvent::new(&self.store.pipeline, "pipeline", action, subject, detail);
        self.audit.push(event);
    }

    /// Retires a live document at this version; returns how many chunks stopped being visible.
    pub fn retire(&mut self, document: &LiveDocument, reason: ChangeReason) -> Result<usize> {
        let store = self.store;
        let retired = store.catalog.retire_document(&store.pipeline, document.doc_id, self.version, reason)?;
        let path = types::join_path(&document.root, &document.rel_path, &document.member);
        let detail = serde_json::json!({"version": self.version, "reason": reason, "chunks": retired.len()});
        self.record("retired", path, detail);
        let keys: Vec<_> = retired.iter().map(|chunk| (chunk.model.as_str(), chunk.key())).collect();
        store.vectors.set_valid_to(&keys, self.version)?;
        let docs: Vec<LexicalDoc<'_>> = retired.iter().map(|chunk| lexical_doc(chunk, self.version)).collect();
        store.lexical.put(&docs)?;
        Ok(retired.len())
    }

    /// Adds documents and their chunks, visible from this version on.
    pub fn write(&mut self, writes: &[DocumentWrite]) -> Result<()> {
        let store = self.store;
        store.catalog.insert_documents(&store.pipeline, self.version, writes)?;
        let mut points = Vec::new();
        let mut docs = Vec::new();
        let paths: Vec<String> = writes.iter().map(|write| write.document.path()).collect();
        let uris: Vec<String> = paths.iter().map(|path| file_uri(path)).collect();
        for ((write, path), uri) in writes.iter().zip(&paths).zip(&uris) {
            let document = &write.document;
            let doc_id = document.doc_id.to_hex();
            let (content_hash, model) = (document.content_hash.to_hex(), document.fingerprints.model.to_hex());
            let readers = document.readers.keys();
            let facets = DocumentFacets::new(&document.format, &document.metadata, &document.root, path);
            for chunk in &write.chunks {
                let key = sluice_core::PointKey { chunk: chunk.id, valid_from: self.version };
                let payload = PointPayload {
                    chunk_id: chunk.id.to_hex(),
                    doc_id: doc_id.clone(),
                    valid_from: self.version,
                    valid_to: VERSION_OPEN,
                    readers,
                    text: &chunk.chunk.text,
                    title: document.title.as_deref(),
                    path,
                    uri: uri.clone(),
                    page: chunk.chunk.page,
                    char_start: chunk.chunk.char_start,
                    char_end: chunk.chunk.char_end,
                    heading_path: &chunk.chunk.heading_path,
                    content_hash: content_hash.clone(),
                    text_hash: chunk.chunk.text_hash.to_hex(),
                    model: model.clone(),
                    language: chunk.chunk.language.as_deref(),
                    metadata: &document.metadata,
                    facets: facets.clone(),
                };
                points.push(VectorPoint { key, vector: &chunk.vector, payload });
                docs.push(LexicalDoc {
                    key,
                    valid_to: VERSION_OPEN,
                    doc_id: doc_id.clone(),
                    path,
                    title: document.title.as_deref(),
                    text: &chunk.chunk.text,
                    headings: &chunk.chunk.heading_path,
                    readers,
                    language: chunk.chunk.language.as_deref(),
                    facets: facets.clone(),
                });
            }
        }
        store.vectors.upsert(&points)?;
        store.lexical.put(&docs)?;
        Ok(())
    }

    /// Makes the version durable in both indexes, then commits it in the catalog with the
    /// run's ledger and quarantine changes, and moves `live` to it when `promote` (an
    /// evaluation gate decides otherwise).
    pub fn commit(
        mut self,
        ledger: &[LedgerChange],
        quarantined: &[QuarantineEntry],
        cleared_quarantine: &[(String, String)],
        cleared_in_flight: &[(String, String)],
        summary: &serde_json::Value,
        promote: bool,
    ) -> Result<Version> {
        let store = self.store;
        let subject = format!("version {}", self.version);
        self.record("version_committed", subject, serde_json::json!({"version": self.version, "summary": summary}));
        store.lexical.commit()?;
        store.vectors.flush()?;
        let (audit, costs, run_id) = (&self.audit, &self.costs, self.run_id.as_str());
        let record = CommitRecord {
            ledger,
            quarantined,
            cleared_quarantine,
            summary,
            audit,
            costs,
            promote,
            run_id,
            cleared_in_flight,
        };
        store.catalog.commit_version(&store.pipeline, self.version, &record)?;
        self.finished = true;
        store.set_applied(self.version)?;
        info!(pipeline = %store.pipeline, version = self.version, "version committed");
        if promote {
            store.republish_live();
        }
        Ok(self.version)
    }
}

impl Drop for VersionWriter<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Err(err) = self.store.roll_back(self.version) {
            // The version stays pending in the catalog; the next `begin` (or open) rolls it back
            // before anything else is written.
            warn!(version = self.version, error = %err, "could not roll back an unfinished version");
        }
        // The run ended without a crash: the files it had in hand did not bring the daemon down.
        if let Err(err) = self.store.catalog.clear_in_flight_of_run(&self.store.pipeline, &self.run_id) {
            warn!(version = self.version, error = %err, "could not clear the run's in-flight records");
        }
    }
}
