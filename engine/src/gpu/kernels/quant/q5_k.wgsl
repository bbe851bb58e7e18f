// ggml block_q5_K (176 bytes): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, 32 bytes
// qh, 128 bytes of nibbles. Laid out like Q4_K; element l of 64-chunk c takes its fifth bit
// from qh[l] bit 2c (low nibbles) or 2c + 1 (high nibbles).

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    let d = w_f16(base);
    let dmin = w_f16(base + 2u);
    let chunk = part >> 2u;
    let hi = (part >> 1u) & 1u;
    let l0 = 16u * (part & 1u);
    let sm = scale_min_k4(base + 4u, 2u * chunk + hi);
    let d1 = d * f32(sm.x);
    let m1 = dmin * f32(sm.y);
    let ql = w_bytes16(base + 48u + 32u * chunk + l0);
    let qh = w_bytes16(base + 16u + l0);
    let shift = 4u * hi;
    let bit = 2u * chunk + hi;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let v = ((byte_of(ql, j) >> shift) & 0xFu) + (((byte_of(qh, j) >> bit) & 1u) << 4u);
        out[j] = d1 * f32(v) - m1;
    }
    return out;
}
