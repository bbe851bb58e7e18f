// ggml block_q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, 128
// bytes of nibbles. Each 64 elements use 32 bytes: low nibbles with pair 2c, high nibbles with
// pair 2c + 1; x = d * scale * q - dmin * min.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let dmin = w_f16(base + 2u);
    let chunk = part >> 2u;
    let hi = (part >> 1u) & 1u;
    let sm = scale_min_k4(base + 4u, 2u * chunk + hi);
    let d1 = d * f32(sm.x);
    let m1 = dmin * f32(sm.y);
    let q = w_bytes16(base + 16u + 32u * chunk + 16u * (part & 1u));
    let shift = 4u * hi;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = d1 * f32((byte_of(q, j) >> shift) & 0xFu) - m1;
    }
    return out;
}
