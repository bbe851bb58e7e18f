//! Portable kernels: the fallback on CPUs without the SIMD sets below, and the exact
//! definition of what every kernel computes. Per block, the integer sum of weight times
//! activation bytes is exact; it is scaled in f32 (weight scale times activation scale, then
//! times the sum) and the block results are added in order. The SIMD kernels compute the
//! same integers and differ only in how they add the f32 terms (lanes, then a horizontal
//! sum), so they agree to rounding.

use super::act::XRow;
use super::blocks::*;
use super::gemm::RowDot;

/// Sum over one 32-value block of `w[i] * x[i]`.
#[inline(always)]
fn isum(w: &[i32; 32], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&w, &x)| w * x as i32).sum()
}

/// Nibbles of a legacy block: element j < 16 from the low nibbles, j + 16 the high.
#[inline(always)]
fn nibbles(qs: &[u8; 16]) -> [i32; 32] {
    std::array::from_fn(|j| {
        if j < 16 {
            (qs[j] & 0x0f) as i32
        } else {
            (qs[j - 16] >> 4) as i32
        }
    })
}

#[inline(always)]
fn fifth_bits(qh: [u8; 4], q: &mut [i32; 32]) {
    let qh = u32::from_le_bytes(qh);
    for (j, q) in q.iter_mut().enumerate() {
        *q |= (((qh >> j) & 1) << 4) as i32;
    }
}

/// `d_w * d_x * isum (+ m_w * s_x)` per block, in block order.
macro_rules! legacy_kernel {
    ($name:ident, $block:ty, |$b:ident| $values:expr, $min:expr) => {
        pub struct $name;
        impl RowDot for $name {
            type Block = $block;
            #[inline]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                let mut acc = [0f32; C];
                for (i, $b) in w.iter().enumerate() {
                    let q: [i32; 32] = $values;
                    let d = f16_to_f32($b.d);
                    let m: Option<f32> = $min;
                    for c in 0..C {
                        let xq = &x[c].qs[i * QK..(i + 1) * QK];
                        let mut v = (d * x[c].d[i]) * isum(&q, xq) as f32;
                        if let Some(m) = m {
                            v += m * x[c].s[i];
                        }
                        acc[c] += v;
                    }
                }
                acc
            }
        }
    };
}

legacy_kernel!(Q4_0, BlockQ4_0, |b| nibbles(&b.qs).map(|q| q - 8), None);
legacy_kernel!(Q4_1, BlockQ4_1, |b| nibbles(&b.qs), Some(f16_to_f32(b.m)));
legacy_kernel!(
    Q5_0,
    BlockQ5_0,
    |b| {
        let mut q = nibbles(&b.qs);
        fifth_bits(b.qh, &mut q);
        q.map(|q| q - 16)
    },
    None
);
legacy_kernel!(
    Q5_1,
    BlockQ5_1,
    |b| {
        let mut q = nibbles(&b.qs);
        fifth_bits(b.qh, &mut q);
        q
    },
    Some(f16_to_f32(b.m))
);
legacy_kernel!(Q8_0, BlockQ8_0, |b| b.qs.map(|q| q as i8 as i32), None);

/// The k-quants: per super-block `d_x * (d * isum - dmin * msum)`, where `isum` sums each
/// sub-block's integer dot times its scale and `msum` each sub-block's activation sum
/// times its min (Q6_K: no min; its offset of 32 is part of the values).
macro_rules! k_kernel {
    ($name:ident, $block:ty, $values:ident, $sum:ident) => {
        pub struct $name;
        impl RowDot for $name {
            type Block = $block;
            #[inline]
            unsafe fn dot<const C: usize>(w: &[$block], x: &[XRow<'_>; C]) -> [f32; C] {
                let mut acc = [0f32; C];
                for (i, b) in w.iter().enumerate() {
                    let q = $values(b);
                    for c in 0..C {
                        let xq = &x[c].qs[i * QK_K..(i + 1) * QK_K];
                        let bs = &x[c].bsums[i * 16..(i + 1) * 16];
                        acc[c] += x[c].d[i] * $sum(b, &q, xq, bs);
                    }
                }
                acc
            }
        }
    };
}

/// Q4_K/Q5_K: `d * sum_j sc_j * dot_j - dmin * sum_j m_j * xsum_j` over 8 sub-blocks.
#[inline(always)]
fn k4_sum(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; 12],
    q: &[i32; 256],
    xq: &[i8],
    bs: &[i16],
) -> f32 {
    let (sc, mn) = scales_mins_k4(scales);
    let mut isum = 0i32;
    let mut msum = 0i32;
    for j in 0..8 {
        let dot: i32 = (0..32).map(|l| q[32 * j + l] * xq[32 * j + l] as i32).sum();
        isum += sc[j] as i32 * dot;
        msum += mn[j] as i32 * (bs[2 * j] as i32 + bs[2 * j + 1] as i32);
    }
    f16_to_f32(d) * isum as f32 - f16_to_f32(dmin) * msum as f32
}

fn q4k_sum(b: &BlockQ4K, q: &[i32; 256], xq: &[i8], bs: &[i16]) -> f32 {
    k4_sum(b.d, b.dmin, &b.scales, q, xq, bs)
}

fn q5k_sum(b: &BlockQ5K, q: &[i32; 256], xq: &[i8], bs: &[i16]) -> f32 {
    k4_sum(b.d, b.dmin, &b.scales, q, xq, bs)
}

fn q6k_sum(b: &BlockQ6K, q: &[i32; 256], xq: &[i8], _bs: &[i16]) -> f32 {
    let mut isum = 0i32;
    for i in 0..16 {
        let dot: i32 = (0..16).map(|l| q[16 * i + l] * xq[16 * i + l] as i32).sum();
        isum += b.scales[i] as i8 as i32 * dot;
    }
    f16_to_f32(b.d) * isum as f32
}

fn q4k_values(b: &BlockQ4K) -> [i32; 256] {
    std::array::from_fn(|i| {
        let (j, l) = (i / 64, i % 64);
        let q = b.qs[32 * j + l % 32];
        (if l < 32 { q & 0x0f } else { q >> 4 }) as i32
    })
}

fn q5k_values(b: &BlockQ5K) -> [i32; 256] {
    std::array::from_fn(|i| {
        let (j, l) = (i / 64, i % 64);
        let q = b.qs[32 * j + l % 32];
        let (lo, bit) = if l < 32 {
            (q & 0x0f, 2 * j)
        } else {
            (q >> 4, 2 * j + 1)
        };
        (lo | (((b.qh[l % 32] >> bit) & 1) << 4)) as i32
    })
}

fn q6k_values(b: &BlockQ6K) -> [i32; 256] {
    std::array::from_fn(|i| {
        let (half, r) = (i / 128, i % 128);
        let (quarter, l) = (r / 32, r % 32);
        let ql = b.ql[64 * half + l + 32 * (quarter % 2)];
        let lo = if quarter < 2 { ql & 0x0f } else { ql >> 4 };
        let hi = (b.qh[32 * half + l] >> (2 * quarter)) & 3;
        (lo | (hi << 4)) as i32 - 32
    })
}

k_kernel!(Q4K, BlockQ4K, q4k_values, q4k_sum);
k_kernel!(Q5K, BlockQ5K, q5k_values, q5k_sum);
k_kernel!(Q6K, BlockQ6K, q6k_values, q6k_sum);
