//! Search latency while a run writes a version: `cargo bench -p sluice-pipeline --bench
//! search_under_ingest` (prints p50/p95/p99 and ratios, measured in one run).
//!
//! Before issue 15 every search appended its audit entry itself, durably, under the catalog's
//! single writer lock, so searches queued behind the run's write transactions. Now the entry
//! goes to a queue that one writer thread empties in batches. Both paths are measured here,
//! interleaved query by query against the same running ingest: "sync audit" embeds the query,
//! searches the stores and appends the entry itself (the old path); "queued audit" is
//! `Engine::search`. A baseline with no ingest running comes first. Documents are SciFact
//! abstracts when `../shared/corpora` has them, else generated text.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_config::SourcePlan;
use sluice_core::ReadAccess;
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::{AuditEvent, SearchMode, SearchRequest};

/// Documents indexed before the measurement, and added by the run measured against.
const BASE: usize = 300;
const DURING: usize = 600;
const QUERIES: &[&str] = &[
    "cell proliferation in tumours",
    "vaccine efficacy in children",
    "mitochondrial DNA mutations",
    "insulin resistance and obesity",
    "antibiotic resistance genes",
    "blood pressure and salt intake",
    "neural stem cells",
    "sleep deprivation memory",
];

fn documents(count: usize) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact/corpus.jsonl");
    if let Ok(file) = std::fs::File::open(&path) {
        let texts: Vec<String> = std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let record: serde_json::Value = serde_json::from_str(&line).ok()?;
                Some(format!("{}\n\n{}\n", record["title"].as_str()?, record["text"].as_str()?))
            })
            .filter(|text| text.len() > 400)
            .take(count)
            .collect();
        if texts.len() == count {
            return texts;
        }
    }
    eprintln!("(SciFact is absent: generated documents)");
    (0..count)
        .map(|i| {
            format!("Report {i} on cell growth, blood pressure and vaccine trials in cohort {}.\n", i % 37).repeat(12)
        })
        .collect()
}

fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3;
    [at(0.5), at(0.95), at(0.99)]
}

/// The old path: the search, then its audit entry appended durably by the searching thread.
fn search_with_sync_audit(engine: &Engine, query: &str, mode: SearchMode) {
    let store = engine.store();
    let version = store.live_version().unwrap().expect("something is live");
    let vector = match mode {
        SearchMode::Lexical => None,
        _ => Some(engine.embedder().embed(&[query], 4096).unwrap().remove(0)),
    };
    let search = &engine.plan().search;
    let model = engine.embedder().fingerprint().to_hex();
    let hits = store
        .search(&SearchRequest {
            query,
            vector: vector.as_deref(),
            model: &model,
            version,
            k: 10,
            mode,
            lexical_candidates: search.lexical_candidates,
            dense_candidates: search.dense_candidates,
            rrf_k: search.rrf_k,
            fusion: search.fusion,
            lexical_weight: search.lexical_weight,
            dense_weight: search.dense_weight,
            hnsw_ef: search.hnsw_ef,
            access: &ReadAccess::Unrestricted,
            hidden_docs: &[],
            filter: &Default::default(),
        })
        .unwrap();
    let ids: Vec<String> = hits.iter().map(|hit| hit.chunk_id.to_hex()).collect();
    let detail = serde_json::json!({"version": version, "mode": mode, "k": 10, "chunk_ids": ids});
    store.catalog().audit(&[AuditEvent::new(&engine.plan().name, "bench", "search", query, detail)]).unwrap();
}

fn search_with_queued_audit(engine: &Engine, query: &str, mode: SearchMode) {
    engine.search(query, None, 10, mode, &ReadAccess::Unrestricted, "bench").unwrap();
}

const MODES: [(SearchMode, &str); 2] = [(SearchMode::Hybrid, "hybrid"), (SearchMode::Lexical, "lexical")];

fn main() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let texts = documents(BASE + DURING);
    for (i, text) in texts[..BASE].iter().enumerate() {
        std::fs::write(inbox.join(format!("doc-{i:04}.txt")), text).unwrap();
    }
    let mut plan = sluice_config::default_pipeline();
    plan.sources = vec![SourcePlan { path: inbox.clone() }];
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let engine = Engine::open(plan, &work.path().join("data"), &models).unwrap();
    engine.run(&Scope::All, &Quiet).unwrap();

    // Per mode: no ingest, during ingest with the sync audit, during ingest with the queue.
    let mut samples: [[Vec<Duration>; 3]; 2] = Default::default();
    for (m, (mode, _)) in MODES.iter().enumerate() {
        for i in 0..60 {
            let started = Instant::now();
            search_with_queued_audit(&engine, QUERIES[i % QUERIES.len()], *mode);
            samples[m][0].push(started.elapsed());
        }
    }

    for (i, text) in texts[BASE..].iter().enumerate() {
        std::fs::write(inbox.join(format!("doc-{:04}.txt", BASE + i)), text).unwrap();
    }
    let ingest_seconds = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let started = Instant::now();
            engine.run(&Scope::All, &Quiet).unwrap();
            started.elapsed().as_secs_f64()
        });
        // Interleaved query by query, so both paths see the same moments of the run.
        let mut i = 0;
        while !running.is_finished() {
            let query = QUERIES[i % QUERIES.len()];
            let (m, sync) = (i % 2, i % 4 < 2);
            let mode = MODES[m].0;
            let started = Instant::now();
            if sync {
                search_with_sync_audit(&engine, query, mode);
                samples[m][1].push(started.elapsed());
            } else {
                search_with_queued_audit(&engine, query, mode);
                samples[m][2].push(started.elapsed());
            }
            i += 1;
        }
        running.join().unwrap()
    });

    println!("search latency (k=10) while a run indexes {DURING} documents ({ingest_seconds:.1} s), same run");
    println!("{:<10} {:<38} {:>8} {:>10} {:>10} {:>10}", "mode", "", "queries", "p50 ms", "p95 ms", "p99 ms");
    let names = ["no ingest running", "during ingest, sync audit (before)", "during ingest, queued audit (after)"];
    for (m, (_, mode_name)) in MODES.iter().enumerate() {
        let mut p95 = Vec::new();
        for (name, samples) in names.iter().zip(std::mem::take(&mut samples[m])) {
            let count = samples.len();
            let [p50, p95_ms, p99] = percentiles(samples);
            p95.push(p95_ms);
            println!("{mode_name:<10} {name:<38} {count:>8} {p50:>10.2} {p95_ms:>10.2} {p99:>10.2}");
        }
        println!("{mode_name:<10} p95 during ingest, after / before: {:.2}", p95[2] / p95[1]);
    }
}
