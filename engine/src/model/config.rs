//! Model hyper-parameters from GGUF metadata (llama.cpp's `LLM_KV_*` keys, `{arch}.` prefixed).

use thiserror::Error;

use crate::gguf::{Array, GgufError, Header};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("unsupported architecture {0:?} (supported: {names})", names = Architecture::names())]
    UnsupportedArchitecture(String),

    #[error(transparent)]
    Metadata(#[from] GgufError),

    #[error("{key} = {value} is invalid: {why}")]
    InvalidValue {
        key: String,
        value: String,
        why: &'static str,
    },

    #[error("unsupported rope scaling {0:?} (only none is implemented)")]
    UnsupportedRopeScaling(String),

    #[error("tensor {name:?} is missing")]
    MissingTensor { name: String },

    #[error("tensor {name:?} has shape {found:?}, expected {expected:?} (ggml order, ne0 first)")]
    ShapeMismatch {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
}

/// The model families the engine runs: their home. Everything that differs between them is
/// a method here (one exhaustive match each), so adding a family that shares the decoder's
/// math (mistral is llama's) is one variant and its rows below; one whose math differs
/// (qwen3's q/k norms) also needs its tensors in `model::weights` and a block variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Qwen2,
    Llama,
}

impl Architecture {
    pub const ALL: &'static [Architecture] = &[Self::Qwen2, Self::Llama];

    /// The GGUF `general.architecture` value and metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }

    /// The Hugging Face `architectures[0]` classes `m1 quantize` converts from.
    pub fn hf_classes(self) -> &'static [&'static str] {
        match self {
            Self::Qwen2 => &["Qwen2ForCausalLM"],
            Self::Llama => &["LlamaForCausalLM"],
        }
    }

    /// How rotary embeddings pair dimensions in the GGUF (llama.cpp's `llama_rope_type`).
    pub fn rope_type(self) -> RopeType {
        match self {
            Self::Qwen2 => RopeType::Neox,
            Self::Llama => RopeType::Normal,
        }
    }

    /// Whether every block has q/k/v biases: qwen2 always (llama.cpp loads them as required);
    /// llama only where the file has them.
    pub fn requires_qkv_bias(self) -> bool {
        match self {
            Self::Qwen2 => true,
            Self::Llama => false,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The family of a config.json: its first `architectures` class, else its `model_type`.
    pub fn from_hf(class: Option<&str>, model_type: Option<&str>) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| match class {
            Some(c) => a.hf_classes().contains(&c),
            None => model_type == Some(a.name()),
        })
    }

    /// "qwen2, llama": for messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How rotary embeddings pair up dimensions (llama.cpp `llama_rope_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeType {
    /// Pairs (2i, 2i+1). llama.cpp's converter permutes llama's q/k rows so that GGUF
    /// llama models use this layout.
    Normal,
    /// Pairs (i, i + d/2), the GPT-NeoX layout; qwen2 keeps HF's rotate_half order.
    Neox,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dimensions rotated by RoPE (`{arch}.rope.dimension_count`, default head_dim).
    pub n_rot: usize,
    pub rope_theta: f32,
    pub rope_type: RopeType,
    pub rms_eps: f32,
    pub context_length: usize,
    pub vocab_size: usize,
    /// No `output.weight`: the LM head reuses `token_embd.weight`.
    pub tied_output: bool,
    /// q/k/v projections carry a bias (qwen2).
    pub qkv_bias: bool,
}

fn to_usize(key: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| ConfigError::InvalidValue {
        key: key.to_string(),
        value: v.to_string(),
        why: "does not fit in usize",
    })
}

fn positive(key: &str, v: u64) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: v.to_string(),
            why: "must be positive",
        });
    }
    to_usize(key, v)
}

/// Upper bounds that no real model of this family exceeds; they keep a hostile header from
/// sizing buffers (KV cache, RoPE tables) from absurd values.
const MAX_LAYERS: u64 = 1024;
const MAX_WIDTH: u64 = 1 << 20;
const MAX_CONTEXT: u64 = 1 << 24;

fn bounded(key: &str, v: u64, max: u64) -> Result<usize, ConfigError> {
    if v > max {
        return Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: v.to_string(),
            why: "exceeds the engine's limit",
        });
    }
    positive(key, v)
}

impl ModelConfig {
    pub fn from_header(header: &Header) -> Result<Self, ConfigError> {
        let md = &header.metadata;
        let arch_name = md.get_str("general.architecture")?;
        let architecture = Architecture::from_name(arch_name)
            .ok_or_else(|| ConfigError::UnsupportedArchitecture(arch_name.to_string()))?;
        let key = |k: &str| format!("{arch_name}.{k}");

        let k = key("block_count");
        let n_layer = bounded(&k, md.get_u64(&k)?, MAX_LAYERS)?;
        let k = key("embedding_length");
        let n_embd = bounded(&k, md.get_u64(&k)?, MAX_WIDTH)?;
        let k = key("feed_forward_length");
        let n_ff = bounded(&k, md.get_u64(&k)?, MAX_WIDTH)?;
        let k = key("attention.head_count");
        let n_head = bounded(&k, md.get_u64(&k)?, MAX_WIDTH)?;
        let k = key("attention.head_count_kv");
        let n_head_kv = match md.opt_u64(&k)? {
            Some(v) => bounded(&k, v, MAX_WIDTH)?,
            None => n_head,
        };
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(ConfigError::InvalidValue {
                key: k,
                value: n_head_kv.to_string(),
                why: "must divide attention.head_count (grouped-query attention)",
            });
        }
        let k = key("attention.key_length");
        let head_dim = match md.opt_u64(&k)? {
            Some(v) => bounded(&k, v, MAX_WIDTH)?,
            None => {
                if !n_embd.is_multiple_of(n_head) {
                    return Err(ConfigError::InvalidValue {
                        key: key("embedding_length"),
                        value: n_embd.to_string(),
                        why: "must be a multiple of attention.head_count",
                    });
                }
                n_embd / n_head
            }
        };
        // Each width is bounded alone; the product must be too: 2^20 heads of 2^20 overflow
        // usize on wasm32, and the KV cache's byte count in u64. Without a key length the
        // product is the embedding width, already bounded.
        if (n_head as u64).saturating_mul(head_dim as u64) > MAX_WIDTH {
            return Err(ConfigError::InvalidValue {
                key: key("attention.key_length"),
                value: head_dim.to_string(),
                why: "times attention.head_count exceeds the engine's limit of 2^20",
            });
        }
        let k = key("rope.dimension_count");
        let n_rot = match md.opt_u64(&k)? {
            Some(v) => bounded(&k, v, MAX_WIDTH)?,
            None => head_dim,
        };
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ConfigError::InvalidValue {
                key: k,
                value: n_rot.to_string(),
                why: "must be even and at most the head dimension",
            });
        }
        // llama.cpp's default when the key is absent (llama-model.cpp, `rope_freq_base_train`).
        let k = key("rope.freq_base");
        let rope_theta = md.opt_f64(&k)?.unwrap_or(10_000.0) as f32;
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(ConfigError::InvalidValue {
                key: k,
                value: rope_theta.to_string(),
                why: "must be a positive finite number",
            });
        }
        if let Some(scaling) = md.opt_str(&key("rope.scaling.type"))? {
            if scaling != "none" {
                return Err(ConfigError::UnsupportedRopeScaling(scaling.to_string()));
            }
        }
        let k = key("attention.layer_norm_rms_epsilon");
        let rms_eps = md.get_f64(&k)? as f32;
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(ConfigError::InvalidValue {
                key: k,
                value: rms_eps.to_string(),
                why: "must be a positive finite number",
            });
        }
        let k = key("context_length");
        let context_length = bounded(&k, md.get_u64(&k)?, MAX_CONTEXT)?;

        // `{arch}.vocab_size` is optional (qwen2 files omit it); llama.cpp then takes the
        // length of the token list.
        let k = key("vocab_size");
        let vocab_size = match md.opt_u64(&k)? {
            Some(v) => bounded(&k, v, MAX_CONTEXT)?,
            None => {
                let tokens: &Array = md.get_array("tokenizer.ggml.tokens")?;
                positive("tokenizer.ggml.tokens", tokens.len() as u64)?
            }
        };

        Ok(Self {
            architecture,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            rope_theta,
            rope_type: architecture.rope_type(),
            rms_eps,
            context_length,
            vocab_size,
            tied_output: header.tensor(super::OUTPUT.1).is_none(),
            // Where biases are optional, all layers follow layer 0.
            qkv_bias: architecture.requires_qkv_bias()
                || header.tensor("blk.0.attn_q.bias").is_some(),
        })
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Bytes of the keys and values of every layer for `positions` positions, at
    /// `value_bytes` per element.
    /// Saturates rather than wraps: a caller compares it with what memory allows.
    pub fn kv_cache_bytes(&self, positions: usize, value_bytes: u64) -> u64 {
        [
            self.n_layer as u64,
            positions as u64,
            self.kv_dim() as u64,
            value_bytes,
        ]
        .into_iter()
        .fold(2u64, u64::saturating_mul)
    }
}
