//! `sluice export`: exactly the chunks visible at one version, as JSONL or Parquet, in a stable
//! order (path, then position), byte-identical on every run.
//!
//! Nothing in a row can change after its version commits: no `valid_to`, no times, no state;
//! the vector comes from the embedding cache by (model fingerprint, text hash), the same values
//! Qdrant was given. Rows are written to `PATH.partial` and renamed at the end, so a failed
//! export never leaves a half file under the name asked for.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sluice_core::embedding_input::embedding_key;
use sluice_core::{Acl, ChunkId, DocumentId, DocumentMetadata, ReadAccess, TextHash, Version};

use crate::catalog::{STORED_CHUNK_SELECT, SqlCatalog, params, stored_chunk_row};
use crate::error::{Result, StoreError};
use crate::lineage::file_uri;
use crate::prelude::*;
use crate::types::StoredChunk;

/// Rows per Parquet row group and per vector lookup.
const BATCH_ROWS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Parquet,
}

/// One exported chunk (a JSONL line; the Parquet columns have the same names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportRow {
    pub chunk_id: ChunkId,
    pub doc_id: DocumentId,
    pub source_uri: String,
    pub path: String,
    pub content_hash: String,
    pub format: String,
    pub title: Option<String>,
    pub ordinal: u32,
    pub page: Option<u32>,
    pub char_start: u32,
    pub char_end: u32,
    pub token_count: u32,
    pub heading_path: Vec<String>,
    pub text: String,
    pub text_hash: TextHash,
    /// The version the chunk became visible in (lineage: which run wrote it).
    pub valid_from: Version,
    pub extract_fingerprint: String,
    pub chunk_fingerprint: String,
    pub model_fingerprint: String,
    /// Who may read the chunk (principal keys).
    pub readers: Vec<String>,
    /// PII kinds found in the text.
    pub pii: Vec<String>,
    /// ISO 639-3 code of the chunk's language.
    #[serde(default)]
    pub language: Option<String>,
    /// The document's metadata (authors, dates, MIME type, ...).
    #[serde(default)]
    pub metadata: DocumentMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl From<StoredChunk> for ExportRow {
    /// The exported form of the one chunk record (without its vector).
    fn from(chunk: StoredChunk) -> Self {
        ExportRow {
            chunk_id: chunk.chunk_id,
            doc_id: chunk.doc_id,
            source_uri: file_uri(&chunk.path),
            path: chunk.path,
            content_hash: chunk.content_hash.to_hex(),
            format: chunk.format,
            title: chunk.title,
            ordinal: chunk.ordinal,
            page: chunk.page,
            char_start: chunk.char_start,
            char_end: chunk.char_end,
            token_count: chunk.token_count,
            heading_path: chunk.heading_path,
            text: chunk.text,
            text_hash: chunk.text_hash,
            valid_from: chunk.valid_from,
            extract_fingerprint: chunk.extract_fingerprint,
            chunk_fingerprint: chunk.chunk_fingerprint,
            model_fingerprint: chunk.model,
            readers: chunk.readers.keys().to_vec(),
            pii: chunk.pii,
            language: chunk.language,
            metadata: chunk.metadata,
            vector: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportSummary {
    pub version: Version,
    pub chunks: usize,
    pub bytes: u64,
}

impl SqlCatalog {
    /// Calls `write` on batches of the chunks visible at `version` that pass `keep`, by path and
    /// position, without vectors; returns how many there were.
    fn visit_export_rows(
        &self,
        pipeline: &str,
        version: Version,
        keep: &dyn Fn(&ExportRow) -> bool,
        mut write: impl FnMut(&mut [ExportRow]) -> Result<()>,
    ) -> Result<usize> {
        self.read(|c| {
            let (mut batch, mut written) = (Vec::with_capacity(BATCH_ROWS), 0);
            c.for_each_row(
                &format!(
                    "{STORED_CHUNK_SELECT} WHERE c.pipeline = ?1 AND c.valid_from <= ?2 AND ?2 < c.valid_to
                     ORDER BY d.root, d.rel_path, d.member, c.ordinal, c.chunk_id"
                ),
                params![pipeline, version],
                &mut |r| {
                    let row = ExportRow::from(stored_chunk_row(r)?);
                    if keep(&row) {
                        batch.push(row);
                    }
                    if batch.len() == BATCH_ROWS {
                        write(&mut batch)?;
                        written += batch.len();
                        batch.clear();
                    }
                    Ok(())
                },
            )?;
            if !batch.is_empty() {
                write(&mut batch)?;
                written += batch.len();
            }
            Ok(written)
        })
    }

    /// Fills in each row's vector from the embedding cache.
    fn attach_vectors(&self, rows: &mut [ExportRow]) -> Result<()> {
        let key = |row: &ExportRow| embedding_key(row.title.as_deref(), &row.heading_path, &row.text, row.text_hash);
        let vectors = self.cached_embeddings_by_model(
            &rows.iter().map(|row| (row.model_fingerprint.as_str(), key(row))).collect::<Vec<_>>(),
        )?;
        for row in rows {
            let vector = vectors.get(&(row.model_fingerprint.clone(), key(row))).ok_or_else(|| {
                StoreError::Corrupt(format!("no stored vector for chunk {} (text {})", row.chunk_id, row.text_hash))
            })?;
            row.vector = Some(vector.clone());
        }
        Ok(())
    }
}

impl Exports for SqlCatalog {
    fn export(
        &self,
        pipeline: &str,
        version: Version,
        access: &ReadAccess,
        hidden_docs: &[String],
        format: ExportFormat,
        with_vectors: bool,
        out: &Path,
    ) -> Result<ExportSummary> {
        use std::os::unix::fs::OpenOptionsExt;
        self.require_committed(pipeline, version)?;
        let readable = |row: &ExportRow| {
            access.may_read(&Acl::new(row.readers.iter().cloned())) && !hidden_docs.contains(&row.doc_id.to_hex())
        };
        let partial = out.with_extension(match out.extension() {
            Some(ext) => format!("{}.partial", ext.to_string_lossy()),
            None => "partial".to_owned(),
        });
        let io = |source| StoreError::Io { path: partial.clone(), source };
        // Every chunk's text is in there: the owner alone may read it, whatever the umask (a
        // leftover from an interrupted export goes first, with whatever mode it had).
        let _ = std::fs::remove_file(&partial);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io)?;
        // Rows are read and written a batch at a time: an export of any size holds one batch.
        let chunks = match format {
            ExportFormat::Jsonl => {
                let mut writer = BufWriter::new(file);
                let chunks = self.visit_export_rows(pipeline, version, &readable, |batch| {
                    if with_vectors {
                        self.attach_vectors(batch)?;
                    }
                    for row in batch.iter() {
                        serde_json::to_writer(&mut writer, &row).map_err(|err| io(err.into()))?;
                        writer.write_all(b"\n").map_err(io)?;
                    }
                    Ok(())
                })?;
                writer.into_inner().map_err(|err| io(err.into_error()))?.sync_all().map_err(io)?;
                chunks
            }
            ExportFormat::Parquet => {
                let schema = Arc::new(parquet_schema(with_vectors));
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(BATCH_ROWS))
                    .build();
                let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(parquet_error)?;
                let chunks = self.visit_export_rows(pipeline, version, &readable, |batch| {
                    if with_vectors {
                        self.attach_vectors(batch)?;
                    }
                    writer.write(&record_batch(&schema, batch, with_vectors)?).map_err(parquet_error)
                })?;
                writer.into_inner().map_err(parquet_error)?.sync_all().map_err(io)?;
                chunks
            }
        };
        std::fs::rename(&partial, out).map_err(|source| StoreError::Io { path: out.to_owned(), source })?;
        let bytes = std::fs::metadata(out).map_err(|source| StoreError::Io { path: out.to_owned(), source })?.len();
        Ok(ExportSummary { version, chunks, bytes })
    }
}

fn parquet_error(err: parquet::errors::ParquetError) -> StoreError {
    StoreError::Invalid(format!("parquet: {err}"))
}

const STRING_COLUMNS: [&str; 14] = [
    "chunk_id",
    "doc_id",
    "source_uri",
    "path",
    "content_hash",
    "format",
    "title",
    "text",
    "text_hash",
    "extract_fingerprint",
    "chunk_fingerprint",
    "model_fingerprint",
    "language",
    // The document's metadata as its JSON object.
    "metadata",
];
const INTEGER_COLUMNS: [&str; 6] = ["ordinal", "page", "char_start", "char_end", "token_count", "valid_from"];

/// Strings, 64-bit integers (what pandas, polars and DuckDB all read without surprises), the
/// heading path as a list of strings and the vector as a list of 32-bit floats.
fn parquet_schema(with_vectors: bool) -> Schema {
    let mut fields: Vec<Field> = Vec::new();
    for name in STRING_COLUMNS {
        fields.push(Field::new(name, DataType::Utf8, name == "title" || name == "language"));
    }
    for name in INTEGER_COLUMNS {
        fields.push(Field::new(name, DataType::Int64, name == "page"));
    }
    for name in ["heading_path", "readers", "pii"] {
        fields.push(Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false));
    }
    if with_vectors {
        fields.push(Field::new("vector", DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), false));
    }
    Schema::new(fields)
}

fn record_batch(schema: &Arc<Schema>, rows: &[ExportRow], with_vectors: bool) -> Result<RecordBatch> {
    let strings = |get: &dyn Fn(&ExportRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<StringArray>())
    };
    let integers = |get: &dyn Fn(&ExportRow) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<Int64Array>())
    };
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|r| Some(r.chunk_id.to_hex())),
        strings(&|r| Some(r.doc_id.to_hex())),
        strings(&|r| Some(r.source_uri.clone())),
        strings(&|r| Some(r.path.clone())),
        strings(&|r| Some(r.content_hash.clone())),
        strings(&|r| Some(r.format.clone())),
        strings(&|r| r.title.clone()),
        strings(&|r| Some(r.text.clone())),
        strings(&|r| Some(r.text_hash.to_hex())),
        strings(&|r| Some(r.extract_fingerprint.clone())),
        strings(&|r| Some(r.chunk_fingerprint.clone())),
        strings(&|r| Some(r.model_fingerprint.clone())),
        strings(&|r| r.language.clone()),
        strings(&|r| Some(r.metadata.to_json())),
        integers(&|r| Some(r.ordinal.into())),
        integers(&|r| r.page.map(i64::from)),
        integers(&|r| Some(r.char_start.into())),
        integers(&|r| Some(r.char_end.into())),
        integers(&|r| Some(r.token_count.into())),
        integers(&|r| Some(r.valid_from)),
    ];
    let string_lists: [fn(&ExportRow) -> &Vec<String>; 3] = [|r| &r.heading_path, |r| &r.readers, |r| &r.pii];
    for get in string_lists {
        let mut lists = ListBuilder::new(StringBuilder::new());
        for row in rows {
            for value in get(row) {
                lists.values().append_value(value);
            }
            lists.append(true);
        }
        columns.push(Arc::new(lists.finish()));
    }
    if with_vectors {
        let mut vectors = ListBuilder::new(Float32Builder::new());
        for row in rows {
            vectors.values().append_slice(row.vector.as_deref().unwrap_or_default());
            vectors.append(true);
        }
        columns.push(Arc::new(vectors.finish()));
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|err| StoreError::Invalid(format!("arrow: {err}")))
}
