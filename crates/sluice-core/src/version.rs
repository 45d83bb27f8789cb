//! Dataset versions (DESIGN.md §3).

/// A dataset version number. Versions start at 1 and only grow.
pub type Version = i64;

/// `valid_to` of a chunk that is still live: visible in every version from `valid_from` on.
pub const VERSION_OPEN: Version = i64::MAX;

/// The visibility rule every reader applies: a chunk is visible at `v` iff
/// `valid_from <= v < valid_to`.
pub fn visible_at(valid_from: Version, valid_to: Version, v: Version) -> bool {
    valid_from <= v && v < valid_to
}
