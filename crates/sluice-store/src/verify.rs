//! `sluice verify`: do the catalog, Qdrant and Tantivy agree, and is every version whole?
//!
//! The catalog is the source of truth. Every chunk appearance `(chunk id, valid_from,
//! valid_to)` it lists must be in both indexes with the same interval, and nothing else may be
//! there; each point's vector must equal the cached embedding of its text; at every committed
//! version no chunk or document may be visible twice, and the number of visible chunks must
//! equal what was counted when the version committed. Each index must also hold the readers
//! the catalog gives the chunk, since both filter on their own copy, and each point must be in
//! the index of the model that embedded it. Each index's own version filter is also run for the
//! version checked and compared with the catalog.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sluice_core::{Acl, ChunkId, TextHash, Version};

use crate::Store;
use crate::error::Result;
use crate::types::{StoredChunk, VersionState};

/// Problems listed in full; beyond this many, only counted.
const MAX_LISTED: usize = 50;
/// Largest difference allowed between a stored vector and its cached embedding (Qdrant
/// normalises cosine vectors again on insert, which moves the last bits).
const VECTOR_TOLERANCE: f32 = 1e-4;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Versions whose visible sets were checked.
    pub versions_checked: Vec<Version>,
    pub catalog_chunks: usize,
    pub vector_points: usize,
    pub lexical_documents: usize,
    pub vectors_compared: usize,
    /// Every difference found (the first `MAX_LISTED`); empty when all agree.
    pub problems: Vec<String>,
    /// All problems, listed or not.
    pub problem_count: usize,
}

impl VerifyReport {
    pub fn is_consistent(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }
}

impl Store {
    /// Compares the three stores; with `version`, checks that version (else every committed
    /// one, and the index filters at `live`). Run it between runs: a version being written is
    /// reported as pending.
    pub fn verify(&self, version: Option<Version>) -> Result<VerifyReport> {
        let pipeline = self.pipeline();
        let catalog = self.catalog();
        let mut report = VerifyReport::default();
        for pending in catalog.pending_versions(pipeline)? {
            report.problem(format!("version {pending} is pending (a run is writing it, or recovery did not run)"));
        }
        let rows = catalog.all_chunk_appearances(pipeline)?;
        report.catalog_chunks = rows.len();

        // Appearances: the catalog's against each index's, interval included.
        let expected: BTreeMap<(ChunkId, Version), Version> =
            rows.iter().map(|row| ((row.chunk_id, row.valid_from), row.valid_to)).collect();
        if expected.len() != rows.len() {
            report.problem(format!("the catalog lists {} appearances twice", rows.len() - expected.len()));
        }
        let points = self.vectors().appearances()?;
        report.vector_points = points.len();
        compare("Qdrant", &expected, points.iter().map(|(_, p)| (p.chunk_id, p.valid_from, p.valid_to)), &mut report);
        let documents = self.lexical().appearances()?;
        report.lexical_documents = documents.len();
        compare("Tantivy", &expected, documents.iter().map(|d| (d.chunk_id, d.valid_from, d.valid_to)), &mut report);

        // Readers: each index must filter on the ACL the catalog holds.
        let by_key: HashMap<(ChunkId, Version), &StoredChunk> =
            rows.iter().map(|row| ((row.chunk_id, row.valid_from), row)).collect();
        let stored_readers = points
            .iter()
            .map(|(_, p)| ("Qdrant", p.chunk_id, p.valid_from, &p.readers))
            .chain(documents.iter().map(|d| ("Tantivy", d.chunk_id, d.valid_from, &d.readers)));
        for (store, chunk_id, valid_from, readers) in stored_readers {
            let Some(row) = by_key.get(&(chunk_id, valid_from)) else { continue };
            if Acl::new(readers.iter().cloned()) != row.readers {
                report.problem(format!(
                    "{store} lets {readers:?} read chunk {chunk_id} (from version {valid_from}), the catalog {:?}",
                    row.readers.keys()
                ));
            }
        }

        // Vectors against the embedding cache.
        let wanted: Vec<(&str, TextHash)> = rows.iter().map(|row| (row.model.as_str(), row.embedding_key())).collect();
        let cached = catalog.cached_embeddings_by_model(&wanted)?;
        for (label, point) in &points {
            let (chunk_id, valid_from, vector) = (point.chunk_id, point.valid_from, &point.vector);
            let Some(row) = by_key.get(&(chunk_id, valid_from)) else { continue };
            if !row.model.starts_with(label.as_str()) {
                report.problem(format!(
                    "chunk {chunk_id} (from version {valid_from}) is in the index of model {label}…, the catalog \
                     says model {}",
                    row.model
                ));
            }
            let Some(expected) = cached.get(&(row.model.clone(), row.embedding_key())) else { continue };
            report.vectors_compared += 1;
            let worst = expected.iter().zip(vector).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            if expected.len() != vector.len() || worst > VECTOR_TOLERANCE {
                report.problem(format!(
                    "chunk {chunk_id} (from version {valid_from}): Qdrant's vector differs from its embedding by {worst}"
                ));
            }
        }

        // Each version whole: nothing visible twice, the count it committed with.
        let committed: Vec<(Version, Option<i64>)> = catalog
            .versions(pipeline)?
            .into_iter()
            .filter(|info| info.state == VersionState::Committed)
            .map(|info| (info.version, info.chunks.map(|chunks| chunks as i64)))
            .collect();
        let recorded: HashMap<Version, Option<i64>> = committed.iter().copied().collect();
        let versions: Vec<Version> = match version {
            Some(version) => {
                catalog.require_committed(pipeline, version)?;
                vec![version]
            }
            None => committed.iter().map(|(version, _)| *version).collect(),
        };
        for &v in &versions {
            let visible: Vec<&StoredChunk> = rows.iter().filter(|r| r.valid_from <= v && v < r.valid_to).collect();
            let mut chunks = HashSet::new();
            for row in &visible {
                if !chunks.insert(row.chunk_id) {
                    report.problem(format!("version {v}: chunk {} is visible twice", row.chunk_id));
                }
            }
            if let Some(Some(count)) = recorded.get(&v)
                && *count != visible.len() as i64
            {
                report.problem(format!("version {v}: {} chunks visible, {count} when it committed", visible.len()));
            }
            for (doc_id, rows) in catalog.documents_visible_twice(pipeline, v)? {
                report.problem(format!("version {v}: document {doc_id} is visible {rows} times"));
            }
        }
        // The indexes' own version filters, at the version asked for (else live).
        let filtered = version.or(self.live_version()?);
        if let Some(v) = filtered {
            let [from_catalog, from_vectors, from_lexical] = self.chunk_ids_visible_at(v)?;
            for (store, ids) in [("Qdrant", from_vectors), ("Tantivy", from_lexical)] {
                if ids != from_catalog {
                    report.problem(format!(
                        "version {v}: {store}'s version filter finds {} chunks, the catalog {}",
                        ids.len(),
                        from_catalog.len()
                    ));
                }
            }
        }
        report.versions_checked = versions;
        Ok(report)
    }
}

/// Reports every appearance missing from, extra in, or with another interval in an index.
fn compare(
    store: &str,
    expected: &BTreeMap<(ChunkId, Version), Version>,
    found: impl Iterator<Item = (ChunkId, Version, Version)>,
    report: &mut VerifyReport,
) {
    let mut seen = HashSet::new();
    for (chunk_id, valid_from, valid_to) in found {
        if !seen.insert((chunk_id, valid_from)) {
            report.problem(format!("{store} holds chunk {chunk_id} (from version {valid_from}) twice"));
            continue;
        }
        match expected.get(&(chunk_id, valid_from)) {
            None => report.problem(format!("{store} holds chunk {chunk_id} (from version {valid_from}); the catalog does not")),
            Some(to) if *to != valid_to => report.problem(format!(
                "{store} has chunk {chunk_id} (from version {valid_from}) visible until {valid_to}, the catalog until {to}"
            )),
            Some(_) => {}
        }
    }
    for (chunk_id, valid_from) in expected.keys() {
        if !seen.contains(&(*chunk_id, *valid_from)) {
            report.problem(format!("{store} lacks chunk {chunk_id} (from version {valid_from})"));
        }
    }
}
