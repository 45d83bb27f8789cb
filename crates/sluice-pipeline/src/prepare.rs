//! Per-document work before dedup and embedding: read, hash, extract, clean, chunk.
//!
//! Runs on rayon, one file per task. Nothing here touches the indexes; a failure is returned as
//! a [`StageFailure`] for quarantine, and a panicking parser costs one file. Files embedded in
//! the file (attachments, a mailbox's messages) come out as documents of their own, each with
//! its own outcome, so one bad attachment is quarantined without losing its message.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_core::{Chunk, ContentHash, ExtractedDocument, Stage, StageFailure, TextHash};
use sluice_extract::{ExtractedChild, ExtractedFile};
use sluice_store::{Catalog, StageCost, StageFingerprints};
use sluice_transform::pii::{PiiDetector, PiiPolicy};
use sluice_transform::{Chunker, QualityThresholds, redact};

use crate::meter::Meter;
use crate::parsers::Parsers;

/// What one file (its embedded files included) cost in each stage before dedup.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub read: StageCost,
    pub extract: StageCost,
    pub clean: StageCost,
    pub chunk: StageCost,
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
    /// Files embedded directly in this one, extracted or not.
    pub embedded_files: u32,
    /// PII values found, per kind.
    pub pii: BTreeMap<String, usize>,
}

/// A file embedded in the prepared one, at any depth.
#[derive(Clone, Debug)]
pub struct PreparedEmbedded {
    /// Names from the file down to this one, joined by `/`.
    pub member: String,
    pub content_hash: ContentHash,
    pub result: Result<PreparedDocument, StageFailure>,
}

pub struct Prepared {
    pub result: Result<PreparedDocument, (Option<ContentHash>, StageFailure)>,
    /// Embedded files, depth first (a parent before its children); empty when the file failed.
    pub embedded: Vec<PreparedEmbedded>,
    pub times: StageTimes,
}

pub struct PrepareContext<'a> {
    pub pipeline: &'a str,
    pub catalog: &'a Catalog,
    pub chunker: &'a Chunker,
    pub fingerprints: &'a StageFingerprints,
    pub max_file_bytes: u64,
    pub parsers: &'a Parsers,
    pub quality: &'a QualityThresholds,
    /// The PII stage, unless the pipeline turned it off.
    pub pii: Option<(&'a PiiDetector, PiiPolicy)>,
}

pub fn prepare(context: &PrepareContext<'_>, path: &Path, file_name: &str) -> Prepared {
    let mut times = StageTimes::default();
    let mut embedded = Vec::new();
    let result = prepare_file(context, path, file_name, &mut times, &mut embedded);
    if result.is_err() {
        embedded.clear();
    }
    Prepared { result, embedded, times }
}

fn prepare_file(
    context: &PrepareContext<'_>,
    path: &Path,
    file_name: &str,
    times: &mut StageTimes,
    embedded: &mut Vec<PreparedEmbedded>,
) -> Result<PreparedDocument, (Option<ContentHash>, StageFailure)> {
    let meter = Meter::thread();
    let size = std::fs::metadata(path).map(|m| m.len()).map_err(|err| (None, read_failure(&err)))?;
    if size > context.max_file_bytes {
        let detail = format!("{size} bytes, over the limit of {} (limits.max_file_bytes)", context.max_file_bytes);
        return Err((None, StageFailure::new(Stage::Read, "too_large", detail)));
    }
    let bytes = std::fs::read(path).map_err(|err| (None, read_failure(&err)))?;
    let content_hash = ContentHash::of_bytes(&bytes);
    times.read = meter.stop();
    let failed = |failure: StageFailure| (Some(content_hash), failure);

    let reusable = context
        .catalog
        .reusable_document(context.pipeline, content_hash, context.fingerprints)
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
            embedded_files: 0,
            pii: reused.pii,
        });
    }

    let meter = Meter::thread();
    let (extracted, worker_cpu) = context.parsers.extract(&bytes, file_name);
    times.extract = meter.stop();
    // A worker process parsed it: its CPU time is the parse's, this thread only waited.
    times.extract.cpu += worker_cpu;
    let extracted = extracted.map_err(failed)?;
    drop(bytes);

    let ExtractedFile { document, children } = extracted;
    let prepared = finish(context, document, content_hash, size, &children, times).map_err(failed)?;
    prepare_embedded(context, children, "", times, embedded);
    Ok(prepared)
}

/// Quality check, cleaning and chunking of one extracted document.
fn finish(
    context: &PrepareContext<'_>,
    document: ExtractedDocument,
    content_hash: ContentHash,
    byte_size: u64,
    children: &[ExtractedChild],
    times: &mut StageTimes,
) -> Result<PreparedDocument, StageFailure> {
    let meter = Meter::thread();
    // A container with no text of its own (a mailbox) is kept, chunkless, for its children.
    let container = document.blocks.is_empty() && !children.is_empty();
    if !container {
        sluice_transform::quality::check(&document, context.quality)
            .map_err(|failure| StageFailure::new(Stage::Clean, failure.reason, failure.detail))?;
    }
    let normalized = sluice_transform::normalize(document);
    times.clean.add(meter.stop());
    if normalized.text.trim().is_empty() && !container {
        return Err(StageFailure::new(Stage::Clean, "empty", "no text left after cleaning"));
    }

    let meter = Meter::thread();
    let chunks = context
        .chunker
        .chunk(&normalized)
        .map_err(|err| StageFailure::new(Stage::Chunk, "tokenizer_error", err.to_string()))?;
    let (chunks, title, pii) = match context.pii {
        Some((detector, policy)) => {
            let redacted = redact::redact(detector, policy, &normalized.text, chunks);
            let title = normalized.title.map(|title| redact::redact_text(detector, policy, &title));
            (redacted.chunks, title, redacted.counts)
        }
        None => (chunks, normalized.title, BTreeMap::new()),
    };
    // The PII stage is counted with chunking: it works on the chunks before they leave.
    times.chunk.add(meter.stop());
    Ok(PreparedDocument {
        content_hash,
        byte_size,
        text_hash: normalized.text_hash,
        format: normalized.format,
        title,
        page_count: normalized.page_count,
        chunks,
        reused: false,
        embedded_files: u32::try_from(children.len()).unwrap_or(u32::MAX),
        pii,
    })
}

/// Prepares embedded files depth first, each under its member path below `parent`.
fn prepare_embedded(
    context: &PrepareContext<'_>,
    children: Vec<ExtractedChild>,
    parent: &str,
    times: &mut StageTimes,
    embedded: &mut Vec<PreparedEmbedded>,
) {
    for child in children {
        let member = if parent.is_empty() { child.name } else { format!("{parent}/{}", child.name) };
        let (result, grandchildren) = match child.outcome {
            Ok(ExtractedFile { document, children }) => {
                (finish(context, document, child.content_hash, child.byte_size, &children, times), children)
            }
            Err(failure) => (Err(failure), Vec::new()),
        };
        // A child that failed takes its own embedded files with it, as a file does.
        let grandchildren = if result.is_ok() { grandchildren } else { Vec::new() };
        embedded.push(PreparedEmbedded { member: member.clone(), content_hash: child.content_hash, result });
        prepare_embedded(context, grandchildren, &member, times, embedded);
    }
}

fn read_failure(err: &std::io::Error) -> StageFailure {
    StageFailure::new(Stage::Read, "io_error", err.to_string())
}
