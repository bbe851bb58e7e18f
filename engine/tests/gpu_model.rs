//! The GPU model on real GGUF files: logits against the CPU model, and greedy decoding
//! against llama.cpp's fixture (the teacher-forced rule of common/llama_parity.rs), on the
//! f32 path (shader-f16 disabled) and the f16 path (f16 arithmetic in the decode mat-vecs,
//! even where the adapter's defaults would not use it); and m1-7B's own shapes (one random
//! layer) against the CPU path. Without an adapter the tests print why and pass, unless
//! M1_REQUIRE_GPU=1; without the model files (M1_TEST_MODELS) they print why and pass.
//! `cargo test -p m1-engine --release --test gpu_model -- --nocapture` prints the numbers.

// Reads model files from disk: native only.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::time::Instant;

use futures::executor::block_on;
use m1_engine::cpu::{greedy, CpuModel, CpuOptions};
use m1_engine::gguf::{read_header, FileSource};
use m1_engine::gpu::{Gpu, GpuOptions};
use m1_engine::gpu::{GpuModel, GpuModelOptions, Tuning};
use m1_engine::quantize::FileType;
use m1_engine::sampling::Sampling;
use serde_json::Value;

mod common;
use common::m1_shape::{m1_shaped_gguf, M1_VOCAB};
use common::{fixture, ids, llama_parity, retyped_smollm2, test_model, QWEN, SMOLLM};

/// How much of the fixture the greedy check covers: every prompt's 32 tokens on a hardware
/// GPU (or with M1_GPU_TEST_FULL=1), a short prompt's first `software_tokens` on a software
/// adapter. lavapipe on two shared cores takes 1-4 s per decode step of these models, and
/// the suite must stay within minutes on CI.
fn greedy_plan(gpu: &Gpu, software_tokens: usize) -> (Option<&'static str>, usize) {
    let full = std::env::var("M1_GPU_TEST_FULL").as_deref() == Ok("1");
    if full || gpu.report.device_type != "Cpu" {
        (None, usize::MAX)
    } else {
        (Some("plain_list"), software_tokens)
    }
}

/// The f32 path and, where offered, the f16 path; empty (with a printed reason) without a
/// GPU, or a failure when M1_REQUIRE_GPU=1.
fn gpus() -> Vec<(Gpu, &'static str)> {
    let mut out = Vec::new();
    for (disable_f16, path) in [(true, "f32 path"), (false, "f16 path")] {
        match block_on(Gpu::new(GpuOptions {
            disable_f16,
            ..GpuOptions::default()
        })) {
            Ok(gpu) => {
                if !disable_f16 && !gpu.report.shader_f16 {
                    println!("no shader-f16 on {}: f16 path not run", gpu.report.name);
                    continue;
                }
                out.push((gpu, path));
            }
            Err(e) => {
                assert!(
                    std::env::var("M1_REQUIRE_GPU").as_deref() != Ok("1"),
                    "M1_REQUIRE_GPU=1 but no GPU adapter: {e}"
                );
                println!("SKIP: no GPU adapter ({e})");
                return Vec::new();
            }
        }
    }
    out
}

fn load_gpu(gpu: Gpu, path: &PathBuf, options: GpuModelOptions) -> GpuModel {
    let mut src = FileSource::open(path).expect("open");
    let header = block_on(read_header(&mut src)).expect("header");
    let t = Instant::now();
    let model = block_on(GpuModel::load(gpu, &header, src, options)).expect("GPU load");
    println!(
        "{}: loaded on {} in {:.2?}, {} weight bytes on the GPU for {} in the file",
        path.display(),
        model.gpu().report.name,
        t.elapsed(),
        model.weight_bytes(),
        header.tensor_bytes()
    );
    assert!(
        model.weight_bytes() as f64 <= 1.02 * header.tensor_bytes() as f64,
        "GPU weight bytes exceed 1.02x the file's"
    );
    model
}

fn cpu_logits(path: &PathBuf, prompt: &[u32]) -> Vec<f32> {
    let mut src = FileSource::open(path).expect("open");
    let header = block_on(read_header(&mut src)).expect("header");
    let mut model = block_on(CpuModel::load(&header, src, CpuOptions::default())).expect("CPU");
    model.forward(prompt, 0).expect("CPU forward")
}

fn compare(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: logits length");
    let max_err = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let dot: f64 = gpu.iter().zip(cpu).map(|(a, b)| f64::from(a * b)).sum();
    let norm = |v: &[f32]| v.iter().map(|a| f64::from(a * a)).sum::<f64>().sqrt();
    let cosine = dot / (norm(gpu) * norm(cpu));
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (ga, ca) = (greedy(gpu), greedy(cpu));
    println!(
        "{what}: max abs error {max_err:.4} (max |logit| {scale:.1}), cosine {cosine:.6}, argmax GPU {ga:?} CPU {ca:?}"
    );
    assert!(cosine > 0.999, "{what}: cosine {cosine}");
    assert_eq!(ga, ca, "{what}: argmax differs");
}

/// Teacher-forced greedy check (common/llama_parity.rs): prefill the prompt in one batch, then
/// feed llama.cpp's own greedy tokens one at a time, sampling greedily on the GPU at every
/// step. A step may differ only where llama.cpp itself cannot tell the tokens apart.
fn check_greedy(
    name: &str,
    label: &str,
    model: &mut GpuModel,
    reference: &Value,
    software_tokens: usize,
) {
    let (only, n_tokens) = greedy_plan(model.gpu(), software_tokens);
    let prompts = reference["prompts"].as_object().expect("prompts");
    let noise = llama_parity::noise(prompts);
    let mut failures = Vec::new();
    for (key, case) in prompts {
        if only.is_some_and(|k| k != key) {
            continue;
        }
        let prompt = ids(&case["ids"]);
        let mut want = ids(&case["greedy"]);
        want.truncate(n_tokens);
        model.reset();
        let t = Instant::now();
        model.forward(&prompt).expect("prefill");
        let mut differs = Vec::new();
        let mut decode = Instant::now();
        for (i, &expected) in want.iter().enumerate() {
            let ours = block_on(model.sample(&Sampling {
                temperature: 0.0,
                top_p: 1.0,
                seed: 0,
            }))
            .expect("sample");
            if i == 0 {
                println!(
                    "{name} {label} {key}: {} prompt tokens to first token in {:.2?}",
                    prompt.len(),
                    t.elapsed()
                );
                decode = Instant::now();
            }
            match llama_parity::judge_step(key, case, i, ours, expected, noise) {
                Ok(None) => {}
                Ok(Some(gap)) => differs.push((i, gap)),
                Err(failure) => failures.push(failure),
            }
            if i + 1 < want.len() {
                model.forward(&[expected]).expect("decode");
            }
        }
        let steps = want.len().saturating_sub(1).max(1) as f64;
        println!(
            "{name} {label} {key}: {:.2} s per teacher-forced decode step; {}",
            decode.elapsed().as_secs_f64() / steps,
            match differs.first() {
                None => format!("all {} greedy tokens equal llama.cpp's", want.len()),
                Some((i, gap)) => format!(
                    "near-tie at token {i} ({gap} below llama.cpp's best; steps differing {:?})",
                    differs.iter().map(|d| d.0).collect::<Vec<_>>()
                ),
            }
        );
    }
    assert!(
        failures.is_empty(),
        "{name} {label}:\n{}",
        failures.join("\n")
    );
}

/// Logits after a short prompt against the CPU model, then greedy tokens against llama.cpp.
fn check_model(name: &str, software_tokens: usize) {
    let Some(path) = test_model(name) else {
        return;
    };
    let gpus = gpus();
    if gpus.is_empty() {
        return;
    }
    let fx = fixture().expect("fixture exists (scripts/llama_reference.py)");
    let reference = &fx["models"][name];
    let prompt = ids(&reference["prompts"]["plain_list"]["ids"]);
    let cpu = cpu_logits(&path, &prompt);
    for (gpu, label) in gpus {
        let options = GpuModelOptions {
            context: Some(512),
            tuning: Some(Tuning {
                f16_math: gpu.report.shader_f16,
                ..Tuning::for_adapter(&gpu.report)
            }),
            ..GpuModelOptions::default()
        };
        let mut model = load_gpu(gpu, &path, options);
        model.forward(&prompt).expect("prefill");
        let logits = block_on(model.logits()).expect("logits");
        compare(&format!("{name} {label} prefill logits"), &logits, &cpu);
        check_greedy(name, label, &mut model, reference, software_tokens);
    }
}

#[test]
fn qwen2_gpu_matches_cpu_and_llama_cpp() {
    check_model(QWEN, 8);
}

#[test]
fn smollm2_gpu_matches_cpu_and_llama_cpp() {
    check_model(SMOLLM, 32);
}

#[test]
fn a_tensor_type_without_a_kernel_is_named_before_anything_is_uploaded() {
    use m1_engine::gguf::{GgmlType, SliceSource};
    use m1_engine::gpu::GpuModelError;
    // Q2_K: llama.cpp's Q2_K files use it; we have no WGSL kernel for it (the CPU has one).
    let Some(bytes) = retyped_smollm2("blk.3.ffn_down.weight", GgmlType::Q2K) else {
        return;
    };
    let Some((gpu, _)) = gpus().into_iter().next() else {
        return;
    };
    let mut src = SliceSource::new(&bytes);
    let header = block_on(read_header(&mut src)).expect("header");
    let err = block_on(GpuModel::load(
        gpu,
        &header,
        SliceSource::new(&bytes),
        GpuModelOptions::default(),
    ))
    .expect_err("a Q2_K tensor must be refused on the GPU");
    assert!(
        matches!(&err, GpuModelError::UnsupportedType { name, ty } if name == "blk.3.ffn_down.weight" && ty == "Q2_K"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tensor \"blk.3.ffn_down.weight\" is Q2_K, which has no GPU kernel"
    );
    // The CPU path (candle) has Q2_K and loads the same file.
    block_on(CpuModel::load(
        &header,
        SliceSource::new(&bytes),
        CpuOptions::default(),
    ))
    .expect("the CPU path loads Q2_K");
}

/// m1-7B's own shapes and types (common/m1_shape.rs) on the GPU path, with the 306 MB
/// embedding and 447 MB output split across bindings where the device's limit is smaller
/// (lavapipe: 128 MiB), give the CPU path's logits after a prefill and after a decode step.
#[test]
fn m1_7b_shapes_gpu_matches_cpu() {
    use m1_engine::gguf::SliceSource;

    let Some((gpu, label)) = gpus().into_iter().next() else {
        return;
    };
    let t = Instant::now();
    let file = m1_shaped_gguf(M1_VOCAB, FileType::Q4KM);
    println!(
        "m1-7B-shaped one-layer GGUF: {} MB built in {:.1?}",
        file.len() / 1_000_000,
        t.elapsed()
    );
    let header = block_on(read_header(&mut SliceSource::new(&file))).expect("header");
    let mut cpu = block_on(CpuModel::load(
        &header,
        SliceSource::new(&file),
        CpuOptions::default(),
    ))
    .expect("CPU load");
    let options = GpuModelOptions {
        context: Some(64),
        ..GpuModelOptions::default()
    };
    let t = Instant::now();
    let mut model = block_on(GpuModel::load(
        gpu,
        &header,
        SliceSource::new(&file),
        options,
    ))
    .expect("GPU load");
    println!(
        "{label}: loaded in {:.1?}, {} weight bytes on the GPU for {} in the file",
        t.elapsed(),
        model.weight_bytes(),
        header.tensor_bytes()
    );
    assert!(model.weight_bytes() as f64 <= 1.02 * header.tensor_bytes() as f64);

    let prompt = [151_644u32, 8948, 198, 2610, 525, 1207, 16948];
    model.forward(&prompt).expect("GPU prefill");
    let gpu_logits = block_on(model.logits()).expect("logits");
    let cpu_logits = cpu.forward(&prompt, 0).expect("CPU prefill");
    compare("m1-7B shapes, prefill", &gpu_logits, &cpu_logits);
    model.forward(&[13]).expect("GPU decode");
    let gpu_logits = block_on(model.logits()).expect("logits");
    let cpu_logits = cpu.forward(&[13], prompt.len()).expect("CPU decode");
    compare("m1-7B shapes, decode", &gpu_logits, &cpu_logits);
}
