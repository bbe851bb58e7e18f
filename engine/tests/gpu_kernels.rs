//! Every GPU kernel against its CPU twin (`m1_engine::gpu::reference`) on seeded random data,
//! for every weight type, on both the f32 path (shader-f16 disabled) and the f16 path (where
//! the adapter offers it). Without an adapter each test prints why and passes; CI has lavapipe.
//! `cargo test -p m1-engine --test gpu_kernels -- --nocapture` prints the max error per case.
#![cfg(not(target_arch = "wasm32"))]

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use m1_engine::gguf::GgmlType;
use m1_engine::gpu::reference as cpu;
use m1_engine::gpu::{
    kernel_types, F32Buffer, Gpu, GpuError, GpuOptions, KvCache, Ops, QkvLayout, Recording,
    RopeFreqs, RopeMode, TokenReadback, Tuning, U32Buffer, WeightTensor,
};
use m1_engine::sampling::Sampling;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Ctx {
    gpu: Gpu,
    ops: Ops,
    path: String,
    /// The decode mat-vec computes in f16.
    f16_math: bool,
}

/// The KV cache holds f16: what the CPU twin sees of a key or value.
fn f16_round(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

impl Ctx {
    fn run(&mut self, f: impl FnOnce(&mut Ops, &mut Recording) -> Result<(), GpuError>) {
        let mut rec = self.ops.recording();
        f(&mut self.ops, &mut rec).expect("recording failed");
        self.ops.run(rec);
        self.gpu.take_error().expect("GPU error");
    }

    fn read(&self, b: &F32Buffer) -> Vec<f32> {
        pollster::block_on(b.read(&self.gpu)).expect("readback")
    }

    fn f32(&self, label: &str, data: &[f32]) -> F32Buffer {
        F32Buffer::from_slice(&self.gpu, label, data).expect("buffer")
    }

    fn zeros(&self, label: &str, len: usize) -> F32Buffer {
        F32Buffer::zeros(&self.gpu, label, len).expect("buffer")
    }
}

/// The f32 path and, where offered, the f16 path (shader-f16 and f16 arithmetic in the
/// decode mat-vec); empty (with a printed reason) without a GPU.
fn contexts(tuning: Tuning) -> Vec<Ctx> {
    let mut out = Vec::new();
    for (disable_f16, path) in [(true, "f32 path"), (false, "f16 path")] {
        match pollster::block_on(Gpu::new(GpuOptions {
            disable_f16,
            ..GpuOptions::default()
        })) {
            Ok(gpu) => {
                if !disable_f16 && !gpu.report.shader_f16 {
                    println!("no shader-f16 on {}: f16 path not run", gpu.report.name);
                    continue;
                }
                let tuning = Tuning {
                    f16_math: !disable_f16,
                    ..tuning
                };
                let ops = Ops::with_tuning(&gpu, tuning).expect("ops");
                let shapes = if tuning.software { ", CPU shapes" } else { "" };
                out.push(Ctx {
                    gpu,
                    ops,
                    path: format!("{path}{shapes}"),
                    f16_math: !disable_f16,
                });
            }
            Err(e) => {
                println!("SKIP: no GPU adapter ({e})");
                return Vec::new();
            }
        }
    }
    out
}

/// The contexts of both mat-vec shape policies: a hardware GPU's (threads sharing a few rows)
/// and a software adapter's (`Tuning::matvec_shape`).
fn shape_contexts() -> Vec<Ctx> {
    let mut out = contexts(Tuning::default());
    out.extend(contexts(Tuning {
        software: true,
        ..Tuning::default()
    }));
    out
}

fn random(rng: &mut StdRng, n: usize, range: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-range..range)).collect()
}

/// Random weights quantized by candle: (GGUF block bytes, candle's dequantization).
fn quantized(ty: GgmlType, rows: usize, cols: usize, rng: &mut StdRng) -> (Vec<u8>, Vec<f32>) {
    let data = random(rng, rows * cols, 1.0);
    let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, ty.to_candle()).expect("quantize");
    let bytes = q.data().expect("bytes").to_vec();
    assert_eq!(
        bytes.len() as u64,
        ty.bytes_for(cols as u64).expect("row bytes") * rows as u64,
        "{ty} layout size"
    );
    let deq = q
        .dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>());
    (bytes, deq.expect("dequantize"))
}

/// Max of |gpu - cpu| / scale(i); fails at the first element past `tol`, naming it.
fn check(what: &str, gpu: &[f32], cpu: &[f32], scale: impl Fn(usize) -> f32, tol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs() / scale(i);
        assert!(
            err <= tol && g.is_finite(),
            "{what}: index {i}: GPU {g} vs CPU {c} (error {err:e} > {tol:e})"
        );
        worst = worst.max(err);
    }
    worst
}

/// Matmul error budget per type, relative to sum_k |x_k w_k|. Dequantized values match candle
/// bit for bit (see embedding_every_type), so in f32 only the summation order differs, and
/// the dedicated mat-vecs' folding of scales and mins out of the sums (rounded once per
/// chunk instead of per element). Types whose decode ends in an fma-able `q * d + m` (Q4_1,
/// Q5_1, K-quants) could differ from candle by one rounding per element on other GPUs; that
/// is below this budget too. With f16 arithmetic each x is rounded to f16 (2^-11 relative)
/// and each four-term sum once more.
fn matmul_tolerance(ty: GgmlType, f16_math: bool) -> f32 {
    if f16_math {
        return 2e-3;
    }
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => 2e-6,
        _ => 1e-6,
    }
}

fn k_for(ty: GgmlType) -> usize {
    if ty.block_size() == 256 {
        512
    } else {
        896
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_case(
    ctx: &mut Ctx,
    rng: &mut StdRng,
    ty: GgmlType,
    n: usize,
    k: usize,
    t: usize,
    with_bias: bool,
    max_part_bytes: Option<u64>,
) -> f32 {
    let (bytes, wdeq) = quantized(ty, n, k, rng);
    let w = match max_part_bytes {
        None => WeightTensor::upload(&ctx.gpu, "w", ty, n, k, &bytes).expect("upload"),
        Some(cap) => {
            let w = WeightTensor::with_max_part_bytes(&ctx.gpu, "w", ty, n, k, cap).expect("alloc");
            assert!(w.n_parts() > 1, "{ty}: split case should split");
            let mut writer = w.writer();
            // Odd chunk sizes exercise the carry across part and word boundaries.
            for chunk in bytes.chunks(37) {
                writer.write(&ctx.gpu, chunk).expect("write");
            }
            writer.finish().expect("finish");
            w
        }
    };
    assert!(
        w.gpu_bytes() as f64 <= bytes.len() as f64 * 1.02 + 64.0,
        "{ty}: GPU bytes {} for {} file bytes",
        w.gpu_bytes(),
        bytes.len()
    );
    let x = random(rng, t * k, 1.0);
    let bias = with_bias.then(|| random(rng, n, 1.0));
    let xb = ctx.f32("x", &x);
    let bb = bias.as_ref().map(|b| ctx.f32("bias", b));
    let yb = ctx.zeros("y", t * n);
    ctx.run(|ops, rec| ops.matmul(rec, &xb, &w, bb.as_ref(), &yb, t as u32));
    let got = ctx.read(&yb);
    let want = cpu::matmul(&x, &wdeq, bias.as_deref(), t, n, k);
    let xabs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let wabs: Vec<f32> = wdeq.iter().map(|v| v.abs()).collect();
    let mag = cpu::matmul(&xabs, &wabs, None, t, n, k);
    let what = format!(
        "matmul {ty} n={n} k={k} t={t} bias={with_bias} parts={} ({})",
        w.n_parts(),
        ctx.path
    );
    // The f16 arithmetic is the decode mat-vec's; prefill runs in f32.
    let tol = matmul_tolerance(ty, ctx.f16_math && t == 1);
    let err = check(&what, &got, &want, |i| mag[i] + 1e-6, tol);
    println!("{what}: max error {err:.2e} (relative to sum |x w|)");
    err
}

#[test]
fn matmul_decode_every_type() {
    for mut ctx in shape_contexts() {
        let mut rng = StdRng::seed_from_u64(1);
        for ty in kernel_types() {
            matmul_case(&mut ctx, &mut rng, ty, 67, k_for(ty), 1, true, None);
        }
        // K-quants at a second width, without bias.
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            matmul_case(&mut ctx, &mut rng, ty, 33, 768, 1, false, None);
        }
    }
}

#[test]
fn matmul_vocab_sized_output() {
    // qwen2's 152064-row output projection: with one row per workgroup the grid passes 65535
    // and must fold into two dimensions.
    let tuning = Tuning {
        matvec_rows: Some(1),
        ..Tuning::default()
    };
    for mut ctx in contexts(tuning) {
        let mut rng = StdRng::seed_from_u64(13);
        matmul_case(
            &mut ctx,
            &mut rng,
            GgmlType::Q8_0,
            152064,
            32,
            1,
            false,
            None,
        );
    }
}

#[test]
fn matmul_prefill_every_type() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(2);
        for ty in kernel_types() {
            matmul_case(&mut ctx, &mut rng, ty, 67, k_for(ty), 5, true, None);
            matmul_case(&mut ctx, &mut rng, ty, 67, k_for(ty), 17, false, None);
        }
        // Several 32-token tiles, the last one partial.
        for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0] {
            matmul_case(&mut ctx, &mut rng, ty, 131, k_for(ty), 70, true, None);
        }
    }
}

#[test]
fn matmul_split_weight() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(3);
        // Q4_0 at K = 96 has 54-byte rows and Q6_K 210-byte rows: parts and rows start mid-word.
        for (ty, k) in [
            (GgmlType::Q4_0, 96),
            (GgmlType::Q6K, 256),
            (GgmlType::Q8_0, 896),
            (GgmlType::F16, 64),
        ] {
            let row_bytes = ty.bytes_for(k as u64).expect("row bytes");
            let cap = row_bytes * 10 + 3;
            for t in [1, 5] {
                matmul_case(&mut ctx, &mut rng, ty, 67, k, t, true, Some(cap));
            }
        }
    }
}

/// Every type's GPU layout (quant.rs: Q6_K, Q8_0, Q4_x, Q5_x blocks split into field
/// regions, the others as in the file) holds the file's bytes: streamed in odd-sized chunks
/// into a weight split into parts, and as the members of a fused weight written at their
/// rows, then read back and returned to the file's layout. The GPU holds at most 15 bytes
/// per part more than the file.
#[test]
fn weights_read_back_as_written() {
    for ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(14);
        for ty in kernel_types() {
            let k = k_for(ty);
            let row_bytes = ty.bytes_for(k as u64).expect("row bytes");
            let (bytes, _) = quantized(ty, 67, k, &mut rng);
            let cap = row_bytes * 10 + 15;
            let w =
                WeightTensor::with_max_part_bytes(&ctx.gpu, "w", ty, 67, k, cap).expect("alloc");
            let mut writer = w.writer();
            for chunk in bytes.chunks(37) {
                writer.write(&ctx.gpu, chunk).expect("write");
            }
            writer.finish().expect("finish");
            let back = pollster::block_on(w.read_back(&ctx.gpu)).expect("read back");
            assert!(
                back == bytes,
                "{ty}: {} parts read back differ",
                w.n_parts()
            );
            assert!(w.gpu_bytes() <= bytes.len() as u64 + 15 * w.n_parts() as u64);

            // Members of 8 and 6 rows written in reverse order, each in two chunks.
            let (a, _) = quantized(ty, 8, k, &mut rng);
            let (b, _) = quantized(ty, 6, k, &mut rng);
            let fused = WeightTensor::new(&ctx.gpu, "fused", ty, 14, k).expect("alloc");
            for (first, member) in [(8u32, &b), (0, &a)] {
                let rows = (member.len() as u64 / row_bytes) as u32;
                let mut writer = fused.writer_at(first, rows).expect("writer_at");
                let (x, y) = member.split_at(member.len() / 3);
                writer.write(&ctx.gpu, x).expect("write");
                writer.write(&ctx.gpu, y).expect("write");
                writer.finish().expect("finish");
            }
            let back = pollster::block_on(fused.read_back(&ctx.gpu)).expect("read back");
            assert!(
                back == [a, b].concat(),
                "{ty}: fused members read back differ"
            );
            println!(
                "{ty}: {} parts and a fused weight read back as written ({})",
                w.n_parts(),
                ctx.path
            );
        }
    }
}

#[test]
fn embedding_every_type() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(4);
        for ty in kernel_types() {
            let (rows, dim) = (50, k_for(ty));
            let (bytes, deq) = quantized(ty, rows, dim, &mut rng);
            let ids: Vec<u32> = [0, rows as u32 - 1]
                .into_iter()
                .chain((0..7).map(|_| rng.random_range(0..rows as u32)))
                .collect();
            let t = ids.len();
            for split in [false, true] {
                let w = if split {
                    let cap = ty.bytes_for(dim as u64).expect("row bytes") * 7 + 3;
                    let w =
                        WeightTensor::with_max_part_bytes(&ctx.gpu, "table", ty, rows, dim, cap)
                            .expect("alloc");
                    let mut writer = w.writer();
                    writer.write(&ctx.gpu, &bytes).expect("write");
                    writer.finish().expect("finish");
                    w
                } else {
                    WeightTensor::upload(&ctx.gpu, "table", ty, rows, dim, &bytes).expect("upload")
                };
                let idb = U32Buffer::from_slice(&ctx.gpu, "ids", &ids).expect("ids");
                let out = ctx.zeros("embd", t * dim);
                ctx.run(|ops, rec| ops.embed(rec, &w, &idb, &out, t as u32));
                let got = ctx.read(&out);
                let want = cpu::embedding(&deq, &ids, dim);
                let what = format!("embed {ty} parts={} ({})", w.n_parts(), ctx.path);
                // Dequantization must match candle up to one rounding of a fused multiply-add.
                let err = check(&what, &got, &want, |i| want[i].abs().max(1e-3), 1e-6);
                println!("{what}: max relative error {err:.2e}");
            }
        }
    }
}

#[test]
fn rms_norm_add_swiglu() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(5);
        let (t, dim) = (5, 896);
        let x = random(&mut rng, t * dim, 3.0);
        let w = random(&mut rng, dim, 1.0);
        let (xb, wb, yb) = (ctx.f32("x", &x), ctx.f32("w", &w), ctx.zeros("y", t * dim));
        ctx.run(|ops, rec| ops.rms_norm(rec, &xb, &wb, &yb, t as u32, 1e-6));
        let want = cpu::rms_norm(&x, &w, 1e-6);
        let err = check(
            "rms_norm",
            &ctx.read(&yb),
            &want,
            |i| want[i].abs().max(1.0),
            1e-5,
        );
        println!("rms_norm ({}): max error {err:.2e}", ctx.path);

        // The residual add fused into the norm: x += r, y = rms_norm(x), odd width.
        let dim = 577;
        let x = random(&mut rng, t * dim, 3.0);
        let r = random(&mut rng, t * dim, 3.0);
        let w = random(&mut rng, dim, 1.0);
        let (xb, rb, wb) = (ctx.f32("x", &x), ctx.f32("r", &r), ctx.f32("w", &w));
        let yb = ctx.zeros("y", t * dim);
        ctx.run(|ops, rec| ops.add_rms_norm(rec, &xb, &rb, &wb, &yb, t as u32, 1e-6));
        let sum: Vec<f32> = x.iter().zip(&r).map(|(a, b)| a + b).collect();
        check("add_rms_norm x", &ctx.read(&xb), &sum, |_| 1.0, 0.0);
        let want = cpu::rms_norm(&sum, &w, 1e-6);
        let err = check(
            "add_rms_norm",
            &ctx.read(&yb),
            &want,
            |i| want[i].abs().max(1.0),
            1e-5,
        );
        println!("add_rms_norm ({}): max error {err:.2e}", ctx.path);

        let n = 3 * 4864 + 5;
        let a = random(&mut rng, n, 8.0);
        let b = random(&mut rng, n, 8.0);
        let (ab, bb) = (ctx.f32("a", &a), ctx.f32("b", &b));
        ctx.run(|ops, rec| ops.add(rec, &ab, &bb, n));
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let err = check("add", &ctx.read(&ab), &want, |_| 1.0, 0.0);
        println!("add ({}): max error {err:.2e}", ctx.path);

        let (gb, ub) = (ctx.f32("gate", &a), ctx.f32("up", &b));
        ctx.run(|ops, rec| ops.swiglu(rec, &gb, &ub, n));
        let want = cpu::swiglu(&a, &b);
        let err = check(
            "swiglu",
            &ctx.read(&gb),
            &want,
            |i| want[i].abs().max(1.0),
            1e-5,
        );
        println!("swiglu ({}): max error {err:.2e}", ctx.path);
    }
}

#[test]
fn rope_both_modes() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(6);
        // qwen2: theta 1e6, full rotation; a partial rotation (n_rot < head_dim) with factors.
        let cases: [(RopeMode, u32, u32, f64, bool); 3] = [
            (RopeMode::Neox, 64, 64, 1e6, false),
            (RopeMode::Normal, 64, 64, 1e4, false),
            (RopeMode::Normal, 64, 32, 5e5, true),
        ];
        for (mode, head_dim, n_rot, theta, with_factors) in cases {
            let (t, n_heads) = (5u32, 3u32);
            for pos in [0u32, 1000, 30000] {
                let factors: Option<Vec<f32>> =
                    with_factors.then(|| (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.25).collect());
                let freqs =
                    RopeFreqs::new(&ctx.gpu, n_rot, theta, factors.as_deref()).expect("freqs");
                let fvals =
                    RopeFreqs::frequencies(n_rot, theta, factors.as_deref()).expect("freqs");
                let x = random(&mut rng, (t * n_heads * head_dim) as usize, 2.0);
                let xb = ctx.f32("x", &x);
                ctx.run(|ops, rec| ops.rope(rec, &xb, &freqs, mode, n_heads, head_dim, pos, t));
                let mut want = x.clone();
                cpu::rope(
                    &mut want,
                    &fvals,
                    mode,
                    n_heads as usize,
                    head_dim as usize,
                    pos as usize,
                );
                // Exact angles and polynomial sin/cos: the error is f32 rounding, at any position.
                let tol = 2e-6;
                let what = format!("rope {mode:?} n_rot={n_rot} pos={pos} ({})", ctx.path);
                let err = check(&what, &ctx.read(&xb), &want, |_| 2.0, tol);
                println!("{what}: max error {err:.2e}");
            }
        }
    }
}

/// KV writes for a prefill then decode steps, checked against full attention on the CPU.
fn attention_case(
    ctx: &mut Ctx,
    rng: &mut StdRng,
    n_heads: u32,
    n_kv: u32,
    hd: u32,
    steps: &[(u32, u32)],
) {
    let n_ctx = 512;
    let cache = KvCache::new(&ctx.gpu, 2, n_ctx, n_kv, hd).expect("cache");
    let layer = 1;
    let row = (n_kv * hd) as usize;
    let mut k_all: Vec<f32> = Vec::new();
    let mut v_all: Vec<f32> = Vec::new();
    for &(pos, t) in steps {
        assert_eq!(k_all.len(), pos as usize * row, "steps must be contiguous");
        let k = random(rng, t as usize * row, 1.0);
        let v = random(rng, t as usize * row, 1.0);
        let q = random(rng, (t * n_heads * hd) as usize, 1.0);
        // The cache stores f16: the reference sees the same rounded keys.
        k_all.extend(f16_round(&k));
        v_all.extend(f16_round(&v));
        let (kb, vb, qb) = (ctx.f32("k", &k), ctx.f32("v", &v), ctx.f32("q", &q));
        let out = ctx.zeros("attn", q.len());
        ctx.run(|ops, rec| {
            ops.kv_write(rec, &cache, layer, &kb, &vb, pos, t)?;
            ops.attention(rec, &qb, &cache, layer, &out, n_heads, pos, t)
        });
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
        let what = format!(
            "attention heads={n_heads}/{n_kv} hd={hd} pos={pos} t={t} ({})",
            ctx.path
        );
        let err = check(&what, &ctx.read(&out), &want, |_| 1.0, 2e-5);
        println!("{what}: max error {err:.2e}");
    }
}

#[test]
fn attention_gqa_prefill_then_decode() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(7);
        attention_case(
            &mut ctx,
            &mut rng,
            8,
            2,
            64,
            &[(0, 17), (17, 1), (18, 1), (19, 5)],
        );
        // qwen2.5-7b's shape: 28 query heads on 4 kv heads of 128.
        attention_case(&mut ctx, &mut rng, 28, 4, 128, &[(0, 5), (5, 1)]);
        // A group of 20 query heads spans three workgroup slices (8 + 8 + 4); plain MHA.
        attention_case(&mut ctx, &mut rng, 20, 1, 80, &[(0, 9), (9, 1)]);
        attention_case(&mut ctx, &mut rng, 4, 4, 96, &[(0, 3), (3, 1)]);
    }
}

#[test]
fn attention_long_context_chunks() {
    // A 300-key context splits into 3 chunks of 128 merged by attn_combine.
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(8);
        attention_case(
            &mut ctx,
            &mut rng,
            4,
            2,
            64,
            &[(0, 300), (300, 1), (301, 17)],
        );
    }
}

#[test]
fn argmax_and_token_readback() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(9);
        let vocab = 152064;
        let mut logits = random(&mut rng, vocab, 10.0);
        let readback = TokenReadback::new(&ctx.gpu);
        let out = U32Buffer::zeros(&ctx.gpu, "token", 1).expect("token");
        for (case, plant) in [
            ("random", None),
            ("tie", Some([151000usize, 70000])),
            ("last", Some([vocab - 1, vocab - 1])),
        ] {
            if let Some(at) = plant {
                for i in at {
                    logits[i] = 25.0;
                }
            }
            let lb = ctx.f32("logits", &logits);
            let mut rec = ctx.ops.recording();
            ctx.ops
                .argmax(&mut rec, &lb, vocab as u32, &out)
                .expect("argmax");
            ctx.ops.run_then(rec, |enc| readback.copy(enc, &out));
            let got = pollster::block_on(readback.read(&ctx.gpu)).expect("read token");
            let want = cpu::argmax(&logits);
            assert_eq!(
                got, want,
                "argmax {case} ({}): GPU {got} vs CPU {want}",
                ctx.path
            );
            println!("argmax {case} ({}): token {got} matches", ctx.path);
            if let Some(at) = plant {
                for i in at {
                    logits[i] = 0.0;
                }
            }
        }
    }
}

#[test]
fn sample_top_p_matches_cpu() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(10);
        let out = U32Buffer::zeros(&ctx.gpu, "token", 1).expect("token");
        for (vocab, spread, temperature, top_p, seeds) in [
            (1000usize, 4.0f32, 0.7f32, 0.9f32, 0u64..12),
            (152064, 12.0, 1.0, 0.95, 100..103),
            (5000, 3.0, 1.3, 1.0, 200..204),
        ] {
            let logits = random(&mut rng, vocab, spread);
            let lb = ctx.f32("logits", &logits);
            let kept: std::collections::HashSet<u32> = cpu::top_p_set(&logits, temperature, top_p)
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            for seed in seeds {
                let step = seed as u32 * 7 + 3;
                let sampling = Sampling {
                    temperature,
                    top_p,
                    seed,
                };
                ctx.run(|ops, rec| ops.sample(rec, &lb, vocab as u32, &sampling, step, &out));
                let got = pollster::block_on(out.read(&ctx.gpu)).expect("read")[0];
                let want = cpu::sample_top_p(&logits, temperature, top_p, seed, step);
                assert!(
                    kept.contains(&got),
                    "sample vocab={vocab} seed={seed}: GPU token {got} is outside the top-p set"
                );
                assert_eq!(got, want, "sample vocab={vocab} T={temperature} p={top_p} seed={seed} ({}): GPU {got} vs CPU {want}", ctx.path);
            }
            println!(
                "sample vocab={vocab} T={temperature} top_p={top_p} ({}): all seeds match, {} kept",
                ctx.path,
                kept.len()
            );
        }
        // Greedy when temperature is 0.
        let logits = random(&mut rng, 3000, 5.0);
        let lb = ctx.f32("logits", &logits);
        let sampling = Sampling {
            temperature: 0.0,
            top_p: 0.9,
            seed: 5,
        };
        ctx.run(|ops, rec| ops.sample(rec, &lb, 3000, &sampling, 0, &out));
        assert_eq!(
            pollster::block_on(out.read(&ctx.gpu)).expect("read")[0],
            cpu::argmax(&logits)
        );
    }
}

#[test]
fn folded_dispatch_grids() {
    // A 3-workgroup cap per dimension forces every op onto its folded (x, y) grid.
    let tuning = Tuning {
        max_groups_per_dim: 3,
        matvec_rows: Some(4),
        ..Tuning::default()
    };
    for mut ctx in contexts(tuning) {
        let mut rng = StdRng::seed_from_u64(11);
        matmul_case(&mut ctx, &mut rng, GgmlType::Q8_0, 30, 64, 1, true, None);
        matmul_case(&mut ctx, &mut rng, GgmlType::Q4K, 130, 256, 3, true, None);

        let (t, dim) = (9usize, 64usize);
        let (bytes, deq) = quantized(GgmlType::Q4_0, 20, dim, &mut rng);
        let table = WeightTensor::upload(&ctx.gpu, "table", GgmlType::Q4_0, 20, dim, &bytes)
            .expect("upload");
        let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7) % 20).collect();
        let idb = U32Buffer::from_slice(&ctx.gpu, "ids", &ids).expect("ids");
        let x = ctx.zeros("x", t * dim);
        ctx.run(|ops, rec| ops.embed(rec, &table, &idb, &x, t as u32));
        check(
            "folded embed",
            &ctx.read(&x),
            &cpu::embedding(&deq, &ids, dim),
            |_| 1.0,
            1e-6,
        );

        let xs = random(&mut rng, t * dim, 2.0);
        let w = random(&mut rng, dim, 1.0);
        let (xb, wb, yb) = (ctx.f32("x", &xs), ctx.f32("w", &w), ctx.zeros("y", t * dim));
        ctx.run(|ops, rec| ops.rms_norm(rec, &xb, &wb, &yb, t as u32, 1e-5));
        check(
            "folded rms_norm",
            &ctx.read(&yb),
            &cpu::rms_norm(&xs, &w, 1e-5),
            |_| 1.0,
            1e-5,
        );

        let n = 256 * 8 + 17;
        let a = random(&mut rng, n, 1.0);
        let b = random(&mut rng, n, 1.0);
        let (ab, bb) = (ctx.f32("a", &a), ctx.f32("b", &b));
        ctx.run(|ops, rec| ops.swiglu(rec, &ab, &bb, n));
        check(
            "folded swiglu",
            &ctx.read(&ab),
            &cpu::swiglu(&a, &b),
            |_| 1.0,
            1e-5,
        );

        let (n_heads, hd) = (4u32, 64u32);
        let freqs = RopeFreqs::new(&ctx.gpu, hd, 1e6, None).expect("freqs");
        let fvals = RopeFreqs::frequencies(hd, 1e6, None).expect("freqs");
        let q = random(&mut rng, t * (n_heads * hd) as usize, 1.0);
        let qb = ctx.f32("q", &q);
        ctx.run(|ops, rec| ops.rope(rec, &qb, &freqs, RopeMode::Neox, n_heads, hd, 7, t as u32));
        let mut want = q.clone();
        cpu::rope(
            &mut want,
            &fvals,
            RopeMode::Neox,
            n_heads as usize,
            hd as usize,
            7,
        );
        check("folded rope", &ctx.read(&qb), &want, |_| 1.0, 1e-5);
        println!(
            "folded grids ({}): embed, rms_norm, swiglu, rope, matmul match",
            ctx.path
        );
    }
}

#[test]
fn errors_are_typed() {
    for mut ctx in contexts(Tuning::default()) {
        let gpu = &ctx.gpu;
        let e = WeightTensor::new(gpu, "bad", GgmlType::Q4_0, 4, 100)
            .expect_err("K=100 is not whole Q4_0 blocks");
        assert!(
            matches!(
                e,
                GpuError::NotMultiple {
                    value: 100,
                    multiple: 32,
                    ..
                }
            ),
            "{e}"
        );
        let e = WeightTensor::with_max_part_bytes(gpu, "huge", GgmlType::F32, 4, 64, 100)
            .expect_err("row > part");
        assert!(
            matches!(e, GpuError::RowTooLarge { row_bytes: 256, .. }),
            "{e}"
        );

        let w = WeightTensor::upload(gpu, "w", GgmlType::F32, 4, 16, &[0u8; 256]).expect("upload");
        let mut writer = w.writer();
        let e = writer.write(gpu, &[0u8; 260]).expect_err("too many bytes");
        assert!(
            matches!(
                e,
                GpuError::ByteCount {
                    expected: 256,
                    got: 260,
                    ..
                }
            ),
            "{e}"
        );
        let writer = w.writer();
        let e = writer.finish().expect_err("no bytes");
        assert!(
            matches!(
                e,
                GpuError::ByteCount {
                    expected: 256,
                    got: 0,
                    ..
                }
            ),
            "{e}"
        );

        let x = ctx.zeros("x", 10);
        let y = ctx.zeros("y", 4);
        let mut rec = ctx.ops.recording();
        let e = ctx
            .ops
            .matmul(&mut rec, &x, &w, None, &y, 1)
            .expect_err("x too short");
        assert!(
            matches!(
                e,
                GpuError::Shape {
                    expected: 16,
                    got: 10,
                    ..
                }
            ),
            "{e}"
        );
        println!("{e}");

        let cache = KvCache::new(&ctx.gpu, 1, 8, 1, 16).expect("cache");
        let k = ctx.zeros("k", 16 * 4);
        let e = ctx
            .ops
            .kv_write(&mut rec, &cache, 0, &k, &k, 6, 4)
            .expect_err("context full");
        assert!(
            matches!(
                e,
                GpuError::ContextFull {
                    start: 6,
                    end: 10,
                    n_ctx: 8
                }
            ),
            "{e}"
        );
        println!("{e}");
        drop(rec);
    }
}

/// One quantized weight, on the GPU and dequantized for the CPU twin.
struct TestWeight {
    gpu: WeightTensor,
    cpu: Vec<f32>,
    rows: usize,
    cols: usize,
}

fn test_weight(ctx: &Ctx, rng: &mut StdRng, ty: GgmlType, rows: usize, cols: usize) -> TestWeight {
    let (bytes, cpu) = quantized(ty, rows, cols, rng);
    let gpu = WeightTensor::upload(&ctx.gpu, ty.name(), ty, rows, cols, &bytes).expect("upload");
    TestWeight {
        gpu,
        cpu,
        rows,
        cols,
    }
}

fn cpu_mm(x: &[f32], w: &TestWeight, bias: Option<&[f32]>, t: usize) -> Vec<f32> {
    cpu::matmul(x, &w.cpu, bias, t, w.rows, w.cols)
}

/// A two-layer qwen2-style decoder (q/k/v biases, neox RoPE, GQA, SwiGLU) run as a 5-token
/// prefill then one decode step, each step one submit, against the same composition of CPU
/// twins: the ops compose through shared buffers the way the model code will use them.
#[test]
fn decoder_prefill_then_decode() {
    for mut ctx in contexts(Tuning::default()) {
        let mut rng = StdRng::seed_from_u64(12);
        let (dim, n_heads, n_kv, hd, ff, vocab, n_layers) =
            (256usize, 4u32, 2u32, 64u32, 512usize, 300usize, 2);
        let (eps, theta) = (1e-6f32, 1e6f64);
        let kv_dim = (n_kv * hd) as usize;
        let embd = test_weight(&ctx, &mut rng, GgmlType::Q8_0, vocab, dim);
        let output = test_weight(&ctx, &mut rng, GgmlType::Q6K, vocab, dim);
        let out_norm = random(&mut rng, dim, 1.0);
        let out_norm_b = ctx.f32("output_norm", &out_norm);
        struct Layer {
            attn_norm: Vec<f32>,
            ffn_norm: Vec<f32>,
            bq: Vec<f32>,
            bk: Vec<f32>,
            bv: Vec<f32>,
            wq: TestWeight,
            wk: TestWeight,
            wv: TestWeight,
            wo: TestWeight,
            gate: TestWeight,
            up: TestWeight,
            down: TestWeight,
            bufs: [F32Buffer; 5],
        }
        let layers: Vec<Layer> = (0..n_layers)
            .map(|_| {
                let (attn_norm, ffn_norm) =
                    (random(&mut rng, dim, 1.0), random(&mut rng, dim, 1.0));
                let (bq, bk, bv) = (
                    random(&mut rng, dim, 0.5),
                    random(&mut rng, kv_dim, 0.5),
                    random(&mut rng, kv_dim, 0.5),
                );
                let bufs = [
                    ctx.f32("an", &attn_norm),
                    ctx.f32("fn", &ffn_norm),
                    ctx.f32("bq", &bq),
                    ctx.f32("bk", &bk),
                    ctx.f32("bv", &bv),
                ];
                Layer {
                    wq: test_weight(&ctx, &mut rng, GgmlType::Q4K, dim, dim),
                    wk: test_weight(&ctx, &mut rng, GgmlType::Q5K, kv_dim, dim),
                    wv: test_weight(&ctx, &mut rng, GgmlType::Q8_0, kv_dim, dim),
                    wo: test_weight(&ctx, &mut rng, GgmlType::Q4_0, dim, dim),
                    gate: test_weight(&ctx, &mut rng, GgmlType::Q4K, ff, dim),
                    up: test_weight(&ctx, &mut rng, GgmlType::Q6K, ff, dim),
                    down: test_weight(&ctx, &mut rng, GgmlType::Q5_1, dim, ff),
                    attn_norm,
                    ffn_norm,
                    bq,
                    bk,
                    bv,
                    bufs,
                }
            })
            .collect();
        let freqs = RopeFreqs::new(&ctx.gpu, hd, theta, None).expect("freqs");
        let fvals = RopeFreqs::frequencies(hd, theta, None).expect("freqs");
        let cache = KvCache::new(&ctx.gpu, n_layers, 64, n_kv, hd).expect("cache");
        let max_t = 5;
        let buf = |name: &str, n: usize| ctx.zeros(name, max_t * n);
        let (x, h, q, k, v, att, o) = (
            buf("x", dim),
            buf("h", dim),
            buf("q", dim),
            buf("k", kv_dim),
            buf("v", kv_dim),
            buf("att", dim),
            buf("o", dim),
        );
        let (g, u) = (buf("gate", ff), buf("up", ff));
        let logits = ctx.zeros("logits", vocab);
        let ids_b = U32Buffer::zeros(&ctx.gpu, "ids", max_t).expect("ids");
        let token = U32Buffer::zeros(&ctx.gpu, "token", 1).expect("token");
        let readback = TokenReadback::new(&ctx.gpu);
        let round = f16_round;
        let mut kc: Vec<Vec<f32>> = vec![Vec::new(); n_layers];
        let mut vc: Vec<Vec<f32>> = vec![Vec::new(); n_layers];
        let mut ids: Vec<u32> = vec![3, 17, 250, 99, 0];
        let mut pos = 0u32;
        for step in 0..2 {
            let t = ids.len();
            let tu = t as u32;
            ids_b.write(&ctx.gpu.queue, 0, &ids);
            let mut rec = ctx.ops.recording();
            let ops = &mut ctx.ops;
            ops.embed(&mut rec, &embd.gpu, &ids_b, &x, tu)
                .expect("embed");
            for (li, l) in layers.iter().enumerate() {
                let [an, fnorm, bq, bk, bv] = &l.bufs;
                ops.rms_norm(&mut rec, &x, an, &h, tu, eps).expect("norm");
                ops.matmul(&mut rec, &h, &l.wq.gpu, Some(bq), &q, tu)
                    .expect("q");
                ops.matmul(&mut rec, &h, &l.wk.gpu, Some(bk), &k, tu)
                    .expect("k");
                ops.matmul(&mut rec, &h, &l.wv.gpu, Some(bv), &v, tu)
                    .expect("v");
                ops.rope(&mut rec, &q, &freqs, RopeMode::Neox, n_heads, hd, pos, tu)
                    .expect("rope q");
                ops.rope(&mut rec, &k, &freqs, RopeMode::Neox, n_kv, hd, pos, tu)
                    .expect("rope k");
                ops.kv_write(&mut rec, &cache, li, &k, &v, pos, tu)
                    .expect("kv");
                ops.attention(&mut rec, &q, &cache, li, &att, n_heads, pos, tu)
                    .expect("attention");
                ops.matmul(&mut rec, &att, &l.wo.gpu, None, &o, tu)
                    .expect("o");
                ops.add(&mut rec, &x, &o, t * dim).expect("residual");
                ops.rms_norm(&mut rec, &x, fnorm, &h, tu, eps)
                    .expect("ffn norm");
                ops.matmul(&mut rec, &h, &l.gate.gpu, None, &g, tu)
                    .expect("gate");
                ops.matmul(&mut rec, &h, &l.up.gpu, None, &u, tu)
                    .expect("up");
                ops.swiglu(&mut rec, &g, &u, t * ff).expect("swiglu");
                ops.matmul(&mut rec, &g, &l.down.gpu, None, &o, tu)
                    .expect("down");
                ops.add(&mut rec, &x, &o, t * dim).expect("residual");
            }
            ops.rms_norm(&mut rec, &x, &out_norm_b, &h, tu, eps)
                .expect("output norm");
            ops.matvec_row(&mut rec, &h, tu - 1, &output.gpu, &logits)
                .expect("lm head");
            ops.argmax(&mut rec, &logits, vocab as u32, &token)
                .expect("argmax");
            ops.run_then(rec, |enc| readback.copy(enc, &token));
            let got_token = pollster::block_on(readback.read(&ctx.gpu)).expect("token");
            ctx.gpu.take_error().expect("GPU error");

            // The CPU twin of the same step.
            let mut xs = cpu::embedding(&embd.cpu, &ids, dim);
            for (li, l) in layers.iter().enumerate() {
                let hs = cpu::rms_norm(&xs, &l.attn_norm, eps);
                let mut qs = cpu_mm(&hs, &l.wq, Some(&l.bq), t);
                let mut ks = cpu_mm(&hs, &l.wk, Some(&l.bk), t);
                let vs = cpu_mm(&hs, &l.wv, Some(&l.bv), t);
                cpu::rope(
                    &mut qs,
                    &fvals,
                    RopeMode::Neox,
                    n_heads as usize,
                    hd as usize,
                    pos as usize,
                );
                cpu::rope(
                    &mut ks,
                    &fvals,
                    RopeMode::Neox,
                    n_kv as usize,
                    hd as usize,
                    pos as usize,
                );
                kc[li].extend(round(&ks));
                vc[li].extend(round(&vs));
                let a = cpu::attention(
                    &qs,
                    &kc[li],
                    &vc[li],
                    t,
                    n_heads as usize,
                    n_kv as usize,
                    hd as usize,
                    pos as usize,
                );
                let os = cpu_mm(&a, &l.wo, None, t);
                xs.iter_mut().zip(&os).for_each(|(x, o)| *x += o);
                let hs = cpu::rms_norm(&xs, &l.ffn_norm, eps);
                let act = cpu::swiglu(&cpu_mm(&hs, &l.gate, None, t), &cpu_mm(&hs, &l.up, None, t));
                let ds = cpu_mm(&act, &l.down, None, t);
                xs.iter_mut().zip(&ds).for_each(|(x, d)| *x += d);
            }
            let hidden = ctx.read(&x);
            let what = format!("decoder step {step} hidden ({})", ctx.path);
            let scale = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            // The decode step's mat-vecs may compute in f16 (matmul_tolerance), on activations
            // this random decoder grows to ~1500 (an f16 ulp of 1/1024 of each).
            let tol = if ctx.f16_math { 3e-3 } else { 1e-4 };
            let err = check(&what, &hidden[..t * dim], &xs, |_| scale, tol);
            println!("{what}: max error {err:.2e} of max |x| {scale:.1}");
            let ln = cpu::rms_norm(&xs[(t - 1) * dim..], &out_norm, eps);
            let want = cpu_mm(&ln, &output, None, 1);
            let what = format!("decoder step {step} logits ({})", ctx.path);
            let lscale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = check(&what, &ctx.read(&logits), &want, |_| lscale, tol);
            println!("{what}: max error {err:.2e} of max |logit| {lscale:.1}");
            let want_token = cpu::argmax(&ctx.read(&logits));
            assert_eq!(
                got_token, want_token,
                "decoder step {step}: GPU token vs argmax of GPU logits"
            );
            pos += tu;
            ids = vec![got_token];
        }
    }
}

/// An 80 MiB tensor streamed in 1 MiB chunks: crosses the staging-flush threshold and three
/// 32 MiB parts; rows read back through the embedding kernel.
#[test]
fn streamed_upload_flushes_and_splits() {
    for mut ctx in contexts(Tuning::default()) {
        let (rows, cols) = (5120usize, 4096usize);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&values);
        assert!(bytes.len() as u64 > m1_engine::gpu::FLUSH_BYTES);
        let w =
            WeightTensor::with_max_part_bytes(&ctx.gpu, "big", GgmlType::F32, rows, cols, 32 << 20)
                .expect("alloc");
        assert_eq!(w.n_parts(), 3);
        let mut writer = w.writer();
        for chunk in bytes.chunks((1 << 20) + 3) {
            writer.write(&ctx.gpu, chunk).expect("write");
        }
        writer.finish().expect("finish");
        let ids: Vec<u32> = vec![0, 1706, 1707, 3413, 3414, 5119];
        let idb = U32Buffer::from_slice(&ctx.gpu, "ids", &ids).expect("ids");
        let out = ctx.zeros("rows", ids.len() * cols);
        ctx.run(|ops, rec| ops.embed(rec, &w, &idb, &out, ids.len() as u32));
        let want = cpu::embedding(&values, &ids, cols);
        check(
            &format!("streamed upload ({})", ctx.path),
            &ctx.read(&out),
            &want,
            |_| 1.0,
            0.0,
        );
        println!(
            "streamed upload ({}): {} parts, rows at part edges exact",
            ctx.path,
            w.n_parts()
        );
    }
}

/// Seeded weights of `rows` x `cols` in type `ty`, concatenated into one fused GPU weight:
/// (the weight, each member's dequantized rows).
fn fused_weight(
    ctx: &Ctx,
    rng: &mut StdRng,
    ty: GgmlType,
    members: &[usize],
    cols: usize,
) -> (WeightTensor, Vec<Vec<f32>>) {
    let mut bytes = Vec::new();
    let mut deq = Vec::new();
    for &rows in members {
        let (b, d) = quantized(ty, rows, cols, rng);
        bytes.extend(b);
        deq.push(d);
    }
    let total = members.iter().sum();
    let w = WeightTensor::upload(&ctx.gpu, "fused", ty, total, cols, &bytes).expect("upload");
    (w, deq)
}

/// The fused gate/up mat-vec equals silu(W_gate x) * W_up x on the CPU, every type, with a
/// row count that leaves the last workgroup half full.
#[test]
fn matvec_swiglu_every_type() {
    for mut ctx in shape_contexts() {
        let mut rng = StdRng::seed_from_u64(21);
        for ty in kernel_types() {
            let (n, k) = (13, k_for(ty));
            let (w, deq) = fused_weight(&ctx, &mut rng, ty, &[n, n], k);
            let x = random(&mut rng, k, 1.0);
            let (xb, yb) = (ctx.f32("x", &x), ctx.zeros("y", n));
            ctx.run(|ops, rec| ops.matvec_swiglu(rec, &xb, &w, &yb));
            let gate = cpu::matmul(&x, &deq[0], None, 1, n, k);
            let up = cpu::matmul(&x, &deq[1], None, 1, n, k);
            let want = cpu::swiglu(&gate, &up);
            let what = format!("matvec_swiglu {ty} n={n} k={k} ({})", ctx.path);
            let err = if ctx.f16_math {
                // Each sum within matmul_tolerance of its sum of |x w|: bound the product.
                let xabs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                let abs = |d: &[f32]| d.iter().map(|v| v.abs()).collect::<Vec<_>>();
                let mg = cpu::matmul(&xabs, &abs(&deq[0]), None, 1, n, k);
                let mu = cpu::matmul(&xabs, &abs(&deq[1]), None, 1, n, k);
                let scale = |i: usize| (gate[i].abs() + mg[i]) * (up[i].abs() + mu[i]) + 1e-3;
                check(&what, &ctx.read(&yb), &want, scale, 2e-3)
            } else {
                let scale = |i: usize| gate[i].abs().max(1.0) * up[i].abs().max(1.0) * 1e-3;
                check(&what, &ctx.read(&yb), &want, scale, 1e-2)
            };
            println!("{what}: max error {err:.2e}");
        }
    }
}

/// The fused q/k/v mat-vec (bias, RoPE, KV-cache write) equals the composition of the CPU
/// twins: fused [q; k; v], and [q; k] beside a v of another type; both rotations, a partial
/// rotation, several positions.
#[test]
fn matvec_rope_kv_matches_the_unfused_ops() {
    for mut ctx in shape_contexts() {
        let mut rng = StdRng::seed_from_u64(22);
        let (n_heads, n_kv, hd) = (6usize, 2usize, 32usize);
        let (qr, kr) = (n_heads * hd, n_kv * hd);
        let cases = [
            (GgmlType::Q8_0, None, RopeMode::Neox, hd),
            (GgmlType::Q4_0, Some(GgmlType::Q6K), RopeMode::Neox, hd),
            (GgmlType::F16, None, RopeMode::Normal, hd),
            (
                GgmlType::Q5_1,
                Some(GgmlType::Q8_0),
                RopeMode::Normal,
                hd / 2,
            ),
        ];
        for (ty, v_ty, mode, n_rot) in cases {
            let k = if v_ty == Some(GgmlType::Q6K) { 256 } else { 96 };
            let cache = KvCache::new(&ctx.gpu, 2, 64, n_kv as u32, hd as u32).expect("cache");
            let freqs = RopeFreqs::new(&ctx.gpu, n_rot as u32, 1e6, None).expect("freqs");
            let fvals = RopeFreqs::frequencies(n_rot as u32, 1e6, None).expect("freqs");
            let (fused, deq, v_alone) = match v_ty {
                None => {
                    let (w, d) = fused_weight(&ctx, &mut rng, ty, &[qr, kr, kr], k);
                    (w, d, None)
                }
                Some(vt) => {
                    let (w, mut d) = fused_weight(&ctx, &mut rng, ty, &[qr, kr], k);
                    let (v, dv) = fused_weight(&ctx, &mut rng, vt, &[kr], k);
                    d.extend(dv);
                    (w, d, Some(v))
                }
            };
            let bias = random(&mut rng, qr + 2 * kr, 1.0);
            let b_all = ctx.f32("bias", &bias);
            let b_qk = ctx.f32("bias qk", &bias[..qr + kr]);
            let b_v = ctx.f32("bias v", &bias[qr + kr..]);
            for pos in [0u32, 5, 63] {
                let x = random(&mut rng, k, 1.0);
                let xb = ctx.f32("x", &x);
                let qb = ctx.zeros("q", qr);
                let layout = |q_rows, k_rows| QkvLayout {
                    q_rows,
                    k_rows,
                    head_dim: hd as u32,
                    mode,
                };
                let qk = layout(qr as u32, kr as u32);
                ctx.run(|ops, rec| match &v_alone {
                    None => ops.matvec_rope_kv(
                        rec,
                        &xb,
                        &fused,
                        Some(&b_all),
                        qk,
                        &freqs,
                        &qb,
                        &cache,
                        1,
                        pos,
                    ),
                    Some(v) => {
                        let b = Some(&b_qk);
                        ops.matvec_rope_kv(rec, &xb, &fused, b, qk, &freqs, &qb, &cache, 1, pos)?;
                        let (b, only_v) = (Some(&b_v), layout(0, 0));
                        ops.matvec_rope_kv(rec, &xb, v, b, only_v, &freqs, &qb, &cache, 1, pos)
                    }
                });
                let proj = |i: usize, b: &[f32]| {
                    let n = deq[i].len() / k;
                    cpu::matmul(&x, &deq[i], Some(b), 1, n, k)
                };
                let mut q = proj(0, &bias[..qr]);
                let mut kk = proj(1, &bias[qr..qr + kr]);
                let v = proj(2, &bias[qr + kr..]);
                cpu::rope(&mut q, &fvals, mode, n_heads, hd, pos as usize);
                cpu::rope(&mut kk, &fvals, mode, n_kv, hd, pos as usize);
                let (gk, gv) =
                    pollster::block_on(cache.read_position(&ctx.gpu, 1, pos)).expect("cache");
                let what = format!(
                    "matvec_rope_kv {ty} (v {v_ty:?}) {mode:?} n_rot={n_rot} pos={pos} ({})",
                    ctx.path
                );
                // The cache holds f16: compare within its rounding.
                let tol = 2e-3;
                let scale = |_| 8.0;
                // f16 arithmetic: within matmul_tolerance of the sums of |x w| (<= about 4
                // for these rows), rotated.
                let q_tol = if ctx.f16_math { 2e-3 } else { 1e-5 };
                check(&format!("{what} q"), &ctx.read(&qb), &q, scale, q_tol);
                check(&format!("{what} k"), &gk, &kk, scale, tol);
                let err = check(&format!("{what} v"), &gv, &v, scale, tol);
                println!("{what}: ok (v error {err:.2e})");
            }
        }
    }
}
