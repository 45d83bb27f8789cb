//! The text stages between extraction and embedding: clean (normalise), dedup, chunk.
//!
//! Everything here is a deterministic function of its input and settings; each stage exposes a
//! fingerprint of those settings so a change invalidates exactly what it touches.

pub mod chunk;
pub mod clean;
pub mod dedup;

pub use chunk::{ChunkError, Chunker};
pub use clean::normalize;
pub use dedup::DedupVerdict;
