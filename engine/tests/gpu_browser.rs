//! The kernels in a real browser: Chromium's WebGPU validates WGSL with Tint (a stricter
//! uniformity analysis than naga) and its SwiftShader adapter has no shader-f16 and a
//! 256-invocation cap. Every pipeline is built and checked against its CPU twin on small data.
//! Run: `WASM_BINDGEN_TEST_TIMEOUT=300 CHROMEDRIVER=/usr/bin/chromedriver cargo test -p m1-engine
//! --target wasm32-unknown-unknown --test gpu_browser` (engine/webdriver.json holds the flags;
//! SwiftShader compiles ~40 pipelines in ~20 s, past the runner's default 20 s timeout).
#![cfg(target_arch = "wasm32")]

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use m1_engine::gguf::GgmlType;
use m1_engine::gpu::reference as cpu;
use m1_engine::gpu::{
    kernel_types, F32Buffer, Gpu, GpuOptions, KvCache, Ops, Recording, RopeFreqs, RopeMode,
    TokenReadback, U32Buffer, WeightTensor,
};
use m1_engine::sampling::Sampling;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn random(rng: &mut StdRng, n: usize, range: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-range..range)).collect()
}

fn max_err(what: &str, gpu: &[f32], cpu: &[f32], scale: f32, tol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs() / scale;
        assert!(
            err <= tol && g.is_finite(),
            "{what}: index {i}: GPU {g} vs CPU {c}"
        );
        worst = worst.max(err);
    }
    worst
}

fn submit(gpu: &Gpu, ops: &mut Ops, rec: Recording) {
    ops.run(rec);
    gpu.take_error().expect("GPU error");
}

/// Seeded random weights quantized to `ty`: the GGUF block bytes and their dequantized
/// values (the CPU twin's weights).
fn quantized(rng: &mut StdRng, ty: GgmlType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let w = random(rng, n * k, 1.0);
    let q = QTensor::quantize(
        &Tensor::from_vec(w, (n, k), &Device::Cpu).expect("tensor"),
        ty.to_candle(),
    )
    .expect("quantize");
    let deq = q
        .dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("dequantize");
    (q.data().expect("bytes").to_vec(), deq)
}

/// kv_write then attention for each `(pos, t)` step in turn, into `layer` of a fresh cache
/// of `n_ctx` positions; each step against the CPU twin over every key written so far.
#[allow(clippy::too_many_arguments)]
async fn check_attention(
    gpu: &Gpu,
    ops: &mut Ops,
    rng: &mut StdRng,
    (n_heads, n_kv, hd): (u32, u32, u32),
    n_layers: usize,
    layer: usize,
    n_ctx: u32,
    steps: &[(u32, u32)],
) {
    let cache = KvCache::new(gpu, n_layers, n_ctx, n_kv, hd).expect("cache");
    let (mut k_all, mut v_all) = (Vec::new(), Vec::new());
    for &(pos, t) in steps {
        let k = random(rng, (t * n_kv * hd) as usize, 1.0);
        let v = random(rng, k.len(), 1.0);
        let q = random(rng, (t * n_heads * hd) as usize, 1.0);
        // The cache holds f16: the CPU twin sees the same rounded keys and values.
        k_all.extend(k.iter().map(|&x| half::f16::from_f32(x).to_f32()));
        v_all.extend(v.iter().map(|&x| half::f16::from_f32(x).to_f32()));
        let kb = F32Buffer::from_slice(gpu, "k", &k).expect("k");
        let vb = F32Buffer::from_slice(gpu, "v", &v).expect("v");
        let qb = F32Buffer::from_slice(gpu, "q", &q).expect("q");
        let out = F32Buffer::zeros(gpu, "attn", q.len()).expect("out");
        let mut rec = ops.recording();
        ops.kv_write(&mut rec, &cache, layer, &kb, &vb, pos, t)
            .expect("kv_write");
        ops.attention(&mut rec, &qb, &cache, layer, &out, n_heads, pos, t)
            .expect("attention");
        submit(gpu, ops, rec);
        let want = cpu::attention(
            &q,
            &k_all,
            &v_all,
            t as usize,
            n_heads as usize,
            n_kv as usize,
            hd as usize,
            pos as usize,
        );
        let tol = 2e-5;
        let what = format!("attention {n_heads}/{n_kv} heads pos={pos} t={t}");
        let err = max_err(&what, &out.read(gpu).await.expect("read"), &want, 1.0, tol);
        console_log!("{what}: max error {err:.2e}");
    }
}

/// The browser's adapter, or None with the reason printed (the test then passes).
async fn adapter() -> Option<Gpu> {
    match Gpu::new(GpuOptions::default()).await {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            console_log!("SKIP: no WebGPU adapter ({e})");
            None
        }
    }
}

#[wasm_bindgen_test]
async fn every_kernel_in_the_browser() {
    let Some(gpu) = adapter().await else {
        return;
    };
    console_log!("adapter: {:?}", gpu.report);
    let mut ops = Ops::new(&gpu).expect("ops");
    let mut rng = StdRng::seed_from_u64(42);

    for ty in kernel_types() {
        let (n, k) = (67, if ty.block_size() == 256 { 512 } else { 96 });
        let (bytes, deq) = quantized(&mut rng, ty, n, k);
        let cap = ty.bytes_for(k as u64).expect("row bytes") * 20 + 3;
        let wt = WeightTensor::with_max_part_bytes(&gpu, "w", ty, n, k, cap).expect("weight");
        let mut writer = wt.writer();
        writer.write(&gpu, &bytes).expect("write");
        writer.finish().expect("finish");
        for t in [1usize, 5] {
            let x = random(&mut rng, t * k, 1.0);
            let bias = random(&mut rng, n, 1.0);
            let (xb, bb) = (
                F32Buffer::from_slice(&gpu, "x", &x).expect("x"),
                F32Buffer::from_slice(&gpu, "b", &bias).expect("b"),
            );
            let yb = F32Buffer::zeros(&gpu, "y", t * n).expect("y");
            let mut rec = ops.recording();
            ops.matmul(&mut rec, &xb, &wt, Some(&bb), &yb, t as u32)
                .expect("matmul");
            submit(&gpu, &mut ops, rec);
            let got = yb.read(&gpu).await.expect("read");
            let want = cpu::matmul(&x, &deq, Some(&bias), t, n, k);
            let err = max_err(&format!("matmul {ty} t={t}"), &got, &want, 16.0, 1e-5);
            console_log!(
                "matmul {ty} t={t} parts={}: max error {err:.2e}",
                wt.n_parts()
            );
        }
        let ids: Vec<u32> = vec![0, 66, 13, 40];
        let idb = U32Buffer::from_slice(&gpu, "ids", &ids).expect("ids");
        let out = F32Buffer::zeros(&gpu, "embd", ids.len() * k).expect("out");
        let mut rec = ops.recording();
        ops.embed(&mut rec, &wt, &idb, &out, ids.len() as u32)
            .expect("embed");
        submit(&gpu, &mut ops, rec);
        let err = max_err(
            &format!("embed {ty}"),
            &out.read(&gpu).await.expect("read"),
            &cpu::embedding(&deq, &ids, k),
            1.0,
            0.0,
        );
        console_log!("embed {ty}: max error {err:.2e}");
    }

    let (t, dim) = (3usize, 256usize);
    let x = random(&mut rng, t * dim, 2.0);
    let w = random(&mut rng, dim, 1.0);
    let (xb, wb) = (
        F32Buffer::from_slice(&gpu, "x", &x).expect("x"),
        F32Buffer::from_slice(&gpu, "w", &w).expect("w"),
    );
    let yb = F32Buffer::zeros(&gpu, "y", t * dim).expect("y");
    let up = F32Buffer::from_slice(&gpu, "up", &w.repeat(t)).expect("up");
    let mut rec = ops.recording();
    ops.rms_norm(&mut rec, &xb, &wb, &yb, t as u32, 1e-6)
        .expect("rms_norm");
    ops.add(&mut rec, &xb, &yb, t * dim).expect("add");
    ops.swiglu(&mut rec, &xb, &up, t * dim).expect("swiglu");
    submit(&gpu, &mut ops, rec);
    let normed = cpu::rms_norm(&x, &w, 1e-6);
    let summed: Vec<f32> = x.iter().zip(&normed).map(|(a, b)| a + b).collect();
    let want = cpu::swiglu(&summed, &w.repeat(t));
    let err = max_err(
        "rms_norm + add + swiglu",
        &xb.read(&gpu).await.expect("read"),
        &want,
        4.0,
        1e-5,
    );
    console_log!("rms_norm + add + swiglu: max error {err:.2e}");

    for mode in [RopeMode::Neox, RopeMode::Normal] {
        let (n_heads, hd, pos) = (2u32, 64u32, 77u32);
        let freqs = RopeFreqs::new(&gpu, hd, 1e6, None).expect("freqs");
        let fvals = RopeFreqs::frequencies(hd, 1e6, None).expect("freqs");
        let q = random(&mut rng, t * (n_heads * hd) as usize, 1.0);
        let qb = F32Buffer::from_slice(&gpu, "q", &q).expect("q");
        let mut rec = ops.recording();
        ops.rope(&mut rec, &qb, &freqs, mode, n_heads, hd, pos, t as u32)
            .expect("rope");
        submit(&gpu, &mut ops, rec);
        let mut want = q.clone();
        cpu::rope(
            &mut want,
            &fvals,
            mode,
            n_heads as usize,
            hd as usize,
            pos as usize,
        );
        let err = max_err(
            &format!("rope {mode:?}"),
            &qb.read(&gpu).await.expect("read"),
            &want,
            1.0,
            2e-6,
        );
        console_log!("rope {mode:?}: max error {err:.2e}");
    }

    check_attention(
        &gpu,
        &mut ops,
        &mut rng,
        (6, 2, 64),
        1,
        0,
        64,
        &[(0, 5), (5, 1)],
    )
    .await;

    let vocab = 20000u32;
    let logits = random(&mut rng, vocab as usize, 8.0);
    let lb = F32Buffer::from_slice(&gpu, "logits", &logits).expect("logits");
    let token = U32Buffer::zeros(&gpu, "token", 1).expect("token");
    let readback = TokenReadback::new(&gpu);
    let mut rec = ops.recording();
    ops.argmax(&mut rec, &lb, vocab, &token).expect("argmax");
    ops.run_then(rec, |enc| readback.copy(enc, &token));
    gpu.take_error().expect("GPU error");
    assert_eq!(
        readback.read(&gpu).await.expect("token"),
        cpu::argmax(&logits),
        "argmax"
    );
    let sampling = Sampling {
        temperature: 0.8,
        top_p: 0.9,
        seed: 7,
    };
    for step in 0..3 {
        let mut rec = ops.recording();
        ops.sample(&mut rec, &lb, vocab, &sampling, step, &token)
            .expect("sample");
        ops.run_then(rec, |enc| readback.copy(enc, &token));
        gpu.take_error().expect("GPU error");
        let got = readback.read(&gpu).await.expect("token");
        assert_eq!(
            got,
            cpu::sample_top_p(&logits, 0.8, 0.9, 7, step),
            "sample step {step}"
        );
    }
    console_log!("argmax and top-p sampling match the CPU");
}

/// The shapes a real prompt gives: a qwen2-0.5B-sized GQA group (14 query heads over 2 kv
/// heads) and an 85-token prefill, so attention walks more than one 64-key tile and the
/// tiled mat-mat runs over many row tiles with a partial last one.
#[wasm_bindgen_test]
async fn kernels_at_prompt_shapes() {
    let Some(gpu) = adapter().await else {
        return;
    };
    let mut ops = Ops::new(&gpu).expect("ops");
    let mut rng = StdRng::seed_from_u64(7);

    check_attention(
        &gpu,
        &mut ops,
        &mut rng,
        (14, 2, 64),
        2,
        1,
        256,
        &[(0, 85), (85, 1), (86, 70)],
    )
    .await;

    for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q5_0, GgmlType::Q8_0] {
        // 896 is qwen2-0.5B's width; k-quant rows must be whole 256-blocks.
        let k = if ty.block_size() == 256 { 1280 } else { 896 };
        let (n, t) = (200usize, 85usize);
        let (bytes, deq) = quantized(&mut rng, ty, n, k);
        let wt = WeightTensor::new(&gpu, "w", ty, n, k).expect("weight");
        let mut writer = wt.writer();
        writer.write(&gpu, &bytes).expect("write");
        writer.finish().expect("finish");
        let x = random(&mut rng, t * k, 1.0);
        let xb = F32Buffer::from_slice(&gpu, "x", &x).expect("x");
        let yb = F32Buffer::zeros(&gpu, "y", t * n).expect("y");
        let mut rec = ops.recording();
        ops.matmul(&mut rec, &xb, &wt, None, &yb, t as u32)
            .expect("matmul");
        submit(&gpu, &mut ops, rec);
        let want = cpu::matmul(&x, &deq, None, t, n, k);
        let err = max_err(
            &format!("matmul {ty} t={t}"),
            &yb.read(&gpu).await.expect("read"),
            &want,
            32.0,
            1e-5,
        );
        console_log!("matmul {ty} {n}x{k} t={t}: max error {err:.2e}");
    }
}

/// A buffer the engine lets go is destroyed at once, not left to the garbage collector,
/// which sees only a small JS object and may keep a multi-GB model's memory long after
/// another was loaded: the browser's object, kept here, no longer maps.
#[wasm_bindgen_test]
async fn a_buffer_the_engine_lets_go_is_destroyed() {
    use wasm_bindgen::{JsCast, JsValue};
    let Some(gpu) = adapter().await else {
        return;
    };
    let make = || {
        gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("let go"),
            size: 256,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let js = |buffer: &m1_engine::gpu::GpuBuffer| -> JsValue {
        let raw: &JsValue = buffer.as_webgpu().expect("a WebGPU buffer").as_ref();
        raw.clone()
    };
    // GPUMapMode.READ
    let map = |raw: JsValue| async move {
        let map_async = js_sys::Reflect::get(&raw, &"mapAsync".into())
            .expect("mapAsync")
            .unchecked_into::<js_sys::Function>();
        let promise = map_async.call1(&raw, &1.into()).expect("mapAsync call");
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await
    };
    let kept = make();
    map(js(&kept))
        .await
        .expect("a buffer the engine holds maps");
    let gone = make();
    let raw = js(&gone);
    drop(gone);
    let refused = map(raw).await;
    assert!(refused.is_err(), "a buffer the engine let go still maps");
    drop(kept);
}
