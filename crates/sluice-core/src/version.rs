//! Dataset versions (DESIGN.md §3).

/// A dataset version number. Versions start at 1 and only grow.
pub type Version = i64;

/// `valid_to` of a chunk that is still live: visible in every version from `valid_from` on.
///
/// Every reader (catalog SQL, Qdrant filter, Tantivy range query) applies the same rule: a chunk
/// is visible at version `v` iff `valid_from <= v < valid_to`.
pub const VERSION_OPEN: Version = i64::MAX;
