//! The catalog in one SQLite file (WAL), the embedded default: its schema and migrations, and
//! its connections: one writer (behind a mutex) and a small pool of read connections, so
//! searches run while a version is being written.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::sql::{Database, Dialect, Row, Sql, Value};
use crate::error::{Result, StoreError};

const SCHEMA_VERSION: i64 = 7;

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
    pii               TEXT NOT NULL DEFAULT '{}',
    -- ISO 639-3 code of its language, and its metadata (DocumentMetadata JSON).
    language          TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    -- Its MinHash signature, and, for a near-duplicate, the similarity to `duplicate_of`.
    minhash           BLOB,
    similarity        REAL
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
    -- ISO 639-3 code of the chunk's language.
    language    TEXT,
    PRIMARY KEY (chunk_id, valid_from)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document);
-- The LSH band keys of each document's MinHash signature: documents sharing a key with a new
-- one are its near-duplicate candidates. Rows of deleted documents are deleted with them.
CREATE TABLE IF NOT EXISTS near_dup_bands (
    pipeline TEXT NOT NULL,
    key      INTEGER NOT NULL,
    document INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS near_dup_bands_by_key ON near_dup_bands (pipeline, key);
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
-- The sluice processes that work on the catalog's pipelines (see cluster.rs): each refreshes
-- its heartbeat; one silent for a while is shown as gone.
CREATE TABLE IF NOT EXISTS nodes (
    id              TEXT PRIMARY KEY,
    pipeline        TEXT NOT NULL,
    role            TEXT NOT NULL,
    host            TEXT NOT NULL,
    address         TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    applied_version INTEGER NOT NULL DEFAULT 0,
    -- What the node did since it started (JSON counters), for per-node metrics.
    stats           TEXT NOT NULL DEFAULT '{}'
);
-- Source files a node has taken on, until its lease expires (see cluster.rs).
CREATE TABLE IF NOT EXISTS claims (
    pipeline   TEXT NOT NULL,
    root       TEXT NOT NULL,
    rel_path   TEXT NOT NULL,
    node       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (pipeline, root, rel_path)
);
CREATE INDEX IF NOT EXISTS claims_by_node ON claims (node);
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

/// Version 6 to 7: languages of documents and chunks, documents' metadata and MinHash
/// signatures (`near_dup_bands` is a new table that `SCHEMA` creates). Rows written before have
/// none; the chunk fingerprint changed with them, so the next run writes them again.
const MIGRATE_6_TO_7_BEFORE_SCHEMA: &str = r#"
ALTER TABLE documents ADD COLUMN language TEXT;
ALTER TABLE documents ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN minhash BLOB;
ALTER TABLE documents ADD COLUMN similarity REAL;
ALTER TABLE chunks ADD COLUMN language TEXT;
"#;

/// The catalog's SQLite file: one writer connection, a pool of readers.
pub struct SqliteDatabase {
    path: PathBuf,
    files_dir: PathBuf,
    // Fields drop in order: the read-only connections close first, so the writer is the last
    // connection and checkpoints the WAL into the database file as it closes.
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Connection>,
}

impl SqliteDatabase {
    /// Opens (or creates) the catalog file, migrating an older schema in place.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Connection::open(path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;",
        )?;
        writer.set_prepared_statement_cache_capacity(64);
        migrate(&writer, path)?;
        let files_dir = path.parent().map_or_else(PathBuf::new, Path::to_owned);
        Ok(Self { path: path.to_owned(), files_dir, writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) })
    }
}

fn migrate(writer: &Connection, path: &Path) -> Result<()> {
    writer.execute_batch(META)?;
    let stored: Option<String> =
        writer.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0)).optional()?;
    match stored.as_deref() {
        None => {
            writer.execute_batch(SCHEMA)?;
            writer
                .execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?1)", [SCHEMA_VERSION.to_string()])?;
        }
        Some(old @ ("1" | "2" | "3" | "4" | "5" | "6")) => {
            // One transaction: a crash leaves the old version untouched. Every step's
            // column changes come before `SCHEMA`, whose indexes may name new columns.
            let steps = [
                MIGRATE_1_TO_2_BEFORE_SCHEMA,
                MIGRATE_2_TO_3_BEFORE_SCHEMA,
                MIGRATE_3_TO_4_BEFORE_SCHEMA,
                MIGRATE_4_TO_5_BEFORE_SCHEMA,
                // Version 5 to 6: `nodes` and `claims` are new tables that `SCHEMA` creates.
                "",
                MIGRATE_6_TO_7_BEFORE_SCHEMA,
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
    Ok(())
}

impl Database for SqliteDatabase {
    fn read(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()> {
        let pooled = self.readers.lock().expect("reader pool lock").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                connection.execute_batch("PRAGMA busy_timeout = 10000;")?;
                connection.set_prepared_statement_cache_capacity(64);
                connection
            }
        };
        let result = work(&connection);
        let mut pool = self.readers.lock().expect("reader pool lock");
        if pool.len() < 8 {
            pool.push(connection);
        }
        result
    }

    fn write(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()> {
        let mut connection = self.writer.lock().expect("catalog writer lock");
        let transaction = connection.transaction()?;
        work(&*transaction)?;
        transaction.commit()?;
        Ok(())
    }

    fn hold_lock(&self, _name: &str) -> Result<Box<dyn Send>> {
        // One process owns a SQLite catalog's data directory (`DataDirLock`): nobody to wait for.
        Ok(Box::new(()))
    }

    fn files_dir(&self) -> &Path {
        &self.files_dir
    }
}

impl Sql for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut statement = self.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn for_each_row(&self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()> {
        let mut statement = self.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let values = (0..columns).map(|i| row.get_ref(i).map(value_of)).collect::<rusqlite::Result<_>>()?;
            each(&Row::new(values))?;
        }
        Ok(())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

fn value_of(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use sluice_core::{Acl, ContentHash, DocumentId, Fingerprint, TextHash, VERSION_OPEN};

    use super::*;
    use crate::catalog::SqlCatalog;
    use crate::prelude::*;
    use crate::types::{ChangeReason, DocumentWrite, StageFingerprints};

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
        let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
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
            language: None,
            metadata: Default::default(),
            similarity: None,
            minhash: None,
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
        let catalog = SqlCatalog::sqlite(&path).unwrap();
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
        let catalog = SqlCatalog::sqlite(&path).unwrap();
        assert_eq!(catalog.quarantine("p").unwrap().len(), 1);
    }
}
