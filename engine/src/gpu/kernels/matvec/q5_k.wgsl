// Q5_K: chunks as Q4_K's (line 3 + c of nibbles); the fifth bits of the chunk's 16 byte
// positions are one qh line (1 + c % 2), bit 2j for the low nibbles and 2j + 1 for the high.

const CHUNKS: u32 = 8u;
const X_SCALE: f32 = 32.0;

struct Xc {
    lo: array<vec4<mt>, 4>,
    hi: array<vec4<mt>, 4>,
    s: vec2<f32>,
}

var<private> xc: Xc;

fn x_chunk(xv: u32, c: u32) {
    let a = xv + 16u * (c >> 1u) + 4u * (c & 1u);
    var sl = vec4<f32>(0.0);
    var sh = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        let l = X[a + k];
        let h = X[a + 8u + k];
        xc.lo[k] = xm(l);
        xc.hi[k] = xm(h);
        sl += xs(xc.lo[k]);
        sh += xs(xc.hi[k]);
    }
    xc.s = vec2<f32>(hsum(sl), hsum(sh));
}

fn dot_chunk(pb: u32, g: u32, c: u32) -> f32 {
    let v = g * 11u;
    let head = W[v];
    let q = W[v + 3u + c];
    let qh = W[v + 1u + (c & 1u)];
    let j = c >> 1u;
    let sm = scale_min_k4_pair(head, j);
    let dm = unpack2x16float(head.x);
    var lo = 0.0;
    var hi = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let b = qh[k] >> (2u * j);
        lo += qdot(unpack4xU8((q[k] & NIB) | ((b & 0x01010101u) << 4u)), xc.lo[k]);
        hi += qdot(unpack4xU8(((q[k] >> 4u) & NIB) | (((b >> 1u) & 0x01010101u) << 4u)), xc.hi[k]);
    }
    return XK * (dm.x * (sm.x * lo + sm.y * hi) - dm.y * (sm.z * xc.s.x + sm.w * xc.s.y));
}
