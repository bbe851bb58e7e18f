//! AVX2 kernels (with FMA and F16C, which every AVX2 CPU we know has; all three are
//! detected). ggml's arrangement (ggml-cpu/arch/x86/quants.c): weights unpacked to bytes,
//! `maddubs` (unsigned weight byte times signed activation byte, pairs added) then `madd`
//! (pairs added again, or times a sub-block scale) to 8 i32 lanes, one f32 scale multiply
//! per block or super-block. A block is unpacked once and dotted with every token of the
//! tile. Signed weights (Q4_0, Q5_0, Q8_0) move their sign onto the activation first
//! (`sign`), as `maddubs` takes one unsigned operand; no pair sum reaches i16's limit.
//!
//! Each kernel is generic over a [`Flavor`], the two steps that AVX-512 VNNI fuses:
//! `maddubs` + `madd` into one `vpdpbusd`, and `madd` + `add` (by a sub-block scale) into
//! one `vpdpwssd`, on the same 256-bit vectors (Zen 4 splits 512-bit ones in two anyway).
//! The integer sums are the same, so both flavors give the same bits. The kernels carry no
//! target features of their own: they inline into `gemm.rs`'s drivers, compiled with the
//! flavor's features.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::act::XRow;
use super::blocks::*;
use super::gemm::{RowDot, TileDot};
use super::interleave::{TileQ4_0, TileQ4_1, TileQ5_0, TileQ5_1, TileQ8_0, ROWS};

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller passes 32 readable bytes.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// Activation bytes `at..at + 32` of `x`, unchecked.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_x(x: &XRow<'_>, at: usize) -> __m256i {
    debug_assert!(at + 32 <= x.qs.len());
    // SAFETY: the caller keeps `at + 32` within the row.
    unsafe { load(x.qs.as_ptr().add(at) as *const u8) }
}

/// The two f16 values in the 4 bytes at `p`, as f32 (lanes 0 and 1).
///
/// A 4-byte load (`movd`) zeroes the rest of the register; a 2-byte one compiles to
/// `pinsrw` into whatever register is free, which was the loop's accumulator: every
/// block's scale then waited for the previous block's sum (13 cycles a block, measured
/// 2-3x slower for the 32-value types). Where only one half is used, the compiler narrows
/// the load again: those take [`f16_to_f32`] (integer ops, then `movd`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16x2(p: *const u8) -> __m128 {
    // SAFETY: the caller passes 4 readable bytes.
    let bits = unsafe { (p as *const i32).read_unaligned() };
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn lane0(v: __m128) -> f32 {
    _mm_cvtss_f32(v)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn lane1(v: __m128) -> f32 {
    _mm_cvtss_f32(_mm_movehdup_ps(v))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum(v: __m256) -> f32 {
    hsum128(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps(v, 1),
    ))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum128(v: __m128) -> f32 {
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    let v = _mm_add_ss(v, _mm_movehdup_ps(v));
    _mm_cvtss_f32(v)
}

/// The two steps AVX-512 VNNI fuses. Implementations inline into a driver compiled with
/// their features (`gemm.rs`), never elsewhere.
pub(crate) trait Flavor {
    /// Unsigned bytes `a` times signed bytes `b`, summed in fours to 8 i32 lanes.
    /// SAFETY (all methods): the flavor's instruction sets are available.
    unsafe fn dot_us(a: __m256i, b: __m256i) -> __m256i;
    /// `acc + madd(p, s)`: i16 pairs times i16 scales, summed in pairs, added to `acc`.
    unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i;
    /// `acc + dot_us(a1, b1) + dot_us(a2, b2)`, where no two products of a pair of bytes
    /// reach i16's limit (the tiles' weights are at most 31).
    unsafe fn dot_us2_add(
        acc: __m256i,
        a1: __m256i,
        b1: __m256i,
        a2: __m256i,
        b2: __m256i,
    ) -> __m256i;
    /// `v`'s bytes where bit j of `bits` is set, zero elsewhere.
    unsafe fn bytes_where(bits: u32, v: __m256i) -> __m256i;
    /// Q8_0 tiles: the shift of the offset the prepared weights carry (`offset * sum(x)`
    /// comes off), if any.
    const Q8_OFFSET_SHIFT: Option<i32>;
    /// Q8_0 tiles: 32 signed weight bytes as `q8_dot_add` takes them.
    unsafe fn q8_weights(w: __m256i) -> __m256i;
    /// Q8_0 tiles: `acc` plus the products of prepared weights `w` and signed bytes `x`,
    /// summed in fours.
    unsafe fn q8_dot_add(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
}

/// AVX2: `maddubs` then `madd`.
pub(crate) struct Avx2;

impl Flavor for Avx2 {
    #[inline(always)]
    unsafe fn dot_us(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller).
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)) }
    }
    #[inline(always)]
    unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(p, s)) }
    }
    #[inline(always)]
    unsafe fn dot_us2_add(
        acc: __m256i,
        a1: __m256i,
        b1: __m256i,
        a2: __m256i,
        b2: __m256i,
    ) -> __m256i {
        // SAFETY: as above.
        unsafe {
            let p = _mm256_add_epi16(_mm256_maddubs_epi16(a1, b1), _mm256_maddubs_epi16(a2, b2));
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }
    #[inline(always)]
    unsafe fn bytes_where(bits: u32, v: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_and_si256(bit_bytes(bits.to_le_bytes()), v) }
    }
    // Signed as they are: unsigned `q + 128` would saturate `maddubs`'s i16 pairs.
    const Q8_OFFSET_SHIFT: Option<i32> = None;
    #[inline(always)]
    unsafe fn q8_weights(w: __m256i) -> __m256i {
        w
    }
    #[inline(always)]
    unsafe fn q8_dot_add(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_add_epi32(acc, dot_ss::<Self>(w, x)) }
    }
}

/// AVX-512 VNNI on 256-bit vectors (with AVX512VL): one instruction for each.
pub(crate) struct Vnni;

impl Flavor for Vnni {
    #[inline(always)]
    unsafe fn dot_us(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL are available (the caller).
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b) }
    }
    #[inline(always)]
    unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_dpwssd_epi32(acc, p, s) }
    }
    #[inline(always)]
    unsafe fn dot_us2_add(
        acc: __m256i,
        a1: __m256i,
        b1: __m256i,
        a2: __m256i,
        b2: __m256i,
    ) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(acc, a1, b1), a2, b2) }
    }
    #[inline(always)]
    unsafe fn bytes_where(bits: u32, v: __m256i) -> __m256i {
        // SAFETY: as above (and AVX512BW).
        unsafe { _mm256_maskz_mov_epi8(bits, v) }
    }
    // Unsigned `q + 128`: one `dpbusd` a vector, the offset taken off once per block.
    const Q8_OFFSET_SHIFT: Option<i32> = Some(7);
    #[inline(always)]
    unsafe fn q8_weights(w: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_xor_si256(w, _mm256_set1_epi8(0x80u8 as i8)) }
    }
    #[inline(always)]
    unsafe fn q8_dot_add(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_dpbusd_epi32(acc, w, x) }
    }
}

/// Signed bytes `w` times signed bytes `x`: `|w| * (x with w's sign)`.
#[inline(always)]
unsafe fn dot_ss<V: Flavor>(w: __m256i, x: __m256i) -> __m256i {
    // SAFETY: AVX2 and the flavor's sets are available (the caller).
    unsafe { V::dot_us(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)) }
}

/// 16 bytes of nibbles at `p` as 32 values 0..16: the low nibbles, then the high ones.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller passes 16 readable bytes.
    let v = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let v = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
}

/// 0xFF in byte j where bit j of `bits` is set, else 0.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn bit_bytes(bits: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(bits));
    // Byte j takes byte j / 8 of `bits`, then everything but its own bit j % 8 is set.
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let v = _mm256_shuffle_epi8(v, spread);
    let v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1))
}

/// The legacy types: per block, `acc += (d_w * d_x) * isum` on 8 lanes, plus `m_w * s_x`
/// for the types with a min.
macro_rules! legacy {
    ($name:ident, $block:ty, signed, |$b:ident| $values:expr) => {
        legacy!(@impl $name, $block, |$b| $values, |q, xv| dot_ss::<V>(q, xv),
            |b| (f16_to_f32(b.d), 0.0), false);
    };
    ($name:ident, $block:ty, unsigned, |$b:ident| $values:expr) => {
        legacy!(@impl $name, $block, |$b| $values, |q, xv| V::dot_us(q, xv),
            // SAFETY: d and m are the block's first 4 bytes.
            |b| unsafe {
                let dm = f16x2(b.d.as_ptr());
                (lane0(dm), lane1(dm))
            }, true);
    };
    (@impl $name:ident, $block:ty, |$b:ident| $values:expr, |$q:ident, $xv:ident| $dot:expr,
     |$bm:ident| $scales:expr, $has_min:expr) => {
        pub struct $name<V>(PhantomData<V>);
        impl<V: Flavor> RowDot for $name<V> {
            type Block = $block;
            #[inline(always)]
            #[allow(unused_unsafe)]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                // SAFETY (the intrinsics): the driver this inlines into has V's features.
                unsafe {
                let mut acc = [_mm256_setzero_ps(); C];
                let mut accm = [0f32; C];
                for (i, $b) in w.iter().enumerate() {
                    // SAFETY: a block's bytes are in bounds.
                    let $q: __m256i = unsafe { $values };
                    let (d, m): (f32, f32) = {
                        let $bm = $b;
                        $scales
                    };
                    for c in 0..C {
                        // SAFETY: block i of every activation row is in bounds (the caller).
                        let (xd, $xv) = unsafe { (*x[c].d.get_unchecked(i), load_x(&x[c], i * QK)) };
                        let p = $dot;
                        acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd), _mm256_cvtepi32_ps(p), acc[c]);
                        if $has_min {
                            // SAFETY: as above.
                            accm[c] += m * unsafe { *x[c].s.get_unchecked(i) };
                        }
                    }
                }
                let mut out = [0f32; C];
                for c in 0..C {
                    out[c] = hsum(acc[c]) + accm[c];
                }
                out
                }
            }
        }
    };
}

legacy!(Q4_0, BlockQ4_0, signed, |b| _mm256_sub_epi8(
    nibbles(b.qs.as_ptr()),
    _mm256_set1_epi8(8)
));
legacy!(Q4_1, BlockQ4_1, unsigned, |b| nibbles(b.qs.as_ptr()));
// The fifth bit: where it is clear, value - 16 is the nibble with the high four bits set.
legacy!(Q5_0, BlockQ5_0, signed, |b| _mm256_or_si256(
    nibbles(b.qs.as_ptr()),
    _mm256_andnot_si256(bit_bytes(b.qh), _mm256_set1_epi8(0xf0u8 as i8))
));
legacy!(Q5_1, BlockQ5_1, unsigned, |b| _mm256_or_si256(
    nibbles(b.qs.as_ptr()),
    _mm256_and_si256(bit_bytes(b.qh), _mm256_set1_epi8(0x10))
));
legacy!(Q8_0, BlockQ8_0, signed, |b| load(b.qs.as_ptr()));

/// A Q4_K/Q5_K block's 8 six-bit scales and 8 mins as bytes (ggml's `utmp` unpacking).
#[inline(always)]
fn k4_scales(s: &[u8; 12]) -> (u64, u64) {
    const M1: u32 = 0x3f3f_3f3f;
    const M2: u32 = 0x0f0f_0f0f;
    const M3: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, u2) = (w(0), w(1), w(2));
    let sc_lo = u0 & M1;
    let sc_hi = (u2 & M2) | (((u0 >> 6) & M3) << 4);
    let mn_lo = u1 & M1;
    let mn_hi = ((u2 >> 4) & M2) | (((u1 >> 6) & M3) << 4);
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        mn_lo as u64 | (mn_hi as u64) << 32,
    )
}

/// Shuffle control that broadcasts i16 element `j` to every element of a 128-bit lane.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn broadcast_i16(v: __m256i, j: i16) -> __m256i {
    _mm256_shuffle_epi8(v, _mm256_set1_epi16(((2 * j + 1) << 8) | (2 * j)))
}

/// Q4_K and Q5_K: per 64 values, two sub-blocks of 32 (low nibbles, then high), each
/// `madd`-ed with its scale; the mins meet the activations' sums of 32 once per block.
macro_rules! k4 {
    ($name:ident, $block:ty, $high:expr) => {
        pub struct $name<V>(PhantomData<V>);
        impl<V: Flavor> RowDot for $name<V> {
            type Block = $block;
            #[inline(always)]
            #[allow(unused_unsafe)]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                // SAFETY (the intrinsics): the driver this inlines into has V's features.
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); C];
                    let mut accm = [_mm_setzero_ps(); C];
                    let low4 = _mm256_set1_epi8(0x0f);
                    for (i, b) in w.iter().enumerate() {
                        // SAFETY: d and dmin are the block's first 4 bytes.
                        let dd = unsafe { f16x2(b.d.as_ptr()) };
                        let (d, dmin) = (lane0(dd), lane1(dd));
                        let (sc, mn) = k4_scales(&b.scales);
                        let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(
                            _mm_cvtsi64_si128(sc as i64),
                        ));
                        let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
                        let mut sumi = [_mm256_setzero_si256(); C];
                        // Q5_K's fifth bits, shifted down two bits per 64 values.
                        let mut hbits = $high(b);
                        for j in 0..4 {
                            // SAFETY: 32 bytes of the block's 128.
                            let bits = unsafe { load(b.qs.as_ptr().add(32 * j)) };
                            let mut lo = _mm256_and_si256(bits, low4);
                            let mut hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
                            if let Some(h) = hbits {
                                let one = _mm256_set1_epi8(1);
                                lo = _mm256_or_si256(
                                    lo,
                                    _mm256_slli_epi16(_mm256_and_si256(h, one), 4),
                                );
                                hi = _mm256_or_si256(
                                    hi,
                                    _mm256_slli_epi16(
                                        _mm256_and_si256(_mm256_srli_epi16(h, 1), one),
                                        4,
                                    ),
                                );
                                hbits = Some(_mm256_srli_epi16(h, 2));
                            }
                            let sl = broadcast_i16(scales, 2 * j as i16);
                            let sh = broadcast_i16(scales, 2 * j as i16 + 1);
                            for c in 0..C {
                                let at = i * QK_K + 64 * j;
                                // SAFETY: within row c (the caller).
                                let (xl, xh) =
                                    unsafe { (load_x(&x[c], at), load_x(&x[c], at + 32)) };
                                sumi[c] = V::madd_add(sumi[c], _mm256_maddubs_epi16(lo, xl), sl);
                                sumi[c] = V::madd_add(sumi[c], _mm256_maddubs_epi16(hi, xh), sh);
                            }
                        }
                        for c in 0..C {
                            // SAFETY: block i's scale and 16 sums are within row c (the caller).
                            let (xd, bs) = unsafe {
                                (
                                    *x[c].d.get_unchecked(i),
                                    _mm256_loadu_si256(
                                        x[c].bsums.as_ptr().add(16 * i) as *const __m256i
                                    ),
                                )
                            };
                            acc[c] = _mm256_fmadd_ps(
                                _mm256_set1_ps(d * xd),
                                _mm256_cvtepi32_ps(sumi[c]),
                                acc[c],
                            );
                            // Sums of 16 -> of 32, one per sub-block, times the mins.
                            let bs32 = _mm_hadd_epi16(
                                _mm256_castsi256_si128(bs),
                                _mm256_extracti128_si256(bs, 1),
                            );
                            let pm = _mm_madd_epi16(mins, bs32);
                            accm[c] =
                                _mm_fmadd_ps(_mm_set1_ps(-dmin * xd), _mm_cvtepi32_ps(pm), accm[c]);
                        }
                    }
                    let mut out = [0f32; C];
                    for c in 0..C {
                        out[c] = hsum(acc[c]) + hsum128(accm[c]);
                    }
                    out
                }
            }
        }
    };
}

k4!(Q4K, BlockQ4K, |_b: &BlockQ4K| None::<__m256i>);
// SAFETY (the closure's load): a block's 32 bytes of fifth bits.
k4!(Q5K, BlockQ5K, |b: &BlockQ5K| Some(unsafe {
    load(b.qh.as_ptr())
}));

/// Shuffle control: byte `j` to the low 8 bytes, byte `j + 1` to the high 8.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pair_bytes(v: __m128i, j: i8) -> __m128i {
    _mm_shuffle_epi8(
        v,
        _mm_set_epi64x(
            0x0101_0101_0101_0101 * (j as i64 + 1),
            0x0101_0101_0101_0101 * j as i64,
        ),
    )
}

/// Q6_K: per 128 values, 4 x 32 six-bit values (0..64) from two nibble rows and one row of
/// 2-bit pairs; each 32 spans two 16-value sub-blocks with their own i8 scale. The offset of
/// 32 is taken off once per block through the activations' sums of 16.
pub struct Q6K<V>(PhantomData<V>);
impl<V: Flavor> RowDot for Q6K<V> {
    type Block = BlockQ6K;
    #[inline(always)]
    #[allow(unused_unsafe)]
    unsafe fn dot<const C: usize>(w: &[BlockQ6K], x: &[XRow<'_>; C]) -> [f32; C] {
        // SAFETY (the intrinsics): the driver this inlines into has V's features.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); C];
            let low4 = _mm256_set1_epi8(0x0f);
            let two = _mm256_set1_epi8(0x30);
            for (i, b) in w.iter().enumerate() {
                let d = f16_to_f32(b.d);
                // SAFETY: the block's 16 scale bytes.
                let sc = unsafe { _mm_loadu_si128(b.scales.as_ptr() as *const __m128i) };
                let mut sumi = [_mm256_setzero_si256(); C];
                for h in 0..2 {
                    // SAFETY: within the block's 128 + 64 bytes.
                    let (ql0, ql1, qh) = unsafe {
                        (
                            load(b.ql.as_ptr().add(64 * h)),
                            load(b.ql.as_ptr().add(64 * h + 32)),
                            load(b.qh.as_ptr().add(32 * h)),
                        )
                    };
                    let q = [
                        _mm256_or_si256(
                            _mm256_and_si256(ql0, low4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 4), two),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, low4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 2), two),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                            _mm256_and_si256(qh, two),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), two),
                        ),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        let s = _mm256_cvtepi8_epi16(pair_bytes(sc, (8 * h + 2 * k) as i8));
                        for c in 0..C {
                            // SAFETY: within row c (the caller).
                            let xv = unsafe { load_x(&x[c], i * QK_K + 128 * h + 32 * k) };
                            sumi[c] = V::madd_add(sumi[c], _mm256_maddubs_epi16(q, xv), s);
                        }
                    }
                }
                let sc16 = _mm256_cvtepi8_epi16(sc);
                for c in 0..C {
                    // SAFETY: block i's scale and 16 sums are within row c (the caller).
                    let (xd, bs) = unsafe {
                        (
                            *x[c].d.get_unchecked(i),
                            _mm256_loadu_si256(x[c].bsums.as_ptr().add(16 * i) as *const __m256i),
                        )
                    };
                    // sum_i sc_i * (dot_i - 32 * xsum_i)
                    let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    let s = _mm256_sub_epi32(sumi[c], offset);
                    acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd), _mm256_cvtepi32_ps(s), acc[c]);
                }
            }
            let mut out = [0f32; C];
            for c in 0..C {
                out[c] = hsum(acc[c]);
            }
            out
        }
    }
}

/// A tile's eight f16 values at `p` (its scales, or its mins), as f32.
/// SAFETY (the tile helpers): the driver they inline into has AVX2; block i of every
/// activation row is in bounds; `p` has 16 readable bytes.
#[inline(always)]
unsafe fn tile_f16x8(p: *const [u8; 2]) -> __m256 {
    // SAFETY: see above.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

/// Each token's integer sums of block i start at `-(sum(x) << shift)` (the weights'
/// offset taken off), or at zero.
#[inline(always)]
unsafe fn tile_start<const C: usize>(
    x: &[XRow<'_>; C],
    i: usize,
    shift: Option<i32>,
) -> [__m256i; C] {
    std::array::from_fn(|c| match shift {
        // SAFETY: see `tile_f16x8`.
        Some(shift) => unsafe {
            let sum = *x[c].bsums.get_unchecked(i) as i32;
            _mm256_set1_epi32(-(sum << shift))
        },
        // SAFETY: as above.
        None => unsafe { _mm256_setzero_si256() },
    })
}

/// Activation bytes `4 j..4 j + 4` of block i of `x`, in every lane.
#[inline(always)]
unsafe fn tile_x(x: &XRow<'_>, i: usize, j: usize) -> __m256i {
    // SAFETY: see `tile_f16x8`.
    unsafe { _mm256_set1_epi32((x.qs.as_ptr().add(i * QK + 4 * j) as *const i32).read_unaligned()) }
}

/// `acc = fma(d_w * d_x, isum, acc)` for each token, eight rows a vector.
#[inline(always)]
unsafe fn tile_scale_add<const C: usize>(
    acc: &mut [__m256; C],
    dw: __m256,
    x: &[XRow<'_>; C],
    i: usize,
    s: &[__m256i; C],
) {
    for c in 0..C {
        // SAFETY: see `tile_f16x8`.
        unsafe {
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x[c].d.get_unchecked(i)));
            acc[c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s[c]), acc[c]);
        }
    }
}

/// The legacy 4- and 5-bit types on eight interleaved rows (`interleave.rs`): per tile, 8
/// vectors of unsigned values (row r in lane r), each dotted with 4 activation bytes
/// broadcast, into one i32 vector that starts at `-offset * sum(x)` (Q4_0, Q5_0; zero for
/// the types with a min); then one convert, scale and fused add for the eight rows, and one
/// more for the mins. Per row and token: `acc = fma(d_w * d_x, isum, acc)` over the blocks,
/// then `acc = fma(m_w, s_x, acc)` where there is a min.
macro_rules! tiles {
    ($name:ident, $tile:ty, offset: $shift:expr, min: $min:expr, |$t:ident, $v:ident| $fifth:expr) => {
        pub struct $name<V>(PhantomData<V>);
        impl<V: Flavor> TileDot for $name<V> {
            type Tile = $tile;
            #[inline(always)]
            #[allow(unused_unsafe, unused_variables)]
            unsafe fn dot<const C: usize>(w: &[$tile], x: &[XRow<'_>; C]) -> [[f32; ROWS]; C] {
                // SAFETY (the intrinsics): the driver this inlines into has V's features.
                unsafe {
                    let low4 = _mm256_set1_epi8(0x0f);
                    let mut acc = [_mm256_setzero_ps(); C];
                    for (i, $t) in w.iter().enumerate() {
                        let dw = tile_f16x8($t.d.as_ptr());
                        let mut s = tile_start(x, i, $shift);
                        for j in 0..4 {
                            // SAFETY: 32 of the tile's 128 bytes.
                            let bits = unsafe { load($t.qs.as_ptr().add(32 * j)) };
                            let lo = _mm256_and_si256(bits, low4);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
                            let $v = j;
                            let lo = _mm256_or_si256(lo, $fifth);
                            let $v = j + 4;
                            let hi = _mm256_or_si256(hi, $fifth);
                            for c in 0..C {
                                let (xl, xh) = (tile_x(&x[c], i, j), tile_x(&x[c], i, j + 4));
                                s[c] = V::dot_us2_add(s[c], lo, xl, hi, xh);
                            }
                        }
                        tile_scale_add(&mut acc, dw, x, i, &s);
                        if $min {
                            // The tile's eight f16 mins, right after the scales.
                            let mw = tile_f16x8($t.d.as_ptr().add(ROWS));
                            for c in 0..C {
                                // SAFETY: as above.
                                let xs = unsafe { *x[c].s.get_unchecked(i) };
                                acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xs), acc[c]);
                            }
                        }
                    }
                    acc.map(|a| std::mem::transmute::<__m256, [f32; ROWS]>(a))
                }
            }
        }
    };
}

tiles!(Q4_0Tiles, TileQ4_0, offset: Some(3), min: false, |t, v| _mm256_setzero_si256());
tiles!(Q4_1Tiles, TileQ4_1, offset: None::<i32>, min: true, |t, v| _mm256_setzero_si256());
tiles!(Q5_0Tiles, TileQ5_0, offset: Some(4), min: false, |t, v| V::bytes_where(
    u32::from_le_bytes(t.qh[v]),
    _mm256_set1_epi8(0x10)
));
tiles!(Q5_1Tiles, TileQ5_1, offset: None::<i32>, min: true, |t, v| V::bytes_where(
    u32::from_le_bytes(t.qh[v]),
    _mm256_set1_epi8(0x10)
));

/// Q8_0 on eight interleaved rows: VNNI takes the weights unsigned (`q + 128`, one `dpbusd`
/// a vector, the offset off as in `tiles!`), AVX2 signed with the sign moved onto the
/// activations (`maddubs` would saturate on `q + 128`). The same integers either way.
pub struct Q8_0Tiles<V>(PhantomData<V>);

impl<V: Flavor> TileDot for Q8_0Tiles<V> {
    type Tile = TileQ8_0;
    #[inline(always)]
    unsafe fn dot<const C: usize>(w: &[TileQ8_0], x: &[XRow<'_>; C]) -> [[f32; ROWS]; C] {
        // SAFETY (the intrinsics): the driver this inlines into has V's features; block i
        // of every activation row is in bounds (the caller).
        unsafe {
            let mut acc = [_mm256_setzero_ps(); C];
            for (i, t) in w.iter().enumerate() {
                let dw = tile_f16x8(t.d.as_ptr());
                let mut s = tile_start(x, i, V::Q8_OFFSET_SHIFT);
                for j in 0..8 {
                    let u = V::q8_weights(load(t.qs.as_ptr().add(32 * j)));
                    for c in 0..C {
                        s[c] = V::q8_dot_add(s[c], u, tile_x(&x[c], i, j));
                    }
                }
                tile_scale_add(&mut acc, dw, x, i, &s);
            }
            acc.map(|a| std::mem::transmute::<__m256, [f32; ROWS]>(a))
        }
    }
}
