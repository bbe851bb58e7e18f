// y = W x for one token: the decode path. Composed after a quant file (QK, BLOCK_BYTES,
// dequant16) and an epilogue file, which says which weight row each of a workgroup's ROWS
// slots reads (`row_of`; P.rows or more for none) and stores the reduced rows held in
// `red[r * WG]` (`epilogue`). Header constants: WG threads, ROWS rows per workgroup. Threads
// stride over a row's (block, part) pairs so consecutive threads read consecutive bytes, and
// each x part loaded is reused for all ROWS rows; the partial sums meet in a workgroup-memory
// tree (no subgroups on the web). x is row P.x_row of X (the last token's, for the LM head).

const PARTS: u32 = QK / 16u;

var<workgroup> red: array<f32, ROWS * WG>;

fn dot16(w: array<f32, 16>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
    return dot(vec4<f32>(w[0], w[1], w[2], w[3]), x0) + dot(vec4<f32>(w[4], w[5], w[6], w[7]), x1)
        + dot(vec4<f32>(w[8], w[9], w[10], w[11]), x2) + dot(vec4<f32>(w[12], w[13], w[14], w[15]), x3);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = flat_group(wid, P.groups_x);
    let n_parts = (P.k / QK) * PARTS;
    let x_base = (P.x_row * P.k) >> 2u;
    var base: array<u32, ROWS>;
    var live: array<bool, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        let row = row_of(group, r);
        live[r] = row < P.rows;
        base[r] = (P.w_row + select(0u, row, live[r])) * P.row_bytes;
    }
    var acc: array<f32, ROWS>;
    for (var i = lid; i < n_parts; i += WG) {
        let blk = i / PARTS;
        let part = i % PARTS;
        let xv = x_base + ((blk * QK + part * 16u) >> 2u);
        let x0 = X[xv];
        let x1 = X[xv + 1u];
        let x2 = X[xv + 2u];
        let x3 = X[xv + 3u];
        for (var r = 0u; r < ROWS; r++) {
            if (live[r]) {
                let w = dequant16(base[r] + blk * BLOCK_BYTES, part);
                acc[r] += dot16(w, x0, x1, x2, x3);
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        red[r * WG + lid] = acc[r];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var r = 0u; r < ROWS; r++) {
                red[r * WG + lid] += red[r * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    epilogue(lid, group);
}
