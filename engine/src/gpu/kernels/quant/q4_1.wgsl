// ggml block_q4_1 (20 bytes): f16 d, f16 m, 16 bytes of nibbles (low: 0..16, high: 16..32);
// x = q * d + m.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let m = w_f16(base + 2u);
    let q = w_bytes16(base + 4u);
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = f32((byte_of(q, j) >> shift) & 0xFu) * d + m;
    }
    return out;
}
