//! Records that cross the storage layer: what the pipeline writes and reads, what exports,
//! lineage and searches return. Plain data, so any catalog (SQLite today) and any index can
//! speak them.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::{Acl, Chunk, ChunkId, ContentHash, DocumentId, DocumentMetadata, Fingerprint, PointKey, TextHash, Version};

/// How a file ended up, as remembered by the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Indexed,
    Duplicate,
    Quarantined,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Indexed => "indexed",
            FileStatus::Duplicate => "duplicate",
            FileStatus::Quarantined => "quarantined",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "indexed" => Some(FileStatus::Indexed),
            "duplicate" => Some(FileStatus::Duplicate),
            "quarantined" => Some(FileStatus::Quarantined),
            _ => None,
        }
    }
}

/// The ledger's memory of one source file as of the last committed version.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub root: String,
    pub rel_path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub content_hash: ContentHash,
    pub status: FileStatus,
    /// The file's readers when it was processed; `None` in a ledger from before they were kept.
    pub readers: Option<Acl>,
}

/// A change to the ledger, applied when its version commits.
#[derive(Clone, Debug)]
pub enum LedgerChange {
    Upsert(LedgerEntry),
    Remove { root: String, rel_path: String },
}

/// Why a document version was added to or retired from a version; `sluice diff` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeReason {
    /// A file seen for the first time.
    New,
    /// The file's bytes changed.
    DocumentChanged,
    Deleted,
    /// The same bytes left one path and appeared at another in the same version.
    Renamed,
    ExtractorChanged,
    ChunkerChanged,
    ModelChanged,
    /// A duplicate whose original was retired, indexed in its own right.
    OriginalRetired,
    /// Processed again on request (`quarantine retry`) without changing.
    Reprocessed,
    /// Only who may read the file changed: same chunks and vectors, new ACL.
    AccessChanged,
}

impl ChangeReason {
    pub const ALL: [ChangeReason; 10] = [
        ChangeReason::New,
        ChangeReason::DocumentChanged,
        ChangeReason::Deleted,
        ChangeReason::Renamed,
        ChangeReason::ExtractorChanged,
        ChangeReason::ChunkerChanged,
        ChangeReason::ModelChanged,
        ChangeReason::OriginalRetired,
        ChangeReason::Reprocessed,
        ChangeReason::AccessChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::New => "new",
            ChangeReason::DocumentChanged => "document_changed",
            ChangeReason::Deleted => "deleted",
            ChangeReason::Renamed => "renamed",
            ChangeReason::ExtractorChanged => "extractor_changed",
            ChangeReason::ChunkerChanged => "chunker_changed",
            ChangeReason::ModelChanged => "model_changed",
            ChangeReason::OriginalRetired => "original_retired",
            ChangeReason::Reprocessed => "reprocessed",
            ChangeReason::AccessChanged => "access_changed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }

    /// The reason as a person reads it: `chunker changed`.
    pub fn label(self) -> String {
        self.as_str().replace('_', " ")
    }
}

/// The fingerprints of the stages that decide a document's chunks and vectors. A live
/// document written under other fingerprints is stale and is processed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageFingerprints {
    /// Extraction and cleaning: the document's text.
    pub extract: Fingerprint,
    /// Chunking settings and tokenizer.
    pub chunk: Fingerprint,
    /// The embedding model and how it is run.
    pub model: Fingerprint,
}

impl StageFingerprints {
    /// What a chunk id is derived from besides its document version: a chunk with the same
    /// ordinal is another chunk when the text or the chunking changed.
    pub fn chunk_identity(&self) -> Fingerprint {
        Fingerprint::combine(&[self.extract, self.chunk])
    }
}

/// A document version that is live (its `valid_to` is open); its `doc_id` names it, since a
/// document has one live version at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveDocument {
    pub doc_id: DocumentId,
    pub root: String,
    pub rel_path: String,
    /// Where inside the file the document sits (see [`NewDocument::member`]); empty for the file.
    pub member: String,
    pub content_hash: ContentHash,
    pub text_hash: TextHash,
    pub duplicate_of: Option<DocumentId>,
}

/// A document version about to be written.
#[derive(Clone, Debug)]
pub struct NewDocument {
    pub doc_id: DocumentId,
    pub root: String,
    /// The source file; an embedded document names the file that holds it.
    pub rel_path: String,
    /// For a file embedded in the source file (an attachment, a mailbox's message), the names
    /// leading to it, joined by `/` (`0003.eml/2-report.pdf`); empty for the file itself.
    pub member: String,
    /// The document this one is embedded in.
    pub parent: Option<DocumentId>,
    /// Files embedded directly in this one, extracted or quarantined.
    pub embedded_files: u32,
    pub content_hash: ContentHash,
    pub text_hash: TextHash,
    pub format: String,
    pub title: Option<String>,
    pub page_count: Option<u32>,
    pub byte_size: u64,
    pub fingerprints: StageFingerprints,
    pub duplicate_of: Option<DocumentId>,
    pub added_reason: ChangeReason,
    /// Who may read it; every chunk carries it into both indexes.
    pub readers: Acl,
    /// PII found, per kind (values are never kept).
    pub pii: BTreeMap<String, usize>,
    /// ISO 639-3 code of its language (its chunks carry their own).
    pub language: Option<String>,
    /// What the document says about itself (authors, dates, ...) and where it lives.
    pub metadata: DocumentMetadata,
    /// For a near-duplicate (`duplicate_of` set), the estimated similarity to its original;
    /// `None` for an exact duplicate or an original.
    pub similarity: Option<f64>,
    /// Its MinHash signature and band keys, for near-duplicate detection of later documents.
    pub minhash: Option<MinHash>,
}

/// A document's MinHash signature (little-endian 32-bit values) and its LSH band keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinHash {
    pub signature: Vec<u8>,
    pub bands: Vec<i64>,
}

impl NewDocument {
    /// The path a person recognises: the source root joined with the relative path.
    pub fn path(&self) -> String {
        join_path(&self.root, &self.rel_path, &self.member)
    }
}

/// A document's path as people read it: `root/rel_path`, then `#member` for an embedded file.
pub fn join_path(root: &str, rel_path: &str, member: &str) -> String {
    let file = std::path::Path::new(root).join(rel_path).display().to_string();
    if member.is_empty() { file } else { format!("{file}#{member}") }
}

/// A chunk with its id and vector, ready to be written.
#[derive(Clone, Debug)]
pub struct NewChunk {
    pub id: ChunkId,
    pub chunk: Chunk,
    pub vector: Vec<f32>,
}

/// A document with its chunks, as one unit of a version's write.
#[derive(Clone, Debug)]
pub struct DocumentWrite {
    pub document: NewDocument,
    pub chunks: Vec<NewChunk>,
}

/// The chunks of a document version found reusable by content hash, with its metadata.
#[derive(Clone, Debug)]
pub struct ReusableDocument {
    pub text_hash: TextHash,
    pub format: String,
    pub title: Option<String>,
    pub page_count: Option<u32>,
    pub chunks: Vec<Chunk>,
    pub pii: BTreeMap<String, usize>,
    pub language: Option<String>,
    pub metadata: DocumentMetadata,
    /// Its MinHash signature, if it has one.
    pub minhash: Option<Vec<u8>>,
}

/// One stored appearance of a chunk: the one chunk record that storage keeps and that search
/// hits, exports and lineage are made from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredChunk {
    pub chunk_id: ChunkId,
    pub valid_from: Version,
    pub valid_to: Version,
    pub doc_id: DocumentId,
    pub path: String,
    /// The source root the document was found under.
    pub source: String,
    pub title: Option<String>,
    pub ordinal: u32,
    pub text: String,
    pub text_hash: TextHash,
    pub char_start: u32,
    pub char_end: u32,
    pub page: Option<u32>,
    pub token_count: u32,
    pub heading_path: Vec<String>,
    /// Who may read it (the document's readers).
    pub readers: Acl,
    /// PII kinds found in the text.
    pub pii: Vec<String>,
    /// ISO 639-3 code of the chunk's language.
    pub language: Option<String>,
    /// The document's metadata.
    pub metadata: DocumentMetadata,
    /// The document version (blake3 of its bytes).
    pub content_hash: ContentHash,
    /// The document's format (`pdf`, `docx`, ...).
    pub format: String,
    /// Fingerprints of the stages that made it: extraction, chunking, and the model that
    /// embedded it (as stored; empty before schema 3).
    pub extract_fingerprint: String,
    pub chunk_fingerprint: String,
    pub model: String,
}

impl StoredChunk {
    pub fn key(&self) -> PointKey {
        PointKey { chunk: self.chunk_id, valid_from: self.valid_from }
    }

    /// The embedding cache's key of its vector (`embedding_input`).
    pub fn embedding_key(&self) -> TextHash {
        crate::embedding_input::embedding_key(self.title.as_deref(), &self.heading_path, &self.text, self.text_hash)
    }
}

impl SearchHit {
    /// A hit on `chunk`, with its fused score and each retriever's rank.
    pub fn new(chunk: &StoredChunk, score: f64, lexical_rank: Option<usize>, dense_rank: Option<usize>) -> Self {
        SearchHit {
            chunk_id: chunk.chunk_id,
            score,
            text: chunk.text.clone(),
            path: chunk.path.clone(),
            title: chunk.title.clone(),
            page: chunk.page,
            char_start: chunk.char_start,
            char_end: chunk.char_end,
            heading_path: chunk.heading_path.clone(),
            valid_from: chunk.valid_from,
            valid_to: (chunk.valid_to != crate::VERSION_OPEN).then_some(chunk.valid_to),
            lexical_rank,
            dense_rank,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Being written; invisible to readers. Rolled back at the next start if left behind.
    Pending,
    Committed,
    /// Rolled back after a crash; its number is never reused.
    Aborted,
    /// Dropped by retention: no longer searchable or exportable; what only it could see is gone.
    Expired,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Pending => "pending",
            VersionState::Committed => "committed",
            VersionState::Aborted => "aborted",
            VersionState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(VersionState::Pending),
            "committed" => Some(VersionState::Committed),
            "aborted" => Some(VersionState::Aborted),
            "expired" => Some(VersionState::Expired),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub version: Version,
    pub state: VersionState,
    pub pipeline_fingerprint: String,
    /// The run that wrote this version.
    pub run_id: String,
    /// Kept by retention whatever its age.
    pub pinned: bool,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Chunks visible at this version (committed versions only).
    pub chunks: Option<u64>,
    pub summary: serde_json::Value,
    /// Aliases (e.g. `live`) that point at this version.
    pub aliases: Vec<String>,
    /// The evaluation gate's verdict: `passed`, `held`, `forced` (promoted over a hold) or
    /// `reported` (evaluated, not gating); `null` when not evaluated.
    pub gate: Option<String>,
    /// The evaluation report behind the verdict.
    pub evaluation: Option<serde_json::Value>,
}

/// A document that failed a stage, as shown to an operator.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct QuarantineEntry {
    pub path: String,
    pub root: String,
    pub rel_path: String,
    /// The embedded file that failed, inside `rel_path` (see [`NewDocument::member`]); empty
    /// when the file itself did.
    pub member: String,
    pub content_hash: ContentHash,
    pub stage: String,
    pub reason: String,
    pub detail: String,
    pub version: Version,
    /// Unix milliseconds.
    pub at: i64,
}

impl QuarantineEntry {
    /// Whether `path` names this entry: its own path, or that of the file holding it.
    pub fn matches(&self, path: &str) -> bool {
        self.path == path || std::path::Path::new(&self.root).join(&self.rel_path) == std::path::Path::new(path)
    }
}

/// A search hit: the chunk, where it is from, and how it ranked.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SearchHit {
    pub chunk_id: ChunkId,
    pub score: f64,
    pub text: String,
    pub path: String,
    pub title: Option<String>,
    pub page: Option<u32>,
    pub char_start: u32,
    pub char_end: u32,
    /// The headings the chunk sits under, outermost first.
    pub heading_path: Vec<String>,
    pub valid_from: Version,
    /// `null` while the chunk is live.
    pub valid_to: Option<Version>,
    /// 1-based rank in the lexical (BM25) results, if it was among them.
    pub lexical_rank: Option<usize>,
    /// 1-based rank in the dense (vector) results, if it was among them.
    pub dense_rank: Option<usize>,
}
