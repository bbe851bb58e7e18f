// Causal grouped-query attention over the f16 KV cache (kv.rs, common.wgsl's k_word/v_word).
//
// kv_write stores T new k/v rows at positions pos..pos+T. attn_partial gives each (chunk of CH
// keys, kv head x slice of its query heads, query) a workgroup: split-K as in flash decoding,
// so a long context at T = 1 still spreads over many workgroups, and workgroup memory stays
// fixed whatever the context length. In three phases:
//   scores: each thread takes keys lid, lid + AWG: K is stored transposed, so the
//           workgroup's loads of one dim pair are consecutive words; q (scaled) is read from
//           workgroup memory by all threads at once, for the AG query heads sharing the key;
//   softmax: max and sum over the chunk for every head at once, each a workgroup reduction
//           folded eight at a time;
//   values: each thread takes a dim pair (and, for head_dim <= 64, every second or fourth key),
//           so the loads of one key's values are consecutive words.
// attn_combine merges the chunks' (max, sum, weighted values). A chunk past a query's keys
// (a grid sized for the whole context, as a prepared decode step has) writes an empty
// partial (max NEG, sum 0), which the merge weighs as nothing.
// Header constants: AHD (head dims held: 64, 128 or 256), AG (query heads per workgroup).

const AWG: u32 = 64u;
const CH: u32 = 128u;           // keys per chunk: P.chunk
const KPT: u32 = CH / AWG;      // keys per thread in the score phase
const NEG: f32 = -1e30;         // finite "minus infinity": keeps exp(m_old - m_new) free of NaN

var<workgroup> qs: array<f32, AG * AHD>;
var<workgroup> ps: array<f32, AG * CH>;
var<workgroup> red: array<f32, 2u * AG * AWG>;

@compute @workgroup_size(256)
fn kv_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_group(wid, P.groups_x) * 256u + lid;
    let width = P.n_kv_heads * P.head_dim;
    let pairs = width / 2u;
    if (i < P.t * pairs) {
        let tk = i / pairs;
        let d = 2u * (i % pairs);
        let pos = P.pos + S.pos + tk;
        let src = tk * width + d;
        K_DST[k_word(d, pos, P.n_ctx)] = pack2x16float(vec2<f32>(K_NEW[src], K_NEW[src + 1u]));
        V_DST[v_word(d, pos, width)] = pack2x16float(vec2<f32>(V_NEW[src], V_NEW[src + 1u]));
    }
}

// Folds each head's AWG values in red[g * AWG..] to red[g * AWG], by max or by sum.
fn fold(lid: u32, is_max: bool) {
    for (var n = AWG; n > 1u; n = n / 8u) {
        let m = n / 8u;
        for (var e = lid; e < AG * m; e += AWG) {
            let g = e / m;
            let j = e % m;
            var s = red[g * AWG + j];
            for (var i = j + m; i < n; i += m) {
                let v = red[g * AWG + i];
                s = select(s + v, max(s, v), is_max);
            }
            red[g * AWG + j] = s;
        }
        workgroupBarrier();
    }
}

// Workgroup (chunk, kv head x slice, query) = wid (x, y, z). Loops run to AG, not the group
// size, so the per-head state stays in registers; unused head slots compute on zeros and are
// not written. Every loop-local var is assigned before use: Chromium (Tint on SwiftShader)
// did not re-zero a loop-local var at each iteration as WGSL requires (tests/gpu_browser.rs).
@compute @workgroup_size(AWG)
fn attn_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let tq = wid.z;
    let hd = P.head_dim;
    let dp = hd / 2u;
    let group = P.n_heads / P.n_kv_heads;
    let slices = (group + AG - 1u) / AG;
    let kvh = wid.y / slices;
    let first = (wid.y % slices) * AG;
    let h0 = kvh * group + first;
    let ng = min(AG, group - first);
    let start = c * CH;
    // Causal: query tq sits at position pos + tq and sees keys 0..=pos + tq.
    let end = min(start + CH, P.pos + S.pos + tq + 1u);
    let stride = hd + 2u;
    if (start >= end) {
        if (lid < ng) {
            let o = ((tq * P.n_heads + h0 + lid) * P.n_chunks + c) * stride;
            PART[o] = NEG;
            PART[o + 1u] = 0.0;
        }
        return;
    }
    let n = end - start;
    for (var e = lid; e < AG * hd; e += AWG) {
        let g = e / hd;
        let d = e % hd;
        var v = 0.0;
        if (g < ng) {
            v = Q[(tq * P.n_heads + h0 + g) * hd + d] * P.scale;
        }
        qs[g * AHD + d] = v;
    }
    workgroupBarrier();

    // Scores, and each thread's max over its keys.
    var mx: array<f32, AG>;
    for (var g = 0u; g < AG; g++) {
        mx[g] = NEG;
    }
    let kbase = kvh * dp;
    for (var kk = 0u; kk < KPT; kk++) {
        let j = lid + kk * AWG;
        var s: array<f32, AG>;
        for (var g = 0u; g < AG; g++) {
            s[g] = 0.0;
        }
        if (j < n) {
            for (var p = 0u; p < dp; p++) {
                let k = unpack2x16float(KC[(kbase + p) * P.n_ctx + start + j]);
                for (var g = 0u; g < AG; g++) {
                    s[g] += qs[g * AHD + 2u * p] * k.x + qs[g * AHD + 2u * p + 1u] * k.y;
                }
            }
        }
        for (var g = 0u; g < AG; g++) {
            let v = select(NEG, s[g], j < n);
            ps[g * CH + j] = v;
            mx[g] = max(mx[g], v);
        }
    }
    for (var g = 0u; g < AG; g++) {
        red[g * AWG + lid] = mx[g];
    }
    workgroupBarrier();
    fold(lid, true);
    var m: array<f32, AG>;
    for (var g = 0u; g < AG; g++) {
        m[g] = red[g * AWG];
    }
    workgroupBarrier();

    // Probabilities, and each thread's sum over its keys.
    var l: array<f32, AG>;
    for (var g = 0u; g < AG; g++) {
        l[g] = 0.0;
    }
    for (var kk = 0u; kk < KPT; kk++) {
        let j = lid + kk * AWG;
        for (var g = 0u; g < AG; g++) {
            let p = select(0.0, exp(ps[g * CH + j] - m[g]), j < n);
            ps[g * CH + j] = p;
            l[g] += p;
        }
    }
    for (var g = 0u; g < AG; g++) {
        red[g * AWG + lid] = l[g];
    }
    workgroupBarrier();
    fold(lid, false);
    for (var g = 0u; g < AG; g++) {
        l[g] = red[g * AWG];
    }
    workgroupBarrier();

    let vw = P.n_kv_heads * dp;
    let out0 = (tq * P.n_heads + h0) * P.n_chunks + c;
    if (lid < ng) {
        let o = (out0 + lid * P.n_chunks) * stride;
        PART[o] = m[lid];
        PART[o + 1u] = l[lid];
    }
    if (dp > AWG / 2u) {
        // One thread per dim pair (or two, for head_dim 256), over every key.
        for (var p = lid; p < dp; p += AWG) {
            var a: array<vec2<f32>, AG>;
            for (var g = 0u; g < AG; g++) {
                a[g] = vec2<f32>(0.0);
            }
            for (var j = 0u; j < n; j++) {
                let v = unpack2x16float(VC[(start + j) * vw + kbase + p]);
                for (var g = 0u; g < AG; g++) {
                    a[g] += ps[g * CH + j] * v;
                }
            }
            for (var g = 0u; g < ng; g++) {
                let o = (out0 + g * P.n_chunks) * stride + 2u + 2u * p;
                PART[o] = a[g].x;
                PART[o + 1u] = a[g].y;
            }
        }
    } else {
        // AWG / dp threads per dim pair, each over every splits-th key, then summed.
        let splits = AWG / dp;
        let split = lid / dp;
        let p = lid % dp;
        var a: array<vec2<f32>, AG>;
        for (var g = 0u; g < AG; g++) {
            a[g] = vec2<f32>(0.0);
        }
        if (split < splits) {
            for (var j = split; j < n; j += splits) {
                let v = unpack2x16float(VC[(start + j) * vw + kbase + p]);
                for (var g = 0u; g < AG; g++) {
                    a[g] += ps[g * CH + j] * v;
                }
            }
        }
        for (var g = 0u; g < AG; g++) {
            red[2u * (g * AWG + lid)] = a[g].x;
            red[2u * (g * AWG + lid) + 1u] = a[g].y;
        }
        workgroupBarrier();
        if (lid < dp) {
            for (var g = 0u; g < ng; g++) {
                var t = vec2<f32>(0.0);
                for (var s = 0u; s < splits; s++) {
                    let i = 2u * (g * AWG + s * dp + lid);
                    t += vec2<f32>(red[i], red[i + 1u]);
                }
                let o = (out0 + g * P.n_chunks) * stride + 2u + 2u * lid;
                PART[o] = t.x;
                PART[o + 1u] = t.y;
            }
        }
    }
}

// Workgroup (head, query) = wid (x, y). Every query sees key 0, so the merged sum is > 0; an
// empty chunk (sum 0) adds nothing, whatever its value slots hold.
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
            let at = base + c * stride;
            a += select(0.0, PART_IN[at + 2u + d] * exp(PART_IN[at] - mx), PART_IN[at + 1u] > 0.0);
        }
        OUT[o + d] = a / total;
    }
}
