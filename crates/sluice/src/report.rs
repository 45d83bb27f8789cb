//! `sluice report`: what the work cost, per version and per source, from the catalog.

use std::path::Path;
use std::process::ExitCode;

use sluice_core::Version;
use sluice_store::{StageCost, VersionCost};

use crate::commands::load_plan;

pub fn report(data: &Path, pipeline: Option<&Path>, version: Option<Version>, json: bool) -> anyhow::Result<ExitCode> {
    let plan = load_plan(pipeline)?;
    crate::commands::ensure_catalog(data, &plan)?;
    let report = sluice_store::open_catalog(data, &plan.store.catalog)?.cost_report(&plan.name, version)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if report.versions.is_empty() {
        println!("no costs recorded{}", version.map(|v| format!(" for version {v}")).unwrap_or_default());
    }
    for version in &report.versions {
        print_version(version);
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds(cost: &StageCost) -> String {
    format!("{:>10.3} {:>10.3} {:>10.3}", cost.wall, cost.cpu, cost.gpu)
}

fn print_version(v: &VersionCost) {
    let outcomes: Vec<String> = v.outcomes.iter().map(|(outcome, n)| format!("{n} {outcome}")).collect();
    println!(
        "version {}: {} files ({}), {} bytes, {} pages, {} tokens",
        v.version,
        v.files,
        outcomes.join(", "),
        v.bytes,
        v.pages,
        v.tokens
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "stage", "wall s", "cpu s", "gpu s", "mean wall s", "p50", "p95", "p99"
    );
    for (name, stage) in &v.stages {
        let q = &stage.wall_quantiles;
        println!(
            "  {name:<10} {} {:>12.4} {:>9.4} {:>9.4} {:>9.4}",
            seconds(&stage.total),
            stage.mean.wall,
            q.p50,
            q.p95,
            q.p99
        );
    }
    println!("  {:<10} {} {:>12.4}  (per file)", "total", seconds(&v.total), v.mean_per_file.wall);
    for source in &v.sources {
        println!(
            "  source {}: {} files, {} bytes, {} tokens, wall {:.3} s, cpu {:.3} s, gpu {:.3} s",
            source.root,
            source.files,
            source.bytes,
            source.tokens,
            source.total.wall,
            source.total.cpu,
            source.total.gpu
        );
    }
}
