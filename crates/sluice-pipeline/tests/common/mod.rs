//! What the library tests share: an engine over a source folder with the real model.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sluice_config::{PipelinePlan, SourcePlan, VectorsPlan};
use sluice_pipeline::Engine;

pub fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// An engine on the default pipeline watching `inbox`, after `edit` adjusts the plan. Its
/// vectors go to the Qdrant server `SLUICE_TEST_QDRANT_URL` names, when it names one (`.ci/run`
/// runs the suites both ways), in a collection of this data directory's own.
pub fn engine_with(inbox: &Path, data: &Path, edit: impl FnOnce(&mut PipelinePlan)) -> Engine {
    engine_with_models(inbox, data, &models_dir(), edit)
}

/// [`engine_with`], with the models in `models`.
pub fn engine_with_models(inbox: &Path, data: &Path, models: &Path, edit: impl FnOnce(&mut PipelinePlan)) -> Engine {
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: inbox.to_owned() }];
    edit(&mut plan);
    plan.store.vectors = vectors_plan(data, &plan.name);
    Engine::open(plan, data, models).expect("engine opens")
}

/// The vector store of the pipeline `name` in `data` under test.
pub fn vectors_plan(data: &Path, name: &str) -> VectorsPlan {
    let Some(url) = std::env::var("SLUICE_TEST_QDRANT_URL").ok().filter(|url| !url.is_empty()) else {
        return VectorsPlan::Edge;
    };
    let data = std::path::absolute(data).unwrap();
    let dir = blake3::hash(data.as_os_str().as_encoded_bytes()).to_hex();
    let text = format!(
        "version = 1\nname = {name:?}\n[store]\nvectors = \"qdrant\"\n[store.qdrant]\nurl = {url:?}\n\
         collection = \"sluice-test-{}-{name}\"\n",
        &dir[..16]
    );
    sluice_config::parse_pipeline("test", &text).expect("store tables parse").store.vectors
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
