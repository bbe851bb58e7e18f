//! wasm32 simd128 kernels (the browser's CPU path). simd128 has no byte multiply-add, so a
//! weight block is widened to i16 once (and, for the k-quants, multiplied by its sub-block
//! scales there, which keeps every product within i16 x i8 -> i32), and each token's
//! activation bytes are loaded sign-extended (`i16x8_load_extend_i8x8`) into `i32x4_dot_i16x8`.
//! The weight work is shared by the tile's tokens; a token costs a load and a dot per 8
//! values. The integer sums equal the scalar kernels'.

use std::arch::wasm32::*;

use super::act::XRow;
use super::blocks::*;
use super::gemm::RowDot;

#[inline(always)]
unsafe fn load(p: *const u8) -> v128 {
    // SAFETY: the caller passes 16 readable bytes; v128_load takes any alignment.
    unsafe { v128_load(p as *const v128) }
}

/// The dot of 32 weights (four i16x8) with the 32 activation bytes of `x` at `at`.
#[inline(always)]
unsafe fn dot32(w: &[v128; 4], x: &XRow<'_>, at: usize) -> v128 {
    debug_assert!(at + 32 <= x.qs.len());
    // SAFETY: the caller keeps `at + 32` within the row.
    unsafe {
        let p = x.qs.as_ptr().add(at);
        let a = i32x4_dot_i16x8(w[0], i16x8_load_extend_i8x8(p));
        let b = i32x4_dot_i16x8(w[1], i16x8_load_extend_i8x8(p.add(8)));
        let c = i32x4_dot_i16x8(w[2], i16x8_load_extend_i8x8(p.add(16)));
        let d = i32x4_dot_i16x8(w[3], i16x8_load_extend_i8x8(p.add(24)));
        i32x4_add(i32x4_add(a, b), i32x4_add(c, d))
    }
}

#[inline(always)]
fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

/// 32 weight bytes (two vectors) widened to i16, signed or not.
#[inline(always)]
fn widen_signed(a: v128, b: v128) -> [v128; 4] {
    [
        i16x8_extend_low_i8x16(a),
        i16x8_extend_high_i8x16(a),
        i16x8_extend_low_i8x16(b),
        i16x8_extend_high_i8x16(b),
    ]
}

#[inline(always)]
fn widen_unsigned(a: v128, b: v128) -> [v128; 4] {
    [
        i16x8_extend_low_u8x16(a),
        i16x8_extend_high_u8x16(a),
        i16x8_extend_low_u8x16(b),
        i16x8_extend_high_u8x16(b),
    ]
}

#[inline(always)]
fn scaled(w: [v128; 4], s: i16) -> [v128; 4] {
    let s = i16x8_splat(s);
    w.map(|v| i16x8_mul(v, s))
}

/// Low and high nibbles of 16 bytes at `p`: values 0..16 and 16..32 of a legacy block.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (v128, v128) {
    // SAFETY: the caller passes 16 readable bytes.
    let v = unsafe { load(p) };
    (v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4))
}

/// 0x10 in byte j where bit j of `bits` (j in 0..16, then 16..32) is set.
#[inline(always)]
fn fifth_bits(bits: [u8; 4]) -> (v128, v128) {
    let v = u32x4_splat(u32::from_le_bytes(bits));
    let mask = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let spread = |lo: u8, hi: u8| {
        let b = u8x16_swizzle(
            v,
            u8x16(
                lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi,
            ),
        );
        v128_and(u8x16_eq(v128_and(b, mask), mask), u8x16_splat(0x10))
    };
    (spread(0, 1), spread(2, 3))
}

/// The legacy types: per block, `acc += (d_w * d_x) * isum` on 4 lanes, plus `m_w * s_x`
/// for the types with a min.
macro_rules! legacy {
    ($name:ident, $block:ty, |$b:ident| $values:expr, |$bm:ident| $min:expr) => {
        pub struct $name;
        impl RowDot for $name {
            type Block = $block;
            #[inline(always)]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                let mut acc = [f32x4_splat(0.0); C];
                let mut accm = [0f32; C];
                for (i, $b) in w.iter().enumerate() {
                    let d = f16_to_f32($b.d);
                    // SAFETY: a block's bytes are in bounds.
                    let q: [v128; 4] = unsafe { $values };
                    let m: Option<f32> = {
                        let $bm = $b;
                        $min
                    };
                    for c in 0..C {
                        // SAFETY: block i of every activation row is in bounds (the caller).
                        let (xd, p) =
                            unsafe { (*x[c].d.get_unchecked(i), dot32(&q, &x[c], i * QK)) };
                        acc[c] = f32x4_add(
                            acc[c],
                            f32x4_mul(f32x4_splat(d * xd), f32x4_convert_i32x4(p)),
                        );
                        if let Some(m) = m {
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
    };
}

legacy!(
    Q4_0,
    BlockQ4_0,
    |b| {
        let (lo, hi) = nibbles(b.qs.as_ptr());
        widen_signed(i8x16_sub(lo, i8x16_splat(8)), i8x16_sub(hi, i8x16_splat(8)))
    },
    |_b| None
);
legacy!(
    Q4_1,
    BlockQ4_1,
    |b| {
        let (lo, hi) = nibbles(b.qs.as_ptr());
        widen_unsigned(lo, hi)
    },
    |b| Some(f16_to_f32(b.m))
);
legacy!(
    Q5_0,
    BlockQ5_0,
    |b| {
        let (lo, hi) = nibbles(b.qs.as_ptr());
        let (hl, hh) = fifth_bits(b.qh);
        let sixteen = i8x16_splat(16);
        widen_signed(
            i8x16_sub(v128_or(lo, hl), sixteen),
            i8x16_sub(v128_or(hi, hh), sixteen),
        )
    },
    |_b| None
);
legacy!(
    Q5_1,
    BlockQ5_1,
    |b| {
        let (lo, hi) = nibbles(b.qs.as_ptr());
        let (hl, hh) = fifth_bits(b.qh);
        widen_unsigned(v128_or(lo, hl), v128_or(hi, hh))
    },
    |b| Some(f16_to_f32(b.m))
);
legacy!(
    Q8_0,
    BlockQ8_0,
    |b| widen_signed(load(b.qs.as_ptr()), load(b.qs.as_ptr().add(16))),
    |_b| None
);

/// Q4_K and Q5_K: each sub-block of 32 widened and multiplied by its scale, the integer
/// dots summed over the super-block; the mins meet the activations' sums once per block.
macro_rules! k4 {
    ($name:ident, $block:ty, |$b:ident, $j:ident| $high:expr) => {
        pub struct $name;
        impl RowDot for $name {
            type Block = $block;
            #[inline(always)]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                let mut acc = [f32x4_splat(0.0); C];
                let mut accm = [0f32; C];
                for (i, $b) in w.iter().enumerate() {
                    let (d, dmin) = (f16_to_f32($b.d), f16_to_f32($b.dmin));
                    let (sc, mn) = scales_mins_k4(&$b.scales);
                    let mut sumi = [i32x4_splat(0); C];
                    for $j in 0..4 {
                        // SAFETY: 32 bytes of the block's 128.
                        let (a, b2) = unsafe {
                            (
                                nibbles($b.qs.as_ptr().add(32 * $j)),
                                nibbles($b.qs.as_ptr().add(32 * $j + 16)),
                            )
                        };
                        // Values 0..32 of the pair are the low nibbles, 32..64 the high.
                        let (mut l0, mut l1, mut h0, mut h1) = (a.0, b2.0, a.1, b2.1);
                        // SAFETY: the block's fifth bits, if any (Q4_K has none, and no
                        // unsafe call: hence the allow).
                        #[allow(unused_unsafe)]
                        let high = unsafe { $high };
                        if let Some([hl0, hl1, hh0, hh1]) = high {
                            l0 = v128_or(l0, hl0);
                            l1 = v128_or(l1, hl1);
                            h0 = v128_or(h0, hh0);
                            h1 = v128_or(h1, hh1);
                        }
                        let lo = scaled(widen_unsigned(l0, l1), sc[2 * $j] as i16);
                        let hi = scaled(widen_unsigned(h0, h1), sc[2 * $j + 1] as i16);
                        for c in 0..C {
                            let at = i * QK_K + 64 * $j;
                            // SAFETY: within row c (the caller).
                            let p = unsafe {
                                i32x4_add(dot32(&lo, &x[c], at), dot32(&hi, &x[c], at + 32))
                            };
                            sumi[c] = i32x4_add(sumi[c], p);
                        }
                    }
                    for c in 0..C {
                        // SAFETY: block i's scale and sums are within row c (the caller).
                        let (xd, bs) = unsafe {
                            (
                                *x[c].d.get_unchecked(i),
                                x[c].bsums.get_unchecked(16 * i..16 * i + 16),
                            )
                        };
                        let msum: i32 = (0..8)
                            .map(|j| mn[j] as i32 * (bs[2 * j] as i32 + bs[2 * j + 1] as i32))
                            .sum();
                        acc[c] = f32x4_add(
                            acc[c],
                            f32x4_mul(f32x4_splat(d * xd), f32x4_convert_i32x4(sumi[c])),
                        );
                        accm[c] += -dmin * xd * msum as f32;
                    }
                }
                let mut out = [0f32; C];
                for c in 0..C {
                    out[c] = hsum(acc[c]) + accm[c];
                }
                out
            }
        }
    };
}

k4!(Q4K, BlockQ4K, |_b, _j| None::<[v128; 4]>);
k4!(Q5K, BlockQ5K, |b, j| {
    // Bit 2j of qh[l] is value 64j + l's fifth bit, bit 2j + 1 value 64j + 32 + l's.
    let (q0, q1) = (load(b.qh.as_ptr()), load(b.qh.as_ptr().add(16)));
    let bit = |v: v128, s: u32| u8x16_shl(v128_and(u8x16_shr(v, s), u8x16_splat(1)), 4);
    let s = 2 * j as u32;
    Some([bit(q0, s), bit(q1, s), bit(q0, s + 1), bit(q1, s + 1)])
});

/// Q6_K: per 128 values, 4 x 32 six-bit values from two nibble rows and a row of 2-bit
/// pairs; minus 32, widened, times the scale of their 16-value sub-block.
pub struct Q6K;
impl RowDot for Q6K {
    type Block = BlockQ6K;
    #[inline(always)]
    unsafe fn dot<const C: usize>(w: &[BlockQ6K], x: &[XRow<'_>; C]) -> [f32; C] {
        let mut acc = [f32x4_splat(0.0); C];
        let low4 = u8x16_splat(0x0f);
        let two = u8x16_splat(0x30);
        let off = i8x16_splat(32);
        for (i, b) in w.iter().enumerate() {
            let d = f16_to_f32(b.d);
            let mut sumi = [i32x4_splat(0); C];
            for h in 0..2 {
                // SAFETY: within the block's 128 + 64 bytes.
                let (ql, qh) = unsafe {
                    let p = b.ql.as_ptr().add(64 * h);
                    let q = b.qh.as_ptr().add(32 * h);
                    (
                        [load(p), load(p.add(16)), load(p.add(32)), load(p.add(48))],
                        [load(q), load(q.add(16))],
                    )
                };
                for k in 0..4 {
                    // Quarter k: nibbles of ql[32 * (k % 2)..], low ones for k < 2; bits 2k of qh.
                    let half = |v: usize| {
                        let n = ql[2 * (k % 2) + v];
                        let n = if k < 2 {
                            v128_and(n, low4)
                        } else {
                            u8x16_shr(n, 4)
                        };
                        let hb = v128_and(u8x16_shl(u8x16_shr(qh[v], 2 * k as u32), 4), two);
                        i8x16_sub(v128_or(n, hb), off)
                    };
                    let (v0, v1) = (half(0), half(1));
                    let s0 = i16x8_splat(b.scales[8 * h + 2 * k] as i8 as i16);
                    let s1 = i16x8_splat(b.scales[8 * h + 2 * k + 1] as i8 as i16);
                    let q = [
                        i16x8_mul(i16x8_extend_low_i8x16(v0), s0),
                        i16x8_mul(i16x8_extend_high_i8x16(v0), s0),
                        i16x8_mul(i16x8_extend_low_i8x16(v1), s1),
                        i16x8_mul(i16x8_extend_high_i8x16(v1), s1),
                    ];
                    for c in 0..C {
                        // SAFETY: within row c (the caller).
                        let p = unsafe { dot32(&q, &x[c], i * QK_K + 128 * h + 32 * k) };
                        sumi[c] = i32x4_add(sumi[c], p);
                    }
                }
            }
            for c in 0..C {
                // SAFETY: block i's scale is within row c (the caller).
                let xd = unsafe { *x[c].d.get_unchecked(i) };
                acc[c] = f32x4_add(
                    acc[c],
                    f32x4_mul(f32x4_splat(d * xd), f32x4_convert_i32x4(sumi[c])),
                );
            }
        }
        let mut out = [0f32; C];
        for c in 0..C {
            out[c] = hsum(acc[c]);
        }
        out
    }
}
