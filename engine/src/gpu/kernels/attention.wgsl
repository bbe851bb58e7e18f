// Causal grouped-query attention over a KV cache laid out [n_ctx, n_kv_heads, head_dim] per
// layer, stored as kv_t (f16 on the f16 path, f32 otherwise).
//
// kv_write copies T new k/v rows to positions pos..pos+T. attn_partial gives each
// (key chunk, kv head, query) a workgroup that walks its chunk in tiles of AWG keys with an
// online softmax, so workgroup memory stays fixed whatever the context length, and long contexts at
// T = 1 still spread over many workgroups (split-K, as in flash decoding). attn_combine merges
// the chunks' (max, sum, weighted values) into the output. A chunk past a query's keys (a
// grid sized for the whole context, as a prepared decode step has) writes an empty partial
// (max NEG, sum 0), which the merge weighs as nothing.

const AWG: u32 = 64u;
const MAX_HD: u32 = 256u;
const DPT: u32 = MAX_HD / AWG;  // head dims per thread in the value sum
const MAX_G: u32 = 8u;          // query heads per workgroup (one GQA group, or a slice of it)
const NEG: f32 = -1e30;         // finite "minus infinity": keeps exp(m_old - m_new) free of NaN

var<workgroup> qs: array<f32, MAX_G * MAX_HD>;
var<workgroup> ss: array<f32, MAX_G * AWG>;
var<workgroup> ps: array<f32, MAX_G * AWG>;

@compute @workgroup_size(256)
fn kv_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_group(wid, P.groups_x) * 256u + lid;
    let row = P.n_kv_heads * P.head_dim;
    if (i < P.t * row) {
        let dst = (P.pos + S.pos) * row + i;
        K_DST[dst] = kv_t(K_NEW[i]);
        V_DST[dst] = kv_t(V_NEW[i]);
    }
}

// Workgroup (chunk, kv head x slice, query) = wid (x, y, z). The query heads sharing a kv head
// (up to MAX_G of them) are served together, so each cached key and value is read once per
// group rather than once per query head. Loops run to MAX_G, not the group size, so the
// per-head state stays in registers; unused head slots compute on zeros and are not written.
@compute @workgroup_size(AWG)
fn attn_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let tq = wid.z;
    let hd = P.head_dim;
    let group = P.n_heads / P.n_kv_heads;
    let slices = (group + MAX_G - 1u) / MAX_G;
    let kvh = wid.y / slices;
    let first = (wid.y % slices) * MAX_G;
    let h0 = kvh * group + first;
    let ng = min(MAX_G, group - first);
    for (var e = lid; e < ng * hd; e += AWG) {
        let g = e / hd;
        let d = e % hd;
        qs[g * MAX_HD + d] = Q[(tq * P.n_heads + h0 + g) * hd + d] * P.scale;
    }
    workgroupBarrier();
    let row_stride = P.n_kv_heads * hd;
    let head_off = kvh * hd;
    let start = c * P.chunk;
    // Causal: query tq sits at position pos + tq and sees keys 0..=pos + tq.
    let end = min(start + P.chunk, P.pos + S.pos + tq + 1u);
    var m: array<f32, MAX_G>;
    var l: array<f32, MAX_G>;
    var acc: array<f32, MAX_G * DPT>;
    for (var g = 0u; g < MAX_G; g++) {
        m[g] = NEG;
    }
    for (var j0 = start; j0 < end; j0 += AWG) {
        let j = j0 + lid;
        var s: array<f32, MAX_G>;
        for (var g = 0u; g < MAX_G; g++) {
            s[g] = NEG;
        }
        if (j < end) {
            let kb = j * row_stride + head_off;
            // Zeroed by hand: in Chromium (Tint on SwiftShader) a loop-local var keeps its
            // previous iteration's value, though WGSL zero-fills it at each declaration;
            // every key after the first 64 then scored wrong (tests/gpu_browser.rs).
            var dv: array<f32, MAX_G>;
            for (var g = 0u; g < MAX_G; g++) {
                dv[g] = 0.0;
            }
            for (var d = 0u; d < hd; d++) {
                let kd = f32(KC[kb + d]);
                for (var g = 0u; g < MAX_G; g++) {
                    dv[g] += qs[g * MAX_HD + d] * kd;
                }
            }
            s = dv;
        }
        for (var g = 0u; g < MAX_G; g++) {
            ss[g * AWG + lid] = s[g];
        }
        workgroupBarrier();
        let cnt = min(AWG, end - j0);
        var corr: array<f32, MAX_G>;
        for (var g = 0u; g < MAX_G; g++) {
            var tmax = NEG;
            for (var u = 0u; u < cnt; u++) {
                tmax = max(tmax, ss[g * AWG + u]);
            }
            let m_new = max(m[g], tmax);
            corr[g] = exp(m[g] - m_new);
            ps[g * AWG + lid] = select(0.0, exp(s[g] - m_new), j < end);
            m[g] = m_new;
        }
        workgroupBarrier();
        for (var g = 0u; g < MAX_G; g++) {
            var tsum = 0.0;
            for (var u = 0u; u < cnt; u++) {
                tsum += ps[g * AWG + u];
            }
            l[g] = l[g] * corr[g] + tsum;
        }
        for (var di = 0u; di < DPT; di++) {
            let d = lid + di * AWG;
            if (d < hd) {
                var a: array<f32, MAX_G>;
                for (var g = 0u; g < MAX_G; g++) {
                    a[g] = acc[g * DPT + di] * corr[g];
                }
                for (var u = 0u; u < cnt; u++) {
                    let vd = f32(VC[(j0 + u) * row_stride + head_off + d]);
                    for (var g = 0u; g < MAX_G; g++) {
                        a[g] += ps[g * AWG + u] * vd;
                    }
                }
                for (var g = 0u; g < MAX_G; g++) {
                    acc[g * DPT + di] = a[g];
                }
            }
        }
        workgroupBarrier();
    }
    for (var g = 0u; g < ng; g++) {
        let o = ((tq * P.n_heads + h0 + g) * P.n_chunks + c) * (hd + 2u);
        if (lid == 0u) {
            PART[o] = m[g];
            PART[o + 1u] = l[g];
        }
        for (var di = 0u; di < DPT; di++) {
            let d = lid + di * AWG;
            if (d < hd) {
                PART[o + 2u + d] = acc[g * DPT + di];
            }
        }
    }
}

// Workgroup (head, query) = wid (x, y). Every query sees key 0, so the merged sum is > 0.
@compute @workgroup_size(AWG)
fn attn_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let tq = wid.y;
    let hd = P.head_dim;
    let stride = hd + 2u;
    let base = (tq * P.n_heads + h) * P.n_chunks * stride;
    var mx = NEG;
    for (var c = 0u; c < P.n_chunks; c++) {
        mx = max(mx, PART_IN[base + c * stride]);
    }
    var total = 0.0;
    for (var c = 0u; c < P.n_chunks; c++) {
        total += PART_IN[base + c * stride + 1u] * exp(PART_IN[base + c * stride] - mx);
    }
    let o = (tq * P.n_heads + h) * hd;
    for (var d = lid; d < hd; d += AWG) {
        var a = 0.0;
        for (var c = 0u; c < P.n_chunks; c++) {
            a += PART_IN[base + c * stride + 2u + d] * exp(PART_IN[base + c * stride] - mx);
        }
        OUT[o + d] = a / total;
    }
}
