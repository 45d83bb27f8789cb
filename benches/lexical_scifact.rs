//! Lexical retrieval quality on SciFact in seconds, without embedding anything: every abstract
//! through the pipeline's text stage (extract, clean, chunk, enrich) into a real Tantivy index,
//! then the BEIR train queries (300 chunks each, ranked by document as `sluice eval` does).
//! Prints nDCG@10, recall@10 and recall@100, the indexing and query times, and the share of
//! chunks the enrich stage found English (all of SciFact is).
//!
//! `cargo bench -p sluice-pipeline --bench lexical_scifact`; the daemon's own numbers, with the
//! dense and hybrid retrievers, come from `bash benches/eval-scifact.sh`.

use std::path::Path;
use std::time::Instant;

use sluice_core::{ChunkId, PointKey, VERSION_OPEN};
use sluice_eval::{evaluate_query, summarise};
use sluice_pipeline::TextStage;
use sluice_store::{LexicalDoc, LexicalIndex, Readable, TantivyIndex};

/// What `sluice eval` asks each retriever for.
const CHUNKS_PER_QUERY: usize = 300;

fn main() {
    let scifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact");
    if !scifact.join("corpus.jsonl").is_file() {
        eprintln!("SKIPPED: {} is absent", scifact.display());
        return;
    }
    let split = std::env::args().skip(1).find(|arg| !arg.starts_with('-')).unwrap_or_else(|| "train".into());
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let stage = TextStage::for_plan(&sluice_config::default_pipeline(), &models).expect("text stage");
    let set = sluice_eval::load_beir(&scifact, &split).expect("SciFact queries");

    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = TantivyIndex::open(dir.path()).unwrap();
    let corpus = std::fs::read_to_string(scifact.join("corpus.jsonl")).unwrap();
    let mut owners = std::collections::HashMap::new();
    let (mut chunks, mut english) = (0, 0);
    for line in corpus.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = record["_id"].as_str().unwrap().to_owned();
        let file = format!("{}\n\n{}\n", record["title"].as_str().unwrap_or(""), record["text"].as_str().unwrap_or(""));
        let (prepared, _) = stage.prepare(file.as_bytes(), &format!("{id}.txt"));
        let Ok(prepared) = prepared else { continue };
        let text = prepared.text;
        let docs: Vec<LexicalDoc<'_>> = text
            .chunks
            .iter()
            .map(|chunk| {
                let chunk_id =
                    ChunkId::from_bytes(*blake3::hash(format!("{id}/{}", chunk.ordinal).as_bytes()).as_bytes());
                owners.insert(chunk_id, id.clone());
                LexicalDoc {
                    key: PointKey { chunk: chunk_id, valid_from: 1 },
                    valid_to: VERSION_OPEN,
                    doc_id: id.clone(),
                    path: "",
                    title: text.title.as_deref(),
                    text: &chunk.text,
                    headings: &chunk.heading_path,
                    readers: &[],
                    language: chunk.language.as_deref(),
                    facets: Default::default(),
                }
            })
            .collect();
        chunks += docs.len();
        english += text.chunks.iter().filter(|chunk| chunk.language.as_deref() == Some("eng")).count();
        index.put(&docs).unwrap();
    }
    index.commit().unwrap();
    let indexing = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let results: Vec<_> = set
        .queries
        .iter()
        .map(|query| {
            let asked = Instant::now();
            let hits = index.search(&query.text, 1, Readable::unrestricted(), CHUNKS_PER_QUERY).unwrap();
            let keys: Vec<String> = hits.iter().map(|hit| owners[&hit.chunk_id].clone()).collect();
            evaluate_query(query, &keys, asked.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    let querying = started.elapsed().as_secs_f64();
    let summary = summarise(&results);
    println!(
        "SciFact {split}: {} queries over {chunks} chunks (text stage + index {indexing:.1} s, queries {querying:.1} s)",
        results.len()
    );
    println!(
        "chunks the enrich stage found English: {english} of {chunks} ({:.1}%)",
        english as f64 * 100.0 / chunks as f64
    );
    println!(
        "lexical nDCG@10 {:.4}  recall@10 {:.4}  recall@100 {:.4}  MRR@10 {:.4}",
        summary.ndcg_at_10, summary.recall_at_10, summary.recall_at_100, summary.mrr_at_10
    );
}
