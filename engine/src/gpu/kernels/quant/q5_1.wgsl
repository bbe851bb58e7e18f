// ggml block_q5_1 (24 bytes: f16 d, f16 m, u32 qh of fifth bits, 16 bytes of nibbles), split
// into the regions QS, QH and DM (quant.rs); x = q * d + m.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let dm = unpack2x16float(w32(field_word(pb, DM_AT, DM_LEN, g)));
    let qh = w32(field_word(pb, QH_AT, QH_LEN, g)) >> (part * 16u);
    let q = W[(pb * QS_AT + g * QS_LEN) >> 4u];
    let shift = part * 4u;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(q, j) >> shift) & 0xFu) | (((qh >> j) & 1u) << 4u);
        out[j] = f32(v) * dm.x + dm.y;
    }
    return out;
}
