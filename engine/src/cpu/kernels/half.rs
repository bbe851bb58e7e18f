//! Matrices of 16-bit floats (F16, BF16) read in place: each weight is widened to f32 in
//! registers and multiplied with the f32 activations. Memory is the file's bytes, half of
//! what widening the matrix to f32 at load took, and a decode step reads half the bytes.
//! (ggml rounds the activations to f16 instead; widening the weights keeps them exact.)
//!
//! Tasks and tiles as in `gemm.rs`: a task owns a range of rows, each row is dotted with up
//! to four tokens at once, and every output is one kernel call's, summed in a fixed order
//! (two sets of 8 lanes over the row, then the tail): a batch equals its tokens one by one
//! and any thread count equals one thread, bit for bit.

use std::ops::Range;

use super::blocks::f16_to_f32;
use super::pool::{Pool, SharedMut};
use super::{Isa, IsaKind};

/// Values a kernel step takes: two vectors of 8 f32 lanes.
const STEP: usize = 16;
/// Tokens per tile.
const TILE: usize = 4;
/// Rows a task takes when there are several tokens (as `gemm.rs`).
const BATCH_ROWS: usize = 16;

/// The 16-bit float formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfType {
    F16,
    Bf16,
}

impl HalfType {
    /// One value as f32 (exact for both formats).
    #[inline(always)]
    pub fn widen(self, h: u16) -> f32 {
        match self {
            Self::F16 => f16_to_f32(h.to_le_bytes()),
            Self::Bf16 => f32::from_bits(u32::from(h) << 16),
        }
    }
}

/// A matrix of `n` rows of `k` 16-bit floats, read in place.
pub struct HalfMatrix {
    ty: HalfType,
    n: usize,
    k: usize,
    /// The values, in u32 words as the loader reads them.
    words: Vec<u32>,
}

impl HalfMatrix {
    /// Takes the words a tensor's bytes were read into (at least `2 * n * k` bytes), or
    /// `None` if there are fewer.
    pub fn new(ty: HalfType, n: usize, k: usize, words: Vec<u32>) -> Option<Self> {
        (k > 0 && words.len() * 2 >= n * k).then_some(Self { ty, n, k, words })
    }

    pub fn ty(&self) -> HalfType {
        self.ty
    }

    /// Rows (output features).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Values a row (input features).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.words.len() * 4
    }

    fn row(&self, r: usize) -> &[u16] {
        &bytemuck::cast_slice(&self.words)[r * self.k..(r + 1) * self.k]
    }

    /// Row `r` as f32 values, for tests.
    pub fn widen_row(&self, r: usize) -> Vec<f32> {
        self.row(r).iter().map(|&h| self.ty.widen(h)).collect()
    }

    /// `out = x W^T` (`x`: m rows of k; `out`: m x n, row-major by token).
    pub fn matmul(&self, x: &[f32], isa: Isa, pool: &Pool, out: &mut [f32]) {
        let m = x.len() / self.k;
        assert_eq!(
            x.len(),
            m * self.k,
            "activations of {} for width {}",
            x.len(),
            self.k
        );
        assert_eq!(
            out.len(),
            m * self.n,
            "output of {} for {m} x {}",
            out.len(),
            self.n
        );
        let chunk = if m > 1 {
            BATCH_ROWS
        } else {
            // One token: about 8 tasks a thread, for balance.
            (self.n / (8 * pool.threads())).clamp(4, 64)
        };
        let tasks = self.n.div_ceil(chunk);
        let out = SharedMut::new(out);
        let task = task_fn(self.ty, isa);
        pool.run(tasks, &|t| {
            let r0 = t * chunk;
            // SAFETY: `isa` was detected on this CPU; shapes were checked above; tasks cover
            // disjoint rows.
            unsafe { task(self, x, m, r0..(r0 + chunk).min(self.n), &out) };
        });
    }
}

type TaskFn = unsafe fn(&HalfMatrix, &[f32], usize, Range<usize>, &SharedMut<f32>);

/// One kernel: the dot products of a row of 16-bit values with `C` activation rows.
trait RowDot {
    /// SAFETY: the implementation's instruction set is available; every row of `x` is as
    /// long as `w`.
    unsafe fn dot<const C: usize>(w: &[u16], x: &[&[f32]; C]) -> [f32; C];
}

#[inline(always)]
unsafe fn rows<K: RowDot>(
    w: &HalfMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: &SharedMut<f32>,
) {
    let k = w.k;
    let mut t0 = 0;
    while t0 < m {
        macro_rules! tile {
            ($c:literal) => {{
                let xr: [&[f32]; $c] = std::array::from_fn(|c| &x[(t0 + c) * k..(t0 + c + 1) * k]);
                for r in rows.clone() {
                    // SAFETY: passed on from the caller.
                    let v = unsafe { K::dot::<$c>(w.row(r), &xr) };
                    for (c, v) in v.into_iter().enumerate() {
                        // SAFETY: this task is the only one with row r.
                        unsafe { out.write((t0 + c) * w.n + r, v) };
                    }
                }
            }};
        }
        match m - t0 {
            1 => tile!(1),
            2 => tile!(2),
            3 => tile!(3),
            _ => tile!(4),
        }
        t0 += TILE;
    }
}

unsafe fn rows_plain<K: RowDot>(
    w: &HalfMatrix,
    x: &[f32],
    m: usize,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { rows::<K>(w, x, m, r, out) }
}

/// The same loop compiled with AVX2, so the kernels inline into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2<K: RowDot>(
    w: &HalfMatrix,
    x: &[f32],
    m: usize,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { rows::<K>(w, x, m, r, out) }
}

fn task_fn(ty: HalfType, isa: Isa) -> TaskFn {
    match (isa.0, ty) {
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx2, HalfType::F16) => rows_avx2::<x86::Dot<false>>,
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx2, HalfType::Bf16) => rows_avx2::<x86::Dot<true>>,
        #[cfg(target_arch = "wasm32")]
        (IsaKind::Simd128, HalfType::F16) => rows_plain::<wasm::Dot<false>>,
        #[cfg(target_arch = "wasm32")]
        (IsaKind::Simd128, HalfType::Bf16) => rows_plain::<wasm::Dot<true>>,
        (_, HalfType::F16) => rows_plain::<Scalar<false>>,
        (_, HalfType::Bf16) => rows_plain::<Scalar<true>>,
    }
}

/// The tail past the last whole step, in order.
#[inline(always)]
fn tail<const BF16: bool, const C: usize>(w: &[u16], x: &[&[f32]; C], from: usize) -> [f32; C] {
    let ty = if BF16 { HalfType::Bf16 } else { HalfType::F16 };
    let mut s = [0f32; C];
    for (j, &h) in w.iter().enumerate().skip(from) {
        let v = ty.widen(h);
        for c in 0..C {
            s[c] += v * x[c][j];
        }
    }
    s
}

/// Lanes `0..8` summed pairwise, as the SIMD kernels' horizontal sums do.
#[inline(always)]
fn sum8(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

struct Scalar<const BF16: bool>;

impl<const BF16: bool> RowDot for Scalar<BF16> {
    #[inline(always)]
    unsafe fn dot<const C: usize>(w: &[u16], x: &[&[f32]; C]) -> [f32; C] {
        let ty = if BF16 { HalfType::Bf16 } else { HalfType::F16 };
        let mut acc = [[[0f32; 8]; 2]; C];
        let whole = w.len() / STEP * STEP;
        for (i, ws) in w[..whole].chunks_exact(STEP).enumerate() {
            for (h, half) in ws.chunks_exact(8).enumerate() {
                for (l, &b) in half.iter().enumerate() {
                    let v = ty.widen(b);
                    for c in 0..C {
                        acc[c][h][l] += v * x[c][i * STEP + 8 * h + l];
                    }
                }
            }
        }
        let t = tail::<BF16, C>(w, x, whole);
        std::array::from_fn(|c| {
            let a: [f32; 8] = std::array::from_fn(|l| acc[c][0][l] + acc[c][1][l]);
            sum8(a) + t[c]
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{tail, RowDot, STEP};

    pub struct Dot<const BF16: bool>;

    /// Eight 16-bit values at `p` as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn widen8<const BF16: bool>(p: *const u16) -> __m256 {
        // SAFETY: the caller passes 16 readable bytes.
        let h = unsafe { _mm_loadu_si128(p as *const __m128i) };
        if BF16 {
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        } else {
            _mm256_cvtph_ps(h)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn sum8(v: __m256) -> f32 {
        // Lanes l and l + 4, then pairs two apart, then neighbours: `super::sum8`'s order.
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_movehdup_ps(v));
        _mm_cvtss_f32(v)
    }

    impl<const BF16: bool> RowDot for Dot<BF16> {
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn dot<const C: usize>(w: &[u16], x: &[&[f32]; C]) -> [f32; C] {
            // Two accumulators a token: one FMA chain would wait on its own latency.
            let mut acc = [[_mm256_setzero_ps(); 2]; C];
            let whole = w.len() / STEP * STEP;
            let mut i = 0;
            while i < whole {
                // SAFETY: `i + 16 <= whole <= w.len()`, and every row of `x` is as long.
                unsafe {
                    let w0 = widen8::<BF16>(w.as_ptr().add(i));
                    let w1 = widen8::<BF16>(w.as_ptr().add(i + 8));
                    for c in 0..C {
                        let p = x[c].as_ptr().add(i);
                        acc[c][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p), acc[c][0]);
                        acc[c][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p.add(8)), acc[c][1]);
                    }
                }
                i += STEP;
            }
            let t = tail::<BF16, C>(w, x, whole);
            std::array::from_fn(|c| sum8(_mm256_add_ps(acc[c][0], acc[c][1])) + t[c])
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::arch::wasm32::*;

    use super::{tail, RowDot, STEP};

    pub struct Dot<const BF16: bool>;

    /// Four 16-bit values (the low halves of `h`'s u32 lanes) as f32. simd128 has no f16
    /// conversion: shift exponent and mantissa into place and rescale by 2^(127-15), exact
    /// for every finite half (subnormals too); exponent 31 (inf/NaN) maps to 255.
    #[inline(always)]
    fn widen4<const BF16: bool>(h: v128) -> v128 {
        if BF16 {
            return u32x4_shl(h, 16);
        }
        let em = v128_and(h, u32x4_splat(0x7fff));
        let shifted = u32x4_shl(em, 13);
        let finite = f32x4_mul(shifted, f32x4_splat(f32::from_bits(0x7780_0000)));
        let special = v128_or(shifted, u32x4_splat(0x7f80_0000));
        let magnitude = v128_bitselect(special, finite, u32x4_ge(em, u32x4_splat(0x7c00)));
        v128_or(magnitude, u32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16))
    }

    impl<const BF16: bool> RowDot for Dot<BF16> {
        #[inline(always)]
        unsafe fn dot<const C: usize>(w: &[u16], x: &[&[f32]; C]) -> [f32; C] {
            // Four vectors of 4 lanes a token: lanes 0..4 and 4..8 of two sets of 8.
            let mut acc = [[f32x4_splat(0.0); 4]; C];
            let whole = w.len() / STEP * STEP;
            let mut i = 0;
            while i < whole {
                // SAFETY: `i + 16 <= whole <= w.len()`, and every row of `x` is as long.
                unsafe {
                    let h0 = v128_load(w.as_ptr().add(i) as *const v128);
                    let h1 = v128_load(w.as_ptr().add(i + 8) as *const v128);
                    let wv = [
                        widen4::<BF16>(u32x4_extend_low_u16x8(h0)),
                        widen4::<BF16>(u32x4_extend_high_u16x8(h0)),
                        widen4::<BF16>(u32x4_extend_low_u16x8(h1)),
                        widen4::<BF16>(u32x4_extend_high_u16x8(h1)),
                    ];
                    for c in 0..C {
                        let p = x[c].as_ptr().add(i);
                        for (q, &wq) in wv.iter().enumerate() {
                            let xv = v128_load(p.add(4 * q) as *const v128);
                            acc[c][q] = f32x4_add(acc[c][q], f32x4_mul(wq, xv));
                        }
                    }
                }
                i += STEP;
            }
            let t = tail::<BF16, C>(w, x, whole);
            std::array::from_fn(|c| {
                let a = &acc[c];
                // Set 0 (a[0], a[1]) plus set 1 (a[2], a[3]), lane by lane, then `sum8`.
                let lo = f32x4_add(a[0], a[2]);
                let hi = f32x4_add(a[1], a[3]);
                let l: [f32; 8] = [
                    f32x4_extract_lane::<0>(lo),
                    f32x4_extract_lane::<1>(lo),
                    f32x4_extract_lane::<2>(lo),
                    f32x4_extract_lane::<3>(lo),
                    f32x4_extract_lane::<0>(hi),
                    f32x4_extract_lane::<1>(hi),
                    f32x4_extract_lane::<2>(hi),
                    f32x4_extract_lane::<3>(hi),
                ];
                super::sum8(l) + t[c]
            })
        }
    }
}
