//! Both forward passes (the packed CPU encoder, and candle's `BertModel`, which is what runs on a
//! GPU) must reproduce the Python reference (sentence-transformers) vectors.

use std::path::{Path, PathBuf};

use sluice_core::{DevicePreference, Precision};
use sluice_embed::{DEFAULT_MODEL, EmbedOptions, Embedder, ensure_model};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("SLUICE_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn the_cpu_encoder_matches_the_reference_implementation() {
    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    let embedder = Embedder::load_with(&files, EmbedOptions { device: DevicePreference::Cpu, ..Default::default() })
        .expect("model loads");
    assert_matches_reference(&embedder, 0.999);
}

/// The GPU's forward pass, run on the CPU in each precision a GPU uses.
#[test]
fn the_gpu_forward_pass_matches_the_reference_implementation_in_every_precision() {
    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    // bf16 keeps 8 bits of mantissa (f16 keeps 11): on 256-token passages it drifts to cosine
    // ~0.9987, so it is opt-in and held to 0.998.
    for (precision, floor) in [(Precision::F32, 0.999), (Precision::F16, 0.999), (Precision::Bf16, 0.998)] {
        assert_matches_reference(&Embedder::load_candle_on_cpu(&files, precision).expect("model loads"), floor);
    }
}

#[test]
fn reduced_precision_on_cpu_is_refused_clearly() {
    let files = ensure_model(&models_dir(), DEFAULT_MODEL).expect("model files");
    let options = EmbedOptions { device: DevicePreference::Cpu, precision: Precision::Bf16 };
    let err = Embedder::load_with(&files, options).err().expect("bf16 on CPU is refused").to_string();
    assert!(err.contains("bf16") && err.contains("GPU"), "{err}");
}

fn assert_matches_reference(embedder: &Embedder, floor: f32) {
    let reference = repo_root().join("../shared/corpora/reference-embeddings.jsonl");
    let Ok(lines) = std::fs::read_to_string(&reference) else {
        eprintln!("SKIPPED: {} is absent (the shared corpora are not on this machine)", reference.display());
        return;
    };
    let mut texts = Vec::new();
    let mut expected = Vec::new();
    for line in lines.lines().filter(|line| !line.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        texts.push(value["text"].as_str().unwrap().to_owned());
        let vector: Vec<f32> =
            value["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        expected.push(vector);
    }
    assert!(!texts.is_empty());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // A small budget forces several batches (with padding on the candle path), which must not
    // change any vector.
    let vectors = embedder.embed(&refs, 512).unwrap();
    let mut lowest = 1.0f32;
    for ((text, got), want) in texts.iter().zip(&vectors).zip(&expected) {
        assert_eq!(got.len(), embedder.dimension());
        let similarity = cosine(got, want);
        assert!(similarity >= floor, "{}: cosine {similarity} < {floor} for {text:?}", embedder.device_name());
        lowest = lowest.min(similarity);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "vector not unit length: {norm}");
    }
    eprintln!("{}: {} reference embeddings matched, lowest cosine {lowest:.6}", embedder.device_name(), texts.len());
}

#[test]
fn a_hash_mismatch_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join(DEFAULT_MODEL);
    std::fs::create_dir_all(&model_dir).unwrap();
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        std::fs::write(model_dir.join(file), b"not the pinned file").unwrap();
    }
    let err = ensure_model(dir.path(), DEFAULT_MODEL).unwrap_err().to_string();
    assert!(err.contains("sha256") && err.contains("sluice models fetch"), "{err}");
}
