// Q5_1: as Q5_0, with the min m added through the sum of x.

const CHUNKS: u32 = 1u;
const X_SCALE: f32 = 32.0;

struct Xc {
    v: array<vec4<mt>, 8>,
    s: f32,
}

var<private> xc: Xc;

fn x_chunk(xv: u32, c: u32) {
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < 8u; k++) {
        let v = X[xv + k];
        xc.v[k] = xm(v);
        s += xs(xc.v[k]);
    }
    xc.s = hsum(s);
}

fn dot_chunk(pb: u32, g: u32, c: u32) -> f32 {
    let q = W[(pb * QS_AT + g * QS_LEN) >> 4u];
    let qh = w32(field_word(pb, QH_AT, QH_LEN, g));
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let lo = (q[k] & NIB) | (spread4(qh >> (4u * k)) << 4u);
        let hi = ((q[k] >> 4u) & NIB) | (spread4(qh >> (16u + 4u * k)) << 4u);
        s += qdot(unpack4xU8(lo), xc.v[k]) + qdot(unpack4xU8(hi), xc.v[4u + k]);
    }
    let dm = unpack2x16float(w32(field_word(pb, DM_AT, DM_LEN, g)));
    return XK * (dm.x * s + dm.y * xc.s);
}
