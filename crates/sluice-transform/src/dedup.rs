//! Exact deduplication: two documents whose normalised texts are equal are one document.
//!
//! The key is the document's [`TextHash`](sluice_core::TextHash); which documents are live to
//! compare against is the catalog's business, so this module only names the verdicts.

use sluice_core::DocumentId;

/// What dedup decided for one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupVerdict {
    /// First live document with this text: indexed.
    Unique,
    /// Same normalised text as a document that is already live: not indexed again.
    DuplicateOf(DocumentId),
}
