// BF16 weights in 16-element groups: a bf16 is the top half of an f32's bits.

fn dequant16(base: u32, part: u32) -> array<f32, 16> {
    var out: array<f32, 16>;
    let i = base >> 2u;
    for (var k = 0u; k < 8u; k++) {
        let w = W[i + k];
        out[2u * k] = bitcast<f32>(w << 16u);
        out[2u * k + 1u] = bitcast<f32>(w & 0xFFFF0000u);
    }
    return out;
}
