//! Our CPU kernels (engine/src/cpu/kernels) against references, for every block type and
//! every instruction set this CPU has, natively and in wasm32 (`cargo test -p m1-engine
//! --target wasm32-unknown-unknown --test cpu_kernels` runs this file in Node):
//!
//! - our dequantizers equal candle's (ggml's) bit for bit, so the reference reads the
//!   blocks as ggml does;
//! - the SIMD activation quantizers equal the scalar one bit for bit;
//! - every kernel's products equal an f64 dot of the dequantized weights and activations,
//!   to rounding, at shapes that leave partial tiles: rows not a multiple of the task's 16,
//!   tokens 1, 2, 17 and 512, widths of one block and of blocks that are not 256's multiple;
//! - a batch equals its tokens one at a time, and 2 or 3 threads equal 1, bit for bit;
//! - the same for the F16 and BF16 kernels, which also widen every bit pattern as `half`.

use std::borrow::Cow;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::Device;
use m1_engine::cpu::kernels::half::{HalfMatrix, HalfType};
use m1_engine::cpu::kernels::{Activations, Isa, Partner, Pool, QMatrix, QType};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// xorshift64*: seeded, the same on every target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Offsets of a block's f16 scale fields, and whether they must be positive (the k-quants'
/// super-block scales, which ggml's quantizer keeps positive; a random sign would be fine
/// for the arithmetic too).
fn scale_fields(ty: QType) -> &'static [usize] {
    match ty {
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => &[0],
        QType::Q4_1 | QType::Q5_1 | QType::Q4K | QType::Q5K => &[0, 2],
        QType::Q6K => &[208],
    }
}

/// `n` rows of `k` values of random blocks with scales of a moderate size.
fn random_matrix(ty: QType, n: usize, k: usize, rng: &mut Rng) -> QMatrix {
    let bytes = n * k / ty.block_values() * ty.block_bytes();
    let mut words: Vec<u32> = (0..bytes.div_ceil(4)).map(|_| rng.next() as u32).collect();
    let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    for block in raw[..bytes].chunks_exact_mut(ty.block_bytes()) {
        for &at in scale_fields(ty) {
            let v = half::f16::from_f32((0.002 + 0.02 * rng.unit().abs()) * sign(ty, rng));
            block[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    QMatrix::new(ty, n, k, words).expect("matrix")
}

fn sign(ty: QType, rng: &mut Rng) -> f32 {
    let k_quant = matches!(ty, QType::Q4K | QType::Q5K | QType::Q6K);
    if !k_quant && rng.next() & 1 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// Activations like a model's: mostly small, a few large, one all-zero block in each row
/// when there are several blocks.
fn random_activations(m: usize, k: usize, block: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * k)
        .map(|i| {
            let v = rng.unit();
            if i % 97 == 5 {
                v * 20.0
            } else {
                v
            }
        })
        .collect();
    if k > block {
        for r in 0..m {
            let b = r % (k / block);
            x[r * k + b * block..r * k + (b + 1) * block].fill(0.0);
        }
    }
    x
}

/// Widths to test per block size: one block, and sizes that are no multiple of 256 where
/// the type allows it.
fn widths(ty: QType) -> &'static [usize] {
    if ty.block_values() == 256 {
        &[256, 768]
    } else {
        &[32, 96, 288]
    }
}

fn candle_dequantize(ty: QType, m: &QMatrix, bytes: &[u8]) -> Vec<f32> {
    let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, ty.ggml().to_candle())
        .expect("storage");
    QTensor::new(storage, (m.n() * m.k(),))
        .expect("tensor")
        .dequantize(&Device::Cpu)
        .expect("dequantize")
        .to_vec1::<f32>()
        .expect("values")
}

#[test]
fn dequantizers_equal_ggml() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for ty in QType::ALL {
        let (n, k) = (3, if ty.block_values() == 256 { 512 } else { 96 });
        let bytes_len = n * k / ty.block_values() * ty.block_bytes();
        let mut words: Vec<u32> = (0..bytes_len.div_ceil(4))
            .map(|_| rng.next() as u32)
            .collect();
        {
            let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            for block in raw[..bytes_len].chunks_exact_mut(ty.block_bytes()) {
                for &at in scale_fields(ty) {
                    let v = half::f16::from_f32(0.01 + 0.01 * rng.unit());
                    block[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        let bytes: Vec<u8> = bytemuck::cast_slice(&words)[..bytes_len].to_vec();
        let m = QMatrix::new(ty, n, k, words).unwrap();
        let want = candle_dequantize(ty, &m, &bytes);
        let got: Vec<f32> = (0..n).flat_map(|r| m.dequantize_row(r)).collect();
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                w.to_bits(),
                g.to_bits(),
                "{ty:?} value {i}: ggml {w}, ours {g}"
            );
        }
    }
}

#[test]
fn activation_quantizers_agree_bit_for_bit() {
    let pool = Pool::new(1);
    let mut rng = Rng(7);
    for partner in [Partner::Q8_0, Partner::Q8K] {
        let k = 1024;
        let x = random_activations(5, k, partner.block(), &mut rng);
        let want = Activations::quantize(partner, &x, k, Isa::scalar(), &pool);
        for isa in Isa::available() {
            let got = Activations::quantize(partner, &x, k, isa, &pool);
            for r in 0..5 {
                assert_eq!(
                    want.row_values(r),
                    got.row_values(r),
                    "{partner:?} {} row {r}",
                    isa.name()
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(want.row_scales(r)),
                    bits(got.row_scales(r)),
                    "{partner:?} {} scales",
                    isa.name()
                );
                assert_eq!(
                    bits(&want.row_sums(r)),
                    bits(&got.row_sums(r)),
                    "{partner:?} {} sums",
                    isa.name()
                );
            }
        }
        // The quantized values are within half a step of the input.
        for r in 0..5 {
            let deq = want.dequantize_row(r);
            for (i, (&a, &b)) in x[r * k..(r + 1) * k].iter().zip(&deq).enumerate() {
                let step = want.row_scales(r)[i / partner.block()];
                assert!(
                    (a - b).abs() <= step * 0.5001 + 1e-12,
                    "{partner:?} value {i}: {a} -> {b}"
                );
            }
        }
    }
}

/// f64 dot of our (ggml's) dequantized weights with the dequantized activations, and the
/// sum of the terms' magnitudes (the scale of the rounding error).
fn reference(w: &QMatrix, x: &Activations, m: usize) -> Vec<(f64, f64)> {
    let rows: Vec<Vec<f32>> = (0..w.n()).map(|r| w.dequantize_row(r)).collect();
    let mut out = Vec::with_capacity(m * w.n());
    for t in 0..m {
        let xt = x.dequantize_row(t);
        for row in &rows {
            let (mut s, mut a) = (0f64, 0f64);
            for (&wv, &xv) in row.iter().zip(&xt) {
                let p = wv as f64 * xv as f64;
                s += p;
                a += p.abs();
            }
            out.push((s, a));
        }
    }
    out
}

fn check_close(what: &str, got: &[f32], want: &[(f64, f64)]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &(w, scale))) in got.iter().zip(want).enumerate() {
        // f32 block scales and sums: a few units of f32 rounding per term's magnitude.
        let tol = 1e-5 * scale + 1e-6;
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}: output {i}: got {g}, f64 reference {w} (tolerance {tol:.3e})"
        );
    }
}

/// `x W^T` on `isa`, the weights arranged for it as a model's are (rows interleaved where
/// `isa` has kernels for that).
fn product(w: &QMatrix, x: &Activations, isa: Isa, pool: &Pool) -> Vec<f32> {
    let mut w = w.clone();
    w.arrange_for(isa);
    let mut out = vec![f32::NAN; x.m() * w.n()];
    w.matmul(x, isa, pool, &mut out);
    out
}

/// Interleaving rows in eights only moves bytes: every row dequantizes as before, and the
/// sets with interleaved kernels (AVX2 and VNNI, for the legacy types) do interleave.
#[test]
fn arranged_matrices_keep_their_rows() {
    let mut rng = Rng(0x0dd5);
    for ty in QType::ALL {
        for &n in &[3, 8, 21] {
            let w = random_matrix(ty, n, 2 * ty.block_values(), &mut rng);
            for isa in Isa::available() {
                let mut a = w.clone();
                a.arrange_for(isa);
                let x86_simd = cfg!(target_arch = "x86_64") && isa.is_simd();
                let tiles = matches!(
                    ty,
                    QType::Q4_0 | QType::Q4_1 | QType::Q5_0 | QType::Q5_1 | QType::Q8_0
                );
                assert_eq!(
                    a.is_tiled(),
                    x86_simd && tiles && n >= 8,
                    "{ty:?} {} n={n}",
                    isa.name()
                );
                for r in 0..n {
                    assert_eq!(
                        bits(&a.dequantize_row(r)),
                        bits(&w.dequantize_row(r)),
                        "{ty:?} {} n={n} row {r}",
                        isa.name()
                    );
                }
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn kernels_match_the_f64_reference() {
    let pool = Pool::new(1);
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for ty in QType::ALL {
        for &k in widths(ty) {
            for &(n, m) in &[(1, 1), (5, 2), (17, 17), (33, 4), (3, 7)] {
                let w = random_matrix(ty, n, k, &mut rng);
                let xf = random_activations(m, k, ty.block_values(), &mut rng);
                let x = Activations::quantize(ty.partner(), &xf, k, Isa::scalar(), &pool);
                let want = reference(&w, &x, m);
                for isa in Isa::available() {
                    let got = product(&w, &x, isa, &pool);
                    check_close(
                        &format!("{ty:?} {} n={n} k={k} m={m}", isa.name()),
                        &got,
                        &want,
                    );
                }
            }
        }
    }
}

/// Where the CPU has AVX-512 VNNI, its fused products sum the same integers in the same
/// order as the AVX2 kernels: the same bits, so a model answers alike on either CPU. (Where
/// only one SIMD set exists, there is nothing to compare.)
#[test]
fn simd_sets_agree_bit_for_bit() {
    let pool = Pool::new(1);
    let mut rng = Rng(0x5eed);
    let simd: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|i| i.is_simd())
        .collect();
    for ty in QType::ALL {
        for &(n, k, m) in &[(7, 768, 1), (9, 1536, 5), (19, 256, 64)] {
            let w = random_matrix(ty, n, k, &mut rng);
            let xf = random_activations(m, k, ty.block_values(), &mut rng);
            let x = Activations::quantize(ty.partner(), &xf, k, Isa::scalar(), &pool);
            let bits = |isa| -> Vec<u32> {
                product(&w, &x, isa, &pool)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            if let Some((&first, rest)) = simd.split_first() {
                let want = bits(first);
                for &isa in rest {
                    assert_eq!(
                        bits(isa),
                        want,
                        "{ty:?} n={n} k={k} m={m}: {} vs {}",
                        isa.name(),
                        first.name()
                    );
                }
            }
        }
    }
}

/// 512 tokens (a long prompt's batch) through rows that leave a partial task.
#[test]
fn a_long_batch_matches_the_reference() {
    let pool = Pool::new(1);
    let mut rng = Rng(99);
    for ty in QType::ALL {
        let (n, k, m) = (19, 256, 512);
        let w = random_matrix(ty, n, k, &mut rng);
        let xf = random_activations(m, k, ty.block_values(), &mut rng);
        let x = Activations::quantize(ty.partner(), &xf, k, Isa::scalar(), &pool);
        let want = reference(&w, &x, m);
        for isa in Isa::available() {
            check_close(
                &format!("{ty:?} {} m=512", isa.name()),
                &product(&w, &x, isa, &pool),
                &want,
            );
        }
    }
}

/// A batch's outputs equal each token's alone, and more threads equal one, bit for bit.
#[test]
fn batches_and_threads_do_not_change_a_bit() {
    let one = Pool::new(1);
    let pools = [Pool::new(2), Pool::new(3)];
    let mut rng = Rng(4242);
    for ty in QType::ALL {
        let k = if ty.block_values() == 256 { 512 } else { 160 };
        let (n, m) = (70, 17);
        let w = random_matrix(ty, n, k, &mut rng);
        let xf = random_activations(m, k, ty.block_values(), &mut rng);
        for isa in Isa::available() {
            let x = Activations::quantize(ty.partner(), &xf, k, isa, &one);
            let batch = product(&w, &x, isa, &one);
            for t in 0..m {
                let xt = Activations::quantize(ty.partner(), &xf[t * k..(t + 1) * k], k, isa, &one);
                let single = product(&w, &xt, isa, &one);
                assert_eq!(
                    bits(&batch[t * n..(t + 1) * n]),
                    bits(&single),
                    "{ty:?} {}: token {t} in a batch of {m} differs from the token alone",
                    isa.name()
                );
                for p in &pools {
                    assert_eq!(
                        bits(&single),
                        bits(&product(&w, &xt, isa, p)),
                        "{ty:?} {}: one token on {} threads",
                        isa.name(),
                        p.threads()
                    );
                }
            }
            for p in &pools {
                let xp = Activations::quantize(ty.partner(), &xf, k, isa, p);
                assert_eq!(
                    bits(&batch),
                    bits(&product(&w, &xp, isa, p)),
                    "{ty:?} {}: a batch on {} threads",
                    isa.name(),
                    p.threads()
                );
            }
        }
    }
}

/// The f32 helpers of the forward pass: f16 rounding equals `half`'s bit for bit (ties to
/// even, subnormals, overflow to infinity); the dot product, `axpy` and attention's score and
/// weighted-sum kernels equal f64 sums to rounding, on every instruction set and at lengths
/// that leave a vector tail.
#[test]
fn vector_helpers_match_their_references() {
    use m1_engine::cpu::kernels::vec;
    let mut rng = Rng(31337);
    let mut values: Vec<f32> = (0..1003).map(|_| rng.unit() * 10.0).collect();
    values.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e-7,
        -3e-5,
        6.1e-5,
        1e9,
        f32::INFINITY,
    ]);
    // Exact ties between two halves: 1 + 2^-11 rounds down to 1, 1 + 3 * 2^-11 up.
    values.extend([1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)]);
    for isa in Isa::available() {
        let name = isa.name();
        let mut got = values.clone();
        vec::round_f16(isa, &mut got);
        for (v, g) in values.iter().zip(&got) {
            let want = half::f16::from_f32(*v).to_f32();
            assert_eq!(want.to_bits(), g.to_bits(), "{name}: f16 rounding of {v}");
        }
        for len in [1usize, 7, 8, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..len).map(|_| rng.unit()).collect();
            let b: Vec<f32> = (0..len).map(|_| rng.unit()).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = vec::dot(isa, &a, &b);
            assert!(
                (got as f64 - want).abs() < 1e-5,
                "{name} dot of {len}: {got} vs {want}"
            );
            let mut y = b.clone();
            vec::axpy(isa, &mut y, 0.75, &a);
            for i in 0..len {
                let want = b[i] as f64 + 0.75 * a[i] as f64;
                assert!(
                    (y[i] as f64 - want).abs() < 1e-6,
                    "{name} axpy of {len} at {i}"
                );
            }
        }
        // Attention's kernels: scores against keys transposed in blocks of KEYS, and the
        // weighted sum of value rows, at head sizes 64, 128 and an odd 40.
        for hd in [64usize, 128, 40] {
            let (blocks, keys) = (5, 37);
            let q: Vec<f32> = (0..hd).map(|_| rng.unit()).collect();
            let kt: Vec<f32> = (0..blocks * hd * vec::KEYS).map(|_| rng.unit()).collect();
            let mut got = vec![0f32; blocks * vec::KEYS];
            vec::scores(isa, &q, &kt, blocks, &mut got);
            for (j, g) in got.iter().enumerate() {
                let (b, l) = (j / vec::KEYS, j % vec::KEYS);
                let want: f64 = (0..hd)
                    .map(|d| q[d] as f64 * kt[(b * hd + d) * vec::KEYS + l] as f64)
                    .sum();
                assert!(
                    (*g as f64 - want).abs() < 1e-5,
                    "{name} scores hd={hd} key {j}"
                );
            }
            let p: Vec<f32> = (0..keys).map(|_| rng.unit().abs()).collect();
            let v: Vec<f32> = (0..keys * hd).map(|_| rng.unit()).collect();
            let mut out = vec![f32::NAN; hd];
            vec::weighted_sum(isa, &mut out, &p, &v);
            for (d, o) in out.iter().enumerate() {
                let want: f64 = (0..keys).map(|j| p[j] as f64 * v[j * hd + d] as f64).sum();
                assert!(
                    (*o as f64 - want).abs() < 1e-5,
                    "{name} weighted sum hd={hd} dim {d}"
                );
            }
        }
    }
}

/// `n` rows of `k` random 16-bit floats of `ty`, mostly in [-1, 1), a few large.
fn random_half(ty: HalfType, n: usize, k: usize, rng: &mut Rng) -> HalfMatrix {
    let bits: Vec<u16> = (0..n * k)
        .map(|i| {
            let v = rng.unit() * if i % 53 == 7 { 300.0 } else { 1.0 };
            match ty {
                HalfType::F16 => half::f16::from_f32(v).to_bits(),
                HalfType::Bf16 => half::bf16::from_f32(v).to_bits(),
            }
        })
        .collect();
    HalfMatrix::new(ty, n, k, half_words(&bits)).expect("matrix")
}

/// 16-bit values packed into u32 words as the loader reads them (little-endian).
fn half_words(bits: &[u16]) -> Vec<u32> {
    bits.chunks(2)
        .map(|p| u32::from(p[0]) | u32::from(p.get(1).copied().unwrap_or(0)) << 16)
        .collect()
}

fn half_product(w: &HalfMatrix, x: &[f32], isa: Isa, pool: &Pool) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.len() / w.k() * w.n()];
    w.matmul(x, isa, pool, &mut out);
    out
}

/// F16 and BF16 matrices on every instruction set: against an f64 dot of the widened values,
/// at widths with and without a tail past the kernels' 16-value steps and with a long
/// batch; a batch equals its tokens one by one and 2 or 3 threads equal 1, bit for bit.
#[test]
fn half_kernels_match_the_f64_reference() {
    let one = Pool::new(1);
    let pools = [Pool::new(2), Pool::new(3)];
    let mut rng = Rng(0x0f16_bf16);
    for ty in [HalfType::F16, HalfType::Bf16] {
        for &(n, k, m) in &[
            (1, 1, 1),
            (5, 16, 2),
            (17, 37, 5),
            (33, 64, 4),
            (19, 200, 512),
        ] {
            let w = random_half(ty, n, k, &mut rng);
            let x = random_activations(m, k, k, &mut rng);
            let rows: Vec<Vec<f32>> = (0..n).map(|r| w.widen_row(r)).collect();
            for isa in Isa::available() {
                let what = format!("{ty:?} {} n={n} k={k} m={m}", isa.name());
                let got = half_product(&w, &x, isa, &one);
                for t in 0..m {
                    for (r, row) in rows.iter().enumerate() {
                        let terms = row.iter().zip(&x[t * k..(t + 1) * k]);
                        let (s, a) = terms.fold((0f64, 0f64), |(s, a), (&wv, &xv)| {
                            let p = wv as f64 * xv as f64;
                            (s + p, a + p.abs())
                        });
                        let g = got[t * n + r] as f64;
                        let tol = 1e-5 * a + 1e-6;
                        assert!(
                            (g - s).abs() <= tol,
                            "{what}: token {t} row {r}: {g} vs {s}"
                        );
                    }
                }
                for t in 0..m {
                    let single = half_product(&w, &x[t * k..(t + 1) * k], isa, &one);
                    assert_eq!(
                        bits(&got[t * n..(t + 1) * n]),
                        bits(&single),
                        "{what}: token {t} in the batch differs from the token alone"
                    );
                }
                for p in &pools {
                    let threaded = half_product(&w, &x, isa, p);
                    assert_eq!(
                        bits(&got),
                        bits(&threaded),
                        "{what}: {} threads",
                        p.threads()
                    );
                }
            }
        }
    }
}

/// Every one of the 65,536 bit patterns of each format widens as `half` does (subnormals,
/// infinities and NaNs included): row r holds pattern r sixteen times, dotted with ones.
#[test]
fn half_kernels_widen_every_bit_pattern() {
    let pool = Pool::new(1);
    let bits_all: Vec<u16> = (0..=u16::MAX).flat_map(|h| [h; 16]).collect();
    let ones = vec![1f32; 16];
    for ty in [HalfType::F16, HalfType::Bf16] {
        let w = HalfMatrix::new(ty, 1 << 16, 16, half_words(&bits_all)).expect("matrix");
        for isa in Isa::available() {
            let got = half_product(&w, &ones, isa, &pool);
            for (h, g) in (0..=u16::MAX).zip(&got) {
                let v = match ty {
                    HalfType::F16 => half::f16::from_bits(h).to_f32(),
                    HalfType::Bf16 => half::bf16::from_bits(h).to_f32(),
                };
                let want = 16.0 * v;
                assert!(
                    if want.is_nan() {
                        g.is_nan()
                    } else {
                        *g == want
                    },
                    "{ty:?} {}: pattern {h:#06x} gave {g} for 16 x {v}",
                    isa.name()
                );
            }
        }
    }
}
