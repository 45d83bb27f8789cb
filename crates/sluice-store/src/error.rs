/// What can go wrong in the stores. Bad documents never get here: this is about the stores.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("catalog (SQLite): {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("lexical index (Tantivy): {0}")]
    Lexical(#[from] tantivy::TantivyError),
    #[error("lexical index (Tantivy): {0}")]
    LexicalOpen(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("vector index (Qdrant Edge): {0}")]
    Vectors(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("data directory {path} is in use by another sluice process (pid {pid})")]
    Locked { path: std::path::PathBuf, pid: String },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether trying again can succeed without anyone changing anything (busy database,
    /// transient I/O), as opposed to a wrong setup or damaged data.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Catalog(rusqlite::Error::SqliteFailure(err, _)) => {
                matches!(err.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            StoreError::Io { .. } => true,
            _ => false,
        }
    }
}

impl From<qdrant_edge::OperationError> for StoreError {
    fn from(err: qdrant_edge::OperationError) -> Self {
        StoreError::Vectors(err.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
