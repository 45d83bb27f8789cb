//! What permission filtering and query auditing cost a search, against an unrestricted search
//! measured in the same run: `cargo bench --bench access_filter` (prints a table of ratios).
//!
//! 20,000 chunk appearances with clustered 384-d vectors and generated text, each readable by
//! one of 20 groups. Readers see 5% (one group) or 50% (ten groups) of them. Qdrant Edge is
//! measured exact (brute force) and after `optimize` (HNSW); Tantivy with BM25. The audit row
//! is one `search` entry appended with its fsync, as the daemon does per query.

use std::time::{Duration, Instant};

use sluice_core::{ChunkId, PointKey, Principal, ReadAccess, VERSION_OPEN};
use sluice_store::{
    AuditEvent, AuditLog, DenseQuery, EdgeVectors, LexicalDoc, LexicalIndex, PointPayload, Readable, SqlCatalog,
    TantivyIndex, VectorIndex, VectorPoint,
};

const POINTS: usize = 20_000;
const GROUPS: usize = 20;
const DIMENSION: usize = 384;
const QUERIES: usize = 200;

/// A small deterministic generator (xorshift), so every run measures the same data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0 - 0.5
    }
}

fn vector(random: &mut Random, centre: &[f32]) -> Vec<f32> {
    centre.iter().map(|c| c + 0.3 * random.unit()).collect()
}

const WORDS: &[&str] = &[
    "canal", "ledger", "harbour", "granite", "orchard", "beacon", "willow", "copper", "lantern", "meadow", "thistle",
    "quarry", "saffron", "glacier", "timber", "furnace", "signal", "river", "gate", "sluice",
];

fn text(random: &mut Random) -> String {
    (0..40).map(|_| WORDS[(random.next() % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

fn reader(groups: usize) -> ReadAccess {
    ReadAccess::of(&Principal { user: "bench".into(), groups: (0..groups).map(|g| format!("g{g}")).collect() })
}

/// Median milliseconds per call of `f` over `QUERIES` calls (after 20 warm-up calls).
fn median_ms(mut f: impl FnMut(usize)) -> f64 {
    (0..20).for_each(&mut f);
    let mut times: Vec<Duration> = (0..QUERIES)
        .map(|i| {
            let started = Instant::now();
            f(i);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[QUERIES / 2].as_secs_f64() * 1e3
}

/// The 10 nearest points visible at version 1 (hnsw_ef 256).
fn dense(vectors: &EdgeVectors, vector: &[f32], readable: Readable<'_>, exact: bool) {
    let query = DenseQuery { vector, version: 1, readable, limit: 10, hnsw_ef: 256, exact };
    vectors.search(&query).expect("dense");
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vectors = EdgeVectors::open(&dir.path().join("qdrant"), DIMENSION).expect("qdrant");
    let (lexical, _) = TantivyIndex::open(&dir.path().join("tantivy")).expect("tantivy");
    let catalog = SqlCatalog::sqlite(&dir.path().join("catalog.sqlite")).expect("catalog");
    let mut random = Random(0x5eed);
    let centres: Vec<Vec<f32>> = (0..50).map(|_| (0..DIMENSION).map(|_| random.unit()).collect()).collect();
    let mut keys = Vec::with_capacity(POINTS);
    let mut embeddings = Vec::with_capacity(POINTS);
    let mut texts = Vec::with_capacity(POINTS);
    let readers: Vec<Vec<String>> = (0..GROUPS).map(|g| vec![format!("group:g{g}")]).collect();
    for i in 0..POINTS {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        keys.push(PointKey { chunk: ChunkId::from_bytes(id), valid_from: 1 });
        embeddings.push(vector(&mut random, &centres[i % centres.len()]));
        texts.push(text(&mut random));
    }
    for start in (0..POINTS).step_by(1000) {
        let range = start..(start + 1000).min(POINTS);
        let points: Vec<VectorPoint<'_>> = range
            .clone()
            .map(|i| VectorPoint {
                key: keys[i],
                vector: &embeddings[i],
                payload: PointPayload {
                    text: &texts[i],
                    ..PointPayload::minimal(keys[i], format!("d{i}"), &readers[i % GROUPS])
                },
            })
            .collect();
        vectors.upsert(&points).expect("upsert");
        let docs: Vec<LexicalDoc<'_>> = range
            .map(|i| LexicalDoc {
                key: keys[i],
                valid_to: VERSION_OPEN,
                doc_id: format!("d{i}"),
                path: "bench",
                title: None,
                text: &texts[i],
                headings: &[],
                readers: &readers[i % GROUPS],
                language: Some("eng"),
                facets: Default::default(),
            })
            .collect();
        lexical.put(&docs).expect("put");
    }
    vectors.flush().expect("flush");
    lexical.commit().expect("commit");
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|i| vector(&mut random, &centres[i % centres.len()])).collect();
    let words: Vec<String> =
        (0..QUERIES).map(|i| format!("{} {}", WORDS[i % WORDS.len()], WORDS[(i * 7) % WORDS.len()])).collect();

    let cases = [
        ("everything (unrestricted)", ReadAccess::Unrestricted),
        ("50% (10 groups)", reader(10)),
        ("5% (1 group)", reader(1)),
    ];
    println!("{POINTS} chunks, {GROUPS} groups; median of {QUERIES} queries, top 10");
    println!(
        "{:<28} {:>12} {:>8} {:>12} {:>8} {:>12} {:>8}",
        "readable", "BM25 ms", "ratio", "exact ms", "ratio", "HNSW ms", "ratio"
    );
    let mut rows = Vec::new();
    for (name, access) in &cases {
        let bm25 = median_ms(|i| {
            lexical.search(&words[i], 1, Readable::by(access, &[]), 10).expect("lexical");
        });
        let exact = median_ms(|i| {
            dense(&vectors, &queries[i], Readable::by(access, &[]), true);
        });
        rows.push((name, bm25, exact));
    }
    vectors.optimize(2).expect("optimize");
    let hnsw: Vec<f64> = cases
        .iter()
        .map(|(_, access)| {
            median_ms(|i| {
                dense(&vectors, &queries[i], Readable::by(access, &[]), false);
            })
        })
        .collect();
    let (base_bm25, base_exact, base_hnsw) = (rows[0].1, rows[0].2, hnsw[0]);
    for ((name, bm25, exact), hnsw) in rows.iter().zip(&hnsw) {
        println!(
            "{name:<28} {bm25:>12.3} {:>8.2} {exact:>12.3} {:>8.2} {hnsw:>12.3} {:>8.2}",
            bm25 / base_bm25,
            exact / base_exact,
            hnsw / base_hnsw
        );
    }
    let audit = median_ms(|i| {
        let detail =
            serde_json::json!({"version": 1, "mode": "hybrid", "k": 10, "chunk_ids": [keys[i].chunk.to_hex()]});
        catalog.audit(&[AuditEvent::new("bench", "bench", "search", words[i].clone(), detail)]).expect("audit");
    });
    println!("audit entry per query: {audit:.3} ms (durable append; {:.2}x a filtered HNSW search)", audit / hnsw[2]);
}
