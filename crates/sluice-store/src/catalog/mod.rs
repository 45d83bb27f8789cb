//! The catalog: the source of truth of every pipeline in a data directory (versions and their
//! aliases, the ledger of source files, documents and chunk appearances, the embedding cache,
//! quarantine, the audit chain, tokens, costs, evaluations), behind traits, one per concern,
//! that [`Catalog`] bundles, in the manner of Quickwit's `Metastore`. [`SqlCatalog`] implements
//! them once over portable SQL (`sql.rs`): `sql_catalog.rs` (versions, documents, chunks,
//! embeddings, quarantine) and the `impl`s beside each concern's records (`audit.rs`,
//! `cost.rs`, `retention.rs`, ...), on SQLite (`sqlite.rs`, the embedded default) or PostgreSQL
//! (`postgres.rs`, for several nodes). The store, the pipeline and the binary use the traits
//! only, as `&dyn Catalog` or `Arc<dyn Catalog>` (`sluice_store::prelude` brings them into scope).
//!
//! Every method is synchronous and atomic on its own: what one call writes commits together or
//! not at all (a version with its ledger, audit entries and costs; a move of `live` with its
//! audit entry). Errors carry their kind (`StoreError::kind`): not found, conflict,
//! unavailable (retryable), corrupt, invalid.

mod postgres;
pub(crate) mod sql;
mod sql_catalog;
mod sqlite;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sluice_config::CatalogPlan;

use sluice_core::{Acl, ChunkId, ContentHash, DocumentId, Fingerprint, PointKey, ReadAccess, TextHash, Version};

pub(crate) use sql::{Dialect, Row, Sql, params};
pub(crate) use sql_catalog::*;
pub use sql_catalog::{SqlCatalog, now_ms};

use crate::audit::{Actor, AuditEntry, AuditEvent, AuditKey, AuditVerification};
use crate::cluster::{FileKey, NodeRecord, NodeStatus, PipelineLock};
use crate::cost::CostReport;
use crate::diff::VersionDiff;
use crate::error::{Result, StoreError};
use crate::export::{ExportFormat, ExportSummary};
use crate::in_flight::InFlight;
use crate::lineage::Lineage;
use crate::time_travel::PastAccess;
use crate::tokens::{Role, TokenInfo};
use crate::types::{
    ChangeReason, CommitRecord, DocumentWrite, LedgerChange, LedgerEntry, LiveDocument, QuarantineEntry, Reusable,
    ReusableDocument, StageFingerprints, StoredChunk, VersionInfo, VersionState,
};

/// The SQLite catalog's file under the data directory.
pub const CATALOG_FILE: &str = "catalog.sqlite";

/// Opens (or creates) the catalog `plan` names: SQLite in the data directory, or a PostgreSQL
/// database (the data directory then keeps only this node's files).
pub fn open_catalog(data_dir: &Path, plan: &CatalogPlan) -> Result<Arc<dyn Catalog>> {
    crate::lock::create_private_dir(data_dir).map_err(|source| StoreError::Io { path: data_dir.to_owned(), source })?;
    Ok(Arc::new(match plan {
        CatalogPlan::Sqlite => SqlCatalog::sqlite(&data_dir.join(CATALOG_FILE))?,
        CatalogPlan::Postgres(postgres) => SqlCatalog::postgres(postgres, data_dir)?,
    }))
}

/// Whether there is a catalog to read: a SQLite file exists once something was ingested; a
/// PostgreSQL database is shared and always asked.
pub fn catalog_exists(data_dir: &Path, plan: &CatalogPlan) -> bool {
    match plan {
        CatalogPlan::Sqlite => data_dir.join(CATALOG_FILE).exists(),
        CatalogPlan::Postgres(_) => true,
    }
}

/// Everything a catalog does.
pub trait Catalog:
    VersionLog
    + Aliases
    + Retention
    + Documents
    + EmbeddingCache
    + QuarantineLog
    + InFlightLog
    + AuditLog
    + AuditArchive
    + AccessHistory
    + TokenStore
    + CostLedger
    + ChunkLineage
    + VersionDiffs
    + Exports
    + Cluster
    + Send
    + Sync
{
    /// This catalog's identity: random, made once. A Qdrant collection sluice creates names it,
    /// so that another catalog does not take the collection for its own.
    fn identity(&self) -> Result<String>;

    /// A value of the catalog's own settings (`meta`).
    fn meta(&self, key: &str) -> Result<Option<String>>;

    /// Sets a value of the catalog's own settings.
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

/// Versions: numbered, started pending, then committed (with the run's ledger, audit entries
/// and costs) or aborted; a number is never reused, and `live` is an alias.
pub trait VersionLog {
    /// The number the next version gets: one more than any version ever started, aborted ones
    /// included, so a number is never reused.
    fn next_version(&self, pipeline: &str) -> Result<Version>;

    /// Records version N as pending, written by run `run_id` under the pipeline `fingerprint`.
    fn begin_version(&self, pipeline: &str, version: Version, fingerprint: Fingerprint, run_id: &str) -> Result<()>;

    /// Records what a stage fingerprint stands for (lineage shows it). Idempotent.
    fn put_fingerprint(&self, fingerprint: Fingerprint, stage: &str, settings: &str) -> Result<()>;

    /// Versions started and neither committed nor aborted: a run writing, or one a crash left.
    fn pending_versions(&self, pipeline: &str) -> Result<Vec<Version>>;

    /// The version an alias (`live`) points at.
    fn alias(&self, pipeline: &str, name: &str) -> Result<Option<Version>>;

    /// The state of version N, if it was ever started.
    fn version_state(&self, pipeline: &str, version: Version) -> Result<Option<VersionState>>;

    /// Fails unless version N exists and is committed (not pending, aborted or expired).
    fn require_committed(&self, pipeline: &str, version: Version) -> Result<()>;

    /// Commits version N in one transaction: its state, the ledger and quarantine changes of
    /// the run, its audit entries and costs, and the `live` alias.
    fn commit_version(&self, pipeline: &str, version: Version, record: &CommitRecord<'_>) -> Result<()>;

    /// Undoes everything version N wrote to the catalog and marks it aborted.
    fn abort_version(&self, pipeline: &str, version: Version) -> Result<()>;

    /// Every version, oldest first, with its aliases and gate verdict.
    fn versions(&self, pipeline: &str) -> Result<Vec<VersionInfo>>;

    /// The settings a stage fingerprint stands for, as recorded (`put_fingerprint`).
    fn stage_settings(&self, fingerprint: &str) -> Result<Option<serde_json::Value>>;
}

/// Moves of `live` and pins, each audited in its own transaction (`retention.rs`).
pub trait Aliases {
    /// Points `live` at committed version N, audited in the same transaction. A version the
    /// evaluation gate held needs `force`, and is then marked `forced`.
    fn promote(&self, version: Version, force: bool, by: &Actor<'_>) -> Result<()>;

    /// The evaluation gate's verdict on a version, if it was evaluated.
    fn gate(&self, pipeline: &str, version: Version) -> Result<Option<String>>;

    /// Records the gate's verdict and report on committed version N with its audit entry;
    /// `passed` also points `live` at it, all in one transaction.
    fn record_gate(
        &self,
        pipeline: &str,
        version: Version,
        verdict: &str,
        evaluation: &serde_json::Value,
        promote: bool,
        audit: AuditEvent,
    ) -> Result<()>;

    /// Committed versions newer than `live` the gate has not judged yet (a crash came between
    /// commit and evaluation), oldest first.
    fn ungated_versions(&self, pipeline: &str) -> Result<Vec<Version>>;

    /// Moves `live` back to the newest committed version older than it, audited in the same
    /// transaction; returns that version.
    fn roll_back_live(&self, by: &Actor<'_>) -> Result<Version>;

    /// Pins (or unpins) committed version N, audited in the same transaction: retention keeps
    /// a pinned version whatever its age.
    fn set_pinned(&self, version: Version, pinned: bool, by: &Actor<'_>) -> Result<()>;
}

/// Expiry of old versions and removal of what no kept version can see (`retention.rs`).
pub trait Retention {
    /// Marks committed versions expired unless they are among the `keep` newest, pinned, or
    /// an alias target, audited in the same transaction when anything expires. Returns
    /// (expired now, retained).
    fn expire_versions(&self, keep: usize, by: &Actor<'_>) -> Result<(Vec<Version>, Vec<Version>)>;

    /// Committed versions, oldest first.
    fn committed_versions(&self, pipeline: &str) -> Result<Vec<Version>>;

    /// The (model, point) of every chunk appearance no version in `retained` can see.
    fn unreachable_chunks(&self, pipeline: &str, retained: &[Version]) -> Result<Vec<(String, PointKey)>>;

    /// Deletes the chunk appearances and document versions no version in `retained` can see.
    fn delete_unreachable(&self, pipeline: &str, retained: &[Version]) -> Result<(usize, usize)>;
}

/// The ledger of source files, documents and their chunk appearances (`sqlite.rs`).
pub trait Documents {
    /// Applies ledger changes that need no new version (a file touched but not changed).
    fn update_ledger(&self, pipeline: &str, ledger: &[LedgerChange]) -> Result<()>;

    /// Every ledger entry under `root`, by relative path.
    fn ledger(&self, pipeline: &str, root: &str) -> Result<HashMap<String, LedgerEntry>>;

    /// A live, indexed (not itself a duplicate) document with this normalised text and these
    /// readers: a copy readable by others is not a duplicate (skipping it would hide the text
    /// from readers of the copy).
    fn live_document_with_text(
        &self,
        pipeline: &str,
        text_hash: TextHash,
        readers: &Acl,
    ) -> Result<Option<LiveDocument>>;

    /// Every source root the pipeline's documents came from, longest first.
    fn document_roots(&self, pipeline: &str) -> Result<Vec<String>>;

    /// Live documents that were skipped as duplicates of `original`.
    fn live_duplicates_of(&self, pipeline: &str, original: DocumentId) -> Result<Vec<LiveDocument>>;

    /// The live documents of one source file: the file's own and those of its embedded files.
    fn live_documents_of_file(&self, pipeline: &str, root: &str, rel_path: &str) -> Result<Vec<LiveDocument>>;

    /// Files under `root` with a live document written under other stage fingerprints, each
    /// with the first stage that differs (extraction, then chunking, then the model).
    fn stale_files(
        &self,
        pipeline: &str,
        root: &str,
        current: &StageFingerprints,
    ) -> Result<Vec<(String, ChangeReason)>>;

    /// A document already made from these bytes with these extraction and chunking
    /// fingerprints, from any path and any version, and how much its chunks weigh (so the
    /// caller can make room before loading them with [`Documents::reusable_chunks`]).
    fn reusable_document(
        &self,
        pipeline: &str,
        content_hash: ContentHash,
        fingerprints: &StageFingerprints,
    ) -> Result<Option<Reusable>>;

    /// Live originals (no `duplicate_of`) with exactly these `readers` that share any of these
    /// LSH band keys, with their MinHash signatures: a new document's near-duplicate
    /// candidates, by document id.
    fn near_duplicate_candidates(
        &self,
        pipeline: &str,
        bands: &[i64],
        readers: &Acl,
    ) -> Result<Vec<(DocumentId, Vec<u8>)>>;

    /// The chunks and metadata of a document [`Documents::reusable_document`] found.
    fn reusable_chunks(&self, reusable: &Reusable) -> Result<ReusableDocument>;

    /// Writes documents and their chunks as part of pending version N, in one transaction.
    fn insert_documents(&self, pipeline: &str, version: Version, writes: &[DocumentWrite]) -> Result<()>;

    /// Retires a live document and its chunks at version N; returns the retired chunks.
    fn retire_document(
        &self,
        pipeline: &str,
        doc_id: DocumentId,
        version: Version,
        reason: ChangeReason,
    ) -> Result<Vec<StoredChunk>>;

    /// The stored appearances for these (chunk id, valid_from) keys, in the given order;
    /// unknown keys are skipped.
    fn chunks_by_key(&self, pipeline: &str, keys: &[(ChunkId, Version)]) -> Result<Vec<StoredChunk>>;

    /// Chunks that became visible at exactly `version` (what another node's index applies).
    fn chunks_added_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>>;

    /// Chunks that stopped being visible at exactly `version` (what a rollback reopens).
    fn chunks_retired_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>>;

    /// Every chunk visible at `version`, ordered by chunk id.
    fn chunks_visible_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>>;

    /// Fingerprints of the models that embedded the chunks visible at `version`: one, unless
    /// the version mixes models; none for a version without chunks.
    fn models_at(&self, pipeline: &str, version: Version) -> Result<Vec<String>>;

    /// Whether a live document with chunks was embedded by a model other than `model`.
    fn has_live_documents_of_other_models(&self, pipeline: &str, model: Fingerprint) -> Result<bool>;

    /// The models that embedded the pipeline's chunks, whatever their versions.
    fn models_with_chunks(&self, pipeline: &str) -> Result<Vec<String>>;

    /// How many chunk appearances `model` embedded, whatever their versions.
    fn appearance_count(&self, pipeline: &str, model: &str) -> Result<usize>;

    /// Every chunk appearance of the pipeline, whatever its interval (to rebuild an index).
    fn all_chunk_appearances(&self, pipeline: &str) -> Result<Vec<StoredChunk>>;

    /// Document ids with more than one row visible at `version`, and how many (`verify`).
    fn documents_visible_twice(&self, pipeline: &str, version: Version) -> Result<Vec<(String, i64)>>;
}

/// Vectors by (model fingerprint, text hash): nothing is embedded twice (`sqlite.rs`).
pub trait EmbeddingCache {
    /// The dimension of the vectors cached for `model` (`None`: it has none).
    fn model_dimension(&self, model: &str) -> Result<Option<usize>>;

    /// The cached vectors of `model` for these texts; texts not cached are absent.
    fn cached_embeddings(&self, model: Fingerprint, text_hashes: &[TextHash]) -> Result<HashMap<TextHash, Vec<f32>>>;

    /// Cached vectors for (model fingerprint as stored, text hash) pairs. Pairs not cached, or
    /// under a malformed fingerprint (documents from before schema 3 have none), are absent.
    fn cached_embeddings_by_model(&self, keys: &[(&str, TextHash)]) -> Result<HashMap<(String, TextHash), Vec<f32>>>;

    /// Vectors in the embedding cache, all models together.
    fn embedding_count(&self) -> Result<usize>;

    /// Caches vectors of `model` (a text already cached keeps its vector).
    fn put_embeddings(&self, model: Fingerprint, vectors: &[(TextHash, &[f32])]) -> Result<()>;
}

/// Files that failed a stage (`sqlite.rs`).
pub trait QuarantineLog {
    /// Makes the next run take a quarantined file as new (its ledger entry goes; its live
    /// documents stay until that run replaces them), audited in the same transaction.
    fn forget_quarantined(&self, entry: &QuarantineEntry, by: &Actor<'_>) -> Result<()>;

    /// Every quarantined file, by path.
    fn quarantine(&self, pipeline: &str) -> Result<Vec<QuarantineEntry>>;
}

/// Files a run has in hand, so a crash on one quarantines it at the next start (`in_flight.rs`).
pub trait InFlightLog {
    /// Records (durably) that a run is taking on this file.
    fn record_in_flight(&self, pipeline: &str, entry: &InFlight) -> Result<()>;

    /// The file is written (or failed harmlessly): its record goes.
    fn clear_in_flight(&self, pipeline: &str, root: &str, rel_path: &str) -> Result<()>;

    /// A run that ended without a crash drops the records it wrote.
    fn clear_in_flight_of_run(&self, pipeline: &str, run_id: &str) -> Result<()>;

    /// Every record: files a stopped daemon had in hand.
    fn in_flight(&self, pipeline: &str) -> Result<Vec<InFlight>>;
}

/// The tamper-evident audit chain (`audit.rs`).
pub trait AuditLog {
    /// Keys the audit chain from now on: entries are appended and verified as HMACs under it.
    fn set_audit_key(&self, key: Option<AuditKey>);

    /// Appends events in a transaction of their own.
    fn audit(&self, events: &[AuditEvent]) -> Result<()>;

    /// Entries from `since` (Unix milliseconds, inclusive) on, oldest first, at most `limit`
    /// (rotated entries are read from their segment files by [`AuditArchive::visit_audit_entries`]).
    fn audit_entries(&self, since: Option<i64>, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Whether the newest entry is keyed (`None`: the log is empty).
    fn audit_is_keyed(&self) -> Result<Option<bool>>;

    /// `seq:hash` of the newest entry (for an external witness to keep).
    fn audit_head(&self) -> Result<Option<String>>;

    /// Walks the whole chain: sequence numbers without gaps (from the last rotated segment's
    /// anchor on), each previous hash equal to the entry before's hash, each hash recomputed
    /// (as an HMAC when the catalog has the audit key), the newest entry equal to the recorded
    /// head, every committed version's commit entry present, the segment files intact, and,
    /// with `expect_head` (`seq:hash` kept elsewhere), that head still in the chain.
    fn verify_audit(&self, expect_head: Option<&str>) -> Result<AuditVerification>;

    /// Turns every entry into a keyed one (after checking the chain as it stands, unkeyed
    /// entries by their plain hash): for a log started before the audit key was configured.
    fn rekey_audit(&self, key: &AuditKey, principal: &str, pipeline: &str) -> Result<u64>;
}

/// Rotation of old audit entries to segment files (`audit_segments.rs`).
pub trait AuditArchive {
    /// Moves the oldest half of the entries to a segment file when there are more than
    /// `rotate_after`, and deletes segment files older than `keep_days` (0: never). Returns the
    /// rotated range, if any.
    fn rotate_audit(&self, rotate_after: u64, keep_days: u64) -> Result<Option<(i64, i64)>>;

    /// Calls `visit` on every entry from `since` on, oldest first: rotated segment files that
    /// are still there, then the catalog. Returns how many were visited.
    fn visit_audit_entries(&self, since: Option<i64>, visit: &mut dyn FnMut(&AuditEntry) -> Result<()>) -> Result<u64>;
}

/// Readers now against readers as committed (`time_travel.rs`).
pub trait AccessHistory {
    /// Document ids (hex) visible at `version` that `access` may read as committed but not
    /// today. Empty for an unrestricted reader.
    fn revoked_documents(&self, pipeline: &str, version: Version, access: &ReadAccess) -> Result<Vec<String>>;
}

/// API tokens and their roles (`tokens.rs`).
pub trait TokenStore {
    /// Creates a token (audited with it); returns it with the secret, which is shown once and
    /// never stored.
    fn create_token(&self, user: &str, groups: &[String], role: Role, by: &Actor<'_>) -> Result<(TokenInfo, String)>;

    /// Every token, without secrets.
    fn tokens(&self) -> Result<Vec<TokenInfo>>;

    /// Revokes a token by id (audited with it); `false` if there is no such live token.
    fn revoke_token(&self, id: &str, by: &Actor<'_>) -> Result<bool>;

    /// The live token `presented` stands for, or `None` (malformed, unknown, wrong secret, revoked).
    fn authenticate(&self, presented: &str) -> Result<Option<TokenInfo>>;
}

/// What each version and document cost (`cost.rs`).
pub trait CostLedger {
    /// The cost report of one version, or of every version that recorded costs.
    fn cost_report(&self, pipeline: &str, version: Option<Version>) -> Result<CostReport>;
}

/// Where a chunk came from and what made it (`lineage.rs`).
pub trait ChunkLineage {
    /// The lineage of `chunk_id`, from its latest appearance; `None` if no committed version
    /// ever held it (or retention removed it).
    /// `None` too when `access` may not read it: a reader learns nothing of chunks it cannot see.
    /// A chunk no longer live is shown as `past` says (`time_travel.rs`).
    fn lineage(
        &self,
        pipeline: &str,
        chunk_id: ChunkId,
        access: &ReadAccess,
        past: PastAccess,
    ) -> Result<Option<Lineage>>;
}

/// What changed between two versions (`diff.rs`).
pub trait VersionDiffs {
    /// What changed from version `from` to the later version `to`; both must be committed.
    fn diff(&self, pipeline: &str, from: Version, to: Version) -> Result<VersionDiff>;
}

/// A version as a dataset file (`export.rs`).
pub trait Exports {
    /// Writes the chunks of `pipeline` visible at committed version N that `access` may read
    /// (less `hidden_docs`, see `time_travel.rs`) to `out`, readable by its owner only. Reads
    /// only the catalog, so it runs beside a daemon.
    #[allow(clippy::too_many_arguments)]
    fn export(
        &self,
        pipeline: &str,
        version: Version,
        access: &ReadAccess,
        hidden_docs: &[String],
        format: ExportFormat,
        with_vectors: bool,
        out: &Path,
    ) -> Result<ExportSummary>;
}

/// The nodes that share the catalog, the files each has claimed, and the lock that lets one
/// at a time write a pipeline's versions (`cluster.rs`).
pub trait Cluster {
    /// Records a node as it starts.
    fn register_node(&self, node: &NodeRecord) -> Result<()>;

    /// Refreshes a node's heartbeat, the version its lexical index has applied and its
    /// counters, and extends its claims to `lease_ms` from now.
    fn heartbeat(&self, node: &str, applied: Version, stats: &serde_json::Value, lease_ms: i64) -> Result<()>;

    /// The pipeline's nodes, writers first, each with its live claims; one whose heartbeat is
    /// older than `silent_after_ms` shows as not alive.
    fn nodes(&self, pipeline: &str, silent_after_ms: i64) -> Result<Vec<NodeStatus>>;

    /// Forgets a node that stops cleanly; its claims return to the pool at once.
    fn remove_node(&self, node: &str) -> Result<()>;

    /// Claims up to `max` of `files`, in order, for `lease_ms`: each one no other node holds a
    /// live claim on. Returns the files claimed (a node's own claims are renewed).
    fn claim_files(
        &self,
        pipeline: &str,
        node: &str,
        files: &[FileKey],
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<FileKey>>;

    /// Gives claims back (their files are written or given up).
    fn release_claims(&self, pipeline: &str, node: &str, files: &[FileKey]) -> Result<()>;

    /// Waits until no other node writes the pipeline's versions, and keeps it so until the
    /// lock drops (a node that dies holding it lets it go).
    fn lock_pipeline(&self, pipeline: &str) -> Result<PipelineLock>;
}
