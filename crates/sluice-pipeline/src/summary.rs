//! What a run did, for the CLI summary, the version record and the metrics.

use std::collections::BTreeMap;

use serde::Serialize;
use sluice_core::Version;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RunSummary {
    /// The version the run committed; `None` when nothing had changed.
    pub version: Option<Version>,
    /// Files present on disk in the run's scope.
    pub files_seen: usize,
    pub new: usize,
    pub changed: usize,
    pub deleted: usize,
    /// Same bytes, new modification time: only the ledger was refreshed.
    pub touched: usize,
    pub unchanged: usize,
    /// Unchanged files processed again because a stage changed (extractor, chunker or model).
    pub reprocessed: usize,
    /// The evaluation gate's verdict on the version (`passed`, `held`, `reported`); `None`
    /// without an evaluation set.
    pub gate: Option<String>,
    /// Files whose readers alone changed: re-added with the new ACL from stored chunks and
    /// cached vectors.
    pub access_changed: usize,
    /// Documents written (new or changed, not duplicates).
    pub indexed: usize,
    /// Documents skipped because a live document has the same text (or nearly, when near
    /// duplicates are skipped).
    pub duplicates: usize,
    /// Documents found to nearly repeat a live one (MinHash similarity at least the pipeline's
    /// threshold): indexed with the link, or skipped and counted in `duplicates` too.
    pub near_duplicates: usize,
    /// Of the documents above, those that are files embedded in other files (attachments, the
    /// messages of a mailbox).
    pub embedded: usize,
    /// Documents quarantined, by reason code.
    pub quarantined: BTreeMap<String, usize>,
    pub chunks_added: usize,
    pub chunks_retired: usize,
    /// Chunks taken from an earlier appearance of the same bytes (no extraction).
    pub chunks_reused: usize,
    pub embeddings_computed: usize,
    pub embedding_cache_hits: usize,
    /// Cache hits over all chunk texts looked up (0 when none were).
    pub embedding_cache_hit_ratio: f64,
    pub tokens_embedded: usize,
    /// Wall time per stage, summed over documents.
    pub stage_seconds: BTreeMap<String, f64>,
    pub elapsed_seconds: f64,
    /// The run was asked to stop and committed only part of its work.
    pub stopped_early: bool,
    /// Files that were not what the scan saw by the time they were read (replaced, swapped
    /// for a link or a FIFO, being written): left for the next run.
    pub requeued: usize,
    /// Their paths, for the daemon to schedule that run.
    #[serde(skip)]
    pub requeued_paths: Vec<std::path::PathBuf>,
    /// Changed files other nodes of a shared catalog held claims on: theirs to write, or this
    /// node's once their lease expires (a dead node's).
    pub held_elsewhere: usize,
    /// Their paths, for the daemon to look at again a heartbeat later.
    #[serde(skip)]
    pub held_paths: Vec<std::path::PathBuf>,
}

impl RunSummary {
    pub fn quarantined_total(&self) -> usize {
        self.quarantined.values().sum()
    }

    /// Adds what a later run over part of the same scope did (a shared catalog's next batch of
    /// claimed files): counts add up; the version, the gate and what is left are the later's.
    pub fn absorb(&mut self, later: RunSummary) {
        self.version = later.version.or(self.version);
        self.gate = later.gate.or(self.gate.take());
        self.files_seen = self.files_seen.max(later.files_seen);
        for (mine, theirs) in [
            (&mut self.new, later.new),
            (&mut self.changed, later.changed),
            (&mut self.deleted, later.deleted),
            (&mut self.touched, later.touched),
            (&mut self.unchanged, later.unchanged),
            (&mut self.reprocessed, later.reprocessed),
            (&mut self.access_changed, later.access_changed),
            (&mut self.indexed, later.indexed),
            (&mut self.duplicates, later.duplicates),
            (&mut self.near_duplicates, later.near_duplicates),
            (&mut self.embedded, later.embedded),
            (&mut self.chunks_added, later.chunks_added),
            (&mut self.chunks_retired, later.chunks_retired),
            (&mut self.chunks_reused, later.chunks_reused),
            (&mut self.embeddings_computed, later.embeddings_computed),
            (&mut self.embedding_cache_hits, later.embedding_cache_hits),
            (&mut self.tokens_embedded, later.tokens_embedded),
        ] {
            *mine += theirs;
        }
        for (reason, count) in later.quarantined {
            *self.quarantined.entry(reason).or_default() += count;
        }
        for (stage, seconds) in later.stage_seconds {
            *self.stage_seconds.entry(stage).or_default() += seconds;
        }
        self.elapsed_seconds += later.elapsed_seconds;
        self.stopped_early |= later.stopped_early;
        (self.requeued, self.requeued_paths) = (later.requeued, later.requeued_paths);
        (self.held_elsewhere, self.held_paths) = (later.held_elsewhere, later.held_paths);
        self.finish_cache_ratio();
    }

    pub(crate) fn finish_cache_ratio(&mut self) {
        let looked_up = self.embeddings_computed + self.embedding_cache_hits;
        self.embedding_cache_hit_ratio =
            if looked_up == 0 { 0.0 } else { self.embedding_cache_hits as f64 / looked_up as f64 };
    }

    pub(crate) fn add_stage_time(&mut self, stage: sluice_core::Stage, seconds: f64) {
        *self.stage_seconds.entry(stage.as_str().to_owned()).or_default() += seconds;
    }
}
