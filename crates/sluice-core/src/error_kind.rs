//! What kind of failure an error is, whatever layer raised it. What a caller does next (try
//! again later, answer 404 or 409, repair data) depends on the kind alone, so every error type
//! of the workspace maps onto it, and the HTTP API maps it to a status in one place.

/// The kinds of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked for does not exist: a version, a chunk, a quarantined file.
    NotFound,
    /// The request is sound but the current state refuses it: a held version without force,
    /// nothing live yet, a version being written, a data directory in use.
    Conflict,
    /// A store or service cannot be reached, is overloaded or timed out: trying again later
    /// can succeed.
    Unavailable,
    /// Stored data is inconsistent.
    Corrupt,
    /// The request or a setting is wrong.
    Invalid,
    /// The caller may not do this.
    Forbidden,
    /// Anything else: a failing machine (I/O) or a bug.
    Internal,
}
