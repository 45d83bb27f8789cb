//! Runs driven through the library: exact dedup, stopping early, preparing ahead of the model.

mod common;

use std::path::Path;

use sluice_pipeline::{Engine, Quiet, Scope};

fn engine(inbox: &Path, data: &Path) -> Engine {
    engine_preparing_ahead(inbox, data, true)
}

/// An engine whose runs prepare documents ahead of the model, or in step with it.
fn engine_preparing_ahead(inbox: &Path, data: &Path, prepare_ahead: bool) -> Engine {
    common::engine_with(inbox, data, |plan| plan.embed.prepare_ahead = prepare_ahead)
}

fn write_files(inbox: &Path, count: usize, flavour: &str) {
    for i in 0..count {
        std::fs::write(inbox.join(format!("note-{i:03}.txt")), format!("Note {i} about {flavour} number {i}.\n"))
            .unwrap();
    }
}

#[test]
fn a_stopped_run_commits_its_part_and_the_next_run_finishes() {
    stopped_run_resumes(true);
}

#[test]
fn preparing_in_step_with_the_model_gives_the_same_runs() {
    stopped_run_resumes(false);
}

/// 40 files make two batches, so with `prepare_ahead` the second is prepared while the first
/// is embedded; without, after it.
fn stopped_run_resumes(prepare_ahead: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    write_files(&inbox, 40, "turnips");
    let engine = |inbox: &Path, data: &Path| engine_preparing_ahead(inbox, data, prepare_ahead);

    let first = engine(&inbox, &data).run(&Scope::All, &Quiet).unwrap();
    assert_eq!((first.version, first.indexed), (Some(1), 40));
    let first_engine = engine(&inbox, &data);
    let store = first_engine.store();
    let live = store.catalog().chunks_visible_at(store.pipeline(), 1).unwrap();
    assert_eq!(live.len(), 40);
    assert!(live.iter().all(|chunk| chunk.text.contains("turnips")));
    drop(first_engine);

    // Every file changes; the run is asked to stop before its first batch. It retires the old
    // versions, processes nothing, and commits.
    write_files(&inbox, 40, "parsnips");
    let stopping = engine(&inbox, &data);
    stopping.request_stop();
    let stopped = stopping.run(&Scope::All, &Quiet).unwrap();
    assert!(stopped.stopped_early);
    assert_eq!((stopped.version, stopped.changed, stopped.indexed), (Some(2), 40, 0));
    drop(stopping);

    // The next run sees all 40 files again (the ledger forgot them) and indexes the new text.
    let resumed_engine = engine(&inbox, &data);
    let resumed = resumed_engine.run(&Scope::All, &Quiet).unwrap();
    assert!(!resumed.stopped_early);
    assert_eq!((resumed.version, resumed.new, resumed.indexed), (Some(3), 40, 40), "{resumed:?}");
    let store = resumed_engine.store();
    let live = store.catalog().chunks_visible_at(store.pipeline(), 3).unwrap();
    assert_eq!(live.len(), 40);
    assert!(live.iter().all(|chunk| chunk.text.contains("parsnips")));
    let again = resumed_engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((again.version, again.unchanged), (None, 40));
}

#[test]
fn exact_duplicates_are_indexed_once_and_take_over_when_the_original_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data) = (dir.path().join("inbox"), dir.path().join("data"));
    std::fs::create_dir_all(&inbox).unwrap();
    let text = "Saffron is the dried stigma of the crocus flower.\n";
    std::fs::write(inbox.join("a.txt"), text).unwrap();
    std::fs::write(inbox.join("b.txt"), text).unwrap();
    // Other bytes, same normalised text: also a duplicate.
    std::fs::write(inbox.join("c.txt"), "Saffron  is the dried stigma of the crocus flower.  \r\n\r\n").unwrap();
    std::fs::write(inbox.join("d.txt"), "Vanilla comes from the pods of an orchid.\n").unwrap();

    let engine = engine(&inbox, &data);
    let first = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((first.indexed, first.duplicates), (2, 2), "{first:?}");
    let paths_at = |version| -> Vec<String> {
        let store = engine.store();
        let mut paths: Vec<String> =
            store.catalog().chunks_visible_at(store.pipeline(), version).unwrap().into_iter().map(|c| c.path).collect();
        paths.sort();
        paths.iter().map(|p| p.rsplit('/').next().unwrap().to_owned()).collect()
    };
    assert_eq!(paths_at(1), ["a.txt", "d.txt"]);

    std::fs::remove_file(inbox.join("a.txt")).unwrap();
    let second = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((second.deleted, second.indexed, second.duplicates), (1, 1, 1), "{second:?}");
    assert_eq!(paths_at(2), ["b.txt", "d.txt"], "the first remaining copy is indexed");
    assert_eq!(second.embeddings_computed, 0, "its text was embedded before");

    let third = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((third.version, third.unchanged), (None, 3));
}
