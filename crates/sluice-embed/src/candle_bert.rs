//! BERT on candle tensors, for GPUs: padded batches, f16, bf16 or f32.
//!
//! Why not candle's `BertModel`: it builds the attention mask as `(1 - mask) × f32::MIN` cast to
//! the model's dtype, which is `-inf` in f16, so every real token's score becomes `0 × -inf = NaN`.
//! This pass adds a finite `-10_000` for padding (what BERT's reference code uses), keeps the
//! query, key and value projections fused in one product, and uses candle's fused softmax and
//! layer norm kernels, which accumulate in f32 on reduced-precision inputs.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::EmbedError;

/// Added to the attention scores of padding positions: exp(-10⁴) is 0 in every float format,
/// and -10⁴ is finite in f16 (whose lowest finite value is -65504).
const MASKED_SCORE: f64 = -10_000.0;

pub struct CandleBert {
    word_embeddings: Embedding,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    dtype: DType,
}

struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl CandleBert {
    pub fn load(config: &Config, weights: Vec<u8>, dtype: DType, device: &Device) -> Result<Self, EmbedError> {
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            return Err(EmbedError::Unsupported(format!(
                "the encoder implements BERT with exact GELU, not {:?}",
                config.hidden_act
            )));
        }
        let vb = VarBuilder::from_buffered_safetensors(weights, dtype, device)?;
        // Some exports prefix every name with `bert.`; accept both.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
        let embeddings = vb.pp("embeddings");
        let word_embeddings = candle_nn::embedding(config.vocab_size, hidden, embeddings.pp("word_embeddings"))?;
        let position_embeddings =
            embeddings.get((config.max_position_embeddings, hidden), "position_embeddings.weight")?;
        let token_type_embedding =
            embeddings.get((config.type_vocab_size, hidden), "token_type_embeddings.weight")?.get(0)?;
        let embeddings_norm = candle_nn::layer_norm(hidden, eps, embeddings.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let layer = vb.pp(format!("encoder.layer.{index}"));
            let attention = layer.pp("attention");
            let part = |name: &str| candle_nn::linear(hidden, hidden, attention.pp("self").pp(name));
            let (q, k, v) = (part("query")?, part("key")?, part("value")?);
            let bias = |l: &Linear| {
                l.bias().cloned().ok_or_else(|| EmbedError::Unsupported("a projection has no bias".into()))
            };
            let qkv = Linear::new(
                Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?,
                Some(Tensor::cat(&[bias(&q)?, bias(&k)?, bias(&v)?], 0)?),
            );
            layers.push(Layer {
                qkv,
                attention_output: candle_nn::linear(hidden, hidden, attention.pp("output.dense"))?,
                attention_norm: candle_nn::layer_norm(hidden, eps, attention.pp("output.LayerNorm"))?,
                intermediate: candle_nn::linear(hidden, config.intermediate_size, layer.pp("intermediate.dense"))?,
                output: candle_nn::linear(config.intermediate_size, hidden, layer.pp("output.dense"))?,
                output_norm: candle_nn::layer_norm(hidden, eps, layer.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embeddings_norm,
            layers,
            heads: config.num_attention_heads,
            dtype,
        })
    }

    /// Hidden states `(batch, length, hidden)` in the model's dtype for `ids` and `mask`
    /// (`(batch, length)` u32, 1 for real tokens, 0 for padding).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor, EmbedError> {
        let (batch, length) = ids.dims2()?;
        let positions = self.position_embeddings.narrow(0, 0, length)?;
        let mut hidden = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_embedding)?
            .apply(&self.embeddings_norm)?;
        // (batch, 1, 1, length): 0 where attending is allowed, MASKED_SCORE on padding.
        let additive_mask = ((mask.to_dtype(DType::F32)? - 1.0)? * -MASKED_SCORE)?
            .to_dtype(self.dtype)?
            .reshape((batch, 1, 1, length))?;
        for layer in &self.layers {
            hidden = self.layer_forward(layer, &hidden, &additive_mask)?;
        }
        Ok(hidden)
    }

    fn layer_forward(&self, layer: &Layer, hidden: &Tensor, additive_mask: &Tensor) -> Result<Tensor, EmbedError> {
        let (batch, length, width) = hidden.dims3()?;
        let head_width = width / self.heads;
        // (batch, length, 3, heads, head_width) → three (batch, heads, length, head_width).
        let qkv = layer.qkv.forward(hidden)?.reshape((batch, length, 3, self.heads, head_width))?;
        let part = |index: usize| qkv.narrow(2, index, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        let (queries, keys, values) = (part(0)?, part(1)?, part(2)?);
        let scores =
            (queries.matmul(&keys.t()?)? * (1.0 / (head_width as f64).sqrt()))?.broadcast_add(additive_mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights.matmul(&values)?.transpose(1, 2)?.reshape((batch, length, width))?;
        let attended = (layer.attention_output.forward(&context)? + hidden)?.apply(&layer.attention_norm)?;
        let expanded = layer.intermediate.forward(&attended)?.gelu_erf()?;
        Ok((layer.output.forward(&expanded)? + attended)?.apply(&layer.output_norm)?)
    }
}

/// Mean of the hidden states over real tokens, in f32: `(batch, hidden)`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor, EmbedError> {
    let hidden = hidden.to_dtype(DType::F32)?;
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    Ok(hidden.broadcast_mul(&mask)?.sum(1)?.broadcast_div(&mask.sum(1)?)?)
}
