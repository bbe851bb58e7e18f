// ggml block_q4_0 (18 bytes: f16 d, 16 bytes whose low nibbles are elements 0..16 and high
// nibbles elements 16..32), split into the regions QS and D (quant.rs); x = (q - 8) * d.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let d = field_f16(pb, D_AT, g);
    let q = W[(pb * QS_AT + g * QS_LEN) >> 4u];
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = (f32((byte_of(q, j) >> shift) & 0xFu) - 8.0) * d;
    }
    return out;
}
