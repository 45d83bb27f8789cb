//! The daemon follows the watched folder: new, changed, renamed and deleted files reach the
//! live version within seconds (bounded polling, no fixed sleeps).

use std::time::Duration;

use crate::support::{Workspace, hit_paths, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn dropped_changed_renamed_and_deleted_files_reach_live() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    assert_eq!(daemon.live_version(), None, "nothing to index yet");

    let lexical = |query: &str| hit_paths(&daemon.search(query, "&mode=lexical"));
    let found = |query: &str, name: &str| lexical(query).iter().any(|path| path.ends_with(&format!("/{name}")));

    std::fs::write(inbox.join("dropped.txt"), "Albatross migration routes cross the southern ocean.\n").unwrap();
    wait_for(PATIENCE, || found("albatross migration", "dropped.txt").then_some(()))
        .unwrap_or_else(|| panic!("a dropped file was not searchable in time:\n{}", daemon.stderr()));

    std::fs::write(inbox.join("dropped.txt"), "Penguin colonies huddle through the polar winter.\n").unwrap();
    wait_for(PATIENCE, || {
        (found("penguin colonies", "dropped.txt") && !found("albatross", "dropped.txt")).then_some(())
    })
    .unwrap_or_else(|| panic!("a changed file did not replace its old text in time:\n{}", daemon.stderr()));

    let embedded_before = daemon.metric("sluice_embeddings_computed_total");
    std::fs::rename(inbox.join("dropped.txt"), inbox.join("renamed.txt")).unwrap();
    wait_for(PATIENCE, || (found("penguin colonies", "renamed.txt") && !found("penguin", "dropped.txt")).then_some(()))
        .unwrap_or_else(|| panic!("a renamed file did not move in time:\n{}", daemon.stderr()));
    assert_eq!(daemon.metric("sluice_embeddings_computed_total"), embedded_before, "a rename re-embeds nothing");

    std::fs::remove_file(inbox.join("renamed.txt")).unwrap();
    wait_for(PATIENCE, || lexical("penguin colonies").is_empty().then_some(()))
        .unwrap_or_else(|| panic!("a deleted file stayed searchable:\n{}", daemon.stderr()));

    // A second writer is refused while the daemon holds the data directory.
    let refused = workspace.command(&["ingest", inbox.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by another sluice process"));

    let versions = daemon.get_json("/v1/versions");
    assert!(versions["versions"].as_array().unwrap().len() >= 4, "{versions}");
    assert!(daemon.get("/metrics").1.contains("sluice_stage_duration_seconds_bucket"));
    daemon.stop();
}
