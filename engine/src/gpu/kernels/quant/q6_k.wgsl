// ggml block_q6_K (210 bytes: ql[128] low 4 bits, qh[64] high 2 bits, 16 signed 8-bit scales,
// f16 d), split into the regions QL, QH, SC and D (quant.rs). Per 128-element half h and
// 32-element group g: element l reads ql[64h + 32(g & 1) + l] (nibble g >> 1), qh[32h + l]
// bits 2g.., scale[8h + l / 16 + 2g]; x = d * scale * (q - 32).

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let h = part >> 3u;
    let gq = (part >> 1u) & 3u;
    let half = part & 1u;
    let d = field_f16(pb, D_AT, g);
    let sc_line = W[(pb * SC_AT + g * SC_LEN) >> 4u];
    let si = 8u * h + half + 2u * gq;
    let sc = bitcast<i32>(byte_of(sc_line, si) << 24u) >> 24u;
    let ds = d * f32(sc);
    let ql = W[((pb * QL_AT + g * QL_LEN) >> 4u) + 4u * h + 2u * (gq & 1u) + half];
    let qh = W[((pb * QH_AT + g * QH_LEN) >> 4u) + 2u * h + half];
    let nshift = 4u * (gq >> 1u);
    let hshift = 2u * gq;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(ql, j) >> nshift) & 0xFu) | (((byte_of(qh, j) >> hshift) & 3u) << 4u);
        out[j] = ds * f32(i32(v) - 32);
    }
    return out;
}
