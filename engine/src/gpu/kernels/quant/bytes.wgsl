// Byte loaders over the weight binding `W: array<u32>` (declared by the generated header). Most ggml
// blocks (18, 20, 22, 34, 210 bytes) are not 4-byte aligned, and neither are some row starts,
// so blocks are read at byte offsets and reassembled with shifts. Reads may touch the word after
// the last byte needed; parts are padded to 4 bytes so that word is inside the buffer.
//
// The quant-file contract: each quant/<type>.wgsl defines
//   fn dequant16(base: u32, part: u32) -> array<f32, 16>
// returning the `part`-th 16 elements of the block at byte offset `base`; the generated
// header gives QK (elements per block) and BLOCK_BYTES from the type table.

fn w_u8(off: u32) -> u32 {
    return (W[off >> 2u] >> ((off & 3u) * 8u)) & 0xFFu;
}

fn w_u16(off: u32) -> u32 {
    let i = off >> 2u;
    let s = (off & 3u) * 8u;
    if (s == 24u) {
        return (W[i] >> 24u) | ((W[i + 1u] & 0xFFu) << 8u);
    }
    return (W[i] >> s) & 0xFFFFu;
}

fn w_u32(off: u32) -> u32 {
    let i = off >> 2u;
    let s = (off & 3u) * 8u;
    if (s == 0u) {
        return W[i];
    }
    return (W[i] >> s) | (W[i + 1u] << (32u - s));
}

// An IEEE half at a byte offset; unpack2x16float needs no shader-f16.
fn w_f16(off: u32) -> f32 {
    return unpack2x16float(w_u16(off)).x;
}

// 16 bytes at any byte offset, as four little-endian words.
fn w_bytes16(off: u32) -> vec4<u32> {
    let i = off >> 2u;
    let s = (off & 3u) * 8u;
    let a = W[i];
    let b = W[i + 1u];
    let c = W[i + 2u];
    let d = W[i + 3u];
    if (s == 0u) {
        return vec4<u32>(a, b, c, d);
    }
    let e = W[i + 4u];
    let r = 32u - s;
    return vec4<u32>((a >> s) | (b << r), (b >> s) | (c << r), (c >> s) | (d << r), (d >> s) | (e << r));
}

// Byte j (0..16) of a 16-byte group.
fn byte_of(q: vec4<u32>, j: u32) -> u32 {
    return (q[j >> 2u] >> ((j & 3u) * 8u)) & 0xFFu;
}

// ggml's get_scale_min_k4 for Q4_K/Q5_K: eight 6-bit (scale, min) pairs packed in 12 bytes
// at `off`; returns pair `j`.
fn scale_min_k4(off: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(w_u8(off + j) & 63u, w_u8(off + j + 4u) & 63u);
    }
    let a = w_u8(off + j + 4u);
    return vec2<u32>((a & 0xFu) | ((w_u8(off + j - 4u) >> 6u) << 4u), (a >> 4u) | ((w_u8(off + j) >> 6u) << 4u));
}
