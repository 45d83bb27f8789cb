//! The text stages between extraction and embedding: clean (normalise), chunk, the PII stage
//! (detect, then tag, mask or drop chunks) and enrich (language).
//!
//! Exact dedup compares a document's normalised-text hash (computed by `clean`) with the live
//! documents in the catalog, so that decision is made by the run (`sluice-pipeline`), not here.
//! Everything here is a deterministic function of its input and settings; each stage exposes a
//! fingerprint of those settings so a change invalidates exactly what it touches.

pub mod chunk;
pub mod clean;
pub mod enrich;
pub mod language;
pub mod near_dup;
pub mod pii;
pub mod quality;
pub mod redact;

pub use chunk::{ChunkError, Chunker};
pub use clean::{CLEAN_STEPS, CLEAN_VERSION, normalize};
pub use quality::{QualityFailure, QualityThresholds, TextStats};
