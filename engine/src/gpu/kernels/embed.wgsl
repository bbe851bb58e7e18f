// out[t, :] = table[ids[t], :] dequantized to f32. Composed after a quant file. One workgroup
// per token; a table split by rows is read one part per dispatch, each writing only the tokens
// whose row it holds.

const PARTS: u32 = QK / 16u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tok = flat_group(wid, P.groups_x);
    if (tok >= P.t) {
        return;
    }
    let id = IDS[tok];
    if (id < P.row_base || id - P.row_base >= P.rows) {
        return;
    }
    let nb = P.dim / QK;
    let g0 = (id - P.row_base) * nb;
    let n_parts = P.dim / 16u;
    for (var i = lid; i < n_parts; i += 64u) {
        var w = dequant16(P.pb, g0 + i / PARTS, i % PARTS);
        let o = tok * P.dim + i * 16u;
        for (var j = 0u; j < 16u; j++) {
            Y[o + j] = w[j];
        }
    }
}
