// Picking the next token on the GPU so only one u32 crosses back per decoded token.
//
// argmax_partial: each workgroup reduces a chunk of the logits to (max, index).
// argmax_final: one workgroup reduces the partials and writes the token.
// top_p_final: one workgroup samples from softmax(logits / temperature) restricted to the
// smallest set of most likely tokens whose mass reaches top_p. Each thread owns a contiguous
// range of the vocabulary so every sum is taken in one fixed order: the result is a pure
// function of (logits, seed, step). The top-p threshold is found by bisection on the logits'
// order keys (32 passes, no sort), then a prefix sum over the ranges locates u * kept_mass.

const SWG: u32 = 256u;
// The lowest finite f32 (this decimal rounds to it; the usual 3.4028235e38 lies past f32's
// max, which Tint rejects, and naga cannot bitcast in a const).
const LOWEST: f32 = -3.4028234e38;

var<workgroup> rv: array<f32, SWG>;
var<workgroup> ri: array<u32, SWG>;
var<workgroup> rs: array<f32, SWG>;
var<workgroup> chosen: u32;

// Ties go to the lower index, like a left-to-right scan on the CPU.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

// Tree-reduces (rv, ri) to slot 0. Call with every thread.
fn reduce_max(lid: u32) {
    workgroupBarrier();
    for (var s = SWG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && better(rv[lid + s], ri[lid + s], rv[lid], ri[lid])) {
            rv[lid] = rv[lid + s];
            ri[lid] = ri[lid + s];
        }
        workgroupBarrier();
    }
}

// Tree-sums one value per thread in a fixed order; every thread gets the total.
fn reduce_sum(lid: u32, v: f32) -> f32 {
    rs[lid] = v;
    workgroupBarrier();
    for (var s = SWG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            rs[lid] += rs[lid + s];
        }
        workgroupBarrier();
    }
    let total = rs[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(SWG)
fn argmax_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let start = g * P.chunk;
    let end = min(start + P.chunk, P.n);
    var bv = LOWEST;
    var bi = 0xFFFFFFFFu;
    for (var i = start + lid; i < end; i += SWG) {
        let v = LOGITS[i];
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    rv[lid] = bv;
    ri[lid] = bi;
    reduce_max(lid);
    if (lid == 0u) {
        PMAX[g] = rv[0];
        PIDX[g] = ri[0];
    }
}

fn global_argmax(lid: u32) {
    var bv = LOWEST;
    var bi = 0xFFFFFFFFu;
    for (var g = lid; g < P.n_groups; g += SWG) {
        if (better(PMAX_IN[g], PIDX_IN[g], bv, bi)) {
            bv = PMAX_IN[g];
            bi = PIDX_IN[g];
        }
    }
    rv[lid] = bv;
    ri[lid] = bi;
    reduce_max(lid);
}

@compute @workgroup_size(SWG)
fn argmax_final(@builtin(local_invocation_index) lid: u32) {
    global_argmax(lid);
    if (lid == 0u) {
        OUT[0] = ri[0];
    }
}

fn weight(v: f32, mx: f32) -> f32 {
    return exp((v - mx) / P.temperature);
}

// Mass of this thread's range over tokens whose order key is >= `threshold`.
fn range_mass(start: u32, end: u32, mx: f32, threshold: u32) -> f32 {
    var m = 0.0;
    for (var i = start; i < end; i++) {
        let v = LOGITS[i];
        if (order_key(v) >= threshold) {
            m += weight(v, mx);
        }
    }
    return m;
}

@compute @workgroup_size(SWG)
fn top_p_final(@builtin(local_invocation_index) lid: u32) {
    global_argmax(lid);
    let mx = rv[0];
    let best = ri[0];
    workgroupBarrier();
    let per = (P.n + SWG - 1u) / SWG;
    let start = min(lid * per, P.n);
    let end = min(start + per, P.n);

    let z = reduce_sum(lid, range_mass(start, end, mx, 0u));
    let target_mass = P.top_p * z;
    // Largest key threshold whose kept mass still reaches top_p * Z; key 0 keeps everything.
    var lo = 0u;
    var hi = order_key(mx);
    for (var it = 0u; it < 32u; it++) {
        let mid = lo + (hi - lo + 1u) / 2u;
        let mass = reduce_sum(lid, range_mass(start, end, mx, mid));
        if (lo < hi) {
            if (mass >= target_mass) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
    }

    let mine = range_mass(start, end, mx, lo);
    rs[lid] = mine;
    if (lid == 0u) {
        chosen = best;
    }
    workgroupBarrier();
    var before = 0.0;
    var kept = 0.0;
    for (var u = 0u; u < SWG; u++) {
        if (u < lid) {
            before += rs[u];
        }
        kept += rs[u];
    }
    let r = pcg(P.seed_lo ^ pcg(P.seed_hi ^ pcg(P.step + S.pos)));
    let x = f32(r >> 8u) * (1.0 / 16777216.0) * kept;
    // The one range holding x walks to the token; if rounding leaves x past the end, the
    // argmax (always kept) stands.
    if (mine > 0.0 && x >= before && x < before + mine) {
        var acc = before;
        var pick = 0xFFFFFFFFu;
        for (var i = start; i < end; i++) {
            let v = LOGITS[i];
            if (order_key(v) >= lo) {
                acc += weight(v, mx);
                pick = i;
                if (acc > x) {
                    break;
                }
            }
        }
        chosen = pick;
    }
    workgroupBarrier();
    if (lid == 0u) {
        OUT[0] = chosen;
    }
}
