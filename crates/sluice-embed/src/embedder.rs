//! A BERT sentence encoder on candle: tokenize, forward, pool, normalise.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sluice_core::Fingerprint;
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tracing::info;

use crate::{EmbedError, ModelFiles, ModelSpec, Pooling, plan_batches};

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    spec: ModelSpec,
    fingerprint: Fingerprint,
}

impl Embedder {
    pub fn load(files: &ModelFiles) -> Result<Self, EmbedError> {
        let spec = files.spec.clone();
        let device = Device::Cpu;
        let config_path = files.path("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(EmbedError::io(&config_path))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|err| EmbedError::InvalidSpec { path: config_path, detail: err.to_string() })?;
        let weights_path = files.path("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(EmbedError::io(&weights_path))?;
        let model = BertModel::load(VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?, &config)?;
        let tokenizer = load_tokenizer(&files.path("tokenizer.json"), spec.max_tokens)?;
        info!(model = %spec.name, device = ?device, "embedding model loaded");
        let fingerprint = spec.fingerprint();
        Ok(Self { model, tokenizer, device, spec, fingerprint })
    }

    pub fn dimension(&self) -> usize {
        self.spec.dimension
    }

    /// Identifies the vectors this embedder produces; the embedding cache is keyed by it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Embeds `texts`, batched by `budget_tokens` (padded tokens per forward pass). The result is
    /// in the order of `texts`, each vector `dimension()` long (unit length if the model says so).
    pub fn embed(&self, texts: &[&str], budget_tokens: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|err| EmbedError::Tokenizer(err.to_string()))?;
        let lengths: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in plan_batches(&lengths, budget_tokens) {
            let members: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            for (index, vector) in batch.iter().zip(self.forward(&members)?) {
                vectors[*index] = vector;
            }
        }
        Ok(vectors)
    }

    /// One forward pass over a batch, padded to its longest member.
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
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
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let attention_mask = Tensor::from_vec(mask, shape, &self.device)?;
        let token_type_ids = input_ids.zeros_like()?;
        let hidden = self.model.forward(&input_ids, &token_type_ids, Some(&attention_mask))?;
        let pooled = match self.spec.pooling {
            Pooling::Mean => {
                let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                summed.broadcast_div(&mask.sum(1)?)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        let pooled = if self.spec.normalize {
            let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            pooled.broadcast_div(&norms)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }
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
