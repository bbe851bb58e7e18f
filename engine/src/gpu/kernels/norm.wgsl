// RMSNorm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight. One workgroup per token.
// add_rms_norm first adds the residual r into x (the stream the next layer reads), so each
// residual add costs no dispatch of its own.

const NWG: u32 = 256u;

var<workgroup> red: array<f32, NWG>;

fn finish_norm(lid: u32, base: u32, ss: f32) {
    red[lid] = ss;
    workgroupBarrier();
    for (var s = NWG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(red[0] / f32(P.dim) + P.eps);
    for (var i = lid; i < P.dim; i += NWG) {
        Y[base + i] = X[base + i] * inv * WT[i];
    }
}

@compute @workgroup_size(NWG)
fn add_rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tok = flat_group(wid, P.groups_x);
    if (tok >= P.t) {
        return;
    }
    let base = tok * P.dim;
    var ss = 0.0;
    for (var i = lid; i < P.dim; i += NWG) {
        let v = X[base + i] + R[base + i];
        X[base + i] = v;
        ss += v * v;
    }
    finish_norm(lid, base, ss);
}

@compute @workgroup_size(NWG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tok = flat_group(wid, P.groups_x);
    if (tok >= P.t) {
        return;
    }
    let base = tok * P.dim;
    var ss = 0.0;
    for (var i = lid; i < P.dim; i += NWG) {
        let v = X[base + i];
        ss += v * v;
    }
    finish_norm(lid, base, ss);
}
