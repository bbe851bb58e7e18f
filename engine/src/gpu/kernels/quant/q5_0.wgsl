// ggml block_q5_0 (22 bytes: f16 d, u32 qh whose bit e is the fifth bit of element e, 16 bytes
// of nibbles, low: 0..16, high: 16..32), split into the regions QS, QH and D (quant.rs);
// x = (q - 16) * d.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let d = field_f16(pb, D_AT, g);
    let qh = w32(field_word(pb, QH_AT, QH_LEN, g)) >> (part * 16u);
    let q = W[(pb * QS_AT + g * QS_LEN) >> 4u];
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(q, j) >> shift) & 0xFu) | (((qh >> j) & 1u) << 4u);
        out[j] = (f32(v) - 16.0) * d;
    }
    return out;
}
