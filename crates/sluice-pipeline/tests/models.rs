//! A model change without a gap: the new model fills a new version beside the old ones while
//! `live` keeps answering with the old model; a query is embedded by the model of the version
//! it reads; promotion switches over, and rollback returns to the old model without embedding
//! anything again.
//!
//! The two models are the same all-MiniLM-L6-v2 weights used two ways (the default: mean
//! pooling, 384 dimensions; the variant: the first token, cut to 256 dimensions): two real
//! models whose vectors differ in value and dimension, from the one model package this machine
//! can fetch. Each fills an index of its own.

mod common;

use std::path::Path;

use sluice_core::ReadAccess;
use sluice_eval::{Metric, Retriever, Threshold};
use sluice_pipeline::{Engine, Quiet, Scope, SearchResponse};
use sluice_store::SearchMode;

use common::{TOPICS, engine_with_models, models_dir};

const QUERIES: &[&str] = &["ships guided into port", "winter pruning of fruit trees", "bread baked early"];

/// A models folder with the default model and a variant pooling the first token and keeping
/// 256 dimensions, sharing the default's (fetched and verified) files.
fn two_models(dir: &Path) -> std::path::PathBuf {
    let files = sluice_embed::ensure_model(&models_dir(), sluice_embed::DEFAULT_MODEL).expect("default model");
    let models = dir.join("models");
    for name in [sluice_embed::DEFAULT_MODEL, "minilm-first-token"] {
        let folder = models.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for file in ["model.safetensors", "config.json", "tokenizer.json"] {
            if std::fs::hard_link(files.path(file), folder.join(file)).is_err() {
                std::fs::copy(files.path(file), folder.join(file)).unwrap();
            }
        }
    }
    let spec = std::fs::read_to_string(models_dir().join(sluice_embed::DEFAULT_MODEL).join("model.toml")).unwrap();
    std::fs::write(models.join(sluice_embed::DEFAULT_MODEL).join("model.toml"), &spec).unwrap();
    let variant = spec
        .replace("name = \"all-minilm-l6-v2\"", "name = \"minilm-first-token\"")
        .replace("pooling = \"mean\"", "pooling = \"cls\"\ntruncate_dim = 256");
    assert_ne!(variant, spec);
    std::fs::write(models.join("minilm-first-token").join("model.toml"), variant).unwrap();
    models
}

fn dense(engine: &Engine, query: &str, version: Option<i64>) -> SearchResponse {
    engine.search(query, version, TOPICS.len(), SearchMode::Dense, &ReadAccess::Unrestricted, "t").unwrap()
}

fn ranking(response: &SearchResponse) -> Vec<String> {
    response.hits.iter().map(|hit| hit.chunk_id.to_hex()).collect()
}

#[test]
fn live_answers_with_the_old_model_until_the_new_one_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data, set) = (dir.path().join("inbox"), dir.path().join("data"), dir.path().join("set.jsonl"));
    std::fs::create_dir_all(&inbox).unwrap();
    let mut lines = String::new();
    for (name, sentence) in TOPICS {
        std::fs::write(inbox.join(format!("{name}.txt")), format!("{sentence} Notes on the {name} go on.")).unwrap();
        lines.push_str(&serde_json::json!({"query": sentence, "relevant": [format!("{name}.txt")]}).to_string());
        lines.push('\n');
    }
    // A query whose relevant document does not exist: no version reaches recall 1, so the gate
    // holds every version after the first.
    lines.push_str("{\"query\": \"volcano eruption\", \"relevant\": [\"volcano.txt\"]}\n");
    std::fs::write(&set, lines).unwrap();
    let models = two_models(dir.path());

    // Version 1 under the default model, live without a gate.
    let old = engine_with_models(&inbox, &data, &models, |_| {});
    assert_eq!(old.run(&Scope::All, &Quiet).unwrap().version, Some(1));
    let old_model = old.embedder().fingerprint().to_hex();
    let before: Vec<SearchResponse> = QUERIES.iter().map(|q| dense(&old, q, None)).collect();
    drop(old);

    // The new model, behind a gate that holds: version 2 is written, live stays on 1.
    let gated = |plan: &mut sluice_config::PipelinePlan| {
        plan.embed.model = "minilm-first-token".into();
        plan.eval.set = Some(set.clone());
        plan.eval.document_key = "path".into();
        plan.eval.thresholds = vec![Threshold { metric: Metric::RecallAt10, retriever: Retriever::Dense, min: 1.0 }];
    };
    let new = engine_with_models(&inbox, &data, &models, gated);
    let new_model = new.embedder().fingerprint().to_hex();
    assert_ne!(new_model, old_model);
    assert_eq!(new.embedder().dimension(), 256);
    let second = new.run(&Scope::Paths(vec![inbox.join("bakery.txt")]), &Quiet).unwrap();
    assert_eq!((second.version, second.gate.as_deref()), (Some(2), Some("held")), "{second:?}");
    assert_eq!(second.reprocessed, TOPICS.len(), "a model change re-embeds every source, whatever the scope");
    assert_eq!(new.store().live_version().unwrap(), Some(1));
    assert_eq!(new.store().catalog().models_at("default", 2).unwrap(), vec![new_model.clone()]);

    // Live (1) answers as before: the query is embedded by version 1's model.
    for (query, earlier) in QUERIES.iter().zip(&before) {
        let now = dense(&new, query, None);
        assert_eq!((now.version, now.model.as_deref()), (Some(1), Some(old_model.as_str())));
        assert_eq!(ranking(&now), ranking(earlier), "{query}");
    }
    // Version 2 is read with the new model.
    let at_two = dense(&new, QUERIES[0], Some(2));
    assert_eq!((at_two.version, at_two.model.as_deref()), (Some(2), Some(new_model.as_str())));
    assert_eq!(at_two.hits.len(), TOPICS.len());

    // Promotion switches live to the new model; rollback returns to the old one, with no
    // embedding computed on the way.
    let cached = new.store().catalog().embedding_count().unwrap();
    assert_alias_follows(&data, &old_model);
    new.operations().promote(2, "olga", true).unwrap();
    assert_eq!(dense(&new, QUERIES[0], None).model.as_deref(), Some(new_model.as_str()));
    assert_alias_follows(&data, &new_model);
    assert_eq!(new.operations().roll_back_live("olga").unwrap(), 1);
    assert_alias_follows(&data, &old_model);
    let rolled_back = dense(&new, QUERIES[0], None);
    assert_eq!((rolled_back.version, rolled_back.model.as_deref()), (Some(1), Some(old_model.as_str())));
    assert_eq!(ranking(&rolled_back), ranking(&before[0]));
    assert_eq!(new.store().catalog().embedding_count().unwrap(), cached, "nothing was embedded again");
    let report = new.operations().verify(None).unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
}

/// On a Qdrant server, the collection name retrieval services use is an alias of the
/// collection of `live`'s model (Edge has no aliases: nothing to check there).
fn assert_alias_follows(data: &Path, model: &str) {
    let (sluice_config::VectorsPlan::Qdrant(plan), Ok(rest)) =
        (common::vectors_plan(data, "default"), std::env::var("SLUICE_TEST_QDRANT_REST"))
    else {
        return;
    };
    let output = std::process::Command::new("curl").args(["-sf", &format!("{rest}/aliases")]).output().unwrap();
    assert!(output.status.success(), "the test server lists its aliases");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let aliases = answer["result"]["aliases"].as_array().unwrap();
    let target =
        aliases.iter().find(|alias| alias["alias_name"] == plan.collection.as_str()).expect("the alias exists");
    assert_eq!(target["collection_name"], format!("{}-{}", plan.collection, &model[..16]), "{answer:#}");
}
