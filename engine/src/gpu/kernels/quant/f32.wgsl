// F32 weights, decoded in 16-element groups (64 bytes, four lines) so they share the
// quantized skeletons.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    for (var l = 0u; l < 4u; l++) {
        let q = bitcast<vec4<f32>>(W[4u * g + l]);
        for (var k = 0u; k < 4u; k++) {
            out[4u * l + k] = q[k];
        }
    }
    return out;
}
