//! The crate's one error type. A problem in an evaluation-set file names the file and, where
//! there is one, the 1-based line, so that a broken set is fixed without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: invalid JSON: {source}", .path.display())]
    Json { path: PathBuf, line: usize, source: serde_json::Error },
    /// A missing field, a field of the wrong type, or a qrels line of the wrong shape.
    #[error("{}:{line}: {reason}", .path.display())]
    Malformed { path: PathBuf, line: usize, reason: String },
    #[error("{}:{line}: bad relevance score `{value}`: expected a whole number no larger than 4294967295", .path.display())]
    BadScore { path: PathBuf, line: usize, value: String },
    #[error("{}:{line}: duplicate query id `{id}`", .path.display())]
    DuplicateQuery { path: PathBuf, line: usize, id: String },
    /// A qrels line for a query that `queries.jsonl` does not have (BEIR's loader fails here too).
    #[error("{}:{line}: query `{id}` is not in queries.jsonl", .path.display())]
    UnknownQuery { path: PathBuf, line: usize, id: String },
    /// A JSONL query written with no relevant document: a set cannot score it.
    #[error("{}:{line}: query `{id}` has no relevant documents", .path.display())]
    NoRelevant { path: PathBuf, line: usize, id: String },
    #[error("{}: no queries with relevant documents", .path.display())]
    EmptySet { path: PathBuf },
    #[error("unknown {kind} `{name}`: expected one of {expected}")]
    UnknownName { kind: &'static str, name: String, expected: String },
}
