//! CPU model: greedy decoding vs llama.cpp's fixture (the rule is in
//! common/llama_parity.rs), positions and context errors, the memory limit, and batches and
//! threads that change no bit.

// Reads model files from disk: native only (wasm32 has no filesystem, and FileSource).
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::time::Instant;

use futures::executor::block_on;
use m1_engine::cpu::{greedy, CpuModel, CpuOptions};
use m1_engine::gguf::{read_header, FileSource};

mod common;
use common::{fixture, llama_parity, test_model, QWEN, SMOLLM};

fn load(path: &PathBuf) -> CpuModel {
    let mut src = FileSource::open(path).unwrap();
    let header = block_on(read_header(&mut src)).unwrap();
    let t = Instant::now();
    let model = block_on(CpuModel::load(&header, src, CpuOptions::default())).unwrap();
    eprintln!("{}: loaded in {:?}", path.display(), t.elapsed());
    model
}

fn check_against_llama_cpp(name: &str) {
    let (Some(path), Some(fx)) = (test_model(name), fixture()) else {
        return;
    };
    let mut model = load(&path);
    let t = Instant::now();
    let result = llama_parity::check(name, &mut model, &fx, &|line| eprintln!("{line}"));
    eprintln!("{name}: checked in {:.1?}", t.elapsed());
    if let Err(failures) = result {
        panic!("{name}:\n{failures}");
    }
}

#[test]
fn qwen2_greedy_matches_llama_cpp() {
    check_against_llama_cpp(QWEN);
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check_against_llama_cpp(SMOLLM);
}

#[test]
fn position_and_context_errors() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let mut src = FileSource::open(&path).unwrap();
    let header = block_on(read_header(&mut src)).unwrap();
    let opts = CpuOptions {
        max_seq_len: Some(8),
        ..CpuOptions::default()
    };
    let mut model = block_on(CpuModel::load(&header, src, opts)).unwrap();
    assert!(
        model.forward(&[1, 2, 3], 1).is_err(),
        "position must match the cache"
    );
    assert!(model.forward(&[], 0).is_err());
    assert!(model.forward(&[u32::MAX], 0).is_err());
    model.forward(&[1, 2, 3, 4, 5], 0).unwrap();
    assert_eq!(model.position(), 5);
    let err = model.forward(&[1, 2, 3, 4], 5).unwrap_err().to_string();
    assert!(err.contains("context full"), "{err}");
    // Batched prefill and one-token-at-a-time decoding agree.
    model.reset();
    let batched = model.forward(&[1, 9, 22, 7], 0).unwrap();
    model.reset();
    let mut stepped = Vec::new();
    for (i, &t) in [1u32, 9, 22, 7].iter().enumerate() {
        stepped = model.forward(&[t], i).unwrap();
    }
    let max_diff = batched
        .iter()
        .zip(&stepped)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-2,
        "batched vs stepped logits differ by {max_diff}"
    );
    assert_eq!(greedy(&batched), greedy(&stepped));
}

/// A model that would not fit the memory the CPU path may use (in the browser: what wasm32
/// can still address) is refused before its first weight is read, with the sizes; one that
/// fits loads.
#[test]
fn a_model_larger_than_the_memory_limit_is_refused_up_front() {
    use m1_engine::cpu::CpuError;
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let mut src = FileSource::open(&path).unwrap();
    let header = block_on(read_header(&mut src)).unwrap();
    // SmolLM2: 96.6 MB of weights, the tied output head held a second time (30 MB: the
    // embedding's rows are looked up in one copy, the head multiplies by another); at 1024
    // positions a 30 x 2 x 1024 x 3 x 64 x 4 B = 45 MiB KV cache; the largest tensor is the
    // 49152 x 576 Q8_0 embedding (28.7 MiB).
    let options = |limit| CpuOptions {
        max_seq_len: Some(1024),
        memory_limit: Some(limit),
        ..CpuOptions::default()
    };
    let Err(err) = block_on(CpuModel::load(&header, src, options(128 << 20))) else {
        panic!("a 128 MiB limit must refuse SmolLM2 with a 1024-position cache");
    };
    let CpuError::TooLarge {
        needed,
        weights,
        kv_cache,
        context,
        loading,
        limit,
    } = err
    else {
        panic!("expected TooLarge, got {err:?}");
    };
    eprintln!("{err}");
    assert_eq!(kv_cache, 30 * 2 * 1024 * 3 * 64 * 4);
    assert_eq!(context, 1024);
    assert_eq!(limit, 128 << 20);
    let embedding = header.tensor("token_embd.weight").unwrap().size;
    assert_eq!(weights, header.tensor_bytes() + embedding);
    assert_eq!(loading, embedding);
    assert_eq!(needed, weights + kv_cache + loading);
    assert!(
        err.to_string().contains("more than the 134 MB available"),
        "{err}"
    );
    // Just enough room: it loads.
    let src = FileSource::open(&path).unwrap();
    block_on(CpuModel::load(&header, src, options(needed))).expect("loads at its own size");
}

/// A prompt in one batch gives the same logits as fed token by token, and two threads the
/// same as one, bit for bit: each output of a matrix product or an attention row is
/// computed by one kernel call in a fixed order, whatever the batch and the threads.
#[test]
fn batches_and_threads_do_not_change_the_logits() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let model = |threads| {
        let mut src = FileSource::open(&path).unwrap();
        let header = block_on(read_header(&mut src)).unwrap();
        let options = CpuOptions {
            threads: Some(threads),
            ..CpuOptions::default()
        };
        block_on(CpuModel::load(&header, src, options)).unwrap()
    };
    let prompt: Vec<u32> = (0..37).map(|i| 100 + 37 * i).collect();
    let (mut one, mut two) = (model(1), model(2));
    let batch = one.forward(&prompt, 0).unwrap();
    let threaded = two.forward(&prompt, 0).unwrap();
    two.reset();
    let mut stepped = Vec::new();
    for (i, &t) in prompt.iter().enumerate() {
        stepped = two.forward(&[t], i).unwrap();
    }
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(bits(&batch) == bits(&threaded), "2 threads differ from 1");
    assert!(
        bits(&batch) == bits(&stepped),
        "token by token differs from one batch"
    );
    // And the next step after either.
    let next = greedy(&batch).unwrap();
    let a = one.forward(&[next], prompt.len()).unwrap();
    let b = two.forward(&[next], prompt.len()).unwrap();
    assert!(
        bits(&a) == bits(&b),
        "the decode step after the prompt differs"
    );
}
