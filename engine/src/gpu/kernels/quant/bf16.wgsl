// BF16 weights in 16-element groups (32 bytes, two lines): a bf16 is the top half of an
// f32's bits.

fn dequant16(pb: u32, g: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    for (var l = 0u; l < 2u; l++) {
        let q = W[2u * g + l];
        for (var k = 0u; k < 4u; k++) {
            out[8u * l + 2u * k] = bitcast<f32>(q[k] << 16u);
            out[8u * l + 2u * k + 1u] = bitcast<f32>(q[k] & 0xFFFF0000u);
        }
    }
    return out;
}
