//! Per-document work before dedup and embedding: read, hash, extract, clean, chunk.
//!
//! Runs on rayon, one document per task. Nothing here touches the indexes; a failure is
//! returned as a [`StageFailure`] for quarantine, and a panicking parser costs one document.

use std::path::Path;
use std::time::Instant;

use sluice_core::{
    Block, BlockKind, Chunk, ContentHash, ExtractedDocument, Fingerprint, Stage, StageFailure, TextHash,
};
use sluice_extract::ExtractedFile;
use sluice_store::Catalog;
use sluice_transform::{Chunker, QualityThresholds};
use tracing::warn;

use crate::parsers::Parsers;

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
    pub parsers: &'a Parsers,
    pub quality: &'a QualityThresholds,
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
    let extracted = context.parsers.extract(&bytes, file_name).map_err(failed)?;
    times.extract = started.elapsed().as_secs_f64();
    drop(bytes);

    let started = Instant::now();
    let extracted = flatten(extracted, file_name);
    sluice_transform::quality::check(&extracted, context.quality)
        .map_err(|failure| failed(StageFailure::new(Stage::Clean, failure.reason, failure.detail)))?;
    let normalized = sluice_transform::normalize(extracted);
    times.clean = started.elapsed().as_secs_f64();
    if normalized.text.trim().is_empty() {
        return Err(failed(StageFailure::new(Stage::Clean, "empty", "no text left after cleaning")));
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
        format: normalized.format,
        title: normalized.title,
        page_count: normalized.page_count,
        chunks,
        reused: false,
    })
}

fn read_failure(err: &std::io::Error) -> StageFailure {
    StageFailure::new(Stage::Read, "io_error", err.to_string())
}

/// Folds embedded files (attachments, mailbox messages) into their parent's document, each under
/// a heading with its name, so their text is indexed with the file that holds them. An embedded
/// file that failed is logged and left out; the parent is still indexed.
fn flatten(file: ExtractedFile, file_name: &str) -> ExtractedDocument {
    let ExtractedFile { mut document, children } = file;
    for child in children {
        match child.outcome {
            Ok(extracted) => {
                let mut inner = flatten(extracted, &child.name);
                let heading = match inner.title.take() {
                    Some(title) => format!("{}: {title}", child.name),
                    None => child.name.clone(),
                };
                document.blocks.push(Block { kind: BlockKind::Heading { level: 2 }, text: heading, page: None });
                document.blocks.append(&mut inner.blocks);
            }
            Err(failure) => {
                warn!(file = file_name, embedded = %child.name, reason = %failure.reason, detail = %failure.detail, "embedded file skipped");
            }
        }
    }
    document
}
