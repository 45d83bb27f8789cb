//! Hybrid search: BM25 from Tantivy and nearest neighbours from Qdrant, each restricted to the
//! requested version, fused by reciprocal rank.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sluice_core::{ChunkId, DocumentFacets, NormalizedFilter, ReadAccess, Version};

use crate::Store;
use crate::error::Result;
use crate::time_travel::Readable;
use crate::types::SearchHit;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    #[default]
    Hybrid,
    Lexical,
    Dense,
}

#[derive(Clone, Debug)]
pub struct SearchRequest<'a> {
    pub query: &'a str,
    /// The query's embedding; required for dense and hybrid search.
    pub vector: Option<&'a [f32]>,
    /// Fingerprint of the model that made `vector`: the index dense search reads.
    pub model: &'a str,
    pub version: Version,
    pub k: usize,
    pub mode: SearchMode,
    /// Candidates each retriever contributes to the fusion.
    pub lexical_candidates: usize,
    pub dense_candidates: usize,
    pub rrf_k: u32,
    /// Each retriever's weight in the fusion.
    pub lexical_weight: f64,
    pub dense_weight: f64,
    pub hnsw_ef: usize,
    /// Who is asking: both retrievers filter by it before ranking.
    pub access: &'a ReadAccess,
    /// Documents (hex ids) the asker may not see at this version although its readers then
    /// allowed it (`Catalog::revoked_documents`); excluded inside both queries too.
    pub hidden_docs: &'a [String],
    /// What the asker narrowed the search to; both retrievers apply it before ranking.
    pub filter: &'a NormalizedFilter,
}

/// A chunk appearance: (chunk id, valid_from).
type Key = (ChunkId, Version);

/// One fused result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fused {
    pub key: Key,
    pub score: f64,
    /// 1-based ranks in each retriever's list.
    pub lexical_rank: Option<usize>,
    pub dense_rank: Option<usize>,
}

/// Weighted reciprocal rank fusion: each list adds weight / (rrf_k + rank) for every chunk in
/// it. Best first; ties are broken by chunk id so the order is deterministic.
pub(crate) fn reciprocal_rank_fusion(lexical: &[Key], dense: &[Key], rrf_k: u32, weights: (f64, f64)) -> Vec<Fused> {
    let mut fused: HashMap<Key, Fused> = HashMap::new();
    let mut add = |key: Key, rank: usize, lexical: bool| {
        let entry = fused.entry(key).or_insert(Fused { key, score: 0.0, lexical_rank: None, dense_rank: None });
        let weight = if lexical { weights.0 } else { weights.1 };
        entry.score += weight / (f64::from(rrf_k) + rank as f64);
        let slot = if lexical { &mut entry.lexical_rank } else { &mut entry.dense_rank };
        slot.get_or_insert(rank);
    };
    for (index, key) in lexical.iter().enumerate() {
        add(*key, index + 1, true);
    }
    for (index, key) in dense.iter().enumerate() {
        add(*key, index + 1, false);
    }
    let mut ranked: Vec<Fused> = fused.into_values().collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.0.cmp(&b.key.0)));
    ranked
}

impl Store {
    pub fn search(&self, request: &SearchRequest<'_>) -> Result<Vec<SearchHit>> {
        let readable = Readable::by(request.access, request.hidden_docs).filtered(request.filter);
        let lexical: Vec<Key> = if request.mode == SearchMode::Dense {
            Vec::new()
        } else {
            let candidates = request.lexical_candidates.max(request.k);
            self.lexical()
                .search(request.query, request.version, readable, candidates)?
                .into_iter()
                .map(|hit| (hit.chunk_id, hit.valid_from))
                .collect()
        };
        let dense: Vec<Key> = match (request.mode, request.vector) {
            (SearchMode::Lexical, _) | (_, None) => Vec::new(),
            (_, Some(vector)) => self
                .vectors()
                .search(
                    request.model,
                    &crate::DenseQuery {
                        vector,
                        version: request.version,
                        readable,
                        limit: request.dense_candidates.max(request.k),
                        hnsw_ef: request.hnsw_ef,
                        exact: false,
                    },
                )?
                .into_iter()
                .map(|hit| (hit.chunk_id, hit.valid_from))
                .collect(),
        };
        let weights = (request.lexical_weight, request.dense_weight);
        let mut ranked = reciprocal_rank_fusion(&lexical, &dense, request.rrf_k, weights);
        ranked.truncate(request.k);
        let keys: Vec<Key> = ranked.iter().map(|fused| fused.key).collect();
        let chunks = self.catalog().chunks_by_key(self.pipeline(), &keys)?;
        let by_key: HashMap<Key, _> = chunks.into_iter().map(|c| ((c.chunk_id, c.valid_from), c)).collect();
        Ok(ranked
            .into_iter()
            .filter_map(|fused| {
                // Both retrievers filtered already; checking again costs next to nothing.
                let chunk =
                    by_key.get(&fused.key).filter(|chunk| {
                        request.access.may_read(&chunk.readers)
                            && !request.hidden_docs.contains(&chunk.doc_id.to_hex())
                            && (request.filter.is_empty()
                                || DocumentFacets::new(&chunk.format, &chunk.metadata, &chunk.source, &chunk.path)
                                    .admits(request.filter, chunk.language.as_deref(), &chunk.heading_path))
                    })?;
                Some(SearchHit::new(chunk, fused.score, fused.lexical_rank, fused.dense_rank))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        (ChunkId::from_bytes([byte; 32]), 1)
    }

    #[test]
    fn fusion_rewards_agreement_and_is_deterministic() {
        let lexical = [key(1), key(2), key(3)];
        let dense = [key(3), key(4), key(1)];
        let fused = reciprocal_rank_fusion(&lexical, &dense, 60, (1.0, 1.0));
        // 1: 1/61 + 1/63, 3: 1/63 + 1/61 — equal; the tie goes to the smaller chunk id.
        assert_eq!(fused[0].key, key(1));
        assert_eq!(fused[1].key, key(3));
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert_eq!((fused[0].lexical_rank, fused[0].dense_rank), (Some(1), Some(3)));
        assert_eq!(fused.len(), 4);
        // 2 (lexical rank 2) and 4 (dense rank 2) tie at 1/62.
        assert_eq!((fused[2].key, fused[3].key), (key(2), key(4)));
    }

    #[test]
    fn weights_scale_each_retrievers_votes() {
        let lexical = [key(1), key(2)];
        let dense = [key(2), key(1)];
        // Dense counts double: 2 gets 1/62 + 2/61, 1 gets 1/61 + 2/62.
        let fused = reciprocal_rank_fusion(&lexical, &dense, 60, (1.0, 2.0));
        assert_eq!(fused[0].key, key(2));
        assert!((fused[0].score - (1.0 / 62.0 + 2.0 / 61.0)).abs() < 1e-12);
        // A zero weight removes a retriever's say; its ranks are still reported.
        let fused = reciprocal_rank_fusion(&lexical, &dense, 60, (1.0, 0.0));
        assert_eq!(fused[0].key, key(1));
        assert_eq!(fused[0].dense_rank, Some(2));
    }
}
