// ggml block_q5_0 (22 bytes): f16 d, u32 qh (bit e is the fifth bit of element e), 16 bytes of
// nibbles (low: 0..16, high: 16..32); x = (q - 16) * d.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let qh = w_u32(base + 2u) >> (part * 16u);
    let q = w_bytes16(base + 6u);
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(q, j) >> shift) & 0xFu) | (((qh >> j) & 1u) << 4u);
        out[j] = (f32(v) - 16.0) * d;
    }
    return out;
}
