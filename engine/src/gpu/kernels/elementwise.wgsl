// In-place elementwise ops over n floats: the residual add and the SwiGLU gate.

const EWG: u32 = 256u;

// a += b (residual stream).
@compute @workgroup_size(EWG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_group(wid, P.groups_x) * EWG + lid;
    if (i < P.n) {
        A[i] += B[i];
    }
}

// gate = silu(gate) * up. For very negative gates exp(-g) is inf and g / inf is -0, the limit.
@compute @workgroup_size(EWG)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_group(wid, P.groups_x) * EWG + lid;
    if (i < P.n) {
        let g = A[i];
        A[i] = g / (1.0 + exp(-g)) * B[i];
    }
}
