//! Dataset versions: a change makes a new version, time travel sees the old text, a deletion
//! leaves the live version but not the old ones, and the three stores agree on every version.

use crate::support::{Workspace, hit_paths};

fn lexical_paths(workspace: &Workspace, query: &str, version: Option<i64>) -> Vec<String> {
    let mut args = vec!["search", query, "--mode", "lexical", "-k", "10"];
    let version = version.map(|v| v.to_string());
    if let Some(version) = &version {
        args.extend(["--version", version]);
    }
    hit_paths(&workspace.json(&args))
}

#[test]
fn modify_and_delete_make_versions_that_time_travel_can_see() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let alpha = inbox.join("alpha.txt");
    let beta = inbox.join("beta.md");
    std::fs::write(&alpha, "The quartermaster counted seventeen barrels of pickled herring in the hold.\n").unwrap();
    std::fs::write(&beta, "# Beta\n\nA lighthouse keeper logged the passing zeppelin at dawn.\n").unwrap();

    let first = workspace.ingest(&inbox, None);
    assert_eq!((first["version"].as_i64(), first["indexed"].as_u64()), (Some(1), Some(2)), "{first}");

    std::fs::write(&alpha, "The quartermaster now counts crates of dried apricots instead.\n").unwrap();
    let second = workspace.ingest(&inbox, None);
    assert_eq!(
        (second["version"].as_i64(), second["changed"].as_u64(), second["unchanged"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{second}"
    );
    assert!(second["chunks_retired"].as_u64().unwrap() >= 1);

    // Live sees the new text only; version 1 still has the old one.
    assert!(lexical_paths(&workspace, "pickled herring", None).is_empty());
    assert!(lexical_paths(&workspace, "pickled herring", Some(1)).iter().any(|p| p.ends_with("/alpha.txt")));
    assert!(lexical_paths(&workspace, "dried apricots", None).iter().any(|p| p.ends_with("/alpha.txt")));
    assert!(lexical_paths(&workspace, "dried apricots", Some(1)).is_empty());

    std::fs::remove_file(&beta).unwrap();
    let third = workspace.ingest(&inbox, None);
    assert_eq!((third["version"].as_i64(), third["deleted"].as_u64()), (Some(3), Some(1)), "{third}");
    assert!(lexical_paths(&workspace, "passing zeppelin", None).is_empty());
    assert!(lexical_paths(&workspace, "passing zeppelin", Some(2)).iter().any(|p| p.ends_with("/beta.md")));

    // Dense search follows the same versions as lexical search.
    let dense = |version: &str| {
        hit_paths(&workspace.json(&["search", "lighthouse keeper zeppelin", "--mode", "dense", "--version", version]))
    };
    assert!(dense("2").iter().any(|p| p.ends_with("/beta.md")));
    assert!(!dense("3").iter().any(|p| p.ends_with("/beta.md")));

    let versions = workspace.json(&["versions"]);
    let states: Vec<(&str, bool)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["state"].as_str().unwrap(), v["aliases"].as_array().unwrap().iter().any(|a| a == "live")))
        .collect();
    assert_eq!(states, [("committed", false), ("committed", false), ("committed", true)]);

    // The catalog, Qdrant and Tantivy return the same chunk ids at every version.
    let store = workspace.open_store("default");
    for version in 1..=3 {
        let [catalog, qdrant, tantivy] = store.chunk_ids_visible_at(version).unwrap();
        assert!(!catalog.is_empty());
        assert_eq!(catalog, qdrant, "catalog and Qdrant differ at version {version}");
        assert_eq!(catalog, tantivy, "catalog and Tantivy differ at version {version}");
    }
    let [at_one, ..] = store.chunk_ids_visible_at(1).unwrap();
    let [at_three, ..] = store.chunk_ids_visible_at(3).unwrap();
    assert_ne!(at_one, at_three);
}

#[test]
fn an_unfinished_version_is_rolled_back_in_every_store() {
    use sluice_core::{Chunk, ChunkId, ContentHash, DocumentId, Fingerprint, TextHash};
    use sluice_store::{ChangeReason, DocumentWrite, NewChunk, NewDocument, StageFingerprints};

    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("kept.txt"), "Marmalade recipes from the old abbey kitchen.\n").unwrap();
    workspace.ingest(&inbox, None);

    // Write half a version by hand and "crash" (forget the writer without committing or rolling back).
    {
        let store = workspace.open_store("default");
        let live = store.live_version().unwrap().unwrap();
        let [before, ..] = store.chunk_ids_visible_at(live).unwrap();
        let mut writer = store.begin(Fingerprint::of("test", "crash"), "test-run").unwrap();
        let text = "Uncommitted text about a submarine orchestra.";
        let doc_id = DocumentId::new("default", "/nowhere", "ghost.txt");
        let content_hash = ContentHash::of_bytes(text.as_bytes());
        let chunk = Chunk {
            ordinal: 0,
            text: text.into(),
            text_hash: TextHash::of_text(text),
            char_start: 0,
            char_end: text.chars().count() as u32,
            page: None,
            token_count: 8,
            heading_path: Vec::new(),
            pii: Vec::new(),
            language: None,
        };
        let fingerprint = Fingerprint::of("chunk", "test");
        writer
            .write(&[DocumentWrite {
                document: NewDocument {
                    doc_id,
                    root: "/nowhere".into(),
                    rel_path: "ghost.txt".into(),
                    member: String::new(),
                    parent: None,
                    embedded_files: 0,
                    content_hash,
                    text_hash: chunk.text_hash,
                    format: "text".into(),
                    title: None,
                    page_count: None,
                    byte_size: text.len() as u64,
                    fingerprints: StageFingerprints { extract: fingerprint, chunk: fingerprint, model: fingerprint },
                    duplicate_of: None,
                    added_reason: ChangeReason::New,
                    readers: sluice_core::Acl::new(["everyone".to_owned()]),
                    pii: Default::default(),
                    language: None,
                    metadata: Default::default(),
                    similarity: None,
                    minhash: None,
                },
                chunks: vec![NewChunk {
                    id: ChunkId::new(doc_id, content_hash, fingerprint, 0),
                    chunk,
                    vector: vec![0.05; 384],
                }],
            }])
            .unwrap();
        let pending = writer.version();
        std::mem::forget(writer);
        // Readers at the committed version never see the pending chunks.
        let [during, ..] = store.chunk_ids_visible_at(live).unwrap();
        assert_eq!(before, during);
        assert!(
            store
                .lexical()
                .search("submarine orchestra", pending, sluice_store::Readable::unrestricted(), 10)
                .unwrap()
                .is_empty(),
            "not committed to Tantivy yet"
        );
    }

    // The next start rolls it back everywhere; its number is not reused.
    let store = workspace.open_store("default");
    let versions = store.catalog().versions("default").unwrap();
    assert_eq!(versions.last().unwrap().state, sluice_store::VersionState::Aborted);
    assert_eq!(store.catalog().next_version("default").unwrap(), 3);
    assert!(
        store.vectors().chunk_ids_visible_at(2).unwrap().len()
            == store.catalog().chunks_visible_at("default", 1).unwrap().len()
    );
    let [catalog, qdrant, tantivy] = store.chunk_ids_visible_at(1).unwrap();
    assert_eq!((&catalog, &catalog), (&qdrant, &tantivy));
    assert_eq!(store.vectors().point_count().unwrap(), catalog.len(), "the pending point was deleted");
    drop(store);
    let paths = hit_paths(&workspace.json(&["search", "submarine orchestra", "--mode", "lexical"]));
    assert!(paths.is_empty(), "{paths:?}");
}

/// The version commands end to end: diff, lineage, export, rollback, promote, pin, gc and
/// verify through the CLI, and the same through a running daemon's API.
#[test]
fn version_commands_work_through_the_cli_and_the_daemon() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let notes = inbox.join("notes.txt");
    std::fs::write(&notes, "The cartographer inked a coastline of basalt cliffs.\n").unwrap();
    workspace.ingest(&inbox, None);
    std::fs::write(&notes, "The cartographer inked a river delta full of reeds.\n").unwrap();
    workspace.ingest(&inbox, None);

    let diff = workspace.json(&["diff", "1", "2"]);
    assert_eq!(diff["counts"]["document_changed"], serde_json::json!({"added": 1, "retired": 1}), "{diff}");
    let chunk_id = diff["added"][0]["chunk_id"].as_str().unwrap().to_owned();
    let lineage = workspace.json(&["lineage", &chunk_id]);
    assert!(lineage["source"]["uri"].as_str().unwrap().ends_with("/notes.txt"), "{lineage}");
    assert_eq!(lineage["run"]["version"], 2);
    let human = workspace.run(&["lineage", &chunk_id]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("document changed"));

    let out = workspace.path("v1.parquet");
    workspace.run(&[
        "export",
        "--version",
        "1",
        "--format",
        "parquet",
        "--with-vectors",
        "--out",
        out.to_str().unwrap(),
    ]);
    let first = std::fs::read(&out).unwrap();
    assert_eq!(&first[..4], b"PAR1");

    workspace.run(&["rollback"]);
    assert!(lexical_paths(&workspace, "basalt cliffs", None).iter().any(|p| p.ends_with("/notes.txt")));
    workspace.run(&["promote", "2"]);
    assert!(lexical_paths(&workspace, "basalt cliffs", None).is_empty());
    workspace.run(&["pin", "1"]);
    let gc = workspace.json(&["gc"]);
    assert_eq!(gc["retained"], serde_json::json!([1, 2]), "{gc}");
    let verify = workspace.json(&["verify"]);
    assert_eq!(verify["problem_count"], 0, "{verify}");
    // They act through the operations library here, which needs the stores, not the model.
    let no_models = workspace.folder("no-models");
    for args in [&["rollback"][..], &["promote", "2"], &["unpin", "1"], &["pin", "1"], &["verify"]] {
        let output = workspace.command(args).env("SLUICE_MODELS_DIR", &no_models).output().unwrap();
        assert!(output.status.success(), "{args:?} without a model: {}", String::from_utf8_lossy(&output.stderr));
    }

    // With a daemon holding the data directory, the same through its API.
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    let lineage = daemon.get_json(&format!("/v1/chunks/{chunk_id}/lineage"));
    assert_eq!(lineage["chunk_id"], chunk_id.as_str());
    assert_eq!(daemon.get(&format!("/v1/chunks/{}/lineage", "0".repeat(64))).0, 404);
    // Statuses follow the kind of failure: what does not exist, what the state refuses.
    let admin = Some(daemon.token.as_str());
    assert_eq!(daemon.call("POST", "/v1/versions/99/promote", admin, None).0, 404);
    assert_eq!(daemon.call("GET", "/v1/diff?from=2&to=1", admin, None).0, 400);
    assert_eq!(daemon.get_json("/v1/diff?from=1&to=2")["added"][0]["chunk_id"], chunk_id.as_str());
    assert_eq!(daemon.get_json("/v1/versions/2")["pinned"], false);
    workspace.run(&["rollback"]);
    assert_eq!(daemon.live_version(), Some(1));
    workspace.run(&["promote", "2"]);
    assert_eq!(daemon.live_version(), Some(2));
    assert_eq!(workspace.json(&["verify", "--version", "2"])["problem_count"], 0);
    // Export reads the catalog beside the daemon, byte-identical to the one before.
    workspace.run(&[
        "export",
        "--version",
        "1",
        "--format",
        "parquet",
        "--with-vectors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), first);
    daemon.stop();
}
