// F16 weights in 16-element groups (32 bytes, two lines). unpack2x16float decodes halves
// without the shader-f16 feature.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    for (var l = 0u; l < 2u; l++) {
        let q = W[2u * g + l];
        for (var k = 0u; k < 4u; k++) {
            let v = unpack2x16float(q[k]);
            out[8u * l + 2u * k] = v.x;
            out[8u * l + 2u * k + 1u] = v.y;
        }
    }
    return out;
}
