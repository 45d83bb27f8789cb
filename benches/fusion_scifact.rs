//! How the lexical and dense results are best fused, measured on the SciFact train split: each
//! query's candidates are fetched once from a real ingest (the default pipeline, the abstracts as
//! `<id>.txt` files, as `benches/eval-scifact.sh` writes them), then every fusion is scored by
//! nDCG@10 and recall@100 over the same candidates: reciprocal rank fusion with several
//! constants, weights and candidate counts, and score fusion (min-max or z-score normalised
//! scores, weighted).
//!
//! `cargo bench -p sluice-pipeline --bench fusion_scifact`. The ingest (about five minutes on
//! two cores) is kept in the target directory and reused while its pipeline does not change.

use std::collections::HashMap;
use std::path::Path;

use sluice_config::SourcePlan;
use sluice_core::{ChunkId, Version};
use sluice_eval::{EvalQuery, evaluate_query, summarise};
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::{DenseQuery, Readable};

/// Candidates fetched from each retriever (the most any variant uses).
const FETCHED: usize = 300;

type Key = (ChunkId, Version);

/// One query's candidates: each retriever's list, best first, with scores.
struct Candidates {
    lexical: Vec<(Key, f64)>,
    dense: Vec<(Key, f64)>,
}

#[derive(Clone, Copy, Debug)]
enum Fusion {
    Rrf {
        k: f64,
        lexical_weight: f64,
        candidates: usize,
    },
    /// Scores scaled to [0, 1] within each list (min-max) or standardised (z), then
    /// `lexical_weight * lexical + (1 - lexical_weight) * dense`; a chunk missing from a list
    /// gets that list's lowest score.
    Scores {
        z: bool,
        lexical_weight: f64,
        candidates: usize,
    },
}

fn fuse(candidates: &Candidates, fusion: Fusion) -> Vec<(Key, f64)> {
    let mut fused: HashMap<Key, f64> = HashMap::new();
    match fusion {
        Fusion::Rrf { k, lexical_weight, candidates: n } => {
            for (list, weight) in [(&candidates.lexical, lexical_weight), (&candidates.dense, 2.0 - lexical_weight)] {
                for (rank, (key, _)) in list.iter().take(n).enumerate() {
                    *fused.entry(*key).or_default() += weight / (k + rank as f64 + 1.0);
                }
            }
        }
        Fusion::Scores { z, lexical_weight, candidates: n } => {
            let scaled = |list: &[(Key, f64)]| -> (HashMap<Key, f64>, f64) {
                let list = &list[..list.len().min(n)];
                let scores: Vec<f64> = list.iter().map(|(_, score)| *score).collect();
                let (min, max) = scores.iter().fold((f64::MAX, f64::MIN), |(a, b), &s| (a.min(s), b.max(s)));
                let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
                let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len().max(1) as f64).sqrt();
                let scale = |s: f64| if z { (s - mean) / sd.max(1e-9) } else { (s - min) / (max - min).max(1e-9) };
                let floor = if z { scale(min) } else { 0.0 };
                (list.iter().map(|(key, score)| (*key, scale(*score))).collect(), floor)
            };
            let (lexical, lexical_floor) = scaled(&candidates.lexical);
            let (dense, dense_floor) = scaled(&candidates.dense);
            for key in lexical.keys().chain(dense.keys()) {
                let l = lexical.get(key).copied().unwrap_or(lexical_floor);
                let d = dense.get(key).copied().unwrap_or(dense_floor);
                fused.insert(*key, lexical_weight * l + (1.0 - lexical_weight) * d);
            }
        }
    }
    let mut ranked: Vec<(Key, f64)> = fused.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

fn main() {
    let scifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact");
    if !scifact.join("corpus.jsonl").is_file() {
        eprintln!("SKIPPED: {} is absent", scifact.display());
        return;
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fusion-scifact");
    let (docs, data) = (work.join("docs"), work.join("data"));
    if !docs.is_dir() {
        std::fs::create_dir_all(&docs).unwrap();
        for line in std::fs::read_to_string(scifact.join("corpus.jsonl")).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let text =
                format!("{}\n\n{}\n", record["title"].as_str().unwrap_or(""), record["text"].as_str().unwrap_or(""));
            std::fs::write(docs.join(format!("{}.txt", record["_id"].as_str().unwrap())), text).unwrap();
        }
    }
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: docs.clone() }];
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let engine = Engine::open(plan, &data, &models).expect("engine");
    let summary = engine.run(&Scope::All, &Quiet).expect("ingest");
    eprintln!("ingest: {} documents indexed this time ({:.0} s)", summary.indexed, summary.elapsed_seconds);
    let store = engine.store();
    let version = store.live_version().unwrap().expect("a live version");
    let model = engine.embedder().fingerprint().to_hex();
    let hnsw_ef = engine.plan().search.hnsw_ef;

    let set = sluice_eval::load_beir(&scifact, "train").expect("queries");
    let mut owners: HashMap<Key, String> = HashMap::new();
    let mut all: Vec<(EvalQuery, Candidates)> = Vec::new();
    for query in set.queries {
        let lexical: Vec<(Key, f64)> = store
            .lexical()
            .search(&query.text, version, Readable::unrestricted(), FETCHED)
            .unwrap()
            .into_iter()
            .map(|hit| ((hit.chunk_id, hit.valid_from), f64::from(hit.score)))
            .collect();
        let vector = engine.embedder().embed(&[query.text.as_str()], 4096).unwrap().remove(0);
        let dense_query = DenseQuery {
            vector: &vector,
            version,
            readable: Readable::unrestricted(),
            limit: FETCHED,
            hnsw_ef,
            exact: false,
        };
        let dense: Vec<(Key, f64)> = store
            .vectors()
            .search(&model, &dense_query)
            .unwrap()
            .into_iter()
            .map(|hit| ((hit.chunk_id, hit.valid_from), f64::from(hit.score)))
            .collect();
        let unknown: Vec<Key> =
            lexical.iter().chain(&dense).map(|(key, _)| *key).filter(|key| !owners.contains_key(key)).collect();
        for chunk in store.catalog().chunks_by_key(&engine.plan().name, &unknown).unwrap() {
            let stem = Path::new(&chunk.path).file_stem().unwrap().to_string_lossy().into_owned();
            owners.insert((chunk.chunk_id, chunk.valid_from), stem);
        }
        all.push((query, Candidates { lexical, dense }));
    }

    let mut variants = Vec::new();
    for candidates in [50, 100, 200, 300] {
        for k in [10.0, 30.0, 60.0, 100.0] {
            for lexical_weight in [0.6, 0.8, 1.0, 1.2, 1.4] {
                variants.push(Fusion::Rrf { k, lexical_weight, candidates });
            }
        }
        for z in [false, true] {
            for lexical_weight in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
                variants.push(Fusion::Scores { z, lexical_weight, candidates });
            }
        }
    }
    let mut scored: Vec<(f64, f64, Fusion)> = variants
        .into_iter()
        .map(|fusion| {
            let results: Vec<_> = all
                .iter()
                .map(|(query, candidates)| {
                    let keys: Vec<String> =
                        fuse(candidates, fusion).iter().map(|(key, _)| owners[key].clone()).collect();
                    evaluate_query(query, &keys, 0.0)
                })
                .collect();
            let summary = summarise(&results);
            (summary.ndcg_at_10, summary.recall_at_100, fusion)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let only = |lexical_weight: f64| Fusion::Rrf { k: 60.0, lexical_weight, candidates: 100 };
    for (name, fusion) in
        [("lexical only", only(2.0)), ("dense only", only(0.0)), ("today: RRF k 60, 100 each", only(1.0))]
    {
        let results: Vec<_> = all
            .iter()
            .map(|(query, candidates)| {
                let keys: Vec<String> = fuse(candidates, fusion).iter().map(|(key, _)| owners[key].clone()).collect();
                evaluate_query(query, &keys, 0.0)
            })
            .collect();
        let summary = summarise(&results);
        println!("{name:<40} nDCG@10 {:.4}  recall@100 {:.4}", summary.ndcg_at_10, summary.recall_at_100);
    }
    println!("best 25 of {} fusions on SciFact train:", scored.len());
    for (ndcg, recall, fusion) in scored.iter().take(25) {
        println!("  nDCG@10 {ndcg:.4}  recall@100 {recall:.4}  {fusion:?}");
    }
}
