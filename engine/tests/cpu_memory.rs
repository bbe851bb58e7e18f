//! The CPU path holds a model in its file's blocks: the first prefill and decode add
//! activations and a KV cache, not a second copy of the weights. (candle's `QMatMul` would
//! repack Q4_K/Q6_K weights on first use and keep both: 17.1 GB for m1-7B's 4.68 GB.)
//! Linux only: it reads the process's resident memory from /proc.
#![cfg(target_os = "linux")]

use futures::executor::block_on;
use m1_engine::cpu::{CpuModel, CpuOptions};
use m1_engine::gguf::{read_header, SliceSource};

mod common;
use common::m1_shape::m1_shaped_gguf;

/// Resident set size in bytes (/proc/self/statm's second field, in pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    // x86-64 and aarch64 Linux pages are 4 KiB here; a larger page only makes growth look larger.
    pages * 4096
}

#[test]
fn the_first_questions_add_no_copy_of_the_weights() {
    // m1-7B's widths with a 16k vocabulary: 231 MB, of which the layer's Q4_K matrices
    // are what candle's repacking would copy.
    let file = m1_shaped_gguf(16_384);
    let header = block_on(read_header(&mut SliceSource::new(&file))).expect("header");
    let weights = header.tensor_bytes();
    let mut model = block_on(CpuModel::load(
        &header,
        SliceSource::new(&file),
        CpuOptions::default(),
    ))
    .expect("CPU load");
    let loaded = rss();
    let prompt: Vec<u32> = (100..116).collect();
    model.forward(&prompt, 0).expect("prefill");
    model.forward(&[13], prompt.len()).expect("decode");
    let grown = rss().saturating_sub(loaded);
    println!(
        "{} MB of weights; the first prefill (16 tokens) and decode step added {} MB",
        weights / 1_000_000,
        grown / 1_000_000
    );
    assert!(
        grown < weights / 10,
        "the first prefill and decode step added {} MB to {} MB of weights: a copy of the weights?",
        grown / 1_000_000,
        weights / 1_000_000
    );
}
