// Q4_K: chunk c (8 per block) is line 1 + c, 16 bytes of nibbles: elements 16h..16h + 16
// (h = c % 2) of sub-blocks 2j (low nibbles) and 2j + 1 (high nibbles), j = c / 2. A thread
// reads that line and the block's first line (d, dmin, the packed scales), decodes the two
// sub-blocks' scales and mins once, and applies the mins through the sums of its x.

const CHUNKS: u32 = 8u;
const X_SCALE: f32 = 16.0;

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
    let head = W[g * 9u];
    let q = W[g * 9u + 1u + c];
    let sm = scale_min_k4_pair(head, c >> 1u);
    let dm = unpack2x16float(head.x);
    var lo = 0.0;
    var hi = 0.0;
    for (var k = 0u; k < 4u; k++) {
        lo += qdot(unpack4xU8(q[k] & NIB), xc.lo[k]);
        hi += qdot(unpack4xU8((q[k] >> 4u) & NIB), xc.hi[k]);
    }
    return XK * (dm.x * (sm.x * lo + sm.y * hi) - dm.y * (sm.z * xc.s.x + sm.w * xc.s.y));
}
