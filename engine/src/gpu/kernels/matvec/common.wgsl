// Shared by the dedicated mat-vec chunk files (see matvec.wgsl for the contract).
//
// Quants enter a dot product as small integers (whole words unpacked four at a time) and
// each block's or sub-block's scale multiplies the finished sum once; an offset or min
// multiplies the sum of the x it applies to (`hsum`, taken once per chunk for all the rows a
// thread reads). On the f16 path (`mt` = f16) the four-term products run in f16 on x scaled
// by 1 / X_SCALE, a power of two at least the quants' range (so |q x / X_SCALE| <= |x| and a
// four-term sum stays far inside f16's range), each sum widened to f32 at once; the sums
// for offsets are taken over the same rounded x (`xs`), so an offset cancels exactly the
// part of the products it should.

const XK: f32 = select(1.0, X_SCALE, F16);

fn xm(v: vec4<f32>) -> vec4<mt> {
    return vec4<mt>(v * (1.0 / XK));
}

// An x as the products saw it, back in f32 and at 1 / XK of its value.
fn xs(v: vec4<mt>) -> vec4<f32> {
    return vec4<f32>(v);
}

fn qdot(q: vec4<u32>, x: vec4<mt>) -> f32 {
    return f32(dot(vec4<mt>(q), x));
}

fn qdoti(q: vec4<i32>, x: vec4<mt>) -> f32 {
    return f32(dot(vec4<mt>(q), x));
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

const NIB: u32 = 0x0F0F0F0Fu;

// Bits 0..4 of b spread to bit 0 of bytes 0..4 (the fifth bits of Q5_0/Q5_1).
fn spread4(b: u32) -> u32 {
    return ((b & 0xFu) * 0x00204081u) & 0x01010101u;
}
