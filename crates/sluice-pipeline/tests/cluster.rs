//! Two writer nodes on one pipeline (a PostgreSQL catalog; vectors in the Qdrant server when
//! `SLUICE_TEST_QDRANT_URL` names one, else each node's own Edge index, refilled from the
//! catalog): they share the changed files through claims, write one version at a time, and
//! each node's indexes end up holding every version; a node that joins while another is busy
//! takes its share. Needs `SLUICE_TEST_POSTGRES_URL`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_config::SourcePlan;
use sluice_core::ReadAccess;
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::SearchMode;

const FILES: usize = 600;

fn node(inbox: &Path, data: &Path, shared: &Path) -> Engine {
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: inbox.to_owned() }];
    // One catalog schema and one collection for both nodes: named after the shared folder.
    plan.store = common::store_plan(shared, &plan.name);
    Engine::open(plan, data, &common::models_dir()).expect("a node opens")
}

/// Runs until every changed file is written, by this node or another (files another node
/// holds are looked at again until it has written them); returns (versions, files indexed).
fn drain(engine: &Engine) -> (Vec<i64>, usize) {
    let (mut versions, mut indexed) = (Vec::new(), 0);
    let mut scope = Scope::All;
    loop {
        let summary = engine.run(&scope, &Quiet).expect("run");
        versions.extend(summary.version);
        indexed += summary.indexed;
        scope = if !summary.requeued_paths.is_empty() {
            Scope::Paths(summary.requeued_paths)
        } else if !summary.held_paths.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            Scope::Paths(summary.held_paths)
        } else {
            return (versions, indexed);
        };
    }
}

/// A temporary folder with an inbox of [`FILES`] small distinct texts, or `None` (saying why)
/// without a PostgreSQL server.
fn inbox_for_two_nodes() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if std::env::var("SLUICE_TEST_POSTGRES_URL").is_err() {
        eprintln!("SKIPPED: needs SLUICE_TEST_POSTGRES_URL (a PostgreSQL catalog several nodes share)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for i in 0..FILES {
        let (topic, text) = common::TOPICS[i % common::TOPICS.len()];
        std::fs::write(inbox.join(format!("{i:03}-{topic}.txt")), format!("{text} Entry {i} is word{i}x.\n")).unwrap();
    }
    Some((dir, inbox))
}

#[test]
fn two_writers_share_the_files_and_write_every_version_once() {
    let Some((dir, inbox)) = inbox_for_two_nodes() else { return };
    let (a, b) = (node(&inbox, &dir.path().join("a"), dir.path()), node(&inbox, &dir.path().join("b"), dir.path()));
    let ((versions_a, indexed_a), (versions_b, indexed_b)) = std::thread::scope(|scope| {
        let a = scope.spawn(|| drain(&a));
        let b = scope.spawn(|| drain(&b));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(indexed_a + indexed_b, FILES, "every file indexed once: a {versions_a:?}, b {versions_b:?}");
    assert!(!versions_a.is_empty() && !versions_b.is_empty(), "both nodes wrote: a {versions_a:?}, b {versions_b:?}");
    let mut all: Vec<i64> = versions_a.iter().chain(&versions_b).copied().collect();
    all.sort();
    assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>(), "versions are global and without gaps");

    // Each node's indexes hold every version once it catches up (its next run does).
    for engine in [&a, &b] {
        engine.run(&Scope::All, &Quiet).expect("a run with nothing to do");
        let report = engine.operations().verify(None).unwrap();
        assert_eq!(report.problems, Vec::<String>::new());
        let live = engine.store().live_version().unwrap().unwrap();
        assert_eq!(engine.store().catalog().chunks_visible_at(&engine.plan().name, live).unwrap().len(), FILES);
        for i in [0, FILES / 2, FILES - 1] {
            let query = format!("word{i}x");
            let response =
                engine.search(&query, None, 3, SearchMode::Lexical, &ReadAccess::Unrestricted, "local:test").unwrap();
            assert!(
                response.hits.first().is_some_and(|hit| hit.path.contains(&format!("{i:03}-"))),
                "lexical search for file {i}: {:?}",
                response.hits.iter().map(|hit| &hit.path).collect::<Vec<_>>()
            );
        }
    }
    let nodes = a.operations().nodes().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
}

/// A node started while another works through a backlog takes claims of its own: the files
/// end up split between them, each written once.
#[test]
fn a_node_added_mid_run_takes_claims() {
    let Some((dir, inbox)) = inbox_for_two_nodes() else { return };
    let first = node(&inbox, &dir.path().join("first"), dir.path());
    // Opened (the model loaded) beforehand; it joins the catalog with its first run.
    let late = node(&inbox, &dir.path().join("late"), dir.path());
    assert_eq!(first.operations().nodes().unwrap().len(), 0);
    let ((_, indexed_first), (versions_late, indexed_late)) = std::thread::scope(|scope| {
        let working = scope.spawn(|| drain(&first));
        // The first node has claimed its first share and is embedding it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !first.operations().nodes().unwrap().iter().any(|node| node.claims > 0) {
            assert!(Instant::now() < deadline, "the first node never claimed files");
            std::thread::sleep(Duration::from_millis(20));
        }
        let late = drain(&late);
        (working.join().unwrap(), late)
    });
    assert!(indexed_late > 0, "the late node wrote nothing (versions {versions_late:?})");
    assert!(indexed_first > 0);
    assert_eq!(indexed_first + indexed_late, FILES, "every file indexed once");
    first.run(&Scope::All, &Quiet).expect("a run with nothing to do");
    let live = first.store().live_version().unwrap().unwrap();
    assert_eq!(first.store().catalog().chunks_visible_at(&first.plan().name, live).unwrap().len(), FILES);
    assert_eq!(first.operations().verify(None).unwrap().problems, Vec::<String>::new());
}
