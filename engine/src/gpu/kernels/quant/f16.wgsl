// F16 weights in 16-element groups; K is a multiple of 16, so groups are word aligned.
// unpack2x16float decodes halves without the shader-f16 feature.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    let i = base >> 2u;
    for (var k = 0u; k < 8u; k++) {
        let v = unpack2x16float(W[i + k]);
        out[2u * k] = v.x;
        out[2u * k + 1u] = v.y;
    }
    return out;
}
