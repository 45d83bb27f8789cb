//! Dataset versions through the library: export byte-identical across later versions, restarts
//! and retention; chunker changes re-chunk into a new version with reasons and cached
//! embeddings; diff reasons; rollback; physical removal by retention; lineage; verify.

mod common;

use std::path::Path;

use sluice_core::ReadAccess;
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::{ChangeReason, ExportFormat, SearchMode};

use common::engine_with;

fn engine(inbox: &Path, data: &Path) -> Engine {
    engine_with(inbox, data, |_| {})
}

const WORDS: &[&str] = &[
    "river", "sluice", "gate", "meadow", "harbour", "lantern", "granite", "orchard", "ledger", "copper", "willow",
    "signal", "furnace", "quarry", "beacon", "thistle", "canal", "timber", "saffron", "glacier",
];

/// A paragraph of `sentences` sentences, different for every (file, sentences) pair.
fn prose(seed: usize, sentences: usize) -> String {
    (0..sentences)
        .map(|i| {
            let w = |k: usize| WORDS[(seed * 7 + i * 3 + k * 5) % WORDS.len()];
            format!("Entry {seed}.{i} records the {} near the {} and the {} by the {}.", w(0), w(1), w(2), w(3))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn export_bytes(engine: &Engine, version: i64, format: ExportFormat, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("export-{version}-{format:?}"));
    engine.operations().export(Some(version), &ReadAccess::Unrestricted, true, format, true, &out, "test").unwrap();
    std::fs::read(out).unwrap()
}

#[test]
fn an_export_stays_byte_identical_across_versions_restarts_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    for i in 0..6 {
        std::fs::write(inbox.join(format!("doc-{i}.txt")), prose(i, 30)).unwrap();
    }
    let engine = engine(&inbox, &data);
    assert_eq!(engine.run(&Scope::All, &Quiet).unwrap().version, Some(1));
    let jsonl = export_bytes(&engine, 1, ExportFormat::Jsonl, dir.path());
    let parquet = export_bytes(&engine, 1, ExportFormat::Parquet, dir.path());
    assert_eq!(jsonl.iter().filter(|b| **b == b'\n').count(), engine.store().chunk_ids_visible_at(1).unwrap()[0].len());

    // Three later versions: a change, a deletion, a new file.
    std::fs::write(inbox.join("doc-0.txt"), prose(100, 30)).unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();
    std::fs::remove_file(inbox.join("doc-1.txt")).unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();
    std::fs::write(inbox.join("doc-9.txt"), prose(9, 30)).unwrap();
    assert_eq!(engine.run(&Scope::All, &Quiet).unwrap().version, Some(4));
    assert_eq!(export_bytes(&engine, 1, ExportFormat::Jsonl, dir.path()), jsonl);
    drop(engine);

    // A restart, then retention keeping only the newest version, plus 1 because it is pinned.
    let engine = engine_with(&inbox, &data, |plan| plan.retention.keep_versions = 1);
    assert_eq!(export_bytes(&engine, 1, ExportFormat::Jsonl, dir.path()), jsonl);
    engine.operations().pin(1, true, "test").unwrap();
    let report = engine.operations().collect_garbage("test").unwrap();
    assert_eq!((report.expired.clone(), report.retained.clone()), (vec![2, 3], vec![1, 4]), "{report:?}");
    assert_eq!(export_bytes(&engine, 1, ExportFormat::Jsonl, dir.path()), jsonl);
    assert_eq!(export_bytes(&engine, 1, ExportFormat::Parquet, dir.path()), parquet);
    assert!(
        engine
            .operations()
            .export(Some(2), &ReadAccess::Unrestricted, true, ExportFormat::Jsonl, false, &dir.path().join("x"), "test")
            .is_err(),
        "2 expired"
    );
    let verify = engine.operations().verify(None).unwrap();
    assert!(verify.is_consistent(), "{verify:?}");

    // The Parquet file reads back with the same rows as the JSONL.
    let file = std::fs::File::open(dir.path().join("export-1-Parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, jsonl.iter().filter(|b| **b == b'\n').count());
}

#[test]
fn a_chunker_change_rechunks_into_a_new_version_and_embeds_only_new_texts() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    // Long documents split differently under a smaller window; short ones do not change.
    for i in 0..4 {
        std::fs::write(inbox.join(format!("long-{i}.txt")), prose(i, 12)).unwrap();
        std::fs::write(inbox.join(format!("short-{i}.txt")), prose(50 + i, 1)).unwrap();
    }
    let before = engine(&inbox, &data);
    before.run(&Scope::All, &Quiet).unwrap();
    let old_texts: std::collections::HashSet<String> =
        before.store().catalog().chunks_visible_at("default", 1).unwrap().into_iter().map(|c| c.text).collect();
    drop(before);

    let after = engine_with(&inbox, &data, |plan| {
        plan.chunk.max_tokens = 64;
        plan.chunk.overlap_tokens = 0;
    });
    let summary = after.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((summary.version, summary.reprocessed, summary.new, summary.changed), (Some(2), 8, 0, 0), "{summary:?}");
    let new_chunks = after.store().catalog().chunks_visible_at("default", 2).unwrap();
    let new_texts: std::collections::HashSet<&str> = new_chunks.iter().map(|c| c.text.as_str()).collect();
    let unseen = new_texts.iter().filter(|text| !old_texts.contains(**text)).count();
    assert!(unseen > 0 && unseen < new_texts.len(), "some texts change, the short ones do not");
    assert_eq!(summary.embeddings_computed, unseen, "only texts not embedded before are computed");
    assert_eq!(summary.embedding_cache_hits, new_chunks.len() - unseen);
    assert!(summary.embedding_cache_hit_ratio > 0.0);

    let diff = after.operations().diff(1, 2).unwrap();
    assert!(diff.added.iter().chain(&diff.retired).all(|entry| entry.reason == ChangeReason::ChunkerChanged));
    assert_eq!(diff.added.len(), new_chunks.len());
    // Nothing stale is left: the next run has nothing to do.
    assert_eq!(after.run(&Scope::All, &Quiet).unwrap().version, None);
}

#[test]
fn diff_names_why_chunks_came_and_went() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    for name in ["keep", "edit", "gone", "move"] {
        std::fs::write(inbox.join(format!("{name}.txt")), format!("{name}: {}", prose(name.len() * 13, 3))).unwrap();
    }
    let engine = engine(&inbox, &data);
    engine.run(&Scope::All, &Quiet).unwrap();
    std::fs::write(inbox.join("edit.txt"), prose(77, 3)).unwrap();
    std::fs::remove_file(inbox.join("gone.txt")).unwrap();
    std::fs::rename(inbox.join("move.txt"), inbox.join("moved.txt")).unwrap();
    std::fs::write(inbox.join("fresh.txt"), prose(88, 3)).unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();

    let diff = engine.operations().diff(1, 2).unwrap();
    let reasons = |entries: &[sluice_store::DiffEntry]| -> Vec<(String, ChangeReason)> {
        entries.iter().map(|e| (e.path.rsplit('/').next().unwrap().to_owned(), e.reason)).collect()
    };
    assert_eq!(
        reasons(&diff.added),
        [
            ("edit.txt".to_owned(), ChangeReason::DocumentChanged),
            ("fresh.txt".to_owned(), ChangeReason::New),
            ("moved.txt".to_owned(), ChangeReason::Renamed)
        ]
    );
    assert_eq!(
        reasons(&diff.retired),
        [
            ("edit.txt".to_owned(), ChangeReason::DocumentChanged),
            ("gone.txt".to_owned(), ChangeReason::Deleted),
            ("move.txt".to_owned(), ChangeReason::Renamed)
        ]
    );

    // Lineage of the renamed file's chunk: its source, stages, run and reasons.
    let chunk = &diff.added[2];
    let lineage = engine.operations().lineage(chunk.chunk_id, &ReadAccess::Unrestricted, true).unwrap().unwrap();
    assert!(lineage.source.uri.starts_with("file://") && lineage.source.uri.ends_with("/moved.txt"));
    assert_eq!((lineage.run.version, lineage.added_reason), (2, ChangeReason::Renamed));
    assert_eq!(lineage.stages.embed.settings["model"], "all-minilm-l6-v2");
    assert_eq!(
        lineage.stages.embed.settings["weights_sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert!(lineage.stages.extract.settings["cleaning"]["steps"].as_array().is_some_and(|steps| !steps.is_empty()));
    assert_eq!(lineage.stages.chunk.settings["max_tokens"], engine.plan().chunk.max_tokens);
    assert_eq!(lineage.run.run_id.len(), 32);
    assert!(lineage.appearances.iter().all(|a| a.valid_from == 2 && a.valid_to.is_none()));
}

#[test]
fn rollback_moves_search_back_and_retention_removes_old_chunks_physically() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("fruit.txt"), "The orchard grows crisp apples every autumn.").unwrap();
    let engine = engine_with(&inbox, &data, |plan| plan.retention.keep_versions = 100);
    engine.run(&Scope::All, &Quiet).unwrap();
    std::fs::write(inbox.join("fruit.txt"), "The greenhouse ripens sweet mangoes every summer.").unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();
    let top = |engine: &Engine| {
        let response =
            engine.search("apples", None, 1, SearchMode::Lexical, &ReadAccess::Unrestricted, "test").unwrap();
        (response.version, response.hits.first().map(|hit| hit.text.clone()))
    };
    assert_eq!(top(&engine), (Some(2), None));
    assert_eq!(engine.operations().roll_back_live("test").unwrap(), 1);
    let (version, text) = top(&engine);
    assert_eq!(version, Some(1));
    assert!(text.unwrap().contains("apples"));
    assert!(engine.operations().roll_back_live("test").is_err(), "nothing before version 1");
    engine.operations().promote(2, "test", false).unwrap();
    assert_eq!(top(&engine).0, Some(2));

    // Ten more versions of the file; every one retires the previous text.
    for i in 0..10 {
        std::fs::write(inbox.join("fruit.txt"), format!("Version {i}: {}", prose(i, 2))).unwrap();
        engine.run(&Scope::All, &Quiet).unwrap();
    }
    let store = engine.store();
    let (points, docs) = (store.vectors().point_count().unwrap(), store.lexical().doc_count());
    assert_eq!((points, docs), (12, 12), "every version's chunk is still stored");
    drop(engine);
    let engine = engine_with(&inbox, &data, |plan| plan.retention.keep_versions = 3);
    let report = engine.operations().collect_garbage("test").unwrap();
    assert_eq!(report.retained, vec![10, 11, 12]);
    assert_eq!(report.chunks_removed, 9);
    let store = engine.store();
    assert_eq!((store.vectors().point_count().unwrap(), store.lexical().doc_count()), (3, 3));
    assert!(
        engine.search("apples", Some(1), 1, SearchMode::Lexical, &ReadAccess::Unrestricted, "test").is_err(),
        "version 1 expired"
    );
    let verify = engine.operations().verify(None).unwrap();
    assert!(verify.is_consistent(), "{verify:?}");

    // Damage: a point missing from Qdrant is found.
    let live = store.catalog().chunks_visible_at("default", 12).unwrap();
    store.vectors().delete(&[(live[0].model.as_str(), live[0].key())]).unwrap();
    let verify = engine.operations().verify(Some(12)).unwrap();
    assert!(!verify.is_consistent());
    assert!(verify.problems.iter().any(|p| p.contains("Qdrant lacks chunk")), "{verify:?}");
}
