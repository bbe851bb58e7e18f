// ggml block_q4_0 (18 bytes): f16 d, then 16 bytes whose low nibbles are elements 0..16 and
// high nibbles elements 16..32; x = (q - 8) * d.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let q = w_bytes16(base + 2u);
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = (f32((byte_of(q, j) >> shift) & 0xFu) - 8.0) * d;
    }
    return out;
}
