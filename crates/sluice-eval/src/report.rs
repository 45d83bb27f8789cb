//! Per-query results and their summary: what the gate compares with its thresholds, and what
//! goes to JSON for people to read.
//!
//! Means are macro averages over every query given. A query the retriever returned nothing for
//! (or lost) scores 0 on every metric and still counts, as `trec_eval -c` averages over every
//! query in the qrels. pytrec_eval, and so BEIR, average over the queries present in the run only,
//! which would let a retriever that drops hard queries look better than it is.

use serde::{Deserialize, Serialize};

use crate::EvalQuery;
use crate::metrics::{mrr_at, ndcg_at, recall_at};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub id: String,
    pub ndcg_at_10: f64,
    pub recall_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    pub latency_ms: f64,
    /// Keys the retriever returned, as given.
    pub retrieved: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub queries: usize,
    pub ndcg_at_10: f64,
    pub recall_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

/// Scores one query's ranked keys (best first) against its judgements.
pub fn evaluate_query(query: &EvalQuery, ranked: &[String], latency_ms: f64) -> QueryResult {
    QueryResult {
        id: query.id.clone(),
        ndcg_at_10: ndcg_at(ranked, &query.relevant, 10),
        recall_at_10: recall_at(ranked, &query.relevant, 10),
        recall_at_100: recall_at(ranked, &query.relevant, 100),
        mrr_at_10: mrr_at(ranked, &query.relevant, 10),
        latency_ms,
        retrieved: ranked.len(),
    }
}

/// Macro means over `results`, and nearest-rank latency percentiles. No results give all zeros.
pub fn summarise(results: &[QueryResult]) -> Summary {
    if results.is_empty() {
        return Summary::default();
    }
    let mean = |metric: fn(&QueryResult) -> f64| results.iter().map(metric).sum::<f64>() / results.len() as f64;
    let mut latencies_ms: Vec<f64> = results.iter().map(|result| result.latency_ms).collect();
    latencies_ms.sort_by(f64::total_cmp);
    Summary {
        queries: results.len(),
        ndcg_at_10: mean(|result| result.ndcg_at_10),
        recall_at_10: mean(|result| result.recall_at_10),
        recall_at_100: mean(|result| result.recall_at_100),
        mrr_at_10: mean(|result| result.mrr_at_10),
        latency_p50_ms: nearest_rank(&latencies_ms, 50),
        latency_p95_ms: nearest_rank(&latencies_ms, 95),
    }
}

/// The nearest-rank percentile: the smallest value with at least `percent`% of values at or
/// below it. Integer arithmetic, so that 95% of 20 is exactly rank 19. `sorted` is not empty.
fn nearest_rank(sorted: &[f64], percent: usize) -> f64 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn query(id: &str, relevant: &[&str]) -> EvalQuery {
        let relevant: BTreeMap<String, u32> = relevant.iter().map(|key| (key.to_string(), 1)).collect();
        EvalQuery { id: id.to_owned(), text: format!("text of {id}"), relevant }
    }

    fn result_with_latency(latency_ms: f64) -> QueryResult {
        evaluate_query(&query("q", &["a"]), &[], latency_ms)
    }

    #[test]
    fn an_empty_ranking_scores_zero_and_lowers_the_mean() {
        let found = evaluate_query(&query("found", &["a"]), &["a".to_owned()], 3.0);
        let missing = evaluate_query(&query("missing", &["b"]), &[], 5.0);
        assert_eq!((found.ndcg_at_10, found.recall_at_10, found.recall_at_100, found.mrr_at_10), (1.0, 1.0, 1.0, 1.0));
        let zeros = (missing.ndcg_at_10, missing.recall_at_10, missing.recall_at_100, missing.mrr_at_10);
        assert_eq!(zeros, (0.0, 0.0, 0.0, 0.0));
        assert_eq!(missing.retrieved, 0);
        // (1 + 0) / 2 on every metric: the missing query counts.
        let summary = summarise(&[found, missing]);
        assert_eq!(summary.queries, 2);
        assert_eq!((summary.ndcg_at_10, summary.recall_at_10, summary.recall_at_100), (0.5, 0.5, 0.5));
        assert_eq!(summary.mrr_at_10, 0.5);
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        // Sorted [15, 20, 35, 40, 50]: p50 is rank ceil(2.5) = 3 → 35; p95 is rank ceil(4.75) = 5 → 50.
        let results: Vec<QueryResult> = [50.0, 15.0, 40.0, 20.0, 35.0].into_iter().map(result_with_latency).collect();
        let summary = summarise(&results);
        assert_eq!((summary.latency_p50_ms, summary.latency_p95_ms), (35.0, 50.0));
        // 1..=20: p50 is rank 10 → 10; p95 is rank 19 exactly (not 20) → 19.
        let results: Vec<QueryResult> = (1..=20).rev().map(|ms| result_with_latency(f64::from(ms))).collect();
        let summary = summarise(&results);
        assert_eq!((summary.latency_p50_ms, summary.latency_p95_ms), (10.0, 19.0));
    }

    #[test]
    fn no_results_summarise_to_zeros() {
        assert_eq!(summarise(&[]), Summary::default());
    }

    #[test]
    fn summary_round_trips_through_json() {
        let summary = summarise(&[result_with_latency(7.0)]);
        let json = serde_json::to_string(&summary).unwrap();
        assert!(json.contains("\"latency_p95_ms\":7.0"), "{json}");
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), summary);
    }
}
