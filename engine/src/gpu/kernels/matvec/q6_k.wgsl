// Q6_K: chunk c (4 per block) covers positions l = 16m..16m + 16 (m = c % 2) of half
// h = c / 2 in all four 32-element groups: 64 elements from three lines, the ql line at
// 64h + 16m (groups 0 and 2 in its low and high nibbles), the one 32 bytes on (groups 1 and 3)
// and the qh line at 32h + 16m (two bits per group), plus the block's four scales for them
// (one line) and d. The -32 offset is applied through the sums of x.

const CHUNKS: u32 = 4u;
const X_SCALE: f32 = 64.0;

struct Xc {
    v: array<vec4<mt>, 16>,
    s: vec4<f32>,
}

var<private> xc: Xc;

fn x_chunk(xv: u32, c: u32) {
    let a = xv + 32u * (c >> 1u) + 4u * (c & 1u);
    var s = vec4<f32>(0.0);
    for (var gq = 0u; gq < 4u; gq++) {
        var t = vec4<f32>(0.0);
        for (var k = 0u; k < 4u; k++) {
            let v = X[a + 8u * gq + k];
            xc.v[4u * gq + k] = xm(v);
            t += xs(xc.v[4u * gq + k]);
        }
        s[gq] = hsum(t);
    }
    xc.s = s;
}

fn dot_chunk(pb: u32, g: u32, c: u32) -> f32 {
    let h = c >> 1u;
    let m = c & 1u;
    let ql = ((pb * QL_AT + g * QL_LEN) >> 4u) + 4u * h + m;
    let qa = W[ql];
    let qb = W[ql + 2u];
    let qh = W[((pb * QH_AT + g * QH_LEN) >> 4u) + 2u * h + m];
    let scl = W[(pb * SC_AT + g * SC_LEN) >> 4u];
    // Scales 8h + m + 2gq: bytes m and m + 2 of words 2h and 2h + 1.
    let s0 = unpack4xI8(scl[2u * h] >> (8u * m));
    let s1 = unpack4xI8(scl[2u * h + 1u] >> (8u * m));
    let sc = vec4<f32>(f32(s0.x), f32(s0.z), f32(s1.x), f32(s1.z));
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        let hb = qh[k];
        acc.x += qdot(unpack4xU8((qa[k] & NIB) | ((hb << 4u) & 0x30303030u)), xc.v[k]);
        acc.y += qdot(unpack4xU8((qb[k] & NIB) | ((hb << 2u) & 0x30303030u)), xc.v[4u + k]);
        acc.z += qdot(unpack4xU8(((qa[k] >> 4u) & NIB) | (hb & 0x30303030u)), xc.v[8u + k]);
        acc.w += qdot(unpack4xU8(((qb[k] >> 4u) & NIB) | ((hb >> 2u) & 0x30303030u)), xc.v[12u + k]);
    }
    let d = field_f16(pb, D_AT, g);
    return d * XK * (dot(sc, acc) - 32.0 * dot(sc, xc.s));
}
