//! Embedding throughput of sluice's embedder on a fixed set of passages, and the machine's fp32
//! matrix-product rate. Run by `benches/embed-vs-pytorch.sh`, which compares it with
//! sentence-transformers in the same run; by hand:
//!   cargo bench -p sluice-embed --bench embed_throughput -- PASSAGES.jsonl [OUT.json]
//! PASSAGES.jsonl has one `{"text": ...}` per line. Prints a summary and writes JSON to OUT.json.
//! `SLUICE_BENCH_BATCH_TOKENS=N` overrides the tokens per forward pass.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use sluice_embed::{DEFAULT_MODEL, EmbedOptions, Embedder, ensure_model};

fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models")))
}

/// GFLOP/s of an fp32 `m × k` by `k × n` product through candle (the `gemm` kernels the encoder uses).
fn gemm_gflops(m: usize, k: usize, n: usize) -> f64 {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
    let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu).unwrap();
    let flops = 2.0 * (m * k * n) as f64;
    let reps = (30e9 / flops).ceil() as usize;
    a.matmul(&b).unwrap();
    // Best of three timings: the rate the hardware can reach, not a momentary dip.
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                a.matmul(&b).unwrap();
            }
            flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Floating-point operations of one forward pass over a sequence of `length` tokens (matrix
/// products only: 3 projections for QKV, the attention output, the two feed-forward layers, and
/// the two attention products).
fn forward_flops(length: usize, hidden: usize, intermediate: usize, layers: usize) -> f64 {
    let (l, h, i) = (length as f64, hidden as f64, intermediate as f64);
    layers as f64 * (2.0 * l * h * (3.0 * h + h + 2.0 * i) + 4.0 * l * l * h)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let Some(passages_path) = args.first() else {
        eprintln!("usage: cargo bench -p sluice-embed --bench embed_throughput -- PASSAGES.jsonl [OUT.json]");
        std::process::exit(2);
    };
    let texts: Vec<String> = std::fs::read_to_string(passages_path)
        .expect("passages file")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["text"].as_str().unwrap().to_owned())
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    let shapes = [(4096, 384, 1536), (4096, 1536, 384), (2048, 2048, 2048)];
    let gemm: Vec<f64> = shapes.iter().map(|&(m, k, n)| gemm_gflops(m, k, n)).collect();
    let gemm_best = gemm.iter().copied().fold(0.0, f64::max);

    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    let embedder = Embedder::load_with(&files, EmbedOptions::default()).expect("model loads");
    let lengths: Vec<usize> = embedder.tokenize(&texts).unwrap().iter().map(|e| e.len()).collect();
    let tokens: usize = lengths.iter().sum();
    let flops: f64 = lengths.iter().map(|&l| forward_flops(l, 384, 1536, 6)).sum();
    // SLUICE_BENCH_BATCH_TOKENS tries another forward-pass size than the device default.
    let budget = std::env::var("SLUICE_BENCH_BATCH_TOKENS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| embedder.default_batch_tokens());
    embedder.embed(&texts[..texts.len().min(64)], budget).unwrap();

    let start = Instant::now();
    let vectors = embedder.embed(&texts, budget).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), texts.len());
    let tokens_per_second = tokens as f64 / seconds;
    let achieved_gflops = flops / seconds / 1e9;

    println!(
        "sluice embedder: {}, {} threads, batch {budget} tokens",
        embedder.device_name(),
        rayon::current_num_threads()
    );
    println!("  passages {}, tokens {tokens} (mean {:.0}/passage)", texts.len(), tokens as f64 / texts.len() as f64);
    for (&(m, k, n), rate) in shapes.iter().zip(&gemm) {
        println!("  fp32 GEMM {m}x{k}x{n}: {rate:.1} GFLOP/s");
    }
    println!(
        "  {tokens_per_second:.0} tokens/s in {seconds:.2} s = {achieved_gflops:.1} GFLOP/s, {:.0}% of the best GEMM rate",
        100.0 * achieved_gflops / gemm_best
    );
    if let Some(out) = args.get(1) {
        let report = serde_json::json!({
            "device": embedder.device_name(),
            "threads": rayon::current_num_threads(),
            "passages": texts.len(),
            "tokens": tokens,
            "flops": flops,
            "seconds": seconds,
            "tokens_per_second": tokens_per_second,
            "gemm_gflops": gemm_best,
            "vectors": vectors,
        });
        std::fs::write(out, report.to_string()).expect("write report");
    }
}
