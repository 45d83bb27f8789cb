//! Restarts re-embed nothing: the ledger skips unchanged files, and the embedding cache serves
//! every chunk whose text the model has already seen.

use std::time::Duration;

use crate::support::{Daemon, Workspace, extraction_corpus, hit_ids, wait_for};

/// The daemon serves HTTP while its start-up reconcile runs; wait for that run to commit.
fn wait_for_live(daemon: &Daemon, version: i64) {
    wait_for(Duration::from_secs(60), || (daemon.live_version() == Some(version)).then_some(()))
        .unwrap_or_else(|| panic!("live never reached version {version}:\n{}", daemon.stderr()));
}

#[test]
fn a_second_run_and_a_second_pipeline_embed_nothing_again() {
    let Some(corpus) = extraction_corpus("a_second_run_and_a_second_pipeline_embed_nothing_again") else {
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::copy(corpus.join("rust-book-markdown/ch00-00-introduction.md"), inbox.join("intro.md")).unwrap();
    std::fs::copy(
        corpus.join("pypdf-sample-files/011-google-doc-document/google-doc-document.pdf"),
        inbox.join("zen.pdf"),
    )
    .unwrap();

    let first = workspace.ingest(&inbox, None);
    let chunks = first["chunks_added"].as_u64().unwrap();
    assert!(first["embeddings_computed"].as_u64().unwrap() > 0);
    let before = hit_ids(&workspace.json(&["search", "Readability counts"]));

    // A new process over the same files: nothing changed, nothing is read, nothing embedded.
    let again = workspace.ingest(&inbox, None);
    assert_eq!(again["version"], serde_json::Value::Null, "{again}");
    assert_eq!((again["unchanged"].as_u64(), again["embeddings_computed"].as_u64()), (Some(2), Some(0)), "{again}");
    assert_eq!(hit_ids(&workspace.json(&["search", "Readability counts"])), before, "same results after a restart");

    // Touching a file (same bytes, new mtime) refreshes the ledger without a new version.
    let touched = std::fs::read(inbox.join("intro.md")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(inbox.join("intro.md"), touched).unwrap();
    let after_touch = workspace.ingest(&inbox, None);
    assert_eq!((after_touch["version"].as_i64(), after_touch["touched"].as_u64()), (None, Some(1)), "{after_touch}");

    // Another pipeline over the same files re-chunks everything into its own indexes, but every
    // vector comes from the cache: cache hits = chunks, computed = 0.
    let mirror = workspace.pipeline("mirror", &[&inbox], "");
    let mirrored = workspace.ingest(&inbox, Some(&mirror));
    assert_eq!(mirrored["version"], 1, "{mirrored}");
    assert_eq!(mirrored["chunks_added"].as_u64(), Some(chunks), "{mirrored}");
    assert_eq!(mirrored["embeddings_computed"].as_u64(), Some(0), "{mirrored}");
    assert_eq!(mirrored["embedding_cache_hits"].as_u64(), Some(chunks), "{mirrored}");
}

#[test]
fn a_restarted_daemon_resumes_from_the_ledger() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("notes.txt"), "Ferrous wheel bearings need grease every spring.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");

    let daemon = workspace.start_daemon(&pipeline);
    wait_for_live(&daemon, 1);
    assert!(daemon.metric("sluice_embeddings_computed_total") > 0.0);
    let before = hit_ids(&daemon.search("wheel bearings grease", ""));
    daemon.stop();

    // A file added while the daemon was down is picked up at start; nothing else is redone.
    std::fs::write(inbox.join("later.txt"), "Copper kettles polish well with lemon and salt.\n").unwrap();
    let daemon = workspace.start_daemon(&pipeline);
    wait_for_live(&daemon, 2);
    assert_eq!(daemon.metric("sluice_embeddings_computed_total"), 1.0, "only the new file's chunk is embedded");
    let after = hit_ids(&daemon.search("wheel bearings grease", "&version=1"));
    assert_eq!(before, after, "version 1 answers as before the restart");
    daemon.stop();
}
