//! `sluice eval`: retrieval quality of a version on an evaluation set.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sluice_core::Version;
use sluice_pipeline::{DocumentKey, EvalOptions, EvalReport};
use sluice_store::DataDirLock;

use crate::auth::local_principal;
use crate::commands::{load_plan, open_engine};

/// What to evaluate and how to print it.
pub struct EvalArgs<'a> {
    pub set: &'a Path,
    pub split: &'a str,
    pub version: Option<Version>,
    pub document_key: &'a str,
    pub max_queries: Option<usize>,
    pub check_hnsw: bool,
    pub json: bool,
}

pub fn eval(data: &Path, models: &Path, pipeline: Option<&Path>, args: &EvalArgs<'_>) -> anyhow::Result<ExitCode> {
    let document_key = DocumentKey::parse(args.document_key)
        .with_context(|| format!("unknown document key {:?} (stem, name, path)", args.document_key))?;
    let mut set = sluice_eval::load(args.set, args.split)?;
    if let Some(max) = args.max_queries {
        set.queries.truncate(max);
    }
    anyhow::ensure!(
        !DataDirLock::is_held(data),
        "a daemon holds {}: its indexes are open there; stop it or evaluate a copy",
        data.display()
    );
    let mut plan = load_plan(pipeline)?;
    plan.sources.clear();
    let _lock = DataDirLock::acquire(data)?;
    let engine = open_engine(plan, data, models)?;
    let options = EvalOptions { document_key, check_hnsw: args.check_hnsw, ..EvalOptions::default() };
    let report = engine.evaluate(&set, args.version, options)?;
    let detail = serde_json::json!({
        "version": report.version,
        "set": args.set.display().to_string(),
        "queries": report.queries,
        "summaries": report.summaries,
    });
    engine.operations().audit(&local_principal(), "evaluated", format!("version {}", report.version), detail)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &EvalReport) {
    println!("version {}: {} queries", report.version, report.queries);
    println!(
        "{:<9} {:>8} {:>10} {:>11} {:>7} {:>9} {:>9}",
        "retriever", "nDCG@10", "recall@10", "recall@100", "MRR@10", "p50 ms", "p95 ms"
    );
    for (retriever, s) in &report.summaries {
        println!(
            "{:<9} {:>8.4} {:>10.4} {:>11.4} {:>7.4} {:>9.1} {:>9.1}",
            retriever.as_str(),
            s.ndcg_at_10,
            s.recall_at_10,
            s.recall_at_100,
            s.mrr_at_10,
            s.latency_p50_ms,
            s.latency_p95_ms
        );
    }
    if let Some(recall) = report.hnsw_recall_at_10 {
        println!("dense HNSW search finds {:.2}% of the exact nearest 10 chunks", recall * 100.0);
    }
}
