// ggml block_q4_K (144 bytes, 9 lines, as in the file): line 0 = f16 d, f16 dmin and 12
// bytes of 6-bit (scale, min) pairs; lines 1..9 = 128 bytes of nibbles. Each 64 elements use
// 32 bytes: low nibbles with pair 2c, high nibbles with pair 2c + 1; x = d * scale * q -
// dmin * min.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let head = W[g * 9u];
    let dm = unpack2x16float(head.x);
    let chunk = part >> 2u;
    let hi = (part >> 1u) & 1u;
    let sm = scale_min_k4(head, 2u * chunk + hi);
    let d1 = dm.x * f32(sm.x);
    let m1 = dm.y * f32(sm.y);
    let q = W[g * 9u + 1u + 2u * chunk + (part & 1u)];
    let shift = 4u * hi;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = d1 * f32((byte_of(q, j) >> shift) & 0xFu) - m1;
    }
    return out;
}
