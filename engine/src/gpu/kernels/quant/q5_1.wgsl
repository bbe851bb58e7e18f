// ggml block_q5_1 (24 bytes): f16 d, f16 m, u32 qh (fifth bits), 16 bytes of nibbles;
// x = q * d + m.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let m = w_f16(base + 2u);
    let qh = w_u32(base + 4u) >> (part * 16u);
    let q = w_bytes16(base + 8u);
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(q, j) >> shift) & 0xFu) | (((qh >> j) & 1u) << 4u);
        out[j] = f32(v) * d + m;
    }
    return out;
}
