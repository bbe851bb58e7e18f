//! The CPU path: the same qwen2/llama model run through candle-core (native and wasm32).
//! It is the fallback where WebGPU is missing and the reference the GPU kernels are
//! checked against.

pub mod kernels;
mod model;
pub mod ops;

use thiserror::Error;

use crate::gguf::GgufError;
use crate::model::ConfigError;
use crate::units::fmt_bytes;

pub use model::{greedy, CpuModel, CpuOptions, WASM32_MEMORY};

#[derive(Debug, Error)]
pub enum CpuError {
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("forward called at position {got}, but the KV cache holds {expected} positions")]
    PositionMismatch { expected: usize, got: usize },

    #[error("forward called with no tokens")]
    EmptyInput,

    #[error("context full: {needed} positions needed, the limit is {max}")]
    ContextFull { needed: usize, max: usize },

    #[error("token id {token} is outside the {vocab}-token vocabulary")]
    TokenOutOfRange { token: u32, vocab: usize },

    #[error("internal error: {what}")]
    Internal { what: String },

    #[error(
        "the model needs about {} of memory on the CPU ({} of weights, up to {} of KV cache \
         for {context} positions, {} more while loading), more than the {} available",
        fmt_bytes(*needed), fmt_bytes(*weights), fmt_bytes(*kv_cache), fmt_bytes(*loading), fmt_bytes(*limit)
    )]
    TooLarge {
        needed: u64,
        weights: u64,
        kv_cache: u64,
        context: usize,
        loading: u64,
        limit: u64,
    },
}
