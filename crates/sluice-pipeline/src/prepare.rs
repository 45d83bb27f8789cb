//! Per-document work before dedup and embedding: read, hash, extract, clean, chunk.
//!
//! Runs on rayon, one document per task. Nothing here touches the indexes; a failure is
//! returned as a [`StageFailure`] for quarantine, and a panicking parser costs one document.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use sluice_core::{Chunk, ContentHash, Fingerprint, Stage, StageFailure, TextHash};
use sluice_store::Catalog;
use sluice_transform::Chunker;

/// Per-stage wall time of one document, in seconds.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub read: f64,
    pub extract: f64,
    pub clean: f64,
    pub chunk: f64,
}

/// A document ready for dedup and embedding.
#[derive(Clone, Debug)]
pub struct PreparedDocument {
    pub content_hash: ContentHash,
    pub byte_size: u64,
    pub text_hash: TextHash,
    pub format: String,
    pub title: Option<String>,
    pub page_count: Option<u32>,
    pub chunks: Vec<Chunk>,
    /// Chunks came from an earlier appearance of the same bytes; nothing was extracted.
    pub reused: bool,
}

pub struct Prepared {
    pub result: Result<PreparedDocument, (Option<ContentHash>, StageFailure)>,
    pub times: StageTimes,
}

pub struct PrepareContext<'a> {
    pub pipeline: &'a str,
    pub catalog: &'a Catalog,
    pub chunker: &'a Chunker,
    pub chunk_fingerprint: Fingerprint,
    pub max_file_bytes: u64,
}

pub fn prepare(context: &PrepareContext<'_>, path: &Path, file_name: &str) -> Prepared {
    let mut times = StageTimes::default();
    let result = prepare_inner(context, path, file_name, &mut times);
    Prepared { result, times }
}

fn prepare_inner(
    context: &PrepareContext<'_>,
    path: &Path,
    file_name: &str,
    times: &mut StageTimes,
) -> Result<PreparedDocument, (Option<ContentHash>, StageFailure)> {
    let started = Instant::now();
    let size = std::fs::metadata(path).map(|m| m.len()).map_err(|err| (None, read_failure(&err)))?;
    if size > context.max_file_bytes {
        let detail = format!("{size} bytes, over the limit of {} (limits.max_file_bytes)", context.max_file_bytes);
        return Err((None, StageFailure::new(Stage::Read, "too_large", detail)));
    }
    let bytes = std::fs::read(path).map_err(|err| (None, read_failure(&err)))?;
    let content_hash = ContentHash::of_bytes(&bytes);
    times.read = started.elapsed().as_secs_f64();
    let failed = |failure: StageFailure| (Some(content_hash), failure);

    let reusable = context
        .catalog
        .reusable_document(context.pipeline, content_hash, context.chunk_fingerprint)
        .map_err(|err| failed(StageFailure::new(Stage::Read, "catalog_error", err.to_string())))?;
    if let Some(reused) = reusable {
        return Ok(PreparedDocument {
            content_hash,
            byte_size: bytes.len() as u64,
            text_hash: reused.text_hash,
            format: reused.format,
            title: reused.title,
            page_count: reused.page_count,
            chunks: reused.chunks,
            reused: true,
        });
    }

    let started = Instant::now();
    let extracted = catch_unwind(AssertUnwindSafe(|| sluice_extract::extract(&bytes, file_name)))
        .map_err(|panic| failed(StageFailure::new(Stage::Extract, "parser_panicked", panic_message(&panic))))?
        .map_err(|err| failed(err.into_failure()))?;
    times.extract = started.elapsed().as_secs_f64();
    drop(bytes);

    let started = Instant::now();
    let normalized = sluice_transform::normalize(extracted);
    times.clean = started.elapsed().as_secs_f64();
    if normalized.text.trim().is_empty() {
        let detail = match normalized.page_count {
            Some(pages) => {
                format!("no extractable text in {pages} page(s) (scanned pages need OCR)")
            }
            None => "no text found".to_owned(),
        };
        return Err(failed(StageFailure::new(Stage::Clean, "empty", detail)));
    }

    let started = Instant::now();
    let chunks = context
        .chunker
        .chunk(&normalized)
        .map_err(|err| failed(StageFailure::new(Stage::Chunk, "tokenizer_error", err.to_string())))?;
    times.chunk = started.elapsed().as_secs_f64();
    Ok(PreparedDocument {
        content_hash,
        byte_size: size,
        text_hash: normalized.text_hash,
        format: normalized.format.to_owned(),
        title: normalized.title,
        page_count: normalized.page_count,
        chunks,
        reused: false,
    })
}

fn read_failure(err: &std::io::Error) -> StageFailure {
    StageFailure::new(Stage::Read, "io_error", err.to_string())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("the parser panicked: {message}")
}
