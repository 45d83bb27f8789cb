//! The collection in a Qdrant server is a product of its own: a retrieval service queries it
//! with the Python `qdrant-client` and the filters of the README ("Query the collection
//! directly"), and gets what `sluice search --mode dense` answers. Runs where
//! `SLUICE_TEST_QDRANT_URL` names a server and `SLUICE_TEST_PYTHON` a Python with
//! `qdrant-client` (`.ci/run` provides both).

use std::process::Command;

use crate::support::{Workspace, hit_ids, qdrant_url, repo_root};

const TOPICS: [&str; 6] = [
    "Canal locks raise and lower barges between stretches of water at different levels.",
    "Sourdough bread rises slowly because wild yeast ferments the dough overnight.",
    "Glaciers carve U-shaped valleys as compacted ice slides downhill under its own weight.",
    "Pension contributions are deducted from the monthly salary before income tax.",
    "The lighthouse keeper trimmed the lamp's wick every evening before dusk.",
    "Tidal power stations turn the rise and fall of the sea into electricity.",
];

/// The Python client's top 10, as chunk ids.
fn python_top_10(
    python: &str,
    workspace: &Workspace,
    pipeline: &str,
    version: i64,
    readers: &[&str],
    query: &str,
) -> Vec<String> {
    let pipeline_file = workspace.path(&format!("{pipeline}.toml"));
    let embedded = workspace.run(&["embed", query, "--pipeline", pipeline_file.to_str().unwrap()]);
    let vector_file = workspace.path("query.json");
    std::fs::write(&vector_file, &embedded.stdout).unwrap();
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/python/query_collection.py"))
        .args(["--url", &qdrant_url().unwrap(), "--collection", &workspace.collection(pipeline)])
        .args(["--version", &version.to_string(), "--vector-file", vector_file.to_str().unwrap()]);
    for reader in readers {
        command.args(["--reader", reader]);
    }
    let output = command.output().expect("python runs");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["chunk_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_python_qdrant_client_gets_the_same_top_10_as_sluice() {
    let (Some(_), Some(python)) = (qdrant_url(), std::env::var("SLUICE_TEST_PYTHON").ok()) else {
        eprintln!("SKIPPED: needs SLUICE_TEST_QDRANT_URL and SLUICE_TEST_PYTHON (a Python with qdrant-client)");
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::create_dir_all(inbox.join("hr")).unwrap();
    for (i, topic) in TOPICS.iter().enumerate() {
        std::fs::write(inbox.join(format!("note-{i}.txt")), format!("{topic}\n\nNote {i}.\n")).unwrap();
        std::fs::write(inbox.join(format!("hr/memo-{i}.txt")), format!("Internal memo {i}. {topic}\n")).unwrap();
    }
    // As committed: the collection's filter does not know what was revoked or deleted since a
    // version (sluice's default `history = "current"` hides that from restricted readers).
    let access = "\n[access]\nsource = \"none\"\nhistory = \"as-committed\"\n\n[[access.rule]]\npath = \"hr/**\"\nreaders = [\"group:hr\"]\nreplace = true\n";
    let pipeline = workspace.pipeline("library", &[&inbox], access);
    workspace.ingest(&inbox, Some(&pipeline));
    // Version 2 changes two notes, so the versions differ.
    std::fs::write(inbox.join("note-0.txt"), "Canal tunnels let boats pass through hills without locks.\n").unwrap();
    std::fs::remove_file(inbox.join("note-5.txt")).unwrap();
    workspace.ingest(&inbox, Some(&pipeline));

    let pipeline_arg = pipeline.to_str().unwrap();
    for version in [1, 2] {
        for (user, readers) in [(None, vec![]), (Some("rita"), vec!["user:rita", "everyone", "public"])] {
            let query = "how do boats move between water levels";
            let mut args = vec!["search", query, "--mode", "dense", "-k", "10", "--pipeline", pipeline_arg];
            let version_text = version.to_string();
            args.extend(["--version", &version_text]);
            if let Some(user) = user {
                args.extend(["--as-user", user]);
            }
            let sluice = hit_ids(&workspace.json(&args));
            assert_eq!(sluice.len(), if user.is_some() { 6 - (version as usize - 1) } else { 10 });
            let python = python_top_10(&python, &workspace, "library", version, &readers, query);
            assert_eq!(python, sluice, "version {version}, reader {user:?}");
        }
    }
}

/// A collection lost on the server (dropped by someone, a server rebuilt) is refilled from the
/// catalog and its embedding cache at the next start, without re-embedding.
#[test]
fn a_lost_collection_is_refilled_from_the_catalog() {
    let (Some(_), Ok(rest)) = (qdrant_url(), std::env::var("SLUICE_TEST_QDRANT_REST")) else {
        eprintln!("SKIPPED: needs SLUICE_TEST_QDRANT_URL and SLUICE_TEST_QDRANT_REST");
        return;
    };
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    for (i, topic) in TOPICS.iter().enumerate() {
        std::fs::write(inbox.join(format!("note-{i}.txt")), format!("{topic}\n")).unwrap();
    }
    let pipeline = workspace.pipeline("refill", &[&inbox], "");
    let pipeline_arg = pipeline.to_str().unwrap();
    workspace.ingest(&inbox, Some(&pipeline));
    let query = ["search", "bread and yeast", "--mode", "dense", "--pipeline", pipeline_arg];
    let before = hit_ids(&workspace.json(&query));

    // The pipeline's collection name is an alias of its model's collection: drop that one.
    let output = Command::new("curl").args(["-sf", &format!("{rest}/aliases")]).output().expect("curl runs");
    let aliases: serde_json::Value = serde_json::from_slice(&output.stdout).expect("aliases as JSON");
    let alias = workspace.collection("refill");
    let model_collection = aliases["result"]["aliases"]
        .as_array()
        .and_then(|all| all.iter().find(|entry| entry["alias_name"] == alias.as_str()))
        .and_then(|entry| entry["collection_name"].as_str())
        .unwrap_or_else(|| panic!("no alias {alias}: {aliases:#}"))
        .to_owned();
    let url = format!("{rest}/collections/{model_collection}");
    let dropped =
        Command::new("curl").args(["-sf", "-o", "/dev/null", "-X", "DELETE", &url]).status().expect("curl runs");
    assert!(dropped.success(), "the test server dropped the collection");

    let report = workspace.json(&["verify", "--pipeline", pipeline_arg]);
    assert_eq!(report["problem_count"], 0, "{report:#}");
    assert_eq!(report["vector_points"], report["catalog_chunks"], "{report:#}");
    assert_eq!(hit_ids(&workspace.json(&query)), before);
}
