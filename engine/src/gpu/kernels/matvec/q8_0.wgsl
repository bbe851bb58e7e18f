// Q8_0: a chunk is a block, two lines of signed bytes and d; no offset.

const CHUNKS: u32 = 1u;
const X_SCALE: f32 = 128.0;

struct Xc {
    v: array<vec4<mt>, 8>,
}

var<private> xc: Xc;

fn x_chunk(xv: u32, c: u32) {
    for (var k = 0u; k < 8u; k++) {
        xc.v[k] = xm(X[xv + k]);
    }
}

fn dot_chunk(pb: u32, g: u32, c: u32) -> f32 {
    let l = (pb * QS_AT + g * QS_LEN) >> 4u;
    let q0 = W[l];
    let q1 = W[l + 1u];
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        s += qdoti(unpack4xI8(q0[k]), xc.v[k]) + qdoti(unpack4xI8(q1[k]), xc.v[4u + k]);
    }
    return field_f16(pb, D_AT, g) * XK * s;
}
