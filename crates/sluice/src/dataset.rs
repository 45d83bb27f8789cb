//! Commands on dataset versions: lineage, diff, export, promote, rollback, pin, gc, verify.
//!
//! Reads (lineage, diff, export) go to the catalog directly: SQLite serves them beside a
//! running daemon. Changes go through the daemon when one holds the data directory (one
//! writer per data directory), else they take the lock and act here.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use sluice_config::{HistoryAccess, PipelinePlan};
use sluice_core::{ChunkId, ReadAccess, Version};
use sluice_store::{
    Actor, AuditEvent, Catalog, DataDirLock, ExportFormat, GcReport, Lineage, VerifyReport, VersionDiff,
};

use crate::auth::local_principal;

use crate::client;
use crate::commands::{load_plan, open_engine};

/// The catalog of the pipeline named by `pipeline` (or the default one), with its audit key,
/// and the plan.
fn open_catalog(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<(Arc<dyn Catalog>, PipelinePlan)> {
    let plan = load_plan(pipeline)?;
    let (catalog_path, _, _) = sluice_store::store_paths(data, &plan.name);
    anyhow::ensure!(catalog_path.exists(), "no catalog at {}: nothing ingested yet", catalog_path.display());
    let catalog = sluice_store::open_catalog(data)?;
    catalog.set_audit_key(sluice_pipeline::audit_key(&plan, data)?);
    Ok((catalog, plan))
}

pub fn lineage(
    data: &Path,
    pipeline: Option<&Path>,
    chunk_id: &str,
    json: bool,
    access: &ReadAccess,
) -> anyhow::Result<ExitCode> {
    let id = ChunkId::parse(chunk_id).with_context(|| format!("{chunk_id:?} is not a chunk id (64 hex digits)"))?;
    let (catalog, plan) = open_catalog(data, pipeline)?;
    let name = &plan.name;
    // `--as-user` reads as that reader would (a reader, not an operator).
    let past = sluice_pipeline::past_access(plan.access.history, false);
    let lineage =
        catalog.lineage(name, id, access, past)?.with_context(|| format!("no chunk {chunk_id} in pipeline {name}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lineage)?);
    } else {
        print_lineage(&lineage);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_lineage(l: &Lineage) {
    let span = &l.span;
    println!("chunk      {}", l.chunk_id);
    println!("source     {}", l.source.uri);
    println!(
        "           {} ({} bytes, document version {})",
        l.source.format, l.source.byte_size, l.source.content_hash
    );
    let page = span.page.map(|p| format!("page {p}, ")).unwrap_or_default();
    println!(
        "span       #{} {page}chars {}..{}, {} tokens",
        span.ordinal, span.char_start, span.char_end, span.token_count
    );
    if !span.heading_path.is_empty() {
        println!("           § {}", span.heading_path.join(" › "));
    }
    for (name, stage) in [("extract", &l.stages.extract), ("chunk", &l.stages.chunk), ("embed", &l.stages.embed)] {
        println!("{name:<10} {} {}", &stage.fingerprint[..stage.fingerprint.len().min(16)], stage.settings);
    }
    let duplicates = if l.dedup.duplicates.is_empty() {
        String::new()
    } else {
        format!(" ({} duplicate(s): {})", l.dedup.duplicates.len(), l.dedup.duplicates.join(", "))
    };
    println!("dedup      {}{duplicates}", l.dedup.verdict);
    println!("pipeline   {}", l.pipeline_fingerprint);
    println!("run        {} (version {})", l.run.run_id, l.run.version);
    let retired = l.retired_reason.map(|r| format!(", retired: {}", r.label())).unwrap_or_default();
    println!("why        added: {}{retired}", l.added_reason.label());
    let appearances: Vec<String> = l
        .appearances
        .iter()
        .map(|a| format!("[{}, {})", a.valid_from, a.valid_to.map_or("∞".to_owned(), |v| v.to_string())))
        .collect();
    println!("visible    {}", appearances.join(" "));
}

pub fn diff(data: &Path, pipeline: Option<&Path>, from: Version, to: Version, json: bool) -> anyhow::Result<ExitCode> {
    let (catalog, plan) = open_catalog(data, pipeline)?;
    let diff = catalog.diff(&plan.name, from, to)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&diff)?);
    } else {
        print_diff(&diff);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_diff(diff: &VersionDiff) {
    println!(
        "version {} → {}: {} chunk(s) added, {} retired",
        diff.from,
        diff.to,
        diff.added.len(),
        diff.retired.len()
    );
    for (reason, count) in &diff.counts {
        println!("  {:<18} +{} -{}", reason.label(), count.added, count.retired);
    }
    for (sign, entries) in [("+", &diff.added), ("-", &diff.retired)] {
        for entry in entries.iter() {
            println!(
                "{sign} {}  {} #{}  ({})",
                &entry.chunk_id.to_hex()[..16],
                entry.path,
                entry.ordinal,
                entry.reason.label()
            );
        }
    }
}

pub fn export(
    data: &Path,
    pipeline: Option<&Path>,
    version: Option<Version>,
    access: &ReadAccess,
    format: ExportFormat,
    with_vectors: bool,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let (catalog, plan) = open_catalog(data, pipeline)?;
    let name = &plan.name;
    let live = catalog.alias(name, "live")?;
    let version = match version {
        Some(version) => version,
        None => live.context("nothing is live yet")?,
    };
    let hidden = match plan.access.history {
        HistoryAccess::Current if Some(version) != live => catalog.revoked_documents(name, version, access)?,
        HistoryAccess::Operators if Some(version) != live && *access != ReadAccess::Unrestricted => {
            anyhow::bail!("earlier versions are exported by operators only ([access] history = \"operators\")")
        }
        _ => Vec::new(),
    };
    let summary = catalog.export(name, version, access, &hidden, format, with_vectors, out)?;
    let detail = serde_json::json!({"version": version, "chunks": summary.chunks, "out": out.display().to_string()});
    catalog.audit(&[AuditEvent::new(name, &local_principal(), "exported", format!("version {version}"), detail)])?;
    eprintln!("version {}: {} chunks, {} bytes → {}", summary.version, summary.chunks, summary.bytes, out.display());
    Ok(ExitCode::SUCCESS)
}

/// A change to aliases or pins: through the daemon, or here under the data directory lock,
/// audited (as `local:<user>`) in the transaction of the change.
fn change<T: for<'de> Deserialize<'de>>(
    data: &Path,
    pipeline: Option<&Path>,
    method: &str,
    api_path: &str,
    here: impl FnOnce(&dyn Catalog, &Actor<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if DataDirLock::is_held(data) {
        return client::send(data, method, api_path);
    }
    let _lock = DataDirLock::acquire(data)?;
    let (catalog, plan) = open_catalog(data, pipeline)?;
    let principal = local_principal();
    here(catalog.as_ref(), &Actor { pipeline: &plan.name, principal: &principal })
}

#[derive(Deserialize)]
struct Live {
    live: Version,
}

pub fn promote(data: &Path, pipeline: Option<&Path>, version: Version, force: bool) -> anyhow::Result<ExitCode> {
    let api = format!("/v1/versions/{version}/promote?force={force}");
    let live = change(data, pipeline, "POST", &api, |catalog, by| {
        catalog.promote(version, force, by)?;
        Ok(Live { live: version })
    })?;
    println!("live → version {}", live.live);
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<ExitCode> {
    let live =
        change(data, pipeline, "POST", "/v1/rollback", |catalog, by| Ok(Live { live: catalog.roll_back_live(by)? }))?;
    println!("live → version {}", live.live);
    Ok(ExitCode::SUCCESS)
}

pub fn pin(data: &Path, pipeline: Option<&Path>, version: Version, pinned: bool) -> anyhow::Result<ExitCode> {
    let method = if pinned { "POST" } else { "DELETE" };
    change(data, pipeline, method, &format!("/v1/versions/{version}/pin"), |catalog, by| {
        catalog.set_pinned(version, pinned, by)?;
        Ok(serde_json::Value::Null)
    })?;
    println!("version {version} {}", if pinned { "pinned" } else { "unpinned" });
    Ok(ExitCode::SUCCESS)
}

pub fn gc(data: &Path, models: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let report: GcReport = if DataDirLock::is_held(data) {
        client::send(data, "POST", "/v1/gc")?
    } else {
        let mut plan = load_plan(pipeline)?;
        plan.sources.clear();
        let _lock = DataDirLock::acquire(data)?;
        open_engine(plan, data, models)?.collect_garbage(&local_principal())?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "expired {:?}; retained {:?}; removed {} chunk(s), {} document version(s)",
            report.expired, report.retained, report.chunks_removed, report.documents_removed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit status 0 when the stores agree, 1 when they do not.
pub fn verify(
    data: &Path,
    models: &Path,
    pipeline: Option<&Path>,
    version: Option<Version>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report: VerifyReport = if DataDirLock::is_held(data) {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        client::get(data, &format!("/v1/verify{query}"))?
    } else {
        let mut plan = load_plan(pipeline)?;
        plan.sources.clear();
        let _lock = DataDirLock::acquire(data)?;
        open_engine(plan, data, models)?.verify(version)?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "catalog {} chunk appearances, Qdrant {} points, Tantivy {} documents; {} vectors compared; versions {:?}",
            report.catalog_chunks,
            report.vector_points,
            report.lexical_documents,
            report.vectors_compared,
            report.versions_checked
        );
        for problem in &report.problems {
            println!("  {problem}");
        }
        if report.problem_count > report.problems.len() {
            println!("  … {} more", report.problem_count - report.problems.len());
        }
        println!("{}", if report.is_consistent() { "consistent" } else { "INCONSISTENT" });
    }
    Ok(if report.is_consistent() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
