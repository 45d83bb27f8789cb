//! What the library tests share: an engine over a source folder with the real model.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sluice_config::{PipelinePlan, SourcePlan, StorePlan, VectorsPlan};
use sluice_pipeline::Engine;

pub fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// An engine on the default pipeline watching `inbox`, after `edit` adjusts the plan, on the
/// stores under test ([`store_plan`]).
pub fn engine_with(inbox: &Path, data: &Path, edit: impl FnOnce(&mut PipelinePlan)) -> Engine {
    engine_with_models(inbox, data, &models_dir(), edit)
}

/// [`engine_with`], with the models in `models`.
pub fn engine_with_models(inbox: &Path, data: &Path, models: &Path, edit: impl FnOnce(&mut PipelinePlan)) -> Engine {
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: inbox.to_owned() }];
    edit(&mut plan);
    plan.store = store_plan(data, &plan.name);
    Engine::open(plan, data, models).expect("engine opens")
}

/// The stores of the pipeline `name` in `data` under test (`.ci/run` runs the suites each way):
/// vectors in the Qdrant server `SLUICE_TEST_QDRANT_URL` names, if it names one, in a
/// collection of this data directory's own; the catalog in the PostgreSQL database
/// `SLUICE_TEST_POSTGRES_URL` names, if it names one, in a schema of this data directory's own;
/// the embedded default otherwise.
pub fn store_plan(data: &Path, name: &str) -> StorePlan {
    let data = std::path::absolute(data).unwrap();
    let dir = blake3::hash(data.as_os_str().as_encoded_bytes()).to_hex();
    let dir = &dir[..16];
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (qdrant, postgres) = (env("SLUICE_TEST_QDRANT_URL"), env("SLUICE_TEST_POSTGRES_URL"));
    let mut text = format!("version = 1\nname = {name:?}\n[store]\n");
    if qdrant.is_some() {
        text.push_str("vectors = \"qdrant\"\n");
    }
    if postgres.is_some() {
        text.push_str("catalog = \"postgres\"\n");
    }
    if let Some(url) = qdrant {
        text.push_str(&format!("[store.qdrant]\nurl = {url:?}\ncollection = \"sluice-test-{dir}-{name}\"\n"));
    }
    if postgres.is_some() {
        text.push_str(&format!("[store.postgres]\nurl_env = \"SLUICE_TEST_POSTGRES_URL\"\nschema = \"t_{dir}\"\n"));
    }
    sluice_config::parse_pipeline("test", &text).expect("store tables parse").store
}

/// Runs one statement on the catalog of `data` behind sluice's back (a test's tampering) and
/// returns the rows it changed: with `psql` in the PostgreSQL catalog's schema, else on the
/// SQLite file.
pub fn tamper_catalog(data: &Path, sql: &str) -> u64 {
    let Ok(url) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        let connection = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
        return connection.execute(sql, []).unwrap() as u64;
    };
    let sluice_config::CatalogPlan::Postgres(plan) = store_plan(data, "default").catalog else {
        unreachable!("a PostgreSQL catalog under test")
    };
    let output = std::process::Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("SET search_path TO {}; {sql}", plan.schema))
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    // psql reports the last statement's tag: `UPDATE 1`.
    let tag = String::from_utf8_lossy(&output.stdout);
    tag.split_whitespace().last().and_then(|n| n.parse().ok()).expect("a row count")
}

/// The vector store of the pipeline `name` in `data` under test.
pub fn vectors_plan(data: &Path, name: &str) -> VectorsPlan {
    store_plan(data, name).vectors
}

/// One short document per topic, for tests that ask for each by a paraphrase.
pub const TOPICS: &[(&str, &str)] = &[
    ("lighthouse", "The lighthouse keeper trims the lamp wick and logs passing ships at dusk."),
    ("orchard", "Apple trees in the orchard are pruned in late winter before the buds swell."),
    ("glacier", "The glacier retreats a few metres each summer, leaving moraines of grey gravel."),
    ("bakery", "The bakery proves its sourdough overnight and bakes rye loaves before dawn."),
    ("harbour", "Tugboats guide the container ship through the narrow harbour entrance."),
    ("beehive", "Beekeepers smoke the hive gently before lifting frames heavy with honey."),
    ("observatory", "The observatory telescope tracks a comet across the northern sky."),
    ("vineyard", "Grapes in the vineyard are picked by hand when the sugar level peaks."),
];
