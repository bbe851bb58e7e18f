// Shared by every module. The Rust side prepends a generated header (see pipelines.rs).

// Workgroup index of a dispatch folded into (x, y) to stay under the 65535 per-dimension cap:
// the host passes the x extent it used.
fn flat_group(wid: vec3<u32>, groups_x: u32) -> u32 {
    return wid.x + wid.y * groups_x;
}

// PCG hash (Jarzynski & Olano 2020): a cheap stateless generator whose Rust twin is exact.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Maps f32 to u32 so that integer order is float order (NaN aside).
fn order_key(f: f32) -> u32 {
    let b = bitcast<u32>(f);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// RoPE angles (rope.wgsl explains the fixed-point turns), shared by the rope kernel and the
// fused mat-vec epilogue.

const TURN_TO_RAD: f32 = 1.4629180792671596e-9;  // 2 pi / 2^32

// High 32 bits of a 32 x 32-bit product.
fn mul_hi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = ((a0 * b0) >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

// (sin, cos) of the angle `frac` / 2^32 turns.
fn sincos_turns(frac: u32) -> vec2<f32> {
    // Nearest quarter turn, and the signed remainder within +-1/8 turn.
    let q = (frac + 0x20000000u) >> 30u;
    let r = f32(bitcast<i32>(frac - (q << 30u))) * TURN_TO_RAD;
    let z = r * r;
    let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
    let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
    var out = vec2<f32>(s, c);
    if (q == 1u) {
        out = vec2<f32>(c, -s);
    } else if (q == 2u) {
        out = vec2<f32>(-s, -c);
    } else if (q == 3u) {
        out = vec2<f32>(-c, s);
    }
    return out;
}


// KV cache addressing (kv.rs): f16 pairs of adjacent dims in u32 words (pack2x16float, no
// shader-f16 needed). Dim d of the kv heads' n_kv_heads * head_dim at position pos:
// K is stored transposed, [dims / 2][n_ctx], so attention's threads, one key each, read
// consecutive words; V position-major, [n_ctx][dims / 2], read by threads one pair each.
fn k_word(d: u32, pos: u32, n_ctx: u32) -> u32 {
    return (d >> 1u) * n_ctx + pos;
}

fn v_word(d: u32, pos: u32, width: u32) -> u32 {
    return pos * (width >> 1u) + (d >> 1u);
}
