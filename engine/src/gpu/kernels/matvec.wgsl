// y = W x for one token: the decode path. Composed after the weight type's files (its
// `dequant16`, and the chunk contract below from matvec/<type>.wgsl, or matvec/generic.wgsl
// over dequant16) and an epilogue file, which says which weight row each of a workgroup's
// ROWS slots reads (`row_of`; P.rows or more for none) and stores the finished rows, read
// with `result(r)` (`epilogue`).
//
// The chunk contract: a block is CHUNKS chunks; `x_chunk(xv, c)` loads the x of chunk c of
// the block whose first x is X[xv] into the private `xc` (with whatever sums of it the type
// needs); `dot_chunk(pb, g, c)` returns chunk c of block g (of a part of pb blocks) dotted
// with `xc`.
//
// Header constants: WG threads in WG / LANES groups of LANES; each group reads ROWS / (WG /
// LANES) rows, its threads taking every LANES-th chunk of them, so each x chunk loaded serves
// all of a thread's rows. On a GPU (LANES = WG) consecutive threads take consecutive chunks:
// a workgroup's loads of a row are contiguous lines, and the threads' sums meet in workgroup
// memory, folded eight at a time (no subgroups on the web). On a CPU adapter (LANES = 1)
// each thread owns its rows: every thread loads the same x at the same time (one load for
// the whole SIMD batch) and no reduction is needed.
// x is row P.x_row of X (the last token's, for the LM head).

const GROUPS: u32 = WG / LANES;
const RPG: u32 = ROWS / GROUPS;

var<workgroup> red: array<f32, ROWS * LANES>;

// Row slot r's finished sum (after `reduce`).
fn result(r: u32) -> f32 {
    return red[r * LANES];
}

// Sums each slot's LANES partial sums into red[r * LANES]: log8(LANES) steps, each thread
// summing up to eight values a stride apart (consecutive threads, consecutive words: no bank
// conflicts).
fn reduce(lid: u32) {
    for (var n = LANES; n > 1u; n = (n + 7u) / 8u) {
        let m = (n + 7u) / 8u;
        for (var e = lid; e < ROWS * m; e += WG) {
            let r = e / m;
            let j = e % m;
            var s = 0.0;
            for (var i = j; i < n; i += m) {
                s += red[r * LANES + i];
            }
            red[r * LANES + j] = s;
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = flat_group(wid, P.groups_x);
    let nb = P.k / QK;
    let n_chunks = nb * CHUNKS;
    let xv0 = (P.x_row * P.k) >> 2u;
    let first = (lid / LANES) * RPG;
    let lane = lid % LANES;
    // A slot past the last row reads row 0 and is never stored: no branch in the loop.
    var g0: array<u32, RPG>;
    var acc: array<f32, RPG>;
    for (var r = 0u; r < RPG; r++) {
        let row = row_of(group, first + r);
        g0[r] = (P.w_row + select(0u, row, row < P.rows)) * nb;
        acc[r] = 0.0;
    }
    for (var i = lane; i < n_chunks; i += LANES) {
        let b = i / CHUNKS;
        let c = i % CHUNKS;
        x_chunk(xv0 + b * (QK / 4u), c);
        for (var r = 0u; r < RPG; r++) {
            acc[r] += dot_chunk(P.pb, g0[r] + b, c);
        }
    }
    for (var r = 0u; r < RPG; r++) {
        red[(first + r) * LANES + lane] = acc[r];
    }
    workgroupBarrier();
    reduce(lid);
    epilogue(lid, group);
}
