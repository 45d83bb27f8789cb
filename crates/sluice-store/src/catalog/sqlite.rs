//! The catalog: one SQLite database (WAL) that is the source of truth for files, documents,
//! chunks, versions, aliases, the embedding cache and quarantine.
//!
//! Qdrant and Tantivy are indexes over what the catalog says; everything they hold can be
//! rebuilt from it. One writer connection (behind a mutex) and a small pool of read connections
//! let searches run while a version is being written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, params};
use sluice_core::{Acl, Chunk, ChunkId, ContentHash, DocumentId, Fingerprint, TextHash, VERSION_OPEN, Version};

use crate::audit::Actor;
use crate::error::{Result, StoreError};
use crate::prelude::*;
use crate::types::{
    ChangeReason, CommitRecord, DocumentWrite, FileStatus, LedgerChange, LedgerEntry, LiveDocument, QuarantineEntry,
    Reusable, ReusableDocument, StageFingerprints, StoredChunk, VersionInfo, VersionState, join_path,
};

const SCHEMA_VERSION: i64 = 5;

const META: &str = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS versions (
    pipeline             TEXT NOT NULL,
    version              INTEGER NOT NULL,
    state                TEXT NOT NULL,
    pipeline_fingerprint TEXT NOT NULL,
    started_at           INTEGER NOT NULL,
    finished_at          INTEGER,
    -- Chunks visible at this version, counted when it commits.
    chunks               INTEGER,
    summary              TEXT NOT NULL DEFAULT '{}',
    run_id               TEXT NOT NULL DEFAULT '',
    -- Kept by retention whatever its age.
    pinned               INTEGER NOT NULL DEFAULT 0,
    -- The evaluation gate's verdict (passed, held, forced, reported) and its report (JSON).
    gate                 TEXT,
    evaluation           TEXT,
    -- The audit entry that recorded the commit (a wiped log is noticed against it).
    audit_seq            INTEGER,
    PRIMARY KEY (pipeline, version)
);
-- Every move of an alias, oldest first: what `rollback` walks back through.
CREATE TABLE IF NOT EXISTS alias_history (
    id       INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    name     TEXT NOT NULL,
    version  INTEGER NOT NULL,
    action   TEXT NOT NULL,
    at       INTEGER NOT NULL
);
-- What each stage fingerprint stands for: the settings text it hashes (lineage shows it).
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    stage       TEXT NOT NULL,
    settings    TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
    pipeline   TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (pipeline, name)
);
-- What each source file looked like at the last committed version.
CREATE TABLE IF NOT EXISTS files (
    pipeline     TEXT NOT NULL,
    root         TEXT NOT NULL,
    rel_path     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    -- The file's readers (Acl JSON) when it was last processed: a change alone is a new version.
    readers      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pipeline, root, rel_path)
);
-- One row per appearance of a document version, visible in [valid_from, valid_to). A file's
-- embedded files (attachments, a mailbox's messages) are documents with the same root and
-- rel_path, a non-empty member path and their parent's doc_id.
CREATE TABLE IF NOT EXISTS documents (
    id                INTEGER PRIMARY KEY,
    pipeline          TEXT NOT NULL,
    doc_id            TEXT NOT NULL,
    root              TEXT NOT NULL,
    rel_path          TEXT NOT NULL,
    member            TEXT NOT NULL DEFAULT '',
    parent            TEXT,
    embedded_files    INTEGER NOT NULL DEFAULT 0,
    content_hash      TEXT NOT NULL,
    text_hash         TEXT NOT NULL,
    format            TEXT NOT NULL,
    title             TEXT,
    page_count        INTEGER,
    byte_size         INTEGER NOT NULL,
    chunk_fingerprint TEXT NOT NULL,
    duplicate_of      TEXT,
    valid_from        INTEGER NOT NULL,
    valid_to          INTEGER NOT NULL,
    -- Fingerprints of extraction+cleaning and of the model that embedded the chunks.
    extract_fingerprint TEXT NOT NULL DEFAULT '',
    model_fingerprint   TEXT NOT NULL DEFAULT '',
    -- Why this document version was added, and why it was retired (ChangeReason).
    added_reason      TEXT NOT NULL DEFAULT 'new',
    retired_reason    TEXT,
    -- Unix milliseconds when it was written.
    created_at        INTEGER NOT NULL DEFAULT 0,
    -- Who may read it (Acl JSON: principal keys), and the PII found per kind (JSON counts).
    readers           TEXT NOT NULL DEFAULT '[]',
    pii               TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS documents_by_doc ON documents (pipeline, doc_id, valid_to);
CREATE INDEX IF NOT EXISTS documents_by_file ON documents (pipeline, root, rel_path, valid_to);
CREATE INDEX IF NOT EXISTS documents_by_content ON documents (pipeline, content_hash, chunk_fingerprint);
CREATE INDEX IF NOT EXISTS documents_by_text ON documents (pipeline, text_hash, valid_to);
CREATE INDEX IF NOT EXISTS documents_by_valid_from ON documents (pipeline, valid_from);
CREATE INDEX IF NOT EXISTS documents_by_valid_to ON documents (pipeline, valid_to);
-- One row per appearance of a chunk: (chunk_id, valid_from) is the point key of both indexes.
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id    TEXT NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_to    INTEGER NOT NULL,
    document    INTEGER NOT NULL REFERENCES documents (id),
    pipeline    TEXT NOT NULL,
    ordinal     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    text_hash   TEXT NOT NULL,
    char_start  INTEGER NOT NULL,
    char_end    INTEGER NOT NULL,
    page        INTEGER,
    token_count INTEGER NOT NULL,
    -- JSON array of the headings above the chunk, outermost first.
    heading_path TEXT NOT NULL DEFAULT '[]',
    -- JSON array of the PII kinds found in the text.
    pii         TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (chunk_id, valid_from)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document);
CREATE INDEX IF NOT EXISTS chunks_by_valid_from ON chunks (pipeline, valid_from);
CREATE INDEX IF NOT EXISTS chunks_by_valid_to ON chunks (pipeline, valid_to);
-- (model fingerprint, text hash) -> little-endian f32 vector.
CREATE TABLE IF NOT EXISTS embeddings (
    model     TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    pipeline     TEXT NOT NULL,
    root         TEXT NOT NULL,
    rel_path     TEXT NOT NULL,
    -- '' for the file itself, else the embedded file that failed.
    member       TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL,
    stage        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (pipeline, root, rel_path, member)
);
-- Append-only and hash-chained: each entry's hash covers its fields and the previous hash.
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    pipeline  TEXT NOT NULL,
    principal TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    -- 1 when `hash` is an HMAC under the audit key, 0 when it is a plain hash.
    keyed     INTEGER NOT NULL DEFAULT 0
);
-- Rotated parts of the audit log: entries moved to a segment file. The last hash of a segment
-- anchors the entries after it, so the chain still verifies once they are gone.
CREATE TABLE IF NOT EXISTS audit_segments (
    first_seq  INTEGER PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    last_hash  TEXT NOT NULL,
    -- File name under audit/, and the blake3 of its bytes; NULL once retention removed it.
    file       TEXT,
    file_hash  TEXT NOT NULL,
    rotated_at INTEGER NOT NULL
);
-- Large files a run has taken on (see in_flight.rs): a record left by a crash quarantines it.
CREATE TABLE IF NOT EXISTS in_flight (
    pipeline     TEXT NOT NULL,
    root         TEXT NOT NULL,
    rel_path     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    run_id       TEXT NOT NULL,
    answer_bytes INTEGER NOT NULL,
    chunks       INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    PRIMARY KEY (pipeline, root, rel_path)
);
-- What each file processed in a version cost (its embedded files included), and per stage.
CREATE TABLE IF NOT EXISTS document_costs (
    pipeline TEXT NOT NULL,
    version  INTEGER NOT NULL,
    doc_id   TEXT NOT NULL,
    root     TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    bytes    INTEGER NOT NULL,
    pages    INTEGER NOT NULL,
    tokens   INTEGER NOT NULL,
    PRIMARY KEY (pipeline, version, doc_id)
);
CREATE TABLE IF NOT EXISTS stage_costs (
    pipeline TEXT NOT NULL,
    version  INTEGER NOT NULL,
    doc_id   TEXT NOT NULL,
    stage    TEXT NOT NULL,
    -- Microseconds.
    wall_us  INTEGER NOT NULL,
    cpu_us   INTEGER NOT NULL,
    gpu_us   INTEGER NOT NULL,
    PRIMARY KEY (pipeline, version, doc_id, stage)
);
-- API tokens: only a hash of the secret is kept.
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    user        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
"#;

/// Version 1 to 2: embedded files as documents (member, parent), heading paths on chunks, and
/// quarantine entries per embedded file. The quarantine key changed, so that table is renamed,
/// created anew by `SCHEMA` between the two halves, and copied.
const MIGRATE_1_TO_2_BEFORE_SCHEMA: &str = r#"
ALTER TABLE documents ADD COLUMN member TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN parent TEXT;
ALTER TABLE documents ADD COLUMN embedded_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chunks ADD COLUMN heading_path TEXT NOT NULL DEFAULT '[]';
ALTER TABLE quarantine RENAME TO quarantine_v1;
"#;
const MIGRATE_1_TO_2_AFTER_SCHEMA: &str = r#"
INSERT INTO quarantine (pipeline, root, rel_path, content_hash, stage, reason, detail, version, at)
    SELECT pipeline, root, rel_path, content_hash, stage, reason, detail, version, at FROM quarantine_v1;
DROP TABLE quarantine_v1;
"#;

/// Version 2 to 3: lineage (stage fingerprints, change reasons, times), run ids and pins;
/// `alias_history` and `fingerprints` are new tables that `SCHEMA` creates. Documents written
/// before have no extract or model fingerprint, so the next run processes them again once.
const MIGRATE_2_TO_3_BEFORE_SCHEMA: &str = r#"
ALTER TABLE versions ADD COLUMN run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN extract_fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN model_fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN added_reason TEXT NOT NULL DEFAULT 'new';
ALTER TABLE documents ADD COLUMN retired_reason TEXT;
ALTER TABLE documents ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
"#;

/// Version 3 to 4: readers (ACLs) on files and documents, PII counts and kinds, the evaluation
/// gate's verdict on versions; the `audit`, `tokens` and cost tables are new. Files get no readers, so the next run captures them and
/// re-adds every document with its ACL (from the cache: nothing is extracted or embedded).
const MIGRATE_3_TO_4_BEFORE_SCHEMA: &str = r#"
ALTER TABLE files ADD COLUMN readers TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN readers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN pii TEXT NOT NULL DEFAULT '{}';
ALTER TABLE chunks ADD COLUMN pii TEXT NOT NULL DEFAULT '[]';
ALTER TABLE versions ADD COLUMN gate TEXT;
ALTER TABLE versions ADD COLUMN evaluation TEXT;
"#;

/// Version 4 to 5: the commit's audit entry on each version, and keyed audit entries (the
/// `audit` table came with version 4: an older catalog gets it, keyed column and all, from
/// `SCHEMA`); `audit_segments` and `in_flight` are new tables that `SCHEMA` creates.
const MIGRATE_4_TO_5_BEFORE_SCHEMA: &str = r#"
ALTER TABLE versions ADD COLUMN audit_seq INTEGER;
"#;
const MIGRATE_4_TO_5_AUDIT: &str = r#"
ALTER TABLE audit ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
"#;

/// The catalog in one SQLite file (WAL): one writer connection, a pool of readers.
pub struct SqliteCatalog {
    path: std::path::PathBuf,
    /// Keys the audit chain (`audit.rs`); set by whoever opened the catalog with a pipeline.
    pub(crate) audit_key: std::sync::RwLock<Option<crate::audit::AuditKey>>,
    /// One audit rotation at a time (the search audit writer and a run's commit both rotate).
    pub(crate) rotation: Mutex<()>,
    // Fields drop in order: the read-only connections close first, so the writer is the last
    // connection and checkpoints the WAL into the database file as it closes.
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Connection>,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Parses a stored hex id; a malformed one fails the row as a conversion error.
pub(crate) fn parse_id<T>(text: String, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("bad id {text:?}").into())
    })
}

/// Vectors are stored as little-endian f32, 4 bytes per dimension.
fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Parses a stored change reason; an unknown one fails the row as a conversion error.
pub(crate) fn parse_reason(text: String) -> rusqlite::Result<ChangeReason> {
    ChangeReason::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, Type::Text, format!("unknown change reason {text:?}").into())
    })
}

pub(crate) fn opt_u32(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

impl SqliteCatalog {
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Connection::open(path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;",
        )?;
        writer.execute_batch(META)?;
        let stored: Option<String> =
            writer.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0)).optional()?;
        match stored.as_deref() {
            None => {
                writer.execute_batch(SCHEMA)?;
                writer.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(old @ ("1" | "2" | "3" | "4")) => {
                // One transaction: a crash leaves the old version untouched. Every step's
                // column changes come before `SCHEMA`, whose indexes may name new columns.
                let steps = [
                    MIGRATE_1_TO_2_BEFORE_SCHEMA,
                    MIGRATE_2_TO_3_BEFORE_SCHEMA,
                    MIGRATE_3_TO_4_BEFORE_SCHEMA,
                    MIGRATE_4_TO_5_BEFORE_SCHEMA,
                ];
                let first: usize = old.parse::<usize>().unwrap_or(1) - 1;
                let mut before = steps[first..].concat();
                if old == "4" {
                    before.push_str(MIGRATE_4_TO_5_AUDIT);
                }
                let after = if old == "1" { MIGRATE_1_TO_2_AFTER_SCHEMA } else { "" };
                writer.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {before} {SCHEMA} {after}
                     UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'; COMMIT;"
                ))?;
            }
            Some(version) if version == SCHEMA_VERSION.to_string() => writer.execute_batch(SCHEMA)?,
            Some(version) => {
                return Err(StoreError::Invalid(format!(
                    "catalog {} has schema version {version}; this build reads version {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            audit_key: std::sync::RwLock::new(None),
            rotation: Mutex::new(()),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        self.audit_key.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Runs `f` on a read connection from the pool (opened on demand).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.read_with(|connection| Ok(f(connection)?))
    }

    /// As [`Catalog::read`], for work that fails with more than SQLite errors (an export
    /// writing its file as it reads).
    pub(crate) fn read_with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().expect("reader pool lock").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                connection.execute_batch("PRAGMA busy_timeout = 10000;")?;
                connection
            }
        };
        let result = f(&connection);
        let mut pool = self.readers.lock().expect("reader pool lock");
        if pool.len() < 8 {
            pool.push(connection);
        }
        result
    }

    /// Runs `f` in one write transaction.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let mut connection = self.writer.lock().expect("catalog writer lock");
        let transaction = connection.transaction()?;
        let value = f(&transaction)?;
        transaction.commit()?;
        Ok(value)
    }

    fn chunks_where(&self, condition: &str, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.read(|c| {
            let mut statement = c.prepare(&format!("{STORED_CHUNK_SELECT} WHERE {condition} ORDER BY c.chunk_id"))?;
            statement.query_map(params![pipeline, version], stored_chunk_row)?.collect()
        })
    }
}

impl Catalog for SqliteCatalog {
    fn identity(&self) -> Result<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|err| StoreError::Invalid(format!("no randomness for an id: {err}")))?;
        let fresh = hex::encode(bytes);
        self.write(|t| {
            t.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('catalog_id', ?1)", [&fresh])?;
            Ok(())
        })?;
        Ok(self.meta("catalog_id")?.unwrap_or(fresh))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional())
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|t| {
            t.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }
}

impl VersionLog for SqliteCatalog {
    fn next_version(&self, pipeline: &str) -> Result<Version> {
        self.read(|c| {
            c.query_row("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE pipeline = ?1", [pipeline], |r| {
                r.get(0)
            })
        })
    }

    fn begin_version(&self, pipeline: &str, version: Version, fingerprint: Fingerprint, run_id: &str) -> Result<()> {
        self.write(|t| {
            t.execute(
                "INSERT INTO versions (pipeline, version, state, pipeline_fingerprint, started_at, run_id)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
                params![pipeline, version, fingerprint.to_hex(), now_ms(), run_id],
            )
        })?;
        Ok(())
    }

    fn put_fingerprint(&self, fingerprint: Fingerprint, stage: &str, settings: &str) -> Result<()> {
        self.write(|t| {
            t.execute(
                "INSERT OR IGNORE INTO fingerprints (fingerprint, stage, settings) VALUES (?1, ?2, ?3)",
                params![fingerprint.to_hex(), stage, settings],
            )
        })?;
        Ok(())
    }

    fn pending_versions(&self, pipeline: &str) -> Result<Vec<Version>> {
        self.read(|c| {
            let mut statement =
                c.prepare("SELECT version FROM versions WHERE pipeline = ?1 AND state = 'pending' ORDER BY version")?;
            statement.query_map([pipeline], |r| r.get(0))?.collect()
        })
    }

    fn alias(&self, pipeline: &str, name: &str) -> Result<Option<Version>> {
        self.read(|c| {
            c.query_row("SELECT version FROM aliases WHERE pipeline = ?1 AND name = ?2", [pipeline, name], |r| r.get(0))
                .optional()
        })
    }

    fn version_state(&self, pipeline: &str, version: Version) -> Result<Option<VersionState>> {
        let state: Option<String> = self.read(|c| {
            c.query_row(
                "SELECT state FROM versions WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(state.and_then(|s| VersionState::parse(&s)))
    }

    fn require_committed(&self, pipeline: &str, version: Version) -> Result<()> {
        match self.version_state(pipeline, version)? {
            Some(VersionState::Committed) => Ok(()),
            Some(state) => Err(StoreError::Conflict(format!("version {version} is {}, not committed", state.as_str()))),
            None => Err(StoreError::NotFound(format!("version {version} does not exist"))),
        }
    }

    fn commit_version(&self, pipeline: &str, version: Version, record: &CommitRecord<'_>) -> Result<()> {
        let CommitRecord {
            ledger,
            quarantined,
            cleared_quarantine,
            summary,
            audit,
            costs,
            promote,
            run_id,
            cleared_in_flight,
        } = *record;
        let now = now_ms();
        let key = self.audit_key();
        self.write(|t| {
            // N is the newest version, so what is visible at N is everything still open.
            let chunks: i64 = t.query_row(
                "SELECT COUNT(*) FROM chunks WHERE pipeline = ?1 AND valid_to = ?2",
                params![pipeline, VERSION_OPEN],
                |r| r.get(0),
            )?;
            let changed = t.execute(
                "UPDATE versions SET state = 'committed', finished_at = ?3, summary = ?4, chunks = ?5
                 WHERE pipeline = ?1 AND version = ?2 AND state = 'pending'",
                params![pipeline, version, now, summary.to_string(), chunks],
            )?;
            if changed != 1 {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
            apply_ledger(t, pipeline, version, ledger)?;
            // The same bytes deleted at one path and new at another: a rename, on both sides.
            for (side, column) in [("valid_to", "retired_reason"), ("valid_from", "added_reason")] {
                t.execute(
                    &format!(
                        "UPDATE documents SET {column} = 'renamed'
                         WHERE pipeline = ?1 AND {side} = ?2 AND {column} IN ('deleted', 'new')
                           AND content_hash IN (SELECT a.content_hash FROM documents a JOIN documents r
                               ON r.pipeline = a.pipeline AND r.content_hash = a.content_hash
                               WHERE a.pipeline = ?1 AND a.valid_from = ?2 AND a.added_reason IN ('new', 'renamed')
                                 AND r.valid_to = ?2 AND r.retired_reason IN ('deleted', 'renamed'))"
                    ),
                    params![pipeline, version],
                )?;
            }
            // Clearing a file clears its embedded files' entries too; the run re-adds current ones.
            for (root, rel_path) in cleared_quarantine {
                t.execute(
                    "DELETE FROM quarantine WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3",
                    params![pipeline, root, rel_path],
                )?;
            }
            for entry in quarantined {
                t.execute(
                    "INSERT OR REPLACE INTO quarantine (pipeline, root, rel_path, member, content_hash, stage, reason,
                         detail, version, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        pipeline,
                        entry.root,
                        entry.rel_path,
                        entry.member,
                        entry.content_hash.to_hex(),
                        entry.stage,
                        entry.reason,
                        entry.detail,
                        version,
                        entry.at
                    ],
                )?;
            }
            if promote {
                set_alias(t, pipeline, "live", version, "commit")?;
            }
            t.execute("DELETE FROM in_flight WHERE pipeline = ?1 AND run_id = ?2", params![pipeline, run_id])?;
            for (root, rel_path) in cleared_in_flight {
                t.execute(
                    "DELETE FROM in_flight WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3",
                    params![pipeline, root, rel_path],
                )?;
            }
            // The run's decisions are audited exactly when they take effect; the version
            // remembers the entry that recorded its commit.
            let committed_at = crate::audit::append(t, audit, key.as_ref())?;
            t.execute(
                "UPDATE versions SET audit_seq = ?3 WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version, committed_at],
            )?;
            crate::cost::insert(t, pipeline, version, costs)?;
            Ok(())
        })
    }

    fn abort_version(&self, pipeline: &str, version: Version) -> Result<()> {
        self.write(|t| {
            t.execute("DELETE FROM chunks WHERE pipeline = ?1 AND valid_from = ?2", params![pipeline, version])?;
            t.execute("DELETE FROM documents WHERE pipeline = ?1 AND valid_from = ?2", params![pipeline, version])?;
            t.execute(
                "UPDATE chunks SET valid_to = ?3 WHERE pipeline = ?1 AND valid_to = ?2",
                params![pipeline, version, VERSION_OPEN],
            )?;
            t.execute(
                "UPDATE documents SET valid_to = ?3, retired_reason = NULL WHERE pipeline = ?1 AND valid_to = ?2",
                params![pipeline, version, VERSION_OPEN],
            )?;
            t.execute(
                "UPDATE versions SET state = 'aborted', finished_at = ?3 WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version, now_ms()],
            )?;
            Ok(())
        })
    }

    fn versions(&self, pipeline: &str) -> Result<Vec<VersionInfo>> {
        self.read(|c| {
            let mut aliases: HashMap<Version, Vec<String>> = HashMap::new();
            let mut statement = c.prepare("SELECT name, version FROM aliases WHERE pipeline = ?1 ORDER BY name")?;
            for row in statement.query_map([pipeline], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Version>(1)?)))? {
                let (name, version) = row?;
                aliases.entry(version).or_default().push(name);
            }
            let mut statement = c.prepare(
                "SELECT version, state, pipeline_fingerprint, started_at, finished_at, summary, chunks, run_id, pinned,
                        gate, evaluation
                 FROM versions WHERE pipeline = ?1 ORDER BY version",
            )?;
            let rows = statement.query_map([pipeline], |r| {
                let summary: String = r.get(5)?;
                Ok(VersionInfo {
                    version: r.get(0)?,
                    state: VersionState::parse(&r.get::<_, String>(1)?).unwrap_or(VersionState::Aborted),
                    pipeline_fingerprint: r.get(2)?,
                    run_id: r.get(7)?,
                    pinned: r.get(8)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    chunks: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                    summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
                    aliases: Vec::new(),
                    gate: r.get(9)?,
                    evaluation: r.get::<_, Option<String>>(10)?.and_then(|text| serde_json::from_str(&text).ok()),
                })
            })?;
            let mut versions: Vec<VersionInfo> = rows.collect::<rusqlite::Result<_>>()?;
            for info in &mut versions {
                info.aliases = aliases.remove(&info.version).unwrap_or_default();
            }
            Ok(versions)
        })
    }

    fn stage_settings(&self, fingerprint: &str) -> Result<Option<serde_json::Value>> {
        self.read(|c| stage_settings_in(c, fingerprint))
    }
}

impl Documents for SqliteCatalog {
    fn documents_visible_twice(&self, pipeline: &str, version: Version) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT doc_id, COUNT(*) FROM documents WHERE pipeline = ?1 AND valid_from <= ?2 AND ?2 < valid_to
                 GROUP BY doc_id HAVING COUNT(*) > 1",
            )?;
            statement.query_map(params![pipeline, version], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
    }

    fn update_ledger(&self, pipeline: &str, ledger: &[LedgerChange]) -> Result<()> {
        let version = self.alias(pipeline, "live")?.unwrap_or(0);
        self.write(|t| apply_ledger(t, pipeline, version, ledger))
    }

    fn ledger(&self, pipeline: &str, root: &str) -> Result<HashMap<String, LedgerEntry>> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT root, rel_path, size, mtime_ns, content_hash, status, readers FROM files
                 WHERE pipeline = ?1 AND root = ?2",
            )?;
            let rows = statement.query_map([pipeline, root], ledger_row)?;
            rows.map(|row| row.map(|entry| (entry.rel_path.clone(), entry))).collect()
        })
    }

    fn live_document_with_text(
        &self,
        pipeline: &str,
        text_hash: TextHash,
        readers: &Acl,
    ) -> Result<Option<LiveDocument>> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                 WHERE pipeline = ?1 AND text_hash = ?2 AND valid_to = ?3 AND duplicate_of IS NULL AND readers = ?4
                 ORDER BY id LIMIT 1"
                ),
                params![pipeline, text_hash.to_hex(), VERSION_OPEN, readers.to_json()],
                live_document_row,
            )
            .optional()
        })
    }

    fn document_roots(&self, pipeline: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut statement =
                c.prepare("SELECT DISTINCT root FROM documents WHERE pipeline = ?1 ORDER BY length(root) DESC")?;
            statement.query_map([pipeline], |r| r.get(0))?.collect()
        })
    }

    fn live_duplicates_of(&self, pipeline: &str, original: DocumentId) -> Result<Vec<LiveDocument>> {
        self.read(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                 WHERE pipeline = ?1 AND duplicate_of = ?2 AND valid_to = ?3 ORDER BY root, rel_path, member"
            ))?;
            statement.query_map(params![pipeline, original.to_hex(), VERSION_OPEN], live_document_row)?.collect()
        })
    }

    fn live_documents_of_file(&self, pipeline: &str, root: &str, rel_path: &str) -> Result<Vec<LiveDocument>> {
        self.read(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                 WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3 AND valid_to = ?4 ORDER BY member"
            ))?;
            statement.query_map(params![pipeline, root, rel_path, VERSION_OPEN], live_document_row)?.collect()
        })
    }

    fn stale_files(
        &self,
        pipeline: &str,
        root: &str,
        current: &StageFingerprints,
    ) -> Result<Vec<(String, ChangeReason)>> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT rel_path, MIN(CASE WHEN extract_fingerprint != ?3 THEN 0 WHEN chunk_fingerprint != ?4 THEN 1
                     ELSE 2 END) FROM documents
                 WHERE pipeline = ?1 AND root = ?2 AND valid_to = ?6
                   AND (extract_fingerprint != ?3 OR chunk_fingerprint != ?4 OR model_fingerprint != ?5)
                 GROUP BY rel_path ORDER BY rel_path",
            )?;
            let rows = statement.query_map(
                params![
                    pipeline,
                    root,
                    current.extract.to_hex(),
                    current.chunk.to_hex(),
                    current.model.to_hex(),
                    VERSION_OPEN
                ],
                |r| {
                    let reason = match r.get::<_, i64>(1)? {
                        0 => ChangeReason::ExtractorChanged,
                        1 => ChangeReason::ChunkerChanged,
                        _ => ChangeReason::ModelChanged,
                    };
                    Ok((r.get(0)?, reason))
                },
            )?;
            rows.collect()
        })
    }

    fn reusable_document(
        &self,
        pipeline: &str,
        content_hash: ContentHash,
        fingerprints: &StageFingerprints,
    ) -> Result<Option<Reusable>> {
        self.read(|c| {
            c.query_row(
                "SELECT d.id, (SELECT COALESCE(SUM(length(CAST(text AS BLOB))), 0) FROM chunks WHERE document = d.id),
                        (SELECT COUNT(*) FROM chunks WHERE document = d.id)
                 FROM documents d
                 WHERE d.pipeline = ?1 AND d.content_hash = ?2 AND d.chunk_fingerprint = ?3 AND d.extract_fingerprint = ?4
                     AND d.duplicate_of IS NULL AND d.embedded_files = 0
                 ORDER BY d.id DESC LIMIT 1",
                params![pipeline, content_hash.to_hex(), fingerprints.chunk.to_hex(), fingerprints.extract.to_hex()],
                |r| {
                    Ok(Reusable {
                        row: r.get(0)?,
                        text_bytes: r.get::<_, i64>(1)? as u64,
                        chunks: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
        })
    }

    fn reusable_chunks(&self, reusable: &Reusable) -> Result<ReusableDocument> {
        self.read(|c| {
            let (text_hash, format, title, page_count, pii) = c.query_row(
                "SELECT text_hash, format, title, page_count, pii FROM documents WHERE id = ?1",
                [reusable.row],
                |r| {
                    Ok((
                        parse_id(r.get(0)?, TextHash::parse)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        opt_u32(r.get(3)?),
                        serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    ))
                },
            )?;
            let mut statement = c.prepare(
                "SELECT ordinal, text, text_hash, char_start, char_end, page, token_count, heading_path, pii FROM chunks
                 WHERE document = ?1 ORDER BY ordinal",
            )?;
            let chunks = statement
                .query_map([reusable.row], |r| {
                    Ok(Chunk {
                        ordinal: r.get(0)?,
                        text: r.get(1)?,
                        text_hash: parse_id(r.get(2)?, TextHash::parse)?,
                        char_start: r.get(3)?,
                        char_end: r.get(4)?,
                        page: opt_u32(r.get(5)?),
                        token_count: r.get(6)?,
                        heading_path: parse_strings(r.get(7)?)?,
                        pii: parse_strings(r.get(8)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ReusableDocument { text_hash, format, title, page_count, chunks, pii })
        })
    }

    fn insert_documents(&self, pipeline: &str, version: Version, writes: &[DocumentWrite]) -> Result<()> {
        self.write(|t| {
            let mut insert_document = t.prepare_cached(
                "INSERT INTO documents (pipeline, doc_id, root, rel_path, member, parent, embedded_files, content_hash,
                     text_hash, format, title, page_count, byte_size, chunk_fingerprint, duplicate_of, valid_from, valid_to,
                     extract_fingerprint, model_fingerprint, added_reason, created_at, readers, pii)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                     ?22, ?23)",
            )?;
            let mut insert_chunk = t.prepare_cached(
                "INSERT INTO chunks (chunk_id, valid_from, valid_to, document, pipeline, ordinal, text, text_hash,
                     char_start, char_end, page, token_count, heading_path, pii)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let now = now_ms();
            for write in writes {
                let d = &write.document;
                insert_document.execute(params![
                    pipeline,
                    d.doc_id.to_hex(),
                    d.root,
                    d.rel_path,
                    d.member,
                    d.parent.map(|id| id.to_hex()),
                    d.embedded_files,
                    d.content_hash.to_hex(),
                    d.text_hash.to_hex(),
                    d.format,
                    d.title,
                    d.page_count,
                    d.byte_size as i64,
                    d.fingerprints.chunk.to_hex(),
                    d.duplicate_of.map(|id| id.to_hex()),
                    version,
                    VERSION_OPEN,
                    d.fingerprints.extract.to_hex(),
                    d.fingerprints.model.to_hex(),
                    d.added_reason.as_str(),
                    now,
                    d.readers.to_json(),
                    serde_json::to_string(&d.pii).expect("counts serialise")
                ])?;
                let row = t.last_insert_rowid();
                for chunk in &write.chunks {
                    let c = &chunk.chunk;
                    insert_chunk.execute(params![
                        chunk.id.to_hex(),
                        version,
                        VERSION_OPEN,
                        row,
                        pipeline,
                        c.ordinal,
                        c.text,
                        c.text_hash.to_hex(),
                        c.char_start,
                        c.char_end,
                        c.page,
                        c.token_count,
                        serde_json::to_string(&c.heading_path).expect("strings serialise"),
                        serde_json::to_string(&c.pii).expect("strings serialise")
                    ])?;
                }
            }
            Ok(())
        })
    }

    fn retire_document(
        &self,
        pipeline: &str,
        doc_id: DocumentId,
        version: Version,
        reason: ChangeReason,
    ) -> Result<Vec<StoredChunk>> {
        self.write(|t| {
            let row: Option<i64> = t
                .query_row(
                    "SELECT id FROM documents WHERE pipeline = ?1 AND doc_id = ?2 AND valid_to = ?3",
                    params![pipeline, doc_id.to_hex(), VERSION_OPEN],
                    |r| r.get(0),
                )
                .optional()?;
            // Retired already (the call is idempotent): nothing more stops being visible.
            let Some(row) = row else { return Ok(Vec::new()) };
            t.execute(
                "UPDATE documents SET valid_to = ?2, retired_reason = ?4 WHERE id = ?1 AND valid_to = ?3",
                params![row, version, VERSION_OPEN, reason.as_str()],
            )?;
            t.execute(
                "UPDATE chunks SET valid_to = ?2 WHERE document = ?1 AND valid_to = ?3",
                params![row, version, VERSION_OPEN],
            )?;
            let mut statement =
                t.prepare(&format!("{STORED_CHUNK_SELECT} WHERE c.document = ?1 AND c.valid_to = ?2"))?;
            statement.query_map(params![row, version], stored_chunk_row)?.collect()
        })
    }

    fn chunks_by_key(&self, pipeline: &str, keys: &[(ChunkId, Version)]) -> Result<Vec<StoredChunk>> {
        self.read(|c| {
            let mut statement = c.prepare_cached(&format!(
                "{STORED_CHUNK_SELECT} WHERE c.chunk_id = ?1 AND c.valid_from = ?2 AND c.pipeline = ?3"
            ))?;
            let mut chunks = Vec::with_capacity(keys.len());
            for (chunk_id, valid_from) in keys {
                if let Some(chunk) = statement
                    .query_row(params![chunk_id.to_hex(), valid_from, pipeline], stored_chunk_row)
                    .optional()?
                {
                    chunks.push(chunk);
                }
            }
            Ok(chunks)
        })
    }

    fn chunks_retired_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_to = ?2", pipeline, version)
    }

    fn chunks_visible_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_from <= ?2 AND ?2 < c.valid_to", pipeline, version)
    }

    fn models_at(&self, pipeline: &str, version: Version) -> Result<Vec<String>> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT d.model_fingerprint FROM documents d JOIN chunks c ON c.document = d.id
                 WHERE d.pipeline = ?1 AND d.valid_from <= ?2 AND d.valid_to > ?2
                 GROUP BY d.model_fingerprint ORDER BY COUNT(*) DESC, d.model_fingerprint",
            )?;
            statement.query_map(params![pipeline, version], |r| r.get(0))?.collect()
        })
    }

    fn has_live_documents_of_other_models(&self, pipeline: &str, model: Fingerprint) -> Result<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM documents d WHERE d.pipeline = ?1 AND d.valid_to = ?2
                   AND d.model_fingerprint != ?3 AND EXISTS (SELECT 1 FROM chunks c WHERE c.document = d.id))",
                params![pipeline, VERSION_OPEN, model.to_hex()],
                |r| r.get(0),
            )
        })
    }

    fn models_with_chunks(&self, pipeline: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT DISTINCT d.model_fingerprint FROM documents d
                 WHERE d.pipeline = ?1 AND EXISTS (SELECT 1 FROM chunks c WHERE c.document = d.id)
                 ORDER BY d.model_fingerprint",
            )?;
            statement.query_map([pipeline], |r| r.get(0))?.collect()
        })
    }

    fn appearance_count(&self, pipeline: &str, model: &str) -> Result<usize> {
        let count: i64 = self.read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document
                 WHERE c.pipeline = ?1 AND d.model_fingerprint = ?2",
                [pipeline, model],
                |r| r.get(0),
            )
        })?;
        Ok(usize::try_from(count).unwrap_or_default())
    }

    fn all_chunk_appearances(&self, pipeline: &str) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_to >= ?2", pipeline, 0)
    }
}

impl EmbeddingCache for SqliteCatalog {
    fn model_dimension(&self, model: &str) -> Result<Option<usize>> {
        let bytes: Option<i64> = self.read(|c| {
            c.query_row("SELECT length(vector) FROM embeddings WHERE model = ?1 LIMIT 1", [model], |r| r.get(0))
                .optional()
        })?;
        Ok(bytes.map(|bytes| usize::try_from(bytes).unwrap_or_default() / std::mem::size_of::<f32>()))
    }

    fn cached_embeddings(&self, model: Fingerprint, text_hashes: &[TextHash]) -> Result<HashMap<TextHash, Vec<f32>>> {
        self.read(|c| {
            let mut statement =
                c.prepare_cached("SELECT vector FROM embeddings WHERE model = ?1 AND text_hash = ?2")?;
            let model = model.to_hex();
            let mut found = HashMap::new();
            for hash in text_hashes {
                if found.contains_key(hash) {
                    continue;
                }
                let blob: Option<Vec<u8>> =
                    statement.query_row(params![model, hash.to_hex()], |r| r.get(0)).optional()?;
                if let Some(blob) = blob {
                    found.insert(*hash, blob_to_vector(&blob));
                }
            }
            Ok(found)
        })
    }

    fn cached_embeddings_by_model(&self, keys: &[(&str, TextHash)]) -> Result<HashMap<(String, TextHash), Vec<f32>>> {
        let mut by_model: HashMap<&str, Vec<TextHash>> = HashMap::new();
        for &(model, hash) in keys {
            by_model.entry(model).or_default().push(hash);
        }
        let mut found = HashMap::new();
        for (model, hashes) in by_model {
            let Some(fingerprint) = Fingerprint::parse(model) else { continue };
            for (hash, vector) in self.cached_embeddings(fingerprint, &hashes)? {
                found.insert((model.to_owned(), hash), vector);
            }
        }
        Ok(found)
    }

    fn embedding_count(&self) -> Result<usize> {
        let count: i64 = self.read(|c| c.query_row("SELECT COUNT(*) FROM embeddings", [], |r| r.get(0)))?;
        Ok(usize::try_from(count).unwrap_or_default())
    }

    fn put_embeddings(&self, model: Fingerprint, vectors: &[(TextHash, &[f32])]) -> Result<()> {
        self.write(|t| {
            let mut statement =
                t.prepare_cached("INSERT OR IGNORE INTO embeddings (model, text_hash, vector) VALUES (?1, ?2, ?3)")?;
            let model = model.to_hex();
            for (hash, vector) in vectors {
                statement.execute(params![model, hash.to_hex(), vector_to_blob(vector)])?;
            }
            Ok(())
        })
    }
}

impl QuarantineLog for SqliteCatalog {
    fn forget_quarantined(&self, entry: &QuarantineEntry, by: &Actor<'_>) -> Result<()> {
        let version = self.alias(by.pipeline, "live")?.unwrap_or(0);
        let forget = LedgerChange::Remove { root: entry.root.clone(), rel_path: entry.rel_path.clone() };
        self.write_audited(|t| {
            apply_ledger(t, by.pipeline, version, std::slice::from_ref(&forget))?;
            Ok((
                (),
                vec![by.event("quarantine_retry", entry.path.clone(), serde_json::json!({"reason": entry.reason}))],
            ))
        })
    }

    fn quarantine(&self, pipeline: &str) -> Result<Vec<QuarantineEntry>> {
        self.read(|c| {
            let mut statement = c.prepare(
                "SELECT root, rel_path, member, content_hash, stage, reason, detail, version, at FROM quarantine
                 WHERE pipeline = ?1 ORDER BY root, rel_path, member",
            )?;
            statement
                .query_map([pipeline], |r| {
                    let root: String = r.get(0)?;
                    let rel_path: String = r.get(1)?;
                    let member: String = r.get(2)?;
                    Ok(QuarantineEntry {
                        path: join_path(&root, &rel_path, &member),
                        root,
                        rel_path,
                        member,
                        content_hash: parse_id(r.get(3)?, ContentHash::parse)?,
                        stage: r.get(4)?,
                        reason: r.get(5)?,
                        detail: r.get(6)?,
                        version: r.get(7)?,
                        at: r.get(8)?,
                    })
                })?
                .collect()
        })
    }
}

/// Where alias `name` points, read inside a transaction.
pub(crate) fn alias_in(t: &Transaction<'_>, pipeline: &str, name: &str) -> rusqlite::Result<Option<Version>> {
    t.query_row("SELECT version FROM aliases WHERE pipeline = ?1 AND name = ?2", [pipeline, name], |r| r.get(0))
        .optional()
}

/// Points alias `name` at `version` and records the move in `alias_history`.
pub(crate) fn set_alias(
    t: &Transaction<'_>,
    pipeline: &str,
    name: &str,
    version: Version,
    action: &str,
) -> rusqlite::Result<()> {
    let now = now_ms();
    t.execute(
        "INSERT INTO aliases (pipeline, name, version, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (pipeline, name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        params![pipeline, name, version, now],
    )?;
    t.execute(
        "INSERT INTO alias_history (pipeline, name, version, action, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![pipeline, name, version, action, now],
    )?;
    Ok(())
}

fn apply_ledger(
    t: &Transaction<'_>,
    pipeline: &str,
    version: Version,
    ledger: &[LedgerChange],
) -> rusqlite::Result<()> {
    let mut upsert = t.prepare_cached(
        "INSERT INTO files (pipeline, root, rel_path, size, mtime_ns, content_hash, status, version, readers)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (pipeline, root, rel_path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
             content_hash = excluded.content_hash, status = excluded.status, version = excluded.version,
             readers = excluded.readers",
    )?;
    let mut remove = t.prepare_cached("DELETE FROM files WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3")?;
    for change in ledger {
        match change {
            LedgerChange::Upsert(entry) => {
                upsert.execute(params![
                    pipeline,
                    entry.root,
                    entry.rel_path,
                    entry.size as i64,
                    entry.mtime_ns,
                    entry.content_hash.to_hex(),
                    entry.status.as_str(),
                    version,
                    entry.readers.as_ref().map(Acl::to_json).unwrap_or_default()
                ])?;
            }
            LedgerChange::Remove { root, rel_path } => {
                remove.execute(params![pipeline, root, rel_path])?;
            }
        }
    }
    Ok(())
}

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let status: String = r.get(5)?;
    Ok(LedgerEntry {
        root: r.get(0)?,
        rel_path: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        mtime_ns: r.get(3)?,
        content_hash: parse_id(r.get(4)?, ContentHash::parse)?,
        status: FileStatus::parse(&status).unwrap_or(FileStatus::Quarantined),
        // A row from before readers were recorded has none: any captured ACL differs.
        readers: Acl::from_json(&r.get::<_, String>(6)?),
    })
}

const LIVE_DOCUMENT_COLUMNS: &str = "doc_id, root, rel_path, member, content_hash, text_hash, duplicate_of";

fn live_document_row(r: &Row<'_>) -> rusqlite::Result<LiveDocument> {
    let duplicate_of: Option<String> = r.get(6)?;
    Ok(LiveDocument {
        doc_id: parse_id(r.get(0)?, DocumentId::parse)?,
        root: r.get(1)?,
        rel_path: r.get(2)?,
        member: r.get(3)?,
        content_hash: parse_id(r.get(4)?, ContentHash::parse)?,
        text_hash: parse_id(r.get(5)?, TextHash::parse)?,
        duplicate_of: duplicate_of.map(|id| parse_id(id, DocumentId::parse)).transpose()?,
    })
}

/// Selects the columns of a [`StoredChunk`] (read by [`stored_chunk_row`]).
pub(crate) const STORED_CHUNK_SELECT: &str =
    "SELECT c.chunk_id, c.valid_from, c.valid_to, d.doc_id, d.root, d.rel_path, d.member,
        d.title, c.ordinal, c.text, c.text_hash, c.char_start, c.char_end, c.page, c.token_count, c.heading_path,
        d.readers, c.pii, d.content_hash, d.format, d.extract_fingerprint, d.chunk_fingerprint, d.model_fingerprint
    FROM chunks c JOIN documents d ON d.id = c.document";

pub(crate) fn stored_chunk_row(r: &Row<'_>) -> rusqlite::Result<StoredChunk> {
    let root: String = r.get(4)?;
    let rel_path: String = r.get(5)?;
    let member: String = r.get(6)?;
    Ok(StoredChunk {
        chunk_id: parse_id(r.get(0)?, ChunkId::parse)?,
        valid_from: r.get(1)?,
        valid_to: r.get(2)?,
        doc_id: parse_id(r.get(3)?, DocumentId::parse)?,
        path: join_path(&root, &rel_path, &member),
        title: r.get(7)?,
        ordinal: r.get(8)?,
        text: r.get(9)?,
        text_hash: parse_id(r.get(10)?, TextHash::parse)?,
        char_start: r.get(11)?,
        char_end: r.get(12)?,
        page: opt_u32(r.get(13)?),
        token_count: r.get(14)?,
        heading_path: parse_strings(r.get(15)?)?,
        readers: parse_acl(r.get(16)?)?,
        pii: parse_strings(r.get(17)?)?,
        content_hash: parse_id(r.get(18)?, ContentHash::parse)?,
        format: r.get(19)?,
        extract_fingerprint: r.get(20)?,
        chunk_fingerprint: r.get(21)?,
        model: r.get(22)?,
    })
}

/// The settings recorded under a stage fingerprint, read on `c`.
pub(crate) fn stage_settings_in(c: &Connection, fingerprint: &str) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = c
        .query_row("SELECT settings FROM fingerprints WHERE fingerprint = ?1", [fingerprint], |r| r.get(0))
        .optional()?;
    Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
}

pub(crate) fn parse_acl(json: String) -> rusqlite::Result<Acl> {
    Acl::from_json(&json)
        .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, format!("bad readers {json:?}").into()))
}

/// A JSON array of strings (heading paths, PII kinds).
pub(crate) fn parse_strings(json: String) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(&json).map_err(|err| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables of schema version 1 that later versions changed, as version 1 created them.
    const SCHEMA_1_CHANGED: &str = r#"
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE versions (
            pipeline TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,
            pipeline_fingerprint TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER,
            chunks INTEGER, summary TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (pipeline, version));
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, doc_id TEXT NOT NULL, root TEXT NOT NULL,
            rel_path TEXT NOT NULL, content_hash TEXT NOT NULL, text_hash TEXT NOT NULL, format TEXT NOT NULL,
            title TEXT, page_count INTEGER, byte_size INTEGER NOT NULL, chunk_fingerprint TEXT NOT NULL,
            duplicate_of TEXT, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL);
        CREATE TABLE chunks (
            chunk_id TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL,
            document INTEGER NOT NULL REFERENCES documents (id), pipeline TEXT NOT NULL, ordinal INTEGER NOT NULL,
            text TEXT NOT NULL, text_hash TEXT NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,
            page INTEGER, token_count INTEGER NOT NULL, PRIMARY KEY (chunk_id, valid_from));
        CREATE TABLE files (
            pipeline TEXT NOT NULL, root TEXT NOT NULL, rel_path TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, content_hash TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
            PRIMARY KEY (pipeline, root, rel_path));
        CREATE TABLE quarantine (
            pipeline TEXT NOT NULL, root TEXT NOT NULL, rel_path TEXT NOT NULL, content_hash TEXT NOT NULL,
            stage TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, version INTEGER NOT NULL,
            at INTEGER NOT NULL, PRIMARY KEY (pipeline, root, rel_path));
    "#;

    #[test]
    fn a_document_is_stale_from_the_first_stage_whose_fingerprint_differs() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let fingerprint = |stage: &str, v: &str| Fingerprint::of(stage, v);
        let written = StageFingerprints {
            extract: fingerprint("e", "1"),
            chunk: fingerprint("c", "1"),
            model: fingerprint("m", "1"),
        };
        let document = crate::types::NewDocument {
            doc_id: DocumentId::new("p", "/share", "a.txt"),
            root: "/share".into(),
            rel_path: "a.txt".into(),
            member: String::new(),
            parent: None,
            embedded_files: 0,
            content_hash: ContentHash::of_bytes(b"a"),
            text_hash: TextHash::of_text("a"),
            format: "text".into(),
            title: None,
            page_count: None,
            byte_size: 1,
            fingerprints: written,
            duplicate_of: None,
            added_reason: ChangeReason::New,
            readers: Acl::default(),
            pii: Default::default(),
        };
        catalog.insert_documents("p", 1, &[DocumentWrite { document, chunks: Vec::new() }]).unwrap();
        let stale = |current: StageFingerprints| catalog.stale_files("p", "/share", &current).unwrap();
        assert!(stale(written).is_empty());
        let model = StageFingerprints { model: fingerprint("m", "2"), ..written };
        assert_eq!(stale(model), [("a.txt".to_owned(), ChangeReason::ModelChanged)]);
        let chunker = StageFingerprints { chunk: fingerprint("c", "2"), ..model };
        assert_eq!(stale(chunker), [("a.txt".to_owned(), ChangeReason::ChunkerChanged)]);
        let extractor = StageFingerprints { extract: fingerprint("e", "2"), ..chunker };
        assert_eq!(stale(extractor), [("a.txt".to_owned(), ChangeReason::ExtractorChanged)]);
    }

    #[test]
    fn a_version_1_catalog_is_migrated_to_the_current_schema_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let doc_id = DocumentId::new("p", "/share", "a.txt");
        let hash = ContentHash::of_bytes(b"a");
        let text_hash = TextHash::of_text("a");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(SCHEMA_1_CHANGED).unwrap();
            old.execute(
                "INSERT INTO documents (pipeline, doc_id, root, rel_path, content_hash, text_hash, format, byte_size,
                     chunk_fingerprint, valid_from, valid_to) VALUES ('p', ?1, '/share', 'a.txt', ?2, ?3, 'text', 1, 'f', 1, ?4)",
                params![doc_id.to_hex(), hash.to_hex(), text_hash.to_hex(), VERSION_OPEN],
            )
            .unwrap();
            old.execute(
                "INSERT INTO quarantine VALUES ('p', '/share', 'bad.pdf', ?1, 'extract', 'encrypted', 'needs a password', 1, 0)",
                [hash.to_hex()],
            )
            .unwrap();
        }
        let catalog = SqliteCatalog::open(&path).unwrap();
        let live = catalog.live_documents_of_file("p", "/share", "a.txt").unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!((live[0].doc_id, live[0].member.as_str()), (doc_id, ""));
        let quarantined = catalog.quarantine("p").unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!((quarantined[0].path.as_str(), quarantined[0].member.as_str()), ("/share/bad.pdf", ""));
        // Written before stage fingerprints were kept: stale under any current ones.
        let current = StageFingerprints {
            extract: Fingerprint::of("extract", "x"),
            chunk: Fingerprint::of("chunk", "x"),
            model: Fingerprint::of("embed", "x"),
        };
        let stale = catalog.stale_files("p", "/share", &current).unwrap();
        assert_eq!(stale, [("a.txt".to_owned(), ChangeReason::ExtractorChanged)]);
        drop(catalog);
        // Opening again finds version 2 and changes nothing.
        let catalog = SqliteCatalog::open(&path).unwrap();
        assert_eq!(catalog.quarantine("p").unwrap().len(), 1);
    }
}
