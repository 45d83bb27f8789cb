//! Evaluating a version: every query of an evaluation set through lexical, dense and hybrid
//! search, the chunk hits turned into a ranking of documents, scored by `sluice-eval`.
//!
//! A document is known to an evaluation set by a key derived from its path (relative to its
//! source): the file stem (BEIR corpus ids, `12345.txt` → `12345`), the file name, or the
//! relative path. A document's rank is that of its best chunk.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_core::{ReadAccess, SearchFilter, Version};
use sluice_eval::{EvalSet, QueryResult, Retriever, Summary, evaluate_query, summarise};
use sluice_store::{AuditEvent, SearchMode};

use crate::{Engine, PipelineError, Search};

/// How a document's path becomes the key an evaluation set names it by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKey {
    /// The file name without its extension.
    #[default]
    Stem,
    /// The file name.
    Name,
    /// The path relative to the source folder (`#member` kept for embedded files).
    Path,
}

impl DocumentKey {
    pub const NAMES: [&str; 3] = ["stem", "name", "path"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stem" => Some(Self::Stem),
            "name" => Some(Self::Name),
            "path" => Some(Self::Path),
            _ => None,
        }
    }

    /// The key of a document at `relative` (its path under its source folder).
    pub fn of(self, relative: &str) -> String {
        let file = relative.split('#').next().unwrap_or(relative);
        let name = file.rsplit('/').next().unwrap_or(file);
        match self {
            DocumentKey::Path => relative.to_owned(),
            DocumentKey::Name => name.to_owned(),
            DocumentKey::Stem => name.rsplit_once('.').map_or(name, |(stem, _)| stem).to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    pub document_key: DocumentKey,
    /// Chunks retrieved per query (documents are fewer: a document's chunks share its rank).
    pub chunks_per_query: usize,
    /// Also measure how many of the exact nearest 10 chunks the HNSW search finds.
    pub check_hnsw: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { document_key: DocumentKey::Stem, chunks_per_query: 300, check_hnsw: false }
    }
}

/// Metrics of one version per retriever, with every query's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub version: Version,
    pub queries: usize,
    pub summaries: BTreeMap<Retriever, Summary>,
    pub per_query: BTreeMap<Retriever, Vec<QueryResult>>,
    /// Mean share of the exact nearest 10 chunks the HNSW search returned (with `check_hnsw`).
    pub hnsw_recall_at_10: Option<f64>,
}

impl Engine {
    /// Runs every query of `set` against `version` (default: live) with each retriever.
    pub fn evaluate(
        &self,
        set: &EvalSet,
        version: Option<Version>,
        options: EvalOptions,
    ) -> Result<EvalReport, PipelineError> {
        let version = match version {
            Some(version) => version,
            None => self.store.live_version()?.ok_or_else(|| PipelineError::Conflict("nothing is live yet".into()))?,
        };
        // Paths are keyed relative to the source they came from, whatever the sources now are.
        let roots = self.store.catalog().document_roots(&self.plan.name)?;
        let relative = |path: &str| -> String {
            roots.iter().find_map(|root| path.strip_prefix(&format!("{root}/"))).unwrap_or(path).to_owned()
        };
        let mut summaries = BTreeMap::new();
        let mut per_query = BTreeMap::new();
        for retriever in Retriever::ALL {
            let mode = match retriever {
                Retriever::Lexical => SearchMode::Lexical,
                Retriever::Dense => SearchMode::Dense,
                Retriever::Hybrid => SearchMode::Hybrid,
            };
            let mut results = Vec::with_capacity(set.queries.len());
            for query in &set.queries {
                // A daemon shutting down does not wait for a whole evaluation.
                if self.stop_requested() {
                    return Err(PipelineError::Stopped);
                }
                let started = Instant::now();
                let search = Search {
                    query: query.text.clone(),
                    version: Some(version),
                    k: options.chunks_per_query,
                    mode,
                    filter: SearchFilter::default(),
                };
                let response = self.search_unaudited(&search, &ReadAccess::Unrestricted)?;
                let latency_ms = started.elapsed().as_secs_f64() * 1e3;
                let keys: Vec<String> =
                    response.hits.iter().map(|hit| options.document_key.of(&relative(&hit.path))).collect();
                results.push(evaluate_query(query, &keys, latency_ms));
            }
            summaries.insert(retriever, summarise(&results));
            per_query.insert(retriever, results);
        }
        let hnsw_recall_at_10 = if options.check_hnsw { Some(self.hnsw_recall(set, version)?) } else { None };
        Ok(EvalReport { version, queries: set.queries.len(), summaries, per_query, hnsw_recall_at_10 })
    }

    /// Mean over the set's queries of |HNSW top 10 ∩ exact top 10| / |exact top 10|, in chunks.
    fn hnsw_recall(&self, set: &EvalSet, version: Version) -> Result<f64, PipelineError> {
        let ef = self.plan.search.hnsw_ef;
        let mut total = 0.0;
        for query in &set.queries {
            let embedder = self.query_models.for_version(&self.store, version)?;
            let vector = embedder.embed(&[query.text.as_str()], embedder.default_batch_tokens())?.remove(0);
            let model = embedder.fingerprint().to_hex();
            let nearest = |exact| -> Result<Vec<_>, PipelineError> {
                let hits = self.store.vectors().search(
                    &model,
                    &sluice_store::DenseQuery {
                        vector: &vector,
                        version,
                        readable: sluice_store::Readable::unrestricted(),
                        limit: 10,
                        hnsw_ef: ef,
                        exact,
                    },
                )?;
                Ok(hits.into_iter().map(|hit| (hit.chunk_id, hit.valid_from)).collect())
            };
            let (exact, approximate) = (nearest(true)?, nearest(false)?);
            if !exact.is_empty() {
                total += approximate.iter().filter(|key| exact.contains(key)).count() as f64 / exact.len() as f64;
            }
        }
        Ok(total / set.queries.len().max(1) as f64)
    }

    /// Whether a commit waits for the evaluation gate before `live` moves to it.
    pub(crate) fn gate_blocks(&self) -> bool {
        self.plan.eval.set.is_some() && self.plan.eval.blocking
    }

    /// Evaluates committed version N with the pipeline's set and records the verdict:
    /// `passed` (and `live` moves to N) or `held` when the gate blocks, `reported` when it
    /// does not. An evaluation that cannot run holds the version too. Audited either way.
    pub(crate) fn judge(&self, version: Version) -> Result<Option<&'static str>, PipelineError> {
        let eval = &self.plan.eval;
        let Some(set_path) = &eval.set else { return Ok(None) };
        let options = EvalOptions {
            document_key: DocumentKey::parse(&eval.document_key).unwrap_or_default(),
            ..EvalOptions::default()
        };
        let outcome = sluice_eval::load(set_path, &eval.split)
            .map_err(|err| PipelineError::Invalid(format!("evaluation set {}: {err}", set_path.display())))
            .and_then(|mut set| {
                if eval.max_queries > 0 {
                    set.queries.truncate(eval.max_queries);
                }
                self.evaluate(&set, Some(version), options)
            });
        let (verdict, report) = match outcome {
            Err(PipelineError::Stopped) => {
                tracing::warn!(pipeline = %self.plan.name, version, "stopped before the gate judged the version; judged at the next start");
                return Ok(None);
            }
            Ok(report) => {
                let failures: Vec<String> =
                    sluice_eval::check(&eval.thresholds, &report.summaries).iter().map(ToString::to_string).collect();
                let verdict = match (eval.blocking, failures.is_empty()) {
                    (false, _) => "reported",
                    (true, true) => "passed",
                    (true, false) => "held",
                };
                let report = serde_json::json!({
                    "set": set_path.display().to_string(),
                    "queries": report.queries,
                    "summaries": report.summaries,
                    "thresholds": eval.thresholds,
                    "failures": failures,
                });
                (verdict, report)
            }
            Err(err) => {
                let verdict = if eval.blocking { "held" } else { "reported" };
                (verdict, serde_json::json!({"set": set_path.display().to_string(), "error": err.to_string()}))
            }
        };
        let action = match verdict {
            "passed" => "gate_passed",
            "held" => "held",
            _ => "evaluated",
        };
        let event = AuditEvent::new(&self.plan.name, "pipeline", action, format!("version {version}"), report.clone());
        // The verdict, the move of `live` (when it passed) and its audit entry: one transaction.
        self.store.record_gate(version, verdict, &report, verdict == "passed", event)?;
        if verdict == "held" {
            tracing::warn!(pipeline = %self.plan.name, version, "version held by the evaluation gate; live stays");
        } else {
            tracing::info!(pipeline = %self.plan.name, version, verdict, "version evaluated");
        }
        Ok(Some(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::DocumentKey;

    #[test]
    fn documents_are_keyed_by_stem_name_or_path() {
        assert_eq!(DocumentKey::Stem.of("corpus/4983.txt"), "4983");
        assert_eq!(DocumentKey::Stem.of("a.tar.gz"), "a.tar");
        assert_eq!(DocumentKey::Stem.of("README"), "README");
        assert_eq!(DocumentKey::Name.of("corpus/4983.txt"), "4983.txt");
        assert_eq!(DocumentKey::Path.of("mail/box.mbox#0003.eml"), "mail/box.mbox#0003.eml");
        assert_eq!(DocumentKey::Stem.of("mail/box.mbox#0003.eml"), "box");
    }
}
