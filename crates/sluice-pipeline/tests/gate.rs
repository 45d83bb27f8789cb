//! The evaluation gate through the library: a version that passes goes live; a deliberately
//! broken pipeline change yields a version that is held while live stays on the previous one,
//! until `promote --force`, which the audit log attributes.

mod common;

use std::path::Path;

use sluice_config::PiiPolicyPlan;
use sluice_core::ReadAccess;
use sluice_eval::{Metric, Retriever, Threshold};
use sluice_pipeline::{DocumentKey, EvalOptions, Quiet, Scope};
use sluice_store::SearchMode;

use common::{TOPICS, engine_with};

/// One file per topic and a JSONL set asking for each by a paraphrase of its sentence.
fn write_corpus_and_set(inbox: &Path, set: &Path) {
    std::fs::create_dir_all(inbox).unwrap();
    let mut lines = String::new();
    for (name, sentence) in TOPICS {
        let text = format!("{sentence} {sentence} Notes on the {name} continue with daily records.");
        std::fs::write(inbox.join(format!("{name}.txt")), text).unwrap();
        let query = sentence.split_whitespace().take(7).collect::<Vec<_>>().join(" ");
        lines.push_str(&serde_json::json!({"query": query, "relevant": [format!("{name}.txt")]}).to_string());
        lines.push('\n');
    }
    std::fs::write(set, lines).unwrap();
}

fn gate_plan(set: &Path) -> impl FnOnce(&mut sluice_config::PipelinePlan) + '_ {
    move |plan| {
        plan.eval.set = Some(set.to_owned());
        plan.eval.document_key = "path".into();
        plan.eval.thresholds = vec![
            Threshold { metric: Metric::NdcgAt10, retriever: Retriever::Hybrid, min: 0.8 },
            Threshold { metric: Metric::RecallAt10, retriever: Retriever::Lexical, min: 0.8 },
        ];
    }
}

#[test]
fn a_broken_version_is_held_until_forced_and_the_audit_says_who() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data, set) = (dir.path().join("inbox"), dir.path().join("data"), dir.path().join("set.jsonl"));
    write_corpus_and_set(&inbox, &set);

    let engine = engine_with(&inbox, &data, gate_plan(&set));
    let first = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((first.version, first.gate.as_deref()), (Some(1), Some("passed")), "{first:?}");
    assert_eq!(engine.store().live_version().unwrap(), Some(1));
    let sets = sluice_eval::load(&set, "test").unwrap();
    let report =
        engine.evaluate(&sets, Some(1), EvalOptions { document_key: DocumentKey::Path, ..Default::default() }).unwrap();
    assert!(report.summaries[&Retriever::Hybrid].ndcg_at_10 >= 0.8, "{:?}", report.summaries);
    drop(engine);

    // The broken change: a PII pattern that matches every chunk, with chunks dropped.
    let broken = |plan: &mut sluice_config::PipelinePlan| {
        gate_plan(&set)(plan);
        plan.pii.policy = PiiPolicyPlan::DropChunk;
        plan.pii.patterns = vec![("anything".into(), "[a-z]+".into())];
    };
    let engine = engine_with(&inbox, &data, broken);
    let second = engine.run(&Scope::All, &Quiet).unwrap();
    assert_eq!((second.version, second.gate.as_deref()), (Some(2), Some("held")), "{second:?}");
    assert_eq!(engine.store().live_version().unwrap(), Some(1), "live stays on the version that passed");
    let versions = engine.operations().versions().unwrap();
    let held = versions.iter().find(|v| v.version == 2).unwrap();
    assert_eq!(held.gate.as_deref(), Some("held"));
    let evaluation = held.evaluation.as_ref().unwrap();
    assert_eq!(evaluation["failures"].as_array().unwrap().len(), 2, "{evaluation}");
    assert_eq!(evaluation["summaries"]["hybrid"]["ndcg_at_10"], 0.0);
    // Searches keep answering from version 1.
    let hits =
        engine.search("lighthouse keeper", None, 3, SearchMode::Lexical, &ReadAccess::Unrestricted, "t").unwrap();
    assert_eq!(hits.version, Some(1));
    assert!(hits.hits[0].path.ends_with("lighthouse.txt"));

    // Promoting it needs --force; then it is live, marked forced, and the audit names who.
    let refused = engine.operations().promote(2, "olga", false).unwrap_err();
    assert_eq!(refused.kind(), sluice_core::ErrorKind::Conflict, "the HTTP API answers 409");
    let refused = refused.to_string();
    assert!(refused.contains("held by the evaluation gate"), "{refused}");
    engine.operations().promote(2, "olga", true).unwrap();
    assert_eq!(engine.store().live_version().unwrap(), Some(2));
    let forced = engine.operations().versions().unwrap().into_iter().find(|v| v.version == 2).unwrap();
    assert_eq!(forced.gate.as_deref(), Some("forced"));
    let audit = engine.store().catalog().audit_entries(None, 0, 10_000).unwrap();
    assert!(audit.iter().any(|e| e.action == "gate_passed" && e.subject == "version 1"));
    assert!(audit.iter().any(|e| e.action == "held" && e.subject == "version 2" && e.principal == "pipeline"));
    let promoted = audit.iter().find(|e| e.action == "promoted" && e.subject == "version 2").unwrap();
    assert_eq!((promoted.principal.as_str(), promoted.detail["force"].as_bool()), ("olga", Some(true)));
    assert_eq!(promoted.detail["gate"], "held");

    // Rollback never lands on a held version: from 2 it goes back to 1.
    assert_eq!(engine.operations().roll_back_live("olga").unwrap(), 1);
}

/// A daemon asked to stop does not wait for a whole evaluation: the gate stops too, records
/// no verdict, and the version is judged when the next run starts.
#[test]
fn a_stop_ends_the_gate_early_and_the_version_is_judged_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, data, set) = (dir.path().join("inbox"), dir.path().join("data"), dir.path().join("set.jsonl"));
    write_corpus_and_set(&inbox, &set);

    let engine = engine_with(&inbox, &data, gate_plan(&set));
    engine.request_stop();
    let stopped = engine.run(&Scope::All, &Quiet).unwrap();
    assert!(stopped.stopped_early);
    let version = stopped.version.expect("what was done is committed");
    assert_eq!(stopped.gate, None, "no verdict while stopping");
    assert_eq!(engine.store().catalog().gate("default", version).unwrap(), None);
    assert_eq!(engine.store().live_version().unwrap(), None);
    drop(engine);

    let engine = engine_with(&inbox, &data, gate_plan(&set));
    let next = engine.run(&Scope::All, &Quiet).unwrap();
    assert!(engine.store().catalog().gate("default", version).unwrap().is_some(), "judged at the next start");
    assert_eq!(next.gate.as_deref(), Some("passed"));
    assert_eq!(engine.store().live_version().unwrap(), next.version);
}
