//! BM25 statistics of the chunks visible at one version, instead of Tantivy's statistics of
//! the whole index.
//!
//! The index holds the appearances of every kept version and, until their segments merge, the
//! deleted copies of re-written documents; Tantivy's own statistics (document count, average
//! length, document frequency) count all of them. A score at version N would then depend on
//! the index's history: two nodes that applied the same versions in other batches, or one node
//! before and after a merge or a retention pass, would rank the same query at the same version
//! differently. Counted over the documents visible at N alone, a score is a function of the
//! version: every node answers a search at N as the writer does (DESIGN.md §9), and as an index
//! holding only version N would.
//!
//! The per-version part (which documents are visible, their lengths) is computed once per
//! searcher generation and version, and cached; a term's document frequency is counted from its
//! postings at query time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_core::Version;
use tantivy::query::Bm25StatisticsProvider;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocSet, Searcher, TERMINATED, Term};

/// Versions whose visibility is kept per searcher generation (live, and a few searched in
/// history); more clear the cache.
const CACHED_VERSIONS: usize = 8;

/// The documents of each segment visible at one version: alive, `valid_from <= N < valid_to`.
struct VisibleDocs {
    /// One bit per document of each segment, in the searcher's segment order.
    segments: Vec<Vec<u64>>,
    count: u64,
    /// Sum of the visible documents' field lengths, per field, scaled as `total_num_tokens`
    /// says; filled as fields are asked for.
    tokens: Mutex<HashMap<Field, u64>>,
}

impl VisibleDocs {
    fn of(searcher: &Searcher, version: Version) -> tantivy::Result<Self> {
        let mut segments = Vec::with_capacity(searcher.segment_readers().len());
        let mut count = 0;
        for segment in searcher.segment_readers() {
            let valid_from = segment.fast_fields().i64("valid_from")?;
            let valid_to = segment.fast_fields().i64("valid_to")?;
            let mut bits = vec![0u64; (segment.max_doc() as usize).div_ceil(64)];
            for doc in segment.doc_ids_alive() {
                let from = valid_from.first(doc).unwrap_or(Version::MAX);
                let to = valid_to.first(doc).unwrap_or(Version::MIN);
                if from <= version && version < to {
                    bits[doc as usize / 64] |= 1 << (doc % 64);
                    count += 1;
                }
            }
            segments.push(bits);
        }
        Ok(Self { segments, count, tokens: Mutex::new(HashMap::new()) })
    }

    fn contains(&self, segment: usize, doc: u32) -> bool {
        self.segments[segment][doc as usize / 64] & (1 << (doc % 64)) != 0
    }
}

/// The visible documents of recent versions, for the searcher generation they were counted in.
#[derive(Default)]
pub(super) struct VisibilityCache {
    generation: u64,
    versions: HashMap<Version, Arc<VisibleDocs>>,
}

impl VisibilityCache {
    /// The statistics of `version` as `searcher` sees the index.
    pub(super) fn statistics<'s>(
        cache: &Mutex<Self>,
        searcher: &'s Searcher,
        version: Version,
    ) -> tantivy::Result<VersionStatistics<'s>> {
        let generation = searcher.generation().generation_id();
        {
            let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if cache.generation != generation {
                cache.generation = generation;
                cache.versions.clear();
            }
            if let Some(visible) = cache.versions.get(&version) {
                return Ok(VersionStatistics { searcher, visible: visible.clone() });
            }
        }
        // Counted outside the lock: searches at other versions need not wait for it.
        let visible = Arc::new(VisibleDocs::of(searcher, version)?);
        let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.generation == generation {
            if cache.versions.len() >= CACHED_VERSIONS {
                cache.versions.clear();
            }
            cache.versions.insert(version, visible.clone());
        }
        Ok(VersionStatistics { searcher, visible })
    }
}

/// [`Bm25StatisticsProvider`] over the documents visible at one version.
pub(super) struct VersionStatistics<'s> {
    searcher: &'s Searcher,
    visible: Arc<VisibleDocs>,
}

impl Bm25StatisticsProvider for VersionStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut tokens = self.visible.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&total) = tokens.get(&field) {
            return Ok(total);
        }
        let (mut total, mut having) = (0u64, 0u64);
        for (ordinal, segment) in self.searcher.segment_readers().iter().enumerate() {
            let lengths = segment.get_fieldnorms_reader(field)?;
            for doc in segment.doc_ids_alive().filter(|&doc| self.visible.contains(ordinal, doc)) {
                let length = u64::from(lengths.fieldnorm(doc));
                total += length;
                having += u64::from(length > 0);
            }
        }
        // BM25 divides this by the document count for the average length; as Lucene does, the
        // average is over the documents that have the field: each language's fields are in its
        // own chunks only, and a German chunk is long or short among German chunks.
        let scaled = u128::from(total) * u128::from(self.visible.count.max(1)) / u128::from(having.max(1));
        let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
        tokens.insert(field, scaled);
        Ok(scaled)
    }

    /// At least 1, so that an empty version's average length is not 0/0.
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.visible.count.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut count = 0;
        for (ordinal, segment) in self.searcher.segment_readers().iter().enumerate() {
            let Some(mut postings) =
                segment.inverted_index(term.field())?.read_postings(term, IndexRecordOption::Basic)?
            else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                count += u64::from(self.visible.contains(ordinal, doc));
                doc = postings.advance();
            }
        }
        Ok(count)
    }
}
