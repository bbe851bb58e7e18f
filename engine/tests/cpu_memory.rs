//! What the CPU path holds, measured: a model in its file's blocks, where the first prefill
//! and decode add activations and a KV cache but no second copy of the weights (candle's
//! `QMatMul` would repack Q4_K/Q6_K weights on first use and keep both: 17.1 GB for m1-7B's
//! 4.68 GB); and the memory check's figure for the weights is what loading really adds.
//! Linux only: it reads the process's resident memory from /proc (and, for what a load holds,
//! glibc's allocator statistics where they exist). The tests take turns, as
//! one process's memory is what they measure.
#![cfg(target_os = "linux")]

use std::sync::Mutex;

use futures::executor::block_on;
use m1_engine::cpu::{CpuError, CpuModel, CpuOptions};
use m1_engine::gguf::{read_header, ByteSource, FileSource, Header, SliceSource};
use m1_engine::quantize::FileType;

mod common;
use common::m1_shape::m1_shaped_gguf;
use common::{test_model, QWEN};

static TURN: Mutex<()> = Mutex::new(());

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
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // m1-7B's widths with a 16k vocabulary: 231 MB, of which the layer's Q4_K matrices
    // are what candle's repacking would copy.
    let file = m1_shaped_gguf(16_384, FileType::Q4KM);
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

/// Bytes the allocator has handed out and not taken back, in every arena and as mmaps
/// (glibc's `mallinfo2`: `uordblks + hblkhd`). Unlike the resident set it is not moved by
/// freed pages the allocator keeps and hands out again: measured by RSS, the F16 case's load
/// looked 24.5 MB smaller than it is, its first matrices taking pages that building the
/// test file had freed (the load's per-tensor RSS showed it).
#[cfg(target_env = "gnu")]
fn allocated() -> u64 {
    #[repr(C)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn mallinfo2() -> MallInfo2;
    }
    // SAFETY: glibc's mallinfo2 (2.33+) takes nothing and returns the struct by value.
    let m = unsafe { mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Elsewhere, the resident set.
#[cfg(not(target_env = "gnu"))]
fn allocated() -> u64 {
    rss()
}

/// The weights the memory check counts (refusing the model under a 1-byte limit reports
/// them) against what loading the model adds to the process.
fn counted_and_held<S: ByteSource>(header: &Header, source: impl Fn() -> S) -> (u64, u64) {
    let options = |limit| CpuOptions {
        memory_limit: limit,
        ..CpuOptions::default()
    };
    let counted = match block_on(CpuModel::load(header, source(), options(Some(1)))) {
        Err(CpuError::TooLarge { weights, .. }) => weights,
        Err(e) => panic!("expected TooLarge, got {e}"),
        Ok(_) => panic!("a 1-byte limit must refuse any model"),
    };
    let before = allocated();
    let model = block_on(CpuModel::load(header, source(), options(None))).expect("CPU load");
    let held = allocated().saturating_sub(before);
    drop(model);
    (counted, held)
}

#[test]
fn the_memory_check_counts_what_loading_holds() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut cases = Vec::new();
    // F16 matrices are held as they are in the file (the half kernels read them in place);
    // norms widened to f32.
    let f16 = m1_shaped_gguf(16_384, FileType::F16);
    let header = block_on(read_header(&mut SliceSource::new(&f16))).expect("header");
    let file = header.tensor_bytes();
    let (counted, held) = counted_and_held(&header, || SliceSource::new(&f16));
    cases.push(("m1-shaped F16", file, counted, held));
    drop(f16);
    // Qwen2.5-0.5B Q4_K_M: Q5_0 matrices held as they are (re-encoded as Q8_0 only where
    // candle runs the products).
    if let Some(path) = test_model(QWEN) {
        let header = block_on(read_header(&mut FileSource::open(&path).unwrap())).unwrap();
        let file = header.tensor_bytes();
        let (counted, held) = counted_and_held(&header, || FileSource::open(&path).unwrap());
        cases.push(("Qwen2.5-0.5B Q4_K_M", file, counted, held));
    }
    for (name, file, counted, held) in cases {
        println!(
            "{name}: {} MB in the file, {} MB counted, {} MB held after loading (counted minus held: {} bytes)",
            file / 1_000_000,
            counted / 1_000_000,
            held / 1_000_000,
            counted as i64 - held as i64
        );
        let ratio = held as f64 / counted as f64;
        assert!(
            (0.998..=1.002).contains(&ratio),
            "{name}: the memory check counts {} MB of weights, loading holds {} MB",
            counted / 1_000_000,
            held / 1_000_000
        );
    }
}
