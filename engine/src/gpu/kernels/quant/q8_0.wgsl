// ggml block_q8_0 (34 bytes): f16 d, 32 signed bytes; x = q * d.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let q = w_bytes16(base + 2u + part * 16u);
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = bitcast<i32>(byte_of(q, j) << 24u) >> 24u;
        out[j] = f32(v) * d;
    }
    return out;
}
