// ggml block_q6_K (210 bytes): 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 signed
// 8-bit scales, f16 d. Per 128-element half h and 32-element group g: element l reads
// ql[64h + 32(g & 1) + l] (nibble g >> 1), qh[32h + l] bits 2g.., scale[8h + l / 16 + 2g];
// x = d * scale * (q - 32).

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let h = part >> 3u;
    let g = (part >> 1u) & 3u;
    let half = part & 1u;
    let l0 = 16u * half;
    let d = w_f16(base + 208u);
    let sc = bitcast<i32>(w_u8(base + 192u + 8u * h + half + 2u * g) << 24u) >> 24u;
    let ds = d * f32(sc);
    let ql = w_bytes16(base + 64u * h + 32u * (g & 1u) + l0);
    let qh = w_bytes16(base + 128u + 32u * h + l0);
    let nshift = 4u * (g >> 1u);
    let hshift = 2u * g;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(ql, j) >> nshift) & 0xFu) | (((byte_of(qh, j) >> hshift) & 3u) << 4u);
        out[j] = ds * f32(i32(v) - 32);
    }
    return out;
}
