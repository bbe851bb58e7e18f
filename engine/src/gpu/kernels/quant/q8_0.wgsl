// ggml block_q8_0 (34 bytes: f16 d, 32 signed bytes), split into the regions QS and D
// (quant.rs); x = q * d.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let d = field_f16(pb, D_AT, g);
    let q = W[((pb * QS_AT + g * QS_LEN) >> 4u) + part];
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = bitcast<i32>(byte_of(q, j) << 24u) >> 24u;
        out[j] = f32(v) * d;
    }
    return out;
}
