//! The tensors of the model, written once: each decoder block's list ([`Layer`]) with its
//! GGUF name (llama.cpp's `LLM_TENSOR_NAMES`), its Hugging Face name (for `m1 quantize`),
//! whether it is a matrix or a vector (norm weight, bias), and the shape the config implies
//! (ggml dim order: ne0 first). The GPU and CPU models assemble their blocks from the same
//! list through [`Layer::build`], so a tensor added here reaches both.

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

/// Turns a block's specs into a model's tensors: matrices and vectors may become different
/// types (a GPU weight and an f32 buffer; a linear layer and a tensor).
pub trait Assemble {
    type Matrix;
    type Vector;
    type Error;
    fn matrix(&mut self, spec: &WeightSpec) -> Result<Self::Matrix, Self::Error>;
    fn vector(&mut self, spec: &WeightSpec) -> Result<Self::Vector, Self::Error>;
}

/// Declares the block's tensor list once. Each row: the field, `mat` or `vec` (optionally
/// `if` a config condition), the GGUF name after `blk.N.`, the HF name after
/// `model.layers.N.`, and the dims. A linear layer `W: in -> out` is stored as ggml dims
/// `[in, out]` (rows of `in` contiguous values, one row per output).
macro_rules! layer_tensors {
    (|$c:ident| $(
        $(#[$doc:meta])*
        $field:ident: $kind:ident $(if $cond:expr)?, $gguf:literal <- $hf:literal, [$($dim:expr),+];
    )*) => {
        /// One decoder block's tensors: `M` for matrices, `V` for vectors.
        pub struct Layer<M, V> {
            $($(#[$doc])* pub $field: layer_tensors!(@ty $kind $(if $cond)?),)*
        }

        // By hand: derives cannot see through the macro-made field types.
        impl<M: Clone, V: Clone> Clone for Layer<M, V> {
            fn clone(&self) -> Self {
                Self { $($field: self.$field.clone(),)* }
            }
        }

        impl<M: PartialEq, V: PartialEq> PartialEq for Layer<M, V> {
            fn eq(&self, other: &Self) -> bool {
                true $(&& self.$field == other.$field)*
            }
        }

        impl<M: Eq, V: Eq> Eq for Layer<M, V> {}

        impl<M: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Layer<M, V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Layer")$(.field(stringify!($field), &self.$field))*.finish()
            }
        }

        impl Layer<WeightSpec, WeightSpec> {
            /// The specs of block `i` of a model with config `$c`.
            pub fn new($c: &ModelConfig, i: usize) -> Self {
                let name = |suffix: &str| format!("blk.{i}.{suffix}");
                Self {
                    $($field: layer_tensors!(@spec name($gguf), [$($dim),+] $(, $cond)?),)*
                }
            }

            /// Every tensor of the block, in table order.
            pub fn all(&self) -> impl Iterator<Item = &WeightSpec> {
                [$(layer_tensors!(@ref self.$field $(, $cond)?),)*].into_iter().flatten()
            }
        }

        impl<M, V> Layer<M, V> {
            /// This block's tensors made by `a`, in table order.
            pub fn build<A>(specs: &Layer<WeightSpec, WeightSpec>, a: &mut A) -> Result<Self, A::Error>
            where
                A: Assemble<Matrix = M, Vector = V>,
            {
                Ok(Self {
                    $($field: layer_tensors!(@build a, specs.$field, $kind $(, $cond)?),)*
                })
            }
        }

        /// (HF name, GGUF name) of each block tensor, without the layer prefixes.
        pub const LAYER_NAMES: &[(&str, &str)] = &[$(($hf, $gguf),)*];
    };
    (@ty mat) => { M };
    (@ty vec) => { V };
    (@ty $kind:ident if $cond:expr) => { Option<layer_tensors!(@ty $kind)> };
    (@spec $name:expr, [$($dim:expr),+]) => { WeightSpec::new($name, &[$($dim),+]) };
    (@spec $name:expr, [$($dim:expr),+], $cond:expr) => {
        ($cond).then(|| WeightSpec::new($name, &[$($dim),+]))
    };
    (@ref $e:expr) => { Some(&$e) };
    (@ref $e:expr, $cond:expr) => { $e.as_ref() };
    (@build $a:ident, $s:expr, mat) => { $a.matrix(&$s)? };
    (@build $a:ident, $s:expr, vec) => { $a.vector(&$s)? };
    (@build $a:ident, $s:expr, mat, $cond:expr) => { $s.as_ref().map(|s| $a.matrix(s)).transpose()? };
    (@build $a:ident, $s:expr, vec, $cond:expr) => { $s.as_ref().map(|s| $a.vector(s)).transpose()? };
}

layer_tensors! { |c|
    attn_norm: vec, "attn_norm.weight" <- "input_layernorm.weight", [c.n_embd];
    attn_q: mat, "attn_q.weight" <- "self_attn.q_proj.weight", [c.n_embd, c.q_dim()];
    attn_k: mat, "attn_k.weight" <- "self_attn.k_proj.weight", [c.n_embd, c.kv_dim()];
    attn_v: mat, "attn_v.weight" <- "self_attn.v_proj.weight", [c.n_embd, c.kv_dim()];
    /// Present where `ModelConfig::qkv_bias` (qwen2).
    attn_q_bias: vec if c.qkv_bias, "attn_q.bias" <- "self_attn.q_proj.bias", [c.q_dim()];
    attn_k_bias: vec if c.qkv_bias, "attn_k.bias" <- "self_attn.k_proj.bias", [c.kv_dim()];
    attn_v_bias: vec if c.qkv_bias, "attn_v.bias" <- "self_attn.v_proj.bias", [c.kv_dim()];
    attn_output: mat, "attn_output.weight" <- "self_attn.o_proj.weight", [c.q_dim(), c.n_embd];
    ffn_norm: vec, "ffn_norm.weight" <- "post_attention_layernorm.weight", [c.n_embd];
    ffn_gate: mat, "ffn_gate.weight" <- "mlp.gate_proj.weight", [c.n_embd, c.n_ff];
    ffn_up: mat, "ffn_up.weight" <- "mlp.up_proj.weight", [c.n_embd, c.n_ff];
    ffn_down: mat, "ffn_down.weight" <- "mlp.down_proj.weight", [c.n_ff, c.n_embd];
}

/// The block specs: `Layer` with a spec for each tensor.
pub type LayerWeights = Layer<WeightSpec, WeightSpec>;

/// The tensors outside the blocks: (HF name, GGUF name).
pub const TOKEN_EMBD: (&str, &str) = ("model.embed_tokens.weight", "token_embd.weight");
pub const OUTPUT_NORM: (&str, &str) = ("model.norm.weight", "output_norm.weight");
/// The LM head; absent from GGUF files whose head is tied to the embedding.
pub const OUTPUT: (&str, &str) = ("lm_head.weight", "output.weight");

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
        let (e, v) = (c.n_embd, c.vocab_size);
        let output_name = if c.tied_output {
            TOKEN_EMBD.1
        } else {
            OUTPUT.1
        };
        Self {
            token_embd: WeightSpec::new(TOKEN_EMBD.1, &[e, v]),
            layers: (0..c.n_layer).map(|i| Layer::new(c, i)).collect(),
            output_norm: WeightSpec::new(OUTPUT_NORM.1, &[e]),
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
