//! Activations quantized once per matrix product to the weight type's dot partner (ggml's
//! scheme): signed bytes with one f32 scale per 32 values (`Q8_0`, for the legacy types) or
//! per 256 (`Q8K`, for the k-quants), plus the block sums the kernels need to apply a
//! weight block's offset or min without touching the activations again.
//!
//! The scale is `amax / 127` and a value `round(x * 127 / amax)`, rounded half to even.
//! Every instruction set computes exactly these bytes and sums (the SIMD quantizers are
//! tested equal to the scalar one bit for bit), so the choice of quantizer never moves a
//! result. ggml's differs in small ways (an f16 scale for Q8_0 and Q8_1, `-127 / max` for
//! Q8_K); llama.cpp's own builds do not agree on these roundings either (ARCHITECTURE.md).

use super::blocks::{QK, QK_K};
use super::pool::{Pool, SharedMut};
use super::{Isa, IsaKind};

/// The activation format a weight type's blocks are dotted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partner {
    /// 32 values a block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
    Q8_0,
    /// 256 values a block: Q4_K, Q5_K, Q6_K.
    Q8K,
}

impl Partner {
    pub fn block(self) -> usize {
        match self {
            Self::Q8_0 => QK,
            Self::Q8K => QK_K,
        }
    }
}

/// `m` rows of `k` activations, quantized.
pub struct Activations {
    pub(crate) partner: Partner,
    pub(crate) m: usize,
    pub(crate) k: usize,
    /// m * k values.
    pub(crate) qs: Vec<i8>,
    /// One scale per block.
    pub(crate) d: Vec<f32>,
    /// Q8_0: `d * sum(q)` per block (Q4_1/Q5_1 add their min with it). Empty for Q8K.
    pub(crate) s: Vec<f32>,
    /// `sum(q)` per 16 values for Q8K (the k-quants' mins and Q6_K's offset), per block for
    /// Q8_0 (the offset of the interleaved kernels' unsigned weights, `interleave.rs`).
    pub(crate) bsums: Vec<i16>,
}

/// One quantized row, as the kernels read it.
#[derive(Clone, Copy)]
pub(crate) struct XRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub bsums: &'a [i16],
}

/// Rows quantized per task when a batch is split over threads.
const ROWS_PER_TASK: usize = 8;

impl Activations {
    /// Quantizes `x` (`m` rows of `k`; `k` a multiple of the partner's block) on `isa`,
    /// rows split over `pool`'s threads.
    pub fn quantize(partner: Partner, x: &[f32], k: usize, isa: Isa, pool: &Pool) -> Self {
        let block = partner.block();
        assert!(
            k > 0 && k.is_multiple_of(block) && x.len().is_multiple_of(k),
            "activations of {} values in rows of {k}: rows must be whole {block}-value blocks",
            x.len()
        );
        let m = x.len() / k;
        let nb = k / block;
        let mut a = Self {
            partner,
            m,
            k,
            qs: vec![0; m * k],
            d: vec![0.0; m * nb],
            s: match partner {
                Partner::Q8_0 => vec![0.0; m * nb],
                Partner::Q8K => Vec::new(),
            },
            bsums: match partner {
                Partner::Q8_0 => vec![0; m * nb],
                Partner::Q8K => vec![0; m * k / 16],
            },
        };
        let (qs, d) = (SharedMut::new(&mut a.qs), SharedMut::new(&mut a.d));
        let (s, bs) = (SharedMut::new(&mut a.s), SharedMut::new(&mut a.bsums));
        pool.run(m.div_ceil(ROWS_PER_TASK), &|task| {
            for r in task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(m) {
                let x = &x[r * k..(r + 1) * k];
                // SAFETY: each task owns its rows' ranges of every buffer.
                unsafe {
                    let (q, dd) = (qs.range(r * k..(r + 1) * k), d.range(r * nb..(r + 1) * nb));
                    match partner {
                        Partner::Q8_0 => {
                            quantize_row_q8_0(isa, x, q, dd, s.range(r * nb..(r + 1) * nb));
                            let sums = bs.range(r * nb..(r + 1) * nb);
                            for (sum, q) in sums.iter_mut().zip(q.chunks_exact(QK)) {
                                // At most 32 * 128 in magnitude.
                                *sum = q.iter().map(|&v| v as i16).sum();
                            }
                        }
                        Partner::Q8K => {
                            quantize_row_q8k(isa, x, q, dd, bs.range(r * k / 16..(r + 1) * k / 16))
                        }
                    }
                }
            }
        });
        a
    }

    pub fn partner(&self) -> Partner {
        self.partner
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Values a row.
    pub fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn row(&self, r: usize) -> XRow<'_> {
        let nb = self.k / self.partner.block();
        XRow {
            qs: &self.qs[r * self.k..(r + 1) * self.k],
            d: &self.d[r * nb..(r + 1) * nb],
            s: match self.partner {
                Partner::Q8_0 => &self.s[r * nb..(r + 1) * nb],
                Partner::Q8K => &[],
            },
            bsums: match self.partner {
                Partner::Q8_0 => &self.bsums[r * nb..(r + 1) * nb],
                Partner::Q8K => &self.bsums[r * self.k / 16..(r + 1) * self.k / 16],
            },
        }
    }

    /// Row `r` as f32 values (`d * q`): what the kernels multiply, for tests.
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let row = self.row(r);
        let block = self.partner.block();
        row.qs
            .iter()
            .enumerate()
            .map(|(i, &q)| row.d[i / block] * q as f32)
            .collect()
    }

    /// The quantized bytes of row `r`, for tests.
    pub fn row_values(&self, r: usize) -> &[i8] {
        self.row(r).qs
    }

    /// Row `r`'s scales, for tests.
    pub fn row_scales(&self, r: usize) -> &[f32] {
        self.row(r).d
    }

    /// Row `r`'s block sums (Q8_0: `d * sum`; Q8K: sums of 16 as f32), for tests.
    pub fn row_sums(&self, r: usize) -> Vec<f32> {
        let row = self.row(r);
        match self.partner {
            Partner::Q8_0 => row.s.to_vec(),
            Partner::Q8K => row.bsums.iter().map(|&b| b as f32).collect(),
        }
    }
}

/// Largest |x| of a block; NaN-free input assumed (a NaN activation poisons the row anyway).
#[inline(always)]
fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Scale and inverse scale of a block whose largest magnitude is `amax`.
#[inline(always)]
fn scales(amax: f32) -> (f32, f32) {
    if amax == 0.0 {
        (0.0, 0.0)
    } else {
        (amax / 127.0, 127.0 / amax)
    }
}

fn quantize_row_q8_0(isa: Isa, x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Isa::Avx2 is only made where AVX2, FMA and F16C were detected.
        IsaKind::Avx2 { .. } => unsafe { x86::quantize_row_q8_0(x, qs, d, s) },
        #[cfg(target_arch = "wasm32")]
        IsaKind::Simd128 => wasm::quantize_row_q8_0(x, qs, d, s),
        _ => scalar_row_q8_0(x, qs, d, s),
    }
}

fn quantize_row_q8k(isa: Isa, x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Isa::Avx2 is only made where AVX2, FMA and F16C were detected.
        IsaKind::Avx2 { .. } => unsafe { x86::quantize_row_q8k(x, qs, d, bsums) },
        #[cfg(target_arch = "wasm32")]
        IsaKind::Simd128 => wasm::quantize_row_q8k(x, qs, d, bsums),
        _ => scalar_row_q8k(x, qs, d, bsums),
    }
}

/// The reference quantizer of a Q8_0-partner row.
pub(crate) fn scalar_row_q8_0(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    for (((x, q), d), s) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
        .zip(s.iter_mut())
    {
        let (scale, inv) = scales(amax(x));
        let mut sum = 0i32;
        for (q, &v) in q.iter_mut().zip(x) {
            let r = (v * inv).round_ties_even() as i32;
            *q = r as i8;
            sum += r;
        }
        *d = scale;
        *s = scale * sum as f32;
    }
}

/// The reference quantizer of a Q8K-partner row.
pub(crate) fn scalar_row_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (((x, q), d), bs) in x
        .chunks_exact(QK_K)
        .zip(qs.chunks_exact_mut(QK_K))
        .zip(d.iter_mut())
        .zip(bsums.chunks_exact_mut(QK_K / 16))
    {
        let (scale, inv) = scales(amax(x));
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv).round_ties_even() as i32 as i8;
        }
        for (b, q) in bs.iter_mut().zip(q.chunks_exact(16)) {
            *b = q.iter().map(|&v| v as i16).sum();
        }
        *d = scale;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{scales, QK, QK_K};

    /// Largest |x| of 32 values at `p`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn amax32(p: *const f32) -> (__m256, __m256, __m256, __m256, __m256) {
        // SAFETY: the caller passes 32 readable floats.
        let v = unsafe {
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        let sign = _mm256_set1_ps(-0.0);
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
            _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])),
        );
        (m, v[0], v[1], v[2], v[3])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn hmax(m: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn hsum_epi32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// Rounds 32 values times `inv` to bytes at `q`; returns the four i32 vectors.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn round32(v: [__m256; 4], inv: f32, q: *mut i8) -> [__m256i; 4] {
        let inv = _mm256_set1_ps(inv);
        // cvtps rounds to nearest even under the default MXCSR, as `round_ties_even`.
        let i = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, inv)));
        let p = _mm256_packs_epi16(
            _mm256_packs_epi32(i[0], i[1]),
            _mm256_packs_epi32(i[2], i[3]),
        );
        // The packs work per 128-bit lane: put the 4-byte groups back in order.
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: the caller passes 32 writable bytes.
        unsafe { _mm256_storeu_si256(q as *mut __m256i, p) };
        i
    }

    /// SAFETY: AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_row_q8_0(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        let nb = x.len() / QK;
        assert!(qs.len() >= nb * QK && d.len() >= nb && s.len() >= nb);
        for b in 0..nb {
            // SAFETY: block b's 32 floats and bytes are in bounds (asserted above).
            let (m, v0, v1, v2, v3) = unsafe { amax32(x.as_ptr().add(b * QK)) };
            let (scale, inv) = scales(hmax(m));
            let i = unsafe { round32([v0, v1, v2, v3], inv, qs.as_mut_ptr().add(b * QK)) };
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(i[0], i[1]),
                _mm256_add_epi32(i[2], i[3]),
            ));
            d[b] = scale;
            s[b] = scale * sum as f32;
        }
    }

    /// SAFETY: AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_row_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
        let nb = x.len() / QK_K;
        assert!(qs.len() >= nb * QK_K && d.len() >= nb && bsums.len() >= nb * 16);
        for b in 0..nb {
            let base = b * QK_K;
            let mut m = _mm256_setzero_ps();
            for j in 0..8 {
                // SAFETY: in bounds (asserted above).
                let (mj, ..) = unsafe { amax32(x.as_ptr().add(base + j * 32)) };
                m = _mm256_max_ps(m, mj);
            }
            let (scale, inv) = scales(hmax(m));
            for j in 0..8 {
                // SAFETY: in bounds (asserted above).
                let (_, v0, v1, v2, v3) = unsafe { amax32(x.as_ptr().add(base + j * 32)) };
                let q = unsafe { qs.as_mut_ptr().add(base + j * 32) };
                let i = unsafe { round32([v0, v1, v2, v3], inv, q) };
                bsums[b * 16 + 2 * j] = hsum_epi32(_mm256_add_epi32(i[0], i[1])) as i16;
                bsums[b * 16 + 2 * j + 1] = hsum_epi32(_mm256_add_epi32(i[2], i[3])) as i16;
            }
            d[b] = scale;
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::arch::wasm32::*;

    use super::{scales, QK, QK_K};

    #[inline(always)]
    fn load(x: &[f32], i: usize) -> v128 {
        f32x4(x[i], x[i + 1], x[i + 2], x[i + 3])
    }

    #[inline(always)]
    fn amax(x: &[f32]) -> f32 {
        let mut m = f32x4_splat(0.0);
        for i in (0..x.len()).step_by(4) {
            m = f32x4_max(m, f32x4_abs(load(x, i)));
        }
        f32x4_extract_lane::<0>(m)
            .max(f32x4_extract_lane::<1>(m))
            .max(f32x4_extract_lane::<2>(m))
            .max(f32x4_extract_lane::<3>(m))
    }

    /// Rounds 16 values at `x` times `inv` into `q`; returns their sum.
    #[inline(always)]
    fn round16(x: &[f32], inv: f32, q: &mut [i8]) -> i32 {
        let inv = f32x4_splat(inv);
        let r = |i: usize| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(load(x, i), inv)));
        let (a, b, c, d) = (r(0), r(4), r(8), r(12));
        let p = i8x16_narrow_i16x8(i16x8_narrow_i32x4(a, b), i16x8_narrow_i32x4(c, d));
        let bytes = p.to_ne_bytes_i8();
        q[..16].copy_from_slice(&bytes);
        let s = i32x4_add(i32x4_add(a, b), i32x4_add(c, d));
        i32x4_extract_lane::<0>(s)
            + i32x4_extract_lane::<1>(s)
            + i32x4_extract_lane::<2>(s)
            + i32x4_extract_lane::<3>(s)
    }

    trait Bytes {
        fn to_ne_bytes_i8(self) -> [i8; 16];
    }
    impl Bytes for v128 {
        #[inline(always)]
        fn to_ne_bytes_i8(self) -> [i8; 16] {
            // SAFETY: v128 and [i8; 16] have the same size and every bit pattern is valid.
            unsafe { std::mem::transmute::<v128, [i8; 16]>(self) }
        }
    }

    pub fn quantize_row_q8_0(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        for (((x, q), d), s) in x
            .chunks_exact(QK)
            .zip(qs.chunks_exact_mut(QK))
            .zip(d.iter_mut())
            .zip(s.iter_mut())
        {
            let (scale, inv) = scales(amax(x));
            let sum = round16(&x[..16], inv, &mut q[..16]) + round16(&x[16..], inv, &mut q[16..]);
            *d = scale;
            *s = scale * sum as f32;
        }
    }

    pub fn quantize_row_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
        for (((x, q), d), bs) in x
            .chunks_exact(QK_K)
            .zip(qs.chunks_exact_mut(QK_K))
            .zip(d.iter_mut())
            .zip(bsums.chunks_exact_mut(QK_K / 16))
        {
            let (scale, inv) = scales(amax(x));
            for ((x, q), b) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)).zip(bs) {
                *b = round16(x, inv, q) as i16;
            }
            *d = scale;
        }
    }
}
