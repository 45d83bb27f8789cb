//! Cost per unit of work (DESIGN.md §4): what each file processed in a version used, per
//! stage, and the report that sums it per version and per source.
//!
//! A file is the unit: its embedded files (attachments, messages) are costed with it. Stages
//! that work on a batch (dedup, embed, write) share the batch's cost among its files (embed by
//! tokens computed, write by chunks), so every total is exactly the sum of its files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::{DocumentId, Version};

use crate::catalog::{Sql, SqlCatalog, params};
use crate::error::Result;
use crate::prelude::*;

/// Resources one file used in one stage, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    pub wall: f64,
    pub cpu: f64,
    pub gpu: f64,
}

impl StageCost {
    pub fn add(&mut self, other: StageCost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.gpu += other.gpu;
    }

    /// This cost times `share` (a file's part of a batch).
    pub fn scaled(self, share: f64) -> StageCost {
        StageCost { wall: self.wall * share, cpu: self.cpu * share, gpu: self.gpu * share }
    }
}

/// What one file cost in one version.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentCost {
    pub doc_id: DocumentId,
    pub root: String,
    pub rel_path: String,
    /// `indexed`, `duplicate` or `quarantined`.
    pub outcome: &'static str,
    pub bytes: u64,
    pub pages: u64,
    /// Tokens of the chunks made (cached or embedded).
    pub tokens: u64,
    /// Stage name → cost.
    pub stages: BTreeMap<&'static str, StageCost>,
}

fn micros(seconds: f64) -> i64 {
    (seconds * 1e6).round() as i64
}

/// Stores a version's costs in its commit transaction.
pub(crate) fn insert(t: &dyn Sql, pipeline: &str, version: Version, costs: &[DocumentCost]) -> Result<()> {
    for cost in costs {
        let doc_id = cost.doc_id.to_hex();
        t.execute(
            "INSERT INTO document_costs (pipeline, version, doc_id, root, rel_path, outcome, bytes, pages, tokens)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (pipeline, version, doc_id) DO UPDATE SET root = excluded.root,
                 rel_path = excluded.rel_path, outcome = excluded.outcome, bytes = excluded.bytes,
                 pages = excluded.pages, tokens = excluded.tokens",
            params![
                pipeline,
                version,
                doc_id,
                cost.root,
                cost.rel_path,
                cost.outcome,
                cost.bytes as i64,
                cost.pages as i64,
                cost.tokens as i64
            ],
        )?;
        for (name, spent) in &cost.stages {
            t.execute(
                "INSERT INTO stage_costs (pipeline, version, doc_id, stage, wall_us, cpu_us, gpu_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (pipeline, version, doc_id, stage) DO UPDATE SET wall_us = excluded.wall_us,
                     cpu_us = excluded.cpu_us, gpu_us = excluded.gpu_us",
                params![pipeline, version, doc_id, name, micros(spent.wall), micros(spent.cpu), micros(spent.gpu)],
            )?;
        }
    }
    Ok(())
}

/// Per-file quantiles of a stage's wall time, in seconds (nearest rank).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Quantiles {
    /// Nearest-rank quantiles of `values` (sorted here).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Self { p50: rank(0.50), p95: rank(0.95), p99: rank(0.99) }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub total: StageCost,
    /// Mean over the files that went through the stage.
    pub mean: StageCost,
    pub files: u64,
    pub wall_quantiles: Quantiles,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceCost {
    pub root: String,
    pub files: u64,
    pub bytes: u64,
    pub pages: u64,
    pub tokens: u64,
    pub total: StageCost,
}

/// One version's costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionCost {
    pub version: Version,
    pub files: u64,
    /// Files per outcome.
    pub outcomes: BTreeMap<String, u64>,
    pub bytes: u64,
    pub pages: u64,
    pub tokens: u64,
    /// All stages together.
    pub total: StageCost,
    /// `total` over `files`.
    pub mean_per_file: StageCost,
    pub stages: BTreeMap<String, StageReport>,
    pub sources: Vec<SourceCost>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub pipeline: String,
    pub versions: Vec<VersionCost>,
}

impl CostLedger for SqlCatalog {
    fn cost_report(&self, pipeline: &str, version: Option<Version>) -> Result<CostReport> {
        let rows = self.read(|c| {
            c.query_map(
                "SELECT d.version, d.doc_id, d.root, d.outcome, d.bytes, d.pages, d.tokens,
                        s.stage, s.wall_us, s.cpu_us, s.gpu_us
                 FROM document_costs d LEFT JOIN stage_costs s
                     ON s.pipeline = d.pipeline AND s.version = d.version AND s.doc_id = d.doc_id
                 WHERE d.pipeline = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR d.version = ?2)
                 ORDER BY d.version, d.doc_id, s.stage",
                params![pipeline, version],
                |r| {
                    Ok(CostRow {
                        version: r.get(0)?,
                        doc_id: r.get(1)?,
                        root: r.get(2)?,
                        outcome: r.get(3)?,
                        bytes: r.get::<i64>(4)? as u64,
                        pages: r.get::<i64>(5)? as u64,
                        tokens: r.get::<i64>(6)? as u64,
                        stage: r.get(7)?,
                        cost: StageCost {
                            wall: r.get::<Option<i64>>(8)?.unwrap_or(0) as f64 / 1e6,
                            cpu: r.get::<Option<i64>>(9)?.unwrap_or(0) as f64 / 1e6,
                            gpu: r.get::<Option<i64>>(10)?.unwrap_or(0) as f64 / 1e6,
                        },
                    })
                },
            )
        })?;
        Ok(CostReport { pipeline: pipeline.to_owned(), versions: summarise(&rows) })
    }
}

/// One (file, stage) row of a version; `stage` is `None` for a file with no stage rows.
struct CostRow {
    version: Version,
    doc_id: String,
    root: String,
    outcome: String,
    bytes: u64,
    pages: u64,
    tokens: u64,
    stage: Option<String>,
    cost: StageCost,
}

fn summarise(rows: &[CostRow]) -> Vec<VersionCost> {
    let mut versions: BTreeMap<Version, VersionCost> = BTreeMap::new();
    let mut walls: BTreeMap<(Version, String), Vec<f64>> = BTreeMap::new();
    let mut sources: BTreeMap<(Version, String), SourceCost> = BTreeMap::new();
    let mut previous: Option<(Version, &str)> = None;
    for row in rows {
        let report =
            versions.entry(row.version).or_insert_with(|| VersionCost { version: row.version, ..Default::default() });
        let source = sources
            .entry((row.version, row.root.clone()))
            .or_insert_with(|| SourceCost { root: row.root.clone(), ..Default::default() });
        // The file's own numbers once, on its first row.
        if previous != Some((row.version, row.doc_id.as_str())) {
            report.files += 1;
            *report.outcomes.entry(row.outcome.clone()).or_default() += 1;
            report.bytes += row.bytes;
            report.pages += row.pages;
            report.tokens += row.tokens;
            source.files += 1;
            source.bytes += row.bytes;
            source.pages += row.pages;
            source.tokens += row.tokens;
            previous = Some((row.version, row.doc_id.as_str()));
        }
        let Some(stage) = &row.stage else { continue };
        report.total.add(row.cost);
        source.total.add(row.cost);
        let stage_report = report.stages.entry(stage.clone()).or_default();
        stage_report.total.add(row.cost);
        stage_report.files += 1;
        walls.entry((row.version, stage.clone())).or_default().push(row.cost.wall);
    }
    for ((version, stage), values) in walls {
        if let Some(stage_report) = versions.get_mut(&version).and_then(|v| v.stages.get_mut(&stage)) {
            stage_report.mean = stage_report.total.scaled(1.0 / stage_report.files as f64);
            stage_report.wall_quantiles = Quantiles::of(values);
        }
    }
    for ((version, _), source) in sources {
        if let Some(report) = versions.get_mut(&version) {
            report.sources.push(source);
        }
    }
    for report in versions.values_mut() {
        if report.files > 0 {
            report.mean_per_file = report.total.scaled(1.0 / report.files as f64);
        }
    }
    versions.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Quantiles::of(values), Quantiles { p50: 50.0, p95: 95.0, p99: 99.0 });
        assert_eq!(Quantiles::of(vec![3.0, 1.0, 2.0]), Quantiles { p50: 2.0, p95: 3.0, p99: 3.0 });
        assert_eq!(Quantiles::of(Vec::new()), Quantiles::default());
    }

    #[test]
    fn a_report_sums_its_files_per_version_stage_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).unwrap();
        let cost = |path: &str, root: &str, wall: f64| DocumentCost {
            doc_id: DocumentId::new("p", root, path),
            root: root.into(),
            rel_path: path.into(),
            outcome: "indexed",
            bytes: 100,
            pages: 2,
            tokens: 50,
            stages: BTreeMap::from([
                ("extract", StageCost { wall, cpu: wall / 2.0, gpu: 0.0 }),
                ("embed", StageCost { wall: 1.0, cpu: 1.0, gpu: 0.5 }),
            ]),
        };
        let costs = [cost("a", "/r1", 1.0), cost("b", "/r1", 2.0), cost("c", "/r2", 4.0)];
        catalog.write(|t| insert(t, "p", 7, &costs)).unwrap();
        let report = catalog.cost_report("p", Some(7)).unwrap();
        let v = &report.versions[0];
        assert_eq!((v.version, v.files, v.bytes, v.pages, v.tokens), (7, 3, 300, 6, 150));
        assert_eq!(v.total, StageCost { wall: 10.0, cpu: 6.5, gpu: 1.5 });
        assert_eq!(v.stages["extract"].total.wall, 7.0);
        assert_eq!(v.stages["extract"].wall_quantiles, Quantiles { p50: 2.0, p95: 4.0, p99: 4.0 });
        assert_eq!(v.sources.len(), 2);
        assert_eq!(v.sources[0].total.wall + v.sources[1].total.wall, v.total.wall);
        assert!(catalog.cost_report("p", Some(8)).unwrap().versions.is_empty());
    }
}
