// The mat-vec chunk contract over `dequant16`, for the types without a dedicated file (the
// float types): a chunk is one 16-element part, in f32.

const CHUNKS: u32 = QK / 16u;

struct Xc {
    v: array<vec4<f32>, 4>,
}

var<private> xc: Xc;

fn x_chunk(xv: u32, c: u32) {
    let a = xv + 4u * c;
    xc = Xc(array<vec4<f32>, 4>(X[a], X[a + 1u], X[a + 2u], X[a + 3u]));
}

fn dot_chunk(pb: u32, g: u32, c: u32) -> f32 {
    let w = dequant16(pb, g, c);
    return dot(vec4<f32>(w[0], w[1], w[2], w[3]), xc.v[0]) + dot(vec4<f32>(w[4], w[5], w[6], w[7]), xc.v[1])
        + dot(vec4<f32>(w[8], w[9], w[10], w[11]), xc.v[2]) + dot(vec4<f32>(w[12], w[13], w[14], w[15]), xc.v[3]);
}
