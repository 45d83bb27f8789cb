//! Per-file work before dedup and embedding, on the daemon's side: open the file exactly as
//! the scan saw it (`source.rs`), take its readers from that descriptor, hash it, then reuse
//! the chunks made from the same bytes before, or hand the bytes to the text stage (`text.rs`,
//! in a parser worker). Nothing here touches the indexes; a failure is returned for
//! quarantine. What a prepared document holds counts against the run's budget (`ahead.rs`)
//! before its chunks are read or loaded.

use std::collections::BTreeMap;

use sluice_core::{Acl, Chunk, ContentHash, DocumentMetadata, Stage, StageFailure, TextHash};
use sluice_store::{Catalog, InFlight, StageCost, StageFingerprints};

use crate::access::AccessResolver;
use crate::ahead::{Budget, Charged};
use crate::failpoint;
use crate::meter::Meter;
use crate::parsers::{AnswerSize, FileBytes, Parsed, Parsers};
use crate::scan::{DiskFile, Root};
use crate::source::{FileKind, OpenError, READ_BUFFER, SourceFile};
use crate::text::{PreparedFile, PreparedText};

/// A document whose chunks weigh this much (its share of the budget) is taken on under an
/// in-flight record (`sluice_store::InFlight`): large enough to be what brought the daemon
/// down if it stops meanwhile.
pub(crate) const IN_FLIGHT_RECORD_BYTES: u64 = 16 << 20;
/// Room counted per chunk besides its text: its vector and what writing it costs.
const PER_CHUNK_OVERHEAD_BYTES: u64 = 1024;

/// What one file (its embedded files included) cost in each stage before dedup.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub read: StageCost,
    pub extract: StageCost,
    pub clean: StageCost,
    pub chunk: StageCost,
    pub enrich: StageCost,
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
    /// ISO 639-3 code of its language.
    pub language: Option<String>,
    /// What it says about itself; the file's own times are added when it is placed.
    pub metadata: DocumentMetadata,
    /// Its MinHash signature (little-endian bytes), if it has enough words.
    pub minhash: Option<Vec<u8>>,
}

impl PreparedDocument {
    fn new(text: PreparedText, content_hash: ContentHash, byte_size: u64) -> Self {
        Self {
            content_hash,
            byte_size,
            text_hash: text.text_hash,
            format: text.format,
            title: text.title,
            page_count: text.page_count,
            chunks: text.chunks,
            reused: false,
            embedded_files: text.embedded_files,
            pii: text.pii,
            language: text.language,
            metadata: text.metadata,
            minhash: text.minhash,
        }
    }
}

/// A file embedded in the prepared one, at any depth.
#[derive(Clone, Debug)]
pub struct PreparedEmbedded {
    /// Names from the file down to this one, joined by `/`.
    pub member: String,
    pub content_hash: ContentHash,
    pub result: Result<PreparedDocument, StageFailure>,
}

/// How preparing a file ended.
pub enum PrepareOutcome {
    Ready(Box<PreparedDocument>),
    /// Quarantine it (with its content hash when its bytes were read).
    Failed(Option<ContentHash>, StageFailure),
    /// It is not the file the scan saw any more (replaced, swapped for a link or a FIFO,
    /// written to meanwhile): nothing of it was used; the next run looks again.
    Changed(String),
}

pub struct Prepared {
    pub outcome: PrepareOutcome,
    /// Embedded files, depth first (a parent before its children); empty unless `Ready`.
    pub embedded: Vec<PreparedEmbedded>,
    pub times: StageTimes,
    /// The readers, from the descriptor the bytes were read from.
    pub readers: Option<Acl>,
    /// Budget bytes held until the document is written.
    pub charge: u64,
    /// Whether an in-flight record was written for it (cleared once it is written).
    pub in_flight: bool,
}

impl Charged for Prepared {
    fn charge(&self) -> u64 {
        self.charge
    }
}

pub struct PrepareContext<'a> {
    pub pipeline: &'a str,
    pub catalog: &'a dyn Catalog,
    pub fingerprints: &'a StageFingerprints,
    pub max_file_bytes: u64,
    pub parsers: &'a Parsers,
    pub access: &'a AccessResolver,
    pub budget: &'a Budget,
    pub run_id: &'a str,
}

/// A file to prepare: where it is, what the scan saw, and whether a crash already decided it.
pub struct PrepareInput<'t> {
    pub index: usize,
    pub root: &'t Root,
    pub rel_path: &'t str,
    pub disk: &'t DiskFile,
    /// Quarantine without reading (a file that was in the daemon's hands when it crashed).
    pub verdict: Option<&'t StageFailure>,
}

pub fn prepare(context: &PrepareContext<'_>, input: &PrepareInput<'_>) -> Prepared {
    let mut prepared = Prepared {
        outcome: PrepareOutcome::Changed(String::new()),
        embedded: Vec::new(),
        times: StageTimes::default(),
        readers: None,
        charge: 0,
        in_flight: false,
    };
    prepared.outcome = prepare_file(context, input, &mut prepared);
    if !matches!(prepared.outcome, PrepareOutcome::Ready(_)) {
        prepared.embedded.clear();
    }
    prepared
}

fn prepare_file(context: &PrepareContext<'_>, input: &PrepareInput<'_>, prepared: &mut Prepared) -> PrepareOutcome {
    if let Some(verdict) = input.verdict {
        return PrepareOutcome::Failed(None, verdict.clone());
    }
    let disk = input.disk;
    if let FileKind::Special(what) = disk.stat.kind {
        let detail = format!("{what}, not a regular file: never opened");
        return PrepareOutcome::Failed(None, StageFailure::new(Stage::Read, "not_a_regular_file", detail));
    }
    if let Some(why) = &disk.unreadable {
        return PrepareOutcome::Failed(None, StageFailure::new(Stage::Read, "io_error", why.clone()));
    }
    if disk.size() > context.max_file_bytes {
        let detail =
            format!("{} bytes, over the limit of {} (limits.max_file_bytes)", disk.size(), context.max_file_bytes);
        return PrepareOutcome::Failed(None, StageFailure::new(Stage::Read, "too_large", detail));
    }

    failpoint::pause("before_read", input.rel_path);
    let meter = Meter::thread();
    let file = match SourceFile::open_as_scanned(&input.root.path, input.rel_path, disk.identity()) {
        Ok(file) => file,
        Err(OpenError::Changed(why)) => return PrepareOutcome::Changed(why),
        Err(OpenError::Unreadable(err)) => {
            return PrepareOutcome::Failed(None, StageFailure::new(Stage::Read, "io_error", err.to_string()));
        }
    };
    prepared.readers =
        Some(context.access.readers(&input.root.path, input.rel_path, file.stat.owner, file.acl_xattr().as_deref()));
    let (content_hash, small) = match file.hash(READ_BUFFER) {
        Ok(hashed) => hashed,
        Err(OpenError::Changed(why)) => return PrepareOutcome::Changed(why),
        Err(OpenError::Unreadable(err)) => {
            return PrepareOutcome::Failed(None, StageFailure::new(Stage::Read, "io_error", err.to_string()));
        }
    };
    prepared.times.read = meter.stop();
    let size = disk.size();
    let failed = |failure: StageFailure| PrepareOutcome::Failed(Some(content_hash), failure);
    let catalog_failure =
        |err: sluice_store::StoreError| StageFailure::new(Stage::Read, "catalog_error", err.to_string());

    match context.catalog.reusable_document(context.pipeline, content_hash, context.fingerprints) {
        Err(err) => return failed(catalog_failure(err)),
        Ok(Some(reusable)) => {
            let charge = reusable.text_bytes + reusable.chunks * PER_CHUNK_OVERHEAD_BYTES;
            if let Err(failure) = take_budget(context, input, charge, prepared) {
                return failed(failure);
            }
            let reused = match context.catalog.reusable_chunks(&reusable) {
                Ok(reused) => reused,
                Err(err) => return failed(catalog_failure(err)),
            };
            return PrepareOutcome::Ready(Box::new(PreparedDocument {
                content_hash,
                byte_size: size,
                text_hash: reused.text_hash,
                format: reused.format,
                title: reused.title,
                page_count: reused.page_count,
                chunks: reused.chunks,
                reused: true,
                embedded_files: 0,
                pii: reused.pii,
                language: reused.language,
                metadata: reused.metadata,
                minhash: reused.minhash,
            }));
        }
        Ok(None) => {}
    }

    let bytes = match &small {
        Some(bytes) => FileBytes::InMemory(bytes),
        None => FileBytes::Streamed { file: &file, expected: content_hash },
    };
    let file_name = input.rel_path.rsplit('/').next().unwrap_or(input.rel_path);
    let mut admit = |answer: AnswerSize| admit(context, input, answer, prepared);
    let (outcome, times) = match context.parsers.prepare(bytes, file_name, &mut admit) {
        Parsed::Done(outcome, times) => (*outcome, times),
        Parsed::Changed(why) => return PrepareOutcome::Changed(why),
    };
    prepared.times.extract = times.extract;
    prepared.times.clean = times.clean;
    prepared.times.chunk = times.chunk;
    prepared.times.enrich = times.enrich;
    let PreparedFile { text, embedded } = match outcome {
        Ok(file) => file,
        Err(failure) => return failed(failure),
    };
    prepared.embedded = embedded
        .into_iter()
        .map(|child| PreparedEmbedded {
            member: child.member,
            content_hash: child.content_hash,
            result: child.result.map(|text| PreparedDocument::new(text, child.content_hash, child.byte_size)),
        })
        .collect();
    PrepareOutcome::Ready(Box::new(PreparedDocument::new(text, content_hash, size)))
}

/// Takes a document's share of the run's budget (waiting for room): refuses a document that
/// alone needs more than the whole budget.
fn take_budget(
    context: &PrepareContext<'_>,
    input: &PrepareInput<'_>,
    charge: u64,
    prepared: &mut Prepared,
) -> Result<(), StageFailure> {
    if charge > context.budget.limit() {
        let detail = format!(
            "its chunks need {charge} bytes of the daemon's memory, over limits.max_buffered_bytes ({})",
            context.budget.limit()
        );
        return Err(StageFailure::new(Stage::Chunk, "limit_exceeded", detail));
    }
    if !context.budget.acquire(input.index, charge) {
        return Err(StageFailure::new(Stage::Chunk, "stopped", "the run ended first"));
    }
    prepared.charge = charge;
    Ok(())
}

/// Lets a parser's answer in before it is read: takes its share of the budget, and records a
/// large one as in flight.
fn admit(
    context: &PrepareContext<'_>,
    input: &PrepareInput<'_>,
    answer: AnswerSize,
    prepared: &mut Prepared,
) -> Result<(), StageFailure> {
    // The answer and what is parsed from it live together for a moment; then the chunks, and
    // later their vectors.
    let charge = answer.bytes.saturating_mul(2).saturating_add(answer.chunks.saturating_mul(PER_CHUNK_OVERHEAD_BYTES));
    take_budget(context, input, charge, prepared)?;
    if charge >= IN_FLIGHT_RECORD_BYTES {
        let record = InFlight {
            root: input.root.key.clone(),
            rel_path: input.rel_path.to_owned(),
            size: input.disk.size(),
            mtime_ns: input.disk.mtime_ns(),
            run_id: context.run_id.to_owned(),
            answer_bytes: answer.bytes,
            chunks: answer.chunks,
            started_at: 0,
        };
        context
            .catalog
            .record_in_flight(context.pipeline, &record)
            .map_err(|err| StageFailure::new(Stage::Extract, "catalog_error", err.to_string()))?;
        prepared.in_flight = true;
        failpoint::pause("in_flight_recorded", input.rel_path);
    }
    Ok(())
}
