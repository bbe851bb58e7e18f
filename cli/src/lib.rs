//! The native side of m1: the `m1` command line (`src/bin/m1/`) and the Hugging Face ->
//! GGUF converter it runs as `m1 quantize` ([`quantize`]), which reads folders and spawns
//! threads, so it stays out of the engine that also builds for the browser.

// Native only: empty on wasm32 (see Cargo.toml).
#![cfg(not(target_arch = "wasm32"))]

pub mod quantize;
