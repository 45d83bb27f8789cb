//! The catalog over SQL: versions, documents, chunks, embeddings and quarantine, written once
//! for every engine (`sql.rs`); the other concerns' queries live beside their records
//! (`audit.rs`, `cost.rs`, `retention.rs`, ...). [`SqlCatalog`] holds a [`Database`]: SQLite
//! (`sqlite.rs`, the embedded default) or PostgreSQL (`postgres.rs`, shared by several nodes).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::{
    Acl, Chunk, ChunkId, ContentHash, DocumentId, DocumentMetadata, Fingerprint, TextHash, VERSION_OPEN, Version,
};

use super::sql::{Database, Dialect, ROWS_PER_STATEMENT, Row, Sql, Value, insert_rows, params, placeholders};
use crate::audit::Actor;
use crate::error::{Result, StoreError};
use crate::prelude::*;
use crate::types::{
    ChangeReason, CommitRecord, DocumentWrite, FileStatus, LedgerChange, LedgerEntry, LiveDocument, QuarantineEntry,
    Reusable, ReusableDocument, StageFingerprints, StoredChunk, VersionInfo, VersionState, join_path,
};

/// The catalog on a SQL database.
pub struct SqlCatalog {
    db: Box<dyn Database>,
    /// Keys the audit chain (`audit.rs`); set by whoever opened the catalog with a pipeline.
    pub(crate) audit_key: std::sync::RwLock<Option<crate::audit::AuditKey>>,
    /// One audit rotation at a time (the search audit writer and a run's commit both rotate).
    pub(crate) rotation: Mutex<()>,
    /// Statements run so far: each is one round trip to a PostgreSQL server.
    statements: AtomicU64,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Parses a stored hex id; a malformed one is an inconsistency.
pub(crate) fn parse_id<T>(text: String, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("bad id {text:?}")))
}

/// Vectors are stored as little-endian f32, 4 bytes per dimension.
fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Parses a stored change reason; an unknown one is an inconsistency.
pub(crate) fn parse_reason(text: String) -> Result<ChangeReason> {
    ChangeReason::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown change reason {text:?}")))
}

pub(crate) fn opt_u32(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

impl SqlCatalog {
    pub fn new(db: Box<dyn Database>) -> Self {
        Self { db, audit_key: std::sync::RwLock::new(None), rotation: Mutex::new(()), statements: AtomicU64::new(0) }
    }

    /// The embedded catalog: one SQLite file.
    pub fn sqlite(path: &Path) -> Result<Self> {
        Ok(Self::new(Box::new(super::sqlite::SqliteDatabase::open(path)?)))
    }

    /// The shared catalog in PostgreSQL; this node's files (rotated audit segments) go under
    /// `files_dir`.
    pub fn postgres(plan: &sluice_config::PostgresPlan, files_dir: &Path) -> Result<Self> {
        let url = std::env::var(&plan.url_env).map_err(|_| {
            StoreError::Invalid(format!(
                "store.postgres.url_env names {}, which is not set (it holds the connection string)",
                plan.url_env
            ))
        })?;
        let settings = super::postgres::PostgresSettings {
            url,
            schema: plan.schema.clone(),
            pool_size: plan.pool_size as usize,
            connect_timeout: plan.connect_timeout,
        };
        Ok(Self::new(Box::new(super::postgres::PostgresDatabase::open(&settings, files_dir)?)))
    }

    /// Where files that belong with the catalog live (rotated audit segments).
    pub(crate) fn files_dir(&self) -> &Path {
        self.db.files_dir()
    }

    pub(crate) fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        self.audit_key.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Statements run on the database since it was opened (transaction control aside).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Waits for the lock called `name` and holds it until the guard drops.
    pub(crate) fn hold_lock(&self, name: &str) -> Result<Box<dyn Send>> {
        self.db.hold_lock(name)
    }

    /// Runs `f` on a consistent view of the catalog.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.db.read_with(|sql| f(&Counted { sql, statements: &self.statements }))
    }

    /// Runs `f` in one write transaction.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.db.write_with(|sql| f(&Counted { sql, statements: &self.statements }))
    }

    fn chunks_where(&self, condition: &str, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.read(|c| {
            c.query_map(
                &format!("{STORED_CHUNK_SELECT} WHERE {condition} ORDER BY c.chunk_id"),
                params![pipeline, version],
                stored_chunk_row,
            )
        })
    }
}

/// A connection that counts the statements run on it.
struct Counted<'a> {
    sql: &'a dyn Sql,
    statements: &'a AtomicU64,
}

impl Sql for Counted<'_> {
    fn dialect(&self) -> Dialect {
        self.sql.dialect()
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.sql.execute(sql, params)
    }

    fn for_each_row(&self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.sql.for_each_row(sql, params, each)
    }
}

impl Catalog for SqlCatalog {
    fn identity(&self) -> Result<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|err| StoreError::Invalid(format!("no randomness for an id: {err}")))?;
        let fresh = hex::encode(bytes);
        self.write(|t| {
            t.execute(
                "INSERT INTO meta (key, value) VALUES ('catalog_id', ?1) ON CONFLICT (key) DO NOTHING",
                params![fresh],
            )
        })?;
        Ok(self.meta("catalog_id")?.unwrap_or(fresh))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| c.query_value_opt("SELECT value FROM meta WHERE key = ?1", params![key]))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|t| {
            t.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
        })?;
        Ok(())
    }
}

impl VersionLog for SqlCatalog {
    fn next_version(&self, pipeline: &str) -> Result<Version> {
        self.read(|c| {
            c.query_value("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE pipeline = ?1", params![pipeline])
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
                "INSERT INTO fingerprints (fingerprint, stage, settings) VALUES (?1, ?2, ?3)
                 ON CONFLICT (fingerprint) DO NOTHING",
                params![fingerprint.to_hex(), stage, settings],
            )
        })?;
        Ok(())
    }

    fn pending_versions(&self, pipeline: &str) -> Result<Vec<Version>> {
        self.read(|c| {
            c.query_column(
                "SELECT version FROM versions WHERE pipeline = ?1 AND state = 'pending' ORDER BY version",
                params![pipeline],
            )
        })
    }

    fn alias(&self, pipeline: &str, name: &str) -> Result<Option<Version>> {
        self.read(|c| alias_in(c, pipeline, name))
    }

    fn version_state(&self, pipeline: &str, version: Version) -> Result<Option<VersionState>> {
        let state: Option<String> = self.read(|c| {
            c.query_value_opt(
                "SELECT state FROM versions WHERE pipeline = ?1 AND version = ?2",
                params![pipeline, version],
            )
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
            let chunks: i64 = t.query_value(
                "SELECT COUNT(*) FROM chunks WHERE pipeline = ?1 AND valid_to = ?2",
                params![pipeline, VERSION_OPEN],
            )?;
            let changed = t.execute(
                "UPDATE versions SET state = 'committed', finished_at = ?3, summary = ?4, chunks = ?5
                 WHERE pipeline = ?1 AND version = ?2 AND state = 'pending'",
                params![pipeline, version, now, summary.to_string(), chunks],
            )?;
            if changed != 1 {
                return Err(StoreError::Conflict(format!("version {version} is not pending: it cannot commit")));
            }
            apply_ledger(t, pipeline, version, ledger)?;
            // The same bytes deleted at one path and new at another: a rename, on both sides.
            for (side, column) in [("valid_to", "retired_reason"), ("valid_from", "added_reason")] {
                // Two lookups by content hash per document of the version (`documents_by_content`),
                // a plan both engines keep however large the version is.
                t.execute(
                    &format!(
                        "UPDATE documents SET {column} = 'renamed'
                         WHERE pipeline = ?1 AND {side} = ?2 AND {column} IN ('deleted', 'new')
                           AND EXISTS (SELECT 1 FROM documents a WHERE a.pipeline = ?1
                               AND a.content_hash = documents.content_hash AND a.valid_from = ?2
                               AND a.added_reason IN ('new', 'renamed'))
                           AND EXISTS (SELECT 1 FROM documents r WHERE r.pipeline = ?1
                               AND r.content_hash = documents.content_hash AND r.valid_to = ?2
                               AND r.retired_reason IN ('deleted', 'renamed'))"
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
                    "INSERT INTO quarantine (pipeline, root, rel_path, member, content_hash, stage, reason, detail,
                         version, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (pipeline, root, rel_path, member) DO UPDATE SET content_hash = excluded.content_hash,
                         stage = excluded.stage, reason = excluded.reason, detail = excluded.detail,
                         version = excluded.version, at = excluded.at",
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
            forget_deleted_bands(t, pipeline)?;
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
            c.for_each_row(
                "SELECT name, version FROM aliases WHERE pipeline = ?1 ORDER BY name",
                params![pipeline],
                &mut |r| {
                    aliases.entry(r.get(1)?).or_default().push(r.get(0)?);
                    Ok(())
                },
            )?;
            let mut versions = c.query_map(
                "SELECT version, state, pipeline_fingerprint, started_at, finished_at, summary, chunks, run_id, pinned,
                        gate, evaluation
                 FROM versions WHERE pipeline = ?1 ORDER BY version",
                params![pipeline],
                |r| {
                    let summary: String = r.get(5)?;
                    Ok(VersionInfo {
                        version: r.get(0)?,
                        state: VersionState::parse(&r.get::<String>(1)?).unwrap_or(VersionState::Aborted),
                        pipeline_fingerprint: r.get(2)?,
                        run_id: r.get(7)?,
                        pinned: r.get(8)?,
                        started_at: r.get(3)?,
                        finished_at: r.get(4)?,
                        chunks: r.get::<Option<i64>>(6)?.map(|n| n as u64),
                        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
                        aliases: Vec::new(),
                        gate: r.get(9)?,
                        evaluation: r.get::<Option<String>>(10)?.and_then(|text| serde_json::from_str(&text).ok()),
                    })
                },
            )?;
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

impl Documents for SqlCatalog {
    fn documents_visible_twice(&self, pipeline: &str, version: Version) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            c.query_map(
                "SELECT doc_id, COUNT(*) FROM documents WHERE pipeline = ?1 AND valid_from <= ?2 AND ?2 < valid_to
                 GROUP BY doc_id HAVING COUNT(*) > 1",
                params![pipeline, version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    fn update_ledger(&self, pipeline: &str, ledger: &[LedgerChange]) -> Result<()> {
        let version = self.alias(pipeline, "live")?.unwrap_or(0);
        self.write(|t| apply_ledger(t, pipeline, version, ledger))
    }

    fn ledger(&self, pipeline: &str, root: &str) -> Result<HashMap<String, LedgerEntry>> {
        self.read(|c| {
            let entries = c.query_map(
                "SELECT root, rel_path, size, mtime_ns, content_hash, status, readers FROM files
                 WHERE pipeline = ?1 AND root = ?2",
                params![pipeline, root],
                ledger_row,
            )?;
            Ok(entries.into_iter().map(|entry| (entry.rel_path.clone(), entry)).collect())
        })
    }

    fn live_document_with_text(
        &self,
        pipeline: &str,
        text_hash: TextHash,
        readers: &Acl,
    ) -> Result<Option<LiveDocument>> {
        self.read(|c| {
            c.query_opt(
                &format!(
                    "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                 WHERE pipeline = ?1 AND text_hash = ?2 AND valid_to = ?3 AND duplicate_of IS NULL AND readers = ?4
                 ORDER BY id LIMIT 1"
                ),
                params![pipeline, text_hash.to_hex(), VERSION_OPEN, readers.to_json()],
                live_document_row,
            )
        })
    }

    fn near_duplicate_candidates(
        &self,
        pipeline: &str,
        bands: &[i64],
        readers: &Acl,
    ) -> Result<Vec<(DocumentId, Vec<u8>)>> {
        if bands.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|c| {
            let keys = (0..bands.len()).map(|i| format!("?{}", i + 4)).collect::<Vec<_>>().join(", ");
            let mut values = params![pipeline, VERSION_OPEN, readers.to_json()].to_vec();
            values.extend(bands.iter().map(|key| Value::Int(*key)));
            c.query_map(
                &format!(
                    "SELECT d.doc_id, d.minhash FROM documents d
                     WHERE d.id IN (SELECT b.document FROM near_dup_bands b WHERE b.pipeline = ?1 AND b.key IN ({keys}))
                       AND d.valid_to = ?2 AND d.duplicate_of IS NULL AND d.readers = ?3 AND d.minhash IS NOT NULL
                     ORDER BY d.doc_id"
                ),
                &values,
                |r| Ok((parse_id(r.get(0)?, DocumentId::parse)?, r.get::<Vec<u8>>(1)?)),
            )
        })
    }

    fn document_roots(&self, pipeline: &str) -> Result<Vec<String>> {
        self.read(|c| {
            c.query_column(
                "SELECT root FROM documents WHERE pipeline = ?1 GROUP BY root ORDER BY length(root) DESC, root",
                params![pipeline],
            )
        })
    }

    fn live_duplicates_of(&self, pipeline: &str, original: DocumentId) -> Result<Vec<LiveDocument>> {
        self.read(|c| {
            c.query_map(
                &format!(
                    "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                     WHERE pipeline = ?1 AND duplicate_of = ?2 AND valid_to = ?3 ORDER BY root, rel_path, member"
                ),
                params![pipeline, original.to_hex(), VERSION_OPEN],
                live_document_row,
            )
        })
    }

    fn live_documents_of_file(&self, pipeline: &str, root: &str, rel_path: &str) -> Result<Vec<LiveDocument>> {
        self.read(|c| {
            c.query_map(
                &format!(
                    "SELECT {LIVE_DOCUMENT_COLUMNS} FROM documents
                     WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3 AND valid_to = ?4 ORDER BY member"
                ),
                params![pipeline, root, rel_path, VERSION_OPEN],
                live_document_row,
            )
        })
    }

    fn stale_files(
        &self,
        pipeline: &str,
        root: &str,
        current: &StageFingerprints,
    ) -> Result<Vec<(String, ChangeReason)>> {
        self.read(|c| {
            c.query_map(
                "SELECT rel_path, MIN(CASE WHEN extract_fingerprint != ?3 THEN 0 WHEN chunk_fingerprint != ?4 THEN 1
                     ELSE 2 END) FROM documents
                 WHERE pipeline = ?1 AND root = ?2 AND valid_to = ?6
                   AND (extract_fingerprint != ?3 OR chunk_fingerprint != ?4 OR model_fingerprint != ?5)
                 GROUP BY rel_path ORDER BY rel_path",
                params![
                    pipeline,
                    root,
                    current.extract.to_hex(),
                    current.chunk.to_hex(),
                    current.model.to_hex(),
                    VERSION_OPEN
                ],
                |r| {
                    let reason = match r.get::<i64>(1)? {
                        0 => ChangeReason::ExtractorChanged,
                        1 => ChangeReason::ChunkerChanged,
                        _ => ChangeReason::ModelChanged,
                    };
                    Ok((r.get(0)?, reason))
                },
            )
        })
    }

    fn reusable_document(
        &self,
        pipeline: &str,
        content_hash: ContentHash,
        fingerprints: &StageFingerprints,
    ) -> Result<Option<Reusable>> {
        self.read(|c| {
            c.query_opt(
                "SELECT d.id, (SELECT CAST(COALESCE(SUM(octet_length(text)), 0) AS BIGINT) FROM chunks
                            WHERE document = d.id),
                        (SELECT COUNT(*) FROM chunks WHERE document = d.id)
                 FROM documents d
                 WHERE d.pipeline = ?1 AND d.content_hash = ?2 AND d.chunk_fingerprint = ?3 AND d.extract_fingerprint = ?4
                     AND d.duplicate_of IS NULL AND d.embedded_files = 0
                 ORDER BY d.id DESC LIMIT 1",
                params![pipeline, content_hash.to_hex(), fingerprints.chunk.to_hex(), fingerprints.extract.to_hex()],
                |r| {
                    Ok(Reusable {
                        row: r.get(0)?,
                        text_bytes: r.get::<i64>(1)? as u64,
                        chunks: r.get::<i64>(2)? as u64,
                    })
                },
            )
        })
    }

    fn reusable_chunks(&self, reusable: &Reusable) -> Result<ReusableDocument> {
        self.read(|c| {
            let (text_hash, format, title, page_count, pii, language, metadata, minhash) = c.query_row(
                "SELECT text_hash, format, title, page_count, pii, language, metadata, minhash FROM documents
                 WHERE id = ?1",
                params![reusable.row],
                |r| {
                    Ok((
                        parse_id(r.get(0)?, TextHash::parse)?,
                        r.get::<String>(1)?,
                        r.get::<Option<String>>(2)?,
                        opt_u32(r.get(3)?),
                        serde_json::from_str(&r.get::<String>(4)?).unwrap_or_default(),
                        r.get::<Option<String>>(5)?,
                        parse_metadata(r.get(6)?)?,
                        r.get::<Option<Vec<u8>>>(7)?,
                    ))
                },
            )?;
            let chunks = c.query_map(
                "SELECT ordinal, text, text_hash, char_start, char_end, page, token_count, heading_path, pii, language
                 FROM chunks WHERE document = ?1 ORDER BY ordinal",
                params![reusable.row],
                |r| {
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
                        language: r.get(9)?,
                    })
                },
            )?;
            Ok(ReusableDocument { text_hash, format, title, page_count, chunks, pii, language, metadata, minhash })
        })
    }

    fn insert_documents(&self, pipeline: &str, version: Version, writes: &[DocumentWrite]) -> Result<()> {
        self.write(|t| {
            let now = now_ms();
            for write in writes {
                let d = &write.document;
                let row: i64 = t.query_value(
                    "INSERT INTO documents (pipeline, doc_id, root, rel_path, member, parent, embedded_files,
                         content_hash, text_hash, format, title, page_count, byte_size, chunk_fingerprint, duplicate_of,
                         valid_from, valid_to, extract_fingerprint, model_fingerprint, added_reason, created_at, readers,
                         pii, language, metadata, minhash, similarity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                         ?21, ?22, ?23, ?24, ?25, ?26, ?27)
                     RETURNING id",
                    params![
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
                        serde_json::to_string(&d.pii).expect("counts serialise"),
                        d.language,
                        d.metadata.to_json(),
                        d.minhash.as_ref().map(|minhash| minhash.signature.clone()),
                        d.similarity
                    ],
                )?;
                let rows: Vec<Vec<Value>> = write
                    .chunks
                    .iter()
                    .map(|chunk| {
                        let c = &chunk.chunk;
                        params![
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
                            serde_json::to_string(&c.pii).expect("strings serialise"),
                            c.language
                        ]
                        .to_vec()
                    })
                    .collect();
                // An original is a near-duplicate candidate for later documents; a duplicate is not.
                if let Some(minhash) = d.minhash.as_ref().filter(|_| d.duplicate_of.is_none()) {
                    let bands: Vec<Vec<Value>> =
                        minhash.bands.iter().map(|key| params![pipeline, *key, row].to_vec()).collect();
                    insert_rows(t, "INSERT INTO near_dup_bands (pipeline, key, document)", "", 3, &bands)?;
                }
                insert_rows(
                    t,
                    "INSERT INTO chunks (chunk_id, valid_from, valid_to, document, pipeline, ordinal, text, text_hash,
                         char_start, char_end, page, token_count, heading_path, pii, language)",
                    "",
                    15,
                    &rows,
                )?;
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
            let row: Option<i64> = t.query_value_opt(
                "SELECT id FROM documents WHERE pipeline = ?1 AND doc_id = ?2 AND valid_to = ?3",
                params![pipeline, doc_id.to_hex(), VERSION_OPEN],
            )?;
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
            t.query_map(
                &format!("{STORED_CHUNK_SELECT} WHERE c.document = ?1 AND c.valid_to = ?2 ORDER BY c.ordinal"),
                params![row, version],
                stored_chunk_row,
            )
        })
    }

    fn chunks_by_key(&self, pipeline: &str, keys: &[(ChunkId, Version)]) -> Result<Vec<StoredChunk>> {
        let query = format!("{STORED_CHUNK_SELECT} WHERE c.chunk_id = ?1 AND c.valid_from = ?2 AND c.pipeline = ?3");
        self.read(|c| {
            let mut chunks = Vec::with_capacity(keys.len());
            for (chunk_id, valid_from) in keys {
                if let Some(chunk) =
                    c.query_opt(&query, params![chunk_id.to_hex(), valid_from, pipeline], stored_chunk_row)?
                {
                    chunks.push(chunk);
                }
            }
            Ok(chunks)
        })
    }

    fn chunks_added_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_from = ?2", pipeline, version)
    }

    fn chunks_retired_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_to = ?2", pipeline, version)
    }

    fn chunks_visible_at(&self, pipeline: &str, version: Version) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_from <= ?2 AND ?2 < c.valid_to", pipeline, version)
    }

    fn models_at(&self, pipeline: &str, version: Version) -> Result<Vec<String>> {
        self.read(|c| {
            c.query_column(
                "SELECT d.model_fingerprint FROM documents d JOIN chunks c ON c.document = d.id
                 WHERE d.pipeline = ?1 AND d.valid_from <= ?2 AND d.valid_to > ?2
                 GROUP BY d.model_fingerprint ORDER BY COUNT(*) DESC, d.model_fingerprint",
                params![pipeline, version],
            )
        })
    }

    fn has_live_documents_of_other_models(&self, pipeline: &str, model: Fingerprint) -> Result<bool> {
        self.read(|c| {
            c.query_value(
                "SELECT EXISTS (SELECT 1 FROM documents d WHERE d.pipeline = ?1 AND d.valid_to = ?2
                   AND d.model_fingerprint != ?3 AND EXISTS (SELECT 1 FROM chunks c WHERE c.document = d.id))",
                params![pipeline, VERSION_OPEN, model.to_hex()],
            )
        })
    }

    fn models_with_chunks(&self, pipeline: &str) -> Result<Vec<String>> {
        self.read(|c| {
            c.query_column(
                "SELECT DISTINCT d.model_fingerprint FROM documents d
                 WHERE d.pipeline = ?1 AND EXISTS (SELECT 1 FROM chunks c WHERE c.document = d.id)
                 ORDER BY d.model_fingerprint",
                params![pipeline],
            )
        })
    }

    fn appearance_count(&self, pipeline: &str, model: &str) -> Result<usize> {
        self.read(|c| {
            c.query_value(
                "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document
                 WHERE c.pipeline = ?1 AND d.model_fingerprint = ?2",
                params![pipeline, model],
            )
        })
    }

    fn all_chunk_appearances(&self, pipeline: &str) -> Result<Vec<StoredChunk>> {
        self.chunks_where("c.pipeline = ?1 AND c.valid_to >= ?2", pipeline, 0)
    }
}

impl EmbeddingCache for SqlCatalog {
    fn model_dimension(&self, model: &str) -> Result<Option<usize>> {
        let bytes: Option<usize> = self.read(|c| {
            c.query_value_opt("SELECT octet_length(vector) FROM embeddings WHERE model = ?1 LIMIT 1", params![model])
        })?;
        Ok(bytes.map(|bytes| bytes / std::mem::size_of::<f32>()))
    }

    fn cached_embeddings(&self, model: Fingerprint, text_hashes: &[TextHash]) -> Result<HashMap<TextHash, Vec<f32>>> {
        let mut wanted: Vec<TextHash> = text_hashes.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        // One query per group of hashes, padded with its last hash so every query has one shape.
        let query = format!(
            "SELECT text_hash, vector FROM embeddings WHERE model = ?1 AND text_hash IN ({})",
            placeholders(2, ROWS_PER_STATEMENT)
        );
        self.read(|c| {
            let model = model.to_hex();
            let mut found = HashMap::new();
            for group in wanted.chunks(ROWS_PER_STATEMENT) {
                let mut bound = vec![Value::Text(model.clone())];
                bound.extend((0..ROWS_PER_STATEMENT).map(|i| Value::Text(group[i.min(group.len() - 1)].to_hex())));
                c.for_each_row(&query, &bound, &mut |r| {
                    let hash = parse_id(r.get(0)?, TextHash::parse)?;
                    found.insert(hash, blob_to_vector(&r.get::<Vec<u8>>(1)?));
                    Ok(())
                })?;
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
        self.read(|c| c.query_value("SELECT COUNT(*) FROM embeddings", params![]))
    }

    fn put_embeddings(&self, model: Fingerprint, vectors: &[(TextHash, &[f32])]) -> Result<()> {
        let model = model.to_hex();
        let rows: Vec<Vec<Value>> = vectors
            .iter()
            .map(|(hash, vector)| params![model, hash.to_hex(), vector_to_blob(vector)].to_vec())
            .collect();
        self.write(|t| {
            insert_rows(
                t,
                "INSERT INTO embeddings (model, text_hash, vector)",
                "ON CONFLICT (model, text_hash) DO NOTHING",
                3,
                &rows,
            )
        })
    }
}

impl QuarantineLog for SqlCatalog {
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
            c.query_map(
                "SELECT root, rel_path, member, content_hash, stage, reason, detail, version, at FROM quarantine
                 WHERE pipeline = ?1 ORDER BY root, rel_path, member",
                params![pipeline],
                |r| {
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
                },
            )
        })
    }
}

/// Where alias `name` points, read inside a transaction.
pub(crate) fn alias_in(t: &dyn Sql, pipeline: &str, name: &str) -> Result<Option<Version>> {
    t.query_value_opt("SELECT version FROM aliases WHERE pipeline = ?1 AND name = ?2", params![pipeline, name])
}

/// Points alias `name` at `version` and records the move in `alias_history`.
pub(crate) fn set_alias(t: &dyn Sql, pipeline: &str, name: &str, version: Version, action: &str) -> Result<()> {
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

fn apply_ledger(t: &dyn Sql, pipeline: &str, version: Version, ledger: &[LedgerChange]) -> Result<()> {
    for change in ledger {
        match change {
            LedgerChange::Upsert(entry) => {
                t.execute(
                    "INSERT INTO files (pipeline, root, rel_path, size, mtime_ns, content_hash, status, version, readers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (pipeline, root, rel_path) DO UPDATE SET size = excluded.size,
                         mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, status = excluded.status,
                         version = excluded.version, readers = excluded.readers",
                    params![
                        pipeline,
                        entry.root,
                        entry.rel_path,
                        entry.size as i64,
                        entry.mtime_ns,
                        entry.content_hash.to_hex(),
                        entry.status.as_str(),
                        version,
                        entry.readers.as_ref().map(Acl::to_json).unwrap_or_default()
                    ],
                )?;
            }
            LedgerChange::Remove { root, rel_path } => {
                t.execute(
                    "DELETE FROM files WHERE pipeline = ?1 AND root = ?2 AND rel_path = ?3",
                    params![pipeline, root, rel_path],
                )?;
            }
        }
    }
    Ok(())
}

fn ledger_row(r: &Row) -> Result<LedgerEntry> {
    let status: String = r.get(5)?;
    Ok(LedgerEntry {
        root: r.get(0)?,
        rel_path: r.get(1)?,
        size: r.get::<i64>(2)? as u64,
        mtime_ns: r.get(3)?,
        content_hash: parse_id(r.get(4)?, ContentHash::parse)?,
        status: FileStatus::parse(&status).unwrap_or(FileStatus::Quarantined),
        // A row from before readers were recorded has none: any captured ACL differs.
        readers: Acl::from_json(&r.get::<String>(6)?),
    })
}

const LIVE_DOCUMENT_COLUMNS: &str = "doc_id, root, rel_path, member, content_hash, text_hash, duplicate_of";

fn live_document_row(r: &Row) -> Result<LiveDocument> {
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

/// Deletes the band keys of documents no longer in the catalog (after documents were deleted).
pub(crate) fn forget_deleted_bands(t: &dyn Sql, pipeline: &str) -> Result<()> {
    t.execute(
        "DELETE FROM near_dup_bands WHERE pipeline = ?1
           AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = near_dup_bands.document)",
        params![pipeline],
    )?;
    Ok(())
}

/// Selects the columns of a [`StoredChunk`] (read by [`stored_chunk_row`]).
pub(crate) const STORED_CHUNK_SELECT: &str =
    "SELECT c.chunk_id, c.valid_from, c.valid_to, d.doc_id, d.root, d.rel_path, d.member,
        d.title, c.ordinal, c.text, c.text_hash, c.char_start, c.char_end, c.page, c.token_count, c.heading_path,
        d.readers, c.pii, d.content_hash, d.format, d.extract_fingerprint, d.chunk_fingerprint, d.model_fingerprint,
        c.language, d.metadata
    FROM chunks c JOIN documents d ON d.id = c.document";

pub(crate) fn stored_chunk_row(r: &Row) -> Result<StoredChunk> {
    let root: String = r.get(4)?;
    let rel_path: String = r.get(5)?;
    let member: String = r.get(6)?;
    Ok(StoredChunk {
        chunk_id: parse_id(r.get(0)?, ChunkId::parse)?,
        valid_from: r.get(1)?,
        valid_to: r.get(2)?,
        doc_id: parse_id(r.get(3)?, DocumentId::parse)?,
        path: join_path(&root, &rel_path, &member),
        source: root,
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
        language: r.get(23)?,
        metadata: parse_metadata(r.get(24)?)?,
    })
}

pub(crate) fn parse_metadata(json: String) -> Result<DocumentMetadata> {
    DocumentMetadata::from_json(&json).ok_or_else(|| StoreError::Corrupt(format!("bad document metadata {json:?}")))
}

/// The settings recorded under a stage fingerprint, read on `c`.
pub(crate) fn stage_settings_in(c: &dyn Sql, fingerprint: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> =
        c.query_value_opt("SELECT settings FROM fingerprints WHERE fingerprint = ?1", params![fingerprint])?;
    Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
}

pub(crate) fn parse_acl(json: String) -> Result<Acl> {
    Acl::from_json(&json).ok_or_else(|| StoreError::Corrupt(format!("bad readers {json:?}")))
}

/// A JSON array of strings (heading paths, PII kinds).
pub(crate) fn parse_strings(json: String) -> Result<Vec<String>> {
    serde_json::from_str(&json).map_err(|err| StoreError::Corrupt(format!("bad string list {json:?}: {err}")))
}
