//! A BERT sentence encoder: tokenize, forward, pool, normalise, on the device chosen at load.
//!
//! Two forward passes share the tokenizer and pooling rules:
//! - on CPU, the lean packed encoder in `cpu` (f32, no padding, fused kernels);
//! - on a CUDA GPU, candle tensors (`candle_bert`) in f16 or bf16, on padded batches. The same
//!   path can run on the CPU (`Embedder::load_candle_on_cpu`), in any precision, which is how
//!   tests check it without a GPU.

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::Config;
use sluice_core::{DevicePreference, Fingerprint, Precision};
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tracing::{info, warn};

use crate::candle_bert::{CandleBert, mean_pool};
use crate::cpu::CpuBert;
use crate::{EmbedError, ModelFiles, ModelSpec, Pooling, plan_batches};

/// Token budget of one CPU forward pass. Throughput was flat (±5%, within noise) from 1k to 16k
/// tokens on 2 cores (`benches/embed_throughput.rs`, `SLUICE_BENCH_BATCH_TOKENS`); 4k keeps a
/// pass's activations near 70 MB.
const CPU_BATCH_TOKENS: usize = 4_096;
/// Token budget of one GPU forward pass (padded), enough to keep a large GPU busy.
const GPU_BATCH_TOKENS: usize = 65_536;

/// How to run the model; the pipeline file's `[embed]` section chooses.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbedOptions {
    pub device: DevicePreference,
    pub precision: Precision,
}

enum Backend {
    Cpu(CpuBert),
    Candle { model: CandleBert, device: Device },
}

pub struct Embedder {
    backend: Backend,
    tokenizer: Tokenizer,
    spec: ModelSpec,
    fingerprint: Fingerprint,
    precision: Precision,
}

impl Embedder {
    /// Loads the model on the default device (CUDA if built in and present, else CPU) in its
    /// default precision.
    pub fn load(files: &ModelFiles) -> Result<Self, EmbedError> {
        Self::load_with(files, EmbedOptions::default())
    }

    /// Loads the model `name` from the models folder, fetching its files on first use.
    pub fn load_named(models_dir: &std::path::Path, name: &str, options: EmbedOptions) -> Result<Self, EmbedError> {
        Self::load_with(&crate::ensure_model(models_dir, name)?, options)
    }

    pub fn load_with(files: &ModelFiles, options: EmbedOptions) -> Result<Self, EmbedError> {
        let (config, weights) = read_model(files)?;
        let device = choose_device(options.device)?;
        let precision = match (options.precision, device.is_cpu()) {
            (Precision::Auto, true) => Precision::F32,
            (Precision::Auto, false) => Precision::F16,
            (Precision::F16 | Precision::Bf16, true) => {
                return Err(EmbedError::Unsupported(format!(
                    "embed.precision = \"{}\" runs on a GPU only; the CPU encoder computes in f32",
                    options.precision
                )));
            }
            (chosen, _) => chosen,
        };
        let backend = if device.is_cpu() {
            Backend::Cpu(CpuBert::load(&config, &weights)?)
        } else {
            candle_backend(&config, weights, precision, device)?
        };
        let embedder = Self::assemble(files, backend, precision)?;
        info!(model = %embedder.spec.name, device = %embedder.device_name(), "embedding model loaded");
        Ok(embedder)
    }

    /// The GPU's forward pass (candle, padded batches) run on the CPU in `precision`: slow, but
    /// it checks what runs on a GPU on a machine without one.
    pub fn load_candle_on_cpu(files: &ModelFiles, precision: Precision) -> Result<Self, EmbedError> {
        let (config, weights) = read_model(files)?;
        let backend = candle_backend(&config, weights, precision, Device::Cpu)?;
        Self::assemble(files, backend, precision)
    }

    fn assemble(files: &ModelFiles, backend: Backend, precision: Precision) -> Result<Self, EmbedError> {
        let spec = files.spec.clone();
        let tokenizer = load_tokenizer(&files.path("tokenizer.json"), spec.max_tokens)?;
        // f16/bf16 vectors differ from f32 ones, so they are cached apart.
        let fingerprint = match precision {
            Precision::F32 | Precision::Auto => spec.fingerprint(),
            reduced => {
                Fingerprint::combine(&[spec.fingerprint(), Fingerprint::of("embed-precision", &reduced.to_string())])
            }
        };
        Ok(Self { backend, tokenizer, spec, fingerprint, precision })
    }

    pub fn dimension(&self) -> usize {
        self.spec.output_dimension()
    }

    /// The pinned model this embedder runs.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The precision the forward pass computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Identifies the vectors this embedder produces; the embedding cache is keyed by it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// "cpu (packed f32)", "cuda:0 (f16)", ...: for logs and benchmark output.
    pub fn device_name(&self) -> String {
        match &self.backend {
            Backend::Cpu(_) => "cpu (packed f32)".to_owned(),
            Backend::Candle { device: Device::Cpu, .. } => format!("cpu (candle {})", self.precision),
            Backend::Candle { device, .. } => format!("{:?} ({})", device.location(), self.precision),
        }
    }

    /// Whether the forward pass runs on the CPU (the CPU encoder, or candle after a fallback).
    pub fn runs_on_cpu(&self) -> bool {
        match &self.backend {
            Backend::Cpu(_) => true,
            Backend::Candle { device, .. } => device.is_cpu(),
        }
    }

    /// Tokens per forward pass that suit the device, used where the pipeline file sets none.
    pub fn default_batch_tokens(&self) -> usize {
        if self.runs_on_cpu() { CPU_BATCH_TOKENS } else { GPU_BATCH_TOKENS }
    }

    /// Token ids of `texts` as the model sees them (special tokens added, truncated to the window).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EmbedError> {
        self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|err| EmbedError::Tokenizer(err.to_string()))
    }

    /// Embeds `texts`, batched by `budget_tokens` tokens per forward pass (padding included on a
    /// GPU). The result is in the order of `texts`, each vector `dimension()` long (unit length
    /// if the model says so).
    pub fn embed(&self, texts: &[&str], budget_tokens: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenize(texts)?;
        let lengths: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        for batch in plan_batches(&lengths, budget_tokens, self.pads_batches()) {
            let members: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let pooled = match &self.backend {
                Backend::Cpu(model) => {
                    let ids: Vec<&[u32]> = members.iter().map(|encoding| encoding.get_ids()).collect();
                    model.forward(&ids, self.spec.pooling)?
                }
                Backend::Candle { model, device } => candle_forward(model, device, &members, self.spec.pooling)?,
            };
            for (index, mut vector) in batch.iter().zip(pooled) {
                vector.truncate(self.dimension());
                if self.spec.normalize {
                    normalize(&mut vector);
                }
                vectors[*index] = vector;
            }
        }
        Ok(vectors)
    }

    fn pads_batches(&self) -> bool {
        matches!(self.backend, Backend::Candle { .. })
    }
}

/// The model's configuration and its safetensors bytes.
fn read_model(files: &ModelFiles) -> Result<(Config, Vec<u8>), EmbedError> {
    let path = files.path("config.json");
    let text = std::fs::read_to_string(&path).map_err(EmbedError::io(&path))?;
    let config =
        serde_json::from_str(&text).map_err(|err| EmbedError::InvalidSpec { path, detail: err.to_string() })?;
    let path = files.path("model.safetensors");
    let weights = std::fs::read(&path).map_err(EmbedError::io(&path))?;
    Ok((config, weights))
}

/// The device for `preference`; `Auto` falls back to the CPU (logged) when CUDA is not usable.
fn choose_device(preference: DevicePreference) -> Result<Device, EmbedError> {
    if preference == DevicePreference::Cpu {
        return Ok(Device::Cpu);
    }
    if !cfg!(feature = "cuda") {
        if preference == DevicePreference::Cuda {
            return Err(EmbedError::Unsupported(
                "embed.device = \"cuda\", but this binary was built without the `cuda` feature".into(),
            ));
        }
        info!("built without CUDA: embedding on the CPU");
        return Ok(Device::Cpu);
    }
    match Device::new_cuda(0) {
        Ok(device) => Ok(device),
        Err(err) if preference == DevicePreference::Auto => {
            warn!(error = %err, "no usable CUDA device: embedding on the CPU");
            Ok(Device::Cpu)
        }
        Err(err) => Err(EmbedError::Unsupported(format!("embed.device = \"cuda\", but CUDA device 0 failed: {err}"))),
    }
}

fn candle_backend(
    config: &Config,
    weights: Vec<u8>,
    precision: Precision,
    device: Device,
) -> Result<Backend, EmbedError> {
    let dtype = match precision {
        Precision::F16 => DType::F16,
        Precision::Bf16 => DType::BF16,
        Precision::F32 | Precision::Auto => DType::F32,
    };
    let model = CandleBert::load(config, weights, dtype, &device)?;
    Ok(Backend::Candle { model, device })
}

/// One padded forward pass through the candle encoder; pooling runs in f32.
fn candle_forward(
    model: &CandleBert,
    device: &Device,
    batch: &[&Encoding],
    pooling: Pooling,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let width = batch.iter().map(|encoding| encoding.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(batch.len() * width);
    let mut mask = Vec::with_capacity(batch.len() * width);
    for encoding in batch {
        let padding = width - encoding.len();
        ids.extend_from_slice(encoding.get_ids());
        ids.extend(std::iter::repeat_n(0u32, padding));
        mask.extend(std::iter::repeat_n(1u32, encoding.len()));
        mask.extend(std::iter::repeat_n(0u32, padding));
    }
    let shape = (batch.len(), width);
    let input_ids = Tensor::from_vec(ids, shape, device)?;
    let attention_mask = Tensor::from_vec(mask, shape, device)?;
    let hidden = model.forward(&input_ids, &attention_mask)?;
    let pooled = match pooling {
        Pooling::Mean => mean_pool(&hidden, &attention_mask)?,
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?.to_dtype(DType::F32)?,
    };
    Ok(pooled.to_vec2::<f32>()?)
}

fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|x| *x /= norm);
}

/// The model's tokenizer, truncating at the model's window and never padding (batches pad).
fn load_tokenizer(path: &std::path::Path, max_tokens: usize) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|err| EmbedError::Tokenizer(err.to_string()))?;
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: max_tokens, ..TruncationParams::default() }))
        .map_err(|err| EmbedError::Tokenizer(err.to_string()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}
