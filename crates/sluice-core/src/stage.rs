//! Stages and the way a document fails one of them.
//!
//! A document that fails is data, not an error: it is recorded in quarantine with the stage and
//! a reason code, and the run goes on with the others.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Read,
    Extract,
    Clean,
    Dedup,
    Chunk,
    /// Language (and, to come, metadata) of chunks and documents.
    Enrich,
    Embed,
    Write,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Extract => "extract",
            Stage::Clean => "clean",
            Stage::Dedup => "dedup",
            Stage::Chunk => "chunk",
            Stage::Enrich => "enrich",
            Stage::Embed => "embed",
            Stage::Write => "write",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one document could not go through a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFailure {
    pub stage: Stage,
    /// A stable, machine-readable reason code such as `unsupported_format` or `parse_error`.
    pub reason: String,
    /// What a person needs to understand the failure.
    pub detail: String,
}

impl StageFailure {
    pub fn new(stage: Stage, reason: &str, detail: impl Into<String>) -> Self {
        Self { stage, reason: reason.to_owned(), detail: detail.into() }
    }
}

impl fmt::Display for StageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed ({}): {}", self.stage, self.reason, self.detail)
    }
}
