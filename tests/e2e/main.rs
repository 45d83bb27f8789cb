//! End-to-end tests: the real `sluice` binary against real folders, with real Qdrant Edge,
//! Tantivy, SQLite and model weights. One test binary; each module is one area.
//!
//! Tests that need the shared corpora (`../shared/corpora`) skip with a message when it is
//! absent. Model weights are fetched into the repository's git-ignored `models/` on first use
//! (or taken from `SLUICE_MODELS_DIR`).

#[allow(dead_code)]
mod support;

mod cli;
mod daemon;
mod embedded;
mod evaluation;
mod extraction;
mod governance;
mod ingest_and_search;
mod nodes;
mod qdrant_collection;
mod restart;
mod versions;
