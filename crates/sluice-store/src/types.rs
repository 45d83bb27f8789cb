//! Records of the store's own API (the shared ones are `sluice_core::records`).

pub use sluice_core::records::*;

/// A document version whose chunks can be reused when the same bytes appear again (a rename, a
/// revert, a copy) under the same extraction and chunking fingerprints, and what they weigh.
#[derive(Clone, Debug)]
pub struct Reusable {
    pub(crate) row: i64,
    /// Bytes of chunk text, and chunks.
    pub text_bytes: u64,
    pub chunks: u64,
}

/// Everything a version's commit writes besides its chunks.
#[derive(Clone, Copy)]
pub struct CommitRecord<'a> {
    pub ledger: &'a [LedgerChange],
    pub quarantined: &'a [QuarantineEntry],
    /// Files whose quarantine entries are cleared: (root, relative path).
    pub cleared_quarantine: &'a [(String, String)],
    pub summary: &'a serde_json::Value,
    pub audit: &'a [crate::AuditEvent],
    pub costs: &'a [crate::DocumentCost],
    /// Point `live` at the version (else an evaluation gate decides later).
    pub promote: bool,
    /// The run writing the version: its in-flight records go with the commit.
    pub run_id: &'a str,
    /// Other in-flight records the run dealt with (files a crash left, now quarantined).
    pub cleared_in_flight: &'a [(String, String)],
}
