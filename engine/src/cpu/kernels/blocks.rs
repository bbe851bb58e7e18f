//! GGUF block layouts (ggml-common.h) as byte structs, f16 scales, and the scalar
//! dequantizers that the tests hold every kernel against.
//!
//! Every field is a byte array, so each struct has alignment 1 and a row of blocks can be
//! viewed in place at any offset of the file's bytes (`bytemuck::cast_slice`); the sizes are
//! pinned below against ggml's.

use bytemuck::{Pod, Zeroable};

/// Values per block of the legacy types (Q4_0 ... Q8_0).
pub const QK: usize = 32;
/// Values per super-block of the k-quants.
pub const QK_K: usize = 256;

/// `d * (q - 8)`, q a nibble: element j < 16 is the low nibble of `qs[j]`, j + 16 the high.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// `d * q + m`, nibbles as in Q4_0.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; 16],
}

/// `d * (q - 16)`, q five bits: the nibble as in Q4_0 plus bit j of `qh` as its fifth bit.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// `d * q + m`, q five bits as in Q5_0.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// `d * q`, q a signed byte.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [u8; 32],
}

/// 8 sub-blocks of 32: `d * sc[j] * q - dmin * m[j]`, six-bit scales and mins packed in
/// `scales` ([`scale_min_k4`]); for each 64 values, 32 bytes whose low nibbles are the first
/// 32 values and high nibbles the next 32.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

/// Q4_K plus a fifth bit: bit 2j of `qh[l]` for value 64j + l, bit 2j+1 for 64j + 32 + l.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// 16 sub-blocks of 16: `d * scales[i] * (q - 32)`, q six bits: per 128 values, the low
/// nibbles of 64 `ql` bytes and two bits of 32 `qh` bytes ([`dequantize_q6k`]).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [u8; 16],
    pub d: [u8; 2],
}

const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<BlockQ4_0>() == 18);
    assert!(size_of::<BlockQ4_1>() == 20);
    assert!(size_of::<BlockQ5_0>() == 22);
    assert!(size_of::<BlockQ5_1>() == 24);
    assert!(size_of::<BlockQ8_0>() == 34);
    assert!(size_of::<BlockQ4K>() == 144);
    assert!(size_of::<BlockQ5K>() == 176);
    assert!(size_of::<BlockQ6K>() == 210);
    assert!(align_of::<BlockQ6K>() == 1);
};

/// IEEE half to single, exact for every finite half (subnormals included).
#[inline(always)]
pub fn f16_to_f32(h: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(h) as u32;
    // Shift exponent and mantissa into place and rescale by 2^(127-15): exact, as every
    // half (subnormals too) is a normal f32. Exponent 31 (inf/NaN) maps to exponent 255.
    let magnitude = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    let magnitude = if h & 0x7c00 == 0x7c00 {
        f32::from_bits(0x7f80_0000 | ((h & 0x3ff) << 13))
    } else {
        magnitude
    };
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// Scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block (ggml `get_scale_min_k4`).
#[inline(always)]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The 8 scales then the 8 mins of a Q4_K/Q5_K block.
#[inline(always)]
pub fn scales_mins_k4(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        (sc[j], mn[j]) = scale_min_k4(j, s);
    }
    (sc, mn)
}

pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut Vec<f32>) {
    for b in blocks {
        let d = f16_to_f32(b.d);
        let lo = b.qs.map(|q| d * ((q & 0x0f) as i32 - 8) as f32);
        let hi = b.qs.map(|q| d * ((q >> 4) as i32 - 8) as f32);
        out.extend_from_slice(&lo);
        out.extend_from_slice(&hi);
    }
}

pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut Vec<f32>) {
    for b in blocks {
        let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
        let lo = b.qs.map(|q| d * (q & 0x0f) as f32 + m);
        let hi = b.qs.map(|q| d * (q >> 4) as f32 + m);
        out.extend_from_slice(&lo);
        out.extend_from_slice(&hi);
    }
}

/// Q5_0/Q5_1 values 0..32 of one block, before scale and offset.
fn q5_values(qh: [u8; 4], qs: &[u8; 16]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

pub fn dequantize_q5_0(blocks: &[BlockQ5_0], out: &mut Vec<f32>) {
    for b in blocks {
        let d = f16_to_f32(b.d);
        out.extend(q5_values(b.qh, &b.qs).map(|q| d * (q as i32 - 16) as f32));
    }
}

pub fn dequantize_q5_1(blocks: &[BlockQ5_1], out: &mut Vec<f32>) {
    for b in blocks {
        let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
        out.extend(q5_values(b.qh, &b.qs).map(|q| d * q as f32 + m));
    }
}

pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut Vec<f32>) {
    for b in blocks {
        let d = f16_to_f32(b.d);
        out.extend(b.qs.map(|q| d * q as i8 as f32));
    }
}

pub fn dequantize_q4k(blocks: &[BlockQ4K], out: &mut Vec<f32>) {
    for b in blocks {
        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        for j in 0..4 {
            let (s1, m1) = scale_min_k4(2 * j, &b.scales);
            let (s2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let qs = &b.qs[32 * j..32 * j + 32];
            let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
            out.extend(qs.iter().map(|&q| d1 * (q & 0x0f) as f32 - m1));
            out.extend(qs.iter().map(|&q| d2 * (q >> 4) as f32 - m2));
        }
    }
}

pub fn dequantize_q5k(blocks: &[BlockQ5K], out: &mut Vec<f32>) {
    for b in blocks {
        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        for j in 0..4 {
            let (s1, m1) = scale_min_k4(2 * j, &b.scales);
            let (s2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let qs = &b.qs[32 * j..32 * j + 32];
            let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
            let high = |l: usize, bit: usize| (((b.qh[l] >> bit) & 1) << 4) as f32;
            out.extend((0..32).map(|l| d1 * ((qs[l] & 0x0f) as f32 + high(l, 2 * j)) - m1));
            out.extend((0..32).map(|l| d2 * ((qs[l] >> 4) as f32 + high(l, 2 * j + 1)) - m2));
        }
    }
}

pub fn dequantize_q6k(blocks: &[BlockQ6K], out: &mut Vec<f32>) {
    for b in blocks {
        let d = f16_to_f32(b.d);
        for half in 0..2 {
            let ql = &b.ql[64 * half..64 * half + 64];
            let qh = &b.qh[32 * half..32 * half + 32];
            let sc = &b.scales[8 * half..8 * half + 8];
            let mut v = [0f32; 128];
            for l in 0..32 {
                let is = l / 16;
                let q = [
                    (ql[l] & 0x0f) | ((qh[l] & 3) << 4),
                    (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4),
                    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                ];
                for (i, q) in q.into_iter().enumerate() {
                    let s = sc[is + 2 * i] as i8 as f32;
                    v[l + 32 * i] = d * s * (q as i32 - 32) as f32;
                }
            }
            out.extend_from_slice(&v);
        }
    }
}
