//! Qdrant Edge against a Qdrant server, in one run: `bash benches/vector-backends.sh` (it
//! builds and starts an optimised server on loopback, then runs this with
//! `SLUICE_BENCH_QDRANT_URL` and `SLUICE_BENCH_QDRANT_REST` set).
//!
//! 1. Ingest: the first 5,000 SciFact abstracts, one `sluice ingest`-like run per backend into a
//!    fresh data directory (each embeds everything, so the difference is the store), wall time
//!    and the write stage's time.
//! 2. Search at 100k chunks: the vectors of those chunks, repeated with small perturbations
//!    to 100,000 points, written straight into a fresh index of each backend; after each has
//!    built its HNSW graph, p50/p95 of the dense top 10 at a version for SciFact's queries,
//!    unrestricted and filtered to one reader group (a tenth of the points).
//!
//! Ratios are server / Edge. Needs `../shared/corpora/scifact`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_config::{SourcePlan, VectorsPlan};
use sluice_core::{ChunkId, PointKey, ReadAccess};
use sluice_pipeline::{Engine, Quiet, Scope};
use sluice_store::{
    DenseQuery, EdgeVectors, PointPayload, Readable, ServerConnection, ServerVectors, VectorIndex, VectorPoint,
};

const DOCUMENTS: usize = 5_000;
const POINTS: usize = 100_000;
const GROUPS: usize = 10;
const QUERIES: usize = 300;

fn scifact() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact");
    path.is_dir().then_some(path)
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let file = std::fs::File::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    std::io::BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
}

fn server_plan(collection: &str) -> VectorsPlan {
    let url =
        std::env::var("SLUICE_BENCH_QDRANT_URL").expect("SLUICE_BENCH_QDRANT_URL: run benches/vector-backends.sh");
    let text = format!(
        "version = 1\nname = \"bench\"\n[store]\nvectors = \"qdrant\"\n[store.qdrant]\nurl = {url:?}\n\
         collection = {collection:?}\ntimeout_secs = 300\n"
    );
    sluice_config::parse_pipeline("bench", &text).expect("store tables").store.vectors
}

/// One run over `inbox` into a fresh data directory; (wall seconds, write-stage seconds).
fn ingest(inbox: &Path, data: &Path, vectors: VectorsPlan, models: &Path) -> (f64, f64, Engine) {
    let mut plan = sluice_config::default_pipeline();
    plan.name = "bench".into();
    plan.sources = vec![SourcePlan { path: inbox.to_owned() }];
    plan.store.vectors = vectors;
    let engine = Engine::open(plan, data, models).expect("engine");
    let started = Instant::now();
    let summary = engine.run(&Scope::All, &Quiet).expect("run");
    let wall = started.elapsed().as_secs_f64();
    let write = summary.stage_seconds.get("write").copied().unwrap_or_default();
    eprintln!("  {} documents, {} chunks in {wall:.1} s (write {write:.1} s)", summary.indexed, summary.chunks_added);
    (wall, write, engine)
}

/// Waits until the server has indexed every point of `collection` (its optimisers are idle).
fn wait_until_indexed(collection: &str) {
    let rest = std::env::var("SLUICE_BENCH_QDRANT_REST").expect("SLUICE_BENCH_QDRANT_REST");
    for _ in 0..3_000 {
        let output = std::process::Command::new("curl")
            .args(["-sf", &format!("{rest}/collections/{collection}")])
            .output()
            .expect("curl");
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let result = &info["result"];
        if result["status"] == "green" && result["indexed_vectors_count"].as_u64() >= Some(POINTS as u64 * 9 / 10) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the server did not finish indexing {collection}");
}

fn percentiles(mut samples: Vec<Duration>) -> [f64; 2] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    [at(0.50).as_secs_f64() * 1e3, at(0.95).as_secs_f64() * 1e3]
}

/// p50/p95 of the dense top 10 at version 1, for `access`.
fn latencies(index: &dyn VectorIndex, queries: &[Vec<f32>], access: &ReadAccess) -> [f64; 2] {
    let readable = Readable::by(access, &[]);
    let mut samples = Vec::with_capacity(queries.len());
    for vector in queries {
        let query = DenseQuery { vector, version: 1, readable, limit: 10, hnsw_ef: 256, exact: false };
        let started = Instant::now();
        let hits = index.search(&query).expect("search");
        samples.push(started.elapsed());
        assert_eq!(hits.len(), 10);
    }
    percentiles(samples)
}

/// `POINTS` points from `seeds` (unit vectors): each repeated with a small perturbation.
fn points_from(seeds: &[Vec<f32>]) -> Vec<(PointKey, Vec<f32>)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    (0..POINTS)
        .map(|i| {
            let seed = &seeds[i % seeds.len()];
            let mut vector: Vec<f32> = seed.iter().map(|x| x + 0.02 * noise()).collect();
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            vector.iter_mut().for_each(|x| *x /= norm);
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (PointKey { chunk: ChunkId::from_bytes(id), valid_from: 1 }, vector)
        })
        .collect()
}

fn fill(index: &dyn VectorIndex, points: &[(PointKey, Vec<f32>)], readers: &[Vec<String>]) -> f64 {
    let started = Instant::now();
    for (start, batch) in points.chunks(1_000).enumerate() {
        let batch: Vec<VectorPoint<'_>> = batch
            .iter()
            .enumerate()
            .map(|(offset, (key, vector))| {
                let i = start * 1_000 + offset;
                let payload = PointPayload {
                    text: "a chunk of about this size stands in for the text a real payload carries",
                    path: "/bench/doc.txt",
                    uri: "file:///bench/doc.txt".into(),
                    ..PointPayload::minimal(*key, format!("d{}", i / 3), &readers[i % GROUPS])
                };
                VectorPoint { key: *key, vector, payload }
            })
            .collect();
        index.upsert(&batch).expect("upsert");
    }
    index.flush().expect("flush");
    started.elapsed().as_secs_f64()
}

fn main() {
    let Some(scifact) = scifact() else {
        eprintln!("SKIPPED: ../shared/corpora/scifact is absent");
        return;
    };
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let work = tempfile::tempdir().expect("temp dir");
    let inbox = work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for record in jsonl(&scifact.join("corpus.jsonl")).iter().take(DOCUMENTS) {
        let text = format!("{}\n\n{}\n", record["title"].as_str().unwrap_or(""), record["text"].as_str().unwrap_or(""));
        std::fs::write(inbox.join(format!("{}.txt", record["_id"].as_str().unwrap())), text).unwrap();
    }
    let run = std::process::id();

    eprintln!("ingest of {DOCUMENTS} SciFact documents, Qdrant Edge:");
    let (edge_wall, edge_write, edge_engine) = ingest(&inbox, &work.path().join("edge"), VectorsPlan::Edge, &models);
    eprintln!("ingest of {DOCUMENTS} SciFact documents, Qdrant server:");
    let collection = format!("bench-ingest-{run}");
    let (server_wall, server_write, _) = ingest(&inbox, &work.path().join("server"), server_plan(&collection), &models);

    // The vectors the ingest made, as seeds for 100k points.
    let seeds: Vec<Vec<f32>> = edge_engine
        .store()
        .vectors()
        .appearances()
        .expect("appearances")
        .into_iter()
        .map(|(_, point)| point.vector)
        .collect();
    let points = points_from(&seeds);
    let readers: Vec<Vec<String>> = (0..GROUPS).map(|g| vec![format!("group:g{g}")]).collect();
    let files = sluice_embed::ensure_model(&models, sluice_embed::DEFAULT_MODEL).expect("model");
    let embedder = sluice_embed::Embedder::load(&files).expect("embedder");
    let texts: Vec<String> = jsonl(&scifact.join("queries.jsonl"))
        .iter()
        .filter_map(|q| q["text"].as_str().map(str::to_owned))
        .take(QUERIES)
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let queries = embedder.embed(&refs, embedder.default_batch_tokens()).expect("queries");

    let edge = EdgeVectors::open(&work.path().join("edge-100k"), 384).expect("edge");
    let edge_fill = fill(&edge, &points, &readers);
    edge.optimize(2).expect("optimize");
    let server_collection = format!("bench-100k-{run}");
    let VectorsPlan::Qdrant(plan) = server_plan(&server_collection) else { unreachable!() };
    let connection = std::sync::Arc::new(ServerConnection::new(&plan, "bench").expect("server"));
    let server = ServerVectors::new(connection, server_collection.clone(), Some(384));
    server.prepare().expect("collection");
    let server_fill = fill(&server, &points, &readers);
    wait_until_indexed(&server_collection);

    let one_group = ReadAccess::Keys(vec!["group:g3".into()]);
    let cases = [("unrestricted", ReadAccess::Unrestricted), ("one group in ten", one_group)];
    println!("\nQdrant Edge vs Qdrant server (v1.16.3, loopback gRPC); ratio = server / Edge");
    println!("{:<44} {:>12} {:>12} {:>8}", "", "Edge", "server", "ratio");
    let row = |name: &str, edge: f64, server: f64, unit: &str| {
        println!("{name:<44} {:>10.1}{unit} {:>10.1}{unit} {:>8.2}", edge, server, server / edge);
    };
    row(&format!("ingest {DOCUMENTS} SciFact documents, wall"), edge_wall, server_wall, " s");
    row("  of which the write stage", edge_write, server_write, " s");
    row(&format!("write {POINTS} points (1,000 per call)"), edge_fill, server_fill, " s");
    for (name, access) in &cases {
        let [edge_p50, edge_p95] = latencies(&edge, &queries, access);
        let [server_p50, server_p95] = latencies(&server, &queries, access);
        row(&format!("dense top 10 at 100k, {name}, p50"), edge_p50, server_p50, "ms");
        row(&format!("dense top 10 at 100k, {name}, p95"), edge_p95, server_p95, "ms");
    }
}
