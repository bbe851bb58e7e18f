// ggml block_q5_K (176 bytes, 11 lines, as in the file): line 0 = f16 d, f16 dmin, 12 bytes
// of 6-bit (scale, min) pairs; lines 1..3 = 32 bytes qh; lines 3..11 = 128 bytes of nibbles.
// Laid out like Q4_K; element l of 64-chunk c takes its fifth bit from qh[l] bit 2c (low
// nibbles) or 2c + 1 (high nibbles).

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    let v = g * 11u;
    let head = W[v];
    let dm = unpack2x16float(head.x);
    let chunk = part >> 2u;
    let hi = (part >> 1u) & 1u;
    let sm = scale_min_k4(head, 2u * chunk + hi);
    let d1 = dm.x * f32(sm.x);
    let m1 = dm.y * f32(sm.y);
    let ql = W[v + 3u + 2u * chunk + (part & 1u)];
    let qh = W[v + 1u + (part & 1u)];
    let shift = 4u * hi;
    let bit = 2u * chunk + hi;
    var out: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let q = ((byte_of(ql, j) >> shift) & 0xFu) + (((byte_of(qh, j) >> bit) & 1u) << 4u);
        out[j] = d1 * f32(q) - m1;
    }
    return out;
}
