//! The one-shot commands: ingest, search, versions, quarantine, validate, models fetch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sluice_config::{PipelinePlan, SourcePlan};
use sluice_core::{ReadAccess, Version};
use sluice_pipeline::{Engine, RunSummary, Scope, Search, SearchResponse};
use sluice_store::{DataDirLock, QuarantineEntry, VersionInfo};

use crate::auth::local_principal;
use crate::client;
use crate::progress::Progress;

const DEFAULT_PIPELINE_FILE: &str = "pipelines/default.toml";

/// The pipeline file given, else `pipelines/default.toml` if present, else the built-in default.
pub fn load_plan(path: Option<&Path>) -> anyhow::Result<PipelinePlan> {
    let path = match path {
        Some(path) => path.to_owned(),
        None if Path::new(DEFAULT_PIPELINE_FILE).is_file() => PathBuf::from(DEFAULT_PIPELINE_FILE),
        None => return Ok(sluice_config::default_pipeline()),
    };
    sluice_config::load_pipeline(&path).map_err(|errors| anyhow::anyhow!("invalid pipeline file\n{errors}"))
}

pub fn ingest(
    data: &Path,
    models: &Path,
    paths: &[PathBuf],
    pipeline: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut plan = load_plan(pipeline)?;
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut scope_paths = Vec::new();
    for path in paths {
        let path = std::fs::canonicalize(path).with_context(|| format!("cannot ingest {}", path.display()))?;
        let root =
            if path.is_dir() { path.clone() } else { path.parent().context("a file has a parent folder")?.to_owned() };
        if !roots.contains(&root) {
            roots.push(root);
        }
        scope_paths.push(path);
    }
    plan.sources = roots.into_iter().map(|path| SourcePlan { path }).collect();
    let _lock = DataDirLock::acquire(data).context(
        "`sluice ingest` writes the data directory; stop the daemon, or drop files into its watched folders instead",
    )?;
    let engine = open_engine(plan, data, models)?;
    let progress = Progress::new();
    let mut summary = engine.run(&Scope::Paths(scope_paths), &progress)?;
    // On a shared catalog one run writes one share of claimed files: go on until every file is
    // written, by this node or another (whose claims are waited for, or taken once expired).
    while engine.shares_catalog() && !summary.stopped_early {
        let next = if !summary.requeued_paths.is_empty() {
            std::mem::take(&mut summary.requeued_paths)
        } else if !summary.held_paths.is_empty() {
            std::thread::sleep(engine.plan().store.catalog.node_settings().heartbeat);
            std::mem::take(&mut summary.held_paths)
        } else {
            break;
        };
        summary.absorb(engine.run(&Scope::Paths(next), &progress)?);
    }
    progress.finish();
    if summary.version.is_some() {
        engine.optimize_vectors()?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, engine.store().live_version()?);
        let quarantined = engine.operations().quarantine()?;
        for entry in quarantined.iter().filter(|entry| Some(entry.version) == summary.version) {
            println!("quarantined {} ({} / {}): {}", entry.path, entry.stage, entry.reason, entry.detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(summary: &RunSummary, live: Option<Version>) {
    match summary.version {
        Some(version) => println!("version {version} committed in {:.1} s", summary.elapsed_seconds),
        None => println!("nothing changed; live stays at version {}", live.map_or("-".to_owned(), |v| v.to_string())),
    }
    println!(
        "files      seen {}, new {}, changed {}, deleted {}, unchanged {}, touched {}, reprocessed {}",
        summary.files_seen,
        summary.new,
        summary.changed,
        summary.deleted,
        summary.unchanged,
        summary.touched,
        summary.reprocessed
    );
    let reasons: Vec<String> = summary.quarantined.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    let reasons = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
    let embedded =
        if summary.embedded > 0 { format!(" ({} embedded in files)", summary.embedded) } else { String::new() };
    println!(
        "documents  indexed {}, duplicates {}, near-duplicates {}, quarantined {}{reasons}{embedded}",
        summary.indexed,
        summary.duplicates,
        summary.near_duplicates,
        summary.quarantined_total()
    );
    println!(
        "chunks     added {}, retired {}, reused {}",
        summary.chunks_added, summary.chunks_retired, summary.chunks_reused
    );
    println!(
        "embedding  computed {}, cache hits {} ({:.0}%), {} tokens",
        summary.embeddings_computed,
        summary.embedding_cache_hits,
        summary.embedding_cache_hit_ratio * 100.0,
        summary.tokens_embedded
    );
    let seconds = summary.elapsed_seconds.max(1e-9);
    let documents = summary.indexed + summary.duplicates + summary.quarantined_total();
    println!(
        "speed      {:.2} documents/s, {:.2} chunks/s",
        documents as f64 / seconds,
        summary.chunks_added as f64 / seconds
    );
}

/// Searches through the daemon when one runs (as `SLUICE_TOKEN`'s principal, else as the
/// local administrator), else here, as `access` allows.
pub fn search(
    data: &Path,
    models: &Path,
    pipeline: Option<&Path>,
    search: &Search,
    json: bool,
    as_someone: bool,
    access: &ReadAccess,
) -> anyhow::Result<ExitCode> {
    search.filter.normalized().map_err(|reason| anyhow::anyhow!("bad filter: {reason}"))?;
    let response = if DataDirLock::is_held(data) {
        anyhow::ensure!(
            !as_someone,
            "a daemon holds the data directory: search as a user with that user's token (SLUICE_TOKEN), not --as-user"
        );
        // A daemon owns the indexes: ask it.
        client::search(data, search)?
    } else {
        let mut plan = load_plan(pipeline)?;
        plan.sources.clear();
        let _lock = DataDirLock::acquire(data)?;
        let engine = Engine::open(plan, data, models)?;
        engine.search_filtered(search, access, &local_principal())?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        print_hits(&response);
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice embed`: the text's vector under the pipeline's model, as a search would embed it.
pub fn embed(models: &Path, pipeline: Option<&Path>, text: &str) -> anyhow::Result<ExitCode> {
    let plan = load_plan(pipeline)?;
    let options = sluice_embed::EmbedOptions { device: plan.embed.device, precision: plan.embed.precision };
    let embedder = sluice_embed::Embedder::load_named(models, &plan.embed.model, options)?;
    let vector = embedder.embed(&[text], embedder.default_batch_tokens())?.remove(0);
    let answer = serde_json::json!({ "model": embedder.fingerprint().to_hex(), "vector": vector });
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

fn print_hits(response: &SearchResponse) {
    let Some(version) = response.version else {
        println!("nothing indexed yet");
        return;
    };
    println!("version {version}: {} hit(s)", response.hits.len());
    for (rank, hit) in response.hits.iter().enumerate() {
        let page = hit.page.map(|p| format!(" p.{p}")).unwrap_or_default();
        println!("{:>2}. {:.4}  {}{page}  chars {}..{}", rank + 1, hit.score, hit.path, hit.char_start, hit.char_end);
        if !hit.heading_path.is_empty() {
            println!("    § {}", hit.heading_path.join(" › "));
        }
        let snippet: String = hit.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let snippet: String = snippet.chars().take(160).collect();
        println!("    {snippet}");
    }
}

/// Fails unless the pipeline has a catalog to read (the first ingest makes a SQLite one).
pub fn ensure_catalog(data: &Path, plan: &sluice_config::PipelinePlan) -> anyhow::Result<()> {
    anyhow::ensure!(
        sluice_store::catalog_exists(data, &plan.store.catalog),
        "no catalog in {}: nothing ingested yet",
        data.display()
    );
    Ok(())
}

pub fn versions(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let plan = load_plan(pipeline)?;
    let has_catalog = sluice_store::catalog_exists(data, &plan.store.catalog);
    let versions: Vec<VersionInfo> = if has_catalog {
        sluice_store::open_catalog(data, &plan.store.catalog)?.versions(&plan.name)?
    } else {
        Vec::new()
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        println!("no versions yet");
    }
    for info in &versions {
        let chunks = info.chunks.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let mut marks = info.aliases.clone();
        if info.pinned {
            marks.push("pinned".to_owned());
        }
        if let Some(gate) = &info.gate {
            marks.push(format!("gate {gate}"));
        }
        let aliases = if marks.is_empty() { String::new() } else { format!(" [{}]", marks.join(", ")) };
        let indexed = info.summary.get("indexed").and_then(|v| v.as_u64()).unwrap_or(0);
        let deleted = info.summary.get("deleted").and_then(|v| v.as_u64()).unwrap_or(0);
        println!(
            "{:>5}  {:<9}{aliases}  chunks {chunks}, documents indexed {indexed}, deleted {deleted}",
            info.version,
            format!("{:?}", info.state).to_lowercase(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn quarantine_list(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let entries = if DataDirLock::is_held(data) {
        client::quarantine(data)?
    } else {
        let plan = load_plan(pipeline)?;
        let has_catalog = sluice_store::catalog_exists(data, &plan.store.catalog);
        if has_catalog {
            sluice_store::open_catalog(data, &plan.store.catalog)?.quarantine(&plan.name)?
        } else {
            Vec::new()
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_quarantine(&entries);
    Ok(ExitCode::SUCCESS)
}

fn print_quarantine(entries: &[QuarantineEntry]) {
    if entries.is_empty() {
        println!("nothing in quarantine");
        return;
    }
    for entry in entries {
        println!(
            "{}\n    {} / {} (version {}): {}",
            entry.path, entry.stage, entry.reason, entry.version, entry.detail
        );
    }
    let mut by_reason = std::collections::BTreeMap::<&str, usize>::new();
    for entry in entries {
        *by_reason.entry(&entry.reason).or_default() += 1;
    }
    let reasons: Vec<String> = by_reason.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!("{} quarantined: {}", entries.len(), reasons.join(", "));
}

/// Processes a quarantined file again: through the daemon when one runs, else here, now.
pub fn quarantine_retry(data: &Path, models: &Path, pipeline: Option<&Path>, path: &str) -> anyhow::Result<ExitCode> {
    let path = canonical_entry_path(path);
    if DataDirLock::is_held(data) {
        client::retry_quarantined(data, &path)?;
        println!("queued {path}; the daemon processes it in its next run");
        return Ok(ExitCode::SUCCESS);
    }
    let mut plan = load_plan(pipeline)?;
    let has_catalog = sluice_store::catalog_exists(data, &plan.store.catalog);
    let entry = if has_catalog {
        sluice_store::open_catalog(data, &plan.store.catalog)?
            .quarantine(&plan.name)?
            .into_iter()
            .find(|entry| entry.matches(&path))
    } else {
        None
    };
    let entry = entry.with_context(|| format!("{path} is not in quarantine (see `sluice quarantine list`)"))?;
    // The run covers the file's own source root, so its documents keep their identity.
    plan.sources = vec![SourcePlan { path: PathBuf::from(&entry.root) }];
    let _lock = DataDirLock::acquire(data)?;
    let engine = open_engine(plan, data, models)?;
    let file = engine.operations().requeue_quarantined(&path, &local_principal())?;
    let summary = engine.run(&Scope::Paths(vec![file]), &sluice_pipeline::Quiet)?;
    print_summary(&summary, engine.store().live_version()?);
    let still: Vec<QuarantineEntry> = engine
        .operations()
        .quarantine()?
        .into_iter()
        .filter(|quarantined| quarantined.root == entry.root && quarantined.rel_path == entry.rel_path)
        .collect();
    if !still.is_empty() {
        println!("still quarantined:");
        print_quarantine(&still);
    }
    Ok(ExitCode::SUCCESS)
}

/// A path as the quarantine list shows it: the file's canonical path, then `#member` if any.
fn canonical_entry_path(path: &str) -> String {
    let (file, member) = match path.split_once('#') {
        Some((file, member)) if !Path::new(path).exists() => (file, Some(member)),
        _ => (path, None),
    };
    let file = std::fs::canonicalize(file).map_or_else(|_| file.to_owned(), |file| file.display().to_string());
    match member {
        Some(member) => format!("{file}#{member}"),
        None => file,
    }
}

pub fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut all_valid = true;
    for file in files {
        match sluice_config::load_pipeline(file) {
            Ok(plan) => println!("{}: ok (pipeline {:?}, {} source(s))", file.display(), plan.name, plan.sources.len()),
            Err(errors) => {
                all_valid = false;
                eprintln!("{errors}");
            }
        }
    }
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn fetch_model(models: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let files = sluice_embed::fetch_model(models, name)?;
    println!("{} is ready in {} (all files match their pinned sha256)", files.spec.name, files.dir.display());
    for file in files.spec.files.keys() {
        println!("  {file}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens a pipeline's engine with its parsers in worker processes of this binary.
pub fn open_engine(plan: sluice_config::PipelinePlan, data: &Path, models: &Path) -> anyhow::Result<Engine> {
    let mut engine = Engine::open(plan, data, models)?;
    engine.isolate_parsers(std::env::current_exe().context("cannot find the sluice executable for parser workers")?);
    Ok(engine)
}
