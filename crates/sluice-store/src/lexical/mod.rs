//! The lexical index behind one trait; Tantivy (`tantivy.rs`) is its implementation.
//!
//! Each document of the index is one appearance of a chunk, keyed by its point key, with its
//! validity interval and readers, so that every query filters by version and reader inside the
//! index. Writes are idempotent (a put replaces the same key), which is what crash recovery
//! relies on; nothing is visible to searches before `commit`.

mod analyzers;
mod tantivy;
mod version_statistics;

use sluice_core::{ChunkId, DocumentFacets, PointKey, Version};

use crate::error::Result;
use crate::time_travel::Readable;

pub use self::tantivy::TantivyIndex;

/// The lexical index of one pipeline. Implementations are synchronous and may be shared
/// between the run and searches.
pub trait LexicalIndex: Send + Sync {
    /// Writes these chunk appearances, replacing any earlier copy of the same key. Idempotent.
    fn put(&self, docs: &[LexicalDoc<'_>]) -> Result<()>;

    /// Deletes these chunk appearances (retention). Idempotent; takes effect at `commit`.
    fn delete(&self, keys: &[PointKey]);

    /// Deletes every chunk appearance that became visible at `version` (rollback).
    fn delete_added_at(&self, version: Version);

    /// The keys of the chunk appearances `version` retired (their `valid_to` is `version`).
    fn retired_at(&self, version: Version) -> Result<Vec<PointKey>>;

    /// The keys of the chunk appearances visible at none of `retained` (sorted versions):
    /// what retention removed from the catalog, found from the index alone.
    fn unreachable(&self, retained: &[Version]) -> Result<Vec<PointKey>>;

    /// Drops every write since the last commit (after a failed commit).
    fn discard_uncommitted(&self) -> Result<()>;

    /// Makes every write so far durable and visible to new searches.
    fn commit(&self) -> Result<()>;

    /// The `limit` best chunks for `query` visible at `version` and readable by its reader;
    /// both restrictions apply inside the query, so these are the best *readable* chunks.
    fn search(&self, query: &str, version: Version, readable: Readable<'_>, limit: usize) -> Result<Vec<LexicalHit>>;

    /// Chunk ids of every document visible at `version`, sorted.
    fn chunk_ids_visible_at(&self, version: Version) -> Result<Vec<ChunkId>>;

    /// Every document, sorted by (chunk id, valid_from); for `verify`.
    fn appearances(&self) -> Result<Vec<LexicalAppearance>>;

    /// Documents in the index, whatever their versions.
    fn doc_count(&self) -> u64;
}

/// What the lexical index holds for one chunk appearance.
pub struct LexicalDoc<'a> {
    pub key: PointKey,
    pub valid_to: Version,
    pub doc_id: String,
    pub path: &'a str,
    pub title: Option<&'a str>,
    pub text: &'a str,
    /// The headings the chunk sits under, outermost first.
    pub headings: &'a [String],
    /// Principal keys that may read it (see `sluice_core::access`).
    pub readers: &'a [String],
    /// ISO 639-3 code of its language: it chooses the analyzer.
    pub language: Option<&'a str>,
    /// What filters select its document by.
    pub facets: DocumentFacets,
}

/// A chunk appearance as the lexical index holds it.
pub struct LexicalAppearance {
    pub chunk_id: ChunkId,
    pub valid_from: Version,
    pub valid_to: Version,
    pub readers: Vec<String>,
}

/// A lexical hit.
#[derive(Clone, Debug)]
pub struct LexicalHit {
    pub chunk_id: ChunkId,
    pub valid_from: Version,
    pub score: f32,
}
