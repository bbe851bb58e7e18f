// Word loaders over the weight binding `W: array<vec4<u32>>` (declared by the generated
// header). Weights are laid out so that every field a kernel reads is whole words and every
// 16-byte run of quants one aligned vec4 (quant.rs: Q4_K/Q5_K and float blocks as in the
// file, the other types' blocks split into one region per field).
//
// The quant-file contract: each quant/<type>.wgsl defines
//   fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16>
// returning the `part`-th 16 elements of block `g` of a weight part of `pb` blocks (block g
// of row r is r * blocks_per_row + b). The generated header gives QK (elements per block),
// BLOCK_BYTES, and for a split layout each field's region (`NAME_AT`: the region starts at
// byte pb * NAME_AT; `NAME_LEN`: bytes per block).

fn w32(i: u32) -> u32 {
    return W[i >> 2u][i & 3u];
}

// The 16-bit half `h` (0 or 1) of word `i`, as an IEEE half; unpack2x16float needs no
// shader-f16.
fn w_f16(i: u32, h: u32) -> f32 {
    return unpack2x16float(w32(i))[h];
}

// Field `NAME` of block g: its first word, for a field of whole words.
fn field_word(pb: u32, at: u32, len: u32, g: u32) -> u32 {
    return (pb * at + g * len) >> 2u;
}

// A 2-byte field (f16 d) of block g: the half it is in its word.
fn field_f16(pb: u32, at: u32, g: u32) -> f32 {
    return w_f16(((pb * at) >> 2u) + (g >> 1u), g & 1u);
}

// Byte j (0..16) of a 16-byte line.
fn byte_of(q: vec4<u32>, j: u32) -> u32 {
    return (q[j >> 2u] >> ((j & 3u) * 8u)) & 0xFFu;
}

// Byte i (0..12) of a Q4_K/Q5_K block's packed scales: words y, z, w of its first line.
fn k4_byte(head: vec4<u32>, i: u32) -> u32 {
    return (head[1u + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xFFu;
}

// ggml's get_scale_min_k4: eight 6-bit (scale, min) pairs in those 12 bytes; pair `j`.
fn scale_min_k4(head: vec4<u32>, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(k4_byte(head, j) & 63u, k4_byte(head, j + 4u) & 63u);
    }
    let a = k4_byte(head, j + 4u);
    return vec2<u32>((a & 0xFu) | ((k4_byte(head, j - 4u) >> 6u) << 4u), (a >> 4u) | ((k4_byte(head, j) >> 6u) << 4u));
}

// Pairs 2c and 2c + 1 at once, with word operations: (scale 2c, scale 2c + 1, min 2c,
// min 2c + 1). Pairs 0..4 are the low 6 bits of bytes 0..4 (scales) and 4..8 (mins); pairs
// 4..8 take 4 bits from bytes 8..12 and their top 2 bits from the top of bytes 0..8.
fn scale_min_k4_pair(head: vec4<u32>, c: u32) -> vec4<f32> {
    let sh = 16u * (c & 1u);
    let a = (head.y >> sh) & 0xFFFFu;
    let b = (head.z >> sh) & 0xFFFFu;
    let e = (head.w >> sh) & 0xFFFFu;
    let low = c < 2u;
    let sc = select((e & 0x0F0Fu) | ((a >> 2u) & 0x3030u), a & 0x3F3Fu, low);
    let mn = select(((e >> 4u) & 0x0F0Fu) | ((b >> 2u) & 0x3030u), b & 0x3F3Fu, low);
    return vec4<f32>(f32(sc & 0xFFu), f32(sc >> 8u), f32(mn & 0xFFu), f32(mn >> 8u));
}
