//! Per-query retrieval metrics over a ranked list of document keys, as trec_eval defines them
//! (the definitions BEIR reports through pytrec_eval), and [`rank`], which turns scored hits into
//! such a list deterministically.
//!
//! A ranked list is best first. A key that repeats counts only at its first occurrence and the
//! repeat is removed, not kept as a non-relevant slot, so in `[a, a, b]` `b` ranks second
//! (trec_eval rejects such runs, and pytrec_eval's run dict cannot hold them). A key absent from
//! `relevant`, or graded 0, is not relevant. Every metric is 0 when nothing is relevant or `k`
//! is 0.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// Orders scored hits best first: score descending, ties by key ascending, keeping each key's
/// best-scored occurrence. A NaN score ranks as negative infinity.
///
/// trec_eval breaks ties by docno descending. Ascending is chosen here because it is the order a
/// reader predicts from a list of keys; either rule is arbitrary, and they differ only among hits
/// with exactly equal scores.
pub fn rank(hits: &[(String, f64)]) -> Vec<String> {
    let comparable = |score: f64| if score.is_nan() { f64::NEG_INFINITY } else { score };
    let mut ordered: Vec<&(String, f64)> = hits.iter().collect();
    ordered.sort_by(|(key_a, score_a), (key_b, score_b)| {
        let by_score = comparable(*score_b).partial_cmp(&comparable(*score_a)).unwrap_or(Ordering::Equal);
        by_score.then_with(|| key_a.cmp(key_b))
    });
    let mut seen = HashSet::new();
    ordered.into_iter().filter(|(key, _)| seen.insert(key.as_str())).map(|(key, _)| key.clone()).collect()
}

/// Normalised discounted cumulative gain at `k`, with linear gain (the grade) and discount
/// `1 / log2(rank + 1)`, as trec_eval's `ndcg_cut`.
pub fn ndcg_at(ranked: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    let mut ideal_grades: Vec<u32> = relevant.values().copied().filter(|&grade| grade > 0).collect();
    ideal_grades.sort_unstable_by(|a, b| b.cmp(a));
    let ideal: f64 = ideal_grades.into_iter().take(k).enumerate().map(|(index, grade)| gain(grade, index + 1)).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let actual: f64 = graded_top_k(ranked, relevant, k).map(|(rank, grade)| gain(grade, rank)).sum();
    actual / ideal
}

/// Relevant documents in the top `k` over all relevant documents.
pub fn recall_at(ranked: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    let relevant_total = relevant.values().filter(|&&grade| grade > 0).count();
    if relevant_total == 0 {
        return 0.0;
    }
    let found = graded_top_k(ranked, relevant, k).filter(|&(_, grade)| grade > 0).count();
    found as f64 / relevant_total as f64
}

/// Relevant documents in the top `k` over `k` (not over the number retrieved, as trec_eval's `P_k`).
pub fn precision_at(ranked: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let found = graded_top_k(ranked, relevant, k).filter(|&(_, grade)| grade > 0).count();
    found as f64 / k as f64
}

/// Reciprocal rank of the first relevant document in the top `k`, or 0.
pub fn mrr_at(ranked: &[String], relevant: &BTreeMap<String, u32>, k: usize) -> f64 {
    graded_top_k(ranked, relevant, k).find(|&(_, grade)| grade > 0).map_or(0.0, |(rank, _)| 1.0 / rank as f64)
}

fn gain(grade: u32, rank: usize) -> f64 {
    f64::from(grade) / (rank as f64 + 1.0).log2()
}

/// The first `k` distinct keys of `ranked` as (1-based rank, grade).
fn graded_top_k<'a>(
    ranked: &'a [String],
    relevant: &'a BTreeMap<String, u32>,
    k: usize,
) -> impl Iterator<Item = (usize, u32)> + 'a {
    let mut seen = HashSet::new();
    ranked
        .iter()
        .filter(move |key| seen.insert(key.as_str()))
        .take(k)
        .enumerate()
        .map(|(index, key)| (index + 1, relevant.get(key).copied().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|key| key.to_string()).collect()
    }

    fn grades(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|&(key, grade)| (key.to_owned(), grade)).collect()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
    }

    #[test]
    fn ndcg_uses_linear_graded_gain() {
        let relevant = grades(&[("a", 3), ("b", 2), ("c", 1)]);
        // DCG  = 1/log2(2) + 0/log2(3) + 3/log2(4) + 2/log2(5) = 1 + 0 + 1.5 + 0.86135… = 3.36135…
        // IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4)             = 3 + 1.26186… + 0.5     = 4.76186…
        let dcg = 1.0 + 3.0 / 2.0 + 2.0 / 5f64.log2();
        let ideal = 3.0 + 2.0 / 3f64.log2() + 1.0 / 2.0;
        let ndcg = ndcg_at(&keys(&["c", "x", "a", "b"]), &relevant, 10);
        assert_close(ndcg, dcg / ideal);
        assert_close(ndcg, 0.705_890_862_824_631_3);
    }

    #[test]
    fn ndcg_ignores_relevant_documents_beyond_k() {
        let relevant = grades(&[("a", 3), ("b", 2), ("c", 1)]);
        // Top 2 of [c, x, a, b]: DCG = 1/log2(2) = 1; IDCG@2 = 3 + 2/log2(3) = 4.26186…
        assert_close(ndcg_at(&keys(&["c", "x", "a", "b"]), &relevant, 2), 1.0 / (3.0 + 2.0 / 3f64.log2()));
        // Nothing relevant in the top 2 at all.
        assert_eq!(ndcg_at(&keys(&["x", "y", "a"]), &relevant, 2), 0.0);
    }

    #[test]
    fn ndcg_with_k_beyond_the_list_and_with_nothing_relevant() {
        let relevant = grades(&[("a", 1), ("b", 1)]);
        // One result, k = 10: DCG = 1; IDCG = 1 + 1/log2(3) = 1.63093…, as b was never retrieved.
        assert_close(ndcg_at(&keys(&["a"]), &relevant, 10), 1.0 / (1.0 + 1.0 / 3f64.log2()));
        assert_close(ndcg_at(&keys(&["b", "a"]), &relevant, 10), 1.0);
        assert_eq!(ndcg_at(&keys(&["a", "b"]), &BTreeMap::new(), 10), 0.0);
        assert_eq!(ndcg_at(&keys(&["a", "b"]), &grades(&[("a", 0)]), 10), 0.0);
    }

    #[test]
    fn recall_and_mrr_respect_the_cutoff() {
        let relevant = grades(&[("r1", 1), ("r2", 1)]);
        // Ten misses, then r1 at rank 11 and r2 at rank 12.
        let mut ranked: Vec<String> = (1..=10).map(|n| format!("miss{n}")).collect();
        ranked.extend(keys(&["r1", "r2"]));
        assert_eq!(mrr_at(&ranked, &relevant, 10), 0.0);
        assert_eq!(recall_at(&ranked, &relevant, 10), 0.0);
        assert_eq!(recall_at(&ranked, &relevant, 100), 1.0);
        assert_close(mrr_at(&ranked, &relevant, 100), 1.0 / 11.0);
        // r2 at rank 3, r1 not retrieved: recall 1/2, MRR 1/3, P@5 = 1/5 although only 3 came back.
        let ranked = keys(&["x", "y", "r2"]);
        assert_eq!(recall_at(&ranked, &relevant, 10), 0.5);
        assert_close(mrr_at(&ranked, &relevant, 10), 1.0 / 3.0);
        assert_close(precision_at(&ranked, &relevant, 5), 0.2);
    }

    #[test]
    fn a_repeated_key_counts_once_at_its_first_rank() {
        let relevant = grades(&[("a", 1), ("b", 1)]);
        // [a, a, b] is [a, b]: both relevant in the top 2, not one.
        let ranked = keys(&["a", "a", "b"]);
        assert_eq!(recall_at(&ranked, &relevant, 2), 1.0);
        assert_close(precision_at(&ranked, &relevant, 2), 1.0);
        assert_close(ndcg_at(&ranked, &relevant, 2), 1.0);
        // A repeated miss does not push b down: [x, x, b] has b at rank 2.
        assert_close(mrr_at(&keys(&["x", "x", "b"]), &relevant, 10), 0.5);
    }

    #[test]
    fn rank_breaks_ties_by_key_ascending() {
        let hits = vec![("b".to_owned(), 1.0), ("c".to_owned(), 2.0), ("a".to_owned(), 1.0), ("d".to_owned(), 1.0)];
        assert_eq!(rank(&hits), keys(&["c", "a", "b", "d"]));
        let mut reversed = hits.clone();
        reversed.reverse();
        assert_eq!(rank(&reversed), rank(&hits), "input order must not matter");
        // 0.0 and -0.0 are a tie, broken by key.
        assert_eq!(rank(&[("z".to_owned(), 0.0), ("y".to_owned(), -0.0)]), keys(&["y", "z"]));
    }

    #[test]
    fn rank_keeps_each_keys_best_occurrence_and_puts_nan_last() {
        let hits = vec![("x".to_owned(), 0.1), ("y".to_owned(), 0.5), ("x".to_owned(), 0.9), ("y".to_owned(), 0.2)];
        assert_eq!(rank(&hits), keys(&["x", "y"]));
        let hits = vec![("n".to_owned(), f64::NAN), ("m".to_owned(), -1.0e300)];
        assert_eq!(rank(&hits), keys(&["m", "n"]));
    }
}
