/// What can go wrong in the stores. Bad documents never get here: this is about the stores.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("catalog (SQLite): {0}")]
    Catalog(#[from] rusqlite::Error),
    /// A statement PostgreSQL refused (connection failures are `Unavailable`).
    #[error("catalog (PostgreSQL): {0}")]
    Postgres(String),
    #[error("lexical index (Tantivy): {0}")]
    Lexical(#[from] tantivy::TantivyError),
    #[error("lexical index (Tantivy): {0}")]
    LexicalOpen(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("vector index ({backend}): {message}")]
    Vectors {
        backend: &'static str,
        message: String,
        /// Qdrant's service errors (I/O, a full disk) can pass; bad input cannot.
        transient: bool,
    },
    /// A store on another machine (a Qdrant server) cannot be reached, is overloaded or timed
    /// out: the run fails and is retried; searches that need it fail, the rest keep working.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("data directory {path} is in use by another sluice process (pid {pid})")]
    Locked { path: std::path::PathBuf, pid: String },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// What was asked for does not exist (a version, a chunk).
    #[error("{0}")]
    NotFound(String),
    /// The current state refuses the request (a held version without force, nothing live).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether trying again can succeed once the machine recovers, without anyone changing a
    /// setting or repairing data: a busy database, I/O errors, a full disk.
    pub fn is_retryable(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            StoreError::Catalog(rusqlite::Error::SqliteFailure(err, _)) => matches!(
                err.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::OutOfMemory
                    | ErrorCode::CannotOpen
            ),
            // Tantivy reports a full disk during a commit as an internal error, too.
            StoreError::Lexical(
                tantivy::TantivyError::IoError(_)
                | tantivy::TantivyError::OpenWriteError(_)
                | tantivy::TantivyError::OpenReadError(_)
                | tantivy::TantivyError::InternalError(_),
            ) => true,
            StoreError::Vectors { transient, .. } => *transient,
            StoreError::Io { .. } | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }
}

impl StoreError {
    /// The kind of failure, for callers that decide what to do next by it.
    pub fn kind(&self) -> sluice_core::ErrorKind {
        use sluice_core::ErrorKind;
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Conflict(_) | StoreError::Locked { .. } => ErrorKind::Conflict,
            StoreError::Corrupt(_) => ErrorKind::Corrupt,
            StoreError::Invalid(_) => ErrorKind::Invalid,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Io { .. } => ErrorKind::Internal,
            // A busy database, a full disk, a vector store's transient failure.
            other if other.is_retryable() => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

impl From<qdrant_edge::OperationError> for StoreError {
    fn from(err: qdrant_edge::OperationError) -> Self {
        let transient = matches!(err, qdrant_edge::OperationError::ServiceError { .. });
        StoreError::Vectors { backend: "Qdrant Edge", message: err.to_string(), transient }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
