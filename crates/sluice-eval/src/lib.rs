//! Retrieval evaluation for the evaluation gate: a new dataset version goes live only if
//! retrieval metrics on an evaluation set hold.
//!
//! Pure by design: it reads evaluation-set files and nothing else, and knows no index. The
//! retrieval side hands it, per query, a ranked list of document keys; [`evaluate_query`] and
//! [`summarise`] turn those into numbers, and [`check`] says which thresholds they miss.

mod error;
pub mod metrics;
mod report;
mod set;
mod thresholds;

pub use error::EvalError;
pub use metrics::rank;
pub use report::{QueryResult, Summary, evaluate_query, summarise};
pub use set::{EvalQuery, EvalSet, load, load_beir, load_jsonl};
pub use thresholds::{Failure, FailureReason, Metric, Retriever, Threshold, check};
