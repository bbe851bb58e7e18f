// Rotary position embedding, in place on x[t, head, :] at position pos + t. Pairs are
// (i, i + n_rot / 2) in neox mode (qwen2) and (2i, 2i + 1) in normal mode (llama GGUFs, whose
// q/k rows llama.cpp's converter permuted for it); dims past n_rot are left alone.
//
// Angles are exact to ~1e-8 rad at any position on any device: the host gives each pair's
// frequency in turns as 64-bit fixed point (computed in f64, per-dim factors folded in), and
// pos * turns mod 1 is taken in integer arithmetic. A plain f32 product is off by up to 1e-3
// rad at position 30000, GPU pow by more, and built-in sin/cos may be coarse (Vulkan promises
// 2^-11 on [-pi, pi]; SwiftShader errs ~1e-4), so sin/cos are cephes polynomials on
// [-pi/4, pi/4] after an exact quadrant split.

const RWG: u32 = 256u;

@compute @workgroup_size(RWG)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let half = P.n_rot / 2u;
    let idx = flat_group(wid, P.groups_x) * RWG + lid;
    if (idx >= P.t * P.n_heads * half) {
        return;
    }
    let i = idx % half;
    let th = idx / half;
    let tok = th / P.n_heads;
    let base = th * P.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (P.neox != 0u) {
        a = base + i;
        b = base + i + half;
    }
    let p = P.pos + S.pos + tok;
    let turns = TURNS[i];
    // Fraction of pos * turns: wrapping keeps exactly the bits below the binary point.
    let sc = sincos_turns(p * turns.x + mul_hi(p, turns.y));
    let x0 = X[a];
    let x1 = X[b];
    X[a] = x0 * sc.y - x1 * sc.x;
    X[b] = x0 * sc.x + x1 * sc.y;
}
