// Mat-vec epilogue over a [q; k; v] weight (regions of P.q_rows, P.k_rows, then v up to
// P.rows; any may be empty) for one token at position pos = P.pos + S.pos: adds the bias,
// rotates q and k (RoPE) and stores q, and k and v straight into the KV cache at pos. Each
// workgroup reads ROWS / 2 pairs of rows, so both halves of a rotation meet here: the pairs
// of NEOX rotation (qwen2) are (i, i + n_rot / 2) of a head, of NORMAL (llama) (2i, 2i + 1);
// dims past n_rot, and v, pair up unrotated.

const PAIRS: u32 = ROWS / 2u;
const NO_ROT: u32 = 0xFFFFFFFFu;

// Rows a and b of pair p of the tensor, and the rotation frequency index (or NO_ROT).
fn pair_rows(p: u32) -> vec3<u32> {
    let d = P.head_dim;
    let head = p / (d / 2u);
    let i = p % (d / 2u);
    let base = head * d;
    let half = P.n_rot / 2u;
    if (base >= P.q_rows + P.k_rows) {
        return vec3<u32>(base + 2u * i, base + 2u * i + 1u, NO_ROT);
    }
    if (P.neox != 0u) {
        if (i < half) {
            return vec3<u32>(base + i, base + i + half, i);
        }
        let m = i - half;
        return vec3<u32>(base + P.n_rot + 2u * m, base + P.n_rot + 2u * m + 1u, NO_ROT);
    }
    return vec3<u32>(base + 2u * i, base + 2u * i + 1u, select(NO_ROT, i, i < half));
}

fn row_of(group: u32, r: u32) -> u32 {
    let p = group * PAIRS + r / 2u;
    if (2u * p >= P.rows) {
        return 0xFFFFFFFFu;
    }
    let rows = pair_rows(p);
    return select(rows.x, rows.y, (r & 1u) == 1u);
}

fn store(row: u32, pos: u32, v: f32) {
    let kv_start = P.q_rows + P.k_rows;
    if (row < P.q_rows) {
        Q[P.y_row + row] = v;
    } else if (row < kv_start) {
        K_DST[pos * P.kv_width + row - P.q_rows] = kv_t(v);
    } else {
        V_DST[pos * P.kv_width + row - kv_start] = kv_t(v);
    }
}

fn epilogue(lid: u32, group: u32) {
    let p = group * PAIRS + lid;
    if (lid >= PAIRS || 2u * p >= P.rows) {
        return;
    }
    let rows = pair_rows(p);
    var x0 = red[2u * lid * WG];
    var x1 = red[(2u * lid + 1u) * WG];
    if (P.has_bias != 0u) {
        x0 += BIAS[P.b_row + rows.x];
        x1 += BIAS[P.b_row + rows.y];
    }
    let pos = P.pos + S.pos;
    if (rows.z != NO_ROT) {
        let turns = TURNS[rows.z];
        let sc = sincos_turns(pos * turns.x + mul_hi(pos, turns.y));
        let r0 = x0 * sc.y - x1 * sc.x;
        x1 = x0 * sc.x + x1 * sc.y;
        x0 = r0;
    }
    store(rows.x, pos, x0);
    store(rows.y, pos, x1);
}
