//! Commands on dataset versions: lineage, diff, export, promote, rollback, pin, gc, verify.
//!
//! Reads and exports use the catalog alone (it serves a running daemon and this process at
//! once). Changes, and checks of the indexes, go through an [`Operator`]: the daemon when one
//! holds the data directory (one writer per data directory), else the library here, under the
//! lock. Either way `sluice_pipeline::Operations` acts and audits.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sluice_core::{ChunkId, ReadAccess, Version};
use sluice_pipeline::Admin;
use sluice_store::{ExportFormat, Lineage, VersionDiff};

use crate::auth::local_principal;
use crate::commands::load_plan;
use crate::operator::operator;

/// The pipeline named by `pipeline` (or the default one) with its catalog open, and its audit
/// key, beside a daemon if one runs.
fn catalog_admin(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<Admin> {
    let plan = load_plan(pipeline)?;
    crate::commands::ensure_catalog(data, &plan)?;
    Ok(Admin::open_catalog(plan, data)?)
}

pub fn lineage(
    data: &Path,
    pipeline: Option<&Path>,
    chunk_id: &str,
    json: bool,
    access: &ReadAccess,
) -> anyhow::Result<ExitCode> {
    let id = ChunkId::parse(chunk_id).with_context(|| format!("{chunk_id:?} is not a chunk id (64 hex digits)"))?;
    let admin = catalog_admin(data, pipeline)?;
    // `--as-user` reads as that reader would (a reader, not an operator).
    let lineage = admin
        .operations()
        .lineage(id, access, false)?
        .with_context(|| format!("no chunk {chunk_id} in pipeline {}", admin.plan().name))?;
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
    let language = |code: &Option<String>| code.clone().unwrap_or_else(|| "unknown".into());
    println!("language   chunk {}, document {}", language(&span.language), language(&l.source.language));
    let metadata = serde_json::to_string(&l.source.metadata).unwrap_or_default();
    if metadata != "{}" {
        println!("metadata   {metadata}");
    }
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
    let near: Vec<String> =
        l.dedup.near_duplicates.iter().map(|near| format!("{} ({:.2})", near.path, near.similarity)).collect();
    let near = if near.is_empty() { String::new() } else { format!(" (near-duplicates: {})", near.join(", ")) };
    let original = match (l.dedup.duplicate_of, l.dedup.similarity) {
        (Some(original), Some(similarity)) => format!(" of document {original} (similarity {similarity:.2})"),
        _ => String::new(),
    };
    println!("dedup      {}{original}{duplicates}{near}", l.dedup.verdict);
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
    let diff = catalog_admin(data, pipeline)?.operations().diff(from, to)?;
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
    let admin = catalog_admin(data, pipeline)?;
    // Without `--as-user`, the operator at the keyboard; with it, that reader.
    let operator = *access == ReadAccess::Unrestricted;
    let summary =
        admin.operations().export(version, access, operator, format, with_vectors, out, &local_principal())?;
    eprintln!("version {}: {} chunks, {} bytes → {}", summary.version, summary.chunks, summary.bytes, out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn promote(data: &Path, pipeline: Option<&Path>, version: Version, force: bool) -> anyhow::Result<ExitCode> {
    let live = operator(data, pipeline)?.promote(version, force)?;
    println!("live → version {live}");
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(data: &Path, pipeline: Option<&Path>) -> anyhow::Result<ExitCode> {
    let live = operator(data, pipeline)?.roll_back()?;
    println!("live → version {live}");
    Ok(ExitCode::SUCCESS)
}

pub fn pin(data: &Path, pipeline: Option<&Path>, version: Version, pinned: bool) -> anyhow::Result<ExitCode> {
    operator(data, pipeline)?.pin(version, pinned)?;
    println!("version {version} {}", if pinned { "pinned" } else { "unpinned" });
    Ok(ExitCode::SUCCESS)
}

pub fn gc(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let report = operator(data, pipeline)?.collect_garbage()?;
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
pub fn verify(data: &Path, pipeline: Option<&Path>, version: Option<Version>, json: bool) -> anyhow::Result<ExitCode> {
    let report = operator(data, pipeline)?.verify(version)?;
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

/// `sluice nodes`: the nodes sharing the pipeline's catalog, read from the catalog.
pub fn nodes(data: &Path, pipeline: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let admin = catalog_admin(data, pipeline)?;
    let nodes = admin.operations().nodes()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    if nodes.is_empty() {
        println!("no nodes: no sluice process works on this catalog now");
    }
    let now = sluice_store::now_ms();
    for status in &nodes {
        let node = &status.node;
        let heard = (now - status.heartbeat_at).max(0) as f64 / 1000.0;
        let state = if status.alive { "alive" } else { "silent" };
        println!(
            "{}  {:<6} {state:<6} {}@{} pid {}  claims {}  applied version {}  heartbeat {heard:.0} s ago",
            node.id,
            node.role.as_str(),
            node.host,
            if node.address.is_empty() { "-" } else { &node.address },
            node.pid,
            status.claims,
            status.applied_version,
        );
    }
    Ok(ExitCode::SUCCESS)
}
