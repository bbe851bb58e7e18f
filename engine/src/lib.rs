//! m1-engine: runs qwen2/llama GGUF models on WebGPU (our WGSL kernels) or the CPU
//! (candle-core), and drives m1's budget-forced reasoning over either backend.
//!
//! The same crate builds natively (for the `m1` CLI in `m1-cli`, tests, benchmarks) and for
//! wasm32 (the app's Web Worker). See ARCHITECTURE.md for the data flow.

pub mod backend;
pub mod clock;
pub mod cpu;
pub mod gguf;
pub mod gpu;
pub mod model;
pub mod quantize;
pub mod reason;
pub mod sampling;
/// Models of real shapes with random weights, generated as read (benchmarks, natively and
/// in the browser).
pub mod synthetic;
pub mod tokenizer;
pub mod units;
