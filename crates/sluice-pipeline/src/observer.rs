//! Hooks for progress bars and metrics; the pipeline itself neither prints nor counts.

use sluice_core::Stage;
use sluice_store::DocumentCost;

/// How one document ended in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Indexed {
        chunks: usize,
    },
    Duplicate,
    Quarantined {
        reason: &'a str,
    },
    Deleted,
    /// Not what the scan saw by the time it was read: looked at again in the next run.
    Requeued,
}

pub trait Observer: Sync {
    /// A version is being written for `documents` documents to process.
    fn started(&self, _documents: usize) {}
    /// How one file of the run ended (its own document).
    fn document(&self, _outcome: Outcome<'_>) {}
    /// How one file embedded in a file of the run (an attachment, a message) ended.
    fn embedded(&self, _outcome: Outcome<'_>) {}
    /// Wall time one document (or one batch, for embed and write) spent in a stage.
    fn stage(&self, _stage: Stage, _seconds: f64) {}
    /// Vectors computed by the model and served from the cache.
    fn embeddings(&self, _computed: usize, _cache_hits: usize) {}
    /// What one file of the run cost, per stage.
    fn cost(&self, _cost: &DocumentCost) {}
}

/// Observes nothing.
pub struct Quiet;

impl Observer for Quiet {}
