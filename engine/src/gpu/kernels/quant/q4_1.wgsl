// ggml block_q4_1 (20 bytes: f16 d, f16 m, 16 bytes of nibbles, low: 0..16, high: 16..32),
// split into the regions QS and DM (quant.rs); x = q * d + m.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let dm = unpack2x16float(w32(field_word(pb, DM_AT, DM_LEN, g)));
    let q = W[(pb * QS_AT + g * QS_LEN) >> 4u];
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        out[j] = f32((byte_of(q, j) >> shift) & 0xFu) * dm.x + dm.y;
    }
    return out;
}
