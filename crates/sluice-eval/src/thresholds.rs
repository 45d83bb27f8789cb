//! The gate: minimums on summary metrics, per retriever, and the list of those not met. A
//! dataset version goes live only when that list is empty.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{EvalError, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    #[serde(rename = "ndcg@10")]
    NdcgAt10,
    #[serde(rename = "recall@10")]
    RecallAt10,
    #[serde(rename = "recall@100")]
    RecallAt100,
    #[serde(rename = "mrr@10")]
    MrrAt10,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::NdcgAt10, Metric::RecallAt10, Metric::RecallAt100, Metric::MrrAt10];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::NdcgAt10 => "ndcg@10",
            Metric::RecallAt10 => "recall@10",
            Metric::RecallAt100 => "recall@100",
            Metric::MrrAt10 => "mrr@10",
        }
    }

    pub fn value(self, summary: &Summary) -> f64 {
        match self {
            Metric::NdcgAt10 => summary.ndcg_at_10,
            Metric::RecallAt10 => summary.recall_at_10,
            Metric::RecallAt100 => summary.recall_at_100,
            Metric::MrrAt10 => summary.mrr_at_10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    Lexical,
    Dense,
    Hybrid,
}

impl Retriever {
    pub const ALL: [Retriever; 3] = [Retriever::Lexical, Retriever::Dense, Retriever::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Retriever::Lexical => "lexical",
            Retriever::Dense => "dense",
            Retriever::Hybrid => "hybrid",
        }
    }
}

/// Names are matched ignoring ASCII case (`NDCG@10` is `ndcg@10`).
impl FromStr for Metric {
    type Err = EvalError;

    fn from_str(name: &str) -> Result<Self, EvalError> {
        let names = Metric::ALL.map(Metric::as_str);
        find_by_name(&Metric::ALL, &names, name).ok_or_else(|| unknown_name("metric", name, &names))
    }
}

/// Names are matched ignoring ASCII case (`Hybrid` is `hybrid`).
impl FromStr for Retriever {
    type Err = EvalError;

    fn from_str(name: &str) -> Result<Self, EvalError> {
        let names = Retriever::ALL.map(Retriever::as_str);
        find_by_name(&Retriever::ALL, &names, name).ok_or_else(|| unknown_name("retriever", name, &names))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Display for Retriever {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

fn find_by_name<T: Copy>(values: &[T], names: &[&str], name: &str) -> Option<T> {
    let position = names.iter().position(|known| known.eq_ignore_ascii_case(name.trim()))?;
    values.get(position).copied()
}

fn unknown_name(kind: &'static str, name: &str, names: &[&str]) -> EvalError {
    EvalError::UnknownName { kind, name: name.to_owned(), expected: names.join(", ") }
}

/// `metric` measured with `retriever` must be at least `min`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub metric: Metric,
    pub retriever: Retriever,
    pub min: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub threshold: Threshold,
    pub reason: FailureReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// Measured below the minimum (or NaN, which no minimum accepts).
    BelowMinimum { measured: f64 },
    /// No summary for the threshold's retriever: a gate cannot pass on a metric nobody measured.
    RetrieverMissing,
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Threshold { metric, retriever, min } = self.threshold;
        match self.reason {
            FailureReason::BelowMinimum { measured } => {
                write!(formatter, "{metric} for {retriever} is {measured:.4}, below the minimum {min}")
            }
            FailureReason::RetrieverMissing => {
                write!(formatter, "{metric} for {retriever} has a minimum of {min}, but {retriever} was not evaluated")
            }
        }
    }
}

/// The thresholds not met, in the order given; empty means the gate passes.
pub fn check(thresholds: &[Threshold], summaries: &BTreeMap<Retriever, Summary>) -> Vec<Failure> {
    thresholds
        .iter()
        .filter_map(|&threshold| {
            let Some(summary) = summaries.get(&threshold.retriever) else {
                return Some(Failure { threshold, reason: FailureReason::RetrieverMissing });
            };
            let measured = threshold.metric.value(summary);
            match measured.partial_cmp(&threshold.min) {
                Some(Ordering::Greater | Ordering::Equal) => None,
                Some(Ordering::Less) | None => {
                    Some(Failure { threshold, reason: FailureReason::BelowMinimum { measured } })
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(metric: Metric, retriever: Retriever, min: f64) -> Threshold {
        Threshold { metric, retriever, min }
    }

    fn summaries() -> BTreeMap<Retriever, Summary> {
        let hybrid =
            Summary { queries: 300, ndcg_at_10: 0.7, recall_at_100: 0.8, mrr_at_10: 0.6, ..Summary::default() };
        BTreeMap::from([(Retriever::Hybrid, hybrid)])
    }

    #[test]
    fn met_thresholds_pass_including_an_exact_minimum() {
        let thresholds =
            [threshold(Metric::NdcgAt10, Retriever::Hybrid, 0.65), threshold(Metric::MrrAt10, Retriever::Hybrid, 0.6)];
        assert_eq!(check(&thresholds, &summaries()), vec![]);
    }

    #[test]
    fn a_missed_threshold_reports_the_measured_value() {
        let missed = threshold(Metric::RecallAt100, Retriever::Hybrid, 0.9);
        let thresholds = [threshold(Metric::NdcgAt10, Retriever::Hybrid, 0.5), missed];
        let failures = check(&thresholds, &summaries());
        assert_eq!(
            failures,
            vec![Failure { threshold: missed, reason: FailureReason::BelowMinimum { measured: 0.8 } }]
        );
        assert_eq!(failures[0].to_string(), "recall@100 for hybrid is 0.8000, below the minimum 0.9");
    }

    #[test]
    fn a_retriever_without_a_summary_fails() {
        let dense = threshold(Metric::NdcgAt10, Retriever::Dense, 0.1);
        let failures = check(&[dense], &summaries());
        assert_eq!(failures, vec![Failure { threshold: dense, reason: FailureReason::RetrieverMissing }]);
        assert!(failures[0].to_string().contains("dense was not evaluated"), "{}", failures[0]);
    }

    #[test]
    fn a_nan_measurement_fails() {
        let nan = BTreeMap::from([(Retriever::Lexical, Summary { ndcg_at_10: f64::NAN, ..Summary::default() })]);
        let failures = check(&[threshold(Metric::NdcgAt10, Retriever::Lexical, 0.0)], &nan);
        assert!(
            matches!(failures[..], [Failure { reason: FailureReason::BelowMinimum { measured }, .. }] if measured.is_nan())
        );
    }

    #[test]
    fn names_parse_and_print_both_ways() {
        for metric in Metric::ALL {
            assert_eq!(metric.as_str().parse::<Metric>().unwrap(), metric);
            assert_eq!(serde_json::to_string(&metric).unwrap(), format!("\"{metric}\""));
        }
        for retriever in Retriever::ALL {
            assert_eq!(retriever.as_str().parse::<Retriever>().unwrap(), retriever);
            assert_eq!(serde_json::to_string(&retriever).unwrap(), format!("\"{retriever}\""));
        }
        assert_eq!("NDCG@10".parse::<Metric>().unwrap(), Metric::NdcgAt10);
        let unknown = "ndcg@5".parse::<Metric>().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown metric `ndcg@5`: expected one of ndcg@10, recall@10, recall@100, mrr@10"
        );
        assert!(matches!("sparse".parse::<Retriever>(), Err(EvalError::UnknownName { kind: "retriever", .. })));
    }
}
