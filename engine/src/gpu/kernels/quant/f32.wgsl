// F32 weights, decoded in 16-element groups so they share the quantized skeletons.
// Rows are K * 4 bytes, so every group is word aligned.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    let i = base >> 2u;
    for (var k = 0u; k < 16u; k++) {
        out[k] = bitcast<f32>(W[i + k]);
    }
    return out;
}
