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
    #[error("cannot start threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

impl PipelineError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PipelineError::Io { path, source }
    }

    /// Whether running again later can succeed (a busy or briefly failing store).
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store(err) => err.is_retryable(),
            PipelineError::Embed(err) => err.is_retryable(),
            PipelineError::Io { .. } => true,
            PipelineError::Chunker(_) | PipelineError::Invalid(_) | PipelineError::Threads(_) => false,
        }
    }
}
