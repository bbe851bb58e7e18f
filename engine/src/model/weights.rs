//! The weight-name table: which GGUF tensor each part of the decoder reads, with the shape
//! the config implies (llama.cpp's `LLM_TENSOR_NAMES`, ggml dim order: ne0 first).

use super::{ConfigError, ModelConfig};
use crate::gguf::{Header, TensorInfo};

/// A tensor the model needs: its GGUF name and expected dims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSpec {
    pub name: String,
    pub dims: Vec<u64>,
}

impl WeightSpec {
    fn new(name: impl Into<String>, dims: &[usize]) -> Self {
        Self {
            name: name.into(),
            dims: dims.iter().map(|&d| d as u64).collect(),
        }
    }

    /// Finds the tensor and checks its shape.
    pub fn resolve<'h>(&self, header: &'h Header) -> Result<&'h TensorInfo, ConfigError> {
        let info = header
            .tensor(&self.name)
            .ok_or_else(|| ConfigError::MissingTensor {
                name: self.name.clone(),
            })?;
        if info.dims != self.dims {
            return Err(ConfigError::ShapeMismatch {
                name: self.name.clone(),
                expected: self.dims.clone(),
                found: info.dims.clone(),
            });
        }
        Ok(info)
    }
}

/// Names of one decoder block's tensors. A linear layer `W: in -> out` is stored as ggml
/// dims `[in, out]` (rows of `in` contiguous values, one row per output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerWeights {
    pub attn_norm: WeightSpec,
    pub attn_q: WeightSpec,
    pub attn_k: WeightSpec,
    pub attn_v: WeightSpec,
    /// Present for qwen2 (`ModelConfig::qkv_bias`).
    pub attn_q_bias: Option<WeightSpec>,
    pub attn_k_bias: Option<WeightSpec>,
    pub attn_v_bias: Option<WeightSpec>,
    pub attn_output: WeightSpec,
    pub ffn_norm: WeightSpec,
    pub ffn_gate: WeightSpec,
    pub ffn_up: WeightSpec,
    pub ffn_down: WeightSpec,
}

impl LayerWeights {
    pub fn all(&self) -> impl Iterator<Item = &WeightSpec> {
        [
            Some(&self.attn_norm),
            Some(&self.attn_q),
            Some(&self.attn_k),
            Some(&self.attn_v),
            self.attn_q_bias.as_ref(),
            self.attn_k_bias.as_ref(),
            self.attn_v_bias.as_ref(),
            Some(&self.attn_output),
            Some(&self.ffn_norm),
            Some(&self.ffn_gate),
            Some(&self.ffn_up),
            Some(&self.ffn_down),
        ]
        .into_iter()
        .flatten()
    }
}

/// Every tensor the forward pass reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTable {
    pub token_embd: WeightSpec,
    pub layers: Vec<LayerWeights>,
    pub output_norm: WeightSpec,
    /// The LM head: `output.weight`, or `token_embd.weight` when tied.
    pub output: WeightSpec,
}

impl WeightTable {
    pub fn new(c: &ModelConfig) -> Self {
        let (e, q, kv, ff, v) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.vocab_size);
        let layers = (0..c.n_layer)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}");
                let bias = |s: &str, d: usize| c.qkv_bias.then(|| WeightSpec::new(n(s), &[d]));
                LayerWeights {
                    attn_norm: WeightSpec::new(n("attn_norm.weight"), &[e]),
                    attn_q: WeightSpec::new(n("attn_q.weight"), &[e, q]),
                    attn_k: WeightSpec::new(n("attn_k.weight"), &[e, kv]),
                    attn_v: WeightSpec::new(n("attn_v.weight"), &[e, kv]),
                    attn_q_bias: bias("attn_q.bias", q),
                    attn_k_bias: bias("attn_k.bias", kv),
                    attn_v_bias: bias("attn_v.bias", kv),
                    attn_output: WeightSpec::new(n("attn_output.weight"), &[q, e]),
                    ffn_norm: WeightSpec::new(n("ffn_norm.weight"), &[e]),
                    ffn_gate: WeightSpec::new(n("ffn_gate.weight"), &[e, ff]),
                    ffn_up: WeightSpec::new(n("ffn_up.weight"), &[e, ff]),
                    ffn_down: WeightSpec::new(n("ffn_down.weight"), &[ff, e]),
                }
            })
            .collect();
        let output_name = if c.tied_output {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        Self {
            token_embd: WeightSpec::new("token_embd.weight", &[e, v]),
            layers,
            output_norm: WeightSpec::new("output_norm.weight", &[e]),
            output: WeightSpec::new(output_name, &[e, v]),
        }
    }

    /// Every tensor the forward pass reads, each once: a tied LM head is the embedding.
    pub fn all(&self) -> impl Iterator<Item = &WeightSpec> {
        let untied_output = (self.output.name != self.token_embd.name).then_some(&self.output);
        std::iter::once(&self.token_embd)
            .chain(self.layers.iter().flat_map(|l| l.all()))
            .chain(std::iter::once(&self.output_norm))
            .chain(untied_output)
    }

    /// Checks that every tensor exists with the expected shape; the first problem wins.
    pub fn validate(&self, header: &Header) -> Result<(), ConfigError> {
        for spec in self.all() {
            spec.resolve(header)?;
        }
        Ok(())
    }
}
