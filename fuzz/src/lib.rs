//! Fuzz targets for every reader of bytes a visitor chooses: a GGUF from any URL or disk,
//! the tokenizer in its metadata, a Hugging Face folder for `m1 quantize`, a questions
//! JSONL, the worker's messages and the OPFS cache index.
//!
//! Each target is a plain function of the input bytes that must return without a panic,
//! an abort (the [`CappedAlloc`] cap), or a hang. The libFuzzer harness (`fuzz/libfuzzer`,
//! nightly, run by `cargo xtask fuzz`) and the stable replay test (`tests/replay.rs`, part
//! of `cargo test`) call the same functions, so the committed corpus and every past crash
//! are re-checked in CI without building a fuzzer there.
//!
//! Targets assert what the readers promise (bounds, round trips, agreement between the
//! incremental and the whole parse), not only that they do not crash.

// The readers of `m1 quantize` and the file-based tests are native only.
#![cfg(not(target_arch = "wasm32"))]

mod alloc;
mod gguf;
mod hf;
mod text;
mod tokenizer;

pub use alloc::{CappedAlloc, ALLOCATION_CAP};

/// The input size the campaign allows (`-max_len`): the "input under 1 MB".
pub const MAX_INPUT: usize = 1 << 20;

pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What one input is.
    pub input: &'static str,
    /// The campaign's `-max_len` (xtask/src/fuzz.rs keeps the same table).
    pub max_len: usize,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        run: gguf::gguf,
        input: "a GGUF file: header, metadata, tensor table, incremental parse, tensor stream, model config and weight table",
        max_len: MAX_INPUT,
    },
    Target {
        name: "tokenizer",
        run: tokenizer::tokenizer,
        input: "GGUF metadata holding a vocabulary, then text to encode",
        max_len: tokenizer::TOKENIZER_MAX_INPUT,
    },
    Target {
        name: "tokenizer_text",
        run: tokenizer::tokenizer_text,
        input: "a byte choosing a real vocabulary, then text to encode and decode",
        max_len: 1 + tokenizer::MAX_TEXT,
    },
    Target {
        name: "safetensors",
        run: hf::safetensors,
        input: "a safetensors shard",
        max_len: MAX_INPUT,
    },
    Target {
        name: "hf_folder",
        run: hf::hf_folder,
        input: "config.json NUL tokenizer.json [NUL tokenizer_config.json]",
        max_len: MAX_INPUT,
    },
    Target {
        name: "questions",
        run: text::questions,
        input: "a questions JSONL file",
        max_len: MAX_INPUT,
    },
    Target {
        name: "protocol",
        run: text::protocol,
        input: "one worker protocol message (Request or Event JSON)",
        max_len: MAX_INPUT,
    },
    Target {
        name: "cache_index",
        run: text::cache_index,
        input: "the OPFS models/index.json",
        max_len: MAX_INPUT,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
