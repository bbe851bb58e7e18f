//! Matrices of 16-bit floats (F16, BF16) read in place: each weight is widened to f32 in
//! registers and multiplied with the f32 activations. Memory is the file's bytes, half of
//! what widening the matrix to f32 at load took, and a decode step reads half the bytes.
//! (ggml rounds the activations to f16 instead; widening the weights keeps them exact.)
//!
//! Tasks as in `gemm.rs`: a task owns a range of rows. The kernel takes two rows and up to
//! four tokens at once (each weight vector widened once for four tokens, each activation
//! vector loaded once for two rows: two FMAs a load), and every output is one accumulator
//! of 8 lanes over the row, then the tail, in a fixed order: a batch equals its tokens one
//! by one, and any thread count equals one thread, bit for bit.

use std::ops::Range;

use super::blocks::f16_to_f32;
use super::pool::{Pool, SharedMut};
use super::{Isa, IsaKind};

/// Values a kernel step takes: one vector of 8 f32 lanes.
const STEP: usize = 8;
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

/// One kernel: the dot products of `R` rows of 16-bit values with `C` activation rows.
trait RowDot {
    /// SAFETY: the implementation's instruction set is available; all rows of `w` and `x`
    /// have the same length.
    unsafe fn dot<const R: usize, const C: usize>(
        w: &[&[u16]; R],
        x: &[&[f32]; C],
    ) -> [[f32; C]; R];
}

/// Rows `r0..r0 + R` for tokens `t0..t0 + C`.
#[inline(always)]
unsafe fn tile<K: RowDot, const R: usize, const C: usize>(
    w: &HalfMatrix,
    x: &[f32],
    r0: usize,
    t0: usize,
    out: &SharedMut<f32>,
) {
    let k = w.k;
    let xr: [&[f32]; C] = std::array::from_fn(|c| &x[(t0 + c) * k..(t0 + c + 1) * k]);
    let wr: [&[u16]; R] = std::array::from_fn(|r| w.row(r0 + r));
    // SAFETY: passed on from the caller.
    let v = unsafe { K::dot::<R, C>(&wr, &xr) };
    for (r, v) in v.into_iter().enumerate() {
        for (c, v) in v.into_iter().enumerate() {
            // SAFETY: this task is the only one with these rows.
            unsafe { out.write((t0 + c) * w.n + r0 + r, v) };
        }
    }
}

#[inline(always)]
unsafe fn rows<K: RowDot>(
    w: &HalfMatrix,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    out: &SharedMut<f32>,
) {
    let mut t0 = 0;
    while t0 < m {
        let mut r = rows.start;
        while r < rows.end {
            macro_rules! tokens {
                ($r:literal) => {
                    // SAFETY: passed on from the caller.
                    unsafe {
                        match m - t0 {
                            1 => tile::<K, $r, 1>(w, x, r, t0, out),
                            2 => tile::<K, $r, 2>(w, x, r, t0, out),
                            3 => tile::<K, $r, 3>(w, x, r, t0, out),
                            _ => tile::<K, $r, TILE>(w, x, r, t0, out),
                        }
                    }
                };
            }
            if r + 1 < rows.end {
                tokens!(2);
                r += 2;
            } else {
                tokens!(1);
                r += 1;
            }
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
        (IsaKind::Avx2 { .. }, HalfType::F16) => rows_avx2::<x86::Dot<false>>,
        #[cfg(target_arch = "x86_64")]
        (IsaKind::Avx2 { .. }, HalfType::Bf16) => rows_avx2::<x86::Dot<true>>,
        #[cfg(target_arch = "wasm32")]
        (IsaKind::Simd128, HalfType::F16) => rows_plain::<wasm::Dot<false>>,
        #[cfg(target_arch = "wasm32")]
        (IsaKind::Simd128, HalfType::Bf16) => rows_plain::<wasm::Dot<true>>,
        (_, HalfType::F16) => rows_plain::<Scalar<false>>,
        (_, HalfType::Bf16) => rows_plain::<Scalar<true>>,
    }
}

const fn half_type(bf16: bool) -> HalfType {
    if bf16 {
        HalfType::Bf16
    } else {
        HalfType::F16
    }
}

/// Each row's tail past the last whole step, in order.
#[inline(always)]
fn tail<const BF16: bool, const R: usize, const C: usize>(
    w: &[&[u16]; R],
    x: &[&[f32]; C],
    from: usize,
) -> [[f32; C]; R] {
    std::array::from_fn(|r| {
        let mut s = [0f32; C];
        for (j, &h) in w[r].iter().enumerate().skip(from) {
            let v = half_type(BF16).widen(h);
            for c in 0..C {
                s[c] += v * x[c][j];
            }
        }
        s
    })
}

/// Lanes `0..8` summed pairwise, as the SIMD kernels' horizontal sums do.
#[inline(always)]
fn sum8(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

struct Scalar<const BF16: bool>;

impl<const BF16: bool> RowDot for Scalar<BF16> {
    #[inline(always)]
    unsafe fn dot<const R: usize, const C: usize>(
        w: &[&[u16]; R],
        x: &[&[f32]; C],
    ) -> [[f32; C]; R] {
        let mut acc = [[[0f32; STEP]; C]; R];
        let whole = w[0].len() / STEP * STEP;
        for i in (0..whole).step_by(STEP) {
            for r in 0..R {
                for l in 0..STEP {
                    let v = half_type(BF16).widen(w[r][i + l]);
                    for c in 0..C {
                        acc[r][c][l] += v * x[c][i + l];
                    }
                }
            }
        }
        let t = tail::<BF16, R, C>(w, x, whole);
        std::array::from_fn(|r| std::array::from_fn(|c| sum8(acc[r][c]) + t[r][c]))
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
        unsafe fn dot<const R: usize, const C: usize>(
            w: &[&[u16]; R],
            x: &[&[f32]; C],
        ) -> [[f32; C]; R] {
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let whole = w[0].len() / STEP * STEP;
            let mut i = 0;
            while i < whole {
                // SAFETY: `i + 8 <= whole`, and every row of `w` and `x` is as long.
                unsafe {
                    let wv: [__m256; R] =
                        std::array::from_fn(|r| widen8::<BF16>(w[r].as_ptr().add(i)));
                    for c in 0..C {
                        let xv = _mm256_loadu_ps(x[c].as_ptr().add(i));
                        for r in 0..R {
                            acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
                        }
                    }
                }
                i += STEP;
            }
            let t = tail::<BF16, R, C>(w, x, whole);
            std::array::from_fn(|r| std::array::from_fn(|c| sum8(acc[r][c]) + t[r][c]))
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
        unsafe fn dot<const R: usize, const C: usize>(
            w: &[&[u16]; R],
            x: &[&[f32]; C],
        ) -> [[f32; C]; R] {
            // Lanes 0..4 and 4..8 of each output's 8.
            let mut acc = [[[f32x4_splat(0.0); 2]; C]; R];
            let whole = w[0].len() / STEP * STEP;
            let mut i = 0;
            while i < whole {
                // SAFETY: `i + 8 <= whole`, and every row of `w` and `x` is as long.
                unsafe {
                    let wv: [[v128; 2]; R] = std::array::from_fn(|r| {
                        let h = v128_load(w[r].as_ptr().add(i) as *const v128);
                        [
                            widen4::<BF16>(u32x4_extend_low_u16x8(h)),
                            widen4::<BF16>(u32x4_extend_high_u16x8(h)),
                        ]
                    });
                    for c in 0..C {
                        let p = x[c].as_ptr().add(i);
                        let xv = [
                            v128_load(p as *const v128),
                            v128_load(p.add(4) as *const v128),
                        ];
                        for r in 0..R {
                            for q in 0..2 {
                                acc[r][c][q] = f32x4_add(acc[r][c][q], f32x4_mul(wv[r][q], xv[q]));
                            }
                        }
                    }
                }
                i += STEP;
            }
            let t = tail::<BF16, R, C>(w, x, whole);
            std::array::from_fn(|r| {
                std::array::from_fn(|c| {
                    let [lo, hi] = acc[r][c];
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
                    super::sum8(l) + t[r][c]
                })
            })
        }
    }
}
