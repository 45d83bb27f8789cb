use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
    #[error(transparent)]
    Embed(#[from] sluice_embed::EmbedError),
    #[error(transparent)]
    Chunker(#[from] sluice_transform::ChunkError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist (a version, a quarantined file).
    #[error("{0}")]
    NotFound(String),
    /// The current state refuses the request (nothing live yet, a version not committed).
    #[error("{0}")]
    Conflict(String),
    /// Too much at once (the search audit queue is full): try again shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// A stop was requested before the work finished.
    #[error("stopped before it finished")]
    Stopped,
    /// A caller may not do this (e.g. search earlier versions without the operator role).
    #[error("{0}")]
    Forbidden(String),
}

impl PipelineError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PipelineError::Io { path, source }
    }

    /// The kind of failure (the HTTP API answers by it).
    pub fn kind(&self) -> sluice_core::ErrorKind {
        use sluice_core::ErrorKind;
        match self {
            PipelineError::Store(err) => err.kind(),
            PipelineError::Invalid(_) => ErrorKind::Invalid,
            PipelineError::NotFound(_) => ErrorKind::NotFound,
            PipelineError::Conflict(_) => ErrorKind::Conflict,
            PipelineError::Forbidden(_) => ErrorKind::Forbidden,
            PipelineError::Busy(_) | PipelineError::Stopped => ErrorKind::Unavailable,
            PipelineError::Embed(_) | PipelineError::Chunker(_) | PipelineError::Io { .. } => ErrorKind::Internal,
        }
    }

    /// Whether running again later can succeed (a busy or briefly failing store).
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store(err) => err.is_retryable(),
            PipelineError::Embed(err) => err.is_retryable(),
            PipelineError::Io { .. } | PipelineError::Busy(_) => true,
            PipelineError::Chunker(_)
            | PipelineError::Invalid(_)
            | PipelineError::NotFound(_)
            | PipelineError::Conflict(_)
            | PipelineError::Forbidden(_)
            | PipelineError::Stopped => false,
        }
    }
}
