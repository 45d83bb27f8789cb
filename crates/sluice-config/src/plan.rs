//! The validated pipeline plan and the one function that builds it from TOML.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_core::{DevicePreference, Precision};
use toml_edit::Document;

use crate::error::{ConfigError, ConfigErrors};
use crate::reader::{Diagnostics, Section};

/// The only pipeline file format version this build reads.
pub const FORMAT_VERSION: i64 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct PipelinePlan {
    /// Pipeline name: part of every document identity, and the name of its indexes.
    pub name: String,
    pub sources: Vec<SourcePlan>,
    pub watch: WatchPlan,
    pub limits: LimitsPlan,
    pub quality: QualityPlan,
    pub chunk: ChunkPlan,
    pub dedup: DedupPlan,
    pub embed: EmbedPlan,
    pub search: SearchPlan,
    pub retention: RetentionPlan,
    pub access: AccessPlan,
    pub pii: PiiPlan,
    pub eval: EvalPlan,
    pub audit: AuditPlan,
    pub server: ServerPlan,
    pub store: StorePlan,
}

/// A folder to index. Relative paths are resolved against the working directory.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlan {
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WatchPlan {
    /// Quiet time after the last file event before a version is cut.
    pub debounce: Duration,
    /// Full rescan interval, for mounts that deliver no events (NFS, SMB).
    pub reconcile_interval: Duration,
}

/// What one document may cost. A document over a limit is quarantined as `limit_exceeded`
/// (`parser_crashed` when its parser process dies); the run goes on.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsPlan {
    /// Files larger than this are quarantined without being read.
    pub max_file_bytes: u64,
    /// Pages (PDF), slides or sheets.
    pub max_pages: u32,
    /// Bytes the parts of a container (zip, MIME) may inflate to: the zip-bomb guard.
    pub max_decompressed_bytes: u64,
    /// Element nesting in XML parts.
    pub max_xml_depth: usize,
    /// Embedded files (attachments, messages of a mailbox) per document.
    pub max_children: usize,
    /// Levels of embedding followed (an attachment of an attached message is level 2).
    pub max_child_depth: usize,
    /// Wall-clock time to extract one file, its embedded files included.
    pub parse_timeout: Duration,
    /// Address space of a parser process; a parser that needs more is killed.
    pub parser_memory_bytes: u64,
    /// Whether parsers run in worker processes (`true`, the default) or in the daemon itself.
    pub isolate_parsers: bool,
    /// Characters of text one file may yield, its embedded files included.
    pub max_text_chars: u64,
    /// Bytes of prepared documents (chunk text and room for their vectors) the daemon holds
    /// between parsing and writing, all documents together. The oldest document is let
    /// through alone when it needs more, so the run never stalls.
    pub max_buffered_bytes: u64,
}

/// Thresholds a document's extracted text must meet to be indexed; failing documents are
/// quarantined with the check's reason code.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityPlan {
    /// `low_text_yield`: PDFs need at least this many characters per page on average.
    pub min_chars_per_page: f64,
    /// `garbled_text`: most of this fraction of characters may be U+FFFD (failed decoding).
    pub max_replacement_ratio: f64,
    /// `control_characters`: at most this fraction of control characters (tab and newline aside).
    pub max_control_ratio: f64,
    /// `unreadable_text`: at least this fraction of characters must be letters, digits,
    /// punctuation or spaces.
    pub min_readable_ratio: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChunkPlan {
    /// Chunk size in tokens of the model's tokenizer.
    pub max_tokens: usize,
    /// Tokens shared by consecutive chunks of a document.
    pub overlap_tokens: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbedPlan {
    /// Folder name of the model under the models directory.
    pub model: String,
    /// Token budget of one forward pass (tokens packed on CPU; padded batch size × sequence length
    /// on GPU); `None` leaves it to the device (see `Embedder::default_batch_tokens`).
    pub batch_tokens: Option<usize>,
    /// Where the model runs: `auto` (CUDA when built in and present, else CPU), `cpu`, `cuda`.
    pub device: DevicePreference,
    /// Number format: `auto` (f32 on CPU, f16 on GPU), `f32`, `f16`, `bf16` (the last two GPU only).
    pub precision: Precision,
    /// Whether the next documents are read, extracted and chunked while the model runs (default
    /// on). A GPU then never waits for the CPU stages; on a CPU-only machine, where both share the
    /// cores, it measured neutral (SciFact ingest on 2 cores, within noise).
    pub prepare_ahead: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchPlan {
    pub fusion: Fusion,
    /// Reciprocal rank fusion constant: score = Σ weight / (rrf_k + rank).
    pub rrf_k: u32,
    /// Candidates each retriever contributes before fusion.
    pub lexical_candidates: usize,
    pub dense_candidates: usize,
    /// Each retriever's weight in the fusion.
    pub lexical_weight: f64,
    pub dense_weight: f64,
    /// HNSW beam width of dense queries once the vector index is built.
    pub hnsw_ef: usize,
}

/// How hybrid search makes one ranking of the two retrievers' candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fusion {
    /// Each list's scores standardised (z-scores over its candidates), weighted and added; a
    /// chunk missing from a list counts as that list's lowest candidate.
    #[default]
    Scores,
    /// Weighted reciprocal rank fusion: Σ weight / (rrf_k + rank).
    Rrf,
}

impl Fusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Fusion::Scores => "scores",
            Fusion::Rrf => "rrf",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DedupPlan {
    /// What becomes of a document whose text is nearly another live document's.
    pub near_duplicates: NearDuplicates,
    /// Estimated Jaccard similarity of their 5-word shingles from which two documents are
    /// near-duplicates.
    pub near_threshold: f64,
}

/// What a near-duplicate of a live document (same readers) becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearDuplicates {
    /// Not looked for.
    Off,
    /// Indexed, with `duplicate_of` and the similarity recorded.
    Link,
    /// Recorded as a duplicate (`duplicate_of`, similarity), its chunks not indexed, as an
    /// exact duplicate is.
    Skip,
}

impl NearDuplicates {
    pub fn as_str(self) -> &'static str {
        match self {
            NearDuplicates::Off => "off",
            NearDuplicates::Link => "link",
            NearDuplicates::Skip => "skip",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPlan {
    /// Committed versions kept besides pinned ones and alias targets (the newest ones).
    pub keep_versions: usize,
}

/// Where a document's readers come from, and who may search without a token.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessPlan {
    pub source: AccessSource,
    /// Unauthenticated clients may search documents marked public (and nothing else).
    pub anonymous_search: bool,
    /// Captured principals renamed (`user:1001` → `user:alice`), applied before the rules.
    pub map: Vec<PrincipalMap>,
    /// Path rules, applied in order to every file they match.
    pub rules: Vec<AccessRule>,
    /// Whose permissions a search at an earlier version obeys.
    pub history: HistoryAccess,
}

/// Who may read a document through an earlier version (`version=N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistoryAccess {
    /// Readers of the version *and* of the file today: access revoked since is revoked in
    /// every version; a file gone from the share is visible in history to no reader.
    #[default]
    Current,
    /// Earlier versions only for operators and admins (as committed); readers get `live`.
    Operators,
    /// The readers each version was committed with (time travel answers as of then).
    AsCommitted,
}

impl HistoryAccess {
    pub const NAMES: &[&str] = &["current", "operators", "as-committed"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "current" => Some(Self::Current),
            "operators" => Some(Self::Operators),
            "as-committed" => Some(Self::AsCommitted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSource {
    /// POSIX owner, group and mode, and POSIX ACL extended attributes.
    Posix,
    /// Rules only; a file no rule covers is readable by every authenticated reader.
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrincipalMap {
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccessRule {
    /// A glob over the path relative to its source (`hr/**`, `*.pdf`).
    pub path: glob::Pattern,
    /// Principal keys added to the file's readers.
    pub readers: Vec<String>,
    /// Drop the captured readers first.
    pub replace: bool,
    /// Readable by anyone, anonymous readers included.
    pub public: bool,
}

/// The evaluation gate: a set, thresholds, and whether failing them holds a version back.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalPlan {
    /// A BEIR folder or a JSONL file; `None`: versions are not evaluated.
    pub set: Option<PathBuf>,
    /// The BEIR qrels split.
    pub split: String,
    /// How documents are named in the set: `stem`, `name` or `path`.
    pub document_key: String,
    /// A version failing a threshold is held (live stays where it is); else only reported.
    pub blocking: bool,
    pub thresholds: Vec<sluice_eval::Threshold>,
    /// Evaluate only the first N queries (0: all).
    pub max_queries: usize,
}

/// PII handling: what happens to chunks holding detected personal data.
#[derive(Clone, Debug, PartialEq)]
pub struct PiiPlan {
    pub policy: PiiPolicyPlan,
    /// Extra detectors: (name, regex).
    pub patterns: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PiiPolicyPlan {
    Off,
    Tag,
    Mask,
    DropChunk,
}

impl PiiPolicyPlan {
    pub const NAMES: &[&str] = &["off", "tag", "mask", "drop-chunk"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "tag" => Some(Self::Tag),
            "mask" => Some(Self::Mask),
            "drop-chunk" => Some(Self::DropChunk),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The audit log's key and rotation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditPlan {
    /// Where the chain's HMAC key comes from; `None`: the chain is hashed without a key.
    pub key: Option<AuditKeySource>,
    /// Entries kept in the catalog; older ones are moved to segment files under `audit/`.
    pub rotate_after_entries: u64,
    /// Days a rotated segment file is kept (0: for ever); its anchor row stays.
    pub keep_segment_days: u64,
}

/// A secret outside the data directory.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditKeySource {
    /// A file holding the key (64 hex digits or at least 32 bytes).
    File(PathBuf),
    /// The name of an environment variable holding it.
    Env(String),
}

/// Where the pipeline's catalog and vectors live (the lexical index is always on the node).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorePlan {
    pub vectors: VectorsPlan,
    pub catalog: CatalogPlan,
}

/// The catalog: a SQLite file in the data directory (the default) or a PostgreSQL database
/// that several nodes share.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum CatalogPlan {
    #[default]
    Sqlite,
    Postgres(PostgresPlan),
}

/// `[store.postgres]`: how to reach the catalog's database.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresPlan {
    /// The environment variable holding the connection string (it may carry a password, so
    /// it is never written in the pipeline file).
    pub url_env: String,
    /// The schema of the catalog's tables (created if missing).
    pub schema: String,
    /// Connections this node keeps open at most.
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// How long a node's claim on a file lasts without a heartbeat: a dead node's files wait
    /// this long before another node takes them.
    pub lease: Duration,
    /// How often a node says it is alive (and extends its leases); at most half the lease.
    pub heartbeat: Duration,
    /// Changed files a writer node claims per run (one version's worth): smaller shares
    /// spread a backlog across nodes sooner, larger ones make fewer versions.
    pub claim_batch: usize,
}

impl CatalogPlan {
    /// How nodes share the catalog (leases, heartbeat, claims): `[store.postgres]`'s settings,
    /// or their defaults on SQLite (one node).
    pub fn node_settings(&self) -> std::borrow::Cow<'_, PostgresPlan> {
        match self {
            CatalogPlan::Postgres(plan) => std::borrow::Cow::Borrowed(plan),
            CatalogPlan::Sqlite => std::borrow::Cow::Owned(PostgresPlan::default()),
        }
    }
}

impl Default for PostgresPlan {
    fn default() -> Self {
        Self {
            url_env: "SLUICE_POSTGRES_URL".into(),
            schema: "sluice".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            claim_batch: 256,
        }
    }
}

/// The vector index: Qdrant's engine in-process (the default) or a Qdrant server or cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum VectorsPlan {
    /// Qdrant Edge, under the data directory.
    #[default]
    Edge,
    /// A Qdrant server or cluster, through its gRPC API.
    Qdrant(QdrantPlan),
}

/// A Qdrant server: where it is, how to reach it, and the collection sluice creates there.
#[derive(Clone, Debug, PartialEq)]
pub struct QdrantPlan {
    /// The gRPC address (`http://host:6334`; `https://` for TLS, checked against the system's
    /// trust store).
    pub url: String,
    /// The environment variable holding the API key, if the server wants one.
    pub api_key_env: Option<String>,
    /// The pipeline's collection (default `sluice-<pipeline>`).
    pub collection: String,
    /// Time one request may take, and time to connect.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Passed through when sluice creates the collection (an existing one keeps its own).
    pub shards: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_vectors: bool,
    pub on_disk_payload: bool,
    pub quantization: Quantization,
}

/// Vector quantization in a Qdrant server's collection (the originals stay for rescoring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantization {
    #[default]
    None,
    /// Scalar int8, quantized vectors kept in memory.
    Int8,
    /// One bit per dimension, quantized vectors kept in memory.
    Binary,
}

impl Quantization {
    pub const NAMES: &[&str] = &["none", "int8", "binary"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "int8" => Some(Self::Int8),
            "binary" => Some(Self::Binary),
            _ => None,
        }
    }
}

/// The HTTP API and the limits that keep one client from starving the others.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerPlan {
    pub listen: SocketAddr,
    /// Open connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests one token may have in flight; more get 429.
    pub max_requests_per_token: usize,
    /// Searches running at once (each holds up to `k` hits in memory); more wait their turn.
    pub max_concurrent_searches: usize,
    /// Time a client has to send a request's headers (slowloris).
    pub header_timeout: Duration,
    /// Time one request may take, body included; exports, verify and gc get ten times this.
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Characters of a search query (and of any query string, times four).
    pub max_query_chars: usize,
}

pub(crate) fn build(file: &str, source: &str) -> Result<PipelinePlan, ConfigErrors> {
    let document = match Document::parse(source) {
        Ok(document) => document,
        Err(err) => {
            let mut diag = Diagnostics::new(file, source);
            diag.error(err.span(), format!("invalid TOML: {}", err.message().trim()));
            return Err(ConfigErrors(diag.into_sorted()));
        }
    };
    let mut diag = Diagnostics::new(file, source);
    let plan = read_plan(&mut diag, Section::new(document.as_table(), "", Some(0..0)));
    let errors = diag.into_sorted();
    if errors.is_empty() { Ok(plan) } else { Err(ConfigErrors(errors)) }
}

fn read_plan(diag: &mut Diagnostics<'_>, mut root: Section<'_>) -> PipelinePlan {
    read_format_version(diag, &mut root);
    let mut plan = PipelinePlan {
        name: read_name(diag, &mut root),
        sources: read_sources(diag, &mut root),
        watch: read_watch(diag, &mut root),
        limits: read_limits(diag, &mut root),
        quality: read_quality(diag, &mut root),
        chunk: read_chunk(diag, &mut root),
        dedup: read_dedup(diag, &mut root),
        embed: read_embed(diag, &mut root),
        search: read_search(diag, &mut root),
        retention: read_retention(diag, &mut root),
        access: read_access(diag, &mut root),
        pii: read_pii(diag, &mut root),
        eval: read_eval(diag, &mut root),
        audit: read_audit(diag, &mut root),
        server: read_server(diag, &mut root),
        store: StorePlan::default(),
    };
    // The default collection is named after the pipeline.
    plan.store = read_store(diag, &mut root, &plan.name);
    root.finish(diag);
    plan
}

fn read_format_version(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) {
    if !root.contains("version") {
        diag.error(Some(0..0), format!("missing `version = {FORMAT_VERSION}` (the pipeline file format version)"));
        return;
    }
    let version = root.integer(diag, "version", FORMAT_VERSION, i64::MIN, i64::MAX);
    if version != FORMAT_VERSION {
        let span = root.value_span("version");
        diag.error(
            span,
            format!("unsupported pipeline format version {version}; this build reads version {FORMAT_VERSION}"),
        );
    }
}

fn read_name(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> String {
    let Some((name, span)) = root.string(diag, "name") else {
        if !root.contains("name") {
            diag.error(Some(0..0), "missing `name`, the pipeline's name (e.g. name = \"default\")");
        }
        return String::new();
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        diag.error(span, format!("`name` must be 1-64 characters of a-z, 0-9, '-' or '_', got {name:?}"));
    }
    name
}

fn read_sources(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> Vec<SourcePlan> {
    let mut sources = Vec::new();
    for mut section in root.tables(diag, "source") {
        match section.string(diag, "path") {
            Some((path, span)) if path.trim().is_empty() => diag.error(span, "`path` of a source must not be empty"),
            Some((path, _)) => sources.push(SourcePlan { path: PathBuf::from(path) }),
            None if !section.contains("path") => {
                diag.error(section.span.clone(), "a [[source]] needs a `path`");
            }
            None => {}
        }
        section.finish(diag);
    }
    sources
}

fn read_watch(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> WatchPlan {
    let mut watch = root.table(diag, "watch");
    let plan = WatchPlan {
        debounce: Duration::from_millis(opt_integer(diag, &mut watch, "debounce_ms", 500, 0, 600_000) as u64),
        reconcile_interval: Duration::from_secs(opt_integer(
            diag,
            &mut watch,
            "reconcile_interval_secs",
            60,
            1,
            7 * 24 * 3600,
        ) as u64),
    };
    finish(diag, watch);
    plan
}

fn read_limits(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> LimitsPlan {
    let mut limits = root.table(diag, "limits");
    let plan = LimitsPlan {
        max_file_bytes: opt_integer(diag, &mut limits, "max_file_bytes", 256 << 20, 1, i64::MAX) as u64,
        max_pages: opt_integer(diag, &mut limits, "max_pages", 5_000, 1, u32::MAX.into()) as u32,
        max_decompressed_bytes: opt_integer(diag, &mut limits, "max_decompressed_bytes", 512 << 20, 1, i64::MAX) as u64,
        max_xml_depth: opt_integer(diag, &mut limits, "max_xml_depth", 256, 8, 100_000) as usize,
        max_children: opt_integer(diag, &mut limits, "max_children", 10_000, 0, 10_000_000) as usize,
        max_child_depth: opt_integer(diag, &mut limits, "max_child_depth", 3, 0, 16) as usize,
        parse_timeout: Duration::from_secs(opt_integer(diag, &mut limits, "parse_timeout_secs", 120, 1, 86_400) as u64),
        parser_memory_bytes: opt_integer(diag, &mut limits, "parser_memory_bytes", 4 << 30, 64 << 20, i64::MAX) as u64,
        isolate_parsers: limits.as_mut().and_then(|l| l.boolean(diag, "isolate_parsers")).unwrap_or(true),
        max_text_chars: opt_integer(diag, &mut limits, "max_text_chars", 8 << 20, 1, i64::MAX) as u64,
        max_buffered_bytes: opt_integer(diag, &mut limits, "max_buffered_bytes", 128 << 20, 1 << 20, i64::MAX) as u64,
    };
    finish(diag, limits);
    plan
}

fn read_quality(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> QualityPlan {
    let mut quality = root.table(diag, "quality");
    let mut number = |key, default, max| match quality.as_mut() {
        Some(section) => section.float(diag, key, default, 0.0, max),
        None => default,
    };
    let plan = QualityPlan {
        min_chars_per_page: number("min_chars_per_page", 8.0, 1e6),
        max_replacement_ratio: number("max_replacement_ratio", 0.05, 1.0),
        max_control_ratio: number("max_control_ratio", 0.05, 1.0),
        min_readable_ratio: number("min_readable_ratio", 0.6, 1.0),
    };
    finish(diag, quality);
    plan
}

fn read_chunk(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> ChunkPlan {
    let mut chunk = root.table(diag, "chunk");
    let max_tokens = opt_integer(diag, &mut chunk, "max_tokens", 200, 4, 8192) as usize;
    let overlap_tokens = opt_integer(diag, &mut chunk, "overlap_tokens", 32, 0, 8192) as usize;
    if overlap_tokens >= max_tokens {
        let span = chunk.as_ref().and_then(|c| c.value_span("overlap_tokens"));
        diag.error(
            span,
            format!("`chunk.overlap_tokens` ({overlap_tokens}) must be smaller than `chunk.max_tokens` ({max_tokens})"),
        );
    }
    finish(diag, chunk);
    ChunkPlan { max_tokens, overlap_tokens }
}

fn read_embed(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> EmbedPlan {
    let mut embed = root.table(diag, "embed");
    let model = match embed.as_mut().and_then(|e| e.string(diag, "model")) {
        Some((model, span)) => {
            let valid = !model.is_empty()
                && model.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid {
                diag.error(span, format!("`embed.model` must name a folder under models/, got {model:?}"));
            }
            model
        }
        None => "all-minilm-l6-v2".to_owned(),
    };
    let batch_tokens = embed.as_mut().is_some_and(|e| e.has("batch_tokens"));
    let batch_tokens = batch_tokens.then(|| opt_integer(diag, &mut embed, "batch_tokens", 0, 256, 1 << 22) as usize);
    let device =
        opt_choice(diag, &mut embed, "embed.device", "device", DevicePreference::NAMES, DevicePreference::parse);
    let precision = opt_choice(diag, &mut embed, "embed.precision", "precision", Precision::NAMES, Precision::parse);
    let prepare_ahead = embed.as_mut().and_then(|e| e.boolean(diag, "prepare_ahead"));
    finish(diag, embed);
    EmbedPlan {
        model,
        batch_tokens,
        device: device.unwrap_or_default(),
        precision: precision.unwrap_or_default(),
        prepare_ahead: prepare_ahead.unwrap_or(true),
    }
}

/// One of a fixed set of names from an optional section, parsed; `None` when absent or wrong.
fn opt_choice<T>(
    diag: &mut Diagnostics<'_>,
    section: &mut Option<Section<'_>>,
    qualified: &str,
    key: &'static str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let (text, span) = section.as_mut()?.string(diag, key)?;
    let parsed = parse(&text);
    if parsed.is_none() {
        diag.error(span, format!("`{qualified}` must be one of {}, got {text:?}", names.join(", ")));
    }
    parsed
}

fn read_search(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> SearchPlan {
    let mut search = root.table(diag, "search");
    // `candidates` sets both retrievers; `lexical_candidates` and `dense_candidates` override it.
    let candidates = opt_integer(diag, &mut search, "candidates", 200, 1, 10_000);
    let fusion = opt_choice(diag, &mut search, "search.fusion", "fusion", &["\"scores\"", "\"rrf\""], |text| {
        [Fusion::Scores, Fusion::Rrf].into_iter().find(|fusion| fusion.as_str() == text)
    })
    .unwrap_or_default();
    let mut weight = |key, default, diag: &mut Diagnostics<'_>| match search.as_mut() {
        Some(section) => section.float(diag, key, default, 0.0, 1_000.0),
        None => default,
    };
    let (lexical_weight, dense_weight) = (weight("lexical_weight", 0.45, diag), weight("dense_weight", 0.55, diag));
    let plan = SearchPlan {
        fusion,
        rrf_k: opt_integer(diag, &mut search, "rrf_k", 60, 1, 10_000) as u32,
        lexical_candidates: opt_integer(diag, &mut search, "lexical_candidates", candidates, 1, 10_000) as usize,
        dense_candidates: opt_integer(diag, &mut search, "dense_candidates", candidates, 1, 10_000) as usize,
        lexical_weight,
        dense_weight,
        hnsw_ef: opt_integer(diag, &mut search, "hnsw_ef", 256, 1, 100_000) as usize,
    };
    finish(diag, search);
    plan
}

fn read_dedup(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> DedupPlan {
    let mut dedup = root.table(diag, "dedup");
    let near_duplicates = opt_choice(
        diag,
        &mut dedup,
        "dedup.near_duplicates",
        "near_duplicates",
        &["\"off\"", "\"link\"", "\"skip\""],
        |text| {
            [NearDuplicates::Off, NearDuplicates::Link, NearDuplicates::Skip].into_iter().find(|n| n.as_str() == text)
        },
    )
    .unwrap_or(NearDuplicates::Link);
    let near_threshold = match dedup.as_mut() {
        Some(section) => section.float(diag, "near_threshold", 0.8, 0.5, 1.0),
        None => 0.8,
    };
    finish(diag, dedup);
    DedupPlan { near_duplicates, near_threshold }
}

fn read_retention(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> RetentionPlan {
    let mut retention = root.table(diag, "retention");
    let plan =
        RetentionPlan { keep_versions: opt_integer(diag, &mut retention, "keep_versions", 10, 1, 1_000_000) as usize };
    finish(diag, retention);
    plan
}

fn read_access(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> AccessPlan {
    let mut access = root.table(diag, "access");
    let source = match access.as_mut().and_then(|a| a.string(diag, "source")) {
        Some((text, _)) if text == "posix" => AccessSource::Posix,
        Some((text, _)) if text == "none" => AccessSource::None,
        Some((text, span)) => {
            diag.error(span, format!("`access.source` must be \"posix\" or \"none\", got {text:?}"));
            AccessSource::Posix
        }
        None => AccessSource::Posix,
    };
    let anonymous_search = access.as_mut().and_then(|a| a.boolean(diag, "anonymous_search")).unwrap_or(false);
    let mut map = Vec::new();
    let mut rules = Vec::new();
    if let Some(section) = access.as_mut() {
        for mut entry in section.tables(diag, "map") {
            let from = entry.string(diag, "from");
            let to = entry.strings(diag, "to");
            match (from, to) {
                (Some((from, span)), Some((to, _))) => {
                    check_principals(diag, span, std::slice::from_ref(&from));
                    map.push(PrincipalMap { from, to });
                }
                _ => diag.error(entry.span.clone(), "an [[access.map]] needs `from` (a principal) and `to` (a list)"),
            }
            entry.finish(diag);
        }
        for mut entry in section.tables(diag, "rule") {
            let path = match entry.string(diag, "path") {
                Some((text, span)) => glob::Pattern::new(&text)
                    .map_err(|err| diag.error(span, format!("`path` {text:?} is not a valid glob: {err}")))
                    .ok(),
                None => {
                    diag.error(entry.span.clone(), "an [[access.rule]] needs a `path` glob");
                    None
                }
            };
            let readers = match entry.strings(diag, "readers") {
                Some((readers, span)) => {
                    check_principals(diag, span, &readers);
                    readers
                }
                None => Vec::new(),
            };
            let replace = entry.boolean(diag, "replace").unwrap_or(false);
            let public = entry.boolean(diag, "public").unwrap_or(false);
            if let Some(path) = path {
                rules.push(AccessRule { path, readers, replace, public });
            }
            entry.finish(diag);
        }
    }
    let history =
        opt_choice(diag, &mut access, "access.history", "history", HistoryAccess::NAMES, HistoryAccess::parse);
    finish(diag, access);
    AccessPlan { source, anonymous_search, map, rules, history: history.unwrap_or_default() }
}

/// Principal keys are `user:NAME`, `group:NAME`, `everyone` or `public`.
fn check_principals(diag: &mut Diagnostics<'_>, span: Option<std::ops::Range<usize>>, keys: &[String]) {
    for key in keys {
        let valid = key == sluice_core::EVERYONE
            || key == sluice_core::PUBLIC
            || ["user:", "group:"].iter().any(|prefix| key.strip_prefix(prefix).is_some_and(|name| !name.is_empty()));
        if !valid {
            diag.error(
                span.clone(),
                format!("{key:?} is not a principal (expected user:NAME, group:NAME, everyone or public)"),
            );
        }
    }
}

fn read_pii(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> PiiPlan {
    let mut pii = root.table(diag, "pii");
    let policy = opt_choice(diag, &mut pii, "pii.policy", "policy", PiiPolicyPlan::NAMES, PiiPolicyPlan::parse);
    let mut patterns = Vec::new();
    if let Some(section) = pii.as_mut() {
        for mut entry in section.tables(diag, "pattern") {
            match (entry.string(diag, "name"), entry.string(diag, "regex")) {
                (Some((name, span)), Some(_))
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    diag.error(span, format!("a pii pattern name must be letters, digits or '_', got {name:?}"));
                }
                (Some((name, _)), Some((regex, span))) => match regex::Regex::new(&regex) {
                    Ok(_) => patterns.push((name, regex)),
                    Err(err) => {
                        // The regex crate's message draws a caret over the pattern; keep its last line.
                        let message = err.to_string();
                        let last = message.lines().last().unwrap_or_default().trim_start_matches("error: ");
                        diag.error(span, format!("pii pattern {name:?} is not a valid regex: {last}"));
                    }
                },
                _ => diag.error(entry.span.clone(), "a [[pii.pattern]] needs a `name` and a `regex`"),
            }
            entry.finish(diag);
        }
    }
    finish(diag, pii);
    PiiPlan { policy: policy.unwrap_or(PiiPolicyPlan::Tag), patterns }
}

fn read_eval(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> EvalPlan {
    let mut eval = root.table(diag, "eval");
    let mut plan = EvalPlan {
        set: None,
        split: "test".into(),
        document_key: "stem".into(),
        blocking: true,
        thresholds: Vec::new(),
        max_queries: opt_integer(diag, &mut eval, "max_queries", 0, 0, 10_000_000) as usize,
    };
    if let Some(section) = eval.as_mut() {
        plan.set = section.string(diag, "set").map(|(path, _)| PathBuf::from(path));
        if let Some((split, _)) = section.string(diag, "split") {
            plan.split = split;
        }
        if let Some((key, span)) = section.string(diag, "document_key") {
            if !["stem", "name", "path"].contains(&key.as_str()) {
                diag.error(span, format!("`eval.document_key` must be stem, name or path, got {key:?}"));
            }
            plan.document_key = key;
        }
        match section.string(diag, "gate") {
            Some((gate, _)) if gate == "block" => plan.blocking = true,
            Some((gate, _)) if gate == "report" => plan.blocking = false,
            Some((gate, span)) => {
                diag.error(span, format!("`eval.gate` must be \"block\" or \"report\", got {gate:?}"))
            }
            None => {}
        }
        for mut entry in section.tables(diag, "threshold") {
            let complete = ["metric", "retriever", "min"].iter().all(|key| entry.contains(key));
            let metric = entry.string(diag, "metric").and_then(|(text, span)| {
                text.parse::<sluice_eval::Metric>().map_err(|err| diag.error(span, err.to_string())).ok()
            });
            let retriever = entry.string(diag, "retriever").and_then(|(text, span)| {
                text.parse::<sluice_eval::Retriever>().map_err(|err| diag.error(span, err.to_string())).ok()
            });
            let min = entry.float(diag, "min", f64::NAN, 0.0, 1.0);
            match (metric, retriever) {
                (Some(metric), Some(retriever)) if !min.is_nan() => {
                    plan.thresholds.push(sluice_eval::Threshold { metric, retriever, min });
                }
                // A present but invalid value has been reported already.
                _ if complete => {}
                _ => diag.error(entry.span.clone(), "an [[eval.threshold]] needs `metric`, `retriever` and `min`"),
            }
            entry.finish(diag);
        }
    }
    if plan.set.is_none() && !plan.thresholds.is_empty() {
        let span = eval.as_ref().and_then(|e| e.span.clone());
        diag.error(span, "`eval.threshold` needs `eval.set`, the evaluation set to measure");
    }
    finish(diag, eval);
    plan
}

fn read_audit(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> AuditPlan {
    let mut audit = root.table(diag, "audit");
    let key_file = audit.as_mut().and_then(|a| a.string(diag, "key_file"));
    let key_env = audit.as_mut().and_then(|a| a.string(diag, "key_env"));
    let key = match (key_file, key_env) {
        (Some(_), Some((_, span))) => {
            diag.error(span, "set one of `audit.key_file` and `audit.key_env`, not both");
            None
        }
        (Some((path, span)), None) if path.trim().is_empty() => {
            diag.error(span, "`audit.key_file` must not be empty");
            None
        }
        (Some((path, _)), None) => Some(AuditKeySource::File(PathBuf::from(path))),
        (None, Some((name, span))) if name.is_empty() || name.contains('=') => {
            diag.error(span, format!("`audit.key_env` must name an environment variable, got {name:?}"));
            None
        }
        (None, Some((name, _))) => Some(AuditKeySource::Env(name)),
        (None, None) => None,
    };
    let plan = AuditPlan {
        key,
        rotate_after_entries: opt_integer(diag, &mut audit, "rotate_after_entries", 1_000_000, 1_000, i64::MAX) as u64,
        keep_segment_days: opt_integer(diag, &mut audit, "keep_segment_days", 0, 0, 1_000_000) as u64,
    };
    finish(diag, audit);
    plan
}

fn read_server(diag: &mut Diagnostics<'_>, root: &mut Section<'_>) -> ServerPlan {
    let mut server = root.table(diag, "server");
    let default: SocketAddr = ([127, 0, 0, 1], 7878).into();
    let listen = match server.as_mut().and_then(|s| s.string(diag, "listen")) {
        Some((text, span)) => text.parse().unwrap_or_else(|_| {
            diag.error(span, format!("`server.listen` must be an address like \"127.0.0.1:7878\", got {text:?}"));
            default
        }),
        None => default,
    };
    let secs = |value: i64| Duration::from_secs(value as u64);
    let plan = ServerPlan {
        listen,
        max_connections: opt_integer(diag, &mut server, "max_connections", 256, 1, 1_000_000) as usize,
        max_requests_per_token: opt_integer(diag, &mut server, "max_requests_per_token", 16, 1, 100_000) as usize,
        max_concurrent_searches: opt_integer(diag, &mut server, "max_concurrent_searches", 8, 1, 10_000) as usize,
        header_timeout: secs(opt_integer(diag, &mut server, "header_timeout_secs", 10, 1, 3_600)),
        request_timeout: secs(opt_integer(diag, &mut server, "request_timeout_secs", 60, 1, 86_400)),
        max_body_bytes: opt_integer(diag, &mut server, "max_body_bytes", 64 << 10, 1_024, 1 << 30) as usize,
        max_query_chars: opt_integer(diag, &mut server, "max_query_chars", 2_048, 16, 1 << 20) as usize,
    };
    finish(diag, server);
    plan
}

/// `[store]`: where the vectors and the catalog live (the lexical index stays in the data
/// directory).
fn read_store(diag: &mut Diagnostics<'_>, root: &mut Section<'_>, pipeline: &str) -> StorePlan {
    let mut store = root.table(diag, "store");
    let catalog = read_catalog(diag, &mut store);
    let backend = store.as_mut().and_then(|s| s.string(diag, "vectors"));
    let store_span = store.as_ref().and_then(|s| s.span.clone());
    let mut qdrant = store.as_mut().and_then(|s| s.table(diag, "qdrant"));
    let wants_server = backend.as_ref().is_some_and(|(name, _)| name == "qdrant");
    let vectors = match backend {
        None => VectorsPlan::Edge,
        Some((name, _)) if name == "edge" => VectorsPlan::Edge,
        Some((name, _)) if name == "qdrant" => match read_qdrant(diag, &mut qdrant, store_span, pipeline) {
            Some(plan) => VectorsPlan::Qdrant(plan),
            None => VectorsPlan::Edge,
        },
        Some((name, span)) => {
            diag.error(span, format!("`store.vectors` must be \"edge\" or \"qdrant\", got {name:?}"));
            VectorsPlan::Edge
        }
    };
    if !wants_server && let Some(section) = &qdrant {
        diag.error(section.span.clone(), "[store.qdrant] is read only with `store.vectors = \"qdrant\"`");
    }
    finish(diag, qdrant);
    finish(diag, store);
    StorePlan { vectors, catalog }
}

/// `[store] catalog` and `[store.postgres]`.
fn read_catalog(diag: &mut Diagnostics<'_>, store: &mut Option<Section<'_>>) -> CatalogPlan {
    let engine = store.as_mut().and_then(|s| s.string(diag, "catalog"));
    let mut postgres = store.as_mut().and_then(|s| s.table(diag, "postgres"));
    let wants_postgres = engine.as_ref().is_some_and(|(name, _)| name == "postgres");
    let plan = match engine {
        None => CatalogPlan::Sqlite,
        Some((name, _)) if name == "sqlite" => CatalogPlan::Sqlite,
        Some((name, _)) if name == "postgres" => {
            let mut section = postgres.take();
            let plan = read_postgres(diag, &mut section);
            postgres = section;
            CatalogPlan::Postgres(plan)
        }
        Some((name, span)) => {
            diag.error(span, format!("`store.catalog` must be \"sqlite\" or \"postgres\", got {name:?}"));
            CatalogPlan::Sqlite
        }
    };
    if !wants_postgres && let Some(section) = &postgres {
        diag.error(section.span.clone(), "[store.postgres] is read only with `store.catalog = \"postgres\"`");
    }
    finish(diag, postgres);
    plan
}

/// `[store.postgres]`; every key has a default.
fn read_postgres(diag: &mut Diagnostics<'_>, section: &mut Option<Section<'_>>) -> PostgresPlan {
    let mut plan = PostgresPlan::default();
    let Some(postgres) = section.as_mut() else { return plan };
    match postgres.string(diag, "url_env") {
        Some((name, span)) if name.is_empty() || name.contains('=') => {
            diag.error(span, format!("`store.postgres.url_env` must name an environment variable, got {name:?}"));
        }
        Some((name, _)) => plan.url_env = name,
        None => {}
    }
    match postgres.string(diag, "schema") {
        Some((name, span))
            if name.is_empty()
                || name.len() > 63
                || !name.starts_with(|c: char| c.is_ascii_lowercase())
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            diag.error(
                span,
                format!("`store.postgres.schema` must be 1-63 of a-z, 0-9, '_', starting with a letter, got {name:?}"),
            );
        }
        Some((name, _)) => plan.schema = name,
        None => {}
    }
    plan.pool_size = postgres.integer(diag, "pool_size", 16, 2, 1_000) as u32;
    plan.connect_timeout = Duration::from_secs(postgres.integer(diag, "connect_timeout_secs", 10, 1, 600) as u64);
    plan.lease = Duration::from_secs(postgres.integer(diag, "lease_secs", 30, 2, 3_600) as u64);
    plan.heartbeat = Duration::from_secs(postgres.integer(diag, "heartbeat_secs", 5, 1, 1_800) as u64);
    plan.claim_batch = postgres.integer(diag, "claim_batch", 256, 1, 100_000) as usize;
    if plan.heartbeat * 2 > plan.lease {
        // A heartbeat or two may be late (a busy node, a slow database) without losing claims.
        diag.error(
            postgres.span.clone(),
            format!(
                "`store.postgres.heartbeat_secs` ({}) must be at most half of `lease_secs` ({})",
                plan.heartbeat.as_secs(),
                plan.lease.as_secs()
            ),
        );
    }
    plan
}

/// `[store.qdrant]`; `None` (with an error) without a usable `url`.
fn read_qdrant(
    diag: &mut Diagnostics<'_>,
    section: &mut Option<Section<'_>>,
    store_span: Option<std::ops::Range<usize>>,
    pipeline: &str,
) -> Option<QdrantPlan> {
    let Some(qdrant) = section.as_mut() else {
        diag.error(store_span, "`store.vectors = \"qdrant\"` needs a [store.qdrant] table with its `url`");
        return None;
    };
    let url = match qdrant.string(diag, "url") {
        Some((url, _)) if url.starts_with("http://") || url.starts_with("https://") => Some(url),
        Some((url, span)) => {
            diag.error(span, format!("`store.qdrant.url` must start with http:// or https://, got {url:?}"));
            None
        }
        None => {
            if !qdrant.contains("url") {
                diag.error(qdrant.span.clone(), "[store.qdrant] needs the server's gRPC `url`");
            }
            None
        }
    };
    let api_key_env = match qdrant.string(diag, "api_key_env") {
        Some((name, span)) if name.is_empty() || name.contains('=') => {
            diag.error(span, format!("`store.qdrant.api_key_env` must name an environment variable, got {name:?}"));
            None
        }
        other => other.map(|(name, _)| name),
    };
    let collection = match qdrant.string(diag, "collection") {
        Some((name, span)) => {
            let valid = !name.is_empty()
                && name.len() <= 255
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                diag.error(
                    span,
                    format!("`store.qdrant.collection` must be 1-255 of a-z, A-Z, 0-9, '-', '_', got {name:?}"),
                );
            }
            name
        }
        None => format!("sluice-{pipeline}"),
    };
    let secs = |value: i64| Duration::from_secs(value as u64);
    let quantization = match qdrant.string(diag, "quantization") {
        None => Quantization::None,
        Some((name, span)) => Quantization::parse(&name).unwrap_or_else(|| {
            let names = Quantization::NAMES.join("\", \"");
            diag.error(span, format!("`store.qdrant.quantization` must be one of \"{names}\", got {name:?}"));
            Quantization::None
        }),
    };
    let plan = QdrantPlan {
        url: url.unwrap_or_default(),
        api_key_env,
        collection,
        timeout: secs(qdrant.integer(diag, "timeout_secs", 30, 1, 3_600)),
        connect_timeout: secs(qdrant.integer(diag, "connect_timeout_secs", 5, 1, 600)),
        shards: qdrant.integer(diag, "shards", 1, 1, 1_000) as u32,
        replication_factor: qdrant.integer(diag, "replication_factor", 1, 1, 100) as u32,
        write_consistency_factor: qdrant.integer(diag, "write_consistency_factor", 1, 1, 100) as u32,
        on_disk_vectors: qdrant.boolean(diag, "on_disk_vectors").unwrap_or(false),
        on_disk_payload: qdrant.boolean(diag, "on_disk_payload").unwrap_or(true),
        quantization,
    };
    (!plan.url.is_empty()).then_some(plan)
}

/// An integer from an optional section.
fn opt_integer(
    diag: &mut Diagnostics<'_>,
    section: &mut Option<Section<'_>>,
    key: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> i64 {
    match section {
        Some(section) => section.integer(diag, key, default, min, max),
        None => default,
    }
}

fn finish(diag: &mut Diagnostics<'_>, section: Option<Section<'_>>) {
    if let Some(section) = section {
        section.finish(diag);
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        ConfigErrors(errors)
    }
}
