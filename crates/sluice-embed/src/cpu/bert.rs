//! A lean BERT forward pass for the CPU, with candle as the weights library.
//!
//! Why not candle's `BertModel` here: on CPU it spends most of its time outside the matrix
//! products (one pass and one allocation per element-wise op, single-threaded GELU, copies to make
//! transposes contiguous, padding). This encoder runs on *packed* batches: the tokens of all
//! sequences sit in one `[tokens, hidden]` matrix with no padding, so every linear layer is one
//! large matrix product, and attention runs per sequence on views into the fused QKV buffer.
//! Biases and residuals are written into the output before the product accumulates onto them;
//! layer norm, GELU and softmax are fused single passes (`kernels`).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use super::kernels::{add_bias_rows, fill_rows, gelu, layer_norm, softmax_rows};
use super::matmul::{MatMut, MatRef, Parallelism, matmul};
use crate::{EmbedError, Pooling};

pub struct CpuBert {
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    max_positions: usize,
    /// Row 0 of the token-type table: every token of a single-segment input has type 0.
    token_type_embedding: Vec<f32>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A `[out, in]` weight (PyTorch's layout, read transposed by the product) and its bias.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Layer {
    /// Query, key and value stacked into one `[3 × hidden, hidden]` weight: one product, not three.
    qkv: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// Scratch buffers of one forward pass, sized by its token count.
struct Buffers {
    hidden: Vec<f32>,
    scratch: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    intermediate: Vec<f32>,
}

impl CpuBert {
    pub fn load(config: &Config, weights: &[u8]) -> Result<Self, EmbedError> {
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            return Err(EmbedError::Unsupported(format!(
                "the CPU encoder implements BERT with exact GELU, not {:?}",
                config.hidden_act
            )));
        }
        if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(EmbedError::Unsupported("hidden size is not a multiple of the head count".into()));
        }
        let mut tensors = Tensors(candle_core::safetensors::load_buffer(weights, &Device::Cpu)?);
        let (hidden, intermediate) = (config.hidden_size, config.intermediate_size);
        let token_types = tensors.take("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, hidden])?;
        let embeddings_norm = tensors.norm("embeddings.LayerNorm", hidden)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{index}");
            let [q, k, v] = ["query", "key", "value"]
                .map(|part| tensors.linear(&format!("{prefix}.attention.self.{part}"), hidden, hidden));
            let (q, k, v) = (q?, k?, v?);
            let qkv = Linear {
                weight: [q.weight, k.weight, v.weight].concat(),
                bias: [q.bias, k.bias, v.bias].concat(),
                inputs: hidden,
                outputs: 3 * hidden,
            };
            layers.push(Layer {
                qkv,
                attention_output: tensors.linear(&format!("{prefix}.attention.output.dense"), hidden, hidden)?,
                attention_norm: tensors.norm(&format!("{prefix}.attention.output.LayerNorm"), hidden)?,
                intermediate: tensors.linear(&format!("{prefix}.intermediate.dense"), hidden, intermediate)?,
                output: tensors.linear(&format!("{prefix}.output.dense"), intermediate, hidden)?,
                output_norm: tensors.norm(&format!("{prefix}.output.LayerNorm"), hidden)?,
            });
        }
        Ok(Self {
            hidden,
            heads: config.num_attention_heads,
            intermediate,
            eps: config.layer_norm_eps as f32,
            word_embeddings: tensors.take("embeddings.word_embeddings.weight", &[config.vocab_size, hidden])?,
            position_embeddings: tensors
                .take("embeddings.position_embeddings.weight", &[config.max_position_embeddings, hidden])?,
            max_positions: config.max_position_embeddings,
            token_type_embedding: token_types[..hidden].to_vec(),
            embeddings_norm,
            layers,
        })
    }

    /// Pooled (not normalised) vectors for token-id sequences, run as one packed batch.
    pub fn forward(&self, sequences: &[&[u32]], pooling: Pooling) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut spans = Vec::with_capacity(sequences.len());
        let mut tokens = 0;
        for sequence in sequences {
            if sequence.len() > self.max_positions {
                return Err(EmbedError::Unsupported(format!(
                    "a sequence of {} tokens exceeds the model's {} positions",
                    sequence.len(),
                    self.max_positions
                )));
            }
            spans.push(tokens..tokens + sequence.len());
            tokens += sequence.len();
        }
        let mut buffers = Buffers {
            hidden: vec![0.0; tokens * self.hidden],
            scratch: vec![0.0; tokens * self.hidden],
            qkv: vec![0.0; tokens * 3 * self.hidden],
            context: vec![0.0; tokens * self.hidden],
            intermediate: vec![0.0; tokens * self.intermediate],
        };
        self.embed_tokens(sequences, &mut buffers.hidden)?;
        for layer in &self.layers {
            self.layer_forward(layer, &spans, &mut buffers);
        }
        Ok(spans
            .iter()
            .map(|span| self.pool(&buffers.hidden[span.start * self.hidden..span.end * self.hidden], pooling))
            .collect())
    }

    fn embed_tokens(&self, sequences: &[&[u32]], hidden: &mut [f32]) -> Result<(), EmbedError> {
        let width = self.hidden;
        let mut rows = hidden.chunks_exact_mut(width);
        for sequence in sequences {
            for (position, (&id, row)) in sequence.iter().zip(&mut rows).enumerate() {
                let id = id as usize;
                let word = self
                    .word_embeddings
                    .get(id * width..(id + 1) * width)
                    .ok_or_else(|| EmbedError::Unsupported(format!("token id {id} is outside the vocabulary")))?;
                let position = &self.position_embeddings[position * width..(position + 1) * width];
                for (((out, &w), &p), &t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type_embedding) {
                    *out = w + p + t;
                }
            }
        }
        layer_norm(hidden, width, &self.embeddings_norm.gamma, &self.embeddings_norm.beta, self.eps);
        Ok(())
    }

    fn layer_forward(&self, layer: &Layer, spans: &[std::ops::Range<usize>], buffers: &mut Buffers) {
        let width = self.hidden;
        // Self-attention: fused QKV projection, attention per sequence, output projection onto the
        // residual, then layer norm.
        fill_rows(&mut buffers.qkv, &layer.qkv.bias);
        linear(&layer.qkv, &buffers.hidden, &mut buffers.qkv);
        self.attention(&buffers.qkv, &mut buffers.context, spans);
        add_bias_rows(&mut buffers.scratch, &buffers.hidden, &layer.attention_output.bias);
        linear(&layer.attention_output, &buffers.context, &mut buffers.scratch);
        layer_norm(&mut buffers.scratch, width, &layer.attention_norm.gamma, &layer.attention_norm.beta, self.eps);
        std::mem::swap(&mut buffers.hidden, &mut buffers.scratch);
        // Feed-forward: expand with GELU, project back onto the residual, layer norm.
        fill_rows(&mut buffers.intermediate, &layer.intermediate.bias);
        linear(&layer.intermediate, &buffers.hidden, &mut buffers.intermediate);
        gelu(&mut buffers.intermediate, self.intermediate);
        add_bias_rows(&mut buffers.scratch, &buffers.hidden, &layer.output.bias);
        linear(&layer.output, &buffers.intermediate, &mut buffers.scratch);
        layer_norm(&mut buffers.scratch, width, &layer.output_norm.gamma, &layer.output_norm.beta, self.eps);
        std::mem::swap(&mut buffers.hidden, &mut buffers.scratch);
    }

    /// Scaled dot-product attention of each sequence over itself: no mask, as nothing is padded.
    /// Sequences run in parallel; each head is two small products on strided views.
    fn attention(&self, qkv: &[f32], context: &mut [f32], spans: &[std::ops::Range<usize>]) {
        let (width, head_width) = (self.hidden, self.hidden / self.heads);
        let scale = 1.0 / (head_width as f32).sqrt();
        let mut per_sequence = Vec::with_capacity(spans.len());
        let mut rest = context;
        for span in spans {
            let (this, next) = rest.split_at_mut(span.len() * width);
            per_sequence.push((span.clone(), this));
            rest = next;
        }
        per_sequence.into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, (span, context)| {
            let length = span.len();
            if length == 0 {
                return;
            }
            scores.resize(length * length, 0.0);
            let rows = &qkv[span.start * 3 * width..span.end * 3 * width];
            for head in 0..self.heads {
                let offset = head * head_width;
                let queries = MatRef::rows(&rows[offset..], length, head_width, 3 * width);
                let keys_t = MatRef::transposed(&rows[width + offset..], head_width, length, 3 * width);
                let values = MatRef::rows(&rows[2 * width + offset..], length, head_width, 3 * width);
                matmul(MatMut::rows(scores, length, length, length), false, queries, keys_t, scale, Parallelism::None);
                softmax_rows(scores, length);
                matmul(
                    MatMut::rows(&mut context[offset..], length, head_width, width),
                    false,
                    MatRef::rows(scores, length, length, length),
                    values,
                    1.0,
                    Parallelism::None,
                );
            }
        });
    }

    fn pool(&self, rows: &[f32], pooling: Pooling) -> Vec<f32> {
        match pooling {
            Pooling::Cls => rows[..self.hidden].to_vec(),
            Pooling::Mean => {
                let mut sum = vec![0.0f32; self.hidden];
                for row in rows.chunks_exact(self.hidden) {
                    sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x);
                }
                let count = (rows.len() / self.hidden).max(1) as f32;
                sum.iter_mut().for_each(|s| *s /= count);
                sum
            }
        }
    }
}

/// `output += input × weightᵀ` over all tokens (the bias or residual is already in `output`).
fn linear(layer: &Linear, input: &[f32], output: &mut [f32]) {
    let tokens = input.len() / layer.inputs;
    matmul(
        MatMut::rows(output, tokens, layer.outputs, layer.outputs),
        true,
        MatRef::rows(input, tokens, layer.inputs, layer.inputs),
        MatRef::transposed(&layer.weight, layer.inputs, layer.outputs, layer.inputs),
        1.0,
        Parallelism::Rayon(rayon::current_num_threads()),
    );
}

/// Named tensors from a safetensors file, taken out as flat `f32` vectors of a checked shape.
struct Tensors(HashMap<String, Tensor>);

impl Tensors {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        // Some exports prefix every name with `bert.`; accept both.
        let tensor = self
            .0
            .remove(name)
            .or_else(|| self.0.remove(&format!("bert.{name}")))
            .ok_or_else(|| EmbedError::Unsupported(format!("the weights have no tensor `{name}`")))?;
        if tensor.dims() != shape {
            return Err(EmbedError::Unsupported(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        Ok(tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }

    fn linear(&mut self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, EmbedError> {
        Ok(Linear {
            weight: self.take(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: self.take(&format!("{prefix}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    fn norm(&mut self, prefix: &str, width: usize) -> Result<Norm, EmbedError> {
        Ok(Norm {
            gamma: self.take(&format!("{prefix}.weight"), &[width])?,
            beta: self.take(&format!("{prefix}.bias"), &[width])?,
        })
    }
}
