//! What a file's bytes become before dedup and embedding: extract, check quality, clean, chunk
//! and apply the PII policy, for the file and, depth first, each file embedded in it.
//!
//! Everything here is a pure function of the bytes and the settings, and it is where a hostile
//! document costs memory and time (inflated text, a huge single line, a tokenizer fed
//! megabytes), so it runs inside the parser worker processes, under their memory and CPU caps
//! (`parsers.rs`); the daemon only ever receives the chunks. Library use without workers
//! (`isolate_parsers = false`) runs the same code in-process.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_core::{Chunk, ContentHash, DocumentMetadata, ExtractedDocument, Stage, StageFailure, TextHash};
use sluice_extract::{ExtractedChild, ExtractedFile, Limits, extract_file, panic_message};
use sluice_store::StageCost;
use sluice_transform::near_dup::Signature;
use sluice_transform::pii::{PiiDetector, PiiPolicy};
use sluice_transform::{Chunker, QualityThresholds, redact};

use crate::meter::Meter;

/// Characters of a document's title kept (a hostile `<title>` can be megabytes, and the title
/// travels with every chunk into the lexical index).
pub const MAX_TITLE_CHARS: usize = 1_000;

/// Everything that decides what the text stage makes of a file, in a form a worker process
/// receives at start (the tokenizer by path, checked against its hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TextSettings {
    pub limits: Limits,
    pub tokenizer: PathBuf,
    /// blake3 of the tokenizer file the engine loaded: a worker refuses another one.
    pub tokenizer_blake3: String,
    pub max_tokens: usize,
    pub overlap_tokens: usize,
    pub quality: QualityThresholds,
    /// The PII policy (`tag`, `mask`, `drop-chunk`) and the pipeline's own patterns; `None`: off.
    pub pii: Option<(String, Vec<(String, String)>)>,
}

/// The text stage, ready to run.
pub struct TextStage {
    limits: Limits,
    chunker: Chunker,
    quality: QualityThresholds,
    pii: Option<(PiiDetector, PiiPolicy)>,
}

/// A document's text, cleaned and chunked: ready for dedup and embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedText {
    pub text_hash: TextHash,
    pub format: String,
    pub title: Option<String>,
    pub page_count: Option<u32>,
    pub chunks: Vec<Chunk>,
    /// Files embedded directly in this one, extracted or not.
    pub embedded_files: u32,
    /// PII values found, per kind.
    pub pii: BTreeMap<String, usize>,
    /// ISO 639-3 code of the document's language (see `sluice_transform::enrich`).
    pub language: Option<String>,
    /// What the document says about itself (authors, dates, ...).
    pub metadata: DocumentMetadata,
    /// Its MinHash signature (`sluice_transform::near_dup`), if it has enough words.
    pub minhash: Option<Vec<u8>>,
}

/// A file embedded in the prepared one, at any depth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedText {
    /// Names from the file down to this one, joined by `/`.
    pub member: String,
    pub content_hash: ContentHash,
    pub byte_size: u64,
    pub result: Result<PreparedText, StageFailure>,
}

/// A file's own document and its embedded files (depth first, a parent before its children).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedFile {
    pub text: PreparedText,
    pub embedded: Vec<EmbeddedText>,
}

impl PreparedFile {
    /// Chunks of the file and its embedded files.
    pub fn chunk_count(&self) -> usize {
        let embedded = self.embedded.iter().filter_map(|e| e.result.as_ref().ok()).map(|t| t.chunks.len());
        self.text.chunks.len() + embedded.sum::<usize>()
    }
}

/// What the text stage cost, per stage.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct TextTimes {
    pub extract: StageCost,
    pub clean: StageCost,
    pub chunk: StageCost,
    pub enrich: StageCost,
}

impl TextStage {
    /// Reads the tokenizer from `settings` and refuses one other than the engine loaded (a
    /// worker process starts here).
    pub fn new(settings: &TextSettings) -> Result<Self, String> {
        let tokenizer = std::fs::read(&settings.tokenizer)
            .map_err(|err| format!("cannot read {}: {err}", settings.tokenizer.display()))?;
        if blake3::hash(&tokenizer).to_hex().as_str() != settings.tokenizer_blake3 {
            return Err(format!("{} changed since the model was loaded", settings.tokenizer.display()));
        }
        Self::with_tokenizer(settings, &tokenizer)
    }

    /// The stage over tokenizer bytes already read (and hashed into `settings`) by the engine.
    pub fn with_tokenizer(settings: &TextSettings, tokenizer_json: &[u8]) -> Result<Self, String> {
        let chunker = Chunker::new(tokenizer_json, settings.max_tokens, settings.overlap_tokens)
            .map_err(|err| err.to_string())?;
        let pii = match &settings.pii {
            None => None,
            Some((policy, patterns)) => {
                let policy = PiiPolicy::parse(policy).ok_or_else(|| format!("unknown PII policy {policy:?}"))?;
                Some((PiiDetector::new(patterns).map_err(|err| err.to_string())?, policy))
            }
        };
        Ok(Self { limits: settings.limits, chunker, quality: settings.quality, pii })
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Extracts `bytes` and prepares the text of the file and of every file embedded in it.
    /// A panic anywhere costs this file (`parser_panicked`), never the caller.
    pub fn prepare(&self, bytes: &[u8], file_name: &str) -> (Result<PreparedFile, StageFailure>, TextTimes) {
        let mut times = TextTimes::default();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.prepare_file(bytes, file_name, &mut times)))
            .unwrap_or_else(|panic| Err(StageFailure::new(Stage::Extract, "parser_panicked", panic_message(&panic))));
        (outcome, times)
    }

    fn prepare_file(&self, bytes: &[u8], file_name: &str, times: &mut TextTimes) -> Result<PreparedFile, StageFailure> {
        let meter = Meter::thread();
        let extracted =
            extract_file(bytes, file_name, &self.limits).map_err(sluice_extract::ExtractError::into_failure);
        times.extract = meter.stop();
        let ExtractedFile { document, children } = extracted?;
        let text = self.finish(document, &children, times)?;
        let mut embedded = Vec::new();
        self.prepare_embedded(children, "", times, &mut embedded);
        Ok(PreparedFile { text, embedded })
    }

    /// Quality check, cleaning and chunking of one extracted document.
    fn finish(
        &self,
        document: ExtractedDocument,
        children: &[ExtractedChild],
        times: &mut TextTimes,
    ) -> Result<PreparedText, StageFailure> {
        let meter = Meter::thread();
        // A container with no text of its own (a mailbox) is kept, chunkless, for its children.
        let container = document.blocks.is_empty() && !children.is_empty();
        if !container {
            sluice_transform::quality::check(&document, &self.quality)
                .map_err(|failure| StageFailure::new(Stage::Clean, failure.reason, failure.detail))?;
        }
        let mut metadata = sluice_extract::metadata::describe(&document);
        let normalized = sluice_transform::normalize(document);
        times.clean.add(meter.stop());
        if normalized.text.trim().is_empty() && !container {
            return Err(StageFailure::new(Stage::Clean, "empty", "no text left after cleaning"));
        }

        let meter = Meter::thread();
        let chunks = self
            .chunker
            .chunk(&normalized)
            .map_err(|err| StageFailure::new(Stage::Chunk, "tokenizer_error", err.to_string()))?;
        let title = normalized.title.as_deref().map(|title| title.chars().take(MAX_TITLE_CHARS).collect::<String>());
        let (chunks, title, pii) = match &self.pii {
            Some((detector, policy)) => {
                let redacted = redact::redact(detector, *policy, &normalized.text, chunks);
                let title = title.map(|title| redact::redact_text(detector, *policy, &title));
                // Authors and recipients are addresses as often as names.
                let redact_all = |values: &mut Vec<String>| {
                    for value in values.iter_mut() {
                        *value = redact::redact_text(detector, *policy, value);
                    }
                };
                redact_all(&mut metadata.authors);
                redact_all(&mut metadata.recipients);
                metadata.subject = metadata.subject.map(|subject| redact::redact_text(detector, *policy, &subject));
                (redacted.chunks, title, redacted.counts)
            }
            None => (chunks, title, BTreeMap::new()),
        };
        // The PII stage is counted with chunking: it works on the chunks before they leave.
        times.chunk.add(meter.stop());
        let meter = Meter::thread();
        let mut chunks = chunks;
        let language = sluice_transform::enrich::detect_languages(&mut chunks);
        let minhash = Signature::of(&normalized.text).map(|signature| signature.to_bytes());
        times.enrich.add(meter.stop());
        Ok(PreparedText {
            text_hash: normalized.text_hash,
            format: normalized.format,
            title,
            page_count: normalized.page_count,
            chunks,
            embedded_files: u32::try_from(children.len()).unwrap_or(u32::MAX),
            pii,
            language,
            metadata,
            minhash,
        })
    }

    /// Prepares embedded files depth first, each under its member path below `parent`.
    fn prepare_embedded(
        &self,
        children: Vec<ExtractedChild>,
        parent: &str,
        times: &mut TextTimes,
        embedded: &mut Vec<EmbeddedText>,
    ) {
        for child in children {
            let member = if parent.is_empty() { child.name } else { format!("{parent}/{}", child.name) };
            let (result, grandchildren) = match child.outcome {
                Ok(ExtractedFile { document, children }) => (self.finish(document, &children, times), children),
                Err(failure) => (Err(failure), Vec::new()),
            };
            // A child that failed takes its own embedded files with it, as a file does.
            let grandchildren = if result.is_ok() { grandchildren } else { Vec::new() };
            embedded.push(EmbeddedText {
                member: member.clone(),
                content_hash: child.content_hash,
                byte_size: child.byte_size,
                result,
            });
            self.prepare_embedded(grandchildren, &member, times, embedded);
        }
    }
}
