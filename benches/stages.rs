//! Throughput of the per-document stages: extraction per format, clean + chunk with the real
//! tokenizer, and one embedding batch. `cargo bench -p sluice --bench stages`.
//!
//! Inputs are generated here (deterministic), so the bench runs on any clone.

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_embed::{DEFAULT_MODEL, Embedder, ensure_model};
use sluice_transform::{Chunker, normalize};

fn paragraphs(count: usize) -> Vec<String> {
    let words = [
        "ingest", "version", "lineage", "catalog", "vector", "query", "the", "of", "and", "document", "chunk", "model",
    ];
    (0..count)
        .map(|p| {
            let length = 40 + (p * 37) % 80;
            let mut text: Vec<&str> = (0..length).map(|i| words[(i * 5 + p * 3) % words.len()]).collect();
            text.push("end.");
            text.join(" ")
        })
        .collect()
}

fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models")))
}

fn extraction(c: &mut Criterion) {
    let paragraphs = paragraphs(200);
    let markdown: String = paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 10 == 0 { format!("## Section {i}\n\n{p}\n\n") } else { format!("{p}\n\n") })
        .collect();
    let html = format!(
        "<!doctype html><html><head><title>Bench</title><style>p{{}}</style></head><body><nav>menu</nav><main>{}</main><footer>f</footer></body></html>",
        paragraphs.iter().map(|p| format!("<p>{p}</p>")).collect::<String>()
    );
    let mut group = c.benchmark_group("extract");
    for (name, bytes, file) in [("markdown", markdown.as_bytes(), "bench.md"), ("html", html.as_bytes(), "bench.html")]
    {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| sluice_extract::extract(bytes, file, &sluice_extract::Limits::default()).unwrap())
        });
    }
    group.finish();
}

fn clean_and_chunk(c: &mut Criterion) {
    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    let chunker = Chunker::new(&std::fs::read(files.path("tokenizer.json")).unwrap(), 200, 32).unwrap();
    let text = paragraphs(200).join("\n\n");
    let document = sluice_extract::extract(text.as_bytes(), "bench.txt", &sluice_extract::Limits::default()).unwrap();
    let mut group = c.benchmark_group("clean_and_chunk");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("200_paragraphs", |b| b.iter(|| chunker.chunk(&normalize(document.clone())).unwrap()));
    group.finish();
}

fn embedding(c: &mut Criterion) {
    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    let embedder = Embedder::load(&files).unwrap();
    let passages = paragraphs(32);
    let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("32_passages", |b| b.iter(|| embedder.embed(&texts, 16_384).unwrap()));
    group.finish();
}

criterion_group!(benches, extraction, clean_and_chunk, embedding);
criterion_main!(benches);
