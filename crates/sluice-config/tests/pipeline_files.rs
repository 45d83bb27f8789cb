//! Every shipped pipeline file is valid, and every invalid fixture fails with exactly the errors
//! written beside it (`NAME.errors`, one `file:line:col: message` per line).

use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_pipeline_is_valid() {
    let files = toml_files(&repo_root().join("pipelines"));
    assert!(!files.is_empty(), "pipelines/ holds no pipeline file");
    for path in files {
        if let Err(errors) = sluice_config::load_pipeline(&path) {
            panic!("{} is invalid:\n{errors}", path.display());
        }
    }
}

#[test]
fn valid_fixtures_parse() {
    for path in toml_files(&repo_root().join("fixtures/pipelines/valid")) {
        if let Err(errors) = sluice_config::load_pipeline(&path) {
            panic!("{} is invalid:\n{errors}", path.display());
        }
    }
}

#[test]
fn invalid_fixtures_report_every_error_with_its_location() {
    let files = toml_files(&repo_root().join("fixtures/pipelines/invalid"));
    assert!(files.len() >= 3, "expected several invalid fixtures");
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let source = fs::read_to_string(&path).unwrap();
        let expected_path = path.with_extension("errors");
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|err| panic!("{} has no {}: {err}", name, expected_path.display()));
        let errors = match sluice_config::parse_pipeline(name, &source) {
            Ok(_) => panic!("{name} should be rejected"),
            Err(errors) => errors,
        };
        assert_eq!(errors.to_string().trim_end(), expected.trim_end(), "errors of {name}");
    }
}

#[test]
fn the_compiled_in_default_matches_the_documented_defaults() {
    let plan = sluice_config::default_pipeline();
    assert_eq!(plan.name, "default");
    assert_eq!(plan.sources.len(), 1);
    assert_eq!(plan.sources[0].path, PathBuf::from("inbox"));
    // A file that only sets the required keys gets the same settings.
    let minimal = sluice_config::parse_pipeline("m.toml", "version = 1\nname = \"default\"\n").unwrap();
    assert_eq!(minimal.chunk, plan.chunk);
    assert_eq!(minimal.embed, plan.embed);
    assert_eq!(minimal.search, plan.search);
    assert_eq!(minimal.watch, plan.watch);
    assert_eq!(minimal.limits, plan.limits);
    assert_eq!(minimal.server, plan.server);
    assert_eq!(minimal.retention, plan.retention);
    assert_eq!(minimal.access, plan.access);
    assert_eq!(minimal.pii, plan.pii);
    assert_eq!(minimal.eval, plan.eval);
    assert_eq!(minimal.audit, plan.audit);
    assert_eq!(minimal.store, plan.store);
    assert_eq!(plan.store.vectors, sluice_config::VectorsPlan::Edge);
}

#[test]
fn a_qdrant_server_store_reads_every_option() {
    let path = repo_root().join("fixtures/pipelines/valid/qdrant-server.toml");
    let plan = sluice_config::load_pipeline(&path).unwrap();
    let sluice_config::VectorsPlan::Qdrant(qdrant) = plan.store.vectors else { panic!("a Qdrant server store") };
    assert_eq!(qdrant.url, "https://qdrant.internal:6334");
    assert_eq!(qdrant.api_key_env.as_deref(), Some("QDRANT_API_KEY"));
    assert_eq!((qdrant.shards, qdrant.replication_factor, qdrant.write_consistency_factor), (6, 2, 2));
    assert_eq!(qdrant.quantization, sluice_config::Quantization::Int8);
    assert!(qdrant.on_disk_vectors);
    assert_eq!(qdrant.timeout, std::time::Duration::from_secs(20));
    // The collection is named after the pipeline unless the file names it.
    let text = "version = 1\nname = \"docs\"\n[store]\nvectors = \"qdrant\"\n[store.qdrant]\nurl = \"http://q:6334\"\n";
    let sluice_config::VectorsPlan::Qdrant(qdrant) = sluice_config::parse_pipeline("t", text).unwrap().store.vectors
    else {
        panic!("a Qdrant server store")
    };
    assert_eq!(qdrant.collection, "sluice-docs");
}

/// The cluster example of README "Cluster" (deploy/cluster.toml, read by every node of
/// deploy/compose.yaml) is valid and says what it means; a heartbeat too slow for its lease is
/// refused.
#[test]
fn the_cluster_example_reads_every_node_setting() {
    let plan = sluice_config::load_pipeline(&repo_root().join("deploy/cluster.toml")).unwrap();
    let sluice_config::CatalogPlan::Postgres(postgres) = &plan.store.catalog else { panic!("a PostgreSQL catalog") };
    assert_eq!((postgres.url_env.as_str(), postgres.schema.as_str()), ("SLUICE_POSTGRES_URL", "sluice"));
    assert_eq!((postgres.lease.as_secs(), postgres.heartbeat.as_secs(), postgres.claim_batch), (30, 5, 256));
    assert!(matches!(plan.store.vectors, sluice_config::VectorsPlan::Qdrant(_)));

    let text = "version = 1\nname = \"p\"\n[store]\ncatalog = \"postgres\"\n[store.postgres]\nlease_secs = 4\nheartbeat_secs = 3\n";
    let errors = sluice_config::parse_pipeline("t", text).unwrap_err().to_string();
    assert!(errors.contains("heartbeat_secs` (3) must be at most half of `lease_secs` (4)"), "{errors}");
}
