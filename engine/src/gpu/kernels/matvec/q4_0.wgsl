// Q4_0: a chunk is a block, one line of nibbles (word k: elements 4k.. in its low nibbles,
// 16 + 4k.. in its high ones) and d; the -8 offset is applied through the sum of x.

const CHUNKS: u32 = 1u;
const X_SCALE: f32 = 16.0;

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
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        s += qdot(unpack4xU8(q[k] & NIB), xc.v[k]) + qdot(unpack4xU8((q[k] >> 4u) & NIB), xc.v[4u + k]);
    }
    return field_f16(pb, D_AT, g) * XK * (s - 8.0 * xc.s);
}
